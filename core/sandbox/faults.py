"""Fault injection for the sandbox exchange: which failure each /api/v3 request suffers, from a seeded RNG.

Spec string (all optional, comma-separated ``name=value``):
``latency=3.0,error5xx=0.2,timeout=0.1,lost_response=0.5,partial_fill=0.5,rate_limit=0.1``
- ``latency``: seconds added to every /api/v3 response;
- ``error5xx``: probability of a plain-text 503 before the request is processed (nothing happens);
- ``timeout``: probability that the request is held ``timeout_s`` seconds (default 30) and then answered 503
  without being processed, so the client times out first;
- ``lost_response``: probability, for POST /api/v3/order only, that the order is accepted and booked but the
  client gets a 503 ``-1007`` "execution status unknown" instead of the order;
- ``partial_fill``: probability that a MARKET/LIMIT order's immediate execution is cut to 25-75 % of its
  quantity (a MARKET order then expires with the partial quantity, as Binance does without liquidity;
  the rest of a LIMIT order rests until the price crosses the limit again);
- ``rate_limit``: probability of a 429 with Retry-After (as if the request weight were exhausted);
- ``timeout_s``: how long a ``timeout`` holds the request; ``seed``: the RNG seed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields

from core.errors import ConfigError

PROBABILITIES: tuple[str, ...] = ("error5xx", "timeout", "lost_response", "partial_fill", "rate_limit")


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities per request (0..1), latency and timeout in seconds; all zero = a well-behaved exchange."""

    latency: float = 0.0
    error5xx: float = 0.0
    timeout: float = 0.0
    lost_response: float = 0.0
    partial_fill: float = 0.0
    rate_limit: float = 0.0
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
            values[name] = int(raw) if name == "seed" else float(raw)
        except ValueError:
            raise ConfigError(f"fault {name}={raw.strip()!r} is not a number") from None
    return FaultConfig(**values)  # type: ignore[arg-type]


class FaultInjector:
    """Rolls the dice for each request; the config can be swapped at runtime (POST /sandbox/faults)."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._rng = random.Random(self._config.seed)
        self.injected: dict[str, int] = dict.fromkeys(PROBABILITIES, 0)

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
