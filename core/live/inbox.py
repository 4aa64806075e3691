"""The live session's operator inbox: what other threads and processes ask of the session, applied on the trading
thread at its next poll.

Two ways in: ``halt_entries`` and ``record`` from threads of this process (suspicious-activity detection, the
dashboard, the audit journal, key rotation), and command files in ``data_dir/live/commands/`` from other processes
(overrides already authorized and recorded by ``core.control.overrides``). Nothing here touches the engine until
``apply`` runs on the trading thread.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from core.config import Settings
from core.domain import TradingState
from core.engine import Engine
from core.events import EntriesHalted, Event, EventCode, OverrideOutcome
from core.scaling.changes import apply_to_risk
from core.state.commands import pending_commands
from core.state.live import LiveState


class Inbox:
    """The ``OperatorInbox`` of one live session."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._requests: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    # --- OperatorInbox (any thread) ------------------------------------------------------------------------
    def halt_entries(self, code: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """SAFE_MODE at the next poll (no new entries; exits and stops keep working), with ``code`` (e.g.
        ``SUSPICIOUS_ORDER``) recorded as a critical event. An operator's resume lifts it. ``code`` must be an
        ``EventCode`` (checked here, on the caller's thread, not when the trading thread applies it)."""
        EventCode(code)
        self._requests.put({"action": "halt-entries", "code": code, "reason": reason, "evidence": evidence or {}})

    def record(self, event: Event) -> None:
        self._requests.put({"action": "record", "event": event})

    # --- the trading thread --------------------------------------------------------------------------------
    def apply(self, engine: Engine, state: LiveState, settings: Settings) -> bool:
        """Apply every request and command waiting; True when anything was applied."""
        applied = self.apply_requests(engine)
        for path, cmd in pending_commands(self.data_dir):
            applied = True
            self._command(engine, state, settings, cmd)
            path.unlink(missing_ok=True)
        return applied

    def apply_requests(self, engine: Engine) -> bool:
        applied = False
        while True:
            try:
                req = self._requests.get_nowait()
            except queue.Empty:
                return applied
            applied = True
            if req["action"] == "record":
                engine.emit(req["event"])
                continue
            ts = engine.now()
            engine.emit(Event.of(req["code"], EntriesHalted(reason=req["reason"], evidence=req["evidence"]),
                                 "critical", ts))
            if engine.risk.state is TradingState.ACTIVE:
                act = engine.risk.transition(TradingState.SAFE_MODE, f"{req['code']}: {req['reason']}", ts,
                                             cause=req["code"])
                if act is not None:
                    engine.record_action(act)

    def _command(self, engine: Engine, state: LiveState, settings: Settings, cmd: dict[str, Any]) -> None:
        """One operator override handed over by ``apply_override`` (already authorized and recorded)."""
        risk = engine.risk
        action, ts = cmd.get("action"), engine.now()
        if action == "resume" and risk.state is not TradingState.ACTIVE:
            act = risk.transition(TradingState.ACTIVE, f"resumed by {cmd.get('who')}: {cmd.get('reason')}", ts,
                                  cause=EventCode.OVERRIDE_APPLIED)
            if act is not None:
                engine.record_action(act)
        elif action == "reset-derisk":
            risk.derisked = False
            equity = engine.result.equity[-1] if engine.result.equity else engine.portfolio.cash
            risk.new_high(equity)  # the high-water mark starts again from here
        elif action == "clear-breaker" and risk.breakers is not None:
            risk.breakers.clear(str(cmd.get("breaker")), ts)
        elif action == "halt-entries":  # a login lockout seen by `rampart dashboard` in another process
            self.halt_entries(str(cmd.get("code")), str(cmd.get("reason")), cmd.get("evidence"))
            self.apply_requests(engine)  # now, not at the next poll
        elif action == "approve-scaling":  # authorized and checked by apply_override (R2.5, R6.3)
            engine.emit(apply_to_risk(risk, state, cmd.get("scaling") or {}, settings.scaling.rungs))
        engine.emit(Event.of(EventCode.OVERRIDE_APPLIED, OverrideOutcome(
            action=str(action), accepted=True, detail="applied by the running session", who=cmd.get("who"),
            reason=str(cmd.get("reason") or ""), extra={k: v for k, v in cmd.items() if k not in ("who", "reason")})))


__all__ = ["Inbox"]
