"""The dashboard's readings (issue 18), in headless Chromium on `rampart dashboard` over a real DuckDB file: 15-minute
metrics with no closed trade read "—" (not "Win rate 0.0 %, Profit factor 0.00, Sharpe 0.00"), and a refused entry
shows the refusal — its code and the numbers that refused it — not the entry's own reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from core.config import Settings, load_settings
from core.dashboard.server import OfflineDashboard
from core.dashboard.snapshot import decision_row, shown_metrics
from core.state.live import LiveState, save_state
from core.store import Store
from tests.dashboard_rig import TOKENS, operators, seed_metrics

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "reports"
T0 = datetime(2024, 1, 2, 3, tzinfo=UTC)
DENIED = "ETHUSDT~BTCUSDT rho=0.83>0.70"
SIGNAL = "close 2470.92 is 2.13 std below SMA40 2504.09, RSI 41.5 < 45"


def seed(settings: Settings) -> None:
    """A live session with one order and one entry refused for correlation; metrics with no closed trade."""
    store = Store(settings.db_path)
    store.begin_session({"id": "s1", "mode": "live", "started_at": T0, "strategy": "mean_reversion",
                         "config_hash": "abc123", "starting_equity": 10_000.0})
    store.insert_rows("equity", [{"session_id": "s1", "ts": T0 + timedelta(hours=h), "equity": 10_000.0,
                                  "cash": 10_000.0, "exposure": 0.0} for h in range(3)])
    common = {"session_id": "s1", "symbol": "ETHUSDT", "action": "enter", "reason": SIGNAL}
    store.insert_rows("decisions", [
        {**common, "decision_id": "s1-1", "ts": T0, "symbol": "BTCUSDT", "kind": "order", "code": "SUBMITTED",
         "reason": "close 42000 is 1.9 std below SMA40", "details": json.dumps({"signal_code": "DIP"})},
        {**common, "decision_id": "s1-2", "ts": T0 + timedelta(hours=1), "kind": "denied", "code": "CORRELATION_BLOCK",
         "details": json.dumps({"denied": DENIED, "signal_code": "DIP"})},
    ])
    seed_metrics(settings, trades=0, win_rate=0.0, profit_factor=0.0, sharpe=0.0, sortino=0.0, net_pnl=0.0,
                 max_drawdown=0.0)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = load_settings(data_dir=tmp_path, operators=operators())
    save_state(tmp_path / "live" / "state.json", LiveState(trading_state="ACTIVE", positions={}))
    seed(settings)
    with OfflineDashboard(settings, port=0) as dash:
        yield settings, dash.url


@pytest.mark.req("R3.1")
@pytest.mark.req("R3.5")
def test_the_snapshot_blanks_trade_ratios_without_trades_and_shows_a_refusal_with_its_numbers() -> None:
    none = shown_metrics({"trades": 0, "win_rate": 0.0, "profit_factor": 0.0, "sharpe": 0.0, "max_drawdown": 0.0})
    assert none == {"trades": 0, "win_rate": None, "profit_factor": None, "sharpe": None, "sortino": None,
                    "max_drawdown": 0.0}
    some = {"trades": 3, "win_rate": 0.0, "profit_factor": 0.0, "sharpe": -1.2}
    assert shown_metrics(some) == some  # three losing trades: a real 0 % win rate
    row = decision_row({"kind": "denied", "code": "CORRELATION_BLOCK", "reason": SIGNAL, "denied": DENIED})
    assert row["reason"] == f"CORRELATION_BLOCK: {DENIED}" and row["signal"] == SIGNAL and "denied" not in row
    order = {"kind": "order", "code": "SUBMITTED", "reason": SIGNAL, "denied": None}
    assert decision_row(order) == {"kind": "order", "code": "SUBMITTED", "reason": SIGNAL}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (make sysdeps)")
@pytest.mark.req("R3.1")
@pytest.mark.req("R3.3")
@pytest.mark.req("R3.5")
def test_the_page_reads_a_dash_for_no_trades_and_the_correlation_that_blocked_an_entry(
        dashboard: tuple[Settings, str]) -> None:
    _, url = dashboard
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page: Any = browser.new_context().new_page()
            page.goto(url)
            page.fill("#login-token", TOKENS["viewer"])
            page.click("#login-submit")
            page.wait_for_selector("#dash:not([hidden])", timeout=10_000)
            expect(page.locator("#m-trades")).to_have_text("0", timeout=10_000)
            for cell in ("#m-win-rate", "#m-profit-factor", "#m-sharpe"):
                expect(page.locator(cell)).to_have_text("—")
            expect(page.locator("#m-drawdown")).to_have_text("0.00 %")
            refused = page.locator("#decisions tr", has_text="CORRELATION_BLOCK")
            expect(refused).to_have_count(1)
            cells = refused.locator("td")
            expect(cells.nth(4)).to_have_text(f"CORRELATION_BLOCK: {DENIED}")
            assert SIGNAL not in refused.inner_text()
            assert cells.nth(4).get_attribute("title") == f"signal: {SIGNAL}"
            ordered = page.locator("#decisions tr", has_text="SUBMITTED")
            expect(ordered.locator("td").nth(4)).to_have_text("close 42000 is 1.9 std below SMA40")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard-readings.png"), full_page=True)
        finally:
            browser.close()
