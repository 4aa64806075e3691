"""The REAL ccxt.binance client pointed at the sandbox (see core.execution.ccxt_client, which builds it)."""

from __future__ import annotations

from typing import Any

import ccxt

from core.execution.ccxt_client import SPOT_ONLY_OPTIONS, make_binance, rewrite_api_hosts

__all__ = ["SPOT_ONLY_OPTIONS", "ccxt_client", "rewrite_api_hosts"]


def ccxt_client(url: str, api_key: str | None = None, secret: str | None = None, **kw: Any) -> ccxt.binance:
    """A ``ccxt.binance`` that talks to ``url`` (e.g. a SandboxServer's ``.url``).

    ``kw`` goes to the ccxt constructor (e.g. ``timeout=3000``, ``enableRateLimit=False``)."""
    timeout = kw.pop("timeout", 10_000)
    client: ccxt.binance = make_binance(base_url=url, api_key=api_key, secret=secret, timeout_ms=timeout, **kw)
    return client
