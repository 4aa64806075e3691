"""SMA crossover, long-only and level-based: the shared benchmark workload's strategy (../shared/bench)."""

from __future__ import annotations

from pydantic import Field

from core.domain import Signal
from core.strategy.bar import Bar
from core.strategy.base import Params, Strategy
from core.strategy.indicators import sma


class SmaCrossParams(Params):
    fast: int = Field(20, ge=2, le=1000, description="fast SMA length, bars")
    slow: int = Field(50, ge=3, le=5000, description="slow SMA length, bars")
    stop_pct: float = Field(0.05, gt=0, lt=1, description="protective stop distance below the close")


class SmaCross(Strategy):
    """Long while SMA(fast) > SMA(slow), flat while below; stop ``stop_pct`` under the signal close."""

    name = "sma_cross"
    Params = SmaCrossParams

    @property
    def warmup(self) -> int:
        return int(max(self.p.fast, self.p.slow))

    def init(self) -> None:
        self.fast = self.indicator(sma("close", self.p.fast), "sma_fast")
        self.slow = self.indicator(sma("close", self.p.slow), "sma_slow")

    def on_bar(self, bar: Bar) -> Signal | None:
        f = self.fast[-1]
        s = self.slow[-1]
        if bar.position is None:
            if f > s:
                close = bar.price
                stop = close * (1.0 - self.p.stop_pct)
                return Signal.enter(
                    bar.symbol, stop,
                    f"SMA{self.p.fast} {f:.2f} > SMA{self.p.slow} {s:.2f} at close {close:.2f}; "
                    f"stop {stop:.2f} ({self.p.stop_pct:.1%} below)",
                    code="CROSS_UP", sma_fast=f, sma_slow=s, close=close,
                )
        elif f < s:
            close = bar.price
            return Signal.exit(
                bar.symbol, f"SMA{self.p.fast} {f:.2f} < SMA{self.p.slow} {s:.2f} at close {close:.2f}",
                code="CROSS_DOWN", sma_fast=f, sma_slow=s, close=close,
            )
        return None
