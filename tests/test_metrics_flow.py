"""The 15-minute metrics (SPEC R3.3): snapshots recomputed from DuckDB equal the metric functions on the same rows,
and the flow runs on its schedule in a real Prefect server (``prefect server start``), storing a snapshot and
publishing the ``rampart-metrics`` artifact.

The database is seeded with real sessions of the engine: a completed live session, a running one that continues
from its equity, and a paper session on other candles that the live metrics must leave out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import yaml

from core.build import config_hash, new_session_id
from core.config import Settings, load_settings
from core.domain import Mode
from core.engine import SessionResult
from core.market import generate
from core.metrics import Metrics, compute_metrics
from core.monitoring.snapshots import HEADLINE, compute_snapshot, latest_snapshot, record_snapshots
from core.store import Store
from core.validation import run_session, session_frames, session_row

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass
class Seeded:
    live_done: SessionResult
    live_running: SessionResult
    paper: SessionResult


def run_and_store(store: Store, settings: Settings, mode: Mode, start: datetime, days: float, seed: int,
                  running: bool = False) -> SessionResult:
    """A session of the engine on synthetic candles, written to the store as ``mode`` (finished or still running)."""
    sets = generate(list(settings.market.symbols), settings.market.timeframe, days, seed, start=start)
    sid = new_session_id()
    store.begin_session({**session_row(sid, mode, settings, config_hash(settings), start),
                         "starting_equity": settings.paper.starting_cash})
    result = run_session(sets, settings, mode, sid)
    frames = session_frames(result)
    if running:  # as a live session flushes bar by bar: rows appended, the session row left running
        frames["trades"] = frames["trades"].with_columns(pl.lit(mode.value).alias("mode"))
        store.append_many({t: f.with_columns(pl.lit(sid).alias("session_id")) for t, f in frames.items()})
    else:
        store.finish_session(sid, status="completed", ended_at=start + timedelta(days=days),
                             final_equity=result.final_equity, error=None, frames=frames)
    return result


def seed(data_dir: Path) -> Seeded:
    # the bare strategy (controls off): sessions with enough trades to measure
    settings = load_settings(data_dir=data_dir, paper={"risk_controls": False})
    store = Store(settings.db_path)
    done = run_and_store(store, settings, Mode.LIVE, T0, 12, seed=5)
    assert len(done.trades) >= 3, "the seeded live sessions must have trades to measure"
    later = load_settings(data_dir=data_dir, paper={"starting_cash": done.final_equity, "risk_controls": False})
    running = run_and_store(store, later, Mode.LIVE, T0 + timedelta(days=12), 6, seed=13, running=True)
    paper = run_and_store(store, settings, Mode.PAPER, T0, 12, seed=9)
    assert len(running.trades) >= 2 and len(paper.trades) >= 1
    return Seeded(done, running, paper)


def expected(*results: SessionResult) -> Metrics:
    """compute_metrics on the sessions' own rows (in memory, before any store), one curve in time order."""
    equity = pl.concat([r.equity_frame() for r in results])
    trades = pl.concat([r.trades_frame() for r in results])
    return compute_metrics(equity, trades, starting_equity=results[0].starting_equity, period="1d")


def assert_snapshot_equals(row: dict[str, Any], metrics: Metrics) -> None:
    for name in HEADLINE:
        assert row[name] == pytest.approx(getattr(metrics, name), rel=1e-9, abs=1e-12), name
    stored = row["metrics"] if isinstance(row["metrics"], dict) else json.loads(row["metrics"])
    for name, value in metrics.to_dict().items():
        assert stored[name] == (pytest.approx(value, rel=1e-9, abs=1e-12) if isinstance(value, float) else value)


@pytest.mark.req("R3.3")
def test_snapshots_equal_the_metric_functions_on_the_live_rows(tmp_path: Path) -> None:
    data = seed(tmp_path)
    store = Store(tmp_path / "rampart.duckdb")
    rows = record_snapshots(store, flow_run_id="a-run")
    assert [r["scope"] for r in rows] == ["live", data.live_running.session_id]
    live, session = rows
    assert live["trades"] == len(data.live_done.trades) + len(data.live_running.trades)  # paper left out
    assert_snapshot_equals(live, expected(data.live_done, data.live_running))
    assert_snapshot_equals(session, expected(data.live_running))
    stored = latest_snapshot(store)
    assert stored is not None and stored["flow_run_id"] == "a-run" and stored["snapshot_id"] == live["snapshot_id"]
    assert_snapshot_equals(stored, expected(data.live_done, data.live_running))
    assert stored["metrics"] and json.loads(stored["metrics"])["sessions"] == 2


