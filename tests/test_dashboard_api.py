"""The dashboard over HTTP: cookie flags, CSRF, roles and reasons, the login lockout, the push stream, /metrics
and `rampart dashboard` (real uvicorn servers on 127.0.0.1, real DuckDB files, the sandbox over HTTP)."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings, load_settings
from core.dashboard.auth import LoginGuard, WebSessions
from core.dashboard.server import OfflineDashboard
from core.domain import TradingState
from core.sandbox.server import SandboxServer
from core.state.halt import read_halt
from core.state.live import LiveState, load_state, save_state
from core.store import Store
from core.venue import sandbox_at
from tests.dashboard_rig import NAMES, TOKENS, DashRig, login, operators, query
from tests.sandbox_rig import BTC, ETH, Rig, sandbox, settings_for
from tests.test_live import market, sandbox_config

ROOT = Path(__file__).resolve().parent.parent


def offline_settings(tmp_path: Path, state: str = "ACTIVE", **positions: dict[str, Any]) -> Settings:
    settings = load_settings(data_dir=tmp_path, operators=operators())
    save_state(tmp_path / "live" / "state.json", LiveState(trading_state=state, positions=dict(positions)))
    return settings


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    settings = offline_settings(tmp_path, "SAFE_MODE")
    with OfflineDashboard(settings, port=0) as dash:
        yield settings, dash.url


def events(settings: Settings, kinds: tuple[str, ...] = ("override", "security", "alert")) -> list[dict[str, Any]]:
    marks = ", ".join("?" * len(kinds))
    rows = query(settings, f"select kind, severity, code, message, details from events where kind in ({marks}) "
                           "order by ts", list(kinds))
    return [{**r, "details": json.loads(r["details"] or "{}")} for r in rows.iter_rows(named=True)]


def stored_text(settings: Settings) -> str:
    """Every row of the tables a token could leak into, as text (R8.2)."""
    return " ".join(str(query(settings, f"select * from {t}").rows()) for t in ("events", "alerts", "notifications"))


# --- login, cookie, CSRF --------------------------------------------------------------------------------------------
@pytest.mark.req("R3.1")
@pytest.mark.req("R8.2")
def test_login_sets_an_httponly_strict_cookie_never_echoes_the_token_and_logout_ends_the_session(
    served: tuple[Settings, str]
) -> None:
    settings, url = served
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/static/app.js", "/static/app.css"):
        assert httpx.get(url + asset).status_code == 200
    static = "".join(p.read_text() for p in (ROOT / "core" / "dashboard" / "static").iterdir())
    assert "//cdn" not in static and not [u for u in _urls(static) if "www.w3.org/2000/svg" not in u]
    assert httpx.get(url + "/api/snapshot").status_code == 401 and httpx.get(url + "/api/me").status_code == 401

    bad = httpx.post(url + "/login", data={"token": "guess-123456"})
    assert bad.status_code == 401 and bad.json()["code"] == "LOGIN_FAILED" and "set-cookie" not in bad.headers
    good = httpx.post(url + "/login", data={"token": TOKENS["operator"]})
    assert good.status_code == 200 and good.json()["role"] == "operator" and good.json()["can_act"] is True
    cookie = good.headers["set-cookie"]
    assert cookie.startswith("rampart_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http on 127.0.0.1; https adds Secure
    assert TOKENS["operator"] not in good.text + cookie

    client = httpx.Client(base_url=url, cookies={"rampart_session": good.cookies["rampart_session"]})
    me = client.get("/api/me").json()
    assert me == {"name": NAMES["operator"], "role": "operator", "csrf": good.json()["csrf"], "can_act": True}
    snapshot = client.get("/api/snapshot")
    assert snapshot.status_code == 200 and snapshot.json()["state"] == "SAFE_MODE"
    assert TOKENS["operator"] not in snapshot.text
    assert client.post("/logout").status_code == 403  # no CSRF header: the session stays
    assert client.post("/logout", headers={"X-CSRF-Token": me["csrf"]}).status_code == 200
    assert httpx.get(url + "/api/me", cookies={"rampart_session": good.cookies["rampart_session"]}).status_code == 401
    codes = [e["code"] for e in events(settings)]
    assert codes == ["LOGIN_FAILED", "LOGIN_OK"]
    assert not any(tok in stored_text(settings) for tok in TOKENS.values())


def _urls(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"')]+", text)


@pytest.mark.req("R6.3")
@pytest.mark.req("R3.1")
def test_actions_need_the_csrf_token_a_confirmation_a_reason_and_the_operator_role(
    served: tuple[Settings, str]
) -> None:
    settings, url = served
    operator, csrf = login(url, TOKENS["operator"])
    viewer, viewer_csrf = login(url, TOKENS["viewer"])
    resume = {"reason": "checked the positions", "confirm": True}

    assert operator.post("/api/actions/resume", json=resume).json()["code"] == "CSRF_INVALID"
    assert operator.post("/api/actions/resume", json=resume, headers={"X-CSRF-Token": viewer_csrf}).status_code == 403
    foreign = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
    assert operator.post("/api/actions/resume", json=resume, headers=foreign).status_code == 403
    headers = {"X-CSRF-Token": csrf}
    unconfirmed = operator.post("/api/actions/resume", json={"reason": "x"}, headers=headers)
    assert unconfirmed.status_code == 422 and unconfirmed.json()["code"] == "CONFIRM_REQUIRED"
    no_reason = operator.post("/api/actions/resume", json={"reason": "  ", "confirm": True}, headers=headers)
    assert no_reason.status_code == 422 and no_reason.json()["code"] == "OVERRIDE_NO_REASON"
    assert load_state(settings.data_dir / "live" / "state.json").trading_state == "SAFE_MODE"  # nothing applied

    refused = viewer.post("/api/actions/resume", json=resume, headers={"X-CSRF-Token": viewer_csrf})
    assert refused.status_code == 403 and refused.json()["code"] == "OVERRIDE_FORBIDDEN"
    stop = viewer.post("/api/actions/emergency-stop", json={"reason": "viewer", "confirm": True},
                       headers={"X-CSRF-Token": viewer_csrf})
    assert stop.status_code == 403 and stop.json()["code"] == "OVERRIDE_FORBIDDEN"
    assert read_halt(settings.data_dir) is None
    assert load_state(settings.data_dir / "live" / "state.json").trading_state == "SAFE_MODE"

    accepted = operator.post("/api/actions/resume", json=resume, headers=headers)
    assert accepted.status_code == 200 and accepted.json()["applied_to"] == "saved state"
    assert load_state(settings.data_dir / "live" / "state.json").trading_state == "ACTIVE"
    cleared = operator.post("/api/actions/clear-breaker", json={**resume, "breaker": "slippage"}, headers=headers)
    assert cleared.status_code == 200 and "slippage" in cleared.json()["detail"]
    overrides = [e for e in events(settings) if e["kind"] == "override"]
    assert [e["code"] for e in overrides] == ["CSRF_INVALID", "CSRF_INVALID", "CSRF_INVALID", "OVERRIDE_FORBIDDEN",
                                              "OVERRIDE_FORBIDDEN", "OVERRIDE_ACCEPTED", "OVERRIDE_ACCEPTED"]
    assert overrides[3]["details"]["reason"] == "checked the positions"  # refusals keep who asked and why
    assert overrides[4]["details"]["who"] == NAMES["viewer"]
    assert overrides[5]["details"]["who"] == NAMES["operator"]


# --- lockout (R8.4) -------------------------------------------------------------------------------------------------
@pytest.mark.req("R8.4")
def test_ten_failed_logins_lock_logins_out_raise_a_critical_alert_and_put_the_saved_state_in_safe_mode(
    tmp_path: Path
) -> None:
    settings = offline_settings(tmp_path, "ACTIVE")
    with OfflineDashboard(settings, port=0) as dash:
        answers = [httpx.post(dash.url + "/login", data={"token": f"guess-{i:04d}"}) for i in range(10)]
        locked = httpx.post(dash.url + "/login", data={"token": TOKENS["operator"]})  # even a good token now
        scrape = httpx.get(dash.url + "/metrics", headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
    assert [a.status_code for a in answers] == [401] * 9 + [429]
    assert locked.status_code == 429 and locked.json()["code"] == "LOGIN_LOCKED" and "set-cookie" not in locked.headers
    assert scrape.status_code == 429
    (alert,) = Store(settings.db_path).query("select rule, severity, code, evidence from alerts").rows(named=True)
    evidence = json.loads(alert["evidence"])
    assert (alert["rule"], alert["severity"], alert["code"]) == ("security", "critical", "LOGIN_LOCKOUT")
    assert evidence["failures"] == 10 and evidence["source"] == "127.0.0.1" and evidence["channel"] == "dashboard"
    assert load_state(tmp_path / "live" / "state.json").trading_state == "SAFE_MODE"
    recorded = events(settings)
    assert [e["code"] for e in recorded if e["code"] == "LOGIN_FAILED"] == ["LOGIN_FAILED"] * 10
    assert [e["details"]["consecutive_failures"] for e in recorded if e["code"] == "LOGIN_FAILED"] == list(range(1, 11))
    halted = [e for e in recorded if e["code"] == "SUSPICIOUS_LOGINS"]
    assert len(halted) == 1 and halted[0]["severity"] == "critical"
    assert not any(f"guess-{i:04d}" in stored_text(settings) for i in range(10))  # presented tokens never stored


@pytest.mark.req("R8.4")
@pytest.mark.req("R6.3")
def test_bad_bearer_tokens_on_the_control_api_count_toward_the_same_lockout_and_halt_the_running_session(
    tmp_path: Path, creds: None
) -> None:
    settings = settings_for(tmp_path, operators=operators())
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        rig = DashRig(server, settings)
        url = rig.url
        assert httpx.get(url + "/api/status", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}).json()[
            "state"] == "ACTIVE"  # the control API still answers Bearer tokens
        logins = [httpx.post(url + "/login", data={"token": f"wrong-{i}-abcdef"}).status_code for i in range(5)]
        bearers = [httpx.get(url + "/api/status", headers={"Authorization": f"Bearer wrong-{i}-abcdef"}).status_code
                   for i in range(5)]
        locked = httpx.get(url + "/api/status", headers={"Authorization": f"Bearer {TOKENS['operator']}"})
        rig.bar()  # the halt request lands at the next poll
        state = rig.engine.risk.state
        session_events = rig.events()
        rig.stop()
    assert logins == [401] * 5 and bearers == [401] * 5
    assert locked.status_code == 429 and locked.json()["detail"]["code"] == "LOGIN_LOCKED"
    assert state is TradingState.SAFE_MODE
    halt = session_events.filter(session_events["code"] == "SUSPICIOUS_LOGINS")
    assert halt.height == 1 and halt["severity"][0] == "critical" and "10 failed logins" in halt["message"][0]
    (alert,) = Store(settings.db_path).query("select code, session_id, evidence from alerts").rows(named=True)
    assert alert["code"] == "LOGIN_LOCKOUT" and alert["session_id"] == rig.session.session_id
    assert json.loads(alert["evidence"])["channel"] == "control API"


@pytest.mark.req("R8.4")
def test_a_lockout_seen_by_rampart_dashboard_halts_the_session_running_beside_it(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path, operators=operators())
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        rig = Rig(server, settings)  # no dashboard of its own: `rampart dashboard` serves the data dir
        with OfflineDashboard(settings, port=0) as dash:
            answers = [httpx.post(dash.url + "/login", data={"token": f"guess-{i:04d}"}).status_code for i in range(10)]
        rig.bar()  # the session picks the command file up at its next poll
        state = rig.engine.risk.state
        session_events = rig.events()
        rig.stop()
    assert answers == [401] * 9 + [429] and state is TradingState.SAFE_MODE
    assert session_events.filter(session_events["code"] == "SUSPICIOUS_LOGINS").height == 1
    assert load_state(tmp_path / "live" / "state.json").trading_state == "SAFE_MODE"


@pytest.mark.req("R8.4")
def test_the_lockout_expires_and_a_good_login_breaks_a_run_of_failures() -> None:
    now = [1_000.0]
    started: list[Any] = []
    guard = LoginGuard(3, 60, started.append, clock=lambda: now[0])
    guard.failed("10.0.0.1", "dashboard")
    guard.failed("10.0.0.1", "dashboard")
    guard.succeeded("10.0.0.1")  # the run is broken: two more failures do not lock
    assert guard.failed("10.0.0.1", "dashboard") == (1, None) and guard.failed("10.0.0.1", "dashboard")[1] is None
    count, lockout = guard.failed("10.0.0.1", "dashboard")
    assert count == 3 and lockout is not None and lockout.scope == "client+global" and started == [lockout]
    assert guard.locked("10.0.0.1") == 60 and guard.locked("10.0.0.2") == 60  # the global lock covers everyone
    now[0] += 59
    assert guard.locked("10.0.0.2") == pytest.approx(1)
    now[0] += 1
    assert guard.locked("10.0.0.1") == 0 and guard.locked("10.0.0.2") == 0


@pytest.mark.req("R3.1")
def test_a_login_session_expires_after_its_ttl() -> None:
    now = [0.0]
    sessions = WebSessions(60, clock=lambda: now[0])
    cookie, web = sessions.create("olga", "operator", "op-token-456")
    assert sessions.get(cookie) is web and sessions.get("forged") is None and sessions.get(None) is None
    assert "op-token-456" not in repr(web)  # the token is a SecretStr: never in a repr or a log
    now[0] = 60.0
    assert sessions.get(cookie) is None


# --- push, metrics, offline emergency stop -------------------------------------------------------------------------
@pytest.mark.req("R3.1")
def test_the_stream_pushes_a_new_snapshot_when_the_saved_state_changes(served: tuple[Settings, str]) -> None:
    _, url = served
    client, csrf = login(url, TOKENS["operator"])
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        with client.stream("GET", "/api/stream", timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    got.put(json.loads(line[6:]))

    threading.Thread(target=read, daemon=True).start()
    first = got.get(timeout=10)
    assert first["state"] == "SAFE_MODE"
    answer = client.post("/api/actions/resume", json={"reason": "all clear", "confirm": True},
                         headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200
    pushed = got.get(timeout=10)
    assert pushed["state"] == "ACTIVE" and pushed["version"] > first["version"]


def seed_live(settings: Settings) -> None:
    """A live session's rows: two days of marks, one closed trade, two orders."""
    store = Store(settings.db_path)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    store.begin_session({"id": "s1", "mode": "live", "started_at": t0, "strategy": "sma_cross",
                         "config_hash": "abc123", "starting_equity": 10_000.0})
    marks = [(t0, 10_000.0, 10_000.0, 0.0), (t0 + timedelta(hours=23), 10_010.0, 10_010.0, 0.0),
             (t0 + timedelta(days=1, minutes=5), 10_020.0, 9_815.0, 0.0205)]
    store.insert_rows("equity", [{"session_id": "s1", "ts": ts, "equity": e, "cash": c, "exposure": x}
                                 for ts, e, c, x in marks])
    store.insert_rows("trades", [{"session_id": "s1", "trade_id": "t1", "mode": "live", "symbol": "BTCUSDT",
                                  "net_pnl": 12.5, "fees": 0.4, "qty": 0.005}])
    store.insert_rows("orders", [{"session_id": "s1", "client_order_id": f"o{i}", "symbol": "BTCUSDT",
                                  "status": status} for i, status in enumerate(("filled", "filled", "canceled"))])


