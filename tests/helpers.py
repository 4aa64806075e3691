"""Small builders for tests: scripted candle frames and scripted strategies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.build import Sizing, build_engine
from core.config import INSTRUMENTS, load_settings
from core.config.risk import RiskLimits
from core.domain import Instrument, Mode, Signal
from core.engine import Engine
from core.execution.paper import FillModelConfig, PaperBroker
from core.market.candles import CandleSet, timeframe_ms
from core.portfolio import Portfolio
from core.strategy import Bar, Strategy

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def candles(rows: Sequence[tuple[float, float, float, float]], symbol: str = "BTCUSDT", tf: str = "1h",
            start: datetime = T0, volume: float = 10.0) -> CandleSet:
    """A CandleSet from (open, high, low, close) rows, one candle per timeframe step."""
    step = timeframe_ms(tf)
    t0 = int(start.timestamp() * 1000)
    frame = pl.DataFrame({
        "ts": pl.Series([t0 + k * step for k in range(len(rows))]).cast(pl.Datetime("ms", "UTC")),
        "open": [float(r[0]) for r in rows], "high": [float(r[1]) for r in rows],
        "low": [float(r[2]) for r in rows], "close": [float(r[3]) for r in rows],
        "volume": [volume] * len(rows),
    })
    return CandleSet(symbol, tf, frame)


def flat(price: float, n: int) -> list[tuple[float, float, float, float]]:
    return [(price, price, price, price)] * n


class Scripted(Strategy):
    """Emits the signals a test scripts: ``script[i]`` is called with (i, bar) on the run's bar ``i`` (counted from
    the first candle) and returns a Signal or None."""

    name = "scripted"

    def __init__(self, script: dict[int, Callable[[int, Bar], Signal | None]]) -> None:
        super().__init__()
        self.script = script

    def on_bar(self, bar: Bar) -> Signal | None:
        i = len(bar.close) - 1  # the series end at this bar
        fn = self.script.get(i)
        return fn(i, bar) if fn else None


def enter(stop: float, reason: str = "scripted entry") -> Callable[[int, Bar], Signal]:
    return lambda i, bar: Signal.enter(bar.symbol, stop, reason)


def leave(reason: str = "scripted exit") -> Callable[[int, Bar], Signal]:
    return lambda i, bar: Signal.exit(bar.symbol, reason)


def scripted_engine(strategies: dict[str, Strategy], *, session_id: str, cash: float = 10_000.0,
                    fee: float = 0.001, slip_bps: float = 0.0, risk: float = 0.01, cap: float = 1.0,
                    allowed: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), instruments: dict[str, Instrument] | None = None,
                    limits: RiskLimits | None = None, breakers: bool = False) -> Engine:
    """A paper engine from the one builder (core.build) with scripted strategies: the fill model, sizing, the
    allow-list and, with ``limits``, the automatic controls of a test."""
    settings = load_settings(paper={"starting_cash": cash, "taker_fee": fee, "maker_fee": fee,
                                    "slippage_bps": slip_bps},
                             market={"symbols": list(allowed), "allowed_symbols": list(allowed)},
                             risk=limits.model_dump() if limits is not None else {})
    port = Portfolio(cash)
    broker = PaperBroker(FillModelConfig(fee, fee, slip_bps), port)
    return build_engine(settings, Mode.PAPER, broker, port,
                        instruments=instruments or {s: INSTRUMENTS[s] for s in strategies}, sizing=Sizing(risk, cap),
                        controls=limits is not None, breakers=breakers, session_id=session_id,
                        strategies=strategies)


def kwargs(**overrides: Any) -> dict[str, Any]:
    return overrides
