"""Loading candle files for replay: formats, name inference, clear errors, bad rows kept."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.market import generate, load_candles, parse_file_name
from core.market.candles import TS_DTYPE


def _synthetic(tf: str = "5m", days: float = 1.0) -> pl.DataFrame:
    return generate(["BTCUSDT"], tf, days, seed=7)[0].frame


def _as_downloaded(frame: pl.DataFrame) -> pl.DataFrame:
    """The layout of the shared files: a `date` column in ns."""
    return frame.rename({"ts": "date"}).with_columns(pl.col("date").dt.cast_time_unit("ns"))


@pytest.mark.req("R7.2")
def test_loads_the_real_binance_feather_file(market_data_dir: Path) -> None:
    cs = load_candles(market_data_dir / "BTC_USDT-5m.feather")
    assert (cs.symbol, cs.timeframe) == ("BTCUSDT", "5m")
    assert cs.frame.height == 76_948
    assert list(cs.frame.schema.items()) == [("ts", TS_DTYPE)] + [
        (c, pl.Float64) for c in ("open", "high", "low", "close", "volume")
    ]
    assert cs.frame["ts"][0].isoformat() == "2024-01-01T00:00:00+00:00"
    assert cs.frame["open"][0] == 42283.58


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BTC_USDT-5m.feather", ("BTCUSDT", "5m")),
        ("BTCUSDT-1h.parquet", ("BTCUSDT", "1h")),
        ("eth_usdt-1d-spot.csv", ("ETHUSDT", "1d")),
        ("prices.csv", (None, None)),
    ],
)
def test_file_names_give_symbol_and_timeframe(name: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_file_name(name) == expected


@pytest.mark.req("R7.2")
@pytest.mark.parametrize("suffix", [".feather", ".arrow", ".ipc", ".parquet", ".csv"])
def test_every_format_loads_to_the_same_candles(tmp_path: Path, suffix: str) -> None:
    frame = _synthetic()
    path = tmp_path / f"ETH_USDT-5m{suffix}"
    raw = _as_downloaded(frame)
    if suffix == ".parquet":
        raw.write_parquet(path)
    elif suffix == ".csv":
        raw.write_csv(path)
    else:
        raw.write_ipc(path)
    cs = load_candles(path)
    assert (cs.symbol, cs.timeframe) == ("ETHUSDT", "5m")
    assert cs.frame.equals(frame)


def test_timeframe_is_inferred_from_the_median_step_when_the_name_is_silent(tmp_path: Path) -> None:
    # Two candles missing: the median step is still 1h.
    frame = _synthetic("1h", 3).filter(~pl.int_range(pl.len()).is_in([10, 11]))
    path = tmp_path / "export.parquet"
    frame.write_parquet(path)
    cs = load_candles(path, symbol="BTC/USDT")
    assert (cs.symbol, cs.timeframe) == ("BTCUSDT", "1h")
    assert cs.frame.height == 70  # nothing added or dropped


def test_epoch_millisecond_csv_with_bad_rows_is_loaded_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "1704067500000,2,3,1,2.5,10\n"
        "1704067200000,1,2,0.5,1.5,10\n"  # out of order
        "1704067200000,1,2,0.5,,10\n"  # duplicate, and close missing
        "1704067800000,3,1,4,3.5,-1\n"  # high < low, negative volume
    )
    cs = load_candles(path)
    assert cs.frame.height == 4
    assert cs.frame["ts"].dt.epoch("ms").to_list() == [
        1704067500000,
        1704067200000,
        1704067200000,
        1704067800000,
    ]
    assert cs.frame["close"].null_count() == 1
    assert cs.frame["volume"].to_list()[-1] == -1.0


def test_errors_say_what_to_fix_on_one_line(tmp_path: Path) -> None:
    good = _as_downloaded(_synthetic())
    cases: list[tuple[Path, str]] = []
    cases.append((tmp_path / "BTC_USDT-5m.feather", "candle file not found"))
    xlsx = tmp_path / "BTC_USDT-5m.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    cases.append((xlsx, r"unknown candle file type '.xlsx'.*use one of .feather"))
    broken = tmp_path / "ETH_USDT-5m.feather"
    broken.write_bytes(b"not an arrow file at all")
    cases.append((broken, "cannot read ETH_USDT-5m.feather as Feather"))
    no_volume = tmp_path / "ETH_USDT-1h.parquet"
    good.drop("volume").write_parquet(no_volume)
    cases.append((no_volume, r"ETH_USDT-1h.parquet: candles lack column\(s\) volume"))
    empty = tmp_path / "ETH_USDT-1d.parquet"
    good.head(0).write_parquet(empty)
    cases.append((empty, "holds no candles"))
    for path, message in cases:
        with pytest.raises(DataError, match=message) as info:
            load_candles(path)
        assert "\n" not in str(info.value)


def test_symbol_must_come_from_the_name_or_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "candles.parquet"
    _synthetic().write_parquet(path)
    with pytest.raises(DataError, match="pass symbol="):
        load_candles(path)
    with pytest.raises(ConfigError, match="unknown timeframe '7m'"):
        load_candles(path, symbol="BTCUSDT", timeframe="7m")
    assert load_candles(path, symbol="BTCUSDT", timeframe="5m").timeframe == "5m"