def prometheus(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


@pytest.mark.req("R3.1")
@pytest.mark.req("R3.3")
def test_metrics_need_a_viewer_and_expose_equity_pnl_exposure_orders_errors_state_and_breakers(
    tmp_path: Path
) -> None:
    settings = offline_settings(tmp_path, "SAFE_MODE", ETHUSDT={"qty": 0.1, "avg_price": 2_000.0, "stop": 1_900.0})
    seed_live(settings)
    with OfflineDashboard(settings, port=0) as dash:
        assert httpx.get(dash.url + "/metrics").status_code == 401
        scrape = httpx.get(dash.url + "/metrics", headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
        client, _ = login(dash.url, TOKENS["viewer"])
        by_cookie = client.get("/metrics")
        snapshot = client.get("/api/snapshot").json()
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert by_cookie.status_code == 200
    values = prometheus(scrape.text)
    assert values["rampart_equity"] == 10_020.0 and values["rampart_pnl_realized"] == 12.5
    assert values["rampart_pnl_today"] == 10.0 and values["rampart_pnl_since_start"] == 20.0  # vs 00:00 and start
    assert values["rampart_pnl_unrealized"] == pytest.approx(5.0)  # 205 held - 200 cost
    assert values["rampart_exposure"] == pytest.approx(0.0205)
    assert values['rampart_orders_total{status="filled"}'] == 2
    assert values['rampart_orders_total{status="canceled"}'] == 1
    assert values['rampart_trading_state{state="SAFE_MODE"}'] == 1
    assert values['rampart_trading_state{state="ACTIVE"}'] == 0
    assert values['rampart_breaker_active{breaker="consecutive_losses"}'] == 0 and "rampart_errors_total" in values
    assert "# TYPE rampart_api_latency_seconds gauge" in scrape.text
    assert snapshot["positions"] == [{"symbol": "ETHUSDT", "qty": 0.1, "avg_price": 2_000.0, "stop": 1_900.0,
                                      "mark": None, "unrealized": None}]
    assert [p[1] for p in snapshot["equity_curve"]] == [10_000.0, 10_010.0, 10_020.0]


@pytest.mark.req("R6.1")
@pytest.mark.req("R6.5")
def test_offline_emergency_stop_from_the_dashboard_halts_with_the_trading_process_down(
    tmp_path: Path, creds: None
) -> None:
    settings = offline_settings(tmp_path, "ACTIVE")
    with SandboxServer(sandbox_config(market())) as server, \
            OfflineDashboard(settings, sandbox_at(server.url), port=0) as dash:
        client, csrf = login(dash.url, TOKENS["operator"])
        stop = client.post("/api/actions/emergency-stop", json={"reason": "process down, drill", "confirm": True},
                           headers={"X-CSRF-Token": csrf})
        snapshot = client.get("/api/snapshot").json()
    assert stop.status_code == 200 and stop.json()["state"] == "HALTED" and "olga" in stop.json()["summary"]
    assert read_halt(tmp_path) is not None and snapshot["state"] == "HALTED"
    assert snapshot["halt"]["reason"] == "process down, drill"
    assert load_state(tmp_path / "live" / "state.json").trading_state == "HALTED"
    (event,) = [e for e in events(settings, ("control",)) if e["code"] == "EMERGENCY_STOP"]
    assert event["severity"] == "critical" and "process down, drill" in event["message"]


# --- the command ----------------------------------------------------------------------------------------------------
@pytest.mark.req("R3.1")
def test_rampart_dashboard_serves_the_database_and_refuses_without_operators_or_a_free_port(tmp_path: Path) -> None:
    offline_settings(tmp_path, "SAFE_MODE")
    env = {**os.environ, "RAMPART_OPERATORS": json.dumps(operators())}
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "dashboard", "--data-dir", str(tmp_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        status = httpx.get(url + "/api/snapshot", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}, timeout=30)
        assert status.status_code == 200 and status.json()["state"] == "SAFE_MODE"
        assert status.json()["source"] == "database"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    bare = {k: v for k, v in os.environ.items() if k != "RAMPART_OPERATORS"}
    none = subprocess.run([sys.executable, "-m", "core.cli", "dashboard", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, env=bare, cwd=ROOT, timeout=60)
    assert none.returncode == 1 and none.stderr.startswith("error: no operators configured")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = subprocess.run([sys.executable, "-m", "core.cli", "dashboard", "--data-dir", str(tmp_path),
                                "--port", str(port)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert taken.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in taken.stderr
