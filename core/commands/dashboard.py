"""`rampart dashboard`: the operator dashboard served from DuckDB when no session runs (R3.1).

A running live session serves its own (``rampart live --control-port``). This one reads the database and the
saved live state; its actions act offline: the emergency stop talks to the exchange directly
(core.control.emergency), resume and clear-breaker edit the saved state (or hand over to a running session).
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer

from core.commands import EXIT_USAGE, ExchangeOpt, SandboxUrlOpt, fail

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_port(host: str, port: int) -> None:
    """Refuse a busy port before anything starts (the server thread would only log it)."""
    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port} ({exc.strerror}); choose another --port") from None


def dashboard(
    data_dir: Annotated[Path | None, typer.Option(help="where the database and live state are (default ./data)")]
    = None,
    host: Annotated[str | None, typer.Option(help="bind address (default RAMPART_DASHBOARD__HOST, 127.0.0.1)")]
    = None,
    port: Annotated[int | None, typer.Option(help="port (default RAMPART_DASHBOARD__PORT, 8787; 0 = any free)")]
    = None,
    exchange: ExchangeOpt = None,
    sandbox_url: SandboxUrlOpt = None,
) -> None:
    """Serve the dashboard from the database and the saved live state until Ctrl-C. Log in with an operator
    token (RAMPART_OPERATORS); emergency stop needs RAMPART_API_KEY/RAMPART_API_SECRET."""
    from core.config import load_settings, run_overrides
    from core.dashboard.server import OfflineDashboard
    from core.errors import RampartError
    from core.state.commands import running_session
    from core.venue import venue_for

    if port is not None and not 0 <= port <= 65535:
        raise fail(f"--port must be 0-65535, got {port}", EXIT_USAGE)
    try:
        settings = load_settings(**run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url))
        venue = venue_for(settings.exchange)
    except RampartError as exc:
        raise fail(str(exc)) from None
    if not settings.operators:
        raise fail("no operators configured: set RAMPART_OPERATORS with hashed tokens (rampart operators "
                   "hash-token); nobody could log in")
    bind = host or settings.dashboard.host
    _check_port(bind, settings.dashboard.port if port is None else port)
    if bind not in LOOPBACK:
        typer.echo(f"warning: serving on {bind}, not loopback: put it behind an authenticating TLS proxy", err=True)
    running = running_session(settings.data_dir)
    if running is not None:
        typer.echo(f"note: live session {str(running.get('session_id'))[:8]} (pid {running.get('pid')}) is running; "
                   f"its own dashboard is at {running.get('control_url') or 'its --control-port'}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with OfflineDashboard(settings, venue, host=bind, port=port) as served:
            typer.echo(f"Dashboard on {served.url} (data {settings.data_dir}); stop with Ctrl-C")
            stop.wait()
    except RampartError as exc:
        raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("dashboard")(dashboard)
