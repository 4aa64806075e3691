"""The live session's audit trail (R8.5): every credential use, order change, fill, trade and control event of a
session goes into the audit journal, and the chain's head is anchored in DuckDB and on the notification channel.

``AuditObserver`` is both a broker listener (each signed exchange call → a ``credential_use`` record with the key
id and endpoint, never the key) and a ``SessionObserver``. Calls are buffered and written with the bar's orders,
fills, trades and events at the session's flush: one lock and one fsync per bar (the trading loop does not wait on
a disk sync per exchange call); a crash loses at most the current bar's records, which reconciliation rebuilds in
DuckDB. If the journal cannot be written, entries are halted: trading without an audit trail is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import polars as pl

from core.events import Category, EventCode, category_of
from core.security.audit import (
    PUBLIC_CALLS,
    AuditJournal,
    Entry,
    credential_use,
    key_id_of,
    notify_anchor,
    open_journal,
    write_anchor,
)

if TYPE_CHECKING:
    from core.config import AuditConfig, Settings
    from core.execution.ccxt_broker import CallRecord, CcxtBroker
    from core.store import Store
    from core.view import OperatorInbox, SessionView

log = logging.getLogger("rampart.audit")

# Control events go into the journal (every critical event too): state changes, operators, security, scaling,
# breakers, the audit's own, and the trading facts reconciliation and the exchange report.
AUDITED_CATEGORIES = frozenset({Category.STATE, Category.OPERATOR, Category.SECURITY, Category.SCALING,
                                Category.BREAKER, Category.AUDIT})
AUDITED_CODES = frozenset({EventCode.SESSION_STARTED, EventCode.SESSION_STOPPED, EventCode.UNEXPLAINED_ORDER,
                           EventCode.POSITION_MISMATCH, EventCode.FILLED_WHILE_AWAY, EventCode.ORDER_REJECTED})
TABLE_KINDS = (("orders", "order"), ("fills", "fill"), ("trades", "trade"))
MAX_PENDING = 2_000  # calls buffered between flushes before they are written anyway (a long outage)
MAX_BACKLOG = 50_000  # entries kept for a retry while the journal cannot be written


class AuditObserver:
    """Buffers the session's audit entries and writes them once per flush; anchors the head every N records."""

    def __init__(self, journal: AuditJournal, store: Store, config: AuditConfig, key_id: Callable[[], str],
                 session_id: str | None = None, on_failure: Callable[[str], None] | None = None) -> None:
        self.journal, self.store, self.config = journal, store, config
        self.key_id, self.session_id, self.on_failure = key_id, session_id, on_failure
        self._pending: list[Entry] = []
        self._lock = threading.Lock()
        self._anchored = journal.last()[0]
        self._notified_at: float | None = None
        self._failed = False

    # --- broker listener -----------------------------------------------------------------------------------
    def on_call(self, record: CallRecord) -> None:
        """Each exchange call: signed ones become ``credential_use`` entries (written at the next flush)."""
        entry = credential_use(record, self.key_id(), self.session_id)
        if entry is None:
            return
        with self._lock:
            self._pending.append(entry)
            full = len(self._pending) >= MAX_PENDING
        if full:
            self.write([])

    # --- session observer ----------------------------------------------------------------------------------
    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        first = self._notified_at is None
        self.write(session_entries(new), notify=first)

    def on_stop(self, view: SessionView) -> None:
        self.write([("session_end", {"session_id": view.session_id, "bars": view.bars})], notify=True,
                   force_anchor=True)

    # --- writing -------------------------------------------------------------------------------------------
    def write(self, entries: list[Entry], *, notify: bool = False, force_anchor: bool = False) -> None:
        """Append the buffered calls and ``entries`` (one fsync), then anchor when due."""
        with self._lock:
            batch, self._pending = self._pending + entries, []
        if not batch:
            return
        try:
            records = self.journal.append_many(batch)
        except Exception as exc:
            with self._lock:  # kept for the next flush: the disk may come back
                self._pending = (batch + self._pending)[-MAX_BACKLOG:]
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        self._failed = False
        seq, digest = records[-1]["seq"], records[-1]["hash"]
        if force_anchor or seq // self.config.anchor_every > self._anchored // self.config.anchor_every:
            write_anchor(self.store, self.journal.path, seq, digest)
            self._anchored = seq
            notify = notify or self._notify_due()
        if notify:
            self._notify(seq, digest)

    def _notify_due(self) -> bool:
        every = self.config.anchor_notify_s
        return self._notified_at is None or time.monotonic() - self._notified_at >= every

    def _notify(self, seq: int, digest: str) -> None:
        if self._anchored != seq:
            write_anchor(self.store, self.journal.path, seq, digest)
            self._anchored = seq
        notify_anchor(self.store, self.journal.path, seq, digest, self.session_id)
        self._notified_at = time.monotonic()

    def _fail(self, why: str) -> None:
        log.error("audit journal %s not written: %s", self.journal.path, why)
        if not self._failed and self.on_failure is not None:
            self._failed = True
            self.on_failure(why)


def session_entries(new: Mapping[str, pl.DataFrame]) -> list[Entry]:
    """The flush's order changes, fills, trades and audited events as journal entries."""
    entries: list[Entry] = []
    for table, kind in TABLE_KINDS:
        frame = new.get(table)
        if frame is not None and frame.height:
            entries.extend((kind, row) for row in frame.to_dicts())
    events = new.get("events")
    if events is not None and events.height:
        for row in events.to_dicts():
            code = str(row.get("code") or "")
            if (code in AUDITED_CODES or category_of(code, row.get("kind")) in AUDITED_CATEGORIES
                    or row.get("severity") == "critical"):
                entries.append(("event", row))
    return entries


def attach_audit(settings: Settings, store: Store, broker: CcxtBroker, view: SessionView,
                 inbox: OperatorInbox) -> AuditObserver | None:
    """The journal for a live session (an observer and a broker listener, attached by ``core.node``); None when the
    audit is disabled."""
    journal = open_journal(settings)
    if journal is None:
        return None

    def key_id() -> str:  # the key actually in the client now (rotation swaps it)
        return key_id_of(getattr(broker.client, "apiKey", None))

    def halt(why: str) -> None:
        inbox.halt_entries("AUDIT_UNAVAILABLE", f"the audit journal cannot be written ({why}); no new entries "
                           "until it can", {"journal": str(journal.path)})

    observer = AuditObserver(journal, store, settings.audit, key_id, view.session_id, halt)
    broker.listeners.append(observer.on_call)
    return observer


__all__ = ["AUDITED_CATEGORIES", "AUDITED_CODES", "PUBLIC_CALLS", "AuditObserver", "attach_audit", "session_entries"]
