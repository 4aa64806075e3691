"""`rampart report daily`: the daily report in JSON, CSV and PDF (R7)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
