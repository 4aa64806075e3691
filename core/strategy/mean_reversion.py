"""Mean reversion: buy a stretched dip (z-score and RSI), take profit at the mean, ATR protective stop, time exit."""

from __future__ import annotations

from pydantic import Field

from core.domain import Signal
from core.strategy.bar import Bar
from core.strategy.base import Params, Strategy
from core.strategy.indicators import atr, ema, rolling_std, rsi, sma


class MeanReversionParams(Params):
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
    tuned_timeframe = "1h"  # windows, RSI/ATR lengths and max_bars are counted in 1h bars
    Params = MeanReversionParams

    @property
    def warmup(self) -> int:
        back = self.p.trend_lookback if self.p.trend else 0
        return int(max(self.p.window, self.p.rsi, self.p.atr, back)) + 1

    def init(self) -> None:
        self.mean = self.indicator(sma("close", self.p.window), "sma")
        self.std = self.indicator(rolling_std("close", self.p.window), "std")
        self.rsi = self.indicator(rsi("close", self.p.rsi), "rsi")
        self.atr = self.indicator(atr(self.p.atr), "atr")
        self.trend = self.indicator(ema("close", self.p.trend), "ema_trend") if self.p.trend else None

    def on_bar(self, bar: Bar) -> Signal | None:
        close, mean, std = bar.price, self.mean[-1], self.std[-1]
        if not std > 0:
            return None
        z = (close - mean) / std
        if bar.position is None:
            if z < -self.p.entry_z and self.rsi[-1] < self.p.rsi_max and self._uptrend():
                a = self.atr[-1]
                stop = close - self.p.stop_atr * a
                return Signal.enter(
                    bar.symbol, stop,
                    f"close {close:.2f} is {-z:.2f} std below SMA{self.p.window} {mean:.2f}, RSI {self.rsi[-1]:.1f} "
                    f"< {self.p.rsi_max:g}{self._trend_text()}; target {mean:.2f}, "
                    f"stop {stop:.2f} = close - {self.p.stop_atr:g} x ATR {a:.2f}",
                    target=mean, code="DIP", zscore=z, sma=mean, rsi=self.rsi[-1], atr=a, close=close,
                )
        elif z >= self.p.exit_z:
            return Signal.exit(bar.symbol, f"close {close:.2f} back to SMA{self.p.window} {mean:.2f} (z {z:.2f}): "
                               "target reached", code="TARGET", zscore=z, sma=mean, close=close)
        elif (held := bar.bars_held) is not None and held >= self.p.max_bars:
            return Signal.exit(bar.symbol, f"no reversion after {held} bars (z {z:.2f}, close {close:.2f}): "
                               "time exit", code="TIME_EXIT", zscore=z, close=close)
        return None

    def _trend_text(self) -> str:
        if self.trend is None:
            return ""
        back = -1 - self.p.trend_lookback
        return (f", EMA{self.p.trend} rising {self.trend[back]:.2f} -> {self.trend[-1]:.2f} over "
                f"{self.p.trend_lookback} bars")

    def _uptrend(self) -> bool:
        if self.trend is None:
            return True
        return self.trend[-1] > self.trend[-1 - self.p.trend_lookback]
