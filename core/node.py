"""The composition root of a live node: one place that builds a live session and connects everything around it.

``open_live`` reads the credentials from the configured provider, builds the venue's real ccxt client and the
broker, the session, its observers (the decision log and alert rules, the dashboard hub, suspicious-activity
detection, the audit journal, key rotation, notifications — in that order, notifications last so that what the
others store at stop is delivered) once preflight has passed (a refused start writes nothing), starts the session
(reconcile, restore) and then its servers (the control API and dashboard). Observers see the session only
through its ``SessionView`` and ask of it only through its ``OperatorInbox``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Settings
from core.execution.ccxt_broker import CallRecord, CcxtBroker
from core.execution.limits import RequestBudget, budget_path
from core.live.session import LiveOptions, LiveSession
from core.monitoring.decision_log import DecisionLog
from core.monitoring.monitor import AlertMonitor
from core.notify.session import NotifyObserver
from core.security.credentials import KeyHolder
from core.store.replica_publisher import ReplicaPublisher
from core.venue import Venue, venue_for
from core.view import SessionView

if TYPE_CHECKING:  # imported where used: a node loads the dashboard only when it serves it (issue 19)
    from core.dashboard.hub import DashboardHub
    from core.live.forward import ForwardSession


def open_live(settings: Settings, venue: Venue | None = None, options: LiveOptions | None = None,
              state_path: Path | None = None) -> LiveSession:
    """Preflight and start a live session on ``venue`` (default: the settings' exchange); raises PreflightFailed
    (with every reason) when it may not trade."""
    venue = venue or venue_for(settings.exchange)
    keys = KeyHolder.load(settings.credentials)  # the configured provider (R8.1); a problem is preflight's to say
    creds = keys.credentials
    client = venue.client(api_key=creds.api_key.get_secret_value() if creds else "",
                          secret=creds.secret.get_secret_value() if creds else "")
    ex = settings.exchange
    budget = RequestBudget(ex.weight_limit, ex.max_weight_share, budget_path(settings.data_dir))  # R9.5
    broker = CcxtBroker(client, budget=budget, unknown_outcome_s=ex.unknown_outcome_s)
    broker.entry_limit_bps = ex.entry_limit_bps
    session = LiveSession(settings, venue, broker, keys, options, state_path=state_path)
    # Preflight before the observers exist: a refused start writes nothing (no database, no audit key, no log).
    # Its exchange calls are kept and shown to the observers once attached, so the audit journal still records
    # every use of the key.
    calls: list[CallRecord] = []
    broker.listeners.append(calls.append)
    try:
        instruments = session.preflight()
    finally:
        broker.listeners.remove(calls.append)
    before = list(broker.listeners)
    servers = attach(session)
    added = [listener for listener in broker.listeners if listener not in before]
    for record in calls:
        for listener in added:
            listener(record)
    session.start(instruments)
    servers.start()
    return session


def open_forward(settings: Settings, venue: Venue | None = None, options: LiveOptions | None = None,
                 state_path: Path | None = None) -> ForwardSession:
    """Start a forward paper session on ``venue``'s public market data (R1.6): a client without keys, no credential
    read, simulated fills; the same observers as a live session but those about keys and the account."""
    from core.live.forward import ForwardSession

    venue = venue or venue_for(settings.exchange)
    ex = settings.exchange
    budget = RequestBudget(ex.weight_limit, ex.max_weight_share, budget_path(settings.data_dir))
    broker = CcxtBroker(venue.client(), budget=budget, unknown_outcome_s=ex.unknown_outcome_s)  # public data only
    session = ForwardSession(settings, venue, broker, options, state_path=state_path)
    instruments = session.preflight()
    servers = attach(session, account=False)
    session.start(instruments)
    servers.start()
    return session


def attach(session: LiveSession, *, account: bool = True) -> Servers:
    """Connect the session's observers and broker listeners before ``start()`` (so its first events reach them);
    returns its servers, to start once the session has. ``account``: the observers about a real account and its
    key (suspicious activity, the credential audit, key rotation); a forward paper session has neither."""
    settings, view, inbox, broker, store = session.settings, session.view, session.inbox, session.broker, session.store
    decisions = DecisionLog(view, store, broker, settings.data_dir, settings.paper.slippage_bps, logs=settings.logs)
    alerts = AlertMonitor(view, store, settings)
    session.quote = decisions.quote  # the spread at each decision (R3.5)
    observers: list[Any] = [decisions, alerts]  # the decision log first: its rows are stored before the rules look
    broker.listeners += [decisions.on_call, alerts.on_call]
    hub = None
    if session.options.control_port is not None:
        from core.dashboard.hub import DashboardHub

        hub = DashboardHub(settings, view, state_path=session.state_path)
        observers.append(hub)
    if account:
        from core.security.audit_session import attach_audit
        from core.security.rotation import KeyRotator
        from core.security.suspicious import SuspiciousActivityDetector

        # the detector before the journal: the journal then also records the calls the detector makes in a flush
        detector = SuspiciousActivityDetector(view, inbox, broker, store, settings.audit)
        broker.listeners.append(detector.on_call)
        observers.append(detector)
        audit = attach_audit(settings, store, broker, view, inbox)
        if audit is not None:
            observers.append(audit)
        observers.append(KeyRotator.for_session(settings, session.keys, broker, inbox, store))
    observers.append(ReplicaPublisher(store.path))  # the replica operators query while it trades
    observers.append(NotifyObserver(settings, store))
    servers = Servers(session, hub)
    observers.append(servers)  # the last to stop
    session.observers.extend(observers)
    return servers


class Servers:
    """The session's control API and dashboard (when ``options.control_port`` is set) and its marker file, which
    tells other processes on the data directory that it runs and where its control API is."""

    def __init__(self, session: LiveSession, hub: DashboardHub | None) -> None:
        self.session, self.hub = session, hub

    def start(self) -> None:
        s = self.session
        if self.hub is not None and s.options.control_port is not None:
            from core.dashboard.server import serve_with_dashboard

            s.control = serve_with_dashboard(s.settings, s.view, s.inbox, self.hub, s.options.control_port,
                                             s.state_path)
        marker = s.marker_path
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"pid": os.getpid(), "session_id": s.session_id,
                                      "control_url": s.control.url if s.control is not None else None}))

    def on_flush(self, view: SessionView, new: Any) -> None:
        return None

    def on_stop(self, view: SessionView) -> None:
        self.session.marker_path.unlink(missing_ok=True)
        if self.session.control is not None:
            self.session.control.stop()


__all__ = ["attach", "open_forward", "open_live"]
