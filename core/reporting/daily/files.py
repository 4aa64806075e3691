"""Atomic file writes for the report exports (the shared ``core.fileio.atomic_write``)."""

from core.fileio import atomic_write

__all__ = ["atomic_write"]
