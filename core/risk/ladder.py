"""The scaling ladder (R5.1) and its hard caps (R5.5). Live starts, and restarts, on the first rung (R2.1, R6.4)."""

from __future__ import annotations

from dataclasses import dataclass

HARD_CAP_RISK_PER_TRADE = 0.01  # R5.5, whatever the configuration says
HARD_CAP_EXPOSURE = 0.10


@dataclass(frozen=True)
class Rung:
    risk_per_trade: float
    exposure_cap: float


LADDER: tuple[Rung, ...] = (Rung(0.001, 0.02), Rung(0.0025, 0.04), Rung(0.005, 0.06), Rung(0.01, 0.10))


def rung(index: int) -> Rung:
    """The rung at ``index``, clamped to the ladder and never above the hard caps."""
    r = LADDER[max(0, min(index, len(LADDER) - 1))]
    return Rung(min(r.risk_per_trade, HARD_CAP_RISK_PER_TRADE), min(r.exposure_cap, HARD_CAP_EXPOSURE))
