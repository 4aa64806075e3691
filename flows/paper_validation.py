"""Paper validation flow (SPEC R1): load → validate → paper session → metrics → gate → report → notify.

A gate that passes ends the run Completed; a gate that fails ends it Failed, named "Gate failed", with the reasons
as the state's message (the verdict, reasons and report links are the ``paper-gate-verdict`` artifact either way).
Called from Python, a failed gate raises ``tasks.artifacts.RunFailed`` carrying the same outcome dict; pass
``return_state=True`` to get the state instead.
"""

from typing import Any

from prefect import flow
from prefect.states import State

from core.config import run_overrides
from flows.parameters import NO_PARAMS, Days, Params, StrategyChoice, Text, TimeframeChoice, strategy_run_name, unset
from tasks.artifacts import GATE_FAILED, failed
from tasks.credentials import secure_run
from tasks.paper import (
    begin_session_task,
    check_candles_task,
    data_evidence_task,
    evaluate_gate_task,
    load_candles_task,
    load_settings_task,
    notify_task,
    publish_verdict_task,
    run_session_task,
    store_results_task,
    write_report_task,
)


@flow(name="paper-validation", log_prints=True, flow_run_name=strategy_run_name)
def paper_validation(source: str | list[str] = "synthetic", symbols: Text = "", days: Days = 0, seed: int = 7,
                     strategy: StrategyChoice = "", timeframe: TimeframeChoice = "", params: Params = NO_PARAMS,
                     data_dir: Text = "") -> dict[str, Any] | State[Any]:
    """Prove a strategy on paper and record whether it may go live (the gate, R1.4).

    Args:
        source: "synthetic" for a generated market, or candle files (Feather, Parquet or CSV), one per symbol.
        symbols: comma-separated, at most two from the allow-list (empty: the configured ones, BTCUSDT,ETHUSDT
            by default).
        days: synthetic: days of market; files: keep the last N days (0: 120 synthetic days, or every candle).
        seed: the synthetic market's random seed (the same seed gives the same market).
        strategy: a built-in, a strategy from the strategies folder, or path/to/file.py:Class (empty: the
            configured one, mean_reversion by default).
        timeframe: the bar size the strategy trades (empty: the configured one, 1h by default).
        params: strategy parameters as JSON, e.g. {"window": 30} (`rampart strategies` lists the valid names).
        data_dir: where the database and reports go (empty: the configured data dir, ./data by default).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(unset(symbols), unset(strategy), unset(timeframe), params, unset(data_dir))
    settings = load_settings_task(overrides)
    sets = load_candles_task(source, settings, unset(days), seed)
    session_id, chash = begin_session_task(settings)
    problems = check_candles_task(sets)
    result = None if problems else run_session_task(sets, settings, session_id)
    metrics, verdict = evaluate_gate_task(result, settings, problems, chash)
    store_results_task(settings, session_id, result, verdict, metrics, problems,
                       evidence=data_evidence_task(sets, source, seed, unset(days)))
    report = write_report_task(settings, session_id, chash, result, metrics, verdict, problems)
    publish_verdict_task(metrics, verdict, report)
    notify_task(verdict, session_id)
    outcome = {"passed": verdict.passed, "reasons": list(verdict.reasons), "session_id": session_id,
               "config_hash": chash, "metrics": metrics.to_dict(), "report": str(report.get("json"))}
    return outcome if verdict.passed else failed(GATE_FAILED, verdict.reasons, outcome)


if __name__ == "__main__":
    paper_validation()
