"""Indicators a strategy declares with ``self.indicator(...)``: polars expressions over the candle columns.

Each one is *causal*: its value at a bar depends only on that bar and the ones before it, so it is the same
whether it is computed over a whole backtest at once or bar by bar live. Compose your own from polars
expressions the same way (``pl.col("close").rolling_max(20)``); never use ``shift(-n)`` or whole-series
statistics (``mean()`` of the column): ``rampart check-strategy`` finds such look-ahead.
"""

from __future__ import annotations

import polars as pl


def sma(column: str, n: int) -> pl.Expr:
    """Simple moving average of ``column`` over ``n`` bars (NaN for the first n - 1 bars)."""
    return pl.col(column).rolling_mean(window_size=n)


def ema(column: str, n: int) -> pl.Expr:
    """Exponential moving average with span ``n`` (alpha = 2 / (n + 1)), starting once n bars exist."""
    return pl.col(column).ewm_mean(span=n, adjust=False, min_samples=n)


def rolling_std(column: str, n: int) -> pl.Expr:
    """Sample standard deviation of ``column`` over ``n`` bars."""
    return pl.col(column).rolling_std(window_size=n)


def highest(column: str, n: int) -> pl.Expr:
    """The highest value of ``column`` over the last ``n`` bars, this one included."""
    return pl.col(column).rolling_max(window_size=n)


def lowest(column: str, n: int) -> pl.Expr:
    """The lowest value of ``column`` over the last ``n`` bars, this one included."""
    return pl.col(column).rolling_min(window_size=n)


def atr(n: int) -> pl.Expr:
    """Average true range over ``n`` bars (Wilder's smoothing)."""
    prev_close = pl.col("close").shift(1)
    true_range = pl.max_horizontal(
        pl.col("high") - pl.col("low"),
        (pl.col("high") - prev_close).abs(),
        (pl.col("low") - prev_close).abs(),
    )
    return true_range.ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n)


def rsi(column: str, n: int) -> pl.Expr:
    """Relative strength index (Wilder) of ``column`` over ``n`` bars, 0–100."""
    delta = pl.col(column).diff()
    gain = delta.clip(lower_bound=0).ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n)
    loss = (-delta).clip(lower_bound=0).ewm_mean(alpha=1.0 / n, adjust=False, min_samples=n)
    return 100.0 - 100.0 / (1.0 + gain / loss)


__all__ = ["atr", "ema", "highest", "lowest", "rolling_std", "rsi", "sma"]
