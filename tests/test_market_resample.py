"""Rolling candles up: exchange-equal aggregation, only complete windows, clear refusals."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.market import load_candles, resample
from core.market.candles import TS_DTYPE

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000


def _minutes(n: int, skip: tuple[int, ...] = (), start: int = T0) -> pl.DataFrame:
    idx = [i for i in range(n) if i not in skip]
    return pl.DataFrame(
        {
            "ts": pl.Series([start + i * MIN for i in idx]).cast(TS_DTYPE),
            "open": [100.0 + i for i in idx],
            "high": [101.0 + i + (50 if i == 2 else 0) for i in idx],
            "low": [99.0 + i - (50 if i == 3 else 0) for i in idx],
            "close": [100.5 + i for i in idx],
            "volume": [1.0 + i for i in idx],
        }
    )


@pytest.mark.req("R7.2")
@pytest.mark.parametrize("base", ["BTC_USDT", "ETH_USDT"])
def test_real_1m_rolled_to_1h_equals_the_exchange_1h(market_data_dir: Path, base: str) -> None:
    minutes = load_candles(market_data_dir / f"{base}-1m.feather")
    hours = load_candles(market_data_dir / f"{base}-1h.feather")
    rolled = resample(minutes.frame, "1m", "1h")
    both = rolled.join(hours.frame, on="ts", suffix="_x")
    assert both.height == rolled.height >= 700  # every complete hour of the month is in the 1h file
    for col in ("open", "high", "low", "close"):
        assert (both[col] == both[f"{col}_x"]).all(), col
    assert ((both["volume"] - both["volume_x"]).abs() <= 1e-6 * both["volume_x"]).all()
    # The first hour (starting 14:15) and the last (ending 14:23) are partial, so they are dropped.
    first_minute = minutes.frame["ts"][0]
    assert rolled["ts"][0] > first_minute


def test_aggregation_rules_and_window_labels() -> None:
    out = resample(_minutes(10), "1m", "5m")
    assert out["ts"].dt.epoch("ms").to_list() == [T0, T0 + 5 * MIN]  # labelled by window open
    first = out.row(0, named=True)
    assert first["open"] == 100.0  # first open
    assert first["high"] == 101.0 + 2 + 50  # max high
    assert first["low"] == 99.0 + 3 - 50  # min low
    assert first["close"] == 104.5  # last close
    assert first["volume"] == sum(1.0 + i for i in range(5))
    assert out.schema == _minutes(1).schema


def test_incomplete_windows_are_dropped() -> None:
    # Window 5..9 misses minute 7 and window 10..14 is unfinished: only 0..4 is complete.
    out = resample(_minutes(13, skip=(7,)), "1m", "5m")
    assert out["ts"].dt.epoch("ms").to_list() == [T0]


def test_days_start_at_midnight_utc() -> None:
    hours = pl.DataFrame(
        {
            "ts": pl.Series([T0 - 3 * 3_600_000 + h * 3_600_000 for h in range(24 + 3)]).cast(TS_DTYPE),
            **{c: [1.0] * 27 for c in ("open", "high", "low", "close", "volume")},
        }
    )
    out = resample(hours, "1h", "1d")
    assert out["ts"].dt.epoch("ms").to_list() == [T0]
    assert out["volume"].to_list() == [24.0]


def test_refuses_targets_that_are_not_whole_multiples() -> None:
    with pytest.raises(ConfigError, match=r"cannot resample 5m to 3m.*one of 5m, 15m, 30m, 1h"):
        resample(_minutes(10), "5m", "3m")
    with pytest.raises(ConfigError, match="cannot resample 1h to 5m"):
        resample(_minutes(10), "1h", "5m")
    with pytest.raises(ConfigError, match="unknown timeframe '7m'"):
        resample(_minutes(10), "1m", "7m")


def test_refuses_unsorted_or_incomplete_frames() -> None:
    with pytest.raises(DataError, match="not sorted by ts"):
        resample(_minutes(10).reverse(), "1m", "5m")
    with pytest.raises(DataError, match=r"lacks column\(s\) volume"):
        resample(_minutes(10).drop("volume"), "1m", "5m")
