"""The dashboard's one document: a JSON-ready snapshot of positions, P&L, the equity curve and system status.

Two halves, refreshed at different rates: the *status* (state, rung, breakers, latency, data freshness,
connectivity, positions, equity) comes from the running session's ``status()`` (in memory, cheap) or, with no
session, from the saved live state; the *database* half (``queries.read_database``) holds the curve, realized
P&L, decisions, alerts, events, metrics and the gate. While the HALT flag is up the emergency stop owns the
account, so the state shows HALTED and positions come from the state file the stop rewrote.

P&L definitions shown on the page (all in the quote currency, all live sessions on this database):
realized = net P&L after fees of closed live trades; unrealized = open positions marked at the last close;
today = equity - start-of-day equity (the R2.3 day P&L); since start = equity - starting equity of the first
live session.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import Settings
from core.config.ladder import rung
from core.dashboard.queries import read_database
from core.errors import RampartError
from core.gate import check_go_live
from core.redact import redact_value
from core.risk.breakers import CircuitBreakers
from core.state.halt import read_halt
from core.state.live import load_state
from core.venue import venue_for

if TYPE_CHECKING:
    from core.view import SessionView

VOLATILE = ("server_time",)  # changes on every build; not a reason to push


class SnapshotBuilder:
    """Builds snapshots for one data directory, from a running ``session`` when there is one."""

    def __init__(self, settings: Settings, view: SessionView | None = None,
                 state_path: Path | None = None) -> None:
        self.settings = settings
        self.view = view
        self.venue = view.venue if view is not None else venue_for(settings.exchange)
        self.state_path = state_path or self.venue.state_path(settings.data_dir)

    # --- the halves ------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The in-memory half: the session's status, or the saved state's when no session serves us."""
        halt = read_halt(self.settings.data_dir)
        if self.view is not None and halt is None:
            return {**live_view(self.view), "halt": None}
        view = saved_view(self.settings, self.state_path)
        if self.view is not None:  # halted under a running session: its view, the stop's positions
            view = {**live_view(self.view), "positions": view["positions"], "equity": None, "cash": None}
        if halt is not None:
            view["state"] = "HALTED"
        return {**view, "halt": halt}

    def database(self) -> dict[str, Any]:
        view = self.view
        return read_database(self.settings.db_path, session_id=view.session_id if view else None,
                             config_hash=view.config_hash if view else None, evidence=self.venue.live_evidence)

    # --- together ----------------------------------------------------------------------------------------------
    def build(self, status: dict[str, Any], db: dict[str, Any] | None) -> dict[str, Any]:
        """One snapshot from the two halves (``db`` None: not read yet); JSON-safe and redacted."""
        db = db or {}
        last = db.get("last") or {}
        positions = status.get("positions") or []
        equity = _first(status.get("equity"), last.get("equity"))
        cash = _first(status.get("cash"), last.get("cash"))
        marked = all(p.get("mark") is not None for p in positions)  # offline positions carry no mark
        held = sum(p["qty"] * p["mark"] for p in positions) if marked else None
        unrealized = _unrealized(positions, equity, cash)
        sod = _first(status.get("sod_equity"), db.get("sod_equity"))
        first = db.get("first_equity")
        snap = {
            **{k: v for k, v in status.items() if k not in ("equity", "cash", "sod_equity", "today_pnl")},
            "symbols": list(self.settings.market.symbols), "timeframe": self.settings.market.timeframe,
            "session_id": status.get("session_id") or db.get("session_id"),
            "equity": equity, "cash": cash,
            "exposure": held / equity if held is not None and equity else last.get("exposure"),
            "pnl": {"realized": (db.get("realized") or {}).get("net"), "unrealized": unrealized,
                    "today": equity - sod if equity is not None and sod is not None else None,
                    "since_start": equity - first if equity is not None and first is not None else None},
            "trades": (db.get("realized") or {}).get("trades"),
            "equity_curve": db.get("curve") or [],
            "decisions": [decision_row(d) for d in db.get("decisions") or []], "alerts": db.get("alerts") or [],
            "events": db.get("events") or [], "metrics": shown_metrics(db.get("metrics")),
            "gate": self._gate(db), "orders": db.get("orders") or {}, "errors": db.get("errors"),
            "server_time": int(time.time() * 1000),
        }
        out: dict[str, Any] = redact_value(jsonable(snap))
        return out

    def _gate(self, db: dict[str, Any]) -> dict[str, Any] | None:
        chash = db.get("config_hash")
        if not chash:
            return None
        row = db.get("gate")
        ok, why = check_go_live(row, chash, datetime.now(UTC), self.settings.gate)
        return {"ok": ok, "why": why, "passed": row.get("passed") if row else None,
                "created_at": row.get("created_at") if row else None, "config_hash": chash[:8]}


# ratios that mean nothing before a trade closes (stored as 0.0 by the R1.3 conventions): the page shows "—"
_TRADE_RATIOS = ("win_rate", "profit_factor", "sharpe", "sortino")


