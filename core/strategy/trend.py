"""Trend follower: EMA crossover in the direction of a slower trend filter, ATR protective stop."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl
from pydantic import Field, model_validator

from core.domain import Signal
from core.strategy.base import Strategy, StrategyParams, atr, column, ema

if TYPE_CHECKING:
    from core.strategy.bar import Bar


class TrendParams(StrategyParams):
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
    """Buy when EMA(fast) crosses above EMA(slow) while the close is above EMA(trend); sell on the cross back."""

    name = "trend"
    Params = TrendParams

    @property
    def warmup(self) -> int:
        return int(max(self.p.slow, self.p.trend, self.p.atr)) + 1

    def prepare(self, candles: pl.DataFrame) -> None:
        self.fast = column(candles, ema("close", self.p.fast))
        self.slow = column(candles, ema("close", self.p.slow))
        self.trend = column(candles, ema("close", self.p.trend))
        self.atr = column(candles, atr(self.p.atr))
        self.target = math.inf

    def on_bar(self, i: int, bar: Bar) -> Signal | None:
        if i < 1:
            return None
        f, s, pf, ps = self.fast[i], self.slow[i], self.fast[i - 1], self.slow[i - 1]
        close = bar.close[i]
        if bar.position is None:
            if f > s and pf <= ps and close > self.trend[i]:
                a = self.atr[i]
                stop = close - self.p.stop_atr * a
                self.target = close + self.p.target_atr * a if self.p.target_atr else math.inf
                return Signal.enter(
                    bar.symbol, stop,
                    f"EMA{self.p.fast} {f:.2f} crossed above EMA{self.p.slow} {s:.2f}, close {close:.2f} above "
                    f"EMA{self.p.trend} {self.trend[i]:.2f}; stop {stop:.2f} = close - {self.p.stop_atr:g} x ATR "
                    f"{a:.2f}",
                    ema_fast=f, ema_slow=s, ema_trend=self.trend[i], atr=a, close=close,
                )
        elif close >= self.target:
            return Signal.exit(bar.symbol, f"close {close:.2f} reached the target {self.target:.2f} "
                               f"({self.p.target_atr:g} ATR above entry): take profit", close=close,
                               target=self.target)
        elif f < s and pf >= ps:
            return Signal.exit(
                bar.symbol,
                f"EMA{self.p.fast} {f:.2f} crossed below EMA{self.p.slow} {s:.2f} at close {close:.2f}",
                ema_fast=f, ema_slow=s, close=close,
            )
        return None
