"""The signed Binance spot routes: orders, open orders, all orders, account and trades.

Parameters are read from the query string and the urlencoded body (ccxt sends GET/DELETE parameters in the
query and POST parameters in the body); the signature covers both exactly as sent (core.sandbox.auth).
Faults specific to orders apply here: ``partial_fill`` cuts a MARKET/LIMIT order's immediate execution,
``lost_response`` (or an injected ``lost``) books the order but answers 503 -1007 "execution status unknown", and
``late_execution`` (or an injected ``late``) answers 503 -1007 without booking it: the order reaches the engine
``late_ms`` of market time later (SandboxExchange.defer_order).
Security types as rest-api.md marks them: the TRADE routes (new order, test order, cancel order, cancel all open
orders) refuse a key without ``trading`` with 401 -2015 before anything is booked; the rest are USER_DATA.
A test order with ``computeCommissionRates=true`` answers the order's commission rates (weight 20), else ``{}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request

from core.sandbox import account_api
from core.sandbox import binance_errors as be
from core.sandbox.accounts import Account
from core.sandbox.auth import Security
from core.sandbox.faults import Injection
from core.sandbox.service import SandboxService

API = "/api/v3"
Handler = Callable[[Any, Account, dict[str, str]], Any]


async def signed_request(sandbox: SandboxService, request: Request,
                         security: Security = "USER_DATA") -> tuple[str, Account, dict[str, str]]:
    """(API key, its account, all parameters) of a properly signed request by a key allowed ``security``
    endpoints; BinanceError otherwise."""
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    raw_body = (await request.body()).decode("utf-8", "replace")
    params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(parse_qsl(raw_query, keep_blank_values=True))  # the query string wins, as on Binance
    api_key = sandbox.auth.verify(request.headers.get("x-mbx-apikey"), raw_query, raw_body, params,
                                  sandbox.server_ms(), security)
    return api_key, sandbox.exchange.account_of(api_key), params


def private_router(sandbox: SandboxService) -> APIRouter:
    router = APIRouter()
    exchange = sandbox.exchange

    @router.post(API + "/order")
    async def new_order(request: Request) -> dict[str, Any]:
        api_key, _, params = await signed_request(sandbox, request, "TRADE")
        injection: Injection | None = getattr(request.state, "injection", None)
        faults = sandbox.faults
        partial = None
        if params.get("type", "").upper() in ("MARKET", "LIMIT"):
            partial = faults.partial_fraction()
        late = injection if injection is not None and injection.error == "late" else None
        if late is not None or faults.roll("late_execution"):
            delay = late.late_ms if late is not None else faults.config.late_ms
            exchange.defer_order(api_key, params, delay, partial=partial)
            raise be.status_unknown()
        response = exchange.place_order(api_key, params, partial=partial)
        if (injection is not None and injection.error == "lost") or faults.roll("lost_response"):
            raise be.status_unknown()
        return response

    @router.post(API + "/order/test")
    async def test_order(request: Request) -> dict[str, Any]:
        api_key, _, params = await signed_request(sandbox, request, "TRADE")
        compute = account_api.bool_param(params, "computeCommissionRates")
        exchange.place_order(api_key, params, test=True)
        return account_api.commission_for_test_order(exchange) if compute else {}

    @router.get(API + "/account")
    async def account_info(request: Request) -> dict[str, Any]:
        api_key, account, params = await signed_request(sandbox, request)
        return account_api.account_info(exchange, account, params, exchange.keys.permissions(api_key))

    def signed(path: str, method: str, handler: Handler, security: Security = "USER_DATA") -> None:
        async def endpoint(request: Request) -> Any:
            _, account, params = await signed_request(sandbox, request, security)
            return handler(exchange, account, params)

        router.add_api_route(API + path, endpoint, methods=[method])

    signed("/order", "GET", account_api.query_order)
    signed("/order", "DELETE", account_api.cancel_order, "TRADE")
    signed("/openOrders", "GET", account_api.open_orders)
    signed("/openOrders", "DELETE", account_api.cancel_open_orders, "TRADE")
    signed("/allOrders", "GET", account_api.all_orders)
    signed("/myTrades", "GET", account_api.my_trades)
    signed("/account/commission", "GET", account_api.commission_rates)
    signed("/myPreventedMatches", "GET", account_api.prevented_matches)
    return router
