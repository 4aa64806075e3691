"""Forward paper flow (R1.6): the live loop on the exchange's public data with simulated fills, until stopped."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
from tasks.forward import run_forward_session_task
from tasks.live import publish_live_summary_task


@flow(name="paper-forward", log_prints=True)
def paper_forward(exchange: str | None = None, sandbox_url: str | None = None,
                  symbols: str | None = None, strategy: str | None = None, timeframe: str | None = None,
                  params: dict[str, Any] | None = None, data_dir: str | None = None,
                  duration_s: float | None = None, max_bars: int | None = None,
                  poll_interval_s: float = 0.25) -> dict[str, Any]:
    """Paper-trade the strategy on the live market of ``exchange`` (binance, binance-demo or sandbox). No
    credentials are read; its record feeds the forward gate (`rampart gate --forward`)."""
    overrides = run_overrides(symbols, strategy, timeframe, params, data_dir, exchange, sandbox_url)
    summary = run_forward_session_task(overrides, duration_s, max_bars, poll_interval_s)
    publish_live_summary_task(summary)
    return {"session_id": summary.session_id, "bars": summary.bars, "trades": summary.trades,
            "net_pnl": summary.net_pnl, "state": summary.state, "stopped_because": summary.stopped_because}


if __name__ == "__main__":
    paper_forward()
