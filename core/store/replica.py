"""The store's read-only replica: a copy of the DuckDB file that operators query while a session trades.

DuckDB lets one process at a time hold the store, so an operator's SQL (``rampart sql``, the duckdb CLI) goes to a
copy beside it, ``<data_dir>/replica/rampart.duckdb``, refreshed by the running session (``ReplicaPublisher``) or,
when none runs, by ``rampart sql`` itself. The copy is published by a rename: a reader sees the old copy or the new
one, never half of one, and a reader holding the old one open keeps it (nothing is ever changed in place).

A refresh costs what changed, not the size of the store. Two working copies (``.a.duckdb``, ``.b.duckdb``) take
turns: the one not published is brought up to date and then hard-linked to the published name. Bringing it up to
date reads the store in short units (``CHUNK_ROWS`` rows each, so other processes get their turn) and then once
more in one transaction, so the copy is the store at one moment:
- append-only tables (fills, trades, equity, decisions, events, alerts, ...) copy the rows past a rowid mark;
- ``orders`` (a live session updates its rows) copies the new rows, and all rows of sessions running or just ended;
- every other table (sessions, notifications, ...) is copied whole.
Row counts are compared afterwards and a table that differs is copied again from scratch; a store whose tables or
views changed (a migration) gets a fresh copy. ``replica_info`` in the copy says when it was taken and by whom.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.errors import StoreError
from core.fileio import fsync_dir
from core.store.db import DEFAULT_LOCK_TIMEOUT_S, close, connect, open_plain, transaction

log = logging.getLogger("rampart.store.replica")

REPLICA_DIR = "replica"
CHUNK_ROWS = 200_000  # rows read per short unit while catching up (~0.1 s of the store's time)
APPEND_ONLY = frozenset({"fills", "trades", "equity", "decisions", "events", "alerts", "gate_results",
                         "metrics_snapshots", "scaling_decisions", "audit_anchors"})
UPSERTED = "orders"  # INSERT OR REPLACE by a running live session (core.live.recorder)
ENDED_MARGIN = timedelta(minutes=5)  # a session that ended this close to the last copy may have changed its orders
_INFO, _MARKS = "replica_info", "replica_marks"
_REPLICA_DDL = f"""
CREATE TABLE {_INFO} (taken_at TIMESTAMPTZ, source VARCHAR, session_id VARCHAR, refreshed_by VARCHAR,
                      seconds DOUBLE, rows_copied BIGINT, recopied VARCHAR[], schema_hash VARCHAR,
                      source_stamp VARCHAR);