def shown_metrics(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The 15-minute metrics as the page shows them: with no closed trade the ratios are None (shown "—")."""
    if not metrics or metrics.get("trades"):
        return metrics
    return {**metrics, **dict.fromkeys(_TRADE_RATIOS)}


def decision_row(row: dict[str, Any]) -> dict[str, Any]:
    """A decision for the page: a refused one shows why it was refused (its code and the numbers that refused it,
    e.g. ``CORRELATION_BLOCK: ETHUSDT~BTCUSDT rho=0.83>0.70``) as its reason; the signal's own reason stays as
    ``signal``."""
    out = {k: v for k, v in row.items() if k != "denied"}
    if row.get("kind") == "denied":
        why = str(row.get("denied") or "")
        out["reason"] = f"{row.get('code')}: {why}" if why else str(row.get("code") or "")
        out["signal"] = row.get("reason")
    return out


def live_view(view: SessionView) -> dict[str, Any]:
    """The running session's ``status()`` in the snapshot's shape."""
    st = view.status()
    positions = [{"symbol": sym, **p} for sym, p in sorted((st.get("positions") or {}).items())]
    conn = st.get("connectivity") or {}
    ok_at, err_at = conn.get("last_ok_at"), conn.get("last_error_at")
    return {
        "source": "session", "session_id": st.get("session_id"), "mode": st.get("mode", "live"),
        "exchange": st.get("exchange"), "state": st.get("state"), "rung": st.get("rung"),
        "risk_per_trade": st.get("risk_per_trade"), "exposure_cap": st.get("exposure_cap"),
        "derisked": st.get("derisked"), "latency_s": _round(st.get("latency_s"), 3),
        "latency_paused": st.get("latency_paused"),
        "bars": st.get("bars"), "breakers": _breakers(st.get("breakers") or []),
        "equity": st.get("equity"), "cash": st.get("cash"), "sod_equity": st.get("sod_equity"),
        "positions": positions,
        "data": {"last_candle_ts": st.get("last_candle_ts"), "last_bar_at": st.get("last_bar_at")},
        # seconds are enough for the page, and a value that moves every call would push every poll
        "connectivity": {"ok": ok_at is not None and (err_at is None or ok_at >= err_at),
                         "last_ok_at": _round(ok_at, 0),
                         "last_error_at": err_at, "last_error": conn.get("last_error")},
    }


def saved_view(settings: Settings, state_path: Path) -> dict[str, Any]:
    """With no session: the saved live state (state, rung, breakers, positions at their entry price)."""
    view: dict[str, Any] = {"source": "database", "mode": "live", "exchange": None, "latency_s": None,
                            "latency_paused": None, "data": {"last_candle_ts": None, "last_bar_at": None},
                            "connectivity": None, "positions": [], "breakers": []}
    try:
        state = load_state(state_path)
    except RampartError as exc:
        return {**view, "state": "UNKNOWN", "problem": str(exc)}
    derisked = bool(state.risk.get("derisked"))
    step = rung(state.rung)
    now = int(time.time() * 1000)
    try:
        saved = state.risk.get("breakers")
        breakers = (CircuitBreakers.from_state(settings.breakers, saved) if saved
                    else CircuitBreakers(settings.breakers)).status(now)
    except RampartError as exc:
        breakers, view["problem"] = [], str(exc)
    return {**view, "state": state.trading_state, "rung": state.rung + 1, "derisked": derisked,
            "risk_per_trade": settings.risk.derisked_risk_per_trade if derisked else step.risk_per_trade,
            "exposure_cap": step.exposure_cap, "breakers": _breakers(breakers),
            "positions": [{"symbol": sym, "qty": p.get("qty"), "avg_price": p.get("avg_price"),
                           "stop": p.get("stop"), "mark": None, "unrealized": None}
                          for sym, p in sorted(state.positions.items())]}


def _round(value: Any, digits: int) -> Any:
    return round(value, digits) if isinstance(value, float) and math.isfinite(value) else value


def _breakers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": b.get("name"), "code": b.get("code"), "tripped": bool(b.get("tripped")),
             "until": b.get("until"), "ms_left": b.get("ms_left") or 0,
             "cooldown_hours": b.get("cooldown_hours"), "last_trip": b.get("last_trip")} for b in rows]


def _unrealized(positions: list[dict[str, Any]], equity: float | None, cash: float | None) -> float | None:
    """Marked positions sum their own; unmarked (offline) ones: value held (equity - cash) minus their cost."""
    if not positions:
        return 0.0
    if all(p.get("unrealized") is not None for p in positions):
        return float(sum(p["unrealized"] for p in positions))
    if equity is None or cash is None:
        return None
    return equity - cash - sum(p["qty"] * p["avg_price"] for p in positions)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))), None)


def jsonable(value: Any) -> Any:
    """Datetimes to ISO text, non-finite floats to None, through dicts and lists (the page parses strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def fingerprint(snapshot: dict[str, Any]) -> str:
    """What decides whether a snapshot is news: everything except the build time."""
    return json.dumps({k: v for k, v in snapshot.items() if k not in VOLATILE}, sort_keys=True)


__all__ = ["SnapshotBuilder", "decision_row", "fingerprint", "jsonable", "live_view", "saved_view", "shown_metrics"]
