"""Hot key rotation (R8.3): a new exchange key is proven, then swapped in between requests, while trading.

How a new key reaches a running live session: the operator puts it where the configured provider reads it (the
secrets directory's files, the Prefect Secret blocks, the ``.env`` file) and either waits — the session's
``KeyRotator`` re-reads the provider every ``credentials.check_every_polls`` polls and acts on a pair it has seen
twice in a row (so half-written files are never tried) — or runs ``rampart keys rotate``, which verifies the key
itself and asks the session to act now through a request file (``data_dir/live/keys``; it names no key).

The rotation itself: a signed read (``fetch_balance``) with a *separate* client carrying only the new pair; if
the exchange refuses it, nothing changes (``KEY_ROTATION_REFUSED``) and the old key stays in use. Otherwise the
pair is swapped on the trading client under the broker's request lock (``CcxtBroker.swap_credentials``), so
no request is signed with half of each pair and none is lost; a signed read through the trading client then
proves it, and the old pair, kept until then, is put back if that read is refused. Every outcome is a session
event with key ids only (``KEY_ROTATED`` / ``KEY_ROTATION_REFUSED`` / …, the audit journal reads events) and
rotations and refusals are notified.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import AuthenticationError, ExchangeError, StoreError
from core.events import Event, KeyRotation
from core.execution.limits import RequestBudget, budget_path
from core.security.credentials import CredentialProvider, Credentials, KeyHolder, provider_for, remember
from core.state.commands import read_queue

if TYPE_CHECKING:
    from core.config import Settings
    from core.execution.ccxt_broker import CcxtBroker
    from core.venue import Venue
    from core.view import OperatorInbox, SessionView

log = logging.getLogger("rampart.security")

ROTATED, REFUSED, UNCHANGED = "KEY_ROTATED", "KEY_ROTATION_REFUSED", "KEY_ROTATION_UNCHANGED"
DEFERRED, VERIFIED, TIMEOUT = "KEY_ROTATION_DEFERRED", "KEY_VERIFIED", "KEY_ROTATION_TIMEOUT"
SOURCE_UNREADABLE = "KEY_SOURCE_UNREADABLE"
SEVERITY = {ROTATED: "warning", REFUSED: "error", UNCHANGED: "info", DEFERRED: "warning", VERIFIED: "info",
            TIMEOUT: "warning", SOURCE_UNREADABLE: "warning"}
SUCCESS = frozenset({ROTATED, UNCHANGED, VERIFIED})
MANUAL = "rampart keys rotate"


@dataclass(frozen=True)
class RotationOutcome:
    """What became of one rotation attempt; key ids only (``…abcd``), never a key."""

    code: str
    detail: str
    old_key_id: str | None = None
    new_key_id: str | None = None
    trigger: str = "source changed"
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.code in SUCCESS

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.code, "warning")

    def event(self) -> Event:
        return Event.of(self.code, KeyRotation(detail=self.detail, old_key_id=self.old_key_id,
                                               new_key_id=self.new_key_id, trigger=self.trigger,
                                               request_id=self.request_id), self.severity)

    def details(self) -> dict[str, Any]:
        return {"old_key_id": self.old_key_id, "new_key_id": self.new_key_id, "trigger": self.trigger,
                "request_id": self.request_id}


# --- proving a key -------------------------------------------------------------------------------------------
def verify_credentials(credentials: Credentials, venue: Venue, *, timeout_ms: int | None = None,
                       markets: dict[str, Any] | None = None, budget: RequestBudget | None = None) -> None:
    """A signed read with a separate client carrying only ``credentials``. AuthenticationError when the exchange
    refuses the pair; ExchangeError when it could not answer."""
    from core.execution.ccxt_broker import CcxtBroker

    client = venue.client(api_key=credentials.api_key.get_secret_value(),
                          secret=credentials.secret.get_secret_value(), timeout_ms=timeout_ms, enableRateLimit=False)
    if markets:  # the trading client's markets: no exchangeInfo download before the signed read
        client.set_markets(markets)
    CcxtBroker(client, budget=budget).read("verify_key", client.fetch_balance, attempts=2)


# --- rotation requests (rampart keys rotate -> running session) -----------------------------------------------
def requests_dir(data_dir: Path) -> Path:
    return data_dir / "live" / "keys"


def request_rotation(data_dir: Path, who: str) -> str:
    """Ask the running session to re-read its provider now; returns the request id its answer carries."""
    folder = requests_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    request = {"id": uuid.uuid4().hex, "who": who, "requested_at": datetime.now(UTC).isoformat()}
    tmp = folder / f"{request['id']}.json.tmp"
    tmp.write_text(json.dumps(request))
    os.replace(tmp, folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{request['id'][:8]}.json")
    return request["id"]


def pending_requests(data_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Rotation requests waiting for the running session, oldest first."""
    return read_queue(requests_dir(data_dir))


