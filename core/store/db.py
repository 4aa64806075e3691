"""Open the DuckDB file for one unit of work: wait (bounded) while another process holds it, then close.

DuckDB lets only one process hold a database file open, even read-only, so nothing keeps it open
between units of work. A unit is: connect (retrying with backoff while the file is locked), run one
transaction, close. Sessions use UTC so TIMESTAMPTZ values come back as UTC.

Inside one process, a read-only open beside an open read-write connection shares that connection's database
instead of waiting for it (DuckDB refuses the two configurations at once); the unit's transaction is then begun
READ ONLY, so it still cannot write. A long reader on another thread (the SQL replica's refresh) never makes a
short read on the trading thread wait. Opening and closing are serialised within the process: DuckDB creates the
file's database on the first open and drops it on the last close, and a thread opening it halfway through either
can get a database without the Python scans registered ("python_arrow_scan does not exist").
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from core.errors import StoreError

DEFAULT_LOCK_TIMEOUT_S = 10.0
# Backoff between lock attempts: short at first (a unit takes ~25 ms), capped so a waiter notices
# the release soon after it happens.
FIRST_RETRY_DELAY_S = 0.02
MAX_RETRY_DELAY_S = 0.5

# The last two come from this very process: a read-only and a read-write connection cannot be open at once
# (e.g. the dashboard reading while the trading thread writes). Both are short units, so waiting works.
_DIFFERENT_CONFIG = "different configuration than existing connections"
_LOCK_MARKERS = ("could not set lock", "conflicting lock", _DIFFERENT_CONFIG, "unique file handle conflict")
_PID_PATTERN = re.compile(r"PID (\d+)")
_OPEN_CLOSE = threading.Lock()  # one open or close at a time in this process (see the module docstring)


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _LOCK_MARKERS)


def _locked_error(path: Path, exc: duckdb.Error) -> StoreError:
    match = _PID_PATTERN.search(str(exc))
    holder = f" (pid {match.group(1)})" if match else ""
    return StoreError(
        f"database {path} is locked by another process{holder}; "
        "stop it or use another RAMPART_DATA_DIR"
    )


def _open_once(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    with _OPEN_CLOSE:
        return _open_locked(path, read_only)


def _open_locked(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        conn = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        if not (read_only and _DIFFERENT_CONFIG in str(exc).lower()):
            raise
        # This process has the file open read-write: share that database (a READ ONLY transaction keeps the
        # unit from writing) rather than wait for the other thread to close it.
        conn = duckdb.connect(str(path), read_only=False)
    try:
        conn.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        conn.close()
        raise
    return conn


def close(conn: duckdb.DuckDBPyConnection) -> None:
    """Close a connection from ``connect`` (serialised with opening; the last close checkpoints the file)."""
    with _OPEN_CLOSE:
        conn.close()


def open_plain(path: Path) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(path)`` serialised like ``connect`` (no retry, no folder): for files of Rampart's own other than
    the store, e.g. the replica's working copies. Close it with ``close``."""
    with _OPEN_CLOSE:
        return duckdb.connect(str(path))


def connect(
    path: Path, *, read_only: bool = False, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> duckdb.DuckDBPyConnection:
    """Open ``path`` (creating parent folders), retrying while another process holds the lock.

    Raises StoreError when the lock is still held after ``lock_timeout_s`` seconds, or at once for
    any other failure (bad path, corrupt file, missing file in read-only mode).
    """
    if lock_timeout_s < 0:
        raise StoreError(f"lock_timeout_s must be >= 0 seconds, got {lock_timeout_s}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for database {path}: {exc}") from exc
    deadline = time.monotonic() + lock_timeout_s
    delay = FIRST_RETRY_DELAY_S
    while True:
        try:
            return _open_once(path, read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise StoreError(f"cannot open database {path}: {exc}") from exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _locked_error(path, exc) from exc
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_RETRY_DELAY_S)


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection, *, what: str,
                read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction (``read_only``: one that cannot write): commit on success, roll back on
    any exception.

    DuckDB errors are re-raised as StoreError prefixed with ``what`` (e.g. "finish session s1");
    other exceptions (already clear, e.g. a StoreError from validation) pass through unchanged.
    """
    conn.execute("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback_quietly(conn)
        if isinstance(exc, duckdb.Error):
            raise StoreError(f"{what} failed and was rolled back: {exc}") from exc
        raise


def _rollback_quietly(conn: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT may already have ended the transaction; the original error is the one to report.
    with suppress(duckdb.Error):
        conn.execute("ROLLBACK")


@contextmanager
def unit_of_work(
    path: Path,
    *,
    what: str,
    read_only: bool = False,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``path``, run the block in one transaction, and always close the file afterwards."""
    conn = connect(path, read_only=read_only, lock_timeout_s=lock_timeout_s)
    try:
        with transaction(conn, what=what, read_only=read_only):
            yield conn
    finally:
        close(conn)
