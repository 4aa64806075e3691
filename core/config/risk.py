"""Risk limits and circuit-breaker settings: every number the automatic controls act on (SPEC R2.3, R4.1–R4.5,
R6.2), validated at load."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class RiskLimits(BaseModel):
    """Defaults are the SPEC's. Windows are in bars of the session's timeframe, at most 998: a live session
    reads them from one klines request (Binance: 1,000 candles)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_loss_limit: float = Field(0.01, gt=0, le=0.2, description="R2.3: day P&L <= -this x start-of-day equity")
    vol_short_window: int = Field(24, ge=2, le=997, description="R4.1: bars of the short realized volatility")
    vol_long_window: int = Field(168, ge=3, le=998, description="R4.1: bars of the baseline volatility")
    vol_ratio_mid: float = Field(1.5, gt=1, le=10, description="R4.1: ratio at which size x vol_mult_mid")
    vol_mult_mid: float = Field(0.75, gt=0, le=1)
    vol_ratio_high: float = Field(2.0, gt=1, le=20, description="R4.1: ratio at which size x vol_mult_high")
    vol_mult_high: float = Field(0.5, gt=0, le=1)
    corr_window: int = Field(48, ge=5, le=998, description="R4.2: bars of the rolling return correlation")
    corr_max: float = Field(0.7, gt=0, lt=1, description="R4.2: refuse an entry above this correlation")
    unrealized_loss_limit: float = Field(0.05, gt=0, le=0.5, description="R4.3: total unrealized loss / equity")
    stop_tighten: float = Field(0.8, gt=0, lt=1, description="R4.3: new stop distance = distance x this")
    latency_limit_s: float = Field(2.0, gt=0, le=60, description="R4.4: pause entries above this latency")
    latency_window: int = Field(10, ge=1, le=1_000, description="R4.4: calls in the rolling latency")
    latency_settle_s: float = Field(60.0, ge=0, le=3_600, description="R4.4: below the limit this long to resume")
    drawdown_limit: float = Field(0.03, gt=0, le=0.5, description="R4.5: drawdown from the high-water mark")
    derisked_risk_per_trade: float = Field(0.0005, gt=0, le=0.01, description="R4.5: risk per trade once hit")
    protect_within_s: float = Field(10.0, gt=0, le=600, description="R9.3: a position without a working stop is "
                                    "protected again (stop re-placed, or sold at market) within this many seconds")


class BreakerConfig(BaseModel):
    """Thresholds and cooldowns. Out-of-range values fail at load with the field, its range and the value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consecutive_losses: int = 4  # trips after this many losing closed trades in a row
    losses_cooldown_hours: float = 4.0
    api_errors: int = 10  # trips after this many API errors (5xx, timeouts, 429, auth) ...
    api_error_window_s: float = 300.0  # ... within this rolling window
    api_cooldown_hours: float = 1.0
    slippage_bps: float = 50.0  # trips when one fill's adverse slippage exceeds this
    slippage_cooldown_hours: float = 2.0

    # field -> (low, high, unit in the message). One table so every message has the same shape.
    RANGES: ClassVar[dict[str, tuple[float, float, str]]] = {
        "consecutive_losses": (1, 50, " trades"),
        "losses_cooldown_hours": (1, 24, " hours"),
        "api_errors": (1, 1000, " errors"),
        "api_error_window_s": (10, 3600, " seconds"),
        "api_cooldown_hours": (1, 24, " hours"),
        "slippage_bps": (1, 1000, " bps"),
        "slippage_cooldown_hours": (1, 24, " hours"),
    }

    @field_validator("*")
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        # A custom message rather than Field(ge=, le=): the operator must see the name, the range and the value
        # in one line (R6.2 acceptance). "not lo <= v <= hi" also rejects NaN.
        name = info.field_name or ""
        lo, hi, unit = cls.RANGES[name]
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be between {lo:g} and {hi:g}{unit}; got {value:g}")
        return value
