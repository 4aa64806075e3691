"""Keeps the store's replica fresh while a session runs (a ``SessionObserver``), on a thread of its own.

The trading thread only reads a clock at each poll and, when a refresh is due, wakes the thread: it never waits for
a copy. A refresh is due ``refresh_s`` seconds after the previous one started (30 s: rows are at most about that old
plus one poll plus the refresh itself, well within a minute), or later when refreshes are slow: the pause after one
is at least ``PACE`` times its length, so the copy never takes more than a fifth of one core. The thread also wakes
by itself, so the replica stays fresh while the trading loop waits on the exchange. A refresh that fails is logged
and tried again at the next one; trading never sees it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import StoreError
from core.store.replica import ReplicaInfo, refresh, replica_path

log = logging.getLogger("rampart.store.replica")

REFRESH_S = 30.0
PACE = 4.0  # wait at least this many times a refresh's length before the next one
LOCK_TIMEOUT_S = 5.0  # the store held longer than this by another process: this refresh is skipped
STOP_WAIT_S = 30.0  # how long a stopping session lets a refresh in progress finish


class ReplicaPublisher:
    """Refreshes ``<data_dir>/replica/rampart.duckdb`` from the session's store at least every ``refresh_s``
    seconds (measured on ``clock``, which tests drive) until the session stops."""

    def __init__(self, store_path: Path, *, refresh_s: float = REFRESH_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if refresh_s <= 0:
            raise StoreError(f"refresh_s must be > 0 seconds, got {refresh_s}")
        self.store_path, self.refresh_s, self.clock = Path(store_path), refresh_s, clock
        self.session_id: str | None = None
        self.last: ReplicaInfo | None = None  # the newest refresh's result
        self.last_error: str | None = None
        self.refreshes = 0
        self._due_at: float | None = None  # clock time of the next refresh (None: at once)
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- SessionObserver ---------------------------------------------------------------------------------
    def on_poll(self, view: Any) -> None:
        self._kick(view)

    def on_flush(self, view: Any, new: Mapping[str, Any]) -> None:
        self._kick(view)

    def on_stop(self, view: Any) -> None:
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(STOP_WAIT_S)
            if thread.is_alive():
                log.warning("replica refresh still running at stop; left to finish on its own")

    # --- for tests and status ----------------------------------------------------------------------------
    def use_clock(self, clock: Callable[[], float]) -> None:
        """Measure the interval on ``clock`` from now on (a test drives it); the next refresh is due at once."""
        self.wait_idle(STOP_WAIT_S)
        self.clock, self._due_at = clock, None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no refresh is due or running; False when ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy or self._wake.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # --- inside ------------------------------------------------------------------------------------------
    def _kick(self, view: Any) -> None:
        """On the trading thread: cheap. Starts the thread on first use and wakes it when a refresh is due."""
        if self._stopping:
            return
        self.session_id = getattr(view, "session_id", self.session_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="replica", daemon=True)
            self._thread.start()
        if self._due():
            with self._idle:
                self._wake.set()

    def _due(self) -> bool:
        return self._due_at is None or self.clock() >= self._due_at

    def _run(self) -> None:
        _lower_priority()
        while not self._stopping:
            # woken by the trading thread, or by itself every refresh_s (the clock decides whether it is due)
            self._wake.wait(self.refresh_s)
            if self._stopping:
                break
            with self._idle:
                due = self._due()
                self._busy = due
                self._wake.clear()
            if due:
                try:
                    self._refresh()
                finally:
                    with self._idle:
                        self._busy = False
                        self._idle.notify_all()
        with self._idle:
            self._wake.clear()
            self._idle.notify_all()

    def _refresh(self) -> None:
        started, began = self.clock(), time.monotonic()
        self._due_at = started + self.refresh_s
        try:
            info = refresh(self.store_path, session_id=self.session_id, read_only=False,
                           lock_timeout_s=LOCK_TIMEOUT_S)
        except (StoreError, OSError) as exc:
            if self.last_error is None:
                log.warning("replica of %s not refreshed: %s (trying again every %.0f s)", self.store_path, exc,
                            self.refresh_s)
            self.last_error = str(exc)
            return
        except Exception as exc:  # a bug here must never reach the trading thread
            log.exception("replica refresh failed")
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        took = time.monotonic() - began
        self._due_at = started + max(self.refresh_s, PACE * took)
        if info is not None:
            if self.refreshes == 0:
                log.info("SQL while trading: `rampart sql` reads %s, refreshed every %.0f s",
                         replica_path(self.store_path), self.refresh_s)
            self.last, self.last_error = info, None
            self.refreshes += 1


def _lower_priority() -> None:
    """Linux: a thread has its own nice value; the copy yields the CPU to the trading thread."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


__all__ = ["PACE", "REFRESH_S", "ReplicaPublisher"]
