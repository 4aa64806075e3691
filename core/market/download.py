"""Candle history from the exchange via ccxt: paged, resumable, and checked by the data-quality suite.

``data/candles/<SYMBOL>-<tf>.parquet`` grows page by page (each page written atomically), so an interrupted
download resumes from its last candle. The candle still forming at the end is never stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from core.errors import DataError, DataQualityError
from core.market.candles import TS_DTYPE, CandleSet, symbol_to_ccxt, timeframe_ms
from core.market.quality import check_candles

PAGE = 1000


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    rows: int
    new_rows: int
    first: datetime | None
    last: datetime | None


def candle_path(out_dir: Path, symbol: str, timeframe: str) -> Path:
    return out_dir / f"{symbol}-{timeframe}.parquet"


def download_candles(client: Any, symbol: str, timeframe: str, since: datetime, out_dir: Path,
                     until: datetime | None = None, page: int = PAGE,
                     progress: Callable[[int, int], None] | None = None) -> DownloadResult:
    """Fetch [since, until) into the symbol's file, resuming after its last stored candle; then check it all.
    ``progress``: told (milliseconds of history fetched, milliseconds to fetch) after each page."""
    step = timeframe_ms(timeframe)
    path = candle_path(out_dir, symbol, timeframe)
    existing = pl.read_parquet(path) if path.exists() else None
    start = int(since.timestamp() * 1000)
    if existing is not None and existing.height:
        start = max(start, int(existing["ts"].max().timestamp() * 1000) + step)  # type: ignore[union-attr]
    end = int(until.timestamp() * 1000) if until else None
    first = start
    new_rows = 0
    while end is None or start < end:
        rows = _fetch(client, symbol, timeframe, start, page)
        complete = len(rows) == page
        if not complete and rows:
            rows = rows[:-1]  # a short page ends at the present: its last candle is still forming
        rows = [r for r in rows if r[0] >= start and (end is None or r[0] < end)]
        if not rows:
            break
        existing = _append(path, existing, rows)
        new_rows += len(rows)
        start = int(rows[-1][0]) + step
        if progress is not None:
            goal = end if end is not None else int(time.time() * 1000)
            progress(start - first, max(goal - first, start - first))
        if not complete:
            break
    if existing is None or existing.height == 0:
        raise DataError(f"no {symbol} {timeframe} candles since {since:%Y-%m-%d}; check the date and the symbol")
    problems = check_candles(CandleSet(symbol, timeframe, existing))
    if problems:
        raise DataQualityError(problems)
    return DownloadResult(path, existing.height, new_rows, existing["ts"].min(), existing["ts"].max())  # type: ignore[arg-type]


def _fetch(client: Any, symbol: str, timeframe: str, since: int, limit: int) -> list[list[float]]:
    import ccxt

    try:
        rows: list[list[float]] = client.fetch_ohlcv(symbol_to_ccxt(symbol), timeframe, since, limit)
    except ccxt.BaseError as exc:
        raise DataError(f"fetching {symbol} {timeframe} candles failed ({type(exc).__name__}: {exc}); "
                        "run the same command again to resume") from exc
    return rows


def _append(path: Path, existing: pl.DataFrame | None, rows: list[list[float]]) -> pl.DataFrame:
    page = pl.DataFrame(
        {"ts": [int(r[0]) for r in rows], **{c: [float(r[k]) for r in rows] for k, c in
                                              enumerate(("open", "high", "low", "close", "volume"), 1)}},
    ).with_columns(pl.col("ts").cast(TS_DTYPE))
    frame = page if existing is None else pl.concat([existing, page])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)
    return frame


def parse_since(text: str) -> datetime:
    """YYYY-MM-DD (or an ISO time) as aware UTC; ConfigError-style DataError when malformed."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"--since '{text}' is not a date; use YYYY-MM-DD") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
