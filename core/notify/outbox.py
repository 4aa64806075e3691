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

Every statement here runs on a read-write connection on purpose: DuckDB refuses a read-only connection beside a
read-write one in the same process. In a live session all of it runs on the trading thread (see
``core.notify.session``): DuckDB also fails when two threads open or close one file at the same moment.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from core.errors import StoreError
from core.redact import redact, redact_value
from core.store import Store, unit_of_work

log = logging.getLogger("rampart.notify")

SEVERITIES = ("info", "warning", "error", "critical")
UNCONFIRMED = "UNCONFIRMED"  # last_error prefix: the previous send may have arrived
REFUSED = "REFUSED"  # last_error prefix: Slack refused this message; the next try is plain text
_COLUMNS = ("notification_id", "created_at", "session_id", "kind", "severity", "urgent", "title", "body", "fields",
            "status", "attempts", "next_attempt_at")
_READ = ("notification_id, created_at, session_id, kind, severity, urgent, title, body, fields, attempts, "
         "next_attempt_at, last_error")

Listener = Callable[[Sequence["Notification"]], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()
_ready: weakref.WeakSet[Store] = weakref.WeakSet()
_db_lock = threading.RLock()


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
    sql = (f"INSERT OR IGNORE INTO notifications ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)}) RETURNING notification_id")
    new: set[str] = set()
    with _unit(store, "store notifications") as conn:
        for i, note in enumerate(notes):
            if not note.key:
                raise StoreError(f"notification {note.title!r} has an empty key; give each fact a stable key")
            row = note.to_row(now + timedelta(microseconds=i))
            row["fields"] = json.dumps(_finite(row["fields"]), default=str)
            new.update(r[0] for r in conn.execute(sql, [row[c] for c in _COLUMNS]).fetchall())
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
    where: list[str] = ["status = 'pending'"]
    params: list[Any] = []
    if urgent_only:
        where.append("urgent")
    if keys is not None:
        where.append(f"notification_id IN ({', '.join('?' for _ in keys)})" if keys else "false")
        params.extend(keys)
    match = " AND ".join(where)
    with _unit(store, "claim notifications") as conn:
        due = [_row(r) for r in conn.execute(
            f"SELECT {_READ} FROM notifications WHERE {match} AND next_attempt_at <= ? "
            f"ORDER BY created_at, notification_id LIMIT {int(limit)}", [*params, now]).fetchall()]
        mark = f"{UNCONFIRMED}: in flight since {now.isoformat()}"
        for row in due:
            conn.execute("UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                         "WHERE notification_id = ?", [lease_until, mark, row.key])
        claimed = {r.key for r in due}
        rest = [t for k, t in conn.execute(f"SELECT notification_id, next_attempt_at FROM notifications WHERE {match}",
                                           params).fetchall() if k not in claimed]
        channel = conn.execute("SELECT channel FROM notifications WHERE status = 'delivered' AND channel IS NOT NULL "
                               "ORDER BY delivered_at DESC LIMIT 1").fetchall()
    later = min((t.astimezone(UTC) for t in rest if t is not None), default=None)
    return Claimed(due, later, str(channel[0][0]) if channel else None)


def settle(store: Store, results: Sequence[Settled], *, defer_until: datetime | None = None) -> None:
    """Record a pass's outcomes in one transaction; ``defer_until``: Slack is unavailable, so no pending row is
    due before then (the rest stay in order behind the first)."""
    with _unit(store, "record notification outcomes") as conn:
        for res in results:
            key = res.row.key
            if res.status == "delivered":
                conn.execute("UPDATE notifications SET status = 'delivered', delivered_at = ?, channel = ?, "
                             "message_ts = ?, last_error = NULL WHERE notification_id = ?",
                             [res.when or datetime.now(UTC), res.channel, res.ts, key])
            elif res.status == "released":
                conn.execute("UPDATE notifications SET attempts = attempts - 1, next_attempt_at = ?, last_error = ? "
                             "WHERE notification_id = ?", [res.when, res.row.last_error or None, key])
            else:
                conn.execute("UPDATE notifications SET status = ?, next_attempt_at = ?, last_error = ? "
                             "WHERE notification_id = ?", [res.status, res.when, redact(res.error)[:1000], key])
        if defer_until is not None:
            conn.execute("UPDATE notifications SET next_attempt_at = ? WHERE status = 'pending' "
                         "AND next_attempt_at < ?", [defer_until, defer_until])


def rows(store: Store) -> list[dict[str, Any]]:
    """Every outbox row, oldest first (for operators and tests)."""
    with _unit(store, "read the outbox") as conn:
        cur = conn.execute("SELECT * FROM notifications ORDER BY created_at, notification_id")
        names = [d[0] for d in cur.description or []]
        found = cur.fetchall()
    return [dict(zip(names, r, strict=True)) for r in found]


def _row(r: tuple[Any, ...]) -> OutboxRow:
    fields = json.loads(r[8]) if isinstance(r[8], str) else (r[8] or {})
    return OutboxRow(key=r[0], created_at=r[1].astimezone(UTC), session_id=r[2], kind=r[3], severity=r[4] or "info",
                     urgent=bool(r[5]), title=r[6] or "", body=r[7] or "",
                     fields=fields if isinstance(fields, dict) else {}, attempts=int(r[9] or 0),
                     next_attempt_at=(r[10] or r[1]).astimezone(UTC), last_error=r[11] or "")


@contextmanager
def _unit(store: Store, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """One read-write unit of work on the store's file (migrated on first use through the Store itself).

    ``_db_lock`` keeps this module's own units from overlapping across threads: DuckDB fails (instead of waiting)
    when two threads of one process open or close the same file at the same moment."""
    with _db_lock:
        if store not in _ready:
            store.execute("UPDATE notifications SET attempts = attempts WHERE false")  # migrates a new file
            _ready.add(store)
        with unit_of_work(store.path, what=what, lock_timeout_s=store.lock_timeout_s) as conn:
            yield conn


__all__ = ["REFUSED", "UNCONFIRMED", "Claimed", "Notification", "OutboxRow", "Settled", "add_listener", "claim_due",
           "enqueue", "notify", "remove_listener", "rows", "settle"]