@pytest.mark.req("R3.3")
def test_before_any_live_session_a_snapshot_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "rampart.duckdb")
    row = compute_snapshot(store)
    assert row["trades"] == 0 and row["metrics"]["note"] == "no live session yet" and "win_rate" not in row


@pytest.mark.req("R3.3")
def test_prefect_yaml_schedules_the_metrics_flow_every_15_minutes() -> None:
    from flows.metrics import metrics_flow

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = [d for d in spec["deployments"] if d["name"] == "metrics"]
    assert deployment["entrypoint"] == "flows/metrics.py:metrics_flow"
    assert [s["interval"] for s in deployment["schedules"]] == [900]
    assert metrics_flow.name == "metrics"


def api(server: Any, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{server.url}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def completed_scheduled_run(server: Any, deployment: str, timeout_s: float) -> dict[str, Any]:
    """The first run of ``deployment`` that the server's scheduler created and that completed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = api(server, "/deployments/filter", {"deployments": {"name": {"any_": [deployment]}}})
        if found:
            runs = api(server, "/flow_runs/filter", {
                "flow_runs": {"deployment_id": {"any_": [found[0]["id"]]},
                              "state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 5})
            scheduled = [r for r in runs if r["auto_scheduled"]]
            if scheduled:
                return dict(scheduled[0])
        time.sleep(1.0)
    raise AssertionError(f"no scheduled run of {deployment} completed within {timeout_s} s")


def stop_serving(server: Any, proc: subprocess.Popen[bytes], deployment: str) -> None:
    """Pause the test deployment's schedule on the (shared) server, then stop ``serve`` and any run it started."""
    found = api(server, "/deployments/filter", {"deployments": {"name": {"any_": [deployment]}}})
    for dep in found:
        httpx.post(f"{server.url}/deployments/{dep['id']}/pause_deployment", timeout=10)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # busy starting a run: no need to be gentle with a test's serve
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.req("R3.3")
def test_the_metrics_flow_runs_on_its_schedule_in_a_prefect_server(tmp_path: Path, prefect_server: Any) -> None:
    data = seed(tmp_path)
    env = {**prefect_server.env, "RAMPART_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    # a worker-less serve of the flow with a short interval (the deployment in prefect.yaml says 900 s)
    code = ("from flows.metrics import metrics_flow\n"
            "metrics_flow.serve(name='metrics-test', interval=5, print_starting_message=False)")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        run = completed_scheduled_run(prefect_server, "metrics-test", timeout_s=150)
    except AssertionError:
        raise AssertionError(log_path.read_text()[-3000:]) from None
    finally:
        stop_serving(prefect_server, proc, "metrics-test")
    store = Store(tmp_path / "rampart.duckdb")
    rows = store.query("SELECT * FROM metrics_snapshots WHERE flow_run_id = ? ORDER BY scope", [run["id"]])
    by_scope = {r["scope"]: r for r in rows.iter_rows(named=True)}
    assert set(by_scope) == {"live", data.live_running.session_id}
    assert_snapshot_equals(by_scope["live"], expected(data.live_done, data.live_running))
    assert_snapshot_equals(by_scope[data.live_running.session_id], expected(data.live_running))
    (artifact,) = api(prefect_server, "/artifacts/filter", {
        "artifacts": {"key": {"any_": ["rampart-metrics"]}, "flow_run_id": {"any_": [run["id"]]}}})
    table = json.loads(artifact["data"]) if isinstance(artifact["data"], str) else artifact["data"]
    line = next(r for r in table if r["scope"] == "live")
    assert artifact["type"] == "table"
    assert line["trades"] == by_scope["live"]["trades"]
    assert line["win_rate"] == pytest.approx(by_scope["live"]["win_rate"], abs=1e-6)
    assert line["max_drawdown"] == pytest.approx(by_scope["live"]["max_drawdown"], abs=1e-6)
