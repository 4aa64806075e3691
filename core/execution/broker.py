"""The Broker boundary: what the engine asks of any execution venue, paper or live, and order ids.

A broker keeps each symbol's working orders in ``Bar.working``; ``on_bar`` reports the fills that
happened since the last call. Client order ids are deterministic, so a retried or replayed submit carries
the same id and the exchange refuses the duplicate instead of doubling the order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from core.domain import Order, OrderFilled

if TYPE_CHECKING:
    from core.strategy.bar import Bar

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
OUR_PREFIX = "rp"  # every client order id Rampart makes starts with it


def base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def client_order_id(session_id: str, symbol: str, ts: int, tag: str, seq: int = 0) -> str:
    """``rp<session8>-<SYMBOL>-<ts36><tag>[seq]``: same decision → same id; ≤ 36 chars as Binance requires."""
    suffix = f"{base36(ts // 1000)}{tag[0]}{seq or ''}"
    return f"rp{session_id[:8]}-{symbol}-{suffix}"[:36]


class Broker(Protocol):
    """An execution venue. Paper simulates fills from bars; live talks to the exchange."""

    def submit(self, order: Order, bar: Bar, ts: int) -> None:
        """Send an order; it becomes working (``bar.working``) or is rejected (status REJECTED)."""

    def cancel(self, order: Order, bar: Bar, ts: int) -> None:
        """Cancel a working order (no-op when it is no longer open)."""

    def on_bar(self, bar: Bar, i: int) -> list[OrderFilled]:
        """Fills of ``bar``'s working orders during bar ``i`` (paper) or since the last call (live)."""
        ...
