"""`rampart keys rotate` and `rampart audit verify`: key rotation and the audit journal (R8)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
