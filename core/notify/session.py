"""The live session's notifications: a ``SessionObserver`` that turns each flush's new rows into notifications —
one per filled entry order, one per closed trade, one per significant event — stores them (before any send) and
runs the ``Notifier`` thread that delivers them to Slack. The notifier's outbox reads and writes are handed to the
trading thread (``on_poll`` / ``on_flush`` run them), so the notifier never opens DuckDB beside trading writes.
With Slack not configured nothing is sent and no thread runs: the notifications are logged and stay in the outbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from core.errors import StoreError
from core.notify.delivery import Notifier
from core.notify.handoff import Handoff
from core.notify.notes import entry_note, event_note, exit_note
from core.notify.outbox import Notification, notify

if TYPE_CHECKING:
    from core.config import Settings
    from core.store import Store
    from core.view import SessionView

log = logging.getLogger("rampart.notify.session")
DONE_STATUSES = ("filled", "canceled", "expired")  # an entry that is over: notify what it bought
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NotifyObserver:
    """The notifications of one live session (``core.node`` attaches it, last)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.notifier: Notifier | None = None
        self.handoff = Handoff()  # the notifier's outbox work, run here on the trading thread
        self._entries: dict[str, dict[str, Any]] = {}  # client_order_id -> the entry decision (stop, sizing)
        self._backlog: list[Notification] = []  # built but not stored yet (the store was busy): next flush

    # --- SessionObserver ------------------------------------------------------------------------------------
    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        self._start()
        notes, self._backlog = [*self._backlog, *self.notes(view, new)], []
        try:
            if notes:
                notify(self.store, *notes)
        except StoreError:
            self._backlog = notes  # nothing is lost: tried again with the next flush
            raise
        finally:
            self.handoff.drain()

    def on_poll(self, view: SessionView) -> None:
        self._start()
        self.handoff.drain()

    def on_stop(self, view: SessionView) -> None:
        """Store what is left, then stop the notifier after one last delivery (bounded by ``flush_s``)."""
        try:
            if self._backlog:
                notify(self.store, *self._backlog)
                self._backlog = []
        finally:
            if self.notifier is not None:
                report = self.notifier.stop(flush=True)
                if report is not None and (report.retrying or report.more):
                    log.warning("session stopped with %d notification(s) undelivered; they stay in the outbox",
                                len(report.retrying) + int(report.more))

    # --- rows → notifications -------------------------------------------------------------------------------
    def notes(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> list[Notification]:
        """The notifications for one flush's new rows, in the order the facts happened."""
        sid = view.session_id
        self._remember_entries(new.get("decisions"))
        timed: list[tuple[datetime, Notification]] = []
        for order in _rows(new.get("orders")):
            if order.get("tag") == "entry" and order.get("status") in DONE_STATUSES and order.get("filled_qty"):
                decision = self._entries.pop(str(order["client_order_id"]), None)
                stop = (decision or {}).get("stop")
                if stop is None:  # e.g. an entry restored after a restart: its decision was in the last process
                    stop = _position_stop(view, str(order["symbol"]))
                timed.append((_ts(order.get("updated_at")), entry_note(sid, order, decision, stop)))
        for trade in _rows(new.get("trades")):
            timed.append((_ts(trade.get("exit_time")), exit_note(sid, trade)))
        for event in _rows(new.get("events")):
            note = event_note(sid, event)
            if note is not None:
                timed.append((_ts(event.get("ts")), note))
        timed.sort(key=lambda pair: pair[0])  # stable: same-time facts keep their table order
        return [note for _, note in timed]

    def _remember_entries(self, decisions: pl.DataFrame | None) -> None:
        for row in _rows(decisions):
            if row.get("kind") != "order" or row.get("action") != "enter":
                continue
            details = row.get("details")
            try:
                parsed = json.loads(details) if isinstance(details, str) else dict(details or {})
            except ValueError:
                continue
            cid = (parsed.get("order") or {}).get("client_order_id")
            if cid:
                self._entries[str(cid)] = {"stop": parsed.get("stop"), "sizing": parsed.get("sizing") or {},
                                           "reason": row.get("reason")}

    def _start(self) -> None:
        """The notifier runs from the first flush (not from attach: preflight may still refuse the session)."""
        if self.notifier is None and self.settings.notify.slack_configured:
            self.notifier = Notifier(self.settings, self.store, handoff=self.handoff).start()


def _rows(frame: pl.DataFrame | None) -> list[dict[str, Any]]:
    return [] if frame is None or frame.height == 0 else list(frame.iter_rows(named=True))


def _ts(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return _EPOCH
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _position_stop(view: SessionView, symbol: str) -> float | None:
    position = view.positions().get(symbol)
    return position.stop if position is not None else None


__all__ = ["NotifyObserver"]
