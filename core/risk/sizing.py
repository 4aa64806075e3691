"""Position sizing by risk per trade, exactly as the SPEC conventions define it.

``qty = equity * risk_per_trade * size_multiplier / (entry - stop)``, then cut by the exposure cap and the
cash available, rounded *down* to the lot step; below the minimum notional nothing is sent. Every result lists the
checks it made with their numbers (exposure cap, cash, lot step, minimum notional), for the decision log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.domain import Instrument, Reason
from core.quickinit import quick_init

# A market buy fills at the next price, not the one it was sized on: keep this much cash aside for the move.
CASH_BUFFER = 0.01
Checks = tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class SizingInputs:
    equity: float
    cash: float
    price: float
    stop: float
    risk_per_trade: float
    size_multiplier: float
    exposure_cap: float
    open_notional: float
    fee_rate: float


@quick_init
@dataclass(frozen=True, slots=True)
class Sized:
    """An approved size. ``quote_qty`` is set for all-in orders: spend that much cash at the fill price."""

    qty: float
    binding: str  # which limit decided the size: risk, exposure_cap, cash, all_in
    quote_qty: float | None = None
    checks: Checks = ()


@quick_init
@dataclass(frozen=True, slots=True)
class SizeRefused:
    code: str
    detail: str
    checks: Checks = ()


def size_by_risk(x: SizingInputs, inst: Instrument) -> Sized | SizeRefused:
    """The SPEC sizing formula with its caps; a refusal carries the coded reason and the numbers."""
    distance = x.price - x.stop
    if not (x.stop > 0 and distance > 0):
        return SizeRefused(Reason.INVALID_STOP, f"stop {x.stop:.2f} must be below the entry {x.price:.2f}")
    qty = x.equity * x.risk_per_trade * x.size_multiplier / distance
    binding = "risk"
    room = x.exposure_cap * x.equity - x.open_notional
    cap = {"check": "exposure_cap", "cap": x.exposure_cap, "open_notional": x.open_notional, "equity": x.equity,
           "room": room, "wanted": qty * x.price}
    if room <= 0:
        return SizeRefused(Reason.EXPOSURE_CAP, f"exposure {x.open_notional / x.equity:.2%} already at the cap "
                                                f"{x.exposure_cap:.2%}", ({**cap, "result": "fail"},))
    if qty * x.price > room:
        qty, binding = room / x.price, "exposure_cap"
    affordable = x.cash / (x.price * (1.0 + x.fee_rate) * (1.0 + CASH_BUFFER))
    cash = {"check": "cash", "cash": x.cash, "affordable_qty": affordable, "qty": qty, "result": "pass"}
    if qty > affordable:
        qty, binding = affordable, "cash"
    return _round(qty, binding, x.price, inst, ({**cap, "result": "pass"}, cash))


def size_all_in(cash: float, price: float, fee_rate: float, inst: Instrument) -> Sized | SizeRefused:
    """Spend all cash (the benchmark workload's sizing): the quantity is fixed at the fill price."""
    estimate = cash / (price * (1.0 + fee_rate))
    notional = {"check": "min_notional", "notional": estimate * price, "min": inst.min_notional}
    if estimate * price < inst.min_notional:
        return SizeRefused(Reason.BELOW_MIN_NOTIONAL,
                           f"cash {cash:.2f} buys {estimate * price:.2f} < min notional {inst.min_notional:.2f}",
                           ({**notional, "result": "fail"},))
    if estimate <= 0:
        return SizeRefused(Reason.INSUFFICIENT_CASH, f"cash {cash:.2f}",
                           ({"check": "cash", "cash": cash, "result": "fail"},))
    return Sized(estimate, "all_in", quote_qty=cash, checks=({**notional, "result": "pass"},))


def _round(qty: float, binding: str, price: float, inst: Instrument, checks: Checks) -> Sized | SizeRefused:
    rounded = inst.round_qty(qty)
    step = {"check": "lot_step", "qty": qty, "rounded": rounded, "step": inst.lot_step}
    if rounded <= 0:
        return SizeRefused(Reason.BELOW_LOT_STEP, f"size {qty:.8f} rounds to 0 at lot step {inst.lot_step:g}",
                           (*checks, {**step, "result": "fail"}))
    notional = {"check": "min_notional", "notional": rounded * price, "min": inst.min_notional}
    if rounded * price < inst.min_notional:
        return SizeRefused(Reason.BELOW_MIN_NOTIONAL,
                           f"notional {rounded * price:.2f} < min notional {inst.min_notional:.2f}",
                           (*checks, {**step, "result": "pass"}, {**notional, "result": "fail"}))
    return Sized(rounded, binding, checks=(*checks, {**step, "result": "pass"}, {**notional, "result": "pass"}))
