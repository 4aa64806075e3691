"""``Bar``: what a strategy sees of one symbol when it decides — the bar that just closed, the bars before it,
and the open position. Nothing after the bar exists in it, in any mode.

The engine keeps one per symbol and moves it along bar by bar (``core.execution.book.Book``). The candle series
(``bar.open``, ``bar.high``, ``bar.low``, ``bar.close``, ``bar.volume``) are packed float arrays (read them as you
would lists) that end at the bar being decided: ``bar.close[-1]`` is its close, ``bar.close[-2]`` the one before;
reading ``bar.close[i + 1]`` raises. ``bar.price`` is the close of the bar being decided, read without a series.
A series is filled from the first time the strategy reads it, so a strategy pays only for what it uses: one that
needs only this bar's close reads ``bar.price`` and no series is kept for it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from core.domain import Instrument, Position

if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable



class Bar:
    """One symbol at a decision: ``symbol``, ``ts`` (the bar's open time, epoch ms UTC: its identity in every mode
    and across restarts), ``price`` (its close), the candle series, ``position`` (None when flat) and
    ``bars_held``."""

    # No __slots__ and no __getattr__: a class with __getattr__ sends every attribute read (``bar.position`` on
    # every bar) through a slow path; the series are cached properties instead, filled on first read.

    def __init__(self, symbol: str, instrument: Instrument, timeframe_ms: int,
                 follow: Callable[[str], array[float]], times: array[int], closes: array[float]) -> None:
        self.symbol = symbol
        self.instrument = instrument
        self.timeframe_ms = timeframe_ms
        self.at = -1  # the engine's: where this bar is in the book's columns (set bar by bar; not for strategies)
        self.position: Position | None = None
        self._follow = follow  # the engine's: a candle series that ends at this bar, kept up to date from now on
        self._times = times
        self._closes = closes  # the engine's column: read at ``at`` only, never past it

    @property
    def ts(self) -> int:
        """The bar's open time, epoch ms UTC (0 before the first bar)."""
        return self._times[self.at] if self.at >= 0 else 0

    @property
    def price(self) -> float:
        """The close of the bar being decided — ``bar.close[-1]`` without the series (NaN before the first bar).
        Read this when the latest close is all you need: no series is kept for it."""
        return self._closes[self.at] if self.at >= 0 else math.nan

    @cached_property
    def open(self) -> array[float]:
        """Opens up to this bar (``[-1]``); filled on first read, then grown by the engine bar by bar."""
        return self._follow("open")

    @cached_property
    def high(self) -> array[float]:
        """Highs up to this bar."""
        return self._follow("high")

    @cached_property
    def low(self) -> array[float]:
        """Lows up to this bar."""
        return self._follow("low")

    @cached_property
    def close(self) -> array[float]:
        """Closes up to this bar: ``bar.close[-1]`` is the close of the bar being decided."""
        return self._follow("close")

    @cached_property
    def volume(self) -> array[float]:
        """Volumes up to this bar."""
        return self._follow("volume")

    @property
    def time(self) -> datetime:
        """The bar's open time as a UTC datetime."""
        return datetime.fromtimestamp(self.ts / 1000.0, tz=UTC)

    @property
    def bars_held(self) -> int | None:
        """Closed bars since the bar whose signal opened the position (1 on the first bar after the entry signal);
        None when flat. Counted from timestamps, so it is the same in backtest, paper and live and after a
        restart."""
        pos = self.position
        if pos is None:
            return None
        since = pos.signal_ts if pos.signal_ts is not None else pos.entry_ts
        return max(0, (self.ts - since) // self.timeframe_ms)
