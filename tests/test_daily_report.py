"""The daily report (issue 6, SPEC R7): a sandbox day traded live through ccxt against its backtest and paper
baselines, trade-by-trade reasons in words (tightened stop, emergency stop), suggestions, and the JSON/CSV/PDF
exports; days without trades or without a session; the CLI and the Prefect flow.

The acceptance day: a manual-clock sandbox over seeded synthetic 1-minute candles with a 40 bps spread (the live
fill model is deliberately worse than the 2 bps the backtest assumes), the real ``sma_cross`` strategy stepped bar
by bar, risk events along the way (correlation refusals, a losing-streak breaker, an operator-style halt at the end).
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
import pytest

from core.config import Settings, load_settings
from core.execution.ccxt_client import make_binance
from core.live.session import LiveOptions, LiveSession
from core.market import generate
from core.metrics import compute_metrics
from core.node import open_live
from core.reporting.daily.builder import build_daily_report
from core.reporting.daily.candles import default_source
from core.reporting.daily.export_json import SCHEMA_PATH, validate
from core.reporting.daily.publish import generate_daily_report
from core.reporting.daily.reasons import TradeContext, entry_text, exit_text
from core.sandbox.config import SandboxConfig
from core.sandbox.server import SandboxServer
from core.store import Store
from core.validation import run_paper_validation
from core.venue import sandbox_at
from tests.sandbox_rig import BTC, ETH, Rig, enter, sandbox, settings_for

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "daily-report"
DAY = date(2024, 1, 1)
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.02}}
START_BAR, BARS = 100, 24  # the session trades 01:40-02:03 UTC of 2024-01-01: three round trips


def live_settings(data_dir: Path) -> Settings:
    # three losing round trips in a row trip the losing-streak breaker (live and in the backtest alike)
    return load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"},
                         breakers={"consecutive_losses": 3})


def paper_gate(settings: Settings) -> None:
    """A real paper validation of this config (its metrics are the paper baseline), recorded as passed."""
    out = run_paper_validation(settings, "synthetic", days=1, seed=3)
    record = out.verdict.to_record(out.session_id, settings.strategy.name, out.metrics)
    Store(settings.db_path).record_gate({**record, "passed": True, "reasons": []})


def trade_a_day(settings: Settings, server: SandboxServer) -> LiveSession:
    """Step the live session bar by bar on the manual clock, then halt entries (as suspicious-activity detection
    does) after the last bar, so the state change is a risk event that changes no trade."""
    session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05))
    for _ in range(BARS):
        httpx.post(f"{server.url}/sandbox/advance", json={"ms": 60_000}).raise_for_status()
        assert session.step(), "the session saw no new closed bar"
    session.halt_entries("SUSPICIOUS_ORDER", "an order nobody placed appeared on the account", {"order": "x1"})
    session.step()  # applied at this poll: SAFE_MODE, recorded
    stopped = threading.Event()
    stopped.set()
    session.run(stopped)
    return session


def stored_day(settings: Settings) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    store = Store(settings.db_path)
    trades = store.query("select * from trades where mode = 'live' and exit_time >= '2024-01-01' and exit_time < "
                         "'2024-01-02' order by exit_time")
    equity = store.query("select e.ts, e.equity, e.exposure from equity e join sessions s on s.id = e.session_id "
                         "where s.mode = 'live' and e.ts >= '2024-01-01' and e.ts < '2024-01-02' order by e.ts")
    start = store.query("select starting_equity from sessions where mode = 'live'").item()  # one live session
    return trades, equity, float(start)


def pdf_pages(pdf: Path, name: str) -> list[Path]:
    """Render every page at 60 dpi into test-artifacts/daily-report/ and return the PNGs."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(ARTIFACTS / name)], check=True)
    return sorted(ARTIFACTS.glob(f"{name}-*.png"))


def not_blank(png: Path) -> float:
    from PIL import Image, ImageStat

    with Image.open(png) as im:
        return float(ImageStat.Stat(im.convert("L")).stddev[0])


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


