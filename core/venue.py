"""The venue boundary: which exchange Rampart talks to, and everything that follows from the choice.

A ``Venue`` is built once from the settings (``venue_for(settings.exchange)``) and handed to every caller: the live
session, the emergency stop, key rotation, downloads and reports. It says which hosts the real ccxt client talks
to, which clock the engine runs on (the exchange's own time for the sandbox, whose candles may be replayed history;
the wall clock for a real exchange), and whether its trades count as live evidence for scaling (R5.2). Nothing
outside this module and ``core.sandbox`` compares venue names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.config.venue import DEFAULT_SANDBOX_URL, VENUE_NAMES, ExchangeConfig
from core.errors import ConfigError

Clock = Literal["exchange", "wall"]


@dataclass(frozen=True)
class Venue:
    """One exchange as Rampart uses it. Build with ``venue_for``; compare by its properties, never by name."""

    name: str
    base_url: str | None  # None: the exchange's own hosts
    clock: Clock  # the engine's clock: "exchange" = bar time (the venue's candles), "wall" = time.time()
    live_evidence: bool  # its live sessions count toward scaling reviews and live results (R5.2)
    real_money: bool
    timeout_ms: int = 10_000

    def client(self, *, api_key: str = "", secret: str = "", timeout_ms: int | None = None, **kw: Any) -> Any:
        """The real ``ccxt.binance`` client for this venue (no keys: public data only)."""
        from core.execution.ccxt_client import make_binance

        return make_binance(base_url=self.base_url, api_key=api_key, secret=secret,
                            timeout_ms=timeout_ms or self.timeout_ms, **kw)

    def engine_clock(self) -> Callable[[], int] | None:
        """The engine's clock on this venue: None = the latest bar's time, else the wall clock in epoch ms."""
        if self.clock == "wall":
            return lambda: int(time.time() * 1000)
        return None

    def describe(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"{self.name}{where}" + (" (real money)" if self.real_money else "")


def venue_for(config: ExchangeConfig) -> Venue:
    """The venue the settings choose; ConfigError when it cannot be reached as configured."""
    if config.name == "sandbox":
        url = (config.url or DEFAULT_SANDBOX_URL).strip()
        return Venue("sandbox", url, "exchange", live_evidence=True, real_money=False, timeout_ms=config.timeout_ms)
    if config.name == "binance":
        if config.url:
            raise ConfigError("RAMPART_EXCHANGE__URL / --sandbox-url is only for the sandbox; Binance uses its own "
                              "hosts (unset it, or choose --exchange sandbox)")
        return Venue("binance", None, "wall", live_evidence=True, real_money=True, timeout_ms=config.timeout_ms)
    raise ConfigError(f"unknown exchange '{config.name}'; use one of: {', '.join(VENUE_NAMES)}")


def sandbox_at(url: str, timeout_ms: int = 10_000) -> Venue:
    """The local sandbox at ``url`` (tests, the demo)."""
    return venue_for(ExchangeConfig(name="sandbox", url=url, timeout_ms=timeout_ms))


__all__ = ["Venue", "sandbox_at", "venue_for"]
