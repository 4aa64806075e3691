"""The request budget of one IP on Binance (R9.5): the weight used, the back-off the exchange asked for, and bans.

Binance (rest-api.md, LIMITS): every response carries ``X-MBX-USED-WEIGHT-1M``, the weight the IP used in the
current minute; over the limit a request gets 429 with ``Retry-After``; a client that goes on sending before it
expires gets its IP banned (418, ``Retry-After`` = the ban's seconds, from 2 minutes to 3 days). So:

- nothing is sent while a Retry-After or a ban runs (``RateLimited`` instead, without a request);
- routine reads (candles, tickers, balances, the order book) stop at ``share`` of the limit until the minute
  turns; order placement, cancels and order lookups, which protect positions, may use the rest;
- with a ``path``, a back-off is written to a file so that every process on the data directory honours it (the
  emergency stop run from another terminal sees the live session's ban, and says so).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RateLimited

WEIGHT_HEADER = "x-mbx-used-weight-1m"
DEFAULT_LIMIT = 6_000  # Binance spot REQUEST_WEIGHT per minute (exchangeInfo rateLimits)
DEFAULT_RETRY_S = 60.0  # a 429 without Retry-After: wait a minute
DEFAULT_BAN_S = 120.0  # a 418 without Retry-After: Binance's shortest ban
# Calls that protect or resolve positions: they may use the weight above the routine share.
ESSENTIAL = frozenset({"create_order", "cancel_order", "fetch_order", "cancel_all_orders", "verify_key"})


@dataclass(frozen=True)
class Backoff:
    until: float  # epoch seconds
    banned: bool
    reason: str


class RequestBudget:
    """Shared by every client of one process talking to the exchange from this IP; thread-safe."""

    def __init__(self, limit: int = DEFAULT_LIMIT, share: float = 0.5, path: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit, self.share, self.path, self._clock = limit, share, path, clock
        self._lock = threading.Lock()
        self._used = 0
        self._minute = -1
        self.peak_used = 0  # the highest weight the exchange reported this process
        self._backoff: Backoff | None = None

    # --- before a request ----------------------------------------------------------------------------------
    def check(self, what: str) -> None:
        """Raise ``RateLimited`` (nothing is sent) while a back-off runs, or a routine read would pass the share."""
        now = self._clock()
        backoff = self.backoff(now)
        if backoff is not None:
            kind = "IP banned" if backoff.banned else "backing off"
            raise RateLimited(f"{what}: {kind} until {_hms(backoff.until)} ({backoff.until - now:.0f} s more): "
                              f"{backoff.reason}", backoff.until, backoff.banned)
        if what in ESSENTIAL:
            return
        with self._lock:
            minute = int(now // 60)
            if minute == self._minute and self._used >= self.share * self.limit:
                until = (minute + 1) * 60.0
                raise RateLimited(f"{what}: request weight {self._used} of {self.limit} used this minute; routine "
                                  f"reads wait for the next minute (share {self.share:.0%})", until)

    def wait_s(self, what: str) -> float:
        """Seconds until ``what`` may be sent (0 when now)."""
        try:
            self.check(what)
        except RateLimited as exc:
            return max(exc.until - self._clock(), 0.0)
        return 0.0

    # --- after a response ----------------------------------------------------------------------------------
    def observe(self, headers: Mapping[str, Any] | None, error: str | None = None) -> None:
        """Read the used weight from the response headers; a 429/418 answer starts a back-off."""
        now = self._clock()
        lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
        used = lowered.get(WEIGHT_HEADER)
        if used is not None:
            with self._lock:
                try:
                    self._used, self._minute = int(used), int(now // 60)
                    self.peak_used = max(self.peak_used, self._used)
                except (TypeError, ValueError):
                    pass
        if error is None:
            return
        banned = " 418" in error or "banned" in error.lower()
        limited = banned or any(mark in error for mark in ("-1003", "RateLimitExceeded", "DDoSProtection", " 429"))
        if not limited:
            return
        retry = _seconds(lowered.get("retry-after"), DEFAULT_BAN_S if banned else DEFAULT_RETRY_S)
        self.start_backoff(now + retry, banned, error[:200])

    def start_backoff(self, until: float, banned: bool, reason: str) -> None:
        with self._lock:
            current = self._backoff
            if current is None or until > current.until:
                self._backoff = Backoff(until, banned or bool(current and current.banned), reason)
            backoff = self._backoff
        if self.path is not None and backoff is not None:
            self._write(backoff)

    def backoff(self, now: float | None = None) -> Backoff | None:
        """The back-off running now (this process's, or another's from the shared file), if any."""
        now = self._clock() if now is None else now
        found = self._backoff
        shared = self._read()
        if shared is not None and (found is None or shared.until > found.until):
            found = shared
        return found if found is not None and found.until > now else None

    # --- the shared file -----------------------------------------------------------------------------------
    def _write(self, backoff: Backoff) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"until": backoff.until, "banned": backoff.banned, "reason": backoff.reason}))
            os.replace(tmp, self.path)
        except OSError:
            pass  # the in-process back-off still holds

    def _read(self) -> Backoff | None:
        if self.path is None:
            return None
        try:
            data = json.loads(self.path.read_text())
            return Backoff(float(data["until"]), bool(data.get("banned")), str(data.get("reason") or ""))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _seconds(value: Any, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


def _hms(epoch_s: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(epoch_s))


def budget_path(data_dir: Path) -> Path:
    """Where the back-off of the account's IP is shared between processes."""
    return Path(data_dir) / "live" / "backoff.json"


__all__ = ["ESSENTIAL", "Backoff", "RequestBudget", "budget_path"]