# --- the acceptance day ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox_day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One live day on the sandbox (40 bps spread), reported with candles fetched from the exchange's klines."""
    mp = pytest.MonkeyPatch()
    from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET

    mp.setenv("RAMPART_API_KEY", DEMO_API_KEY)
    mp.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
    data_dir = tmp_path_factory.mktemp("sandbox-day")
    settings = live_settings(data_dir)
    paper_gate(settings)
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 0.5, 11)
    config = SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][START_BAR], spread_bps=40)
    try:
        with SandboxServer(config) as server:
            session = trade_a_day(settings, server)
            # no DATA_DIR/candles: the chain falls through to the exchange's public klines (no keys)
            source = default_source(settings.data_dir, [], make_binance(base_url=server.url))
            run = generate_daily_report(settings, DAY, candles=source)
    finally:
        mp.undo()
    return {"settings": settings, "run": run, "doc": run.report.doc, "session": session, "sets": sets}


@pytest.mark.req("R7.1")
def test_the_day_and_cumulative_metrics_equal_the_metric_functions_on_the_stored_rows(
    sandbox_day: dict[str, Any]
) -> None:
    doc, settings = sandbox_day["doc"], sandbox_day["settings"]
    trades, equity, start = stored_day(settings)
    assert trades.height >= 3 and doc["status"] == "traded"
    expected = compute_metrics(equity, trades, starting_equity=start, period="1h").to_dict()
    day = doc["metrics"]["day"]
    for key in ("trades", "wins", "win_rate", "sharpe", "sortino", "max_drawdown", "profit_factor", "expectancy",
                "exposure", "time_in_market", "fees", "net_pnl", "final_equity"):
        assert day[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    cumulative = compute_metrics(equity, trades, starting_equity=start, period="1d").to_dict()
    for key in ("trades", "win_rate", "max_drawdown", "net_pnl", "fees"):
        assert doc["metrics"]["cumulative"][key] == pytest.approx(cumulative[key], rel=1e-9, abs=1e-12), key
    # the costs on top of R1.3: fees and slippage against the decision prices, ~20 bps a fill (half the spread)
    assert day["fees"] == pytest.approx(float(trades["fees"].sum()))
    assert 15 < day["slippage_bps_per_fill"] < 25 and day["slippage_cost"] > 0
    assert doc["coverage"]["live_bars"] == BARS and doc["coverage"]["down"][0]["bars"] == START_BAR
    assert len(doc["equity"]["points"]) == BARS and doc["equity"]["points"][0]["drawdown"] >= 0


@pytest.mark.req("R7.2")
def test_the_backtest_over_the_same_candles_finds_the_same_trades_and_blames_slippage(
    sandbox_day: dict[str, Any]
) -> None:
    doc = sandbox_day["doc"]
    bt = doc["comparison"]["backtest"]
    assert bt["status"] == "ran" and bt["source"] == "exchange klines", bt["note"]
    assert bt["settings"]["risk_per_trade"] == 0.001 and bt["settings"]["exposure_cap"] == 0.02  # live's rung
    att = bt["attribution"]
    assert att["matched"] == len(doc["trades"]) and att["missed"] == 0 and att["extra"] == 0
    assert all(p["entry_bar_offset"] == 0 and p["exit_bar_offset"] == 0 for p in att["pairs"])
    comp = att["components"]
    assert math.fsum(comp.values()) == pytest.approx(att["difference"], abs=1e-9)
    assert att["difference"] < 0 and att["dominant"] == "slippage"
    assert comp["slippage"] < 0 and abs(comp["slippage"]) > 0.9 * abs(att["difference"])
    assert abs(comp["fees"]) < 0.01 * abs(comp["slippage"])  # same fee rate on both sides
    for t in doc["trades"]:
        assert t["backtest_match"] == "matched" and t["backtest"]["slippage"] < 0
    # paper validation side by side: ratios and per-trade numbers, with the gap split into costs and the rest
    paper = doc["comparison"]["paper"]
    assert paper["status"] == "found" and paper["metrics"]["trades"] > 0
    assert paper["gap"]["return_gap_bps"] == pytest.approx(paper["gap"]["costs_bps"] + paper["gap"]["market_bps"])
    rows = {r["metric"]: r for r in doc["comparison"]["side_by_side"]}
    assert rows["trades"]["live"] == rows["trades"]["backtest"] == len(doc["trades"])
    assert rows["cost_bps"]["live"] > rows["cost_bps"]["backtest"] + 30  # 40 bps of spread vs 2 x 2 bps


@pytest.mark.req("R7.3")
def test_every_trade_has_its_entry_and_exit_reason_in_words_with_the_numbers(sandbox_day: dict[str, Any]) -> None:
    doc, settings = sandbox_day["doc"], sandbox_day["settings"]
    trades, _, _ = stored_day(settings)
    assert len(doc["trades"]) == trades.height
    for t, row in zip(doc["trades"], trades.iter_rows(named=True), strict=True):
        assert (t["entry_price"], t["exit_price"], t["qty"], t["fees"], t["net_pnl"]) == (
            row["entry_price"], row["exit_price"], row["qty"], row["fees"], row["net_pnl"])
        assert t["entry_text"].startswith("Entry: SMA3 ") and " above SMA8 " in t["entry_text"]
        assert "stop " in t["entry_text"] and "2.0% below" in t["entry_text"] and "0.10% risk" in t["entry_text"]
        assert t["exit_text"].startswith("Exit: SMA3 ") and " fell below SMA8 " in t["exit_text"]
        assert f"{row['exit_price']:,.2f}" in t["exit_text"]


@pytest.mark.req("R7.4")
def test_worse_live_fills_lead_to_a_suggestion_naming_the_setting_and_the_evidence(
    sandbox_day: dict[str, Any]
) -> None:
    sug = sandbox_day["doc"]["suggestions"]
    assert sug["degraded"] and sug["recommendation"] in ("parameter_changes", "parameter_changes_and_manual_review")
    (slippage,) = [s for s in sug["suggestions"] if s["setting"] == "paper.slippage_bps"]
    assert slippage["kind"] == "parameter" and slippage["current"] == 2.0 and 15 <= slippage["suggested"] <= 25
    assert "bps on average" in slippage["evidence"] and "slippage accounts for" in slippage["evidence"]
    assert slippage["how"] == "RAMPART_PAPER__SLIPPAGE_BPS"
    check = next(c for c in sug["checks"] if c["metric"] == "slippage_bps")
    assert check["degraded"] and check["baseline"] == 2.0
    assert "Recommendation:" in sug["summary"]


@pytest.mark.req("R7.1")
def test_the_days_risk_events_state_changes_breakers_and_denials_by_reason(sandbox_day: dict[str, Any]) -> None:
    risk = sandbox_day["doc"]["risk"]
    codes = {(e["category"], e["code"]) for e in risk["events"]}
    assert ("state", "STATE_CHANGED") in codes and ("other", "SUSPICIOUS_ORDER") in codes
    assert ("breaker", "BREAKER_CONSECUTIVE_LOSSES") in codes
    changed = next(e for e in risk["events"] if e["code"] == "STATE_CHANGED")
    assert "ACTIVE -> SAFE_MODE" in changed["message"]
    stored = Store(sandbox_day["settings"].db_path).query(
        "select code, count(*) as n from decisions d join sessions s on s.id = d.session_id "
        "where d.kind = 'denied' and s.mode = 'live' group by code")  # the paper gate's refusals are not the day's
    assert {d["code"]: d["count"] for d in risk["denials"]} == dict(stored.rows()) != {}
    assert all(d["example"] for d in risk["denials"])


@pytest.mark.req("R7.5")
@pytest.mark.req("R7.1")
def test_json_csv_and_pdf_are_written_under_reports_of_the_day_and_announced(sandbox_day: dict[str, Any]) -> None:
    run, settings = sandbox_day["run"], sandbox_day["settings"]
    folder = settings.data_dir / "reports" / "2024-01-01"
    assert {p.parent for p in run.paths.values()} == {folder}
    doc = json.loads(run.paths["json"].read_text())
    validate(doc)  # the shipped schema, also checked on its own below
    from jsonschema import Draft202012Validator

    Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(doc)
    assert doc["schema_version"] == 1 and doc["date"] == "2024-01-01"
    n = len(doc["trades"])
    trades_csv, metrics_csv = run.paths["trades_csv"], run.paths["metrics_csv"]
    assert duckdb.sql(f"select count(*) from read_csv_auto('{trades_csv}')").fetchall() == [(n,)]
    assert duckdb.sql(f"select count(*) from read_csv_auto('{metrics_csv}') where scope = 'day'").fetchall()[0][0] > 10
    frame = pl.read_csv(trades_csv)
    assert frame["net_pnl"].to_list() == pytest.approx([t["net_pnl"] for t in doc["trades"]])
    assert frame["entry_text"].str.starts_with("Entry: ").all()
    metrics = pl.read_csv(metrics_csv)
    day_pnl = metrics.filter((pl.col("scope") == "day") & (pl.col("metric") == "net_pnl"))["value"].item()
    assert day_pnl == pytest.approx(doc["metrics"]["day"]["net_pnl"])
    outbox = Store(settings.db_path).query("select kind, severity, title, body from notifications where "
                                           "notification_id = 'daily-report:2024-01-01'")
    assert outbox.rows() == [("report", "warning", "Daily report 2024-01-01", outbox["body"][0])]
    assert "Recommendation" in outbox["body"][0]


@pytest.mark.req("R7.5")
def test_the_pdf_has_the_charts_and_the_trade_table_and_renders_readably(sandbox_day: dict[str, Any]) -> None:
    pdf = sandbox_day["run"].paths["pdf"]
    pages = pdf_pages(pdf, "sandbox-day")
    assert len(pages) >= 4
    assert all(not_blank(p) > 5 for p in pages)
    text = pdf_text(pdf)
    for needle in ("Rampart daily report — 2024-01-01", "Key metrics", "Equity (USDT)", "Drawdown from the running",
                   "Trades (", "entry (UTC)", "net P&L", "Exit: SMA3", "Recommendation", "paper.slippage_bps",
                   "Risk events of the day", "CORRELATION_BLOCK"):
        assert needle in text, needle
    first = sandbox_day["doc"]["trades"][0]
    assert f"{first['entry_price']:,.2f}" in text and f"{first['net_pnl']:+,.2f}" in text
    # the charts are drawn: the chart page holds far more ink than a text-only page would
    assert not_blank(pages[1]) > not_blank(pages[-1])


# --- reasons in words for stops, tightened stops and emergency stops ------------------------------------------
@pytest.mark.req("R7.3")
def test_a_tightened_stop_and_an_emergency_stop_are_explained_in_words(tmp_path: Path, creds: None) -> None:
    from core.control.emergency import emergency_stop

    # 100 USDT of BTC (10 % stop) falls 1.5 %: unrealized loss beyond 0.01 % of equity, the stop moves 20 % closer; BTC
    # then falls through it. ETH is entered and then sold by an operator's emergency stop.
    btc = [BTC, BTC, BTC * 0.985, BTC * 0.985, BTC * 0.9, BTC * 0.9, BTC * 0.9, BTC * 0.9]
    settings = settings_for(tmp_path, risk={"unrealized_loss_limit": 0.0001})
    with sandbox(btc, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.10, "cue entry BTC"))
        rig.bar()
        rig.bar()  # the fall: stops tightened
        rig.bar()
        rig.bar(ETHUSDT=enter(0.10, "cue entry ETH"))  # BTC gaps through its tightened stop
        rig.bar()
        report = emergency_stop(settings, "exchange incident", "olga", sandbox_at(server.url))
        assert report.flat
        rig.stop()
    doc = build_daily_report(Store(settings.db_path), settings, DAY).doc
    validate(doc)
    by_kind = {t["exit_kind"]: t for t in doc["trades"]}
    stop = by_kind["stop"]
    tightened = round(BTC * 0.985 - (BTC * 0.985 - BTC * 0.9) * 0.8, 2)
    assert stop["entry_text"].startswith("Entry: cue entry BTC; stop 36,000.00 (10.0% below 40,000.00)")
    assert stop["exit_text"].startswith("Exit: protective stop hit, sold at ")
    assert f"tightened 20% closer from 36,000.00 to {tightened:,.2f} at " in stop["exit_text"]
    assert "unrealized loss passed the limit" in stop["exit_text"]
    emergency = by_kind["emergency"]
    assert emergency["source"] == "emergency_stop" and emergency["symbol"] == "ETHUSDT"
    assert emergency["exit_text"].startswith("Exit: emergency stop by olga: 'exchange incident'; sold at market ")
    assert emergency["entry_text"].startswith("Entry: cue entry ETH")
    assert {"UNREALIZED_LOSS_TIGHTEN", "EMERGENCY_STOP"} <= {e["code"] for e in doc["risk"]["events"]}


