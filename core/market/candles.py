"""The candle frame convention every Rampart module shares, and the helpers that produce and combine it.

A candle frame is a polars DataFrame with ``ts`` Datetime("ms", "UTC") = the candle's OPEN time, then
``open``, ``high``, ``low``, ``close``, ``volume`` as Float64, sorted by ``ts``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from core.errors import ConfigError, DataError

CANDLE_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
VALUE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
TS_DTYPE = pl.Datetime("ms", "UTC")

_MINUTE = 60_000
TIMEFRAMES: dict[str, int] = {
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE,
    "2h": 120 * _MINUTE,
    "4h": 240 * _MINUTE,
    "6h": 360 * _MINUTE,
    "12h": 720 * _MINUTE,
    "1d": 1440 * _MINUTE,
}

# Accepted names for the time column, most specific first (ccxt/Binance, freqtrade, generic).
_TS_NAMES: tuple[str, ...] = ("ts", "open_time", "timestamp", "date")

# Quote currencies recognised when splitting an exchange symbol; longest first so FDUSD wins over USD.
QUOTES: tuple[str, ...] = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "DAI", "EUR", "TRY", "BTC", "ETH", "BNB")


def timeframe_ms(tf: str) -> int:
    """Milliseconds in one candle of timeframe ``tf`` (e.g. "5m" -> 300000)."""
    try:
        return TIMEFRAMES[tf]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown timeframe {tf!r}; use one of {', '.join(TIMEFRAMES)}") from None


def timeframe_for_ms(step_ms: int) -> str | None:
    """The timeframe whose candle lasts ``step_ms`` milliseconds, or None when there is none."""
    return next((tf for tf, ms in TIMEFRAMES.items() if ms == step_ms), None)


def format_duration(ms: int) -> str:
    """A short human duration such as "10m", "2h", "1d3h" or "45s" (for messages)."""
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return sign + ("".join(parts) or "0s")


def _time_column(df: pl.DataFrame) -> str:
    by_lower = {c.lower(): c for c in df.columns}
    for name in _TS_NAMES:
        if name in by_lower:
            return by_lower[name]
    raise DataError(
        f"no time column: expected one of {', '.join(_TS_NAMES)}; found columns {', '.join(df.columns)}"
    )


def _epoch_unit(col: pl.Series) -> str:
    """Guess the epoch unit from magnitude: seconds until year 5138, then ms, us, ns."""
    biggest = col.abs().max()
    if biggest is None:
        return "ms"
    big = float(biggest)  # type: ignore[arg-type]
    if big < 1e11:
        return "s"
    if big < 1e14:
        return "ms"
    return "us" if big < 1e17 else "ns"


def _to_ts(col: pl.Series) -> pl.Series:
    """Convert a datetime, date, string or epoch-number column to Datetime("ms", "UTC")."""
    dtype = col.dtype
    try:
        if isinstance(dtype, pl.Datetime):
            # Naive times are taken to be UTC (exchanges and downloaders write UTC).
            col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col
            return col.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
        if dtype == pl.Date:
            return col.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
        if dtype == pl.String:
            parsed = col.str.to_datetime(time_unit="ms", time_zone="UTC")
            return parsed.dt.convert_time_zone("UTC")
        if dtype.is_numeric():
            unit = _epoch_unit(col)
            scale = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}[unit]
            ms = (col.cast(pl.Float64) * scale).round(0).cast(pl.Int64)
            return ms.cast(TS_DTYPE)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise DataError(f"time column {col.name!r} could not be read as a timestamp: {exc}") from exc
    raise DataError(
        f"time column {col.name!r} has type {dtype}; "
        "give datetimes, ISO strings or epoch milliseconds/seconds"
    )


def normalize(df: pl.DataFrame) -> pl.DataFrame:
    """Cast any candle-like frame to the convention (ts + Float64 OHLCV, extra columns dropped).

    Rows are neither reordered nor repaired: out-of-order, duplicate or broken rows stay for the
    quality suite to report. Raises DataError naming missing or non-numeric columns.
    """
    ts_name = _time_column(df)
    by_lower = {c.lower(): c for c in df.columns}
    missing = [c for c in VALUE_COLUMNS if c not in by_lower]
    if missing:
        raise DataError(f"candles lack column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    out = {"ts": _to_ts(df.get_column(ts_name))}
    for name in VALUE_COLUMNS:
        col = df.get_column(by_lower[name])
        if not (col.dtype.is_numeric() or col.dtype == pl.Null):
            raise DataError(f"column {name!r} has type {col.dtype}; prices and volume must be numbers")
        out[name] = col.cast(pl.Float64)
    return pl.DataFrame(out)


def symbol_to_ccxt(symbol: str) -> str:
    """Exchange symbol to ccxt form: "BTCUSDT" -> "BTC/USDT" (a ccxt symbol is returned unchanged)."""
    text = symbol.strip().upper()
    if "/" in text:
        ccxt_to_symbol(text)  # validates the form
        return text
    for quote in QUOTES:
        if text.endswith(quote) and len(text) > len(quote):
            base = text[: -len(quote)]
            if re.fullmatch(r"[A-Z0-9]+", base):
                return f"{base}/{quote}"
    raise ConfigError(
        f"cannot split symbol {symbol!r} into base and quote; write it like BTCUSDT "
        f"(quote one of {', '.join(QUOTES)})"
    )


def base_asset(symbol: str) -> str:
    """The asset bought: "BTCUSDT" -> "BTC"."""
    return symbol_to_ccxt(symbol).split("/")[0]


def ccxt_to_symbol(symbol: str) -> str:
    """ccxt spot symbol to exchange form: "BTC/USDT" -> "BTCUSDT"."""
    match = re.fullmatch(r"([A-Z0-9]+)/([A-Z0-9]+)", symbol.strip().upper())
    if not match:
        raise ConfigError(f"not a ccxt spot symbol: {symbol!r}; write it like BTC/USDT")
    return match.group(1) + match.group(2)


@dataclass(frozen=True, eq=False)
class CandleSet:
    """The candles of one symbol at one timeframe (``frame`` follows the module's convention).

    ``source`` names the file the candles were read from (None for generated or derived candles), so a
    problem found later can point the operator at the file to fix.
    """

    symbol: str
    timeframe: str
    frame: pl.DataFrame
    source: str | None = None

    def __post_init__(self) -> None:
        timeframe_ms(self.timeframe)
        if not self.symbol or not re.fullmatch(r"[A-Z0-9]+", self.symbol):
            raise ConfigError(f"symbol {self.symbol!r} must be written the exchange way, e.g. BTCUSDT")
        missing = [c for c in CANDLE_COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataError(
                f"{self.symbol} candle frame lacks column(s) {', '.join(missing)}; normalize() it"
            )

    def __len__(self) -> int:
        return self.frame.height


def align(sets: list[CandleSet]) -> list[CandleSet]:
    """Keep only the timestamps every set shares, so a multi-symbol engine walks one timeline."""
    if len(sets) <= 1:
        return list(sets)
    timeframes = {s.timeframe for s in sets}
    if len(timeframes) > 1:
        raise ConfigError(f"cannot align candles of different timeframes ({', '.join(sorted(timeframes))})")
    symbols = [s.symbol for s in sets]
    if len(set(symbols)) < len(symbols):
        raise ConfigError(f"cannot align a symbol with itself; got {', '.join(symbols)}")
    common = sets[0].frame.select("ts").unique()
    for s in sets[1:]:
        common = common.join(s.frame.select("ts"), on="ts", how="semi")
    if common.height == 0:
        spans = "; ".join(f"{s.symbol} {_span(s.frame)}" for s in sets)
        raise DataError(f"candles share no timestamps ({spans}); load overlapping periods")
    return [
        CandleSet(s.symbol, s.timeframe, s.frame.join(common, on="ts", how="semi", maintain_order="left"))
        for s in sets
    ]


def _span(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "empty"
    first, last = frame.get_column("ts").min(), frame.get_column("ts").max()
    return f"{first!s} to {last!s}"
