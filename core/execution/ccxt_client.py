"""Build the real ``ccxt.binance`` client, for Binance itself or pointed at the local sandbox.

For the sandbox only the host of every ``urls['api']`` entry is rewritten (paths stay Binance's), and
``load_markets`` is limited to spot exchangeInfo. ccxt is never put in verbose mode: it would print keys.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def rewrite_host(urls: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Every URL in ``urls`` (nested) with scheme and host taken from ``base_url``, the path kept."""
    target = urlsplit(base_url)
    out: dict[str, Any] = {}
    for key, value in urls.items():
        if isinstance(value, dict):
            out[key] = rewrite_host(value, base_url)
        elif isinstance(value, str) and value.startswith("http"):
            parts = urlsplit(value)
            out[key] = urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
        else:
            out[key] = value
    return out


def make_binance(*, base_url: str | None = None, api_key: str = "", secret: str = "", timeout_ms: int = 10_000,
                 **extra: Any) -> Any:
    """A ``ccxt.binance`` client; ``base_url`` (e.g. http://127.0.0.1:8765) points it at a sandbox."""
    import ccxt

    config: dict[str, Any] = {
        "apiKey": api_key, "secret": secret, "timeout": timeout_ms, "enableRateLimit": True,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
                    "defaultType": "spot", "adjustForTimeDifference": False},
        **extra,
    }
    client = ccxt.binance(config)
    client.verbose = False
    if base_url:
        client.urls["api"] = rewrite_host(client.urls["api"], base_url)
    return client
