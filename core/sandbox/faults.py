"""Fault injection for the sandbox exchange: which failure each /api/v3 request suffers, from a seeded RNG.

Spec string (all optional, comma-separated ``name=value``):
``latency=3.0,error5xx=0.2,timeout=0.1,lost_response=0.5,partial_fill=0.5,rate_limit=0.1``
- ``latency``: seconds added to every /api/v3 response;
- ``error5xx``: probability of a plain-text 503 before the request is processed (nothing happens);
- ``timeout``: probability that the request is held ``timeout_s`` seconds (default 30) and then answered 503
  without being processed, so the client times out first;
- ``lost_response``: probability, for the order-placing POSTs (/api/v3/order, /orderList/oto, /orderList/opo,
  /order/cancelReplace) only, that the request is processed (the order booked, the stop replaced) but the client
  gets a 503 ``-1007`` "execution status unknown" instead of the answer;
- ``partial_fill``: probability that a MARKET/LIMIT order's immediate execution (also an order list's working
  order and a cancelReplace's new order) is cut to 25-75 % of its quantity (a MARKET order then expires with the
  partial quantity, as Binance does without liquidity; the rest of a LIMIT order rests until the price crosses the
  limit again, an IOC one expires);
- ``late_execution``: probability, for POST /api/v3/order only, that the client gets a 503 ``-1007`` "execution
  status unknown" and the order is NOT booked then but ``late_ms`` market milliseconds later (default 2000), as if
  it had reached the matching engine at that time (rest-api.md, General API Information and HTTP Return Codes:
  a 5XX/-1007 "does not always mean that the request failed"); until then a query by its client id answers -2013;
- ``rate_limit``: probability of a 429 with Retry-After (as if the request weight were exhausted); a client
  that sends again before the Retry-After expires is banned like any other (418, see core.sandbox.limits);
- ``timeout_s``: how long a ``timeout`` holds the request; ``seed``: the RNG seed.

Deterministic one-shot errors (``Injection``, POST /sandbox/inject): the next ``count`` requests that match a
method, a path and some parameters fail in one chosen way (INJECT_ERRORS), for tests that need an exact sequence.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import ConfigError

PROBABILITIES: tuple[str, ...] = ("error5xx", "timeout", "lost_response", "partial_fill", "rate_limit",
                                  "late_execution")
INTEGERS: tuple[str, ...] = ("seed", "late_ms")
# busy: 503 -1008, nothing processed; unknown: 503 -1007, nothing processed; late: 503 -1007, booked late_ms later;
# lost: booked, then 503 -1007; reject: 400 -2010 with ``msg``; rate_limit: 429 -1003 with Retry-After
# ``retry_after`` seconds; server_error: a plain-text 503 from the edge.
INJECT_ERRORS: tuple[str, ...] = ("busy", "unknown", "late", "lost", "reject", "rate_limit", "server_error")
ORDER_ONLY: tuple[str, ...] = ("late", "lost")  # they need an order to book: POST /api/v3/order ...
LOST_PATHS: tuple[str, ...] = ("/api/v3/order", "/api/v3/orderList/oto", "/api/v3/orderList/opo",
                               "/api/v3/order/cancelReplace")  # ... and for "lost", the other order-placing POSTs
MAX_LATE_MS = 86_400_000


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities per request (0..1), latency and timeout in seconds; all zero = a well-behaved exchange."""

    latency: float = 0.0
    error5xx: float = 0.0
    timeout: float = 0.0
    lost_response: float = 0.0
    partial_fill: float = 0.0
    rate_limit: float = 0.0
    late_execution: float = 0.0
    late_ms: int = 2_000  # market ms until a late_execution order reaches the matching engine
    timeout_s: float = 30.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in PROBABILITIES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"fault {name}={value} is not a probability; use a number from 0 to 1")
        if not 0.0 <= self.latency <= 600.0:
            raise ConfigError(f"fault latency={self.latency} must be seconds from 0 to 600")
        if not 0.0 < self.timeout_s <= 600.0:
            raise ConfigError(f"fault timeout_s={self.timeout_s} must be seconds in (0, 600]")
        if not 0 <= self.late_ms <= MAX_LATE_MS:
            raise ConfigError(f"fault late_ms={self.late_ms} must be market milliseconds from 0 to {MAX_LATE_MS}")

    @property
    def active(self) -> bool:
        """True when any fault can happen."""
        return self.latency > 0 or any(getattr(self, name) > 0 for name in PROBABILITIES)

    def spec(self) -> str:
        """The spec string that parses back to this config (non-default values only)."""
        default = FaultConfig()
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v != getattr(default, k)]
        return ",".join(parts)


