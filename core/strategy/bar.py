"""``Bar``: what a strategy sees of one symbol when it decides — the bar that just closed, the bars before it,
and the open position. Nothing after the bar exists in it, in any mode.

The engine keeps one per symbol and moves it along bar by bar (``core.execution.book.Book``). The candle series
(``bar.open``, ``bar.high``, ``bar.low``, ``bar.close``, ``bar.volume``) are packed float arrays (read them as you
would lists) that end at the bar being decided: ``bar.close[-1]`` is its close, ``bar.close[-2]`` the one before;
reading ``bar.close[i + 1]`` raises.
A series is filled from the first time the strategy reads it, so a strategy pays only for what it uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.domain import Instrument, Position

if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable

CANDLE_SERIES = ("open", "high", "low", "close", "volume")


class Bar:
    """One symbol at a decision: ``symbol``, ``ts`` (the bar's open time, epoch ms UTC: its identity in every mode
    and across restarts), the candle series, ``position`` (None when flat) and ``bars_held``."""

    __slots__ = ("_follow", "close", "high", "instrument", "low", "open", "position", "symbol", "timeframe_ms",
                 "ts", "volume")

    def __init__(self, symbol: str, instrument: Instrument, timeframe_ms: int,
                 follow: Callable[[str], array[float]]) -> None:
        self.symbol = symbol
        self.instrument = instrument
        self.timeframe_ms = timeframe_ms
        self.ts = 0
        self.position: Position | None = None
        self._follow = follow  # the engine's: a candle series that ends at this bar, kept up to date from now on

    def __getattr__(self, name: str) -> array[float]:
        """A candle series read for the first time: the engine fills it up to this bar and keeps it growing."""
        if name in CANDLE_SERIES:
            series = self._follow(name)
            setattr(self, name, series)
            return series
        raise AttributeError(f"Bar has no attribute {name!r}; a strategy reads symbol, ts, time, open, high, low, "
                             "close, volume, position and bars_held")

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
