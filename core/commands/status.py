"""`rampart status`: the trading state at a glance — whether a session runs, its state, positions and their stops,
breakers, the gate for this configuration, the last bar — from the running session's files and the store.

It reads; it never writes, never takes the database's write lock and never calls the exchange, so it is safe while
a session trades (the state file is written after every bar).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core.commands import EXIT_OK, ExchangeOpt, SandboxUrlOpt

DataDirOpt = Annotated[Path | None, typer.Option(help="where the database and the state files are (default ./data)")]


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(data_dir: DataDirOpt = None, exchange: ExchangeOpt = None, sandbox_url: SandboxUrlOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Is a session running, in which state, holding what, protected by which stops, blocked by which breaker;
    does the gate allow this configuration to go live; when was the last bar."""
    from core.config import load_settings, run_overrides

    settings = load_settings(**run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url))
    report = collect(settings)
    typer.echo(json.dumps(report, default=str) if as_json else "\n".join(render(report)))
    raise typer.Exit(EXIT_OK)


def collect(settings: Any) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data."""
    from core.build import config_hash
    from core.gate import go_live
    from core.live.forward import forward_state_path
    from core.state.commands import running_session
    from core.state.live import load_state
    from core.venue import venue_for

    venue = venue_for(settings.exchange)
    now = datetime.now(UTC)
    accounts = {}
    for kind, path in (("live", venue.state_path(settings.data_dir)),
                       ("paper-forward", forward_state_path(settings.data_dir, venue))):
        if path.exists():
            accounts[kind] = account(load_state(path), path, now)
    store = _read_store(settings.db_path)
    session = store.get("session") or {}
    chash = str(session.get("config_hash") or config_hash(settings))  # the gate of what runs, or of the settings
    attempts = _gate_attempts(settings.db_path, chash) if store.get("store") == "read" else []
    gate = go_live(attempts, chash, now, settings.gate, real_money=venue.real_money)  # as preflight judges it
    gate_ok, gate_why = gate.ok, gate.why
    return {"running": running_session(settings.data_dir), "venue": venue.name, "config_hash": chash,
            "accounts": accounts, "gate": {"ok": gate_ok, "why": gate_why}, **store}


def account(state: Any, path: Path, now: datetime) -> dict[str, Any]:
    """One account's state file: trading state, positions with their stops, working orders, breakers."""
    orders = state.orders
    stops: dict[str, list[dict[str, Any]]] = {}
    for cid, o in orders.items():
        if o.get("type") == "stop" and o.get("status") not in ("canceled", "filled", "rejected", "expired"):
            stops.setdefault(o["symbol"], []).append({"client_order_id": cid, "stop_price": o.get("stop_price"),
                                                      "qty": o.get("qty")})
    positions = {sym: {"qty": p["qty"], "avg_price": p["avg_price"], "stop": p.get("stop"),
                       "target": p.get("target"), "stops_working": stops.get(sym, [])}
                 for sym, p in state.positions.items()}
    breakers = (state.risk or {}).get("breakers") or {}
    until = breakers.get("until") or {}
    blocking = {name: datetime.fromtimestamp(ms / 1000, tz=UTC) for name, ms in until.items()
                if ms and ms / 1000 > now.timestamp()}
    return {"file": str(path), "state": state.trading_state, "rung": state.rung + 1, "session_id": state.session_id,
            "cash": state.cash, "positions": positions, "breakers_blocking": blocking,
            "derisked": bool((state.risk or {}).get("derisked")), "dust": state.dust,
            "written_at": datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)}


def _read_store(db_path: Path) -> dict[str, Any]:
    """The newest session and its last bar, read-only; nothing when the store is busy or absent."""
    from core.errors import StoreError
    from core.store import Store

    empty: dict[str, Any] = {"session": None, "last_bar": None, "store": "no database yet"}
    if not db_path.exists():
        return empty
    try:
        store = Store(db_path)
        rows = store.query("select id, mode, status, started_at, ended_at, venue, config_hash from sessions "
                           "order by started_at desc limit 1").rows(named=True)
        session = rows[0] if rows else None
        last = None
        if session is not None:
            bars = store.query("select ts, equity from equity where session_id = ? order by ts desc limit 1",
                               [session["id"]]).rows(named=True)
            last = bars[0] if bars else None
        return {"session": session, "last_bar": last, "store": "read"}
    except StoreError as exc:  # the running session holds the write lock for an instant: say so, do not wait
        return {**empty, "store": f"busy ({exc})"[:200]}


def _gate_attempts(db_path: Path, chash: str) -> list[dict[str, Any]]:
    from core.errors import StoreError
    from core.store import Store
    from core.store.gates import gate_attempts

    try:
        return gate_attempts(Store(db_path), chash)
    except StoreError:
        return []


def render(r: dict[str, Any]) -> list[str]:
    running = r["running"]
    lines = [f"Running   {'session ' + str(running.get('session_id'))[:8] + ' (pid ' + str(running.get('pid')) + ')'}"
             if running else "Running   no live session"]
    session = r.get("session")
    if session:
        lines.append(f"Latest    {session['mode']} session {str(session['id'])[:8]} on {session.get('venue') or '-'}, "
                     f"{session['status']}, started {_when(session['started_at'])}")
    last = r.get("last_bar")
    lines.append(f"Last bar  {_when(last['ts'])}, equity {last['equity']:,.2f}" if last else "Last bar  none stored")
    for kind, acc in r["accounts"].items():
        cash = f", cash {acc['cash']:,.2f}" if acc.get("cash") is not None else ""
        lines.append(f"{kind:<9} state {acc['state']}" + (f", rung {acc['rung']}" if kind == "live" else "") + cash
                     + (" (de-risked)" if acc["derisked"] else "") + f"; written {_when(acc['written_at'])}")
        for sym, p in acc["positions"].items():
            stops = ", ".join(f"stop {s['stop_price']:,.2f} for {s['qty']:g}" for s in p["stops_working"])
            lines.append(f"  {sym} {p['qty']:g} @ {p['avg_price']:,.2f}: {stops or 'NO STOP WORKING'}")
        if not acc["positions"]:
            lines.append("  no position")
        for name, until in acc["breakers_blocking"].items():
            lines.append(f"  breaker {name} blocks entries until {_when(until)}")
    if not r["accounts"]:
        lines.append("Accounts  no state file yet (no live or forward paper session has run here)")
    gate = r["gate"]
    lines.append(f"Gate      {'may go live' if gate['ok'] else 'live refused'}: {gate['why']}")
    if r.get("store") not in (None, "read"):
        lines.append(f"Database  {r['store']}")
    return lines


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, int | float) and math.isfinite(value):
        return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)
