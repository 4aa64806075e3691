"""Prefect conventions on a real Prefect server (issue 18): outcomes show where operators look.

A failed paper gate ends its flow run Failed, named "Gate failed", with the reasons as the state's message, and its
artifact is a Markdown table with links; a passed one ends Completed. An emergency stop that cannot flatten ends
"Not flat". Runs have readable names; every flow parameter has a description and no ``null`` branch, the
strategy is a choice of the known strategies (a spec string still works: tests/test_flows.py); the emergency-stop
deployment stands apart from the routine ones.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.store import Store
from tests.prefect_server import PrefectServer

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^mean_reversion · BTCUSDT,ETHUSDT · \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$")
RUN_FLOW = ("import importlib, json, sys\n"
            "flow = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])\n"
            "state = flow(**json.loads(sys.argv[3]), return_state=True)\n"
            "print('RUN ' + str(state.state_details.flow_run_id), flush=True)\n")
# thresholds every session below meets (sma_cross on 1-minute bars, one day: ~30 trades, some winners)
LENIENT = {"RAMPART_GATE__MIN_WIN_RATE": "0", "RAMPART_GATE__MIN_SHARPE": "-10", "RAMPART_GATE__MAX_DRAWDOWN": "0.99",
           "RAMPART_GATE__MIN_TRADES": "1"}


def run_flow(server: PrefectServer, entry: str, env: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    """Run a flow in its own process against the server, as a worker would; the flow run as the API returns it."""
    module, name = entry.split(":")
    proc = subprocess.run([sys.executable, "-c", RUN_FLOW, module, name, json.dumps(params)], cwd=ROOT,
                          env={**server.env, "PYTHONPATH": str(ROOT), **(env or {})}, capture_output=True, text=True,
                          timeout=300)
    ids = [line[4:] for line in proc.stdout.splitlines() if line.startswith("RUN ")]
    assert proc.returncode == 0 and ids, proc.stdout[-3000:] + proc.stderr[-3000:]
    return flow_run(server, ids[-1])


def flow_run(server: PrefectServer, run_id: Any) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/flow_runs/{run_id}", timeout=10).json()
    return body


def artifacts(server: PrefectServer, run_id: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.post(f"{server.url}/artifacts/filter", timeout=10, json={
        "artifacts": {"flow_run_id": {"any_": [str(run_id)]}}}).json()
    return found


def markdown_table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (header and separator rows included)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]


@pytest.mark.req("R1.4")
@pytest.mark.req("R1.5")
def test_a_failed_gate_ends_the_run_failed_with_the_reasons_and_a_markdown_table(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    # two days of hourly bars cannot make 30 trades: the gate fails on TOO_FEW_TRADES at least
    run = run_flow(prefect_server, "flows.paper_validation:paper_validation", days=2, seed=3, data_dir=str(tmp_path))
    assert run["state"]["type"] == "FAILED" and run["state"]["name"] == "Gate failed"
    gate = Store(tmp_path / "rampart.duckdb").query("select passed, reasons from gate_results").row(0, named=True)
    reasons = json.loads(gate["reasons"]) if isinstance(gate["reasons"], str) else list(gate["reasons"])
    assert gate["passed"] is False and any(r.startswith("TOO_FEW_TRADES: ") for r in reasons)
    assert run["state"]["message"] == "; ".join(reasons)
    assert NAME.match(run["name"]), run["name"]

    (art,) = [a for a in artifacts(prefect_server, run["id"]) if a["key"] == "paper-gate-verdict"]
    assert art["type"] == "markdown" and "```" not in art["data"]
    rows = markdown_table_rows(art["data"])
    assert rows[0] == ["check", "value", "threshold", "result"]
    checks = {r[0]: r for r in rows if len(r) == 4}
    assert checks["closed trades"][2] == ">= 30" and checks["closed trades"][3] == "**FAIL**"
    assert all(len(cell) <= 40 for row in rows for cell in row if not cell.startswith("["))  # fits the page
    report = Path(str(tmp_path.resolve() / "reports" / "paper")).as_uri()
    assert f"]({report}/" in art["data"] and "report.json" in art["data"]  # a link by absolute path
    assert "Why it failed" in art["data"] and all(r.split(":")[0] in art["data"] for r in reasons)


@pytest.mark.req("R1.4")
def test_a_passed_gate_ends_the_run_completed(prefect_server: PrefectServer, tmp_path: Path) -> None:
    run = run_flow(prefect_server, "flows.paper_validation:paper_validation", env=LENIENT, days=1, seed=4,
                   strategy="sma_cross", params={"fast": 3, "slow": 8}, timeframe="1m", data_dir=str(tmp_path))
    assert run["state"]["type"] == "COMPLETED" and run["state"]["name"] == "Completed"
    assert run["name"].startswith("sma_cross · BTCUSDT,ETHUSDT · ")
    assert Store(tmp_path / "rampart.duckdb").query("select passed from gate_results").item() is True
    (art,) = [a for a in artifacts(prefect_server, run["id"]) if a["key"] == "paper-gate-verdict"]
    assert art["data"].startswith("# Paper validation: PASSED") and "**FAIL**" not in art["data"]


@pytest.mark.req("R6.1")
def test_an_emergency_stop_that_cannot_flatten_ends_the_run_not_flat(
    prefect_server: PrefectServer, tmp_path: Path, creds: None
) -> None:
    from core.sandbox.server import SandboxServer
    from tests.test_emergency_stop import estop_settings, sandbox_config, seed

    settings = estop_settings(tmp_path)
    with SandboxServer(sandbox_config()) as server:
        seed(server, settings)
        url = server.url  # the exchange goes away with the positions still held
    run = run_flow(prefect_server, "flows.emergency_stop:emergency_stop_flow", reason="test: outage", who="oncall",
                   exchange="sandbox", sandbox_url=url, data_dir=str(tmp_path), deadline_s=1)
    assert run["state"]["type"] == "FAILED" and run["state"]["name"] == "Not flat"
    event = Store(settings.db_path).query("select details from events where code = 'EMERGENCY_STOP'").item()
    left = json.loads(event)["leftovers"]
    assert left and run["state"]["message"] == "; ".join(left)
    assert run["name"].startswith("EMERGENCY STOP · sandbox · ")
    (art,) = [a for a in artifacts(prefect_server, run["id"]) if a["key"] == "emergency-stop"]
    assert art["data"].startswith("# Emergency stop: NOT FLAT") and "| by | oncall |" in art["data"]


@pytest.mark.req("R1.1")
def test_every_flow_parameter_is_described_offers_choices_and_has_no_null_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.utilities.callables import parameter_schema

    from core.market.candles import TIMEFRAMES
    from flows import parameters
    from flows.backtest import backtest
    from flows.daily_report import daily_report_flow
    from flows.emergency_stop import emergency_stop_flow
    from flows.forward_gate import forward_gate
    from flows.live_session import live_session
    from flows.metrics import metrics_flow
    from flows.paper_forward import paper_forward
    from flows.paper_validation import paper_validation
    from flows.scaling_review import scaling_review_flow
    from tests.test_strategy_api import write_strategy

    for fn in (paper_validation, backtest, live_session, paper_forward, emergency_stop_flow, metrics_flow,
               daily_report_flow, scaling_review_flow, forward_gate):
        schema = parameter_schema(fn).model_dump()
        for name, prop in schema["properties"].items():
            assert len(prop.get("description") or "") > 15, f"{fn.name}.{name} has no description"
            assert '"null"' not in json.dumps(prop), f"{fn.name}.{name} offers None ('Property is type None')"
    props = parameter_schema(paper_validation).model_dump()["properties"]
    known, spec = props["strategy"]["anyOf"]
    assert {"mean_reversion", "trend", "sma_cross"} <= set(known["enum"]) and spec["type"] == "string"
    assert props["timeframe"]["enum"] == ["", *TIMEFRAMES] and props["days"]["maximum"] == 3_650
    assert parameter_schema(emergency_stop_flow).model_dump()["required"] == ["reason"]

    # strategies in the configured folder are offered too, by the name `rampart strategies` shows
    write_strategy(tmp_path / "mine")
    monkeypatch.setenv("RAMPART_STRATEGY__FOLDER", str(tmp_path / "mine"))
    assert {"mean_reversion", "trend", "sma_cross", "Momentum"} <= set(parameters._known_strategies())


def test_the_emergency_stop_deployment_stands_apart_from_the_routine_ones() -> None:
    deployments = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    stop = deployments.pop("emergency-stop")
    assert "EMERGENCY" in stop["tags"] and stop["description"].startswith("EMERGENCY")
    assert stop["work_pool"]["work_queue_name"] == "emergency" and not stop.get("schedules")
    for name, routine in deployments.items():
        assert "EMERGENCY" not in routine["tags"] and "emergency" not in routine["tags"], name
        assert routine["work_pool"].get("work_queue_name") != "emergency", name
