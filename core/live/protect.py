"""The protection invariant (R9.3): while a position is open, a working protective stop for its full sellable quantity
is on the exchange.

Checked after every order poll, and first thing after a (re)start. What can break it, and what is done:

- no stop working (never placed, rejected, expired, cancelled by someone, refused with -1008 or a rate limit, a
  crash between the entry's fill and its stop): the stop is placed again at once, and again at each poll;
- a stop for less than the sellable quantity (the position grew, or the account holds less than the books: the
  balance is read and the books take the account's quantity first): replaced for the full quantity;
- a stop-limit that triggered in a gap and sits unfilled below its limit, or a market already below the stop:
  the position is sold at market;
- still unprotected ``protect_within_s`` after it was first seen: sold at market.

Each case is an event (``UNPROTECTED``, ``PROTECTION_RESTORED``, ``PROTECTION_SOLD``) that the alert rules raise
as an alert. Time is the engine's clock, so the sandbox's manual clock drives it in tests.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.domain import Order, OrderTag, Side
from core.errors import ExchangeError
from core.events import Event, EventCode, Protection
from core.market.candles import base_asset

if TYPE_CHECKING:
    from core.engine import Engine
    from core.execution.book import Book as Bar
    from core.execution.ccxt_broker import CcxtBroker
    from core.state.live import LiveState

log = logging.getLogger("rampart.live")


class Protector:
    """Keeps every open position of one live session covered by its protective stop."""

    def __init__(self, engine: Engine, broker: CcxtBroker, state: LiveState, protect_within_s: float) -> None:
        self.engine, self.broker, self.state = engine, broker, state
        self.within_ms = int(protect_within_s * 1000)
        self._since: dict[str, int] = {}  # symbol -> when it was first seen unprotected (engine ms)
        self._attempts: dict[str, int] = {}

    def check(self) -> None:
        """Restore protection wherever it is missing; call after the working orders were polled."""
        for bar in self.engine.books:
            try:
                self._check(bar)
            except ExchangeError as exc:  # the next poll tries again; the deadline still runs
                log.warning("protection of %s: %s", bar.symbol, exc)

    def uncovered(self) -> list[str]:
        """Symbols whose sellable position is not fully covered by working stops known to be on the exchange."""
        out = []
        for bar in self.engine.books:
            pos, inst = bar.position, bar.instrument
            sellable = inst.round_qty(pos.qty) if pos is not None else 0.0
            price = bar.close[-1] if bar.close else 0.0
            if pos is None or sellable <= 0 or sellable * (price or pos.avg_price) < inst.min_notional:
                continue
            covered = sum(o.remaining for o in bar.working if o.tag is OrderTag.STOP and o.is_open
                          and not self.broker.outcome_unknown(o))
            if covered < sellable * (1 - 1e-9):
                out.append(bar.symbol)
        return out

    def report_uncovered(self, why: str) -> None:
        """An ``UNPROTECTED`` event (an alert) for every symbol still without its full stop."""
        uncovered = set(self.uncovered())
        for bar in self.engine.books:
            if bar.symbol in uncovered and bar.position is not None:
                sellable = bar.instrument.round_qty(bar.position.qty)
                covered = sum(o.remaining for o in bar.working if o.tag is OrderTag.STOP and o.is_open)
                self.engine.emit(self._event(EventCode.UNPROTECTED, bar, sellable, covered, why, cause="EXIT"))

    def _check(self, bar: Bar) -> None:
        pos = bar.position
        inst = bar.instrument
        sellable = inst.round_qty(pos.qty) if pos is not None else 0.0
        price = bar.close[-1] if bar.close else 0.0
        if pos is None or sellable <= 0 or sellable * (price or pos.avg_price) < inst.min_notional:
            self._since.pop(bar.symbol, None)
            return
        stops = [o for o in bar.working if o.tag is OrderTag.STOP and o.is_open]
        now = self.engine.now()
        if any(self.broker.triggered(o) for o in stops) or (pos.stop is not None and 0 < price <= pos.stop):
            self._sell(bar, stops, "TRIGGERED_UNFILLED", "the stop triggered but did not fill")
            return
        covered = sum(o.remaining for o in stops if not self.broker.outcome_unknown(o))
        pending = any(self.broker.outcome_unknown(o) for o in stops)
        if covered >= sellable * (1 - 1e-9):
            if self._since.pop(bar.symbol, None) is not None:
                self.engine.emit(self._event(EventCode.PROTECTION_RESTORED, bar, sellable, covered, "stop working"))
            return
        first = bar.symbol not in self._since
        since = self._since.setdefault(bar.symbol, now)
        if first:
            why = "no stop working" if not stops else f"stops cover {covered:g} of {sellable:g}"
            self.engine.emit(self._event(EventCode.UNPROTECTED, bar, sellable, covered, why))
        if not pending and self._holding_short(bar):  # the books now hold the account's quantity: a stop or a
            pos = bar.position  # sale for more than that is refused, so both are sized from it
            if pos is None or inst.round_qty(pos.qty) <= covered * (1 + 1e-9):
                return  # covered after all: the next check records it restored
        if now - since >= self.within_ms:
            self._sell(bar, stops, "DEADLINE", f"unprotected for {(now - since) / 1000:.0f} s")
            return
        if pending or pos.stop is None:
            return  # a stop whose outcome is being asked for; or no stop price: the deadline sells
        self._attempts[bar.symbol] = self._attempts.get(bar.symbol, 0) + 1
        for order in stops[1:]:  # a stop for too little is replaced by one for the whole quantity: extra ones go,
            self.broker.cancel(order, bar, now)  # the last is swapped in one request where the venue can (R9.3)
        self.engine.place_stop(bar.symbol, pos.stop, seq=10 + self._attempts[bar.symbol])

    def _holding_short(self, bar: Bar) -> bool:
        """After a stop or a protective sale refused (for want of balance, say): the account's quantity becomes the
        position's (R9.1). True when the books changed."""
        last = next((o for o in reversed(self.engine.result.orders) if o.symbol == bar.symbol
                     and o.side is Side.SELL), None)
        if last is None or last.status.value != "rejected":
            return False
        totals = self.broker.read("fetch_balance", self.broker.client.fetch_balance).get("total", {})
        asset = base_asset(bar.symbol)
        held = float(totals.get(asset) or 0.0) - float(self.state.baseline.get(asset, 0.0))
        pos = bar.position
        if pos is None or abs(held - pos.qty) <= max(1e-12, pos.qty * 1e-9):
            return False
        self.engine.set_position_qty(bar.symbol, max(held, 0.0))
        return True

    def _sell(self, bar: Bar, stops: list[Order], why_code: str, why: str) -> None:
        pos = bar.position
        qty = pos.qty if pos is not None else 0.0
        self.engine.emit(self._event(EventCode.PROTECTION_SOLD, bar, qty, 0.0, f"{why}: sold at market",
                                     cause=why_code))
        self.engine.sell_at_market(bar.symbol, f"protection: {why}; sold at market")
        self._since.pop(bar.symbol, None)

    def _event(self, code: EventCode, bar: Bar, sellable: float, covered: float, why: str,
               cause: str | None = None) -> Event:
        pos = bar.position
        return Event.of(code, Protection(symbol=bar.symbol, sellable=sellable, covered=covered, why=why,
                                         stop=pos.stop if pos is not None else None, cause=cause))


__all__ = ["Protector"]
