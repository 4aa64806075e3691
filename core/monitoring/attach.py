"""Connect monitoring to a live session: the decision log and the alert rules, as observers and broker listeners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.monitoring.decision_log import DecisionLog
from core.monitoring.monitor import AlertMonitor

if TYPE_CHECKING:
    from core.live.session import LiveSession


def attach_monitoring(session: LiveSession) -> tuple[DecisionLog, AlertMonitor]:
    """The decision log first, so a flush's execution rows are stored before the rules look at that flush."""
    decisions, alerts = DecisionLog(session), AlertMonitor(session)
    session.observers.extend([decisions, alerts])
    session.broker.listeners.extend([decisions.on_call, alerts.on_call])
    return decisions, alerts


__all__ = ["attach_monitoring"]