CREATE TABLE {_MARKS} (table_name VARCHAR PRIMARY KEY, mark BIGINT);
"""


@dataclass(frozen=True)
class ReplicaInfo:
    """When the copy was taken (UTC, wall clock: everything committed before it is in), of which store, during
    which session (None: no session ran), how long the refresh took and how many rows it copied."""

    taken_at: datetime
    source: str
    session_id: str | None
    refreshed_by: str
    seconds: float
    rows_copied: int
    recopied: tuple[str, ...]
    source_stamp: str

    def age_s(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.taken_at).total_seconds()


def replica_path(store_path: Path) -> Path:
    """Where the replica of the store at ``store_path`` is published."""
    return Path(store_path).parent / REPLICA_DIR / Path(store_path).name


def source_stamp(store_path: Path) -> str:
    """Size and modification time of the store and its WAL: any commit changes it."""
    parts = []
    for path in (Path(store_path), Path(f"{store_path}.wal")):
        try:
            st = path.stat()
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except FileNotFoundError:
            parts.append("-")
    return "/".join(parts)


def read_info(conn: duckdb.DuckDBPyConnection) -> ReplicaInfo | None:
    """The ``replica_info`` row of an open replica, or None when it has none."""
    try:
        rows = conn.execute(f"SELECT taken_at, source, session_id, refreshed_by, seconds, rows_copied, recopied, "
                            f"source_stamp FROM {_INFO}").fetchall()
    except duckdb.Error:
        return None
    if not rows:
        return None
    taken, source, session_id, by, seconds, copied, recopied, stamp = rows[0]
    return ReplicaInfo(taken.astimezone(UTC), source, session_id, by, float(seconds), int(copied),
                       tuple(recopied or ()), stamp or "")


def open_replica(path: Path, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """The published replica, read-only, for an operator's SQL: no file can be read, written or attached from it
    (``enable_external_access`` off, the configuration locked), timestamps in UTC."""
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the replica {path}: {exc}") from exc
    try:
        conn.execute("SET TimeZone = 'UTC'")
        if threads is not None:
            conn.execute(f"SET threads = {max(1, int(threads))}")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    except duckdb.Error:
        conn.close()
        raise
    return conn


def refresh(store_path: Path, *, session_id: str | None = None, read_only: bool = True,
            lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, wait_s: float = 0.0,
            chunk_rows: int = CHUNK_ROWS) -> ReplicaInfo | None:
    """Bring the replica up to date with the store and publish it; None when another process is refreshing it
    and has not finished within ``wait_s`` seconds. ``read_only`` False in a process that writes the store (a
    session: DuckDB refuses a read-only open beside its read-write one). Raises StoreError when the store cannot
    be read (locked longer than ``lock_timeout_s``, missing) or the replica cannot be written."""
    store_path = Path(store_path)
    if not store_path.exists():
        raise StoreError(f"no database at {store_path}: nothing has been recorded there yet")
    published = replica_path(store_path)
    folder = published.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the replica folder {folder}: {exc}") from exc
    with _refresh_lock(folder / ".lock", wait_s) as locked:
        if not locked:
            return None
        _remove_leftovers(folder)
        started = time.monotonic()
        work = _working_copy(folder, published)
        source = _Source(store_path, read_only, lock_timeout_s)
        try:
            info = _Refresh(source, work, session_id, chunk_rows, started).run()
        except duckdb.Error as exc:  # the working copy itself (the store's errors arrive as StoreError)
            log.warning("replica working copy %s unusable (%s): copying the store afresh", work, exc)
            try:
                info = _Refresh(source, work, session_id, chunk_rows, started, fresh=True).run()
            except duckdb.Error as again:
                raise StoreError(f"cannot write the replica {work}: {again}") from again
        _publish(work, published)
        return info


# --------------------------------------------------------------------- files
@contextlib.contextmanager
def _refresh_lock(path: Path, wait_s: float) -> Iterator[bool]:
    """One refresher at a time per replica (the session's publisher, ``rampart sql`` when no session runs)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _remove_leftovers(folder: Path) -> None:
    """Temp files of a refresher that died (we hold the lock, so none is in use)."""
    for path in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            path.unlink()


def _working_copy(folder: Path, published: Path) -> Path:
    """The working copy that is not published now (readers may hold the published one open)."""
    first, second = folder / ".a.duckdb", folder / ".b.duckdb"
    with contextlib.suppress(OSError):
        if published.exists() and first.exists() and published.samefile(first):
            return second
    return first


def _open_work(work: Path, published: Path) -> duckdb.DuckDBPyConnection:
    """Open the working copy for writing. A missing one starts as a copy of the published one (no full rebuild);
    one that a reader still holds (it opened it when it was published, a while ago) keeps its file for that reader
    and the work goes on in a fresh copy of the published one."""
    if not work.exists() and published.exists():
        _copy_published(published, work)
    with contextlib.suppress(FileNotFoundError):
        work.chmod(0o644)
    try:
        return _connect_work(work)
    except duckdb.Error as exc:
        if "lock" not in str(exc).lower():
            log.warning("replica working copy %s unreadable (%s): starting afresh", work, exc)
            _drop(work)
            return _connect_work(work)
    if published.exists():
        _copy_published(published, work)
    else:
        _drop(work)
    return _connect_work(work)


def _copy_published(published: Path, work: Path) -> None:
    """``work`` becomes a new file with the published copy's bytes (a published copy is never written to)."""
    tmp = work.with_name(f".{work.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(published, tmp)
    tmp.chmod(0o644)
    os.replace(tmp, work)  # a reader of the old file keeps it


def _connect_work(work: Path) -> duckdb.DuckDBPyConnection:
    conn = open_plain(work)
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute("SET threads = 1")  # a background copy: leave the cores to trading
    return conn


def _drop(work: Path) -> None:
    for path in (work, Path(f"{work}.wal")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _publish(work: Path, published: Path) -> None:
    """Link the finished working copy to the published name (temp link + rename: atomic for readers)."""
    if Path(f"{work}.wal").exists():
        raise StoreError(f"replica {work} kept a write-ahead log after its checkpoint; not published")
    work.chmod(0o444)  # a copy: an operator's tool that would write to it is refused
    tmp = published.with_name(f".{published.name}.{uuid.uuid4().hex}.tmp")
    try:
        os.link(work, tmp)
    except OSError:  # a file system without hard links: a full copy instead
        shutil.copyfile(work, tmp)
    os.replace(tmp, published)
    fsync_dir(published.parent)


# --------------------------------------------------------------------- the store's side
class _Source:
    """Short read units on the store (one consistent transaction each)."""

    def __init__(self, path: Path, read_only: bool, lock_timeout_s: float) -> None:
        self.path, self.read_only, self.lock_timeout_s = path, read_only, lock_timeout_s

    @contextlib.contextmanager
    def unit(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = connect(self.path, read_only=self.read_only, lock_timeout_s=self.lock_timeout_s)
        try:
            with transaction(conn, what=f"replica: {what}", read_only=True):
                yield conn
        finally:
            close(conn)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _catalog(conn: duckdb.DuckDBPyConnection) -> tuple[list[tuple[str, str]], list[str]]:
    """The store's tables (name, CREATE statement), then its views and the comments on tables, views and columns
    (statements to run after the tables), in creation order."""
    here = "database_name = current_database() AND schema_name = 'main' AND NOT temporary"
    tables = conn.execute(f"SELECT table_name, sql, comment FROM duckdb_tables() WHERE {here} "
                          "ORDER BY table_oid").fetchall()
    views = conn.execute(f"SELECT view_name, sql, comment FROM duckdb_views() WHERE {here} AND NOT internal "
                         "ORDER BY view_oid").fetchall()
    columns = conn.execute("SELECT table_name, column_name, comment FROM duckdb_columns() WHERE database_name = "
                           "current_database() AND schema_name = 'main' AND NOT internal AND comment IS NOT NULL "
                           "AND comment <> '' ORDER BY table_oid, column_index").fetchall()
    after = [str(sql) for _, sql, _ in views]
    after += [f"COMMENT ON {kind} {_quote(name)} IS {_literal(comment)}"
              for kind, rows in (("TABLE", tables), ("VIEW", views)) for name, _, comment in rows if comment]
    after += [f"COMMENT ON COLUMN {_quote(t)}.{_quote(c)} IS {_literal(comment)}" for t, c, comment in columns]
    return [(str(n), str(sql)) for n, sql, _ in tables], after


def _schema_hash(tables: list[tuple[str, str]], views: list[str]) -> str:
    text = "\n".join([s for _, s in tables] + views)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _top(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    rows = conn.execute(f"SELECT coalesce(max(rowid), -1) FROM {_quote(table)}").fetchall()
    return int(rows[0][0])


def _count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {_quote(table)}").fetchall()[0][0])


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """The rows as a polars frame, through the Arrow C stream (no pyarrow: a live node does without it)."""
    relation = conn.sql(sql, params=params) if params else conn.sql(sql)
    return pl.DataFrame(relation)


class _Stream:
    """A frame DuckDB reads as an Arrow C stream (registering the frame itself would import pyarrow)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.frame.__arrow_c_stream__(requested_schema)


# --------------------------------------------------------------------- one refresh
class _Refresh:
    """Brings one working copy up to date with the store: catch up in short units, then one consistent pass."""

    ROUNDS = 3  # a table whose count still differs after this many passes is an error

    def __init__(self, source: _Source, work: Path, session_id: str | None, chunk_rows: int, started: float,
                 *, fresh: bool = False) -> None:
        if chunk_rows < 1:
            raise StoreError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.source, self.work, self.session_id = source, work, session_id
        self.chunk_rows, self.started, self.fresh = chunk_rows, started, fresh
        self.copied = 0
        self.recopied: list[str] = []

    def run(self) -> ReplicaInfo:
        with self.source.unit("read the catalog") as conn:
            tables, views = _catalog(conn)
        names = [name for name, _ in tables]
        schema = _schema_hash(tables, views)
        if self.fresh:
            _drop(self.work)
            dst = _connect_work(self.work)
        else:
            dst = _open_work(self.work, replica_path(self.source.path))
        try:
            dst = self._prepare(dst, tables, views, schema)
            marks = dict(dst.execute(f"SELECT table_name, mark FROM {_MARKS}").fetchall())
            since = self._last_taken(dst)
            for _ in range(self.ROUNDS):
                self._catch_up(dst, names, marks)
                info, differ = self._final_pass(dst, names, marks, since, schema)
                if not differ:
                    dst.execute("CHECKPOINT")
                    return info
                dst.execute("BEGIN TRANSACTION")
                for table in differ:  # copy it again from scratch
                    dst.execute(f"DELETE FROM {_quote(table)}")
                    dst.execute(f"INSERT OR REPLACE INTO {_MARKS} VALUES (?, -1)", [table])
                    marks[table] = -1
                    self.recopied.append(table)
                dst.execute("COMMIT")
                log.warning("replica of %s: %s differed from the store; copied again", self.source.path, differ)
            raise StoreError(f"replica of {self.source.path}: {self.recopied} still differ from the store after "
                             f"{self.ROUNDS} passes; delete {self.work.parent} to rebuild it")
        finally:
            close(dst)

    def _prepare(self, dst: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]], views: list[str],
                 schema: str) -> duckdb.DuckDBPyConnection:
        """The copy's schema is the store's: a copy of another schema (or none) is started afresh."""
        current = None
        with contextlib.suppress(duckdb.Error):
            found = dst.execute(f"SELECT schema_hash FROM {_INFO}").fetchall()
            current = found[0][0] if found else None
        if current == schema:
            return dst
        close(dst)
        _drop(self.work)
        dst = _connect_work(self.work)
        dst.execute("BEGIN TRANSACTION")
        for _, sql in tables:
            dst.execute(sql)
        for sql in views:
            dst.execute(sql)
        dst.execute(_REPLICA_DDL)
        dst.execute(f"INSERT INTO {_INFO} (schema_hash, taken_at) VALUES (?, NULL)", [schema])
        dst.execute("COMMIT")
        return dst

    def _last_taken(self, dst: duckdb.DuckDBPyConnection) -> datetime:
        """Sessions that ended after this (less a margin) may have changed their orders since the last copy."""
        rows = dst.execute(f"SELECT taken_at FROM {_INFO}").fetchall()
        taken = rows[0][0] if rows and rows[0][0] is not None else datetime.now(UTC)
        return taken.astimezone(UTC) - ENDED_MARGIN

    def _marked(self, names: list[str]) -> list[str]:
        return [t for t in names if t in APPEND_ONLY or t == UPSERTED]

    def _catch_up(self, dst: duckdb.DuckDBPyConnection, names: list[str], marks: dict[str, int]) -> None:
        """Copy rows past the marks in chunks, each read in its own short unit, until every table is within one
        chunk of the store (the final pass then holds the store only briefly)."""
        marked = self._marked(names)
        while True:
            with self.source.unit("catch up") as conn:
                behind = {t: top for t in marked if (top := _top(conn, t)) - marks.get(t, -1) > self.chunk_rows}
                chunks = {t: (marks.get(t, -1) + self.chunk_rows,
                              _rows(conn, f"SELECT * FROM {_quote(t)} WHERE rowid > ? AND rowid <= ?",
                                     [marks.get(t, -1), marks.get(t, -1) + self.chunk_rows]))
                          for t in behind}
            if not chunks:
                return
            dst.execute("BEGIN TRANSACTION")
            for table, (mark, rows) in chunks.items():
                self._insert(dst, table, rows)
                marks[table] = mark
                dst.execute(f"INSERT OR REPLACE INTO {_MARKS} VALUES (?, ?)", [table, mark])
            dst.execute("COMMIT")

    def _final_pass(self, dst: duckdb.DuckDBPyConnection, names: list[str], marks: dict[str, int],
                    since: datetime, schema: str) -> tuple[ReplicaInfo, list[str]]:
        stamp = source_stamp(self.source.path)
        taken_at = datetime.now(UTC)
        marked = set(self._marked(names))
        with self.source.unit("copy") as conn:
            counts = {t: _count(conn, t) for t in names}
            tops = {t: _top(conn, t) for t in marked}
            changed = self._changed_sessions(conn, since) if UPSERTED in marked else []
            rows: dict[str, pl.DataFrame] = {}
            for t in names:
                if t not in marked:
                    rows[t] = _rows(conn, f"SELECT * FROM {_quote(t)}")
                    continue
                new = f"SELECT * FROM {_quote(t)} WHERE rowid > ? AND rowid <= ?"
                if t == UPSERTED and changed:
                    new = (f"SELECT * FROM {_quote(t)} WHERE (rowid > ? AND rowid <= ? "
                           f"AND session_id NOT IN (SELECT unnest(?::VARCHAR[]))) "
                           f"OR session_id IN (SELECT unnest(?::VARCHAR[]))")
                    rows[t] = _rows(conn, new, [marks.get(t, -1), tops[t], changed, changed])
                else:
                    rows[t] = _rows(conn, new, [marks.get(t, -1), tops[t]])
        dst.execute("BEGIN TRANSACTION")
        try:
            for t in names:
                if t not in marked:
                    dst.execute(f"DELETE FROM {_quote(t)}")
                elif t == UPSERTED and changed:
                    dst.execute(f"DELETE FROM {_quote(t)} WHERE session_id IN (SELECT unnest(?::VARCHAR[]))",
                                [changed])
                self._insert(dst, t, rows[t])
            for t in marked:
                marks[t] = max(tops[t], marks.get(t, -1))
                dst.execute(f"INSERT OR REPLACE INTO {_MARKS} VALUES (?, ?)", [t, marks[t]])
            info = ReplicaInfo(taken_at, str(self.source.path.absolute()), self.session_id, _who(),
                               time.monotonic() - self.started, self.copied, tuple(self.recopied), stamp)
            dst.execute(f"DELETE FROM {_INFO}")
            dst.execute(f"INSERT INTO {_INFO} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [info.taken_at, info.source, info.session_id, info.refreshed_by, info.seconds,
                         info.rows_copied, list(info.recopied), schema, info.source_stamp])
            dst.execute("COMMIT")
        except duckdb.Error:  # e.g. a key already present: the copy went wrong somewhere; copy it all again
            dst.execute("ROLLBACK")
            return self._stale_info(stamp), [t for t in names if t in marked]
        differ = [t for t in names if _count(dst, t) != counts[t]]
        return info, differ

    def _stale_info(self, stamp: str) -> ReplicaInfo:
        return ReplicaInfo(datetime.now(UTC), str(self.source.path), self.session_id, _who(), 0.0, 0, (), stamp)

    @staticmethod
    def _changed_sessions(conn: duckdb.DuckDBPyConnection, since: datetime) -> list[str]:
        """Sessions whose orders may have changed since the last copy: running, or ended since (less a margin)."""
        rows = conn.execute("SELECT id FROM sessions WHERE status = 'running' OR ended_at IS NULL OR ended_at >= ?",
                            [since]).fetchall()
        return [str(r[0]) for r in rows]

    def _insert(self, dst: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame) -> None:
        if rows.height == 0:
            return
        dst.register("_replica_incoming", _Stream(rows))
        try:
            dst.execute(f"INSERT INTO {_quote(table)} BY NAME SELECT * FROM _replica_incoming")
        finally:
            with contextlib.suppress(duckdb.Error):
                dst.unregister("_replica_incoming")
        self.copied += rows.height


def _who() -> str:
    return f"pid {os.getpid()}"


__all__ = ["APPEND_ONLY", "CHUNK_ROWS", "REPLICA_DIR", "ReplicaInfo", "open_replica", "read_info", "refresh",
           "replica_path", "source_stamp"]
