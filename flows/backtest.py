"""Backtest flow: the same engine and steps as paper validation, without the gate (mode=backtest)."""

from typing import Any

from prefect import flow

from core.config import run_overrides
from flows.parameters import NO_PARAMS, Days, Params, StrategyChoice, Text, TimeframeChoice, strategy_run_name, unset
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


@flow(name="backtest", log_prints=True, flow_run_name=strategy_run_name)
def backtest(source: str | list[str] = "synthetic", symbols: Text = "", days: Days = 0, seed: int = 7,
             strategy: StrategyChoice = "", timeframe: TimeframeChoice = "", params: Params = NO_PARAMS,
             data_dir: Text = "") -> dict[str, Any]:
    """Run a strategy over history and store the session; returns its metrics.

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
        data_dir: where the database goes (empty: the configured data dir, ./data by default).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(unset(symbols), unset(strategy), unset(timeframe), params, unset(data_dir))
    settings = load_settings_task(overrides)
    sets = load_candles_task(source, settings, unset(days), seed)
    session_id, chash = begin_session_task(settings, "backtest")
    problems = check_candles_task(sets)
    result = None if problems else run_session_task(sets, settings, session_id, "backtest")
    metrics, verdict = evaluate_gate_task(result, settings, problems, chash)
    store_results_task(settings, session_id, result, verdict, metrics, problems, record_gate=False)
    return {"session_id": session_id, "metrics": metrics.to_dict(), "errors": list(verdict.reasons)
            if (problems or (result and result.errors)) else []}


if __name__ == "__main__":
    backtest()
