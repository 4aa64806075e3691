"""When a resting order acts as the price path moves: trigger, activation and fill conditions, Binance's way.

Each open order that can act has one pending condition "price <= level" or "price >= level":
- a limit on the book (LIMIT, LIMIT_MAKER, a triggered *_LIMIT) fills at its limit when the price reaches
  it (buy: <= limit, sell: >= limit), as the maker. A limit that joined the book at its own price (a
  stop-limit triggered but not marketable, or the rest of a partial fill) first waits for the price to
  move a tick beyond it ("arm"), so it fills only if the price comes back: the classic stop-limit miss;
- STOP_LOSS(_LIMIT) triggers when a sell's stop is reached from above (price <= stop), a buy's from below
  (price >= stop); TAKE_PROFIT(_LIMIT) the other way round;
- with ``trailingDelta`` (basis points) a stop trails: a sell triggers when the price falls delta below the
  highest price since the trail started, a buy when it rises delta above the lowest. Without stopPrice the
  trail starts at placement; with stopPrice it starts once that price is reached (Binance's activation).
Segments of the path are straight lines, so the first point where a condition holds is found exactly.
"""

from __future__ import annotations

from typing import Literal

from core.sandbox.orders import Order

Direction = Literal["le", "ge"]
Event = Literal["fill", "trigger", "activate", "arm"]


def _stop_condition(order: Order) -> Direction:
    stop_loss = order.type.startswith("STOP_LOSS")
    sell = order.side == "SELL"
    return "le" if stop_loss == sell else "ge"


def pending(order: Order, tick: float) -> tuple[Event, Direction, float] | None:
    """The order's next condition on the price, or None when nothing can happen to it."""
    if not order.is_open:
        return None
    if order.rests_as_limit:
        limit = float(order.price)
        if order.needs_cross:  # first the price must move a tick past the limit, away from the fill side
            return ("arm", "ge", limit + tick) if order.side == "BUY" else ("arm", "le", limit - tick)
        return "fill", ("le" if order.side == "BUY" else "ge"), limit
    if not order.is_stop:
        return None
    if order.trailing_delta is not None and (order.trailing_active or order.stop_price == 0):
        delta = order.trailing_delta / 10_000.0
        if order.side == "SELL":
            return "trigger", "le", order.extreme * (1.0 - delta)
        return "trigger", "ge", order.extreme * (1.0 + delta)
    stop = float(order.stop_price)
    event: Event = "activate" if order.trailing_delta is not None else "trigger"
    return event, _stop_condition(order), stop


def holds(direction: Direction, level: float, price: float) -> bool:
    return price <= level if direction == "le" else price >= level


def crossing(direction: Direction, level: float, p_from: float, p_to: float) -> float | None:
    """Fraction (0..1) along the straight move p_from -> p_to where ``price <direction> level`` first holds."""
    if holds(direction, level, p_from):
        return 0.0
    if not holds(direction, level, p_to):
        return None
    return min(1.0, max(0.0, (level - p_from) / (p_to - p_from)))


def update_trail(order: Order, price: float) -> None:
    """Carry a started trail's extreme along (highest price for a sell, lowest for a buy)."""
    if order.trailing_delta is None or order.triggered or not (order.trailing_active or order.stop_price == 0):
        return
    if order.side == "SELL":
        order.extreme = max(order.extreme, price)
    else:
        order.extreme = min(order.extreme, price)


def would_trigger_now(order: Order, price: float) -> bool:
    """True when a (non-trailing-only) stop's condition already holds at placement: Binance rejects it."""
    if not order.is_stop or order.stop_price == 0:
        return False
    return holds(_stop_condition(order), float(order.stop_price), price)
