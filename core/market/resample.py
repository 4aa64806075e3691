"""Roll candles up to a longer timeframe (e.g. 1m -> 1h), keeping only complete windows."""

from __future__ import annotations

import polars as pl

from core.errors import ConfigError, DataError
from core.market.candles import CANDLE_COLUMNS, TIMEFRAMES, timeframe_ms


def resample(frame: pl.DataFrame, from_tf: str, to_tf: str) -> pl.DataFrame:
    """Aggregate ``from_tf`` candles into ``to_tf`` candles labelled by window open time.

    open = first, high = max, low = min, close = last, volume = sum. A window missing any of its
    candles (a gap, or the unfinished last window) is dropped rather than reported with a wrong range.
    Windows are aligned to the epoch as the exchange aligns them (days start at 00:00 UTC).
    """
    from_ms, to_ms = timeframe_ms(from_tf), timeframe_ms(to_tf)
    if to_ms < from_ms or to_ms % from_ms:
        allowed = ", ".join(tf for tf, ms in TIMEFRAMES.items() if ms >= from_ms and ms % from_ms == 0)
        raise ConfigError(
            f"cannot resample {from_tf} to {to_tf}: the target must be a whole multiple of the source "
            f"(one of {allowed})"
        )
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
