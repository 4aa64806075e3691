"""Order lists of the sandbox as Binance spot shapes them (rest-api.md, Order lists): OTO and OPO requests and JSON.

An OTO (``POST /api/v3/orderList/oto``) is a working order (LIMIT or LIMIT_MAKER) and a pending order of any type
but a quote-sized MARKET; an OPO (``/orderList/opo``, faqs/opo) is an OTO whose pending order has no quantity:
it sells what the working BUY received. Each leg's parameters are a new order's with a ``working``/``pending``
prefix (``workingPrice``, ``pendingStopPrice``, ``pendingClientOrderId`` ...) and are checked by the same rules and
error codes as ``POST /api/v3/order``, the messages naming the prefixed parameter. What the list does on the
exchange (placing the pending order when the working one fills, cancelling together) is core.sandbox.list_desk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.sandbox import binance_errors as be
from core.sandbox.order_params import CLIENT_ID, CLIENT_ID_RANGE, RESP_TYPES, NewOrder, new_client_id, parse_new_order
from core.sandbox.orders import Order
from core.sandbox.symbols import ORDER_TYPES, SymbolSpec

WORKING_TYPES = ("LIMIT", "LIMIT_MAKER")
LIST_RESP_DEFAULT = "RESULT"  # the shape of rest-api.md's OCO/OTO/OPO response examples
# new-order parameter -> the suffix after "working"/"pending"
_LEG_FIELDS: dict[str, str] = {
    "side": "Side", "type": "Type", "price": "Price", "quantity": "Quantity", "timeInForce": "TimeInForce",
    "icebergQty": "IcebergQty", "stopPrice": "StopPrice", "trailingDelta": "TrailingDelta",
    "newClientOrderId": "ClientOrderId",
}
_QUOTED = re.compile(r"'([A-Za-z]+)'")


@dataclass(frozen=True)
class ListRequest:
    """A validated OTO/OPO request: the list's id and both legs as new orders (an OPO's pending quantity is the
    working quantity until the working order fills; then it is what the working order received)."""

    symbol: str
    list_client_order_id: str
    working: NewOrder
    pending: NewOrder
    resp_type: str
    opo: bool


@dataclass
class OrderList:
    """One OTO/OPO on the exchange: its working and pending orders and whether the list is still executing."""

    order_list_id: int
    account: str
    symbol: str
    list_client_order_id: str
    working: Order
    pending: Order
    pending_req: NewOrder
    transaction_time: int
    opo: bool = False
    done: bool = False  # ALL_DONE: both orders ended (filled, cancelled, expired)

    @property
    def orders(self) -> list[Order]:
        return [self.working, self.pending]

    def status_json(self) -> dict[str, Any]:
        """The list status (GET /api/v3/orderList, openOrderList, allOrderList entries): enums.md's
        listStatusType / listOrderStatus, EXEC_STARTED / EXECUTING while active, ALL_DONE after."""
        state = ("ALL_DONE", "ALL_DONE") if self.done else ("EXEC_STARTED", "EXECUTING")
        return {
            "orderListId": self.order_list_id, "contingencyType": "OTO", "listStatusType": state[0],
            "listOrderStatus": state[1], "listClientOrderId": self.list_client_order_id,
            "transactionTime": self.transaction_time, "symbol": self.symbol,
            "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id}
                       for o in self.orders],
        }

    def placed_json(self, reports: list[dict[str, Any]]) -> dict[str, Any]:
        return self.status_json() | {"orderReports": reports}

    def cancel_json(self, cancel_client_id: str, transact_time: int) -> dict[str, Any]:
        """DELETE /api/v3/orderList's answer (and an order list's entry in DELETE /api/v3/openOrders)."""
        return self.placed_json([o.cancel_json(cancel_client_id, transact_time) for o in self.orders])


def pending_report(lst: OrderList, resp_type: str, transact_time: int) -> dict[str, Any]:
    """The pending order's report in a placement response (an OPO's pending order shows no quantity until placed,
    as in rest-api.md's OPO example)."""
    body = lst.pending.new_json(resp_type, transact_time, [])
    if lst.opo and lst.pending.status == "PENDING_NEW":
        body.pop("origQty", None)
    return body


def _leg(params: dict[str, str], prefix: str) -> dict[str, str]:
    leg = {"symbol": params.get("symbol", ""), "selfTradePreventionMode": params.get("selfTradePreventionMode", ""),
           "newOrderRespType": params.get("newOrderRespType", "")}
    for plain, suffix in _LEG_FIELDS.items():
        if prefix + suffix in params:
            leg[plain] = params[prefix + suffix]
    return leg


def _renamed(exc: be.BinanceError, prefix: str) -> be.BinanceError:
    """The same error with the leg's parameter names (``'price'`` -> ``'workingPrice'``)."""
    def swap(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"'{prefix}{_LEG_FIELDS[name]}'" if name in _LEG_FIELDS else match.group(0)

    return be.BinanceError(exc.code, _QUOTED.sub(swap, exc.msg), exc.status)


def _parse_leg(params: dict[str, str], prefix: str, specs: dict[str, SymbolSpec]) -> NewOrder:
    try:
        return parse_new_order(params, specs)
    except be.BinanceError as exc:
        raise _renamed(exc, prefix) from None


def _list_client_id(params: dict[str, str]) -> str:
    raw = params.get("listClientOrderId")
    if raw is None:
        return new_client_id()
    if not CLIENT_ID.match(raw):
        raise be.illegal_chars("listClientOrderId", CLIENT_ID_RANGE)
    return raw


def parse_list(params: dict[str, str], specs: dict[str, SymbolSpec], *, opo: bool) -> ListRequest:
    """A ListRequest from an OTO (``opo=False``) or OPO request; BinanceError when a parameter is not acceptable."""
    for name in ("workingType", "pendingType"):
        raw = params.get(name, "")
        if not raw:
            raise be.mandatory(name)
        if raw.upper() not in ORDER_TYPES:
            raise be.BinanceError(-1116, "Invalid orderType.")
    if params["workingType"].upper() not in WORKING_TYPES:
        raise be.invalid_param("workingType")
    for name in ("workingPrice", "workingQuantity"):
        if not params.get(name):
            raise be.mandatory(name)
    working_leg, pending_leg = _leg(params, "working"), _leg(params, "pending")
    if opo:
        if "pendingQuantity" in params:  # errors.md -1225 PENDING_PARAM_NOT_REQUIRED
            raise be.BinanceError(-1225, "Pending orders should not include the 'pendingQuantity' tag.")
        if params.get("workingSide", "").upper() != "BUY":
            raise be.BinanceError(-1222, "Working order in an OPO list must be a bid.")
        if params.get("pendingSide", "").upper() != "SELL":
            raise be.BinanceError(-1223, "Pending orders in an OPO list must be asks.")
        pending_leg["quantity"] = params["workingQuantity"]  # a stand-in for the checks; the received qty later
    elif not params.get("pendingQuantity"):
        raise be.mandatory("pendingQuantity")
    working = _parse_leg(working_leg, "working", specs)
    pending = _parse_leg(pending_leg, "pending", specs)
    raw_resp = params.get("newOrderRespType", "").upper()
    if raw_resp and raw_resp not in RESP_TYPES:
        raise be.invalid_param("newOrderRespType")
    return ListRequest(working.symbol, _list_client_id(params), working, pending, raw_resp or LIST_RESP_DEFAULT, opo)
