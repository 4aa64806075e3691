"""Sessions whose process died are closed as 'crashed' by the next start; live ones are left alone.

Real processes and real DuckDB files: a child process opens a session and is killed with SIGKILL (or the real
`rampart backtest` is), and the next session's start finds it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from core.errors import StoreError
from core.store import MIGRATIONS, Store, migrate
from core.store.liveness import owner_alive, owner_token

ROOT = Path(__file__).resolve().parent.parent

# A child that opens a session in the database given as argv[1], says so, then waits to be killed.
OPEN_AND_WAIT = """
import sys, time
from datetime import UTC, datetime
from core.store import Store
Store(sys.argv[1]).begin_session({"id": sys.argv[2], "mode": "paper", "started_at": datetime.now(UTC),
                                  "strategy": "sma_cross", "config_hash": "h"})
print("open", flush=True)
time.sleep(600)
"""


def session(session_id: str) -> dict[str, object]:
    return {"id": session_id, "mode": "backtest", "started_at": datetime.now(UTC), "strategy": "sma_cross",
            "config_hash": "h"}


def statuses(store: Store) -> dict[str, tuple[str, str | None]]:
    rows = store.query("SELECT id, status, error FROM sessions").rows()
    return {r[0]: (r[1], r[2]) for r in rows}


def open_in_child(db: Path, session_id: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", OPEN_AND_WAIT, str(db), session_id], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "open"
    return child


@pytest.mark.req("R1.2")
@pytest.mark.req("R6.4")
def test_a_session_killed_with_9_is_closed_as_crashed_when_the_next_one_starts(tmp_path: Path) -> None:
    db = tmp_path / "rampart.duckdb"
    child = open_in_child(db, "killed")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    store = Store(db)
    assert statuses(store)["killed"][0] == "running"  # nothing has started since: nobody has looked yet

    store.begin_session(session("next"))

    found = statuses(store)
    assert found["next"] == ("running", None)
    status, error = found["killed"]
    assert status == "crashed"
    assert error is not None and f"process {child.pid} ended without closing the session" in error
    assert "when session next started" in error
    ended = store.query("SELECT ended_at FROM sessions WHERE id = 'killed'").item()
    assert ended is not None
    # a crashed session cannot be finished later as if it had completed
    with pytest.raises(StoreError, match="already crashed"):
        store.finish_session("killed", status="completed", ended_at=datetime.now(UTC), final_equity=None,
                             error=None, frames={})


@pytest.mark.req("R1.2")
def test_a_session_whose_process_still_runs_stays_running(tmp_path: Path) -> None:
    db = tmp_path / "rampart.duckdb"
    child = open_in_child(db, "alive")
    try:
        store = Store(db)
        store.begin_session(session("mine"))
        store.begin_session(session("mine-too"))  # this process's own sessions are alive too
        found = statuses(store)
        assert found["alive"] == ("running", None) and found["mine"] == ("running", None)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert store.close_crashed() == ["alive"]
    assert statuses(store)["alive"][0] == "crashed" and statuses(store)["mine"][0] == "running"


@pytest.mark.req("R1.2")
def test_a_reused_pid_does_not_keep_a_dead_session_running(tmp_path: Path) -> None:
    store = Store(tmp_path / "rampart.duckdb")
    host, pid, start = owner_token().split(":")
    assert owner_alive(owner_token()) is True
    reused = f"{host}:{pid}:{int(start or 0) + 12345}"  # this pid, but a process that started at another time
    assert owner_alive(reused) is False
    assert owner_alive(f"another-host-{host}:{pid}:{start}") is None  # cannot be told from here: left alone
    store.begin_session({**session("reused"), "owner": reused})
    store.begin_session({**session("elsewhere"), "owner": f"another-host-{host}:1:1"})
    store.begin_session(session("now"))
    found = statuses(store)
    assert found["reused"][0] == "crashed" and found["elsewhere"][0] == "running" and found["now"][0] == "running"


@pytest.mark.req("R1.2")
def test_a_running_session_from_before_owners_were_recorded_is_closed_on_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "rampart.duckdb"
    conn = duckdb.connect(str(db))
    try:  # a database written by the code before v6: no owner column, a session left running
        migrate(conn, [m for m in MIGRATIONS if m.version < 6])
        conn.execute("INSERT INTO sessions (id, mode, started_at, strategy, config_hash, status) "
                     "VALUES ('old', 'live', now(), 'trend', 'h', 'running')")
    finally:
        conn.close()
    store = Store(db)
    store.begin_session(session("new"))
    assert statuses(store)["old"][0] == "crashed"
    summary = store.query("SELECT status FROM v_session_summary WHERE session_id = 'old'").item()
    assert summary == "crashed"


@pytest.mark.req("R1.2")
@pytest.mark.req("R6.4")
def test_a_backtest_killed_with_9_is_crashed_after_the_next_backtest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    command = [sys.executable, "-m", "core.cli", "backtest", "--days", "3650", "--timeframe", "15m",
               "--data-dir", str(data)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        store = Store(data / "rampart.duckdb")
        while time.monotonic() < deadline and first.poll() is None:  # wait until its session row exists
            if (data / "rampart.duckdb").exists() and store.query("SELECT count(*) FROM sessions").item():
                break
            time.sleep(0.05)
        assert first.poll() is None, "the backtest ended before it could be killed; give it more to do"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    second = subprocess.run([*command[:5], "2", "--data-dir", str(data)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    rows = store.query("SELECT status, error FROM sessions ORDER BY started_at").rows()
    assert [r[0] for r in rows] == ["crashed", "completed"]
    assert f"process {first.pid} ended" in rows[0][1]
