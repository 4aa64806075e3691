"""Live session flow (SPEC R2): preflight → reconcile → trade at the first rung until stopped → summary."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
from tasks.credentials import secure_run
from tasks.live import publish_live_summary_task, run_live_session_task


@flow(name="live-session", log_prints=True)
def live_session(exchange: str | None = None, sandbox_url: str | None = None,
                 symbols: str | None = None, strategy: str | None = None, timeframe: str | None = None,
                 params: dict[str, Any] | None = None, data_dir: str | None = None,
                 duration_s: float | None = None, max_bars: int | None = None,
                 poll_interval_s: float = 0.25) -> dict[str, Any]:
    """Trade live on one account. Refuses to start without a recent passed paper gate for this config."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(symbols, strategy, timeframe, params, data_dir, exchange, sandbox_url)
    summary = run_live_session_task(overrides, duration_s, max_bars, poll_interval_s)
    publish_live_summary_task(summary)
    return {"session_id": summary.session_id, "bars": summary.bars, "trades": summary.trades,
            "net_pnl": summary.net_pnl, "state": summary.state, "stopped_because": summary.stopped_because}


if __name__ == "__main__":
    live_session()
