"""Backtest flow: the same engine and steps as paper validation, without the gate (mode=backtest)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
from tasks.credentials import secure_run
from tasks.paper import (
    begin_session_task,
    check_candles_task,
    evaluate_gate_task,
    load_candles_task,
    load_settings_task,
    run_session_task,
    store_results_task,
)


@flow(name="backtest", log_prints=True)
def backtest(source: str | list[str] = "synthetic", symbols: str | None = None, days: float | None = None,
             seed: int = 7, strategy: str | None = None, timeframe: str | None = None,
             params: dict[str, Any] | None = None, data_dir: str | None = None) -> dict[str, Any]:
    """Run a strategy over history and store the session; returns its metrics."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    settings = load_settings_task(run_overrides(symbols, strategy, timeframe, params, data_dir))
    sets = load_candles_task(source, settings, days, seed)
    session_id, chash = begin_session_task(settings, "backtest")
    problems = check_candles_task(sets)
    result = None if problems else run_session_task(sets, settings, session_id, "backtest")
    metrics, verdict = evaluate_gate_task(result, settings, problems, chash)
    store_results_task(settings, session_id, result, verdict, metrics, problems, record_gate=False)
    return {"session_id": session_id, "metrics": metrics.to_dict(), "errors": list(verdict.reasons)
            if (problems or (result and result.errors)) else []}


if __name__ == "__main__":
    backtest()
