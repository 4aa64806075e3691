"""Daily-report settings (``RAMPART_REPORTS__*``): when live counts as degraded against its baselines (R7.4)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportConfig(BaseModel):
    """Margins beyond which the report suggests changes or a manual review."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    win_rate_margin: float = Field(0.10, ge=0, le=1, description="live win rate below baseline by more than this")
    profit_factor_margin: float = Field(0.25, ge=0, le=10, description="live profit factor below baseline by more")
    slippage_margin_bps: float = Field(5.0, ge=0, le=1000, description="live slippage above the model by more (bps)")
