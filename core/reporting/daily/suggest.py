"""When live trading degrades against its baselines (R7.4): concrete parameter changes, or a manual review.

Checks compare the live day with the backtest over the same candles (same window, so drawdown and trade counts
compare), the paper-validation gate (win rate, profit factor) and the cost model (``settings.paper``), each with
its margin from ``settings.reports``. A degradation that costs explain gets parameter suggestions — the setting,
its value now, the value to use and the evidence: the cost model when live fills cost more than it assumes, and
the strategy's trade frequency when costs eat more than the average move per trade. A degradation nothing in the
settings explains (missed trades, timing, a worse win rate without higher costs) gets a manual review, and the
report says which of the two it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from core.config import Settings

NONE, CHANGES, REVIEW, BOTH = "none", "parameter_changes", "manual_review", "parameter_changes_and_manual_review"
COST_COMPONENTS = ("fees", "slippage")


@dataclass(frozen=True)
class Check:
    """One comparison: ``live`` against ``baseline`` (from ``source``) with its margin; ``degraded`` when beyond."""

    metric: str
    source: str  # 'paper' | 'backtest' | 'model'
    live: float | None
    baseline: float | None
    margin: float
    degraded: bool
    text: str


@dataclass(frozen=True)
class Suggestion:
    """A parameter change (``setting`` from ``current`` to ``suggested``) or a manual review (no setting)."""

    kind: str  # 'parameter' | 'manual_review'
    title: str
    evidence: str
    why: str
    setting: str | None = None
    current: Any = None
    suggested: Any = None
    how: str | None = None  # where to set it (env var or CLI option)


@dataclass
class Evidence:
    """The numbers the checks read; None where a source is missing."""

    live: dict[str, Any] | None  # day metrics + cost stats (win_rate, profit_factor, max_drawdown, *_bps, trades)
    backtest: dict[str, Any] | None
    paper: dict[str, Any] | None
    fills: int = 0
    fill_slippage_bps: float | None = None  # live: average cost per fill vs the decision/stop price
    fee_rate_bps: float | None = None  # live: fees / fill notional
    attribution: dict[str, Any] | None = None
    missed: list[dict[str, Any]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Outcome:
    degraded: bool
    recommendation: str
    summary: str
    checks: list[Check]
    suggestions: list[Suggestion]

    def to_dict(self) -> dict[str, Any]:
        return {"degraded": self.degraded, "recommendation": self.recommendation, "summary": self.summary,
                "checks": [asdict(c) for c in self.checks], "suggestions": [asdict(s) for s in self.suggestions]}


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _below(metric: str, source: str, live: Any, base: Any, margin: float, fmt: str) -> Check | None:
    """Degraded when live < baseline − margin (both finite)."""
    if not (_finite(live) and _finite(base)):
        return None
    bad = live < base - margin
    text = f"{metric.replace('_', ' ')} {fmt.format(live)} vs {source} {fmt.format(base)} (margin {fmt.format(margin)})"
    return Check(metric, source, float(live), float(base), margin, bad, text)


def _checks(ev: Evidence, settings: Settings) -> list[Check]:
    cfg, out = settings.reports, []
    live = ev.live or {}
    if ev.fills >= cfg.min_fills and ev.fill_slippage_bps is not None:
        model = settings.paper.slippage_bps
        bad = ev.fill_slippage_bps > model + cfg.slippage_margin_bps
        out.append(Check("slippage_bps", "model", ev.fill_slippage_bps, model, cfg.slippage_margin_bps, bad,
                         f"slippage {ev.fill_slippage_bps:.1f} bps per fill vs the model's {model:g} bps "
                         f"(margin {cfg.slippage_margin_bps:g})"))
    if ev.fills >= cfg.min_fills and ev.fee_rate_bps is not None:
        model = settings.paper.taker_fee * 1e4
        bad = ev.fee_rate_bps > model + cfg.fee_margin_bps
        out.append(Check("fee_bps", "model", ev.fee_rate_bps, model, cfg.fee_margin_bps, bad,
                         f"fees {ev.fee_rate_bps:.1f} bps per fill vs the model's {model:g} bps "
                         f"(margin {cfg.fee_margin_bps:g})"))
    if live.get("trades"):
        for source, base in (("paper", ev.paper), ("backtest", ev.backtest)):
            if not base or not base.get("trades"):
                continue
            out += [c for c in (
                _below("win_rate", source, live.get("win_rate"), base.get("win_rate"), cfg.win_rate_margin, "{:.1%}"),
                _below("profit_factor", source, live.get("profit_factor"), base.get("profit_factor"),
                       cfg.profit_factor_margin, "{:.2f}")) if c is not None]
    if ev.backtest and _finite(live.get("max_drawdown")) and _finite(ev.backtest.get("max_drawdown")):
        dd, bt_dd = float(live["max_drawdown"]), float(ev.backtest["max_drawdown"])
        out.append(Check("max_drawdown", "backtest", dd, bt_dd, cfg.drawdown_margin, dd > bt_dd + cfg.drawdown_margin,
                         f"max drawdown {dd:.2%} vs backtest {bt_dd:.2%} (margin {cfg.drawdown_margin:.2%})"))
    if ev.attribution is not None:
        n = len(ev.missed) + len(ev.extra)
        out.append(Check("unmatched_trades", "backtest", float(n), 0.0, float(cfg.max_unmatched_trades),
                         n > cfg.max_unmatched_trades, f"{len(ev.missed)} backtest trade(s) not taken live, "
                         f"{len(ev.extra)} live trade(s) not in the backtest (allowed {cfg.max_unmatched_trades})"))
    return out


def _attribution_text(ev: Evidence, component: str) -> str:
    att = ev.attribution
    if not att:
        return ""
    value = (att.get("components") or {}).get(component)
    if not _finite(value):
        return ""
    return (f"; against the backtest over the same candles, {component} accounts for {value:+,.2f} of the "
            f"{att['difference']:+,.2f} USDT difference in closed-trade P&L")


def _cost_suggestions(checks: dict[str, Check], ev: Evidence, settings: Settings) -> list[Suggestion]:
    out = []
    slip = checks.get("slippage_bps")
    if slip is not None and slip.degraded and slip.live is not None:
        now = settings.paper.slippage_bps
        new = float(min(500, max(math.ceil(slip.live), now + 1)))
        out.append(Suggestion(
            "parameter", "Price live slippage into paper validation and backtests",
            f"{ev.fills} live fills cost {slip.live:.1f} bps on average against the decision (or stop) price; the "
            f"model assumes {now:g} bps" + _attribution_text(ev, "slippage"),
            "the gate and the backtests then measure the strategy at the costs it really pays; run paper validation "
            "again with the new value (it does not change the strategy's config hash)",
            "paper.slippage_bps", now, new, "RAMPART_PAPER__SLIPPAGE_BPS"))
    fee = checks.get("fee_bps")
    if fee is not None and fee.degraded and fee.live is not None:
        now = settings.paper.taker_fee
        new = min(0.01, math.ceil(fee.live) / 1e4)
        out.append(Suggestion(
            "parameter", "Use the account's real fee rate in the cost model",
            f"{ev.fills} live fills paid {fee.live:.1f} bps in fees; the model assumes {now * 1e4:g} bps"
            + _attribution_text(ev, "fees"),
            "a lower fee tier (BNB discount, VIP level) or a higher one changes every trade's net result",
            "paper.taker_fee", now, new, "RAMPART_PAPER__TAKER_FEE"))
    return out


# strategy -> (parameter, how to make it trade less often, bounds of the parameter)
_FREQUENCY: dict[str, tuple[str, str, float]] = {
    "sma_cross": ("slow", "x1.5", 5000), "trend": ("slow", "x1.5", 2000), "mean_reversion": ("entry_z", "+0.5", 6),
}


def _frequency_suggestion(ev: Evidence, settings: Settings, params: dict[str, Any]) -> Suggestion | None:
    """When a round trip costs more than the (positive) average move it catches, trade less often (bigger moves)."""
    live = ev.live or {}
    name = settings.strategy.name
    if not (_finite(live.get("avg_return_bps")) and _finite(live.get("cost_bps"))) or name not in _FREQUENCY:
        return None
    net, cost = float(live["avg_return_bps"]), float(live["cost_bps"])
    gross = net + cost
    if not 0 < gross < cost:  # no edge before costs is the strategy's problem (a review), not the frequency's
        return None
    param, rule, bound = _FREQUENCY[name]
    if not _finite(params.get(param)):
        return None
    now = params[param]
    new: float = min(bound, round(now * 1.5)) if rule == "x1.5" else min(bound, round(now + 0.5, 2))
    if new == now:
        return None
    new = int(new) if isinstance(now, int) else new
    return Suggestion(
        "parameter", "Trade less often so each trade's move covers its costs",
        f"over {live.get('trades')} live trade(s) the average move before costs was {gross:.1f} bps of the entry "
        f"notional while a round trip cost {cost:.1f} bps (fees {live.get('fee_bps') or 0:.1f} + slippage "
        f"{live.get('slippage_bps') or 0:.1f})",
        f"a {'slower trend' if param == 'slow' else 'deeper stretch'} filter takes fewer, larger moves, so costs "
        "take a smaller share; this changes the strategy's config hash: paper-validate it (the gate) before live",
        f"strategy.params.{param}", now, new, f"--param {param}={new:g} (or RAMPART_STRATEGY__PARAMS)")


def _reviews(checks: list[Check], ev: Evidence, explained: bool) -> list[Suggestion]:
    out = []
    perf = [c for c in checks if c.degraded and c.metric in ("win_rate", "profit_factor", "max_drawdown")]
    if perf and not explained:
        out.append(Suggestion(
            "manual_review", "Performance below baseline without a cost explanation",
            "; ".join(c.text for c in perf),
            "no setting explains it: compare the day's market (volatility, trend) with the paper-validation period "
            "and read the trade-by-trade reasons before changing anything"))
    unmatched = next((c for c in checks if c.metric == "unmatched_trades" and c.degraded), None)
    if unmatched is not None:
        whys = sorted({str(m.get("why")) for m in ev.missed if m.get("why")})
        out.append(Suggestion(
            "manual_review", "Live and backtest took different trades",
            unmatched.text + (f" (missed because: {', '.join(whys)})" if whys else ""),
            "check order rejections, downtime and reconciliation events of the day: execution, not the strategy, "
            "made the difference"))
    att = ev.attribution or {}
    if att.get("dominant") == "timing":
        out.append(Suggestion("manual_review", "Fills a bar away from the backtest",
                              f"timing accounts for {att['components']['timing']:+,.2f} of the "
                              f"{att['difference']:+,.2f} USDT difference",
                              "check exchange latency and the session's poll interval"))
    return out


def suggest(ev: Evidence, settings: Settings, params: dict[str, Any]) -> Outcome:
    """Run the checks and turn the degraded ones into suggestions; ``params`` are the strategy's full parameters."""
    checks = _checks(ev, settings)
    by_metric = {c.metric: c for c in checks if c.source == "model"}
    degraded = any(c.degraded for c in checks)
    changes = _cost_suggestions(by_metric, ev, settings)
    if degraded:
        freq = _frequency_suggestion(ev, settings, params)
        changes += [freq] if freq is not None else []
    dominant = (ev.attribution or {}).get("dominant")
    explained = bool(changes) and (dominant is None or dominant in COST_COMPONENTS)
    reviews = _reviews(checks, ev, explained)
    rec = BOTH if changes and reviews else CHANGES if changes else REVIEW if reviews else NONE
    return Outcome(degraded, rec, _summary(rec, checks, changes, reviews), checks, changes + reviews)


def _summary(rec: str, checks: list[Check], changes: list[Suggestion], reviews: list[Suggestion]) -> str:
    bad = [c.text for c in checks if c.degraded]
    if rec == NONE:
        return ("Live is within the margins of its baselines: no change suggested." if checks else
                "Not enough live data to compare with the baselines: no change suggested.")
    what = {CHANGES: f"{len(changes)} concrete parameter change(s)", REVIEW: f"a manual review ({len(reviews)} "
            "point(s))", BOTH: f"{len(changes)} parameter change(s) and a manual review"}[rec]
    return f"Degraded ({'; '.join(bad)}). Recommendation: {what}."


__all__ = ["Check", "Evidence", "Outcome", "Suggestion", "suggest"]
