"""SMA crossover, long-only and level-based: the shared benchmark workload's strategy (../shared/bench)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from pydantic import Field

from core.domain import Signal
from core.strategy.base import Strategy, StrategyParams, column, sma

if TYPE_CHECKING:
    from core.strategy.bar import Bar


class SmaCrossParams(StrategyParams):
    fast: int = Field(20, ge=2, le=1000, description="fast SMA length, bars")
    slow: int = Field(50, ge=3, le=5000, description="slow SMA length, bars")
    stop_pct: float = Field(0.05, gt=0, lt=1, description="protective stop distance below the close")


class SmaCross(Strategy):
    """Long while SMA(fast) > SMA(slow), flat while below; stop ``stop_pct`` under the signal close."""

    name = "sma_cross"
    Params = SmaCrossParams

    @property
    def warmup(self) -> int:
        return int(self.p.slow)

    def prepare(self, candles: pl.DataFrame) -> None:
        self.fast = column(candles, sma("close", self.p.fast))
        self.slow = column(candles, sma("close", self.p.slow))

    def on_bar(self, i: int, bar: Bar) -> Signal | None:
        f = self.fast[i]
        s = self.slow[i]
        if bar.position is None:
            if f > s:
                close = bar.close[i]
                stop = close * (1.0 - self.p.stop_pct)
                return Signal.enter(
                    bar.symbol, stop,
                    f"SMA{self.p.fast} {f:.2f} > SMA{self.p.slow} {s:.2f} at close {close:.2f}; "
                    f"stop {stop:.2f} ({self.p.stop_pct:.1%} below)",
                    sma_fast=f, sma_slow=s, close=close,
                )
        elif f < s:
            return Signal.exit(
                bar.symbol, f"SMA{self.p.fast} {f:.2f} < SMA{self.p.slow} {s:.2f} at close {bar.close[i]:.2f}",
                sma_fast=f, sma_slow=s, close=bar.close[i],
            )
        return None
