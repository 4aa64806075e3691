"""The ``audit_anchors`` table (R8.5): the audit journal's anchored heads. Rows go in with ``Store.insert_rows``."""

from __future__ import annotations

from typing import Any

from core.store.repository import Store


def anchors(store: Store, journal: str) -> list[tuple[Any, ...]]:
    """(seq, record_hash, ts) of every anchor of ``journal``, by seq."""
    frame = store.query("select seq, record_hash, ts from audit_anchors where journal = ? order by seq", [journal])
    return frame.rows()


__all__ = ["anchors"]
