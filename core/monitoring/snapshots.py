"""The 15-minute metrics (R3.3): the R1.3 metric set recomputed from the live trades and equity in DuckDB.

``compute_snapshot`` runs ``core.metrics.compute_metrics`` — the same functions as the paper report and
the gate — on every live session's closed trades and mark-to-market equity (scope ``live``: the account's whole
live history, one curve in time order, from the first live session's starting equity) or on one session's
(scope = its id). ``record_snapshots`` stores the ``live`` snapshot and the current session's in
``metrics_snapshots``; the scheduled flow (flows/metrics.py) calls it and publishes the numbers. The reads are
``core.store.trading`` and ``core.store.snapshots``.
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
from core.store import snapshots as snapshots_repo
from core.store import trading as trading_repo

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
    session_id = None if scope == LIVE_SCOPE else scope
    sessions = trading_repo.live_sessions(store, session_id)
    if not sessions.height:
        return None
    trades = trading_repo.live_trades(store, session_id)
    equity = trading_repo.live_equity(store, session_id)
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
    running = trading_repo.running_live_session(store)
    if running is not None:
        rows.append(compute_snapshot(store, running, when, period=period, flow_run_id=flow_run_id))
    store.insert_rows("metrics_snapshots", rows)
    return rows


def latest_snapshot(store: Store, scope: str = LIVE_SCOPE) -> dict[str, Any] | None:
    """The newest stored snapshot of ``scope`` (for the dashboard and the CLI), or None."""
    return snapshots_repo.latest_snapshot(store, scope)


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
