"""A manual-clock sandbox and a live session stepped bar by bar with cued signals, for scenario tests.

``Rig(sandbox(btc_closes, eth_closes), settings_for(tmp_path))`` opens a live session through the real ccxt
client; ``rig.bar(BTCUSDT=enter(0.02))`` cues a signal, closes one more 1-minute bar on the exchange and trades
it. The sandbox runs on a manual clock, so the price path and the order of events are exact.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from core.build import config_hash
from core.config import Settings, load_settings
from core.domain import Signal
from core.engine import Engine
from core.live.session import LiveOptions, LiveSession
from core.node import open_live
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig
from core.sandbox.server import SandboxServer
from core.store import Store
from core.strategy import Bar, Strategy
from core.venue import Venue, sandbox_at
from tests.helpers import candles

STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8}}
WARMUP_BARS = 80  # closed candles before the sandbox start (the live window needs 61)
BAR_MS = 60_000
BTC, ETH = 40_000.0, 2_000.0
CCXT = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}
# What the risk engine does on its own: each lands in the events and, with its numbers, in the decision log.
ACTION_CODES = ("DAILY_LOSS_LIMIT", "STATE_CHANGED", "DRAWDOWN_DERISK", "UNREALIZED_LOSS_TIGHTEN",
                "UNREALIZED_LOSS_RECOVERED", "LATENCY_PAUSE", "LATENCY_RESUME", "BREAKER_CONSECUTIVE_LOSSES",
                "BREAKER_API_ERRORS", "BREAKER_SLIPPAGE")

Cue = Callable[[Bar], Signal | None]


def enter(stop_below: float, reason: str = "cue entry") -> Cue:
    """An entry with its protective stop ``stop_below`` (a fraction) under the bar's close."""
    return lambda bar: Signal.enter(bar.symbol, round(bar.close[-1] * (1 - stop_below), 2), reason)


def leave(reason: str = "cue exit") -> Cue:
    return lambda bar: Signal.exit(bar.symbol, reason)


class CueStrategy(Strategy):
    """Emits what the test cued for the next bar, once; nothing otherwise."""

    name = "cue"

    def __init__(self) -> None:
        super().__init__()
        self.cue: Cue | None = None

    def on_bar(self, bar: Bar) -> Signal | None:
        cue, self.cue = self.cue, None
        return cue(bar) if cue is not None else None


def path(closes: list[float], symbol: str) -> Any:
    """Flat 1-minute candles: WARMUP_BARS at the first close, then one candle per close, then the last close
    held (so the source never runs out). The price jumps only between candles."""
    series = [closes[0]] * WARMUP_BARS + closes + [closes[-1]] * 30
    return candles([(c, c, c, c) for c in series], symbol, tf="1m")


def sandbox(btc: list[float], eth: list[float], **config: Any) -> SandboxServer:
    """A manual-clock sandbox on these closes; ``config`` sets any other SandboxConfig field (commission...)."""
    sets = [path(btc, "BTCUSDT"), path(eth, "ETHUSDT")]
    return SandboxServer(SandboxConfig(source=tuple(sets), clock="manual",
                                       start=sets[0].frame["ts"][WARMUP_BARS], **config))


def inject(server: SandboxServer, error: str, count: int = 1, **spec: Any) -> None:
    """The next ``count`` matching requests fail with ``error`` (POST /sandbox/inject: busy, unknown, late, ...)."""
    body = {"method": "POST", "path": "/api/v3/order", "error": error, "count": count, **spec}
    httpx.post(f"{server.url}/sandbox/inject", json=body).raise_for_status()


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    """Live settings with scaled limits; a passed gate record for exactly this config (gates have own tests)."""
    settings = load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"}, **overrides)
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                         "strategy": STRATEGY["name"], "reasons": []})
    return settings


