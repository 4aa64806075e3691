"""The dashboard's database half, read in one unit of work: live sessions, P&L, the equity curve, recent decisions,
alerts and events, the latest 15-minute metrics, the gate, order and error counts.

One connection for all of it (each open costs ~15-25 ms). The connection is read-write on purpose: in the live
process other threads write (events, alerts) and DuckDB refuses a read-only connection beside a read-write one in
the same process. The lock wait is short: a busy file means this refresh is skipped, never that trading waits.
The file is not migrated here (no ``Store``): the page reads what the trading processes wrote.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from core.store.db import unit_of_work

SESSIONS = "SELECT id FROM sessions WHERE mode = 'live' AND coalesce(live_evidence, true) = {evidence}"
CURVE_POINTS = 500  # the equity chart is sampled down to about this many points
DAY_MS = 86_400_000
RECENT = 25


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, list(params))
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_snapshot(path: Path, *, session_id: str | None = None, config_hash: str | None = None,
                  lock_timeout_s: float = 0.5, evidence: bool = True) -> dict[str, Any]:
    """Everything the page shows from the database file at ``path``, as one dict (times in epoch ms).
    ``session_id``/``config_hash`` are the running session's; without them the latest live session's are used.
    ``evidence`` False: the rehearsal networks' sessions (R9.7), which never mix with live results."""
    sessions_sql = SESSIONS.format(evidence="true" if evidence else "false")
    live = f"session_id IN ({sessions_sql})"
    with unit_of_work(path, what="dashboard snapshot", lock_timeout_s=lock_timeout_s) as conn:
        sessions = _rows(conn, "SELECT id, config_hash, starting_equity, epoch_ms(started_at) AS started_ms, status "
                               f"FROM sessions WHERE id IN ({sessions_sql}) ORDER BY started_at")
        latest = sessions[-1] if sessions else None
        session_id = session_id or (latest["id"] if latest else None)
        config_hash = config_hash or (latest["config_hash"] if latest else None)
        curve = _curve(conn, live)
        out: dict[str, Any] = {
            "session_id": session_id,
            "config_hash": config_hash,
            "first_equity": sessions[0]["starting_equity"] if sessions else None,
            "live_started_ms": sessions[0]["started_ms"] if sessions else None,
            "sessions": len(sessions),
            "realized": _rows(conn, "SELECT count(*) AS trades, coalesce(sum(net_pnl), 0.0) AS net, "
                                    f"coalesce(sum(fees), 0.0) AS fees FROM trades WHERE {live}")[0],
            "curve": curve,
            "last": _last_equity(conn, live),
            "decisions": _rows(conn, "SELECT epoch_ms(ts) AS ts, symbol, kind, action, code, reason, "
                                     "json_extract_string(details, '$.denied') AS denied FROM decisions "
                                     f"WHERE {live} ORDER BY ts DESC, decision_id DESC LIMIT {RECENT}"),
            "alerts": _rows(conn, f"SELECT epoch_ms(ts) AS ts, rule, severity, code, reason FROM alerts "
                                  f"ORDER BY ts DESC LIMIT {RECENT}"),
            "events": _rows(conn, f"SELECT epoch_ms(ts) AS ts, kind, severity, code, message FROM events "
                                  f"WHERE severity <> 'info' ORDER BY ts DESC LIMIT {RECENT}"),
            "metrics": _metrics(conn, session_id, evidence),
            "gate": _gate(conn, config_hash),
            "orders": {r["status"]: int(r["n"]) for r in _rows(
                conn, f"SELECT coalesce(status, 'unknown') AS status, count(*) AS n FROM orders WHERE {live} "
                      "GROUP BY ALL")},
            "errors": int(_rows(conn, "SELECT count(*) AS n FROM events WHERE severity IN ('error', 'critical')")[0]
                          ["n"]),
        }
        out["sod_equity"] = _start_of_day(conn, live, out["last"])
    return out


def _curve(conn: duckdb.DuckDBPyConnection, live: str) -> list[list[float]]:
    rows = _rows(conn, f"""
        WITH e AS (SELECT epoch_ms(ts) AS t, equity, row_number() OVER (ORDER BY ts) AS rn, count(*) OVER () AS n
                   FROM equity WHERE {live})
        SELECT t, equity FROM e WHERE rn % greatest(n // {CURVE_POINTS}, 1) = 0 OR rn = 1 OR rn = n ORDER BY t""")
    return [[int(r["t"]), float(r["equity"])] for r in rows if r["equity"] is not None]


def _last_equity(conn: duckdb.DuckDBPyConnection, live: str) -> dict[str, Any] | None:
    rows = _rows(conn, f"SELECT epoch_ms(ts) AS ts, equity, cash, exposure FROM equity WHERE {live} "
                       "ORDER BY ts DESC LIMIT 1")
    return rows[0] if rows else None


def _start_of_day(conn: duckdb.DuckDBPyConnection, live: str, last: dict[str, Any] | None) -> float | None:
    """Equity at 00:00 UTC of the latest mark's day: the last mark before it, else the day's first (SPEC)."""
    if last is None:
        return None
    midnight = datetime.fromtimestamp(int(last["ts"]) // DAY_MS * DAY_MS / 1000, UTC)
    before = _rows(conn, f"SELECT equity FROM equity WHERE {live} AND ts < ? ORDER BY ts DESC LIMIT 1", [midnight])
    if before:
        return float(before[0]["equity"])
    first = _rows(conn, f"SELECT equity FROM equity WHERE {live} AND ts >= ? ORDER BY ts LIMIT 1", [midnight])
    return float(first[0]["equity"]) if first else None


def _metrics(conn: duckdb.DuckDBPyConnection, session_id: str | None, evidence: bool) -> dict[str, Any] | None:
    """The newest 15-minute metrics snapshot (R3.3) for all live trading, or for this session (a rehearsal: only
    its own)."""
    rows = _rows(conn, "SELECT epoch_ms(ts) AS ts, scope, trades, win_rate, profit_factor, max_drawdown, sharpe, "
                       "sortino, net_pnl FROM metrics_snapshots WHERE (scope = 'live' AND ?) OR scope = ? "
                       "ORDER BY ts DESC LIMIT 1", [evidence, session_id or ""])
    return rows[0] if rows else None


def _gate(conn: duckdb.DuckDBPyConnection, config_hash: str | None) -> dict[str, Any] | None:
    """The newest gate verdict for ``config_hash`` (reasons JSON decoded), or None."""
    if not config_hash:
        return None
    rows = _rows(conn, "SELECT passed, created_at, reasons, config_hash, win_rate, sharpe, max_drawdown, trades "
                       "FROM gate_results WHERE config_hash = ? ORDER BY created_at DESC NULLS LAST LIMIT 1",
                 [config_hash])
    if not rows:
        return None
    gate = rows[0]
    if isinstance(gate.get("reasons"), str):
        try:
            gate["reasons"] = json.loads(gate["reasons"])
        except json.JSONDecodeError:
            gate["reasons"] = [gate["reasons"]]
    return gate


__all__ = ["CURVE_POINTS", "RECENT", "read_snapshot"]
