"""Alerts (R3.4): something unusual, with a severity, a coded reason and the evidence.

``record_alert(store, Alert(...))`` stores the alert in the ``alerts`` table and an ``events`` row, and puts a
notification in the outbox (stored before delivery). The rules that raise alerts live beside this module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.events import AlertRaised, Event
from core.notify import Notification, notify
from core.store import Store


@dataclass(frozen=True)
class Alert:
    """``rule`` names the detector (e.g. ``slippage``), ``code`` the coded reason (``SLIPPAGE_HIGH``),
    ``reason`` a sentence with the numbers, ``evidence`` the observed values and thresholds."""

    rule: str
    code: str
    severity: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    ts: datetime | None = None
    key: str | None = None  # dedupe key for the notification (default: a new id per alert)


def record_alert(store: Store, alert: Alert) -> str:
    """Store the alert (alerts + events) and notify; returns the alert id."""
    alert_id = uuid.uuid4().hex
    ts = alert.ts or datetime.now(UTC)
    store.insert_rows("alerts", [{"alert_id": alert_id, "session_id": alert.session_id, "ts": ts,
                                  "rule": alert.rule, "severity": alert.severity, "code": alert.code,
                                  "reason": alert.reason, "evidence": alert.evidence}])
    event = Event.of(alert.code, AlertRaised(rule=alert.rule, alert_id=alert_id, reason=alert.reason,
                                             evidence=alert.evidence), alert.severity, int(ts.timestamp() * 1000))
    store.record(event, kind="alert", session_id=alert.session_id)
    notify(store, Notification(key=alert.key or f"alert:{alert_id}", kind="alert", severity=alert.severity,
                               title=f"ALERT {alert.code}", body=alert.reason,
                               fields={k: v for k, v in alert.evidence.items() if _simple(v)},
                               urgent=alert.severity == "critical", session_id=alert.session_id))
    return alert_id


def _simple(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


__all__ = ["Alert", "record_alert"]
