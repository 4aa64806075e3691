"""``rampart sandbox``: serve the Binance-spot-compatible sandbox exchange in the foreground.

The API key and secret come from RAMPART_SANDBOX__API_KEY / RAMPART_SANDBOX__API_SECRET; without them the
documented demo pair (core.sandbox.config.DEMO_API_KEY / DEMO_API_SECRET) is used, which opens nothing but
this local sandbox. Bad arguments raise ConfigError with a one-line message.
"""

from __future__ import annotations

import math
import os
from typing import Annotated

import typer

from core.errors import ConfigError
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig
from core.sandbox.faults import parse_faults

KEY_ENV, SECRET_ENV = "RAMPART_SANDBOX__API_KEY", "RAMPART_SANDBOX__API_SECRET"


def build_config(port: int = 8765, speed: float = 60.0, source: str = "synthetic", faults: str = "",
                 clock: str = "realtime", seed: int = 7, days: float = 30.0, warmup_days: float = 7.0,
                 host: str = "127.0.0.1", commission: str = "base") -> SandboxConfig:
    """The SandboxConfig the command line describes (keys from the environment)."""
    _bounds(port, speed, seed, days, warmup_days)
    items = [s.strip() for s in source.split(",") if s.strip()]
    if not items:
        raise ConfigError("--source is empty; use 'synthetic' or candle file paths separated by commas")
    if clock not in ("realtime", "manual"):
        raise ConfigError(f"--clock {clock!r} must be 'realtime' or 'manual'")
    if commission not in ("base", "bnb", "quote"):
        raise ConfigError(f"--commission {commission!r} must be 'base' (the received asset, Binance's default), "
                          "'bnb' (BNB pays, with the discount) or 'quote'")
    api_key = os.environ.get(KEY_ENV) or DEMO_API_KEY
    secret = os.environ.get(SECRET_ENV) or DEMO_API_SECRET
    return SandboxConfig(
        host=host, port=port, speed=speed, clock="manual" if clock == "manual" else "realtime",
        source="synthetic" if items == ["synthetic"] else tuple(items), seed=seed, synthetic_days=days,
        warmup_days=warmup_days, api_keys={api_key: secret}, faults=parse_faults(faults),
        commission="bnb" if commission == "bnb" else "quote" if commission == "quote" else "base",
    )


MAX_SPEED = 1_000_000.0  # market seconds per wall second (a year of 1-minute bars in 32 s)
MAX_DAYS = 366.0  # of synthetic 1-minute candles: 527,040 bars per symbol, held in memory


def _bounds(port: int, speed: float, seed: int, days: float, warmup_days: float) -> None:
    """Numeric options in range (NaN and infinities refused) before anything is generated or served."""
    if not 0 <= port <= 65_535:
        raise ConfigError(f"--port must be 0 (any free port) to 65535, got {port}")
    if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise ConfigError(f"--speed must be more than 0 and at most {MAX_SPEED:,.0f} market seconds per wall second, "
                          f"got {speed:g}")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed}")
    if not (math.isfinite(days) and 0 < days <= MAX_DAYS):
        raise ConfigError(f"--days must be more than 0 and at most {MAX_DAYS:g} days of candles, got {days:g}")
    if not (math.isfinite(warmup_days) and 0 <= warmup_days < days):
        raise ConfigError(f"--warmup-days must be from 0 to less than --days ({days:g}), got {warmup_days:g}")


def sandbox(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0 picks a free one)")] = 8765,
    speed: Annotated[float, typer.Option(help="market seconds per wall second, e.g. 60")] = 60.0,
    source: Annotated[str, typer.Option(help="'synthetic' or candle files (one per symbol), comma-separated")] = (
        "synthetic"),
    faults: Annotated[str, typer.Option(
        help="fault spec, e.g. latency=0.5,error5xx=0.1,timeout=0.05,lost_response=0.1,partial_fill=0.2,"
             "rate_limit=0.05,late_execution=0.1,late_ms=2000")] = "",
    clock: Annotated[str, typer.Option(help="realtime (x speed) or manual (advanced via /sandbox/advance)")] = (
        "realtime"),
    seed: Annotated[int, typer.Option(help="seed of the synthetic market")] = 7,
    days: Annotated[float, typer.Option(help="days of synthetic candles (warm-up included)")] = 30.0,
    warmup_days: Annotated[float, typer.Option(help="days of candles before the market clock starts")] = 7.0,
    commission: Annotated[str, typer.Option(
        help="fee asset: base (the asset received, Binance without BNB), bnb (BNB pays at BNBUSDT with the "
             "discount, else base) or quote (every fee in the quote asset)")] = "base",
) -> None:
    """Serve a Binance-spot-compatible exchange on localhost for rehearsing the live path with ccxt."""
    from core.sandbox.server import serve

    serve(build_config(port, speed, source, faults, clock, seed, days, warmup_days, commission=commission))
