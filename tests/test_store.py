"""Tests for core.store: migrations, the Store repository, atomic session writes and file locking.

All tests use real DuckDB files in tmp_path; lock contention uses a real second process.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.errors import StoreError
from core.store import LATEST_VERSION, MIGRATIONS, Migration, Store, migrate

T0 = datetime(2024, 3, 1, tzinfo=UTC)

EXPECTED_COLUMNS: dict[str, list[str]] = {
    "schema_migrations": ["version", "name", "applied_at"],
    "sessions": [
        "id", "mode", "started_at", "ended_at", "strategy", "config_hash", "symbols", "timeframe",
        "status", "error", "starting_equity", "final_equity", "settings", "venue", "live_evidence", "owner",
    ],
    "orders": [
        "session_id", "client_order_id", "exchange_order_id", "symbol", "side", "type", "qty", "price",
        "stop_price", "status", "filled_qty", "avg_fill_price", "created_at", "updated_at", "tag", "reason",
    ],
    "fills": [
        "session_id", "fill_id", "client_order_id", "symbol", "side", "qty", "price", "fee", "fee_asset",
        "liquidity", "slippage", "ts",
    ],
    "trades": [
        "session_id", "trade_id", "mode", "symbol", "entry_time", "exit_time", "entry_price", "exit_price",
        "qty", "fees", "gross_pnl", "net_pnl", "return_pct", "entry_reason", "exit_reason", "exit_kind",
        "exit_code",
    ],
    "equity": ["session_id", "ts", "equity", "cash", "exposure"],
    "decisions": [
        "session_id", "decision_id", "ts", "symbol", "kind", "action", "code", "reason", "details",
    ],
    "events": ["event_id", "session_id", "ts", "kind", "severity", "code", "message", "details"],
    "gate_results": [
        "id", "session_id", "strategy", "passed", "win_rate", "sharpe", "sortino", "max_drawdown",
        "profit_factor", "trades", "thresholds", "reasons", "metrics", "config_hash", "created_at",
        "evidence", "real_data", "data_source", "symbols", "window_start", "window_end", "days", "data_hash",
        "venue", "errors", "data",
    ],
}

# A second process that holds the database file open, says so, waits, then leaves a marker and closes.
HOLDER_SCRIPT = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("CREATE TABLE holder_done AS SELECT 1 AS x")
conn.close()
"""


# --------------------------------------------------------------------- helpers
def _session(session_id: str = "s1", **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": session_id,
        "mode": "paper",
        "started_at": T0,
        "strategy": "sma_cross",
        "config_hash": "hash-a",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "timeframe": "1m",
        "starting_equity": 10_000.0,
        "settings": {"risk_per_trade": 0.001, "fast": 10},
    }
    row.update(extra)
    return row


def _frames(session_id: str = "s1") -> dict[str, pl.DataFrame]:
    """One small, valid frame per session table (the rows a short paper session would produce)."""
    ts = [T0 + timedelta(minutes=i) for i in range(3)]
    return {
        "orders": pl.DataFrame({
            "client_order_id": ["o1", "o2"], "symbol": ["BTCUSDT"] * 2, "side": ["buy", "sell"],
            "type": ["market", "market"], "qty": [0.01, 0.01], "status": ["filled", "filled"],
            "created_at": ts[:2], "tag": ["entry", "exit"], "reason": ["fast > slow", "fast < slow"],
        }),
        "fills": pl.DataFrame({
            "fill_id": ["f1", "f2"], "client_order_id": ["o1", "o2"], "symbol": ["BTCUSDT"] * 2,
            "side": ["buy", "sell"], "qty": [0.01, 0.01], "price": [60_000.0, 60_500.0],
            "fee": [0.6, 0.605], "fee_asset": ["USDT"] * 2, "slippage": [0.03, 0.02], "ts": ts[:2],
        }),
        "trades": pl.DataFrame({
            "trade_id": ["t1", "t2"], "symbol": ["BTCUSDT"] * 2, "entry_time": ts[:2],
            "exit_time": ts[1:], "net_pnl": [3.8, -1.2], "exit_kind": ["signal", "stop"],
        }),
        "equity": pl.DataFrame({"ts": ts, "equity": [10_000.0, 10_003.8, 10_002.6], "cash": [10_000.0] * 3}),
        "decisions": pl.DataFrame({
            "decision_id": ["d1"], "ts": ts[:1], "symbol": ["BTCUSDT"], "kind": ["signal"],
            "action": ["buy"], "code": ["SIGNAL"], "reason": ["fast > slow"],
            "details": [{"fast": 60_010.0, "slow": 59_990.0}],
        }),
        "events": pl.DataFrame({
            "event_id": [f"{session_id}-e1"], "ts": ts[:1], "kind": ["session"], "severity": ["info"],
            "code": ["SESSION_END"], "message": ["done"],
        }),
    }


