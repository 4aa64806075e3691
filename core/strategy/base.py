"""The Strategy contract: declare indicators once, then decide bar by bar on what has happened so far.

A strategy on one screen::

    from pydantic import Field
    from core.strategy import Bar, Params, Signal, Strategy, sma

    class SmaCross(Strategy):
        class Params(Params):
            fast: int = Field(20, ge=2, description="fast SMA, bars")
            slow: int = Field(50, ge=3, description="slow SMA, bars")

        warmup = 50                                   # bars before the first decision

        def init(self) -> None:                       # once: declare indicators (polars expressions)
            self.fast = self.indicator(sma("close", self.p.fast))
            self.slow = self.indicator(sma("close", self.p.slow))

        def on_bar(self, bar: Bar) -> Signal | None:  # every closed bar, in every mode
            if bar.position is None and self.fast[-1] > self.slow[-1]:
                return Signal.enter(bar.symbol, stop=bar.price * 0.95, reason="fast above slow")
            if bar.position is not None and self.fast[-1] < self.slow[-1]:
                return Signal.exit(bar.symbol, reason="fast below slow", code="CROSS_DOWN")
            return None

Every series a strategy reads — ``bar.close``, ``bar.high``…, and each ``self.indicator(...)`` — ends at the bar being
decided: ``[-1]`` is that bar, ``[-2]`` the one before, and nothing after it exists. That is the same in backtest,
paper and live, so the decisions are the same. Facts about the open trade (entry price and time, bars held, the
target given at entry) come from ``bar.position`` and ``bar.bars_held``, not from attributes the strategy keeps:
they survive restarts.
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from core.domain import Signal
from core.errors import StrategyError
from core.packed import floats

if TYPE_CHECKING:
    from core.strategy.bar import Bar

if TYPE_CHECKING:
    Series: TypeAlias = array[float]
else:
    Series = array  # of float64 ("d")
"""A series a strategy reads: it ends at the bar being decided (``[-1]``). A packed ``array('d')``: index it,
slice it, ``len()`` it, iterate it, or hand a slice to numpy (``np.asarray(series[-50:])``) as you would a list.
Do not keep a numpy view of a whole series in an attribute: the series could not grow (the session stops, saying
so)."""

IndicatorSource = pl.Expr | Callable[[pl.DataFrame], Any]


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, unknown keys refused (a typo must not pass silently).
    Give each field a default, bounds and a description (``Field(20, ge=2, description=...)``): ``rampart
    strategies`` lists them."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Params = StrategyParams  # the short name a strategy file uses: ``class Params(Params): ...``


class Strategy:
    """One instance per symbol. Set ``Params`` and ``warmup``, declare indicators in ``init``, decide in
    ``on_bar``. ``name`` is how settings and the CLI refer to a built-in; a loaded strategy is known by its
    ``file.py:Class`` or ``module:Class`` spec."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    # The candle size the default parameters were chosen on (bar counts mean time only at one timeframe); reports
    # say so when a run uses another. None: no particular timeframe.
    tuned_timeframe: ClassVar[str | None] = None

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.p: Any = params if params is not None else type(self).Params()
        self._sources: list[tuple[str, IndicatorSource]] = []
        self._series: list[Series] = []
        self.init()

    @property
    def warmup(self) -> int:
        """Bars that must exist before the first ``on_bar`` (the longest indicator window). Live sessions load at
        least this many closed candles of history before they trade."""
        return 1

    def init(self) -> None:
        """Declare indicators here with ``self.indicator(...)``; runs once, before any bar."""

    def indicator(self, source: IndicatorSource, name: str | None = None) -> Series:
        """Declare an indicator: a polars expression over the candle columns (``sma("close", 20)``), or a function
        of the candle frame returning one value per row. Returns its series, filled bar by bar."""
        if not isinstance(source, pl.Expr) and not callable(source):
            raise StrategyError(f"{type(self).__name__}.indicator() takes a polars expression or a function of the "
                                f"candle frame, not {type(source).__name__}")
        series: Series = array("d")
        self._sources.append((name or _describe(source, len(self._sources)), source))
        self._series.append(series)
        return series

    def on_bar(self, bar: Bar) -> Signal | None:
        """Decide on the bar that just closed (``bar.close[-1]``): return ``Signal.enter``, ``Signal.exit`` or
        None."""
        raise NotImplementedError(f"{type(self).__name__} must implement on_bar(self, bar)")

    # --- for the engine --------------------------------------------------------------------------------------
    def declared(self) -> list[tuple[str, Series]]:
        """The declared indicators, by name, with the series the engine fills."""
        return [(name, series) for (name, _), series in zip(self._sources, self._series, strict=True)]

    def compute(self, frame: pl.DataFrame) -> list[Series]:
        """Every declared indicator over ``frame`` (ts, open, high, low, close, volume), one float per row
        (null → NaN)."""
        exprs = [(k, src) for k, (_, src) in enumerate(self._sources) if isinstance(src, pl.Expr)]
        values: list[Series] = [array("d") for _ in self._sources]
        if exprs:
            try:
                out = frame.select([src.cast(pl.Float64).fill_null(math.nan).alias(f"_{k}") for k, src in exprs])
            except Exception as exc:  # a malformed expression: the strategy's to fix
                raise StrategyError(f"{type(self).__name__}: an indicator expression failed: {exc}") from exc
            for k, _ in exprs:
                values[k] = _packed(out[f"_{k}"].to_numpy())
        for k, (name, src) in enumerate(self._sources):
            if not isinstance(src, pl.Expr):
                values[k] = _as_floats(src(frame), frame.height, f"{type(self).__name__} indicator {name}")
        return values


def _packed(values: np.ndarray) -> Series:
    return floats(values)


def _as_floats(value: Any, n: int, what: str) -> Series:
    if isinstance(value, pl.Expr):
        raise StrategyError(f"{what} returned an expression; pass the expression itself to self.indicator()")
    try:
        arr = np.asarray(value.to_numpy() if isinstance(value, pl.Series) else value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"{what} must return numbers, one per candle: {exc}") from exc
    if arr.shape != (n,):
        raise StrategyError(f"{what} returned {arr.shape[0] if arr.ndim else 0} values for {n} candles; return one "
                            "value per candle")
    return _packed(arr)


def _describe(source: IndicatorSource, k: int) -> str:
    if isinstance(source, pl.Expr):
        try:
            return source.meta.output_name()
        except Exception:  # an expression with no single output name
            return f"indicator{k + 1}"
    return getattr(source, "__name__", f"indicator{k + 1}")


def column(frame: pl.DataFrame, expr: pl.Expr) -> list[float]:
    """Evaluate an indicator expression into a plain list (nulls → NaN), e.g. in a test."""
    values: list[float] = frame.select(expr.cast(pl.Float64).fill_null(math.nan)).to_series().to_list()
    return values


def params_hash(strategy: str, params: Params, extra: dict[str, Any] | None = None) -> str:
    """The strategy's config hash: changes whenever the strategy, any parameter or ``extra`` changes (R1.5)."""
    payload = {"strategy": strategy, "params": params.model_dump(mode="json"), **(extra or {})}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
