"""Paper and backtest reports (issue 18): the data window, per-symbol rows, buy-and-hold over the same candles, the
run at its traded size beside the metrics' scale, equity and drawdown charts, an HTML page beside JSON/CSV and the
PDF, "—" for metrics that need trades when none closed, and a hint when the timeframe is not the one the strategy's
defaults were chosen on.

The PDF's pages are rendered with pdftoppm and its text extracted with pdftotext; the HTML page is opened in headless
Chromium: the tests assert on what is on the page (text, drawn series, coloured pixels), not on file existence.
Images go to test-artifacts/reports/.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.cli import main
from core.config import load_settings
from core.reporting.analysis import timeframe_hint
from core.reporting.charts import HOLD, STRATEGY
from core.validation import load_market

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "reports"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
needs_tools = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (make sysdeps)")


# --- helpers ---------------------------------------------------------------------------------------------------
def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, dict[str, Any]]:
    """Run ``rampart ARGS``; the exit code, what it printed and the report.json it points at."""
    code = main(args)
    out = capsys.readouterr().out
    found = re.search(r"^Report\s+(\S+report\.json)$", out, re.M)
    assert found, out
    return code, out, json.loads(Path(found.group(1)).read_text())


def pdf_pages(pdf: Path, name: str) -> list[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(ARTIFACTS / name)], check=True)
    return sorted(ARTIFACTS.glob(f"{name}-*.png"))


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def pixels(png: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """How many pixels are within ``tol`` of ``rgb`` on every channel (an anti-aliased line still counts)."""
    return int((np.abs(img - np.asarray(rgb, dtype=np.int16)) <= tol).all(axis=2).sum())


def not_blank(img: np.ndarray) -> float:
    return float(img.std())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Any, html: Path, name: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(html.resolve().as_uri())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    return page


# --- paper ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("paper-report")
    buf = io.StringIO()  # a module fixture cannot take capsys
    with contextlib.redirect_stdout(buf):
        code = main(["paper", "--days", "60", "--seed", "5", "--data-dir", str(data_dir)])
    found = re.search(r"^Report\s+(\S+report\.json)$", buf.getvalue(), re.M)
    assert found and code in (0, 3), buf.getvalue()
    report = Path(found.group(1))
    settings = load_settings(data_dir=data_dir)
    return {"code": code, "out": buf.getvalue(), "doc": json.loads(report.read_text()), "folder": report.parent,
            "settings": settings, "sets": load_market("synthetic", settings, days=60, seed=5)}


@pytest.mark.req("R1.3")
def test_the_paper_report_has_the_window_per_symbol_rows_buy_and_hold_and_both_sizes(paper_run: dict[str, Any]) -> None:
    doc, sets, folder = paper_run["doc"], paper_run["sets"], paper_run["folder"]
    # the keys a reader of earlier reports relies on are all still there
    for key in ("schema_version", "generated_at", "session", "sizing", "metrics", "gate", "errors", "trades",
                "blocked", "blocked_by_code", "files"):
        assert key in doc
    assert doc["kind"] == "paper" and doc["gate"]["config_hash"] == doc["session"]["config_hash"]
    assert set(doc["files"]) >= {"trades", "metrics", "equity", "blocked", "symbols", "html", "pdf"}
    # the data window is the candles the run read
    w = doc["session"]["window"]
    ts = sets[0].frame["ts"]
    assert w["first_bar"].startswith(ts[0].isoformat()[:16]) and w["last_bar"].startswith(ts[-1].isoformat()[:16])
    assert w["bars"] == sets[0].frame.height and w["days"] == pytest.approx(60, abs=0.05)
    assert w["timeframe"] == "1h" and w["source"] == "synthetic market (seed 5, 60 days)"
    # per symbol: both symbols; their trades add up to the metrics (at scale) and to trades.csv (as traded)
    rows = {r["symbol"]: r for r in doc["symbols"]}
    assert set(rows) == {"BTCUSDT", "ETHUSDT"}
    assert sum(r["trades"] for r in rows.values()) == doc["metrics"]["trades"] > 0
    m = doc["metrics"]  # closed trades at the metrics' scale (the metrics' net P&L also marks what is still open)
    assert sum(r["net_pnl"] for r in rows.values()) == pytest.approx(m["expectancy"] * m["trades"], abs=1e-6)
    traded = pl.read_csv(folder / "trades.csv")
    scale = doc["sizing"]["metrics_scale"]
    assert scale == pytest.approx(10.0)
    assert sum(r["net_pnl_as_traded"] for r in rows.values()) == pytest.approx(traded["net_pnl"].sum(), abs=1e-6)
    assert doc["as_traded"]["net_pnl"] * scale == pytest.approx(doc["at_scale"]["net_pnl"], rel=1e-9, abs=1e-6)
    assert doc["at_scale"]["max_drawdown"] == pytest.approx(doc["metrics"]["max_drawdown"], rel=1e-9)
    for sym, r in rows.items():
        assert r["trades"] == traded.filter(pl.col("symbol") == sym).height
    # buy-and-hold over the same candles: each symbol's first and last close, half the cash each, the taker fee
    fee, start = paper_run["settings"].paper.taker_fee, doc["session"]["starting_equity"]
    hold = doc["buy_and_hold"]
    final = 0.0
    for cs in sets:
        first, last = cs.frame["close"][0], cs.frame["close"][-1]
        assert hold["per_symbol"][cs.symbol]["first_close"] == pytest.approx(first)
        assert rows[cs.symbol]["buy_and_hold_pct"] == pytest.approx((last / first - 1) * 100)
        final += start / 2 * (1 - fee) / first * last
    assert hold["final_equity"] == pytest.approx(final)
    assert hold["return_pct"] == pytest.approx((final / start - 1) * 100)
    assert hold["strategy_minus_buy_and_hold_pct"] == pytest.approx(doc["metrics"]["return_pct"] - hold["return_pct"])
    # the curves the charts draw end where the run ended
    points = doc["curves"]["points"]
    assert points[-1]["buy_and_hold"] == pytest.approx(final)
    assert points[-1]["equity"] == pytest.approx(doc["metrics"]["final_equity"])
    assert max(p["drawdown"] for p in points) == pytest.approx(doc["metrics"]["max_drawdown"], rel=1e-9)
    symbols_csv = pl.read_csv(folder / "symbols.csv")
    assert symbols_csv["symbol"].to_list() == ["BTCUSDT", "ETHUSDT"]


@pytest.mark.req("R1.3")
def test_the_paper_pdf_shows_the_window_metrics_buy_and_hold_and_charts(paper_run: dict[str, Any]) -> None:
    doc, pdf = paper_run["doc"], paper_run["folder"] / "report.pdf"
    text = pdf_text(pdf)
    verdict = "PASSED" if doc["gate"]["passed"] else "FAILED"
    for words in (f"Rampart paper validation: {verdict}", "Data window", "Key metrics", "buy-and-hold",
                  "as traded (first rung)", "Per symbol", "BTCUSDT", "ETHUSDT", "Equity (USDT)",
                  "Drawdown from the running high", "Gate", doc["session"]["window"]["first_bar"][:10]):
        assert words in text, words
    pages = pdf_pages(pdf, "paper")
    assert len(pages) >= 4
    charts = pixels(pages[1])  # page 2: equity and drawdown
    assert not_blank(charts) > 10
    assert near(charts, STRATEGY) > 200 and near(charts, HOLD) > 200  # the strategy and buy-and-hold lines


@needs_tools
@pytest.mark.req("R1.3")
def test_the_paper_html_page_in_a_browser(paper_run: dict[str, Any], browser: Any) -> None:
    doc = paper_run["doc"]
    page = open_page(browser, paper_run["folder"] / "report.html", "paper-html")
    assert page.locator("h1").inner_text().startswith("Rampart paper validation")
    assert doc["session"]["window"]["first_bar"][:16].replace("T", " ") in page.locator("#window").inner_text()
    head = page.locator("#metrics tr").first.inner_text()
    assert "buy-and-hold" in head and "as traded (first rung)" in head and "10x" in head
    assert page.locator("#symbols tr").count() == 3  # header + two symbols
    assert page.locator("#trades tr").count() == len(doc["trades"]) + 1
    assert "the metrics and the gate at 10x" in page.locator("#sizing").inner_text()
    for n, series in ((0, 3), (1, 2)):  # equity: at scale, as traded, buy-and-hold; drawdown: strategy, hold
        chart = page.locator(f"#chart-{n}")
        assert chart.locator("polyline.series").count() == series
        box = chart.bounding_box()
        assert box is not None and box["width"] > 800 and box["height"] > 200
        shot = ARTIFACTS / f"paper-chart-{n}.png"
        chart.screenshot(path=str(shot))
        img = pixels(shot)
        assert not_blank(img) > 10 and near(img, HOLD) > 200
        assert near(img, STRATEGY if n == 0 else (200, 40, 40)) > 200


# --- backtest ---------------------------------------------------------------------------------------------------
@needs_tools
@pytest.mark.req("R1.3")
@pytest.mark.req("R10.1")
def test_a_backtest_writes_its_report_and_says_the_5m_run_uses_1h_defaults(
        market_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], browser: Any) -> None:
    files = [str(market_data_dir / f"{s}_USDT-5m.feather") for s in ("BTC", "ETH")]
    code, out, doc = run_cli(["backtest", "--source", files[0], "--source", files[1], "--timeframe", "5m",
                              "--days", "10", "--data-dir", str(tmp_path)], capsys)
    assert code == 0
    note = next(line for line in out.splitlines() if line.startswith("Note: "))
    assert "chosen on 1h candles" in note and "--timeframe 1h" in note and "window=40 spans 3.33 h" in note
    folder = tmp_path / "reports" / "backtest" / doc["session"]["id"]
    assert {p.name for p in folder.iterdir()} == {"report.json", "report.html", "report.pdf", "trades.csv",
                                                  "metrics.csv", "equity.csv", "blocked.csv", "symbols.csv"}
    assert doc["kind"] == "backtest" and doc["gate"] is None and doc["session"]["mode"] == "backtest"
    assert doc["notes"][0] == note.removeprefix("Note: ")
    w = doc["session"]["window"]
    assert w["source"] == "BTC_USDT-5m.feather, ETH_USDT-5m.feather, last 10 days" and w["timeframe"] == "5m"
    assert w["bars"] == 10 * 288 and w["end"].startswith("2024-09-24T04:20")  # the files' last candle closes then
    assert [r["symbol"] for r in doc["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    text = pdf_text(folder / "report.pdf")
    assert "Rampart backtest report" in text and "chosen on 1h" in text and "buy-and-hold" in text
    assert not_blank(pixels(pdf_pages(folder / "report.pdf", "backtest")[1])) > 10
    page = open_page(browser, folder / "report.html", "backtest-html")
    assert page.locator("h1").inner_text() == "Rampart backtest report"
    assert "chosen on 1h candles" in page.locator("#notes").inner_text()
    assert page.locator("#gate").count() == 0


@needs_tools
@pytest.mark.req("R1.3")
def test_metrics_that_need_trades_read_a_dash_when_none_closed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], browser: Any) -> None:
    # one day of 1h candles is shorter than mean_reversion's warm-up: no decision, no trade
    code, out, doc = run_cli(["backtest", "--days", "1", "--data-dir", str(tmp_path)], capsys)
    assert code == 0 and doc["metrics"]["trades"] == 0
    assert "win rate — · Sharpe —" in out and "Profit factor —" in out and "Expectancy —" in out
    assert "No trade closed in this window" in out
    folder = tmp_path / "reports" / "backtest" / doc["session"]["id"]
    text = pdf_text(folder / "report.pdf")
    win = next(line for line in text.splitlines() if line.strip().startswith("Win rate"))
    assert "—" in win and "0.0 %" not in win
    page = open_page(browser, folder / "report.html", "no-trades-html")
    rows = {r.split("\t")[0]: r.split("\t")[1] for r in page.locator("#metrics tr").all_inner_texts()[1:]}
    assert rows["Win rate"] == rows["Profit factor"] == rows["Sharpe"] == rows["Expectancy (USDT per trade)"] == "—"
    assert rows["Closed trades"] == "0" and rows["Max drawdown"] == "0.0 %"
    assert "No trade closed." in page.locator("body").inner_text()


@pytest.mark.req("R10.1")
def test_the_timeframe_hint_only_when_bar_counts_are_left_at_their_1h_defaults(tmp_path: Path) -> None:
    def hint(**market_and_strategy: Any) -> str | None:
        return timeframe_hint(load_settings(data_dir=tmp_path, **market_and_strategy))

    assert hint(market={"timeframe": "1h"}) is None
    text = hint(market={"timeframe": "15m"})
    assert text is not None and "window=40 spans 10 h instead of 40 h" in text and "--param window=160" in text
    assert hint(market={"timeframe": "5m"}, strategy={"name": "sma_cross"}) is None  # no tuned timeframe
    every = {"window": 480, "rsi": 168, "atr": 168, "max_bars": 1152, "trend_lookback": 288}
    assert hint(market={"timeframe": "5m"}, strategy={"name": "mean_reversion", "params": every}) is None
    some = hint(market={"timeframe": "5m"}, strategy={"name": "mean_reversion", "params": {"window": 480}})
    assert some is not None and "window," not in some and some.split(" count ")[0].endswith("trend_lookback")
