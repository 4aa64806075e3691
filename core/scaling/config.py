"""Scaling-review settings (``RAMPART_SCALING__*``): the evidence window and the approval timeout (R5)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScalingConfig(BaseModel):
    """How much evidence a step up needs, and how long a review waits for a human."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_days: int = Field(7, ge=7, le=90, description="consecutive days at the current rung (R5.2: >= 7)")
    review_timeout_days: float = Field(3.0, ge=0.0001, le=30, description="a review unanswered this long expires")
    new_symbol_days: int = Field(7, ge=7, le=90, description="half risk for a new symbol, and at most one per")
