"""The notification outbox (R3.2): every notification is stored in DuckDB before any delivery is tried.

``notify(store, Notification(...))`` is the one way Rampart tells operators something. The row's id is the
notification's ``key`` — the same fact (one trade's exit, one emergency stop) always gets the same key — so
a retried or replayed call never produces a second message. Delivery (Slack, or the log when Slack is not
configured) reads pending rows from the outbox; see ``core.notify.delivery``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.store import Store

log = logging.getLogger("rampart.notify")

SEVERITIES = ("info", "warning", "error", "critical")


@dataclass(frozen=True)
class Notification:
    """One message for operators. ``key`` identifies the fact it reports (dedupe); ``fields`` are shown as
    label/value pairs; ``urgent`` ones (emergency stop, SAFE_MODE) skip any batching."""

    key: str
    kind: str
    severity: str
    title: str
    body: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False
    session_id: str | None = None

    def to_row(self, now: datetime | None = None) -> dict[str, Any]:
        when = now or datetime.now(UTC)
        return {"notification_id": self.key, "created_at": when, "session_id": self.session_id,
                "kind": self.kind, "severity": self.severity if self.severity in SEVERITIES else "info",
                "urgent": self.urgent, "title": self.title, "body": self.body, "fields": self.fields,
                "status": "pending", "attempts": 0, "next_attempt_at": when}


def enqueue(store: Store, notes: Sequence[Notification]) -> int:
    """Store notifications in the outbox (one transaction); a key already there is kept, not duplicated."""
    if not notes:
        return 0
    now = datetime.now(UTC)
    return store.insert_rows("notifications", [n.to_row(now) for n in notes], on_conflict="ignore")


def notify(store: Store, *notes: Notification) -> None:
    """Store, then log each notification (delivery to Slack happens from the outbox)."""
    enqueue(store, notes)
    for n in notes:
        level = logging.CRITICAL if n.severity == "critical" else logging.WARNING
        log.log(level, "%s: %s %s", n.kind, n.title, n.body)


__all__ = ["Notification", "enqueue", "notify"]
