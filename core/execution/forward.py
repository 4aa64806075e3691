"""ForwardBroker: simulated fills on the live market, for forward paper trading (R1.6, issue 17).

The paper fill model, driven by the live market instead of replayed candles:
- a market order fills at the live price (the mid of the exchange's best bid and ask) the first time the engine
  asks after sending it — at once, in the same poll — made worse by the slippage model;
- a stop or a limit is matched against every closed candle that began after it was placed (its low and high, as
  replay does: a gap through a stop fills at the open), and, between candles, against the live price, so a stop
  that is touched fills in real time, as it would on the exchange.
Only public market data is read; no credentials exist here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from core.domain import Order, OrderFilled, OrderStatus, OrderType, Side
from core.events import Event, EventCode, OrderProblem
from core.execution.paper import FillModelConfig, PaperBroker, _rewake

if TYPE_CHECKING:
    from core.execution.book import Book
    from core.portfolio import Portfolio

Price = Callable[[str], float | None]  # the live price of a symbol; None when the market did not answer


class ForwardBroker(PaperBroker):
    """Paper fills from the live price (``price``) and each closed candle; ``clock`` is the engine's time."""

    def __init__(self, config: FillModelConfig, portfolio: Portfolio, price: Price, clock: Callable[[], int],
                 timeframe_ms: int) -> None:
        super().__init__(config, portfolio)
        self.price, self.clock, self.timeframe_ms = price, clock, timeframe_ms
        self.before_submit: Callable[[Order], None] | None = None  # the session journals every order first
        self._matched: dict[str, int] = {}  # client order id -> open time of the last candle it was matched against

    def submit(self, order: Order, bar: Book, ts: int, attached: Order | None = None) -> None:
        if self.before_submit is not None:
            self.before_submit(order)
        super().submit(order, bar, ts)

    def on_bar(self, bar: Book, i: int) -> list[OrderFilled]:
        """Market orders at the live price now; else the stops and limits against candle ``i`` (once each)."""
        fills: list[OrderFilled] = []
        market = [o for o in bar.working if o.type is OrderType.MARKET]
        if market:
            mid = self.price(bar.symbol)
            if mid is None:  # the market did not answer: the order waits for the next poll
                return fills
            now = self.clock()
            for order in market:
                slip = 1.0 + self._slip if order.side is Side.BUY else 1.0 - self._slip
                self._fill(bar, order, mid * slip, now, fills, taker=True)
            _rewake(bar)
            return fills
        if not bar.ts:
            return fills
        start = bar.ts[i]
        eligible = [o for o in bar.working if self._placed_before_end(o, start)
                    and self._matched.get(o.client_order_id, -1) < start]
        if not eligible:
            return fills
        for order in eligible:
            self._matched[order.client_order_id] = start
        others = [o for o in bar.working if o not in eligible]
        bar.working[:] = eligible  # the replay rules, on these orders only
        try:
            fills = super().on_bar(bar, i)
        finally:
            bar.working[:] = [*bar.working, *others]
            _rewake(bar)
        return fills

    def poll(self, bar: Book) -> list[OrderFilled]:
        """Between candles: stops and limits against the live price now (a touched stop fills in real time)."""
        fills: list[OrderFilled] = []
        waiting = [o for o in bar.working if o.type in (OrderType.STOP, OrderType.LIMIT)]
        if not waiting:
            return fills
        price = self.price(bar.symbol)
        if price is None:
            return fills
        now = self.clock()
        for order in waiting:
            if order.type is OrderType.STOP:
                level = order.stop_price or 0.0
                hit = price <= level if order.side is Side.SELL else price >= level
                slip = 1.0 - self._slip if order.side is Side.SELL else 1.0 + self._slip
                if hit:
                    self._fill(bar, order, price * slip, now, fills, taker=True)
            else:
                level = order.price or 0.0
                if (price <= level) if order.side is Side.BUY else (price >= level):
                    self._fill(bar, order, level, now, fills, taker=False)
        _rewake(bar)
        return fills

    def restored(self, bar: Book) -> None:
        """Working orders put back after a restart: the levels at which they can fire."""
        _rewake(bar)

    def expire(self, order: Order, bar: Book, ts: int, why: str) -> None:
        """A market order journalled before a crash whose fill was never recorded: it did not happen."""
        if order.is_open:
            order.apply(OrderStatus.EXPIRED, ts)
        if order in bar.working:
            bar.working.remove(order)
        self.notices.append(Event.of(EventCode.ORDER_NOT_SENT, OrderProblem(
            client_order_id=order.client_order_id, symbol=order.symbol, error=why), ts=ts))

    def _placed_before_end(self, order: Order, start: int) -> bool:
        """The candle opening at ``start`` ran after the order was placed (the candle it was placed in counts:
        from its open, the order was working for the rest of it — replay's rule)."""
        return order.created_ts // self.timeframe_ms * self.timeframe_ms <= start
