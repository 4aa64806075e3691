"""Performance metrics of a trading session (SPEC R1.3), as pure vectorized functions.

Definitions, exactly as the SPEC gives them:

- win rate: closed trades with net P&L (after fees) > 0 / closed trades (no trades -> 0.0).
- Sharpe: mean / std (ddof=1) of equity-curve returns at a fixed period (default "1d"), times
  sqrt(periods per year) with 365 days a year, risk-free 0. Equal to
  ``quantstats.stats.sharpe(returns, periods=365)`` on the same daily returns.
- Sortino: mean / downside deviation x sqrt(periods per year), with downside deviation
  sqrt(sum(r^2 for r < 0) / n) over all n returns: ``quantstats.stats.sortino`` on the same returns.
- max drawdown: largest peak-to-trough fall of the mark-to-market equity curve (every point,
  not sampled), as a positive fraction.
- profit factor: gross profit / gross loss of closed trades' net P&L.

Conventions where a ratio has no meaning (quantstats returns NaN or inf there; a report and a gate
need a number): fewer than 2 returns or a zero std -> Sharpe 0.0; fewer than 2 returns -> Sortino
0.0; no losing period -> Sortino inf when the mean is positive, else 0.0; no losing trade ->
profit factor inf when there is profit, 0.0 when there are no trades or no profit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from core.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
#: Sharpe periods and their length in milliseconds (UTC has no DST, so every period has a fixed length).
PERIOD_MS: dict[str, int] = {"1h": _HOUR_MS, "4h": 4 * _HOUR_MS, "1d": _DAY_MS, "1w": 7 * _DAY_MS}
PERIODS: tuple[str, ...] = tuple(PERIOD_MS)
# 1970-01-01 was a Thursday; weeks start on Monday 1970-01-05, four days after the epoch.
_WEEK_OFFSET_MS = 4 * _DAY_MS
_DAYS_PER_YEAR = 365
# Below this the std of returns is rounding noise (e.g. a constant-return curve), not risk.
_ZERO_STD = 1e-12


def periods_per_year(period: str) -> float:
    """How many ``period``s fit in a 365-day year ("1d" -> 365, "1h" -> 8760, "1w" -> 52.14...)."""
    return _DAYS_PER_YEAR * _DAY_MS / _period_ms(period)


@dataclass(frozen=True)
class Metrics:
    """The R1.3 metrics of one session. Fractions are 0..1 except ``return_pct`` (percent).

    ``avg_loss`` is the mean net P&L of losing trades (negative or 0); ``gross_loss`` is positive.
    ``exposure`` / ``time_in_market`` are NaN when the equity curve has no exposure column.
    """

    trades: int
    wins: int
    losses: int
    win_rate: float
    sharpe: float
    sortino: float
    max_drawdown: float
    profit_factor: float
    expectancy: float
    avg_win: float
    avg_loss: float
    exposure: float
    time_in_market: float
    fees: float
    net_pnl: float
    gross_profit: float
    gross_loss: float
    starting_equity: float
    final_equity: float
    return_pct: float
    periods: int
    period: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: NaN and +/-inf become None (JSON has no such numbers)."""
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _period_ms(period: str) -> int:
    try:
        return PERIOD_MS[period]
    except KeyError:
        raise ConfigError(f"period {period!r} is not supported; use one of {', '.join(PERIODS)}") from None


def _epoch_ms(ts: Any) -> npt.NDArray[np.int64]:
    """Timestamps as int64 epoch milliseconds. Naive datetimes are taken as UTC (the project's clock)."""
    if isinstance(ts, pl.Series):
        if not isinstance(ts.dtype, pl.Datetime):
            raise DataError(f"timestamps must be a Datetime column, got {ts.dtype}")
        return ts.dt.epoch("ms").to_numpy().astype(np.int64, copy=False)
    arr = np.asarray(ts)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[ms]").astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64, copy=False)
    raise DataError(f"timestamps must be datetimes or epoch milliseconds, got dtype {arr.dtype}")


