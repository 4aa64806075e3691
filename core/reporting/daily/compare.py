"""Live against its baselines (R7.2): a backtest of the same strategy and settings over the same candles, and the
paper-validation results, with the differences attributed.

The backtest is the paper engine (same strategy, risk engine and controls as live; only the broker differs) run
over exactly the bars the live session traded that day, at the live sizing (the rung its entries used) and from
the live start-of-day equity, with the paper fill model (``settings.paper``). Trades are matched by symbol and
entry bar (within one bar). The closed-trade P&L difference splits exactly into:

- fees: backtest fees − live fees;
- slippage: on legs filled on the same bar, (live price − backtest price) × live qty (entry negative, exit
  positive);
- timing: the same price term on legs filled one bar apart;
- size: backtest price move × (live qty − backtest qty);
- missed trades: −backtest net P&L of trades live did not take (session down, or refused live);
- extra trades: live net P&L of trades the backtest did not take;
- carried in: live trades entered before the window (the backtest starts flat).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from core.build import build_paper_engine, history_bars
from core.config import Settings, SizingConfig
from core.domain import Mode, OrderFilled, dt_to_ms
from core.errors import RampartError
from core.market import align
from core.market.candles import timeframe_ms
from core.metrics import Metrics, compute_metrics
from core.reporting.daily.candles import CandleSource

COMPONENTS = ("fees", "slippage", "timing", "size", "missed_trades", "extra_trades", "carried_in")


@dataclass
class BacktestDay:
    """The backtest of the live window; ``status`` is 'ran', 'unavailable' (no candles) or 'failed'."""

    status: str
    note: str
    source: str | None = None
    trades: list[dict[str, Any]] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    equity: pl.DataFrame = field(default_factory=pl.DataFrame)
    metrics: Metrics | None = None
    used: dict[str, Any] = field(default_factory=dict)


def lookback_bars(settings: Settings) -> int:
    """History before the first bar, as long as the live feed's window (indicators and risk windows warm)."""
    return history_bars(settings)


def backtest_settings(settings: Settings, starting_equity: float, risk_per_trade: float,
                      exposure_cap: float) -> Settings:
    """``settings`` as the live session traded: risk controls on, the live rung's sizing, the day's equity."""
    paper = settings.paper.model_copy(update={"starting_cash": starting_equity, "risk_controls": True})
    sizing = SizingConfig(mode="risk", risk_per_trade=risk_per_trade, exposure_cap=exposure_cap)
    return settings.model_copy(update={"paper": paper, "sizing": sizing})


