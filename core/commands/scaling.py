"""`rampart approvals list` and `rampart approve`: scaling reviews from the terminal (R5, R2.5)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
