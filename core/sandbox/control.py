"""Control routes for tests and operators under /sandbox/: unauthenticated, so loopback clients only.

GET  /sandbox/stats          authenticated calls and auth failures per API key, orders placed, faults
GET  /sandbox/state          market time, prices, balances and open orders of every account
POST /sandbox/faults         {"spec": "latency=0.5,error5xx=0.1"} (empty spec = no faults)
POST /sandbox/advance        {"ms": 60000}                 manual clock only
POST /sandbox/price          {"symbol": "BTCUSDT", "price": 60000.0}  manual clock only (null: back to candles)
POST /sandbox/foreign-order  an order placed on an account "by someone else" (not counted as the key's call)
POST /sandbox/deposit        {"account": KEY, "asset": "USDT", "amount": 100.0}  a balance change from outside
POST /sandbox/keys           {"api_key", "secret", "account"?, "trading"?, "withdrawals"?, "ip_restrict"?, "reading"?}
                             add a key to an account (rotation overlap; default the first configured key's account)
                             or replace a key's secret and permissions (default true, false, true, true: read and
                             spot trading, no withdrawals, IP-restricted); answers {"api_key", "account"}, never
                             the secret (GET /sandbox/state lists each account's key_permissions)
DELETE /sandbox/keys/{key}   revoke a key
POST /sandbox/inject         {"method": "POST", "path": "/api/v3/order", "match": {"type": "STOP_LOSS_LIMIT"},
                              "error": "busy", "count": 1, "msg"?, "retry_after"?, "late_ms"?}  the next ``count``
                             matching requests fail that way (core.sandbox.faults.INJECT_ERRORS); answers the queue
DELETE /sandbox/inject       drop every queued injection
POST /sandbox/clock-skew     {"ms": N}  the server's reported time (/api/v3/time, timestamp checks) = wall + N ms
POST /sandbox/symbol-status  {"symbol": "BTCUSDT", "status": "BREAK"}  TRADING, HALT, BREAK, END_OF_DAY, CANCEL_ONLY
POST /sandbox/unban          lift an IP ban (418) and a running Retry-After; repeat offences still count
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from core.errors import ConfigError
from core.sandbox.config import KeyPermissions
from core.sandbox.faults import Injection
from core.sandbox.order_params import new_client_id
from core.sandbox.service import SandboxService

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


def loopback_only(request: Request) -> None:
    """Control routes change money and time: refuse anyone not on this machine."""
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        raise HTTPException(status_code=403, detail="sandbox control routes answer loopback clients only")


class FaultsBody(BaseModel):
    spec: str = ""


class AdvanceBody(BaseModel):
    ms: int = Field(ge=0)


class PriceBody(BaseModel):
    symbol: str
    price: float | None


class KeyBody(BaseModel):
    """A key to add or replace, with its permissions (core.sandbox.config.KeyPermissions)."""

    api_key: str
    secret: str = Field(repr=False)
    account: str | None = None
    reading: bool = True
    trading: bool = True
    withdrawals: bool = False
    ip_restrict: bool = True


class DepositBody(BaseModel):
    account: str
    asset: str
    amount: float


class ForeignOrderBody(BaseModel):
    """An order someone else places on the account (e.g. from the exchange's web page)."""

    account: str | None = None  # an account id or any of its keys; default the first account
    symbol: str
    side: str
    type: str = "LIMIT"
    quantity: str | None = None
    quote_order_qty: str | None = None
    price: str | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None


class InjectBody(BaseModel):
    """A one-shot error for the next ``count`` requests that match (see core.sandbox.faults.Injection)."""

    path: str = "/api/v3/order"
    error: str
    method: str | None = None
    match: dict[str, str | int | float] = Field(default_factory=dict)
    count: int = 1
    msg: str | None = None
    retry_after: int = 1
    late_ms: int = 2_000


class SkewBody(BaseModel):
    ms: int = Field(ge=-86_400_000, le=86_400_000)


class StatusBody(BaseModel):
    symbol: str
    status: str


def _bad(exc: ConfigError) -> HTTPException:
    return HTTPException(status_code=400, detail=str(exc))


def control_router(sandbox: SandboxService) -> APIRouter:
    router = APIRouter(prefix="/sandbox", dependencies=[Depends(loopback_only)])
    exchange = sandbox.exchange

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return sandbox.stats()

    @router.get("/state")
    async def state() -> dict[str, Any]:
        return sandbox.state()

    @router.post("/faults")
    async def set_faults(body: FaultsBody) -> dict[str, Any]:
        try:
            config = sandbox.faults.set_spec(body.spec)
        except ConfigError as exc:
            raise _bad(exc) from exc
        return {"faults": config.spec()}

    @router.post("/advance")
    async def advance(body: AdvanceBody) -> dict[str, Any]:
        try:
            return {"market_time": exchange.advance(body.ms)}
        except ConfigError as exc:
            raise _bad(exc) from exc

    @router.post("/price")
    async def price(body: PriceBody) -> dict[str, Any]:
        try:
            exchange.set_price(body.symbol.upper(), body.price)
        except ConfigError as exc:
            raise _bad(exc) from exc
        return {"market_time": exchange.market.now(), "symbol": body.symbol.upper(), "price": body.price}

    @router.post("/foreign-order")
    async def foreign_order(body: ForeignOrderBody) -> dict[str, Any]:
        params = {"symbol": body.symbol.upper(), "side": body.side.upper(), "type": body.type.upper(),
                  "newClientOrderId": body.client_order_id or "web_" + new_client_id()[:20],
                  "newOrderRespType": "FULL"}
        optional = {"quantity": body.quantity, "quoteOrderQty": body.quote_order_qty, "price": body.price,
                    "timeInForce": body.time_in_force or ("GTC" if params["type"] == "LIMIT" else None)}
        params |= {k: v for k, v in optional.items() if v is not None}
        try:
            account = exchange.account_of(body.account).id if body.account else next(iter(exchange.accounts))
        except ConfigError as exc:
            raise _bad(exc) from exc
        return exchange.place_order(account, params, foreign=True)

    @router.post("/deposit")
    async def deposit(body: DepositBody) -> dict[str, Any]:
        try:
            exchange.deposit(body.account, body.asset, body.amount)
        except ConfigError as exc:
            raise _bad(exc) from exc
        return {"account": exchange.account_of(body.account).id, "asset": body.asset.upper()}

    @router.post("/keys")
    async def add_key(body: KeyBody) -> dict[str, Any]:
        permissions = KeyPermissions(reading=body.reading, trading=body.trading, withdrawals=body.withdrawals,
                                     ip_restrict=body.ip_restrict)
        try:
            account = exchange.add_key(body.api_key, body.secret, body.account, permissions)
        except ConfigError as exc:
            raise _bad(exc) from exc
        return {"api_key": body.api_key, "account": account}  # the permissions: GET /sandbox/state

    @router.post("/inject")
    async def inject(body: InjectBody) -> dict[str, Any]:
        fields = body.model_dump(exclude_none=True)
        fields["match"] = {k: str(v) for k, v in body.match.items()}
        try:
            sandbox.faults.inject(Injection(**fields))
        except ConfigError as exc:
            raise _bad(exc) from exc
        return {"pending": sandbox.faults.pending_injections()}

    @router.delete("/inject")
    async def clear_injections() -> dict[str, Any]:
        sandbox.faults.clear_injections()
        return {"pending": []}

    @router.post("/clock-skew")
    async def clock_skew(body: SkewBody) -> dict[str, Any]:
        sandbox.clock_skew_ms = body.ms
        return {"clock_skew_ms": body.ms, "server_time": sandbox.server_ms()}

    @router.post("/symbol-status")
    async def symbol_status(body: StatusBody) -> dict[str, Any]:
        try:
            exchange.set_symbol_status(body.symbol.upper(), body.status.upper())
        except ConfigError as exc:
            raise _bad(exc) from exc
        return {"symbol": body.symbol.upper(), "status": exchange.status[body.symbol.upper()]}

    @router.post("/unban")
    async def unban() -> dict[str, Any]:
        sandbox.limits.unban()
        return {"banned_until": None, "offences": sandbox.limits.offences}

    @router.delete("/keys/{api_key}")
    async def revoke_key(api_key: str) -> dict[str, Any]:
        try:
            exchange.revoke_key(api_key)
        except ConfigError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        return {"revoked": api_key}

    return router
