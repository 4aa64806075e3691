"""What a paper or backtest report shows beside the metrics: the data window, per-symbol results, buy-and-hold over
the same candles, the curves its charts draw, the run at its traded size, and hints worth reading first.

The session's stored trades are the trades live would make (live's first rung: ``SessionResult`` "as live"); the
metrics are shown at ``result.scale`` times that size (``SessionResult.scaled_frames``). Every amount here says
which of the two it is: ``net_pnl`` / ``fees`` at the metrics' scale, ``*_as_traded`` at the traded size.

Buy-and-hold splits the starting cash equally across the symbols, buys each at the first bar's close paying the
taker fee and holds to the last bar, marked at every close like the strategy's equity.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.config import Settings
from core.errors import RampartError
from core.market import CandleSet
from core.market.candles import timeframe_ms
from core.result import SessionResult

MAX_BUCKETS = 400  # chart points: the lowest and highest equity of each of at most this many buckets
_DAY_MS = 86_400_000


def analyse(result: SessionResult, settings: Settings, sets: Sequence[CandleSet] | None = None,
            blocked: pl.DataFrame | None = None, source: str | None = None) -> dict[str, Any]:
    """The report's extra sections for one finished session (JSON-ready apart from datetimes and NaN)."""
    step = timeframe_ms(result.timeframe)
    equity, trades_scaled, fees_scaled, final_scaled = result.scaled_frames()
    traded = result.trades_frame()
    closes = _closes(result.ts, sets or [])
    hold = _buy_and_hold(closes, result.starting_equity, settings.paper.taker_fee)
    hold_curve = hold.pop("curve", None)
    start = result.starting_equity
    as_traded_curve = np.array(result.equity, dtype=np.float64)  # a copy: a view would pin the array
    scaled_curve = equity["equity"].to_numpy().astype(np.float64) if equity.height else np.asarray([], np.float64)
    return {
        "window": window(result.ts, step, result.timeframe, closes, source),
        "symbols": symbol_rows(result, traded, trades_scaled, closes, blocked),
        "buy_and_hold": {**hold, "strategy_return_pct": _pct(final_scaled, start),
                         "strategy_minus_buy_and_hold_pct": (_pct(final_scaled, start) - hold["return_pct"])
                         if hold.get("return_pct") is not None else None} if hold else None,
        "as_traded": {"scale": 1.0, "final_equity": result.final_equity, "net_pnl": result.final_equity - start,
                      "return_pct": _pct(result.final_equity, start), "fees": result.fees_paid,
                      "expectancy": float(traded["net_pnl"].mean()) if traded.height else None,  # type: ignore[arg-type]
                      "max_drawdown": max_drawdown(as_traded_curve), "trades": len(result.trades)},
        "at_scale": {"scale": result.scale, "final_equity": final_scaled, "net_pnl": final_scaled - start,
                     "return_pct": _pct(final_scaled, start), "fees": fees_scaled,
                     "max_drawdown": max_drawdown(scaled_curve)},
        "curves": curves(result.ts[: len(scaled_curve)], scaled_curve, as_traded_curve, hold_curve),
        "hints": hints(settings, result),
    }


# --- the window ----------------------------------------------------------------------------------------------
def window(ts: Sequence[int], step: int, timeframe: str, closes: dict[str, np.ndarray],
           source: str | None) -> dict[str, Any]:
    """First and last bar (open times), where the data ends (last bar's close), bars, days, timeframe, source."""
    if not ts:
        return {"first_bar": None, "last_bar": None, "end": None, "bars": 0, "days": 0.0, "timeframe": timeframe,
                "source": source, "symbols": list(closes)}
    return {"first_bar": _dt(ts[0]), "last_bar": _dt(ts[-1]), "end": _dt(ts[-1] + step), "bars": len(ts),
            "days": (ts[-1] + step - ts[0]) / _DAY_MS, "timeframe": timeframe, "source": source,
            "symbols": list(closes)}


