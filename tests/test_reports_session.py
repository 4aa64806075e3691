"""The daily report of a sandbox session, whatever its clock (issue 18): a live session on the manual-clock sandbox
trades 2024 candles across a market midnight while the wall clock says today. `rampart report daily --session ID`
reports its bars from first to last on the market clock; `rampart report daily` with no date, finding no session
yesterday, reports that session and says why; `--session ID --date DAY` reports one market day of it. The PDF is
rendered (pdftoppm, pdftotext) and looked at. Sessions that are not live are refused with a line naming their own
report."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from core.build import config_hash
from core.cli import main
from core.config import Settings, load_settings
from core.live.session import LiveOptions
from core.market import generate
from core.node import open_live
from core.sandbox.config import SandboxConfig
from core.sandbox.server import SandboxServer
from core.store import Store
from core.venue import sandbox_at

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "reports"
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.02}}
START_BAR, BARS = 1428, 24  # 2024-01-01 23:48 to 2024-01-02 00:12 (market time): trades on both days


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def page_pngs(pdf: Path, name: str) -> list[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(ARTIFACTS / name)], check=True)
    return sorted(ARTIFACTS.glob(f"{name}-*.png"))


def spread(png: Path) -> float:
    from PIL import Image, ImageStat

    with Image.open(png) as im:
        return float(ImageStat.Stat(im.convert("L")).stddev[0])


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["report", "daily", "--no-notify", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else {}


@pytest.fixture(scope="module")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET

    mp.setenv("RAMPART_API_KEY", DEMO_API_KEY)
    mp.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
    data_dir = tmp_path_factory.mktemp("sandbox-session")
    settings: Settings = load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"})
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                         "strategy": STRATEGY["name"], "reasons": []})
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 2, 11)
    config = SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][START_BAR])
    try:
        with SandboxServer(config) as server:
            session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05))
            for _ in range(BARS):
                httpx.post(f"{server.url}/sandbox/advance", json={"ms": 60_000}).raise_for_status()
                assert session.step(), "the session saw no new closed bar"
            stopped = threading.Event()
            stopped.set()
            session.run(stopped)
    finally:
        mp.undo()
    store = Store(settings.db_path)
    trades = store.query("select * from trades where session_id = ? order by exit_time", [session.session_id])
    return {"settings": settings, "id": session.session_id, "trades": trades, "store": store}


@pytest.mark.req("R7.1")
@pytest.mark.req("R7.5")
def test_report_daily_session_on_a_sandbox_session_is_not_empty_and_on_market_time(
        sandbox_session: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    sid, settings, trades = sandbox_session["id"], sandbox_session["settings"], sandbox_session["trades"]
    days = {t.date().isoformat() for t in trades["exit_time"].to_list()}
    assert days == {"2024-01-01", "2024-01-02"}, "the session should close trades on both market days"
    code, printed = cli_json(capsys, "--session", sid[:8], "--data-dir", str(settings.data_dir))
    assert code == 0 and printed["status"] == "traded" and printed["trades"] == trades.height
    period = printed["period"]
    assert period["session_id"] == sid and period["clock"] == "market"
    assert period["start"].startswith("2024-01-01T23:48") and period["end"].startswith("2024-01-02T00:12")
    folder = settings.data_dir / "reports" / "sessions" / sid
    assert {Path(p).parent for p in printed["files"].values()} == {folder}
    doc = json.loads((folder / "report.json").read_text())
    assert [t["trade_id"] for t in doc["trades"]] == trades["trade_id"].to_list()
    assert doc["metrics"]["day"]["net_pnl"] is not None and doc["coverage"]["live_bars"] == BARS
    assert doc["sessions"][0]["id"] == sid and len(doc["equity"]["points"]) == BARS
    assert doc["metrics"]["day"]["trades"] == trades.height
    assert doc["metrics"]["day"]["net_pnl"] == pytest.approx(doc["equity"]["points"][-1]["equity"] - 10_000.0)
    text = pdf_text(folder / "report.pdf")
    assert f"session {sid[:8]}" in text and "(market time)" in text and "live (session)" in text
    assert "01-01 23:48" in text and "01-02 00:" in text  # chart and trade times carry their date
    pages = page_pngs(folder / "report.pdf", "session")
    assert len(pages) >= 4 and all(spread(p) > 5 for p in pages[:3])


@pytest.mark.req("R7.1")
def test_report_daily_without_a_date_finds_the_sandbox_session_and_says_so(
        sandbox_session: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    sid, settings = sandbox_session["id"], sandbox_session["settings"]
    code, printed = cli_json(capsys, "--data-dir", str(settings.data_dir), "--format", "json")
    assert code == 0 and printed["period"]["session_id"] == sid and printed["trades"] > 0
    doc = json.loads(Path(printed["files"]["json"]).read_text())
    assert "No live session ran on" in doc["notes"][0] and sid in doc["notes"][0] and "market clock" in doc["notes"][0]
    # one market day of it, and a market day by date alone, as before
    code, day2 = cli_json(capsys, "--session", sid, "--date", "2024-01-02", "--data-dir", str(settings.data_dir),
                          "--format", "json")
    expected = sandbox_session["trades"].filter(pl.col("exit_time").dt.date().cast(pl.String) == "2024-01-02")
    assert code == 0 and day2["date"] == "2024-01-02" and day2["trades"] == expected.height
    assert day2["period"]["start"].startswith("2024-01-02T00:00") and day2["period"]["session_id"] == sid
    code, by_date = cli_json(capsys, "--date", "2024-01-01", "--data-dir", str(settings.data_dir), "--format", "json")
    assert code == 0 and by_date["period"]["session_id"] is None and by_date["status"] == "traded"


@pytest.mark.req("R7.1")
def test_a_session_that_is_not_live_or_unknown_is_refused_in_one_line(
        sandbox_session: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    settings, store = sandbox_session["settings"], sandbox_session["store"]
    store.begin_session({"id": "feedc0de" + "0" * 24, "mode": "paper", "started_at": "2024-01-01T00:00:00Z",
                         "strategy": "sma_cross", "config_hash": "x", "starting_equity": 10_000.0})
    data = ["--data-dir", str(settings.data_dir), "--no-notify"]
    assert main(["report", "daily", "--session", "feedc0de", *data]) == 1
    assert main(["report", "daily", "--session", "nope1234", *data]) == 1
    assert main(["report", "daily", "--session", "ab", *data]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "is a paper session: its report is reports/paper/feedc0de" in err[0]
    assert "no session 'nope1234'" in err[1] and "too short" in err[2]
