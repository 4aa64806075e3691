"""What the parts around a live session see of it and may ask of it: a read-only ``SessionView``, an
``OperatorInbox`` for requests, and the ``SessionObserver`` protocol they implement.

Observers (notifications, alerts and the decision log, the dashboard, the audit journal, suspicious-activity
detection, key rotation) never receive the session itself: they read the view, and what they want done (halt
entries, record an event) goes through the inbox and is applied on the trading thread at the next poll.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

if TYPE_CHECKING:
    from core.events import Event
    from core.venue import Venue

log = logging.getLogger("rampart.live")


@dataclass(frozen=True)
class PositionView:
    """An open position as observers see it (a copy: changing it changes nothing)."""

    symbol: str
    qty: float
    avg_price: float
    stop: float | None


class SessionView(Protocol):
    """Read-only: what a running live session is, holds and knows. Cheap to call on the trading thread."""

    @property
    def session_id(self) -> str: ...

    @property
    def config_hash(self) -> str: ...

    @property
    def symbols(self) -> tuple[str, ...]: ...

    @property
    def venue(self) -> Venue: ...

    @property
    def started(self) -> bool: ...

    @property
    def bars(self) -> int:
        """Bars traded so far in this session."""
        ...

    @property
    def last_candle_ts(self) -> int | None:
        """The newest closed candle the feed has seen (epoch ms): data freshness."""
        ...

    @property
    def latency_paused(self) -> bool: ...

    @property
    def latency_s(self) -> float: ...

    def now_ms(self) -> int:
        """The engine's clock (bar time on the sandbox, wall time on a real exchange)."""
        ...

    def status(self) -> dict[str, Any]:
        """State, rung, limits, breakers, latency, equity, positions, freshness, connectivity (the control API's
        ``/api/status`` and the dashboard)."""
        ...

    def positions(self) -> dict[str, PositionView]: ...

    def known_orders(self) -> tuple[frozenset[str], frozenset[str]]:
        """(client order ids, exchange order ids) of Rampart's orders: this session's and the journal's."""
        ...

    def baseline(self) -> Mapping[str, float]:
        """Base-asset holdings on the account that are not Rampart's (recorded on the first start)."""
        ...

    def dust(self) -> Mapping[str, float]:
        """Base units Rampart holds below what can be sold (the lot step, the minimum notional), by symbol."""
        ...


class OperatorInbox(Protocol):
    """Thread-safe requests to the session, applied on the trading thread at its next poll."""

    def halt_entries(self, code: str, reason: str, evidence: dict[str, Any] | None = None) -> None:
        """SAFE_MODE (no new entries; exits and stops keep working), with ``code`` as a critical event."""
        ...

    def record(self, event: Event) -> None:
        """A typed event for the session's record (its ``events`` rows and everything that reads them)."""
        ...


class SessionObserver(Protocol):
    """Implement these; keep them quick (they run on the trading thread) or hand work to a thread. ``on_poll`` is
    optional: called on every poll whether or not a bar closed, for rules that watch for something NOT happening."""

    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        """After each flush (rows already in DuckDB), with the new rows per table (orders, fills, trades,
        decisions, events, equity)."""
        ...

    def on_stop(self, view: SessionView) -> None: ...


def call_observers(view: SessionView, observers: list[Any], method: str, *args: object) -> list[str]:
    """Call ``method`` on each observer that has it; returns one line per failure (the session records them).
    An observer must never stop trading."""
    failures: list[str] = []
    for obs in observers:
        fn = getattr(obs, method, None)
        if fn is None:
            continue
        try:
            fn(view, *args)
        except Exception as exc:
            log.exception("observer %s.%s failed", type(obs).__name__, method)
            failures.append(f"{type(obs).__name__}.{method}: {type(exc).__name__}: {exc}"[:300])
    return failures


__all__ = ["OperatorInbox", "PositionView", "SessionObserver", "SessionView", "call_observers"]
