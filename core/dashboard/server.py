"""Serving the dashboard: beside a live session's control API, or alone from DuckDB (``rampart dashboard``).

Both share one ``LoginGuard`` between the page's logins and the control API's Bearer tokens, so every bad
token counts toward the same lockout (R8.4). The server binds ``settings.dashboard.host`` (127.0.0.1 by
default) in a background thread (``ControlServer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.config import Settings
from core.control.api import ControlServer, create_control_app
from core.dashboard.actions import Actions
from core.dashboard.app import create_dashboard_app
from core.dashboard.auth import LoginGuard
from core.dashboard.hub import DashboardHub
from core.venue import Venue, venue_for

if TYPE_CHECKING:
    from core.view import OperatorInbox, SessionView


def serve_with_dashboard(settings: Settings, view: SessionView, inbox: OperatorInbox, hub: DashboardHub,
                         port: int, state_path: Path | None = None) -> ControlServer:
    """The control API and the dashboard on one port, for a started session; returns the running server."""
    actions = Actions(settings, view, inbox, state_path=state_path)
    guard = LoginGuard(settings.dashboard.lockout_after, settings.dashboard.lockout_s, actions.on_lockout)
    control = create_control_app(settings, view.status, view.venue, guard=guard)
    app = create_dashboard_app(settings, hub, actions, guard, control=control)
    return ControlServer(app, host=settings.dashboard.host, port=port).start()


class OfflineDashboard:
    """``rampart dashboard``: the page from DuckDB and the saved state; actions act offline."""

    def __init__(self, settings: Settings, venue: Venue | None = None, *, host: str | None = None,
                 port: int | None = None, state_path: Path | None = None) -> None:
        from core.store import Store

        Store(settings.db_path).schema_version()  # creates/migrates the file before the first read
        self.settings = settings
        venue = venue or venue_for(settings.exchange)
        state_path = state_path or venue.state_path(settings.data_dir)
        self.hub = DashboardHub(settings, state_path=state_path)
        self.actions = Actions(settings, venue=venue, state_path=state_path)
        self.guard = LoginGuard(settings.dashboard.lockout_after, settings.dashboard.lockout_s,
                                self.actions.on_lockout)
        control = create_control_app(settings, self.hub.builder.status, venue, guard=self.guard)
        self.app = create_dashboard_app(settings, self.hub, self.actions, self.guard, control=control)
        self.server = ControlServer(self.app, host=host or settings.dashboard.host,
                                    port=settings.dashboard.port if port is None else port)

    def start(self) -> OfflineDashboard:
        self.hub.start()
        self.server.start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.hub.stop()
        self.server.stop()

    def __enter__(self) -> OfflineDashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["OfflineDashboard", "serve_with_dashboard"]
