"""Reconciliation: compare what Rampart believes (the live state) with what the exchange says, and repair.

Run before any new order at start (R6.4) and periodically. The exchange is the authority:
- an order Rampart journalled but the exchange never received is dropped;
- an order that filled while Rampart was down is reported as fills to book (a stop that fired closes the
  position and records the trade);
- an order on the account that Rampart did not place is left alone and raised (``UNEXPLAINED_ORDER``);
- a base-asset balance that Rampart's positions do not explain is raised (``POSITION_MISMATCH``) and the
  managed position is repaired to the exchange's quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.domain import Order, OrderFilled, OrderStatus, OrderTag, Position, Side
from core.errors import ExchangeUnavailable, OrderNotFound
from core.events import Event, EventCode, OrderProblem, Reconciled
from core.execution.broker import OUR_PREFIX
from core.execution.ccxt_broker import CcxtBroker
from core.market.candles import base_asset, symbol_to_ccxt
from core.state.live import LiveState


@dataclass
class ReconcileReport:
    orders: dict[str, list[Order]] = field(default_factory=dict)  # symbol -> our working orders
    fills: dict[str, list[tuple[Order, OrderFilled]]] = field(default_factory=dict)  # filled while away
    # journalled orders that ended while away without a new fill (cancelled, expired, rejected): recorded by the
    # session that finds them, so every order Rampart sent is in the store even when its sender died unflushed
    ended: dict[str, list[Order]] = field(default_factory=dict)
    positions: dict[str, Position | None] = field(default_factory=dict)
    cash: float = 0.0
    repairs: dict[str, float] = field(default_factory=dict)  # symbol -> managed qty to set after booking fills
    events: list[Event] = field(default_factory=list)

    def event(self, code: EventCode, order: str | None = None, symbol: str | None = None, **extra: Any) -> None:
        self.events.append(Event.of(code, Reconciled(order=order, symbol=symbol, extra=extra)))


def reconcile(broker: CcxtBroker, state: LiveState, symbols: list[str], quote: str = "USDT") -> ReconcileReport:
    """Compare journalled orders, open orders and balances with the exchange; the report says what to restore."""
    report = ReconcileReport()
    for sym in symbols:
        report.orders[sym] = []
        report.fills[sym] = []
        report.ended[sym] = []
        report.positions[sym] = state.position(sym)
    _journalled_orders(broker, state, report)
    _open_orders(broker, state, symbols, report)
    _balances(broker, state, symbols, quote, report)
    return report


def _journalled_orders(broker: CcxtBroker, state: LiveState, report: ReconcileReport) -> None:
    for cid in list(state.orders):
        order = state.order(cid)
        if order.symbol not in report.orders:
            continue
        was_filled = order.filled_qty
        try:
            info = broker.fetch(order)
        except OrderNotFound:
            if order.tag is not OrderTag.STOP and order.status is OrderStatus.SUBMITTED:
                # sent, never confirmed: it may still execute (R9.4); asked for until the window passes
                broker.expect(order)
                report.orders[order.symbol].append(order)
                report.events.append(Event.of(EventCode.ORDER_OUTCOME_UNKNOWN, OrderProblem(
                    client_order_id=cid, symbol=order.symbol, error="journalled before a restart, not seen yet")))
                continue
            report.event(EventCode.ORDER_NEVER_SENT, cid)  # a stop: the protection invariant places it again
            del state.orders[cid]
            continue
        broker._adopt(order, info, order.created_ts)
        if order.filled_qty > was_filled:
            fills: list[OrderFilled] = []
            broker._value[cid] = was_filled * (order.avg_fill_price if was_filled else 0.0)
            broker._reported[cid] = (was_filled, 0.0, 0.0)
            broker._emit_new(order, info, fills)
            report.fills[order.symbol].extend((order, f) for f in fills)
            report.event(EventCode.FILLED_WHILE_AWAY, cid, order.symbol, tag=order.tag.value,
                         qty=order.filled_qty - was_filled, price=order.avg_fill_price)
        if order.is_open:
            report.orders[order.symbol].append(order)
        else:
            if order.filled_qty <= was_filled:
                report.ended[order.symbol].append(order)
            del state.orders[cid]


def _open_orders(broker: CcxtBroker, state: LiveState, symbols: list[str], report: ReconcileReport) -> None:
    known = {o.client_order_id for orders in report.orders.values() for o in orders}
    for sym in symbols:
        try:
            open_orders = broker.read("fetch_open_orders", broker.client.fetch_open_orders, symbol_to_ccxt(sym))
        except ExchangeUnavailable as exc:
            report.event(EventCode.RECONCILE_INCOMPLETE, symbol=sym, error=str(exc))
            continue
        for info in open_orders:
            cid = str(info.get("clientOrderId") or "")
            if cid in known:
                continue
            if cid.startswith(OUR_PREFIX):
                report.event(EventCode.ORDER_NOT_JOURNALLED, cid, sym)
            else:
                report.event(EventCode.UNEXPLAINED_ORDER, str(info.get("id")), sym, client_order_id=cid,
                             side=info.get("side"), amount=info.get("amount"), price=info.get("price"))


def _balances(broker: CcxtBroker, state: LiveState, symbols: list[str], quote: str,
              report: ReconcileReport) -> None:
    """Expected managed quantity = journalled position + what filled while away; the exchange must agree."""
    balance = broker.read("fetch_balance", broker.client.fetch_balance)
    totals = balance.get("total", {})
    report.cash = float(totals.get(quote) or 0.0)
    for sym in symbols:
        asset = base_asset(sym)
        held = float(totals.get(asset) or 0.0) - float(state.baseline.get(asset, 0.0))
        pos = report.positions[sym]
        dust = float(state.dust.get(sym, 0.0))
        expected = (pos.qty if pos else 0.0) + dust  # dust is on the account too
        for _, fill in report.fills[sym]:
            expected += fill.held if fill.side is Side.BUY else -fill.qty  # a buy holds what its fee left
        expected = max(expected, 0.0)
        if abs(held - expected) > max(1e-9, expected * 1e-6):
            report.event(EventCode.POSITION_MISMATCH, symbol=sym, asset=asset, exchange=held, expected=expected)
            report.repairs[sym] = max(held - dust, 0.0)
