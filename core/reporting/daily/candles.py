"""Where the report's backtest gets the day's candles (live sessions do not store them).

In order: candle files given explicitly (``--candles FILE...``), ``DATA_DIR/candles/SYMBOL-TF.parquet`` (what
``rampart data download`` writes; a finer timeframe is resampled), then the exchange's public klines through ccxt
(no keys). Each source answers with the candles covering [start, end) for every symbol, or says why it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from core.errors import ConfigError, DataError, RampartError
from core.market import CandleSet, load_candles, resample
from core.market.candles import TIMEFRAMES, TS_DTYPE, symbol_to_ccxt, timeframe_ms

PAGE = 1000


class CandleSource(Protocol):
    """Candles of ``symbols`` at ``timeframe`` over [start_ms, end_ms); raises DataError saying what is missing."""

    name: str

    def load(self, symbols: Sequence[str], timeframe: str, start_ms: int, end_ms: int) -> list[CandleSet]: ...


def _window(cs: CandleSet, timeframe: str, start_ms: int, end_ms: int, where: str) -> CandleSet:
    """``cs`` at ``timeframe`` cut to [start, end). DataError unless it reaches the end; the start may be later
    (a shorter warm-up: the backtest says so)."""
    if cs.timeframe != timeframe:
        if timeframe_ms(cs.timeframe) > timeframe_ms(timeframe):
            raise DataError(f"{where}: {cs.symbol} candles are {cs.timeframe}, coarser than the session's {timeframe}")
        cs = CandleSet(cs.symbol, timeframe, resample(cs.frame, cs.timeframe, timeframe))
    ms = pl.col("ts").dt.epoch("ms")
    frame = cs.frame.filter((ms >= start_ms) & (ms < end_ms))
    last = int(frame["ts"].dt.epoch("ms").max()) if frame.height else None  # type: ignore[arg-type]
    if last is None or last < end_ms - timeframe_ms(timeframe):
        span = "nothing" if last is None else f"{frame['ts'].min()!s} .. {frame['ts'].max()!s}"
        raise DataError(f"{where}: {cs.symbol} {timeframe} candles cover {span}, not the session's last bar")
    return CandleSet(cs.symbol, timeframe, frame)


@dataclass
class GivenCandles:
    """Candle sets already in memory (tests, benchmarks, a caller that fetched them itself)."""

    sets: Sequence[CandleSet]
    name: str = "given candles"

    def load(self, symbols: Sequence[str], timeframe: str, start_ms: int, end_ms: int) -> list[CandleSet]:
        by_symbol = {cs.symbol: cs for cs in self.sets}
        missing = [s for s in symbols if s not in by_symbol]
        if missing:
            raise DataError(f"{self.name}: no candles for {', '.join(missing)}")
        return [_window(by_symbol[s], timeframe, start_ms, end_ms, self.name) for s in symbols]


@dataclass
class FileCandles:
    """One candle file per symbol (Feather/Parquet/CSV; the symbol from the file or its name)."""

    paths: Sequence[Path]
    name: str = "candle files"

    def load(self, symbols: Sequence[str], timeframe: str, start_ms: int, end_ms: int) -> list[CandleSet]:
        for path in self.paths:
            if not Path(path).is_file():
                raise ConfigError(f"candle file not found: {path}; check the path")
        return GivenCandles([load_candles(p) for p in self.paths], self.name).load(symbols, timeframe, start_ms,
                                                                                    end_ms)


@dataclass
class FolderCandles:
    """``folder/SYMBOL-TF.parquet`` files (``rampart data download``): the session's timeframe or a finer one."""

    folder: Path
    name: str = field(default="")

    def __post_init__(self) -> None:
        self.name = self.name or f"candles in {self.folder}"

    def load(self, symbols: Sequence[str], timeframe: str, start_ms: int, end_ms: int) -> list[CandleSet]:
        out = []
        for sym in symbols:
            found = self._file(sym, timeframe)
            if found is None:
                raise DataError(f"{self.name}: no {sym} file at {timeframe} or finer (run `rampart data download "
                                f"--symbol {sym} --timeframe {timeframe} --since YYYY-MM-DD`)")
            out.append(_window(load_candles(found), timeframe, start_ms, end_ms, self.name))
        return out

    def _file(self, symbol: str, timeframe: str) -> Path | None:
        step = timeframe_ms(timeframe)
        finer = sorted((ms, tf) for tf, ms in TIMEFRAMES.items() if ms <= step and step % ms == 0)
        for _, tf in reversed(finer):  # the session's own timeframe first, then finer ones
            path = self.folder / f"{symbol}-{tf}.parquet"
            if path.is_file():
                return path
        return None


@dataclass
class ExchangeCandles:
    """Public klines through a ccxt client (``make_binance(base_url=...)`` without keys), paged."""

    client: Any
    name: str = "exchange klines"

    def load(self, symbols: Sequence[str], timeframe: str, start_ms: int, end_ms: int) -> list[CandleSet]:
        return [_window(self._fetch(sym, timeframe, start_ms, end_ms), timeframe, start_ms, end_ms, self.name)
                for sym in symbols]

    def _fetch(self, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> CandleSet:
        import ccxt

        step, since, rows = timeframe_ms(timeframe), start_ms, []
        while since < end_ms:
            try:
                page = self.client.fetch_ohlcv(symbol_to_ccxt(symbol), timeframe, since, PAGE)
            except ccxt.BaseError as exc:
                raise DataError(f"{self.name}: fetching {symbol} {timeframe} failed ({type(exc).__name__}: {exc})"
                                ) from exc
            page = [r for r in page if since <= r[0] < end_ms]
            if not page:
                break
            rows.extend(page)
            since = int(page[-1][0]) + step
        frame = pl.DataFrame({"ts": [int(r[0]) for r in rows],
                              **{c: [float(r[k]) for r in rows] for k, c in
                                 enumerate(("open", "high", "low", "close", "volume"), 1)}},
                             schema={"ts": pl.Int64, **dict.fromkeys(("open", "high", "low", "close", "volume"),
                                                                     pl.Float64)})
        return CandleSet(symbol, timeframe, frame.with_columns(pl.col("ts").cast(TS_DTYPE)))


@dataclass
class ChainedCandles:
    """Try each source in turn; the first that covers every symbol wins. Errors of all are kept for the report."""

    sources: Sequence[CandleSource]
    name: str = "candles"
    tried: list[str] = field(default_factory=list)

    def load(self, symbols: Sequence[str], timeframe: str, start_ms: int, end_ms: int) -> list[CandleSet]:
        self.tried = []
        for source in self.sources:
            try:
                sets = source.load(symbols, timeframe, start_ms, end_ms)
            except RampartError as exc:
                self.tried.append(str(exc))
                continue
            self.name = source.name
            return sets
        why = "; ".join(self.tried) or "no candle source configured"
        raise DataError(f"no candles for the backtest: {why}. Pass --candles FILE (one per symbol) or run "
                        "`rampart data download`")


def default_source(data_dir: Path, files: Sequence[Path] = (), client: Any = None) -> ChainedCandles:
    """Explicit files, then DATA_DIR/candles, then the exchange's public klines when a client is given."""
    sources: list[CandleSource] = []
    if files:
        sources.append(FileCandles(list(files)))
    sources.append(FolderCandles(Path(data_dir) / "candles"))
    if client is not None:
        sources.append(ExchangeCandles(client))
    return ChainedCandles(sources)


__all__ = ["CandleSource", "ChainedCandles", "ExchangeCandles", "FileCandles", "FolderCandles", "GivenCandles",
           "default_source"]