@dataclass
class Rig:
    """One live session on the manual-clock sandbox, stepped bar by bar with cued signals."""

    server: SandboxServer
    settings: Settings
    session: LiveSession = field(init=False)
    cues: dict[str, CueStrategy] = field(init=False)
    venue: Venue | None = None  # default: the sandbox at its URL

    def __post_init__(self) -> None:
        self.session = open_live(self.settings, self.venue or sandbox_at(self.server.url),
                                 LiveOptions(poll_interval_s=0.05))
        self.cues = {}
        for book in self.engine.books:  # the test drives entries and exits from here on
            self.cues[book.symbol] = self.engine.strategies[book.symbol] = CueStrategy()
            book.use(self.cues[book.symbol])

    @property
    def engine(self) -> Engine:
        engine = self.session.engine
        if engine is None:
            raise AssertionError("the live session has no engine")
        return engine

    def bar(self, **cues: Cue) -> None:
        """Cue signals (BTCUSDT=..., ETHUSDT=...), close one more bar on the exchange and trade it."""
        for symbol, cue in cues.items():
            self.cues[symbol].cue = cue
        httpx.post(f"{self.server.url}/sandbox/advance", json={"ms": BAR_MS}).raise_for_status()
        assert self.session.step(), "the session saw no new closed bar"

    def stop(self) -> str:
        """Stop the session the way an operator's stop does; returns the state it closed in."""
        stopped = threading.Event()
        stopped.set()
        return self.session.run(stopped).state

    def decisions(self) -> pl.DataFrame:
        return Store(self.settings.db_path).query(
            "select decision_id, epoch_ms(ts) as ts, symbol, kind, action, code, reason, details from decisions "
            "where session_id = ? order by decision_id", [self.session.session_id])

    def events(self) -> pl.DataFrame:
        return Store(self.settings.db_path).query(
            "select epoch_ms(ts) as ts, severity, code, message from events where session_id = ?",
            [self.session.session_id])


def exchange(server: SandboxServer) -> Any:
    return server.client(DEMO_API_KEY, DEMO_API_SECRET)


def open_stops(server: SandboxServer, symbol: str) -> list[float]:
    """Stop prices of the STOP_LOSS_LIMIT orders open on the exchange for ``symbol``."""
    orders = exchange(server).fetch_open_orders(CCXT[symbol])
    assert all(o["info"]["type"] == "STOP_LOSS_LIMIT" for o in orders), orders
    return sorted(float(o["info"]["stopPrice"]) for o in orders)


def held(server: SandboxServer, asset: str) -> float:
    return float(exchange(server).fetch_balance()["total"].get(asset) or 0.0)


LOT = {"BTC": 0.00001, "ETH": 0.0001}  # the sandbox's LOT_SIZE steps


def flat(server: SandboxServer, asset: str) -> bool:
    """Nothing sellable left: what a buy's commission (charged in the coin, Binance's rule) leaves after the sells is
    dust below one lot step (filters.md LOT_SIZE)."""
    return held(server, asset) < LOT[asset]


def number(pattern: str, text: str) -> float:
    """The number captured by ``pattern``'s first group in ``text`` (a log line), thousands commas dropped."""
    found = re.search(pattern, text)
    if found is None:
        raise AssertionError(f"{pattern!r} not in {text!r}")
    return float(found.group(1).replace(",", ""))


def by_code(frame: pl.DataFrame, code: str) -> pl.DataFrame:
    return frame.filter(pl.col("code") == code)


def set_faults(server: SandboxServer, spec: str) -> None:
    httpx.post(f"{server.url}/sandbox/faults", json={"spec": spec}).raise_for_status()


def scripted_sandbox(btc: list[float], eth: list[float], start: int) -> SandboxServer:
    """Flat 1-minute candles at the given closes; the sandbox starts at candle ``start``, so those before it are
    the session's history and the first ``Rig.bar()`` closes candle ``start``. The last close is then held."""
    sets = [candles([(c, c, c, c) for c in [*closes, *[closes[-1]] * 30]], sym, tf="1m")
            for closes, sym in ((btc, "BTCUSDT"), (eth, "ETHUSDT"))]
    return SandboxServer(SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][start]))
