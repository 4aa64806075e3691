"""Flattening the account for the emergency stop: symbol by symbol, until flat or the deadline (R6.1, R9.4, R9.5).

Each managed symbol is a ``Leg``: its lot step and minimum (exchangeInfo for the managed symbols only, one request
for all) → cancel every open order on it (one DELETE openOrders: Rampart's and, per R6.1, the others' too) → read
the holdings once the cancel is done (one read serves every leg ready for it) → sell the managed quantity (held
minus ``baseline``, rounded down to the lot step) at market through ``CcxtBroker.send`` → flat. The legs take
turns, one request each, so a symbol that keeps failing never holds the other back.

Every request is tried again until the deadline. A 429 or 418 is waited out for its Retry-After (the
``RequestBudget`` sends nothing before it ends, so the stop never earns a ban; a wait ending past the deadline is
not begun); 5xx, timeouts, -1008 and -1021 back off exponentially, capped, with jitter. A sell keeps its client
order id while it was surely not sent (429, -1008), so a retry never doubles it. A sell whose outcome is unknown
(R9.4; ``send`` has asked for it by its id once already): when the account holds no other coins of that asset,
the next sell goes out at once, since the exchange cannot sell more than is held; otherwise its id is asked for
until ``UNKNOWN_WINDOW_S`` has passed before anything else is sent for that symbol.

Flat is what the exchange's own answers add up to: the cancel answered, the holdings read after it, the fills of
the sells. Time comes from an injected ``Clock``, so tests drive the waits without waiting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.control.answers import brief, instrument
from core.control.emergency_report import EmergencyReport, describe_cancelled
from core.domain import Instrument, Order, OrderTag, OrderType, Side
from core.errors import (
    AuthenticationError,
    ClockOutOfSync,
    ExchangeBusy,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderNotFound,
    RateLimited,
)
from core.execution.broker import OUR_PREFIX
from core.execution.ccxt_broker import CallRecord, CcxtBroker
from core.execution.fees import fee_in_quote
from core.market.candles import base_asset, symbol_to_ccxt

T = TypeVar("T")
log = logging.getLogger("rampart.control")

DUST_EPS = 1e-8  # the exchange's smallest unit of any asset
BACKOFF_FIRST_S = 0.2  # after a 5xx or a timeout; doubled per failure in a row, at most BACKOFF_MAX_S
BACKOFF_MAX_S = 5.0
RETRY_AFTER_MARGIN_S = 0.1  # Retry-After counts whole seconds from the answer: a little more, never less
# Binance forwards a request to the matching engine only within recvWindow (ccxt sends 10 s) and answers -1007
# after 10 s of waiting for it: an order not to be seen 20 s after it was sent is taken as never arrived (R9.4)
UNKNOWN_WINDOW_S = 20.0
LOOKUP_SPACING_S = 2.0
MAX_REFUSALS = 3  # refusals of one leg's cancel or sell (the exchange answered no) before it is given up
MIN_CALL_TIMEOUT_MS = 1_000
DUST_SHARE = 0.5  # under half the minimum notional at the last known price: dust without asking the exchange


@dataclass(frozen=True)
class Clock:
    """The stop's time: ``monotonic`` for the deadline, ``wall`` (epoch s) for the exchange's back-offs,
    ``sleep`` to wait. Tests pass one whose sleep advances both."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def say(report: EmergencyReport, progress: Callable[[str], None] | None, elapsed: float, line: str) -> None:
    """One progress line: into the report, the log, and the operator's screen as it happens."""
    text = f"[{elapsed:6.1f} s] {line}"
    report.say(text)
    log.info("emergency stop %s", text)
    if progress is not None:
        try:
            progress(text)
        except Exception:  # a broken screen must not stop the flattening
            log.debug("progress printer failed", exc_info=True)


class GiveUp(Exception):
    """Nothing more can be done before the deadline (or at all); the message says why."""


class _Again(Exception):
    """The request failed for now; its back-off is done and the step is tried again on the leg's next turn."""


