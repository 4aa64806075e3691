"""The push hub: keeps the newest dashboard snapshot and its version; SSE streams send each new version.

As a ``SessionObserver`` of a live session it rebuilds on the trading thread: the whole snapshot after every
flush (new fills, trades, decisions are then in DuckDB), and on polls, between bars, only what changed: the
in-memory status when it differs from the last one, the database half (alerts and metrics written by other
processes) at most every ``db_every_s`` and only when the database file or its write-ahead log changed since it was
read (a stat, not a DuckDB open: an idle poll reads nothing; at least every ``db_max_age_s`` all the same). Doing
the DuckDB reads on the trading thread keeps them out of the way of its writes. Without a session
(``rampart dashboard``) ``start()`` runs a thread that rebuilds from DuckDB and the saved state every
``offline_every_s`` while anyone watches. A snapshot that differs from the last (its fingerprint) gets a new
version; streams poll the version.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from core.config import Settings
from core.dashboard.snapshot import SnapshotBuilder, fingerprint
from core.errors import StoreError

if TYPE_CHECKING:
    from core.view import SessionView

log = logging.getLogger("rampart.dashboard")
WATCHED_FOR_S = 30.0  # offline: keep refreshing this long after the last page asked


class DashboardHub:
    """Newest snapshot + version for the dashboard app; a SessionObserver when a session is attached."""

    def __init__(self, settings: Settings, view: SessionView | None = None, *, db_every_s: float = 2.0,
                 offline_every_s: float = 1.0, state_path: Path | None = None, db_max_age_s: float = 30.0) -> None:
        self.settings = settings
        self.view = view
        self.builder = SnapshotBuilder(settings, view, state_path)
        self.db_every_s = db_every_s
        self.db_max_age_s = db_max_age_s
        self.offline_every_s = offline_every_s
        self.version = 0
        self.payload = "{}"
        self.snapshot: dict[str, Any] = {}
        self.closed = False
        self._lock = threading.Lock()
        self._fingerprint = ""
        self._status: dict[str, Any] = {}
        self._db: dict[str, Any] | None = None
        self._db_at = 0.0
        self._db_files: tuple[tuple[int, int], ...] = ()  # (mtime ns, size) of the file and its WAL when last read
        self._watched_at = -math.inf  # offline: nothing is read until a page or a scraper asks
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- SessionObserver -------------------------------------------------------------------------------------
    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        self.refresh(database=True)

    def on_poll(self, view: SessionView) -> None:
        age = time.monotonic() - self._db_at
        self.refresh(database=age >= self.db_max_age_s or (age >= self.db_every_s and self._db_changed()),
                     only_news=True)

    def on_stop(self, view: SessionView) -> None:
        self.refresh(database=True)
        self.closed = True

    # --- building ----------------------------------------------------------------------------------------------
    def refresh(self, *, database: bool, only_news: bool = False) -> bool:
        """Rebuild (the database half too when asked); publish when it changed. True when a new version.
        ``only_news``: nothing is built when neither half changed (the poll's case: most polls change nothing)."""
        status = self.builder.status()
        db = self._db
        if only_news and not database and db is not None and status == self._status:
            return False
        if database or db is None:
            try:
                files = self._db_files_now()  # before the read: a write during it shows as a change next time
                db = self.builder.database()
                self._db_at, self._db_files = time.monotonic(), files
            except StoreError as exc:  # busy or broken file: keep the last half, say so, try again later
                log.warning("dashboard: database not read: %s", exc)
                status = {**status, "problem": f"database not read: {exc}"[:300]}
        with self._lock:
            self._status, self._db = status, db
            return self._publish(self.builder.build(status, db))

    def _db_files_now(self) -> tuple[tuple[int, int], ...]:
        """(mtime ns, size) of the database file and its write-ahead log: what any writer, in any process, moves."""
        path = Path(self.settings.db_path)
        out = []
        for file in (path, path.with_name(path.name + ".wal")):
            try:
                st = os.stat(file)
            except OSError:
                out.append((0, -1))
            else:
                out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _db_changed(self) -> bool:
        return self._db_files_now() != self._db_files

    def mark_stale(self) -> None:
        """The database changed outside the session's flushes (an operator action): the next poll reads it.
        Not read here: this runs on a web thread, and the trading thread owns this process's DuckDB reads."""
        self._db_at, self._db_files = -math.inf, ()

    def _publish(self, snapshot: dict[str, Any]) -> bool:
        mark = fingerprint(snapshot)
        if mark == self._fingerprint:
            return False
        self._fingerprint, self.snapshot = mark, snapshot
        self.version += 1
        self.payload = json.dumps({**snapshot, "version": self.version})
        return True

    def latest(self) -> tuple[int, str]:
        """(version, JSON payload); the first call builds a snapshot. Marks the hub as watched."""
        self._watched_at = time.monotonic()
        if self.version == 0:
            self.refresh(database=True)
        return self.version, self.payload

    # --- offline -------------------------------------------------------------------------------------------------
    def start(self) -> DashboardHub:
        """Without a session: refresh from DuckDB and the saved state in a thread while the page is watched."""
        if self.view is None and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rampart-dashboard-hub", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self.closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.offline_every_s):
            if time.monotonic() - self._watched_at > WATCHED_FOR_S:
                continue  # nobody looks: leave the database file alone for other processes
            try:
                self.refresh(database=True)
            except Exception:  # one bad refresh must not end the page's updates
                log.exception("dashboard: refresh failed")


__all__ = ["DashboardHub"]
