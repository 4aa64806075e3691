"""Thin Prefect task adapters for the 15-minute metrics (R3.3): compute and store the snapshots, publish them."""

from __future__ import annotations

import math
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from core.config import load_settings
from core.monitoring.snapshots import record_snapshots, snapshot_table
from core.store import Store

ARTIFACT_KEY = "rampart-metrics"


@task(cache_policy=NO_CACHE, retries=0)
def record_snapshots_task(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Recompute the metric set from DuckDB and store it. Not retried: the next scheduled run recomputes all."""
    settings = load_settings(**overrides)
    run_id = flow_run.get_id()
    rows = record_snapshots(Store(settings.db_path), period=settings.gate.period, flow_run_id=run_id)
    logger = get_run_logger()
    for row in rows:
        logger.info("metrics %s: %s trades, win rate %s, profit factor %s, max drawdown %s", row["scope"],
                    row.get("trades"), _pct(row.get("win_rate")), row.get("profit_factor"),
                    _pct(row.get("max_drawdown")))
    return rows


@task(cache_policy=NO_CACHE)
def publish_snapshots_task(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers as a table artifact (key ``rampart-metrics``); returns the 'live' line."""
    table = snapshot_table(rows)
    create_table_artifact(table=table, key=ARTIFACT_KEY,
                          description="Live win rate, profit factor, drawdown, Sharpe, Sortino, net P&L (R3.3)")
    return table[0] if table else {}


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, float) and math.isfinite(value) else str(value)
