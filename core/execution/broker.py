"""The Broker boundary: what the engine asks of any execution venue, paper or live, and order ids.

A broker keeps each symbol's working orders in ``Book.working``; ``on_bar`` reports the fills that
happened since the last call. Client order ids are deterministic, so a retried or replayed submit carries
the same id and the exchange refuses the duplicate instead of doubling the order. Every broker measures a
fill's slippage against the same reference (``reference_price``), so paper and live compare.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Protocol

from core.domain import BUY, LIMIT, STOP, Order, OrderFilled

if TYPE_CHECKING:
    from core.execution.book import Book

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
OUR_PREFIX = "rp"  # every client order id Rampart makes starts with it


_PAIRS = [a + b for a in _B36 for b in _B36]  # two base-36 digits per step: half the divisions


def base36(n: int) -> str:
    """``n`` (not negative) in base 36, lowercase, no leading zeros."""
    if 0 <= n < 2_176_782_336:  # six digits (epoch seconds until 2038): three pairs, no loop
        high, low = divmod(n, 1_679_616)
        mid, low = divmod(low, 1296)
        return (_PAIRS[high] + _PAIRS[mid] + _PAIRS[low]).lstrip("0") or "0"
    out = ""
    while n >= 36:
        n, r = divmod(n, 1296)
        out = _PAIRS[r] + out
    return (_B36[n] + out) if n or not out else out


def client_order_id(session_id: str, symbol: str, ts: int, tag: str, seq: int = 0) -> str:
    """``rp<session8>-<SYMBOL>-<ts36><tag>[seq]``: same decision → same id; ≤ 36 chars as Binance requires."""
    suffix = f"{base36(ts // 1000)}{tag[0]}{seq or ''}"
    return f"rp{session_id[:8]}-{symbol}-{suffix}"[:36]


class Broker(Protocol):
    """An execution venue. Paper simulates fills from bars; live talks to the exchange."""

    def submit(self, order: Order, book: Book, ts: int, attached: Order | None = None) -> None:
        """Send an order; it becomes working (``book.working``) or is rejected (status REJECTED). ``attached``: an
        entry's protective stop sent with it, where ``attaches_stops``."""

    def cancel(self, order: Order, book: Book, ts: int) -> None:
        """Cancel a working order (no-op when it is no longer open)."""

    def replace(self, old: Order, new: Order, book: Book, ts: int) -> None:
        """Cancel ``old`` and send ``new`` — in one request where the venue can (no moment without a stop)."""

    def attaches_stops(self, symbol: str) -> bool:
        """True when an entry can carry its protective stop (then ``arm`` adopts it once the entry filled)."""
        ...

    def arm(self, stop: Order, book: Book, ts: int) -> bool:
        """The entry that carried ``stop`` filled: True when the stop is working on the venue."""
        ...

    def on_bar(self, book: Book, i: int) -> list[OrderFilled]:
        """Fills of ``book``'s working orders during bar ``i`` (paper) or since the last call (live)."""
        ...


def reference_price(order: Order, book: Book, ts: int) -> float:
    """What a fill is measured against, in paper and live alike: a stop's trigger, a limit's price, else the
    close of the bar the order was decided on (the latest bar at or before ``ts``)."""
    if order.type is STOP and order.stop_price:
        return order.stop_price
    if order.type is LIMIT and order.price:
        return order.price
    times = book.ts
    # a decision's time is a bar's open time: found by arithmetic on a regular timeline, else by search
    i = (ts - times[0]) // book.bar.timeframe_ms if times else -1
    if not (0 <= i < len(times) and times[i] == ts):
        i = bisect.bisect_right(times, ts) - 1
    return book.close[i] if 0 <= i < len(book.close) else (book.close[-1] if book.close else 0.0)


def slippage_cost(order: Order, price: float, qty: float, ref: float) -> float:
    """The signed quote cost of filling ``qty`` at ``price`` against ``ref``: positive when worse."""
    return (price - ref) * qty if order.side is BUY else (ref - price) * qty