def _closes(ts: Sequence[int], sets: Sequence[CandleSet]) -> dict[str, np.ndarray]:
    """Each symbol's close on every bar of the run (the last close before a bar it has no candle for)."""
    if not ts:
        return {}
    bars = pl.DataFrame({"ts": pl.Series(list(ts), dtype=pl.Int64)})
    out: dict[str, np.ndarray] = {}
    for cs in sets:
        frame = cs.frame.select(pl.col("ts").dt.epoch("ms").cast(pl.Int64).alias("ts"), pl.col("close"))
        joined = bars.join_asof(frame.sort("ts"), on="ts", strategy="backward").with_columns(
            pl.col("close").fill_null(strategy="backward"))
        values = joined["close"].to_numpy().astype(np.float64)
        if np.isfinite(values).all():
            out[cs.symbol] = values
    return out


# --- buy and hold ----------------------------------------------------------------------------------------------
def _buy_and_hold(closes: dict[str, np.ndarray], start: float, fee: float) -> dict[str, Any]:
    if not closes:
        return {}
    share = start / len(closes)
    qty = {s: share * (1 - fee) / c[0] for s, c in closes.items()}
    curve = sum((qty[s] * c for s, c in closes.items()), np.zeros(len(next(iter(closes.values())))))
    final = float(curve[-1])
    return {"method": "starting cash split equally across the symbols, bought at the first bar's close paying the "
                      f"taker fee ({fee:.2%}), held to the last bar, marked at every close",
            "final_equity": final, "net_pnl": final - start, "return_pct": _pct(final, start),
            "max_drawdown": max_drawdown(curve),
            "per_symbol": {s: {"first_close": float(c[0]), "last_close": float(c[-1]),
                               "return_pct": (float(c[-1]) / float(c[0]) - 1) * 100} for s, c in closes.items()},
            "curve": curve}


def max_drawdown(curve: np.ndarray) -> float | None:
    """Largest fall from a running high as a positive fraction (None for an empty curve)."""
    if not len(curve):
        return None
    peak = np.maximum.accumulate(curve)
    return float(np.max(1 - curve / peak))


# --- per symbol ------------------------------------------------------------------------------------------------
def symbol_rows(result: SessionResult, traded: pl.DataFrame, scaled: pl.DataFrame, closes: dict[str, np.ndarray],
                blocked: pl.DataFrame | None) -> list[dict[str, Any]]:
    """One row per symbol: its trades' results at the metrics' scale and as traded, its buy-and-hold return,
    entries the controls refused and what it still held at the end."""
    refused = dict(blocked["symbol"].value_counts().iter_rows()) if blocked is not None and blocked.height else {}
    rows = []
    for sym in result.symbols:
        mine = scaled.filter(pl.col("symbol") == sym)
        as_traded = traded.filter(pl.col("symbol") == sym)
        pnl = mine["net_pnl"].to_list()
        wins = [p for p in pnl if p > 0]
        losses = [p for p in pnl if p <= 0]
        gross_loss = -math.fsum(losses)
        held = result.open_positions.get(sym)
        c = closes.get(sym)
        rows.append({
            "symbol": sym, "trades": len(pnl), "wins": len(wins), "losses": len(losses),
            "win_rate": len(wins) / len(pnl) if pnl else None,
            "profit_factor": math.fsum(wins) / gross_loss if pnl and gross_loss > 0 else None,
            "net_pnl": math.fsum(pnl), "fees": float(mine["fees"].sum()) if mine.height else 0.0,
            "net_pnl_as_traded": float(as_traded["net_pnl"].sum()) if as_traded.height else 0.0,
            "fees_as_traded": float(as_traded["fees"].sum()) if as_traded.height else 0.0,
            "avg_return_pct": float(mine["return_pct"].mean()) * 100 if mine.height else None,  # type: ignore[arg-type]
            "return_pct": math.fsum(pnl) / result.starting_equity * 100 if result.starting_equity else None,
            "buy_and_hold_pct": (float(c[-1]) / float(c[0]) - 1) * 100 if c is not None else None,
            "blocked_entries": int(refused.get(sym, 0)),
            "open_at_end": {"qty": held.qty, "avg_price": held.avg_price} if held is not None else None,
        })
    return rows