@dataclass
class Leg:
    """One symbol's way to flat."""

    symbol: str
    inst: Instrument | None = None
    cancelled: bool = False  # the exchange answered the cancel: nothing is open on the symbol any more
    cancels_sent: int = 0
    managed: float | None = None  # Rampart's quantity held (read after the cancel, minus what sold since)
    free: float = 0.0
    initial: float | None = None  # managed as first read
    to_sell: float = 0.0
    seq: int = 1  # the next sell's number in its client order id
    unresolved: list[str] = field(default_factory=list)  # sells with unknown outcomes, bounded by the exchange
    pending: str | None = None  # a sell with an unknown outcome that must be seen (or time out) first
    pending_qty: float = 0.0
    pending_at: float = 0.0
    not_before: float = 0.0  # monotonic: the leg waits (between lookups) until then
    refusals: int = 0
    fills: list[tuple[float, float | None, dict[str, Any], str]] = field(default_factory=list)
    done: bool = False
    failed: str | None = None
    last_error: str | None = None

    @property
    def finished(self) -> bool:
        return self.done or self.failed is not None

    @property
    def sold(self) -> float:
        return sum(f[0] for f in self.fills)


class Flattener:
    """Runs the legs until every one is flat (or given up), or until the deadline."""

    def __init__(self, broker: CcxtBroker, symbols: list[str], baseline: dict[str, float] | None,
                 report: EmergencyReport, *, clock: Clock, started: float, deadline_s: float, stamp: str,
                 prices: dict[str, float], timeout_ms: int, progress: Callable[[str], None] | None = None) -> None:
        self.broker = broker
        self.client = broker.client
        self.baseline = baseline  # None: which holdings are Rampart's is unknown, so none are sold
        self.legs = [Leg(s) for s in symbols]
        self.report = report
        self.clock = clock
        self.started = started
        self.deadline = started + deadline_s
        self.stamp = stamp
        self.prices = dict(prices)  # a price per symbol for the minimum-notional check (the entry's)
        self.timeout_ms = timeout_ms
        self.progress = progress
        self.flat_at: float | None = None
        self._turn = 0
        self._failures_in_row = 0
        self._markets: list[dict[str, Any]] = []
        self._one_market_at_a_time = False
        self._rng = random.Random()
        broker.listeners.append(self._count)

    # --- the loop --------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not all(leg.finished for leg in self.legs):
                if self.remaining() <= 0:
                    raise GiveUp(f"the {self.deadline - self.started:g} s deadline passed")
                leg = self._next_leg()
                if leg is None:
                    continue
                with contextlib.suppress(_Again):  # failed for now: the other legs take their turns
                    self._step(leg)
                if all(leg.done for leg in self.legs) and self.flat_at is None:
                    self.flat_at = self.clock.monotonic()
        except GiveUp as stop:
            self.report.errors.append(str(stop))
            self.say(f"stopped: {stop}")
        except KeyboardInterrupt:
            self.report.errors.append("interrupted by the operator")
            self.say("stopped: interrupted by the operator")
        self._conclude()

    def remaining(self) -> float:
        return self.deadline - self.clock.monotonic()

    def say(self, line: str) -> None:
        say(self.report, self.progress, self.clock.monotonic() - self.started, line)

    def _next_leg(self) -> Leg | None:
        """The next leg in turn that may act now; waits (within the deadline) when every one is waiting."""
        now = self.clock.monotonic()
        count = len(self.legs)
        for k in range(count):
            leg = self.legs[(self._turn + k) % count]
            if not leg.finished and leg.not_before <= now:
                self._turn = (self._turn + k + 1) % count
                return leg
        wake = min(leg.not_before for leg in self.legs if not leg.finished)
        self._sleep(min(wake - now, self.remaining()))
        return None

    def _step(self, leg: Leg) -> None:
        if leg.inst is None:
            self._load_markets(leg)
        elif not leg.cancelled:
            self._cancel(leg)
        elif self.baseline is None:
            leg.done = True  # nothing is known to be Rampart's: cancelled, nothing sold (the report says so)
        elif leg.pending is not None:
            self._lookup(leg)
        elif leg.managed is None:
            self._read_holdings()
        else:
            self._sell(leg)

    # --- one request, guarded ------------------------------------------------------------------------------
    def _ask(self, what: str, leg: Leg | None, fn: Callable[..., T], *args: Any) -> T:
        """One exchange call through the broker (request budget, translated errors, listeners), guarded."""
        return self._guard(what, leg, lambda: self.broker.call(what, fn, *args))

    def _guard(self, what: str, leg: Leg | None, thunk: Callable[[], T],
               unknown: Callable[[ExchangeUnavailable], None] | None = None) -> T:
        """Run one request. Returns its answer, or raises OrderNotFound / ExchangeRejected (the exchange answered
        no), _Again (failed for now, back-off done) or GiveUp. ``unknown`` hears of an outcome nobody knows."""
        self.client.timeout = int(min(self.timeout_ms, max(MIN_CALL_TIMEOUT_MS, self.remaining() * 1000)))
        try:
            result = thunk()
        except RateLimited as exc:  # 429 / 418, or a back-off still running: nothing was sent or processed
            self._note(what, leg, exc)
            self._wait_out(exc)
            raise _Again from None
        except AuthenticationError as exc:
            raise GiveUp(f"the exchange refused the API key ({brief(exc)}): check its permissions and IP "
                         "whitelist") from None
        except (ExchangeBusy, ClockOutOfSync) as exc:  # refused before processing: nothing happened
            self._note(what, leg, exc)
            self._back_off()
            raise _Again from None
        except ExchangeUnavailable as exc:  # 5xx, timeout: processed or not, nobody knows
            if unknown is not None:
                unknown(exc)
            else:
                self._note(what, leg, exc)
            self._back_off()
            raise _Again from None
        except (OrderNotFound, ExchangeRejected):
            self._failures_in_row = 0
            raise
        except Exception as exc:  # anything else (a bug, a parse error): reported, tried again until the deadline
            log.debug("emergency stop: %s failed", what, exc_info=True)
            self._note(what, leg, exc)
            self._back_off()
            raise _Again from None
        self._failures_in_row = 0
        return result

    def _note(self, what: str, leg: Leg | None, exc: Exception) -> None:
        if leg is not None:
            leg.last_error = f"{what}: {brief(exc)}"
        self.say(f"{what}{' ' + leg.symbol if leg is not None else ''}: {brief(exc)}")

    def _wait_out(self, exc: RateLimited) -> None:
        """Wait for the exchange's Retry-After (or ban) to end, or give up when it ends past the deadline."""
        wait = max(exc.until - self.clock.wall(), 0.0) + RETRY_AFTER_MARGIN_S
        kind = "IP ban (418)" if exc.banned else "Retry-After (429)"
        left = self.remaining()
        if wait > left:
            until = time.strftime("%H:%M:%S UTC", time.gmtime(exc.until))
            raise GiveUp(f"the exchange's {kind} runs {wait:.0f} s more, past the deadline ({max(left, 0):.0f} s "
                         f"left): nothing is sent before it ends; run the stop again after {until}")
        line = f"waiting {wait:.1f} s for the exchange's {kind}; {left:.0f} s left before the deadline"
        self.report.waits.append(line)
        self.say(line)
        self._sleep(wait)

    def _back_off(self) -> None:
        self._failures_in_row += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self._failures_in_row - 1))
        self._sleep(min(delay * (0.5 + self._rng.random() / 2), self.remaining()))

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.clock.sleep(seconds)

    def _count(self, record: CallRecord) -> None:
        self.report.requests += 1
        if record.error is not None:
            self.report.failures += 1

    # --- the steps -----------------------------------------------------------------------------------------
    def _load_markets(self, leg: Leg) -> None:
        """Lot step and minimum notional of the symbols still without them: exchangeInfo for those only."""
        wanted = [leg] if self._one_market_at_a_time else [x for x in self.legs if x.inst is None and not x.finished]
        names = [x.symbol for x in wanted]
        params = {"symbol": names[0]} if len(names) == 1 else {"symbols": json.dumps(names, separators=(",", ":"))}
        try:
            markets: list[dict[str, Any]] = self._ask("load_markets", None, self.client.fetch_markets, params)
        except (ExchangeRejected, OrderNotFound) as exc:  # e.g. -1121: one of them is not listed; ask one by one
            if len(names) > 1:
                self._one_market_at_a_time = True
                self.say(f"exchangeInfo for {', '.join(names)} refused ({brief(exc)}): asking symbol by symbol")
            else:
                leg.failed = f"not listed on the exchange ({brief(exc)}): nothing cancelled or sold"
                self.say(f"{leg.symbol}: {leg.failed}")
            return
        self._markets += markets
        self.client.set_markets(self._markets)  # create_order and cancel_all_orders need them, and load no more
        by_id = {str(m.get("id")): m for m in markets}
        loaded = []
        for item in wanted:
            market = by_id.get(item.symbol)
            if market is None:
                item.failed = "not listed on the exchange: nothing cancelled or sold"
                self.say(f"{item.symbol}: {item.failed}")
                continue
            item.inst = instrument(item.symbol, market)
            loaded.append(f"{item.symbol} (lot {item.inst.lot_step:.8f}".rstrip("0") +
                          f", minimum notional {item.inst.min_notional:g})")
        if loaded:
            self.say(f"markets loaded: {', '.join(loaded)}")

    def _cancel(self, leg: Leg) -> None:
        """Every open order of the symbol in one request; -2011 (none open) is an answer too."""
        leg.cancels_sent += 1
        try:
            answer: list[dict[str, Any]] = self._ask("cancel_all_orders", leg, self.client.cancel_all_orders,
                                                     symbol_to_ccxt(leg.symbol))
        except OrderNotFound:
            answer = []
        except ExchangeRejected as exc:
            self._refused(leg, "cancel", exc)
            return
        leg.cancelled = True
        known = {(o["symbol"], o["id"]) for o in self.report.cancelled}
        entries = [d for o in answer for d in describe_cancelled(leg.symbol, o)]
        self.report.cancelled += [e for e in entries if (e["symbol"], e["id"]) not in known]
        if entries:
            names = ", ".join(f"{e['client_order_id']} ({'Rampart' if e['rampart'] else 'not Rampart'}'s)"
                              for e in entries)
            self.say(f"{leg.symbol}: cancelled {len(entries)} open order(s): {names}")
        elif leg.cancels_sent > 1:
            self.say(f"{leg.symbol}: no open order left (a cancel whose answer was lost may have done it)")
        else:
            self.say(f"{leg.symbol}: no open order")

    def _read_holdings(self) -> None:
        """One balance read for every leg whose cancel is done: Rampart's quantity of each."""
        ready = [x for x in self.legs if not x.finished and x.inst is not None and x.cancelled and x.managed is None
                 and x.pending is None]
        balance: dict[str, Any] = self._ask("fetch_balance", None, self.client.fetch_balance)
        total, free = balance.get("total") or {}, balance.get("free") or {}
        for leg in ready:
            asset = base_asset(leg.symbol)
            managed = float(total.get(asset) or 0.0) - self._held_apart(leg)
            if leg.initial is None:
                leg.initial = managed
            unseen = leg.initial - leg.sold - managed  # sold by sells whose answers were lost
            if leg.unresolved and unseen > DUST_EPS:
                leg.fills.append((unseen, None, {}, ", ".join(leg.unresolved)))
                self.say(f"{leg.symbol}: {unseen:g} {asset} sold by {', '.join(leg.unresolved)} (answer lost)")
            leg.unresolved.clear()
            leg.managed, leg.free = managed, float(free.get(asset) or 0.0)
            self._assess(leg)

    def _held_apart(self, leg: Leg) -> float:
        """The account's holding of the leg's base asset that is not Rampart's."""
        return float((self.baseline or {}).get(base_asset(leg.symbol), 0.0))

    def _assess(self, leg: Leg) -> None:
        """From Rampart's quantity: flat (nothing or dust left), sell, or cancel again (coins locked anew)."""
        inst, managed = leg.inst, leg.managed
        if inst is None or managed is None:
            return
        price = self.prices.get(leg.symbol)  # the entry's or the last fill's: a clear miss only is dust here;
        whole = inst.round_qty(max(managed, 0.0))  # a near one is the exchange's to refuse (NOTIONAL)
        if whole <= 0 or (price is not None and whole * price < DUST_SHARE * inst.min_notional):
            self._flat(leg, managed)
            return
        sellable = inst.round_qty(max(min(managed, leg.free), 0.0))
        if sellable <= 0:  # locked in an order placed after the cancel: cancel again, then read again
            self.say(f"{leg.symbol}: {whole:g} {base_asset(leg.symbol)} locked in an order placed after the cancel: "
                     "cancelling again")
            leg.cancelled, leg.managed = False, None
            return
        leg.to_sell = sellable

    def _flat(self, leg: Leg, managed: float) -> None:
        leg.done = True
        if managed >= DUST_EPS:
            self.report.dust[leg.symbol] = round(managed, 8)
            self.say(f"{leg.symbol}: flat ({managed:.8f} {base_asset(leg.symbol)} of dust, below the minimum order)")
        else:
            self.say(f"{leg.symbol}: flat")

    def _sell(self, leg: Leg) -> None:
        inst = leg.inst
        if inst is None:
            return
        qty = leg.to_sell
        cid = f"{OUR_PREFIX}-estop-{leg.symbol}-{leg.seq}-{self.stamp}"  # kept while surely not sent
        why = f"emergency stop by {self.report.who}: {self.report.reason}"
        order = Order(cid, leg.symbol, Side.SELL, OrderType.MARKET, qty, OrderTag.EXIT, int(self.clock.wall() * 1000),
                      reason=why)

        def unknown(exc: ExchangeUnavailable) -> None:
            leg.seq += 1
            leg.last_error = f"create_order: {brief(exc)}"
            if self._held_apart(leg) <= DUST_EPS:  # the exchange refuses to sell what is not held: send another
                leg.unresolved.append(cid)
                self.say(f"{leg.symbol}: market sell {cid} of {qty:g}: outcome unknown ({brief(exc)}); the account "
                         f"holds no other {base_asset(leg.symbol)}, so another may go out")
            else:  # another sell could sell coins that are not Rampart's: see this one first (R9.4)
                leg.pending, leg.pending_qty, leg.pending_at = cid, qty, self.clock.monotonic()
                self.say(f"{leg.symbol}: market sell {cid} of {qty:g}: outcome unknown ({brief(exc)}); asking "
                         "for it before anything else is sent")

        try:
            info: dict[str, Any] = self._guard("create_order", leg, lambda: self.broker.send(order, inst), unknown)
        except (ExchangeRejected, OrderNotFound) as exc:
            leg.seq += 1
            if "NOTIONAL" in str(exc).upper():  # under the exchange's minimum
                if qty < inst.round_qty(max(leg.managed or 0.0, 0.0)):  # the rest is locked: cancel, read again
                    leg.cancelled, leg.managed = False, None
                else:  # all of it: dust
                    self._flat(leg, leg.managed or 0.0)
                return
            leg.managed = None  # read again: the holdings may have moved
            if leg.unresolved and "insufficient balance" in str(exc).lower():
                self.say(f"{leg.symbol}: nothing left to sell: an earlier sell went through; reading the holdings")
                return
            self._refused(leg, f"market sell of {qty:g}", exc)
            return
        leg.seq += 1
        self._filled(leg, info, cid)

    def _lookup(self, leg: Leg) -> None:
        """Ask for a sell whose outcome is unknown by its client id, until it shows or the window passes."""
        cid = leg.pending or ""
        try:
            info: dict[str, Any] = self._ask("fetch_order", leg, self.client.fetch_order, None,
                                             symbol_to_ccxt(leg.symbol), {"origClientOrderId": cid})
        except (OrderNotFound, ExchangeRejected):
            if self.clock.monotonic() - leg.pending_at >= UNKNOWN_WINDOW_S:
                self.say(f"{leg.symbol}: {cid} never arrived ({UNKNOWN_WINDOW_S:g} s): the holdings are read again")
                leg.pending, leg.managed = None, None
            else:
                leg.not_before = self.clock.monotonic() + LOOKUP_SPACING_S
            return
        leg.pending = None
        self._filled(leg, info, cid)

    def _filled(self, leg: Leg, info: dict[str, Any], cid: str) -> None:
        filled = float(info.get("filled") or 0.0)
        status = info.get("status")
        if filled <= 0 and status == "open":  # not done executing yet: ask for it again
            leg.pending, leg.pending_qty, leg.pending_at = cid, leg.to_sell, self.clock.monotonic()
            return
        if filled <= 0:
            leg.managed = None
            self._refused(leg, "market sell", ExchangeRejected(f"{cid} filled nothing (status {status})"))
            return
        price = float(info.get("average") or info.get("price") or 0.0) or None
        leg.fills.append((filled, price, info, cid))
        if price is not None:
            self.prices[leg.symbol] = price
        self.say(f"{leg.symbol}: sold {filled:g} @ {price or 0:,.2f} ({cid})")
        if leg.managed is None:  # seen by a lookup: what it left is read again
            return
        leg.managed -= filled
        leg.free -= filled
        self._assess(leg)

    def _refused(self, leg: Leg, what: str, exc: Exception) -> None:
        leg.refusals += 1
        leg.last_error = f"{what}: {brief(exc)}"
        self.report.errors.append(f"{leg.symbol}: {what} refused: {exc}"[:300])
        if leg.refusals >= MAX_REFUSALS:
            leg.failed = f"{what} refused {leg.refusals} times ({brief(exc)})"
            self.say(f"{leg.symbol}: given up: {leg.failed}")
        else:
            self.say(f"{leg.symbol}: {what} refused ({brief(exc)}): trying again")

    # --- the outcome ---------------------------------------------------------------------------------------
    def _conclude(self) -> None:
        for leg in self.legs:
            if leg.done:
                continue
            asset = base_asset(leg.symbol)
            if leg.failed is not None:
                what = leg.failed
            elif leg.inst is None:
                what = "markets not loaded: open orders not cancelled, nothing sold"
            elif not leg.cancelled:
                what = "open orders not confirmed cancelled"
            elif leg.pending is not None:
                what = f"market sell {leg.pending} of {leg.pending_qty:g} {asset}: outcome unknown"
            elif leg.managed is None:
                what = "holdings not read after the cancel"
            else:
                what = f"{max(leg.managed, 0):g} managed {asset} not sold"
            last = f" (last: {leg.last_error})" if leg.last_error and leg.last_error not in what else ""
            self.report.leftovers.append(f"{leg.symbol}: {what}{last}")
        if self.baseline is None:
            self.report.leftovers.append("managed positions unknown (no readable live state): none sold")
        self.report.flat = not self.report.leftovers
        if self.report.flat:
            self.report.seconds_to_flat = round((self.flat_at or self.clock.monotonic()) - self.started, 4)

    def summarize_sells(self, positions: dict[str, dict[str, Any]]) -> None:
        """closed {symbol: (qty, average price)} and per-symbol fees and P&L against the recorded entry."""
        for leg in self.legs:
            if not leg.fills:
                continue
            sym, qty = leg.symbol, leg.sold
            priced = [(q, p, info) for q, p, info, _ in leg.fills if p is not None]
            priced_qty = sum(q for q, _, _ in priced)
            avg = round(sum(q * p for q, p, _ in priced) / priced_qty, 8) if priced_qty > 0 else None
            fees = sum(fee_in_quote(info, p, sym, self.broker.usdt_price) for _, p, info in priced)
            entry = positions.get(sym, {}).get("avg_price")
            pnl = (avg - float(entry)) * qty - fees if entry and avg is not None else None
            self.report.closed[sym] = (round(qty, 12), avg)
            self.report.sells[sym] = {"qty": round(qty, 12), "avg_price": avg, "fees": fees, "entry_price": entry,
                                      "pnl": pnl, "orders": [f[3] for f in leg.fills]}
