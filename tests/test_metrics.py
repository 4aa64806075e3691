"""Session metrics (SPEC R1.3): hand-computed examples, agreement with quantstats, edge cases."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.metrics import (
    compute_metrics,
    max_drawdown,
    period_returns,
    periods_per_year,
    profit_factor,
    sharpe,
    sortino,
    win_rate,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def _ts(*moments: datetime) -> pl.Series:
    return pl.Series("ts", list(moments)).cast(pl.Datetime("ms", "UTC"))


def _curve(points: list[tuple[datetime, float]], exposure: list[float] | None = None) -> pl.DataFrame:
    frame = pl.DataFrame({"ts": _ts(*(t for t, _ in points)), "equity": [e for _, e in points]})
    return frame.with_columns(exposure=pl.Series(exposure)) if exposure is not None else frame


def _trades(pnls: list[float], fees: list[float] | None = None) -> pl.DataFrame:
    fee_list = fees if fees is not None else [0.0] * len(pnls)
    schema = {"net_pnl": pl.Float64, "fees": pl.Float64}
    return pl.DataFrame({"net_pnl": pnls, "fees": fee_list}, schema=schema)


@pytest.mark.req("R1.3")
def test_win_rate_counts_only_positive_net_pnl() -> None:
    assert win_rate([10.0, -5.0, 0.0, 3.0]) == 0.5  # break-even is not a win
    assert win_rate([]) == 0.0


@pytest.mark.req("R1.3")
def test_profit_factor_hand_computed_and_edges() -> None:
    assert profit_factor([10.0, -5.0, 0.0, 3.0]) == pytest.approx(13.0 / 5.0)
    assert profit_factor([4.0, 1.0]) == math.inf  # all winners
    assert profit_factor([-4.0, -1.0]) == 0.0
    assert profit_factor([]) == 0.0


@pytest.mark.req("R1.3")
def test_max_drawdown_known_peak_and_trough() -> None:
    # Peak 120 -> trough 90 is 25 %; the later 130 -> 117 fall (10 %) is smaller.
    assert max_drawdown([100.0, 120.0, 90.0, 130.0, 117.0]) == pytest.approx(0.25)
    assert max_drawdown([100.0, 101.0, 102.0]) == 0.0
    assert max_drawdown([]) == 0.0


@pytest.mark.req("R1.3")
def test_sharpe_and_sortino_hand_computed() -> None:
    r = [0.01, -0.01, 0.02]
    mean = 0.02 / 3
    std = math.sqrt(((0.01 - mean) ** 2 + (-0.01 - mean) ** 2 + (0.02 - mean) ** 2) / 2)
    assert sharpe(r, 365) == pytest.approx(mean / std * math.sqrt(365), rel=1e-12)
    downside = math.sqrt(0.01**2 / 3)
    assert sortino(r, 365) == pytest.approx(mean / downside * math.sqrt(365), rel=1e-12)


@pytest.mark.req("R1.3")
def test_sharpe_and_sortino_degenerate_inputs() -> None:
    assert sharpe([0.05], 365) == 0.0  # fewer than 2 returns
    assert sharpe([0.0, 0.0, 0.0], 365) == 0.0  # zero std
    assert sharpe([0.01] * 10, 365) == 0.0  # constant returns: std is rounding noise
    assert sortino([0.05], 365) == 0.0
    assert sortino([0.01, 0.02], 365) == math.inf  # no losing period, positive mean
    assert sortino([0.0, 0.0], 365) == 0.0


@pytest.mark.req("R1.3")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sharpe_and_sortino_equal_quantstats(seed: int) -> None:
    qs_stats = pytest.importorskip("quantstats.stats")
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.001, 0.02, 400)
    series = pd.Series(returns, index=pd.date_range("2024-01-01", periods=len(returns), freq="D"))
    assert sharpe(returns, 365) == pytest.approx(float(qs_stats.sharpe(series, periods=365)), rel=1e-10)
    assert sortino(returns, 365) == pytest.approx(float(qs_stats.sortino(series, periods=365)), rel=1e-10)


@pytest.mark.req("R1.3")
def test_compute_metrics_sharpe_equals_quantstats_on_the_daily_returns() -> None:
    qs_stats = pytest.importorskip("quantstats.stats")
    rng = np.random.default_rng(7)
    n = 90 * 24  # 90 days of hourly marks
    equity = 10_000 * np.exp(np.cumsum(rng.normal(0.0002, 0.004, n)))
    ts = pl.Series("ts", np.arange(n, dtype=np.int64) * 3_600_000 + int(T0.timestamp() * 1000))
    curve = pl.DataFrame({"ts": ts.cast(pl.Datetime("ms", "UTC")), "equity": equity})
    m = compute_metrics(curve, _trades([]), starting_equity=10_000.0)
    daily_close = equity[23::24]  # last hourly mark of each UTC day
    closes = np.concatenate(([10_000.0], daily_close))
    expected = closes[1:] / closes[:-1] - 1
    series = pd.Series(expected, index=pd.date_range("2024-01-01", periods=len(expected), freq="D"))
    assert m.periods == 90
    assert m.sharpe == pytest.approx(float(qs_stats.sharpe(series, periods=365)), rel=1e-10)
    assert m.sortino == pytest.approx(float(qs_stats.sortino(series, periods=365)), rel=1e-10)


@pytest.mark.req("R1.3")
def test_period_returns_samples_last_point_of_each_utc_day_and_fills_empty_days() -> None:
    ts = _ts(
        T0,
        T0 + timedelta(hours=12),
        T0 + timedelta(hours=23, minutes=59),
        T0 + timedelta(days=1, hours=6),
        T0 + timedelta(days=1, hours=18),
        T0 + timedelta(days=3, hours=10),  # day 3 (Jan 3) has no point at all
    )
    equity = [1000.0, 1100.0, 1050.0, 1200.0, 1155.0, 1270.5]
    r = period_returns(ts, equity, "1d", starting_equity=1000.0)
    np.testing.assert_allclose(r, [0.05, 0.10, 0.0, 0.10], rtol=1e-12)
    # Without a starting equity the first point is the base.
    np.testing.assert_allclose(period_returns(ts, equity, "1d")[:1], [0.05])


@pytest.mark.req("R1.3")
def test_period_returns_hourly_and_weekly_boundaries() -> None:
    ts = _ts(T0 + timedelta(minutes=10), T0 + timedelta(minutes=50), T0 + timedelta(hours=1, minutes=5))
    np.testing.assert_allclose(period_returns(ts, [100.0, 110.0, 99.0], "1h", 100.0), [0.10, -0.10])
    # Sunday 23:00 and Monday 01:00 fall in different weeks (weeks start Monday 00:00 UTC).
    sunday, monday = datetime(2024, 1, 7, 23, tzinfo=UTC), datetime(2024, 1, 8, 1, tzinfo=UTC)
    np.testing.assert_allclose(period_returns(_ts(sunday, monday), [110.0, 121.0], "1w", 100.0), [0.1, 0.1])
    assert periods_per_year("1h") == 365 * 24
    assert periods_per_year("4h") == 365 * 6
    assert periods_per_year("1d") == 365


@pytest.mark.req("R1.3")
def test_compute_metrics_small_session_by_hand() -> None:
    curve = _curve(
        [
            (T0, 990.0),
            (T0 + timedelta(hours=12), 1020.0),
            (T0 + timedelta(days=1), 969.0),
            (T0 + timedelta(days=1, hours=12), 1050.0),
        ],
        exposure=[0.5, 0.0, 0.25, 0.0],
    )
    trades = _trades([30.0, -51.0, 81.0, -10.0], fees=[1.0, 1.0, 1.5, 0.5])
    m = compute_metrics(curve, trades, starting_equity=1000.0)
    assert (m.trades, m.wins, m.losses) == (4, 2, 2)
    assert m.win_rate == 0.5
    assert m.profit_factor == pytest.approx(111.0 / 61.0)
    assert m.expectancy == pytest.approx(50.0 / 4)
    assert (m.avg_win, m.avg_loss) == (pytest.approx(55.5), pytest.approx(-30.5))
    assert (m.gross_profit, m.gross_loss) == (pytest.approx(111.0), pytest.approx(61.0))
    assert m.fees == pytest.approx(4.0)
    assert m.net_pnl == pytest.approx(50.0)
    assert m.return_pct == pytest.approx(5.0)
    assert m.final_equity == 1050.0
    assert m.max_drawdown == pytest.approx(1 - 969.0 / 1020.0)  # every point, not the daily samples
    assert m.exposure == pytest.approx(0.1875)
    assert m.time_in_market == 0.5
    assert (m.periods, m.period) == (2, "1d")
    # fees can be given explicitly (e.g. including the entry fee of a still-open position)
    assert compute_metrics(curve, trades, starting_equity=1000.0, fees=7.25).fees == 7.25


@pytest.mark.req("R1.3")
def test_drawdown_counts_a_fall_from_the_starting_equity() -> None:
    curve = _curve([(T0, 900.0), (T0 + timedelta(hours=1), 950.0)])
    assert compute_metrics(curve, _trades([]), starting_equity=1000.0).max_drawdown == pytest.approx(0.1)


@pytest.mark.req("R1.3")
def test_no_trades_and_flat_equity() -> None:
    curve = _curve([(T0 + timedelta(days=d), 1000.0) for d in range(5)], exposure=[0.0] * 5)
    m = compute_metrics(curve, _trades([]), starting_equity=1000.0)
    assert (m.trades, m.win_rate, m.profit_factor, m.expectancy) == (0, 0.0, 0.0, 0.0)
    assert (m.sharpe, m.sortino, m.max_drawdown, m.net_pnl, m.time_in_market) == (0.0, 0.0, 0.0, 0.0, 0.0)
    empty = compute_metrics(curve.head(0), _trades([]), starting_equity=500.0)
    assert (empty.final_equity, empty.periods, empty.sharpe) == (500.0, 0, 0.0)


@pytest.mark.req("R1.3")
def test_all_winners_and_json_safe_dict() -> None:
    curve = _curve([(T0, 1000.0), (T0 + timedelta(days=1), 1010.0), (T0 + timedelta(days=2), 1030.0)])
    m = compute_metrics(curve, _trades([10.0, 20.0]), starting_equity=1000.0)
    assert (m.win_rate, m.profit_factor, m.avg_loss) == (1.0, math.inf, 0.0)
    d = m.to_dict()
    assert d["profit_factor"] is None and d["sortino"] is None  # inf has no JSON form
    assert math.isnan(m.exposure) and d["exposure"] is None  # no exposure column
    assert json.loads(json.dumps(d, allow_nan=False))["trades"] == 2


@pytest.mark.req("R1.3")
def test_bad_input_is_refused_with_a_clear_error() -> None:
    curve = _curve([(T0 + timedelta(days=1), 1000.0), (T0, 1010.0)])
    with pytest.raises(DataError, match="ascending"):
        compute_metrics(curve, _trades([]), starting_equity=1000.0)
    good = curve.sort("ts")
    with pytest.raises(DataError, match="net_pnl"):
        compute_metrics(good, pl.DataFrame({"fees": [1.0]}), starting_equity=1000.0)
    with pytest.raises(ConfigError, match="1h, 4h, 1d, 1w"):
        compute_metrics(good, _trades([]), starting_equity=1000.0, period="2d")
    with pytest.raises(ConfigError, match="starting_equity"):
        compute_metrics(good, _trades([]), starting_equity=0.0)
    with pytest.raises(DataError, match="point 1"):
        compute_metrics(good.with_columns(equity=pl.Series([1.0, -2.0])), _trades([]), starting_equity=1.0)
    with pytest.raises(DataError, match="trade 1"):
        compute_metrics(good, _trades([1.0, math.nan]), starting_equity=1000.0)
