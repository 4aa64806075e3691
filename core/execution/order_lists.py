"""Binance order lists and cancel-replace: the protective stop goes on the exchange with the entry, and an exit or a
new stop replaces the old stop in one request, so no crash leaves a position without a stop (R9.3).

- Entry: ``POST /api/v3/orderList/opo`` (or ``/oto``) — a working LIMIT IOC buy at a marketable price (the
  decision close plus ``ENTRY_LIMIT_BPS``: a market that ran further away leaves the entry unfilled, not chased)
  and a pending STOP_LOSS_LIMIT sell that the exchange places the moment the buy has fully filled. OPO sizes the
  stop to what the buy actually delivered (after a commission taken in the coin); OTO needs the quantity up front,
  so it is the bought quantity less the taker commission, floored to the lot step.
- Exit: ``POST /api/v3/order/cancelReplace`` with STOP_ON_FAILURE — the stop is cancelled and the sell (or the
  tighter stop) placed in one request. -2022 (the cancel failed: the stop had already filled or gone) sends
  nothing; -2021 (cancelled, the new order refused) leaves the position unprotected, which the engine repairs at
  once with a new stop.
Used only where the exchange advertises them (``otoAllowed``/``opoAllowed``/``cancelReplaceAllowed`` in
exchangeInfo); elsewhere the broker sends single orders and the protection invariant covers the gap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.domain import Instrument, Order, OrderStatus, OrderType
from core.errors import ExchangeError
from core.market.candles import symbol_to_ccxt

if TYPE_CHECKING:
    from core.execution.book import Book

ENTRY_LIMIT_BPS = 50.0  # the entry's IOC limit sits this far above the decision close (exchange.entry_limit_bps)
STOP_LIMIT_OFFSET = 0.005  # a stop's limit price sits 0.5 % under its trigger so a fast market still fills it
OPEN_STATUSES = ("open", "NEW", "PENDING_NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class ListSupport:
    """What one symbol's market takes (Binance exchangeInfo)."""

    opo: bool = False
    oto: bool = False
    cancel_replace: bool = False

    @property
    def entry_with_stop(self) -> bool:
        return self.opo or self.oto

    @classmethod
    def of(cls, market_info: dict[str, Any]) -> ListSupport:
        def yes(key: str) -> bool:
            return market_info.get(key) in (True, "true")

        return cls(yes("opoAllowed"), yes("otoAllowed"), yes("cancelReplaceAllowed"))


def fmt(value: float, step: float) -> str:
    """A price or quantity on its step, as the exact decimal text Binance wants."""
    if step <= 0:
        return f"{value:.8f}".rstrip("0").rstrip(".")
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def floor_to(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step if step > 0 else value


def ceil_to(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step if step > 0 else value


def entry_params(entry: Order, stop: Order, inst: Instrument, decision_close: float, support: ListSupport,
                 taker_rate: float, limit_bps: float = ENTRY_LIMIT_BPS) -> dict[str, Any]:
    """The order-list request for ``entry`` (a buy) with ``stop`` (its protective stop) pending on it."""
    limit = ceil_to(decision_close * (1 + limit_bps / 10_000), inst.tick_size)
    trigger = stop.stop_price or 0.0
    params: dict[str, Any] = {
        "symbol": entry.symbol, "listClientOrderId": f"{entry.client_order_id}L"[-36:], "newOrderRespType": "FULL",
        "workingType": "LIMIT", "workingSide": "BUY", "workingTimeInForce": "IOC",
        "workingPrice": fmt(limit, inst.tick_size), "workingQuantity": fmt(entry.qty, inst.lot_step),
        "workingClientOrderId": entry.client_order_id,
        "pendingType": "STOP_LOSS_LIMIT", "pendingSide": "SELL", "pendingTimeInForce": "GTC",
        "pendingStopPrice": fmt(floor_to(trigger, inst.tick_size), inst.tick_size),
        "pendingPrice": fmt(floor_to(trigger * (1 - STOP_LIMIT_OFFSET), inst.tick_size), inst.tick_size),
        "pendingClientOrderId": stop.client_order_id,
    }
    if not support.opo:  # OTO: the stop's quantity is fixed now — what the buy leaves after its commission
        params["pendingQuantity"] = fmt(floor_to(entry.qty * (1 - taker_rate), inst.lot_step), inst.lot_step)
    return params


def replace_params(old: Order, new: Order, inst: Instrument) -> dict[str, Any]:
    """cancelReplace: cancel ``old`` (by its client id) and place ``new`` (a market sell, or a stop)."""
    params: dict[str, Any] = {
        "symbol": new.symbol, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": old.client_order_id,
        "side": new.side.value.upper(), "quantity": fmt(new.qty, inst.lot_step),
        "newClientOrderId": new.client_order_id, "newOrderRespType": "FULL",
    }
    if new.type is OrderType.STOP:
        trigger = new.stop_price or 0.0
        params.update({"type": "STOP_LOSS_LIMIT", "timeInForce": "GTC",
                       "stopPrice": fmt(floor_to(trigger, inst.tick_size), inst.tick_size),
                       "price": fmt(floor_to(trigger * (1 - STOP_LIMIT_OFFSET), inst.tick_size), inst.tick_size)})
    else:
        params["type"] = "MARKET"
    return params


def report_for(response: dict[str, Any], client_order_id: str) -> dict[str, Any] | None:
    """The raw order report of ``client_order_id`` in an order-list answer."""
    for report in response.get("orderReports") or []:
        if isinstance(report, dict) and report.get("clientOrderId") == client_order_id:
            return report
    return None


def replace_failure(error: ExchangeError) -> tuple[str | None, str | None]:
    """(cancelResult, newOrderResult) of a refused cancelReplace (-2021/-2022), or (None, None) for another
    refusal (nothing was done)."""
    text = str(error)
    if '"code":-2021' not in text and '"code":-2022' not in text:
        return None, None
    try:
        body = json.loads(text[text.index("{"):text.rindex("}") + 1])
    except (ValueError, json.JSONDecodeError):
        return ("SUCCESS", "FAILURE") if "-2021" in text else ("FAILURE", "NOT_ATTEMPTED")
    data = body.get("data") or {}
    return data.get("cancelResult"), data.get("newOrderResult")


def parse(client: Any, raw: dict[str, Any], symbol: str) -> dict[str, Any]:
    """A raw Binance order report in ccxt's unified shape; a pending leg (PENDING_NEW) reads as open."""
    info: dict[str, Any] = client.parse_order(raw, client.market(symbol_to_ccxt(symbol)))
    if str(raw.get("status")) == "PENDING_NEW":
        info["status"] = "open"
    return info


def settle_pending(stop: Order, ts: int) -> None:
    """The entry closed without a full fill: its pending stop was never placed (Binance expires it with the list)."""
    if stop.status is OrderStatus.INITIALIZED:
        stop.apply(OrderStatus.SUBMITTED, ts)
    if stop.is_open:
        stop.apply(OrderStatus.EXPIRED, ts)


def sellable(book: Book) -> float:
    """What the position can sell now: its quantity floored to the lot step (R9.1)."""
    pos = book.position
    return book.instrument.round_qty(pos.qty) if pos is not None else 0.0
