"""The daily report as CSV: ``trades.csv`` (one row per trade, reasons in words included) and ``metrics.csv``
(one row per metric and scope: day, cumulative, backtest, paper). Both load in DuckDB and polars as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from core.reporting.daily.builder import DailyReport
from core.reporting.daily.files import atomic_write

TRADE_COLUMNS: dict[str, Any] = {
    "date": pl.String, "trade_id": pl.String, "session_id": pl.String, "symbol": pl.String, "source": pl.String,
    "entry_time": pl.String, "exit_time": pl.String, "minutes": pl.Float64, "entry_price": pl.Float64,
    "exit_price": pl.Float64, "qty": pl.Float64, "notional": pl.Float64, "fees": pl.Float64,
    "slippage_cost": pl.Float64, "gross_pnl": pl.Float64, "net_pnl": pl.Float64, "return_pct": pl.Float64,
    "exit_kind": pl.String, "entry_text": pl.String, "exit_text": pl.String, "entry_reason": pl.String,
    "exit_reason": pl.String, "backtest_match": pl.String, "backtest_trade_id": pl.String,
    "backtest_entry_price": pl.Float64, "backtest_exit_price": pl.Float64, "backtest_net_pnl": pl.Float64,
}
METRIC_COLUMNS: dict[str, Any] = {"date": pl.String, "scope": pl.String, "metric": pl.String, "value": pl.Float64}


def trades_frame(report: DailyReport) -> pl.DataFrame:
    rows = []
    for t in report.trades:
        twin = t.get("backtest") or {}
        row = {k: t.get(k) for k in TRADE_COLUMNS if k in t}
        row.update({"date": report.doc["date"], "backtest_trade_id": twin.get("backtest_trade_id"),
                    "backtest_entry_price": twin.get("backtest_entry_price"),
                    "backtest_exit_price": twin.get("backtest_exit_price"),
                    "backtest_net_pnl": twin.get("backtest_net_pnl")})
        rows.append(row)
    return pl.DataFrame(rows, schema=TRADE_COLUMNS, orient="row") if rows else pl.DataFrame(schema=TRADE_COLUMNS)


def metrics_frame(report: DailyReport) -> pl.DataFrame:
    """Numeric metrics in long form: (date, scope, metric, value); undefined values are empty."""
    doc = report.doc
    scopes = {"day": doc["metrics"]["day"], "cumulative": doc["metrics"]["cumulative"],
              "backtest": doc["comparison"]["backtest"]["metrics"], "paper": doc["comparison"]["paper"]["metrics"]}
    rows = []
    for scope, values in scopes.items():
        for name, value in (values or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float | type(None)):
                continue
            rows.append({"date": doc["date"], "scope": scope, "metric": name,
                         "value": None if value is None else float(value)})
    att = (doc["comparison"]["backtest"].get("attribution") or {}).get("components") or {}
    rows += [{"date": doc["date"], "scope": "attribution", "metric": k, "value": float(v)} for k, v in att.items()]
    return pl.DataFrame(rows, schema=METRIC_COLUMNS) if rows else pl.DataFrame(schema=METRIC_COLUMNS)


def write_csv(report: DailyReport, folder: Path) -> dict[str, Path]:
    """``trades.csv`` and ``metrics.csv`` in ``folder``, each written atomically."""
    return {"trades_csv": atomic_write(folder / "trades.csv", lambda p: trades_frame(report).write_csv(p)),
            "metrics_csv": atomic_write(folder / "metrics.csv", lambda p: metrics_frame(report).write_csv(p))}


__all__ = ["metrics_frame", "trades_frame", "write_csv"]
