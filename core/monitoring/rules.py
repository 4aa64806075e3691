"""The alert rules of R3.4: each turns what a live session observed into at most one ``Alert`` per episode.

A rule is clock-free and store-free: callers hand it observations with their time (engine clock for bars, orders
and events; wall seconds for exchange calls) and record whatever ``Alert`` it returns. An episode starts when the
condition first holds (one alert) and ends when it clears, which re-arms the rule. Every alert's evidence names the
observed value, the threshold and the rows (order ids, fill ids, event ids, trade ids) behind it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.metrics import profit_factor, win_rate
from core.monitoring.alerts import Alert

EVIDENCE_ROWS = 20  # rows listed in an alert's evidence at most (the newest)


class Episode:
    """One condition's dedupe: ``start()`` is True only when the condition was not already on."""

    def __init__(self) -> None:
        self.on = False

    def start(self) -> bool:
        fresh = not self.on
        self.on = True
        return fresh

    def clear(self) -> None:
        self.on = False


@dataclass(frozen=True)
class Reference:
    """What a fill is measured against: the decision's price (market orders) or the stop's trigger price."""

    client_order_id: str
    price: float
    source: str  # 'decision close' | 'stop trigger'
    tag: str = ""


def slippage_bps(side: str, price: float, reference: float) -> float:
    """Adverse slippage in basis points: a buy above / a sell below the reference is positive (a cost)."""
    if not reference > 0:
        return 0.0
    sign = 1.0 if side == "buy" else -1.0
    return sign * (price - reference) / reference * 10_000.0


class SlippageRule:
    """SLIPPAGE_HIGH: a fill's adverse slippage above the paper model's ``slippage_bps`` × ``multiple``.

    A zero model would make every tick an alert, so the model counts as at least 1 bp. One episode per symbol:
    the next fill under the threshold ends it."""

    rule, code, severity = "slippage", "SLIPPAGE_HIGH", "warning"

    def __init__(self, model_bps: float, multiple: float) -> None:
        self.model_bps = model_bps
        self.threshold_bps = max(model_bps, 1.0) * multiple
        self._episodes: dict[str, Episode] = {}

    def on_fill(self, fill: dict[str, Any], ref: Reference) -> Alert | None:
        bps = slippage_bps(str(fill["side"]), float(fill["price"]), ref.price)
        episode = self._episodes.setdefault(str(fill["symbol"]), Episode())
        if bps <= self.threshold_bps:
            episode.clear()
            return None
        if not episode.start():
            return None
        qty = float(fill["qty"])
        evidence = {"observed_bps": round(bps, 3), "threshold_bps": self.threshold_bps,
                    "model_bps": self.model_bps, "fill_id": fill["fill_id"], "client_order_id": ref.client_order_id,
                    "symbol": fill["symbol"], "side": fill["side"], "qty": qty, "price": float(fill["price"]),
                    "reference_price": ref.price, "reference": ref.source,
                    "cost_quote": round(abs(float(fill["price"]) - ref.price) * qty, 8)}
        return Alert(self.rule, self.code, self.severity,
                     f"{fill['symbol']} {fill['side']} filled at {float(fill['price']):,.2f} against "
                     f"{ref.source} {ref.price:,.2f}: slippage {bps:.1f} bps > {self.threshold_bps:.1f} bps "
                     f"({self.model_bps:g} bps model × {self.threshold_bps / max(self.model_bps, 1.0):g})",
                     evidence)


@dataclass
class CountRule:
    """At least ``threshold`` observations within ``window`` (in the unit of the times given): one alert, until the
    count falls under the threshold again. ``what`` names one observation in the alert's sentence."""

    rule: str
    code: str
    severity: str
    threshold: int
    window: float
    what: str
    unit: str = "s"
    _items: deque[tuple[float, dict[str, Any]]] = field(default_factory=deque, init=False)
    _episode: Episode = field(default_factory=Episode, init=False)

    def add(self, t: float, item: dict[str, Any]) -> Alert | None:
        """Count one observation at time ``t``; returns the alert when this one reaches the threshold."""
        self._items.append((t, item))
        self.prune(t)
        if len(self._items) < self.threshold or not self._episode.start():
            return None
        rows = [dict(it, t=tm) for tm, it in list(self._items)[-EVIDENCE_ROWS:]]
        evidence = {"observed": len(self._items), "threshold": self.threshold, "window": self.window,
                    "window_unit": self.unit, "rows": rows}
        return Alert(self.rule, self.code, self.severity,
                     f"{len(self._items)} {self.what} within {self.window:g} {self.unit} (threshold {self.threshold})",
                     evidence)

    def prune(self, now: float) -> None:
        """Drop what fell out of the window; the episode ends once the count is under the threshold."""
        while self._items and self._items[0][0] <= now - self.window:
            self._items.popleft()
        if len(self._items) < self.threshold:
            self._episode.clear()

    @property
    def count(self) -> int:
        return len(self._items)


# Reconciliation codes (core.live.reconcile) that mean Rampart's books and the exchange disagree.
MISMATCH_CODES = {"POSITION_MISMATCH": "critical", "UNEXPLAINED_ORDER": "critical",
                  "ORDER_NOT_JOURNALLED": "warning"}


