"""CcxtBroker: the live Broker over the real ccxt Binance client.

- Client order ids are deterministic (``client_order_id``). An order whose outcome is unknown (timeout, 5xx,
  -1007, -1008, a lost response) is treated as possibly executed (R9.4): nothing is sent again for it; each poll
  asks the exchange for that id (and for recent trades of orders we do not know) until it shows up or
  ``unknown_outcome_s`` pass, and only then is it taken as never arrived.
- Protective stops are STOP_LOSS_LIMIT orders on the exchange: a position stays protected if Rampart dies.
- Every call goes through the IP's ``RequestBudget`` (R9.5): nothing is sent during a Retry-After or a ban, and
  routine reads stay under the configured share of the request weight. A -1021 answer resynchronises the clock.
- Fees are valued in their own asset (R9.2, ``core.execution.fees``): a commission in the base asset at the fill
  price (and it reduces what the buy holds, R9.1), in the quote as it is, in BNB at that asset's USDT price.
- Every call is timed; ``listeners`` see each one. ccxt errors are translated here, once, into ``core.errors``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from core.domain import Instrument, Order, OrderFilled, OrderStatus, OrderType, Side
from core.errors import (
    AuthenticationError,
    ClockOutOfSync,
    ConfigError,
    ExchangeBusy,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderNotFound,
    RateLimited,
)
from core.events import Event, EventCode, OrderProblem
from core.execution import order_lists
from core.execution.broker import reference_price, slippage_cost
from core.execution.fees import QUOTE, Fees, estimated_fees, fee_entries, value_fees
from core.execution.limits import RequestBudget
from core.execution.order_lists import STOP_LIMIT_OFFSET, ListSupport
from core.market.candles import symbol_to_ccxt
from core.redact import redact

if TYPE_CHECKING:
    import ccxt

    from core.execution.book import Book as Bar

T = TypeVar("T")
log = logging.getLogger("rampart.execution")


@dataclass(frozen=True)
class CallRecord:
    """One exchange call as listeners see it (decision log, audit journal). ``args``/``kwargs`` are the ccxt
    method's arguments (never credentials); ``result`` is ccxt's parsed answer, None when the call failed."""

    what: str
    started: float  # epoch seconds
    latency_s: float
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None


PRICE_TTL_S = 60.0  # a fee asset's USDT price is read at most this often


def translate(exc: Exception, what: str) -> ExchangeError:
    """One place where ccxt's exceptions become Rampart's (message kept, credentials scrubbed: R8.2)."""
    import ccxt

    text = redact(f"{what}: {type(exc).__name__}: {exc}")[:500]
    # -2015 is the key's permissions or IP (errors.md); ccxt reads it after a first success as a temporary ban
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended) or (
            '"code":-2015' in text):
        return AuthenticationError(text)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text)
    if isinstance(exc, ccxt.InvalidNonce) or '"code":-1021' in text:
        return ClockOutOfSync(text)
    if '"code":-1008' in text or (isinstance(exc, ccxt.OperationFailed) and not isinstance(exc, ccxt.NetworkError)):
        return ExchangeBusy(text)  # -1008 server busy: refused before processing, send again later
    if isinstance(exc, ccxt.NetworkError):  # timeouts, 5xx, rate limits, DDoS protection
        return ExchangeUnavailable(text)
    if isinstance(exc, ccxt.ExchangeError):  # the exchange answered and refused (-2010, -1013, market closed …):
        return ExchangeRejected(text)  # processed and not executed, so nothing is unknown about it
    return ExchangeError(text)


class CcxtBroker:
    """Live execution on a Binance-compatible exchange through ``ccxt.binance``."""

    def __init__(self, client: ccxt.binance, *, on_latency: Callable[[str, float], None] | None = None,
                 before_submit: Callable[[Order], None] | None = None, budget: RequestBudget | None = None,
                 unknown_outcome_s: float = 60.0, wait_limited_s: float = 0.0,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.before_submit = before_submit  # the live session journals the order here, before it can exist
        self.budget = budget or RequestBudget()
        self.unknown_outcome_s = unknown_outcome_s
        self.wait_limited_s = wait_limited_s  # how long a call may wait out a back-off before giving up
        self.on_wait = on_wait  # told what it waits for (the emergency stop prints it)
        self.latencies: deque[tuple[float, str, float]] = deque(maxlen=1000)  # (wall time, call, seconds)
        self.errors: deque[tuple[float, str]] = deque(maxlen=1000)
        self.notices: list[Event] = []  # for the session's event log
        self.on_latency = on_latency
        self.on_error: Callable[[str], None] | None = None  # the API-error breaker (R6.2)
        self.listeners: list[Callable[[CallRecord], None]] = []  # every call, after it returns or fails
        self._reported: dict[str, tuple[float, float, float]] = {}  # cid -> (qty, fee value, fee base) reported
        self._unread: dict[str, dict[str, Any]] = {}  # submit responses whose fills are not reported yet
        self._value: dict[str, float] = {}  # client order id -> quote value of the fills reported
        self._refs: dict[str, float] = {}  # client order id -> reference price its slippage is measured against
        self._unknown: dict[str, float] = {}  # client order id -> when its outcome became unknown (epoch s)
        self._working: set[str] = set()  # stop orders the exchange reports triggered (Binance ``isWorking``)
        self._prices: dict[str, tuple[float, float]] = {}  # fee asset -> (USDT price, when read)
        self.support: dict[str, ListSupport] = {}  # symbol -> the order lists its market takes (R9.3)
        self.taker_rate = 0.001  # the account's taker commission (an OTO stop's quantity leaves room for it)
        self.entry_limit_bps = order_lists.ENTRY_LIMIT_BPS  # an entry list's IOC limit above the decision close
        self._pending: dict[str, Order] = {}  # entry client id -> its stop, pending on the exchange
        self._lock = threading.Lock()  # one request at a time: credentials change only between requests (R8.3)

    # --- plumbing ------------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one exchange call within the request budget, timed; ccxt errors come out translated."""
        self._wait_budget(what)
        try:
            return self._call_once(what, fn, *args, **kwargs)
        except ClockOutOfSync:  # -1021: refused unprocessed; measure the offset to the server's clock, once more
            self.sync_clock()
            return self._call_once(what, fn, *args, **kwargs)

    def _call_once(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import ccxt

        t0, started = time.perf_counter(), time.time()
        result: Any = None
        failed: str | None = None
        headers: Any = None
        try:
            with self._lock:
                self.client.last_response_headers = None
                try:
                    result = fn(*args, **kwargs)
                finally:
                    headers = self.client.last_response_headers
            self.budget.observe(headers)
            return result
        except ccxt.BaseError as exc:
            self.errors.append((time.time(), f"{what}: {type(exc).__name__}"))
            error = translate(exc, what)
            self.budget.observe(headers, str(error))
            backoff = self.budget.backoff()
            if backoff is not None and isinstance(error, ExchangeUnavailable):
                error = RateLimited(str(error), backoff.until, backoff.banned)
            failed = str(error)
            if (self.on_error is not None and isinstance(error, ExchangeUnavailable | AuthenticationError)
                    and not isinstance(error, ClockOutOfSync)):  # resynchronised and sent again, not a fault
                self.on_error(f"{what}: {type(exc).__name__}")
            raise error from exc
        finally:
            elapsed = time.perf_counter() - t0
            self.latencies.append((time.time(), what, elapsed))
            if self.on_latency is not None:
                self.on_latency(what, elapsed)
            if self.listeners:
                self._tell(CallRecord(what, started, elapsed, args, dict(kwargs), result, failed))

    def _wait_budget(self, what: str) -> None:
        """Raise RateLimited (nothing sent) during a back-off, or wait it out when allowed to."""
        wait = self.budget.wait_s(what)
        if wait <= 0:
            return
        if wait > self.wait_limited_s:
            self.budget.check(what)  # raises RateLimited with the reason
            return
        backoff = self.budget.backoff()
        if self.on_wait is not None:
            self.on_wait(f"{what}: waiting {wait:.1f} s for the exchange's back-off"
                         + (f" ({'IP ban' if backoff.banned else 'Retry-After'}: {backoff.reason})" if backoff else ""))
        time.sleep(wait)

    @property
    def clock_offset_ms(self) -> int:
        """Local clock minus the exchange's, as last measured (ccxt signs with local time minus this)."""
        options = getattr(self.client, "options", None)
        return int(options.get("timeDifference") or 0) if isinstance(options, dict) else 0

    def sync_clock(self) -> int | None:
        """Measure the offset to the exchange's clock (GET /api/v3/time, weight 1); signed requests use it from
        now on. Returns the new offset in ms, or None when the exchange did not answer or asked us to back off (the
        old offset stays)."""
        if self.budget.wait_s("fetch_time") > 0:  # a request during a ban extends it
            return None
        try:
            with self._lock:
                offset = int(self.client.load_time_difference())
                if isinstance(getattr(self.client, "options", None), dict):
                    self.client.options["adjustForTimeDifference"] = True
        except Exception as exc:  # the next call tells whether it worked
            log.warning("clock resynchronisation failed: %s", redact(str(exc))[:200])
            return None
        log.info("clock offset to the exchange: %+d ms", offset)
        return offset

    def swap_credentials(self, api_key: str, secret: str) -> None:
        """Put a new key pair on the client atomically, between two requests (R8.3): a request signed with the
        new key and the old secret cannot exist. The caller proves the new pair first."""
        if getattr(self.client, "verbose", False):
            raise ConfigError("ccxt verbose mode would print the API key: turn it off before setting credentials")
        with self._lock:
            self.client.apiKey, self.client.secret = api_key, secret
            options = getattr(self.client, "options", None)
            if isinstance(options, dict):  # ccxt binance reads -2015 after a first success as a temporary ban;
                options["hasAlreadyAuthenticatedSuccessfully"] = False  # for a new key it is a refusal

    def _tell(self, record: CallRecord) -> None:
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:  # a listener (log, audit) must never break an exchange call
                log.exception("call listener %r failed on %s", listener, record.what)

    def read(self, what: str, fn: Callable[..., T], *args: Any, attempts: int = 4, **kwargs: Any) -> T:
        """An idempotent read, retried with backoff on transient failures (5xx, timeouts); never during a
        back-off the exchange asked for (that is raised at once, unless this broker may wait it out)."""
        attempt = waited = 0
        while True:
            try:
                return self.call(what, fn, *args, **kwargs)
            except RateLimited as exc:  # a broker allowed to wait (the emergency stop) waits it out on the next call
                waited += 1
                if self.wait_limited_s <= 0 or waited > 3 or exc.until - time.time() > self.wait_limited_s:
                    raise
            except ExchangeUnavailable:
                attempt += 1
                if attempt >= attempts:
                    raise
                time.sleep(0.25 * 2 ** (attempt - 1))

    def instruments(self, symbols: list[str]) -> dict[str, Instrument]:
        """Tick size, lot step and min notional per symbol from the exchange's own filters."""
        markets = self.read("load_markets", self.client.load_markets)
        out = {}
        for sym in symbols:
            market = markets.get(symbol_to_ccxt(sym))
            if market is None:
                raise ExchangeRejected(f"{sym} is not listed on the exchange")
            filters = {f["filterType"]: f for f in market["info"].get("filters", [])}
            tick = float(filters.get("PRICE_FILTER", {}).get("tickSize", 0.01))
            step = float(filters.get("LOT_SIZE", {}).get("stepSize", 0.00001))
            notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
            out[sym] = Instrument(sym, tick, step, float(notional.get("minNotional", 5.0)))
            self.support[sym] = ListSupport.of(market["info"])
        return out

    def attaches_stops(self, symbol: str) -> bool:
        """True where an entry can carry its protective stop in one order list (OPO/OTO)."""
        return self.support.get(symbol, ListSupport()).entry_with_stop

    # --- Broker protocol -----------------------------------------------------------------------------------
    def submit(self, order: Order, bar: Bar, ts: int, attached: Order | None = None) -> None:
        """Send ``order``; with ``attached`` (an entry's protective stop, where ``attaches_stops``) both go as one
        order list, the stop pending until the entry has filled."""
        order.apply(OrderStatus.SUBMITTED, ts)
        self._refs[order.client_order_id] = reference_price(order, bar, ts)
        bar.working.append(order)
        _always_wake(bar)
        if self.before_submit is not None:
            self.before_submit(order)
            if attached is not None:
                self.before_submit(attached)  # journalled too: a restart looks for it on the exchange
        if attached is not None:
            attached.apply(OrderStatus.SUBMITTED, ts)
            self._pending[order.client_order_id] = attached
        try:
            response = (self.send(order, bar.instrument) if attached is None else
                        self._send_list(order, attached, bar.instrument))
        except (ExchangeRejected, AuthenticationError) as exc:  # refused: the order does not exist
            self._refused(order, bar, ts, EventCode.ORDER_REJECTED, exc)
            return
        except (RateLimited, ExchangeBusy, ClockOutOfSync) as exc:  # not sent, or refused unprocessed (-1008,
            # -1021 even after the resynchronisation): it does not exist
            self._refused(order, bar, ts, EventCode.ORDER_NOT_SENT, exc)
            return
        except ExchangeError as exc:  # unknown outcome: it may execute; the polls ask for it (R9.4)
            self._unknown[order.client_order_id] = time.time()
            self.notices.append(_problem(EventCode.ORDER_OUTCOME_UNKNOWN, order, ts, exc))
            return
        self._adopt(order, response, ts)
        self._unread[order.client_order_id] = response

    def _send_list(self, entry: Order, stop: Order, inst: Instrument) -> dict[str, Any]:
        """The entry and its pending stop in one request; the entry's report in ccxt's shape. An unknown outcome
        is asked for by the entry's client id, as ``send`` does."""
        support = self.support.get(entry.symbol, ListSupport())
        params = order_lists.entry_params(entry, stop, inst, self._refs.get(entry.client_order_id, 0.0), support,
                                          self.taker_rate, self.entry_limit_bps)
        place = self.client.privatePostOrderListOpo if support.opo else self.client.privatePostOrderListOto
        try:
            response: dict[str, Any] = self.call("create_order_list", place, params)
        except (RateLimited, ExchangeBusy):
            raise
        except ExchangeUnavailable as exc:
            return self._look_up_unknown(entry, exc)
        report = order_lists.report_for(response, entry.client_order_id)
        if report is None:  # booked, the entry's report missing: asked for, and unknown until seen
            return self._look_up_unknown(entry, ExchangeUnavailable("the list's answer has no report of the entry"))
        return order_lists.parse(self.client, report, entry.symbol)

    def _look_up_unknown(self, order: Order, exc: ExchangeError) -> dict[str, Any]:
        """After an answer that leaves the outcome unknown: the exchange's view of ``order``, or a plain
        ``ExchangeUnavailable`` (outcome unknown). A look-up refused in turn (-1008, a 429, the clock) says nothing
        about the order: it must not read as "not sent", or an order the exchange booked leaves the journal."""
        try:
            return self.fetch(order)
        except ExchangeError as lookup:
            seen = "not shown yet" if isinstance(lookup, OrderNotFound) else f"look-up failed: {lookup}"
            raise ExchangeUnavailable(f"{order.client_order_id}: outcome unknown ({exc}; {seen}); not sent again "
                                      "until the exchange shows it or the unknown-outcome window passes") from exc

    def arm(self, stop: Order, bar: Bar, ts: int) -> bool:
        """The entry that carried ``stop`` has filled: adopt the stop the exchange placed (True), or say it is not
        there — the entry filled only in part, or the stop was refused — so the engine places one (False)."""
        for cid, pending in list(self._pending.items()):
            if pending is stop:
                del self._pending[cid]
        try:
            info = self.fetch(stop)
        except OrderNotFound:
            order_lists.settle_pending(stop, ts)
            return False
        except ExchangeError:  # most likely there, not known now: the polls ask for it (a second stop would
            self._unknown[stop.client_order_id] = time.time()  # lock the same coins and be refused)
            bar.working.append(stop)
            _always_wake(bar)
            return True
        self._adopt(stop, info, ts)
        if not stop.is_open:
            return False
        stop.qty = float(info.get("amount") or stop.qty)
        bar.working.append(stop)
        _always_wake(bar)
        return True

    def replace(self, old: Order, new: Order, bar: Bar, ts: int) -> None:
        """Cancel ``old`` (a protective stop) and place ``new`` (the exit sell, or a tighter stop) in one request
        where the exchange takes it (R9.3); elsewhere cancel, then send."""
        if not self.support.get(new.symbol, ListSupport()).cancel_replace or not old.is_open:
            self.cancel(old, bar, ts)
            self.submit(new, bar, ts)
            return
        new.apply(OrderStatus.SUBMITTED, ts)
        self._refs[new.client_order_id] = reference_price(new, bar, ts)
        bar.working.append(new)
        _always_wake(bar)
        if self.before_submit is not None:
            self.before_submit(new)
        params = order_lists.replace_params(old, new, bar.instrument)
        try:
            response = self.call("cancel_replace", self.client.privatePostOrderCancelReplace, params)
        except RateLimited as exc:  # nothing sent: the stop stays, the exit is refused and tried again later
            self._refused(new, bar, ts, EventCode.ORDER_NOT_SENT, exc)
            return
        except ExchangeUnavailable as exc:  # unknown: both are asked for by the polls
            self._unknown[new.client_order_id] = time.time()
            self.notices.append(_problem(EventCode.ORDER_OUTCOME_UNKNOWN, new, ts, exc))
            return
        except ExchangeError as exc:
            cancel, _ = order_lists.replace_failure(exc)
            if cancel == "SUCCESS" and old.is_open:  # -2021: the stop is gone, the new order refused
                old.apply(OrderStatus.CANCELED, ts)
                if old in bar.working:
                    bar.working.remove(old)
            self._refused(new, bar, ts, EventCode.ORDER_REJECTED, exc)
            return
        if old.is_open:
            old.apply(OrderStatus.CANCELED, ts)
        if old in bar.working:
            bar.working.remove(old)
        placed = response.get("newOrderResponse") if isinstance(response, dict) else None
        if not isinstance(placed, dict):
            return  # looked up by the next poll
        info = order_lists.parse(self.client, placed, new.symbol)
        self._adopt(new, info, ts)
        self._unread[new.client_order_id] = info

    def _refused(self, order: Order, bar: Bar, ts: int, code: EventCode, exc: Exception) -> None:
        """The order does not exist on the exchange (nor, for an entry, the stop that was to ride on it)."""
        order.apply(OrderStatus.REJECTED, ts)
        if order in bar.working:
            bar.working.remove(order)
        pending = self._pending.pop(order.client_order_id, None)
        if pending is not None:
            order_lists.settle_pending(pending, ts)
        self.notices.append(_problem(code, order, ts, exc))

    def cancel(self, order: Order, bar: Bar, ts: int) -> None:
        if order.is_open:
            try:  # cancelling by client id is idempotent: a retry after a lost answer finds it gone
                self.read("cancel_order", self.client.cancel_order, order.exchange_order_id,
                          symbol_to_ccxt(order.symbol), {"origClientOrderId": order.client_order_id})
            except OrderNotFound:
                pass  # already gone (filled or cancelled): the next poll tells which
            except ExchangeError as exc:  # still working on the exchange; the next poll sees it
                self.notices.append(_problem(EventCode.CANCEL_FAILED, order, ts, exc))
                return
            else:
                order.apply(OrderStatus.CANCELED, ts)
        if order in bar.working and not order.is_open:
            bar.working.remove(order)

    def on_bar(self, bar: Bar, i: int) -> list[OrderFilled]:
        """Poll every working order once and report new fills."""
        fills: list[OrderFilled] = []
        for order in list(bar.working):
            info = self._unread.pop(order.client_order_id, None)
            if info is None:
                try:
                    info = self._lookup(order)
                except ExchangeError:
                    continue  # ask again next time; a protective stop stays on the exchange meanwhile
                if info is None:  # not on the exchange (yet)
                    if order.status is OrderStatus.SUBMITTED and self._gave_up(order):
                        order.apply(OrderStatus.REJECTED, bar.ts[i])
                        bar.working.remove(order)
                        self.notices.append(_problem(EventCode.ORDER_NEVER_ARRIVED, order, bar.ts[i]))
                    continue
                self._adopt(order, info, bar.ts[i])
            self._unknown.pop(order.client_order_id, None)
            self._emit_new(order, info, fills)
            if not order.is_open:
                bar.working.remove(order)
                pending = self._pending.get(order.client_order_id)
                if pending is not None and order.filled_qty <= 0:  # the entry never filled: nor will its stop
                    del self._pending[order.client_order_id]
                    order_lists.settle_pending(pending, bar.ts[i])
        return fills

    def outcome_unknown(self, order: Order) -> bool:
        """True while ``order``'s fate is still being asked for (R9.4)."""
        return order.client_order_id in self._unknown

    def expect(self, order: Order) -> None:
        """An order whose outcome is unknown from before a restart: asked for until the window passes (R9.4)."""
        self._unknown.setdefault(order.client_order_id, time.time())

    def triggered(self, order: Order) -> bool:
        """True when a stop order triggered on the exchange and still waits, unfilled, on the book (R9.3)."""
        return order.client_order_id in self._working and order.is_open

    # --- orders --------------------------------------------------------------------------------------------
    def fetch(self, order: Order) -> dict[str, Any]:
        info: dict[str, Any] = self.read("fetch_order", self.client.fetch_order, order.exchange_order_id,
                                         symbol_to_ccxt(order.symbol), {"origClientOrderId": order.client_order_id})
        return info

    def _lookup(self, order: Order) -> dict[str, Any] | None:
        """The exchange's view of ``order`` by client id, or by the recent trades of orders we do not know; None
        while it is not to be seen."""
        try:
            return self.fetch(order)
        except OrderNotFound:
            pass
        if order.client_order_id not in self._unknown:
            return None
        since = int((self._unknown[order.client_order_id] - 5.0) * 1000)
        trades = self.read("fetch_my_trades", self.client.fetch_my_trades, symbol_to_ccxt(order.symbol), since)
        for oid in {str(t.get("order")) for t in trades if t.get("order")}:
            info: dict[str, Any] = self.read("fetch_order", self.client.fetch_order, oid,
                                             symbol_to_ccxt(order.symbol))
            if info.get("clientOrderId") == order.client_order_id:
                return info
        return None

    def _gave_up(self, order: Order) -> bool:
        """An order that never showed up: never sent-and-lost (then at once), or unknown for the whole window."""
        since = self._unknown.get(order.client_order_id)
        if since is None:
            return True
        if time.time() - since < self.unknown_outcome_s:
            return False
        del self._unknown[order.client_order_id]
        return True

    def send(self, order: Order, inst: Instrument) -> dict[str, Any]:
        """The one order path (the engine's orders and the emergency stop's sells): send once. On an unknown
        outcome look the id up once; if the exchange does not show it, raise: it may still execute, so nothing
        is sent again for it until its outcome is known (R9.4)."""
        try:
            response: dict[str, Any] = self.call("create_order", self.client.create_order,
                                                 *self._order_args(order, inst))
            return response
        except (RateLimited, ExchangeBusy):
            raise  # not sent at all, or refused before processing (-1008: try again later)
        except ExchangeUnavailable as exc:
            return self._look_up_unknown(order, exc)

    def _order_args(self, order: Order, inst: Instrument) -> tuple[Any, ...]:
        symbol = symbol_to_ccxt(order.symbol)
        params: dict[str, Any] = {"newClientOrderId": order.client_order_id}
        side = order.side.value
        if order.type is OrderType.STOP:
            stop = order.stop_price or 0.0
            limit = _round_price(stop * (1 - STOP_LIMIT_OFFSET), inst.tick_size)
            params.update({"stopLossPrice": stop, "timeInForce": "GTC"})
            return symbol, "limit", side, order.qty, limit, params
        if order.type is OrderType.LIMIT:
            params["timeInForce"] = "GTC"
            return symbol, "limit", side, order.qty, order.price, params
        if order.quote_qty and order.side is Side.BUY:
            params["quoteOrderQty"] = order.quote_qty
        return symbol, "market", side, order.qty, None, params

    def _adopt(self, order: Order, info: dict[str, Any], ts: int) -> None:
        """Move the local order along its state machine from the exchange's view of it."""
        order.exchange_order_id = str(info.get("id") or order.exchange_order_id or "") or None
        raw: dict[str, Any] = info["info"] if isinstance(info.get("info"), dict) else {}
        if order.type is OrderType.STOP and raw.get("isWorking") in (True, "true") and raw.get("stopPrice"):
            self._working.add(order.client_order_id)
        status = "open" if raw.get("status") == "PENDING_NEW" else info.get("status")
        filled = float(info.get("filled") or 0.0)
        when = int(info.get("lastUpdateTimestamp") or info.get("timestamp") or ts)
        if order.status is OrderStatus.SUBMITTED and status in ("open", "closed", "canceled", "expired"):
            order.apply(OrderStatus.ACCEPTED, when)
        if order.is_open and filled - order.filled_qty > max(1e-12, filled * 1e-9):
            price = float(info.get("average") or info.get("price") or 0.0)
            delta = filled - order.filled_qty
            prev_value = order.avg_fill_price * order.filled_qty
            order.qty = max(order.qty, filled)
            order.record_fill(delta, (price * filled - prev_value) / delta if delta else price, when)
        final = {"canceled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}
        if status in final and order.is_open:
            order.apply(final[status], when)
        elif status == "closed" and order.is_open and filled > 0:
            order.qty = filled
            order.apply(OrderStatus.FILLED, when)

    def _emit_new(self, order: Order, info: dict[str, Any], fills: list[OrderFilled]) -> None:
        """Report what filled since the last report: quantity, its average price and its share of the fees."""
        cid = order.client_order_id
        done_qty, done_fee, done_base = self._reported.get(cid, (0.0, 0.0, 0.0))
        if order.filled_qty <= done_qty + 1e-12:
            return
        qty = order.filled_qty - done_qty
        fees = self._fees(order, info)
        price = (order.avg_fill_price * order.filled_qty - (self._value.get(cid, 0.0))) / qty
        self._value[cid] = order.avg_fill_price * order.filled_qty
        self._reported[cid] = (order.filled_qty, fees.value, fees.base_qty)
        ref = self._refs.get(cid) or price  # an order adopted after a restart has no reference: no slippage
        # signed quote cost against the reference (the decision bar's close, or the stop/limit price): what the
        # abnormal-slippage breaker (R6.2), the alerts and the reports measure, as on the paper broker
        cost = slippage_cost(order, price, qty, ref)
        fills.append(OrderFilled(f"{cid}-{order.filled_qty:.8f}", cid, order.symbol, order.side, qty, price,
                                 max(fees.value - done_fee, 0.0), order.updated_ts, order.tag,
                                 "maker" if order.type is OrderType.LIMIT else "taker", cost, fees.asset,
                                 max(fees.base_qty - done_base, 0.0)))

    # --- fees (R9.1, R9.2) ----------------------------------------------------------------------------------
    def _fees(self, order: Order, info: dict[str, Any]) -> Fees:
        """The order's commission so far. Binance's order lookup carries none: then its trades are asked."""
        entries = fee_entries(info)
        if not entries and order.exchange_order_id:
            try:
                trades = self.call("fetch_my_trades", self.client.fetch_my_trades, symbol_to_ccxt(order.symbol),
                                   None, None, {"orderId": order.exchange_order_id})
                entries = [e for t in trades for e in fee_entries(t)]
            except ExchangeError:  # unreadable now: estimated as Binance charges without BNB (R9.1)
                return estimated_fees(order, self.taker_rate)
        return self.value_fees(order.symbol, order.avg_fill_price, entries)

    def value_fees(self, symbol: str, fill_price: float, entries: list[tuple[float, str]]) -> Fees:
        """(cost, asset) commissions valued in quote, another asset (BNB) at its own USDT price (R9.2)."""
        return value_fees(symbol, fill_price, entries, self.usdt_price)

    def usdt_price(self, asset: str) -> float:
        """The asset's last USDT price (read at most once a minute); NaN if the exchange cannot tell."""
        cached = self._prices.get(asset)
        now = time.time()
        if cached is not None and now - cached[1] < PRICE_TTL_S:
            return cached[0]
        try:
            ticker = self.read("fetch_ticker", self.client.fetch_ticker, f"{asset}/{QUOTE}")
            price = float(ticker.get("last") or ticker.get("close") or math.nan)
        except ExchangeError:
            return cached[0] if cached is not None else math.nan
        self._prices[asset] = (price, now)
        return price


def _problem(code: EventCode, order: Order, ts: int, exc: Exception | None = None) -> Event:
    return Event.of(code, OrderProblem(client_order_id=order.client_order_id, symbol=order.symbol,
                                       error=str(exc) if exc is not None else None), ts=ts)


def _round_price(price: float, tick: float) -> float:
    return round(math.floor(price / tick + 1e-9) * tick, 10) if tick > 0 else price


def _always_wake(bar: Bar) -> None:
    """Live orders change on the exchange, not on our bar's range: poll whenever anything is working."""
    bar.wake_low = math.inf
    bar.n_market = len(bar.working)