@pytest.mark.req("R7.3")
def test_strategy_reasons_read_as_sentences_with_indicator_values() -> None:
    trade = {"entry_price": 41_250.0, "exit_price": 42_010.0, "qty": 0.01, "exit_kind": "signal",
             "entry_reason": "raw", "exit_reason": "close back to SMA40: target reached"}
    mr = {"window": 40, "rsi_max": 45.0, "exit_z": 0.0, "max_bars": 96}
    entry = {"indicators": {"zscore": -2.1, "sma": 42_000.0, "rsi": 31.2, "close": 41_230.0}, "stop": 40_400.0,
             "target": 42_000.0, "sizing": {"risk_per_trade": 0.001, "binding": "risk"}}
    exit_ = {"indicators": {"zscore": 0.05, "sma": 42_001.0, "close": 42_010.0}, "state": "SAFE_MODE"}
    ctx = TradeContext(trade, "mean_reversion", mr, entry, exit_)
    assert entry_text(ctx) == ("Entry: close 41,230.00 fell 2.1σ below its 40-bar mean 42,000.00 (z = -2.10), RSI "
                               "31.2 < 45.0; stop 40,400.00 (2.0% below 41,230.00); target 42,000.00; sized at "
                               "0.10% risk, risk-bound; filled 0.01 at 41,250.00")
    assert exit_text(ctx) == ("Exit: target reached: close 42,010.00 back to its 40-bar mean 42,001.00 (z = 0.05 ≥ "
                              "0.0); sold at 42,010.00 (taken in SAFE_MODE: new entries blocked, exits allowed)")
    trend = TradeContext({**trade, "exit_reason": "x"}, "trend", {"fast": 12, "slow": 48, "trend": 192},
                         {"indicators": {"ema_fast": 1.0, "ema_slow": 0.9, "ema_trend": 0.8, "close": 1.1}},
                         {"indicators": {"close": 1.3, "target": 1.25}})
    assert "EMA12 1.00 crossed above EMA48 0.90 with close 1.10 above the EMA192 trend filter 0.80" in entry_text(trend)
    assert exit_text(trend).startswith("Exit: take-profit target 1.25 reached at close 1.30")
    adopted = TradeContext({**trade, "entry_reason": "", "exit_kind": "end", "exit_reason": ""}, "trend", {})
    assert entry_text(adopted).startswith("Entry: reason not recorded (a position adopted")
    assert exit_text(adopted).startswith("Exit: closed at the end of the session at 42,010.00")


