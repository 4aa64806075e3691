"""Paper validation flow (SPEC R1): load → validate → paper session → metrics → gate → report → notify."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
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


@flow(name="paper-validation", log_prints=True)
def paper_validation(source: str | list[str] = "synthetic", symbols: str | None = None,
                     days: float | None = None, seed: int = 7, strategy: str | None = None,
                     timeframe: str | None = None, params: dict[str, Any] | None = None,
                     data_dir: str | None = None) -> dict[str, Any]:
    """Prove a strategy on paper and record whether it may go live. Returns the verdict and its numbers."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(symbols, strategy, timeframe, params, data_dir)
    settings = load_settings_task(overrides)
    sets = load_candles_task(source, settings, days, seed)
    session_id, chash = begin_session_task(settings)
    problems = check_candles_task(sets)
    result = None if problems else run_session_task(sets, settings, session_id)
    metrics, verdict = evaluate_gate_task(result, settings, problems, chash)
    store_results_task(settings, session_id, result, verdict, metrics, problems,
                       evidence=data_evidence_task(sets, source, seed, days))
    report = write_report_task(settings, session_id, chash, result, metrics, verdict, problems)
    publish_verdict_task(metrics, verdict, report)
    notify_task(verdict, session_id)
    return {"passed": verdict.passed, "reasons": list(verdict.reasons), "session_id": session_id,
            "config_hash": chash, "metrics": metrics.to_dict(), "report": str(report.get("json"))}


if __name__ == "__main__":
    paper_validation()
