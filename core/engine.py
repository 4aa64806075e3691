"""The trading engine: one loop for backtest, paper and live — only the broker differs (R1.1).

Per bar, in this order: the broker reports fills (market orders at the open, stops and limits intrabar),
the portfolio books them and protective stops are placed, equity is marked at the close, the strategy's series
grow by that bar, then each symbol's strategy decides and the risk engine sizes or refuses every signal.
Decisions, orders, fills, trades and the equity curve are kept in memory and handed to the store as frames.

One bar model in every mode (R10.3, R10.4): a symbol's ``Book`` holds its candles and indicators — the whole run
in backtest and paper, a history that grows by each closed candle live — and the strategy sees only its
``Bar``, whose series end at the bar being decided.
"""

from __future__ import annotations

import gc
import math
import time
import traceback
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.domain import (
    ACCEPTED,
    BUY,
    MARKET,
    REJECTED,
    SELL,
    STOP,
    TAG_ENTRY,
    TAG_EXIT,
    TAG_STOP,
    Instrument,
    Mode,
    Order,
    OrderDenied,
    OrderFilled,
    Position,
    Reason,
    Signal,
    dt_to_ms,
    ms_to_dt,
)
from core.errors import TradingHalted
from core.events import DustLeft, Event, EventCode, SessionError
from core.execution.book import Book, series_stuck
from core.execution.broker import Broker, client_order_id
from core.market.candles import CandleSet, timeframe_ms
from core.portfolio import Portfolio
from core.quiet import Pending, quiet, settle
from core.result import TRADE_SCHEMA, SessionResult
from core.risk.breakers import BreakerTripped
from core.risk.engine import EntryApproved, RiskEngine
from core.strategy.base import Strategy

PROGRESS_CHUNK = 50_000  # bars between two progress reports of a long run
_NO_QUOTE: dict[str, Any] = {}  # a decision's quote when no exchange is asked (replays): read, never written


