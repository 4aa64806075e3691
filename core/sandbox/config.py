"""SandboxConfig: every setting of the sandbox exchange, validated once (ConfigError names what to fix).

Secrets: ``api_keys`` maps API key -> secret. The secrets never appear in ``repr`` or in any response.
``key_permissions`` maps API key -> KeyPermissions (what Binance's API Management page sets per key); a key not
named there reads and trades spot, cannot withdraw and is IP-restricted (KeyPermissions()).
The demo key/secret below are public, documented defaults for local rehearsal only (they unlock nothing
anywhere but this sandbox); override them with RAMPART_SANDBOX__API_KEY / RAMPART_SANDBOX__API_SECRET.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from core.errors import ConfigError
from core.market.candles import CandleSet, timeframe_ms
from core.sandbox.faults import FaultConfig

DEMO_API_KEY = "rampart-sandbox-demo-key"
DEMO_API_SECRET = "rampart-sandbox-demo-secret"

Source = str | Path | CandleSet
Clock = Literal["realtime", "manual"]
Commission = Literal["base", "bnb", "quote"]
MAX_BAN_S = 3 * 86_400  # Binance: IP bans scale "from 2 minutes to 3 days" (rest-api.md, IP Limits)


@dataclass(frozen=True)
class KeyPermissions:
    """What one API key may do, as GET /sapi/v1/account/apiRestrictions reports it.

    ``reading`` (enableReading) admits the USER_DATA endpoints, ``trading`` (enableSpotAndMarginTrading) the TRADE
    ones (rest-api.md, Request Security: new, test and cancel orders); a refused call answers 401 -2015.
    ``withdrawals`` and ``ip_restrict`` are only reported (the sandbox serves no withdrawals and every client is
    local). Binance itself enables withdrawals only on IP-restricted keys; the sandbox does not enforce that, so
    a preflight can be shown any combination.
    """

    reading: bool = True
    trading: bool = True
    withdrawals: bool = False
    ip_restrict: bool = True

    def __post_init__(self) -> None:
        for name in ("reading", "trading", "withdrawals", "ip_restrict"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"key permission {name}={getattr(self, name)!r} must be true or false")


def _default_keys() -> dict[str, str]:
    return {DEMO_API_KEY: DEMO_API_SECRET}


def _default_balances() -> dict[str, float]:
    return {"USDT": 10_000.0}


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox runs. ``source`` is "synthetic", candle file path(s) or CandleSets (tests).

    Market time = ``start`` (default: the first candle + ``warmup_days``) + wall time elapsed × ``speed``
    with ``clock="realtime"``; with ``clock="manual"`` market time moves only by ``advance(ms)``.
    ``symbols`` and ``seed``/``synthetic_days`` apply to the synthetic source; files and CandleSets bring
    their own symbols and timeframe.

    ``commission`` is the asset fees are charged in (faqs/commission_faq.md): "base" = the asset received
    (Binance without BNB fee payment: a buy pays in the base asset, a sell in the quote), "bnb" = BNB at the
    BNBUSDT price with the BNB discount while the free BNB covers it, else as "base"; "quote" = always the
    quote asset (the sandbox's old simplification, kept for comparison). With "bnb" and no BNBUSDT in the
    sources, a flat BNBUSDT market at ``bnb_price`` is added. ``percent_price_by_side`` is PERCENT_PRICE_BY_SIDE's
    (bidMultiplierUp, bidMultiplierDown, askMultiplierUp, askMultiplierDown) against the 5-minute average
    price; ``ban_s`` the first IP ban (418) of a client that ignores a 429's Retry-After, doubled per repeat.
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    speed: float = 60.0  # market seconds per wall second
    clock: Clock = "realtime"
    source: Source | Sequence[Source] = "synthetic"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    timeframe: str = "1m"  # of the synthetic candles (files bring their own)
    seed: int = 7
    synthetic_days: float = 30.0  # length of the synthetic market, warm-up included
    warmup_days: float = 7.0  # candles before the start that klines can already serve
    start: datetime | None = None
    balances: Mapping[str, float] = field(default_factory=_default_balances)
    taker_fee: float = 0.001
    maker_fee: float = 0.001
    api_keys: Mapping[str, str] = field(default_factory=_default_keys, repr=False)
    key_permissions: Mapping[str, KeyPermissions] = field(default_factory=dict)  # unnamed keys: KeyPermissions()
    recv_window_max: int = 60_000
    weight_limit: int = 6_000  # request weight per minute, as Binance spot
    spread_bps: float = 1.0  # bid/ask spread around the path price (at least one tick)
    book_level_notional: float = 20_000.0  # typical quote value of one synthetic book level
    match_hz: float = 20.0  # background matching rate in realtime mode
    unique_client_order_ids: Literal["open", "all"] = "open"  # Binance: unique among OPEN orders only
    faults: FaultConfig = field(default_factory=FaultConfig)
    commission: Commission = "base"
    bnb_price: float = 600.0  # the synthetic BNBUSDT price when the sources have no BNBUSDT ("bnb" only)
    percent_price_by_side: tuple[float, float, float, float] = (5.0, 0.2, 5.0, 0.2)
    ban_s: int = 120  # Binance's shortest IP ban: 2 minutes
    order_lists: bool = True  # advertise OTO/OPO and cancelReplace (False: a venue without them)

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65_535:
            raise ConfigError(f"sandbox port {self.port!r} must be 0 (pick a free one) to 65535")
        if not (math.isfinite(self.speed) and 0 < self.speed <= 1_000_000):
            raise ConfigError(f"sandbox speed {self.speed} must be > 0 market seconds per wall second")
        if self.clock not in ("realtime", "manual"):
            raise ConfigError(f"sandbox clock {self.clock!r} must be 'realtime' or 'manual'")
        timeframe_ms(self.timeframe)
        self._check_source()
        self._check_money()
        self._check_keys()
        if not 1_000 <= self.recv_window_max <= 60_000:
            raise ConfigError(f"recv_window_max {self.recv_window_max} must be 1000..60000 ms")
        if self.weight_limit < 1:
            raise ConfigError(f"weight_limit {self.weight_limit} must be >= 1 per minute")
        if not 0 <= self.spread_bps <= 1_000 or self.book_level_notional <= 0 or not 0 < self.match_hz <= 1000:
            raise ConfigError("spread_bps must be 0..1000, book_level_notional > 0 and match_hz in (0, 1000]")
        if self.unique_client_order_ids not in ("open", "all"):
            raise ConfigError("unique_client_order_ids must be 'open' (Binance) or 'all'")
        if self.start is not None and self.start.tzinfo is None:
            raise ConfigError("sandbox start must be timezone-aware (UTC)")
        if not (isinstance(self.ban_s, int) and 1 <= self.ban_s <= MAX_BAN_S):
            raise ConfigError(f"ban_s {self.ban_s!r} must be whole seconds from 1 to {MAX_BAN_S} (3 days)")

    def _check_source(self) -> None:
        items = self.sources()
        if not items:
            raise ConfigError("sandbox source is empty; use 'synthetic', candle file paths or CandleSets")
        if any(isinstance(s, str) and s == "synthetic" for s in items) and len(items) > 1:
            raise ConfigError("sandbox source 'synthetic' cannot be mixed with files")
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"sandbox symbols {self.symbols!r} must be distinct, e.g. ('BTCUSDT', 'ETHUSDT')")
        if not (self.synthetic_days > 0 and 0 <= self.warmup_days < self.synthetic_days):
            raise ConfigError("synthetic_days must be > 0 and warmup_days in [0, synthetic_days)")

    def _check_money(self) -> None:
        for asset, amount in self.balances.items():
            if not asset.isalnum() or not asset.isupper() or not (math.isfinite(amount) and amount >= 0):
                raise ConfigError(f"start balance {asset}={amount} must be an upper-case asset and an amount >= 0")
        for name in ("taker_fee", "maker_fee"):
            if not 0.0 <= getattr(self, name) <= 0.01:
                raise ConfigError(f"sandbox {name}={getattr(self, name)} must be between 0 and 0.01")
        if self.commission not in ("base", "bnb", "quote"):
            raise ConfigError(f"sandbox commission {self.commission!r} must be 'base', 'bnb' or 'quote'")
        if not (math.isfinite(self.bnb_price) and self.bnb_price > 0):
            raise ConfigError(f"sandbox bnb_price {self.bnb_price} must be a price > 0")
        multipliers = self.percent_price_by_side
        if len(multipliers) != 4 or not all(math.isfinite(m) and m > 0 for m in multipliers) or not (
                multipliers[1] <= 1 <= multipliers[0] and multipliers[3] <= 1 <= multipliers[2]):
            raise ConfigError("percent_price_by_side must be (bidUp >= 1, 0 < bidDown <= 1, askUp >= 1, "
                              f"0 < askDown <= 1); got {multipliers!r}")

    def _check_keys(self) -> None:
        if not self.api_keys:
            raise ConfigError("sandbox needs at least one API key (api_keys={key: secret})")
        for key, secret in self.api_keys.items():
            if not key or not secret or len(key) > 128 or any(c.isspace() for c in key):
                raise ConfigError("every sandbox API key and secret must be non-empty (keys: no spaces, <= 128)")
        for key, permissions in self.key_permissions.items():
            if key not in self.api_keys:
                raise ConfigError(f"key_permissions names API key {key!r}, which is not in api_keys; "
                                  f"add it there (with its secret) or drop its permissions entry")
            if not isinstance(permissions, KeyPermissions):
                raise ConfigError(f"key_permissions[{key!r}] must be a KeyPermissions, "
                                  f"not {type(permissions).__name__}")

    def permissions(self, api_key: str) -> KeyPermissions:
        """The permissions of a configured key (the default when ``key_permissions`` does not name it)."""
        return self.key_permissions.get(api_key, KeyPermissions())

    def sources(self) -> list[Source]:
        """``source`` as a list (a single path, name or CandleSet becomes a one-item list)."""
        if isinstance(self.source, str | Path | CandleSet):
            return [self.source]
        return list(self.source)

    @property
    def manual(self) -> bool:
        return self.clock == "manual"

    def __repr__(self) -> str:
        keys = ", ".join(f"{k}: ***" for k in self.api_keys)
        limited = ", ".join(f"{k}: {p}" for k, p in self.key_permissions.items())
        return (
            f"SandboxConfig(host={self.host!r}, port={self.port}, speed={self.speed}, clock={self.clock!r}, "
            f"symbols={self.symbols!r}, commission={self.commission!r}, api_keys={{{keys}}}, "
            f"key_permissions={{{limited}}}, faults={self.faults.spec()!r})"
        )

    __str__ = __repr__
