"""Public market data built from the sandbox's price path: order book, klines, tickers, average price.

The book is synthetic: best bid/ask a spread around the path price (``spread_bps``, at least one tick), then
one level per tick with sizes of about ``book_level_notional`` in quote value, drawn from a seeded RNG per
symbol and market second (the same book for the same moment). Klines of any interval are cut from the
continuous path, so the last one is the forming candle up to the current market time.
"""

from __future__ import annotations

import zlib
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from core.sandbox import binance_errors as be
from core.sandbox.market import DAY_MS, Market
from core.sandbox.symbols import AVG_PRICE_MINS, SymbolSpec, fmt

Level = tuple[Decimal, Decimal]

_MIN = 60_000
INTERVALS: dict[str, int] = {
    "1s": 1_000, "1m": _MIN, "3m": 3 * _MIN, "5m": 5 * _MIN, "15m": 15 * _MIN, "30m": 30 * _MIN,
    "1h": 60 * _MIN, "2h": 120 * _MIN, "4h": 240 * _MIN, "6h": 360 * _MIN, "8h": 480 * _MIN,
    "12h": 720 * _MIN, "1d": DAY_MS, "3d": 3 * DAY_MS, "1w": 7 * DAY_MS,
}
WEEK_OFFSET = 4 * DAY_MS  # Binance weeks start on Monday; 1970-01-01 was a Thursday
ROLLING_WINDOWS = {"m": _MIN, "h": 60 * _MIN, "d": DAY_MS}
AVG_SLICE_MS = 5_000


