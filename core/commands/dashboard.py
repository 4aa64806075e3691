"""`rampart dashboard`: the operator dashboard served from DuckDB when no session runs (R3.1)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
