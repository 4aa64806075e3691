"""The scaling ladder (R5.1) and its hard caps (R5.5). Live starts, and restarts, on the first rung (R2.1, R6.4).

Rungs are indexed from 0 in code (``rung(0)`` is "rung 1" for people: events, decisions, the CLI). The ladder
is a setting (``RAMPART_SCALING__LADDER``) checked by ``check_ladder`` when settings load; whatever a ladder
says, ``rung`` and ``capped`` never hand out more than the hard caps, and the risk engine clamps once more
where sizes are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

HARD_CAP_RISK_PER_TRADE = 0.01  # R5.5, whatever the configuration says
HARD_CAP_EXPOSURE = 0.10
FIRST_RUNG_RISK, FIRST_RUNG_EXPOSURE = 0.001, 0.02  # R2.1: live starts here, never higher
NEW_SYMBOL_RISK_MULTIPLIER = 0.5  # R5.3: a new symbol trades at half the normal risk for its first days
MAX_RUNGS = 10


@dataclass(frozen=True)
class Rung:
    risk_per_trade: float
    exposure_cap: float

    def text(self) -> str:
        return f"risk {self.risk_per_trade:.2%} per trade, exposure cap {self.exposure_cap:.0%}"


LADDER: tuple[Rung, ...] = (Rung(0.001, 0.02), Rung(0.0025, 0.04), Rung(0.005, 0.06), Rung(0.01, 0.10))


def capped(risk_per_trade: float, exposure_cap: float) -> Rung:
    """The values clamped to the R5.5 hard caps."""
    return Rung(min(risk_per_trade, HARD_CAP_RISK_PER_TRADE), min(exposure_cap, HARD_CAP_EXPOSURE))


def rung(index: int, ladder: Sequence[Rung] | None = None) -> Rung:
    """The rung at ``index`` (0 = the first), clamped to the ladder and never above the hard caps."""
    steps = tuple(ladder) if ladder else LADDER
    r = steps[max(0, min(index, len(steps) - 1))]
    return capped(r.risk_per_trade, r.exposure_cap)


def check_ladder(rungs: Sequence[Rung]) -> tuple[Rung, ...]:
    """A valid ladder or ValueError saying which rung is wrong and why (rung numbers from 1, as operators
    count them): 1..10 rungs, the first no higher than R2.1, each step up, none above the R5.5 hard caps."""
    if not 1 <= len(rungs) <= MAX_RUNGS:
        raise ValueError(f"the ladder needs 1 to {MAX_RUNGS} rungs, got {len(rungs)}")
    for n, r in enumerate(rungs, start=1):
        if not (r.risk_per_trade > 0 and r.exposure_cap > 0):
            raise ValueError(f"rung {n}: risk per trade and exposure cap must be > 0, got {r.risk_per_trade:g} "
                             f"and {r.exposure_cap:g}")
        if r.risk_per_trade > HARD_CAP_RISK_PER_TRADE:
            raise ValueError(f"rung {n}: risk per trade {r.risk_per_trade:.2%} is above the hard cap "
                             f"{HARD_CAP_RISK_PER_TRADE:.0%} (R5.5)")
        if r.exposure_cap > HARD_CAP_EXPOSURE:
            raise ValueError(f"rung {n}: exposure cap {r.exposure_cap:.2%} is above the hard cap "
                             f"{HARD_CAP_EXPOSURE:.0%} (R5.5)")
    first = rungs[0]
    if first.risk_per_trade > FIRST_RUNG_RISK or first.exposure_cap > FIRST_RUNG_EXPOSURE:
        raise ValueError(f"rung 1 ({first.text()}) is above where live starts: at most risk "
                         f"{FIRST_RUNG_RISK:.1%} and exposure {FIRST_RUNG_EXPOSURE:.0%} (R2.1)")
    for n, (low, high) in enumerate(pairwise(rungs), start=2):
        if high.risk_per_trade < low.risk_per_trade or high.exposure_cap < low.exposure_cap or high == low:
            raise ValueError(f"rung {n} ({high.text()}) must step up from rung {n - 1} ({low.text()})")
    return tuple(rungs)
