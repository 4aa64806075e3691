"""The live path end to end: the real ccxt client against the sandbox exchange over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from core.config import Settings, load_settings
from core.live.session import LiveOptions, LiveSession, PreflightFailed
from core.market import generate
from core.market.candles import CandleSet
from core.node import open_live
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig
from core.sandbox.faults import parse_faults
from core.sandbox.server import SandboxServer
from core.store import Store
from core.validation import run_paper_validation
from core.venue import sandbox_at

ROOT = Path(__file__).resolve().parent.parent
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.004}}
SPEED = 120.0  # one 1-minute candle every 0.5 s of wall time
WARMUP_BARS = 60


def market(seed: int = 11, days: float = 0.5) -> list[CandleSet]:
    return generate(["BTCUSDT", "ETHUSDT"], "1m", days, seed)


def live_settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"})


def pass_gate(settings: Settings) -> None:
    """A passed gate record for this config (the gate itself is tested in test_gate/test_validation)."""
    out = run_paper_validation(settings, "synthetic", days=1, seed=3)
    record = out.verdict.to_record(out.session_id, settings.strategy.name, out.metrics)
    Store(settings.db_path).record_gate({**record, "id": "forced-pass", "passed": True, "reasons": []})


def sandbox_config(sets: list[CandleSet], speed: float = SPEED, **kw: Any) -> SandboxConfig:
    start = sets[0].frame["ts"][WARMUP_BARS]
    return SandboxConfig(source=tuple(sets), speed=speed, start=start, **kw)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_config(market())) as server:
        yield server


def run_live(settings: Settings, server: SandboxServer, bars: int, timeout_ms: int = 10_000) -> LiveSession:
    session = open_live(settings, sandbox_at(server.url, timeout_ms), LiveOptions(poll_interval_s=0.1, max_bars=bars,
                                                                                  duration_s=120))
    session.run(threading.Event())
    return session


def exchange_orders(server: SandboxServer, settings: Settings) -> list[dict[str, Any]]:
    client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
    return [o for s in settings.market.symbols for o in client.fetch_orders(s[:3] + "/USDT", limit=1000)]


def assert_books_match_exchange(session: LiveSession, server: SandboxServer) -> None:
    """Rampart's cash and positions are exactly what the exchange holds."""
    engine = session.engine
    assert engine is not None
    balance = server.client(DEMO_API_KEY, DEMO_API_SECRET).fetch_balance()["total"]
    assert engine.portfolio.cash == pytest.approx(balance["USDT"], abs=1e-6)
    for sym in session.symbols:  # a buy's commission is taken in the coin: dust below the lot step is Rampart's too
        pos = engine.portfolio.positions.get(sym)
        books = (pos.qty if pos else 0.0) + engine.portfolio.dust.get(sym, 0.0)
        assert books == pytest.approx(balance.get(sym[:3], 0.0), abs=1e-9)


@pytest.mark.req("R1.1")
@pytest.mark.req("R1.2")
@pytest.mark.req("R2.1")
def test_a_whole_live_session_runs_on_the_sandbox_through_ccxt(
    tmp_path: Path, creds: None, sandbox: SandboxServer
) -> None:
    settings = live_settings(tmp_path)
    pass_gate(settings)
    session = run_live(settings, sandbox, bars=40)
    store = Store(settings.db_path)
    sid = session.session_id
    assert store.query("select mode, status from sessions where id = ?", [sid]).rows() == [("live", "completed")]
    trades = store.query("select mode, session_id, entry_reason, exit_reason from trades where session_id = ?",
                         [sid])
    assert trades.height >= 2 and set(trades["mode"]) == {"live"}
    assert all(trades["entry_reason"].str.contains("SMA3")) and all(trades["exit_reason"].str.len_chars() > 5)
    orders = store.query("select type, status from orders where session_id = ?", [sid])
    assert {"market", "stop"} <= set(orders["type"]) and "canceled" in set(orders["status"])
    fills = store.query("select count(*) from fills where session_id = ?", [sid]).item()
    assert fills == 2 * trades.height + len(session.engine.portfolio.positions)  # type: ignore[union-attr]
    # R2.1: first rung — every entry at 0.1 % risk, capped at 2 % total exposure
    decisions = store.query("select details from decisions where session_id = ? and kind = 'order' and "
                            "action = 'enter'", [sid])
    for raw in decisions["details"]:
        sizing = json.loads(raw)["sizing"]
        assert sizing["risk_per_trade"] == 0.001 and sizing["exposure_cap"] == 0.02
        assert sizing["qty"] * sizing["price"] <= 0.02 * sizing["equity"] + 1e-6
    assert_books_match_exchange(session, sandbox)
    stats = sandbox.stats()
    assert sum(stats["orders_placed"].values()) == len(exchange_orders(sandbox, settings))


