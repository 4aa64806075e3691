"""create_app: the sandbox as a FastAPI app serving Binance spot's REST API (public part here).

Every /api/v3 response carries ``X-MBX-USED-WEIGHT-1M``; over the weight limit a request gets 429 -1003
with Retry-After, and a request sent before a Retry-After expired gets the IP banned (418, core.sandbox.limits).
Then one-shot injections and the random faults (core.sandbox.faults) apply, to /api/v3 routes only, never to
/sandbox control routes. Errors are Binance's ``{"code", "msg"}`` with its HTTP status. /sapi routes
(core.sandbox.sapi) are metered on their own SAPI IP weight (``X-SAPI-USED-IP-WEIGHT-1M``), as Binance does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from core.sandbox import binance_errors as be
from core.sandbox.account_api import int_param, limit_param, symbol_param
from core.sandbox.auth import SAPI_IP_LIMIT, request_weight
from core.sandbox.config import SandboxConfig
from core.sandbox.control import control_router
from core.sandbox.list_routes import order_list_router
from core.sandbox.market import wall_ms
from core.sandbox.private import private_router
from core.sandbox.quotes import rolling_window_ms
from core.sandbox.sapi import sapi_router
from core.sandbox.service import SandboxService
from core.sandbox.symbols import exchange_info

API = "/api/v3"


def create_app(config: SandboxConfig, service: SandboxService | None = None) -> FastAPI:
    """The sandbox exchange app; ``app.state.sandbox`` is its SandboxService."""
    sandbox = service or SandboxService(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    app = FastAPI(title="Rampart sandbox exchange (Binance spot compatible)", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sandbox

    @app.exception_handler(be.BinanceError)
    async def binance_error(_: Request, exc: be.BinanceError) -> JSONResponse:
        headers = {"Retry-After": "60"} if exc.status == 429 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_control_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the request body, which may hold a secret (POST /sandbox/keys): drop it.
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.middleware("http")
    async def api_gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/sapi/"):
            return await _sapi_gate(sandbox, request, call_next)
        if not request.url.path.startswith(API + "/"):
            return await call_next(request)
        return await _gate(sandbox, request, call_next)

    _public_routes(app, sandbox)
    app.include_router(private_router(sandbox))
    app.include_router(order_list_router(sandbox))
    app.include_router(sapi_router(sandbox))
    app.include_router(control_router(sandbox))
    return app


def _error(error: be.BinanceError, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _unavailable(headers: dict[str, str]) -> Response:
    """A 503 from the edge, before the exchange saw the request (plain text, as a load balancer sends)."""
    return PlainTextResponse("503 Service Unavailable", status_code=503, headers=headers)


async def _gate(sandbox: SandboxService, request: Request,
                call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Log the request, refuse it while banned, weight accounting, then what strikes before it is processed."""
    now = wall_ms()
    entry = sandbox.limits.arrived(now, request.method, request.url.path)
    response = await _admit(sandbox, request, call_next, now)
    entry["status"] = response.status_code
    return response


async def _request_params(request: Request) -> dict[str, str]:
    """Query string and urlencoded body together (the query string wins, as on Binance)."""
    raw_body = (await request.body()).decode("utf-8", "replace")
    params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    return params


