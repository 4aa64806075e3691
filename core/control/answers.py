"""The exchange's answers in the emergency stop's terms: a market's filters as an Instrument, a failure in words."""

from __future__ import annotations

import re
from typing import Any

from core.domain import Instrument
from core.errors import ClockOutOfSync, ExchangeBusy, ExchangeUnavailable, RateLimited


def instrument(sym: str, market: dict[str, Any]) -> Instrument:
    """Tick size, lot step and minimum notional from the exchange's own filters (a ccxt market)."""
    filters = {f["filterType"]: f for f in (market.get("info") or {}).get("filters", [])}
    tick = float(filters.get("PRICE_FILTER", {}).get("tickSize", 0.01))
    step = float(filters.get("LOT_SIZE", {}).get("stepSize", 0.00001))
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    return Instrument(sym, tick, step, float(notional.get("minNotional", 5.0)))


_CCXT_NAME = re.compile(r"^[^:]*: (\w+):")  # core.execution.ccxt_broker.translate: "what: CcxtError: text"
_KINDS = {"RequestTimeout": "timed out", "ExchangeNotAvailable": "exchange unavailable (5xx)",
          "NetworkError": "network error", "OnMaintenance": "exchange in maintenance",
          "DDoSProtection": "rate limited", "RateLimitExceeded": "rate limited"}
_CODE = re.compile(r'"code":\s*(-?\d+),\s*"msg":\s*"([^"]{0,120})')


def brief(exc: Exception) -> str:
    """A few words for the operator: what kind of failure, never a URL or a signature."""
    if isinstance(exc, RateLimited):
        return "IP banned (418)" if exc.banned else "rate limited (429)"
    if isinstance(exc, ExchangeBusy):
        return "server busy (-1008)"
    if isinstance(exc, ClockOutOfSync):
        return "timestamp outside recvWindow (-1021)"
    text = str(exc)
    if isinstance(exc, ExchangeUnavailable):
        found = _CCXT_NAME.match(text)
        name = found.group(1) if found else ""
        return _KINDS.get(name, name or "exchange unavailable")
    code = _CODE.search(text)
    if code:
        return f"{code.group(1)} {code.group(2)}"
    return f"{type(exc).__name__}: {text[:160]}"