class Engine:
    """Runs strategies over aligned candles through a RiskEngine and a Broker, booking into a Portfolio."""

    def __init__(self, *, session_id: str, mode: Mode, strategies: dict[str, Strategy],
                 instruments: dict[str, Instrument], risk: RiskEngine, broker: Broker, portfolio: Portfolio,
                 config_hash: str, timeframe: str, strategy_name: str, record_decisions: bool = True) -> None:
        self.session_id = session_id
        self._id8 = session_id[:8]  # decision ids start with it
        self.risk = risk
        self.broker = broker
        self.portfolio = portfolio
        self.strategies = strategies
        self.instruments = instruments
        self.record_decisions = record_decisions
        self.timeframe_ms = timeframe_ms(timeframe)
        self.books: list[Book] = []
        self._orders: dict[str, Order] = {}
        self._attached: dict[str, Order] = {}  # entry client id -> the protective stop sent with it (order lists)
        self._sells = 0  # market sells the protection invariant made (their client ids count them)
        self.pending_marks: list[Pending] = []  # a replay's equity marks not written yet (core.quiet.settle)
        self._i: int | None = None
        self._start_ts: int | None = None
        self.clock: Callable[[], int] | None = None  # live on a real exchange: wall clock; else bar time
        # live: an entry decided on a bar this much older than the newest closed bar of the same poll (a loop
        # catching up after an outage) is refused — the market has moved on since; None = never (replays)
        self.max_signal_age_ms: int | None = None
        self._newest_ts: int | None = None
        # live: the exchange's bid/ask for a symbol, read when a signal is decided (R3.5 spread); None = no call
        self.quote: Callable[[str], dict[str, Any]] | None = None
        self._quote: dict[str, Any] = {}
        self.progress: Callable[[int, int], None] | None = None  # (bars done, bars in all) during a long run
        self.result = SessionResult(session_id, mode, strategy_name, config_hash, tuple(strategies), timeframe,
                                    portfolio.starting_cash, datetime.now(UTC))
        self.result.trades = portfolio.trades  # the same list: a live session writes trades as they close

    # --- running -------------------------------------------------------------------------------------------
    def run(self, candle_sets: list[CandleSet], trade_from: int | None = None) -> SessionResult:
        """Backtest/paper: compute indicators once, run every bar, return the result (errors recorded, R1.5).
        ``trade_from`` (epoch ms): the bars before it are history only — the strategy's series hold them, nothing
        is decided or marked — as a live session's window is (a comparison run starts where live started)."""
        t0 = time.perf_counter()
        # No garbage collection during a replay: what it creates (orders, fills, decisions) is kept in the result,
        # so a collection would only walk that growing result again and again (a twentieth of the run's time);
        # what exists before it (imports, settings, candles) is frozen out of the collections meanwhile.
        collecting = gc.isenabled()
        gc.disable()
        gc.freeze()
        try:
            self.load(candle_sets)
            ts = self.books[0].ts if self.books else []
            start = 0 if trade_from is None else next((k for k, t in enumerate(ts) if t >= trade_from), len(ts))
            self.play(start, len(ts))
        except Exception as exc:  # R1.5: any error fails the session, with its context, never silently
            self.record_error(exc)
        finally:
            # what the run made joins the oldest generation as it is, as if it had survived the collections it
            # skipped (it did: the result holds it), instead of one walk over all of it at the next allocation
            gc.freeze()
            gc.unfreeze()
            if collecting:
                gc.enable()
        self.result.loop_seconds = time.perf_counter() - t0
        return self.finish()

    def load(self, candle_sets: list[CandleSet]) -> None:
        """Build each symbol's Book from aligned candle sets (its strategy's indicators computed once)."""
        lengths = {len(cs.frame) for cs in candle_sets}
        if len(lengths) > 1:
            raise ValueError(f"candle sets are not aligned (lengths {sorted(lengths)}); align them first")
        self.books = [Book(cs.symbol, self.instruments[cs.symbol], self.strategies[cs.symbol], cs.frame,
                           self.timeframe_ms) for cs in candle_sets]
        self.risk.prepare({b.symbol: b.close for b in self.books})

    def play(self, start: int, end: int) -> None:
        """Bars [0, start) are history the strategies see but do not decide on; bars [start, end) are traded."""
        for book in self.books:
            book.fast_forward(start)
        self.result.ts = self.books[0].ts[start:end] if self.books else array("q")
        if self.progress is None:
            self.replay(start, end)
            return
        for lo in range(start, end, PROGRESS_CHUNK):  # in chunks: the terminal shows how far a long run is
            hi = min(lo + PROGRESS_CHUNK, end)
            self.replay(lo, hi)
            self.progress(hi - start, end - start)

    def replay(self, start: int, end: int) -> None:
        """Bars [start, end) of a replay: quiet stretches through ``quiet`` (``core.quiet``: a bar's fills first,
        then marks and decisions), every bar it cannot run — a new day, a monitor threshold — through
        ``step_range``. The result is the same as ``step_range(start, end)``, bar for bar (tests/test_quiet.py)."""
        i = start
        try:
            while i < end:
                try:
                    j = quiet(self, i, end)
                except BufferError as exc:
                    raise series_stuck(self.books[0].ts[self._i or 0]) from exc
                if j == i:  # the fast path could not run bar i
                    self.step_range(i, i + 1)
                    j = i + 1
                i = j
        finally:
            settle(self)

    def advance(self, candle_sets: list[CandleSet], limit: int | None = None) -> int:
        """Live: closed candles newer than the last one join each Book (indicators computed again over the whole
        history), then each new bar is run, in order: a loop that fell behind never skips a bar, and a bar is
        decided with only the bars up to it visible. ``limit``: join and run at most this many (a session with a
        bar budget stops exactly at it). Returns how many bars were run."""
        by_symbol = {cs.symbol: cs.frame for cs in candle_sets}
        before = len(self.books[0].ts) if self.books else 0
        if limit is not None and self.books and self.books[0].ts:
            by_symbol = _first_new(by_symbol, self.books[0].symbol, self.books[0].ts[-1], max(limit, 0))
        for book in self.books:
            book.extend(by_symbol[book.symbol])
        lengths = {len(b.ts) for b in self.books}
        if len(lengths) > 1:
            raise ValueError(f"live candles are not aligned across symbols (lengths {sorted(lengths)})")
        self.risk.prepare({b.symbol: b.close for b in self.books})
        ts = self.books[0].ts
        self._newest_ts = ts[-1] if len(ts) > before else None
        for i in range(before, len(ts)):
            self.result.ts.append(ts[i])
            try:
                self.step_range(i, i + 1)
            except TradingHalted:  # the emergency stop owns the account now: not an error of this session
                raise
            except Exception as exc:  # recorded, and the session fails closed: no new entries after an error
                self.record_error(exc)
                raise
        return len(ts) - before

    def start_live(self, candle_sets: list[CandleSet]) -> None:
        """Live: load the history window — the strategies' series hold all of it — and trade from the first bar
        that closes after it."""
        self.load(candle_sets)
        n = len(self.books[0].ts) if self.books else 0
        for book in self.books:
            book.fast_forward(n)
        self.result.ts = array("q")
        self._start_ts = self.books[0].ts[-1] if n else None

    def restore(self, position: Position | None, orders: list[Order], symbol: str,
                known: list[Order] | None = None) -> None:
        """After a restart: put a reconciled position and its working orders back on the symbol's book;
        ``known`` are orders that ended while away — filled (their fills are booked with ``book``), cancelled,
        expired or rejected — recorded with this session's orders."""
        book = self._book(symbol)
        if position is not None:
            self.portfolio.positions[symbol] = position
        book.set_position(position)
        for order in known or []:
            self._orders[order.client_order_id] = order
            self.result.orders.append(order)
        for order in orders:
            self._orders[order.client_order_id] = order
            self.result.orders.append(order)
            book.working.append(order)
        if orders:
            book.wake_low = math.inf
            book.n_market = len(book.working)

    def step_range(self, start: int, end: int) -> None:
        """The hot loop over bars [start, end). Keep per-bar work to a few attribute reads."""
        if self.pending_marks:  # a replay's quiet stretches are marked before this bar
            settle(self)
        books = self.books
        port = self.portfolio
        risk = self.risk
        res = self.result
        ts_list = books[0].ts if books else []
        # the monitors' thresholds as locals: a bar pays a few comparisons unless one is crossed
        day_end, daily_floor, dd_floor, hwm = risk.day_end, risk.daily_floor, risk.dd_floor, risk.hwm
        ul_limit = -risk.limits.unrealized_loss_limit if risk.controls else -math.inf
        tightened = risk.tightened
        prev_equity = res.equity[-1] if res.equity else None
        eq_append, cash_append = res.equity.append, res.cash.append
        self._i = start
        try:
            for i in range(start, end):
                self._i = i
                self.fill_bar(i)
                equity = port.cash
                unrealized = 0.0
                for book in books:
                    pos = book.position
                    if pos is not None:
                        close = book.close[i]
                        equity += pos.qty * close
                        unrealized += pos.qty * (close - pos.avg_price)
                    elif book.dust:
                        equity += book.dust * book.close[i]
                eq_append(equity)
                cash_append(port.cash)
                ts = ts_list[i]
                if (ts >= day_end or equity <= daily_floor or equity <= dd_floor
                        or (unrealized < ul_limit * equity) is not tightened):
                    self._monitor(i, ts, equity, unrealized, prev_equity)
                    day_end, daily_floor, dd_floor = risk.day_end, risk.daily_floor, risk.dd_floor
                    tightened = risk.tightened
                if equity > hwm:
                    hwm = equity
                    risk.new_high(equity)
                    dd_floor = risk.dd_floor
                prev_equity = equity
                for book in books:
                    signal = book.ask(i)  # the strategy's series now end at this bar
                    if signal is not None:
                        self._on_signal(book, signal, i, equity)
        except BufferError as exc:  # a series could not grow: something holds a numpy view of the whole of it
            raise series_stuck(ts_list[self._i]) from exc

    def fill_bar(self, i: int) -> None:
        """Bar ``i``'s fills, booked: market orders at the open, then stops and limits within the bar's range —
        asked again after each booking, since a stop placed on an entry is live for the rest of the bar. Once done,
        nothing working can fill on the bar any more: running it again on the same bar finds nothing."""
        on_bar = self.broker.on_bar
        for book in self.books:
            while book.working and (book.n_market or book.low[i] <= book.wake_low or book.high[i] >= book.wake_high):
                fills = on_bar(book, i)
                if not fills:
                    break
                self._book_fills(book, fills)

    def _monitor(self, i: int, ts: int, equity: float, unrealized: float, prev_equity: float | None) -> None:
        """A monitor threshold was crossed: let the risk engine act, then carry out and record what it did."""
        for action in self.risk.on_mark(ts, equity, unrealized, prev_equity):
            if action.code is EventCode.UNREALIZED_LOSS_TIGHTEN:
                self._tighten_stops(i, ts)
            self.record_action(action)

    def record_action(self, action: Event) -> None:
        """An automatic risk action goes to the events and to the decision log, with its code and numbers."""
        self.emit(action)
        if self.record_decisions:
            self.result.decisions.append({"decision_id": f"{self.session_id[:8]}-{len(self.result.decisions) + 1}",
                                          "ts": action.ts if action.ts is not None else self.now(), "symbol": "*",
                                          "kind": "action", "action": "risk", "code": action.code.value,
                                          "reason": action.message,
                                          "details": {**action.details, "state": self.risk.state.value,
                                                      "derisked": self.risk.derisked, "latency_s": self.risk.latency}})

    def _tripped(self, tripped: BreakerTripped | None, ts: int) -> None:
        if tripped is not None:
            self.record_action(tripped.event(ts))

    def on_api_error(self, what: str) -> None:
        """Live: an exchange call failed (5xx, timeout, 429, auth); the API-error breaker counts it."""
        if self.risk.breakers is not None:
            self._tripped(self.risk.breakers.on_api_error(self.now(), what), self.now())

    def _tighten_stops(self, i: int, ts: int) -> None:
        """R4.3: every open position's stop moves to ``stop_tighten`` of its distance, on the exchange too."""
        factor = self.risk.limits.stop_tighten
        for book in self.books:
            pos = book.position
            if pos is None or pos.stop is None:
                continue
            price = book.close[i]
            new_stop = price - (price - pos.stop) * factor
            if new_stop <= pos.stop:
                continue
            self._place_stop(book, new_stop, ts, seq=2)  # replaces the working stop in one request

    def place_stop(self, symbol: str, stop: float, seq: int) -> None:
        """Live (the protection invariant, R9.3): put the position's protective stop on the exchange again."""
        self._place_stop(self._book(symbol), stop, self.now(), seq=seq)

    def sell_at_market(self, symbol: str, reason: str) -> None:
        """Live (the protection invariant): cancel the stops and sell the sellable quantity at market."""
        book = self._book(symbol)
        pos = book.position
        if pos is None:
            return
        ts = self.now()
        self._sells += 1
        qty = book.instrument.round_qty(pos.qty) or pos.qty
        order = Order(client_order_id(self.session_id, symbol, ts, "protect", self._sells), symbol, SELL,
                      MARKET, qty, TAG_EXIT, ts, reason=reason, code="PROTECT")
        self._replace_stop(book, order, ts)

    def collect_fills(self) -> None:
        """Live: ask the broker once more for every working order's fills and book them (before stopping)."""
        for book in self.books:
            if book.working and book.ts:
                fills = self.broker.on_bar(book, len(book.ts) - 1)
                while fills:
                    self._book_fills(book, fills)
                    fills = self.broker.on_bar(book, len(book.ts) - 1)

    def mark_live(self) -> float:
        """Live, between two bars (R9.6): equity now (cash after the fills booked since the bar, open positions and
        dust at their last close). The daily-loss, drawdown and unrealized-loss monitors act on it at once, not
        at the next bar. Returns the equity; the equity series itself stays one mark per bar."""
        equity, unrealized = self.portfolio.cash, 0.0
        for book in self.books:
            if not book.close:
                continue
            close = book.close[-1]
            pos = book.position
            if pos is not None:
                equity += pos.qty * close
                unrealized += pos.qty * (close - pos.avg_price)
            elif book.dust:
                equity += book.dust * close
        risk = self.risk
        ul_limit = -risk.limits.unrealized_loss_limit if risk.controls else -math.inf
        now = self.now()
        if (now >= risk.day_end or equity <= risk.daily_floor or equity <= risk.dd_floor
                or (unrealized < ul_limit * equity) is not risk.tightened):
            prev = self.result.equity[-1] if self.result.equity else None
            self._monitor(max(len(self.books[0].ts) - 1, 0) if self.books else 0, now, equity, unrealized, prev)
        if equity > risk.hwm:
            risk.new_high(equity)
        return equity

    def book(self, symbol: str, fills: list[OrderFilled]) -> None:
        """Book fills that happened outside the loop (while the process was down)."""
        self._book_fills(self._book(symbol), fills)

    def set_position_qty(self, symbol: str, qty: float) -> None:
        """Reconciliation's repair: the exchange's quantity wins over Rampart's books."""
        book = self._book(symbol)
        pos = self.portfolio.positions.get(symbol)
        if qty <= 0:
            self.portfolio.positions.pop(symbol, None)
            book.set_position(None)
        elif pos is None:
            adopted = Position(symbol, qty, book.close[-1] if book.close else 0.0, book.ts[-1] if book.ts else 0,
                               "adopted from the exchange at reconciliation")
            self.portfolio.positions[symbol] = adopted
            book.set_position(adopted)
        else:
            pos.qty = qty

    def _book(self, symbol: str) -> Book:
        return next(b for b in self.books if b.symbol == symbol)

    # --- fills ---------------------------------------------------------------------------------------------
    def _book_fills(self, book: Book, fills: list[OrderFilled]) -> None:
        """Book fills into the portfolio; place the protective stop after an entry, cancel it after an exit."""
        for fill in fills:
            order = self._orders[fill.client_order_id]
            self.result.fills.append(fill)
            kind = "stop" if fill.tag is TAG_STOP else "signal"
            inst = book.instrument
            dust_below = max(inst.lot_step, inst.min_notional / fill.price if fill.price > 0 else 0.0)
            code = "STOP" if fill.tag is TAG_STOP else order.code
            trade = self.portfolio.apply_fill(fill, order.reason, kind, dust_below, code)
            dust = self.portfolio.dust.get(book.symbol, 0.0)
            if dust > book.dust:  # R9.1: what the lot step cannot sell stays, tracked and reported
                self.emit(Event.of(EventCode.DUST_LEFT, DustLeft(symbol=book.symbol, qty=dust - book.dust,
                                                                   value=(dust - book.dust) * fill.price, total=dust),
                                   ts=fill.ts))
            book.dust = dust
            breakers = self.risk.breakers
            if breakers is not None:  # R6.2: abnormal slippage, losing streaks
                bps = fill.slippage / (fill.qty * fill.price) * 10_000 if fill.qty and fill.price else 0.0
                # a cooldown counts from the end of the bar the fill happened in: a paper fill carries its bar's
                # open time, a live one its exact time inside the bar, and both must block the same bars
                since = (fill.ts // self.timeframe_ms + 1) * self.timeframe_ms
                self._tripped(breakers.on_fill(bps, since, fill.client_order_id), fill.ts)
                if trade is not None:
                    self._tripped(breakers.on_trade_closed(trade.net_pnl, since), fill.ts)
            position = self.portfolio.positions.get(book.symbol)
            if fill.tag is TAG_ENTRY and position is not None and position.signal_ts is None:
                position.signal_ts, position.target = order.created_ts, order.target  # what the strategy said
            book.set_position(position)
            if fill.tag is TAG_ENTRY and not order.is_open and position is not None:
                attached = self._attached.pop(order.client_order_id, None)
                if attached is not None and self.broker.arm(attached, book, fill.ts):
                    position.stop = order.stop_price  # on the exchange since the fill: no window without it
                    if (attached.status is ACCEPTED
                            and attached.remaining < inst.round_qty(position.qty) - 1e-12):
                        # dust already held joined the position: one stop for all of it, swapped in one request
                        self._place_stop(book, order.stop_price, fill.ts, seq=1)
                elif not _has_stop(book):
                    self._place_stop(book, order.stop_price, fill.ts)
            elif trade is not None and book.working:
                for other in [o for o in book.working if o.tag is TAG_STOP]:
                    self.broker.cancel(other, book, fill.ts)

    def _place_stop(self, book: Book, stop: float | None, ts: int, seq: int = 0) -> None:
        pos = book.position
        if pos is None or stop is None:
            return
        pos.stop = stop
        qty = book.instrument.round_qty(pos.qty)  # the sellable quantity (R9.1): what the lot step lets us sell
        if qty <= 0:
            return
        order = Order(client_order_id(self.session_id, book.symbol, ts, "stop", seq), book.symbol, SELL,
                      STOP, qty, TAG_STOP, ts, reason=f"protective stop {stop:.2f} hit",
                      stop_price=stop, code="STOP")
        self._replace_stop(book, order, ts)

    def _replace_stop(self, book: Book, order: Order, ts: int) -> None:
        """Send ``order`` (a sell or a new stop) in place of the working protective stop: one request where the
        exchange takes cancel-replace, so a crash never leaves the position between the two (R9.3)."""
        stops = [o for o in book.working if o.tag is TAG_STOP]
        self._orders[order.client_order_id] = order
        self.result.orders.append(order)
        if len(stops) == 1:
            self.broker.replace(stops[0], order, book, ts)
            return
        for stop in stops:
            self.broker.cancel(stop, book, ts)
        self.broker.submit(order, book, ts)

    # --- decisions -----------------------------------------------------------------------------------------
    def _on_signal(self, book: Book, signal: Signal, i: int, equity: float) -> None:
        ts = book.ts[i]
        price = book.close[i]
        self._quote = self.quote(signal.symbol) if self.quote is not None else _NO_QUOTE  # before any order is sent
        working = [o.client_order_id for o in book.working if o.tag is not TAG_STOP] if book.working else None
        if working:
            refused = ({"check": "order_pending", "result": "fail", "working": working},)
            self._decide(book, i, signal, OrderDenied(signal.symbol, "ORDER_PENDING", "an order is already working",
                                                      ts, refused))
            return
        if signal.action == "exit":
            pos = book.position
            if pos is None:
                return
            # On the exchange the stop holds the coins: the sell replaces it (one request where the exchange takes
            # it), and the stop is put back if the sell is refused.
            qty = book.instrument.round_qty(pos.qty) or pos.qty  # the sellable quantity (R9.1)
            order = Order(client_order_id(self.session_id, book.symbol, ts, "exit"), book.symbol, SELL,
                          MARKET, qty, TAG_EXIT, ts, reason=signal.reason, code=signal.code)
            self._replace_stop(book, order, ts)
            self._decide(book, i, signal, order)
            if order.status is REJECTED and not any(o.tag is TAG_STOP for o in book.working):
                self._place_stop(book, pos.stop, ts, seq=1)
            return
        stale = self._stale(signal.symbol, ts)
        if stale is not None:
            self._decide(book, i, signal, stale)
            return
        # entries sent but not filled yet count as exposure already, and their cost as spent
        pending = 0.0
        held: list[str] = []  # symbols with a position or an entry on the way
        for b in self.books:
            entering = False
            for o in b.working:
                if o.tag is TAG_ENTRY:
                    pending += o.qty * b.close[i]
                    entering = True
            if entering or b.position is not None:
                held.append(b.symbol)
        open_notional = equity - self.portfolio.cash + pending
        verdict = self.risk.check_entry(signal, price, equity, self.portfolio.cash - pending, open_notional, ts, i,
                                        tuple(held))
        if isinstance(verdict, OrderDenied):
            self._decide(book, i, signal, verdict)
            return
        if book.position is not None:  # one position per symbol: a strategy does not add to it
            checks = (*verdict.checks, {"check": "position", "result": "fail", "held": book.position.qty})
            self._decide(book, i, signal, OrderDenied(signal.symbol, "ALREADY_IN_POSITION",
                                                      f"already holding {book.position.qty:g} {book.symbol}", ts,
                                                      checks))
            return
        order = Order(client_order_id(self.session_id, book.symbol, ts, "entry"), book.symbol, BUY,
                      MARKET, verdict.qty, TAG_ENTRY, ts, reason=signal.reason,
                      stop_price=signal.stop, quote_qty=verdict.quote_qty, target=signal.target, code=signal.code)
        attached = None
        if order.quote_qty is None and signal.stop is not None and self.broker.attaches_stops(book.symbol):
            # the protective stop rides on the entry (an order list): on the exchange the moment the buy fills
            attached = Order(client_order_id(self.session_id, book.symbol, ts, "attached"), book.symbol, SELL,
                             STOP, order.qty, TAG_STOP, ts,
                             reason=f"protective stop {signal.stop:.2f} hit", stop_price=signal.stop, code="STOP")
            self._attached[order.client_order_id] = attached
            self._orders[attached.client_order_id] = attached
            self.result.orders.append(attached)
        self._submit(book, order, ts, attached)
        self._decide(book, i, signal, order, verdict)

    def _stale(self, symbol: str, ts: int) -> OrderDenied | None:
        """Live catch-up: the refusal of an entry decided on a bar too far behind the newest closed one."""
        newest, limit = self._newest_ts, self.max_signal_age_ms
        if newest is None or limit is None or newest - ts <= limit:
            return None
        behind = (newest - ts) // self.timeframe_ms
        check = {"check": "signal_age", "result": "fail", "bar": ms_to_dt(ts).isoformat(),
                 "newest": ms_to_dt(newest).isoformat(), "bars_behind": behind, "max_age_s": limit / 1000}
        detail = (f"bar {ms_to_dt(ts):%Y-%m-%d %H:%M} is {behind} bar(s) behind the newest closed bar "
                  f"({ms_to_dt(newest):%H:%M}, more than {limit / 1000:g} s): the loop is catching up, and entries "
                  "act only on current prices")
        return OrderDenied(symbol, Reason.STALE_SIGNAL, detail, ts, (check,))

    def _market(self, book: Book, i: int) -> dict[str, Any]:
        """Market conditions at a decision (R3.5): price, the risk engine's volatility ratio, latency."""
        ratio = self.risk.vol_ratio.get(book.symbol)
        market = {"price": book.close[i], "high": book.high[i], "low": book.low[i], "volume": book.volume[i],
                  "vol_ratio": ratio[i] if ratio is not None and i < len(ratio) else None,
                  "latency_s": self.risk.latency}
        if self._quote:
            market.update(self._quote)
        return market

    def _submit(self, book: Book, order: Order, ts: int, attached: Order | None = None) -> None:
        self._orders[order.client_order_id] = order
        self.result.orders.append(order)
        if attached is None:
            self.broker.submit(order, book, ts)
        else:
            self.broker.submit(order, book, ts, attached)

    def _decide(self, book: Book, i: int, signal: Signal, outcome: Order | OrderDenied,
                approved: EntryApproved | None = None) -> None:
        """Record a decision on bar ``i`` of ``book``: the signal, what became of it, the checks with their numbers
        and the market conditions (R3.5)."""
        if not self.record_decisions:
            return
        details: dict[str, Any] = {"indicators": signal.indicators, "stop": signal.stop, "target": signal.target,
                                   "signal_code": signal.code, "state": str(self.risk.state),
                                   "market": self._market(book, i)}
        if isinstance(outcome, OrderDenied):
            kind, code, details["denied"] = "denied", outcome.code, outcome.detail
            if outcome.checks:
                details["checks"] = list(outcome.checks)
        else:
            kind, code = "order", "SUBMITTED"
            details["order"] = {"client_order_id": outcome.client_order_id, "side": str(outcome.side),
                                "type": str(outcome.type), "qty": outcome.qty, "quote_qty": outcome.quote_qty}
        if approved is not None:
            details["sizing"] = approved.inputs
            details["checks"] = list(approved.checks)
        self.result.decisions.append({"decision_id": f"{self._id8}-{len(self.result.decisions) + 1}",
                                      "ts": book.ts[i], "symbol": signal.symbol, "kind": kind, "action": signal.action,
                                      "code": code, "reason": signal.reason, "details": details})

    # --- errors and end ------------------------------------------------------------------------------------
    def record_error(self, exc: BaseException) -> None:
        i = self._i
        where = ""
        if i is not None and self.books and i < len(self.books[0].ts):
            where = f" at bar {i} ({ms_to_dt(self.books[0].ts[i]).isoformat()})"
        message = f"{type(exc).__name__}{where}: {exc}"
        self.result.errors.append(message)
        self.emit(Event.of(EventCode.SESSION_ERROR, SessionError(error=message, where=where.strip(),
                                                                 traceback=traceback.format_exc(limit=8))))

    def emit(self, event: Event) -> None:
        """Record a typed event (``core.events``) on the engine clock unless it carries its own time."""
        self.result.events.append(event.row("session", self.now()))

    def now(self) -> int:
        """The engine's clock: injected (wall time live), else the latest bar's time (replay and sandbox runs)."""
        if self.clock is not None:
            return self.clock()
        if self.books and self.books[0].ts:
            i = self._i if self._i is not None and self._i < len(self.books[0].ts) else len(self.books[0].ts) - 1
            return self.books[0].ts[i]
        return dt_to_ms(datetime.now(UTC))

    def finish(self) -> SessionResult:
        res = self.result
        notices: list[Event] = getattr(self.broker, "notices", [])
        for notice in notices:
            self.emit(notice)
            if notice.code is EventCode.INSUFFICIENT_BALANCE:  # an unexpected order rejection fails the session (R1.5)
                res.errors.append(f"{notice.code}: {notice.message}")
        res.final_equity = res.equity[-1] if res.equity else self.portfolio.cash
        res.trades = list(self.portfolio.trades)
        res.fees_paid = self.portfolio.fees_paid
        res.open_positions = dict(self.portfolio.positions)
        res.ended_at = datetime.now(UTC)
        return res


def _has_stop(book: Book) -> bool:
    """A protective stop is working on the book (a loop: no generator set up on every fill)."""
    for o in book.working:  # noqa: SIM110
        if o.tag is TAG_STOP and o.is_open:
            return True
    return False


def _first_new(frames: dict[str, pl.DataFrame], lead: str, last: int, n: int) -> dict[str, pl.DataFrame]:
    """The frames cut after the ``n``-th candle newer than ``last`` (epoch ms) of the ``lead`` symbol."""
    ms = pl.col("ts").dt.epoch("ms")
    fresh = frames[lead].filter(ms > last)["ts"].dt.epoch("ms")
    if fresh.len() <= n:
        return frames
    cutoff = last if n == 0 else int(fresh[n - 1])
    return {sym: frame.filter(ms <= cutoff) for sym, frame in frames.items()}


__all__ = ["TRADE_SCHEMA", "Engine", "SessionResult"]
