"""The notification outbox (R3.2): every notification is stored in DuckDB before any delivery is tried.

``notify(store, Notification(...))`` is the one way Rampart tells operators something. The row's id is the
notification's ``key`` — the same fact (one trade's exit, one emergency stop) always gets the same key — so
a retried or replayed call never produces a second row, log line or message. Delivery (``core.notify.delivery``)
claims due rows from here for one pass and records the outcomes (``claim_due`` / ``settle``).

Row life: ``pending`` → ``delivered`` (Slack answered ok), or ``failed`` after ``max_attempts`` when Slack keeps
refusing that one message. Without Slack configured rows stay ``pending`` (logged once, when stored) and go out
once Slack is configured; ``logged`` is not used. ``last_error`` starting with ``UNCONFIRMED`` means an earlier
send may have reached Slack (timeout, lost response, crash mid-send): the next attempt looks for the message
before posting again.

The statements (and why they all run on read-write connections, one thread at a time) are in ``core.store.outbox``;
in a live session all of it runs on the trading thread (see ``core.notify.session``).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import StoreError
from core.redact import redact, redact_value
from core.store import Store
from core.store import outbox as outbox_repo

log = logging.getLogger("rampart.notify")

SEVERITIES = ("info", "warning", "error", "critical")
UNCONFIRMED = "UNCONFIRMED"  # last_error prefix: the previous send may have arrived
REFUSED = "REFUSED"  # last_error prefix: Slack refused this message; the next try is plain text

Listener = Callable[[Sequence["Notification"]], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


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
        """The outbox row; text is redacted here too (R8.2), so no secret is ever stored or sent."""
        when = now or datetime.now(UTC)
        return {"notification_id": self.key, "created_at": when, "session_id": self.session_id,
                "kind": self.kind, "severity": self.severity if self.severity in SEVERITIES else "info",
                "urgent": self.urgent, "title": redact(self.title), "body": redact(self.body),
                "fields": redact_value(dict(self.fields)), "status": "pending", "attempts": 0,
                "next_attempt_at": when}


@dataclass(frozen=True)
class OutboxRow:
    """A pending notification as delivery sees it."""

    key: str
    created_at: datetime
    session_id: str | None
    kind: str
    severity: str
    urgent: bool
    title: str
    body: str
    fields: dict[str, Any]
    attempts: int
    next_attempt_at: datetime
    last_error: str

    @property
    def unconfirmed(self) -> bool:
        return self.last_error.startswith(UNCONFIRMED)

    @property
    def refused(self) -> bool:
        return self.last_error.startswith(REFUSED)


# --- storing -----------------------------------------------------------------------------------------------
def enqueue(store: Store, notes: Sequence[Notification]) -> int:
    """Store notifications in the outbox (one transaction); a key already there is kept, not duplicated.
    Returns how many were new."""
    return len(_insert(store, notes))


def notify(store: Store, *notes: Notification) -> None:
    """Store, then log each new notification; in-process notifiers are woken (urgent ones at once).

    If storing fails the notifications are still logged (marked NOT STORED) and the StoreError is raised."""
    try:
        new = _insert(store, notes)
    except StoreError as exc:
        for n in notes:
            _log(n, f" [NOT STORED: {exc}]")
        raise
    for n in new:
        _log(n)
    if new:
        with _listeners_lock:
            listeners = list(_listeners)
        for listener in listeners:
            try:
                listener(new)
            except Exception:  # a wake-up that fails must not fail the caller: the rows are stored
                log.exception("notification listener failed")


def add_listener(listener: Listener) -> None:
    """Call ``listener(new_notifications)`` after every store in this process (the notifier's wake-up)."""
    with _listeners_lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _log(n: Notification, suffix: str = "") -> None:
    level = logging.CRITICAL if n.severity == "critical" else logging.WARNING
    log.log(level, "%s", redact(f"{n.kind}: {n.title} {n.body}".rstrip() + suffix))


def _insert(store: Store, notes: Sequence[Notification]) -> list[Notification]:
    """Insert the notes (strictly increasing created_at keeps their order); returns the ones that were new."""
    if not notes:
        return []
    now = datetime.now(UTC)
    rows = []
    for i, note in enumerate(notes):
        if not note.key:  # before anything is stored: one bad note keeps the whole call out
            raise StoreError(f"notification {note.title!r} has an empty key; give each fact a stable key")
        row = note.to_row(now + timedelta(microseconds=i))
        row["fields"] = json.dumps(_finite(row["fields"]), default=str)
        rows.append(row)
    new = outbox_repo.insert_new(store, rows)
    stored = []
    for n in notes:
        if n.key in new:  # a key given twice in one call is stored (and reported) once
            new.discard(n.key)
            stored.append(n)
    return stored


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- delivery's side ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claimed:
    """Rows claimed for one delivery pass, the earliest next attempt of the pending rows left (None: none), and
    the channel id Slack reported for the latest delivered message (to look a lost message up)."""

    rows: list[OutboxRow]
    later: datetime | None
    channel_id: str | None


@dataclass(frozen=True)
class Settled:
    """What became of one claimed row. ``status``: delivered | pending (retry at ``when``) | failed | released
    (not tried after all: its attempt is given back)."""

    row: OutboxRow
    status: str
    when: datetime | None = None
    error: str = ""
    channel: str | None = None
    ts: str | None = None


def claim_due(store: Store, now: datetime, lease_until: datetime, *, urgent_only: bool = False,
              keys: Sequence[str] | None = None, limit: int = 20) -> Claimed:
    """Take the due pending rows (stored order, at most ``limit``) for one pass, in one transaction: each attempt
    is counted, marked UNCONFIRMED (in flight: after a crash the next try looks before posting) and its next
    attempt pushed to ``lease_until`` so no other deliverer sends it meanwhile."""
    mark = f"{UNCONFIRMED}: in flight since {now.isoformat()}"
    due = outbox_repo.claim_due(store, now, lease_until, mark, urgent_only=urgent_only, keys=keys, limit=limit)
    later = min((t.astimezone(UTC) for t in due.rest if t is not None), default=None)
    return Claimed([_row(r) for r in due.rows], later, due.channel)


def settle(store: Store, results: Sequence[Settled], *, defer_until: datetime | None = None) -> None:
    """Record a pass's outcomes in one transaction; ``defer_until``: Slack is unavailable, so no pending row is
    due before then (the rest stay in order behind the first)."""
    outbox_repo.record_outcomes(store, [_outcome(res) for res in results], defer_until=defer_until)


def _outcome(res: Settled) -> outbox_repo.Outcome:
    key = res.row.key
    if res.status == "delivered":
        return outbox_repo.Outcome(key, "delivered", res.when or datetime.now(UTC), channel=res.channel,
                                   message_ts=res.ts)
    if res.status == "released":
        return outbox_repo.Outcome(key, "released", res.when, res.row.last_error or None)
    return outbox_repo.Outcome(key, res.status, res.when, redact(res.error)[:1000])


def rows(store: Store) -> list[dict[str, Any]]:
    """Every outbox row, oldest first (for operators and tests)."""
    return outbox_repo.all_rows(store)


def _row(r: dict[str, Any]) -> OutboxRow:
    """A claimed row (``core.store.outbox.claim_due``) as delivery sees it."""
    raw = r["fields"]
    fields = json.loads(raw) if isinstance(raw, str) else (raw or {})
    created = r["created_at"]
    return OutboxRow(key=r["notification_id"], created_at=created.astimezone(UTC), session_id=r["session_id"],
                     kind=r["kind"], severity=r["severity"] or "info", urgent=bool(r["urgent"]),
                     title=r["title"] or "", body=r["body"] or "", fields=fields if isinstance(fields, dict) else {},
                     attempts=int(r["attempts"] or 0),
                     next_attempt_at=(r["next_attempt_at"] or created).astimezone(UTC),
                     last_error=r["last_error"] or "")


__all__ = ["REFUSED", "UNCONFIRMED", "Claimed", "Notification", "OutboxRow", "Settled", "add_listener", "claim_due",
           "enqueue", "notify", "remove_listener", "rows", "settle"]
