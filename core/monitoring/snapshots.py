"""The 15-minute metrics (R3.3): the R1.3 metric set recomputed from the live trades and equity in DuckDB.

``compute_snapshot`` runs ``core.metrics.compute_metrics`` — the same functions as the paper report and
the gate — on every live session's closed trades and mark-to-market equity (scope ``live``: the account's whole
live history, one curve in time order, from the first live session's starting equity) or on one session's
(scope = its id). ``record_snapshots`` stores the ``live`` snapshot and the current session's in
``metrics_snapshots``; the scheduled flow (flows/metrics.py) calls it and publishes the numbers.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.metrics import compute_metrics
from core.store import Store

LIVE_SCOPE = "live"
# The columns metrics_snapshots keeps as numbers; the whole metric set goes to its ``metrics`` JSON.
HEADLINE = ("trades", "win_rate", "profit_factor", "max_drawdown", "sharpe", "sortino", "net_pnl")


@dataclass(frozen=True)
class LiveHistory:
    """What one scope's metrics are computed from (rows as stored)."""

    sessions: list[str]
    starting_equity: float
    trades: pl.DataFrame  # trade_id, net_pnl, fees, exit_time
    equity: pl.DataFrame  # ts, equity, exposure (ascending ts)


def load_history(store: Store, scope: str = LIVE_SCOPE) -> LiveHistory | None:
    """The live sessions' trades and equity for ``scope`` ('live' or a session id); None when there are none."""
    where, params = ("s.mode = 'live'", []) if scope == LIVE_SCOPE else ("s.mode = 'live' AND s.id = ?", [scope])
    sessions = store.query(f"SELECT s.id, s.starting_equity FROM sessions s WHERE {where} "
                           "ORDER BY s.started_at, s.id", params)
    if not sessions.height:
        return None
    trades = store.query(f"SELECT t.trade_id, t.net_pnl, t.fees, t.exit_time FROM trades t JOIN sessions s "
                         f"ON s.id = t.session_id WHERE {where} ORDER BY t.exit_time, t.trade_id", params)
    equity = store.query(f"SELECT e.ts, e.equity, e.exposure FROM equity e JOIN sessions s ON s.id = e.session_id "
                         f"WHERE {where} ORDER BY e.ts", params)
    first = sessions["starting_equity"][0]
    start = float(first) if first is not None and first > 0 else (float(equity["equity"][0]) if equity.height
                                                                   else math.nan)
    return LiveHistory(sessions["id"].to_list(), start, trades, equity)


def compute_snapshot(store: Store, scope: str = LIVE_SCOPE, now: datetime | None = None, *, period: str = "1d",
                     flow_run_id: str | None = None) -> dict[str, Any]:
    """One ``metrics_snapshots`` row for ``scope`` (not stored). With no live history yet, the numbers are empty
    and ``metrics`` says why, so the dashboard can show "no live trading yet" with the time it was checked."""
    when = now or datetime.now(UTC)
    row: dict[str, Any] = {"snapshot_id": uuid.uuid4().hex, "ts": when, "scope": scope, "mode": "live",
                           "flow_run_id": flow_run_id}
    history = load_history(store, scope)
    if history is None or not math.isfinite(history.starting_equity):
        return {**row, "trades": 0, "metrics": {"note": "no live session yet", "period": period}}
    equity = history.equity
    if not equity.height:  # a session that has not marked a bar yet: flat at its starting equity
        equity = pl.DataFrame({"ts": [when], "equity": [history.starting_equity], "exposure": [0.0]})
    metrics = compute_metrics(equity.select("ts", "equity", pl.col("exposure").fill_null(0.0)),
                              history.trades.select("net_pnl", "fees"), starting_equity=history.starting_equity,
                              period=period)
    values = metrics.to_dict()
    extra = {"sessions": len(history.sessions), "first_point": equity["ts"][0], "last_point": equity["ts"][-1]}
    return {**row, **{k: getattr(metrics, k) for k in HEADLINE}, "metrics": {**values, **extra}}


def record_snapshots(store: Store, now: datetime | None = None, *, period: str = "1d",
                     flow_run_id: str | None = None) -> list[dict[str, Any]]:
    """Compute and store the ``live`` snapshot and, while a live session runs, that session's; returns the rows."""
    when = now or datetime.now(UTC)
    rows = [compute_snapshot(store, LIVE_SCOPE, when, period=period, flow_run_id=flow_run_id)]
    running = store.query("SELECT id FROM sessions WHERE mode = 'live' AND status = 'running' "
                          "ORDER BY started_at DESC LIMIT 1")
    if running.height:
        rows.append(compute_snapshot(store, str(running["id"][0]), when, period=period, flow_run_id=flow_run_id))
    store.insert_rows("metrics_snapshots", rows)
    return rows


def latest_snapshot(store: Store, scope: str = LIVE_SCOPE) -> dict[str, Any] | None:
    """The newest stored snapshot of ``scope`` (for the dashboard and the CLI), or None."""
    found = store.query("SELECT * FROM metrics_snapshots WHERE scope = ? ORDER BY ts DESC LIMIT 1", [scope])
    return found.row(0, named=True) if found.height else None


def snapshot_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as a table for people (Prefect artifact, CLI): one line per scope, ratios rounded, inf spelled."""
    out = []
    for row in rows:
        line: dict[str, Any] = {"scope": row["scope"], "at": row["ts"].isoformat()}
        for name in HEADLINE:
            line[name] = _shown(row.get(name))
        out.append(line)
    return out


def _shown(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return round(value, 6) if isinstance(value, float) else value


__all__ = ["HEADLINE", "LIVE_SCOPE", "LiveHistory", "compute_snapshot", "latest_snapshot", "load_history",
           "record_snapshots", "snapshot_table"]