# --- days without trades, without a session ------------------------------------------------------------------
@pytest.mark.req("R7.1")
@pytest.mark.req("R7.5")
def test_a_day_the_session_was_down_and_a_day_without_trades_still_render_and_say_so(tmp_path: Path) -> None:
    from bench.daily_report import DAY as QUIET_DAY
    from bench.daily_report import make_day

    down = load_settings(data_dir=tmp_path / "down")
    run = generate_daily_report(down, date(2024, 3, 5), announce_it=False)
    assert run.report.status == "session_down" and "was down all day" in run.report.doc["notes"][0]
    assert set(run.paths) == {"json", "trades_csv", "metrics_csv", "pdf"}
    assert pl.read_csv(run.paths["trades_csv"]).height == 0
    assert "No live session ran on 2024-03-05" in pdf_text(run.paths["pdf"])
    assert all(not_blank(p) > 1 for p in pdf_pages(run.paths["pdf"], "down-day"))

    quiet, candles = make_day(tmp_path / "quiet", with_trades=False)
    run = generate_daily_report(quiet, QUIET_DAY, candles=default_source(quiet.data_dir, candles), announce_it=False)
    doc = run.report.doc
    assert doc["status"] == "no_trades" and "No trade closed on 2024-01-02" in doc["notes"][0]
    assert doc["metrics"]["day"]["trades"] == 0 and doc["coverage"]["live_bars"] == 1440
    assert doc["comparison"]["backtest"]["status"] == "ran"
    assert "No trade closed on this day." in pdf_text(run.paths["pdf"])


