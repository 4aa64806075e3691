"""What each fact says to a trader: entries, exits, significant session events, the emergency stop, overrides and
gate verdicts as ``Notification``s with a deterministic key (the same fact → the same key → one message).

Keys: ``entry:<session>:<client_order_id>``, ``exit:<session>:<trade_id>``, ``event:<session>:<event_id>``,
``emergency:<stamp>``, ``override:<id>``, ``gate:<session>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.events import Category, EventCode, spec_of
from core.notify.outbox import Notification

# Which events are notified is each code's ``notify`` (core.events): "always", only when "critical", or by the
# "alert" rule that watches it (core.monitoring, core.security), not twice.
HALTED_BY_REQUEST = "entries halted"  # the inbox's halt_entries: its STATE_CHANGED note and the caller's alert say it
TITLES: dict[str, tuple[str, str]] = {  # code -> (kind, title)
    "DAILY_LOSS_LIMIT": ("risk", "Daily loss limit hit: no new entries (SAFE_MODE)"),
    "DRAWDOWN_DERISK": ("risk", "Drawdown limit: risk per trade cut"),
    "UNREALIZED_LOSS_TIGHTEN": ("risk", "Unrealized loss: protective stops tightened"),
    "LATENCY_PAUSE": ("risk", "Entries paused: exchange latency too high"),
    "LATENCY_RESUME": ("risk", "Entries resumed: exchange latency back to normal"),
    "EMERGENCY_STOP": ("emergency", "EMERGENCY STOP"),
    "SESSION_STOPPED": ("session", "Live session stopped"),
    "OVERRIDE_APPLIED": ("override", "Override applied by the running session"),
    "SESSION_ERROR": ("error", "Live session error"),
    "FINAL_SYNC_FAILED": ("error", "Last fills not collected at stop"),
    "FILLED_WHILE_AWAY": ("reconcile", "Reconciliation: order filled while Rampart was down"),
    "RECONCILE_INCOMPLETE": ("reconcile", "Reconciliation incomplete"),
}


def money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+,.2f} USDT"


def price(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def qty(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.8f}".rstrip("0").rstrip(".")


def pct(value: float | None, signed: bool = True) -> str:
    if value is None or value != value:  # NaN
        return "n/a"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


# --- trading --------------------------------------------------------------------------------------------------
def entry_note(session_id: str, order: Mapping[str, Any], decision: Mapping[str, Any] | None = None,
               stop: float | None = None) -> Notification:
    """A filled entry order: what was bought, at what price, its protective stop and the money at risk."""
    sym, filled = str(order["symbol"]), float(order.get("filled_qty") or order.get("qty") or 0.0)
    fill = float(order.get("avg_fill_price") or order.get("price") or 0.0)
    sizing = dict((decision or {}).get("sizing") or {})
    stop = stop if stop is not None else _float((decision or {}).get("stop"))
    risk = filled * (fill - stop) if stop is not None and fill else None
    equity = _float(sizing.get("equity"))
    fields: dict[str, Any] = {
        "Symbol": sym, "Side": str(order.get("side") or "buy").upper(), "Quantity": qty(filled),
        "Price": price(fill), "Notional": f"{filled * fill:,.2f} USDT",
        "Stop": f"{price(stop)} ({pct((stop - fill) / fill)})" if stop is not None and fill else "n/a",
        "Risk": (f"{risk:,.2f} USDT" + (f" ({pct(risk / equity, False)} of equity)" if equity else ""))
        if risk is not None else "n/a",
    }
    if sizing.get("risk_per_trade") is not None:
        fields["Risk per trade"] = pct(_float(sizing.get("risk_per_trade")), False)
    reason = str(order.get("reason") or (decision or {}).get("reason") or "")  # the body: the why, in words
    return Notification(key=f"entry:{session_id}:{order['client_order_id']}", kind="entry", severity="info",
                        title=f"Entry {sym}: bought {qty(filled)} @ {price(fill)}", body=reason, fields=fields,
                        session_id=session_id)


def exit_note(session_id: str, trade: Mapping[str, Any]) -> Notification:
    """A closed trade: what was sold, at what price, the net P&L and why it was closed."""
    sym, net = str(trade["symbol"]), float(trade.get("net_pnl") or 0.0)
    ret = _float(trade.get("return_pct"))
    kind, reason = str(trade.get("exit_kind") or ""), str(trade.get("exit_reason") or "")
    fields = {"Symbol": sym, "Quantity": qty(_float(trade.get("qty"))), "Entry price": price(_float(
        trade.get("entry_price"))), "Exit price": price(_float(trade.get("exit_price"))), "Net P&L": money(net),
        "Return": pct(ret), "Fees": f"{float(trade.get('fees') or 0.0):,.4f} USDT",
        "Held": _held(trade.get("entry_time"), trade.get("exit_time")), "Exit": kind or "n/a"}
    title = (f"Exit {sym}: sold {qty(_float(trade.get('qty')))} @ {price(_float(trade.get('exit_price')))}, "
             f"net {money(net)} ({pct(ret)})")
    return Notification(key=f"exit:{session_id}:{trade['trade_id']}", kind="exit", severity="info", title=title,
                        body=f"{kind}: {reason}" if kind else reason, fields=fields, session_id=session_id)


def event_note(session_id: str, event: Mapping[str, Any]) -> Notification | None:
    """A significant session event (state change, breaker, risk action, restart, error …); None otherwise."""
    code, severity = str(event.get("code") or ""), str(event.get("severity") or "info")
    spec = spec_of(code)
    how = spec.notify if spec is not None else "critical"
    if how == "alert" or (how == "critical" and severity != "critical"):
        return None
    message = str(event.get("message") or "")
    details = _details(event.get("details"))
    if details.get("action") == HALTED_BY_REQUEST:
        return None
    kind, title = TITLES.get(code, ("event", code.replace("_", " ").capitalize()))
    if details.get("mode") == "paper" and title.startswith("Live session"):
        title = title.replace("Live session", "Forward paper session", 1)
    body, fields = message, _simple_fields(details)
    if code == EventCode.STATE_CHANGED:
        old, new = details.get("old"), details.get("new")
        kind, title, body, fields = "state", f"State {old} → {new}", str(details.get("why") or message), \
            {"From": old, "To": new}
    elif spec is not None and spec.category is Category.BREAKER:
        name = str(details.get("breaker") or code).replace("_", " ").lower()
        kind, title = "breaker", f"Circuit breaker tripped: {name}: entries blocked"
        fields = {"Breaker": name, "Blocks entries until": details.get("until") or "unknown",
                  "Why": details.get("trigger")}
    elif code == EventCode.SESSION_STARTED:
        restart = bool(details.get("restart"))
        what = "Forward paper session" if details.get("mode") == "paper" else "Live session"
        kind, title = "session", f"{what} restarted" if restart else f"{what} started"
        severity = "warning" if restart else "info"
        fields = {"Session": session_id, **({"Previous session": details.get("previous_session")} if restart else {})}
    return Notification(key=f"event:{session_id}:{event['event_id']}", kind=kind, severity=severity, title=title,
                        body=body, fields=fields, urgent=severity == "critical", session_id=session_id)


# --- operator actions and verdicts ----------------------------------------------------------------------------
def emergency_note(key: str, summary: str, report: Mapping[str, Any], session_id: str | None) -> Notification:
    """The emergency stop's outcome (R6.5): urgent, critical, with what was cancelled and sold."""
    cancelled = list(report.get("cancelled") or [])
    closed = dict(report.get("closed") or {})
    sells = dict(report.get("sells") or {})
    fields: dict[str, Any] = {
        "Requested by": report.get("who"), "Reason": report.get("reason"), "Exchange": report.get("exchange"),
        "Flat": "yes" + (f" in {report['seconds_to_flat']:.2f} s" if report.get("seconds_to_flat") else "")
        if report.get("flat") else "NO", "State": report.get("state"),
        "Orders cancelled": f"{len(cancelled)}" + "".join(
            f"\n{o.get('symbol')} {o.get('side')} {o.get('type')} {o.get('qty')}" for o in cancelled[:5]),
        "Positions sold": "\n".join(f"{s} {qty(q)} @ {price(p)}" for s, (q, p) in closed.items()) or "none",
    }
    pnl = {s: v.get("pnl") for s, v in sells.items() if v.get("pnl") is not None}
    if pnl:
        fields["P&L of the sells"] = "\n".join(f"{s} {money(v)}" for s, v in pnl.items())
    if report.get("leftovers"):
        fields["Left"] = "\n".join(str(x) for x in report["leftovers"][:5])
    if report.get("errors"):
        fields["Errors"] = "\n".join(str(x)[:200] for x in report["errors"][:3])
    outcome = "FLAT" if report.get("flat") else "NOT FLAT"
    return Notification(key=key, kind="emergency", severity="critical", title=f"EMERGENCY STOP: {outcome}",
                        body=summary, fields=fields, urgent=True, session_id=session_id)


