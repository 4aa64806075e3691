"""The `rampart` command: verdicts and exit codes, and bad input refused with one line, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from tests.helpers import candles, flat

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_nothing_written(data_dir: Path) -> None:
    written = [p for p in data_dir.rglob("*")] if data_dir.exists() else []
    assert written == [], f"bad input must write nothing, found {written}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["paper", "--symbols", "DOGEUSDT"], "unknown symbol 'DOGEUSDT'"),
        (["paper", "--symbols", "SOLUSDT"], "not on the allow-list"),
        (["paper", "--symbols", "BTCUSDT,BTCUSDT"], "duplicate symbol"),
        (["paper", "--days", "-3"], "--days must be a positive number"),
        (["paper", "--source", "/nonexistent/BTC_USDT-5m.feather"], "candle file not found"),
        (["paper", "--strategy", "martingale"], "unknown strategy 'martingale'"),
        (["paper", "--param", "fast=abc"], "fast"),
        (["paper", "--param", "nonsense"], "NAME=VALUE"),
        (["paper", "--timeframe", "7m"], "unknown timeframe '7m'"),
        (["backtest", "--days", "0"], "--days must be a positive number"),
        (["paper", "--seed", "x"], "'--seed'"),
        (["paper", "--bogus"], "No such option"),
    ],
)
@pytest.mark.req("R2.2")
def test_bad_cli_input_is_one_line_that_says_what_to_fix(
    args: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    code, _, err = run_cli([*args, "--data-dir", str(data_dir)], capsys)
    assert code in (1, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert_nothing_written(data_dir)


@pytest.mark.req("R1.4")
def test_out_of_range_threshold_in_settings_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMPART_GATE__MIN_WIN_RATE", "1.5")
    code, _, err = run_cli(["paper", "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 1
    assert "RAMPART_GATE__MIN_WIN_RATE" in err and "1.5" in err and len(err.strip().splitlines()) == 1
    assert_nothing_written(tmp_path / "d")


@pytest.mark.req("R1.5")
def test_malformed_candle_file_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "BTCUSDT-1h.csv"
    bad.write_text("when,price\n2024-01-01,1\n")
    eth = tmp_path / "ETHUSDT-1h.csv"
    candles(flat(100, 10), "ETHUSDT").frame.write_csv(eth)
    code, _, err = run_cli(["paper", "--source", f"{bad},{eth}", "--timeframe", "1h",
                            "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert_nothing_written(tmp_path / "d")


@pytest.mark.req("R1.3")
@pytest.mark.req("R1.4")
def test_paper_prints_the_verdict_table_and_exits_3_when_the_gate_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a flat market gives no trades: the gate must fail on too few trades, with exit code 3
    for sym in ("BTCUSDT", "ETHUSDT"):
        candles(flat(100, 300), sym).frame.write_parquet(tmp_path / f"{sym}-1h.parquet")
    code, out, _ = run_cli(["paper", "--source", f"{tmp_path}/BTCUSDT-1h.parquet",
                            "--source", f"{tmp_path}/ETHUSDT-1h.parquet", "--timeframe", "1h",
                            "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 3
    assert "Paper validation: FAILED" in out and "TOO_FEW_TRADES: 0 < 30" in out
    assert "win rate" in out and "sharpe" in out and "max drawdown" in out
    assert (tmp_path / "d" / "rampart.duckdb").exists()
    report = next((tmp_path / "d" / "reports" / "paper").glob("*/report.json"))
    assert str(report) in out


@pytest.mark.req("R1.1")
def test_paper_mode_never_builds_a_live_broker_nor_reads_credentials(tmp_path: Path) -> None:
    """A separate interpreter where importing ccxt raises: paper validation must still complete, and the
    canary credentials in the environment must appear in no output, database or report."""
    canary_key, canary_secret = "CANARYKEY0123456789abcdef", "CANARYSECRETzyxwvut987654"
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ccxt' or name.startswith('ccxt.'):\n"
        "            raise ImportError('paper mode imported ccxt: a live broker was built')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "RAMPART_API_KEY": canary_key, "RAMPART_API_SECRET": canary_secret,
           "BINANCE_API_KEY": canary_key, "BINANCE_SECRET": canary_secret}
    data_dir = tmp_path / "d"
    proc = subprocess.run([sys.executable, "-c", script, "paper", "--days", "30", "--data-dir", str(data_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 3), proc.stderr
    assert "ccxt" not in proc.stderr
    outputs = [proc.stdout, proc.stderr] + [p.read_bytes().decode("latin-1") for p in data_dir.rglob("*")
                                            if p.is_file()]
    assert (data_dir / "rampart.duckdb").exists()
    for blob in outputs:
        assert canary_key not in blob and canary_secret not in blob


@pytest.mark.req("R1.2")
def test_backtest_stores_a_backtest_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["backtest", "--days", "20", "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 0 and "Backtest" in out
    import duckdb

    con = duckdb.connect(str(tmp_path / "d" / "rampart.duckdb"), read_only=True)
    modes = con.execute("select mode, status from sessions").fetchall()
    gates = con.execute("select count(*) from gate_results").fetchone()
    eq = con.execute("select count(*) from equity").fetchone()
    con.close()
    assert modes == [("backtest", "completed")] and gates == (0,) and eq is not None and eq[0] > 0


# --- settings from the environment win over CLI defaults; list settings in the comma form; one line per bad value --
@pytest.mark.req("R2.2")
def test_symbols_from_the_environment_in_the_comma_form_are_what_paper_trades(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from core.store import Store

    monkeypatch.setenv("RAMPART_MARKET__SYMBOLS", "BTCUSDT")  # the README's form; no --symbols given
    monkeypatch.setenv("RAMPART_STRATEGY__NAME", "sma_cross")
    monkeypatch.setenv("RAMPART_STRATEGY__PARAMS", '{"fast": 5, "slow": 20}')
    code, out, err = run_cli(["paper", "--days", "20", "--json", "--data-dir", str(tmp_path / "d")], capsys)
    assert code in (0, 3), err
    sid = json.loads(out)["session_id"]
    store = Store(tmp_path / "d" / "rampart.duckdb")
    assert store.query("SELECT symbols FROM sessions WHERE id = ?", [sid]).item().to_list() == ["BTCUSDT"]
    traded = store.query("SELECT DISTINCT symbol FROM decisions WHERE session_id = ? AND symbol <> '*'",
                         [sid])["symbol"].to_list()  # '*': the risk controls' account-wide actions
    assert traded == ["BTCUSDT"]
    # an explicit option still wins over the environment
    code, out, err = run_cli(["paper", "--days", "20", "--json", "--symbols", "ETHUSDT", "--data-dir",
                              str(tmp_path / "d")], capsys)
    sid = json.loads(out)["session_id"]
    assert store.query("SELECT symbols FROM sessions WHERE id = ?", [sid]).item().to_list() == ["ETHUSDT"]


@pytest.mark.parametrize(("variable", "value"), [
    ("RAMPART_MARKET__SYMBOLS", "@@"),
    ("RAMPART_MARKET__SYMBOLS", '["BTCUSDT"'),
    ("RAMPART_OPERATORS", "x"),
    ("RAMPART_SCALING__LADDER", "0.001,0.02"),
    ("RAMPART_STRATEGY__PARAMS", "fast=3"),
    ("RAMPART_MARKET", "BTCUSDT"),
    ("RAMPART_GATE__MIN_TRADES", "many"),
])
@pytest.mark.req("R2.2")
def test_a_bad_setting_json_or_not_exits_1_with_one_line_naming_the_variable(
    variable: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    code, _, err = run_cli(["paper", "--data-dir", str(tmp_path / "d")], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and variable in lines[0], err
    assert_nothing_written(tmp_path / "d")


@pytest.mark.req("R8.2")
def test_a_key_put_where_settings_go_is_refused_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMPART_EXCHANGE__API_KEY", "CANARYKEYinsettings0123456789")
    code, _, err = run_cli(["paper", "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 1 and "RAMPART_EXCHANGE__API_KEY" in err and "RAMPART_API_KEY" in err
    assert "CANARYKEYinsettings" not in err
