"""The Strategy contract: compute indicators once (vectorized), then decide bar by bar.

Write a strategy like this (see ``trend.py``)::

    class MyStrategy(Strategy):
        name = "my_strategy"
        Params = MyParams                     # a frozen pydantic model: every field is a setting

        def prepare(self, candles):           # polars frame → indicator lists, once per batch
            self.fast = column(candles, ema("close", self.p.fast))

        def on_bar(self, i, bar):             # bar: the symbol's Bar; i: index into the lists
            if bar.position is None and self.fast[i] > bar.close[i]:
                return Signal.enter(bar.symbol, stop=..., reason="why, with the numbers")
            return None

Every entry carries a protective stop and a reason in words with the indicator values: the reason is what the
trader reads in the decision log and the trade report. ``on_bar`` runs on every bar of every symbol in
backtest, paper and live alike, so keep it to a few comparisons.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict

from core.domain import Signal

if TYPE_CHECKING:
    from core.strategy.bar import Bar


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, unknown keys refused (a typo must not pass silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Strategy:
    """One instance per symbol. Subclasses set ``name`` and ``Params`` and implement prepare/on_bar."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: StrategyParams) -> None:
        self.p: Any = params

    @property
    def warmup(self) -> int:
        """Bars needed before the indicators mean anything (live feeds keep at least this many)."""
        return 1

    def prepare(self, candles: pl.DataFrame) -> None:
        """Compute indicator lists from the candle frame (ts, open, high, low, close, volume)."""

    def on_bar(self, i: int, bar: Bar) -> Signal | None:
        """Decide on bar ``i`` (its close is known): return a Signal or None."""
        raise NotImplementedError


def column(frame: pl.DataFrame, expr: pl.Expr) -> list[float]:
    """Evaluate an indicator expression into a plain list (nulls → NaN) — list indexing is the fastest read."""
    values: list[float] = frame.select(expr.cast(pl.Float64).fill_null(math.nan)).to_series().to_numpy().tolist()
    return values


def sma(col: str, n: int) -> pl.Expr:
    return pl.col(col).rolling_mean(window_size=n)


def ema(col: str, n: int) -> pl.Expr:
    return pl.col(col).ewm_mean(span=n, adjust=False, min_samples=n)


def atr(n: int) -> pl.Expr:
    """Average true range (Wilder smoothing)."""
    prev_close = pl.col("close").shift(1)
    true_range = pl.max_horizontal(
        pl.col("high") - pl.col("low"),
        (pl.col("high") - prev_close).abs(),
        (pl.col("low") - prev_close).abs(),
    )
    return true_range.ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n)


def rsi(col: str, n: int) -> pl.Expr:
    """Relative strength index (Wilder), 0–100."""
    delta = pl.col(col).diff()
    gain = delta.clip(lower_bound=0).ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n)
    loss = (-delta).clip(lower_bound=0).ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n)
    return 100.0 - 100.0 / (1.0 + gain / loss)


def rolling_std(col: str, n: int) -> pl.Expr:
    return pl.col(col).rolling_std(window_size=n)


def params_hash(strategy: str, params: StrategyParams, extra: dict[str, Any] | None = None) -> str:
    """The strategy's config hash: changes whenever the strategy, any parameter or ``extra`` changes (R1.5)."""
    payload = {"strategy": strategy, "params": params.model_dump(mode="json"), **(extra or {})}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