async def _sapi_gate(sandbox: SandboxService, request: Request,
                     call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """SAPI weight on its own meter: never in the /api/v3 weight or its X-MBX-USED-WEIGHT-1M header."""
    params = await _request_params(request)
    weight = request_weight(request.method, request.url.path, params)
    allowed, used, retry = sandbox.sapi_weights.charge(weight, wall_ms())
    headers = {"X-SAPI-USED-IP-WEIGHT-1M": str(used)}
    if not allowed:
        return _error(be.too_much_weight(SAPI_IP_LIMIT), headers | {"Retry-After": str(retry)})
    response = await call_next(request)
    response.headers.update(headers)
    return response


def _too_much_weight(sandbox: SandboxService, headers: dict[str, str], now: int, retry: int) -> Response:
    sandbox.limits.limited(now, retry)
    return _error(be.too_much_weight(sandbox.config.weight_limit), headers | {"Retry-After": str(retry)})


async def _admit(sandbox: SandboxService, request: Request, call_next: Callable[[Request], Awaitable[Response]],
                 now: int) -> Response:
    limits = sandbox.limits
    refused = limits.refuse(now)
    if refused is not None:  # banned, or came before a 429's Retry-After expired (which bans it now)
        until, seconds = refused
        headers = {"X-MBX-USED-WEIGHT-1M": str(sandbox.weights.used), "Retry-After": str(seconds)}
        return _error(be.ip_banned(until + sandbox.clock_skew_ms), headers)
    params = await _request_params(request)
    allowed, used, retry = sandbox.weights.charge(request_weight(request.method, request.url.path, params), now)
    headers = {"X-MBX-USED-WEIGHT-1M": str(used), "X-MBX-USED-WEIGHT": str(used)}
    if not allowed:
        return _too_much_weight(sandbox, headers, now, retry)
    faults = sandbox.faults
    injection = faults.take(request.method, request.url.path, params)
    if injection is not None:
        if injection.error == "rate_limit":
            return _too_much_weight(sandbox, headers, now, injection.retry_after)
        if injection.error == "busy":
            return _error(be.server_busy(), headers)
        if injection.error == "unknown":
            return _error(be.status_unknown(), headers)
        if injection.error == "reject":
            return _error(be.order_rejected(injection.msg), headers)
        if injection.error == "server_error":
            return _unavailable(headers)
        request.state.injection = injection  # late / lost: the order route acts on it
    if faults.roll("rate_limit"):
        return _too_much_weight(sandbox, headers, now, retry)
    if faults.config.latency > 0:
        await asyncio.sleep(faults.config.latency)
    if faults.roll("error5xx"):
        return _unavailable(headers)
    if faults.roll("timeout"):
        await asyncio.sleep(faults.config.timeout_s)
        return _unavailable(headers)
    response = await call_next(request)
    response.headers.update(headers)
    return response


def _symbols(sandbox: SandboxService, params: dict[str, str]) -> list[str] | None:
    """``symbol=X`` or ``symbols=["X","Y"]`` -> the list asked for; None when neither (all symbols)."""
    specs = sandbox.exchange.market.specs
    if params.get("symbol"):
        return [symbol_param(sandbox.exchange, params) or ""]
    if params.get("symbols"):
        try:
            names = json.loads(params["symbols"])
        except json.JSONDecodeError:
            raise be.invalid_param("symbols") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise be.invalid_param("symbols")
        if any(n.upper() not in specs for n in names):
            raise be.invalid_symbol()
        return [n.upper() for n in names]
    return None


def _one_or_many(sandbox: SandboxService, params: dict[str, str], make: Callable[[str], Any]) -> Any:
    names = _symbols(sandbox, params)
    if params.get("symbol"):
        return make(names[0] if names else "")
    return [make(s) for s in (names or sandbox.exchange.market.symbols)]


def _public_routes(app: FastAPI, sandbox: SandboxService) -> None:
    exchange = sandbox.exchange
    quotes = exchange.quotes

    def query(request: Request) -> dict[str, str]:
        sandbox.auth.count_public()
        return dict(request.query_params)

    @app.get(API + "/ping")
    async def ping(request: Request) -> dict[str, Any]:
        query(request)
        return {}

    @app.get(API + "/time")
    async def server_time(request: Request) -> dict[str, Any]:
        query(request)
        return {"serverTime": sandbox.server_ms()}

    @app.get(API + "/exchangeInfo")
    async def info(request: Request) -> dict[str, Any]:
        names = _symbols(sandbox, query(request)) or exchange.market.symbols
        specs = [exchange.market.specs[s] for s in names]
        return exchange_info(specs, sandbox.server_ms(), sandbox.config.weight_limit, exchange.status,
                             sandbox.config.order_lists)

    @app.get(API + "/depth")
    async def depth(request: Request) -> dict[str, Any]:
        params = query(request)
        symbol = symbol_param(exchange, params) or ""
        limit = int_param(params, "limit") or 100
        if limit < 1:
            raise be.invalid_param("limit")
        return quotes.depth_json(symbol, min(limit, 5_000))  # Binance truncates deeper requests to 5000

    @app.get(API + "/klines")
    async def klines(request: Request) -> list[list[Any]]:
        params = query(request)
        symbol = symbol_param(exchange, params) or ""
        interval = params.get("interval")
        if not interval:
            raise be.mandatory("interval")
        start, end = int_param(params, "startTime"), int_param(params, "endTime")
        return quotes.klines(symbol, interval, start, end, limit_param(params))

    @app.get(API + "/ticker/24hr")
    async def ticker_24hr(request: Request) -> Any:
        return _one_or_many(sandbox, query(request), quotes.ticker)

    @app.get(API + "/ticker")
    async def ticker_rolling(request: Request) -> Any:
        params = query(request)
        window = rolling_window_ms(params.get("windowSize") or "1d")
        if not params.get("symbol") and not params.get("symbols"):
            raise be.BinanceError(-1102, "Param 'symbol' or 'symbols' must be sent, but both were empty/null!")
        return _one_or_many(sandbox, params, lambda s: quotes.ticker(s, window, full=False))

    @app.get(API + "/ticker/price")
    async def ticker_price(request: Request) -> Any:
        return _one_or_many(sandbox, query(request), quotes.price_ticker)

    @app.get(API + "/ticker/bookTicker")
    async def book_ticker(request: Request) -> Any:
        return _one_or_many(sandbox, query(request), quotes.book_ticker)

    @app.get(API + "/avgPrice")
    async def avg_price(request: Request) -> dict[str, Any]:
        params = query(request)
        return quotes.avg_price(symbol_param(exchange, params) or "")
