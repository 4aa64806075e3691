"""The Prefect flows on Prefect's test harness: they compose the same steps and publish the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.req("R1.3")
@pytest.mark.req("R1.4")
def test_paper_validation_flow_records_the_verdict_and_publishes_it(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from core.store import Store
    from flows.paper_validation import paper_validation
    from tasks.artifacts import RunFailed

    state = paper_validation(source="synthetic", days=30, seed=3, data_dir=str(tmp_path), return_state=True)
    out = state.result(raise_on_failure=False)
    out = out.outcome if isinstance(out, RunFailed) else out  # a failed gate ends the run Failed, same outcome
    assert state.is_failed() is not out["passed"]
    assert set(out) >= {"passed", "reasons", "session_id", "config_hash", "metrics", "report"}
    assert Path(out["report"]).exists()
    gate = Store(tmp_path / "rampart.duckdb").latest_gate(out["config_hash"])
    assert gate is not None and gate["passed"] is out["passed"] and gate["session_id"] == out["session_id"]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["paper-gate-verdict"])))
    assert arts and "Paper validation:" in str(arts[0].data)


@pytest.mark.req("R1.4")
def test_called_from_python_a_failed_gate_raises_with_the_outcome(prefect_harness: None, tmp_path: Path) -> None:
    from flows.paper_validation import paper_validation
    from tasks.artifacts import RunFailed

    with pytest.raises(RunFailed, match=r"^Gate failed: .*TOO_FEW_TRADES: ") as raised:
        paper_validation(source="synthetic", days=2, seed=3, data_dir=str(tmp_path))
    outcome = raised.value.outcome
    assert outcome["passed"] is False and any(r.startswith("TOO_FEW_TRADES") for r in outcome["reasons"])
    assert str(raised.value) == "Gate failed: " + "; ".join(outcome["reasons"]) and Path(outcome["report"]).exists()


@pytest.mark.req("R1.1")
@pytest.mark.req("R1.2")
def test_backtest_flow_runs_the_same_engine_without_a_gate(prefect_harness: None, tmp_path: Path) -> None:
    from core.store import Store
    from flows.backtest import backtest

    out = backtest(source="synthetic", days=20, seed=3, data_dir=str(tmp_path))
    store = Store(tmp_path / "rampart.duckdb")
    assert store.query("select mode from sessions").item() == "backtest"
    assert store.query("select count(*) from gate_results").item() == 0
    assert out["metrics"]["trades"] == store.query("select count(*) from trades").item()


@pytest.mark.req("R10.1")
def test_the_paper_flow_takes_a_traders_strategy_file_as_the_cli_does(prefect_harness: None, tmp_path: Path) -> None:
    from core.build import config_hash
    from core.config import load_settings
    from core.store import Store
    from flows.paper_validation import paper_validation
    from tasks.artifacts import RunFailed
    from tests.test_strategy_api import write_strategy

    path = write_strategy(tmp_path / "mine")
    spec = f"{path}:Momentum"
    state = paper_validation(source="synthetic", days=2, seed=3, data_dir=str(tmp_path / "d"), strategy=spec,
                             timeframe="1m", params={"hold": 4}, return_state=True)
    out = state.result(raise_on_failure=False)
    out = out.outcome if isinstance(out, RunFailed) else out  # the gate's verdict is not the point here
    settings = load_settings(data_dir=tmp_path / "d", strategy={"name": spec, "params": {"hold": 4}},
                             market={"timeframe": "1m"})
    assert out["config_hash"] == config_hash(settings)
    store = Store(tmp_path / "d" / "rampart.duckdb")
    assert store.query("select strategy from sessions").item() == spec
    assert store.query("select count(*) from trades").item() > 0


@pytest.mark.req("R1.6")
def test_the_paper_forward_flow_trades_the_sandbox_market_with_simulated_fills(prefect_harness: None,
                                                                               tmp_path: Path) -> None:
    from core.market import generate
    from core.sandbox.config import SandboxConfig
    from core.sandbox.server import SandboxServer
    from core.store import Store
    from flows.paper_forward import paper_forward

    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 1.0, seed=4)
    with SandboxServer(SandboxConfig(source=tuple(sets), speed=600.0, start=sets[0].frame["ts"][400])) as server:
        out = paper_forward(exchange="sandbox", sandbox_url=server.url, strategy="sma_cross", timeframe="1m",
                            params={"fast": 3, "slow": 8}, data_dir=str(tmp_path), max_bars=15,
                            poll_interval_s=0.05)
        stats = server.stats()
    assert out["bars"] == 15 and out["stopped_because"] == "max bars reached"
    assert stats["auth_calls"] == {}
    rows = Store(tmp_path / "rampart.duckdb").query("select mode, settings->>'$.forward' from sessions").rows()
    assert rows == [("paper", "true")]