# --- the session side ----------------------------------------------------------------------------------------
class KeyRotator:
    """A live-session observer: watches the credentials source and rotation requests; rotates on the trading
    thread, between two polls (the broker lock also keeps other threads' requests whole)."""

    def __init__(self, provider: CredentialProvider, data_dir: Path, keys: KeyHolder, broker: CcxtBroker,
                 inbox: OperatorInbox, store: Any, every: int = 40, timeout_ms: int = 10_000) -> None:
        self.provider, self.data_dir, self.every, self.timeout_ms = provider, data_dir, max(1, every), timeout_ms
        self.keys, self.broker, self.inbox, self.store = keys, broker, inbox, store
        self._polls = 0
        self._candidate: Credentials | None = None  # a changed pair seen once; rotated when seen again
        self._refused: Credentials | None = None  # not retried until the source changes again
        self._problem: str | None = None  # the source's last read error, recorded once

    @classmethod
    def for_session(cls, settings: Settings, keys: KeyHolder, broker: CcxtBroker, inbox: OperatorInbox,
                    store: Any) -> KeyRotator:
        creds = settings.credentials
        return cls(provider_for(creds), settings.data_dir, keys, broker, inbox, store, creds.check_every_polls)

    def on_poll(self, view: SessionView) -> None:
        self._polls += 1
        for path, request in pending_requests(self.data_dir):
            path.unlink(missing_ok=True)
            self.check(view, trigger=f"{MANUAL} by {request.get('who') or 'unknown'}",
                       request_id=str(request.get("id") or path.stem))
        if self._polls % self.every == 0:
            self.check(view)

    def on_flush(self, view: SessionView, new: Any) -> None:
        return None

    def on_stop(self, view: SessionView) -> None:
        return None

    def check(self, view: SessionView, trigger: str = "source changed",
              request_id: str | None = None) -> RotationOutcome | None:
        """Re-read the provider; rotate when it holds a new pair. A request always gets an answer event."""
        current = self.keys.credentials
        old_id = current.key_id if current else None
        try:
            new = remember(self.provider.load())
        except AuthenticationError as exc:
            if request_id is None and str(exc) == self._problem:
                return None  # already recorded; the old key stays in use meanwhile
            self._problem = str(exc)
            code = REFUSED if request_id else SOURCE_UNREADABLE
            return self._finish(view, RotationOutcome(code, f"{exc}; key {old_id} stays in use", old_id, None,
                                                         trigger, request_id))
        self._problem = None
        if new.same_as(current):
            self._candidate = None
            if request_id is None:
                return None
            return self._finish(view, RotationOutcome(UNCHANGED, f"{self.provider.describe()} still holds key "
                                                         f"{old_id}, already in use", old_id, old_id, trigger,
                                                         request_id))
        if request_id is None:
            if new.same_as(self._refused):
                return None  # refused already: waiting for the source to change again
            if not new.same_as(self._candidate):
                self._candidate = new  # settle first: a pair half-written must not be tried
                return None
        return self.rotate(view, new, trigger, request_id)

    def rotate(self, view: SessionView, new: Credentials, trigger: str,
               request_id: str | None = None) -> RotationOutcome:
        """Prove ``new`` with a separate client, swap it in between requests, prove it again, record."""
        old = self.keys.credentials
        old_id = old.key_id if old else None

        def done(code: str, detail: str) -> RotationOutcome:
            return self._finish(view, RotationOutcome(code, detail, old_id, new.key_id, trigger, request_id))

        try:
            verify_credentials(new, view.venue, timeout_ms=self.timeout_ms,
                               markets=getattr(self.broker.client, "markets", None), budget=self.broker.budget)
        except AuthenticationError as exc:
            self._refused, self._candidate = new, None
            return done(REFUSED, f"the exchange refused key {new.key_id} ({exc}); key {old_id} stays in use")
        except ExchangeError as exc:
            self._candidate = None
            return done(DEFERRED, f"key {new.key_id} could not be verified ({exc}); key {old_id} stays in use and "
                        "the new one is tried at the next check")
        self._swap(new)
        try:  # the trading client itself, now signing with the new pair
            self.broker.read("fetch_balance", self.broker.client.fetch_balance)
        except AuthenticationError as exc:
            if old is not None:
                self._swap(old)  # the old pair was kept for exactly this
            self._refused, self._candidate = new, None
            return done(REFUSED, f"key {new.key_id} was refused once in use ({exc}); rolled back to key {old_id}")
        except ExchangeError:
            pass  # the separate client proved the pair; a transient failure now says nothing about the key
        self.keys.credentials = new
        self._refused = self._candidate = None
        return done(ROTATED, f"API key rotated: {old_id} -> {new.key_id}, verified by a signed read and swapped "
                    "between requests; revoke the old key on the exchange when ready")

    def _swap(self, creds: Credentials) -> None:
        self.broker.swap_credentials(creds.api_key.get_secret_value(), creds.secret.get_secret_value())

    def _finish(self, view: SessionView, outcome: RotationOutcome) -> RotationOutcome:
        self.inbox.record(outcome.event())
        log.warning("%s: %s", outcome.code, outcome.detail)
        if outcome.code in (ROTATED, REFUSED):
            notify_outcome(self.store, outcome, view.session_id)
        return outcome


