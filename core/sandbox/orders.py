"""Orders and trades of the sandbox exchange, and their JSON exactly as Binance spot shapes it.

Times are market times (epoch ms). Quantities and prices are Decimals; JSON renders them as Binance's
eight-place decimal strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.sandbox.symbols import ZERO, fmt

# PENDING_NEW (enums.md): an order list's pending order, accepted but not on the book until its working order fills;
# open (it is listed, counted and cancellable) but never matched.
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")
STP_EXPIRED = "EXPIRED_IN_MATCH"  # enums.md: expired by the exchange due to self-trade prevention
STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
LIMIT_TYPES = ("LIMIT", "LIMIT_MAKER")


@dataclass(frozen=True)
class Trade:
    """One fill of one order, as myTrades lists it, with the commission in the asset it was charged in."""

    id: int
    order_id: int
    symbol: str
    account: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool
    order_list_id: int = -1

    def json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "id": self.id, "orderId": self.order_id, "orderListId": self.order_list_id,
            "price": fmt(self.price), "qty": fmt(self.qty), "quoteQty": fmt(self.quote_qty),
            "commission": fmt(self.commission), "commissionAsset": self.commission_asset, "time": self.time,
            "isBuyer": self.is_buyer, "isMaker": self.is_maker, "isBestMatch": True,
        }

    def fill_json(self) -> dict[str, Any]:
        """The entry in a FULL new-order response's ``fills``."""
        return {"price": fmt(self.price), "qty": fmt(self.qty), "commission": fmt(self.commission),
                "commissionAsset": self.commission_asset, "tradeId": self.id}


@dataclass
class Order:
    """One order on the book (or done). ``locked`` is what the order still holds of ``locked_asset``.

    ``prevented_qty`` is the quantity self-trade prevention took away (faqs/stp_faq.md): while the order is open,
    orig - executed - prevented is what can still execute; ``prevented_matches`` are the taker's prevented matches
    for its new-order response."""

    order_id: int
    account: str
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    time: int
    stop_price: Decimal = ZERO
    iceberg_qty: Decimal = ZERO
    orig_quote_qty: Decimal = ZERO
    trailing_delta: int | None = None
    stp_mode: str = "EXPIRE_MAKER"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    working_time: int = -1
    triggered: bool = False
    trailing_active: bool = False
    trailing_time: int = -1
    extreme: float = 0.0  # trailing: highest (sell) or lowest (buy) price since the trail started
    needs_cross: bool = False  # after a faulted partial fill: the rest waits for the price to cross again
    locked_asset: str = ""
    locked: Decimal = ZERO
    foreign: bool = False
    trades: list[Trade] = field(default_factory=list)
    prevented_qty: Decimal = ZERO
    prevented_match_id: int | None = None
    prevented_matches: list[dict[str, Any]] = field(default_factory=list)
    order_list_id: int = -1  # the order list it belongs to (core.sandbox.order_lists), -1 for none
    expiry_reason: str = ""  # user-data-stream.md, Order Expiry Reason: why an EXPIRED order expired

    @property
    def remaining(self) -> Decimal:
        """What can still execute: original - executed - prevented by STP."""
        return self.orig_qty - self.executed_qty - self.prevented_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    @property
    def rests_as_limit(self) -> bool:
        """A limit order on the book: LIMIT, LIMIT_MAKER, or a *_LIMIT stop that has triggered."""
        return self.type in LIMIT_TYPES or (self.triggered and self.type.endswith("_LIMIT"))

    @property
    def is_working(self) -> bool:
        if self.status == "PENDING_NEW":
            return False
        return not self.is_stop or self.triggered

    def _prevented(self) -> dict[str, Any]:
        """rest-api.md, Conditional fields in Order Responses: only for an order that STP acted on."""
        if self.prevented_match_id is None:
            return {}
        return {"preventedMatchId": self.prevented_match_id, "preventedQuantity": fmt(self.prevented_qty)}

    def _optional(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.stop_price > 0:
            extra["stopPrice"] = fmt(self.stop_price)
        if self.iceberg_qty > 0:
            extra["icebergQty"] = fmt(self.iceberg_qty)
        if self.trailing_delta is not None:
            extra["trailingDelta"] = self.trailing_delta
            extra["trailingTime"] = self.trailing_time
        return extra | self._expiry()

    def _expiry(self) -> dict[str, Any]:
        """rest-api.md, Conditional fields in Order Responses: ``expiryReason`` when an order has expired."""
        return {"expiryReason": self.expiry_reason} if self.expiry_reason and self.status == "EXPIRED" else {}

    def _core(self) -> dict[str, Any]:
        return {
            "price": fmt(self.price), "origQty": fmt(self.orig_qty), "executedQty": fmt(self.executed_qty),
            "origQuoteOrderQty": fmt(self.orig_quote_qty), "cummulativeQuoteQty": fmt(self.cum_quote),
            "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
        }

    def query_json(self) -> dict[str, Any]:
        """GET /api/v3/order, openOrders and allOrders entries."""
        body: dict[str, Any] = {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price), "origQty": fmt(self.orig_qty), "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote), "status": self.status,
            "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": fmt(self.stop_price), "icebergQty": fmt(self.iceberg_qty), "time": self.time,
            "updateTime": self.update_time, "isWorking": self.is_working, "workingTime": self.working_time,
            "origQuoteOrderQty": fmt(self.orig_quote_qty), "selfTradePreventionMode": self.stp_mode,
        }
        if self.trailing_delta is not None:
            body["trailingDelta"] = self.trailing_delta
            body["trailingTime"] = self.trailing_time
        return body | self._expiry() | self._prevented()

    def new_json(self, resp_type: str, transact_time: int, fills: list[Trade]) -> dict[str, Any]:
        """POST /api/v3/order's answer for newOrderRespType ACK, RESULT or FULL."""
        body: dict[str, Any] = {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id, "transactTime": transact_time,
        }
        if resp_type == "ACK":
            return body
        body |= self._core()
        body["workingTime"] = self.working_time
        body |= self._optional()
        if resp_type == "FULL":
            body["fills"] = [t.fill_json() for t in fills]
        if self.prevented_matches:
            body["preventedMatches"] = list(self.prevented_matches)
        body["selfTradePreventionMode"] = self.stp_mode
        if self.prevented_qty > 0:
            body["preventedQuantity"] = fmt(self.prevented_qty)
        return body

    def cancel_json(self, cancel_client_id: str, transact_time: int) -> dict[str, Any]:
        """DELETE /api/v3/order's answer (also each entry of DELETE /api/v3/openOrders)."""
        body: dict[str, Any] = {
            "symbol": self.symbol, "origClientOrderId": self.client_order_id, "orderId": self.order_id,
            "orderListId": self.order_list_id, "clientOrderId": cancel_client_id, "transactTime": transact_time,
        }
        body |= self._core()
        body |= self._optional()
        body["selfTradePreventionMode"] = self.stp_mode
        return body | self._prevented()
