"""Typed events: every fact Rampart records about a session, an operator or the account has an ``EventCode`` with a
category and a typed payload; the message is words rendered from the payload.

Readers (notifications, alerts, the daily report, the dashboard, the scaling review) read ``code``, ``category`` and
the payload's facts (the ``details`` of an ``events`` row); none parses a message. ``render`` is the one place that
turns a payload into words, so rewording a message changes nothing a reader relies on.

Make one with ``Event.of(EventCode.STATE_CHANGED, StateChanged(old="ACTIVE", new="SAFE_MODE", why="..."))``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    STATE = "state"
    RISK = "risk"
    BREAKER = "breaker"
    ORDER = "order"
    RECONCILE = "reconcile"
    ALERT = "alert"
    SECURITY = "security"
    SCALING = "scaling"
    AUDIT = "audit"
    OPERATOR = "operator"
    SESSION = "session"


# --- payloads ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Payload:
    """The facts of an event. ``facts()`` is what lands in the ``details`` column (``extra`` merged in)."""

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata.get("words_only"):  # said in the message; not a fact of its own
                continue
            value = getattr(self, f.name)
            if f.name == "extra":
                out.update(value)
            else:
                out[f.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class StateChanged(Payload):
    old: str
    new: str
    why: str
    cause: str | None = None  # the code that caused it (DAILY_LOSS_LIMIT, SUSPICIOUS_ORDER, an operator's resume …)


@dataclass(frozen=True, kw_only=True)
class DailyLossHit(Payload):
    day_pnl: float
    day_pnl_pct: float
    limit: float
    sod_equity: float
    equity: float


@dataclass(frozen=True, kw_only=True)
class DrawdownDerisked(Payload):
    drawdown: float
    hwm: float
    limit: float
    risk_before: float
    risk_after: float


@dataclass(frozen=True, kw_only=True)
class StopsTightened(Payload):
    unrealized: float
    unrealized_pct: float
    limit: float
    factor: float


@dataclass(frozen=True, kw_only=True)
class UnrealizedRecovered(Payload):
    unrealized: float
    limit: float


@dataclass(frozen=True, kw_only=True)
class LatencyChanged(Payload):
    latency_s: float
    limit_s: float
    settle_s: float | None = None  # resume: how long it stayed below


@dataclass(frozen=True, kw_only=True)
class BreakerTrip(Payload):
    breaker: str
    trigger: str  # what tripped it, in words with the numbers
    cooldown_hours: float
    until_ms: int
    until: str  # ISO time, UTC


@dataclass(frozen=True, kw_only=True)
class OrderProblem(Payload):
    client_order_id: str
    symbol: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class PaperFill(Payload):
    """The paper broker had to refuse or cut an entry for want of cash."""

    client_order_id: str
    symbol: str
    price: float
    qty: float | None = None
    cut_to: float | None = None


@dataclass(frozen=True, kw_only=True)
class DustLeft(Payload):
    """After a sell, base units below what can be sold (the lot step, the minimum notional) stay on the account."""

    symbol: str
    qty: float
    value: float
    total: float  # all the dust of the symbol now


@dataclass(frozen=True, kw_only=True)
class Reconciled(Payload):
    """What reconciliation found; ``order``/``symbol`` say where, ``extra`` the numbers."""

    order: str | None = None
    symbol: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Protection(Payload):
    """The protection invariant (R9.3) for one position: its sellable quantity, what its stops cover, why."""

    symbol: str
    sellable: float
    covered: float
    why: str
    stop: float | None = None
    cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class SessionStarted(Payload):
    restart: bool
    previous_session: str | None
    risk_per_trade: float
    exposure_cap: float
    state: str
    mode: str = "live"  # "paper": a forward paper session (simulated fills on the live market)


@dataclass(frozen=True, kw_only=True)
class AccountChecked(Payload):
    """What preflight found on the account (R9.8): the key's permissions, the fees, the clock."""

    venue: str
    skew_ms: int
    can_trade: bool
    can_withdraw: bool | None  # None: the venue cannot tell (and cannot withdraw: demo, testnet)
    ip_restricted: bool | None
    taker: float  # the highest taker rate of the traded symbols (standard + tax + special, buyer/seller side)
    maker: float
    bnb_fees: bool  # BNB pays the fees (the account's BNB discount is on)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ClockResynced(Payload):
    """The periodic clock resynchronisation measured a new offset to the exchange's time (R9.8)."""

    offset_ms: int
    previous_ms: int


