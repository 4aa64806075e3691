"""Delivery of the outbox to Slack: in order, once, retried with backoff, honouring Retry-After.

``deliver_pending`` makes one pass: it claims the due pending rows in the order they were stored (one
transaction, so two deliverers — the live session's ``Notifier`` and a CLI command — never send the same row),
sends them one by one, then records every outcome (one transaction). The rules:

- Slack unavailable (no connection, 5xx, 429, bad token/channel): the row is retried after its backoff
  (``backoff_s`` doubling per attempt up to ``max_backoff_s``; a 429's Retry-After wins), the rest of the pass is
  given back, every pending row waits at least as long (order is kept). An outage never marks a row failed.
- Slack refused one message: it is retried as plain text after its backoff while the others go on; after
  ``max_attempts`` attempts it is marked failed.
- A send that may have arrived though it failed (timeout, lost response, 5xx, crash mid-send) is looked for in
  the channel by its key before it is posted again.
- Without Slack configured nothing is sent and nothing read: rows stay pending (they were logged when stored).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from core.config.notify import NotifyConfig
from core.errors import RampartError
from core.notify import outbox
from core.notify.handoff import Handoff
from core.notify.outbox import Notification, OutboxRow, Settled
from core.store import Store

if TYPE_CHECKING:
    from core.config import Settings
    from core.notify.slack import Outcome, SlackSender

log = logging.getLogger("rampart.notify.delivery")
T = TypeVar("T")
BATCH = 20  # rows claimed per pass
LEASE_S = 120.0  # claimed rows are the pass's alone this long (at least); no send starts in its last stretch
RETRY_AFTER_ERROR_S = 0.5  # a pass that could not use the outbox (file busy) is tried again this soon


@dataclass
class DeliveryReport:
    """What one pass did. ``next_due`` is when the earliest remaining pending row may be tried."""

    configured: bool
    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    next_due: datetime | None = None
    more: bool = False  # due rows are left (the batch was full, or the deadline came first)
    error: str | None = None  # why the pass stopped early (Slack unavailable)


def deliver_pending(settings: Settings | NotifyConfig, store: Store, *, urgent_only: bool = False,
                    keys: Sequence[str] | None = None, deadline_s: float | None = None,
                    sender: SlackSender | None = None, handoff: Handoff | None = None) -> DeliveryReport:
    """One delivery pass over the due pending rows (only urgent ones, or only ``keys``, when asked).

    Never raises for Slack trouble (it is recorded on the rows); a StoreError means the outbox could not be read
    or written and the pass is retried later. With ``handoff`` the outbox work runs on the thread draining it."""
    cfg = settings if isinstance(settings, NotifyConfig) else settings.notify
    if not cfg.slack_configured:
        return DeliveryReport(configured=False)
    if sender is None:
        from core.notify.slack import SlackSender  # slack-sdk is imported only when Slack is configured

        sender = SlackSender(cfg)
    return _Pass(cfg, store, sender, deadline_s, handoff).run(urgent_only, keys)


def deliver_now(settings: Settings, store: Store, *, keys: Sequence[str] | None = None,
                urgent_only: bool = False) -> DeliveryReport:
    """For a process that just stored notifications and may exit soon (CLI commands, flows): deliver them now,
    bounded by ``flush_s``. A notifier running in this process was already woken by ``notify``; then this
    leaves the work to it."""
    cfg = settings.notify
    if not cfg.slack_configured:
        return DeliveryReport(configured=False)
    if any(n.store.path == store.path for n in Notifier.running()):
        return DeliveryReport(configured=True)
    try:
        return deliver_pending(cfg, store, keys=keys, urgent_only=urgent_only, deadline_s=cfg.flush_s)
    except RampartError as exc:  # the notification is stored; a later pass delivers it
        log.warning("notifications not delivered now (stay in the outbox): %s", exc)
        return DeliveryReport(configured=True, error=str(exc))


def notify_now(settings: Settings, store: Store, *notes: Notification) -> DeliveryReport:
    """``notify`` then ``deliver_now`` for just these notes: for processes that may exit right after.
    Raises StoreError when the notes could not be stored (they were logged all the same)."""
    outbox.notify(store, *notes)
    return deliver_now(settings, store, keys=[n.key for n in notes])


class _Pass:
    def __init__(self, cfg: NotifyConfig, store: Store, sender: SlackSender, deadline_s: float | None,
                 handoff: Handoff | None) -> None:
        self.cfg, self.store, self.sender, self.handoff = cfg, store, sender, handoff
        one_send = 2 * cfg.timeout_s + 5  # a look-up and a post, with margin
        self.lease_s = max(LEASE_S, 4 * one_send)
        self.stop_at = time.monotonic() + min(deadline_s if deadline_s is not None else self.lease_s,
                                              self.lease_s - one_send)
        self.report = DeliveryReport(configured=True)

    def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.handoff.run(fn, *args, **kwargs) if self.handoff is not None else fn(*args, **kwargs)

    def run(self, urgent_only: bool, keys: Sequence[str] | None) -> DeliveryReport:
        now = datetime.now(UTC)
        claimed = self._db(outbox.claim_due, self.store, now, now + timedelta(seconds=self.lease_s),
                           urgent_only=urgent_only, keys=keys, limit=BATCH)
        results: list[Settled] = []
        defer_until: datetime | None = None
        for i, row in enumerate(claimed.rows):
            if time.monotonic() >= self.stop_at:
                results += [Settled(r, "released", datetime.now(UTC)) for r in claimed.rows[i:]]
                self.report.more = True
                break
            res = self._attempt(row, claimed.channel_id)
            results.append(res)
            if res.status == "pending" and self.report.error is not None:  # Slack unavailable: all wait
                defer_until = res.when
                results += [Settled(r, "released", res.when) for r in claimed.rows[i + 1:]]
                break
        self._db(outbox.settle, self.store, results, defer_until=defer_until)
        self.report.more = self.report.more or (len(claimed.rows) >= BATCH and self.report.error is None)
        times = [t for t in [claimed.later, *(r.when for r in results if r.status in ("pending", "released"))] if t]
        self.report.next_due = defer_until or (min(times) if times else None)  # deferred: nothing is due sooner
        return self.report

    def _attempt(self, row: OutboxRow, channel_id: str | None) -> Settled:
        """Send one claimed row (after looking for it when an earlier send may have arrived)."""
        verified = False
        if row.unconfirmed:
            lookup = self.sender.find(row.key, row.created_at, channel_id)
            if lookup.found and lookup.outcome is not None:
                return self._delivered(row, lookup.outcome, "found in the channel: an earlier send arrived")
            if lookup.outcome is not None:  # could not look (Slack unavailable): the old send stays unconfirmed
                return self._failed(row, lookup.outcome, still_unconfirmed=True)
            verified = lookup.checked
            if not lookup.checked:
                log.warning("notification %s: an earlier send may have arrived and cannot be looked up "
                            "(no channel id or no history scope); posting it again", row.key)
        outcome = self.sender.post(row, plain=row.refused)
        if outcome.status == "delivered":
            return self._delivered(row, outcome, "")
        return self._failed(row, outcome, still_unconfirmed=row.unconfirmed and not verified)

    def _delivered(self, row: OutboxRow, outcome: Outcome, how: str) -> Settled:
        self.report.delivered.append(row.key)
        log.info("notification %s delivered to Slack%s", row.key, f" ({how})" if how else "")
        return Settled(row, "delivered", datetime.now(UTC), channel=outcome.channel, ts=outcome.ts)

    def _failed(self, row: OutboxRow, outcome: Outcome, *, still_unconfirmed: bool) -> Settled:
        attempts = row.attempts + 1  # the claim counted this attempt
        now = datetime.now(UTC)
        delay = min(self.cfg.backoff_s * 2 ** (attempts - 1), self.cfg.max_backoff_s)
        if outcome.retry_after is not None:
            delay = outcome.retry_after
        prefix = outbox.UNCONFIRMED if (outcome.unconfirmed or still_unconfirmed) else (
            outbox.REFUSED if outcome.status == "refused" else "")
        error = f"{prefix}: {outcome.error}" if prefix else outcome.error
        if outcome.status == "refused" and attempts >= self.cfg.max_attempts:
            self.report.failed.append(row.key)
            log.error("notification %s failed after %d attempts: %s", row.key, attempts, outcome.error)
            return Settled(row, "failed", now, error)
        self.report.retrying.append(row.key)
        if outcome.status == "retry":
            self.report.error = outcome.error
        log.warning("notification %s not delivered (attempt %d): %s; next try in %.1f s", row.key, attempts,
                    outcome.error, delay)
        return Settled(row, "pending", now + timedelta(seconds=delay), error)


class Notifier:
    """Delivers in a background thread: ``batch_s`` after something is stored, at once for urgent notifications,
    when a retry is due, and every ``poll_s`` (notifications stored by other processes). With a ``handoff`` its
    outbox reads and writes run on the thread that drains it (a live session's trading thread)."""

    _running: ClassVar[list[Notifier]] = []
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, settings: Settings | NotifyConfig, store: Store, *, handoff: Handoff | None = None) -> None:
        self.cfg = settings if isinstance(settings, NotifyConfig) else settings.notify
        self.store = store
        self.handoff = handoff
        self._cond = threading.Condition()
        self._due = 0.0  # monotonic time of the next pass; the first pass runs at once (leftovers)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sender: SlackSender | None = None
        self.passes = 0
        self.last_report: DeliveryReport | None = None

    @classmethod
    def running(cls) -> list[Notifier]:
        with cls._registry_lock:
            return list(cls._running)

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Notifier:
        if self._thread is not None or not self.cfg.slack_configured:
            return self
        from core.notify.slack import SlackSender

        self._sender = SlackSender(self.cfg)
        self._thread = threading.Thread(target=self._loop, name="rampart-notifier", daemon=True)
        outbox.add_listener(self._stored)
        with self._registry_lock:
            self._running.append(self)
        self._thread.start()
        return self

    def wake(self, *, urgent: bool = False) -> None:
        """Deliver soon: at once when urgent, else within ``batch_s`` (notes stored meanwhile go together)."""
        with self._cond:
            self._due = min(self._due, time.monotonic() + (0.0 if urgent else self.cfg.batch_s))
            self._cond.notify()

    def stop(self, *, flush: bool = True) -> DeliveryReport | None:
        """Stop the thread, then (``flush``) one last pass bounded by ``flush_s`` on the calling thread (which
        must be the one draining the handoff, if there is one)."""
        outbox.remove_listener(self._stored)
        with self._registry_lock:
            if self in self._running:
                self._running.remove(self)
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._finish_pass()
        if self.handoff is not None:
            self.handoff.close()  # a pass still waiting for the outbox gives up at once
        if not flush or not self.cfg.slack_configured:
            return None
        try:
            from core.notify.slack import SlackSender

            quick = SlackSender(self.cfg, timeout_s=max(1, min(self.cfg.timeout_s, round(self.cfg.flush_s))))
            return deliver_pending(self.cfg, self.store, deadline_s=self.cfg.flush_s, sender=quick)
        except RampartError as exc:
            log.warning("last delivery before stopping failed (notifications stay in the outbox): %s", exc)
            return None

    def _finish_pass(self) -> None:
        """Let a pass in progress end within ``flush_s``, running its outbox work here meanwhile: closing the
        hand-off under it would leave the rows it posted claimed but not marked delivered."""
        if self._thread is None:
            return
        until = time.monotonic() + self.cfg.flush_s
        while self._thread.is_alive() and time.monotonic() < until:
            if self.handoff is not None:
                self.handoff.drain()
            self._thread.join(timeout=0.02)
        if self.handoff is not None:
            self.handoff.drain()

    def _stored(self, notes: Sequence[Notification]) -> None:
        self.wake(urgent=any(n.urgent for n in notes))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and time.monotonic() < self._due:
                    self._cond.wait(self._due - time.monotonic())
                if self._stopping:
                    return
                self._due = time.monotonic() + self.cfg.poll_s
            self._pass()

    def _pass(self) -> None:
        try:
            report = deliver_pending(self.cfg, self.store, sender=self._sender, handoff=self.handoff)
        except Exception as exc:  # the outbox is busy or broken: the thread must live on and try again
            retry = min(self.cfg.poll_s, RETRY_AFTER_ERROR_S)
            if not self._stopping:
                log.warning("notification delivery pass failed (retried in %.1f s): %s", retry, exc)
            with self._cond:
                self._due = min(self._due, time.monotonic() + retry)
            return
        self.passes += 1
        self.last_report = report
        now = time.monotonic()
        due = now if report.more else None
        if report.next_due is not None:
            due = min(due if due is not None else float("inf"),
                      now + max(0.0, (report.next_due - datetime.now(UTC)).total_seconds()))
        if due is not None:
            with self._cond:
                self._due = min(self._due, due)


__all__ = ["DeliveryReport", "Notifier", "deliver_now", "deliver_pending", "notify_now"]
