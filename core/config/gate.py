"""Gate thresholds and evidence rules (``RAMPART_GATE__*``, SPEC R1.4, R1.6, R1.7): validated with the field, its
range and the value."""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from core.metrics import PERIODS

_BOUND_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
_RANGED_FIELDS = ("min_win_rate", "min_sharpe", "max_drawdown", "min_trades", "max_age_days", "min_days",
                  "forward_min_days")


class GateConfig(BaseModel):
    """Gate thresholds (R1.4 defaults). Out-of-range values fail with the field and its valid range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # `default=` by keyword: mypy (without the pydantic plugin) then sees every field as optional.
    min_win_rate: float = Field(default=0.45, ge=0, le=1, description="win rate must be above (fraction)")
    min_sharpe: float = Field(default=0.5, ge=-10, le=10, description="Sharpe must be above")
    max_drawdown: float = Field(default=0.15, gt=0, le=1, description="drawdown must be below (fraction)")
    min_trades: int = Field(default=30, ge=1, le=100_000, description="at least this many closed trades")
    max_age_days: int = Field(default=30, ge=1, le=365, description="a passed gate is valid this many days")
    period: str = Field(default="1d", description=f"Sharpe return period, one of {', '.join(PERIODS)}")
    # R1.7: for a real-money venue, a replay gate counts only on at least this many days of recorded candles.
    min_days: int = Field(default=60, ge=1, le=3650, description="days of real candles a replay gate needs for "
                                                                   "real money")
    # R1.6: the forward record is judged once its sessions cover this many days of bars.
    forward_min_days: int = Field(default=7, ge=1, le=365, description="days a forward record must cover")
    require_forward: bool = Field(default=False, description="go-live also needs a passed forward record")

    @field_validator(*_RANGED_FIELDS, mode="wrap")
    @classmethod
    def _readable_range(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """Re-word pydantic's bound errors so one message says the field, the valid range and the input."""
        try:
            return handler(value)
        except ValidationError as exc:
            name = info.field_name or "?"
            first = exc.errors()[0]
            # A bound error is fully said by the range; a type error also needs pydantic's words.
            detail = "" if first["type"] in _BOUND_ERRORS else f" ({first['msg']})"
            raise ValueError(f"{name} must be {_range_text(name)}; got {value!r}{detail}") from None

    @field_validator("period")
    @classmethod
    def _known_period(cls, value: str) -> str:
        if value not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}; got {value!r}")
        return value


def _range_text(name: str) -> str:
    """'between 0 and 1 inclusive'-style text from a field's ge/gt/le/lt constraints."""
    low = high = ""
    for bound in GateConfig.model_fields[name].metadata:
        if isinstance(bound, Ge):
            low = f">= {bound.ge}"
        elif isinstance(bound, Gt):
            low = f"> {bound.gt}"
        elif isinstance(bound, Le):
            high = f"<= {bound.le}"
        elif isinstance(bound, Lt):
            high = f"< {bound.lt}"
    return " and ".join(part for part in (low, high) if part) or "valid"