def override_note(key: str, *, action: str, accepted: bool, code: str, detail: str, who: str | None, reason: str,
                  breaker: str | None = None, applied_to: str | None = None) -> Notification:
    """An operator override, accepted or refused (R6.3): who, what, why."""
    verdict = "ACCEPTED" if accepted else "REFUSED"
    fields = {"Action": action, "Operator": who or "unknown", "Reason": reason.strip() or "none given",
              "Code": code, **({"Breaker": breaker} if breaker else {}),
              **({"Applied to": applied_to} if applied_to else {})}
    return Notification(key=key, kind="override", severity="warning" if accepted else "error",
                        title=f"Override {verdict}: {action}", body=detail, fields=fields)


def gate_note(session_id: str, strategy: str, passed: bool, metrics: Mapping[str, Any], reasons: list[str],
              config_hash: str) -> Notification:
    """The paper-validation gate verdict (R1.4) with the key metrics."""
    fields = {"Strategy": strategy, "Trades": metrics.get("trades"), "Win rate": pct(_float(metrics.get(
        "win_rate")), False), "Sharpe": _num(metrics.get("sharpe")), "Max drawdown": pct(_float(metrics.get(
            "max_drawdown")), False), "Profit factor": _num(metrics.get("profit_factor")),
        "Net P&L": money(_float(metrics.get("net_pnl"))), "Config hash": config_hash[:12]}
    if reasons:
        fields["Failed because"] = "\n".join(reasons[:6])
    return Notification(key=f"gate:{session_id}", kind="gate", severity="info" if passed else "warning",
                        title=f"Paper gate {'PASSED' if passed else 'FAILED'}: {strategy}",
                        body="Live trading may start for this configuration." if passed else
                        "Live trading stays refused for this configuration.", fields=fields, session_id=session_id)


# --- helpers --------------------------------------------------------------------------------------------------
def _details(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _simple_fields(details: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level simple values (and an ``evidence`` dict's) as fields; tracebacks and big values stay out."""
    evidence = details.get("evidence")
    flat = {**{k: v for k, v in details.items() if k != "evidence"}, **(evidence if isinstance(evidence, dict) else {})}
    return {k.replace("_", " ").capitalize(): v for k, v in flat.items()
            if k != "traceback" and (isinstance(v, str | int | float | bool) or v is None) and len(str(v)) < 300}


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None


def _num(value: Any) -> str:
    number = _float(value)
    return "n/a" if number is None else f"{number:.2f}"


def _held(start: Any, end: Any) -> str:
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return "n/a"
    minutes = int((end - start).total_seconds() // 60)
    return f"{minutes // 1440}d {minutes % 1440 // 60}h {minutes % 60}m" if minutes >= 1440 else (
        f"{minutes // 60}h {minutes % 60}m" if minutes >= 60 else f"{minutes}m")


__all__ = ["emergency_note", "entry_note", "event_note", "exit_note", "gate_note", "override_note"]