def notify_outcome(store: Any, outcome: RotationOutcome, session_id: str | None = None) -> None:
    """Tell the operators (outbox first); a notification failure never undoes or blocks a rotation."""
    from core.notify import Notification, notify

    title = "API key rotated" if outcome.code == ROTATED else "API key rotation refused"
    note = Notification(key=f"key-rotation:{uuid.uuid4().hex}", kind="security", severity=outcome.severity,
                        title=title, body=outcome.detail, urgent=outcome.code == REFUSED, session_id=session_id,
                        fields={"code": outcome.code, "old key": outcome.old_key_id or "-",
                                "new key": outcome.new_key_id or "-", "trigger": outcome.trigger})
    try:
        notify(store, note)
    except Exception:  # e.g. the database is locked for longer than the retry: the event row still tells
        log.exception("rotation notification could not be stored")


# --- the command side ----------------------------------------------------------------------------------------
def rotate_keys(settings: Settings, venue: Venue, *, wait_s: float = 30.0,
                who: str | None = None) -> RotationOutcome:
    """``rampart keys rotate``: verify the provider's key; hand it to the running session (which proves and swaps
    it, then answers) or, with none running, report and change nothing. AuthenticationError when the source
    cannot be read; ExchangeError when the exchange cannot answer."""
    from core.state.commands import running_session

    who = who or _user()
    new = remember(provider_for(settings.credentials).load())
    try:
        verify_credentials(new, venue, budget=RequestBudget(path=budget_path(settings.data_dir)))
    except AuthenticationError as exc:
        outcome = RotationOutcome(REFUSED, f"the exchange refused key {new.key_id} ({exc}); nothing was changed",
                                  None, new.key_id, f"{MANUAL} by {who}")
        _record(settings, outcome)
        return outcome
    if running_session(settings.data_dir) is None:
        outcome = RotationOutcome(VERIFIED, f"key {new.key_id} verified by a signed read; no live session runs on "
                                  f"{settings.data_dir}, so nothing was swapped: the next start uses it", None,
                                  new.key_id, f"{MANUAL} by {who}")
        _record(settings, outcome)
        return outcome
    request_id = request_rotation(settings.data_dir, who)
    answer = wait_for_answer(settings, request_id, wait_s)
    return answer or RotationOutcome(TIMEOUT, f"the live session did not answer within {wait_s:g} s; it acts on "
                                     "the request at its next poll (see events KEY_*)", None, new.key_id,
                                     f"{MANUAL} by {who}", request_id)


def wait_for_answer(settings: Settings, request_id: str, wait_s: float) -> RotationOutcome | None:
    """The running session's answer to ``request_id`` (an events row), or None after ``wait_s`` seconds."""
    from core.store import Store
    from core.store import trading as trading_repo

    store, deadline = Store(settings.db_path), time.monotonic() + wait_s
    while True:
        try:
            found = trading_repo.key_event_answering(store, request_id)
        except StoreError:
            found = None  # the session holds the database this instant: ask again
        if found is not None:
            code, message, details = found
            info = json.loads(details) if isinstance(details, str) else dict(details or {})
            return RotationOutcome(str(code), str(message), info.get("old_key_id"), info.get("new_key_id"),
                                   str(info.get("trigger") or MANUAL), request_id)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def _record(settings: Settings, outcome: RotationOutcome) -> None:
    from core.store import Store

    store = Store(settings.db_path)
    store.record(outcome.event(), kind="security")
    if outcome.code == REFUSED:
        notify_outcome(store, outcome)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (containers)
        return "unknown"


__all__ = ["DEFERRED", "REFUSED", "ROTATED", "SOURCE_UNREADABLE", "TIMEOUT", "UNCHANGED", "VERIFIED", "KeyRotator",
           "RotationOutcome", "pending_requests", "request_rotation", "rotate_keys", "verify_credentials",
           "wait_for_answer"]
