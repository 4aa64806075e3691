"""Read and write Rampart's history (sessions, orders, fills, trades, equity, decisions, events, gates).

``Store`` and the repositories beside it (``core/store/*``) are the only way the application touches the DuckDB
file. Every public method is one unit of work (open, one transaction, close) so other processes can take their
turn between calls. Bulk rows
arrive as polars frames and go in through Arrow in a single ``INSERT ... BY NAME``.

Value rules, enforced here so bad rows fail with a message saying what to fix:
- frame columns must be a subset of the table's columns; missing nullable columns become NULL;
- timestamps must be timezone-aware (stored as TIMESTAMPTZ and read back in UTC);
- JSON columns take dicts/lists (a str is taken as JSON text already, and must parse); non-finite
  floats (NaN, ±inf) inside them are stored as null, because JSON has no such numbers. Plain DOUBLE
  columns keep NaN/inf as they are.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl

from core.errors import StoreError
from core.events import Event
from core.store.db import DEFAULT_LOCK_TIMEOUT_S, close, connect, unit_of_work
from core.store.liveness import owner_alive, owner_token
from core.store.migrations import current_version, migrate

MODES = ("backtest", "paper", "live")
FINAL_STATUSES = ("completed", "failed")
CRASHED = "crashed"  # closed by a later start: its process ended without finishing it (core.store.liveness)
SEVERITIES = ("info", "warning", "error", "critical")
GATE_EVIDENCE = ("synthetic", "replay", "forward")  # what a gate was judged on (core.gate.evidence)
# Tables finish_session fills, in insert order; append also accepts gate_results.
SESSION_TABLES = ("orders", "fills", "trades", "equity", "decisions", "events")
# Tables of issues 5-8 (outbox, alerts, snapshots, scaling, audit anchors): rows via append / insert_rows.
OPS_TABLES = ("notifications", "alerts", "metrics_snapshots", "scaling_decisions", "audit_anchors")
APPEND_TABLES = (*SESSION_TABLES, "gate_results", *OPS_TABLES)

_FRAME_VIEW = "_rampart_incoming_frame"


@dataclass(frozen=True)
class _Column:
    name: str
    data_type: str
    required: bool  # NOT NULL without a default: the caller must supply it

    @property
    def is_json(self) -> bool:
        return self.data_type.upper() == "JSON"


_Schema = dict[str, dict[str, _Column]]


class Store:
    """Rampart's DuckDB store at ``path``; the file is opened only for the length of each call."""

    def __init__(self, path: Path, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        if lock_timeout_s < 0:
            raise StoreError(f"lock_timeout_s must be >= 0 seconds, got {lock_timeout_s}")
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self._schema: _Schema | None = None
        self._ready = False  # the file exists and is migrated (it is created by the first write, never by a read)

    # ----------------------------------------------------------------- sessions
    def begin_session(self, session: Mapping[str, Any]) -> None:
        """Insert the ``sessions`` row for a new session with status 'running', owned by this process; sessions
        whose process has ended without finishing them are closed as 'crashed' first, in the same transaction.

        Needs id, mode ('backtest'|'paper'|'live'), started_at, strategy and config_hash; may carry
        any other sessions column (symbols as a list, settings as a dict).
        """
        row = dict(session)
        status = row.setdefault("status", "running")
        if status != "running":
            raise StoreError(f"begin_session always starts a session as 'running', got status={status!r}")
        row.setdefault("owner", owner_token())
        _check_choice("mode", row.get("mode"), MODES)
        columns = self._table("sessions")
        _check_row_keys("sessions", row, columns)
        with self._unit(f"begin session {row['id']}") as conn:
            _close_crashed(conn, str(row["id"]))
            _insert_row(conn, "sessions", row, columns)

    def close_crashed(self) -> list[str]:
        """Close every running session whose process has ended as 'crashed'; returns their ids."""
        if not self.path.exists():
            return []
        with self._unit("close crashed sessions") as conn:
            return _close_crashed(conn, None)

    def finish_session(
        self,
        session_id: str,
        *,
        status: str,
        ended_at: datetime,
        final_equity: float | None,
        error: str | None,
        frames: Mapping[str, pl.DataFrame],
    ) -> None:
        """Write a session's rows and close its ``sessions`` row, all in ONE transaction.

        ``frames`` maps tables among SESSION_TABLES to frames; a frame without ``session_id`` gets
        this session's id, and a trades frame without ``mode`` gets the session's mode. On any
        failure nothing from this call is kept (the session stays 'running') and StoreError is raised.
        """
        _check_choice("status", status, FINAL_STATUSES)
        ended = _as_utc(ended_at, "ended_at")
        unknown = sorted(set(frames) - set(SESSION_TABLES))
        if unknown:
            raise StoreError(
                f"finish_session got frames for unknown table(s) {unknown}; use {SESSION_TABLES}"
            )
        with self._unit(f"finish session {session_id}") as conn:
            mode = _running_session_mode(conn, session_id)
            for table in SESSION_TABLES:
                if table in frames:
                    tagged = _tag_frame(table, frames[table], session_id, mode)
                    _insert_frame(conn, table, _prepare_frame(table, tagged, self._table(table)))
            conn.execute(
                "UPDATE sessions SET status = ?, ended_at = ?, final_equity = ?, error = ? WHERE id = ?",
                [status, ended, final_equity, error, session_id],
            )

    # ----------------------------------------------------------------- rows
    def append(
        self, table: str, frame: pl.DataFrame, *, on_conflict: Literal["error", "ignore"] = "error"
    ) -> None:
        """Insert ``frame`` into ``table`` in one transaction.

        ``on_conflict='ignore'`` skips rows whose primary key is already stored (idempotent replay,
        e.g. of the audit journal by event id); the default raises StoreError and keeps nothing.
        """
        if table not in APPEND_TABLES:
            raise StoreError(f"cannot append to table {table!r}; use one of {APPEND_TABLES}")
        if on_conflict not in ("error", "ignore"):
            raise StoreError(f"on_conflict must be 'error' or 'ignore', got {on_conflict!r}")
        prepared = _prepare_frame(table, frame, self._table(table))
        with self._unit(f"append to {table}") as conn:
            _insert_frame(conn, table, prepared, ignore_conflicts=on_conflict == "ignore")

    def append_many(self, frames: Mapping[str, pl.DataFrame], *, replace: Sequence[str] = ("orders",)) -> None:
        """Insert several tables' rows in ONE transaction (a live session's increment of one bar).

        Tables in ``replace`` are upserts by primary key (an order's row follows its state machine);
        the others must be new rows. Nothing is kept if any insert fails.
        """
        unknown = sorted(set(frames) - set(APPEND_TABLES))
        if unknown:
            raise StoreError(f"cannot append to table(s) {unknown}; use {APPEND_TABLES}")
        prepared = {t: _prepare_frame(t, f, self._table(t)) for t, f in frames.items() if f.height}
        if not prepared:
            return
        with self._unit(f"append to {', '.join(prepared)}") as conn:
            for table, frame in prepared.items():
                _insert_frame(conn, table, frame, replace=table in replace)

    def record_event(
        self,
        *,
        kind: str,
        severity: str,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        ts: datetime | None = None,
    ) -> str:
        """Store one event (ts defaults to now, UTC) and return its new event_id."""
        _check_choice("severity", severity, SEVERITIES)
        event_id = uuid.uuid4().hex
        row = {
            "event_id": event_id,
            "session_id": session_id,
            "ts": datetime.now(UTC) if ts is None else ts,
            "kind": kind,
            "severity": severity,
            "code": code,
            "message": message,
            "details": details,
        }
        with self._unit(f"record event {code}") as conn:
            _insert_row(conn, "events", row, self._table("events"))
        return event_id

    def record(self, event: Event, *, kind: str, session_id: str | None = None) -> str:
        """Store one typed event (``core.events``): its code, rendered message and payload facts; returns its id."""
        ts = datetime.fromtimestamp(event.ts / 1000, UTC) if event.ts is not None else None
        return self.record_event(kind=kind, severity=event.severity, code=event.code.value, message=event.message,
                                 details=event.details, session_id=session_id, ts=ts)

    def insert_rows(self, table: str, rows: Sequence[Mapping[str, Any]], *,
                    on_conflict: Literal["error", "ignore"] = "error") -> int:
        """Insert dict rows into ``table`` in one transaction; returns how many were given.

        JSON columns take dicts/lists, timestamps must be timezone-aware. ``on_conflict='ignore'`` skips
        rows whose primary key is already stored (e.g. a notification already in the outbox: dedupe).
        """
        if table not in APPEND_TABLES:
            raise StoreError(f"cannot insert into table {table!r}; use one of {APPEND_TABLES}")
        if not rows:
            return 0
        columns = self._table(table)
        for row in rows:
            _check_row_keys(table, row, columns)
        frame = pl.DataFrame([dict(r) for r in rows], infer_schema_length=None)
        self.append(table, frame, on_conflict=on_conflict)
        return len(rows)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run one writing SQL statement (UPDATE/DELETE on the ops tables) in its own transaction.

        Returns the number of rows changed when DuckDB reports it, else -1. For reads use ``query``.
        """
        with self._unit("execute") as conn:
            cursor = conn.execute(sql, list(params) if params else [])
            rows = cursor.fetchall()
        return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else -1

    # ----------------------------------------------------------------- gate
    def record_gate(self, result: Mapping[str, Any]) -> None:
        """Store one validation-gate verdict (R1.4): metric values, thresholds, reasons, verdict, hash.

        Needs ``passed`` (bool) and ``config_hash``; ``id`` and ``created_at`` (now, UTC) are filled in
        when absent. thresholds/reasons/metrics are dicts or lists, stored as JSON.
        """
        row = dict(result)
        if not isinstance(row.get("passed"), bool):
            raise StoreError(f"gate result needs 'passed' as True/False, got {row.get('passed')!r}")
        if not row.get("config_hash"):
            raise StoreError("gate result needs a non-empty 'config_hash' (the strategy config it validates)")
        if row.get("evidence") is not None:
            _check_choice("evidence", row["evidence"], GATE_EVIDENCE)
        row.setdefault("id", uuid.uuid4().hex)
        row.setdefault("created_at", datetime.now(UTC))
        columns = self._table("gate_results")
        _check_row_keys("gate_results", row, columns)
        with self._unit(f"record gate {row['id']}") as conn:
            _insert_row(conn, "gate_results", row, columns)

    def latest_gate(self, config_hash: str) -> dict[str, Any] | None:
        """The newest gate record (by created_at) for ``config_hash``, JSON decoded; None if there is none."""
        sql = (
            "SELECT * FROM gate_results WHERE config_hash = ? "
            "ORDER BY created_at DESC NULLS LAST, rowid DESC LIMIT 1"
        )
        columns = self._table("gate_results")
        with self._unit("read latest gate", read_only=True) as conn:
            cursor = conn.execute(sql, [config_hash])
            names = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()  # fetchone would leave the result unfinished and block COMMIT
        if not rows:
            return None
        row = rows[0]
        return {name: _decode(value, columns[name]) for name, value in zip(names, row, strict=True)}

    # ----------------------------------------------------------------- reads
    def query(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run one read-only SQL statement and return its rows (timestamps in UTC)."""
        with self._unit("query", read_only=True) as conn:
            relation = conn.sql(sql, params=list(params)) if params else conn.sql(sql)
            return pl.DataFrame() if relation is None else relation.pl()

    def schema_version(self) -> int:
        """The highest migration version applied to the file, which this creates and migrates if needed."""
        self._ensure_ready()
        with self._unit("read schema version", read_only=True) as conn:
            return current_version(conn)

    # ----------------------------------------------------------------- plumbing
    @contextmanager
    def _unit(self, what: str, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not self._ready and not self.path.exists():
            # Nothing stored yet: read an empty database of the same schema instead of creating the file, so a
            # command that only looked (and was refused) leaves no database behind.
            with _empty_database() as conn:
                conn.execute("BEGIN TRANSACTION READ ONLY")
                try:
                    yield conn
                except duckdb.Error as exc:
                    raise StoreError(f"{what} failed: {exc}") from exc
            return
        self._ensure_ready()
        timeout = self.lock_timeout_s
        with unit_of_work(self.path, what=what, read_only=read_only, lock_timeout_s=timeout) as conn:
            yield conn

    def _ensure_ready(self) -> None:
        """First write or read of an existing file: migrate it and learn the table columns (they cannot change
        under us)."""
        if self._ready:
            return
        conn = connect(self.path, lock_timeout_s=self.lock_timeout_s)
        try:
            migrate(conn)
            self._schema = _read_schema(conn)
        finally:
            close(conn)
        self._ready = True

    def _columns(self) -> _Schema:
        """The tables' columns: the file's once it is open, else the schema the migrations give a new file."""
        if self._schema is None:
            if self.path.exists():
                self._ensure_ready()
            else:
                with _empty_database() as conn:
                    self._schema = _read_schema(conn)
        return self._schema or {}

    def _table(self, table: str) -> dict[str, _Column]:
        schema = self._columns()
        if table not in schema:
            raise StoreError(f"table {table!r} does not exist in {self.path}")
        return schema[table]


@contextmanager
def _empty_database() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory database with the current schema and no rows (reads before the file exists)."""
    conn = duckdb.connect(":memory:")
    try:
        conn.execute("SET TimeZone = 'UTC'")
        migrate(conn)
        yield conn
    finally:
        conn.close()


def _close_crashed(conn: duckdb.DuckDBPyConnection, starting: str | None) -> list[str]:
    """Mark running sessions whose owning process has ended as 'crashed' (SPEC: a session killed with -9 does not
    stay 'running' forever); sessions on another host are left alone (their process cannot be checked)."""
    running = conn.execute("SELECT id, owner FROM sessions WHERE status = 'running'").fetchall()
    closed = []
    now = datetime.now(UTC)
    by = f" when session {starting} started" if starting else ""
    for session_id, owner in running:
        if owner_alive(owner) is not False:
            continue
        who = f"process {owner.split(':')[1]}" if owner and owner.count(":") >= 2 else "its process"
        conn.execute("UPDATE sessions SET status = ?, ended_at = ?, error = ? WHERE id = ? AND status = 'running'",
                     [CRASHED, now, f"crashed: {who} ended without closing the session; closed{by}", session_id])
        closed.append(str(session_id))
    return closed


# --------------------------------------------------------------------- schema and validation
def _read_schema(conn: duckdb.DuckDBPyConnection) -> _Schema:
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall()
    schema: _Schema = {}
    for table, name, data_type, nullable, default in rows:
        required = nullable == "NO" and default is None
        schema.setdefault(table, {})[name] = _Column(name, data_type, required)
    return schema


def _check_choice(field: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise StoreError(f"{field} must be one of {list(allowed)}, got {value!r}")


def _check_columns(
    table: str, given: Sequence[str], columns: Mapping[str, _Column], *, require: bool = True
) -> None:
    unknown = [name for name in given if name not in columns]
    if unknown:
        raise StoreError(f"unknown column(s) {unknown} for table {table}; its columns are {list(columns)}")
    if not require:
        return
    missing = [c.name for c in columns.values() if c.required and c.name not in given]
    if missing:
        raise StoreError(f"table {table} needs column(s) {missing}, which are missing")


def _check_row_keys(table: str, row: Mapping[str, Any], columns: Mapping[str, _Column]) -> None:
    _check_columns(table, list(row), columns)
    nulls = [c.name for c in columns.values() if c.required and row.get(c.name) is None]
    if nulls:
        raise StoreError(f"table {table} needs a value for {nulls}, got None")


def _running_session_mode(conn: duckdb.DuckDBPyConnection, session_id: str) -> str:
    found = conn.execute("SELECT mode, status FROM sessions WHERE id = ?", [session_id]).fetchall()
    if not found:
        raise StoreError(f"session {session_id!r} does not exist; call begin_session first")
    mode, status = found[0]
    if status != "running":
        raise StoreError(f"session {session_id!r} is already {status}; a session is finished only once")
    return str(mode)


def _tag_frame(table: str, frame: pl.DataFrame, session_id: str, mode: str) -> pl.DataFrame:
    """Fill in the session id (and a trade's mode) or check that the frame's own values agree."""
    _require_frame(table, frame)
    tags = {"session_id": session_id, **({"mode": mode} if table == "trades" else {})}
    for column, value in tags.items():
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(value, dtype=pl.String).alias(column))
            continue
        others = frame.filter(pl.col(column).ne_missing(value)).get_column(column).unique().to_list()
        if others:
            raise StoreError(
                f"{table} frame has {column} {others[:5]} but finish_session is for "
                f"{column} {value!r}; write each session's rows in its own finish_session"
            )
    return frame


# --------------------------------------------------------------------- frames
def _require_frame(table: str, frame: object) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise StoreError(f"{table} rows must be a polars DataFrame, got {type(frame).__name__}")


def _prepare_frame(table: str, frame: pl.DataFrame, columns: Mapping[str, _Column]) -> pl.DataFrame:
    """Check a frame against the table and turn JSON-column values into JSON text."""
    _require_frame(table, frame)
    # An empty frame writes nothing, so it need not carry the required columns.
    _check_columns(table, frame.columns, columns, require=frame.height > 0)
    replacements = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
            raise StoreError(
                f"{table}.{name} holds naive timestamps; make them timezone-aware UTC "
                f"(e.g. .dt.replace_time_zone('UTC'))"
            )
        if columns[name].is_json:
            fixed = _json_column(frame.get_column(name), f"{table}.{name}")
            if fixed is not None:
                replacements.append(fixed)
    return frame.with_columns(replacements) if replacements else frame


def _insert_frame(
    conn: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, *, ignore_conflicts: bool = False,
    replace: bool = False,
) -> None:
    if frame.height == 0:
        return
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
    # The table name comes from APPEND_TABLES/SESSION_TABLES, never from the caller's free text.
    conn.register(_FRAME_VIEW, frame)
    try:
        conn.execute(f"{verb} INTO {table} BY NAME SELECT * FROM {_FRAME_VIEW}")
    finally:
        # After a failed insert DuckDB refuses even this until ROLLBACK; the insert's error is what matters.
        with suppress(duckdb.Error):
            conn.unregister(_FRAME_VIEW)


# --------------------------------------------------------------------- single rows
def _insert_row(
    conn: duckdb.DuckDBPyConnection, table: str, row: Mapping[str, Any], columns: Mapping[str, _Column]
) -> None:
    _check_row_keys(table, row, columns)
    names = list(row)
    values = [_to_db_value(row[name], columns[name], f"{table}.{name}") for name in names]
    placeholders = ", ".join("?" for _ in names)
    conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})", values)


def _to_db_value(value: Any, column: _Column, where: str) -> Any:
    if column.is_json:
        return _to_json(value, where)
    if isinstance(value, datetime):
        return _as_utc(value, where)
    return value


def _as_utc(value: datetime, where: str) -> datetime:
    if not isinstance(value, datetime):
        raise StoreError(f"{where} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"{where} is a naive datetime; pass a timezone-aware UTC one (tzinfo=UTC)")
    return value.astimezone(UTC)


def _decode(value: Any, column: _Column) -> Any:
    if value is None:
        return None
    if column.is_json and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value


# --------------------------------------------------------------------- JSON
def _json_column(series: pl.Series, where: str) -> pl.Series | None:
    """The column as JSON text, or None when it can go in as it is.

    Text columns are already JSON; only rows that may hold NaN/Infinity (which DuckDB would accept
    but JSON readers would not) are parsed and rewritten, so large clean columns cost one scan.
    """
    if series.dtype == pl.String:
        suspect = series.str.contains(r"NaN|Infinity").fill_null(False)
        if not suspect.any():
            return None
        flags = suspect.to_list()
        values = [_to_json(v, where) if bad else v for v, bad in zip(series.to_list(), flags, strict=True)]
    else:
        values = [_to_json(v, where) for v in series.to_list()]
    return pl.Series(series.name, values, dtype=pl.String)


def _to_json(value: Any, where: str) -> str | None:
    """JSON text for a JSON column; None stays NULL; NaN/inf become null (JSON cannot hold them)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)  # accepts NaN/Infinity, which _jsonable then drops
        except ValueError as exc:
            raise StoreError(f"{where} must be JSON text or a dict/list, got {value[:80]!r}") from exc
    return json.dumps(_jsonable(value, where), allow_nan=False, separators=(",", ":"))


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _jsonable(value.value, where)
    if isinstance(value, Decimal):
        return _jsonable(float(value), where)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item(), where)
    raise StoreError(
        f"{where}: cannot store a {type(value).__name__} as JSON; pass dicts, lists, str, numbers, bool"
    )