@pytest.mark.req("R1.1")
@pytest.mark.req("R8.2")
def test_a_wrong_secret_is_refused_with_a_clear_message_and_paper_makes_no_authenticated_call(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = live_settings(tmp_path)
    pass_gate(settings)  # a paper validation while the sandbox runs...
    assert sandbox.stats()["auth_calls"] == {}  # ...made no authenticated call
    monkeypatch.setenv("RAMPART_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("RAMPART_API_SECRET", "not-the-secret")
    with pytest.raises(PreflightFailed) as info:
        open_live(settings, sandbox_at(sandbox.url), LiveOptions())
    message = str(info.value)
    assert "CREDENTIALS_REFUSED" in message and "Signature for this request is not valid" in message
    assert "not-the-secret" not in message
    assert sandbox.stats()["orders_placed"] == {}


@pytest.mark.req("R1.5")
def test_live_refuses_to_start_without_a_passed_gate_for_this_config(
    tmp_path: Path, creds: None, sandbox: SandboxServer
) -> None:
    settings = live_settings(tmp_path)
    with pytest.raises(PreflightFailed, match="NO_GATE"):
        open_live(settings, sandbox_at(sandbox.url), LiveOptions())
    pass_gate(settings)
    changed = load_settings(data_dir=tmp_path, market={"timeframe": "1m"},
                            strategy={**STRATEGY, "params": {**STRATEGY["params"], "slow": 9}})
    with pytest.raises(PreflightFailed, match="NO_GATE"):
        open_live(changed, sandbox_at(sandbox.url), LiveOptions())


@pytest.mark.req("R6.4")
def test_lost_responses_never_duplicate_an_order(tmp_path: Path, creds: None) -> None:
    settings = live_settings(tmp_path)
    pass_gate(settings)
    config = sandbox_config(market(seed=13), faults=parse_faults("lost_response=0.5,seed=3"))
    with SandboxServer(config) as server:
        session = run_live(settings, server, bars=40)
        lost = server.stats()["faults_injected"]["lost_response"]
        server.service.faults.set_spec("")  # the test's own look at the exchange must not meet the faults
        orders = exchange_orders(server, settings)
        assert_books_match_exchange(session, server)
    assert lost >= 2
    counts = Counter(o["clientOrderId"] for o in orders)
    assert counts and max(counts.values()) == 1, counts.most_common(3)
    ours = {o.client_order_id for o in session.engine.result.orders}  # type: ignore[union-attr]
    assert set(counts) <= ours  # every order on the exchange is one Rampart knows


@pytest.mark.req("R3.4")
def test_the_session_carries_on_through_5xx_timeouts_and_rate_limits(tmp_path: Path, creds: None) -> None:
    settings = live_settings(tmp_path)
    pass_gate(settings)
    spec = "error5xx=0.08,timeout=0.03,timeout_s=1.5,seed=5"
    with SandboxServer(sandbox_config(market(seed=17), faults=parse_faults(spec))) as server:
        for path in ("/api/v3/klines", "/api/v3/order", "/api/v3/ticker/bookTicker"):  # 429s, honoured (R9.5)
            body = {"method": "GET", "path": path, "error": "rate_limit", "retry_after": 1, "count": 2}
            httpx.post(f"{server.url}/sandbox/inject", json=body).raise_for_status()
        session = run_live(settings, server, bars=30, timeout_ms=1_000)
        stats = server.stats()
        injected = stats["faults_injected"]
        server.service.faults.set_spec("")
        assert_books_match_exchange(session, server)
    assert session.bars >= 30  # a loop held up by a timeout catches up bar by bar, skipping none
    assert injected["error5xx"] + injected["timeout"] >= 3 and sum(stats["injected"].values()) >= 1
    assert stats["bans"] == []  # every 429's Retry-After was honoured: no ban
    codes = set(Store(settings.db_path).query(
        "select code from events where session_id = ?", [session.session_id])["code"])
    assert codes & {"FEED_UNAVAILABLE", "ORDER_OUTCOME_UNKNOWN"}
    assert "SESSION_STOPPED" in codes


@pytest.mark.req("R2.2")
@pytest.mark.parametrize(("symbols", "needle"), [("DOGEUSDT", "unknown symbol"), ("SOLUSDT", "allow-list"),
                                                ("BTCUSDT,ETHUSDT,BNBUSDT", "at most 2")])
def test_live_refuses_symbols_off_the_allow_list_or_a_third_symbol(
    symbols: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    code = main(["live", "--symbols", symbols, "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()



def live_cmd(settings: Settings, url: str, *extra: str) -> list[str]:
    params = [a for k, v in STRATEGY["params"].items() for a in ("--param", f"{k}={v}")]
    return [sys.executable, "-m", "core.cli", "live", "--exchange", "sandbox", "--sandbox-url", url,
            "--strategy", str(STRATEGY["name"]), *params, "--timeframe", "1m", "--poll", "0.1",
            "--data-dir", str(settings.data_dir), *extra]


@pytest.mark.req("R6.4")
def test_kill_9_mid_session_then_restart_reconciles_before_trading_at_the_first_rung(
    tmp_path: Path, creds: None
) -> None:
    settings = live_settings(tmp_path)
    pass_gate(settings)
    state_file = settings.data_dir / "live" / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with SandboxServer(sandbox_config(market(seed=23))) as server:
        first = subprocess.Popen(live_cmd(settings, server.url), cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # wait for an open position with its stop on the exchange
                state = json.loads(state_file.read_text()) if state_file.exists() else {}
                if state.get("positions") and any(o["tag"] == "stop" for o in state.get("orders", {}).values()):
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the first session never opened a position")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        killed_state = json.loads(state_file.read_text())
        second = subprocess.run(live_cmd(settings, server.url, "--max-bars", "12"), cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        orders = exchange_orders(server, settings)
        balance = server.client(DEMO_API_KEY, DEMO_API_SECRET).fetch_balance()["total"]
    store = Store(settings.db_path)
    sessions = store.query("select id, status, error from sessions where mode = 'live' order by started_at").rows()
    # the killed one never closed itself: the restart closed it as crashed, then its own session as completed
    assert [s[1] for s in sessions] == ["crashed", "completed"]
    assert f"process {first.pid} ended without closing the session" in sessions[0][2]
    restarted = sessions[1][0]
    # nothing duplicated: every client order id appears once on the exchange
    counts = Counter(o["clientOrderId"] for o in orders)
    assert max(counts.values()) == 1, counts.most_common(3)
    # the position held at the kill was restored, not re-bought, and its stop was adopted, not re-placed
    killed_stops = {cid for cid, o in killed_state["orders"].items() if o["tag"] == "stop"}
    restored = store.query("select client_order_id from orders where session_id = ?", [restarted])
    assert killed_stops & set(restored["client_order_id"])
    # reconciliation came before any new order of the restarted session
    events = store.query("select code, details, ts from events where session_id = ? order by ts", [restarted])
    started = events.filter(pl.col("code") == "SESSION_STARTED")
    assert started.height == 1 and json.loads(started["details"][0])["restart"] is True
    first_order = store.query("select min(ts) from decisions where session_id = ? and kind = 'order'",
                              [restarted]).item()
    assert first_order is None or first_order >= started["ts"][0]
    # first rung again, whatever happened before
    sizing = store.query("select details from decisions where session_id = ? and kind = 'order' and "
                         "action = 'enter'", [restarted])
    assert all(json.loads(d)["sizing"]["risk_per_trade"] == 0.001 for d in sizing["details"])
    # and the books the restart left behind are the exchange's
    final = json.loads(state_file.read_text())
    for sym in settings.market.symbols:
        held = final["positions"].get(sym, {}).get("qty", 0.0) + final.get("dust", {}).get(sym, 0.0)
        assert held == pytest.approx(balance.get(sym[:3], 0.0), abs=1e-9)


@pytest.mark.req("R9.3")
@pytest.mark.req("R6.4")
@pytest.mark.parametrize("order_lists", [True, False], ids=["order-lists", "no-order-lists"])
def test_kill_9_right_after_an_entry_fills_leaves_it_protected_or_the_restart_protects_it_first(
    tmp_path: Path, creds: None, order_lists: bool
) -> None:
    """A real ``kill -9`` as soon as a position is open. Where the venue takes order lists the stop went out with the
    entry, so the exchange holds it from the fill on; without them the crash window is open (every stop gets
    -1008) and the restart's first order is the stop."""
    settings = live_settings(tmp_path)
    pass_gate(settings)
    state_file = settings.data_dir / "live" / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAMPART_RISK__PROTECT_WITHIN_S": "600"}
    with SandboxServer(sandbox_config(market(seed=23), order_lists=order_lists)) as server:
        busy = {"method": "POST", "path": "/api/v3/order", "error": "busy", "count": 10_000,
                "match": {"type": "STOP_LOSS_LIMIT"}}  # -1008 to every single stop: that window stays open
        httpx.post(f"{server.url}/sandbox/inject", json=busy).raise_for_status()
        first = subprocess.Popen(live_cmd(settings, server.url), cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # an open position
                state = json.loads(state_file.read_text()) if state_file.exists() else {}
                if state.get("positions"):
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the first session never opened a position")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
        held = {s: client.fetch_balance()["total"].get(s[:3], 0.0) for s in settings.market.symbols}
        at_kill = [o for o in exchange_orders(server, settings) if o["info"]["type"] == "STOP_LOSS_LIMIT"
                   and o["status"] == "open"]
        httpx.delete(f"{server.url}/sandbox/inject").raise_for_status()
        second = subprocess.run(live_cmd(settings, server.url, "--max-bars", "1"), cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        stops = [o for o in exchange_orders(server, settings) if o["info"]["type"] == "STOP_LOSS_LIMIT"
                 and o["status"] == "open"]
        after = {s: client.fetch_balance()["total"].get(s[:3], 0.0) for s in settings.market.symbols}
    assert first.returncode == -signal.SIGKILL and any(q > 0 for q in held.values())  # the position survived
    lots = {"BTCUSDT": 0.00001, "ETHUSDT": 0.0001}
    for sym, qty in after.items():  # whatever the restart still holds has its stop
        if qty >= lots[sym]:
            assert any(o["symbol"] == sym.replace("USDT", "/USDT") for o in stops), (sym, qty, stops)
    store = Store(settings.db_path)
    restarted = store.query("select id from sessions where mode = 'live' order by started_at desc limit 1").item()
    tags = store.query("select tag from orders where session_id = ? and client_order_id not in "
                       "(select client_order_id from orders where session_id <> ?) order by created_at",
                       [restarted, restarted])["tag"].to_list()
    if order_lists:  # protected at the kill already: the stop rode on the entry; the restart sent no other first
        assert at_kill and tags[:1] != ["stop"], tags
        assert len(stops) <= sum(1 for q in after.values() if q > 0)  # one stop per position, never two
    else:
        assert not at_kill
        assert tags[:1] == ["stop"], tags  # the first order the restart sent was the stop


@pytest.mark.req("R2.1")
def test_live_session_flow_runs_on_prefect_and_publishes_its_summary(
    tmp_path: Path, creds: None, sandbox: SandboxServer, prefect_harness: None
) -> None:
    from flows.live_session import live_session

    settings = live_settings(tmp_path)
    pass_gate(settings)
    out = live_session(exchange="sandbox", sandbox_url=sandbox.url, strategy="sma_cross",
                       params=STRATEGY["params"], timeframe="1m", data_dir=str(tmp_path), max_bars=4,
                       poll_interval_s=0.1)
    assert out["bars"] >= 4 and out["stopped_because"] == "max bars reached" and out["state"] == "ACTIVE"
    store = Store(settings.db_path)
    assert store.query("select status from sessions where id = ?", [out["session_id"]]).item() == "completed"


@pytest.mark.req("R6.4")
@pytest.mark.req("R8.4")
def test_periodic_reconciliation_raises_an_order_and_a_deposit_rampart_did_not_make(
    tmp_path: Path, creds: None, sandbox: SandboxServer
) -> None:
    import httpx

    settings = live_settings(tmp_path)
    pass_gate(settings)
    session = open_live(settings, sandbox_at(sandbox.url),
                        LiveOptions(poll_interval_s=0.1, max_bars=12, reconcile_every=4))
    price = sandbox.client(DEMO_API_KEY, DEMO_API_SECRET).fetch_ticker("BTC/USDT")["last"]
    httpx.post(f"{sandbox.url}/sandbox/foreign-order", json={
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001", "price": f"{price * 0.9:.2f}",
        "time_in_force": "GTC"}).raise_for_status()
    httpx.post(f"{sandbox.url}/sandbox/deposit", json={"account": DEMO_API_KEY, "asset": "ETH", "amount": 0.5}
               ).raise_for_status()
    session.run(threading.Event())
    events = Store(settings.db_path).query("select code, severity, message from events where session_id = ?",
                                           [session.session_id])
    by_code = {c: (s, m) for c, s, m in events.rows()}
    assert by_code["UNEXPLAINED_ORDER"][0] == "critical" and "not placed by Rampart" in by_code["UNEXPLAINED_ORDER"][1]
    assert by_code["POSITION_MISMATCH"][0] == "critical" and "ETHUSDT" in by_code["POSITION_MISMATCH"][1]
    # the foreign order is left alone: Rampart never cancels what it did not place
    open_orders = sandbox.client(DEMO_API_KEY, DEMO_API_SECRET).fetch_open_orders("BTC/USDT")
    assert any(not str(o["clientOrderId"]).startswith("rp") for o in open_orders)


@pytest.mark.req("R6.4")
def test_sigterm_stops_gracefully_leaving_the_protective_stops_on_the_exchange(tmp_path: Path, creds: None) -> None:
    settings = live_settings(tmp_path)
    pass_gate(settings)
    state_file = settings.data_dir / "live" / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with SandboxServer(sandbox_config(market(seed=23))) as server:
        proc = subprocess.Popen(live_cmd(settings, server.url), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = json.loads(state_file.read_text()) if state_file.exists() else {}
            if state.get("positions") and any(o["tag"] == "stop" for o in state.get("orders", {}).values()):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        open_orders = [o for s in ("BTC/USDT", "ETH/USDT")
                       for o in server.client(DEMO_API_KEY, DEMO_API_SECRET).fetch_open_orders(s)]
    assert proc.returncode == 0, err
    assert "stop requested" in out
    final = json.loads(state_file.read_text())
    stops = {cid for cid, o in final["orders"].items() if o["tag"] == "stop"}
    assert stops and stops <= {o["clientOrderId"] for o in open_orders}  # still protecting the positions
    store = Store(settings.db_path)
    assert store.query("select status from sessions where mode = 'live'").item() == "completed"
    codes = set(store.query("select code from events")["code"])
    assert "SESSION_STOPPED" in codes


@pytest.mark.req("R1.5")
def test_data_download_is_resumable_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    sets = market(seed=29)
    with SandboxServer(sandbox_config(sets)) as server:
        since = sets[0].frame["ts"][0].strftime("%Y-%m-%d")
        args = ["data", "download", "--symbol", "BTCUSDT", "--timeframe", "1m", "--since", since,
                "--exchange", "sandbox", "--sandbox-url", server.url, "--out", str(tmp_path)]
        assert main(args) == 0
        first = pl.read_parquet(tmp_path / "BTCUSDT-1m.parquet")
        time.sleep(2.0)  # the sandbox clock moves on a few candles
        assert main(args) == 0
        second = pl.read_parquet(tmp_path / "BTCUSDT-1m.parquet")
    out = capsys.readouterr().out
    assert first.height >= WARMUP_BARS and second.height > first.height
    assert second["ts"].is_unique().all() and second["ts"].is_sorted()
    assert second.head(first.height).equals(first)  # resumed, nothing rewritten
    assert second.drop("ts").equals(sets[0].frame.drop("ts").head(second.height))
    assert "new" in out and "data checks passed" in out