def _count(store: Store, table: str, session_id: str = "s1") -> int:
    return int(store.query(f"SELECT count(*) AS n FROM {table} WHERE session_id = ?", [session_id])["n"][0])


def _status(store: Store, session_id: str = "s1") -> str:
    return str(store.query("SELECT status FROM sessions WHERE id = ?", [session_id])["status"][0])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data" / "rampart.duckdb")


@contextmanager
def _holder(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Run a second process that holds ``path`` open for ``seconds``; yields once it holds the lock."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(path), str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "held":
            proc.kill()
            pytest.fail(f"holder process did not take the lock: {proc.communicate()[1]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# --------------------------------------------------------------------- migrations
@pytest.mark.req("R1.2")
@pytest.mark.req("R1.4")
def test_migrations_create_every_table_with_the_listed_columns(store: Store) -> None:
    assert store.schema_version() == LATEST_VERSION >= 7  # v7: gate evidence
    cols = store.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    )
    for table, expected in EXPECTED_COLUMNS.items():
        present = cols.filter(pl.col("table_name") == table)["column_name"].to_list()
        assert present == expected, table
    types = {(r["table_name"], r["column_name"]): r["data_type"] for r in cols.iter_rows(named=True)}
    assert types[("sessions", "started_at")] == "TIMESTAMP WITH TIME ZONE"
    assert types[("sessions", "symbols")] == "VARCHAR[]"
    assert types[("gate_results", "thresholds")] == "JSON"
    assert types[("gate_results", "passed")] == "BOOLEAN"
    views = store.query("SELECT view_name FROM duckdb_views() WHERE NOT internal")["view_name"].to_list()
    assert "v_session_summary" in views


@pytest.mark.req("R1.2")
def test_migrations_are_versioned_and_idempotent(store: Store) -> None:
    store.schema_version()
    first = store.query("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
    assert first["version"].to_list() == [m.version for m in MIGRATIONS]

    # A second Store (a later process) finds nothing to apply; migrate() on the file applies nothing.
    assert Store(store.path).schema_version() == LATEST_VERSION
    conn = duckdb.connect(str(store.path))
    try:
        assert migrate(conn) == []
    finally:
        conn.close()
    assert Store(store.path).query("SELECT * FROM schema_migrations ORDER BY version").equals(first)


@pytest.mark.req("R1.2")
def test_missing_migrations_are_applied_in_order(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        assert migrate(conn, MIGRATIONS[:1]) == [1]  # a database written by version-1 code
        assert migrate(conn) == [m.version for m in MIGRATIONS[1:]]
        views = conn.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_session_summary'")
        assert views.fetchall() == [(1,)]
    finally:
        conn.close()


@pytest.mark.req("R1.5")
def test_a_failing_migration_is_rolled_back_alone(tmp_path: Path) -> None:
    nxt = LATEST_VERSION + 1
    broken = Migration(nxt, "broken", "CREATE TABLE half_done (x INT); SELECT * FROM no_such_table;")
    conn = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        with pytest.raises(StoreError, match=rf"migration {nxt} \(broken\) failed"):
            migrate(conn, [*MIGRATIONS, broken])
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert versions == [(m.version,) for m in MIGRATIONS]
        tables = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_done'")
        assert tables.fetchall() == [(0,)]
    finally:
        conn.close()


@pytest.mark.req("R1.2")
def test_a_database_newer_than_the_code_is_refused(store: Store) -> None:
    store.schema_version()
    conn = duckdb.connect(str(store.path))
    try:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', now())")
    finally:
        conn.close()
    with pytest.raises(StoreError, match=r"version\(s\) \[99\] unknown.*newer Rampart"):
        Store(store.path).schema_version()


# --------------------------------------------------------------------- sessions
@pytest.mark.req("R1.2")
def test_a_session_is_persisted_tagged_with_mode_and_session(store: Store) -> None:
    store.begin_session(_session())
    assert _status(store) == "running"
    ended = T0 + timedelta(hours=1)
    store.finish_session("s1", status="completed", ended_at=ended, final_equity=10_002.6, error=None,
                         frames=_frames())

    for table, frame in _frames().items():
        assert _count(store, table) == frame.height, table
    assert store.query("SELECT DISTINCT mode FROM trades")["mode"].to_list() == ["paper"]
    row = store.query("SELECT * FROM sessions WHERE id = 's1'").row(0, named=True)
    assert row["status"] == "completed"
    assert row["ended_at"] == ended
    assert row["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert row["settings"] == '{"risk_per_trade":0.001,"fast":10}'
    details = store.query("SELECT details->>'fast' AS fast FROM decisions")["fast"].to_list()
    assert details == ["60010.0"]
    summary = store.query("SELECT * FROM v_session_summary").row(0, named=True)
    assert (summary["mode"], summary["strategy"], summary["trades"]) == ("paper", "sma_cross", 2)
    assert summary["net_pnl"] == pytest.approx(2.6)
    assert summary["win_rate"] == pytest.approx(0.5)
    assert summary["final_equity"] == pytest.approx(10_002.6)


@pytest.mark.req("R1.5")
def test_finish_session_with_a_duplicate_key_keeps_nothing(store: Store) -> None:
    store.begin_session(_session())
    frames = _frames()
    frames["trades"] = pl.concat([frames["trades"], frames["trades"].head(1)])  # t1 twice
    rolled_back = r"(?i)finish session s1 failed and was rolled back.*duplicate key \"s1, t1\""
    with pytest.raises(StoreError, match=rolled_back):
        store.finish_session("s1", status="completed", ended_at=T0, final_equity=1.0, error=None,
                             frames=frames)
    for table in frames:
        assert _count(store, table) == 0, table
    assert _status(store) == "running"

    # The rolled-back session can still be finished properly.
    store.finish_session("s1", status="failed", ended_at=T0, final_equity=None, error="boom",
                         frames=_frames())
    assert _status(store) == "failed"
    assert _count(store, "trades") == 2


@pytest.mark.req("R1.5")
def test_finish_session_with_an_unknown_column_keeps_nothing(store: Store) -> None:
    store.begin_session(_session())
    frames = _frames()
    # events are written last, so orders..decisions are already inserted when this one fails.
    frames["events"] = frames["events"].with_columns(pl.lit(1).alias("bogus"))
    with pytest.raises(StoreError, match=r"unknown column\(s\) \['bogus'\] for table events"):
        store.finish_session("s1", status="completed", ended_at=T0, final_equity=1.0, error=None,
                             frames=frames)
    for table in frames:
        assert _count(store, table) == 0, table
    assert _status(store) == "running"


@pytest.mark.req("R1.5")
def test_finish_session_refuses_bad_calls_with_clear_errors(store: Store) -> None:
    with pytest.raises(StoreError, match="session 'ghost' does not exist"):
        store.finish_session("ghost", status="completed", ended_at=T0, final_equity=None, error=None,
                             frames={})
    store.begin_session(_session())
    other = {"equity": _frames()["equity"].with_columns(pl.lit("s2").alias("session_id"))}
    with pytest.raises(StoreError, match=r"equity frame has session_id \['s2'\]"):
        store.finish_session("s1", status="completed", ended_at=T0, final_equity=None, error=None,
                             frames=other)
    with pytest.raises(StoreError, match="status must be one of"):
        store.finish_session("s1", status="running", ended_at=T0, final_equity=None, error=None, frames={})
    with pytest.raises(StoreError, match="unknown table"):
        store.finish_session("s1", status="completed", ended_at=T0, final_equity=None, error=None,
                             frames={"sessions": pl.DataFrame()})
    store.finish_session("s1", status="completed", ended_at=T0, final_equity=None, error=None,
                         frames={"equity": pl.DataFrame(), "decisions": pl.DataFrame()})  # nothing to write
    assert _count(store, "equity") + _count(store, "decisions") == 0
    with pytest.raises(StoreError, match="already completed"):
        store.finish_session("s1", status="failed", ended_at=T0, final_equity=None, error="x", frames={})


@pytest.mark.req("R1.2")
def test_bad_rows_are_refused_with_what_to_fix(store: Store) -> None:
    with pytest.raises(StoreError, match="mode must be one of"):
        store.begin_session(_session(mode="demo"))
    with pytest.raises(StoreError, match="started_at is a naive datetime"):
        store.begin_session(_session(started_at=datetime(2024, 3, 1)))
    with pytest.raises(StoreError, match=r"needs column\(s\) \['config_hash'\]"):
        store.begin_session({k: v for k, v in _session().items() if k != "config_hash"})
    naive = pl.DataFrame({"session_id": ["s1"], "ts": [datetime(2024, 3, 1)], "equity": [1.0]})
    with pytest.raises(StoreError, match=r"equity\.ts holds naive timestamps"):
        store.append("equity", naive)
    with pytest.raises(StoreError, match=r"needs column\(s\) \['ts'\]"):
        store.append("equity", pl.DataFrame({"session_id": ["s1"], "equity": [1.0]}))
    with pytest.raises(StoreError, match="cannot append to table 'sessions'"):
        store.append("sessions", pl.DataFrame({"id": ["x"]}))
    store.begin_session(_session())
    with pytest.raises(StoreError, match="Duplicate key"):
        store.begin_session(_session())


# --------------------------------------------------------------------- events, append, query
@pytest.mark.req("R1.2")
def test_record_event_and_idempotent_append(store: Store) -> None:
    event_id = store.record_event(kind="state", severity="warning", code="SAFE_MODE", message="limit hit",
                                  details={"loss": -0.011, "bad": math.nan}, session_id="s1", ts=T0)
    row = store.query("SELECT * FROM events WHERE event_id = ?", [event_id]).row(0, named=True)
    assert (row["code"], row["severity"], row["ts"]) == ("SAFE_MODE", "warning", T0)
    assert row["details"] == '{"loss":-0.011,"bad":null}'
    with pytest.raises(StoreError, match="severity must be one of"):
        store.record_event(kind="x", severity="loud", code="X", message="m")

    events = _frames()["events"].with_columns(pl.lit("s1").alias("session_id"))
    store.append("events", events)
    store.append("events", events, on_conflict="ignore")  # a replayed journal tail
    assert _count(store, "events") == 2
    with pytest.raises(StoreError, match="Duplicate key"):
        store.append("events", events)


@pytest.mark.req("R1.2")
def test_json_columns_take_dicts_or_json_text_and_drop_non_finite_numbers(store: Store) -> None:
    decisions = pl.DataFrame({
        "session_id": ["s1"] * 3,
        "decision_id": ["d1", "d2", "d3"],
        "details": ['{"vol_ratio": 1.2}', '{"vol_ratio": NaN, "z": -Infinity}', None],
    })
    store.append("decisions", decisions)
    got = store.query("SELECT details FROM decisions ORDER BY decision_id")["details"].to_list()
    assert got == ['{"vol_ratio": 1.2}', '{"vol_ratio":null,"z":null}', None]
    store.append("decisions", pl.DataFrame({"session_id": ["s1"], "details": [{"n": [1, 2]}]}))
    assert _count(store, "decisions") == 4
    with pytest.raises(StoreError, match="must be JSON text or a dict/list"):
        store.record_event(kind="k", severity="info", code="C", message="m", details="not json, NaN")  # type: ignore[arg-type]


@pytest.mark.req("R1.2")
def test_query_is_read_only(store: Store) -> None:
    with pytest.raises(StoreError, match="query failed"):
        store.query("INSERT INTO equity (session_id, ts) VALUES ('s1', now())")
    assert _count(store, "equity") == 0


@pytest.mark.req("R1.2")
def test_a_500k_row_equity_curve_goes_in_whole(store: Store) -> None:
    n = 500_000
    ts = pl.datetime_range(T0, T0 + timedelta(minutes=n - 1), "1m", eager=True)
    frame = pl.DataFrame({"session_id": "big", "ts": ts, "equity": pl.arange(0, n, eager=True) * 0.5})
    store.append("equity", frame)
    got = store.query("SELECT count(*) AS n, max(ts) AS last, sum(equity) AS s FROM equity").row(
        0, named=True
    )
    assert got["n"] == n
    assert got["last"] == T0 + timedelta(minutes=n - 1)
    assert got["s"] == pytest.approx(0.5 * n * (n - 1) / 2)


# --------------------------------------------------------------------- gate
@pytest.mark.req("R1.4")
def test_latest_gate_returns_the_newest_record_for_the_hash(store: Store) -> None:
    thresholds = {"win_rate": 0.45, "sharpe": 0.5, "max_drawdown": 0.15, "min_trades": 30}
    newer = {
        "session_id": "s2", "strategy": "sma_cross", "passed": True, "win_rate": 0.52, "sharpe": 1.1,
        "sortino": 1.6, "max_drawdown": 0.08, "profit_factor": math.inf, "trades": 41,
        "thresholds": thresholds, "reasons": [], "metrics": {"expectancy": 2.5, "pf": math.inf},
        "config_hash": "hash-a", "created_at": T0 + timedelta(days=1),
    }
    older = {**newer, "session_id": "s1", "passed": False, "reasons": ["win rate 0.40 <= 0.45"],
             "created_at": T0}
    store.record_gate(newer)  # stored first, so "newest" must come from created_at, not insert order
    store.record_gate(older)
    store.record_gate({**newer, "config_hash": "hash-b", "created_at": T0 + timedelta(days=2)})

    got = store.latest_gate("hash-a")
    assert got is not None
    assert (got["session_id"], got["passed"], got["trades"]) == ("s2", True, 41)
    assert got["thresholds"] == thresholds
    assert got["reasons"] == []
    assert got["metrics"] == {"expectancy": 2.5, "pf": None}  # JSON has no inf
    assert got["profit_factor"] == math.inf
    assert got["created_at"] == T0 + timedelta(days=1)
    assert got["created_at"].tzinfo == UTC
    assert len(got["id"]) == 32
    assert store.latest_gate("hash-unknown") is None


@pytest.mark.req("R1.4")
def test_record_gate_needs_a_verdict_and_a_config_hash(store: Store) -> None:
    with pytest.raises(StoreError, match="'passed' as True/False"):
        store.record_gate({"config_hash": "h", "passed": "yes"})
    with pytest.raises(StoreError, match="non-empty 'config_hash'"):
        store.record_gate({"passed": True})
    with pytest.raises(StoreError, match=r"unknown column\(s\) \['colour'\]"):
        store.record_gate({"passed": True, "config_hash": "h", "colour": "red"})


# --------------------------------------------------------------------- locking
@pytest.mark.req("R1.2")
def test_store_waits_for_another_process_to_release_the_file(store: Store) -> None:
    store.schema_version()
    with _holder(store.path, 1.0) as holder:
        store.record_event(kind="k", severity="info", code="AFTER_WAIT", message="m", ts=T0)
        holder.wait()
    assert holder.returncode == 0
    # The holder created holder_done just before closing, so our write happened after it let go.
    assert store.query("SELECT x FROM holder_done")["x"].to_list() == [1]
    assert store.query("SELECT code FROM events")["code"].to_list() == ["AFTER_WAIT"]


@pytest.mark.req("R1.2")
def test_store_gives_up_with_a_clear_error_when_the_lock_is_held_too_long(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    Store(path).schema_version()
    with _holder(path, 60.0) as holder:
        with pytest.raises(StoreError) as caught:
            Store(path, lock_timeout_s=0.3).record_event(kind="k", severity="info", code="C", message="m")
        message = str(caught.value)
        assert f"database {path} is locked by another process (pid {holder.pid})" in message
        assert "stop it or use another RAMPART_DATA_DIR" in message
    with pytest.raises(StoreError, match="lock_timeout_s must be >= 0"):
        Store(path, lock_timeout_s=-1)