@dataclass(frozen=True, kw_only=True)
class SessionStopped(Payload):
    reason: str
    mode: str = "live"


@dataclass(frozen=True, kw_only=True)
class SessionError(Payload):
    error: str
    where: str = ""
    traceback: str = ""


@dataclass(frozen=True, kw_only=True)
class Problem(Payload):
    """Something went wrong that did not stop trading (feed down, an observer failed, last fills not collected)."""

    error: str


@dataclass(frozen=True, kw_only=True)
class EntriesHalted(Payload):
    """Entries halted at a detector's request (suspicious activity, login lockout, no audit trail)."""

    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    action: str = "entries halted"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OverrideOutcome(Payload):
    """An operator's override: refused (with why) or accepted, and where it was applied."""

    action: str
    accepted: bool
    detail: str
    who: str | None = None
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Login(Payload):
    source: str
    channel: str
    who: str | None
    consecutive_failures: int = 0


@dataclass(frozen=True, kw_only=True)
class EmergencyStopped(Payload):
    summary: str
    extra: dict[str, Any] = field(default_factory=dict)  # the whole report: who, reason, cancelled, closed …


@dataclass(frozen=True, kw_only=True)
class KeyRotation(Payload):
    detail: str = field(metadata={"words_only": True})
    old_key_id: str | None
    new_key_id: str | None
    trigger: str
    request_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ScalingEvent(Payload):
    """A scaling outcome, change or answer; ``title`` says it in a line, ``extra`` holds the decision's facts."""

    title: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlertRaised(Payload):
    rule: str
    alert_id: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


