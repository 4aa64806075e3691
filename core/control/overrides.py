"""Operator overrides (SPEC R6.3): resume, clear a breaker, reset de-risking — each by an authorized operator
with the right role and a reason; every attempt, refused or accepted, is recorded and notified.

A running live session picks a command file up on its next poll (``data_dir/live/commands``) and applies it to
its RiskEngine; with no session running, the override is applied to the saved live state directly, so the
next start sees it. Resuming after an emergency stop also removes the HALT flag.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.config import Settings
from core.control.auth import Operator, authorize
from core.domain import TradingState
from core.errors import ConfigError
from core.events import Event, OverrideOutcome
from core.risk.breakers import NAMES as BREAKERS
from core.risk.breakers import CircuitBreakers
from core.scaling.changes import apply_to_state, change_refusal
from core.security.audit import record_audit
from core.state.commands import live_dir, running_session, write_command
from core.state.halt import halt_path
from core.state.live import load_state, save_state
from core.store import Store

ACTIONS: dict[str, str] = {"resume": "operator", "clear-breaker": "operator", "reset-derisk": "operator",
                           "approve-scaling": "operator"}  # R6.3; the change itself: core.scaling.changes


@dataclass(frozen=True)
class OverrideResult:
    accepted: bool
    action: str
    code: str
    detail: str
    who: str | None = None
    applied_to: str | None = None  # "running session" | "saved state"


def apply_override(settings: Settings, action: str, token: str | None, reason: str, *,
                   breaker: str | None = None, scaling: dict[str, Any] | None = None) -> OverrideResult:
    """Check who and why, then apply (or hand to the running session). Refusals are results, recorded too."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown override '{action}'; use one of: {', '.join(ACTIONS)}")
    who = authorize(token, settings.operators, ACTIONS[action])
    if not isinstance(who, Operator):
        return _record(settings, OverrideResult(False, action, who.code, who.detail), reason, breaker)
    if not reason.strip():
        result = OverrideResult(False, action, "OVERRIDE_NO_REASON", "an override needs a reason", who.name)
        return _record(settings, result, reason, breaker)
    if action == "clear-breaker" and not breaker:
        result = OverrideResult(False, action, "OVERRIDE_NO_BREAKER",
                                f"name the breaker to clear: one of {', '.join(BREAKERS)}", who.name)
        return _record(settings, result, reason, breaker)
    if action == "clear-breaker" and breaker not in BREAKERS:  # refused here, not by the session that applies it
        result = OverrideResult(False, action, "OVERRIDE_UNKNOWN_BREAKER", f"unknown breaker {str(breaker)[:40]!r}; "
                                f"use one of: {', '.join(BREAKERS)}", who.name)
        return _record(settings, result, reason, breaker)
    refused = change_refusal(settings, scaling) if action == "approve-scaling" else None
    if refused is not None:
        return _record(settings, OverrideResult(False, action, refused[0], refused[1], who.name), reason, breaker,
                       scaling)
    command = {"id": uuid.uuid4().hex, "action": action, "who": who.name, "role": who.role, "reason": reason,
               "breaker": breaker, "requested_at": datetime.now(UTC).isoformat(), "scaling": scaling}
    if action == "resume":
        halt_path(settings.data_dir).unlink(missing_ok=True)
    if running_session(settings.data_dir) is not None:
        write_command(settings.data_dir, command)
        applied = "running session"
    else:
        apply_to_saved_state(settings, command)
        applied = "saved state"
    detail = f"{action} by {who.name} ({who.role}): {reason}" + (f" [breaker {breaker}]" if breaker else "")
    return _record(settings, OverrideResult(True, action, "OVERRIDE_ACCEPTED", detail, who.name, applied), reason,
                   breaker, scaling)


def apply_to_saved_state(settings: Settings, command: dict[str, Any]) -> None:
    path = live_dir(settings.data_dir) / "state.json"
    state = load_state(path)
    action = command["action"]
    if action == "resume":
        state.trading_state = TradingState.ACTIVE.value
    elif action == "reset-derisk":
        state.risk = {**state.risk, "derisked": False, "hwm": None}
    elif action == "clear-breaker" and state.risk.get("breakers"):
        breakers = CircuitBreakers.from_state(settings.breakers, state.risk["breakers"])
        breakers.clear(command["breaker"], int(datetime.now(UTC).timestamp() * 1000))
        state.risk = {**state.risk, "breakers": breakers.to_state()}
    elif action == "approve-scaling":
        apply_to_state(state, command["scaling"])
    save_state(path, state)


def _record(settings: Settings, result: OverrideResult, reason: str, breaker: str | None,
            scaling: dict[str, Any] | None = None) -> OverrideResult:
    details = {"action": result.action, "who": result.who, "reason": reason, "breaker": breaker,
               "accepted": result.accepted, "applied_to": result.applied_to,
               **({"scaling": scaling} if scaling else {})}
    outcome = OverrideOutcome(action=result.action, accepted=result.accepted, detail=result.detail, who=result.who,
                              reason=reason, extra={"breaker": breaker, "applied_to": result.applied_to,
                                                    **({"scaling": scaling} if scaling else {})})
    Store(settings.db_path).record(Event.of(result.code, outcome), kind="override")
    record_audit(settings, [("override", {**details, "code": result.code, "detail": result.detail})])  # R8.5
    _notify(settings, result, reason, breaker)
    return result


def _notify(settings: Settings, result: OverrideResult, reason: str, breaker: str | None) -> None:
    """Stored in the outbox (and logged on ``rampart.notify``), then sent to Slack now: the caller may exit."""
    from core.notify import notify_now
    from core.notify.notes import override_note

    notify_now(settings, Store(settings.db_path), override_note(
        f"override:{uuid.uuid4().hex}", action=result.action, accepted=result.accepted, code=result.code,
        detail=result.detail, who=result.who, reason=reason, breaker=breaker, applied_to=result.applied_to))
