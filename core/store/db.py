"""Open the DuckDB file for one unit of work: wait (bounded) while another process holds it, then close.

DuckDB lets only one process hold a database file open, even read-only, so nothing keeps it open
between units of work. A unit is: connect (retrying with backoff while the file is locked), run one
transaction, close. Sessions use UTC so TIMESTAMPTZ values come back as UTC.
"""

from __future__ import annotations

import re
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
_LOCK_MARKERS = ("could not set lock", "conflicting lock", "different configuration than existing connections",
                 "unique file handle conflict")
_PID_PATTERN = re.compile(r"PID (\d+)")


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
    conn = duckdb.connect(str(path), read_only=read_only)
    try:
        conn.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        conn.close()
        raise
    return conn


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
def transaction(conn: duckdb.DuckDBPyConnection, *, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: commit on success, roll back on any exception.

    DuckDB errors are re-raised as StoreError prefixed with ``what`` (e.g. "finish session s1");
    other exceptions (already clear, e.g. a StoreError from validation) pass through unchanged.
    """
    conn.execute("BEGIN TRANSACTION")
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
        with transaction(conn, what=what):
            yield conn
    finally:
        conn.close()
