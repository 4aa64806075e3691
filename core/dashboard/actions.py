"""What the dashboard does for operators, and how it answers suspicious logins (R6.1, R6.3, R8.4).

Actions re-check the role with the operator's own token and go through the same paths as the CLI: the emergency
stop through ``core.control.emergency`` (it works with the trading process down), resume and clear-breaker
through ``apply_override`` (handed to the running session, or applied to the saved state). Every refusal is
recorded like other override refusals. A login lockout raises a critical ``LOGIN_LOCKOUT`` alert and halts new
entries: through the attached session, through a command file for a session running in another process, or by
putting the saved live state into SAFE_MODE when none runs.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.config import Settings
from core.control.auth import Operator, authorize
from core.control.emergency import emergency_stop
from core.control.overrides import OverrideResult, apply_override
from core.dashboard.auth import Lockout, WebSession
from core.domain import TradingState
from core.errors import RampartError, StoreError
from core.events import EntriesHalted, Event, EventCode, Login, OverrideOutcome
from core.monitoring.alerts import Alert, record_alert
from core.state.commands import running_session, write_command
from core.state.live import load_state, save_state
from core.store import Store
from core.venue import Venue, venue_for

if TYPE_CHECKING:
    from core.view import OperatorInbox, SessionView

log = logging.getLogger("rampart.dashboard")
T = TypeVar("T")
HALT_CODE = "SUSPICIOUS_LOGINS"
OVERRIDES = ("resume", "clear-breaker")


# DuckDB refuses a read-only connection beside a read-write one to the same file in one process (and the
# reverse) for as long as both are open, with these messages, and the store's lock retry (for other processes)
# does not cover them.
IN_PROCESS_CONFLICTS = ("different configuration", "Unique file handle conflict")


def retrying(fn: Callable[[], T], attempts: int = 40) -> T:
    """Run a Store call from a web thread, waiting out an in-process connection conflict (see above)."""
    for attempt in range(attempts):
        try:
            return fn()
        except StoreError as exc:
            if not any(m in str(exc) for m in IN_PROCESS_CONFLICTS) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise StoreError("unreachable")  # the loop returns or raises


PAPER_SESSION = "PAPER_SESSION"
PAPER_DETAIL = ("a forward paper session holds no real account: there is nothing to flatten; stop the session "
                "(Ctrl-C / SIGTERM) instead")


class Actions:
    """The dashboard's side effects for one data directory (and the attached session, if any)."""

    def __init__(self, settings: Settings, view: SessionView | None = None, inbox: OperatorInbox | None = None, *,
                 venue: Venue | None = None, state_path: Path | None = None) -> None:
        self.settings = settings
        self.view, self.inbox = view, inbox
        self.venue = view.venue if view is not None else venue or venue_for(settings.exchange)
        self.state_path = state_path or self.venue.state_path(settings.data_dir)
        self.store = Store(settings.db_path)

    @property
    def session_id(self) -> str | None:
        return self.view.session_id if self.view is not None else None

    # --- operator actions --------------------------------------------------------------------------------------
    def emergency_stop(self, web: WebSession, reason: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body). The operator role is checked again with the operator's token."""
        found = authorize(web.token.get_secret_value(), self.settings.operators, "operator")
        if not isinstance(found, Operator):
            self.refused("emergency-stop", web.name, found.code, found.detail, reason)
            return 403, {"code": found.code, "detail": found.detail}
        if self.view is not None and self.view.status().get("mode") == "paper":
            return 409, {"code": PAPER_SESSION, "detail": PAPER_DETAIL}
        report = emergency_stop(self.settings, reason, found.name, self.venue,
                                state_path=self.state_path)
        return 200, {"accepted": True, "action": "emergency-stop", "flat": report.flat, "state": report.state,
                     "summary": report.summary(), "leftovers": report.leftovers}

    def override(self, action: str, web: WebSession, reason: str, breaker: str | None) -> tuple[int, dict[str, Any]]:
        """resume / clear-breaker through ``apply_override`` (it checks the role and records every attempt)."""
        result: OverrideResult = apply_override(self.settings, action, web.token.get_secret_value(), reason,
                                                breaker=breaker)
        if not result.accepted:
            status = {"OVERRIDE_FORBIDDEN": 403, "OVERRIDE_BAD_TOKEN": 401}.get(result.code, 422)
            return status, {"code": result.code, "detail": result.detail}
        return 200, {"accepted": True, "action": action, "detail": result.detail, "applied_to": result.applied_to}

    def refused(self, action: str, who: str | None, code: str, detail: str, reason: str = "") -> None:
        """Record a refusal from the dashboard the way override refusals are recorded."""
        refused = Event.of(code, OverrideOutcome(action=action, accepted=False, detail=f"refused from the dashboard: "
                                                 f"{detail}", who=who, reason=reason, extra={"channel": "dashboard"}))
        retrying(lambda: self.store.record(refused, kind="override", session_id=self.session_id))

    # --- logins --------------------------------------------------------------------------------------------------
    def login(self, source: str, name: str | None, *, failures: int = 0, channel: str = "dashboard") -> None:
        """One login, good or bad, as an event (never with the token presented)."""
        code = EventCode.LOGIN_OK if name is not None else EventCode.LOGIN_FAILED
        event = Event.of(code, Login(source=source, channel=channel, who=name, consecutive_failures=failures))
        retrying(lambda: self.store.record(event, kind="security", session_id=self.session_id))

    def on_lockout(self, lockout: Lockout) -> None:
        """R8.4: alert and halt new entries (exits and protective stops keep working)."""
        reason = (f"{lockout.failures} failed logins in a row from {lockout.source} ({lockout.channel}, "
                  f"{lockout.scope} lockout): logins locked for {lockout.locked_for_s:g} s, new entries halted")
        evidence = {"failures": lockout.failures, "source": lockout.source, "scope": lockout.scope,
                    "channel": lockout.channel, "locked_for_s": lockout.locked_for_s}
        log.critical("LOGIN_LOCKOUT: %s", reason)
        try:
            retrying(lambda: record_alert(self.store, Alert(rule="security", code="LOGIN_LOCKOUT",
                                                            severity="critical", reason=reason, evidence=evidence,
                                                            session_id=self.session_id)))
        except StoreError:  # the halt below matters more than the record
            log.exception("LOGIN_LOCKOUT alert not stored")
        try:
            self.halt_entries(reason, evidence)
        except RampartError:  # e.g. an unreadable state file: say so loudly; the lockout itself still stands
            log.critical("LOGIN_LOCKOUT: entries NOT halted", exc_info=True)

    def halt_entries(self, reason: str, evidence: dict[str, Any]) -> str:
        """SAFE_MODE now (attached session), at the other process's next poll, or in the saved state."""
        if self.inbox is not None:
            self.inbox.halt_entries(HALT_CODE, reason, evidence)
            return "running session"
        if running_session(self.settings.data_dir) is not None:
            _write_command(self.settings.data_dir, {"action": "halt-entries", "code": HALT_CODE, "who": "dashboard",
                                                    "reason": reason, "evidence": evidence})
            return "running session"
        state = load_state(self.state_path)
        if state.trading_state in (TradingState.ACTIVE.value, TradingState.REDUCING.value):
            state.trading_state = TradingState.SAFE_MODE.value
            save_state(self.state_path, state)
        halted = Event.of(HALT_CODE, EntriesHalted(reason=reason, evidence=evidence, extra={
            "applied_to": "saved state", "state": state.trading_state}))
        retrying(lambda: self.store.record(halted, kind="security"))
        return "saved state"


def _write_command(data_dir: Path, command: dict[str, Any]) -> None:
    """A command file for the live session running on ``data_dir`` (the format ``apply_override`` writes)."""
    write_command(data_dir, {"id": uuid.uuid4().hex, "requested_at": datetime.now(UTC).isoformat(), **command})


__all__ = ["HALT_CODE", "IN_PROCESS_CONFLICTS", "OVERRIDES", "Actions", "retrying"]
