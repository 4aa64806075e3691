"""Order lists on the sandbox exchange (no HTTP): placing an OTO/OPO, its pending order, cancels and lookups.

Binance's rules (rest-api.md, New Order list - OTO; enums.md; user-data-stream.md, Order Expiry Reason; faqs/opo):
- only the working order goes on the book; the pending order waits as PENDING_NEW (listed among the open orders,
  holding no balance, never matched) and is placed only when the working order is FULLY filled, at that moment
  and price, by the ordinary order rules: a lack of funds, a filter or "would trigger immediately" then expires it
  with expiryReason REJECTED (an OTO's pending quantity is fixed at submission: when the buy's commission came out
  of the coin bought, a pending sell for the whole bought quantity lacks funds);
- an OPO's pending SELL takes the quantity the working BUY received: the commission is taken from the free base
  balance when that covers it, else out of the received quantity; then it is floored to LOT_SIZE (MARKET_LOT_SIZE
  too for a market order). Simplification: the received coins are locked for the pending order when the working
  order completes, not fill by fill;
- a working order that expires (an IOC not fully filled: UNFILLED_IOC_QUANTITY_EXPIRED, even after a partial
  fill) expires the pending order too (OTO_PHASE_ONE_EXPIRED): a partial fill of an IOC working order leaves the
  bought quantity WITHOUT the pending order, and the list ALL_DONE;
- cancelling either order (DELETE /api/v3/order, cancelReplace, DELETE /api/v3/openOrders) or the list (DELETE
  /api/v3/orderList) cancels the other while it is still open;
- the placement response shows each order as it was right after the working order's immediate execution: when
  that filled it completely, the pending order still appears PENDING_NEW ("You need to query the status of the
  pending order again"); when it expired, the pending order appears EXPIRED (the docs do not say; the sandbox's
  choice);
- the list is EXEC_STARTED / EXECUTING until both orders ended, then ALL_DONE. A new list's listClientOrderId must
  differ from those of the open lists (-2010 "Duplicate order sent." otherwise, the sandbox's choice of message).
Limits: an OTO adds 2 orders to MAX_NUM_ORDERS, its pending stop counts in MAX_NUM_ALGO_ORDERS, and at most
MAX_NUM_ORDER_LISTS open lists per symbol.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

from core.sandbox import binance_errors as be
from core.sandbox.order_lists import ListRequest, OrderList, parse_list, pending_report
from core.sandbox.orders import LIMIT_TYPES, Order
from core.sandbox.symbols import MAX_NUM_ALGO_ORDERS, MAX_NUM_ORDER_LISTS, MAX_NUM_ORDERS, ZERO, check_quantity

if TYPE_CHECKING:
    from core.sandbox.accounts import Account
    from core.sandbox.exchange import SandboxExchange


class ListDesk:
    """The order lists of every account of one SandboxExchange (whose lock guards them too)."""

    def __init__(self, exchange: SandboxExchange) -> None:
        self.exchange = exchange
        self.lists: dict[int, OrderList] = {}
        self._ids = itertools.count(0)

    # --- placement -----------------------------------------------------------------------------------------
    def place(self, api_key: str, params: dict[str, str], *, opo: bool = False,
              partial: float | None = None) -> dict[str, Any]:
        """POST /api/v3/orderList/oto (or /opo) for the account of ``api_key``: the Binance response, or
        BinanceError with nothing booked. ``partial`` (the partial_fill fault) cuts the working order's fill."""
        x = self.exchange
        with x.lock:
            now = x.sync()
            req = parse_list(params, x.market.specs, opo=opo)
            account = x.account_of(api_key)
            self._check(account, req, now)
            spec = x.market.specs[req.symbol]
            price = x.market.price(req.symbol, now)
            w, p = req.working, req.pending
            list_id = next(self._ids)
            working = Order(next(x._order_ids), account.id, req.symbol, w.client_order_id, w.side, w.type,
                            w.time_in_force, w.price, w.quantity or ZERO, now, iceberg_qty=w.iceberg_qty,
                            stp_mode=w.stp_mode, update_time=now, order_list_id=list_id)
            pending = Order(next(x._order_ids), account.id, req.symbol, p.client_order_id, p.side, p.type,
                            p.time_in_force, p.price, ZERO if opo else (p.quantity or ZERO), now,
                            stop_price=p.stop_price, iceberg_qty=p.iceberg_qty, trailing_delta=p.trailing_delta,
                            stp_mode=p.stp_mode, status="PENDING_NEW", update_time=now, order_list_id=list_id)
            lst = OrderList(list_id, account.id, req.symbol, req.list_client_order_id, working, pending, p, now, opo)
            before = pending_report(lst, req.resp_type, now)
            self.lists[list_id] = lst
            try:
                trades = x._place_limit(account, working, w, spec, price, now, partial)
            except be.BinanceError:  # refused before anything executed (funds, LIMIT_MAKER would take)
                del self.lists[list_id]
                raise
            account.orders[working.order_id] = working
            account.orders[pending.order_id] = pending
            if working.is_open:
                x._working[req.symbol].append(working)
            x.orders_placed[api_key] += 2
            account.update_time = now
            after = before if working.status == "FILLED" else pending_report(lst, req.resp_type, now)
            return lst.placed_json([working.new_json(req.resp_type, now, trades), after])

    def _check(self, account: Account, req: ListRequest, now: int) -> None:
        """The working order as any new order; the pending order's filters (an OPO's notional waits for its
        quantity); the list's counts and ids."""
        x = self.exchange
        spec = x.market.specs[req.symbol]
        price = x.market.price(req.symbol, now)
        x._check(account, req.working, spec, price, now)
        x.check_filters(req.pending, spec, price, now, notional=not req.opo)
        open_here = account.open_orders(req.symbol)
        if len(open_here) + 2 > MAX_NUM_ORDERS:
            raise be.filter_failure("MAX_NUM_ORDERS")
        if req.pending.type not in ("MARKET", *LIMIT_TYPES) and \
                sum(o.is_stop for o in open_here) + 1 > MAX_NUM_ALGO_ORDERS:
            raise be.filter_failure("MAX_NUM_ALGO_ORDERS")
        open_lists = self.open_lists(account)
        if sum(lst.symbol == req.symbol for lst in open_lists) >= MAX_NUM_ORDER_LISTS:
            raise be.filter_failure("MAX_NUM_ORDER_LISTS")
        pool = account.open_orders() if x.config.unique_client_order_ids == "open" else account.orders.values()
        taken = {o.client_order_id for o in pool} | {req.working.client_order_id}
        if req.pending.client_order_id in taken:
            raise be.order_rejected(be.DUPLICATE_ORDER)
        if any(lst.list_client_order_id == req.list_client_order_id for lst in open_lists):
            raise be.order_rejected(be.DUPLICATE_ORDER)

    # --- the list's life -----------------------------------------------------------------------------------
    def order_done(self, account: Account, order: Order, t: int) -> None:
        """``order`` of a list just ended (SandboxExchange._finish): place, expire or cancel the other one."""
        lst = self.lists.get(order.order_list_id)
        if lst is None or lst.done:
            return
        x = self.exchange
        if order is lst.working:
            if order.status == "FILLED":
                self._place_pending(account, lst, t)
                return
            lst.done = True  # before ending the pending order: its own _finish comes back here
            if lst.pending.is_open:
                if order.status == "CANCELED":
                    x._finish(account, lst.pending, "CANCELED", t)
                else:
                    lst.pending.expiry_reason = "OTO_PHASE_ONE_EXPIRED"
                    x._finish(account, lst.pending, "EXPIRED", t)
            return
        lst.done = True
        if lst.working.is_open:  # the pending order cancelled while the working one still works
            x._finish(account, lst.working, "CANCELED", t)

    def _place_pending(self, account: Account, lst: OrderList, t: int) -> None:
        """The working order filled: the pending order goes on the book now, or expires REJECTED."""
        x = self.exchange
        pending = lst.pending
        spec = x.market.specs[lst.symbol]
        price = x.market.price(lst.symbol, t)
        req = lst.pending_req
        pending.status, pending.update_time = "NEW", t
        try:
            if lst.opo:
                qty = self._received(account, lst)
                check_quantity(spec, qty, market=req.is_market)
                req = dataclasses.replace(req, quantity=qty)
                pending.orig_qty = qty
                x.check_filters(req, spec, price, t)
            if req.is_market:
                x._place_market(account, pending, req, spec, price, t, None)
            elif req.type in LIMIT_TYPES:
                x._place_limit(account, pending, req, spec, price, t, None)
            else:
                x._place_stop(account, pending, spec, price, t)
        except be.BinanceError:
            pending.expiry_reason = "REJECTED"
            lst.done = True
            x._finish(account, pending, "EXPIRED", t)
            return
        if pending.is_open and pending not in x._working[lst.symbol]:
            x._working[lst.symbol].append(pending)

    def _received(self, account: Account, lst: OrderList) -> Any:
        """faqs/opo: what the working BUY received, for the pending SELL: its whole quantity when the free base
        balance also covers the commission charged in the base coin, else the quantity less that commission;
        floored to the lot step."""
        spec = self.exchange.market.specs[lst.symbol]
        executed = lst.working.executed_qty
        base_fee = sum((tr.commission for tr in lst.working.trades if tr.commission_asset == spec.base), ZERO)
        free = account.free[spec.base]
        received = executed if free >= executed else executed - base_fee
        return spec.floor_qty(min(received, free))

    # --- cancels and lookups ----------------------------------------------------------------------------------
    def cancel(self, account: Account, lst: OrderList, cancel_client_id: str) -> dict[str, Any]:
        """Cancel a list that is still executing (the caller checked): its open orders end CANCELED."""
        x = self.exchange
        with x.lock:
            now = x.market.now()
            for order in lst.orders:
                if order.is_open:
                    x.cancel(account, order)  # the other one follows (order_done)
            lst.done = True
            return lst.cancel_json(cancel_client_id, now)

    def find(self, account: Account, list_id: int | None, list_client_id: str | None) -> OrderList | None:
        """The account's list by id (its listClientOrderId must then match too, when given), or the latest one
        with that listClientOrderId."""
        if list_id is not None:
            lst = self.lists.get(list_id)
            if lst is None or lst.account != account.id:
                return None
            if list_client_id is not None and lst.list_client_order_id != list_client_id:
                return None
            return lst
        found = [lst for lst in self.lists.values()
                 if lst.account == account.id and lst.list_client_order_id == list_client_id]
        return found[-1] if found else None

    def of(self, account: Account) -> list[OrderList]:
        return [lst for lst in self.lists.values() if lst.account == account.id]

    def open_lists(self, account: Account) -> list[OrderList]:
        return [lst for lst in self.of(account) if not lst.done]
