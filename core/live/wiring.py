"""What a live session is connected to besides the exchange: its observers (notifications, alerts, the
dashboard, the audit journal) and broker listeners. ``open_live`` calls ``attach`` before ``start()`` so
the session's first events reach them too."""

from __future__ import annotations

from core.live.session import LiveSession


def attach(session: LiveSession) -> None:
    """Connect the session's observers; each block belongs to one capability."""
    # notifications (core.notify): -
    # alerts and the decision log (core.monitoring): -
    # dashboard (core.dashboard): -
    # audit journal and suspicious activity (core.security): -
    return None


__all__ = ["attach"]
