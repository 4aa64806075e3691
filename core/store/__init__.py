"""Rampart's DuckDB store: schema migrations and the ``Store`` repository (one unit of work per call)."""

from core.store.db import DEFAULT_LOCK_TIMEOUT_S, connect, transaction, unit_of_work
from core.store.migrations import LATEST_VERSION, MIGRATIONS, Migration, current_version, migrate
from core.store.repository import APPEND_TABLES, MODES, SESSION_TABLES, SEVERITIES, Store

__all__ = [
    "APPEND_TABLES",
    "DEFAULT_LOCK_TIMEOUT_S",
    "LATEST_VERSION",
    "MIGRATIONS",
    "MODES",
    "SESSION_TABLES",
    "SEVERITIES",
    "Migration",
    "Store",
    "connect",
    "current_version",
    "migrate",
    "transaction",
    "unit_of_work",
]
