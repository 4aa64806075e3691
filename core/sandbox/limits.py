"""What Binance does to a client that does not back off (rest-api.md, LIMITS / IP Limits; errors.md -1003).

- A 429 (request weight over the limit, or a fault/injection standing for it) carries ``Retry-After`` seconds:
  "the number of seconds required to wait, in the case of a 429, to prevent a ban".
- A request that arrives before that Retry-After has expired is a violation: the IP is banned. A banned IP gets
  418 with ``Retry-After`` = the seconds until the ban is over, and -1003 "Way too much request weight used; IP
  banned until <ms>. ..." for every /api/v3 request until then.
- Bans "scale in duration for repeat offenders, from 2 minutes to 3 days": ``ban_s`` (default 120 s) for the
  first, doubled for each further one, at most 3 days.
All of it runs on the wall clock, as Binance does (Retry-After is in real seconds, whatever the market clock).
The sandbox counts per server, as it is one IP to every local client. Every /api/v3 request's arrival (wall ms),
the Retry-After deadlines and the bans are kept for the stats, so a test can show that nothing arrived early.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

from core.sandbox.config import MAX_BAN_S

MAX_LOG = 10_000  # /api/v3 requests (and 429s) kept in the stats: the most recent


class RateLimits:
    """Retry-After deadlines, bans and the request log of one sandbox; thread-safe."""

    def __init__(self, ban_s: int) -> None:
        self.ban_s = ban_s
        self._lock = threading.Lock()
        self._retry_until = 0  # wall ms: a 429's Retry-After runs until then
        self._ban_until = 0  # wall ms
        self.offences = 0
        self.requests: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self.request_count = 0
        self.retry_afters: deque[dict[str, int]] = deque(maxlen=MAX_LOG)
        self.bans: list[dict[str, int]] = []

    def arrived(self, now_ms: int, method: str, path: str) -> dict[str, Any]:
        """Log one /api/v3 request; the caller fills in its ``status``."""
        entry: dict[str, Any] = {"t": now_ms, "method": method, "path": path, "status": None}
        with self._lock:
            self.requests.append(entry)
            self.request_count += 1
        return entry

    def refuse(self, now_ms: int) -> tuple[int, int] | None:
        """(ban end in wall ms, Retry-After seconds) when this request gets a 418: the IP is banned, or the request
        came before a 429's Retry-After expired (which bans it now); None when it may go on."""
        with self._lock:
            if now_ms < self._ban_until:
                return self._ban_until, math.ceil((self._ban_until - now_ms) / 1000)
            if now_ms < self._retry_until:
                self.offences += 1
                seconds = min(self.ban_s * 2 ** (self.offences - 1), MAX_BAN_S)
                self._ban_until, self._retry_until = now_ms + seconds * 1000, 0
                self.bans.append({"start": now_ms, "until": self._ban_until, "seconds": seconds,
                                  "offence": self.offences})
                return self._ban_until, seconds
            return None

    def limited(self, now_ms: int, retry_after_s: int) -> None:
        """A 429 with ``Retry-After: retry_after_s`` was answered at ``now_ms``."""
        with self._lock:
            until = now_ms + retry_after_s * 1000
            self._retry_until = max(self._retry_until, until)
            self.retry_afters.append({"t": now_ms, "until": until, "seconds": retry_after_s})

    def unban(self) -> None:
        """Lift the ban and forget the running Retry-After (the offence count stays: repeat offenders)."""
        with self._lock:
            self._ban_until = self._retry_until = 0

    def json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "api_requests": [dict(r) for r in self.requests],
                "api_requests_total": self.request_count,
                "retry_afters": [dict(r) for r in self.retry_afters],
                "bans": [dict(b) for b in self.bans],
                "banned_until": self._ban_until or None,
                "retry_after_until": self._retry_until or None,
            }