def run_backtest_day(settings: Settings, source: CandleSource, first_bar: datetime, last_bar: datetime,
                     day_period: str) -> BacktestDay:
    """Step the paper engine over [first_bar, last_bar] after the warm-up; never raises for missing data."""
    tf = settings.market.timeframe
    step = timeframe_ms(tf)
    first_ms, last_ms = dt_to_ms(first_bar), dt_to_ms(last_bar)
    used = {"risk_per_trade": settings.sizing.risk_per_trade, "exposure_cap": settings.sizing.exposure_cap,
            "slippage_bps": settings.paper.slippage_bps, "taker_fee": settings.paper.taker_fee,
            "starting_equity": settings.paper.starting_cash, "first_bar": first_bar, "last_bar": last_bar,
            "strategy": settings.strategy.name, "timeframe": tf}
    try:
        sets = source.load(list(settings.market.symbols), tf, first_ms - lookback_bars(settings) * step,
                           last_ms + step)
    except RampartError as exc:
        return BacktestDay("unavailable", str(exc), used=used)
    engine = build_paper_engine(settings, Mode.BACKTEST, record_decisions=False, as_live=False)
    try:
        engine.load(align(sets))
        ts = engine.books[0].ts
        if first_ms not in ts or last_ms not in ts:
            return BacktestDay("unavailable", f"{source.name}: the candles lack the session's first or last bar",
                               source.name, used=used)
        start, end = ts.index(first_ms), ts.index(last_ms) + 1
        engine.play(start, end)  # the bars before are history, as the live window was
    except Exception as exc:  # a failed baseline is reported, not fatal: the live part of the report stands
        return BacktestDay("failed", f"backtest failed: {type(exc).__name__}: {exc}", source.name, used=used)
    res = engine.finish()
    equity = pl.DataFrame({"ts": pl.Series(ts[start:end], dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
                           "equity": res.equity, "cash": res.cash})
    equity = equity.with_columns(((pl.col("equity") - pl.col("cash")) / pl.col("equity")).alias("exposure"))
    trades = res.trades_frame()
    metrics = compute_metrics(equity, trades, starting_equity=settings.paper.starting_cash, period=day_period)
    used["bars"], used["warmup_bars"] = end - start, start
    short = start < lookback_bars(settings)
    note = (f"{end - start} bars from {source.name} after {start} warm-up bar(s)"
            + (f" (fewer than the live window's {lookback_bars(settings)}: early indicators may differ)" if short
               else ""))
    return BacktestDay("ran", note, source.name, trades.to_dicts(), list(res.fills), equity, metrics, used)


# --- matching and attribution ------------------------------------------------------------------------------
@dataclass
class Attribution:
    """Where the closed-trade P&L difference live − backtest comes from; components sum to ``difference``."""

    live_net: float
    backtest_net: float
    components: dict[str, float]
    pairs: list[dict[str, Any]]
    missed: list[dict[str, Any]]
    extra: list[dict[str, Any]]
    carried: list[dict[str, Any]]

    @property
    def difference(self) -> float:
        return self.live_net - self.backtest_net

    @property
    def dominant(self) -> str | None:
        """The component with the largest absolute value (None when nothing differs)."""
        name, value = max(self.components.items(), key=lambda kv: abs(kv[1]))
        return name if abs(value) > 1e-9 else None

    def to_dict(self) -> dict[str, Any]:
        return {"live_net_pnl": self.live_net, "backtest_net_pnl": self.backtest_net,
                "difference": self.difference, "components": dict(self.components), "dominant": self.dominant,
                "matched": len(self.pairs), "missed": len(self.missed), "extra": len(self.extra),
                "carried_in": len(self.carried), "pairs": self.pairs, "missed_trades": self.missed,
                "extra_trades": self.extra, "carried_trades": self.carried}


def _bar(ts: datetime, step: int) -> int:
    return dt_to_ms(ts) // step


def match_trades(live: Sequence[dict[str, Any]], backtest: Sequence[dict[str, Any]], step_ms: int
                 ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Pairs (live, backtest) of the same symbol whose entries are at most one bar apart (closest first), then
    the backtest trades left (missed live) and the live trades left (extra)."""
    free = sorted(backtest, key=lambda t: t["entry_time"])
    taken: set[int] = set()
    pairs = []
    extra = []
    for lt in sorted(live, key=lambda t: t["entry_time"]):
        bar = _bar(lt["entry_time"], step_ms)
        best: tuple[int, int] | None = None
        for k, bt in enumerate(free):
            if k in taken or bt["symbol"] != lt["symbol"]:
                continue
            off = abs(_bar(bt["entry_time"], step_ms) - bar)
            if off <= 1 and (best is None or off < best[0]):
                best = (off, k)
        if best is None:
            extra.append(lt)
        else:
            taken.add(best[1])
            pairs.append((lt, free[best[1]]))
    missed = [bt for k, bt in enumerate(free) if k not in taken]
    return pairs, missed, extra


def _pair_terms(lt: dict[str, Any], bt: dict[str, Any], step_ms: int) -> dict[str, Any]:
    entry_off = _bar(lt["entry_time"], step_ms) - _bar(bt["entry_time"], step_ms)
    exit_off = _bar(lt["exit_time"], step_ms) - _bar(bt["exit_time"], step_ms)
    lq = lt["qty"]
    entry_term = -(lt["entry_price"] - bt["entry_price"]) * lq
    exit_term = (lt["exit_price"] - bt["exit_price"]) * lq
    slippage = (entry_term if entry_off == 0 else 0.0) + (exit_term if exit_off == 0 else 0.0)
    timing = (entry_term if entry_off else 0.0) + (exit_term if exit_off else 0.0)
    return {"live_trade_id": lt["trade_id"], "session_id": lt.get("session_id"),
            "backtest_trade_id": bt["trade_id"], "symbol": lt["symbol"], "entry_bar_offset": entry_off,
            "exit_bar_offset": exit_off, "live_net_pnl": lt["net_pnl"], "backtest_net_pnl": bt["net_pnl"],
            "fees": bt["fees"] - lt["fees"], "slippage": slippage, "timing": timing,
            "size": (bt["exit_price"] - bt["entry_price"]) * (lq - bt["qty"]),
            "backtest_entry_price": bt["entry_price"], "backtest_exit_price": bt["exit_price"],
            "backtest_qty": bt["qty"]}


def attribute(live: Sequence[dict[str, Any]], backtest: Sequence[dict[str, Any]], step_ms: int,
              window_start: datetime, why_missed: Callable[[dict[str, Any]], str]) -> Attribution:
    """Match and split the closed-trade P&L difference (see the module docstring)."""
    carried = [t for t in live if t["entry_time"] < window_start]
    inside = [t for t in live if t["entry_time"] >= window_start]
    pairs, missed, extra = match_trades(inside, backtest, step_ms)
    terms = [_pair_terms(lt, bt, step_ms) for lt, bt in pairs]
    comp = dict.fromkeys(COMPONENTS, 0.0)
    for name in ("fees", "slippage", "timing", "size"):
        comp[name] = math.fsum(t[name] for t in terms)
    comp["missed_trades"] = -math.fsum(t["net_pnl"] for t in missed)
    comp["extra_trades"] = math.fsum(t["net_pnl"] for t in extra)
    comp["carried_in"] = math.fsum(t["net_pnl"] for t in carried)
    return Attribution(math.fsum(t["net_pnl"] for t in live), math.fsum(t["net_pnl"] for t in backtest), comp,
                       terms, [_brief(t) | {"why": why_missed(t)} for t in missed], [_brief(t) for t in extra],
                       [_brief(t) for t in carried])


def _brief(t: dict[str, Any]) -> dict[str, Any]:
    return {"trade_id": t["trade_id"], "session_id": t.get("session_id"), "symbol": t["symbol"],
            "entry_time": t["entry_time"], "exit_time": t["exit_time"], "net_pnl": t["net_pnl"]}


# --- costs and the side-by-side table ----------------------------------------------------------------------
def cost_stats(trades: Sequence[dict[str, Any]], fees: float, slippage: float) -> dict[str, float | None]:
    """Average net return per trade and the all-in cost per round trip, both in bps of the entry notional."""
    notional = math.fsum(t["qty"] * t["entry_price"] for t in trades)
    if notional <= 0:
        return {"avg_return_bps": None, "cost_bps": None, "fee_bps": None, "slippage_bps": None}
    net = math.fsum(t["net_pnl"] for t in trades)
    return {"avg_return_bps": net / notional * 1e4, "cost_bps": (fees + slippage) / notional * 1e4,
            "fee_bps": fees / notional * 1e4, "slippage_bps": slippage / notional * 1e4}


SIDE_BY_SIDE = (
    ("trades", "closed trades", "count"), ("win_rate", "win rate", "pct"), ("profit_factor", "profit factor", "num"),
    ("avg_return_bps", "net return per trade (bps)", "bps"), ("cost_bps", "cost per round trip (bps)", "bps"),
    ("net_pnl", "net P&L (USDT)", "pnl"), ("fees", "fees (USDT)", "usd"),
    ("slippage_cost", "slippage cost (USDT)", "usd"), ("max_drawdown", "max drawdown", "pct"),
    ("sharpe", "Sharpe", "num"), ("exposure", "average exposure", "pct"),
)


def side_by_side(live: dict[str, Any] | None, backtest: dict[str, Any] | None,
                 paper: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per metric with the live, backtest and paper values (None where a source lacks it)."""
    rows = []
    for key, label, unit in SIDE_BY_SIDE:
        rows.append({"metric": key, "label": label, "unit": unit,
                     "live": (live or {}).get(key), "backtest": (backtest or {}).get(key),
                     "paper": (paper or {}).get(key)})
    return rows


def paper_gap(live: dict[str, Any] | None, paper: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per-trade return gap to paper (bps) and how much of it the difference in costs explains; the rest is the
    market (paper validation ran over other candles), so it is reported, not attributed trade by trade."""
    if not live or not paper or live.get("avg_return_bps") is None or paper.get("avg_return_bps") is None:
        return None
    gap = live["avg_return_bps"] - paper["avg_return_bps"]
    costs = -((live.get("cost_bps") or 0.0) - (paper.get("cost_bps") or 0.0))
    return {"return_gap_bps": gap, "costs_bps": costs, "market_bps": gap - costs,
            "win_rate_gap": _gap(live, paper, "win_rate"), "profit_factor_gap": _gap(live, paper, "profit_factor")}


def _gap(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    x, y = a.get(key), b.get(key)
    if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
        return None
    return float(x - y)


__all__ = ["COMPONENTS", "Attribution", "BacktestDay", "attribute", "backtest_settings", "cost_stats",
           "lookback_bars", "match_trades", "paper_gap", "run_backtest_day", "side_by_side"]
