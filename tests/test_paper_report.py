"""The paper-cycle report (SPEC R1.3): JSON and CSV files and the terminal verdict table."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from core.config.gate import GateConfig
from core.gate import evaluate_gate
from core.metrics import compute_metrics
from core.reporting.paper_report import format_verdict, write_paper_report

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HASH = "3f2a9c1e" + "f" * 56
Report = tuple[dict[str, Path], dict[str, Any]]  # written paths, and the metrics/verdict behind them


def _session_inputs() -> tuple[pl.DataFrame, pl.DataFrame]:
    equity = pl.DataFrame(
        {
            "ts": [T0 + timedelta(hours=6 * i) for i in range(8)],
            "equity": [1000.0, 1010.0, 995.0, 1020.0, 1030.0, 1025.0, 1040.0, 1050.0],
            "exposure": [0.0, 0.5, 0.5, 0.0, 0.3, 0.3, 0.0, 0.0],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
    trades = pl.DataFrame(
        {
            "symbol": ["BTCUSDT", "ETHUSDT", "BTCUSDT"],
            "entry_ts": [T0, T0 + timedelta(hours=6), T0 + timedelta(hours=24)],
            "entry_price": [42_000.0, 2_300.0, 43_000.0],
            "qty": [0.01, 0.2, 0.01],
            "net_pnl": [30.0, -12.5, 32.5],
            "fees": [0.84, 0.92, 0.86],
            "exit_reason": ["target", "stop", "signal: sma cross down"],
            "tags": [["a"], [], ["b", "c"]],  # nested values must still reach the CSV
        }
    )
    return equity, trades


@pytest.fixture
def report(tmp_path: Path) -> Report:
    equity, trades = _session_inputs()
    metrics = compute_metrics(equity, trades, starting_equity=1000.0)
    verdict = evaluate_gate(metrics, ["order rejected: -2010"], GateConfig(), HASH)
    session = {"id": "sess-1", "strategy": "sma_cross", "mode": "paper", "started_at": T0}
    paths = write_paper_report(
        tmp_path / "out",
        session=session,
        metrics=metrics,
        verdict=verdict,
        trades=trades,
        equity=equity,
        errors=["order rejected: -2010"],
    )
    return paths, {"metrics": metrics, "verdict": verdict}


@pytest.mark.req("R1.3")
def test_report_files_exist_and_no_temp_files_remain(report: Report) -> None:
    paths, _ = report
    assert {p.name for p in paths.values()} == {"report.json", "trades.csv", "metrics.csv", "equity.csv", "blocked.csv",
                                                "report.html"}
    assert all(p.is_file() for p in paths.values())
    assert sorted(p.name for p in paths["json"].parent.iterdir()) == sorted(p.name for p in paths.values())


@pytest.mark.req("R1.3")
@pytest.mark.req("R1.4")
@pytest.mark.req("R1.5")
def test_report_json_has_metrics_gate_and_trades(report: Report) -> None:
    paths, ctx = report
    doc = json.loads(paths["json"].read_text())
    assert doc["schema_version"] == 1
    assert doc["session"]["id"] == "sess-1" and doc["session"]["started_at"].startswith("2024-01-01T00:00")
    m = doc["metrics"]
    for key in (
        "trades",
        "win_rate",
        "sharpe",
        "sortino",
        "max_drawdown",
        "profit_factor",
        "expectancy",
        "exposure",
        "fees",
        "net_pnl",
    ):
        assert key in m
    assert m["trades"] == 3 and m["win_rate"] == pytest.approx(2 / 3)
    assert m["net_pnl"] == pytest.approx(50.0) and m["fees"] == pytest.approx(2.62)
    assert m["profit_factor"] == pytest.approx(62.5 / 12.5)
    gate = doc["gate"]
    assert gate["passed"] is False and gate["config_hash"] == HASH
    assert gate["thresholds"]["min_win_rate"] == 0.45
    assert "SESSION_ERROR: order rejected: -2010" in gate["reasons"]
    assert "TOO_FEW_TRADES: 3 < 30" in gate["reasons"]
    assert [c["name"] for c in gate["checks"]] == [c.name for c in ctx["verdict"].checks]
    assert doc["errors"] == ["order rejected: -2010"]
    assert [t["exit_reason"] for t in doc["trades"]] == ["target", "stop", "signal: sma cross down"]


@pytest.mark.req("R1.3")
def test_csvs_load_in_polars_and_duckdb(report: Report) -> None:
    paths, ctx = report
    trades = pl.read_csv(paths["trades"])
    assert trades.height == 3 and trades["net_pnl"].sum() == pytest.approx(50.0)
    assert "exit_reason" in trades.columns and json.loads(trades["tags"][2]) == ["b", "c"]
    metrics = pl.read_csv(paths["metrics"])
    assert metrics.columns == ["metric", "value"]
    values = dict(zip(metrics["metric"], metrics["value"], strict=True))
    assert values["sharpe"] == pytest.approx(ctx["metrics"].sharpe)
    assert values["trades"] == 3
    equity = pl.read_csv(paths["equity"], try_parse_dates=True)
    assert equity.columns == ["ts", "equity"] and equity.height == 8
    with duckdb.connect() as con:

        def one(sql: str) -> tuple[Any, ...]:
            row = con.execute(sql).fetchone()
            assert row is not None
            return row

        assert one(f"select count(*), sum(net_pnl) from read_csv('{paths['trades']}')") == (3, 50.0)
        dd = one(f"select value from read_csv('{paths['metrics']}') where metric = 'max_drawdown'")[0]
        assert dd == pytest.approx(ctx["metrics"].max_drawdown)
        last = one(f"select max(ts), last(equity order by ts) from read_csv('{paths['equity']}')")
        assert last == (T0 + timedelta(hours=42), 1050.0)


@pytest.mark.req("R1.3")
def test_rewriting_a_report_replaces_files_whole(tmp_path: Path) -> None:
    equity, trades = _session_inputs()
    metrics = compute_metrics(equity, trades, starting_equity=1000.0)
    verdict = evaluate_gate(metrics, [], GateConfig(min_trades=1), HASH)
    kwargs: dict[str, Any] = {"session": {"id": "s"}, "metrics": metrics, "verdict": verdict}
    kwargs |= {"equity": equity, "errors": []}
    write_paper_report(tmp_path, trades=trades, **kwargs)
    paths = write_paper_report(tmp_path, trades=trades.head(1), **kwargs)
    assert pl.read_csv(paths["trades"]).height == 1
    assert len(json.loads(paths["json"].read_text())["trades"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


@pytest.mark.req("R1.3")
@pytest.mark.req("R1.4")
def test_verdict_table_shows_verdict_thresholds_and_reasons(report: Report) -> None:
    _, ctx = report
    text = format_verdict(ctx["metrics"], ctx["verdict"])
    lines = text.splitlines()
    assert lines[0].startswith("Paper validation: FAILED") and "config 3f2a9c1e" in lines[0]
    for threshold in ("> 45.0 %", "> 0.50", "< 15.0 %", ">= 30", "== 0"):
        assert threshold in text
    assert "66.7 %" in text  # win rate value
    trades_row = next(line for line in lines if line.strip().startswith("trades"))
    assert trades_row.rstrip().endswith("FAIL")
    assert "Net P&L +50.00 USDT (+5.0 %)" in text and "Fees 2.62" in text
    assert "  - TOO_FEW_TRADES: 3 < 30" in lines and "  - SESSION_ERROR: order rejected: -2010" in lines


@pytest.mark.req("R1.3")
@pytest.mark.req("R1.4")
def test_verdict_table_when_passed() -> None:
    equity, trades = _session_inputs()
    metrics = compute_metrics(equity, trades, starting_equity=1000.0)
    verdict = evaluate_gate(metrics, [], GateConfig(min_trades=3, min_sharpe=-10, max_drawdown=0.5), HASH)
    text = format_verdict(metrics, verdict, quote="USDC")
    assert verdict.passed and text.startswith("Paper validation: PASSED")
    assert "FAIL" not in text and "Reasons" not in text and "USDC" in text
    assert ">= 3 " in text and "> -10.00" in text and not math.isnan(metrics.exposure)
