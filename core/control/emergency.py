"""The emergency stop (R6.1, R6.5): halt Rampart and flatten what it manages, whether or not the live process runs.

The order of work matters, and every step is safe to repeat:

1. Write the HALT flag ``data_dir/live/HALT`` (atomic, fsync'd). From then on a live session must place no
   order, shut down, and leave the state file alone: after HALT the state file belongs to the emergency stop.
2. Talk to the exchange directly with the stored credentials (no live process needed) and flatten symbol by
   symbol (``core.control.flatten``): cancel every open order on the managed symbols (Rampart's and, per R6.1, the
   others too), then sell at market what Rampart manages (the exchange's total of the base asset minus
   ``state.baseline``, rounded down to the lot step; dust below the minimum order is reported, not sold). Every
   request is retried, honouring the exchange's Retry-After, until flat or ``emergency.deadline_s`` (120 s).
   Progress is reported line by line as it happens.
3. Save the live state HALTED (flattened positions and cancelled orders cleared): it survives restarts (R6.4).
4. Record a critical EMERGENCY_STOP event in DuckDB; store the urgent notification in the outbox and send it to
   Slack at once (``core.notify``; it is logged on ``rampart.notify`` too). The verdict is one line, FLAT or NOT
   FLAT with what is left; nothing that fails on the way ends the stop with a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.config import Settings
from core.control.emergency_report import EmergencyReport
from core.control.flatten import Clock, Flattener, say
from core.domain import TradingState
from core.errors import ConfigError, RampartError
from core.events import EmergencyStopped, Event, EventCode
from core.execution.broker import base36
from core.execution.ccxt_broker import CcxtBroker
from core.execution.limits import RequestBudget, budget_path
from core.security.audit import CallLog, record_audit
from core.security.credentials import load_credentials
from core.state.halt import halt_path, write_halt
from core.state.live import LiveState, load_state, save_state
from core.venue import Venue, venue_for

log = logging.getLogger("rampart.control")
notify_log = logging.getLogger("rampart.notify")

CALL_TIMEOUT_MS = 5_000  # an emergency must not hang 10 s on one dead connection
MAX_DEADLINE_S = 86_400.0

__all__ = ["Clock", "EmergencyReport", "emergency_stop"]


def emergency_stop(settings: Settings, reason: str, who: str, venue: Venue | None = None, *,
                   state_path: Path | None = None, timeout_ms: int = CALL_TIMEOUT_MS, deadline_s: float | None = None,
                   progress: Callable[[str], None] | None = None, clock: Clock | None = None) -> EmergencyReport:
    """HALT, cancel every open order, sell every managed position at market, save HALTED, record, notify.

    Works without the live process. Keeps going until flat or ``deadline_s`` (default ``emergency.deadline_s``);
    ``progress`` gets each progress line as it happens. Raises only ConfigError, for a malformed request, before
    anything is written; otherwise the report says what is left (``flat`` False), and the HALT flag and the HALTED
    state are written whatever happens on the exchange."""
    clock = clock or Clock()
    started = clock.monotonic()
    venue = venue or venue_for(settings.exchange)
    deadline = settings.emergency.deadline_s if deadline_s is None else deadline_s
    reason, who = _check_request(reason, who, deadline)
    requested = datetime.now(UTC)
    report = EmergencyReport(reason, who, venue.name, requested.isoformat(), str(halt_path(settings.data_dir)),
                             deadline_s=deadline)
    try:
        write_halt(settings.data_dir, reason, who, requested)  # first: nothing new may come from Rampart after it
    except OSError as exc:  # flattening matters more; a running session may trade again, and the verdict says so
        report.errors.append(f"HALT flag not written at {report.halt_file}: {exc}")
        report.leftovers.append("HALT flag not written: a running live session may trade again")
    halt = "HALT NOT set" if report.leftovers else "HALT set"
    _notify(f"EMERGENCY STOP requested by {who} ({reason}): {halt}, flattening on {venue.describe()}")
    path = state_path or venue.state_path(settings.data_dir)
    state, baseline, writable = _load_state(path, report)
    symbols = list(dict.fromkeys([*settings.market.symbols, *state.positions,
                                  *(str(o.get("symbol")) for o in state.orders.values() if o.get("symbol"))]))
    stamp = base36(int(requested.timestamp() * 1000))
    flattener: Flattener | None = None
    key_id = None
    calls = CallLog()  # R8.5: the stop's credential uses go into the audit journal with the stop itself
    say(report, progress, clock.monotonic() - started,
        f"{halt}; flattening {', '.join(symbols)} on {venue.describe()} (deadline {deadline:g} s)")
    try:
        credentials = load_credentials(settings.credentials)  # the configured provider (R8.1)
        key_id = calls.key_id = credentials.key_id
        client = venue.client(api_key=credentials.api_key.get_secret_value(),
                              secret=credentials.secret.get_secret_value(), timeout_ms=timeout_ms,
                              enableRateLimit=False)
        # the whole weight is the stop's (share 1.0); the back-off file is the live session's: a ban it earned holds
        budget = RequestBudget(settings.exchange.weight_limit, 1.0, budget_path(settings.data_dir), clock=clock.wall)
        broker = CcxtBroker(client, budget=budget)  # never waits itself: the flattener waits, within the deadline
        broker.listeners.append(calls)
        prices = {s: float(p["avg_price"]) for s, p in state.positions.items() if p.get("avg_price")}
        flattener = Flattener(broker, symbols, baseline, report, clock=clock, started=started, deadline_s=deadline,
                              stamp=stamp, prices=prices, timeout_ms=timeout_ms, progress=progress)
        flattener.run()
    except Exception as exc:  # an emergency path must still save HALTED, record and notify, whatever failed
        log.debug("emergency stop: exchange work failed", exc_info=True)
        message = str(exc) if isinstance(exc, RampartError) else f"{type(exc).__name__}: {exc}"
        report.errors.append(message[:500])
        say(report, progress, clock.monotonic() - started, f"stopped: {message[:200]}")
        report.leftovers.append(f"exchange work did not complete ({message[:200]}): orders and positions unverified")
        report.flat, report.seconds_to_flat = False, None
    report.seconds = round(clock.monotonic() - started, 3)
    if flattener is not None:
        try:
            flattener.summarize_sells(state.positions)
        except Exception as exc:  # the sells happened; only their accounting failed
            report.errors.append(f"sells not summarised: {type(exc).__name__}: {exc}"[:300])
    if writable:
        _save_halted(path, state, flattener, report)
    _record(settings, report, state.session_id, key_id, path)
    record_audit(settings, [*calls.entries, ("emergency_stop", {
        "who": who, "reason": reason, "exchange": venue.name, "key_id": key_id, "session_id": state.session_id,
        "flat": report.flat, "cancelled": len(report.cancelled), "closed": report.closed, "errors": report.errors})])
    _notify_report(settings, report, stamp, state.session_id)
    return report


def _check_request(reason: str, who: str, deadline_s: float) -> tuple[str, str]:
    """Refuse a malformed request before anything is written (ConfigError says what to fix)."""
    reason = (reason or "").strip()
    if not reason:
        raise ConfigError("an emergency stop needs a reason, e.g. --reason 'exchange outage'")
    if not 0 < deadline_s <= MAX_DEADLINE_S:  # NaN fails this too
        raise ConfigError(f"the emergency stop's deadline must be seconds in (0, {MAX_DEADLINE_S:g}], got "
                          f"{deadline_s}; e.g. --deadline 120")
    return reason, (who or "").strip() or "unknown"


def _load_state(path: Path, report: EmergencyReport) -> tuple[LiveState, dict[str, float] | None, bool]:
    """(state, baseline or None when unknown, whether the file may be rewritten)."""
    if not path.exists():
        report.errors.append(f"no live state file at {path}: which holdings are Rampart's is unknown, none sold "
                             "(check --data-dir); open orders are still cancelled")
        return LiveState(), None, True
    try:
        state = load_state(path)
    except ConfigError as exc:  # a corrupt file is left as it is for the operator to inspect
        report.errors.append(str(exc))
        return LiveState(), None, False
    return state, dict(state.baseline), True


def _save_halted(path: Path, state: LiveState, flattener: Flattener | None, report: EmergencyReport) -> None:
    """HALTED; positions of symbols now flat and orders of symbols whose cancel was answered are cleared (the rest,
    unverified, are kept)."""
    state.trading_state = TradingState.HALTED.value
    if flattener is not None:
        for leg in flattener.legs:
            if leg.done and flattener.baseline is not None:
                state.positions.pop(leg.symbol, None)
        cancelled = {leg.symbol for leg in flattener.legs if leg.cancelled}
        state.orders = {cid: o for cid, o in state.orders.items() if o.get("symbol") not in cancelled}
    try:
        save_state(path, state)
    except (OSError, ConfigError) as exc:
        report.errors.append(f"HALTED state not saved at {path}: {exc}"[:300])
        log.error("emergency stop: HALTED state not saved at %s: %s", path, exc)


def _record(settings: Settings, report: EmergencyReport, session_id: str | None, key_id: str | None,
            path: Path) -> None:
    from core.store import Store  # DuckDB only here: the exchange work above must not wait for it

    details = {**report.to_dict(), "state_file": str(path), "api_key": key_id,
               "symbols": list(settings.market.symbols)}
    try:
        event = Event.of(EventCode.EMERGENCY_STOP, EmergencyStopped(summary=report.summary(), extra=details))
        Store(settings.db_path).record(event, kind="control", session_id=session_id)
    except Exception as exc:  # StoreError, or DuckDB locked by another process: the report still goes out
        report.errors.append(f"EMERGENCY_STOP event not recorded in {settings.db_path}: {exc}")
        log.error("emergency stop not recorded in DuckDB: %s; details: %s", exc, json.dumps(details, default=str))


def _notify(line: str) -> None:
    """The log line for the request itself (before the exchange work: no DuckDB, no Slack may delay that)."""
    notify_log.critical(line)


def _notify_report(settings: Settings, report: EmergencyReport, stamp: str, session_id: str | None) -> None:
    """The outcome (R6.5): stored in the outbox (logged as it is stored), then sent to Slack at once."""
    from core.notify import deliver_now, notify
    from core.notify.notes import emergency_note
    from core.store import Store

    try:
        store = Store(settings.db_path)
        notify(store, emergency_note(f"emergency:{stamp}", report.summary(), report.to_dict(), session_id))
        deliver_now(settings, store, urgent_only=True)
    except Exception as exc:  # logged by notify all the same; the emergency's own result must not be lost
        report.errors.append(f"emergency notification not stored or sent: {exc}"[:500])
