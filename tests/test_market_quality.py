"""The data-quality suite: real data passes, each fault is reported once, under its check, at its row."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.errors import DataError, DataQualityError
from core.market import CandleSet, check_candles, generate, load_candles, validate_candles


def _small(n: int = 12) -> pl.DataFrame:
    return generate(["BTCUSDT"], "5m", n * 5 / 1440, seed=9)[0].frame


def _set(frame: pl.DataFrame, tf: str = "5m") -> CandleSet:
    return CandleSet("BTCUSDT", tf, frame)


def _edit(frame: pl.DataFrame, row: int, **values: float | None) -> pl.DataFrame:
    idx = pl.int_range(pl.len())
    return frame.with_columns(
        *(
            pl.when(idx == row).then(pl.lit(v, dtype=pl.Float64)).otherwise(pl.col(c)).alias(c)
            for c, v in values.items()
        )
    )


@pytest.mark.req("R1.5")
def test_real_5m_file_is_clean_and_three_faults_are_three_problems(market_data_dir: Path) -> None:
    cs = load_candles(market_data_dir / "BTC_USDT-5m.feather")
    assert check_candles(cs) == []
    validate_candles(cs)  # does not raise

    frame = cs.frame
    gap_row, swap_row, nan_row = 30_000, 40_000, 50_000
    original = frame.row(swap_row, named=True)
    broken = _edit(frame, swap_row, high=original["low"], low=original["high"])  # high < low
    broken = _edit(broken, nan_row, close=float("nan"))
    broken = broken.filter(pl.int_range(pl.len()) != gap_row)  # candle gap_row disappears
    problems = check_candles(CandleSet("BTCUSDT", "5m", broken))

    by_check = {p.check: p for p in problems}
    assert sorted(by_check) == ["high_ge_open_close", "no_gaps", "not_null"], problems
    iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in frame["ts"]]
    # Rows after the removed one shift up by one.
    assert by_check["no_gaps"].rows == (gap_row,)
    assert by_check["no_gaps"].timestamps == (iso[gap_row + 1],)
    assert f"gap of 10m after {iso[gap_row - 1]}" in by_check["no_gaps"].detail
    assert by_check["high_ge_open_close"].rows == (swap_row - 1,)
    assert by_check["high_ge_open_close"].timestamps == (iso[swap_row],)
    assert "high below low" in by_check["high_ge_open_close"].detail
    assert by_check["not_null"].rows == (nan_row - 1,)
    assert by_check["not_null"].timestamps == (iso[nan_row],)
    assert by_check["not_null"].detail == "missing or NaN close"
    with pytest.raises(DataQualityError, match="3 data-quality problem") as info:
        validate_candles(CandleSet("BTCUSDT", "5m", broken))
    assert [p.check for p in info.value.problems] == [p.check for p in problems]


@pytest.mark.req("R1.5")
def test_price_and_volume_checks_name_their_rows() -> None:
    frame = _small()
    row = frame.row(4, named=True)
    frame = _edit(frame, 2, volume=-1.0)
    frame = _edit(frame, 4, low=max(row["open"], row["close"]) + 1, high=row["high"] + 2)  # low above body
    frame = _edit(frame, 6, open=0.0, low=0.0)
    frame = _edit(frame, 8, high=None)
    problems = {p.check: p for p in check_candles(_set(frame))}
    assert problems["non_negative_volume"].rows == (2,)
    assert problems["low_le_open_close"].rows == (4,)
    assert problems["positive_prices"].rows == (6,)
    assert problems["not_null"].rows == (8,)
    assert "high" in problems["not_null"].detail
    assert "high_ge_open_close" not in problems  # the null high is reported once, as not_null


@pytest.mark.req("R1.5")
def test_time_checks_split_disorder_duplicates_and_gaps() -> None:
    frame = _small(12)
    rows = list(range(12))
    shuffled = frame[[*rows[:3], 4, 3, *rows[5:8], 7, *rows[8:]]]  # swap 3/4, repeat 7
    problems = {p.check: p for p in check_candles(_set(shuffled))}
    assert set(problems) == {"increasing_ts", "no_duplicates", "no_gaps"}
    assert problems["increasing_ts"].rows == (4,)  # 00:15 after 00:20
    assert "ts goes back 5m" in problems["increasing_ts"].detail
    assert problems["no_duplicates"].rows == (7, 8)
    assert problems["no_gaps"].rows == (3, 5)  # 00:10 -> 00:20 and 00:15 -> 00:25


@pytest.mark.req("R1.5")
def test_a_null_timestamp_is_reported_once() -> None:
    frame = _small().with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("ts")).alias("ts")
    )
    problems = check_candles(_set(frame))
    assert [(p.check, p.rows, p.timestamps) for p in problems] == [("not_null", (5,), ("unknown time",))]


@pytest.mark.req("R1.5")
def test_the_gap_check_uses_the_set_timeframe() -> None:
    frame = _small()
    problems = check_candles(_set(frame, "1m"))
    assert [p.check for p in problems] == ["no_gaps"]
    assert len(problems[0].rows) == frame.height - 1
    assert "expected one candle every 1m" in problems[0].detail
    assert check_candles(_set(frame, "5m")) == []


def test_suite_is_quiet_and_handles_empty_frames(capfd: pytest.CaptureFixture[str]) -> None:
    frame = _small()
    check_candles(_set(_edit(frame, 3, close=float("nan"))))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert check_candles(_set(frame.head(0))) == []


def test_problem_text_names_symbol_check_rows_and_times() -> None:
    frame = _small().filter(pl.int_range(pl.len()) != 3)
    problem = check_candles(_set(frame))[0]
    text = str(problem)
    assert text.startswith("BTCUSDT no_gaps: gap of 10m after 2024-01-01T00:10:00Z")
    assert "row 3 (2024-01-01T00:20:00Z)" in text


def test_frames_that_skipped_normalize_are_refused() -> None:
    frame = _small().with_columns(pl.col("ts").dt.epoch("ms"))
    with pytest.raises(DataError, match=r"wrong column types.*normalize\(\)"):
        check_candles(_set(frame))
