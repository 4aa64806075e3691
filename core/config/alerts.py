"""Alert thresholds (``RAMPART_ALERTS__*``): when unusual behaviour becomes an alert (R3.4)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AlertConfig(BaseModel):
    """Each rule's threshold; the alert carries the threshold and the observed value as evidence."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_multiple: float = Field(3.0, gt=1, le=100, description="fill slippage above this × the model's")
    rejections: int = Field(3, ge=1, le=1000, description="order rejections within the window")
    stale_after_bars: float = Field(2.0, gt=0, le=100, description="no new closed candle for this many bar lengths")
    trade_burst: int = Field(6, ge=2, le=1000, description="entries within the window")
    api_errors: int = Field(5, ge=1, le=1000, description="API errors/timeouts/rate limits within the window")
    window_s: float = Field(3600.0, gt=0, le=7 * 86400, description="the rolling window of the count rules")
    perf_min_trades: int = Field(10, ge=1, le=10_000, description="live trades before comparing with paper")
    perf_margin: float = Field(0.2, ge=0, le=1, description="live win rate/profit factor below paper × (1 - margin)")
    perf_window: int = Field(30, ge=1, le=10_000, description="the rolling window: the latest N closed live trades")
