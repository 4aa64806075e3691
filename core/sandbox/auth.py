"""Request authentication and accounting for the sandbox, as Binance spot does it.

- Signed endpoints: ``X-MBX-APIKEY`` names the key (missing/unknown -> -2015, HTTP 401); ``signature`` is the
  HMAC-SHA256 (hex) of the total parameters = the raw query string followed by the raw body, exactly as
  sent, without the signature parameter itself (-1022); ``timestamp`` (milliseconds, or microseconds as
  rest-api.md's General API Information allows) must satisfy Timing security's rule
  ``timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow`` (recvWindow default 5000 ms, at
  most ``recv_window_max``), else -1021; ``serverTime`` is the wall clock plus the control route's clock skew.
- Permissions (rest-api.md, Request Security): a TRADE endpoint needs a key with ``trading``, a USER_DATA one a key
  with ``reading`` (core.sandbox.config.KeyPermissions); otherwise -2015, HTTP 401, counted as an auth failure.
- Request weight per minute (wall clock) for all /api/v3 requests, with Binance's weights; over the limit
  -> 429 -1003 with Retry-After. SAPI (/sapi/...) weight is metered apart, as Binance does (SAPI_WEIGHTS).
- Counters: authenticated calls and failed authentications per API key, failures by error code.
Secrets are only used to compute the HMAC; they never reach a counter, a log or a response.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from core.sandbox import binance_errors as be
from core.sandbox.accounts import KeyRing

DEFAULT_RECV_WINDOW = 5_000
MICROS_DIGITS = 16  # an epoch timestamp in microseconds has 16 digits (milliseconds: 13)
NO_KEY = "(none)"

# (method, path) -> weight; "symbol-less" variants cost more, as on Binance.
WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/ping"): 1, ("GET", "/api/v3/time"): 1, ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/klines"): 2, ("GET", "/api/v3/avgPrice"): 2,
    ("POST", "/api/v3/order"): 1, ("POST", "/api/v3/order/test"): 1, ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1, ("DELETE", "/api/v3/openOrders"): 1, ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/account"): 20, ("GET", "/api/v3/myTrades"): 20, ("GET", "/api/v3/account/commission"): 20,
    ("POST", "/api/v3/orderList/oto"): 1, ("POST", "/api/v3/orderList/opo"): 1,
    ("POST", "/api/v3/order/cancelReplace"): 1, ("DELETE", "/api/v3/orderList"): 1, ("GET", "/api/v3/orderList"): 4,
    ("GET", "/api/v3/allOrderList"): 20, ("GET", "/api/v3/openOrderList"): 6,
}
NO_SYMBOL_WEIGHTS: dict[str, tuple[int, int]] = {  # path -> (with symbol, without)
    "/api/v3/ticker/24hr": (2, 80), "/api/v3/ticker/price": (2, 4), "/api/v3/ticker/bookTicker": (2, 4),
    "/api/v3/openOrders": (6, 80), "/api/v3/ticker": (4, 80),
}


# SAPI endpoints have their own IP weight per minute on Binance (the wallet docs: apiRestrictions "Request
# Weight(IP) 1"), reported in X-SAPI-USED-IP-WEIGHT-1M and not in the /api/v3 X-MBX-USED-WEIGHT-1M.
SAPI_WEIGHTS: dict[tuple[str, str], int] = {("GET", "/sapi/v1/account/apiRestrictions"): 1}
SAPI_IP_LIMIT = 12_000  # Binance's SAPI IP weight per minute
Security = Literal["USER_DATA", "TRADE"]


def request_weight(method: str, path: str, params: dict[str, str]) -> int:
    """Binance's weight of one request (depth by limit; tickers and openOrders by symbol; a test order 20 with
    computeCommissionRates)."""
    if path.startswith("/sapi/"):
        return SAPI_WEIGHTS.get((method, path), 1)
    if path == "/api/v3/order/test":
        return 20 if params.get("computeCommissionRates", "").lower() == "true" else 1
    if path == "/api/v3/depth":
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 100
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    if path == "/api/v3/myPreventedMatches":  # rest-api.md: 2 by preventedMatchId, 20 by orderId
        return 20 if params.get("orderId") else 2
    if path in NO_SYMBOL_WEIGHTS:
        with_symbol, without = NO_SYMBOL_WEIGHTS[path]
        return with_symbol if params.get("symbol") else without
    return WEIGHTS.get((method, path), 1)


class WeightMeter:
    """Request weight used in the current wall-clock minute (Binance counts per IP; the sandbox per server)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._minute = -1
        self.used = 0

    def charge(self, weight: int, now_ms: int) -> tuple[bool, int, int]:
        """Add ``weight``; (allowed, weight used this minute, seconds until the minute ends)."""
        with self._lock:
            minute = now_ms // 60_000
            if minute != self._minute:
                self._minute, self.used = minute, 0
            self.used += weight
            retry_after = max(1, 60 - (now_ms % 60_000) // 1000)
            return self.used <= self.limit, self.used, retry_after


@dataclass
class AuthStats:
    """What the control API reports: per-key authenticated calls and failures."""

    calls: Counter[str]
    failures: Counter[str]
    failure_codes: Counter[int]
    public_calls: int = 0

    @classmethod
    def empty(cls) -> AuthStats:
        return cls(Counter(), Counter(), Counter())

    def json(self) -> dict[str, Any]:
        return {
            "auth_calls": dict(self.calls), "auth_failures": dict(self.failures),
            "auth_failure_codes": {str(k): v for k, v in self.failure_codes.items()},
            "public_calls": self.public_calls,
        }


def strip_signature(raw: str) -> tuple[str, str | None]:
    """(the raw parameter string without its ``signature=...`` pair, the signature) keeping everything else as sent."""
    if not raw:
        return "", None
    kept, signature = [], None
    for pair in raw.split("&"):
        name, _, value = pair.partition("=")
        if name == "signature":
            signature = value
        else:
            kept.append(pair)
    return "&".join(kept), signature


def hmac_hex(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class Authenticator:
    """Checks signed requests against the key ring and counts the outcome per API key."""

    def __init__(self, keys: KeyRing, recv_window_max: int) -> None:
        self.keys = keys
        self.recv_window_max = recv_window_max
        self.stats = AuthStats.empty()
        self._lock = threading.Lock()

    def _fail(self, api_key: str, error: be.BinanceError) -> be.BinanceError:
        with self._lock:
            self.stats.failures[api_key or NO_KEY] += 1
            self.stats.failure_codes[error.code] += 1
        return error

    def verify(self, api_key: str | None, raw_query: str, raw_body: str, params: dict[str, str],
               server_ms: int, security: Security = "USER_DATA") -> str:
        """The API key when the request is properly signed and fresh and the key's permissions admit the endpoint's
        ``security`` type; else the BinanceError to return."""
        key = api_key or ""
        secret = self.keys.secret(key) if key else None
        if secret is None:
            raise self._fail(key, be.bad_api_key())
        query, sig_q = strip_signature(raw_query)
        body, sig_b = strip_signature(raw_body)
        signature = sig_q or sig_b
        if not signature:
            raise self._fail(key, be.mandatory("signature"))
        expected = hmac_hex(secret, query + body)
        if not hmac.compare_digest(expected, signature.lower()):
            raise self._fail(key, be.bad_signature())
        self._check_time(key, params, server_ms)
        permissions = self.keys.permissions(key)
        if permissions is None or not (permissions.trading if security == "TRADE" else permissions.reading):
            raise self._fail(key, be.bad_api_key())
        with self._lock:
            self.stats.calls[key] += 1
        return key

    def _check_time(self, key: str, params: dict[str, str], server_ms: int) -> None:
        raw_ts = params.get("timestamp", "")
        if not raw_ts.isdigit():
            raise self._fail(key, be.mandatory("timestamp"))
        raw_window = params.get("recvWindow", "")
        if raw_window and not raw_window.replace(".", "", 1).isdigit():
            raise self._fail(key, be.illegal_chars("recvWindow", "^[0-9]{1,20}$"))
        window = float(raw_window) if raw_window else DEFAULT_RECV_WINDOW
        if window > self.recv_window_max:
            raise self._fail(key, be.BinanceError(-1131, f"recvWindow must be less than {self.recv_window_max}."))
        timestamp: float = int(raw_ts)
        if len(raw_ts) >= MICROS_DIGITS:  # microseconds
            timestamp /= 1_000
        if timestamp >= server_ms + 1_000:
            raise self._fail(key, be.ahead_of_server())
        if server_ms - timestamp > window:
            raise self._fail(key, be.outside_recv_window())

    def count_public(self) -> None:
        with self._lock:
            self.stats.public_calls += 1
