"""Suspicious-activity detection (R8.4): signs that the account or its keys are not only Rampart's, each answered by
a critical alert and by halting entries (the session inbox's ``halt_entries`` → SAFE_MODE; exits and stops keep
working).

What counts, and the code it is raised with:
- ``AUTH_FAILURES``: ``audit.auth_failures`` authentication/signature failures (ccxt AuthenticationError,
  PermissionDenied, AccountSuspended: Binance -1022, -2015, -2014, HTTP 401) within ``audit.auth_window_s``;
- ``IP_BANNED``: one IP-ban answer (HTTP 418 "I'm a teapot", a 403 from the WAF, "IP banned");
- ``SUSPICIOUS_ORDER``: an open order on the managed symbols that Rampart did not place (checked every
  ``audit.check_orders_every`` bars, and raised by reconciliation as UNEXPLAINED_ORDER);
- ``SUSPICIOUS_TRADE``: a trade on the account whose order is not Rampart's (every ``check_account_every`` bars);
- ``SUSPICIOUS_BALANCE``: a base-asset balance that Rampart's fills do not explain, seen on two checks in a row
  (one check may fall between a fill on the exchange and its booking) or raised by reconciliation
  (POSITION_MISMATCH).
Failed dashboard/control-API logins are the dashboard's to count; it calls ``halt_entries`` itself.

The detector is a broker listener (it sees every exchange call's outcome) and a ``SessionObserver``. Halting is
requested at once (thread-safe); the alert rows are written on the trading thread at the next poll or flush.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from core.errors import ExchangeError
from core.execution.broker import OUR_PREFIX
from core.market.candles import base_asset, symbol_to_ccxt
from core.monitoring.alerts import Alert, record_alert
from core.security.audit import PUBLIC_CALLS

if TYPE_CHECKING:
    from core.config import AuditConfig
    from core.execution.ccxt_broker import CallRecord, CcxtBroker
    from core.store import Store
    from core.view import OperatorInbox, SessionView

log = logging.getLogger("rampart.security")

RULE = "suspicious_activity"
AUTH_ERRORS = frozenset({"AuthenticationError", "PermissionDenied", "AccountSuspended"})
BAN_TEXT = re.compile(r"(?i)\b418\b|ip banned|\bbanned until\b")
RECONCILE_CODES = {"UNEXPLAINED_ORDER": "SUSPICIOUS_ORDER", "POSITION_MISMATCH": "SUSPICIOUS_BALANCE"}


@dataclass
class Finding:
    code: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def error_type(error: str) -> str:
    """The ccxt exception name in a CallRecord error (``"what: DDoSProtection: binance 418 ..."``)."""
    parts = error.split(": ", 2)
    return parts[1] if len(parts) > 1 else ""


def is_ip_ban(error: str) -> bool:
    """418 (Binance's IP ban), a WAF 403, or an "IP banned" message; a plain 429 is rate limiting, not a ban."""
    kind = error_type(error)
    if kind == "DDoSProtection" or kind == "RateLimitExceeded":
        return bool(BAN_TEXT.search(error))
    return kind == "ExchangeNotAvailable" and " 403 " in error


class SuspiciousActivityDetector:
    """Watches one live session: its exchange calls, its reconciliation events and the account itself."""

    def __init__(self, view: SessionView, inbox: OperatorInbox, broker: CcxtBroker, store: Store,
                 config: AuditConfig) -> None:
        self.view, self.inbox, self.broker, self.store, self.config = view, inbox, broker, store, config
        self._lock = threading.Lock()
        self._failures: deque[tuple[float, str, str]] = deque()  # (monotonic, endpoint, error)
        self._burst = False  # a burst was raised; re-armed by the next successful signed call
        self._pending: list[Finding] = []
        self._raised: set[str] = set()
        self._orders_checked = self._account_checked = 0
        self._since: dict[str, int] = {}  # symbol -> trades from this exchange time on
        self._start_ms: int | None = None
        self._seen_trades: set[str] = set()
        self._owners: dict[str, str] = {}  # exchange order id -> client order id
        self._strikes: dict[str, float] = {}  # symbol -> unexplained balance seen on the last check
        self._transient_at = self._checked_at = 0.0  # monotonic: last 5xx/timeout/429 seen, last account check

    # --- broker listener -----------------------------------------------------------------------------------
    def on_call(self, record: CallRecord) -> None:
        if record.error is None:
            if record.what not in PUBLIC_CALLS:  # a signed call worked again: the next burst is a new one
                with self._lock:
                    self._burst = False
            return
        if is_ip_ban(record.error):
            self.suspect(f"ban:{int(record.started // 60)}", Finding(
                "IP_BANNED", f"the exchange answered {record.what} with an IP ban: {record.error[:200]}",
                {"endpoint": record.what, "error": record.error[:300]}))
        elif error_type(record.error) in AUTH_ERRORS:
            self._auth_failure(record)
        else:
            self._transient_at = time.monotonic()

    def _auth_failure(self, record: CallRecord) -> None:
        now, window = time.monotonic(), self.config.auth_window_s
        with self._lock:
            self._failures.append((now, record.what, record.error or ""))
            while self._failures and now - self._failures[0][0] > window:
                self._failures.popleft()
            count = len(self._failures)
            fire = count >= self.config.auth_failures and not self._burst
            if fire:
                self._burst = True
                endpoints = sorted({what for _, what, _ in self._failures})
                last = self._failures[-1][2][:300]
        if fire:
            self.suspect(f"auth:{int(now)}", Finding(
                "AUTH_FAILURES", f"{count} authentication/signature failures within {window:.0f} s "
                f"(threshold {self.config.auth_failures}): the key may be revoked, changed or misused",
                {"failures": count, "threshold": self.config.auth_failures, "window_s": window,
                 "endpoints": endpoints, "last_error": last}))

    # --- session observer ----------------------------------------------------------------------------------
    def on_poll(self, view: SessionView) -> None:
        self.raise_pending()

    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        self._from_reconciliation(new.get("events"))
        if view.started and self._start_ms is None:
            self._start_ms = view.now_ms()
        if view.started and "equity" in new and self._healthy():  # a bar was traded: checks due?
            every = self.config.check_orders_every
            if every and view.bars // every > self._orders_checked:
                self._orders_checked = view.bars // every
                self.check_open_orders()
            every = self.config.check_account_every
            if every and view.bars // every > self._account_checked:
                self._account_checked = view.bars // every
                self.check_trades()
                self.check_balances()
        self.raise_pending()

    def on_stop(self, view: SessionView) -> None:
        self.raise_pending()

    def _healthy(self) -> bool:
        """No transient exchange failure since the last checks: while the exchange struggles the checks wait (they
        would add load, and their failures would feed the API-error breaker); auth failures never hold them."""
        healthy = self._transient_at <= self._checked_at
        self._checked_at = time.monotonic()
        return healthy

    # --- raising -------------------------------------------------------------------------------------------
    def suspect(self, identity: str, finding: Finding) -> None:
        """Halt entries now (thread-safe) and queue the alert; one finding per ``identity``."""
        with self._lock:
            if identity in self._raised:
                return
            self._raised.add(identity)
            self._pending.append(finding)
        log.critical("suspicious activity %s: %s", finding.code, finding.reason)
        self.inbox.halt_entries(finding.code, finding.reason, finding.evidence)

    def raise_pending(self) -> None:
        """Write the queued alerts (alerts + events + notification outbox)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for n, finding in enumerate(pending):
            try:
                record_alert(self.store, Alert(
                    rule=RULE, code=finding.code, severity="critical", reason=finding.reason,
                    evidence={**finding.evidence, "action": "entries halted"}, session_id=self.view.session_id))
            except Exception:
                with self._lock:  # written at the next poll instead
                    self._pending = pending[n:] + self._pending
                raise

    def _from_reconciliation(self, events: pl.DataFrame | None) -> None:
        if events is None or not events.height:
            return
        for row in events.filter(pl.col("code").is_in(list(RECONCILE_CODES))).to_dicts():
            details = _details(row.get("details"))
            code = RECONCILE_CODES[row["code"]]
            what = details.get("order") if code == "SUSPICIOUS_ORDER" else details.get("symbol")
            identity = f"order:{what}" if code == "SUSPICIOUS_ORDER" else f"reconcile:{what}:{details.get('exchange')}"
            self.suspect(identity, Finding(code, f"reconciliation: {row.get('message')}",
                                           {"source": row["code"], **details}))

    # --- account checks ------------------------------------------------------------------------------------
    def _call(self, what: str, *args: Any) -> Any:
        """One exchange call through the broker (timed, listened to: failures count), no retry; None if it failed."""
        broker = self.broker
        try:
            return broker.call(what, getattr(broker.client, what), *args)
        except ExchangeError as exc:
            log.warning("suspicious-activity check %s failed: %s", what, exc)
            return None

    def check_open_orders(self) -> None:
        """An open order that is neither in Rampart's books nor carries its client-id prefix is someone else's."""
        cids, _ = self.view.known_orders()
        for sym in self.view.symbols:
            for info in self._call("fetch_open_orders", symbol_to_ccxt(sym)) or []:
                cid, oid = str(info.get("clientOrderId") or ""), str(info.get("id"))
                if cid in cids or cid.startswith(OUR_PREFIX):
                    continue
                self.suspect(f"order:{oid}", Finding(
                    "SUSPICIOUS_ORDER", f"open order {oid} ({info.get('side')} {info.get('amount')} {sym} at "
                    f"{info.get('price')}) was not placed by Rampart",
                    {"order": oid, "client_order_id": cid, "symbol": sym, "side": info.get("side"),
                     "amount": info.get("amount"), "price": info.get("price")}))

    def check_trades(self) -> None:
        """Trades since the session started whose order is not Rampart's (looked up by id when not known)."""
        _, ours = self.view.known_orders()
        for sym in self.view.symbols:
            since = self._since.get(sym, self._start_ms)
            for trade in self._call("fetch_my_trades", symbol_to_ccxt(sym), since) or []:
                tid, oid = str(trade.get("id")), str(trade.get("order"))
                if tid in self._seen_trades:
                    continue
                owner = "" if oid in ours else self._owner(oid, sym)
                if owner is None:
                    continue  # the lookup failed: asked again at the next check
                self._seen_trades.add(tid)
                self._since[sym] = max(self._since.get(sym) or 0, int(trade.get("timestamp") or 0))
                if oid in ours or owner.startswith(OUR_PREFIX):
                    continue
                self.suspect(f"order:{oid}", Finding(
                    "SUSPICIOUS_TRADE", f"trade {tid} ({trade.get('side')} {trade.get('amount')} {sym} at "
                    f"{trade.get('price')}) belongs to order {oid}, which Rampart did not place",
                    {"trade": tid, "order": oid, "client_order_id": self._owners.get(oid), "symbol": sym,
                     "side": trade.get("side"), "amount": trade.get("amount"), "price": trade.get("price")}))

    def _owner(self, oid: str, sym: str) -> str | None:
        """The client order id of exchange order ``oid``; None when the lookup failed (no alarm on a guess)."""
        if oid not in self._owners:
            info = self._call("fetch_order", oid, symbol_to_ccxt(sym))
            if info is None:
                return None
            self._owners[oid] = str(info.get("clientOrderId") or "")
        return self._owners[oid]

    def check_balances(self) -> None:
        """Exchange base-asset total − baseline must equal Rampart's position; the same gap twice is suspicious."""
        balance = self._call("fetch_balance")
        if not self.view.started or balance is None:
            return
        totals = balance.get("total", {})
        baseline, positions, dust = self.view.baseline(), self.view.positions(), self.view.dust()
        for sym in self.view.symbols:
            asset = base_asset(sym)
            held = float(totals.get(asset) or 0.0) - float(baseline.get(asset, 0.0))
            pos = positions.get(sym)
            expected = (pos.qty if pos else 0.0) + dust.get(sym, 0.0)  # dust is Rampart's too
            gap, tolerance = held - expected, max(1e-8, abs(expected) * 1e-6)
            if abs(gap) <= tolerance:
                self._strikes.pop(sym, None)
                continue
            before = self._strikes.get(sym)
            self._strikes[sym] = gap
            if before is not None and abs(before - gap) <= tolerance:
                self.suspect(f"balance:{sym}:{gap:.8f}", Finding(
                    "SUSPICIOUS_BALANCE", f"{sym}: the exchange holds {held:.8f} {asset} for Rampart, its fills "
                    f"explain {expected:.8f} (a change of {gap:+.8f} Rampart did not make)",
                    {"symbol": sym, "exchange": held, "expected": expected, "gap": gap}))


def _details(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["AUTH_ERRORS", "Finding", "SuspiciousActivityDetector", "error_type", "is_ip_ban"]
