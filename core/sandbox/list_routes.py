"""The signed order-list and cancel-replace routes of the sandbox (rest-api.md, Order lists; Cancel an Existing Order
and Send a New Order; Query Order list / all Order lists / Open Order lists).

POST /api/v3/orderList/oto and /orderList/opo (TRADE, weight 1), POST /api/v3/order/cancelReplace (TRADE, 1),
DELETE /api/v3/orderList (TRADE, 1), GET /api/v3/orderList (4), /allOrderList (20), /openOrderList (6).
Faults as on POST /api/v3/order: ``partial_fill`` cuts the execution of an OTO/OPO's working order and of a
cancelReplace's new MARKET/LIMIT order; ``lost_response`` (or an injected ``lost``) processes the request and
answers 503 -1007 "execution status unknown". The random and injected faults of every /api/v3 route (5xx, timeouts,
429, busy, unknown, reject) strike before these routes run (core.sandbox.app). ``late_execution`` applies to
POST /api/v3/order only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from core.sandbox import binance_errors as be
from core.sandbox.account_api import int_param, limit_param
from core.sandbox.accounts import Account
from core.sandbox.auth import Security
from core.sandbox.cancel_replace import cancel_replace
from core.sandbox.exchange import SandboxExchange
from core.sandbox.faults import Injection
from core.sandbox.order_lists import OrderList
from core.sandbox.order_params import new_client_id
from core.sandbox.private import Handler, signed_request
from core.sandbox.service import SandboxService

API = "/api/v3"


def _lost(sandbox: SandboxService, request: Request) -> bool:
    injection: Injection | None = getattr(request.state, "injection", None)
    return (injection is not None and injection.error == "lost") or sandbox.faults.roll("lost_response")


def _list_id(params: dict[str, str], name: str) -> tuple[int | None, str | None]:
    list_id = int_param(params, "orderListId")
    client_id = params.get(name) or None
    if list_id is None and client_id is None:
        raise be.BinanceError(-1102, f"Param '{name}' or 'orderListId' must be sent, but both were empty/null!")
    return list_id, client_id


def cancel_order_list(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> dict[str, Any]:
    """DELETE /api/v3/orderList: -2011 "Unknown order list sent." when unknown, on another symbol or done."""
    with exchange.lock:
        exchange.sync()
        symbol = params.get("symbol", "")
        if not symbol:
            raise be.mandatory("symbol")
        list_id, client_id = _list_id(params, "listClientOrderId")
        lst = exchange.desk.find(account, list_id, client_id)
        if lst is None or lst.done or lst.symbol != symbol.upper():
            raise be.unknown_order_list()
        return exchange.desk.cancel(account, lst, params.get("newClientOrderId") or new_client_id())


def query_order_list(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> dict[str, Any]:
    """GET /api/v3/orderList by orderListId or origClientOrderId (the listClientOrderId): -2013 when unknown."""
    with exchange.lock:
        exchange.sync()
        list_id, client_id = _list_id(params, "origClientOrderId")
        lst = exchange.desk.find(account, list_id, client_id)
        if lst is None:
            raise be.no_such_order_list()
        return lst.status_json()


def all_order_lists(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/allOrderList: from ``fromId`` up, or within [startTime, endTime], else the latest ``limit``."""
    with exchange.lock:
        exchange.sync()
        limit = limit_param(params)
        from_id = int_param(params, "fromId")
        start, end = int_param(params, "startTime"), int_param(params, "endTime")
        if from_id is not None and (start is not None or end is not None):
            raise be.BinanceError(-1128, "Combination of optional parameters invalid.")
        lists: list[OrderList] = exchange.desk.of(account)
        if from_id is not None:
            picked = [lst for lst in lists if lst.order_list_id >= from_id][:limit]
        elif start is not None or end is not None:
            picked = [lst for lst in lists if (start is None or lst.transaction_time >= start)
                      and (end is None or lst.transaction_time <= end)]
            picked = picked[:limit] if start is not None else picked[-limit:]
        else:
            picked = lists[-limit:]
        return [lst.status_json() for lst in picked]


def open_order_lists(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/openOrderList: the lists still executing."""
    with exchange.lock:
        exchange.sync()
        return [lst.status_json() for lst in exchange.desk.open_lists(account)]


def order_list_router(sandbox: SandboxService) -> APIRouter:
    router = APIRouter()
    exchange = sandbox.exchange

    async def place_list(request: Request, opo: bool) -> dict[str, Any]:
        api_key, _, params = await signed_request(sandbox, request, "TRADE")
        response = exchange.desk.place(api_key, params, opo=opo, partial=sandbox.faults.partial_fraction())
        if _lost(sandbox, request):
            raise be.status_unknown()
        return response

    @router.post(API + "/orderList/oto")
    async def new_oto(request: Request) -> dict[str, Any]:
        return await place_list(request, opo=False)

    @router.post(API + "/orderList/opo")
    async def new_opo(request: Request) -> dict[str, Any]:
        return await place_list(request, opo=True)

    @router.post(API + "/order/cancelReplace")
    async def order_cancel_replace(request: Request) -> dict[str, Any]:
        api_key, _, params = await signed_request(sandbox, request, "TRADE")
        partial = None
        if params.get("type", "").upper() in ("MARKET", "LIMIT"):
            partial = sandbox.faults.partial_fraction()
        response = cancel_replace(exchange, api_key, params, partial=partial)
        if _lost(sandbox, request):
            raise be.status_unknown()
        return response

    def signed(path: str, method: str, handler: Handler, security: Security = "USER_DATA") -> None:
        async def endpoint(request: Request) -> Any:
            _, account, params = await signed_request(sandbox, request, security)
            return handler(exchange, account, params)

        router.add_api_route(API + path, endpoint, methods=[method])

    signed("/orderList", "DELETE", cancel_order_list, "TRADE")
    signed("/orderList", "GET", query_order_list)
    signed("/allOrderList", "GET", all_order_lists)
    signed("/openOrderList", "GET", open_order_lists)
    return router
