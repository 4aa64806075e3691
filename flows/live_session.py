"""Live session flow (SPEC R2): preflight → reconcile → trade at the first rung until stopped → summary."""

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
from tasks.live import publish_live_summary_task, run_live_session_task


@flow(name="live-session", log_prints=True, flow_run_name=live_run_name)
def live_session(exchange: ExchangeChoice = "", sandbox_url: Text = "", symbols: Text = "",
                 strategy: StrategyChoice = "", timeframe: TimeframeChoice = "", params: Params = NO_PARAMS,
                 data_dir: Text = "", duration_s: Seconds = 0, max_bars: Count = 0,
                 poll_interval_s: float = 0.25) -> dict[str, Any]:
    """Trade live on one account. Refuses to start without a recent passed paper gate for this config.

    Args:
        exchange: where to trade (empty: the configured exchange, the local sandbox by default).
        sandbox_url: the sandbox exchange's URL, e.g. http://127.0.0.1:8765 (empty: the configured one).
        symbols: comma-separated, at most two from the allow-list (empty: the configured ones).
        strategy: the strategy the paper gate passed for (empty: the configured one, mean_reversion by default).
        timeframe: the bar size (empty: the configured one, 1h by default).
        params: strategy parameters as JSON, the same as the paper gate's run.
        data_dir: where the database and the live state live (empty: the configured data dir).
        duration_s: stop after this many seconds (0: run until the run is cancelled).
        max_bars: stop after this many bars (0: no limit).
        poll_interval_s: seconds between polls of the exchange.
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(unset(symbols), unset(strategy), unset(timeframe), params, unset(data_dir),
                              unset(exchange), unset(sandbox_url))
    summary = run_live_session_task(overrides, unset(duration_s), unset(max_bars), poll_interval_s)
    publish_live_summary_task(summary)
    return {"session_id": summary.session_id, "bars": summary.bars, "trades": summary.trades,
            "net_pnl": summary.net_pnl, "state": summary.state, "stopped_because": summary.stopped_because}


if __name__ == "__main__":
    live_session()
