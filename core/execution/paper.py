"""PaperBroker: simulated fills from candles, the only thing that differs between paper and live (R1.1).

Fill model (taker fee 0.1 % by default), Binance's rules where they matter:
- market orders fill at the next bar's open, made worse by the slippage model;
- stop (sell) orders trigger when the bar's low reaches the stop and fill at the stop, or at the open when the
  bar gaps through it (worse), then slippage;
- limit orders fill at the limit, or at the open when it is better, with the maker fee and no slippage;
- a buy's commission is charged in the coin received (Binance without BNB): the position holds the bought
  quantity less the fee, and what the lot step cannot sell of it is dust, as on the account (R9.1);
- slippage is measured against the same reference as live (``reference_price``: the decision bar's close, the
  stop's trigger or the limit), signed, so the slippage breaker and the reports read paper and live alike.
A buy larger than the cash available is reduced to what the cash pays for (``ENTRY_CLAMPED``), as a
quote-quantity market order on Binance would be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.domain import (
    ACCEPTED,
    BUY,
    CANCELED,
    LIMIT,
    MARKET,
    REJECTED,
    SELL,
    STOP,
    SUBMITTED,
    Order,
    OrderFilled,
)
from core.events import Event, EventCode, PaperFill
from core.execution.broker import reference_price, slippage_cost
from core.market.candles import base_asset

if TYPE_CHECKING:
    from core.execution.book import Book as Bar
    from core.portfolio import Portfolio


@dataclass(frozen=True, slots=True)
class FillModelConfig:
    taker_fee: float = 0.001
    maker_fee: float = 0.001
    slippage_bps: float = 0.0
    commission: str = "base"  # "base": a buy pays in the coin received (Binance); "quote": in USDT


class PaperBroker:
    """Matches working orders against each bar's open/high/low; books nothing itself (the engine does)."""

    def __init__(self, config: FillModelConfig, portfolio: Portfolio) -> None:
        self.config = config
        self.portfolio = portfolio
        self._slip = config.slippage_bps / 10_000.0
        self.notices: list[Event] = []  # for the session's event log
        self._refs: dict[str, float] = {}  # client order id -> the price its slippage is measured against

    def submit(self, order: Order, bar: Bar, ts: int, attached: Order | None = None) -> None:
        order.apply(SUBMITTED, ts)
        order.apply(ACCEPTED, ts)
        self._refs[order.client_order_id] = reference_price(order, bar, ts)
        bar.working.append(order)
        _wake_on(bar, order)

    def attaches_stops(self, symbol: str) -> bool:
        """Paper books an entry's fill and places its stop in the same step: nothing can fall between them."""
        return False

    def arm(self, stop: Order, bar: Bar, ts: int) -> bool:
        return False

    def replace(self, old: Order, new: Order, bar: Bar, ts: int) -> None:
        self.cancel(old, bar, ts)
        self.submit(new, bar, ts)

    def cancel(self, order: Order, bar: Bar, ts: int) -> None:
        self._refs.pop(order.client_order_id, None)
        if order.is_open:
            order.apply(CANCELED, ts)
        if order in bar.working:
            bar.working.remove(order)
            _rewake(bar)

    def on_bar(self, bar: Bar, i: int) -> list[OrderFilled]:
        """Two passes per bar: market orders at the open first; then, called again by the engine once those
        fills are booked, stops and limits against the bar's range. Returns [] when nothing more can fill."""
        fills: list[OrderFilled] = []
        ts = bar.ts[i]
        op = bar.open[i]
        working = len(bar.working)
        if bar.n_market:
            for order in [o for o in bar.working if o.type is MARKET]:
                self._fill(bar, order, op * (1.0 + self._slip if order.side is BUY else 1.0 - self._slip),
                           ts, fills, taker=True)
            if fills:  # let the engine book the open's fills (and place or cancel stops) before the intrabar pass
                _rewake(bar)
                return fills
            if len(bar.working) != working:  # refused for want of cash: gone from the book
                _rewake(bar)
                working = len(bar.working)
        low = bar.low[i]
        high = bar.high[i]
        for order in [o for o in bar.working if o.type is not MARKET]:
            if order.type is STOP:
                stop = order.stop_price or 0.0
                if order.side is SELL and low <= stop:
                    self._fill(bar, order, min(op, stop) * (1.0 - self._slip), ts, fills, taker=True)
                elif order.side is BUY and high >= stop:
                    self._fill(bar, order, max(op, stop) * (1.0 + self._slip), ts, fills, taker=True)
            elif order.type is LIMIT:
                limit = order.price or 0.0
                if order.side is BUY and low <= limit:
                    self._fill(bar, order, min(op, limit), ts, fills, taker=False)
                elif order.side is SELL and high >= limit:
                    self._fill(bar, order, max(op, limit), ts, fills, taker=False)
        if len(bar.working) != working:  # filled (or cancelled) orders left the book: its wake prices change
            _rewake(bar)
        return fills

    def _fill(self, bar: Bar, order: Order, price: float, ts: int, fills: list[OrderFilled], *,
              taker: bool) -> None:
        fee_rate = self.config.taker_fee if taker else self.config.maker_fee
        qty = order.remaining
        if order.side is BUY:
            qty = self._affordable(bar, order, qty, price, fee_rate, ts)
            if qty <= 0:
                order.apply(REJECTED, ts)
                bar.working.remove(order)
                self.notices.append(Event.of(EventCode.INSUFFICIENT_BALANCE, PaperFill(
                    client_order_id=order.client_order_id, symbol=order.symbol, price=price), ts=ts))
                return
        else:
            pos = self.portfolio.positions.get(order.symbol)
            qty = min(qty, pos.qty) if pos is not None else 0.0
            if qty <= 0:
                order.apply(CANCELED, ts)
                bar.working.remove(order)
                self._refs.pop(order.client_order_id, None)
                return
        fee = qty * price * fee_rate
        # Binance: a buy pays its commission in the coin received; a sell in the quote it receives
        in_base = order.side is BUY and self.config.commission == "base"
        fee_qty, fee_asset = (qty * fee_rate, base_asset(order.symbol)) if in_base else (0.0, "USDT")
        order.record_fill(qty, price, ts)
        if not order.is_open:
            bar.working.remove(order)
            ref = self._refs.pop(order.client_order_id, price)
        else:
            ref = self._refs.get(order.client_order_id, price)
        fills.append(OrderFilled(f"{order.client_order_id}-{len(fills) + 1}", order.client_order_id,
                                 order.symbol, order.side, qty, price, fee, ts, order.tag,
                                 "taker" if taker else "maker", slippage_cost(order, price, qty, ref), fee_asset,
                                 fee_qty))

    def _affordable(self, bar: Bar, order: Order, qty: float, price: float, fee_rate: float,
                    ts: int) -> float:
        """Quote-sized orders spend their quote amount; any buy is cut to the cash available."""
        cash = self.portfolio.cash
        budget = min(order.quote_qty, cash) if order.quote_qty else cash
        max_qty = bar.instrument.round_qty(budget / (price * (1.0 + fee_rate)))
        if order.quote_qty:
            order.qty = order.filled_qty + max_qty  # the quantity follows from the fill price
            return max_qty
        if qty > max_qty:
            self.notices.append(Event.of(EventCode.ENTRY_CLAMPED, PaperFill(
                client_order_id=order.client_order_id, symbol=order.symbol, price=price, qty=qty, cut_to=max_qty),
                ts=ts))
            order.qty = order.filled_qty + max_qty
            return max_qty
        return qty


def _wake_on(bar: Bar, o: Order) -> None:
    """One more working order: the prices at which the bar's orders can trigger (see Bar.wake_low) take it in."""
    if o.type is MARKET:
        bar.n_market += 1
    elif (o.type is STOP) is (o.side is SELL):  # sell stop or buy limit: fires on the low
        bar.wake_low = max(bar.wake_low, (o.stop_price if o.type is STOP else o.price) or 0.0)
    else:  # buy stop or sell limit: fires on the high
        bar.wake_high = min(bar.wake_high, (o.stop_price if o.type is STOP else o.price) or math.inf)


def _rewake(bar: Bar) -> None:
    """Recompute the prices at which this bar's working orders can trigger, from all of them."""
    bar.n_market = 0
    bar.wake_low = -math.inf
    bar.wake_high = math.inf
    for o in bar.working:
        _wake_on(bar, o)
