"""The trading engine: one loop for backtest, paper and live — only the broker differs (R1.1).

Per bar, in this order: the broker reports fills (market orders at the open, stops and limits intrabar),
the portfolio books them and protective stops are placed, equity is marked at the close, then each
symbol's strategy decides and the risk engine sizes or refuses every signal. Decisions, orders, fills,
trades and the equity curve are kept in memory and handed to the store as frames at the end.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.domain import (
    Instrument,
    Mode,
    Order,
    OrderDenied,
    OrderFilled,
    OrderStatus,
    OrderTag,
    OrderType,
    Position,
    Side,
    Signal,
    Trade,
    dt_to_ms,
    ms_to_dt,
)
from core.errors import TradingHalted
from core.events import DustLeft, Event, EventCode, SessionError
from core.execution.broker import Broker, client_order_id
from core.market.candles import CandleSet
from core.portfolio import Portfolio
from core.risk.breakers import BreakerTripped
from core.risk.engine import EntryApproved, RiskEngine
from core.strategy.bar import Bar
from core.strategy.base import Strategy


@dataclass
class SessionResult:
    """Everything a session produced, ready for metrics, the gate and the store."""

    session_id: str
    mode: Mode
    strategy: str
    config_hash: str
    symbols: tuple[str, ...]
    timeframe: str
    starting_equity: float
    started_at: datetime
    ended_at: datetime | None = None
    final_equity: float = 0.0
    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    open_positions: dict[str, Position] = field(default_factory=dict)
    fees_paid: float = 0.0
    loop_seconds: float = 0.0

    @property
    def status(self) -> str:
        return "failed" if self.errors else "completed"

    def equity_frame(self) -> pl.DataFrame:
        eq = pl.Series("equity", self.equity, pl.Float64)
        cash = pl.Series("cash", self.cash, pl.Float64)
        return pl.DataFrame({
            "ts": pl.Series("ts", self.ts[: len(self.equity)], pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "equity": eq, "cash": cash,
            # long-only spot: everything that is not cash is open notional
            "exposure": ((eq - cash) / eq).fill_nan(0.0),
        })

    def trades_frame(self) -> pl.DataFrame:
        rows = [t.to_row() for t in self.trades]
        return pl.DataFrame(rows, schema=TRADE_SCHEMA) if rows else pl.DataFrame(schema=TRADE_SCHEMA)


TRADE_SCHEMA: dict[str, Any] = {
    "trade_id": pl.String, "symbol": pl.String, "entry_time": pl.Datetime("us", "UTC"),
    "exit_time": pl.Datetime("us", "UTC"), "entry_price": pl.Float64, "exit_price": pl.Float64, "qty": pl.Float64,
    "fees": pl.Float64, "gross_pnl": pl.Float64, "net_pnl": pl.Float64, "return_pct": pl.Float64,
    "entry_reason": pl.String, "exit_reason": pl.String, "exit_kind": pl.String,
}


class Engine:
    """Runs strategies over aligned candles through a RiskEngine and a Broker, booking into a Portfolio."""

    def __init__(self, *, session_id: str, mode: Mode, strategies: dict[str, Strategy],
                 instruments: dict[str, Instrument], risk: RiskEngine, broker: Broker, portfolio: Portfolio,
                 config_hash: str, timeframe: str, strategy_name: str, record_decisions: bool = True) -> None:
        self.session_id = session_id
        self.risk = risk
        self.broker = broker
        self.portfolio = portfolio
        self.strategies = strategies
        self.instruments = instruments
        self.record_decisions = record_decisions
        self.books: list[Bar] = []
        self._orders: dict[str, Order] = {}
        self._sells = 0  # market sells the protection invariant made (their client ids count them)
        self._i: int | None = None
        self._start_ts: int | None = None
        self.clock: Callable[[], int] | None = None  # live on a real exchange: wall clock; else bar time
        # live: the exchange's bid/ask for a symbol, read when a signal is decided (R3.5 spread); None = no call
        self.quote: Callable[[str], dict[str, Any]] | None = None
        self._quote: dict[str, Any] = {}
        self.result = SessionResult(session_id, mode, strategy_name, config_hash, tuple(strategies), timeframe,
                                    portfolio.starting_cash, datetime.now(UTC))
        self.result.trades = portfolio.trades  # the same list: a live session writes trades as they close

    # --- running -------------------------------------------------------------------------------------------
    def run(self, candle_sets: list[CandleSet]) -> SessionResult:
        """Backtest/paper: prepare indicators once, run every bar, return the result (errors recorded, R1.5)."""
        t0 = time.perf_counter()
        try:
            self.load(candle_sets)
            self.result.ts = self.books[0].ts if self.books else []
            self.step_range(0, len(self.result.ts))
        except Exception as exc:  # R1.5: any error fails the session, with its context, never silently
            self.record_error(exc)
        self.result.loop_seconds = time.perf_counter() - t0
        return self.finish()

    def load(self, candle_sets: list[CandleSet]) -> None:
        """Build each symbol's Bar from aligned candle sets and let its strategy compute indicators."""
        lengths = {len(cs.frame) for cs in candle_sets}
        if len(lengths) > 1:
            raise ValueError(f"candle sets are not aligned (lengths {sorted(lengths)}); align them first")
        self.books = []
        for cs in candle_sets:
            strategy = self.strategies[cs.symbol]
            strategy.prepare(cs.frame)
            self.books.append(Bar(cs.symbol, self.instruments[cs.symbol], strategy, cs.frame))
        self.risk.prepare({b.symbol: b.close for b in self.books})

    def advance(self, candle_sets: list[CandleSet]) -> int:
        """Live: the windows of closed candles have new bars at the end; prepare and run each of them, in order
        (a loop that fell behind never skips a bar). Returns how many bars were run."""
        by_symbol = {cs.symbol: cs for cs in candle_sets}
        for bar in self.books:
            frame = by_symbol[bar.symbol].frame
            bar.refresh(frame)
            bar.strategy.prepare(frame)
        self.risk.prepare({b.symbol: b.close for b in self.books})
        ts = self.books[0].ts
        last = self.result.ts[-1] if self.result.ts else self._start_ts
        new = [i for i, t in enumerate(ts) if last is None or t > last]
        for i in new:
            self.result.ts.append(ts[i])
            try:
                self.step_range(i, i + 1)
            except TradingHalted:  # the emergency stop owns the account now: not an error of this session
                raise
            except Exception as exc:  # recorded, and the session fails closed: no new entries after an error
                self.record_error(exc)
                raise
        return len(new)

    def start_live(self, candle_sets: list[CandleSet]) -> None:
        """Live: load the history window; trading starts with the first bar that closes after it."""
        self.load(candle_sets)
        self.result.ts = []
        self._start_ts = self.books[0].ts[-1] if self.books and self.books[0].ts else None

    def restore(self, position: Position | None, orders: list[Order], symbol: str,
                known: list[Order] | None = None) -> None:
        """After a restart: put a reconciled position and its working orders back on the symbol's book;
        ``known`` are orders that filled while away (their fills are booked with ``book``)."""
        bar = self._book(symbol)
        if position is not None:
            self.portfolio.positions[symbol] = position
        bar.position = position
        for order in known or []:
            self._orders[order.client_order_id] = order
            self.result.orders.append(order)
        for order in orders:
            self._orders[order.client_order_id] = order
            self.result.orders.append(order)
            bar.working.append(order)
        if orders:
            bar.wake_low = math.inf
            bar.n_market = len(bar.working)

    def step_range(self, start: int, end: int) -> None:
        """The hot loop over bars [start, end). Keep per-bar work to a few attribute reads."""
        books = self.books
        port = self.portfolio
        risk = self.risk
        on_bar = self.broker.on_bar
        eq_append = self.result.equity.append
        cash_append = self.result.cash.append
        ts_list = books[0].ts if books else []
        # the monitors' thresholds as locals: a bar pays a few comparisons unless one is crossed
        day_end, daily_floor, dd_floor, hwm = risk.day_end, risk.daily_floor, risk.dd_floor, risk.hwm
        ul_limit = -risk.limits.unrealized_loss_limit if risk.controls else -math.inf
        tightened = risk.tightened
        prev_equity = self.result.equity[-1] if self.result.equity else None
        self._i = start
        for i in range(start, end):
            self._i = i
            for bar in books:
                if bar.working and (bar.n_market or bar.low[i] <= bar.wake_low or bar.high[i] >= bar.wake_high):
                    fills = on_bar(bar, i)
                    while fills:  # book, then ask again: a stop placed on an entry is live for the rest of the bar
                        self._book_fills(bar, fills)
                        fills = on_bar(bar, i)
            equity = port.cash
            unrealized = 0.0
            for bar in books:
                pos = bar.position
                if pos is not None:
                    close = bar.close[i]
                    equity += pos.qty * close
                    unrealized += pos.qty * (close - pos.avg_price)
                elif bar.dust:
                    equity += bar.dust * bar.close[i]
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
            for bar in books:
                signal = bar.strategy.on_bar(i, bar)
                if signal is not None:
                    self._on_signal(bar, signal, i, equity)

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
        for bar in self.books:
            pos = bar.position
            if pos is None or pos.stop is None:
                continue
            price = bar.close[i]
            new_stop = price - (price - pos.stop) * factor
            if new_stop <= pos.stop:
                continue
            for old in [o for o in bar.working if o.tag is OrderTag.STOP]:
                self.broker.cancel(old, bar, ts)
            self._place_stop(bar, new_stop, ts, seq=2)

    def place_stop(self, symbol: str, stop: float, seq: int) -> None:
        """Live (the protection invariant, R9.3): put the position's protective stop on the exchange again."""
        self._place_stop(self._book(symbol), stop, self.now(), seq=seq)

    def sell_at_market(self, symbol: str, reason: str) -> None:
        """Live (the protection invariant): cancel the stops and sell the sellable quantity at market."""
        bar = self._book(symbol)
        pos = bar.position
        if pos is None:
            return
        ts = self.now()
        for stop in [o for o in bar.working if o.tag is OrderTag.STOP]:
            self.broker.cancel(stop, bar, ts)
        self._sells += 1
        qty = bar.instrument.round_qty(pos.qty) or pos.qty
        order = Order(client_order_id(self.session_id, symbol, ts, "protect", self._sells), symbol, Side.SELL,
                      OrderType.MARKET, qty, OrderTag.EXIT, ts, reason=reason)
        self._submit(bar, order, ts)

    def collect_fills(self) -> None:
        """Live: ask the broker once more for every working order's fills and book them (before stopping)."""
        for bar in self.books:
            if bar.working and bar.ts:
                fills = self.broker.on_bar(bar, len(bar.ts) - 1)
                while fills:
                    self._book_fills(bar, fills)
                    fills = self.broker.on_bar(bar, len(bar.ts) - 1)

    def mark_live(self) -> float:
        """Live, between two bars (R9.6): equity now (cash after the fills booked since the bar, open positions and
        dust at their last close). The daily-loss, drawdown and unrealized-loss monitors act on it at once, not
        at the next bar. Returns the equity; the equity series itself stays one mark per bar."""
        equity, unrealized = self.portfolio.cash, 0.0
        for bar in self.books:
            if not bar.close:
                continue
            close = bar.close[-1]
            pos = bar.position
            if pos is not None:
                equity += pos.qty * close
                unrealized += pos.qty * (close - pos.avg_price)
            elif bar.dust:
                equity += bar.dust * close
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
        bar = self._book(symbol)
        pos = self.portfolio.positions.get(symbol)
        if qty <= 0:
            self.portfolio.positions.pop(symbol, None)
            bar.position = None
        elif pos is None:
            bar.position = self.portfolio.positions[symbol] = Position(
                symbol, qty, bar.close[-1] if bar.close else 0.0, bar.ts[-1] if bar.ts else 0,
                "adopted from the exchange at reconciliation")
        else:
            pos.qty = qty

    def _book(self, symbol: str) -> Bar:
        return next(b for b in self.books if b.symbol == symbol)

    # --- fills ---------------------------------------------------------------------------------------------
    def _book_fills(self, bar: Bar, fills: list[OrderFilled]) -> None:
        """Book fills into the portfolio; place the protective stop after an entry, cancel it after an exit."""
        for fill in fills:
            order = self._orders[fill.client_order_id]
            self.result.fills.append(fill)
            kind = "stop" if fill.tag is OrderTag.STOP else "signal"
            inst = bar.instrument
            dust_below = max(inst.lot_step, inst.min_notional / fill.price if fill.price > 0 else 0.0)
            trade = self.portfolio.apply_fill(fill, order.reason, kind, dust_below)
            dust = self.portfolio.dust.get(bar.symbol, 0.0)
            if dust > bar.dust:  # R9.1: what the lot step cannot sell stays, tracked and reported
                self.emit(Event.of(EventCode.DUST_LEFT, DustLeft(symbol=bar.symbol, qty=dust - bar.dust,
                                                                   value=(dust - bar.dust) * fill.price, total=dust),
                                   ts=fill.ts))
            bar.dust = dust
            breakers = self.risk.breakers
            if breakers is not None:  # R6.2: abnormal slippage, losing streaks
                bps = fill.slippage / (fill.qty * fill.price) * 10_000 if fill.qty and fill.price else 0.0
                self._tripped(breakers.on_fill(bps, fill.ts, fill.client_order_id), fill.ts)
                if trade is not None:
                    self._tripped(breakers.on_trade_closed(trade.net_pnl, fill.ts), fill.ts)
            bar.position = self.portfolio.positions.get(bar.symbol)
            if fill.tag is OrderTag.ENTRY and not order.is_open and bar.position is not None:
                self._place_stop(bar, order.stop_price, fill.ts)
            elif trade is not None:
                for other in [o for o in bar.working if o.tag is OrderTag.STOP]:
                    self.broker.cancel(other, bar, fill.ts)

    def _place_stop(self, bar: Bar, stop: float | None, ts: int, seq: int = 0) -> None:
        pos = bar.position
        if pos is None or stop is None:
            return
        pos.stop = stop
        qty = bar.instrument.round_qty(pos.qty)  # the sellable quantity (R9.1): what the lot step lets us sell
        if qty <= 0:
            return
        order = Order(client_order_id(self.session_id, bar.symbol, ts, "stop", seq), bar.symbol, Side.SELL,
                      OrderType.STOP, qty, OrderTag.STOP, ts, reason=f"protective stop {stop:.2f} hit",
                      stop_price=stop)
        self._submit(bar, order, ts)

    # --- decisions -----------------------------------------------------------------------------------------
    def _on_signal(self, bar: Bar, signal: Signal, i: int, equity: float) -> None:
        ts = bar.ts[i]
        price = bar.close[i]
        self._quote = self.quote(signal.symbol) if self.quote is not None else {}  # before any order is sent
        if any(o.tag is not OrderTag.STOP for o in bar.working):
            working = [o.client_order_id for o in bar.working if o.tag is not OrderTag.STOP]
            refused = ({"check": "order_pending", "result": "fail", "working": working},)
            self._decide(ts, signal, OrderDenied(signal.symbol, "ORDER_PENDING", "an order is already working", ts,
                                                 refused),
                         i=i)
            return
        if signal.action == "exit":
            pos = bar.position
            if pos is None:
                return
            # On the exchange the stop holds the coins: cancel it, sell, and put it back if the sell is refused.
            for stop in [o for o in bar.working if o.tag is OrderTag.STOP]:
                self.broker.cancel(stop, bar, ts)
            qty = bar.instrument.round_qty(pos.qty) or pos.qty  # the sellable quantity (R9.1)
            order = Order(client_order_id(self.session_id, bar.symbol, ts, "exit"), bar.symbol, Side.SELL,
                          OrderType.MARKET, qty, OrderTag.EXIT, ts, reason=signal.reason)
            self._submit(bar, order, ts)
            self._decide(ts, signal, order, i=i)
            if order.status is OrderStatus.REJECTED and not any(o.tag is OrderTag.STOP for o in bar.working):
                self._place_stop(bar, pos.stop, ts, seq=1)
            return
        # entries sent but not filled yet count as exposure already, and their cost as spent
        pending = sum(o.qty * b.close[i] for b in self.books for o in b.working if o.tag is OrderTag.ENTRY)
        open_notional = equity - self.portfolio.cash + pending
        held = tuple(b.symbol for b in self.books if b.position is not None or
                     any(o.tag is OrderTag.ENTRY for o in b.working))
        verdict = self.risk.check_entry(signal, price, equity, self.portfolio.cash - pending, open_notional, ts, i,
                                        held)
        if isinstance(verdict, OrderDenied):
            self._decide(ts, signal, verdict, i=i)
            return
        order = Order(client_order_id(self.session_id, bar.symbol, ts, "entry"), bar.symbol, Side.BUY,
                      OrderType.MARKET, verdict.qty, OrderTag.ENTRY, ts, reason=signal.reason,
                      stop_price=signal.stop, quote_qty=verdict.quote_qty)
        self._submit(bar, order, ts)
        self._decide(ts, signal, order, verdict, i=i)

    def _market(self, symbol: str, i: int | None) -> dict[str, Any]:
        """Market conditions at a decision (R3.5): price, the risk engine's volatility ratio, latency."""
        if i is None:
            return {}
        bar = self._book(symbol)
        ratio = self.risk.vol_ratio.get(symbol)
        return {"price": bar.close[i], "high": bar.high[i], "low": bar.low[i], "volume": bar.volume[i],
                "vol_ratio": ratio[i] if ratio is not None and i < len(ratio) else None,
                "latency_s": self.risk.latency, **self._quote}

    def _submit(self, bar: Bar, order: Order, ts: int) -> None:
        self._orders[order.client_order_id] = order
        self.result.orders.append(order)
        self.broker.submit(order, bar, ts)

    def _decide(self, ts: int, signal: Signal, outcome: Order | OrderDenied,
                approved: EntryApproved | None = None, i: int | None = None) -> None:
        if not self.record_decisions:
            return
        details: dict[str, Any] = {"indicators": signal.indicators, "stop": signal.stop, "target": signal.target,
                                   "state": self.risk.state.value, "market": self._market(signal.symbol, i)}
        if isinstance(outcome, OrderDenied):
            kind, code, details["denied"] = "denied", outcome.code, outcome.detail
            if outcome.checks:
                details["checks"] = list(outcome.checks)
        else:
            kind, code = "order", "SUBMITTED"
            details["order"] = {"client_order_id": outcome.client_order_id, "side": outcome.side.value,
                                "type": outcome.type.value, "qty": outcome.qty, "quote_qty": outcome.quote_qty}
        if approved is not None:
            details["sizing"] = approved.inputs
            details["checks"] = list(approved.checks)
        self.result.decisions.append({"decision_id": f"{self.session_id[:8]}-{len(self.result.decisions) + 1}",
                                      "ts": ts, "symbol": signal.symbol, "kind": kind, "action": signal.action,
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
