"""``Bar``: what a strategy sees of one symbol at a decision — its candle lists, the open position, working orders.

The engine keeps one per symbol; the broker keeps the working orders on it. A strategy reads ``bar.close[i]``
and friends at the index it is given.
"""

from __future__ import annotations

import math

import polars as pl

from core.domain import Instrument, Order, Position
from core.strategy.base import Strategy


class Bar:
    """One symbol's view for its strategy: candle lists, the open position and working orders."""

    __slots__ = ("close", "dust", "high", "instrument", "low", "n_market", "open", "position", "strategy", "symbol",
                 "ts", "volume", "wake_high", "wake_low", "working")

    def __init__(self, symbol: str, instrument: Instrument, strategy: Strategy, frame: pl.DataFrame) -> None:
        self.symbol = symbol
        self.instrument = instrument
        self.strategy = strategy
        self.refresh(frame)
        self.position: Position | None = None
        self.dust = 0.0  # base units held below what can be sold (R9.1)
        self.working: list[Order] = []
        # Kept by the broker so the loop only calls it when something can happen on this bar: market orders
        # waiting, or the bar's low/high reaching a working stop or limit. A live broker sets wake_low = inf.
        self.n_market = 0
        self.wake_low = -math.inf
        self.wake_high = math.inf

    def refresh(self, frame: pl.DataFrame) -> None:
        """Take the candle lists from ``frame`` (live: the window of closed candles, one bar longer)."""
        self.ts: list[int] = frame["ts"].dt.epoch("ms").to_numpy().tolist()
        self.open: list[float] = frame["open"].to_numpy().tolist()
        self.high: list[float] = frame["high"].to_numpy().tolist()
        self.low: list[float] = frame["low"].to_numpy().tolist()
        self.close: list[float] = frame["close"].to_numpy().tolist()
        self.volume: list[float] = frame["volume"].to_numpy().tolist()