# --- codes -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """A code's category, payload type, default severity and words; ``notify``: "always" (a significant event),
    "critical" (only when its severity is), or "alert" (an alert rule notifies it, not the event)."""

    category: Category
    payload: type[Payload]
    severity: str
    words: Callable[[Any], str]
    notify: str = "critical"


class EventCode(StrEnum):
    """Every event code. ``category``, ``payload`` (its type) and ``severity`` (the default) come from ``SPECS``."""

    STATE_CHANGED = "STATE_CHANGED"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    DRAWDOWN_DERISK = "DRAWDOWN_DERISK"
    UNREALIZED_LOSS_TIGHTEN = "UNREALIZED_LOSS_TIGHTEN"
    UNREALIZED_LOSS_RECOVERED = "UNREALIZED_LOSS_RECOVERED"
    LATENCY_PAUSE = "LATENCY_PAUSE"
    LATENCY_RESUME = "LATENCY_RESUME"
    BREAKER_CONSECUTIVE_LOSSES = "BREAKER_CONSECUTIVE_LOSSES"
    BREAKER_API_ERRORS = "BREAKER_API_ERRORS"
    BREAKER_SLIPPAGE = "BREAKER_SLIPPAGE"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_OUTCOME_UNKNOWN = "ORDER_OUTCOME_UNKNOWN"
    ORDER_NEVER_ARRIVED = "ORDER_NEVER_ARRIVED"
    ORDER_NOT_SENT = "ORDER_NOT_SENT"
    CANCEL_FAILED = "CANCEL_FAILED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    ENTRY_CLAMPED = "ENTRY_CLAMPED"
    DUST_LEFT = "DUST_LEFT"
    ORDER_NEVER_SENT = "ORDER_NEVER_SENT"
    FILLED_WHILE_AWAY = "FILLED_WHILE_AWAY"
    RECONCILE_INCOMPLETE = "RECONCILE_INCOMPLETE"
    ORDER_NOT_JOURNALLED = "ORDER_NOT_JOURNALLED"
    UNEXPLAINED_ORDER = "UNEXPLAINED_ORDER"
    POSITION_MISMATCH = "POSITION_MISMATCH"
    UNPROTECTED = "UNPROTECTED"
    PROTECTION_RESTORED = "PROTECTION_RESTORED"
    PROTECTION_SOLD = "PROTECTION_SOLD"
    SESSION_STARTED = "SESSION_STARTED"
    SESSION_STOPPED = "SESSION_STOPPED"
    ACCOUNT_CHECKED = "ACCOUNT_CHECKED"
    CLOCK_RESYNCED = "CLOCK_RESYNCED"
    SESSION_ERROR = "SESSION_ERROR"
    FINAL_SYNC_FAILED = "FINAL_SYNC_FAILED"
    FEED_UNAVAILABLE = "FEED_UNAVAILABLE"
    OBSERVER_FAILED = "OBSERVER_FAILED"
    SUSPICIOUS_ORDER = "SUSPICIOUS_ORDER"
    SUSPICIOUS_TRADE = "SUSPICIOUS_TRADE"
    SUSPICIOUS_BALANCE = "SUSPICIOUS_BALANCE"
    SUSPICIOUS_LOGINS = "SUSPICIOUS_LOGINS"
    AUTH_FAILURES = "AUTH_FAILURES"
    IP_BANNED = "IP_BANNED"
    AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE"
    LOGIN_OK = "LOGIN_OK"
    LOGIN_FAILED = "LOGIN_FAILED"
    KEY_ROTATED = "KEY_ROTATED"
    KEY_ROTATION_REFUSED = "KEY_ROTATION_REFUSED"
    KEY_ROTATION_DEFERRED = "KEY_ROTATION_DEFERRED"
    KEY_ROTATION_UNCHANGED = "KEY_ROTATION_UNCHANGED"
    KEY_ROTATION_TIMEOUT = "KEY_ROTATION_TIMEOUT"
    KEY_SOURCE_UNREADABLE = "KEY_SOURCE_UNREADABLE"
    KEY_VERIFIED = "KEY_VERIFIED"
    OVERRIDE_APPLIED = "OVERRIDE_APPLIED"
    OVERRIDE_ACCEPTED = "OVERRIDE_ACCEPTED"
    OVERRIDE_NO_TOKEN = "OVERRIDE_NO_TOKEN"
    OVERRIDE_BAD_TOKEN = "OVERRIDE_BAD_TOKEN"
    OVERRIDE_FORBIDDEN = "OVERRIDE_FORBIDDEN"
    OVERRIDE_NO_REASON = "OVERRIDE_NO_REASON"
    OVERRIDE_NO_BREAKER = "OVERRIDE_NO_BREAKER"
    OVERRIDE_UNKNOWN_BREAKER = "OVERRIDE_UNKNOWN_BREAKER"
    EMERGENCY_STOP = "EMERGENCY_STOP"
    SCALING_PROPOSED = "SCALING_PROPOSED"
    SCALING_APPROVED = "SCALING_APPROVED"
    SCALING_REJECTED = "SCALING_REJECTED"
    SCALING_EXPIRED = "SCALING_EXPIRED"
    SCALING_NOT_ELIGIBLE = "SCALING_NOT_ELIGIBLE"
    SCALING_APPLIED = "SCALING_APPLIED"
    SCALING_SYMBOL_APPROVED = "SCALING_SYMBOL_APPROVED"
    SCALING_APPLY_FAILED = "SCALING_APPLY_FAILED"
    SCALING_ANSWERED = "SCALING_ANSWERED"
    SCALING_BAD_CHANGE = "SCALING_BAD_CHANGE"
    SCALING_NO_REVIEWER = "SCALING_NO_REVIEWER"
    SCALING_BAD_RUNG = "SCALING_BAD_RUNG"
    SCALING_BAD_SYMBOL = "SCALING_BAD_SYMBOL"
    SYMBOL_ALREADY_ALLOWED = "SYMBOL_ALREADY_ALLOWED"
    SYMBOL_ALREADY_APPROVED = "SYMBOL_ALREADY_APPROVED"
    NEW_SYMBOL_TOO_SOON = "NEW_SYMBOL_TOO_SOON"
    REVIEWER_MISMATCH = "REVIEWER_MISMATCH"
    CSRF_INVALID = "CSRF_INVALID"
    # alert codes (events of kind "alert", written by core.monitoring.alerts)
    SLIPPAGE_HIGH = "SLIPPAGE_HIGH"
    ORDER_REJECTIONS = "ORDER_REJECTIONS"
    TRADE_BURST = "TRADE_BURST"
    API_ERRORS = "API_ERRORS"
    STALE_DATA = "STALE_DATA"
    PERF_BELOW_PAPER = "PERF_BELOW_PAPER"
    LOGIN_LOCKOUT = "LOGIN_LOCKOUT"

    @property
    def category(self) -> Category:
        return SPECS[self].category

    @property
    def severity(self) -> str:
        return SPECS[self].severity


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _rate(x: float) -> str:
    return f"{x * 100:.3g} %"


def _withdrawals(can: bool | None) -> str:
    return "withdrawals not possible on this network" if can is None else (
        "withdrawals ENABLED (allowed by credentials.allow_withdrawal_keys)" if can else "no withdrawals")


def _halted(p: EntriesHalted) -> str:
    return p.reason


def _override(p: OverrideOutcome) -> str:
    return f"{p.action}: {p.detail}"


def _scaling(p: ScalingEvent) -> str:
    return p.title


def _alert(p: AlertRaised) -> str:
    return p.reason


def _key(p: KeyRotation) -> str:
    return p.detail


def _breaker(p: BreakerTrip) -> str:
    return f"BREAKER_{p.breaker.upper()}: {p.trigger}; entries blocked for {p.cooldown_hours:g}h until {p.until}"


def _order_problem(p: OrderProblem) -> str:
    return f"{p.client_order_id}: {p.error}" if p.error else p.client_order_id


_C = Category
SPECS: dict[EventCode, Spec] = {
    EventCode.STATE_CHANGED: Spec(_C.STATE, StateChanged, "warning", lambda p: f"{p.old} -> {p.new}: {p.why}",
                                  notify="always"),
    EventCode.DAILY_LOSS_LIMIT: Spec(_C.RISK, DailyLossHit, "critical", lambda p: (
        f"DAILY_LOSS_LIMIT: day P&L {p.day_pnl:+,.2f} ({p.day_pnl_pct:+.2%}) <= -{_pct(p.limit)} of start-of-day "
        f"equity {p.sod_equity:,.2f}"), notify="always"),
    EventCode.DRAWDOWN_DERISK: Spec(_C.RISK, DrawdownDerisked, "critical", lambda p: (
        f"DRAWDOWN_DERISK: drawdown {_pct(p.drawdown)} from the high-water mark {p.hwm:,.2f} >= {_pct(p.limit)}: "
        f"risk per trade {_pct(p.risk_before)} -> {_pct(p.risk_after)} until an operator resets it"),
        notify="always"),
    EventCode.UNREALIZED_LOSS_TIGHTEN: Spec(_C.RISK, StopsTightened, "critical", lambda p: (
        f"UNREALIZED_LOSS_TIGHTEN: unrealized {p.unrealized:+,.2f} ({p.unrealized_pct:+.2%} of equity) beyond "
        f"-{_pct(p.limit)}: every stop moved to {p.factor:.0%} of its distance"), notify="always"),
    EventCode.UNREALIZED_LOSS_RECOVERED: Spec(_C.RISK, UnrealizedRecovered, "info", lambda p: (
        f"unrealized {p.unrealized:+,.2f} back within -{_pct(p.limit)} of equity; episode over")),
    EventCode.LATENCY_PAUSE: Spec(_C.RISK, LatencyChanged, "warning", lambda p: (
        f"LATENCY_PAUSE: rolling exchange latency {p.latency_s:.2f}s > {p.limit_s:.2f}s: new entries paused, exits "
        "continue"), notify="always"),
    EventCode.LATENCY_RESUME: Spec(_C.RISK, LatencyChanged, "info", lambda p: (
        f"LATENCY_RESUME: latency {p.latency_s:.2f}s below {p.limit_s:.2f}s for {p.settle_s or 0:g}s: entries "
        "resume"), notify="always"),
    EventCode.BREAKER_CONSECUTIVE_LOSSES: Spec(_C.BREAKER, BreakerTrip, "critical", _breaker, notify="always"),
    EventCode.BREAKER_API_ERRORS: Spec(_C.BREAKER, BreakerTrip, "critical", _breaker, notify="always"),
    EventCode.BREAKER_SLIPPAGE: Spec(_C.BREAKER, BreakerTrip, "critical", _breaker, notify="always"),
    EventCode.ORDER_REJECTED: Spec(_C.ORDER, OrderProblem, "error", _order_problem, notify="alert"),
    EventCode.ORDER_OUTCOME_UNKNOWN: Spec(_C.ORDER, OrderProblem, "warning", _order_problem),
    EventCode.ORDER_NEVER_ARRIVED: Spec(_C.ORDER, OrderProblem, "warning", _order_problem),
    EventCode.ORDER_NOT_SENT: Spec(_C.ORDER, OrderProblem, "warning", _order_problem),
    EventCode.CANCEL_FAILED: Spec(_C.ORDER, OrderProblem, "warning", _order_problem),
    EventCode.INSUFFICIENT_BALANCE: Spec(_C.ORDER, PaperFill, "error", lambda p: (
        f"{p.client_order_id}: no cash for {p.symbol} at {p.price:.2f}")),
    EventCode.ENTRY_CLAMPED: Spec(_C.ORDER, PaperFill, "info", lambda p: (
        f"{p.client_order_id}: {p.qty:.8f} {p.symbol} cut to {p.cut_to:.8f}, the cash available at {p.price:.2f}")),
    EventCode.DUST_LEFT: Spec(_C.ORDER, DustLeft, "info", lambda p: (
        f"{p.symbol}: {p.qty:.8f} left below what can be sold (worth {p.value:.4f}); dust now {p.total:.8f}")),
    EventCode.ORDER_NEVER_SENT: Spec(_C.RECONCILE, Reconciled, "info", lambda p: (
        f"{p.order} never reached the exchange; dropped")),
    EventCode.FILLED_WHILE_AWAY: Spec(_C.RECONCILE, Reconciled, "warning", lambda p: (
        f"{p.order} ({p.extra.get('tag')}) filled while Rampart was down"), notify="always"),
    EventCode.RECONCILE_INCOMPLETE: Spec(_C.RECONCILE, Reconciled, "error", lambda p: (
        f"open orders of {p.symbol} unknown: {p.extra.get('error')}"), notify="always"),
    EventCode.ORDER_NOT_JOURNALLED: Spec(_C.RECONCILE, Reconciled, "warning", lambda p: (
        f"open order {p.order} looks like Rampart's but was not journalled; left working"), notify="alert"),
    EventCode.UNEXPLAINED_ORDER: Spec(_C.RECONCILE, Reconciled, "critical", lambda p: (
        f"open order {p.order} ({p.extra.get('side')} {p.extra.get('amount')} {p.symbol} at {p.extra.get('price')}) "
        "was not placed by Rampart"), notify="alert"),
    EventCode.POSITION_MISMATCH: Spec(_C.RECONCILE, Reconciled, "critical", lambda p: (
        f"{p.symbol}: the exchange holds {p.extra.get('exchange', 0.0):.8f} {p.extra.get('asset')} for Rampart, its "
        f"books say {p.extra.get('expected', 0.0):.8f}; repaired to the exchange's quantity"), notify="alert"),
    EventCode.UNPROTECTED: Spec(_C.RISK, Protection, "critical", lambda p: (
        f"{p.symbol} unprotected: {p.why} (sellable {p.sellable:g}, stops cover {p.covered:g}); placing the stop "
        "again"), notify="alert"),
    EventCode.PROTECTION_RESTORED: Spec(_C.RISK, Protection, "warning", lambda p: (
        f"{p.symbol} protected again: a stop covers {p.covered:g} of {p.sellable:g}")),
    EventCode.PROTECTION_SOLD: Spec(_C.RISK, Protection, "critical", lambda p: (
        f"{p.symbol}: {p.why} ({p.sellable:g} sold at market to stay protected)"), notify="alert"),
    EventCode.SESSION_STARTED: Spec(_C.SESSION, SessionStarted, "info", lambda p: (
        f"live session started at rung 1 (risk {_pct(p.risk_per_trade)}, exposure cap {p.exposure_cap:.0%}), "
        f"state {p.state}" if p.mode == "live" else
        f"forward paper session started (simulated fills on the live market; sized as live's first rung: risk "
        f"{_pct(p.risk_per_trade)}, exposure cap {p.exposure_cap:.0%}), state {p.state}"), notify="always"),
    EventCode.SESSION_STOPPED: Spec(_C.SESSION, SessionStopped, "info", lambda p: (
        f"live session stopped: {p.reason}; protective stops stay on the exchange" if p.mode == "live" else
        f"forward paper session stopped: {p.reason}; its simulated account is kept for the next start"),
        notify="always"),
    EventCode.SESSION_ERROR: Spec(_C.SESSION, SessionError, "error", lambda p: f"{p.error}", notify="always"),
    EventCode.ACCOUNT_CHECKED: Spec(_C.SESSION, AccountChecked, "info", lambda p: (
        f"{p.venue}: key may trade, {_withdrawals(p.can_withdraw)}; fees taker {_rate(p.taker)} maker "
        f"{_rate(p.maker)}{' paid in BNB' if p.bnb_fees else ' in the coin received'}; clock {p.skew_ms:+d} ms"
        + "".join(f"; {w}" for w in p.warnings))),
    EventCode.CLOCK_RESYNCED: Spec(_C.SESSION, ClockResynced, "info", lambda p: (
        f"clock resynchronised with the exchange: offset {p.offset_ms:+d} ms (was {p.previous_ms:+d} ms)")),
    EventCode.FINAL_SYNC_FAILED: Spec(_C.SESSION, Problem, "error", lambda p: (
        f"fills of the last bar not collected: {p.error}"), notify="always"),
    EventCode.FEED_UNAVAILABLE: Spec(_C.SESSION, Problem, "warning", lambda p: p.error),
    EventCode.OBSERVER_FAILED: Spec(_C.SESSION, Problem, "error", lambda p: p.error),
    EventCode.SUSPICIOUS_ORDER: Spec(_C.SECURITY, EntriesHalted, "critical", _halted),
    EventCode.SUSPICIOUS_TRADE: Spec(_C.SECURITY, EntriesHalted, "critical", _halted),
    EventCode.SUSPICIOUS_BALANCE: Spec(_C.SECURITY, EntriesHalted, "critical", _halted),
    EventCode.SUSPICIOUS_LOGINS: Spec(_C.SECURITY, EntriesHalted, "critical", _halted),
    EventCode.AUTH_FAILURES: Spec(_C.SECURITY, EntriesHalted, "critical", _halted),
    EventCode.IP_BANNED: Spec(_C.SECURITY, EntriesHalted, "critical", _halted),
    EventCode.AUDIT_UNAVAILABLE: Spec(_C.AUDIT, EntriesHalted, "critical", _halted),
    EventCode.LOGIN_OK: Spec(_C.SECURITY, Login, "info", lambda p: f"{p.who} logged in to the {p.channel} from "
                             f"{p.source}"),
    EventCode.LOGIN_FAILED: Spec(_C.SECURITY, Login, "warning", lambda p: (
        f"{p.channel} login failed from {p.source}: the token matches no operator ({p.consecutive_failures} in a "
        "row)")),
    EventCode.KEY_ROTATED: Spec(_C.SECURITY, KeyRotation, "warning", _key),
    EventCode.KEY_ROTATION_REFUSED: Spec(_C.SECURITY, KeyRotation, "error", _key),
    EventCode.KEY_ROTATION_DEFERRED: Spec(_C.SECURITY, KeyRotation, "warning", _key),
    EventCode.KEY_ROTATION_UNCHANGED: Spec(_C.SECURITY, KeyRotation, "info", _key),
    EventCode.KEY_ROTATION_TIMEOUT: Spec(_C.SECURITY, KeyRotation, "warning", _key),
    EventCode.KEY_SOURCE_UNREADABLE: Spec(_C.SECURITY, KeyRotation, "warning", _key),
    EventCode.KEY_VERIFIED: Spec(_C.SECURITY, KeyRotation, "info", _key),
    EventCode.OVERRIDE_APPLIED: Spec(_C.OPERATOR, OverrideOutcome, "warning", lambda p: (
        f"{p.action} by {p.who}: {p.reason}"), notify="always"),
    EventCode.OVERRIDE_ACCEPTED: Spec(_C.OPERATOR, OverrideOutcome, "warning", _override),
    EventCode.OVERRIDE_NO_TOKEN: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.OVERRIDE_BAD_TOKEN: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.OVERRIDE_FORBIDDEN: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.OVERRIDE_NO_REASON: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.OVERRIDE_NO_BREAKER: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.OVERRIDE_UNKNOWN_BREAKER: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.EMERGENCY_STOP: Spec(_C.OPERATOR, EmergencyStopped, "critical", lambda p: p.summary, notify="always"),
    EventCode.SCALING_PROPOSED: Spec(_C.SCALING, ScalingEvent, "warning", _scaling),
    EventCode.SCALING_APPROVED: Spec(_C.SCALING, ScalingEvent, "warning", _scaling),
    EventCode.SCALING_REJECTED: Spec(_C.SCALING, ScalingEvent, "info", _scaling),
    EventCode.SCALING_EXPIRED: Spec(_C.SCALING, ScalingEvent, "warning", _scaling),
    EventCode.SCALING_NOT_ELIGIBLE: Spec(_C.SCALING, ScalingEvent, "info", _scaling),
    EventCode.SCALING_APPLIED: Spec(_C.SCALING, ScalingEvent, "warning", _scaling),
    EventCode.SCALING_SYMBOL_APPROVED: Spec(_C.SCALING, ScalingEvent, "warning", _scaling),
    EventCode.SCALING_APPLY_FAILED: Spec(_C.SCALING, ScalingEvent, "error", _scaling),
    EventCode.SCALING_ANSWERED: Spec(_C.SCALING, ScalingEvent, "warning", _scaling),
    EventCode.SCALING_BAD_CHANGE: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.SCALING_NO_REVIEWER: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.SCALING_BAD_RUNG: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.SCALING_BAD_SYMBOL: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.SYMBOL_ALREADY_ALLOWED: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.SYMBOL_ALREADY_APPROVED: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.NEW_SYMBOL_TOO_SOON: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.REVIEWER_MISMATCH: Spec(_C.OPERATOR, OverrideOutcome, "error", _override),
    EventCode.CSRF_INVALID: Spec(_C.SECURITY, OverrideOutcome, "error", _override),
    EventCode.SLIPPAGE_HIGH: Spec(_C.ALERT, AlertRaised, "warning", _alert),
    EventCode.ORDER_REJECTIONS: Spec(_C.ALERT, AlertRaised, "error", _alert),
    EventCode.TRADE_BURST: Spec(_C.ALERT, AlertRaised, "warning", _alert),
    EventCode.API_ERRORS: Spec(_C.ALERT, AlertRaised, "error", _alert),
    EventCode.STALE_DATA: Spec(_C.ALERT, AlertRaised, "error", _alert),
    EventCode.PERF_BELOW_PAPER: Spec(_C.ALERT, AlertRaised, "warning", _alert),
    EventCode.LOGIN_LOCKOUT: Spec(_C.ALERT, AlertRaised, "critical", _alert),
}


def render(event: Event) -> str:
    """The event's message: its payload in words (the one place messages are made)."""
    if isinstance(event.payload, AlertRaised):
        return _alert(event.payload)
    return SPECS[event.code].words(event.payload)


