"""Sub-commands of ``rampart`` that later capabilities add (dashboard, reports, scaling, keys and audit).

Each module has ``register(app)``; ``core.cli`` calls them. Use ``fail`` for errors: one ``error: ...`` line
on stderr and the exit code (1 by default; 2 for a malformed command line).
"""

from __future__ import annotations

from typing import Annotated

import typer

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

# The venue options every command that talks to an exchange takes; not given = the settings' RAMPART_EXCHANGE__*.
ExchangeOpt = Annotated[str | None, typer.Option(
    help="sandbox (the local Binance twin), binance-demo (Binance Demo Mode), binance-testnet (Binance Spot "
         "Testnet) or binance (real money); default RAMPART_EXCHANGE__NAME (sandbox)")]
SandboxUrlOpt = Annotated[str | None, typer.Option(
    help="URL of `rampart sandbox` (default RAMPART_EXCHANGE__URL, http://127.0.0.1:8765)")]


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "ExchangeOpt", "SandboxUrlOpt", "fail"]
