"""What a live session is connected to besides the exchange: its observers (notifications, alerts, the
dashboard, the audit journal) and broker listeners. ``open_live`` calls ``attach`` before ``start()`` so
the session's first events reach them too."""

from __future__ import annotations

from core.live.session import LiveSession


def attach(session: LiveSession) -> None:
    """Connect the session's observers; each block belongs to one capability."""
    # alerts and the decision log (core.monitoring): execution rows, fills with slippage, JSON lines; R3.4 rules
    from core.monitoring.attach import attach_monitoring

    attach_monitoring(session)
    # dashboard (core.dashboard): the push hub, when the session serves the page (LiveOptions.control_port)
    if session.options.control_port is not None:
        from core.dashboard.server import attach_dashboard

        attach_dashboard(session)
    # audit journal and suspicious activity (core.security): the detector first, so the journal (next) also
    # records the calls the detector makes in the same flush
    from core.security.audit_session import attach_audit
    from core.security.suspicious import attach_detector

    attach_detector(session)
    attach_audit(session)
    # key rotation (core.security.rotation): re-reads the credentials source, proves and swaps a new key (R8.3)
    from core.security.rotation import KeyRotator

    session.observers.append(KeyRotator.for_session(session))
    # notifications (core.notify): entries, exits and significant events into the outbox; the Slack notifier;
    # last, so what the others store at stop (audit anchors, alerts) is delivered before the process ends
    from core.notify.session import NotifyObserver

    session.observers.append(NotifyObserver())
    return None


__all__ = ["attach"]
