"""The sandbox over HTTP with the REAL ccxt.binance client: market data, orders, balances, errors, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ccxt
import httpx
import pytest

from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig, SandboxServer
from core.sandbox.faults import parse_faults

FAST: dict[str, Any] = {"enableRateLimit": False, "timeout": 5_000}


def _config(**overrides: Any) -> SandboxConfig:
    settings: dict[str, Any] = {"clock": "manual", "synthetic_days": 2.0, "warmup_days": 1.0} | overrides
    return SandboxConfig(**settings)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(_config()) as srv:
        yield srv


@pytest.fixture
def client(server: SandboxServer) -> ccxt.binance:
    return server.client(DEMO_API_KEY, DEMO_API_SECRET, **FAST)


def _control(server: SandboxServer, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, server.url + "/sandbox/" + path, json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def _price(server: SandboxServer, price: float, symbol: str = "BTCUSDT") -> None:
    _control(server, "POST", "price", {"symbol": symbol, "price": price})


def _paths(client: ccxt.binance) -> list[str]:
    """Record the path of every HTTP request the client sends from now on."""
    seen: list[str] = []
    original = client.fetch

    def spy(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        seen.append(f"{method} {url.split('?')[0].split('/', 3)[3]}")
        return original(url, method, headers, body)

    client.fetch = spy
    return seen


def test_load_markets_calls_only_exchange_info_and_sees_binance_filters(server: SandboxServer) -> None:
    client = server.client(**FAST)
    seen = _paths(client)
    markets = client.load_markets()
    assert seen == ["GET api/v3/exchangeInfo"]
    btc = markets["BTC/USDT"]
    assert set(markets) == {"BTC/USDT", "ETH/USDT"} and btc["spot"] and btc["active"]
    assert btc["precision"]["amount"] == 1e-05 and btc["precision"]["price"] == 0.01
    assert btc["limits"]["cost"]["min"] == 5.0 and markets["ETH/USDT"]["precision"]["amount"] == 1e-04


def test_public_market_data_time_ticker_ohlcv_and_book(server: SandboxServer) -> None:
    client = server.client(**FAST)
    assert abs(client.fetch_time() - time.time() * 1000) < 60_000  # wall clock: signatures are checked on it
    state = server.state()
    ticker = client.fetch_ticker("BTC/USDT")
    assert ticker["last"] == state["prices"]["BTCUSDT"] and ticker["bid"] < ticker["ask"]
    assert ticker["timestamp"] == state["market_time"]
    hour = 3_600_000
    since = state["market_time"] - 5 * hour + 1  # Binance: klines that OPEN at or after startTime
    candles = client.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=3)
    assert [c[0] for c in candles] == [since // hour * hour + k * hour for k in (1, 2, 3)]
    assert all(c[3] <= min(c[1], c[4]) and c[2] >= max(c[1], c[4]) for c in candles)
    book = client.fetch_order_book("BTC/USDT", 5)
    bids, asks = [b[0] for b in book["bids"]], [a[0] for a in book["asks"]]
    assert len(bids) == len(asks) == 5 and bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < state["prices"]["BTCUSDT"] <= asks[0]


def test_market_buy_moves_balances_by_cost_and_fee_and_is_in_my_trades(
        server: SandboxServer, client: ccxt.binance) -> None:
    """faqs/commission_faq.md, "How is the commission calculated?": a BUY pays its commission out of the quantity
    received (quantity x taker rate, in BTC); the quote spent is the cost alone."""
    _price(server, 60_000.0)
    order = client.create_order("BTC/USDT", "market", "buy", 0.01)
    assert order["status"] == "closed" and order["filled"] == 0.01
    assert order["fee"]["currency"] == "BTC" and order["fee"]["cost"] == pytest.approx(0.01 * 0.001)
    balance = client.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(0.01 - 0.00001)
    assert balance["USDT"]["free"] == pytest.approx(10_000 - order["cost"])
    trades = client.fetch_my_trades("BTC/USDT")
    assert len(trades) == 1 and trades[0]["order"] == order["id"] and trades[0]["takerOrMaker"] == "taker"
    assert trades[0]["fee"] == {"currency": "BTC", "cost": pytest.approx(order["fee"]["cost"])}


def test_limit_buy_rests_then_fills_when_the_price_reaches_it(server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 59_000)
    assert order["status"] == "open" and [o["id"] for o in client.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert client.fetch_balance()["USDT"]["used"] == pytest.approx(590)  # no fee room: it is paid in BTC
    _price(server, 58_900.0)
    filled = client.fetch_order(order["id"], "BTC/USDT")
    assert filled["status"] == "closed" and filled["average"] == 59_000 and filled["filled"] == 0.01
    assert client.fetch_open_orders("BTC/USDT") == []
    assert client.fetch_my_trades("BTC/USDT")[0]["takerOrMaker"] == "maker"


def test_stop_loss_limit_sell_triggers_and_sells(server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    client.create_order("BTC/USDT", "market", "buy", 0.01)  # 0.00999 held: the fee was paid in BTC
    stop = client.create_order("BTC/USDT", "limit", "sell", 0.00999, 57_000, {"stopLossPrice": 58_000})
    assert stop["info"]["type"] == "STOP_LOSS_LIMIT" and stop["status"] == "open"
    assert client.fetch_balance()["BTC"]["used"] == 0.00999
    _price(server, 58_500.0)
    assert client.fetch_order(stop["id"], "BTC/USDT")["status"] == "open"
    _price(server, 57_500.0)
    done = client.fetch_order(stop["id"], "BTC/USDT")
    assert done["status"] == "closed" and 57_000 <= done["average"] < 58_000
    assert client.fetch_balance()["BTC"]["total"] == 0


def test_fetch_cancel_and_unknown_orders(server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    order = client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000, {"newClientOrderId": "rampart-t1"})
    fetched = client.fetch_order(order["id"], "BTC/USDT")
    assert fetched["clientOrderId"] == "rampart-t1" and fetched["price"] == 55_000
    assert client.cancel_order(order["id"], "BTC/USDT")["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        client.cancel_order(order["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        client.fetch_order("987654", "BTC/USDT")
    assert [o["status"] for o in client.fetch_orders("BTC/USDT")] == ["canceled"]


def test_duplicate_client_order_id_insufficient_balance_and_filters(
        server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000, {"newClientOrderId": "rampart-dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000, {"newClientOrderId": "rampart-dup"})
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order("BTC/USDT", "market", "buy", 1.0)
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        client.create_order("BTC/USDT", "limit", "buy", 0.00005, 55_000)
    raw = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: LOT_SIZE"):
        client.private_post_order(raw | {"quantity": "0.000015", "price": "55000"})
    with pytest.raises(ccxt.InvalidOrder, match="Filter failure: PRICE_FILTER"):
        client.private_post_order(raw | {"quantity": "0.001", "price": "55000.005"})


@pytest.mark.req("R8.4")
def test_wrong_secret_unknown_key_and_stale_timestamp_are_refused_and_counted(server: SandboxServer) -> None:
    wrong = server.client(DEMO_API_KEY, "not-the-secret", **FAST)
    with pytest.raises(ccxt.AuthenticationError, match=r"-1022.*Signature for this request is not valid"):
        wrong.fetch_balance()
    stranger = server.client("who-is-this", "whatever", **FAST)
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        stranger.fetch_balance()
    stale = server.client(DEMO_API_KEY, DEMO_API_SECRET, options={"timeDifference": 120_000}, **FAST)
    with pytest.raises(ccxt.InvalidNonce, match=r"-1021.*outside of the recvWindow"):
        stale.fetch_balance()
    stats = server.stats()
    assert stats["auth_failures"] == {DEMO_API_KEY: 2, "who-is-this": 1}
    assert stats["auth_failure_codes"] == {"-1022": 1, "-2015": 1, "-1021": 1}
    assert stats["auth_calls"] == {}


@pytest.mark.req("R1.1")
def test_public_only_client_makes_zero_authenticated_calls_and_keys_are_counted(server: SandboxServer) -> None:
    public = server.client(**FAST)
    public.load_markets()
    public.fetch_ticker("BTC/USDT")
    public.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    public.fetch_order_book("ETH/USDT")
    stats = server.stats()
    assert stats["auth_calls"] == {} and stats["auth_failures"] == {} and stats["public_calls"] == 4
    private = server.client(DEMO_API_KEY, DEMO_API_SECRET, **FAST)
    private.fetch_balance()
    private.fetch_open_orders("BTC/USDT")
    assert server.stats()["auth_calls"] == {DEMO_API_KEY: 2}


def test_request_weight_over_the_limit_gets_429_with_retry_after() -> None:
    with SandboxServer(_config(weight_limit=50)) as srv:
        answers = [httpx.get(srv.url + "/api/v3/exchangeInfo", timeout=5) for _ in range(6)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1
        assert limited[0].json()["code"] == -1003 and int(limited[0].headers["X-MBX-USED-WEIGHT-1M"]) > 50
        assert answers[0].status_code == 200 and answers[0].headers["X-MBX-USED-WEIGHT-1M"] in ("20", "40")
        with pytest.raises(ccxt.DDoSProtection):
            srv.client(**FAST).fetch_ticker("BTC/USDT")


def _faulty(server: SandboxServer, spec: str) -> None:
    assert _control(server, "POST", "faults", {"spec": spec})["faults"] == parse_faults(spec).spec()


def test_5xx_and_timeout_faults_fail_before_anything_is_booked(server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    _faulty(server, "error5xx=1")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000)
    assert _control(server, "GET", "stats")["faults_injected"]["error5xx"] == 1  # control routes never fail
    _faulty(server, "timeout=1,timeout_s=1")
    impatient = server.client(DEMO_API_KEY, DEMO_API_SECRET, enableRateLimit=False, timeout=300)
    with pytest.raises(ccxt.RequestTimeout):
        impatient.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000)
    _faulty(server, "latency=1")
    with pytest.raises(ccxt.RequestTimeout):
        impatient.fetch_time()
    _faulty(server, "")
    assert client.fetch_open_orders("BTC/USDT") == [] and server.stats()["orders_placed"] == {}


def test_lost_response_books_the_order_although_the_client_got_an_error(
        server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    _faulty(server, "lost_response=1")
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000, {"newClientOrderId": "rampart-lost"})
    _faulty(server, "")
    found = client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "rampart-lost"})
    assert found["status"] == "open" and found["amount"] == 0.01


def test_partial_fill_and_rate_limit_faults(server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    _faulty(server, "partial_fill=1,seed=3")
    market = client.create_order("BTC/USDT", "market", "buy", 0.01)
    assert market["status"] == "expired" and 0 < market["filled"] < 0.01
    limit = client.create_order("BTC/USDT", "limit", "buy", 0.01, 60_100)
    assert limit["status"] == "open" and 0 < limit["filled"] < 0.01 and limit["remaining"] > 0
    _faulty(server, "rate_limit=1")
    raw = httpx.get(server.url + "/api/v3/time", timeout=5)
    assert raw.status_code == 429 and int(raw.headers["Retry-After"]) >= 1
    with pytest.raises(ccxt.DDoSProtection, match="418"):  # sent before the Retry-After expired: banned
        client.fetch_balance()
    _control(server, "POST", "unban")


def test_second_key_on_the_account_then_revoking_the_first(server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    client.create_order("BTC/USDT", "market", "buy", 0.01)
    added = _control(server, "POST", "keys", {"api_key": "rotated-key", "secret": "rotated-secret"})
    assert added == {"api_key": "rotated-key", "account": DEMO_API_KEY}
    rotated = server.client("rotated-key", "rotated-secret", **FAST)
    assert rotated.fetch_balance()["BTC"]["total"] == client.fetch_balance()["BTC"]["total"] == 0.00999
    _control(server, "DELETE", f"keys/{DEMO_API_KEY}")
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        server.client(DEMO_API_KEY, DEMO_API_SECRET, **FAST).fetch_balance()
    # ccxt reads -2015 on a client that authenticated before as a temporary ban, not as a bad key:
    with pytest.raises(ccxt.DDoSProtection, match="-2015"):
        client.fetch_balance()
    assert rotated.fetch_balance()["BTC"]["total"] == 0.00999
    assert "rotated-secret" not in httpx.get(server.url + "/sandbox/state").text


def test_foreign_order_appears_on_the_account_without_an_authenticated_call(
        server: SandboxServer, client: ccxt.binance) -> None:
    _price(server, 60_000.0)
    placed = _control(server, "POST", "foreign-order",
                      {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "50000"})
    assert placed["clientOrderId"].startswith("web_")
    orders = client.fetch_open_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in orders] == [placed["clientOrderId"]]
    stats = server.stats()
    assert stats["orders_placed"] == {"foreign": 1} and stats["auth_calls"] == {DEMO_API_KEY: 1}


def test_realtime_clock_fills_resting_orders_without_any_request() -> None:
    with SandboxServer(_config(clock="realtime", speed=3_000.0)) as srv:
        exchange = srv.exchange
        market = exchange.market
        client = srv.client(DEMO_API_KEY, DEMO_API_SECRET, **FAST)
        client.load_markets()
        now = market.now()
        path = market.path("BTCUSDT")
        ahead = [path.price_at(t) for t in range(now + 1_500_000, now + 4_500_000, 5_000)]  # 0.5..1.5 s from now
        bid, ask = exchange.quotes.top("BTCUSDT", market.price("BTCUSDT"))
        if min(ahead) < float(bid) - 0.02:  # the price dips soon: a buy below the bid will fill then
            order = client.create_order("BTC/USDT", "limit", "buy", 0.001, round(min(ahead) + 0.01, 2))
        else:  # it rises: sell above the ask
            assert max(ahead) > float(ask) + 0.02
            client.create_order("BTC/USDT", "market", "buy", 0.001)  # 0.000999 held: the fee was paid in BTC
            order = client.create_order("BTC/USDT", "limit", "sell", 0.00099, round(max(ahead) - 0.01, 2))
        assert order["status"] == "open"
        resting = exchange.account_of(DEMO_API_KEY).orders[int(order["id"])]
        deadline = time.monotonic() + 15
        while resting.status != "FILLED" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert resting.status == "FILLED"  # matched by the background task: no request since placing it