@dataclass(frozen=True)
class Event:
    """One typed event. ``ts`` is epoch ms on the recorder's clock (None: the recorder's now)."""

    code: EventCode
    payload: Payload
    severity: str
    ts: int | None = None

    @classmethod
    def of(cls, code: EventCode | str, payload: Payload, severity: str | None = None, ts: int | None = None) -> Event:
        """An event with ``code``'s default severity unless given; the payload must be the code's type."""
        code = EventCode(code)
        expected = SPECS[code].payload
        if isinstance(payload, AlertRaised):  # an alert may carry any code (POSITION_MISMATCH, SUSPICIOUS_ORDER …)
            return cls(code, payload, severity or SPECS[code].severity, ts)
        if not isinstance(payload, expected):
            raise TypeError(f"{code} takes a {expected.__name__} payload, got {type(payload).__name__}")
        return cls(code, payload, severity or SPECS[code].severity, ts)

    @property
    def category(self) -> Category:
        return Category.ALERT if isinstance(self.payload, AlertRaised) else SPECS[self.code].category

    @property
    def message(self) -> str:
        return render(self)

    @property
    def details(self) -> dict[str, Any]:
        return self.payload.facts()

    def row(self, kind: str = "session", when: int | None = None) -> dict[str, Any]:
        """The ``events`` row's fields (without id and session): ts, kind, severity, code, message, details."""
        ts = self.ts if self.ts is not None else when
        return {"ts": ts if ts is not None else int(datetime.now(UTC).timestamp() * 1000), "kind": kind,
                "severity": self.severity, "code": self.code.value, "message": self.message,
                "details": self.details}


def category_of(code: str, kind: str | None = None) -> Category | None:
    """The category of a stored event row (``kind`` "alert" is always an alert); None for an unknown code."""
    if kind == "alert":
        return Category.ALERT
    try:
        return EventCode(code).category
    except ValueError:
        return None


def spec_of(code: str) -> Spec | None:
    """The spec of a stored code; None for a code this version does not know."""
    try:
        return SPECS[EventCode(code)]
    except ValueError:
        return None


def codes(category: Category) -> frozenset[str]:
    """Every code of ``category``, as stored strings."""
    return frozenset(c.value for c, spec in SPECS.items() if spec.category is category)


__all__ = ["SPECS", "Category", "Event", "EventCode", "Payload", "category_of", "codes", "render", "spec_of"]
