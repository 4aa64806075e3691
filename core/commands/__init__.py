"""Sub-commands of ``rampart`` that later capabilities add (dashboard, reports, scaling, keys and audit).

Each module has ``register(app)``; ``core.cli`` calls them. Use ``fail`` for errors: one ``error: ...`` line
on stderr and the exit code (1 by default; 2 for a malformed command line).
"""

from __future__ import annotations

import typer

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "fail"]
