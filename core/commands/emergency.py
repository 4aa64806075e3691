"""`rampart emergency-stop`: halt and flatten from the terminal, with or without the live process (R6.1)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from core.commands import ExchangeOpt, SandboxUrlOpt


def emergency_stop_command(
    reason: Annotated[str, typer.Option(help="why (required; recorded and notified)")],
    who: Annotated[str | None, typer.Option(help="who asks (default: $USER)")] = None,
    exchange: ExchangeOpt = None,
    sandbox_url: SandboxUrlOpt = None,
    data_dir: Annotated[Path | None, typer.Option(help="where the live state and database are (default ./data)")]
    = None,
) -> None:
    """Emergency stop (R6.1): HALT, cancel all open orders, sell Rampart's positions at market. Works when the
    live process is down (keys: RAMPART_API_KEY/RAMPART_API_SECRET). Exit 0 when flat, 1 otherwise."""
    from core.config import load_settings, run_overrides
    from core.control.emergency import emergency_stop
    from core.venue import venue_for

    settings = load_settings(**run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url))
    report = emergency_stop(settings, reason, who or os.environ.get("USER") or "unknown", venue_for(settings.exchange))
    typer.echo(report.text())
    raise typer.Exit(0 if report.flat else 1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("emergency-stop")(emergency_stop_command)
