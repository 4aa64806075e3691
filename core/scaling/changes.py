"""An approved scaling change, as the ``approve-scaling`` override carries it: checked, then applied.

The change is a dict (it travels in the override command file and over the control API):
``{"review_id", "kind": "step_up" | "new_symbol", "to_rung": n (from 1), "symbol", "reviewer", "comment"}``.

A running session applies a step up at once (``apply_to_risk``: the risk engine's risk per trade and exposure
cap become rung n's, event SCALING_APPLIED). R6.4 holds: a restart trades at rung 1 again, so an approved rung
lives only as long as the session it was applied to — after a restart only a new review and approval raise it
(its days at rung count again from the restart). With no session running, a step up changes nothing
(``apply_to_state``) but stays recorded. A new symbol is remembered in the live state and trades after a
restart that adds it to the settings (see ``core.scaling.symbols``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.config import INSTRUMENTS, Settings
from core.config.ladder import Rung, rung
from core.events import Event, EventCode, ScalingEvent
from core.risk.engine import RiskEngine
from core.scaling.symbols import remember_approval, symbol_refusal
from core.state.live import LiveState
from core.store import Store

KINDS = ("step_up", "new_symbol")


def change_refusal(settings: Settings, change: dict[str, Any] | None,
                   now: datetime | None = None) -> tuple[str, str] | None:
    """(code, detail) when ``change`` may not be applied, else None. Fails closed on anything malformed."""
    if not isinstance(change, dict) or change.get("kind") not in KINDS:
        return "SCALING_BAD_CHANGE", "an approve-scaling override needs a change of kind step_up or new_symbol"
    if not str(change.get("reviewer") or "").strip():
        return "SCALING_NO_REVIEWER", "the change must name the reviewer who approved it (R2.5)"
    if change["kind"] == "step_up":
        top = len(settings.scaling.rungs)
        to = change.get("to_rung")
        if not isinstance(to, int) or isinstance(to, bool) or not 2 <= to <= top:
            return "SCALING_BAD_RUNG", f"to_rung must be a rung of the ladder from 2 to {top}, got {to!r}"
        return None
    symbol = change.get("symbol")
    if symbol not in INSTRUMENTS:
        return "SCALING_BAD_SYMBOL", f"unknown symbol {symbol!r}; known: {', '.join(INSTRUMENTS)}"
    return symbol_refusal(Store(settings.db_path), settings, str(symbol), now or datetime.now(UTC))


def apply_to_risk(risk: RiskEngine, state: LiveState, change: dict[str, Any], ladder: tuple[Rung, ...]) -> Event:
    """Apply an (already checked) change to a running session; returns its event."""
    who = f"approved by {change.get('reviewer')}: {change.get('comment') or '-'}"
    if change.get("kind") == "step_up":
        to = int(change["to_rung"])
        step = rung(to - 1, ladder)
        risk.set_rung(step)
        state.rung = to - 1
        details = {"to_rung": to, "risk_per_trade": risk.config.risk_per_trade,
                   "exposure_cap": risk.config.exposure_cap, **change}
        return Event.of(EventCode.SCALING_APPLIED, ScalingEvent(title=f"rung {to}: {step.text()} ({who})",
                                                                extra=details))
    symbol = str(change["symbol"])
    remember_approval(state, symbol, change)
    return Event.of(EventCode.SCALING_SYMBOL_APPROVED, ScalingEvent(
        title=f"{symbol} approved ({who}); it trades after a restart with it in RAMPART_MARKET__ADDED_SYMBOLS and "
              "RAMPART_MARKET__SYMBOLS", extra=change))


def apply_to_state(state: LiveState, change: dict[str, Any]) -> str:
    """No session running: remember an approved symbol; a step up is not kept (R6.4). Returns what happened."""
    if change.get("kind") == "new_symbol":
        remember_approval(state, str(change["symbol"]), change)
        return f"{change['symbol']} approved in the saved live state"
    return "no live session running: the approved rung is recorded, not kept (a start trades at rung 1, R6.4)"
