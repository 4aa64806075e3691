"""Build the real ``ccxt.binance`` client: for Binance itself, or pointed at another host (the sandbox).

``rewrite_api_hosts`` keeps every path of ``urls['api']`` and swaps scheme and host, so ccxt signs and
parses exactly as for Binance. ``SPOT_ONLY_OPTIONS`` make ``load_markets`` call only /api/v3/exchangeInfo.
ccxt is never put in verbose mode: it would print keys.

Caveat: ccxt picks its spot-specific error table by the URL's host. Against another host it uses the shared
table only, which still maps every code Binance and the sandbox send (-1022/-2015 → AuthenticationError,
insufficient balance → InsufficientFunds, -2011/-2013 → OrderNotFound, 429 → DDoSProtection …).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.errors import ConfigError
from core.execution.ccxt_lean import lean_ccxt

SPOT_ONLY_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "adjustForTimeDifference": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}


def rewrite_api_hosts(exchange: Any, base_url: str) -> None:
    """Point every ``exchange.urls['api']`` entry at ``base_url``'s scheme and host, keeping the paths."""
    target = urlsplit(base_url)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise ConfigError(f"exchange URL {base_url!r} must look like http://127.0.0.1:8765")
    api = exchange.urls.get("api")
    if not isinstance(api, dict):
        raise ConfigError(f"{exchange.id} has no urls['api'] table to rewrite")
    rewritten = {}
    for name, url in api.items():
        if isinstance(url, str):
            parts = urlsplit(url)
            rewritten[name] = urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))
        else:
            rewritten[name] = url
    exchange.urls["api"] = rewritten


def make_binance(*, base_url: str | None = None, api_key: str | None = None, secret: str | None = None,
                 timeout_ms: int = 10_000, network: str = "", **kw: Any) -> Any:
    """A ``ccxt.binance`` client; ``base_url`` (e.g. http://127.0.0.1:8765) points it at a sandbox; ``network``
    "demo" puts it in ccxt's Demo Mode (demo-api.binance.com), "testnet" in its sandbox mode (the Spot Testnet,
    testnet.binance.vision).

    ``kw`` goes to the ccxt constructor (e.g. ``enableRateLimit=False``); ``options`` in it are merged over
    SPOT_ONLY_OPTIONS. Verbose mode prints every request with its headers: refused with keys (R8.2)."""
    ccxt = lean_ccxt()  # Binance without ccxt's other ~110 exchanges (core.execution.ccxt_lean)

    if kw.pop("verbose", False) and (api_key or secret):
        raise ConfigError("ccxt verbose mode would print the API key: it is refused for a client with credentials")
    config: dict[str, Any] = {"timeout": timeout_ms, "enableRateLimit": True, **kw,
                              "options": {**SPOT_ONLY_OPTIONS, **kw.get("options", {})}}
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    client = ccxt.binance(config)
    client.verbose = False
    if network and base_url:
        raise ConfigError("a client goes either to Binance's demo/testnet network or to a sandbox URL, not both")
    if network == "demo":
        client.enable_demo_trading(True)
    elif network == "testnet":
        client.set_sandbox_mode(True)
    elif network:
        raise ConfigError(f"unknown Binance network {network!r}; use 'demo' or 'testnet'")
    if base_url:
        rewrite_api_hosts(client, base_url)
    return client
