"""The sandbox's price path and market clock: candles replayed as a continuous, piecewise-linear price.

Within a candle of duration d starting at t, the price walks through four vertices, linearly between them:
open at t, then for a red candle (close < open) low at t + d/3 and high at t + 2d/3, for a green one high
then low, and close at t + d - 1 ms; the next candle's open follows 1 ms later. Stops and limits therefore
trigger where a real tape would have crossed them, and klines of any interval rebuilt from the path
reproduce the source candles exactly.

Market time = start + (wall time since start) x speed in realtime mode; in manual mode it moves only by
``advance(ms)``, and ``set_price`` overrides a symbol's path from the current time on (flat at that price)
until ``clear_price``. When the source runs out the price stays at the last close while the clock keeps
running (``exhausted`` tells a driver to stop).

With ``commission="bnb"`` the fees need BNB's price: when the sources hold no BNBUSDT, a flat BNBUSDT market at
``bnb_price`` over the sources' whole span is added (``set_price`` can move it like any other symbol).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from core.market import generate, load_candles
from core.market.candles import TS_DTYPE, CandleSet, timeframe_ms
from core.sandbox.config import SandboxConfig
from core.sandbox.symbols import SymbolSpec, spec_for

DAY_MS = 86_400_000
BNB_SYMBOL = "BNBUSDT"
BNB_VOLUME = 100.0  # base volume per candle of the synthetic BNBUSDT market


def wall_ms() -> int:
    """The wall clock in epoch milliseconds (what /api/v3/time serves and signatures are checked against)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class _Vertices:
    t: np.ndarray  # int64 epoch ms, non-decreasing (equal times = an instant jump)
    p: np.ndarray  # float64 prices


