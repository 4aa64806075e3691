"""Mean reversion: buy a stretched dip (z-score and RSI), take profit at the mean, ATR protective stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl
from pydantic import Field

from core.domain import Signal
from core.strategy.base import Strategy, StrategyParams, atr, column, ema, rolling_std, rsi, sma

if TYPE_CHECKING:
    from core.strategy.bar import Bar


class MeanReversionParams(StrategyParams):
    window: int = Field(40, ge=5, le=2000, description="moving-average and deviation window, bars")
    entry_z: float = Field(1.5, gt=0, le=6, description="buy when the close is this many deviations below the mean")
    rsi: int = Field(14, ge=2, le=200, description="RSI length, bars")
    rsi_max: float = Field(45.0, gt=0, lt=100, description="only buy when RSI is below this")
    exit_z: float = Field(0.0, ge=-3, le=3, description="take profit when the z-score recovers to this")
    atr: int = Field(14, ge=2, le=500, description="ATR length, bars")
    stop_atr: float = Field(3.0, gt=0, le=20, description="protective stop distance in ATRs")
    max_bars: int = Field(96, ge=1, le=100000, description="give up and exit after this many bars")
    trend: int = Field(48, ge=0, le=5000, description="only buy dips while EMA(trend) is rising; 0 = no filter")
    trend_lookback: int = Field(24, ge=1, le=5000, description="bars over which EMA(trend) must have risen")


class MeanReversion(Strategy):
    """Buy when close < mean - entry_z x std and RSI < rsi_max; exit at the mean, on the stop, or after max_bars."""

    name = "mean_reversion"
    Params = MeanReversionParams

    @property
    def warmup(self) -> int:
        return int(max(self.p.window, self.p.rsi, self.p.atr)) + 1

    def prepare(self, candles: pl.DataFrame) -> None:
        self.mean = column(candles, sma("close", self.p.window))
        self.std = column(candles, rolling_std("close", self.p.window))
        self.rsi = column(candles, rsi("close", self.p.rsi))
        self.atr = column(candles, atr(self.p.atr))
        self.trend = column(candles, ema("close", self.p.trend)) if self.p.trend else None
        self.entry_bar = -1

    def on_bar(self, i: int, bar: Bar) -> Signal | None:
        close, mean, std = bar.close[i], self.mean[i], self.std[i]
        if not std > 0:
            return None
        z = (close - mean) / std
        if bar.position is None:
            if z < -self.p.entry_z and self.rsi[i] < self.p.rsi_max and self._uptrend(i):
                a = self.atr[i]
                stop = close - self.p.stop_atr * a
                self.entry_bar = i
                return Signal.enter(
                    bar.symbol, stop,
                    f"close {close:.2f} is {-z:.2f} std below SMA{self.p.window} {mean:.2f}, RSI {self.rsi[i]:.1f} "
                    f"< {self.p.rsi_max:g}{self._trend_text(i)}; target {mean:.2f}, "
                    f"stop {stop:.2f} = close - {self.p.stop_atr:g} x ATR {a:.2f}",
                    target=mean, zscore=z, sma=mean, rsi=self.rsi[i], atr=a, close=close,
                )
        elif z >= self.p.exit_z:
            return Signal.exit(bar.symbol, f"close {close:.2f} back to SMA{self.p.window} {mean:.2f} (z {z:.2f}): "
                               "target reached", zscore=z, sma=mean, close=close)
        elif self.entry_bar >= 0 and i - self.entry_bar >= self.p.max_bars:
            return Signal.exit(bar.symbol, f"no reversion after {i - self.entry_bar} bars (z {z:.2f}, close "
                               f"{close:.2f}): time exit", zscore=z, close=close)
        return None

    def _trend_text(self, i: int) -> str:
        if self.trend is None:
            return ""
        back = i - self.p.trend_lookback
        return (f", EMA{self.p.trend} rising {self.trend[back]:.2f} -> {self.trend[i]:.2f} over "
                f"{self.p.trend_lookback} bars")

    def _uptrend(self, i: int) -> bool:
        if self.trend is None:
            return True
        back = i - self.p.trend_lookback
        return back >= 0 and self.trend[i] > self.trend[back]
