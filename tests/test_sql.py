"""SQL while trading (issue 18): `rampart sql` answers from the store's read-only replica, which a running session
keeps fresh off its trading thread; a second process queries it while the session trades, never writes through it,
and a reader holding it open never holds up trading or the next refresh."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.errors import StoreError
from core.store import Store
from core.store.db import connect, unit_of_work
from core.store.replica import refresh, replica_path
from core.store.replica_publisher import ReplicaPublisher
from tests.sandbox_rig import BTC, ETH, Rig, enter, leave, open_stops, sandbox, settings_for

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60.0


def rampart_sql(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`rampart sql` in a process of its own, as an operator runs it beside the session."""
    return subprocess.run([sys.executable, "-m", "core.cli", "sql", "--data-dir", str(data_dir), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, input=stdin)


def rows(data_dir: Path, query: str) -> list[dict[str, Any]]:
    done = rampart_sql(data_dir, "--format", "json", query)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def fingerprint(path: Path) -> dict[str, tuple[int, int]]:
    """Row count and an order-free hash of every table (read in a process of its own: this one may be refreshing)."""
    script = ("import duckdb, json, sys\n"
              "c = duckdb.connect(sys.argv[1], read_only=True)\n"
              "names = [r[0] for r in c.execute(\"select table_name from duckdb_tables() where schema_name = 'main' "
              "and table_name not like 'replica%'\").fetchall()]\n"
              "print(json.dumps({n: c.execute(f'select count(*), coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR "
              "from \"{n}\" t').fetchall()[0] for n in names}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {k: tuple(v) for k, v in json.loads(done.stdout).items()}


def views(path: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", "import duckdb, json, sys; print(json.dumps(sorted(r[0] for r in "
                           "duckdb.connect(sys.argv[1], read_only=True).execute('select view_name from duckdb_views() "
                           "where not internal').fetchall())))", str(path)], capture_output=True, text=True, timeout=60)
    return list(json.loads(done.stdout))


class Clock:
    """The publisher's clock, moved by the test: a refresh is due every 30 s on it."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Holder:
    """A second process that opens the published replica read-only and keeps it open until told to let go."""

    def __init__(self, path: Path) -> None:
        script = ("import duckdb, sys\n"
                  "c = duckdb.connect(sys.argv[1], read_only=True)\n"
                  "q = 'select count(*) from equity'\n"
                  "print(c.execute(q).fetchall()[0][0], flush=True)\n"
                  "sys.stdin.readline()\n"
                  "print(c.execute(q).fetchall()[0][0], flush=True)\n")
        self.proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first = int(self.proc.stdout.readline())

    def release(self) -> int:
        out, err = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0, err
        return int(out.split()[-1])


# --- the acceptance: fresh rows from a second process while a live session trades --------------------------------
@pytest.mark.req("R1.2")
@pytest.mark.req("R3.5")
def test_sql_from_another_process_returns_rows_at_most_a_minute_old_while_a_live_session_trades(
    tmp_path: Path, creds: None
) -> None:
    btc, eth = [BTC] * 12, [ETH, ETH, ETH * 1.03, *[ETH * 1.03] * 9]
    settings = settings_for(tmp_path)
    clock = Clock()
    flushed: list[tuple[float, int]] = []  # (publisher clock, equity rows of the session in the store) per bar
    with sandbox(btc, eth) as server:
        rig = Rig(server, settings)
        (publisher,) = [o for o in rig.session.observers if isinstance(o, ReplicaPublisher)]
        publisher.use_clock(clock)
        sid = rig.session.session_id
        equity = f"select count(*) as n from equity where session_id = '{sid}'"

        def bar(**cues: Any) -> None:
            clock.t += 20.0  # a refresh falls due every 30 s of this clock: at every second bar or so
            rig.bar(**cues)
            flushed.append((clock.t, int(Store(settings.db_path).query(equity)["n"][0])))
            assert publisher.wait_idle(60), "the replica refresh did not finish"

        def assert_fresh() -> None:
            """Every row the session had stored a minute ago (on the clock) is in what a second process reads."""
            (seen,) = rows(tmp_path, equity)
            due = max((n for t, n in flushed if t <= clock.t - MINUTE), default=0)
            assert due > 0 and seen["n"] >= due, (seen, due, flushed, publisher.last, publisher.last_error)

        bar(ETHUSDT=enter(0.04, "eth entry"))
        bar()  # the fill is booked and the protective stop goes on the exchange
        bar(ETHUSDT=leave("take the eth profit"))
        bar(BTCUSDT=enter(0.04, "breakout entry"))
        bar()
        for _ in range(3):
            bar()
            assert_fresh()
        assert rig.session.engine is not None and publisher.last_error is None and publisher.refreshes >= 3

        # the questions an operator asks, answered from a second process while the session still trades
        done = rampart_sql(tmp_path, "select symbol, net_pnl, entry_reason, exit_reason from v_trades")
        assert done.returncode == 0, done.stderr
        assert "take the eth profit" in done.stdout and "eth entry" in done.stdout
        assert f"kept by the running session {sid[:8]}" in done.stderr and "s ago" in done.stderr
        (trade,) = rows(tmp_path, f"select * from v_trades where session_id = '{sid}'")
        assert trade["symbol"] == "ETHUSDT" and trade["exit_reason"] == "take the eth profit" and trade["won"]
        (position,) = rows(tmp_path, "select * from v_open_positions")
        assert position["symbol"] == "BTCUSDT" and position["mode"] == "live" and position["venue"] == "sandbox"
        assert position["qty"] > 0 and position["session_id"] == sid and position["session_status"] == "running"
        assert [position["stop_price"]] == open_stops(server, "BTCUSDT")
        checks = rows(tmp_path, f"select check_no, check_name, result from v_decision_checks where session_id = "
                                f"'{sid}' and symbol = 'BTCUSDT' and kind = 'order' order by check_no")
        assert checks and [c["check_no"] for c in checks] == list(range(1, len(checks) + 1))
        assert {c["result"] for c in checks} == {"pass"} and "exposure_cap" in [c["check_name"] for c in checks]
        (day,) = rows(tmp_path, "select * from v_daily_pnl")
        assert day["mode"] == "live" and day["trades"] == 1 and day["wins"] == 1
        assert day["net_pnl"] == pytest.approx(trade["net_pnl"])
        (info,) = rows(tmp_path, "select session_id, refreshed_by from replica_info")
        assert info == {"session_id": sid, "refreshed_by": f"pid {os.getpid()}"}  # the session refreshed it

        # a reader holding the replica open holds up neither trading nor the next refreshes
        holder = Holder(replica_path(settings.db_path))
        before = publisher.refreshes
        for _ in range(4):
            bar()
        assert publisher.refreshes >= before + 2 and publisher.last_error is None
        assert holder.release() == holder.first  # it kept reading the copy it opened, whole
        assert_fresh()
        rig.stop()

    # no session running: `rampart sql` brings the replica up to date itself and it equals the store
    (session,) = rows(tmp_path, f"select status, ended_at from sessions where id = '{sid}'")
    assert session["status"] == "completed" and session["ended_at"] is not None
    store, replica = fingerprint(settings.db_path), fingerprint(replica_path(settings.db_path))
    assert replica == store


# --- nothing reaches the store through `rampart sql` ------------------------------------------------------------
@pytest.mark.req("R1.2")
def test_sql_cannot_change_the_store_or_touch_files_and_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "rampart.duckdb")
    started = datetime(2024, 3, 1, tzinfo=UTC)
    store.begin_session({"id": "s1", "mode": "backtest", "started_at": started, "strategy": "trend",
                         "config_hash": "h"})
    store.append("trades", trade_frame("s1", "t1", started, 5.0))
    before = fingerprint(store.path)
    outside = tmp_path / "out.csv"
    for statement in ("delete from trades", "insert into trades (session_id, trade_id) values ('s1', 'x')",
                      "drop view v_trades", "create table mine (a int)", "update sessions set status = 'failed'",
                      f"attach '{store.path}' as live", f"copy trades to '{outside}'",
                      "select * from read_csv('/etc/hostname')", "set enable_external_access = true"):
        done = rampart_sql(tmp_path, statement)
        assert done.returncode == 1, (statement, done.stdout, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert fingerprint(store.path) == before and not outside.exists()
    refused = rampart_sql(tmp_path, "delete from trades")
    assert "the replica is read-only: ad-hoc SQL cannot change the store" in refused.stderr
    assert rampart_sql(tmp_path, "select 1", "--format", "xml").returncode == 2
    missing = rampart_sql(tmp_path / "nothing", "select 1")
    assert missing.returncode == 1 and "no database at" in missing.stderr
    # a temp table of one's own is fine (it lives in the sql process only), and a script runs statement by statement
    script = rampart_sql(tmp_path, "--format", "csv", "-q", stdin="create temp table x as select 41 as a;\n"
                                                                   "select a + 1 as answer from x;")
    assert script.returncode == 0 and script.stdout.split() == ["answer", "42"] and "rows as of" not in script.stderr


# --- the replica copies what changed and equals the store ----------------------------------------------------------
def trade_frame(session_id: str, trade_id: str, at: datetime, net: float, mode: str = "backtest") -> pl.DataFrame:
    return pl.DataFrame({"session_id": [session_id], "trade_id": [trade_id], "mode": [mode], "symbol": ["BTCUSDT"],
                         "entry_time": [at], "exit_time": [at + timedelta(hours=2)], "entry_price": [100.0],
                         "exit_price": [100.0 + net], "qty": [1.0], "fees": [0.1], "gross_pnl": [net + 0.1],
                         "net_pnl": [net], "return_pct": [net / 100], "entry_reason": ["in"], "exit_reason": ["out"]})


def order_frame(session_id: str, coid: str, status: str, at: datetime, tag: str = "stop") -> pl.DataFrame:
    return pl.DataFrame({"session_id": [session_id], "client_order_id": [coid], "symbol": ["BTCUSDT"],
                         "side": ["sell"], "type": ["stop"], "qty": [1.0], "stop_price": [90.0], "status": [status],
                         "filled_qty": [0.0], "created_at": [at], "updated_at": [at], "tag": [tag]})


def fill_frame(session_id: str, fill_id: str, side: str, qty: float, price: float, at: datetime,
               fee_asset: str = "USDT") -> pl.DataFrame:
    return pl.DataFrame({"session_id": [session_id], "fill_id": [fill_id], "client_order_id": [fill_id],
                         "symbol": ["BTCUSDT"], "side": [side], "qty": [qty], "price": [price],
                         "fee": [qty * price * 0.001], "fee_asset": [fee_asset],  # valued in quote
                         "ts": [at]})


@pytest.mark.req("R1.2")
def test_each_refresh_copies_only_what_changed_and_the_replica_equals_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "rampart.duckdb")
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    store.begin_session({"id": "old", "mode": "backtest", "started_at": t0, "strategy": "trend", "config_hash": "h"})
    store.finish_session("old", status="completed", ended_at=t0, final_equity=1.0, error=None, frames={
        "trades": pl.concat([trade_frame("old", f"t{i}", t0 + timedelta(hours=i), i - 5.0) for i in range(23)]),
        "equity": pl.DataFrame({"ts": [t0 + timedelta(minutes=i) for i in range(500)], "equity": [1.0] * 500})})
    store.begin_session({"id": "live1", "mode": "live", "started_at": t0, "strategy": "trend", "config_hash": "h",
                         "venue": "sandbox"})
    store.append_many({"orders": order_frame("live1", "stop-1", "accepted", t0)})
    store.insert_rows("notifications", [{"notification_id": "n1", "created_at": t0, "kind": "alert",
                                         "title": "x", "status": "pending"}])

    first = refresh(store.path, chunk_rows=7)  # a first copy in many short reads of the store
    assert first is not None and first.rows_copied >= 523 and first.recopied == ()
    assert fingerprint(replica_path(store.path)) == fingerprint(store.path)

    # a live session moves on: new rows, its stop order replaced in place, a notification delivered, then it ends
    store.append_many({"equity": pl.DataFrame({"session_id": ["live1"] * 3, "ts": [t0] * 3, "equity": [2.0] * 3}),
                       "orders": order_frame("live1", "stop-1", "canceled", t0 + timedelta(minutes=1))})
    store.execute("UPDATE notifications SET status = 'delivered', delivered_at = ? WHERE notification_id = 'n1'",
                  [t0])
    second = refresh(store.path, chunk_rows=7)
    assert second is not None and second.rows_copied < 20  # what changed, plus the small whole tables
    assert fingerprint(replica_path(store.path)) == fingerprint(store.path)
    store.finish_session("live1", status="completed", ended_at=datetime.now(UTC), final_equity=2.0, error=None,
                         frames={})
    refresh(store.path)
    assert fingerprint(replica_path(store.path)) == fingerprint(store.path)

    # rows taken out behind its back (an operator's delete) are noticed and that table copied again
    with unit_of_work(store.path, what="operator delete") as conn:
        conn.execute("DELETE FROM trades WHERE trade_id = 't3'")
    third = refresh(store.path)
    assert third is not None and third.recopied == ("trades",)
    assert fingerprint(replica_path(store.path)) == fingerprint(store.path)

    # a changed schema (an operator's own view here; a migration alike) gives a fresh copy with it
    with unit_of_work(store.path, what="operator view") as conn:
        conn.execute("CREATE VIEW my_losers AS SELECT * FROM trades WHERE net_pnl < 0")
    refresh(store.path)
    assert "my_losers" in views(replica_path(store.path))
    assert fingerprint(replica_path(store.path)) == fingerprint(store.path)


# --- the views ---------------------------------------------------------------------------------------------------
@pytest.mark.req("R1.2")
def test_views_answer_daily_pnl_by_mode_and_open_positions_across_restarts_without_dust(tmp_path: Path) -> None:
    store = Store(tmp_path / "rampart.duckdb")
    day1, day2 = datetime(2024, 3, 1, 10, tzinfo=UTC), datetime(2024, 3, 2, 10, tzinfo=UTC)
    for sid, mode, venue, at in (("bt", "backtest", None, day1), ("a", "live", "sandbox", day1),
                                 ("b", "live", "sandbox", day2)):
        store.begin_session({"id": sid, "mode": mode, "started_at": at, "strategy": "trend", "config_hash": "h",
                             **({"venue": venue} if venue else {})})
    store.append("trades", pl.concat([trade_frame("bt", "t1", day1, 4.0), trade_frame("bt", "t2", day1, -1.0),
                                      trade_frame("a", "t1", day1, 2.0, "live"),
                                      trade_frame("b", "t1", day2, -3.0, "live")]))
    # session a buys 0.01 BTC (fee in BTC) and is restarted as b, which buys more, then sells part; ETH-like dust
    # of an earlier round trip stays below the minimum order value and is not a position
    store.append("fills", pl.concat([
        fill_frame("a", "f1", "buy", 0.01, 40_000.0, day1, fee_asset="BTC"),
        fill_frame("b", "f2", "buy", 0.01, 42_000.0, day2, fee_asset="BTC"),
        fill_frame("b", "f3", "sell", 0.005, 43_000.0, day2 + timedelta(hours=1))]))
    store.append_many({"orders": pl.concat([order_frame("a", "stop-a", "accepted", day1),
                                            order_frame("b", "stop-b", "accepted", day2)])})
    daily = {(r["day"], r["mode"]): r for r in rows(tmp_path, "select * from v_daily_pnl")}
    assert set(daily) == {("2024-03-01", "backtest"), ("2024-03-01", "live"), ("2024-03-02", "live")}
    assert daily[("2024-03-01", "backtest")]["net_pnl"] == pytest.approx(3.0)
    assert daily[("2024-03-01", "backtest")]["win_rate"] == pytest.approx(0.5)
    assert daily[("2024-03-02", "live")]["net_pnl"] == pytest.approx(-3.0)
    (position,) = rows(tmp_path, "select * from v_open_positions")
    assert position["qty"] == pytest.approx(0.01 * 0.999 + 0.01 * 0.999 - 0.005)
    assert position["avg_entry_price"] == pytest.approx(41_000.0) and position["session_id"] == "b"
    assert position["stop_price"] == 90.0 and position["opened_at"].startswith("2024-03-01")
    # sold down to dust: no position
    store.append("fills", fill_frame("b", "f4", "sell", 0.01498, 43_000.0, day2 + timedelta(hours=2)))
    assert rows(tmp_path, "select * from v_open_positions") == []


# --- the trading thread never waits for the replica -------------------------------------------------------------
@pytest.mark.req("R1.2")
def test_a_read_on_the_trading_thread_shares_the_open_store_instead_of_waiting_and_still_cannot_write(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "rampart.duckdb", lock_timeout_s=0)  # any wait would fail at once
    store.schema_version()
    held = connect(store.path)  # what the replica's refresh holds while it copies (read-write: shares the file)
    try:
        assert store.query("select count(*) as n from sessions")["n"].to_list() == [0]
        with pytest.raises(StoreError, match="read-only"), \
                unit_of_work(store.path, what="a read", read_only=True, lock_timeout_s=0) as conn:
            conn.execute("DELETE FROM sessions")
    finally:
        held.close()


def test_the_publisher_never_raises_into_trading_and_refreshes_on_its_clock(tmp_path: Path) -> None:
    clock = Clock()
    publisher = ReplicaPublisher(tmp_path / "missing.duckdb", clock=clock)

    class View:
        session_id = "s1"

    publisher.on_poll(View())  # due at once; the store does not exist: logged, not raised
    assert publisher.wait_idle(60) and publisher.last_error is not None and "no database" in publisher.last_error
    store = Store(tmp_path / "missing.duckdb")
    store.schema_version()
    publisher.on_flush(View(), {})  # not due yet on its clock
    assert publisher.wait_idle(60) and publisher.refreshes == 0
    clock.t += 30.0
    publisher.on_flush(View(), {})
    assert publisher.wait_idle(60) and publisher.refreshes == 1 and publisher.last_error is None
    assert publisher.last is not None and publisher.last.session_id == "s1"
    publisher.on_stop(View())
    with pytest.raises(StoreError, match="refresh_s"):
        ReplicaPublisher(tmp_path / "x.duckdb", refresh_s=0)


# --- the prompt --------------------------------------------------------------------------------------------------
@pytest.mark.req("R1.2")
def test_the_interactive_prompt_on_a_terminal_lists_the_views_runs_queries_and_quits(tmp_path: Path) -> None:
    store = Store(tmp_path / "rampart.duckdb")
    store.schema_version()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # a 200-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "sql", "--data-dir", str(tmp_path)], cwd=ROOT,
                            stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    out = b""

    def until(marker: bytes) -> None:
        nonlocal out
        while marker not in out:
            ready, _, _ = select.select([leader], [], [], 60)
            assert ready, f"no {marker!r} in {out.decode(errors='replace')}"
            out += os.read(leader, 65536)

    try:
        until(b"sql> ")
        os.write(leader, b".views\n")
        until(b"v_open_positions")
        os.write(leader, b"select 6 *\n")
        until(b"...> ")
        os.write(leader, b"7 as answer;\n")
        until(b"42")
        os.write(leader, b".schema v_trades\n")
        until(b"minutes_held")
        os.write(leader, b".quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = out.decode(errors="replace")
    assert "up to date with it (no session running)" in text and "exit_time - entry_time in minutes" in text


def test_refresh_refuses_a_missing_store_and_a_bad_chunk_and_recovers_a_damaged_copy(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database"):
        refresh(tmp_path / "none.duckdb")
    store = Store(tmp_path / "rampart.duckdb")
    store.schema_version()
    with pytest.raises(StoreError, match="chunk_rows"):
        refresh(store.path, chunk_rows=0)
    assert refresh(store.path) is not None
    # a working copy damaged (a crash mid-write, a disk error) is copied afresh, never published
    folder = replica_path(store.path).parent
    assert replica_path(store.path).samefile(folder / ".a.duckdb")  # the next refresh works in .b
    (folder / ".b.duckdb").write_bytes(b"not a database" * 1000)
    assert refresh(store.path) is not None
    assert fingerprint(replica_path(store.path)) == fingerprint(store.path)
