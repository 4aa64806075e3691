"""The ``notifications`` table (the outbox, R3.2): store new rows, claim due ones, record outcomes, list them.

``core.notify.outbox`` decides what a notification is and when it is due; the statements are here. Each function
is one transaction.

Every statement here runs on a read-write connection on purpose: DuckDB refuses a read-only connection beside a
read-write one in the same process. In a live session all of it runs on the trading thread (see
``core.notify.session``): DuckDB also fails when two threads open or close one file at the same moment.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from core.store.db import unit_of_work
from core.store.repository import Store

# The columns a new row is stored with, and the ones a claimed row is read with.
COLUMNS = ("notification_id", "created_at", "session_id", "kind", "severity", "urgent", "title", "body", "fields",
           "status", "attempts", "next_attempt_at")
_READ = ("notification_id, created_at, session_id, kind, severity, urgent, title, body, fields, attempts, "
         "next_attempt_at, last_error")

_ready: weakref.WeakSet[Store] = weakref.WeakSet()
_db_lock = threading.RLock()


@dataclass(frozen=True)
class Due:
    """What ``claim_due`` took: the claimed rows (dicts of notification_id, created_at, session_id, kind, severity,
    urgent, title, body, fields, attempts, next_attempt_at, last_error), the next_attempt_at of the matching pending
    rows left, and the channel of the latest delivered message (None: none known)."""

    rows: list[dict[str, Any]]
    rest: list[datetime | None]
    channel: str | None


@dataclass(frozen=True)
class Outcome:
    """What to write for one claimed row. ``status``: delivered (at ``when``, with Slack's ``channel`` and
    ``message_ts``) | released (attempt given back, due at ``when``, ``last_error`` restored) | any other status
    (pending, failed), due at ``when`` with ``last_error``."""

    key: str
    status: str
    when: datetime | None
    last_error: str | None = None
    channel: str | None = None
    message_ts: str | None = None


def insert_new(store: Store, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert the rows (keys: ``COLUMNS``; ``fields`` as JSON text) in one transaction, keeping any key already
    stored; returns the notification ids that were new."""
    sql = (f"INSERT OR IGNORE INTO notifications ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)}) RETURNING notification_id")
    new: set[str] = set()
    with _unit(store, "store notifications") as conn:
        for row in rows:
            new.update(r[0] for r in conn.execute(sql, [row[c] for c in COLUMNS]).fetchall())
    return new


def claim_due(store: Store, now: datetime, lease_until: datetime, mark: str, *, urgent_only: bool = False,
              keys: Sequence[str] | None = None, limit: int = 20) -> Due:
    """In one transaction: take the pending rows due at ``now`` (only urgent ones / only ``keys`` when asked; by
    created_at, notification_id; at most ``limit``), count an attempt on each, set its last_error to ``mark`` and
    its next attempt to ``lease_until``; read what is left pending and the latest delivered channel."""
    where: list[str] = ["status = 'pending'"]
    params: list[Any] = []
    if urgent_only:
        where.append("urgent")
    if keys is not None:
        where.append(f"notification_id IN ({', '.join('?' for _ in keys)})" if keys else "false")
        params.extend(keys)
    match = " AND ".join(where)
    with _unit(store, "claim notifications") as conn:
        cur = conn.execute(f"SELECT {_READ} FROM notifications WHERE {match} AND next_attempt_at <= ? "
                           f"ORDER BY created_at, notification_id LIMIT {int(limit)}", [*params, now])
        names = [d[0] for d in cur.description or []]
        due = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for row in due:
            conn.execute("UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                         "WHERE notification_id = ?", [lease_until, mark, row["notification_id"]])
        claimed = {r["notification_id"] for r in due}
        rest = [t for k, t in conn.execute(f"SELECT notification_id, next_attempt_at FROM notifications WHERE {match}",
                                           params).fetchall() if k not in claimed]
        channel = conn.execute("SELECT channel FROM notifications WHERE status = 'delivered' AND channel IS NOT NULL "
                               "ORDER BY delivered_at DESC LIMIT 1").fetchall()
    return Due(due, rest, str(channel[0][0]) if channel else None)


def record_outcomes(store: Store, outcomes: Sequence[Outcome], *, defer_until: datetime | None = None) -> None:
    """Write the outcomes in order, in one transaction; with ``defer_until`` no pending row is due before then."""
    with _unit(store, "record notification outcomes") as conn:
        for res in outcomes:
            if res.status == "delivered":
                conn.execute("UPDATE notifications SET status = 'delivered', delivered_at = ?, channel = ?, "
                             "message_ts = ?, last_error = NULL WHERE notification_id = ?",
                             [res.when, res.channel, res.message_ts, res.key])
            elif res.status == "released":
                conn.execute("UPDATE notifications SET attempts = attempts - 1, next_attempt_at = ?, last_error = ? "
                             "WHERE notification_id = ?", [res.when, res.last_error, res.key])
            else:
                conn.execute("UPDATE notifications SET status = ?, next_attempt_at = ?, last_error = ? "
                             "WHERE notification_id = ?", [res.status, res.when, res.last_error, res.key])
        if defer_until is not None:
            conn.execute("UPDATE notifications SET next_attempt_at = ? WHERE status = 'pending' "
                         "AND next_attempt_at < ?", [defer_until, defer_until])


def all_rows(store: Store) -> list[dict[str, Any]]:
    """Every notifications row (all columns, as stored), by created_at, notification_id."""
    with _unit(store, "read the outbox") as conn:
        cur = conn.execute("SELECT * FROM notifications ORDER BY created_at, notification_id")
        names = [d[0] for d in cur.description or []]
        found = cur.fetchall()
    return [dict(zip(names, r, strict=True)) for r in found]


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


__all__ = ["COLUMNS", "Due", "Outcome", "all_rows", "claim_due", "insert_new", "record_outcomes"]
