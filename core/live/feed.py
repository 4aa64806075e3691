"""ExchangeFeed: closed candles from the exchange, one window per symbol, checked before they are traded.

Binance's klines end with the candle still forming; every earlier one is closed. A new bar is ready when
every symbol has a closed candle newer than the last one traded (the engine moves on one timeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from core.errors import DataQualityError
from core.market.candles import TS_DTYPE, CandleSet, symbol_to_ccxt
from core.market.quality_polars import check_candles  # the shared suite in polars: no GX in a live node

if TYPE_CHECKING:
    from core.execution.ccxt_broker import CcxtBroker


class ExchangeFeed:
    """Polls ``fetch_ohlcv`` through the broker (timed, errors translated)."""

    def __init__(self, broker: CcxtBroker, symbols: list[str], timeframe: str, window: int) -> None:
        self.broker = broker
        self.symbols = symbols
        self.timeframe = timeframe
        self.window = window
        self.last_ts: int | None = None

    def closed_window(self) -> list[CandleSet]:
        """The latest ``window`` closed candles per symbol, aligned on their common timestamps."""
        frames = {}
        for sym in self.symbols:
            rows = self.broker.read("fetch_ohlcv", self.broker.client.fetch_ohlcv, symbol_to_ccxt(sym),
                                    self.timeframe, None, self.window + 1)
            frames[sym] = _frame(rows[:-1])
        common = None
        for frame in frames.values():
            ts = set(frame["ts"].to_list())
            common = ts if common is None else common & ts
        sets = [CandleSet(sym, self.timeframe, f.filter(pl.col("ts").is_in(sorted(common or set())))) for sym, f
                in frames.items()]
        problems = [p for cs in sets for p in check_candles(cs)]
        if problems:
            raise DataQualityError(problems)
        return sets

    def newest_closed(self) -> int | None:
        """Open time of the newest closed candle of the first symbol: one light request per poll."""
        rows = self.broker.call("fetch_ohlcv", self.broker.client.fetch_ohlcv, symbol_to_ccxt(self.symbols[0]),
                                self.timeframe, None, 2)
        return int(rows[-2][0]) if len(rows) >= 2 else None

    def poll(self) -> list[CandleSet] | None:
        """The window when a new closed bar is there for every symbol, else None."""
        newest = self.newest_closed()
        if newest is None or (self.last_ts is not None and newest <= self.last_ts):
            return None
        sets = self.closed_window()
        if not sets or sets[0].frame.height == 0:
            return None
        newest = int(sets[0].frame["ts"][-1].timestamp() * 1000)
        if self.last_ts is not None and newest <= self.last_ts:
            return None
        self.last_ts = newest
        return sets


def _frame(rows: list[list[float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [int(r[0]) for r in rows], "open": [float(r[1]) for r in rows], "high": [float(r[2]) for r in rows],
         "low": [float(r[3]) for r in rows], "close": [float(r[4]) for r in rows],
         "volume": [float(r[5]) for r in rows]},
        schema={"ts": pl.Int64, "open": pl.Float64, "high": pl.Float64, "low": pl.Float64, "close": pl.Float64,
                "volume": pl.Float64},
    ).with_columns(pl.col("ts").cast(TS_DTYPE))
