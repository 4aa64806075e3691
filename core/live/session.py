"""LiveSession: preflight, reconcile, then the engine bar by bar on the exchange, until told to stop.

The loop is the paper engine's; only the broker (``CcxtBroker``) and the feed (closed exchange candles)
differ. It always starts on the first rung of the ladder (R2.1, R6.4) and keeps SAFE_MODE/HALTED from the
saved state. Each bar's rows go to DuckDB in one transaction and the state file is saved, so a crash loses
nothing that reconciliation cannot rebuild. Stopping (SIGTERM, Prefect cancellation, the duration) takes no
new entries, leaves protective stops on the exchange and flushes everything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from core.config import Settings
from core.config.ladder import rung
from core.control.api import ControlServer
from core.dashboard.server import serve_with_dashboard
from core.domain import Instrument, Mode, Order, OrderTag, TradingState
from core.engine import Engine
from core.errors import AuthenticationError, ExchangeError, RampartError, TradingHalted
from core.execution.ccxt_broker import CallRecord, CcxtBroker
from core.gate import check_go_live
from core.live.feed import ExchangeFeed
from core.live.observers import SessionObserver, call_observers
from core.live.reconcile import reconcile
from core.market.candles import base_asset
from core.portfolio import Portfolio
from core.risk.breakers import CircuitBreakers
from core.risk.engine import RiskConfig, RiskEngine
from core.scaling.changes import apply_to_risk
from core.scaling.symbols import half_risk_until, unapproved_symbols
from core.security.credentials import Credentials
from core.session import config_hash, new_session_id
from core.state.commands import pending_commands, session_marker
from core.state.halt import read_halt
from core.state.live import LiveState, load_state, save_state
from core.store import Store
from core.strategy import build_params, make_strategy
from core.validation import session_frames, session_row
from core.venue import Venue

log = logging.getLogger("rampart.live")


MAX_WINDOW = 999  # Binance serves at most 1,000 klines a request: the window plus the forming candle
TRANSIENT_NOTICES = frozenset({"ORDER_OUTCOME_UNKNOWN", "ORDER_NEVER_ARRIVED", "CANCEL_FAILED"})


class PreflightFailed(RampartError):
    """Live trading refused to start; the message lists every failed check and what to do."""


@dataclass(frozen=True)
class LiveOptions:
    poll_interval_s: float = 0.25
    duration_s: float | None = None
    max_bars: int | None = None
    reconcile_every: int = 50
    max_clock_skew_ms: int = 2_000
    control_port: int | None = None  # serve the control API on 127.0.0.1 (0 = a free port); None = off


@dataclass
class LiveSummary:
    session_id: str
    bars: int
    trades: int
    net_pnl: float
    equity: float
    state: str
    stopped_because: str


class LiveSession:
    """One live session on one account. Build, ``preflight()``, ``start()``, then ``run(stop_event)``."""

    def __init__(self, settings: Settings, venue: Venue, client: Any, credentials: Credentials | None,
                 options: LiveOptions | None = None, store: Store | None = None,
                 state_path: Path | None = None) -> None:
        self.settings = settings
        self.venue = venue
        self.options = options or LiveOptions()
        self.client = client
        self.credentials = credentials
        self.credentials_problem: str | None = None  # why no credentials could be read (preflight says it)
        self.store = store or Store(settings.db_path)
        self.state_path = state_path or settings.data_dir / "live" / "state.json"  # one file per account
        self.broker = CcxtBroker(client, before_submit=self._journal)
        self.chash = config_hash(settings)
        self.session_id = new_session_id()
        self.symbols = list(settings.market.symbols)
        self.state = LiveState()
        self.engine: Engine | None = None
        self.feed: ExchangeFeed | None = None
        self.bars = 0
        self._reconciled = 0
        self._halted = False
        self.control: ControlServer | None = None
        self._written: dict[str, int] = {}
        self._order_marks: dict[str, tuple[str, float]] = {}
        self.observers: list[SessionObserver] = []  # notifications, alerts, dashboard, audit (core.live.observers)
        self._requests: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()  # from other threads
        # for status(): exchange connectivity (last good call, last failure) and when the last new bar came
        self.connectivity: dict[str, Any] = {"last_ok_at": None, "last_error_at": None, "last_error": None}
        self.broker.listeners.append(self._note_call)
        self._bar_at: float | None = None

    # --- before trading ------------------------------------------------------------------------------------
    def preflight(self) -> dict[str, Instrument]:
        """Every check of issue 3 / R1.5 / R2.2; raises PreflightFailed naming each failure."""
        failures: list[str] = []
        halt = read_halt(self.settings.data_dir)
        if halt is not None:
            failures.append(f"HALTED: emergency stop by {halt.get('who')} ({halt.get('reason')}); an operator must "
                            "resume before live trading starts again")
        ok, why = check_go_live(self.store.latest_gate(self.chash), self.chash, datetime.now(UTC),
                                self.settings.gate)
        if not ok:
            failures.append(why)
        unapproved = unapproved_symbols(self.store, self.settings)
        if unapproved:  # R2.5 / R5.3: the symbol list grows only by an approved scaling decision
            failures.append(f"SYMBOL_NOT_APPROVED: {', '.join(unapproved)} has no approved new-symbol decision; "
                            "run the scaling review (flows/scaling_review.py) and approve it first")
        if self.credentials is None:
            why = self.credentials_problem or "set RAMPART_API_KEY and RAMPART_API_SECRET"
            failures.append(f"NO_CREDENTIALS: {why}")
        instruments: dict[str, Instrument] = {}
        try:
            server = self.broker.read("fetch_time", self.client.fetch_time)
            skew = int(server) - int(time.time() * 1000)
            if abs(skew) > self.options.max_clock_skew_ms:
                failures.append(f"CLOCK_SKEW: local clock is {skew} ms off the exchange's; sync it (chrony/ntp)")
            instruments = self.broker.instruments(self.symbols)
            if self.credentials is not None:
                self.broker.read("fetch_balance", self.client.fetch_balance)  # a signed read proves the keys
        except AuthenticationError as exc:
            failures.append(f"CREDENTIALS_REFUSED: the exchange refused the API key or secret ({exc}); "
                            "check RAMPART_API_KEY / RAMPART_API_SECRET")
        except ExchangeError as exc:
            failures.append(f"EXCHANGE_UNREACHABLE: {exc}")
        if failures:
            raise PreflightFailed("live trading refused: " + "; ".join(failures))
        return instruments

    def start(self, instruments: dict[str, Instrument]) -> None:
        """Open the session, reconcile with the exchange before any order, restore positions and stops."""
        self.state = load_state(self.state_path)
        first_start = self.state.session_id is None
        if first_start:  # holdings already on the account are not Rampart's to manage
            totals = self.broker.read("fetch_balance", self.client.fetch_balance).get("total", {})
            self.state.baseline = {base_asset(s): float(totals.get(base_asset(s)) or 0.0) for s in self.symbols}
        self.state.rung = 0  # R6.4: every (re)start trades at the first rung until an approval raises it
        report = reconcile(self.broker, self.state, self.symbols)
        engine = self._build_engine(instruments, report.cash)
        engine.clock = self.venue.engine_clock()  # SPEC: wall clock on a real exchange, the sandbox's own time
        self.engine = engine
        self.broker.on_latency = self._on_latency
        self.broker.on_error = engine.on_api_error
        self.store.begin_session({**session_row(self.session_id, Mode.LIVE, self.settings, self.chash,
                                                datetime.now(UTC), self.venue), "starting_equity": report.cash})
        lim = self.settings.risk  # the window must hold the risk windows too (returns need one more close)
        window = min(max(2 * max(s.warmup for s in engine.strategies.values()), 60, lim.vol_long_window + 1,
                         lim.corr_window + 1), MAX_WINDOW)
        self.feed = ExchangeFeed(self.broker, self.symbols, self.settings.market.timeframe, window)
        sets = self.feed.closed_window()
        self.feed.last_ts = int(sets[0].frame["ts"][-1].timestamp() * 1000) if sets[0].frame.height else None
        self._bar_at = time.time()
        engine.start_live(sets)
        engine.risk.new_symbols = half_risk_until(self.state, self.symbols, self.settings.market.added_symbols,
                                                  engine.now(), self.settings.scaling.new_symbol_days)  # R5.3
        self._restore(report)
        for ev in report.events:
            engine.record_event(ev["severity"], ev["code"], ev["message"], ev["details"])
            log.warning("reconcile %s: %s", ev["code"], ev["message"])
        engine.record_event("info", "SESSION_STARTED", f"live session started at rung 1 (risk "
                            f"{engine.risk.config.risk_per_trade:.2%}, exposure cap "
                            f"{engine.risk.config.exposure_cap:.0%}), state {engine.risk.state}",
                            {"restart": not first_start, "previous_session": self.state.session_id})
        self.state.session_id = self.session_id
        if self.options.control_port is not None:
            self.control = serve_with_dashboard(self, self.options.control_port)  # + the control API's routes
            log.warning("dashboard and control API on %s", self.control.url)
        marker = session_marker(self.settings.data_dir)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"pid": os.getpid(), "session_id": self.session_id,
                                      "control_url": self.control.url if self.control is not None else None}))
        self._flush()

    def _build_engine(self, instruments: dict[str, Instrument], cash: float) -> Engine:
        first = rung(0, self.settings.scaling.rungs)
        params = build_params(self.settings.strategy.name, self.settings.strategy.params)
        market = self.settings.market
        risk = RiskEngine(RiskConfig(
            allowed_symbols=(*market.allowed_symbols, *market.added_symbols), instruments=instruments,
            risk_per_trade=first.risk_per_trade, exposure_cap=first.exposure_cap, sizing_mode="risk",
            fee_rate=self.settings.paper.taker_fee, limits=self.settings.risk,  # live: controls always on
            hard_caps=True,  # R5.5 at the point of sizing, whatever the rung says
        ))
        risk.restore({**self.state.risk, "state": self.state.trading_state})  # SAFE_MODE/HALTED/de-risk survive
        saved = self.state.risk.get("breakers")
        risk.breakers = (CircuitBreakers.from_state(self.settings.breakers, saved) if saved
                         else CircuitBreakers(self.settings.breakers))
        return Engine(session_id=self.session_id, mode=Mode.LIVE,
                      strategies={s: make_strategy(self.settings.strategy.name, params) for s in self.symbols},
                      instruments=instruments, risk=risk, broker=self.broker, portfolio=Portfolio(cash),
                      config_hash=self.chash, timeframe=self.settings.market.timeframe,
                      strategy_name=self.settings.strategy.name)

    def _restore(self, report: Any) -> None:
        engine = self.engine
        if engine is None:
            return
        for sym in self.symbols:
            engine.restore(report.positions.get(sym), report.orders.get(sym, []), sym,
                           known=[o for o, _ in report.fills.get(sym, [])])
            fills = [f for _, f in report.fills.get(sym, [])]
            if fills:
                engine.book(sym, fills)
            if sym in report.repairs:
                engine.set_position_qty(sym, report.repairs[sym])

    # --- trading -------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> LiveSummary:
        """Trade bar by bar until ``stop`` is set, the duration passes or max_bars are done."""
        stop = stop or threading.Event()
        deadline = time.monotonic() + self.options.duration_s if self.options.duration_s else None
        reason = "stopped"
        try:
            while True:
                if stop.is_set():
                    reason = "stop requested"
                    break
                if self._check_halt():  # the emergency stop owns the account now
                    reason = "emergency stop"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "duration reached"
                    break
                if self.options.max_bars is not None and self.bars >= self.options.max_bars:
                    reason = "max bars reached"
                    break
                if not self.step():
                    stop.wait(self.options.poll_interval_s)
        except RampartError as exc:
            reason = f"error: {exc}"
            log.error("live session %s stopped on error: %s", self.session_id, exc)
            if self.engine is not None and not self.engine.result.errors:
                self.engine.record_error(exc)
        finally:
            summary = self.shutdown(reason)
        return summary

    def step(self) -> bool:
        """One poll: when a new closed bar is there, run it through the engine and flush. True if traded."""
        if self.engine is None or self.feed is None:
            raise RampartError("start() the session before stepping it")
        try:
            sets = self.feed.poll()
        except ExchangeError as exc:  # transient: the bar will be there on the next poll
            self.engine.record_event("warning", "FEED_UNAVAILABLE", str(exc)[:300])
            return False
        if self.observers:
            for line in call_observers(self, self.observers, "on_poll"):
                self.engine.record_event("error", "OBSERVER_FAILED", line)
        if self._apply_commands() and sets is None:
            self._flush()  # an override or a halt shows at once, not at the next bar
        if sets is None:
            return False
        self._bar_at = time.time()
        try:
            self.bars += self.engine.advance(sets)
            if any(o.tag is not OrderTag.STOP for b in self.engine.books for o in b.working):
                self.engine.collect_fills()  # book this bar's market fills now: the protective stop goes on at once
        except TradingHalted:
            return False  # the run loop sees the HALT flag next and stops as "emergency stop"
        if self.bars // self.options.reconcile_every > self._reconciled:
            self._reconciled = self.bars // self.options.reconcile_every
            self._check_reconcile()
        self._flush()
        return True

    def status(self) -> dict[str, Any]:
        """What the control API and dashboard show: state, rung, limits, breakers, latency, positions."""
        engine = self.engine
        if engine is None:
            return {"session_id": self.session_id, "started": False}
        risk = engine.risk
        marks = {b.symbol: b.close[-1] for b in engine.books if b.close}
        equity = engine.result.equity[-1] if engine.result.equity else engine.portfolio.cash
        return {
            "session_id": self.session_id, "mode": "live", "exchange": self.venue.name,
            "state": risk.state.value, "rung": self.state.rung + 1, "risk_per_trade": risk.risk_per_trade,
            "exposure_cap": risk.config.exposure_cap, "derisked": risk.derisked, "latency_s": risk.latency,
            "latency_paused": risk.latency_paused, "bars": self.bars,
            "breakers": risk.breakers.status(engine.now()) if risk.breakers is not None else [],
            "equity": equity, "cash": engine.portfolio.cash,
            "sod_equity": risk.sod_equity if math.isfinite(risk.sod_equity) else None,
            "today_pnl": equity - risk.sod_equity if math.isfinite(risk.sod_equity) else None,
            "positions": {s: {"qty": p.qty, "avg_price": p.avg_price, "stop": p.stop, "mark": marks.get(s),
                              "unrealized": (marks[s] - p.avg_price) * p.qty if s in marks else None}
                          for s, p in engine.portfolio.positions.items()},
            "last_candle_ts": self.feed.last_ts if self.feed is not None else None,  # data freshness
            "last_bar_at": self._bar_at, "connectivity": dict(self.connectivity),
        }

    def _note_call(self, record: CallRecord) -> None:
        """Every exchange call (broker listener): when one last succeeded, and the last failure."""
        if record.error is None:
            self.connectivity["last_ok_at"] = record.started + record.latency_s
        else:
            self.connectivity.update(last_error_at=record.started + record.latency_s, last_error=record.error[:300])

    def halt_entries(self, code: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Thread-safe: put the session in SAFE_MODE (no new entries; exits and stops keep working) at the next
        poll, with ``code`` (e.g. ``SUSPICIOUS_ORDER``) recorded as a critical event. Used by suspicious-activity
        detection (R8.4) and alerts; an operator's resume lifts it."""
        self._requests.put({"action": "halt-entries", "code": code, "reason": reason, "evidence": evidence or {}})

    def _apply_requests(self) -> bool:
        engine, applied = self.engine, False
        while engine is not None:
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                break
            applied = True
            ts = engine.now()
            engine.record_event("critical", req["code"], req["reason"], {"evidence": req["evidence"],
                                                                          "action": "entries halted"}, ts=ts)
            if engine.risk.state is TradingState.ACTIVE:
                act = engine.risk.transition(TradingState.SAFE_MODE, f"{req['code']}: {req['reason']}", ts)
                if act is not None:
                    engine.record_action(act)
        return applied

    def _apply_commands(self) -> bool:
        """Operator overrides handed over by ``apply_override`` (already authorized and recorded), and
        requests from other threads. True when anything was applied."""
        engine = self.engine
        if engine is None:
            return False
        applied = self._apply_requests()
        risk = engine.risk
        for path, cmd in pending_commands(self.settings.data_dir):
            applied = True
            action, ts = cmd.get("action"), engine.now()
            if action == "resume" and risk.state is not TradingState.ACTIVE:
                act = risk.transition(TradingState.ACTIVE, f"resumed by {cmd.get('who')}: {cmd.get('reason')}", ts)
                if act is not None:
                    engine.record_action(act)
            elif action == "reset-derisk":
                risk.derisked = False
                equity = engine.result.equity[-1] if engine.result.equity else engine.portfolio.cash
                risk.new_high(equity)  # the high-water mark starts again from here
            elif action == "clear-breaker" and risk.breakers is not None:
                risk.breakers.clear(str(cmd.get("breaker")), ts)
            elif action == "halt-entries":  # a login lockout seen by `rampart dashboard` in another process
                self.halt_entries(str(cmd.get("code")), str(cmd.get("reason")), cmd.get("evidence"))
                self._apply_requests()  # now, not at the next poll
            elif action == "approve-scaling":  # authorized and checked by apply_override (R2.5, R6.3)
                code, message, details = apply_to_risk(risk, self.state, cmd.get("scaling") or {},
                                                       self.settings.scaling.rungs)
                engine.record_event("warning", code, message, details)
            engine.record_event("warning", "OVERRIDE_APPLIED", f"{action} by {cmd.get('who')}: {cmd.get('reason')}",
                                cmd)
            path.unlink(missing_ok=True)
        return applied

    def _check_reconcile(self) -> None:
        """Compare with the exchange. The books and the state file are brought up to date first: fills of orders
        sent this bar are booked and saved, so a fresh fill is not mistaken for a mismatch (nor swallowed)."""
        if self.engine is not None:
            self.engine.collect_fills()
            self._save_state()
        report = reconcile(self.broker, self.state, self.symbols)
        for ev in report.events:
            if self.engine is not None and ev["code"] != "ORDER_NEVER_SENT":
                self.engine.record_event(ev["severity"], ev["code"], ev["message"], ev["details"])

    def shutdown(self, reason: str) -> LiveSummary:
        """No new entries; protective stops stay on the exchange; rows and state flushed; session closed."""
        engine = self.engine
        if engine is None:
            return LiveSummary(self.session_id, 0, 0, 0.0, 0.0, self.state.trading_state, reason)
        if self._halted:  # no order, no state write: the emergency stop has flattened and set HALTED itself
            engine.risk.state = TradingState.HALTED
        else:
            try:
                engine.collect_fills()  # the last bar's orders may have filled since the last poll
            except RampartError as exc:
                engine.record_event("error", "FINAL_SYNC_FAILED", f"fills of the last bar not collected: {exc}")
            self._apply_requests()  # a halt asked for at the very end (e.g. the auth error that ended us) persists
        engine.record_event("info", "SESSION_STOPPED", f"live session stopped: {reason}; protective stops stay "
                            "on the exchange")
        res = engine.finish()
        self._flush()
        for line in call_observers(self, self.observers, "on_stop"):
            log.error("observer failed at stop: %s", line)
        session_marker(self.settings.data_dir).unlink(missing_ok=True)
        if self.control is not None:
            self.control.stop()
        self.store.finish_session(self.session_id, status="failed" if res.errors else "completed",
                                  ended_at=datetime.now(UTC), final_equity=res.final_equity,
                                  error="; ".join(res.errors)[:4000] or None, frames={})
        net = sum(t.net_pnl for t in res.trades)
        return LiveSummary(self.session_id, self.bars, len(res.trades), net, res.final_equity,
                           engine.risk.state.value, reason)

    # --- durability ----------------------------------------------------------------------------------------
    def _on_latency(self, what: str, seconds: float) -> None:
        """Every exchange call feeds the latency monitor (R4.4)."""
        engine = self.engine
        if engine is not None:
            action = engine.risk.on_latency(seconds, engine.now())
            if action is not None:
                engine.record_action(action)

    def _journal(self, order: Order) -> None:
        """Called by the broker before an order is sent: after a crash, reconciliation knows to look for it.
        Once an emergency stop has raised the HALT flag, nothing more is sent."""
        if self._check_halt():
            raise TradingHalted(f"HALTED by an emergency stop: {order.client_order_id} not sent")
        self.state.remember_order(order)
        save_state(self.state_path, self.state)

    def _flush(self) -> None:
        """This bar's new rows into DuckDB (one transaction) and the state file."""
        engine = self.engine
        if engine is None:
            return
        res = engine.result
        for ts, code, message in self.broker.notices:
            severity = "warning" if code in TRANSIENT_NOTICES else "error"
            engine.record_event(severity, code, message, ts=ts)
        self.broker.notices.clear()
        frames = session_frames(res)
        new: dict[str, pl.DataFrame] = {}
        for table in ("fills", "trades", "decisions", "events", "equity"):
            frame = frames.get(table)
            if frame is None:
                continue
            done = self._written.get(table, 0)
            if frame.height > done:
                new[table] = frame.slice(done).with_columns(pl.lit(self.session_id).alias("session_id"))
                self._written[table] = frame.height
        changed = [o for o in res.orders if self._order_marks.get(o.client_order_id) != (o.status, o.filled_qty)]
        if changed:
            new["orders"] = pl.DataFrame([o.to_row() for o in changed], infer_schema_length=None).with_columns(
                pl.lit(self.session_id).alias("session_id"))
            self._order_marks.update({o.client_order_id: (o.status, o.filled_qty) for o in changed})
        if "trades" in new:
            new["trades"] = new["trades"].with_columns(pl.lit(Mode.LIVE.value).alias("mode"))
        self.store.append_many(new)
        self._save_state()
        if self.observers:
            for line in call_observers(self, self.observers, "on_flush", new):
                engine.record_event("error", "OBSERVER_FAILED", line)

    def _check_halt(self) -> bool:
        if not self._halted and read_halt(self.settings.data_dir) is not None:
            self._halted = True
        return self._halted

    def _save_state(self) -> None:
        engine = self.engine
        if engine is None or self._check_halt():  # checked right before writing: the stop's HALTED state wins
            return
        self.state.trading_state = engine.risk.state.value
        self.state.risk = engine.risk.to_state()
        self.state.orders = {}
        for bar in engine.books:
            self.state.remember_position(bar.position, bar.symbol)
            for order in bar.working:
                self.state.remember_order(order)
        save_state(self.state_path, self.state)


def summary_text(s: LiveSummary) -> str:
    return (f"Live session {s.session_id[:8]}: {s.bars} bars, {s.trades} closed trades, net P&L {s.net_pnl:+,.2f} "
            f"USDT, equity {s.equity:,.2f}, state {s.state} ({s.stopped_because})")


__all__ = ["LiveOptions", "LiveSession", "LiveSummary", "PreflightFailed", "summary_text"]