@pytest.mark.req("R7.5")
def test_without_the_unicode_font_the_pdf_export_stops_before_writing_and_says_how_to_install_it(
    tmp_path: Path
) -> None:
    from core.errors import ConfigError

    settings = load_settings(data_dir=tmp_path, reports={"font_dir": tmp_path / "no-fonts"})
    with pytest.raises(ConfigError, match=r"DejaVuSans\.ttf.*make sysdeps.*RAMPART_REPORTS__FONT_DIR"):
        generate_daily_report(settings, date(2024, 3, 5), announce_it=False)
    assert not (tmp_path / "reports").exists()
    run = generate_daily_report(settings, date(2024, 3, 5), formats="json,csv", announce_it=False)
    assert set(run.paths) == {"json", "trades_csv", "metrics_csv"}


@pytest.mark.req("R7.5")
def test_a_document_off_the_schema_is_refused_with_the_field_named(tmp_path: Path) -> None:
    from core.errors import DataError

    doc = build_daily_report(Store(tmp_path / "x.duckdb"), load_settings(data_dir=tmp_path), date(2024, 3, 5)).doc
    validate(doc)
    broken = {**doc, "status": "fine", "trades": [{"trade_id": 1}]}
    with pytest.raises(DataError, match=r"status: 'fine' is not one of .*trades/0"):
        validate(broken)


