"""The sandbox's /sandbox control routes and raw HTTP behaviour (signatures over query + body, headers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig, create_app
from core.sandbox.auth import hmac_hex
from core.sandbox.matching import pending
from core.sandbox.orders import Order
from core.sandbox.symbols import ZERO


def _config(**overrides: Any) -> SandboxConfig:
    settings: dict[str, Any] = {"clock": "manual", "synthetic_days": 2.0, "warmup_days": 1.0} | overrides
    return SandboxConfig(**settings)


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_app(_config())) as client:
        yield client


def _signed(params: dict[str, str], secret: str = DEMO_API_SECRET) -> str:
    payload = urlencode(params | {"timestamp": str(int(time.time() * 1000))})
    return f"{payload}&signature={hmac_hex(secret, payload)}"


def test_control_routes_answer_loopback_clients_only() -> None:
    app = create_app(_config())
    with TestClient(app, client=("10.1.2.3", 40_000)) as remote:
        assert remote.get("/sandbox/stats").status_code == 403
        assert remote.post("/sandbox/deposit", json={"account": DEMO_API_KEY, "asset": "USDT", "amount": 1e6}
                           ).status_code == 403
        assert remote.get("/api/v3/ping").status_code == 200  # the exchange API itself is not restricted


def test_state_deposit_and_manual_clock_routes(http: TestClient) -> None:
    before = http.get("/sandbox/state").json()
    assert before["clock"] == "manual" and set(before["prices"]) == {"BTCUSDT", "ETHUSDT"}
    assert before["accounts"][DEMO_API_KEY]["keys"] == [DEMO_API_KEY]
    assert DEMO_API_SECRET not in http.get("/sandbox/state").text + http.get("/sandbox/stats").text
    deposit = {"account": DEMO_API_KEY, "asset": "BTC", "amount": 0.5}
    assert http.post("/sandbox/deposit", json=deposit).status_code == 200
    account = http.get("/sandbox/state").json()["accounts"][DEMO_API_KEY]
    balances = {b["asset"]: b["free"] for b in account["balances"]}
    assert balances["BTC"] == "0.50000000" and balances["USDT"] == "10000.00000000"
    moved = http.post("/sandbox/advance", json={"ms": 90_000}).json()
    assert moved["market_time"] == before["market_time"] + 90_000
    assert http.post("/sandbox/price", json={"symbol": "ethusdt", "price": 2_500.0}).status_code == 200
    assert http.get("/api/v3/ticker/price", params={"symbol": "ETHUSDT"}).json()["price"] == "2500.00000000"
    assert http.post("/sandbox/price", json={"symbol": "DOGEUSDT", "price": 1.0}).json()["detail"].startswith(
        "unknown sandbox symbol 'DOGEUSDT'")
    assert http.post("/sandbox/faults", json={"spec": "nonsense"}).status_code == 400
    malformed = http.post("/sandbox/keys", json={"secret": "leak-me-not"})
    assert malformed.status_code == 422 and "leak-me-not" not in malformed.text


def test_manual_clock_routes_refuse_a_realtime_sandbox() -> None:
    with TestClient(create_app(_config(clock="realtime"))) as http:
        refused = http.post("/sandbox/advance", json={"ms": 1_000})
        assert refused.status_code == 400 and "manual clock mode" in refused.json()["detail"]


def test_signature_covers_query_then_body_exactly_as_sent(http: TestClient) -> None:
    headers = {"X-MBX-APIKEY": DEMO_API_KEY}
    query = urlencode({"symbol": "BTCUSDT"})
    body = urlencode({"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
                      "price": "50000", "timestamp": str(int(time.time() * 1000))})
    signature = hmac_hex(DEMO_API_SECRET, query + body)  # Binance: totalParams = query string + body
    mixed = http.post(f"/api/v3/order?{query}", content=f"{body}&signature={signature}",
                      headers=headers | {"Content-Type": "application/x-www-form-urlencoded"})
    assert mixed.status_code == 200 and mixed.json()["status"] == "NEW"
    reordered = http.get("/api/v3/account?" + _signed({"recvWindow": "5000"}).replace("recvWindow=5000&", "")
                         + "&recvWindow=5000", headers=headers)
    assert reordered.json() == {"code": -1022, "msg": "Signature for this request is not valid."}
    missing = http.get("/api/v3/account", headers=headers)
    assert missing.status_code == 400 and missing.json()["code"] == -1102
    no_key = http.get("/api/v3/account?" + _signed({}))
    assert no_key.status_code == 401 and no_key.json()["code"] == -2015
    assert int(no_key.headers["X-MBX-USED-WEIGHT-1M"]) > 0


def test_order_response_types_ack_result_full(http: TestClient) -> None:
    headers = {"X-MBX-APIKEY": DEMO_API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    keys = {}
    for kind in ("ACK", "RESULT", "FULL"):
        answer = http.post("/api/v3/order", content=_signed(base | {"newOrderRespType": kind}), headers=headers)
        keys[kind] = set(answer.json())
    assert keys["ACK"] == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert keys["RESULT"] - keys["ACK"] >= {"status", "executedQty", "cummulativeQuoteQty", "workingTime"}
    assert keys["FULL"] - keys["RESULT"] == {"fills"}


@pytest.mark.parametrize(("order_type", "side", "direction"), [
    ("STOP_LOSS_LIMIT", "SELL", "le"), ("STOP_LOSS", "BUY", "ge"),
    ("TAKE_PROFIT_LIMIT", "SELL", "ge"), ("TAKE_PROFIT", "BUY", "le"),
])
def test_stop_kinds_trigger_on_the_side_binance_defines(order_type: str, side: str, direction: str) -> None:
    order = Order(1, "a", "BTCUSDT", "c", side, order_type, "GTC", ZERO, ZERO, 0, stop_price=ZERO + 100)
    assert pending(order, 0.01) == ("trigger", direction, 100.0)
