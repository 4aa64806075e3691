"""Load recorded candles from a file (Feather/Arrow IPC, Parquet, CSV) into a CandleSet for replay.

Rows are loaded as they are: nothing is dropped, sorted or repaired here, so the quality suite
(core.market.quality) sees every bad row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import polars as pl

from core.errors import DataError
from core.market.candles import (
    TIMEFRAMES,
    CandleSet,
    format_duration,
    normalize,
    timeframe_for_ms,
    timeframe_ms,
)

_READERS: dict[str, tuple[str, Callable[[Path], pl.DataFrame]]] = {
    ".feather": ("Feather", pl.read_ipc),
    ".arrow": ("Arrow IPC", pl.read_ipc),
    ".ipc": ("Arrow IPC", pl.read_ipc),
    ".parquet": ("Parquet", pl.read_parquet),
    ".pq": ("Parquet", pl.read_parquet),
    ".csv": ("CSV", lambda p: pl.read_csv(p, try_parse_dates=True)),
}

# "BTC_USDT-5m", "BTCUSDT-1h", "ETH_USDT-1m-spot": symbol, then the timeframe, then anything.
_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]+(?:_[A-Za-z0-9]+)?)-(?P<tf>\d+[a-zA-Z]+)(?:-.*)?$")


def parse_file_name(path: str | Path) -> tuple[str | None, str | None]:
    """(symbol, timeframe) a candle file's name states, e.g. "BTC_USDT-5m.feather" -> ("BTCUSDT", "5m")."""
    match = _NAME.match(Path(path).stem)
    if not match:
        return None, None
    symbol = match.group("symbol").replace("_", "").upper()
    tf = match.group("tf")
    return symbol, tf


def infer_timeframe(frame: pl.DataFrame) -> str:
    """The timeframe matching the median step between consecutive candle timestamps."""
    steps = frame.get_column("ts").diff().drop_nulls().dt.total_milliseconds()
    steps = steps.filter(steps > 0)
    if steps.len() == 0:
        raise DataError("cannot infer the timeframe from fewer than two distinct timestamps; pass timeframe=")
    median = int(steps.median())  # type: ignore[arg-type]
    tf = timeframe_for_ms(median)
    if tf is None:
        raise DataError(
            f"median candle step {format_duration(median)} is not a known timeframe; pass timeframe="
        )
    return tf


def read_frame(path: Path) -> pl.DataFrame:
    """Read a candle file as it is stored (no normalisation); DataError when it cannot be read."""
    if not path.is_file():
        raise DataError(f"candle file not found: {path}; check the path (or download the data first)")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise DataError(
            f"unknown candle file type {suffix or '(none)'!r} for {path.name}; "
            f"use one of {', '.join(_READERS)}"
        )
    kind, reader = _READERS[suffix]
    try:
        return reader(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path.name} as {kind}: {first_line}; is the file complete?") from exc


def load_candles(path: str | Path, symbol: str | None = None, timeframe: str | None = None) -> CandleSet:
    """Load one candle file; symbol and timeframe default to what the file name (then the data) says."""
    path = Path(path)
    if timeframe is not None:
        timeframe_ms(timeframe)  # ConfigError for a bad argument before any I/O
    name_symbol, name_tf = parse_file_name(path)
    symbol = (symbol or name_symbol or "").replace("/", "").upper()
    if not symbol:
        raise DataError(f"cannot tell the symbol from file name {path.name!r}; pass symbol= (e.g. BTCUSDT)")
    frame = read_frame(path)
    try:
        frame = normalize(frame)
    except DataError as exc:
        raise DataError(f"{path.name}: {exc}") from exc
    if frame.height == 0:
        raise DataError(f"{path.name} holds no candles; download the period again")
    if timeframe is None:
        # A name like "-7m" is not a timeframe we know: trust the data instead.
        timeframe = name_tf if name_tf in TIMEFRAMES else infer_timeframe(frame)
    return CandleSet(symbol, timeframe, frame, source=str(path))
