"""LiveSession: reconcile, then the engine bar by bar on the exchange, until told to stop.

The loop is the paper engine's; only the broker (``CcxtBroker``) and the feed (closed exchange candles) differ. It
always starts on the first rung of the ladder (R2.1, R6.4) and keeps SAFE_MODE/HALTED from the saved state. Its
parts: ``preflight`` (may it trade at all), the ``Recorder`` (rows, state file, order journal), the ``Inbox``
(requests from other threads and processes) and ``LiveView`` (what observers see). The composition root
(``core.node``) builds it, attaches observers and serves the dashboard. Stopping (SIGTERM, Prefect cancellation, the
duration) takes no new entries, leaves protective stops on the exchange and flushes everything.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.build import Sizing, build_engine, config_hash, history_bars, new_session_id
from core.config import Settings
from core.config.ladder import rung
from core.domain import Instrument, Mode, OrderTag, Side, TradingState
from core.engine import Engine
from core.errors import ExchangeError, RampartError, RateLimited, TradingHalted
from core.events import (
    AccountChecked,
    ClockResynced,
    Event,
    EventCode,
    Problem,
    Reconciled,
    SessionStarted,
    SessionStopped,
)
from core.execution.ccxt_broker import CallRecord, CcxtBroker
from core.live.feed import ExchangeFeed
from core.live.inbox import Inbox
from core.live.preflight import PreflightFailed, preflight
from core.live.protect import Protector
from core.live.reconcile import reconcile
from core.live.recorder import Recorder
from core.live.view import LiveView
from core.market.candles import base_asset
from core.portfolio import Portfolio
from core.result import session_row
from core.scaling.symbols import half_risk_until
from core.security.credentials import Credentials, KeyHolder
from core.state.commands import session_marker
from core.state.halt import read_halt
from core.state.live import LiveState, load_state
from core.store import Store
from core.venue import Venue
from core.view import call_observers

log = logging.getLogger("rampart.live")
beat = logging.getLogger("rampart.heartbeat")  # one INFO line per bar; the CLI shows it on the terminal

STARTUP_WAIT_S = 65.0  # preflight and start wait out a 429's Retry-After (a weight window is a minute)
EXIT_PROTECT_S = 15.0  # a stopping session places missing stops again for this long
EXIT_PROTECT_POLL_S = 0.5
CLOCK_NEWS_MS = 250  # a resynchronisation that moves the offset this much or more is recorded


@dataclass(frozen=True)
class LiveOptions:
    poll_interval_s: float = 0.25
    duration_s: float | None = None
    max_bars: int | None = None
    reconcile_every: int = 50
    control_port: int | None = None  # serve the control API on 127.0.0.1 (0 = a free port); None = off
    order_poll_s: float | None = None  # between bars, order state is refreshed this often (None: settings.live)


@dataclass
class LiveSummary:
    session_id: str
    bars: int
    trades: int
    net_pnl: float
    equity: float
    state: str
    stopped_because: str
    mode: str = "live"
    open_positions: tuple[str, ...] = ()  # what stays open (live: on the exchange), with its stop


class LiveSession:
    """One live session on one account. Build, ``preflight()``, ``start()``, then ``run(stop_event)``."""

    mode = Mode.LIVE  # forward paper trading (core.live.forward) runs this loop with simulated fills

    def __init__(self, settings: Settings, venue: Venue, broker: CcxtBroker, keys: KeyHolder,
                 options: LiveOptions | None = None, store: Store | None = None,
                 state_path: Path | None = None) -> None:
        self.settings = settings
        self.venue = venue
        self.options = options or LiveOptions()
        self.broker = broker
        self.keys = keys  # the credentials in use (key rotation swaps them)
        self.store = store or Store(settings.db_path)
        self.state_path = state_path or venue.state_path(settings.data_dir)  # one file per account
        self.chash = config_hash(settings)
        self.session_id = new_session_id()
        self.symbols = list(settings.market.symbols)
        self.state = LiveState()
        self.engine: Engine | None = None
        self.feed: ExchangeFeed | None = None
        self.bars = 0
        self._reconciled = 0
        self._halted = False
        self.inbox = Inbox(settings.data_dir)
        self.recorder = Recorder(self.store, self.session_id, self.state_path, self.state, self._check_halt)
        self.broker.before_submit = self.recorder.journal
        self.observers: list[Any] = []  # SessionObservers (core.view), attached by the composition root
        self.quote: Callable[[str], dict[str, Any]] | None = None  # the spread at a decision (decision log)
        self.control: Any = None  # the control API/dashboard server the composition root serves for it
        self.view = LiveView(self)
        self.protector: Protector | None = None
        self.monotonic: Callable[[], float] = time.monotonic  # the between-bar timers' clock (tests drive it)
        self._orders_at = 0.0  # when order state was last refreshed (monotonic)
        self._clock_at = 0.0  # when the clock's offset to the exchange was last measured (monotonic)
        self.account: AccountChecked | None = None  # what preflight found on the account (R9.8)
        self._backoff_said = 0.0  # the back-off last reported (its end): said once, not at every poll
        # for status(): exchange connectivity (last good call, last failure) and when the last new bar came
        self.connectivity: dict[str, Any] = {"last_ok_at": None, "last_error_at": None, "last_error": None}
        self.broker.listeners.append(self._note_call)
        self._bar_at: float | None = None

    @property
    def marker_path(self) -> Path:
        """The file that tells other processes this session runs (and where its control API is): the emergency
        stop, overrides and approvals look for it."""
        return session_marker(self.settings.data_dir)

    @property
    def client(self) -> Any:
        """The venue's ccxt client the broker talks through."""
        return self.broker.client

    @property
    def credentials(self) -> Credentials | None:
        """The key pair in use now (key rotation swaps it)."""
        return self.keys.credentials

    # --- before trading ------------------------------------------------------------------------------------
    def preflight(self) -> dict[str, Instrument]:
        """Every check before trading; raises PreflightFailed naming each failure. A short back-off the exchange
        asks for (429 Retry-After) is waited out here; in the loop it is a poll skipped."""
        self.broker.wait_limited_s = STARTUP_WAIT_S
        cleared = preflight(self.settings, self.venue, self.broker, self.store, self.chash, self.keys.credentials,
                            self.keys.problem)
        self.account = cleared.account
        return cleared.instruments

    def start(self, instruments: dict[str, Instrument]) -> None:
        """Open the session, reconcile with the exchange before any order, restore positions and stops."""
        self.state = self.recorder.state = load_state(self.state_path)
        self.broker.sync_clock()  # signed requests carry the exchange's time from the first one on (R9.8)
        self._clock_at = self.monotonic()
        first_start = self.state.session_id is None
        if first_start:  # holdings already on the account are not Rampart's to manage
            totals = self.broker.read("fetch_balance", self.broker.client.fetch_balance).get("total", {})
            self.state.baseline = {base_asset(s): float(totals.get(base_asset(s)) or 0.0) for s in self.symbols}
        self.state.rung = 0  # R6.4: every (re)start trades at the first rung until an approval raises it
        report = reconcile(self.broker, self.state, self.symbols)
        engine = self._build_engine(instruments, report.cash)
        engine.clock = self.venue.engine_clock()  # SPEC: wall clock on a real exchange, the sandbox's own time
        engine.max_signal_age_ms = int(self.settings.live.max_signal_age_s * 1000)
        engine.quote = self.quote
        self.engine = engine
        self.broker.on_latency = self._on_latency
        self.broker.on_error = engine.on_api_error
        self.store.begin_session({**session_row(self.session_id, Mode.LIVE, self.settings, self.chash,
                                                datetime.now(UTC), self.venue), "starting_equity": report.cash})
        self.feed = ExchangeFeed(self.broker, self.symbols, self.settings.market.timeframe,
                                 history_bars(self.settings))
        sets = self.feed.closed_window()  # the strategies' history: they trade from the next closed bar on
        self._bar_at = time.time()
        engine.start_live(sets)
        engine.risk.new_symbols = half_risk_until(self.state, self.symbols, self.settings.market.added_symbols,
                                                  engine.now(), self.settings.scaling.new_symbol_days)  # R5.3
        self._restore(report)
        self._flush()  # what ended while away is stored before an order of this session journals a state without it
        self.protector = Protector(engine, self.broker, self.state, self.settings.risk.protect_within_s)
        self.protector.check()  # R9.3: a restart covers every position with its stop before anything else
        for ev in report.events:
            engine.emit(ev)
            log.warning("reconcile %s: %s", ev.code, ev.message)
        engine.emit(Event.of(EventCode.SESSION_STARTED, SessionStarted(
            restart=not first_start, previous_session=self.state.session_id,
            risk_per_trade=engine.risk.config.risk_per_trade, exposure_cap=engine.risk.config.exposure_cap,
            state=engine.risk.state.value)))
        if self.account is not None:
            engine.emit(Event.of(EventCode.ACCOUNT_CHECKED, self.account))
        self.state.session_id = self.session_id
        self.broker.wait_limited_s = 0.0  # from here on a back-off skips polls: the loop stays responsive
        self._flush()

    def _build_engine(self, instruments: dict[str, Instrument], cash: float) -> Engine:
        first = rung(0, self.settings.scaling.rungs)
        return build_engine(self.settings, Mode.LIVE, self.broker, Portfolio(cash), instruments=instruments,
                            sizing=Sizing(first.risk_per_trade, first.exposure_cap, "risk", hard_caps=True),
                            controls=True,  # live: the controls always act; R5.5 clamps at the point of sizing
                            saved_risk={**self.state.risk, "state": self.state.trading_state},
                            session_id=self.session_id)

    def _restore(self, report: Any) -> None:
        engine = self.engine
        if engine is None:
            return
        engine.portfolio.dust.update({s: float(q) for s, q in self.state.dust.items() if s in self.symbols})
        for book in engine.books:
            book.dust = engine.portfolio.dust.get(book.symbol, 0.0)
        for sym in self.symbols:
            engine.restore(report.positions.get(sym), report.orders.get(sym, []), sym,
                           known=[*(o for o, _ in report.fills.get(sym, [])), *report.ended.get(sym, [])])
            # in the order they happened, a buy before a sell at the same time: an entry's fill, then its stop's
            fills = sorted((f for _, f in report.fills.get(sym, [])), key=lambda f: (f.ts, f.side is not Side.BUY))
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
        self._sync_clock()
        try:
            sets = self.feed.poll()
        except RateLimited as exc:  # nothing was sent: said once per back-off, not at every poll
            if exc.until != self._backoff_said:
                self._backoff_said = exc.until
                self.engine.emit(Event.of(EventCode.FEED_UNAVAILABLE, Problem(error=str(exc)[:300])))
            return False
        except ExchangeError as exc:  # transient: the bar will be there on the next poll
            self.engine.emit(Event.of(EventCode.FEED_UNAVAILABLE, Problem(error=str(exc)[:300])))
            return False
        for line in call_observers(self.view, self.observers, "on_poll"):
            self.engine.emit(Event.of(EventCode.OBSERVER_FAILED, Problem(error=line)))
        applied = self.inbox.apply(self.engine, self.state, self.settings)
        if sets is None:
            refreshed = self._refresh_orders()
            if applied or refreshed:
                self._flush()  # an override, a halt or a stop's fill shows at once, not at the next bar
            return False
        self._bar_at = time.time()
        try:
            budget = None if self.options.max_bars is None else self.options.max_bars - self.bars
            self.bars += self.engine.advance(sets, budget)
            if any(o.tag is not OrderTag.STOP for b in self.engine.books for o in b.working):
                self.engine.collect_fills()  # book this bar's market fills now: the protective stop goes on at once
            self._protect()
        except TradingHalted:
            return False  # the run loop sees the HALT flag next and stops as "emergency stop"
        if self.bars // self.options.reconcile_every > self._reconciled:
            self._reconciled = self.bars // self.options.reconcile_every
            self._check_reconcile()
        self._flush()
        beat.info("%s", self.heartbeat())
        return True

    def heartbeat(self) -> str:
        """One line per bar for the terminal: the bar, equity, each position and its stop, the state, latency."""
        engine = self.engine
        if engine is None or not engine.books or not engine.books[0].ts:
            return "no bar yet"
        when = datetime.fromtimestamp(engine.books[0].ts[-1] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        marks = {b.symbol: b.close[-1] for b in engine.books if b.close}
        parts = [f"bar {when}", f"equity {engine.portfolio.equity(marks):,.2f}"]
        parts += [position_text(b) for b in engine.books]
        parts += [engine.risk.state.value, f"latency {engine.risk.latency * 1000:.0f} ms"]
        return " · ".join(parts)

    def open_lines(self) -> tuple[str, ...]:
        """What stays open when the session stops: each position and the stop that covers it (R9.3)."""
        engine = self.engine
        if engine is None:
            return ()
        return tuple(position_text(b, stopping=True) for b in engine.books if b.position is not None)

    def _refresh_orders(self) -> bool:
        """Between bars, every ``order_poll_s``: poll the working orders, book their fills, keep every position
        protected (R9.3, R9.6). True when anything new was recorded."""
        engine = self.engine
        poll = self.options.order_poll_s if self.options.order_poll_s is not None else self.settings.live.order_poll_s
        if engine is None or self.monotonic() - self._orders_at < poll:
            return False
        if not any(b.working or b.position is not None for b in engine.books):
            return False
        before = (len(engine.result.fills), len(engine.result.events), len(engine.result.orders))
        try:
            engine.collect_fills()
            if len(engine.result.fills) != before[0]:
                engine.mark_live()  # a stop's fill reaches the loss limits now, not at the next bar (R9.6)
            self._protect()
        except TradingHalted:
            return False
        return (len(engine.result.fills), len(engine.result.events), len(engine.result.orders)) != before

    def _sync_clock(self) -> None:
        """Every ``live.clock_sync_s``: measure the offset to the exchange's clock again, so a clock that drifts
        mid-session never makes an order fail (a -1021 answer also resynchronises at once)."""
        engine = self.engine
        if engine is None or self.monotonic() - self._clock_at < self.settings.live.clock_sync_s:
            return
        self._clock_at = self.monotonic()
        before = self.broker.clock_offset_ms
        offset = self.broker.sync_clock()
        if offset is not None and abs(offset - before) >= CLOCK_NEWS_MS:
            engine.emit(Event.of(EventCode.CLOCK_RESYNCED, ClockResynced(offset_ms=offset, previous_ms=before)))

    def _protect(self) -> None:
        self._orders_at = self.monotonic()
        engine = self.engine
        if engine is None or self.protector is None or self._check_halt():
            return
        self.protector.check()
        if any(o.tag is not OrderTag.STOP for b in engine.books for o in b.working):
            engine.collect_fills()  # a market sell the invariant sent is booked at once

    def status(self) -> dict[str, Any]:
        """What the control API and dashboard show: state, rung, limits, breakers, latency, positions."""
        engine = self.engine
        if engine is None:
            return {"session_id": self.session_id, "started": False}
        risk = engine.risk
        marks = {b.symbol: b.close[-1] for b in engine.books if b.close}
        equity = engine.portfolio.equity(marks)  # now: a fill between two bars shows at once (R9.6)
        return {
            "session_id": self.session_id, "mode": self.mode.value, "exchange": self.venue.name,
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

    def halt_entries(self, code: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """Thread-safe: SAFE_MODE at the next poll (see ``Inbox.halt_entries``)."""
        self.inbox.halt_entries(code, reason, evidence)

    def _note_call(self, record: CallRecord) -> None:
        """Every exchange call (broker listener): when one last succeeded, and the last failure."""
        if record.error is None:
            self.connectivity["last_ok_at"] = record.started + record.latency_s
        else:
            self.connectivity.update(last_error_at=record.started + record.latency_s, last_error=record.error[:300])

    def _check_reconcile(self) -> None:
        """Compare with the exchange. The books, the store and the state file are brought up to date first: fills
        of orders sent this bar are booked and stored, so a fresh fill is not mistaken for a mismatch (nor
        swallowed). Rows before the state file, always: the state file forgets an order that ended, so a kill
        between the two must find it in the store (the chaos bench lost a step's orders and fills there)."""
        if self.engine is not None:
            self.engine.collect_fills()
            self._flush()
        try:
            report = reconcile(self.broker, self.state, self.symbols)
        except ExchangeError as exc:  # a back-off or a failing exchange: compared again at the next occasion
            self._reconciled -= 1
            if self.engine is not None:
                self.engine.emit(Event.of(EventCode.RECONCILE_INCOMPLETE, Reconciled(
                    order=None, symbol=None, extra={"error": str(exc)[:300]})))
            return
        for ev in report.events:
            if self.engine is not None and ev.code is not EventCode.ORDER_NEVER_SENT:
                self.engine.emit(ev)

    def shutdown(self, reason: str) -> LiveSummary:
        """No new entries; protective stops stay on the exchange; rows and state flushed; session closed."""
        engine = self.engine
        if engine is None:
            return LiveSummary(self.session_id, 0, 0, 0.0, 0.0, self.state.trading_state, reason, self.mode.value)
        if self._halted:  # no order, no state write: the emergency stop has flattened and set HALTED itself
            engine.risk.state = TradingState.HALTED
        else:
            try:
                engine.collect_fills()  # the last bar's orders may have filled since the last poll
            except RampartError as exc:
                engine.emit(Event.of(EventCode.FINAL_SYNC_FAILED, Problem(error=str(exc))))
            self._cover_before_exit()
            self.inbox.apply_requests(engine)  # a halt asked for at the very end (e.g. the auth error) persists
        engine.emit(Event.of(EventCode.SESSION_STOPPED, SessionStopped(reason=reason, mode=self.mode.value)))
        res = engine.finish()
        self._flush()
        for line in call_observers(self.view, self.observers, "on_stop"):
            log.error("observer failed at stop: %s", line)
        self.store.finish_session(self.session_id, status="failed" if res.errors else "completed",
                                  ended_at=datetime.now(UTC), final_equity=res.final_equity,
                                  error="; ".join(res.errors)[:4000] or None, frames={})
        net = sum(t.net_pnl for t in res.trades)
        return LiveSummary(self.session_id, self.bars, len(res.trades), net, res.final_equity,
                           engine.risk.state.value, reason, self.mode.value, self.open_lines())

    def _cover_before_exit(self) -> None:
        """R9.3 holds after the session too: every position it leaves has its stop on the exchange. A stop refused
        or unanswered under exchange faults (a 429, a 5xx, a lost response) is asked for and placed again, for up
        to ``EXIT_PROTECT_S``; what is still uncovered then is a critical event and shows in the summary."""
        engine, protector = self.engine, self.protector
        if engine is None or protector is None or self._check_halt():
            return
        deadline = time.monotonic() + EXIT_PROTECT_S  # wall time: tests may hold the session's own clock
        while True:
            try:
                protector.check()
                if any(o.tag is not OrderTag.STOP for b in engine.books for o in b.working):
                    engine.collect_fills()  # a market sell the invariant sent
            except RampartError as exc:
                log.warning("protection before exit: %s", exc)
            uncovered = protector.uncovered()
            if not uncovered:
                protector.check()  # records PROTECTION_RESTORED for a stop placed just now (no request)
                return
            if time.monotonic() >= deadline:
                protector.report_uncovered(f"stopping without a stop known to be on the exchange after "
                                           f"{EXIT_PROTECT_S:g} s; the next start places it first")
                return
            time.sleep(EXIT_PROTECT_POLL_S)
            try:
                engine.collect_fills()  # answers for stops whose outcome was unknown
            except RampartError as exc:
                log.warning("protection before exit: %s", exc)

    # --- durability ----------------------------------------------------------------------------------------
    def _on_latency(self, what: str, seconds: float) -> None:
        """Every exchange call feeds the latency monitor (R4.4)."""
        engine = self.engine
        if engine is not None:
            action = engine.risk.on_latency(seconds, engine.now())
            if action is not None:
                engine.record_action(action)

    def _flush(self) -> None:
        """This bar's new rows into DuckDB (one transaction) and the state file, then the observers."""
        engine = self.engine
        if engine is None:
            return
        brokers = (self.broker,) if engine.broker is self.broker else (self.broker, engine.broker)
        new = self.recorder.flush(engine, *brokers)
        for line in call_observers(self.view, self.observers, "on_flush", new):
            engine.emit(Event.of(EventCode.OBSERVER_FAILED, Problem(error=line)))

    def _check_halt(self) -> bool:
        if not self._halted and read_halt(self.settings.data_dir) is not None:
            self._halted = True
        return self._halted


def summary_text(s: LiveSummary) -> str:
    what = "Forward paper session" if s.mode == "paper" else "Live session"
    where = "in the simulated account" if s.mode == "paper" else "on the exchange"
    head = (f"{what} {s.session_id[:8]}: {s.bars} bars, {s.trades} closed trades, net P&L {s.net_pnl:+,.2f} "
            f"USDT, equity {s.equity:,.2f}, state {s.state} ({s.stopped_because})")
    lines = [f"  stays open {where}: {line}" for line in s.open_positions] or [f"  nothing stays open {where}"]
    return "\n".join([head, *lines])


def position_text(book: Any, stopping: bool = False) -> str:
    """``BTCUSDT 0.00299 @ 66,694.42, stop 66,424.33`` (or ``flat``); ``stopping``: says which order holds it."""
    pos = book.position
    if pos is None:
        return f"{book.symbol} flat"
    stops = [o for o in book.working if o.tag is OrderTag.STOP and o.is_open]
    if stops:
        stop = f"stop {stops[0].stop_price:,.2f}" + (f" for {stops[0].qty:g} ({stops[0].client_order_id})"
                                                       if stopping else "")
    else:
        stop = "NO STOP WORKING" if stopping else "no stop"
    return f"{book.symbol} {pos.qty:g} @ {pos.avg_price:,.2f}, {stop}"


__all__ = ["LiveOptions", "LiveSession", "LiveSummary", "PreflightFailed", "summary_text"]
