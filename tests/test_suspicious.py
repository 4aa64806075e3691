"""Suspicious activity (R8.4) on the sandbox through the real ccxt client: an order or a trade someone else makes on
the account, a balance change Rampart's fills do not explain, a wrong-signature burst and an IP ban each raise a
critical alert and halt entries (SAFE_MODE: the next entry is refused); Rampart's own trading raises nothing."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from core.domain import TradingState
from core.execution.ccxt_broker import CcxtBroker
from core.execution.ccxt_client import make_binance
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.sandbox.server import SandboxServer
from core.security.audit import journal_path
from core.security.suspicious import RULE, SuspiciousActivityDetector, is_ip_ban
from core.store import Store
from tests.sandbox_rig import BTC, ETH, Rig, by_code, enter, exchange, leave, sandbox, settings_for


def alerts(rig: Rig) -> pl.DataFrame:
    """This detector's alerts (other rules, e.g. monitoring's reconciliation alert, may add their own)."""
    return Store(rig.settings.db_path).query(
        "select code, severity, reason, evidence from alerts where session_id = ? and rule = ? order by ts",
        [rig.session.session_id, RULE])


def assert_halted(rig: Rig, code: str) -> None:
    """SAFE_MODE with ``code`` recorded as a critical event, and the entry cued on this bar refused for it."""
    assert rig.engine.risk.state is TradingState.SAFE_MODE
    halt = by_code(rig.events(), code).filter(pl.col("severity") == "critical")
    assert halt.height >= 1
    refused = by_code(rig.decisions(), "TRADING_STATE")
    assert refused.height == 1 and json.loads(refused["details"][0])["state"] == "SAFE_MODE"


def foreign_order(server: SandboxServer, **order: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/sandbox/foreign-order", json={"symbol": "BTCUSDT", **order})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def market_buys(server: SandboxServer) -> list[dict[str, Any]]:
    return [o for o in exchange(server).fetch_orders("BTC/USDT")
            if o["type"] == "market" and str(o["clientOrderId"]).startswith("rp")]


@pytest.mark.req("R8.4")
def test_an_order_someone_else_places_raises_an_alert_and_halts_entries(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 6, [ETH] * 6) as server:
        rig = Rig(server, settings)
        rig.bar()
        placed = foreign_order(server, side="BUY", type="LIMIT", quantity="0.001", price=f"{BTC * 0.9:.2f}")
        rig.bar()  # the per-bar open-orders check sees it: entries halted from the next poll
        rig.bar(BTCUSDT=enter(0.04, "entry after the foreign order"))
        assert_halted(rig, "SUSPICIOUS_ORDER")
        assert rig.stop() == "SAFE_MODE"
        still_open = [o["id"] for o in exchange(server).fetch_open_orders("BTC/USDT")]
        bought = market_buys(server)
    (alert,) = alerts(rig).rows(named=True)
    assert alert["code"] == "SUSPICIOUS_ORDER" and alert["severity"] == "critical"
    assert "not placed by Rampart" in alert["reason"] and json.loads(alert["evidence"])["order"] == str(
        placed["orderId"])
    assert str(placed["orderId"]) in still_open and bought == []  # left alone; no entry sent
    outbox = Store(settings.db_path).query("select title, urgent from notifications where kind = 'alert'")
    assert ("ALERT SUSPICIOUS_ORDER", True) in outbox.rows()


@pytest.mark.req("R8.4")
@pytest.mark.req("R8.5")
def test_a_wrong_signature_burst_raises_an_alert_and_halts_entries(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 6, [ETH] * 6) as server:
        rig = Rig(server, settings)
        rig.bar()
        # the exchange now expects another secret for the session's key: every signed request fails with -1022
        keys = f"{server.url}/sandbox/keys"
        httpx.post(keys, json={"api_key": DEMO_API_KEY, "secret": "a-secret-the-session-does-not-hold",
                               "account": DEMO_API_KEY}).raise_for_status()
        rig.bar()
        rig.bar()  # two symbols' signed checks per bar: the third failure makes it a burst
        httpx.post(keys, json={"api_key": DEMO_API_KEY, "secret": DEMO_API_SECRET, "account": DEMO_API_KEY}
                   ).raise_for_status()
        rig.bar(BTCUSDT=enter(0.04, "entry after the burst"))
        assert_halted(rig, "AUTH_FAILURES")
        rig.stop()
        failures = server.stats()["auth_failure_codes"]
        bought = market_buys(server)
    assert failures.get("-1022", 0) >= 3 and bought == []
    (alert,) = alerts(rig).rows(named=True)
    evidence = json.loads(alert["evidence"])
    assert alert["code"] == "AUTH_FAILURES" and alert["severity"] == "critical"
    assert evidence["failures"] >= 3 and "fetch_open_orders" in evidence["endpoints"]
    assert "AuthenticationError" in evidence["last_error"] and DEMO_API_SECRET not in alert["evidence"]
    # each failed use of the key is in the audit journal too
    recs = [json.loads(line) for line in journal_path(settings).read_text().splitlines()]
    failed = [r["data"] for r in recs if r["kind"] == "credential_use" and not r["data"]["ok"]]
    assert len(failed) >= 3 and all("AuthenticationError" in f["error"] for f in failed)


@pytest.mark.req("R8.4")
def test_a_trade_someone_else_makes_and_the_balance_it_leaves_raise_alerts_and_halt_entries(
    tmp_path: Path, creds: None
) -> None:
    settings = settings_for(tmp_path, audit={"check_account_every": 1})
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar()
        foreign_order(server, side="BUY", type="MARKET", quantity="0.002")  # filled at once: never open
        rig.bar()  # the trade is seen; the balance gap once
        rig.bar()  # the same gap again: unexplained
        rig.bar(BTCUSDT=enter(0.04, "entry after the foreign trade"))
        assert_halted(rig, "SUSPICIOUS_TRADE")
        rig.stop()
    found = alerts(rig)
    assert found["code"].to_list() == ["SUSPICIOUS_TRADE", "SUSPICIOUS_BALANCE"]
    trade, balance = (json.loads(e) for e in found["evidence"])
    assert trade["symbol"] == "BTCUSDT" and float(trade["amount"]) == pytest.approx(0.002)
    assert not str(trade["client_order_id"]).startswith("rp")
    # the foreign buy's 0.002 BTC less its commission, taken in BTC (faqs/commission_faq.md)
    assert balance["symbol"] == "BTCUSDT" and balance["gap"] == pytest.approx(0.002 * (1 - 0.001))


@pytest.mark.req("R8.4")
def test_rampart_s_own_trading_raises_nothing_but_a_deposit_it_did_not_make_does(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path, audit={"check_account_every": 1})
    with sandbox([BTC] * 10, [ETH] * 10) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))  # filled on the exchange before Rampart books it: one check sees a gap
        rig.bar()
        rig.bar(BTCUSDT=leave())
        rig.bar()
        assert alerts(rig).height == 0 and rig.engine.risk.state is TradingState.ACTIVE
        httpx.post(f"{server.url}/sandbox/deposit", json={"account": DEMO_API_KEY, "asset": "ETH", "amount": 0.5}
                   ).raise_for_status()
        rig.bar()
        rig.bar()
        rig.bar(ETHUSDT=enter(0.04, "entry after the deposit"))
        assert_halted(rig, "SUSPICIOUS_BALANCE")
        rig.stop()
    (alert,) = alerts(rig).rows(named=True)
    evidence = json.loads(alert["evidence"])
    assert alert["code"] == "SUSPICIOUS_BALANCE" and evidence["symbol"] == "ETHUSDT"
    assert evidence["gap"] == pytest.approx(0.5) and "Rampart did not make" in alert["reason"]


@pytest.mark.req("R8.4")
def test_reconciliation_findings_are_treated_as_suspicious(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path, audit={"check_orders_every": 0, "check_account_every": 0})
    with sandbox([BTC] * 6, [ETH] * 6) as server:
        rig = Rig(server, settings)
        rig.session.options = dataclasses.replace(rig.session.options, reconcile_every=1)
        foreign_order(server, side="BUY", type="LIMIT", quantity="0.001", price=f"{BTC * 0.9:.2f}")
        rig.bar()  # reconciliation raises UNEXPLAINED_ORDER; the detector halts on it
        rig.bar(BTCUSDT=enter(0.04, "entry after reconciliation"))
        assert_halted(rig, "SUSPICIOUS_ORDER")
        rig.stop()
    (alert,) = alerts(rig).rows(named=True)
    assert alert["code"] == "SUSPICIOUS_ORDER" and alert["reason"].startswith("reconciliation: ")
    assert json.loads(alert["evidence"])["source"] == "UNEXPLAINED_ORDER"


class _Banning(BaseHTTPRequestHandler):
    """An exchange front that answers like Binance's IP ban (418) or its rate limit (429)."""

    status, body = 418, b'{"code":-1003,"msg":"Way too many requests; IP banned until 1700000000000."}'

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(type(self).body)))
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def banning() -> Iterator[tuple[str, type[_Banning]]]:
    handler = type("Handler", (_Banning,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.req("R8.4")
def test_an_ip_ban_answer_raises_an_alert_and_halts_entries_a_rate_limit_does_not(
    tmp_path: Path, creds: None, banning: tuple[str, type[_Banning]]
) -> None:
    url, handler = banning
    client = make_binance(base_url=url, api_key=DEMO_API_KEY, secret=DEMO_API_SECRET, enableRateLimit=False)
    records: list[Any] = []
    for status, body in ((429, b'{"code":-1003,"msg":"Too many requests."}'), (418, handler.body)):
        handler.status, handler.body = status, body
        seen = CcxtBroker(client)  # the real ccxt errors, as the session's broker reports them to its listeners
        seen.listeners.append(records.append)  # (a fresh one each: after a 429 a broker sends nothing more)
        with pytest.raises(Exception, match="fetch_balance"):
            seen.call("fetch_balance", client.fetch_balance)
    rate_limited, banned = records
    assert not is_ip_ban(rate_limited.error) and is_ip_ban(banned.error)
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        rig = Rig(server, settings)
        (detector,) = [o for o in rig.session.observers if isinstance(o, SuspiciousActivityDetector)]
        detector.on_call(rate_limited)
        rig.bar()
        assert rig.engine.risk.state is TradingState.ACTIVE and alerts(rig).height == 0
        detector.on_call(banned)
        rig.bar(BTCUSDT=enter(0.04, "entry after the ban"))
        assert_halted(rig, "IP_BANNED")
        rig.stop()
    (alert,) = alerts(rig).rows(named=True)
    assert alert["code"] == "IP_BANNED" and "418" in alert["reason"]