class PricePath:
    """One symbol's continuous price: the candle path, with manual overrides laid over it."""

    def __init__(self, candles: CandleSet) -> None:
        frame = candles.frame.sort("ts").unique("ts", keep="first", maintain_order=True)
        if frame.height == 0:
            raise DataError(f"{candles.symbol}: no candles to replay")
        self.symbol = candles.symbol
        self.step_ms = timeframe_ms(candles.timeframe)
        self.ts = frame.get_column("ts").dt.epoch("ms").to_numpy().astype(np.int64)
        cols = {c: frame.get_column(c).cast(pl.Float64).to_numpy() for c in ("open", "high", "low", "close", "volume")}
        self.open, self.high, self.low, self.close = cols["open"], cols["high"], cols["low"], cols["close"]
        self.volume = np.nan_to_num(cols["volume"], nan=0.0)
        self._source = self._candle_vertices()
        self._current = self._source
        self._overrides: list[tuple[int, float | None]] = []
        # Cumulative volume at each candle's start and end: volume accrues evenly within a candle.
        cum = np.concatenate([[0.0], np.cumsum(self.volume)])
        self._vol_t = np.column_stack([self.ts, self.ts + self.step_ms]).ravel()
        self._vol_c = np.column_stack([cum[:-1], cum[1:]]).ravel()

    @property
    def first_ts(self) -> int:
        return int(self.ts[0])

    @property
    def end_ts(self) -> int:
        """The last moment the source defines (close of the last candle)."""
        return int(self.ts[-1] + self.step_ms - 1)

    def _candle_vertices(self) -> _Vertices:
        d = self.step_ms
        red = self.close < self.open
        first = np.where(red, self.low, self.high)
        second = np.where(red, self.high, self.low)
        t = np.column_stack([self.ts, self.ts + d // 3, self.ts + 2 * d // 3, self.ts + d - 1]).ravel()
        p = np.column_stack([self.open, first, second, self.close]).ravel()
        return _Vertices(t.astype(np.int64), p.astype(np.float64))

    # --- reading the path -------------------------------------------------------------------------
    def price_at(self, t: int) -> float:
        """The price at market time ``t`` (the latest one when the path jumps at ``t``)."""
        v = self._current
        i = int(np.searchsorted(v.t, t, side="right")) - 1
        if i < 0:
            return float(v.p[0])
        if i >= len(v.t) - 1:
            return float(v.p[-1])
        t0, t1 = int(v.t[i]), int(v.t[i + 1])
        p0, p1 = float(v.p[i]), float(v.p[i + 1])
        return p0 + (p1 - p0) * (t - t0) / (t1 - t0)

    def points_between(self, t0: int, t1: int) -> list[tuple[int, float]]:
        """The path's vertices in (t0, t1], then (t1, price at t1): walk these to match orders."""
        v = self._current
        i0 = int(np.searchsorted(v.t, t0, side="right"))
        i1 = int(np.searchsorted(v.t, t1, side="right"))
        points = [(int(t), float(p)) for t, p in zip(v.t[i0:i1], v.p[i0:i1], strict=True)]
        points.append((t1, self.price_at(t1)))
        return points

    def window(self, a: int, b: int) -> tuple[float, float, float, float]:
        """(open, high, low, close) of the path over [a, b] (both ends included)."""
        v = self._current
        i0 = int(np.searchsorted(v.t, a, side="left"))
        i1 = int(np.searchsorted(v.t, b, side="right"))
        first, last = self._price_before(a, i0), self.price_at(b)
        inside = v.p[i0:i1]
        high = max(first, last, float(inside.max())) if inside.size else max(first, last)
        low = min(first, last, float(inside.min())) if inside.size else min(first, last)
        return first, high, low, last

    def _price_before(self, a: int, i0: int) -> float:
        """The price at ``a`` as the path arrives there (the first of several vertices at ``a``)."""
        v = self._current
        if i0 < len(v.t) and int(v.t[i0]) == a:
            return float(v.p[i0])
        return self.price_at(a)

    def volume_between(self, a: int, b: int) -> float:
        """Base volume traded in [a, b): the source volume spread evenly over each candle."""
        ca, cb = np.interp([a, b], self._vol_t, self._vol_c)
        return max(0.0, float(cb - ca))

    # --- manual overrides -------------------------------------------------------------------------
    def override(self, t: int, price: float | None) -> None:
        """From ``t`` on, the price is ``price`` (flat); None returns to the candle path at ``t``."""
        if self._overrides and t < self._overrides[-1][0]:
            raise ConfigError(f"{self.symbol}: a price override cannot go back in time")
        self._overrides.append((t, price))
        self._current = self._with_overrides()

    def _with_overrides(self) -> _Vertices:
        src = self._source
        ts: list[np.ndarray] = []
        ps: list[np.ndarray] = []
        flat: float | None = None
        since = np.iinfo(np.int64).min  # source vertices after this time are live
        for t, price in self._overrides:
            if flat is None:
                keep = (src.t > since) & (src.t < t)
                ts.append(src.t[keep])
                ps.append(src.p[keep])
                here = _interp(src, t)
            else:
                here = flat
            ts.append(np.array([t, t], dtype=np.int64))
            ps.append(np.array([here, price if price is not None else _interp(src, t)]))
            flat, since = price, t
        if flat is None:
            keep = src.t > since
            ts.append(src.t[keep])
            ps.append(src.p[keep])
        return _Vertices(np.concatenate(ts), np.concatenate(ps))

    @property
    def overridden(self) -> bool:
        return bool(self._overrides) and self._overrides[-1][1] is not None


def _interp(v: _Vertices, t: int) -> float:
    return float(np.interp(t, v.t, v.p))


def load_sources(config: SandboxConfig) -> list[CandleSet]:
    """The candle sets the sandbox replays: synthetic from the seed, or loaded files, or given CandleSets."""
    items = config.sources()
    if items == ["synthetic"]:
        return generate(list(config.symbols), config.timeframe, config.synthetic_days, config.seed)
    sets: list[CandleSet] = []
    for item in items:
        if isinstance(item, CandleSet):
            sets.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            raise ConfigError(f"sandbox source {path} is a folder; give candle files, one per symbol")
        sets.append(load_candles(path))
    symbols = [s.symbol for s in sets]
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"sandbox sources repeat a symbol ({', '.join(symbols)}); give one file per symbol")
    return sets


def flat_market(sets: list[CandleSet], symbol: str, price: float) -> CandleSet:
    """Candles at one steady ``price`` spanning all of ``sets`` (in the first set's timeframe)."""
    step = timeframe_ms(sets[0].timeframe)
    epochs = [s.frame.get_column("ts").dt.epoch("ms").to_numpy() for s in sets]
    start = min(int(e.min()) for e in epochs)
    end = max(int(e.max()) + timeframe_ms(s.timeframe) for e, s in zip(epochs, sets, strict=True))
    ts = np.arange(start // step * step, end + step, step, dtype=np.int64)
    frame = pl.DataFrame({"ts": pl.Series(ts).cast(TS_DTYPE), "open": price, "high": price, "low": price,
                          "close": price, "volume": BNB_VOLUME})
    return CandleSet(symbol, sets[0].timeframe, frame)


class Market:
    """All symbols' price paths on one market clock (realtime × speed, or manual)."""

    def __init__(self, config: SandboxConfig, candle_sets: list[CandleSet] | None = None) -> None:
        self.config = config
        sets = candle_sets if candle_sets is not None else load_sources(config)
        if config.commission == "bnb" and sets and all(s.symbol != BNB_SYMBOL for s in sets):
            sets = [*sets, flat_market(sets, BNB_SYMBOL, config.bnb_price)]
        self.paths: dict[str, PricePath] = {s.symbol: PricePath(s) for s in sets}
        bid_up, bid_down, ask_up, ask_down = (Decimal(str(m)) for m in config.percent_price_by_side)
        self.specs: dict[str, SymbolSpec] = {
            s: replace(spec_for(s), bid_up=bid_up, bid_down=bid_down, ask_up=ask_up, ask_down=ask_down)
            for s in self.paths}
        first = max(p.first_ts for p in self.paths.values())
        last = min(p.end_ts for p in self.paths.values())
        if config.start is not None:
            self.start_ts = int(config.start.timestamp() * 1000)
        else:
            self.start_ts = first + int(config.warmup_days * DAY_MS)
        if not first <= self.start_ts <= last:
            raise ConfigError(
                f"sandbox start {self.start_ts} is outside the candles ({first}..{last}); "
                "lower warmup_days or give a start inside the data"
            )
        self._wall_start = wall_ms()
        self._offset = 0  # manual mode: market ms since start

    @property
    def symbols(self) -> list[str]:
        return list(self.paths)

    def restart_clock(self) -> None:
        """Realtime: market time is ``start_ts`` now (called when the server starts serving).

        A manual clock keeps its position: a test may have advanced it before starting the server.
        """
        self._wall_start = wall_ms()

    def now(self) -> int:
        """Current market time in epoch ms."""
        if self.config.manual:
            return self.start_ts + self._offset
        return self.start_ts + int((wall_ms() - self._wall_start) * self.config.speed)

    @property
    def exhausted(self) -> bool:
        """True once every symbol's candles have been replayed (prices now stay at the last close)."""
        return self.now() >= max(p.end_ts for p in self.paths.values())

    def path(self, symbol: str) -> PricePath:
        return self.paths[symbol]

    def price(self, symbol: str, t: int | None = None) -> float:
        return self.paths[symbol].price_at(self.now() if t is None else t)

    def advance(self, ms: int) -> int:
        """Manual mode: move market time forward by ``ms``; returns the new market time."""
        self._require_manual("advance")
        if ms < 0:
            raise ConfigError(f"advance({ms}): market time only moves forward; give ms >= 0")
        self._offset += int(ms)
        return self.now()

    def set_price(self, symbol: str, price: float | None) -> None:
        """Manual mode: the symbol trades at ``price`` from now on (None: back to the candle path)."""
        self._require_manual("set_price")
        if price is not None and not price > 0:
            raise ConfigError(f"set_price({symbol}, {price}): the price must be > 0")
        self.paths[symbol].override(self.now(), price)

    def _require_manual(self, what: str) -> None:
        if not self.config.manual:
            raise ConfigError(f"{what} needs the sandbox in manual clock mode (SandboxConfig(clock='manual'))")
