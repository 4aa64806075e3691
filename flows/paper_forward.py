"""Forward paper flow (R1.6): the live loop on the exchange's public data with simulated fills, until stopped."""

from typing import Any

from prefect import flow

from core.config import run_overrides
from flows.parameters import (
    NO_PARAMS,
    Count,
    ExchangeChoice,
    Params,
    Seconds,
    StrategyChoice,
    Text,
    TimeframeChoice,
    live_run_name,
    unset,
)
from tasks.credentials import secure_run
from tasks.forward import run_forward_session_task
from tasks.live import publish_live_summary_task


@flow(name="paper-forward", log_prints=True, flow_run_name=live_run_name)
def paper_forward(exchange: ExchangeChoice = "", sandbox_url: Text = "", symbols: Text = "",
                  strategy: StrategyChoice = "", timeframe: TimeframeChoice = "", params: Params = NO_PARAMS,
                  data_dir: Text = "", duration_s: Seconds = 0, max_bars: Count = 0,
                  poll_interval_s: float = 0.25) -> dict[str, Any]:
    """Paper-trade the strategy on the live market of ``exchange`` with simulated fills. No credentials are read;
    its record feeds the forward gate (`rampart gate --forward`).

    Args:
        exchange: whose public market data to trade on (empty: the configured exchange, the local sandbox by
            default).
        sandbox_url: the sandbox exchange's URL, e.g. http://127.0.0.1:8765 (empty: the configured one).
        symbols: comma-separated, at most two from the allow-list (empty: the configured ones).
        strategy: a built-in, a strategy from the strategies folder, or path/to/file.py:Class (empty: the
            configured one, mean_reversion by default).
        timeframe: the bar size (empty: the configured one, 1h by default).
        params: strategy parameters as JSON, e.g. {"window": 30}.
        data_dir: where the database and the simulated account live (empty: the configured data dir).
        duration_s: stop after this many seconds (0: run until the run is cancelled).
        max_bars: stop after this many bars (0: no limit).
        poll_interval_s: seconds between polls of the exchange.
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(unset(symbols), unset(strategy), unset(timeframe), params, unset(data_dir),
                              unset(exchange), unset(sandbox_url))
    summary = run_forward_session_task(overrides, unset(duration_s), unset(max_bars), poll_interval_s)
    publish_live_summary_task(summary)
    return {"session_id": summary.session_id, "bars": summary.bars, "trades": summary.trades,
            "net_pnl": summary.net_pnl, "state": summary.state, "stopped_because": summary.stopped_because}


if __name__ == "__main__":
    paper_forward()