def parse_faults(spec: str | None) -> FaultConfig:
    """``"latency=3.0,error5xx=0.2"`` -> FaultConfig; an empty spec means no faults. ConfigError says what to fix."""
    text = (spec or "").strip()
    if not text:
        return FaultConfig()
    names = {f.name: f.type for f in fields(FaultConfig)}
    values: dict[str, float | int] = {}
    for item in text.split(","):
        name, sep, raw = item.strip().partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or name not in names:
            raise ConfigError(
                f"bad fault {item.strip()!r}: write name=value with name one of {', '.join(names)}"
            )
        try:
            values[name] = int(raw) if name in INTEGERS else float(raw)
        except ValueError:
            raise ConfigError(f"fault {name}={raw.strip()!r} is not a number") from None
    return FaultConfig(**values)  # type: ignore[arg-type]


@dataclass
class Injection:
    """The next ``count`` requests to ``method`` (None: any) ``path`` whose parameters include ``match`` (values
    compared case-insensitively) fail with ``error`` (one of INJECT_ERRORS)."""

    path: str
    error: str
    method: str | None = None
    match: dict[str, str] = field(default_factory=dict)
    count: int = 1
    msg: str = "Account has insufficient balance for requested action."  # reject's -2010 message
    retry_after: int = 1  # rate_limit's Retry-After, seconds
    late_ms: int = 2_000  # late: market ms until the order is booked

    def __post_init__(self) -> None:
        self.method = self.method.upper() if self.method else None
        self.match = {str(k): str(v) for k, v in self.match.items()}
        if self.error not in INJECT_ERRORS:
            raise ConfigError(f"inject error {self.error!r} must be one of {', '.join(INJECT_ERRORS)}")
        if not self.path.startswith("/api/v3/"):
            raise ConfigError(f"inject path {self.path!r} must be an /api/v3/ path, e.g. /api/v3/order")
        paths = LOST_PATHS if self.error == "lost" else ("/api/v3/order",)
        if self.error in ORDER_ONLY and (self.path not in paths or self.method not in (None, "POST")):
            raise ConfigError(f"inject error {self.error!r} books an order: use it on POST {' or '.join(paths)}")
        if not 1 <= self.count <= 1_000_000:
            raise ConfigError(f"inject count {self.count} must be 1 or more")
        if not 1 <= self.retry_after <= 86_400:
            raise ConfigError(f"inject retry_after {self.retry_after} must be 1..86400 seconds")
        if not 0 <= self.late_ms <= MAX_LATE_MS:
            raise ConfigError(f"inject late_ms {self.late_ms} must be 0..{MAX_LATE_MS} market ms")
        if self.error == "reject" and not self.msg:
            raise ConfigError("inject error 'reject' needs the -2010 message in 'msg'")

    def matches(self, method: str, path: str, params: Mapping[str, str]) -> bool:
        if self.path != path or (self.method is not None and self.method != method.upper()):
            return False
        return all(str(params.get(k, "")).lower() == v.lower() for k, v in self.match.items())

    def json(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Rolls the dice for each request; the config can be swapped at runtime (POST /sandbox/faults).

    Also holds the one-shot injections (POST /sandbox/inject), applied before the random faults."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)
        self.injected: dict[str, int] = dict.fromkeys(PROBABILITIES, 0)
        self._injections: list[Injection] = []
        self.injections_done: Counter[str] = Counter()

    def inject(self, injection: Injection) -> None:
        """Queue a one-shot injection (after those already queued: the first that matches a request applies)."""
        with self._lock:
            self._injections.append(injection)

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    def pending_injections(self) -> list[dict[str, Any]]:
        with self._lock:
            return [i.json() for i in self._injections]

    def take(self, method: str, path: str, params: Mapping[str, str]) -> Injection | None:
        """The injection this request suffers (its count used up by one), or None."""
        with self._lock:
            for injection in self._injections:
                if injection.matches(method, path, params):
                    injection.count -= 1
                    if injection.count <= 0:
                        self._injections.remove(injection)
                    self.injections_done[injection.error] += 1
                    return injection
            return None

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set(self, config: FaultConfig) -> None:
        """Replace the faults and reseed, so a run with the same spec and requests fails the same way."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)

    def set_spec(self, spec: str) -> FaultConfig:
        """Parse and apply a spec string; returns the new config."""
        config = parse_faults(spec)
        self.set(config)
        return config

    def roll(self, kind: str) -> bool:
        """True when fault ``kind`` strikes this request (counted in ``injected``)."""
        with self._lock:
            probability = getattr(self._config, kind)
            if probability <= 0.0:
                return False
            hit = self._rng.random() < probability
            if hit:
                self.injected[kind] += 1
            return hit

    def partial_fraction(self) -> float | None:
        """The share of an order to fill now when the partial_fill fault strikes, else None."""
        if not self.roll("partial_fill"):
            return None
        with self._lock:
            return self._rng.uniform(0.25, 0.75)
