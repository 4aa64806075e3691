"""AlertMonitor: the R3.4 alert rules watching a live session, recording each alert with its evidence.

It is a ``SessionObserver`` (``on_flush`` sees each bar's new rows, ``on_poll`` every poll) and a broker listener
(``on_call`` sees every exchange call, so API errors and stale data are caught even while the feed is down and no
poll completes). What it watches, and on which clock:

- fills (slippage against the decision close or the stop trigger, vs the paper model) — per fill;
- ``ORDER_REJECTED`` events and submitted entries — counted in ``alerts.window_s`` of the engine clock;
- reconciliation events (``POSITION_MISMATCH``, ``UNEXPLAINED_ORDER``, ``ORDER_NOT_JOURNALLED``);
- failed exchange calls (5xx, timeouts, 429, auth) — counted in ``alerts.window_s`` of wall time;
- the feed's newest closed candle — its age is measured from when it arrived, in seconds of the exchange's server
  clock (durations on it equal local ones: preflight keeps the skew within 2 s), against stale_after_bars bars;
- closed live trades of this strategy config — the rolling win rate and profit factor against the latest passed
  paper gate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import polars as pl

from core.domain import ms_to_dt
from core.events import EventCode
from core.execution.ccxt_broker import CallRecord
from core.market.candles import timeframe_ms
from core.monitoring.alerts import Alert, record_alert
from core.monitoring.references import OrderReferences, details_of
from core.monitoring.rules import (
    MISMATCH_CODES,
    Baseline,
    CountRule,
    PerformanceRule,
    PositionMismatchRule,
    SlippageRule,
    StaleDataRule,
)
from core.redact import redact
from core.store import trading as trading_repo

if TYPE_CHECKING:
    from core.config import Settings
    from core.store import Store
    from core.view import SessionView

log = logging.getLogger("rampart.alerts")
PROTECTION_CODES = (EventCode.UNPROTECTED.value, EventCode.PROTECTION_SOLD.value)


def api_error_kind(error: str) -> str | None:
    """'timeout' | 'rate_limit' | 'unavailable' | 'auth' for a failed call's text (``what: CcxtClass: ...``);
    None for refusals that are not API failures (order not found, insufficient funds, bad order)."""
    import ccxt

    parts = error.split(": ")
    cls = getattr(ccxt, parts[1], None) if len(parts) > 1 else None
    if not isinstance(cls, type):
        return None
    if issubclass(cls, ccxt.RequestTimeout):
        return "timeout"
    if issubclass(cls, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return "rate_limit"
    if issubclass(cls, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return "auth"
    if issubclass(cls, ccxt.NetworkError):
        return "unavailable"
    return None


class AlertMonitor:
    """All alert rules for one live session; thresholds from ``settings.alerts``."""

    def __init__(self, view: SessionView, store: Store, settings: Settings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        cfg = settings.alerts
        self.view = view
        self.store = store
        self.refs = OrderReferences()
        self.slippage = SlippageRule(settings.paper.slippage_bps, cfg.slippage_multiple)
        self.rejections = CountRule("rejections", "ORDER_REJECTIONS", "error", cfg.rejections, cfg.window_s,
                                    "order rejections")
        self.bursts = CountRule("trade_burst", "TRADE_BURST", "warning", cfg.trade_burst, cfg.window_s, "entries")
        self.api = CountRule("api_errors", "API_ERRORS", "error", cfg.api_errors, cfg.window_s,
                             "failed exchange calls (errors, timeouts, rate limits)")
        self.mismatch = PositionMismatchRule()
        self.stale = StaleDataRule(cfg.stale_after_bars, timeframe_ms(settings.market.timeframe) / 1000.0)
        self.perf = PerformanceRule(cfg.perf_min_trades, cfg.perf_margin, cfg.perf_window)
        self._clock = clock
        self._candle: int | None = None
        self._arrived = clock()
        self._feed_failures = 0
        self._lock = threading.RLock()  # exchange calls may come from another thread (key rotation)
        self.raised: list[str] = []  # ids of the alerts this monitor recorded

    # --- SessionObserver -----------------------------------------------------------------------------------
    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        with self._lock:
            self.refs.learn(new)
            self._fills(new.get("fills"))
            self._events(new.get("events"))
            self._entries(new.get("decisions"))
            trades = new.get("trades")
            if trades is not None and trades.height:
                self._performance()
            self._watch_feed()

    def on_poll(self, view: SessionView) -> None:
        with self._lock:
            if view.started:
                now_s = view.now_ms() / 1000.0
                self.rejections.prune(now_s)
                self.bursts.prune(now_s)
            self.api.prune(time.time())
            self._watch_feed()

    def on_stop(self, view: SessionView) -> None:
        return None

    # --- broker listener -----------------------------------------------------------------------------------
    def on_call(self, record: CallRecord) -> None:
        """Every exchange call: a failed one counts towards API_ERRORS and is a moment to check data freshness."""
        if record.error is None:
            return
        kind = api_error_kind(record.error)
        if kind is None:
            return
        with self._lock:
            if record.what == "fetch_ohlcv":
                self._feed_failures += 1
            self._raise(self.api.add(record.started, {"call": record.what, "kind": kind,
                                                      "error": redact(record.error)[:200],
                                                      "latency_s": round(record.latency_s, 3)}))
            self._watch_feed()

    # --- rules ---------------------------------------------------------------------------------------------
    def _fills(self, fills: pl.DataFrame | None) -> None:
        if fills is None or not fills.height:
            return
        for fill in fills.iter_rows(named=True):
            ref = self.refs.get(fill.get("client_order_id"))
            if ref is not None:
                self._raise(self.slippage.on_fill(fill, ref))

    def _events(self, events: pl.DataFrame | None) -> None:
        if events is None or not events.height:
            return
        watched = ["ORDER_REJECTED", *MISMATCH_CODES, *PROTECTION_CODES]
        for ev in events.filter(pl.col("code").is_in(watched)).iter_rows(named=True):
            details = details_of(ev.get("details"))
            if ev["code"] in PROTECTION_CODES:  # R9.3: a position found without its stop, and what was done
                self._raise(Alert("protection", ev["code"], "critical", str(ev.get("message") or ""),
                                  {"event_id": ev.get("event_id"), **details}))
            elif ev["code"] == EventCode.ORDER_REJECTED:
                message = str(ev.get("message") or "")
                self._raise(self.rejections.add(_seconds(ev["ts"]), {"event_id": ev.get("event_id"),
                                                                     "client_order_id": details.get("client_order_id"),
                                                                     "error": redact(str(details.get("error")))[:200],
                                                                     "message": redact(message)[:200]}))
            else:
                self._raise(self.mismatch.on_event(ev["code"], str(ev.get("message") or ""), details,
                                                   ev.get("event_id")))

    def _entries(self, decisions: pl.DataFrame | None) -> None:
        if decisions is None or not decisions.height:
            return
        entries = decisions.filter((pl.col("kind") == "order") & (pl.col("action") == "enter"))
        for row in entries.iter_rows(named=True):
            order = details_of(row.get("details")).get("order") or {}
            self._raise(self.bursts.add(_seconds(row["ts"]), {"decision_id": row.get("decision_id"),
                                                              "symbol": row.get("symbol"),
                                                              "client_order_id": order.get("client_order_id")}))

    def _performance(self) -> None:
        chash = self.view.config_hash
        trades = trading_repo.latest_live_trades(self.store, chash, self.perf.window,
                                                 self.view.venue.live_evidence).reverse()
        gate = trading_repo.latest_passed_gate(self.store, chash)
        baseline = None
        if gate.height:
            row = gate.row(0, named=True)
            baseline = Baseline(str(row["id"]), row["win_rate"], row["profit_factor"])
        if trades.height:
            self._raise(self.perf.check(trades["net_pnl"].to_list(), trades["trade_id"].to_list(), baseline))

    def _watch_feed(self) -> None:
        last = self.view.last_candle_ts
        if last is None:
            return
        now = self._clock()
        if last != self._candle:
            self._candle, self._arrived, self._feed_failures = last, now, 0
            self.stale.fresh()
            return
        self._raise(self.stale.check(now - self._arrived, ms_to_dt(last).isoformat(), self._feed_failures))

    def _raise(self, alert: Alert | None) -> None:
        if alert is None:
            return
        alert = replace(alert, session_id=self.view.session_id)
        self.raised.append(record_alert(self.store, alert))
        log.warning("alert %s: %s", alert.code, alert.reason)


def _seconds(ts: Any) -> float:
    """A flushed row's timestamp (datetime) in epoch seconds."""
    return float(ts.timestamp())


__all__ = ["AlertMonitor", "api_error_kind"]
