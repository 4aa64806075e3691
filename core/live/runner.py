"""Open a live session from settings: credentials, the ccxt client (Binance or the sandbox), preflight, start."""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from core.errors import AuthenticationError, ConfigError
from core.execution.ccxt_client import make_binance
from core.live.session import LiveOptions, LiveSession
from core.live.wiring import attach
from core.security.credentials import Credentials, load_credentials

EXCHANGES = ("sandbox", "binance")


def open_live(settings: Settings, exchange: str, base_url: str | None = None,
              options: LiveOptions | None = None, timeout_ms: int = 10_000,
              state_path: Path | None = None) -> LiveSession:
    """Preflight and start a live session; raises PreflightFailed (with every reason) when it may not trade."""
    if exchange not in EXCHANGES:
        raise ConfigError(f"unknown exchange '{exchange}'; use one of: {', '.join(EXCHANGES)}")
    if exchange == "sandbox" and not base_url:
        raise ConfigError("the sandbox exchange needs its URL, e.g. --sandbox-url http://127.0.0.1:8765")
    credentials: Credentials | None
    problem = None
    try:
        credentials = load_credentials(settings.credentials)  # the configured provider (R8.1)
    except AuthenticationError as exc:
        credentials, problem = None, str(exc)  # preflight reports it together with anything else that is wrong
    client = make_binance(
        base_url=base_url if exchange == "sandbox" else None, timeout_ms=timeout_ms,
        api_key=credentials.api_key.get_secret_value() if credentials else "",
        secret=credentials.secret.get_secret_value() if credentials else "",
    )
    session = LiveSession(settings, client, credentials, options, state_path=state_path)
    session.credentials_problem = problem
    session.exchange_name, session.base_url = exchange, base_url if exchange == "sandbox" else None
    attach(session)
    instruments = session.preflight()
    session.start(instruments)
    return session
