"""CcxtBroker: the live Broker over the real ccxt Binance client.

- Client order ids are deterministic (``client_order_id``); when a submit fails in a way that leaves its fate
  unknown (timeout, 5xx, lost response) the broker asks the exchange for that id before anything else, and
  re-sends the *same* id only if the exchange has never seen it — so an order is never doubled.
- Protective stops are STOP_LOSS_LIMIT orders on the exchange: a position stays protected if Rampart dies.
- Every call is timed; ``latencies`` feeds the risk engine's latency monitor.
- ccxt errors are translated here, once, into Rampart's tree (``core.errors``).
"""

from __future__ import annotations

import bisect
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
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    OrderNotFound,
)
from core.events import Event, EventCode, OrderProblem
from core.market.candles import symbol_to_ccxt
from core.redact import redact

if TYPE_CHECKING:
    import ccxt

    from core.strategy.bar import Bar

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
STOP_LIMIT_OFFSET = 0.005  # the stop's limit price sits 0.5 % under the trigger so a fast market still fills it
SUBMIT_ATTEMPTS = 3


def translate(exc: Exception, what: str) -> ExchangeError:
    """One place where ccxt's exceptions become Rampart's (message kept, credentials scrubbed: R8.2)."""
    import ccxt

    text = redact(f"{what}: {type(exc).__name__}: {exc}")[:500]
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return AuthenticationError(text)
    if isinstance(exc, ccxt.OrderNotFound):
        return OrderNotFound(text)
    if isinstance(exc, ccxt.NetworkError):  # timeouts, 5xx, rate limits, DDoS protection
        return ExchangeUnavailable(text)
    if isinstance(exc, ccxt.InvalidOrder | ccxt.InsufficientFunds | ccxt.BadSymbol | ccxt.BadRequest):
        return ExchangeRejected(text)
    return ExchangeError(text)


