"""Open a live session from settings: credentials, the venue's ccxt client, preflight, start."""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from core.errors import AuthenticationError
from core.live.session import LiveOptions, LiveSession
from core.live.wiring import attach
from core.security.credentials import Credentials, load_credentials
from core.venue import Venue, venue_for


def open_live(settings: Settings, venue: Venue | None = None, options: LiveOptions | None = None,
              state_path: Path | None = None) -> LiveSession:
    """Preflight and start a live session on ``venue`` (default: the settings' exchange); raises PreflightFailed
    (with every reason) when it may not trade."""
    venue = venue or venue_for(settings.exchange)
    credentials: Credentials | None
    problem = None
    try:
        credentials = load_credentials(settings.credentials)  # the configured provider (R8.1)
    except AuthenticationError as exc:
        credentials, problem = None, str(exc)  # preflight reports it together with anything else that is wrong
    client = venue.client(api_key=credentials.api_key.get_secret_value() if credentials else "",
                          secret=credentials.secret.get_secret_value() if credentials else "")
    session = LiveSession(settings, venue, client, credentials, options, state_path=state_path)
    session.credentials_problem = problem
    attach(session)
    instruments = session.preflight()
    session.start(instruments)
    return session