# --- chart curves ----------------------------------------------------------------------------------------------
def curves(ts: Sequence[int], scaled: np.ndarray, as_traded: np.ndarray, hold: np.ndarray | None) -> dict[str, Any]:
    """The equity (at scale and as traded), buy-and-hold, and both drawdowns, reduced to the lowest and highest
    point of each bucket so no trough or peak a chart should show is lost."""
    n = min(len(ts), len(scaled))
    if n == 0:
        return {"points": [], "bars": 0}
    scaled = scaled[:n]
    dd = 1 - scaled / np.maximum.accumulate(scaled)
    hold_dd = 1 - hold[:n] / np.maximum.accumulate(hold[:n]) if hold is not None else None
    keep = _keep(scaled, n)
    points = []
    for i in keep:
        point: dict[str, Any] = {"ts": _dt(ts[i]), "equity": float(scaled[i]),
                                 "equity_as_traded": float(as_traded[i]) if i < len(as_traded) else None,
                                 "drawdown": float(dd[i])}
        if hold is not None and hold_dd is not None:
            point |= {"buy_and_hold": float(hold[i]), "buy_and_hold_drawdown": float(hold_dd[i])}
        points.append(point)
    return {"points": points, "bars": n}


def _keep(values: np.ndarray, n: int) -> list[int]:
    if n <= 2 * MAX_BUCKETS:
        return list(range(n))
    edges = np.linspace(0, n, MAX_BUCKETS + 1).astype(int)
    keep = {0, n - 1}
    for lo, hi in itertools.pairwise(edges.tolist()):
        if hi > lo:
            part = values[lo:hi]
            keep.update((lo + int(np.argmin(part)), lo + int(np.argmax(part))))
    return sorted(keep)


# --- hints -----------------------------------------------------------------------------------------------------
def hints(settings: Settings, result: SessionResult | None) -> list[str]:
    """Things to read before the numbers: a timeframe the strategy's defaults were not chosen for, no trades."""
    out = [h for h in [timeframe_hint(settings)] if h]
    if result is not None and not result.trades:
        out.append("No trade closed in this window: the ratios that need trades (win rate, profit factor, "
                   "expectancy, Sharpe, Sortino) are shown as —.")
    return out


def timeframe_hint(settings: Settings) -> str | None:
    """One sentence when the run's timeframe is not the one the strategy's default parameters were chosen on and
    bar-count parameters are still at their defaults (they then measure another span of time)."""
    from core.strategy import resolve

    try:
        cls = resolve(settings.strategy.name, settings.strategy.folder).cls
    except RampartError:
        return None
    tuned, tf = cls.tuned_timeframe, settings.market.timeframe
    if not tuned or tuned == tf:
        return None
    try:
        ratio = timeframe_ms(tuned) / timeframe_ms(tf)
    except RampartError:
        return None
    given = settings.strategy.params or {}
    counts = [name for name, field in cls.Params.model_fields.items()
              if field.annotation is int and "bar" in (field.description or "") and name not in given]
    if not counts:
        return None
    example = counts[0]
    default = cls.Params.model_fields[example].default
    span = _span(int(default) * timeframe_ms(tf))
    return (f"{settings.strategy.name}'s default parameters were chosen on {tuned} candles; this run uses {tf}, so "
            f"{', '.join(counts)} count {tf} bars ({example}={default} spans {span} instead of "
            f"{_span(int(default) * timeframe_ms(tuned))}). Run with --timeframe {tuned} (finer candle files are "
            f"resampled) or scale them, e.g. --param {example}={round(default * ratio)}.")


def _span(ms: int) -> str:
    hours = ms / 3_600_000
    if hours >= 48:
        return f"{hours / 24:.3g} days"
    return f"{hours:.3g} h" if hours >= 1 else f"{ms / 60_000:.3g} min"


def source_text(source: str | Sequence[str | Path], days: float | None = None, seed: int | None = None) -> str:
    """Where the candles came from, for the report: the files' names, or the synthetic market and its seed."""
    if isinstance(source, str) and source == "synthetic":
        span = f", {days:g} days" if days is not None else ""
        return f"synthetic market (seed {seed}{span})"
    paths = [source] if isinstance(source, str | Path) else list(source)
    last = f", last {days:g} days" if days is not None else ""
    return ", ".join(Path(p).name for p in paths) + last


def _pct(final: float, start: float) -> float:
    return (final / start - 1) * 100 if start else 0.0


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


__all__ = ["MAX_BUCKETS", "analyse", "curves", "hints", "max_drawdown", "source_text", "symbol_rows", "timeframe_hint",
           "window"]
