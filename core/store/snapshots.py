"""The ``metrics_snapshots`` table (the 15-minute metrics, R3.3): named reads. Rows go in with ``Store.insert_rows``."""

from __future__ import annotations

from typing import Any

from core.store.repository import Store


def latest_snapshot(store: Store, scope: str) -> dict[str, Any] | None:
    """The newest stored snapshot of ``scope`` (every column, JSON as text), or None."""
    found = store.query("SELECT * FROM metrics_snapshots WHERE scope = ? ORDER BY ts DESC LIMIT 1", [scope])
    return found.row(0, named=True) if found.height else None


__all__ = ["latest_snapshot"]
