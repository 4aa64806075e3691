"""Daily-report settings (``RAMPART_REPORTS__*``): when live counts as degraded against its baselines (R7.4),
the Sharpe period of a single day, and where the PDF font lives."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.metrics import PERIODS

DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # Debian fonts-dejavu-core (`make sysdeps`)


class ReportConfig(BaseModel):
    """Margins beyond which the report suggests changes or a manual review."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    win_rate_margin: float = Field(0.10, ge=0, le=1, description="live win rate below baseline by more than this")
    profit_factor_margin: float = Field(0.25, ge=0, le=10, description="live profit factor below baseline by more")
    slippage_margin_bps: float = Field(5.0, ge=0, le=1000, description="live slippage above the model by more (bps)")
    fee_margin_bps: float = Field(2.0, ge=0, le=1000, description="live fee rate above the model by more (bps)")
    drawdown_margin: float = Field(0.02, ge=0, le=1, description="live max drawdown above baseline by more")
    min_fills: int = Field(4, ge=1, le=100_000, description="fills needed before a cost is estimated from them")
    max_unmatched_trades: int = Field(0, ge=0, le=100_000,
                                      description="missed or extra trades against the backtest before a review")
    day_period: str = Field("1h", description="return period of a single day's Sharpe/Sortino")
    font_dir: Path = Field(DEFAULT_FONT_DIR,
                           description="folder with DejaVuSans.ttf, DejaVuSans-Bold.ttf and DejaVuSansMono.ttf")

    @field_validator("day_period")
    @classmethod
    def _known_period(cls, value: str) -> str:
        if value not in PERIODS:
            raise ValueError(f"day_period must be one of {', '.join(PERIODS)}; got {value!r}")
        return value
