"""The emergency stop (R6.1, R6.5): halt Rampart and flatten what it manages, whether or not the live process runs.

The order of work matters, and every step is safe to repeat:

1. Write the HALT flag ``data_dir/live/HALT`` (atomic, fsync'd). From then on a live session must place no
   order, shut down, and leave the state file alone: after HALT the state file belongs to the emergency stop.
2. Talk to the exchange directly with the stored credentials (no live process needed): cancel every open order
   on the managed symbols (Rampart's and, per R6.1, the others too), then sell at market what Rampart manages
   (the exchange's total of the base asset minus ``state.baseline``, rounded down to the lot step; dust below
   the minimum notional is reported, not sold). Repeat until flat, at most three rounds.
3. Save the live state HALTED (flattened positions and cancelled orders cleared): it survives restarts (R6.4).
4. Record a critical EMERGENCY_STOP event in DuckDB; store the urgent notification in the outbox and send it to
   Slack at once (``core.notify``; it is logged on ``rampart.notify`` too).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import Settings
from core.domain import Instrument, Order, OrderTag, OrderType, Side, TradingState
from core.errors import ConfigError, ExchangeError, ExchangeRejected, ExchangeUnavailable, OrderNotFound, StoreError
from core.events import EmergencyStopped, Event, EventCode
from core.execution.broker import OUR_PREFIX, base36
from core.execution.ccxt_broker import CcxtBroker, fee_in_quote
from core.execution.limits import RequestBudget, budget_path
from core.market.candles import base_asset, symbol_to_ccxt
from core.security.audit import CallLog, record_audit
from core.security.credentials import load_credentials
from core.state.halt import halt_path, write_halt
from core.state.live import LiveState, load_state, save_state
from core.venue import Venue, venue_for

log = logging.getLogger("rampart.control")
notify_log = logging.getLogger("rampart.notify")

ROUNDS = 3  # cancel + sell rounds before giving up and reporting what is left
SELL_ATTEMPTS = 3
CALL_TIMEOUT_MS = 5_000  # an emergency must not hang 10 s on one dead connection
DUST_EPS = 1e-8  # the exchange's smallest unit of any asset
WAIT_LIMITED_S = 600.0  # an IP ban shorter than this is waited out; a longer one is reported as such


# --- the report -------------------------------------------------------------------------------------------
@dataclass
class EmergencyReport:
    reason: str
    who: str
    exchange: str
    requested_at: str
    halt_file: str
    cancelled: list[dict[str, Any]] = field(default_factory=list)  # one entry per cancelled order
    closed: dict[str, tuple[float, float]] = field(default_factory=dict)  # symbol -> (qty sold, average price)
    leftovers: list[str] = field(default_factory=list)  # what still stands when not flat
    flat: bool = False
    seconds_to_flat: float | None = None
    state: str = TradingState.HALTED.value
    dust: dict[str, float] = field(default_factory=dict)  # managed qty too small to sell, by symbol
    sells: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> fees, entry price, pnl, order ids
    errors: list[str] = field(default_factory=list)  # problems met on the way (some may have been overcome)
    waits: list[str] = field(default_factory=list)  # back-offs the exchange asked for (429, IP ban), waited out
    rounds: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["closed"] = {s: [q, p] for s, (q, p) in self.closed.items()}
        return out

    def summary(self) -> str:
        """One line for the notification and the event message."""
        closed = ", ".join(f"{s} {q:g} @ {p:,.2f}" for s, (q, p) in self.closed.items()) or "none"
        outcome = (f"FLAT in {self.seconds_to_flat:.3f} s" if self.flat and self.seconds_to_flat is not None
                   else f"NOT FLAT ({'; '.join(self.leftovers) or 'see errors'})")
        return (f"EMERGENCY STOP by {self.who} on {self.exchange} ({self.reason}): {outcome}; "
                f"{len(self.cancelled)} order(s) cancelled; closed {closed}; state {self.state}")

    def text(self) -> str:
        lines = [self.summary(), f"  HALT flag: {self.halt_file}"]
        for o in self.cancelled:
            who = "Rampart" if o["rampart"] else "not Rampart's"
            lines.append(f"  cancelled {o['symbol']} {o['side']} {o['type']} {o['qty']} @ {o['price']} "
                         f"[{o['client_order_id']}, {who}]")
        for sym, info in self.sells.items():
            lines.append(f"  sold {sym}: {info['qty']:g} @ {info['avg_price']:,.2f}, fees {info['fees']:.4f}, "
                         f"P&L {_fmt_opt(info.get('pnl'))}")
        lines += [f"  dust left {sym}: {qty:g} (below the minimum order)" for sym, qty in self.dust.items()]
        lines += [f"  waited: {item}" for item in self.waits]
        lines += [f"  LEFT: {item}" for item in self.leftovers]
        lines += [f"  error: {item}" for item in self.errors]
        return "\n".join(lines)

    def markdown(self) -> str:
        body = "\n".join(f"- {line.strip()}" for line in self.text().splitlines()[1:])
        return f"# Emergency stop\n\n**{self.summary()}**\n\n{body}\n"


def _fmt_opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+,.2f}"


# --- flattening on the exchange ---------------------------------------------------------------------------
class _Flattener:
    """Cancel, then sell at market, round after round, until the exchange shows nothing open or managed."""

    def __init__(self, broker: CcxtBroker, symbols: list[str], baseline: dict[str, float] | None,
                 report: EmergencyReport, started: float, stamp: str) -> None:
        self.broker = broker
        self.client = broker.client
        self.symbols = symbols
        self.baseline = baseline  # None: which holdings are Rampart's is unknown, so none are sold
        self.report = report
        self.started = started
        self.stamp = stamp
        self.instruments: dict[str, Instrument] = {}
        self.prices: dict[str, float] = {}
        self.fills: dict[str, list[tuple[float, float, float, str]]] = {}  # symbol -> (qty, price, fee, cid)
        self.open_left: dict[str, list[dict[str, Any]]] | None = None  # as last seen, once the run is over
        self.held_left: dict[str, float] | None = None

    def run(self) -> None:
        self.instruments = self.broker.instruments(self.symbols)  # also loads the markets create_order needs
        for rnd in range(1, ROUNDS + 2):
            self.report.rounds = min(rnd, ROUNDS)
            opened = {s: self._open_orders(s) for s in self.symbols}
            acting = rnd <= ROUNDS  # the last pass only looks
            if acting:
                for sym, orders in opened.items():
                    if orders:
                        self._cancel(sym, orders)
            to_sell, stuck = self._holdings()
            if not any(opened.values()) and not to_sell:
                self._finish({}, stuck)
                return
            if not acting:
                self._finish(opened, {**stuck, **to_sell})
                return
            for sym, qty in to_sell.items():
                self._sell(sym, qty, rnd)

    def _finish(self, still_open: dict[str, list[dict[str, Any]]], held: dict[str, float]) -> None:
        self.open_left, self.held_left = still_open, held
        for orders in still_open.values():
            self.report.leftovers += [f"open order {o.get('clientOrderId')} ({o.get('side')} {o.get('amount')} "
                                      f"{o.get('symbol')})" for o in orders]
        self.report.leftovers += [f"{sym}: {qty:g} managed {base_asset(sym)} not sold" for sym, qty in held.items()]
        if self.baseline is None:
            self.report.leftovers.append("managed positions unknown (no readable live state): none sold")
        self.report.flat = not self.report.leftovers
        if self.report.flat:
            self.report.seconds_to_flat = round(time.perf_counter() - self.started, 4)

    def _open_orders(self, sym: str) -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = self.broker.read("fetch_open_orders", self.client.fetch_open_orders,
                                                        symbol_to_ccxt(sym))
        return orders

    def _cancel(self, sym: str, orders: list[dict[str, Any]]) -> None:
        """Cancel every open order of the symbol in one call (a retried call finding none left is fine)."""
        try:
            answer = self.broker.read("cancel_all_orders", self.client.cancel_all_orders, symbol_to_ccxt(sym))
        except OrderNotFound:
            answer = None  # none open any more: the first of a retried call did it, or they filled meanwhile
        except ExchangeError as exc:
            self.report.errors.append(f"{sym}: cancelling open orders failed: {exc}")
            return
        done = {str(a.get("id")) for a in answer or []}
        known = {o["id"] for o in self.report.cancelled}
        for order in orders:
            oid = str(order.get("id"))
            if oid in known or (answer is not None and oid not in done):
                continue
            self.report.cancelled.append(_describe(sym, order, "canceled" if answer is not None else "gone"))

    def _holdings(self) -> tuple[dict[str, float], dict[str, float]]:
        """(quantity to sell now, managed quantity that cannot be sold now) per symbol; dust goes to the report."""
        balance = self.broker.read("fetch_balance", self.client.fetch_balance)
        total, free = balance.get("total") or {}, balance.get("free") or {}
        to_sell: dict[str, float] = {}
        stuck: dict[str, float] = {}
        if self.baseline is None:
            return to_sell, stuck
        for sym in self.symbols:
            asset, inst = base_asset(sym), self.instruments[sym]
            managed = float(total.get(asset) or 0.0) - float(self.baseline.get(asset, 0.0))
            whole = inst.round_qty(max(managed, 0.0))
            now = inst.round_qty(max(min(managed, float(free.get(asset) or 0.0)), 0.0))  # locked coins wait
            self.report.dust.pop(sym, None)
            if whole <= 0 or whole * self._price(sym) < inst.min_notional:
                if round(managed, 8) >= DUST_EPS:
                    self.report.dust[sym] = round(managed, 8)
                continue
            if now <= 0 or now * self._price(sym) < inst.min_notional:
                stuck[sym] = whole
                continue
            to_sell[sym] = now
        return to_sell, stuck

    def _price(self, sym: str) -> float:
        if sym not in self.prices:
            ticker = self.broker.read("fetch_ticker", self.client.fetch_ticker, symbol_to_ccxt(sym))
            self.prices[sym] = float(ticker.get("bid") or ticker.get("last") or 0.0)
        return self.prices[sym]

    def _sell(self, sym: str, qty: float, rnd: int) -> None:
        cid = f"{OUR_PREFIX}-estop-{sym}-{rnd}-{self.stamp}"  # deterministic: a retry never doubles the sell
        order = Order(cid, sym, Side.SELL, OrderType.MARKET, qty, OrderTag.EXIT, int(time.time() * 1000),
                      reason=f"emergency stop by {self.report.who}: {self.report.reason}")
        try:
            info = self.broker.send(order, self.instruments[sym])
        except ExchangeRejected as exc:
            self.report.errors.append(f"{sym}: market sell of {qty:g} refused: {exc}")
            return
        except ExchangeUnavailable as exc:
            self.report.errors.append(f"{sym}: market sell of {qty:g} not confirmed: {exc}")
            return
        filled = float(info.get("filled") or 0.0)
        if filled <= 0:
            self.report.errors.append(f"{sym}: market sell {cid} filled nothing (status {info.get('status')})")
            return
        price = float(info.get("average") or info.get("price") or 0.0)
        fee = fee_in_quote(info, price, sym, self.broker.usdt_price)  # each fee in its own asset (R9.2)
        self.fills.setdefault(sym, []).append((filled, price, fee, cid))

    def summarize_sells(self, positions: dict[str, dict[str, Any]]) -> None:
        """closed {symbol: (qty, average price)} and per-symbol fees and P&L against the recorded entry."""
        for sym, fills in self.fills.items():
            qty = sum(f[0] for f in fills)
            avg = sum(f[0] * f[1] for f in fills) / qty
            fees = sum(f[2] for f in fills)
            entry = positions.get(sym, {}).get("avg_price")
            pnl = (avg - float(entry)) * qty - fees if entry else None
            self.report.closed[sym] = (round(qty, 12), round(avg, 8))
            self.report.sells[sym] = {"qty": round(qty, 12), "avg_price": round(avg, 8), "fees": fees,
                                      "entry_price": entry, "pnl": pnl, "orders": [f[3] for f in fills]}


def _describe(sym: str, order: dict[str, Any], outcome: str) -> dict[str, Any]:
    cid = str(order.get("clientOrderId") or "")
    return {"symbol": sym, "id": str(order.get("id")), "client_order_id": cid, "rampart": cid.startswith(OUR_PREFIX),
            "side": order.get("side"), "type": order.get("type"), "qty": order.get("amount"),
            "price": order.get("price"), "stop_price": order.get("stopPrice") or order.get("triggerPrice"),
            "outcome": outcome}


def emergency_stop(settings: Settings, reason: str, who: str, venue: Venue | None = None, *,
                   state_path: Path | None = None, timeout_ms: int = CALL_TIMEOUT_MS) -> EmergencyReport:
    """HALT, cancel every open order, sell every managed position at market, save HALTED, record, notify.

    Works without the live process. Exchange failures do not stop the rest: the report says what is left
    (``flat`` False) and the HALT flag and HALTED state are written whatever happens on the exchange."""
    started = time.perf_counter()
    venue = venue or venue_for(settings.exchange)
    reason, who = _check_request(reason, who)
    requested = datetime.now(UTC)
    write_halt(settings.data_dir, reason, who, requested)  # first: nothing new may come from Rampart after it
    _notify(f"EMERGENCY STOP requested by {who} ({reason}): HALT set, flattening on {venue.describe()}")
    report = EmergencyReport(reason, who, venue.name, requested.isoformat(), str(halt_path(settings.data_dir)))
    path = state_path or venue.state_path(settings.data_dir)
    state, baseline, writable = _load_state(path, report)
    stamp = base36(int(requested.timestamp() * 1000))
    flattener: _Flattener | None = None
    key_id = None
    calls = CallLog()  # R8.5: the stop's credential uses go into the audit journal with the stop itself
    try:
        credentials = load_credentials(settings.credentials)  # the configured provider (R8.1)
        key_id = calls.key_id = credentials.key_id
        client = venue.client(api_key=credentials.api_key.get_secret_value(),
                              secret=credentials.secret.get_secret_value(), timeout_ms=timeout_ms,
                              enableRateLimit=False)
        ex = settings.exchange
        budget = RequestBudget(ex.weight_limit, 1.0, budget_path(settings.data_dir))  # the live session's back-off

        def waiting(line: str) -> None:  # R9.5: an IP ban or a Retry-After is waited out, and said so
            report.waits.append(line)
            notify_log.critical("emergency stop %s", line)

        broker = CcxtBroker(client, budget=budget, wait_limited_s=WAIT_LIMITED_S, on_wait=waiting)
        broker.listeners.append(calls)
        flattener = _Flattener(broker, list(settings.market.symbols), baseline, report, started, stamp)
        flattener.run()
    except Exception as exc:  # an emergency path must still save HALTED, record and notify, whatever failed
        log.exception("emergency stop: exchange work failed")
        report.errors.append(f"{type(exc).__name__}: {exc}"[:500])
        report.leftovers.append("exchange work did not complete (see errors): orders and positions unverified")
        report.flat = False
    if flattener is not None:
        flattener.summarize_sells(state.positions)
    if writable:
        _save_halted(path, state, flattener)
    _record(settings, report, state.session_id, key_id, path)
    record_audit(settings, [*calls.entries, ("emergency_stop", {
        "who": who, "reason": reason, "exchange": venue.name, "key_id": key_id, "session_id": state.session_id,
        "flat": report.flat, "cancelled": len(report.cancelled), "closed": report.closed, "errors": report.errors})])
    _notify_report(settings, report, stamp, state.session_id)
    return report


def _check_request(reason: str, who: str) -> tuple[str, str]:
    """Refuse a malformed request before anything is written (ConfigError says what to fix)."""
    reason = (reason or "").strip()
    if not reason:
        raise ConfigError("an emergency stop needs a reason, e.g. --reason 'exchange outage'")
    return reason, (who or "").strip() or "unknown"


def _load_state(path: Path, report: EmergencyReport) -> tuple[LiveState, dict[str, float] | None, bool]:
    """(state, baseline or None when unknown, whether the file may be rewritten)."""
    if not path.exists():
        report.errors.append(f"no live state file at {path}: which holdings are Rampart's is unknown, none sold "
                             "(check --data-dir); open orders are still cancelled")
        return LiveState(), None, True
    try:
        state = load_state(path)
    except ConfigError as exc:  # a corrupt file is left as it is for the operator to inspect
        report.errors.append(str(exc))
        return LiveState(), None, False
    return state, dict(state.baseline), True


def _save_halted(path: Path, state: LiveState, flattener: _Flattener | None) -> None:
    """HALTED; positions of symbols now flat and orders no longer open are cleared (unknown ones kept)."""
    state.trading_state = TradingState.HALTED.value
    if flattener is not None and flattener.open_left is not None and flattener.held_left is not None:
        still_open = {str(o.get("clientOrderId")) for orders in flattener.open_left.values() for o in orders}
        held = flattener.held_left
        for sym in flattener.symbols:
            if sym not in held and not flattener.open_left.get(sym):
                state.positions.pop(sym, None)
        state.orders = {cid: o for cid, o in state.orders.items() if cid in still_open}
    save_state(path, state)


def _record(settings: Settings, report: EmergencyReport, session_id: str | None, key_id: str | None,
            path: Path) -> None:
    from core.store import Store  # DuckDB only here: the exchange work above must not wait for it

    details = {**report.to_dict(), "state_file": str(path), "api_key": key_id,
               "symbols": list(settings.market.symbols)}
    try:
        event = Event.of(EventCode.EMERGENCY_STOP, EmergencyStopped(summary=report.summary(), extra=details))
        Store(settings.db_path).record(event, kind="control", session_id=session_id)
    except StoreError as exc:
        report.errors.append(f"EMERGENCY_STOP event not recorded in {settings.db_path}: {exc}")
        log.error("emergency stop not recorded in DuckDB: %s; details: %s", exc, json.dumps(details, default=str))


def _notify(line: str) -> None:
    """The log line for the request itself (before the exchange work: no DuckDB, no Slack may delay that)."""
    notify_log.critical(line)


def _notify_report(settings: Settings, report: EmergencyReport, stamp: str, session_id: str | None) -> None:
    """The outcome (R6.5): stored in the outbox (logged as it is stored), then sent to Slack at once."""
    from core.notify import deliver_now, notify
    from core.notify.notes import emergency_note
    from core.store import Store

    store = Store(settings.db_path)
    try:
        notify(store, emergency_note(f"emergency:{stamp}", report.summary(), report.to_dict(), session_id))
        deliver_now(settings, store, urgent_only=True)
    except Exception as exc:  # logged by notify all the same; the emergency's own result must not be lost
        report.errors.append(f"emergency notification not stored or sent: {exc}"[:500])
