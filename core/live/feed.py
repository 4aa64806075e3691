"""ExchangeFeed: closed candles from the exchange, checked before they are traded.

Binance's klines end with the candle still forming; every earlier one is closed. At start the feed reads the
latest ``window`` closed candles per symbol (the strategies' history); afterwards each poll asks one light
question (is there a newer closed candle?) and, when there is, reads every closed candle since the last one
traded — so a loop that fell behind gets every bar it missed, in order. Symbols move on one timeline: a bar is
ready when every symbol has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from core.errors import DataQualityError
from core.market.candles import TS_DTYPE, CandleSet, symbol_to_ccxt
from core.market.quality_polars import check_candles  # the shared suite in polars: no GX in a live node

if TYPE_CHECKING:
    from core.execution.ccxt_broker import CcxtBroker

KLINES_LIMIT = 1000  # Binance serves at most 1,000 klines a request


class ExchangeFeed:
    """Polls ``fetch_ohlcv`` through the broker (timed, errors translated)."""

    def __init__(self, broker: CcxtBroker, symbols: list[str], timeframe: str, window: int) -> None:
        self.broker = broker
        self.symbols = symbols
        self.timeframe = timeframe
        self.window = window
        self.last_ts: int | None = None

    def closed_window(self) -> list[CandleSet]:
        """The latest ``window`` closed candles per symbol, aligned on their common timestamps and checked."""
        frames = {}
        for sym in self.symbols:
            rows = self.broker.read("fetch_ohlcv", self.broker.client.fetch_ohlcv, symbol_to_ccxt(sym),
                                    self.timeframe, None, self.window + 1)
            frames[sym] = _frame(rows[:-1])
        sets = self._aligned(frames)
        if sets and sets[0].frame.height:
            self.last_ts = int(sets[0].frame["ts"][-1].timestamp() * 1000)
        return sets

    def newest_closed(self) -> int | None:
        """Open time of the newest closed candle of the first symbol: one light request per poll."""
        rows = self.broker.call("fetch_ohlcv", self.broker.client.fetch_ohlcv, symbol_to_ccxt(self.symbols[0]),
                                self.timeframe, None, 2)
        return int(rows[-2][0]) if len(rows) >= 2 else None

    def poll(self) -> list[CandleSet] | None:
        """The closed candles since the last one traded (that one first: the check sees the seam), when a newer
        one is there for every symbol; else None."""
        newest = self.newest_closed()
        if newest is None or (self.last_ts is not None and newest <= self.last_ts):
            return None
        if self.last_ts is None:
            return self.closed_window()
        frames = {}
        for sym in self.symbols:
            rows = self.broker.read("fetch_ohlcv", self.broker.client.fetch_ohlcv, symbol_to_ccxt(sym),
                                    self.timeframe, self.last_ts, KLINES_LIMIT)
            frames[sym] = _frame([r for r in rows if int(r[0]) <= newest])  # the forming candle is not closed
        sets = self._aligned(frames)
        if not sets or sets[0].frame.height == 0:
            return None
        last = int(sets[0].frame["ts"][-1].timestamp() * 1000)
        if last <= self.last_ts:
            return None
        self.last_ts = last
        return sets

    def _aligned(self, frames: dict[str, pl.DataFrame]) -> list[CandleSet]:
        common: set[int] | None = None
        for frame in frames.values():
            ts = set(frame["ts"].dt.epoch("ms").to_list())
            common = ts if common is None else common & ts
        keep = sorted(common or set())
        sets = [CandleSet(sym, self.timeframe, f.filter(pl.col("ts").dt.epoch("ms").is_in(keep)))
                for sym, f in frames.items()]
        problems = [p for cs in sets for p in check_candles(cs)]
        if problems:
            raise DataQualityError(problems)
        return sets


def _frame(rows: list[list[float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [int(r[0]) for r in rows], "open": [float(r[1]) for r in rows], "high": [float(r[2]) for r in rows],
         "low": [float(r[3]) for r in rows], "close": [float(r[4]) for r in rows],
         "volume": [float(r[5]) for r in rows]},
        schema={"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
                "volume": pl.Float64},
    ).with_columns(pl.col("ts").cast(TS_DTYPE))
