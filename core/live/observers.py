"""What other parts of Rampart watch a live session through: each bar's new rows, and the stop.

Notifications, alerts, the dashboard and the audit journal are ``SessionObserver``s. The session calls them
after each flush (rows already in DuckDB) with the new rows per table (``orders``, ``fills``, ``trades``,
``decisions``, ``events``, ``equity``); an observer that fails is logged and recorded, never allowed to stop
trading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import polars as pl

if TYPE_CHECKING:
    from core.live.session import LiveSession

log = logging.getLogger("rampart.live")


class SessionObserver(Protocol):
    """Implement both methods; keep them quick (they run on the trading thread) or hand work to a thread."""

    def on_flush(self, session: LiveSession, new: Mapping[str, pl.DataFrame]) -> None: ...

    def on_stop(self, session: LiveSession) -> None: ...


# Optional: an observer may also define ``on_poll(session)``, called on every poll (about every
# ``poll_interval_s``) whether or not a bar closed — for rules that watch for something NOT happening.


def call_observers(session: LiveSession, observers: list[SessionObserver], method: str,
                   *args: object) -> list[str]:
    """Call ``method`` on each observer; returns one line per failure (the session records them)."""
    failures: list[str] = []
    for obs in observers:
        fn = getattr(obs, method, None)
        if fn is None:
            continue
        try:
            fn(session, *args)
        except Exception as exc:  # an observer must never stop trading
            log.exception("observer %s.%s failed", type(obs).__name__, method)
            failures.append(f"{type(obs).__name__}.{method}: {type(exc).__name__}: {exc}"[:300])
    return failures


__all__ = ["SessionObserver", "call_observers"]