class CcxtBroker:
    """Live execution on a Binance-compatible exchange through ``ccxt.binance``."""

    def __init__(self, client: ccxt.binance, *, on_latency: Callable[[str, float], None] | None = None,
                 before_submit: Callable[[Order], None] | None = None) -> None:
        self.client = client
        self.before_submit = before_submit  # the live session journals the order here, before it can exist
        self.latencies: deque[tuple[float, str, float]] = deque(maxlen=1000)  # (wall time, call, seconds)
        self.errors: deque[tuple[float, str]] = deque(maxlen=1000)
        self.notices: list[Event] = []  # for the session's event log
        self.on_latency = on_latency
        self.on_error: Callable[[str], None] | None = None  # the API-error breaker (R6.2)
        self.listeners: list[Callable[[CallRecord], None]] = []  # every call, after it returns or fails
        self._reported: dict[str, tuple[float, float]] = {}  # client order id -> (qty, fee) reported as fills
        self._unread: dict[str, dict[str, Any]] = {}  # submit responses whose fills are not reported yet
        self._value: dict[str, float] = {}  # client order id -> quote value of the fills reported
        self._refs: dict[str, float] = {}  # client order id -> reference price its slippage is measured against
        self._lock = threading.Lock()  # one request at a time: credentials change only between requests (R8.3)

    # --- plumbing ------------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one exchange call, timed; ccxt errors come out translated."""
        import ccxt

        t0, started = time.perf_counter(), time.time()
        result: Any = None
        failed: str | None = None
        try:
            with self._lock:
                result = fn(*args, **kwargs)
            return result
        except ccxt.BaseError as exc:
            self.errors.append((time.time(), f"{what}: {type(exc).__name__}"))
            error = translate(exc, what)
            failed = str(error)
            if self.on_error is not None and isinstance(error, ExchangeUnavailable | AuthenticationError):
                self.on_error(f"{what}: {type(exc).__name__}")
            raise error from exc
        finally:
            elapsed = time.perf_counter() - t0
            self.latencies.append((time.time(), what, elapsed))
            if self.on_latency is not None:
                self.on_latency(what, elapsed)
            if self.listeners:
                self._tell(CallRecord(what, started, elapsed, args, dict(kwargs), result, failed))

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
        """An idempotent read, retried with backoff on transient failures (5xx, timeouts, 429)."""
        attempt = 0
        while True:
            try:
                return self.call(what, fn, *args, **kwargs)
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
        return out

    # --- Broker protocol -----------------------------------------------------------------------------------
    def submit(self, order: Order, bar: Bar, ts: int) -> None:
        order.apply(OrderStatus.SUBMITTED, ts)
        self._refs[order.client_order_id] = _reference(order, bar, ts)
        bar.working.append(order)
        _always_wake(bar)
        if self.before_submit is not None:
            self.before_submit(order)
        try:
            response = self.send(order, bar.instrument)
        except ExchangeRejected as exc:
            order.apply(OrderStatus.REJECTED, ts)
            bar.working.remove(order)
            self.notices.append(_problem(EventCode.ORDER_REJECTED, order, ts, exc))
            return
        except ExchangeUnavailable as exc:  # stays working: the next poll asks the exchange for this id
            self.notices.append(_problem(EventCode.ORDER_OUTCOME_UNKNOWN, order, ts, exc))
            return
        self._adopt(order, response, ts)
        self._unread[order.client_order_id] = response

    def cancel(self, order: Order, bar: Bar, ts: int) -> None:
        if order.is_open:
            try:  # cancelling by client id is idempotent: a retry after a lost answer finds it gone
                self.read("cancel_order", self.client.cancel_order, order.exchange_order_id,
                          symbol_to_ccxt(order.symbol), {"origClientOrderId": order.client_order_id})
            except OrderNotFound:
                pass  # already gone (filled or cancelled): the next poll tells which
            except ExchangeUnavailable as exc:  # still working on the exchange; the next poll sees it
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
                    info = self.fetch(order)
                except ExchangeUnavailable:
                    continue  # ask again next time; a protective stop stays on the exchange meanwhile
                except OrderNotFound:
                    if order.status is OrderStatus.SUBMITTED:  # it never arrived: nothing to fill or cancel
                        order.apply(OrderStatus.REJECTED, bar.ts[i])
                        bar.working.remove(order)
                        self.notices.append(_problem(EventCode.ORDER_NEVER_ARRIVED, order, bar.ts[i]))
                    continue
                self._adopt(order, info, bar.ts[i])
            self._emit_new(order, info, fills)
            if not order.is_open:
                bar.working.remove(order)
        return fills

    # --- orders --------------------------------------------------------------------------------------------
    def fetch(self, order: Order) -> dict[str, Any]:
        info: dict[str, Any] = self.read("fetch_order", self.client.fetch_order, order.exchange_order_id,
                                         symbol_to_ccxt(order.symbol), {"origClientOrderId": order.client_order_id})
        return info

    def _order_fee(self, order: Order, info: dict[str, Any]) -> float:
        """The order's total fee in quote. Binance's order lookup carries no commission: ask its trades."""
        if _has_fees(info) or not order.exchange_order_id:
            return fee_in_quote(info, order.avg_fill_price)
        try:
            trades = self.call("fetch_my_trades", self.client.fetch_my_trades, symbol_to_ccxt(order.symbol), None,
                               None, {"orderId": order.exchange_order_id})
        except ExchangeUnavailable:
            return order.filled_qty * order.avg_fill_price * 0.001  # the exchange's base fee until it answers
        return sum(fee_in_quote(t, float(t.get("price") or order.avg_fill_price)) for t in trades)

    def send(self, order: Order, inst: Instrument) -> dict[str, Any]:
        """The one idempotent order path (the engine's orders and the emergency stop's sells): send once; on an
        unknown outcome look the id up, and re-send the same id only if the exchange never saw it."""
        last: Exception | None = None
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                response: dict[str, Any] = self.call("create_order", self.client.create_order,
                                                     *self._order_args(order, inst))
                return response
            except ExchangeUnavailable as exc:
                last = exc
                time.sleep(0.2 * (attempt + 1))
                try:
                    return self.fetch(order)
                except OrderNotFound:
                    continue  # the exchange never saw it: sending the same id again is safe
                except ExchangeUnavailable:
                    continue
        raise ExchangeUnavailable(f"{order.client_order_id}: outcome unknown after {SUBMIT_ATTEMPTS} attempts: "
                                  f"{last}")

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
        status = info.get("status")
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
        """Report what filled since the last report: quantity, its average price and its share of the fee."""
        cid = order.client_order_id
        done_qty, done_fee = self._reported.get(cid, (0.0, 0.0))
        if order.filled_qty <= done_qty + 1e-12:
            return
        qty = order.filled_qty - done_qty
        total_fee = self._order_fee(order, info)
        price = (order.avg_fill_price * order.filled_qty - (self._value.get(cid, 0.0))) / qty
        self._value[cid] = order.avg_fill_price * order.filled_qty
        self._reported[cid] = (order.filled_qty, total_fee)
        ref = self._refs.get(cid) or price  # an order adopted after a restart has no reference: no slippage
        # signed quote cost against the reference (the decision bar's close, or the stop/limit price): what the
        # abnormal-slippage breaker (R6.2), the alerts and the reports measure, as on the paper broker
        cost = (price - ref) * qty if order.side is Side.BUY else (ref - price) * qty
        fills.append(OrderFilled(f"{cid}-{order.filled_qty:.8f}", cid, order.symbol, order.side, qty, price,
                                 max(total_fee - done_fee, 0.0), order.updated_ts, order.tag,
                                 "maker" if order.type is OrderType.LIMIT else "taker", cost))


def _problem(code: EventCode, order: Order, ts: int, exc: Exception | None = None) -> Event:
    return Event.of(code, OrderProblem(client_order_id=order.client_order_id, symbol=order.symbol,
                                       error=str(exc) if exc is not None else None), ts=ts)


def _reference(order: Order, bar: Bar, ts: int) -> float:
    """What a fill is measured against: a stop's trigger, a limit's price, else the decision bar's close (the latest
    bar at or before ``ts``)."""
    if order.type is OrderType.STOP and order.stop_price:
        return order.stop_price
    if order.type is OrderType.LIMIT and order.price:
        return order.price
    i = bisect.bisect_right(bar.ts, ts) - 1
    return bar.close[i] if 0 <= i < len(bar.close) else (bar.close[-1] if bar.close else 0.0)


def _has_fees(info: dict[str, Any]) -> bool:
    return bool(info.get("fees") or info.get("fee"))


def fee_in_quote(info: dict[str, Any], price: float) -> float:
    """Total fee of an order in quote currency (a fee charged in the base asset is valued at the fill price)."""
    fees = info.get("fees") or ([info["fee"]] if info.get("fee") else [])
    total = 0.0
    for fee in fees:
        cost = float(fee.get("cost") or 0.0)
        currency = str(fee.get("currency") or "")
        total += cost if currency in ("USDT", "") else cost * price
    return total


def _round_price(price: float, tick: float) -> float:
    return round(math.floor(price / tick + 1e-9) * tick, 10) if tick > 0 else price


def _always_wake(bar: Bar) -> None:
    """Live orders change on the exchange, not on our bar's range: poll whenever anything is working."""
    bar.wake_low = math.inf
    bar.n_market = len(bar.working)
