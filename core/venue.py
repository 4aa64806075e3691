"""The venue boundary: which exchange Rampart talks to, and everything that follows from the choice.

A ``Venue`` is built once from the settings (``venue_for(settings.exchange)``) and handed to every caller: the live
session, the emergency stop, key rotation, downloads and reports. It says which hosts the real ccxt client talks
to, which clock the engine runs on (the exchange's own time for the sandbox, whose candles may be replayed history;
the wall clock for Binance's networks), whether its trades count as live evidence for scaling and live reports
(R5.2, R9.7), and where the account's state file lives. Nothing outside this module and ``core.sandbox`` compares
venue names.

Binance's own rehearsal networks (R9.7) use the real client in ccxt's mode for them: ``binance-demo`` is Demo Mode
(``enable_demo_trading``: demo-api.binance.com, live-like prices and books) and ``binance-testnet`` is the Spot
Testnet (``set_sandbox_mode``: testnet.binance.vision, its own market, reset about monthly). Neither serves the
/sapi endpoints (key restrictions), and neither can withdraw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.config.venue import DEFAULT_SANDBOX_URL, VENUE_NAMES, ExchangeConfig
from core.errors import ConfigError

Clock = Literal["exchange", "wall"]
Network = Literal["", "demo", "testnet"]  # "" = the venue's production hosts (or the sandbox's URL)


@dataclass(frozen=True)
class Venue:
    """One exchange as Rampart uses it. Build with ``venue_for``; compare by its properties, never by name."""

    name: str
    base_url: str | None  # None: the exchange's own hosts
    clock: Clock  # the engine's clock: "exchange" = bar time (the venue's candles), "wall" = time.time()
    live_evidence: bool  # its live sessions count toward scaling reviews and live results (R5.2)
    real_money: bool
    timeout_ms: int = 10_000
    network: Network = ""
    key_restrictions: bool = True  # GET /sapi/v1/account/apiRestrictions answers (not on demo or testnet)

    def client(self, *, api_key: str = "", secret: str = "", timeout_ms: int | None = None, **kw: Any) -> Any:
        """The real ``ccxt.binance`` client for this venue (no keys: public data only). On Binance's hosts ccxt
        paces its requests (``enableRateLimit``); the local sandbox needs no pacing — its request weight is still
        watched by the ``RequestBudget`` — and a manual-clock test would otherwise wait on ccxt between calls."""
        from core.execution.ccxt_client import make_binance

        if self.name == "sandbox":
            kw.setdefault("enableRateLimit", False)

        return make_binance(base_url=self.base_url, api_key=api_key, secret=secret,
                            timeout_ms=timeout_ms or self.timeout_ms, network=self.network, **kw)

    def state_path(self, data_dir: Path) -> Path:
        """The account's live state file. A rehearsal network's account is another account than the real one:
        its state lives apart, so a rehearsal in the production data directory never touches the real state."""
        live = Path(data_dir) / "live"
        return live / "state.json" if self.live_evidence else live / self.name / "state.json"

    def engine_clock(self) -> Callable[[], int] | None:
        """The engine's clock on this venue: None = the latest bar's time, else the wall clock in epoch ms."""
        if self.clock == "wall":
            return lambda: int(time.time() * 1000)
        return None

    def describe(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        kind = " (real money)" if self.real_money else "" if self.live_evidence else " (rehearsal: not live evidence)"
        return f"{self.name}{where}{kind}"


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
    if config.name in ("binance-demo", "binance-testnet"):
        if config.url:
            raise ConfigError(f"RAMPART_EXCHANGE__URL / --sandbox-url is only for the sandbox; {config.name} uses "
                              "Binance's own hosts for it (unset it)")
        network: Network = "demo" if config.name == "binance-demo" else "testnet"
        return Venue(config.name, None, "wall", live_evidence=False, real_money=False, timeout_ms=config.timeout_ms,
                     network=network, key_restrictions=False)
    raise ConfigError(f"unknown exchange '{config.name}'; use one of: {', '.join(VENUE_NAMES)}")


def sandbox_at(url: str, timeout_ms: int = 10_000) -> Venue:
    """The local sandbox at ``url`` (tests, the demo)."""
    return venue_for(ExchangeConfig(name="sandbox", url=url, timeout_ms=timeout_ms))


__all__ = ["Venue", "sandbox_at", "venue_for"]
