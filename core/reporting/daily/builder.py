"""Build the daily report (R7.1–R7.4) of one UTC day from DuckDB: data → one JSON-ready document.

The document holds the day's and the cumulative key metrics (``core.metrics`` on the stored live trades
and equity, plus fees, slippage cost and exposure), the equity and drawdown curves, the comparison with the
backtest over the same candles and with paper validation (``compare``), every trade with its entry and exit
reasons in words (``reasons``), the day's risk events (``risk``) and the R7.4 suggestions (``suggest``). A day with
no trades or no live session still gives a complete document that says so (``status`` and ``notes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from core.build import config_hash
from core.config import MarketConfig, Settings, StrategyConfig
from core.config.ladder import rung
from core.errors import ConfigError
from core.market.candles import timeframe_ms
from core.metrics import Metrics, compute_metrics
from core.reporting.daily.candles import CandleSource
from core.reporting.daily.compare import (
    Attribution,
    BacktestDay,
    attribute,
    backtest_settings,
    cost_stats,
    paper_gap,
    run_backtest_day,
    side_by_side,
)
from core.reporting.daily.data import DayData, Period, load_day
from core.reporting.daily.reasons import TradeContext, details, entry_text, exit_text
from core.reporting.daily.risk import coverage, risk_section
from core.reporting.daily.suggest import Evidence, suggest
from core.reporting.paper_report import json_safe
from core.store import Store
from core.strategy import build_params

SCHEMA_ID = "https://rampart.local/schema/daily-report-v1.json"
SCHEMA_VERSION = 1
TRADED, NO_TRADES, DOWN = "traded", "no_trades", "session_down"


@dataclass
class DailyReport:
    """The report document (JSON types only) and the day it is about."""

    day: date
    doc: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.doc["status"])

    @property
    def trades(self) -> list[dict[str, Any]]:
        return list(self.doc["trades"])

    @property
    def headline(self) -> str:
        return str(self.doc["headline"])


def build_daily_report(store: Store, settings: Settings, day: date, candles: CandleSource | None = None,
                       *, generated_at: datetime | None = None, period: Period | None = None) -> DailyReport:
    """Read ``day`` (or ``period``: one session's span, or a day of it) from ``store`` and build its report;
    ``candles`` feeds the backtest (None: no backtest)."""
    period = period or Period.of_day(day)
    day = period.day
    data = load_day(store, day, period)
    eff, notes = effective_settings(settings, data)
    if period.note:
        notes.insert(0, period.note)
    params = build_params(eff.strategy.name, eff.strategy.params).model_dump()
    step = timeframe_ms(eff.market.timeframe)
    fills = _fill_costs(data)
    trades = _with_emergency_closes(data)
    status = DOWN if not data.sessions.height else TRADED if trades else NO_TRADES
    notes += _status_notes(status, period)
    live = _key_numbers(_day_metrics(data, trades, settings), trades, fills, data.start, data.end)
    backtest, att = _compare_backtest(data, eff, candles, settings, trades)
    bt_numbers = _backtest_numbers(backtest) if backtest is not None and backtest.metrics is not None else None
    paper = _paper_numbers(data.paper)
    views = _trade_views(trades, data, eff, params, fills, att)
    ev = Evidence(live if trades else None, bt_numbers, paper, fills=fills.height,
                  fill_slippage_bps=_per_fill_bps(fills, "slippage_cost"), fee_rate_bps=_fee_bps(fills),
                  attribution=att.to_dict() if att else None, missed=att.missed if att else [],
                  extra=att.extra if att else [])
    outcome = suggest(ev, eff, params)
    doc = {
        "$schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "kind": "rampart.daily-report",
        "date": day.isoformat(), "period": period.to_dict(), "generated_at": generated_at or datetime.now(UTC),
        "status": status,
        "notes": notes, "strategy": {"name": eff.strategy.name, "params": params,
                                     "timeframe": eff.market.timeframe, "symbols": list(eff.market.symbols),
                                     "config_hash": data.config_hash or config_hash(eff)},
        "sessions": _sessions(data), "coverage": coverage(data.equity, data.start, data.end, step),
        "metrics": {"day": live, "cumulative": _cumulative(data, settings)},
        "equity": _curve(data.equity, data.start_equity),
        "comparison": {"backtest": _backtest_section(backtest, bt_numbers, att), "paper": _paper_section(
            data.paper, paper, live if trades else None), "side_by_side": side_by_side(
            live if trades else None, bt_numbers, paper)},
        "trades": views, "risk": risk_section(data.events, data.decisions, data.start, data.end),
        "suggestions": outcome.to_dict(),
    }
    doc["headline"] = _headline(period, status, live, att, outcome.recommendation)
    return DailyReport(day, json_safe(doc))


# --- settings ----------------------------------------------------------------------------------------------
def effective_settings(settings: Settings, data: DayData) -> tuple[Settings, list[str]]:
    """The settings the live session traded with: its stored strategy and market, the current fill model and
    risk limits. Notes say when the current configuration differs from what ran."""
    stored = data.settings_json or {}
    notes: list[str] = []
    eff = settings
    try:
        update: dict[str, Any] = {}
        if isinstance(stored.get("strategy"), dict):
            update["strategy"] = StrategyConfig(**stored["strategy"])
        if isinstance(stored.get("market"), dict):
            update["market"] = MarketConfig(**stored["market"])
        eff = settings.model_copy(update=update) if update else settings
    except (ValueError, TypeError) as exc:
        notes.append(f"the session's stored settings could not be read ({exc}); the current settings are used")
    if data.config_hash and config_hash(eff) != data.config_hash:
        notes.append(f"the live session's config hash {data.config_hash[:8]} differs from the settings used for the "
                     f"backtest ({config_hash(eff)[:8]}): compare with care")
    elif data.config_hash and config_hash(settings) != data.config_hash:
        notes.append(f"the current settings (config {config_hash(settings)[:8]}) differ from what traded on this day "
                     f"(config {data.config_hash[:8]}); the report uses the session's")
    return eff, notes


def _status_notes(status: str, period: Period) -> list[str]:
    if status == DOWN and period.session_id is not None:
        return [f"Session {period.session_id[:8]} marked no bar in {period.label}: no equity, no trades, no "
                "comparison."]
    if status == DOWN:
        return [f"No live session ran on {period.label} (the session was down all day): no equity, no trades, "
                "no comparison."]
    if status == NO_TRADES:
        where = f"{'on' if period.is_day else 'in'} {period.label}"
        return [f"No trade closed {where}: the live session ran but the strategy's signals did not lead to a "
                "completed round trip."]
    return []


# --- live numbers ------------------------------------------------------------------------------------------
def _fill_costs(data: DayData) -> pl.DataFrame:
    """The day's live fills with their slippage cost (quote, signed: positive = worse than the reference)."""
    f = data.fills
    if not f.height:
        return f.with_columns(pl.lit(None, pl.Float64).alias("slippage_cost"))
    f = f.filter((pl.col("ts") >= data.start) & (pl.col("ts") < data.end))
    sign = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
    return f.with_columns((sign * (pl.col("price") - pl.col("ref_price")) * pl.col("qty")).alias("slippage_cost"))


def _per_fill_bps(fills: pl.DataFrame, column: str) -> float | None:
    have = fills.filter(pl.col(column).is_not_null()) if fills.height else fills
    notional = float((have["ref_price"] * have["qty"]).sum()) if have.height else 0.0
    return float(have[column].sum()) / notional * 1e4 if notional > 0 else None


def _fee_bps(fills: pl.DataFrame) -> float | None:
    notional = float((fills["price"] * fills["qty"]).sum()) if fills.height else 0.0
    return float(fills["fee"].sum()) / notional * 1e4 if notional > 0 else None


def _with_emergency_closes(data: DayData) -> list[dict[str, Any]]:
    """The stored trades plus positions an emergency stop sold (it records an event, not a trade row)."""
    trades = data.trades.to_dicts() if data.trades.height else []
    for t in trades:
        t["source"] = "trades"
    for ev in data.events.filter(pl.col("code") == "EMERGENCY_STOP").iter_rows(named=True) \
            if data.events.height else []:
        info = details(ev["details"]) or {}
        for sym, sell in (info.get("sells") or {}).items():
            trades.append(_emergency_trade(data, ev, info, sym, sell))
    return sorted(trades, key=lambda t: (t["exit_time"], t["trade_id"]))


def _emergency_trade(data: DayData, ev: dict[str, Any], info: dict[str, Any], sym: str,
                     sell: dict[str, Any]) -> dict[str, Any]:
    buys = data.fills.filter((pl.col("symbol") == sym) & (pl.col("side") == "buy")) if data.fills.height else None
    buy = buys.sort("ts").row(-1, named=True) if buys is not None and buys.height else None
    qty, price = float(sell.get("qty") or 0.0), float(sell.get("avg_price") or 0.0)
    entry = float(sell.get("entry_price") or (buy["price"] if buy else price))
    fees = float(sell.get("fees") or 0.0) + (float(buy["fee"]) if buy else 0.0)
    gross = (price - entry) * qty
    entry_details, entry_reason = None, ""
    if buy is not None:
        match = data.decisions.filter(pl.col("client_order_id") == buy["client_order_id"])
        if match.height:
            entry_details, entry_reason = match["details"][0], str(match["reason"][0] or "")
    return {"session_id": ev["session_id"], "trade_id": f"estop-{sym}-{str(ev['event_id'])[:8]}", "mode": "live",
            "symbol": sym, "entry_time": buy["ts"] if buy else ev["ts"], "exit_time": ev["ts"], "entry_price": entry,
            "exit_price": price, "qty": qty, "fees": fees, "gross_pnl": gross, "net_pnl": gross - fees,
            "return_pct": (gross - fees) / (entry * qty) if entry and qty else 0.0,
            "entry_reason": entry_reason, "exit_reason": str(info.get("reason") or ""), "exit_kind": "emergency",
            "entry_cid": buy["client_order_id"] if buy else None, "exit_cid": None, "entry_details": entry_details,
            "exit_details": None, "exit_stop": None, "source": "emergency_stop",
            "emergency": {"who": info.get("who"), "reason": info.get("reason")}}


def _day_metrics(data: DayData, trades: list[dict[str, Any]], settings: Settings) -> Metrics | None:
    if not data.equity.height or data.start_equity is None:
        return None
    frame = pl.DataFrame({"net_pnl": [float(t["net_pnl"]) for t in trades], "fees": [float(t["fees"])
                                                                                    for t in trades]},
                         schema={"net_pnl": pl.Float64, "fees": pl.Float64})
    return compute_metrics(data.equity, frame, starting_equity=data.start_equity, period=settings.reports.day_period)


def _key_numbers(m: Metrics | None, trades: list[dict[str, Any]], fills: pl.DataFrame, start: datetime,
                 end: datetime) -> dict[str, Any] | None:
    """The R1.3 set plus exposure, fees, slippage cost and per-trade costs (bps of entry notional)."""
    if m is None:
        return None
    slip = float(fills["slippage_cost"].fill_null(0.0).sum()) if fills.height else 0.0
    fees_in_day = float(fills["fee"].sum()) if fills.height else 0.0
    out = {**m.to_dict(), "slippage_cost": slip, "fees_paid_in_day": fees_in_day,
           "realized_pnl": math.fsum(t["net_pnl"] for t in trades), "period_start": start, "period_end": end,
           "slippage_bps_per_fill": _per_fill_bps(fills, "slippage_cost"), "fee_bps_per_fill": _fee_bps(fills)}
    out.update(cost_stats(trades, m.fees, _trade_slippage(trades, fills)))
    return out


def _trade_slippage(trades: list[dict[str, Any]], fills: pl.DataFrame) -> float:
    """Slippage of the fills that belong to these trades' entry and exit orders."""
    if not fills.height:
        return 0.0
    cids = {t.get("entry_cid") for t in trades} | {t.get("exit_cid") for t in trades}
    return float(fills.filter(pl.col("client_order_id").is_in([c for c in cids if c]))["slippage_cost"]
                 .fill_null(0.0).sum())


def _cumulative(data: DayData, settings: Settings) -> dict[str, Any] | None:
    if not data.history_equity.height or data.first_equity is None:
        return None
    m = compute_metrics(data.history_equity, data.history_trades, starting_equity=data.first_equity,
                        period=settings.gate.period)
    return {**m.to_dict(), "since": data.history_equity["ts"].min(), "until": data.end}


def _curve(equity: pl.DataFrame, start_equity: float | None) -> dict[str, Any]:
    if not equity.height:
        return {"start_equity": start_equity, "points": []}
    eq = equity.select("ts", "equity", "exposure")
    base = start_equity if start_equity is not None else float(eq["equity"][0])
    peak = pl.max_horizontal(pl.col("equity").cum_max(), pl.lit(base))
    eq = eq.with_columns((1 - pl.col("equity") / peak).alias("drawdown"))
    return {"start_equity": base, "points": eq.to_dicts()}


def _sessions(data: DayData) -> list[dict[str, Any]]:
    cols = ("id", "status", "strategy", "config_hash", "started_at", "ended_at", "first_bar", "last_bar", "bars",
            "starting_equity", "final_equity", "error")
    return [{c: row.get(c) for c in cols} for row in data.sessions.iter_rows(named=True)] if data.sessions.height \
        else []


# --- the baselines -----------------------------------------------------------------------------------------
def _live_sizing(data: DayData) -> tuple[float, float]:
    """The rung the day's entries used (from their sizing inputs), else the first rung."""
    d = data.decisions
    entries = d.filter((pl.col("kind") == "order") & (pl.col("action") == "enter")).sort("ts") if d.height else d
    for raw in entries["details"].to_list() if entries.height else []:
        sizing = (details(raw) or {}).get("sizing") or {}
        if sizing.get("risk_per_trade") and sizing.get("exposure_cap"):
            return float(sizing["risk_per_trade"]), float(sizing["exposure_cap"])
    first = rung(0)
    return first.risk_per_trade, first.exposure_cap


def _compare_backtest(data: DayData, eff: Settings, candles: CandleSource | None, settings: Settings,
                      trades: list[dict[str, Any]]) -> tuple[BacktestDay | None, Attribution | None]:
    """The backtest of the live window and the attribution of the difference (None without live bars)."""
    if not data.equity.height:
        return None, None
    backtest = _backtest(data, eff, candles, settings)
    if backtest.status != "ran":
        return backtest, None
    step = timeframe_ms(eff.market.timeframe)
    window_start: datetime = data.equity["ts"].min()  # type: ignore[assignment]
    return backtest, attribute(trades, backtest.trades, step, window_start, _why_missed(data, step))


def _backtest(data: DayData, eff: Settings, candles: CandleSource | None, settings: Settings) -> BacktestDay:
    if candles is None:
        return BacktestDay("unavailable", "no candle source given: pass --candles FILE or keep DATA_DIR/candles")
    risk, cap = _live_sizing(data)
    start_equity = data.start_equity or float(data.equity["equity"][0])
    try:
        bt_settings = backtest_settings(eff, start_equity, risk, cap)
    except (ValueError, ConfigError) as exc:
        return BacktestDay("failed", f"backtest settings invalid: {exc}")
    first, last = data.equity["ts"].min(), data.equity["ts"].max()
    return run_backtest_day(bt_settings, candles, first, last, settings.reports.day_period)  # type: ignore[arg-type]


def _backtest_numbers(bt: BacktestDay) -> dict[str, Any]:
    m = bt.metrics
    if m is None:
        return {}
    slip = math.fsum(f.slippage for f in bt.fills)
    return {**m.to_dict(), "slippage_cost": slip, **cost_stats(bt.trades, m.fees, slip)}


def _backtest_section(bt: BacktestDay | None, numbers: dict[str, Any] | None,
                      att: Attribution | None) -> dict[str, Any]:
    if bt is None:
        return {"status": "unavailable", "note": "no live bars on this day: nothing to replay", "settings": {},
                "metrics": None, "trades": [], "attribution": None}
    trades = [{k: t[k] for k in ("trade_id", "symbol", "entry_time", "exit_time", "entry_price", "exit_price",
                                 "qty", "fees", "net_pnl", "exit_kind")} for t in bt.trades]
    equity = bt.equity.select("ts", "equity").to_dicts() if bt.equity.height else []
    return {"status": bt.status, "note": bt.note, "source": bt.source, "settings": bt.used, "metrics": numbers,
            "trades": trades, "equity": equity, "attribution": att.to_dict() if att else None}


def _paper_numbers(paper: dict[str, Any] | None) -> dict[str, Any] | None:
    if not paper:
        return None
    trades = paper["trades"].to_dicts() if paper["trades"].height else []
    metrics = dict(paper["metrics"] or {})
    costs = cost_stats(trades, float(metrics.get("fees") or 0.0), paper["slippage"])
    return {**metrics, "slippage_cost": paper["slippage"], **costs}


def _paper_section(paper: dict[str, Any] | None, numbers: dict[str, Any] | None,
                   live: dict[str, Any] | None) -> dict[str, Any]:
    if not paper:
        return {"status": "unavailable", "note": "no passed paper-validation gate for this config hash",
                "metrics": None, "gap": None}
    return {"status": "found", "note": "paper validation ran over other candles: ratios compare, amounts do not",
            "gate_id": paper["gate_id"], "session_id": paper["session_id"], "created_at": paper["created_at"],
            "metrics": numbers, "gap": paper_gap(live, numbers)}


def _why_missed(data: DayData, step: int) -> Callable[[dict[str, Any]], str]:
    """Why live did not take a backtest trade: not running on its decision bar, or refused (the coded reason)."""
    bars = set(data.equity["ts"].to_list()) if data.equity.height else set()
    d = data.decisions
    denied = d.filter(pl.col("kind") == "denied") if d.height else d
    refusals = {(r["symbol"], r["ts"]): r["code"] for r in denied.iter_rows(named=True)} if denied.height else {}

    def reason(t: dict[str, Any]) -> str:
        decided = t["entry_time"] - timedelta(milliseconds=step)  # market orders fill on the bar after
        if decided not in bars:
            return "session down"
        code = refusals.get((t["symbol"], decided))
        return f"refused live: {code}" if code else "no live signal on that bar"

    return reason


# --- trades ------------------------------------------------------------------------------------------------
def _tightenings(data: DayData) -> dict[str, list[dict[str, Any]]]:
    """UNREALIZED_LOSS_TIGHTEN events by session (few per day: read once, searched per trade)."""
    ev = data.events
    hits = ev.filter(pl.col("code") == "UNREALIZED_LOSS_TIGHTEN") if ev.height else ev
    out: dict[str, list[dict[str, Any]]] = {}
    for row in hits.iter_rows(named=True) if hits.height else []:
        out.setdefault(str(row["session_id"]), []).append(row)
    return out


def _tightening(found: dict[str, list[dict[str, Any]]], t: dict[str, Any]) -> dict[str, Any] | None:
    """The latest stop tightening during the trade (its stop was moved by it)."""
    during = [e for e in found.get(str(t.get("session_id")), []) if t["entry_time"] <= e["ts"] <= t["exit_time"]]
    return during[-1] if during else None


def _trade_views(trades: list[dict[str, Any]], data: DayData, eff: Settings, params: dict[str, Any],
                 fills: pl.DataFrame, att: Attribution | None) -> list[dict[str, Any]]:
    """Every trade with times, prices, size, fees, slippage, P&L, its reasons in words and its backtest twin."""
    slip_by_cid: dict[str, float] = {}
    if fills.height:
        for cid, cost in fills.group_by("client_order_id").agg(pl.col("slippage_cost").sum()).iter_rows():
            slip_by_cid[str(cid)] = float(cost or 0.0)
    twins = {(p["session_id"], p["live_trade_id"]): p for p in att.pairs} if att else {}
    extra = {(e["session_id"], e["trade_id"]) for e in att.extra} if att else set()
    carried = {(c["session_id"], c["trade_id"]) for c in att.carried} if att else set()
    tightened = _tightenings(data)
    out = []
    for t in trades:
        ctx = TradeContext(t, eff.strategy.name, params, details(t.get("entry_details")),
                           details(t.get("exit_details")),
                           t.get("exit_stop") if t.get("exit_tag") == "stop" else None, _tightening(tightened, t),
                           eff.risk.stop_tighten, t.get("emergency"))
        key = (t.get("session_id"), t["trade_id"])
        twin = twins.get(key)
        match = "matched" if twin else "extra" if key in extra else "carried_in" if key in carried else None
        slip = slip_by_cid.get(str(t.get("entry_cid")), 0.0) + slip_by_cid.get(str(t.get("exit_cid")), 0.0)
        out.append({
            "trade_id": t["trade_id"], "session_id": t.get("session_id"), "symbol": t["symbol"],
            "source": t.get("source", "trades"), "entry_time": t["entry_time"], "exit_time": t["exit_time"],
            "minutes": (t["exit_time"] - t["entry_time"]).total_seconds() / 60, "entry_price": t["entry_price"],
            "exit_price": t["exit_price"], "qty": t["qty"], "notional": t["qty"] * t["entry_price"],
            "fees": t["fees"], "slippage_cost": slip, "gross_pnl": t["gross_pnl"], "net_pnl": t["net_pnl"],
            "return_pct": t.get("return_pct"), "exit_kind": t.get("exit_kind") or "signal",
            "entry_reason": t.get("entry_reason") or "", "exit_reason": t.get("exit_reason") or "",
            "entry_text": entry_text(ctx), "exit_text": exit_text(ctx), "backtest_match": match,
            "backtest": None if twin is None else {k: twin[k] for k in (
                "backtest_trade_id", "backtest_entry_price", "backtest_exit_price", "backtest_qty",
                "backtest_net_pnl", "entry_bar_offset", "exit_bar_offset", "fees", "slippage", "timing", "size")},
        })
    return out


def _headline(period: Period, status: str, live: dict[str, Any] | None, att: Attribution | None, rec: str) -> str:
    if status == DOWN:
        return f"{period.label}: no live session ran" + (" (down all day)" if period.is_day else "")
    m = live or {}
    text = f"{period.label}: {m.get('trades', 0)} trade(s), net P&L {m.get('net_pnl') or 0:+,.2f} USDT"
    if m.get("trades"):
        text += f", win rate {m.get('win_rate') or 0:.0%}"
    if att is not None and att.dominant:
        text += (f"; vs backtest {att.difference:+,.2f} USDT, mostly {att.dominant.replace('_', ' ')} "
                 f"({att.components[att.dominant]:+,.2f})")
    return text + f"; recommendation: {rec.replace('_', ' ')}"


__all__ = ["DOWN", "NO_TRADES", "SCHEMA_VERSION", "TRADED", "DailyReport", "build_daily_report",
           "effective_settings"]