class Quotes:
    """Reads the market: top of book, depth, klines and tickers, all at the current market time."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.config = market.config

    # --- book ---------------------------------------------------------------------------------------
    def top(self, symbol: str, price: float) -> tuple[Decimal, Decimal]:
        """(best bid, best ask) around ``price``: a spread of ``spread_bps`` (at least one tick)."""
        spec = self.market.specs[symbol]
        spread = max(spec.tick, spec.round_price(price * self.config.spread_bps / 10_000.0))
        mid = Decimal(str(price))
        bid = ((mid - spread / 2) / spec.tick).to_integral_value(ROUND_DOWN) * spec.tick
        bid = max(bid, spec.tick)
        return bid, bid + spread

    def book(self, symbol: str, depth: int, price: float | None = None, t: int | None = None) -> tuple[
            list[Level], list[Level]]:
        """(bids, asks), best first, ``depth`` levels each, one tick apart."""
        t = self.market.now() if t is None else t
        price = self.market.price(symbol, t) if price is None else price
        spec = self.market.specs[symbol]
        bid, ask = self.top(symbol, price)
        sizes = self._sizes(symbol, spec, price, t, depth)
        bids = [(bid - i * spec.tick, sizes[2 * i]) for i in range(depth) if bid - i * spec.tick > 0]
        asks = [(ask + i * spec.tick, sizes[2 * i + 1]) for i in range(depth)]
        return bids, asks

    def _sizes(self, symbol: str, spec: SymbolSpec, price: float, t: int, depth: int) -> list[Decimal]:
        seed = [self.config.seed, zlib.crc32(symbol.encode()), t // 1000]
        u = np.random.default_rng(seed).uniform(0.5, 1.5, 2 * depth)
        base = self.config.book_level_notional / price
        out = []
        for x in u:
            qty = spec.floor_qty(Decimal(str(round(base * float(x), 8))))
            out.append(max(qty, spec.step))
        return out

    def depth_json(self, symbol: str, limit: int) -> dict[str, Any]:
        bids, asks = self.book(symbol, limit)
        return {
            "lastUpdateId": self.market.now() // 100,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    # --- klines -------------------------------------------------------------------------------------
    def klines(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int) -> list[list[Any]]:
        """Binance's 12-field kline arrays for ``interval``; open times in market time."""
        if interval not in INTERVALS:
            raise be.invalid_interval()
        step = INTERVALS[interval]
        off = WEEK_OFFSET if interval == "1w" else 0
        path = self.market.path(symbol)
        now = self.market.now()

        def floor(t: int) -> int:
            return (t - off) // step * step + off

        first, last = floor(path.first_ts), floor(now)
        if end is not None:
            last = min(last, floor(end))
        if start is not None:
            lo = floor(start)
            lo = lo if lo >= start else lo + step
            opens = range(max(first, lo), last + 1, step)[:limit]
        else:
            opens = range(max(first, last - (limit - 1) * step), last + 1, step)
        return [self._kline(symbol, s, min(s + step - 1, now), s + step - 1) for s in opens]

    def _kline(self, symbol: str, a: int, b: int, close_time: int) -> list[Any]:
        path = self.market.path(symbol)
        spec = self.market.specs[symbol]
        o, h, low, c = (spec.round_price(x) for x in path.window(a, b))
        volume = path.volume_between(a, b + 1)
        quote_volume = volume * float(h + low + c) / 3.0
        return [
            a, fmt(o), fmt(h), fmt(low), fmt(c), fmt(volume), close_time, fmt(quote_volume),
            _trade_count(quote_volume), fmt(volume / 2), fmt(quote_volume / 2), "0",
        ]

    # --- tickers ------------------------------------------------------------------------------------
    def ticker(self, symbol: str, window_ms: int = DAY_MS, full: bool = True) -> dict[str, Any]:
        """A rolling-window ticker (24hr by default); ``full`` adds the 24hr-only fields."""
        now = self.market.now()
        a = now - window_ms
        path = self.market.path(symbol)
        spec = self.market.specs[symbol]
        o, h, low, c = (spec.round_price(x) for x in path.window(a, now))
        volume = path.volume_between(a, now)
        quote_volume = volume * float(h + low + c) / 3.0
        count = _trade_count(quote_volume)
        last_id = now // 10
        body: dict[str, Any] = {
            "symbol": symbol,
            "priceChange": fmt(c - o),
            "priceChangePercent": f"{float((c - o) / o * 100) if o else 0.0:.3f}",
            "weightedAvgPrice": fmt(quote_volume / volume if volume > 0 else float(c)),
        }
        if full:
            bids, asks = self.book(symbol, 1)
            body |= {
                "prevClosePrice": fmt(spec.round_price(path.price_at(a - 1))),
                "lastPrice": fmt(c), "lastQty": fmt(spec.step * 10),
                "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1]),
                "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1]),
            }
        body |= {
            "openPrice": fmt(o), "highPrice": fmt(h), "lowPrice": fmt(low), "lastPrice": fmt(c),
            "volume": fmt(volume), "quoteVolume": fmt(quote_volume), "openTime": a, "closeTime": now,
            "firstId": last_id - count + 1, "lastId": last_id, "count": count,
        }
        return body

    def book_ticker(self, symbol: str) -> dict[str, Any]:
        bids, asks = self.book(symbol, 1)
        return {"symbol": symbol, "bidPrice": fmt(bids[0][0]), "bidQty": fmt(bids[0][1]),
                "askPrice": fmt(asks[0][0]), "askQty": fmt(asks[0][1])}

    def price_ticker(self, symbol: str) -> dict[str, Any]:
        spec = self.market.specs[symbol]
        return {"symbol": symbol, "price": fmt(spec.round_price(self.market.price(symbol)))}

    def average_price(self, symbol: str, t: int | None = None) -> Decimal:
        """The volume-weighted average price over the AVG_PRICE_MINS minutes before ``t`` (filters.md,
        PERCENT_PRICE_BY_SIDE; GET /api/v3/avgPrice), in 5-second slices of the path; the plain mean of the
        slices when no volume traded."""
        now = self.market.now() if t is None else t
        path = self.market.path(symbol)
        starts = range(now - AVG_PRICE_MINS * _MIN, now, AVG_SLICE_MS)
        prices = [path.price_at(a + AVG_SLICE_MS // 2) for a in starts]
        volumes = [path.volume_between(a, a + AVG_SLICE_MS) for a in starts]
        total = sum(volumes)
        average = sum(p * v for p, v in zip(prices, volumes, strict=True)) / total if total > 0 else (
            sum(prices) / len(prices))
        return self.market.specs[symbol].round_price(average)

    def avg_price(self, symbol: str) -> dict[str, Any]:
        now = self.market.now()
        return {"mins": AVG_PRICE_MINS, "price": fmt(self.average_price(symbol, now)), "closeTime": now}


def rolling_window_ms(text: str) -> int:
    """Binance's windowSize ("1m".."59m", "1h".."23h", "1d".."7d") in ms; -1130 otherwise."""
    unit = text[-1:] if text else ""
    amount = text[:-1]
    limits = {"m": 59, "h": 23, "d": 7}
    if unit not in limits or not amount.isdigit() or not 1 <= int(amount) <= limits[unit]:
        raise be.invalid_param("windowSize")
    return int(amount) * ROLLING_WINDOWS[unit]


def _trade_count(quote_volume: float) -> int:
    """A plausible number of trades: one per ~1,000 quote traded."""
    return max(1, int(quote_volume / 1_000.0))