class PositionMismatchRule:
    """POSITION_MISMATCH: a reconciliation found a balance or an order Rampart's books do not explain.

    Reconciliation runs again and again while the difference lasts; the same difference (same code, symbol, order,
    quantities) alerts once, a different one alerts again."""

    rule, code = "position_mismatch", "POSITION_MISMATCH"

    def __init__(self) -> None:
        self._seen: set[tuple[Any, ...]] = set()

    def on_event(self, code: str, message: str, details: dict[str, Any], event_id: str | None) -> Alert | None:
        if code not in MISMATCH_CODES:
            return None
        key = (code, details.get("symbol"), details.get("order"), details.get("client_order_id"),
               _rounded(details.get("exchange")), _rounded(details.get("expected")))
        if key in self._seen:
            return None
        self._seen.add(key)
        evidence: dict[str, Any] = {"reconcile_code": code, "event_id": event_id, **details}
        if "exchange" in details and "expected" in details:  # a balance: the exchange's quantity vs the books'
            evidence |= {"observed": details["exchange"], "threshold": details["expected"],
                         "difference": float(details["exchange"]) - float(details["expected"])}
        else:  # an order: one that should not be there
            evidence |= {"observed": f"order {details.get('order') or details.get('client_order_id')}",
                         "threshold": "no order Rampart did not journal"}
        return Alert(self.rule, self.code, MISMATCH_CODES[code], f"{code}: {message}", evidence)


def _rounded(value: Any) -> Any:
    return round(float(value), 8) if isinstance(value, int | float) else value


class StaleDataRule:
    """STALE_DATA: no new closed candle for ``stale_after_bars`` bar lengths. One alert per gap; the next new
    candle ends it."""

    rule, code, severity = "stale_data", "STALE_DATA", "error"

    def __init__(self, stale_after_bars: float, bar_s: float) -> None:
        self.stale_after_bars = stale_after_bars
        self.bar_s = bar_s
        self.threshold_s = stale_after_bars * bar_s
        self._episode = Episode()

    def check(self, age_s: float, last_candle: str | None, failed_polls: int) -> Alert | None:
        """``age_s``: seconds since the newest closed candle arrived; ``last_candle`` its open time."""
        if age_s <= self.threshold_s:
            self._episode.clear()
            return None
        if not self._episode.start():
            return None
        evidence = {"observed_s": round(age_s, 3), "threshold_s": self.threshold_s, "bar_s": self.bar_s,
                    "stale_after_bars": self.stale_after_bars, "last_candle": last_candle,
                    "failed_feed_calls": failed_polls}
        return Alert(self.rule, self.code, self.severity,
                     f"no new closed candle for {age_s:.1f} s (> {self.stale_after_bars:g} bars of {self.bar_s:g} s); "
                     f"newest candle opened {last_candle}", evidence)

    def fresh(self) -> None:
        self._episode.clear()


@dataclass(frozen=True)
class Baseline:
    """The paper numbers live trading is held to: the latest passed gate of the same strategy config."""

    gate_id: str
    win_rate: float | None
    profit_factor: float | None


class PerformanceRule:
    """PERF_BELOW_PAPER: over the latest ``window`` closed live trades (once ``min_trades`` exist), the win rate or
    profit factor below the paper baseline × (1 - ``margin``). A baseline that is not a finite number (no losing
    paper trade: profit factor inf) is not compared."""

    rule, code, severity = "performance", "PERF_BELOW_PAPER", "warning"

    def __init__(self, min_trades: int, margin: float, window: int) -> None:
        self.min_trades = min_trades
        self.margin = margin
        self.window = max(window, min_trades)
        self._episode = Episode()

    def check(self, pnls: Sequence[float], trade_ids: Sequence[str], baseline: Baseline | None) -> Alert | None:
        """``pnls``/``trade_ids``: the latest closed live trades, oldest first."""
        pnls, trade_ids = list(pnls)[-self.window:], list(trade_ids)[-self.window:]
        if baseline is None or len(pnls) < self.min_trades:
            return None
        live = {"win_rate": win_rate(pnls), "profit_factor": profit_factor(pnls)}
        paper = {"win_rate": baseline.win_rate, "profit_factor": baseline.profit_factor}
        below = {}
        for name, value in live.items():
            base = paper[name]
            if base is None or not math.isfinite(base):
                continue
            floor = base * (1.0 - self.margin)
            if value < floor:
                below[name] = {"observed": value, "threshold": floor, "paper": base}
        if not below:
            self._episode.clear()
            return None
        if not self._episode.start():
            return None
        words = "; ".join(f"{k.replace('_', ' ')} {v['observed']:.2f} < {v['threshold']:.2f} (paper {v['paper']:.2f} "
                          f"× {1 - self.margin:g})" for k, v in below.items())
        evidence = {"below": below, "live": {k: _finite(v) for k, v in live.items()}, "paper": paper,
                    "margin": self.margin, "trades": len(pnls), "gate_id": baseline.gate_id,
                    "trade_ids": trade_ids[-EVIDENCE_ROWS:],
                    "observed": _finite(next(iter(below.values()))["observed"]),
                    "threshold": next(iter(below.values()))["threshold"]}
        return Alert(self.rule, self.code, self.severity,
                     f"rolling live performance over the last {len(pnls)} trades is below the paper baseline: {words}",
                     evidence)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None

__all__ = ["MISMATCH_CODES", "Baseline", "CountRule", "Episode", "PerformanceRule", "PositionMismatchRule",
           "Reference", "SlippageRule", "StaleDataRule", "slippage_bps"]
