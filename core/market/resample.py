"""Roll candles up to a longer timeframe (e.g. 1m -> 1h), keeping only complete windows."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.errors import ConfigError, DataError, DataQualityError
from core.market.candles import CANDLE_COLUMNS, TIMEFRAMES, CandleSet, timeframe_ms
from core.market.quality import check_candles


def resample_set(cs: CandleSet, to_tf: str) -> CandleSet:
    """``cs`` rolled up to ``to_tf``, once its own candles pass the quality suite at their own resolution.

    Resampling hides bad source rows: a high below its low is outvoted by the window's other candles, an
    infinite high becomes the window's high, a duplicate timestamp silently drops the window. So the suite
    runs on the source candles first, and a DataQualityError names the file, each bad source row (index in
    the file and timestamp) and its fault. Candles already at ``to_tf`` are returned unchanged: the caller's
    check of the traded batch covers them.
    """
    if cs.timeframe == to_tf:
        return cs
    _check_multiple(cs.timeframe, to_tf)  # a bad target is a ConfigError before seconds of checking
    problems = check_candles(cs)
    if problems:
        where = Path(cs.source).name if cs.source else f"{cs.symbol} candles"
        raise DataQualityError(
            problems,
            where=f"{where} ({cs.timeframe} candles, checked before resampling to {to_tf}; fix or re-download "
            f"the file, rows count from 0)",
        )
    return CandleSet(cs.symbol, to_tf, resample(cs.frame, cs.timeframe, to_tf), cs.source)


def _check_multiple(from_tf: str, to_tf: str) -> None:
    from_ms, to_ms = timeframe_ms(from_tf), timeframe_ms(to_tf)
    if to_ms < from_ms or to_ms % from_ms:
        allowed = ", ".join(tf for tf, ms in TIMEFRAMES.items() if ms >= from_ms and ms % from_ms == 0)
        raise ConfigError(
            f"cannot resample {from_tf} to {to_tf}: the target must be a whole multiple of the source "
            f"(one of {allowed})"
        )


def resample(frame: pl.DataFrame, from_tf: str, to_tf: str) -> pl.DataFrame:
    """Aggregate ``from_tf`` candles into ``to_tf`` candles labelled by window open time.

    open = first, high = max, low = min, close = last, volume = sum. A window missing any of its
    candles (a gap, or the unfinished last window) is dropped rather than reported with a wrong range.
    Windows are aligned to the epoch as the exchange aligns them (days start at 00:00 UTC).
    """
    _check_multiple(from_tf, to_tf)
    from_ms, to_ms = timeframe_ms(from_tf), timeframe_ms(to_tf)
    missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"cannot resample: frame lacks column(s) {', '.join(missing)}; normalize() it first")
    if not frame.get_column("ts").is_sorted():
        raise DataError(
            "cannot resample: candles are not sorted by ts; run the quality suite and fix the data"
        )
    per_window = to_ms // from_ms
    # Polars duration strings match our timeframe names ("5m", "1h", "1d").
    rolled = (
        frame.group_by_dynamic("ts", every=to_tf, period=to_tf, label="left", closed="left")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.len().alias("_n"),
        )
        .filter(pl.col("_n") == per_window)
    )
    return rolled.select(CANDLE_COLUMNS)
