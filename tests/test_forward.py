"""Forward paper trading (R1.1, R1.6, issue 17): the live loop on the exchange's public data with simulated fills —
no credentials, no signed request, restart-safe, and the same decisions as a replay of the same candles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.build import history_bars, run_paper_session
from core.config import load_settings
from core.domain import Mode, dt_to_ms
from core.live.forward import forward_state_path
from core.live.session import LiveOptions
from core.market import generate
from core.node import open_forward
from core.sandbox.config import SandboxConfig
from core.sandbox.server import SandboxServer
from core.store import Store
from core.venue import sandbox_at
from tests.test_parity import bar_of, before, paper_rows, real_candles, refusal

ROOT = Path(__file__).resolve().parent.parent
CANARY_KEY, CANARY_SECRET = "canary-key-7Hq2Zx", "canary-secret-P0w9Lm"
STRATEGY = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.01}}


def forward_cmd(url: str, data_dir: Path, *extra: str) -> list[str]:
    params = [a for k, v in STRATEGY["params"].items() for a in ("--param", f"{k}={v}")]
    return [sys.executable, "-m", "core.cli", "paper", "--forward", "--exchange", "sandbox", "--sandbox-url", url,
            "--strategy", str(STRATEGY["name"]), *params, "--poll", "0.05", "--data-dir", str(data_dir), *extra]


@pytest.mark.req("R1.1")
@pytest.mark.req("R1.6")
def test_a_week_of_forward_paper_on_the_sandbox_makes_no_signed_request_and_never_shows_a_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAMPART_API_KEY": CANARY_KEY, "RAMPART_API_SECRET": CANARY_SECRET,
           "RAMPART_LIVE__ORDER_POLL_S": "0"}
    sets = generate(["BTCUSDT", "ETHUSDT"], "1h", 40, seed=6)
    # one hourly bar every 0.1 s of wall time: a week of market time in well under a minute
    config = SandboxConfig(source=tuple(sets), speed=36_000.0, start=sets[0].frame["ts"][24 * 14])
    bars = 7 * 24
    with SandboxServer(config) as server:
        run = subprocess.run(forward_cmd(server.url, data_dir, "--timeframe", "1h", "--max-bars", str(bars)),
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        stats = server.stats()
    assert run.returncode == 0, run.stderr
    assert f"{bars} bars" in run.stdout and "Forward paper session" in run.stdout
    assert stats["auth_calls"] == {} and stats["auth_failures"] == {} and stats["public_calls"] > bars
    for text in (run.stdout, run.stderr, *(p.read_bytes().decode("latin-1") for p in data_dir.rglob("*")
                                          if p.is_file())):
        assert CANARY_KEY not in text and CANARY_SECRET not in text
    store = Store(data_dir / "rampart.duckdb")
    (mode, venue, forward, status), = store.query(
        "select mode, venue, settings->>'$.forward', status from sessions").rows()
    assert (mode, venue, forward, status) == ("paper", "sandbox", "true", "completed")
    trades = store.query("select distinct mode from trades")["mode"].to_list()
    assert trades == ["paper"] and store.query("select count(*) from trades").item() >= 3
    span_ms = store.query("select epoch_ms(max(ts)) - epoch_ms(min(ts)) from equity").item()
    assert span_ms >= 167 * 3_600_000  # 168 hourly marks: seven days of market time


@pytest.mark.req("R1.6")
@pytest.mark.req("R6.4")
def test_kill_9_mid_session_then_the_restart_has_the_same_cash_positions_and_stops_and_no_fill_twice(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAMPART_LIVE__ORDER_POLL_S": "0"}
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 1.0, seed=4)
    config = SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][400])
    settings = load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"})
    with SandboxServer(config) as server:
        state_file = forward_state_path(data_dir, sandbox_at(server.url))
        first = subprocess.Popen(forward_cmd(server.url, data_dir, "--timeframe", "1m"), cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        clock = httpx.Client(base_url=server.url)
        try:
            wait_for_position(clock, state_file)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        saved = json.loads(state_file.read_text())  # what the killed session had written last
        store = Store(settings.db_path)
        killed = store.query("select id from sessions").item()
        fills_before = store.query("select fill_id from fills order by fill_id")["fill_id"].to_list()
        session = open_forward(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.0))
        engine = session.engine
        assert engine is not None
        assert engine.portfolio.cash == pytest.approx(saved["cash"])
        assert {s: p.qty for s, p in engine.portfolio.positions.items()} == {
            s: pytest.approx(p["qty"]) for s, p in saved["positions"].items()}
        working = {o.client_order_id: o.stop_price for b in engine.books for o in b.working}
        assert working == {cid: o["stop_price"] for cid, o in saved["orders"].items() if o["type"] == "stop"}
        assert working  # the position's stop is working again
        for _ in range(5):  # trading goes on from there
            clock.post("/sandbox/advance", json={"ms": 60_000}).raise_for_status()
            session.step()
        stopped = threading.Event()
        stopped.set()
        session.run(stopped)
    fills = store.query("select fill_id from fills")["fill_id"].to_list()
    assert len(fills) == len(set(fills)) and set(fills_before) <= set(fills)  # none lost, none twice
    sessions = dict(store.query("select id, status from sessions").rows())
    assert sessions[killed] == "crashed" and sessions[session.session_id] == "completed"


def wait_for_position(clock: httpx.Client, state_file: Path) -> dict[str, Any]:
    """Advance the market a bar at a time until the forward session (another process) holds a position; after each
    bar, wait until the session has written its state (it does after every bar)."""
    for _ in range(400):
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if state.get("positions"):
            return state
        mark = state_file.stat().st_mtime_ns if state_file.exists() else 0
        clock.post("/sandbox/advance", json={"ms": 60_000}).raise_for_status()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (state_file.stat().st_mtime_ns if state_file.exists() else 0) == mark:
            time.sleep(0.01)
    raise AssertionError("the forward session never opened a position")


@pytest.mark.req("R1.6")
@pytest.mark.req("R10.3")
@pytest.mark.slow
def test_forward_paper_and_a_replay_of_the_same_candles_make_the_same_decisions(
        tmp_path: Path, market_data_dir: Path) -> None:
    settings = load_settings(data_dir=tmp_path, market={"timeframe": "1h"},
                             strategy={"name": "mean_reversion", "params": {"window": 20, "entry_z": 1.2,
                                                                            "max_bars": 6, "trend": 0}},
                             paper={"slippage_bps": 0.5})
    history, bars = history_bars(settings), 14 * 24
    fine, hourly = real_candles(market_data_dir, history + bars + 1)
    trade_from, end = dt_to_ms(hourly[0].frame["ts"][history]), dt_to_ms(hourly[0].frame["ts"][history + bars])
    replay = run_paper_session(hourly, settings, Mode.PAPER, trade_from=trade_from)
    expected = before(paper_rows(replay), end)
    config = SandboxConfig(source=tuple(fine), clock="manual", start=fine[0].frame["ts"][history * 12],
                           warmup_days=history / 24 + 1)
    with SandboxServer(config) as server:
        session = open_forward(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.0))
        clock = httpx.Client(base_url=server.url)
        for _ in range(bars):
            clock.post("/sandbox/advance", json={"ms": 3_600_000}).raise_for_status()
            assert session.step()
        stopped = threading.Event()
        stopped.set()
        session.run(stopped)
    result = session.engine.result  # type: ignore[union-attr]
    got = before(paper_rows(result), end)
    assert got == expected and any(r[3] == "TIME_EXIT" for r in got)
    assert {refusal(c) for *_, w, c in got if w == "refused"} == {refusal(c) for *_, w, c in expected
                                                                 if w == "refused"}
    assert all(bar_of(r[1]) == r[1] for r in got)


@pytest.mark.req("R1.6")
@pytest.mark.req("R3.1")
def test_the_dashboard_shows_a_forward_paper_session_as_paper_with_no_emergency_stop(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.dashboard_rig import TOKENS, operators
    from tests.test_dashboard import ARGS, CHROMIUM, log_in, shot, text

    if not CHROMIUM.exists():
        pytest.skip("Debian chromium not installed (make sysdeps)")
    settings = load_settings(data_dir=tmp_path, strategy=STRATEGY, market={"timeframe": "1m"},
                             operators=operators())
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 1.0, seed=4)
    config = SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][400])
    with SandboxServer(config) as server, sync_playwright() as pw:
        session = open_forward(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.0, control_port=0))
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            assert session.control is not None
            page = log_in(browser, session.control.url, TOKENS["operator"])
            assert text(page, "#mode") == "paper on sandbox"
            assert text(page, "#source").startswith("forward paper session")
            clock = httpx.Client(base_url=server.url)
            for _ in range(60):  # until the strategy holds a position; the page shows it
                clock.post("/sandbox/advance", json={"ms": 60_000}).raise_for_status()
                session.step()
                if session.engine is not None and session.engine.portfolio.positions:
                    break
            symbol = next(iter(session.engine.portfolio.positions))  # type: ignore[union-attr]
            page.wait_for_selector(f"#positions tr[data-symbol='{symbol}']", timeout=5_000)
            expect(page.locator("#btn-emergency")).to_be_hidden()
            refused = page.evaluate("""async () => {
                const me = await (await fetch('/api/me')).json();
                const r = await fetch('/api/actions/emergency-stop', {method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
                    body: JSON.stringify({reason: 'paper has no account', confirm: true})});
                return [r.status, (await r.json()).code];
            }""")
            assert refused == [409, "PAPER_SESSION"]
            shot(page, "forward-paper")
        finally:
            browser.close()
            stopped = threading.Event()
            stopped.set()
            session.run(stopped)
    assert server.stats()["auth_calls"] == {}
