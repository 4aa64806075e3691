"""A Binance-spot-compatible exchange on localhost, for rehearsing the live path with the real ccxt client.

    config = SandboxConfig(clock="manual")            # or speed=60 for a realtime market x60
    with SandboxServer(config) as server:             # uvicorn on 127.0.0.1, a free port
        client = ccxt_client(server.url, DEMO_API_KEY, DEMO_API_SECRET)
        client.create_order("BTC/USDT", "market", "buy", 0.001)
        server.exchange.advance(60_000)               # manual clock: move the market a minute
        server.stats()["auth_calls"]                  # authenticated calls per API key

    SandboxConfig(api_keys={"ro": "s1", "rw": "s2"},   # per-key permissions, as Binance's API Management sets
                  key_permissions={"ro": KeyPermissions(trading=False)})  # TRADE endpoints -> 401 -2015

Modules: config (settings), market (price path and clock), quotes (book, klines, tickers, average price),
symbols (filters, exchangeInfo), order_params / orders / matching / exchange / account_api (the matching
engine, commissions, self-trade prevention and the signed endpoints, no HTTP), order_lists / list_desk /
cancel_replace / list_routes (OTO and OPO order lists, cancelReplace), auth (signatures, recvWindow,
weights, key permissions, counters), limits (429 Retry-After, 418 bans, the request log), faults (random faults
and one-shot injections), app / private / sapi / control (HTTP; sapi: GET /sapi/v1/account/apiRestrictions),
service (one running sandbox), server / cli (serving it), client (ccxt).
Not served: OCO/OTOCO/OPOCO order lists, amend, SOR, public trades (trades/aggTrades), other SAPI
(wallet) routes, referencePrice/executionRules, order-count limits (ORDERS, X-MBX-ORDER-COUNT),
userDataStream/WebSocket, and Ed25519/RSA keys (HMAC only).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real types for type checkers; at runtime __getattr__ imports on first use
    from core.sandbox.app import create_app
    from core.sandbox.binance_errors import BinanceError
    from core.sandbox.client import SPOT_ONLY_OPTIONS, ccxt_client, rewrite_api_hosts
    from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, KeyPermissions, SandboxConfig
    from core.sandbox.exchange import SandboxExchange
    from core.sandbox.faults import FaultConfig, FaultInjector, parse_faults
    from core.sandbox.market import Market
    from core.sandbox.server import SandboxServer, serve
    from core.sandbox.service import SandboxService

# Exports load lazily, so importing core.sandbox.config does not pull in FastAPI, uvicorn and ccxt.
_EXPORTS: dict[str, str] = {
    "create_app": "core.sandbox.app",
    "BinanceError": "core.sandbox.binance_errors",
    "SPOT_ONLY_OPTIONS": "core.sandbox.client",
    "ccxt_client": "core.sandbox.client",
    "rewrite_api_hosts": "core.sandbox.client",
    "DEMO_API_KEY": "core.sandbox.config",
    "DEMO_API_SECRET": "core.sandbox.config",
    "KeyPermissions": "core.sandbox.config",
    "SandboxConfig": "core.sandbox.config",
    "SandboxExchange": "core.sandbox.exchange",
    "FaultConfig": "core.sandbox.faults",
    "FaultInjector": "core.sandbox.faults",
    "parse_faults": "core.sandbox.faults",
    "Market": "core.sandbox.market",
    "SandboxServer": "core.sandbox.server",
    "serve": "core.sandbox.server",
    "SandboxService": "core.sandbox.service",
}
__all__ = [
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "SPOT_ONLY_OPTIONS",
    "BinanceError",
    "FaultConfig",
    "FaultInjector",
    "KeyPermissions",
    "Market",
    "SandboxConfig",
    "SandboxExchange",
    "SandboxServer",
    "SandboxService",
    "ccxt_client",
    "create_app",
    "parse_faults",
    "rewrite_api_hosts",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
