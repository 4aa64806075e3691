"""`rampart emergency-stop`: halt and flatten from the terminal, with or without the live process (R6.1).

It prints each step as it happens, then the details, and ends with one verdict line (FLAT or NOT FLAT with what is
left). No Python traceback reaches the operator: a failure is one line, and log records lose their tracebacks
while the command runs (their message stays).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
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
    deadline: Annotated[float | None, typer.Option(
        help="keep retrying until flat or this many seconds (default RAMPART_EMERGENCY__DEADLINE_S, 120)")] = None,
) -> None:
    """Emergency stop (R6.1): HALT, cancel all open orders, sell Rampart's positions at market, retrying until flat
    or the deadline. Works when the live process is down (keys: RAMPART_API_KEY/RAMPART_API_SECRET). Exit 0 when
    flat, 1 otherwise (safe to run again)."""
    from core.config import load_settings, run_overrides
    from core.control.emergency import emergency_stop
    from core.venue import venue_for

    settings = load_settings(**run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url))
    with _no_tracebacks():
        try:
            report = emergency_stop(settings, reason, who or os.environ.get("USER") or "unknown",
                                    venue_for(settings.exchange), deadline_s=deadline,
                                    progress=lambda line: typer.echo(line))
        except typer.Exit:
            raise
        except Exception as exc:  # ConfigError is one line already; anything else must be one line too
            typer.echo(f"error: {exc}" if str(exc) else f"error: emergency stop: {type(exc).__name__}", err=True)
            raise typer.Exit(1) from None
    typer.echo(report.text())
    raise typer.Exit(0 if report.flat else 1)


class _StripTraceback(logging.Filter):
    """Keep a record's message, drop its traceback (the exception's one line is appended instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            if exc is not None:
                record.msg = f"{record.getMessage()} ({type(exc).__name__}: {str(exc)[:300]})"
                record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


@contextmanager
def _no_tracebacks() -> Iterator[None]:
    loggers = [logging.getLogger(), *(x for x in logging.Logger.manager.loggerDict.values()
                                      if isinstance(x, logging.Logger))]
    handlers = {id(h): h for lg in loggers for h in lg.handlers}.values()
    strip = _StripTraceback()
    for handler in handlers:
        handler.addFilter(strip)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(strip)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("emergency-stop")(emergency_stop_command)
