"""Every gate attempt is kept with its evidence and listed (SPEC R1.7), through the `rampart` command: `rampart paper`
records what it was judged on, `rampart gate history` shows failed and passed attempts, and `rampart gate` answers
as go-live would — a synthetic gate rehearses on the sandbox but is refused for real money, and so is a gate that
passed on real candles only under thresholds relaxed for that one run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import load_settings
from core.gate import candle_evidence
from core.store import Store
from core.store.gates import gate_attempts
from core.validation import load_market

RELAXED = {"RAMPART_GATE__MIN_SHARPE": "-10", "RAMPART_GATE__MIN_WIN_RATE": "0", "RAMPART_GATE__MIN_TRADES": "1",
           "RAMPART_GATE__MAX_DRAWDOWN": "1"}
STRICT = {"RAMPART_GATE__MIN_TRADES": "100000"}


def rampart(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.mark.req("R1.7")
def test_history_lists_failed_and_passed_attempts_and_a_synthetic_pass_is_only_enough_to_rehearse(
    tmp_path: Path
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert rampart("paper", "--seed", "7", "--days", "60", *data, env=STRICT)[0] == 3
    assert rampart("paper", "--seed", "5", "--days", "60", *data, env=RELAXED)[0] == 0

    code, out = rampart("gate", "history", *data)
    assert code == 0, out
    assert re.search(r"Gate history for config [0-9a-f]{8}: passed 1 of 2 attempts", out), out
    failed, passed = (line for line in out.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d  (FAILED|PASSED)",
                                                                     line))
    assert "FAILED" in failed and "PASSED" in passed and "not real-money evidence: synthetic data" in passed
    assert "synthetic seed 7: BTCUSDT,ETHUSDT" in out and "synthetic seed 5: BTCUSDT,ETHUSDT" in out
    assert "TOO_FEW_TRADES" in out and "judged at min_trades 1 (in force now: 30)" in out
    listed = json.loads(rampart("gate", "history", "--json", *data)[1])
    assert [a["passed"] for a in listed["attempts"]] == [False, True] and listed["passed"] == 1
    assert [a["evidence"] for a in listed["attempts"]] == ["synthetic", "synthetic"]
    assert all(a["real_data"] is False and not a["real_money_evidence"] for a in listed["attempts"])

    code, out = rampart("gate", "--exchange", "binance", *data)
    assert code == 3 and "Go-live on binance (real money)" in out and "REFUSED" in out
    assert "GATE_NOT_REAL_DATA:" in out and "on synthetic data" in out and "1 of 2" not in out
    code, out = rampart("gate", "--exchange", "sandbox", *data)
    assert code == 0 and "GATE_OK:" in out  # the local sandbox rehearses on it

    code, out = rampart("gate", "history", "--config", listed["config_hash"][:6], "--data-dir", str(tmp_path))
    assert code == 0 and "passed 1 of 2 attempts" in out
    code, out = rampart("gate", "history", "--config", "ffffffff", *data)
    assert code == 1 and "matches 0 config hashes" in out


@pytest.mark.req("R1.7")
def test_a_gate_on_real_candles_passed_only_under_relaxed_thresholds_is_refused_for_real_money(
    tmp_path: Path, market_data_dir: Path
) -> None:
    files = [str(market_data_dir / f"{s}_USDT-1h.feather") for s in ("BTC", "ETH")]
    data = ["--data-dir", str(tmp_path)]
    code, out = rampart("paper", "--source", files[0], "--source", files[1], "--days", "60", *data, env=RELAXED)
    assert code == 0, out
    (record,) = gate_attempts(Store(tmp_path / "rampart.duckdb"))
    assert (record["evidence"], record["real_data"], record["days"]) == ("replay", True, 60.0)
    assert record["data_source"] == "BTC_USDT-1h.feather, ETH_USDT-1h.feather"
    assert record["thresholds"]["min_trades"] == 1 and record["data"]["files"] == files
    settings = load_settings(data_dir=tmp_path)
    expected = candle_evidence(load_market(files, settings, days=60), files, days=60)
    assert record["data_hash"] == expected.content_hash
    assert (record["window_start"], record["window_end"]) == (expected.start, expected.end)
    assert record["trades"] < 30, "60 days of hourly mean_reversion make fewer than the 30 trades R1.4 needs"

    code, out = rampart("gate", "--exchange", "binance", *data)
    assert code == 3 and "GATE_THRESHOLDS:" in out and "passed only under relaxed thresholds" in out, out
    assert re.search(r"trades \d+ passed at >= 1 \(recorded\) but the threshold in force is >= 30", out), out
    code, out = rampart("gate", "--exchange", "binance", *data, env=RELAXED)
    assert code == 0 and "GATE_OK:" in out  # the same thresholds in force at go-live: judged at them


@pytest.mark.req("R1.7")
def test_the_content_hash_names_the_candles_whatever_the_file_format(tmp_path: Path, market_data_dir: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    feathers = [market_data_dir / f"{s}_USDT-1h.feather" for s in ("BTC", "ETH")]
    csvs = []
    for path in feathers:
        csv = tmp_path / path.with_suffix(".csv").name
        pl.read_ipc(path).write_csv(csv)
        csvs.append(csv)
    a = candle_evidence(load_market(feathers, settings, days=60), feathers, days=60)
    b = candle_evidence(load_market(csvs, settings, days=60), csvs, days=60)
    assert a.content_hash == b.content_hash and a.source != b.source and a.real and a.kind == "replay"
    c = candle_evidence(load_market(feathers, settings, days=61), feathers, days=61)
    assert c.content_hash != a.content_hash and c.days == pytest.approx(61.0) and c.start < a.start
    synthetic = candle_evidence(load_market("synthetic", settings, days=30, seed=5), "synthetic", seed=5)
    assert (synthetic.kind, synthetic.real, synthetic.source) == ("synthetic", False, "seed 5")
