"""What the dashboard reads from DuckDB, in one unit of work: live sessions, P&L, the equity curve, recent
decisions, alerts and events, the latest 15-minute metrics, the gate, order and error counts.

The statements, and the one connection they share, are in ``core.store.dashboard``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.store.dashboard import read_snapshot


def read_database(path: Path, *, session_id: str | None = None, config_hash: str | None = None,
                  lock_timeout_s: float = 0.5, evidence: bool = True) -> dict[str, Any]:
    """Everything the page shows from the database. ``session_id``/``config_hash`` are the running session's;
    without them the latest live session's are used (the offline dashboard). ``evidence`` False: a rehearsal
    network's sessions only (R9.7)."""
    return read_snapshot(path, session_id=session_id, config_hash=config_hash, lock_timeout_s=lock_timeout_s,
                         evidence=evidence)


__all__ = ["read_database"]
