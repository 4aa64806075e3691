"""Dashboard login: server-side sessions behind an HttpOnly cookie, CSRF tokens, and the failed-login lockout.

A login presents an operator token once; the server answers with a random session id in the cookie
``rampart_session`` (HttpOnly, SameSite=Strict, Path=/, Secure over https) and keeps, in this process's memory
only, who it is, the role, a per-session CSRF token and the expiry. Only a hash of the session id is kept, so a
memory listing of sessions cannot be replayed as cookies. The operator token stays in memory too (never in the
cookie, the page, a response or a log): overrides re-authorize with it through ``apply_override`` so every
action is checked and recorded exactly like the CLI's.

``LoginGuard`` counts consecutive failed logins (dashboard and control-API Bearer tokens alike) per client
address and globally; ``lockout_after`` in a row locks logins for ``lockout_s`` and calls ``on_lockout`` once
per episode (the caller raises the alert and halts entries, R8.4).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from pydantic import SecretStr

COOKIE = "rampart_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 1_000  # more live logins than this is itself suspicious: the oldest are dropped
MAX_SOURCES = 10_000  # failure counters kept per client address


@dataclass
class WebSession:
    """One logged-in browser. ``token`` re-authorizes overrides; it never leaves this process."""

    name: str
    role: str
    csrf: str
    expires: float
    token: SecretStr


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class WebSessions:
    """Server-side login sessions by (hashed) cookie value, with expiry."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._by_digest: OrderedDict[str, WebSession] = OrderedDict()

    def create(self, name: str, role: str, token: str) -> tuple[str, WebSession]:
        """A new session; returns (cookie value, session)."""
        session_id = secrets.token_urlsafe(32)
        web = WebSession(name, role, secrets.token_urlsafe(32), self._clock() + self.ttl_s, SecretStr(token))
        with self._lock:
            self._by_digest[_digest(session_id)] = web
            while len(self._by_digest) > MAX_SESSIONS:
                self._by_digest.popitem(last=False)
        return session_id, web

    def get(self, session_id: str | None) -> WebSession | None:
        """The live session behind a cookie value, or None (unknown or expired: expired ones are dropped)."""
        if not session_id:
            return None
        key = _digest(session_id)
        with self._lock:
            web = self._by_digest.get(key)
            if web is not None and web.expires <= self._clock():
                del self._by_digest[key]
                return None
        return web

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._by_digest.pop(_digest(session_id), None)


def csrf_ok(web: WebSession, presented: str | None) -> bool:
    """The request's ``X-CSRF-Token`` matches the session's (constant time)."""
    return bool(presented) and hmac.compare_digest(web.csrf.encode(), (presented or "").encode())


def login_token(body: bytes, content_type: str) -> str | None:
    """The token from a login body: a form (``token=...``) or JSON (``{"token": ...}``)."""
    text = body.decode("utf-8", errors="replace")
    if "application/json" in content_type:
        try:
            data = json.loads(text or "{}")
        except (ValueError, RecursionError):  # not JSON, an integer past Python's digit limit, nesting too deep
            return None
        value = data.get("token") if isinstance(data, dict) else None
        return value.strip() or None if isinstance(value, str) else None
    values = parse_qs(text).get("token") or [""]
    return values[0].strip() or None


@dataclass(frozen=True)
class Lockout:
    """A lockout that just started: handed to ``on_lockout``."""

    source: str
    failures: int
    scope: str  # "client", "global" or "client+global"
    channel: str  # "dashboard" | "control API" | "metrics"
    locked_for_s: float


class LoginGuard:
    """Consecutive failed logins per client address and globally; a lockout after ``after`` in a row."""

    def __init__(self, after: int, lock_s: float, on_lockout: Callable[[Lockout], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self.lock_s = lock_s
        self.on_lockout = on_lockout
        self._clock = clock
        self._lock = threading.Lock()
        self._fails: OrderedDict[str, int] = OrderedDict()
        self._global = 0
        self._locked_until: dict[str, float] = {}  # source (or "*" for everyone) -> clock time

    def locked(self, source: str) -> float:
        """Seconds left of a lockout that covers ``source`` (0 when it may try)."""
        now = self._clock()
        with self._lock:
            until = max(self._locked_until.get(source, 0.0), self._locked_until.get("*", 0.0))
        return max(until - now, 0.0)

    def failed(self, source: str, channel: str) -> tuple[int, Lockout | None]:
        """Count one failure; returns (consecutive failures from ``source``, the lockout it started or None).
        ``on_lockout`` is called (outside the lock) when one starts."""
        now = self._clock()
        with self._lock:
            count = self._fails.pop(source, 0) + 1
            self._fails[source] = count
            while len(self._fails) > MAX_SOURCES:
                self._fails.popitem(last=False)
            self._global += 1
            scopes = []
            if count >= self.after and self._locked_until.get(source, 0.0) <= now:
                scopes.append("client")
                self._locked_until[source] = now + self.lock_s
                self._fails[source] = 0
            if self._global >= self.after and self._locked_until.get("*", 0.0) <= now:
                scopes.append("global")
                self._locked_until["*"] = now + self.lock_s
                self._global = 0
        if not scopes:
            return count, None
        lockout = Lockout(source, count, "+".join(scopes), channel, self.lock_s)
        if self.on_lockout is not None:
            self.on_lockout(lockout)
        return count, lockout

    def succeeded(self, source: str) -> None:
        """A good token: the run of failures is broken (for this address and globally)."""
        with self._lock:
            self._fails.pop(source, None)
            self._global = 0


__all__ = ["COOKIE", "CSRF_HEADER", "Lockout", "LoginGuard", "WebSession", "WebSessions", "csrf_ok", "login_token"]