def _positive_curve(equity: Any, what: str = "equity") -> FloatArray:
    arr = np.asarray(equity, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{what} must be finite and > 0 at every point; point {i} is {arr[i]!r}")
    return arr


def _positive_number(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{what} must be a finite number > 0, got {value!r}")
    return number


def _finite_pnls(pnls: Any) -> FloatArray:
    arr = np.asarray(pnls, dtype=np.float64).ravel()
    if not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"trade net P&L must be a finite number; trade {i} has {arr[i]!r}")
    return arr


def period_returns(
    ts: Any, equity: Any, period: str = "1d", starting_equity: float | None = None
) -> FloatArray:
    """Simple returns of the equity curve sampled at the end of each UTC ``period``.

    Each period's value is the last equity point inside it; a period with no point keeps the
    previous value (a zero return) so the series stays at a fixed period. ``starting_equity``
    (default: the first point) is prepended, so the first return runs from the start to the end
    of the first period. ``ts`` must be ascending. Weeks start on Monday 00:00 UTC.
    """
    step = _period_ms(period)
    ms = _epoch_ms(ts)
    eq = _positive_curve(equity)
    if len(ms) != len(eq):
        raise DataError(f"timestamps ({len(ms)}) and equity ({len(eq)}) differ in length")
    if len(eq) == 0:
        return np.empty(0, dtype=np.float64)
    if (np.diff(ms) < 0).any():
        raise DataError("equity timestamps must be in ascending order; sort the curve by ts first")
    offset = _WEEK_OFFSET_MS if period == "1w" else 0
    bucket = (ms - offset) // step
    ends = np.append(np.flatnonzero(np.diff(bucket)), len(bucket) - 1)
    ordinal = bucket[ends] - bucket[0]
    sampled = np.full(int(ordinal[-1]) + 1, np.nan)
    sampled[ordinal] = eq[ends]
    # Forward-fill empty periods: index of the last filled slot at or before each slot.
    filled = np.where(np.isnan(sampled), 0, np.arange(len(sampled)))
    sampled = sampled[np.maximum.accumulate(filled)]
    base = float(eq[0]) if starting_equity is None else _positive_number(starting_equity, "starting_equity")
    series = np.concatenate(([base], sampled))
    result: FloatArray = series[1:] / series[:-1] - 1.0
    return result


def sharpe(returns: Any, periods_per_year: float) -> float:
    """Annualized Sharpe ratio, risk-free 0; 0.0 with fewer than 2 returns or a zero std."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    std = float(r.std(ddof=1))
    if not math.isfinite(std) or std <= _ZERO_STD:
        return 0.0
    return float(r.mean() / std * math.sqrt(periods_per_year))


def sortino(returns: Any, periods_per_year: float) -> float:
    """Annualized Sortino ratio as quantstats computes it (downside deviation over all returns).

    0.0 with fewer than 2 returns; with no negative return, inf if the mean is positive else 0.0.
    """
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    mean = float(r.mean())
    downside = math.sqrt(float(np.square(r[r < 0]).sum()) / len(r))
    if downside == 0.0:
        return math.inf if mean > 0 else 0.0
    return mean / downside * math.sqrt(periods_per_year)


def max_drawdown(equity: Any) -> float:
    """Largest peak-to-trough fall of the equity curve as a positive fraction (0.0 if it never falls)."""
    eq = _positive_curve(equity)
    if len(eq) == 0:
        return 0.0
    peak = np.maximum.accumulate(eq)
    return float(((peak - eq) / peak).max())


def win_rate(pnls: Any) -> float:
    """Share of closed trades with net P&L > 0 (a break-even trade is not a win); 0.0 without trades."""
    p = _finite_pnls(pnls)
    return float((p > 0).sum() / len(p)) if len(p) else 0.0


def profit_factor(pnls: Any) -> float:
    """Gross profit / gross loss of closed trades; inf with profit and no loss; 0.0 without trades."""
    p = _finite_pnls(pnls)
    gross_profit = float(p[p > 0].sum())
    gross_loss = float(-p[p < 0].sum())
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0 else 0.0
    return gross_profit / gross_loss


def _column(frame: pl.DataFrame, name: str, what: str) -> pl.Series:
    if name not in frame.columns:
        raise DataError(f"{what} needs a column {name!r}; it has {frame.columns}")
    col = frame.get_column(name)
    if col.null_count():
        raise DataError(f"{what} column {name!r} has {col.null_count()} null value(s); fill or drop them")
    return col


def _trade_stats(pnls: FloatArray) -> dict[str, Any]:
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    n = len(pnls)
    return {
        "trades": n,
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": win_rate(pnls),
        "profit_factor": profit_factor(pnls),
        "expectancy": float(pnls.mean()) if n else 0.0,
        "avg_win": float(wins.mean()) if len(wins) else 0.0,
        "avg_loss": float(losses.mean()) if len(losses) else 0.0,
        "gross_profit": float(wins.sum()),
        "gross_loss": float(-losses.sum()),
    }


def _exposure_stats(equity: pl.DataFrame) -> tuple[float, float]:
    if "exposure" not in equity.columns:
        return math.nan, math.nan
    exp = _column(equity, "exposure", "equity curve").to_numpy().astype(np.float64)
    if len(exp) == 0:
        return 0.0, 0.0
    return float(exp.mean()), float((exp > 0).mean())


def compute_metrics(
    equity: pl.DataFrame,
    trades: pl.DataFrame,
    *,
    starting_equity: float,
    fees: float | None = None,
    period: str = "1d",
) -> Metrics:
    """All R1.3 metrics of a session.

    ``equity``: one row per mark-to-market point, ascending ``ts`` (Datetime, UTC), ``equity`` and
    optionally ``exposure`` (open notional / equity). ``trades``: one row per *closed* trade with
    at least ``net_pnl`` (after fees) and ``fees``. ``fees`` overrides the fee total (e.g. to count
    the entry fee of a position still open); by default it is the sum of ``trades["fees"]``.
    The starting equity is the first point of the curve for drawdown and returns.
    """
    ppy = periods_per_year(period)
    start = _positive_number(starting_equity, "starting_equity")
    ts = _column(equity, "ts", "equity curve")
    eq = _positive_curve(_column(equity, "equity", "equity curve").to_numpy(), "equity curve 'equity'")
    pnls = _finite_pnls(_column(trades, "net_pnl", "trades").to_numpy())
    fee_col = _column(trades, "fees", "trades").to_numpy().astype(np.float64)
    returns = period_returns(ts, eq, period, starting_equity=start)
    final = float(eq[-1]) if len(eq) else start
    exposure, time_in_market = _exposure_stats(equity)
    return Metrics(
        **_trade_stats(pnls),
        sharpe=sharpe(returns, ppy),
        sortino=sortino(returns, ppy),
        max_drawdown=max_drawdown(np.concatenate(([start], eq))),
        exposure=exposure,
        time_in_market=time_in_market,
        fees=float(fee_col.sum()) if fees is None else float(fees),
        net_pnl=final - start,
        starting_equity=start,
        final_equity=final,
        return_pct=(final / start - 1.0) * 100.0,
        periods=len(returns),
        period=period,
    )