@pytest.mark.req("R7.4")
def test_performance_below_baseline_without_a_cost_explanation_asks_for_a_manual_review() -> None:
    from core.reporting.daily.suggest import Evidence, suggest

    settings = load_settings(strategy=STRATEGY)
    live = {"trades": 12, "win_rate": 0.25, "profit_factor": 0.6, "max_drawdown": 0.01, "avg_return_bps": -30.0,
            "cost_bps": 22.0}  # losing before costs too: no setting explains it
    paper = {"trades": 80, "win_rate": 0.55, "profit_factor": 1.5}
    out = suggest(Evidence(live, None, paper, fills=24, fill_slippage_bps=2.5, fee_rate_bps=10.0), settings,
                  {"fast": 3, "slow": 8, "stop_pct": 0.02})
    assert out.degraded and out.recommendation == "manual_review"
    (review,) = out.suggestions
    assert review.kind == "manual_review" and review.setting is None
    assert "win rate 25.0% vs paper 55.0% (margin 10.0%)" in review.evidence
    calm = suggest(Evidence({**live, "win_rate": 0.5, "profit_factor": 1.4}, None, paper, fills=24,
                            fill_slippage_bps=2.5, fee_rate_bps=10.0), settings, {})
    assert not calm.degraded and calm.recommendation == "none" and calm.suggestions == []


# --- CLI and flow ---------------------------------------------------------------------------------------------
@pytest.mark.req("R7.1")
@pytest.mark.req("R7.5")
def test_rampart_report_daily_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.daily_report import DAY as BENCH_DAY
    from bench.daily_report import make_day
    from core.cli import main

    settings, candles = make_day(tmp_path, 12)
    out = tmp_path / "out"
    code = main(["report", "daily", "--date", BENCH_DAY.isoformat(), "--format", "json,csv", "--out", str(out),
                 "--candles", ",".join(str(c) for c in candles), "--data-dir", str(settings.data_dir), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["status"] == "traded" and set(printed["files"]) == {"json", "trades_csv",
                                                                                     "metrics_csv"}
    doc = json.loads((out / "report.json").read_text())
    assert len(doc["trades"]) == 12 and doc["comparison"]["backtest"]["source"] == "candle files"
    assert main(["report", "daily", "--date", "2024-02-30", "--data-dir", str(tmp_path)]) == 2
    assert main(["report", "daily", "--format", "json,xls", "--data-dir", str(tmp_path)]) == 2
    assert main(["report", "daily", "--candles", str(tmp_path / "nope.parquet"), "--data-dir", str(tmp_path)]) == 1
    assert main(["report", "daily", "--data-dir", str(tmp_path / "typo")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    assert "2024-02-30" in err[0] and "xls" in err[1] and "nope.parquet" in err[2] and "no database at" in err[3]
    assert not (tmp_path / "typo").exists()


@pytest.mark.req("R7.1")
@pytest.mark.req("R7.5")
def test_the_daily_report_flow_writes_publishes_and_announces(prefect_harness: None, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from bench.daily_report import DAY as BENCH_DAY
    from bench.daily_report import make_day
    from flows.daily_report import daily_report_flow

    settings, _ = make_day(tmp_path, 8)  # candles in DATA_DIR/candles: the flow's first source
    out = daily_report_flow(date=BENCH_DAY.isoformat(), exchange=None, data_dir=str(settings.data_dir))
    assert out["status"] == "traded" and out["notification"] == "daily-report:2024-01-02"
    folder = settings.data_dir / "reports" / "2024-01-02"
    assert {Path(p).parent for p in out["files"].values()} == {folder}
    assert (folder / "report.pdf").stat().st_size > 10_000
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["daily-report-2024-01-02"])))
    assert arts and "# Daily report 2024-01-02" in str(arts[0].data) and "report.json" in str(arts[0].data)
    assert Store(settings.db_path).query("select count(*) from notifications where kind = 'report'").item() == 1

