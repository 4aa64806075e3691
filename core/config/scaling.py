"""Scaling-review settings (``RAMPART_SCALING__*``): the ladder, the evidence window and the approval timeout (R5).

The ladder is a setting (R5.1) but never above the hard caps (R5.5): a rung asking for more than 1 % risk per
trade or 10 % exposure stops the load with an error naming ``RAMPART_SCALING__LADDER``. Set it as JSON pairs,
``RAMPART_SCALING__LADDER='[[0.001, 0.02], [0.0025, 0.04]]'``, or objects with ``risk_per_trade`` and
``exposure_cap``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from core.config.ladder import LADDER, Rung, check_ladder
from core.config.values import SymbolList, json_text


class ScalingConfig(BaseModel):
    """How much evidence a step up needs, how long a review waits for a human, and the ladder itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_days: int = Field(7, ge=7, le=90, description="consecutive days at the current rung (R5.2: >= 7)")
    review_timeout_days: float = Field(3.0, ge=0.0001, le=30, description="a review unanswered this long expires")
    new_symbol_days: int = Field(7, ge=7, le=90, description="half risk for a new symbol, and at most one per")
    ladder: Annotated[tuple[tuple[float, float], ...], NoDecode, BeforeValidator(json_text(
        "[[0.001, 0.02], [0.0025, 0.04]]"))] = Field(
        tuple((r.risk_per_trade, r.exposure_cap) for r in LADDER),
        description="rungs as (risk per trade, exposure cap) fractions, lowest first; never above 1 % / 10 %")
    min_trades: int | None = Field(None, ge=1, le=100_000, description="closed live trades the window needs; "
                                   "default: the gate's min_trades (R1.4)")
    candidate_symbols: SymbolList = Field((), description="symbols a review may propose adding (R5.3), in "
                                               "order; none: reviews only propose steps up the ladder")

    @field_validator("ladder", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [(v.get("risk_per_trade"), v.get("exposure_cap")) if isinstance(v, dict) else v for v in value]
        return value

    @field_validator("ladder")
    @classmethod
    def _within_caps(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        check_ladder([Rung(risk, exposure) for risk, exposure in value])
        return value

    @property
    def rungs(self) -> tuple[Rung, ...]:
        return tuple(Rung(risk, exposure) for risk, exposure in self.ladder)
