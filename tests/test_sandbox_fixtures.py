"""The sandbox against real Binance traffic recorded by ccxt (../shared/exchange-fixtures).

1. For each spot case of the response file, the sandbox's raw JSON has the same keys, nesting and value
   kinds as Binance's ``httpResponse`` (numeric strings and numbers count as the same kind), and ccxt's
   parse of it has the unified keys of ``parsedResponse``, with a value wherever Binance's has one.
2. Every spot request of the request file (url and body) is re-signed with the sandbox's key and sent:
   the sandbox accepts the path and the parameters.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import ccxt
import httpx
import pytest

from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig, SandboxServer
from core.sandbox.auth import hmac_hex

SYMBOLS = ("BTCUSDT", "ETHUSDT", "LTCUSDT", "SOLUSDT", "XRPUSDT")
BALANCES = {"USDT": 100_000.0, "BTC": 1.0, "ETH": 1.0, "LTC": 10.0, "SOL": 10.0, "XRP": 1_000.0}
SPOT_CASES = {  # methods key -> the spot case's description in binance-static-response.json
    "fetchTicker": "public spot ticker",
    "fetchOHLCV": "Spot OHLCV with since and limit",
    "fetchOrderBook": "spot orderbook",
    "createOrder": "spot +selfTradePrevention +iceberg",
    "fetchOrder": "Fetch spot closed order",
    "fetchOpenOrders": "Fetch spot open orders",
    "fetchOrders": "fetch spot orders",
    "fetchMyTrades": "Spot private trade",
    "fetchBalance": "Spot balance",
}
UNSUPPORTED = {"editOrder": "order/cancelReplace", "fetchTrades": "aggTrades"}  # not served by the sandbox
ACCEPTED_REFUSALS = {-2010, -2011, -2013}  # business answers (balance, unknown order): path and params were fine
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _load(shared_dir: Path, name: str) -> dict[str, Any]:
    path = shared_dir / "exchange-fixtures" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(clock="manual", symbols=SYMBOLS, synthetic_days=2.0, warmup_days=1.0,
                           balances=BALANCES)
    with SandboxServer(config) as srv:
        srv.exchange.set_price("LTCUSDT", 80.0)
        srv.exchange.set_price("SOLUSDT", 250.0)
        yield srv


def _client(server: SandboxServer) -> ccxt.binance:
    return server.client(DEMO_API_KEY, DEMO_API_SECRET, enableRateLimit=False, timeout=5_000,
                         enableLastJsonResponse=True)


@pytest.fixture(scope="module")
def observed(server: SandboxServer) -> dict[str, tuple[Any, Any]]:
    """Each spot method run against the sandbox the way the fixture ran it: (raw JSON, ccxt's parse)."""
    client = _client(server)
    client.load_markets()
    out: dict[str, tuple[Any, Any]] = {}

    def run(name: str, call: Callable[[], Any]) -> Any:
        parsed = call()
        out[name] = (client.last_json_response, parsed)
        return parsed

    now = server.state()["market_time"]
    run("fetchTicker", lambda: client.fetch_ticker("BTC/USDT"))
    run("fetchOHLCV", lambda: client.fetch_ohlcv("BTC/USDT", "1h", now - 10 * 3_600_000 + 1, 3))
    run("fetchOrderBook", lambda: client.fetch_order_book("BTC/USDT", 2))
    run("createOrder", lambda: client.create_order(
        "SOL/USDT", "limit", "buy", 0.05, 241, {"selfTradePrevention": "expire_maker", "icebergAmount": 0.03}))
    sold = client.create_order("LTC/USDT", "market", "sell", 0.1)
    run("fetchOrder", lambda: client.fetch_order(sold["id"], "LTC/USDT"))
    run("fetchMyTrades", lambda: client.fetch_my_trades("LTC/USDT", None, 1))
    run("fetchOpenOrders", lambda: [client.create_order("LTC/USDT", "limit", "buy", 0.2, 50, {"postOnly": True}),
                                    client.fetch_open_orders("LTC/USDT", None, 1)][1])
    client.cancel_all_orders("LTC/USDT")
    run("fetchOrders", lambda: client.fetch_orders("LTC/USDT", None, 1))
    run("fetchBalance", lambda: client.fetch_balance())
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        return "number"
    return type(value).__name__


def shape_problems(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected`` in keys, nesting or value kinds."""
    if _kind(expected) != _kind(actual):
        return [f"{where}: {_kind(actual)} where Binance has {_kind(expected)}"]
    if isinstance(expected, dict):
        problems = [f"{where}.{k}: missing" for k in expected if k not in actual]
        problems += [f"{where}.{k}: not in Binance's answer" for k in actual if k not in expected]
        for key in expected.keys() & actual.keys():
            problems += shape_problems(expected[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list) and expected and actual:
        if all(not isinstance(x, list | dict) for x in expected):  # a tuple-like array (a kline, a level)
            if len(expected) != len(actual):
                return [f"{where}: {len(actual)} fields where Binance has {len(expected)}"]
            return [p for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                    for p in shape_problems(e, a, f"{where}[{i}]")]
        return [p for i, a in enumerate(actual) for p in shape_problems(expected[0], a, f"{where}[{i}]")]
    return []


def parse_problems(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Unified keys of ``expected`` missing from ``actual``, or null where ``expected`` has a value."""
    if expected is not None and actual is None:
        return [f"{where}: null where ccxt's parse of Binance has {expected!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = [f"{where}.{k}: missing" for k in expected if k not in actual and k != "info"]
        for key in expected.keys() & actual.keys() - {"info"}:
            problems += parse_problems(expected[key], actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if expected and not actual:
            return [f"{where}: empty where ccxt's parse of Binance has {len(expected)} entries"]
        return [p for i, (e, a) in enumerate(zip(expected, actual, strict=False))
                for p in parse_problems(e, a, f"{where}[{i}]")]
    return []


def _case(fixture: dict[str, Any], method: str) -> dict[str, Any]:
    cases = [c for c in fixture["methods"][method] if c["description"] == SPOT_CASES[method]]
    assert len(cases) == 1, f"fixture case {method}/{SPOT_CASES[method]} not found"
    return cases[0]


@pytest.mark.parametrize("method", list(SPOT_CASES))
def test_raw_answers_have_binance_shape_and_parse_to_the_same_unified_fields(
        shared_dir: Path, observed: dict[str, tuple[Any, Any]], method: str) -> None:
    case = _case(_load(shared_dir, "binance-static-response.json"), method)
    raw, parsed = observed[method]
    assert shape_problems(case["httpResponse"], raw) == []
    assert parse_problems(case["parsedResponse"], parsed) == []


def test_shape_check_catches_a_missing_key_and_a_wrong_kind() -> None:
    expected = {"orderId": "1", "price": "1.0", "fills": [{"qty": "1", "tradeId": 2}], "isWorking": True}
    actual = {"orderId": 7, "price": "abc", "fills": [{"qty": "1"}], "isWorking": True, "extra": 1}
    assert sorted(shape_problems(expected, actual)) == [
        "$.extra: not in Binance's answer", "$.fills[0].tradeId: missing", "$.price: str where Binance has number",
    ]
    assert parse_problems({"a": 1, "b": None, "info": {}}, {"a": None, "b": None}) == [
        "$.a: null where ccxt's parse of Binance has 1"]


def _spot_requests(fixture: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(method, case) for method, cases in fixture["methods"].items() for case in cases
            if "/api/v3/" in case.get("url", "") and method not in UNSUPPORTED]


def _send(server: SandboxServer, method: str, case: dict[str, Any], skip: set[str]) -> httpx.Response:
    url = urlsplit(case["url"])
    body = case.get("output") or ""
    raw = body or url.query
    target = server.url + url.path
    if "signature=" not in raw:
        return httpx.get(target + (f"?{url.query}" if url.query else ""), timeout=5)
    params = [(k, v) for k, v in parse_qsl(raw, keep_blank_values=True) if k not in skip]
    params += [("timestamp", str(int(time.time() * 1000))), ("recvWindow", "10000")]
    payload = urlencode(params)
    signed = f"{payload}&signature={hmac_hex(DEMO_API_SECRET, payload)}"
    headers = {"X-MBX-APIKEY": DEMO_API_KEY}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return httpx.post(target, content=signed, headers=headers, timeout=5)
    verb = "DELETE" if method in ("cancelOrder", "cancelAllOrders") else "GET"
    return httpx.request(verb, f"{target}?{signed}", headers=headers, timeout=5)


def test_every_recorded_spot_request_is_accepted_when_re_signed(shared_dir: Path, server: SandboxServer) -> None:
    fixture = _load(shared_dir, "binance-static-request.json")
    skip = set(fixture["skipKeys"])
    requests = _spot_requests(fixture)
    assert len(requests) >= 40  # orders, cancels, queries, account, trades, tickers, klines, depth, time
    refused = []
    for method, case in requests:
        answer = _send(server, method, case, skip)
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        code = body.get("code") if isinstance(body, dict) else None
        if answer.status_code != 200 and code not in ACCEPTED_REFUSALS:
            refused.append(f"{method} / {case['description']}: HTTP {answer.status_code} {answer.text[:120]}")
    assert refused == []
