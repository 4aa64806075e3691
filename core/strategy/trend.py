"""Trend follower: EMA crossover in the direction of a slower trend filter, ATR protective stop, optional target."""

from __future__ import annotations

from pydantic import Field, model_validator

from core.domain import Signal
from core.strategy.bar import Bar
from core.strategy.base import Params, Strategy
from core.strategy.indicators import atr, ema


class TrendParams(Params):
    fast: int = Field(12, ge=2, le=500, description="fast EMA length, bars")
    slow: int = Field(48, ge=3, le=2000, description="slow EMA length, bars")
    trend: int = Field(192, ge=3, le=5000, description="trend-filter EMA length: only buy above it")
    atr: int = Field(14, ge=2, le=500, description="ATR length, bars")
    stop_atr: float = Field(3.0, gt=0, le=20, description="protective stop distance in ATRs")
    target_atr: float = Field(0.0, ge=0, le=50, description="take profit this many ATRs above entry; 0 = none")

    @model_validator(mode="after")
    def _ordered(self) -> TrendParams:
        if not self.fast < self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class TrendFollower(Strategy):
    """Buy when EMA(fast) crosses above EMA(slow) while the close is above EMA(trend); sell on the cross back, or
    at the target set at entry (``target_atr``)."""

    name = "trend"
    tuned_timeframe = "1h"  # the EMA and ATR lengths are counted in 1h bars
    Params = TrendParams

    @property
    def warmup(self) -> int:
        return int(max(self.p.slow, self.p.trend, self.p.atr)) + 1

    def init(self) -> None:
        self.fast = self.indicator(ema("close", self.p.fast), "ema_fast")
        self.slow = self.indicator(ema("close", self.p.slow), "ema_slow")
        self.trend = self.indicator(ema("close", self.p.trend), "ema_trend")
        self.atr = self.indicator(atr(self.p.atr), "atr")

    def on_bar(self, bar: Bar) -> Signal | None:
        f, s, pf, ps = self.fast[-1], self.slow[-1], self.fast[-2], self.slow[-2]
        close = bar.price
        pos = bar.position
        if pos is None:
            if f > s and pf <= ps and close > self.trend[-1]:
                a = self.atr[-1]
                stop = close - self.p.stop_atr * a
                target = close + self.p.target_atr * a if self.p.target_atr else None
                aim = f"; target {target:.2f} = close + {self.p.target_atr:g} x ATR" if target is not None else ""
                return Signal.enter(
                    bar.symbol, stop,
                    f"EMA{self.p.fast} {f:.2f} crossed above EMA{self.p.slow} {s:.2f}, close {close:.2f} above "
                    f"EMA{self.p.trend} {self.trend[-1]:.2f}; stop {stop:.2f} = close - {self.p.stop_atr:g} x ATR "
                    f"{a:.2f}{aim}",
                    target=target, code="CROSS_UP", ema_fast=f, ema_slow=s, ema_trend=self.trend[-1], atr=a,
                    close=close,
                )
        elif pos.target is not None and close >= pos.target:
            return Signal.exit(bar.symbol, f"close {close:.2f} reached the target {pos.target:.2f} "
                               f"({self.p.target_atr:g} ATR above the entry signal's close): take profit",
                               code="TAKE_PROFIT", close=close, target=pos.target)
        elif f < s and pf >= ps:
            return Signal.exit(
                bar.symbol,
                f"EMA{self.p.fast} {f:.2f} crossed below EMA{self.p.slow} {s:.2f} at close {close:.2f}",
                code="CROSS_DOWN", ema_fast=f, ema_slow=s, close=close,
            )
        return None
