"""Paper validation end to end: real candles, corrupted candles, the config hash and go-live."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from core.build import config_hash
from core.config import load_settings
from core.gate import check_go_live
from core.store import Store
from core.validation import run_paper_validation


def real_files(market_data_dir: Path) -> list[Path]:
    return [market_data_dir / "BTC_USDT-5m.feather", market_data_dir / "ETH_USDT-5m.feather"]


@pytest.mark.req("R1.2")
@pytest.mark.req("R1.3")
@pytest.mark.req("R1.5")
def test_paper_validation_on_real_5m_candles_runs_end_to_end(market_data_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, market={"timeframe": "5m"})
    out = run_paper_validation(settings, [str(p) for p in real_files(market_data_dir)])
    assert out.problems == [] and out.result is not None and out.result.errors == []
    assert out.metrics.trades > 0 and out.metrics.periods > 200  # ~268 daily returns in 2024-01-01 … 09-24
    store = Store(settings.db_path)
    gate = store.latest_gate(out.config_hash)
    assert gate is not None and gate["session_id"] == out.session_id
    assert gate["trades"] == out.metrics.trades and gate["sharpe"] == pytest.approx(out.metrics.sharpe)
    sessions = store.query("select mode, status, strategy, config_hash from sessions")
    assert sessions.rows() == [("paper", "completed", settings.strategy.name, out.config_hash)]
    counts = store.query("select (select count(*) from trades) t, (select count(*) from equity) e, "
                         "(select count(*) from fills) f, (select count(*) from decisions) d").row(0)
    assert counts[0] == out.metrics.trades and counts[1] == 76_948 and counts[2] >= 2 * counts[0] and counts[3] > 0
    # trades are tagged with mode and session and carry reasons in words
    trades = store.query("select mode, session_id, entry_reason, exit_reason from trades")
    assert set(trades["mode"]) == {"paper"} and set(trades["session_id"]) == {out.session_id}
    assert trades["entry_reason"].str.len_chars().min() > 10 and trades["exit_reason"].str.len_chars().min() > 5
    assert out.report_paths["json"].exists() and out.report_paths["trades"].exists()


@pytest.mark.req("R1.5")
def test_corrupted_candles_fail_the_gate_with_each_problem_listed(market_data_dir: Path, tmp_path: Path) -> None:
    btc = pl.read_ipc(market_data_dir / "BTC_USDT-5m.feather")
    btc = btc.with_row_index("row")
    gap_row, bad_row, nan_row = 1000, 2000, 3000
    ts_bad = btc["date"][bad_row]
    btc = btc.with_columns(
        pl.when(pl.col("row") == bad_row).then(pl.col("low") - 500).otherwise(pl.col("high")).alias("high"),
        pl.when(pl.col("row") == nan_row).then(float("nan")).otherwise(pl.col("close")).alias("close"),
    ).filter(pl.col("row") != gap_row).drop("row")
    copy = tmp_path / "market"
    copy.mkdir()
    btc.write_ipc(copy / "BTC_USDT-5m.feather")
    shutil.copy(market_data_dir / "ETH_USDT-5m.feather", copy / "ETH_USDT-5m.feather")
    settings = load_settings(data_dir=tmp_path / "d", market={"timeframe": "5m"})
    out = run_paper_validation(settings, [str(p) for p in real_files(copy)])
    assert not out.verdict.passed and out.result is None
    checks = sorted(p.check for p in out.problems)
    assert checks == ["high_ge_open_close", "no_gaps", "not_null"]
    by_check = {p.check: p for p in out.problems}
    assert by_check["high_ge_open_close"].timestamps[0].startswith(ts_bad.strftime("%Y-%m-%dT%H:%M"))
    reasons = " ".join(out.verdict.reasons)
    assert reasons.count("DATA_QUALITY") == 3 and "BTCUSDT" in reasons
    stored = Store(settings.db_path)
    gate = stored.latest_gate(out.config_hash)
    assert gate is not None and gate["passed"] is False
    assert sum("DATA_QUALITY" in r for r in gate["reasons"]) == 3
    assert stored.query("select status from sessions").item() == "failed"


@pytest.mark.req("R1.4")
@pytest.mark.req("R1.5")
def test_changing_a_strategy_parameter_invalidates_the_gate(tmp_path: Path) -> None:
    lenient = {"min_win_rate": 0.0, "min_sharpe": -10.0, "max_drawdown": 1.0, "min_trades": 1}
    base = load_settings(data_dir=tmp_path, gate=lenient, strategy={"name": "sma_cross", "params": {"fast": 10}},
                         market={"timeframe": "1h"})
    out = run_paper_validation(base, "synthetic", days=20, seed=3)
    assert out.verdict.passed, out.verdict.reasons
    store = Store(base.db_path)
    now = datetime.now(UTC)
    ok, why = check_go_live(store.latest_gate(config_hash(base)), config_hash(base), now, base.gate)
    assert ok, why
    changed = load_settings(data_dir=tmp_path, gate=lenient, strategy={"name": "sma_cross", "params": {"fast": 11}},
                            market={"timeframe": "1h"})
    assert config_hash(changed) != config_hash(base)
    ok, why = check_go_live(store.latest_gate(config_hash(changed)), config_hash(changed), now, changed.gate)
    assert not ok and why.startswith("NO_GATE")
    # and a passed gate goes stale after max_age_days
    later = now + timedelta(days=base.gate.max_age_days + 1)
    ok, why = check_go_live(store.latest_gate(config_hash(base)), config_hash(base), later, base.gate)
    assert not ok and why.startswith("GATE_EXPIRED")


@pytest.mark.req("R1.3")
def test_a_long_paper_run_reports_its_progress_to_the_end(tmp_path: Path) -> None:
    from core.engine import PROGRESS_CHUNK

    seen: list[tuple[int, int]] = []
    settings = load_settings(data_dir=tmp_path, market={"timeframe": "5m"})
    out = run_paper_validation(settings, "synthetic", days=200, seed=3, progress=lambda d, t: seen.append((d, t)))
    bars = out.result.ts if out.result is not None else []
    assert len(seen) == -(-len(bars) // PROGRESS_CHUNK) >= 2  # a report every chunk of bars
    assert seen[-1] == (len(bars), len(bars)) and all(a[0] < b[0] for a, b in itertools.pairwise(seen))
