"""The candle convention: timeframes, normalize(), symbol forms, CandleSet and align()."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from core.errors import ConfigError, DataError
from core.market import (
    CANDLE_COLUMNS,
    CandleSet,
    align,
    ccxt_to_symbol,
    normalize,
    symbol_to_ccxt,
    timeframe_ms,
)
from core.market.candles import TS_DTYPE, format_duration

EPOCH_MS = [1_704_067_200_000, 1_704_067_500_000, 1_704_067_800_000]  # 2024-01-01 00:00, 00:05, 00:10 UTC
OHLCV = {
    "open": [1.0, 2.0, 3.0],
    "high": [2, 3, 4],  # ints on purpose: normalize casts to Float64
    "low": [0.5, 1.5, 2.5],
    "close": [2.0, 3.0, 3.5],
    "volume": [10.0, 11.0, 12.0],
}


def _frame(ts: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"ts": pl.Series(ts, dtype=pl.Int64).cast(TS_DTYPE), **{k: OHLCV[k] for k in OHLCV}})


def test_timeframes_in_ms_and_unknown_timeframe_names_the_choices() -> None:
    assert timeframe_ms("1m") == 60_000
    assert timeframe_ms("4h") == 4 * 3_600_000
    assert timeframe_ms("1d") == 86_400_000
    with pytest.raises(ConfigError, match=r"unknown timeframe '7m'; use one of 1m, 3m, 5m"):
        timeframe_ms("7m")


def test_format_duration_is_short_and_readable() -> None:
    assert format_duration(600_000) == "10m"
    assert format_duration(90_000_000) == "1d1h"
    assert format_duration(-300_000) == "-5m"


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("ts", pl.from_epoch(pl.Series(EPOCH_MS), "ms").dt.cast_time_unit("ns").dt.replace_time_zone("UTC")),
        ("date", pl.Series(EPOCH_MS).cast(pl.Datetime("ms"))),  # naive: taken as UTC
        ("open_time", pl.Series(EPOCH_MS)),  # epoch ms
        ("timestamp", pl.Series([t // 1000 for t in EPOCH_MS])),  # epoch seconds
        ("Date", pl.Series(["2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z", "2024-01-01T00:10:00Z"])),
        ("date", pl.Series(EPOCH_MS).cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone("Asia/Tokyo")),
    ],
)
def test_normalize_accepts_the_usual_time_columns(name: str, values: pl.Series) -> None:
    raw = pl.DataFrame({name: values, **OHLCV, "trades": [1, 2, 3]})
    out = normalize(raw)
    assert out.columns == list(CANDLE_COLUMNS)
    assert out.schema["ts"] == pl.Datetime("ms", "UTC")
    assert all(out.schema[c] == pl.Float64 for c in CANDLE_COLUMNS[1:])
    assert out["ts"].dt.epoch("ms").to_list() == EPOCH_MS
    assert out["high"].to_list() == [2.0, 3.0, 4.0]


def test_normalize_keeps_row_order_so_the_quality_suite_sees_disorder() -> None:
    raw = pl.DataFrame({"ts": [EPOCH_MS[2], EPOCH_MS[0], EPOCH_MS[0]], **OHLCV})
    assert normalize(raw)["ts"].dt.epoch("ms").to_list() == [EPOCH_MS[2], EPOCH_MS[0], EPOCH_MS[0]]


def test_normalize_names_what_is_missing_or_wrong() -> None:
    with pytest.raises(DataError, match=r"lack column\(s\) volume"):
        normalize(pl.DataFrame({"ts": EPOCH_MS, **{k: v for k, v in OHLCV.items() if k != "volume"}}))
    with pytest.raises(DataError, match=r"no time column: expected one of ts, open_time, timestamp, date"):
        normalize(pl.DataFrame({"when": EPOCH_MS, **OHLCV}))
    with pytest.raises(DataError, match=r"column 'close' has type String"):
        normalize(pl.DataFrame({"ts": EPOCH_MS, **OHLCV}).with_columns(pl.col("close").cast(pl.String)))
    with pytest.raises(DataError, match=r"time column 'ts' could not be read"):
        normalize(pl.DataFrame({"ts": ["yesterday", "today", "tomorrow"], **OHLCV}))


def test_symbol_forms_round_trip() -> None:
    assert symbol_to_ccxt("BTCUSDT") == "BTC/USDT"
    assert symbol_to_ccxt("ethusdt") == "ETH/USDT"
    assert symbol_to_ccxt("SOLFDUSD") == "SOL/FDUSD"
    assert symbol_to_ccxt("ETHBTC") == "ETH/BTC"
    assert symbol_to_ccxt("BTC/USDT") == "BTC/USDT"
    assert ccxt_to_symbol("BTC/USDT") == "BTCUSDT"
    assert ccxt_to_symbol(symbol_to_ccxt("ETHUSDT")) == "ETHUSDT"
    with pytest.raises(ConfigError, match="cannot split symbol 'BTCXYZ'"):
        symbol_to_ccxt("BTCXYZ")
    with pytest.raises(ConfigError, match="not a ccxt spot symbol"):
        ccxt_to_symbol("BTCUSDT")


def test_candleset_rejects_bad_timeframe_symbol_or_frame() -> None:
    frame = _frame(EPOCH_MS)
    assert len(CandleSet("BTCUSDT", "5m", frame)) == 3
    with pytest.raises(ConfigError, match="unknown timeframe '7m'"):
        CandleSet("BTCUSDT", "7m", frame)
    with pytest.raises(ConfigError, match="exchange way"):
        CandleSet("BTC/USDT", "5m", frame)
    with pytest.raises(DataError, match=r"lacks column\(s\) volume"):
        CandleSet("BTCUSDT", "5m", frame.drop("volume"))


def test_align_keeps_only_shared_timestamps_in_order() -> None:
    five = 300_000
    btc = CandleSet("BTCUSDT", "5m", _frame(EPOCH_MS))
    eth = CandleSet("ETHUSDT", "5m", _frame([t + five for t in EPOCH_MS]))
    out = align([btc, eth])
    assert [s.symbol for s in out] == ["BTCUSDT", "ETHUSDT"]
    for s in out:
        assert s.frame["ts"].dt.epoch("ms").to_list() == EPOCH_MS[1:]
    assert out[0].frame["open"].to_list() == [2.0, 3.0]  # BTC rows at 00:05 and 00:10
    assert out[1].frame["open"].to_list() == [1.0, 2.0]  # ETH rows at 00:05 and 00:10
    assert align([btc]) == [btc]


def test_align_refuses_mixed_timeframes_and_disjoint_periods() -> None:
    btc = CandleSet("BTCUSDT", "5m", _frame(EPOCH_MS))
    with pytest.raises(ConfigError, match=r"different timeframes \(1h, 5m\)"):
        align([btc, CandleSet("ETHUSDT", "1h", _frame(EPOCH_MS))])
    later = CandleSet("ETHUSDT", "5m", _frame([t + 86_400_000 for t in EPOCH_MS]))
    with pytest.raises(DataError, match="share no timestamps"):
        align([btc, later])
    with pytest.raises(ConfigError, match="cannot align a symbol with itself"):
        align([btc, btc])


def test_frames_use_utc_open_times() -> None:
    out = normalize(pl.DataFrame({"ts": EPOCH_MS, **OHLCV}))
    first = out["ts"][0]
    assert isinstance(first, datetime)
    assert first.isoformat() == "2024-01-01T00:00:00+00:00"
