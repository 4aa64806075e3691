"""``Book``: the engine's record of one symbol — its candles, indicators, position and working orders.

The candle columns are the whole run in backtest and paper, and grow bar by bar live; the brokers match orders
against them by index. The strategy never sees a Book: it sees the Book's ``bar`` (``core.strategy.Bar``), whose
series the engine feeds one value per bar (``feeds``), so they end at the bar being decided.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable

import numpy as np
import polars as pl

from core.domain import Instrument, Order, Position, Signal, ms_to_dt
from core.errors import LookAheadError, StrategyError
from core.packed import floats, ints
from core.strategy.bar import Bar
from core.strategy.base import Strategy

Feed = tuple[Callable[[float], None], "array[float]"]  # (the series' append, the full column it is fed from)
_REPAINT_TOL = 1e-9


class Book:
    """One symbol in the engine. ``feeds`` grow the strategy's series; ``warm`` is the first bar it decides on."""

    __slots__ = ("_lowest", "bar", "close", "dust", "feeds", "frame", "high", "indicators", "instrument", "low",
                 "n_market", "open", "position", "strategy", "symbol", "ts", "volume", "wake_high", "wake_low", "warm",
                 "working")

    def __init__(self, symbol: str, instrument: Instrument, strategy: Strategy, frame: pl.DataFrame,
                 timeframe_ms: int) -> None:
        self.symbol = symbol
        self.instrument = instrument
        self.strategy = strategy
        self.position: Position | None = None
        self.dust = 0.0  # base units held below what can be sold (R9.1)
        self.working: list[Order] = []
        # Kept by the broker so the loop only calls it when something can happen on this bar: market orders
        # waiting, or the bar's low/high reaching a working stop or limit. A live broker sets wake_low = inf.
        self.n_market = 0
        self.wake_low = -math.inf
        self.wake_high = math.inf
        self.warm = max(int(strategy.warmup), 1) - 1
        self._lowest = (-1, math.nan)  # (closes seen, the lowest of them)
        self.frame = frame
        self._columns(frame)
        self.indicators = strategy.compute(frame)
        self.bar = Bar(symbol, instrument, timeframe_ms, self.follow, self.ts, self.close)
        self.feeds: list[Feed] = [(series.append, values)
                                  for (_, series), values in zip(strategy.declared(), self.indicators, strict=True)]

    def use(self, strategy: Strategy) -> None:
        """Swap the strategy (a test that cues signals): its indicators over the history, its series filled up to
        the bar the book has reached."""
        upto = self.bar.at + 1
        self.strategy = strategy
        self.warm = max(int(strategy.warmup), 1) - 1
        self.indicators = strategy.compute(self.frame)
        self.feeds = [(series.append, values)
                      for (_, series), values in zip(strategy.declared(), self.indicators, strict=True)]
        self.bar = Bar(self.symbol, self.instrument, self.bar.timeframe_ms, self.follow, self.ts, self.close)
        self.bar.position = self.position
        self.fast_forward(upto)

    def _columns(self, frame: pl.DataFrame) -> None:
        # Packed arrays, not lists of float objects: a fifth of the memory, copied from polars' buffers in one
        # go, and nothing for the garbage collector to walk.
        self.ts: array[int] = ints(frame["ts"].dt.epoch("ms"))
        self.open: array[float] = floats(frame["open"])
        self.high: array[float] = floats(frame["high"])
        self.low: array[float] = floats(frame["low"])
        self.close: array[float] = floats(frame["close"])
        self.volume: array[float] = floats(frame["volume"])

    def lowest_close(self) -> float:
        """The lowest close so far (computed once per length of the history; NaN in the data makes it NaN)."""
        n = len(self.close)
        if self._lowest[0] != n:
            self._lowest = (n, float(np.frombuffer(self.close, dtype=np.float64).min()) if n else math.nan)
        return self._lowest[1]

    def set_position(self, position: Position | None) -> None:
        """The engine's position for this symbol, seen by the strategy too."""
        self.position = self.bar.position = position

    def follow(self, column: str) -> array[float]:
        """The strategy read ``bar.<column>`` for the first time: a series filled up to the bar being decided,
        fed one value per bar from now on."""
        source: array[float] = getattr(self, column)
        upto = self.bar.at + 1
        series = source[:upto]
        # a new list, not appended to: a running stretch of the replay sees that its feeds changed (core.quiet)
        self.feeds = [*self.feeds, (series.append, source)]
        return series

    def fast_forward(self, upto: int) -> None:
        """History the strategy will not decide on (a live session's window, a comparison run's lead-in): its
        series get bars [0, upto) at once."""
        for append, source in self.feeds:
            for value in source[:upto]:
                append(value)
        if upto:
            self.bar.at = upto - 1

    def extend(self, frame: pl.DataFrame) -> int:
        """Live: closed candles newer than the last one join the columns, and every indicator is computed again
        over the whole history. An indicator that changes the value of an earlier bar looks ahead: refused.
        Returns how many bars were added."""
        last = self.ts[-1] if self.ts else None
        new = frame if last is None else frame.filter(pl.col("ts").dt.epoch("ms") > last)
        if new.height == 0:
            return 0
        self.frame = pl.concat([self.frame, new.select(self.frame.columns)], how="vertical")
        self.ts.extend(ints(new["ts"].dt.epoch("ms")))
        for column in ("open", "high", "low", "close", "volume"):
            getattr(self, column).extend(floats(new[column]))
        values = self.strategy.compute(self.frame)
        names = [name for name, _ in self.strategy.declared()]
        for name, old, fresh in zip(names, self.indicators, values, strict=True):
            n = len(old)
            if n and not _same(old[n - 1], fresh[n - 1]):
                raise LookAheadError(
                    f"{self.symbol}: indicator {name!r} of {type(self.strategy).__name__} changed its value for an "
                    f"earlier bar ({old[n - 1]!r} -> {fresh[n - 1]!r}) when a new bar arrived: it uses later bars "
                    "(shift(-n), whole-series statistics); make it depend only on the bars up to each one")
            old.extend(fresh[n:])
        return new.height


    def ask(self, k: int) -> Signal | None:
        """Bar ``k`` closed: the strategy's series grow by it and, once its warm-up is over, the strategy decides on
        it. An IndexError inside ``on_bar`` is a read past the bar: a LookAheadError saying so."""
        for append, source in self.feeds:
            append(source[k])
        if k < self.warm:
            return None
        self.bar.at = k
        try:
            return self.strategy.on_bar(self.bar)
        except IndexError as exc:
            raise self.read_beyond(k, exc) from exc

    def read_beyond(self, i: int, exc: IndexError) -> LookAheadError:
        """An IndexError inside ``on_bar``: every series ends at the bar being decided, so the strategy read a bar
        that does not exist for it — after this one (look-ahead) or before the first."""
        return LookAheadError(
            f"{type(self.strategy).__name__} read a bar it cannot see while deciding {self.symbol} at "
            f"{ms_to_dt(self.ts[i]).isoformat()} ({exc}): its series end at this bar ([-1]) and hold "
            f"{i + 1} bar(s); nothing after it exists in any mode. Read [-1], [-2]... only, and raise `warmup` if "
            "an early bar reads further back than the data goes")


def series_stuck(ts: int) -> StrategyError:
    """A series could not grow by the bar at ``ts``: the strategy holds a numpy view of the whole of it."""
    return StrategyError(
        f"a strategy series could not grow by the bar at {ms_to_dt(ts).isoformat()}: the strategy keeps a numpy "
        "view of a whole series (np.asarray(bar.close) stored in an attribute); keep a copy (np.array(...)) or a "
        "slice (bar.close[-50:]) instead")


def _same(a: float, b: float) -> bool:
    if a == b:
        return True
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= _REPAINT_TOL * max(abs(a), abs(b))
