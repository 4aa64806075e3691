"""The sandbox as Binance's twin, through the REAL ccxt client on the manual clock: commissions (R9.1, R9.2),
unknown outcomes and late execution (R9.4), and the documented error classes (R9.5): injected errors, 429 / 418
bans, timestamps and clock skew, market closed, PERCENT_PRICE_BY_SIDE, MAX_NUM_ALGO_ORDERS, self-trade
prevention, and a stop-limit gapped through (R9.3). Each test cites the section of ../shared/binance-docs it
follows."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import ccxt
import httpx
import pytest

from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig, SandboxServer
from core.sandbox.accounts import KeyRing
from core.sandbox.auth import Authenticator, hmac_hex
from core.sandbox.binance_errors import BinanceError
from core.sandbox.limits import RateLimits
from tests.helpers import candles

FAST: dict[str, Any] = {"enableRateLimit": False, "timeout": 5_000}
MIN = 60_000
HISTORY = 60  # flat candles before the start: the 5-minute average price is the flat price


def _flat(symbol: str, price: float, n: int = 180) -> Any:
    return candles([(price, price, price, price)] * n, symbol, tf="1m", volume=50.0)


def _server(prices: dict[str, float] | None = None, **overrides: Any) -> SandboxServer:
    """A manual-clock sandbox on flat 1-minute candles (BTCUSDT at 60,000 unless told)."""
    sets = [_flat(s, p) for s, p in (prices or {"BTCUSDT": 60_000.0}).items()]
    return SandboxServer(SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][HISTORY],
                                       **overrides))


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with _server(balances={"USDT": 10_000.0, "BTC": 1.0}) as srv:
        yield srv


def _client(server: SandboxServer, **kw: Any) -> ccxt.binance:
    return server.client(DEMO_API_KEY, DEMO_API_SECRET, **(FAST | kw))


def _control(server: SandboxServer, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, server.url + "/sandbox/" + path, json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def _price(server: SandboxServer, price: float, symbol: str = "BTCUSDT") -> None:
    _control(server, "POST", "price", {"symbol": symbol, "price": price})


def _stats(server: SandboxServer) -> Any:
    return _control(server, "GET", "stats")


def _raw_order(client: ccxt.binance, order_id: str) -> dict[str, Any]:
    """GET /api/v3/order as Binance answers it (the JSON, not ccxt's parse)."""
    raw: dict[str, Any] = client.private_get_order({"symbol": "BTCUSDT", "orderId": order_id})
    return raw


def _held(client: ccxt.binance, asset: str) -> Decimal:
    balances = client.private_get_account()["balances"]
    row = next((b for b in balances if b["asset"] == asset), {"free": "0", "locked": "0"})
    return Decimal(row["free"]) + Decimal(row["locked"])


# --- R9.1 / R9.2: commission rules --------------------------------------------------------------------------------
@pytest.mark.req("R9.1")
def test_base_rule_a_buy_pays_in_the_base_asset_and_a_sell_in_the_quote() -> None:
    """faqs/commission_faq.md, "How is the commission calculated?": the received amount x the rate, "for orders on
    the BUY side, the received amount would be quantity"; on the SELL side it is the notional. Taker for a
    MARKET order, maker for a resting limit (rest-api.md, Account information: commissionRates)."""
    with _server(balances={"USDT": 10_000.0}, taker_fee=0.001, maker_fee=0.0005) as server:
        client = _client(server)
        bought = client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                            "quantity": "0.01"})
        fill = bought["fills"][0]
        assert (fill["commission"], fill["commissionAsset"]) == ("0.00001000", "BTC")  # 0.01 x 0.001
        cost = Decimal(bought["cummulativeQuoteQty"])
        assert _held(client, "BTC") == Decimal("0.00999") and _held(client, "USDT") == 10_000 - cost
        resting = client.private_post_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                             "timeInForce": "GTC", "quantity": "0.00999", "price": "60100"})
        _price(server, 60_200.0)
        (trade,) = [t for t in client.private_get_mytrades({"symbol": "BTCUSDT"})
                    if t["orderId"] == resting["orderId"]]
        notional = Decimal("0.00999") * 60_100
        assert trade["isMaker"] and trade["commissionAsset"] == "USDT"
        assert Decimal(trade["commission"]) == (notional * Decimal("0.0005")).quantize(Decimal("1e-8"))
        assert _held(client, "BTC") == 0
        assert _held(client, "USDT") == 10_000 - cost + notional - Decimal(trade["commission"])
        account = client.private_get_account()
        assert account["commissionRates"] == {"maker": "0.00050000", "taker": "0.00100000",
                                              "buyer": "0.00000000", "seller": "0.00000000"}
        assert (account["makerCommission"], account["takerCommission"]) == (5, 10)


@pytest.mark.req("R9.2")
def test_bnb_rule_follows_the_faq_example_literally_at_the_bnbusdt_price() -> None:
    """faqs/commission_faq.md, "How is the commission calculated?": a SELL of 0.49975 BTC at 35,000 with a
    combined rate of 0.0000006 -> standard commission 0.01049475 USDT; paying with BNB at 1 BNB = 260 USDT it is
    (0.01049475 x 1/260) x 0.25 = 0.000010091 BNB (8 decimals: 0.00001009), and the USDT is received in full."""
    config: dict[str, Any] = {"commission": "bnb", "bnb_price": 260.0, "maker_fee": 0.0000006,
                              "balances": {"BTC": 0.49975, "BNB": 1.0}}
    with _server({"BTCUSDT": 34_900.0}, **config) as server:
        client = _client(server)
        markets = client.load_markets()
        assert "BNB/USDT" in markets and client.fetch_ticker("BNB/USDT")["last"] == 260.0
        assert httpx.get(server.url + "/api/v3/ticker/price", params={"symbol": "BNBUSDT"}).json() == {
            "symbol": "BNBUSDT", "price": "260.00000000"}
        sell = client.private_post_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                                          "quantity": "0.49975", "price": "35000"})
        _price(server, 35_100.0)  # the path crosses 35,000: the sell fills there as the maker
        (trade,) = client.private_get_mytrades({"symbol": "BTCUSDT", "orderId": sell["orderId"]})
        assert (trade["quoteQty"], trade["commission"], trade["commissionAsset"]) == (
            "17491.25000000", "0.00001009", "BNB")
        assert _held(client, "USDT") == Decimal("17491.25") and _held(client, "BNB") == Decimal("0.99998991")


@pytest.mark.req("R9.2")
def test_bnb_rule_falls_back_to_the_full_commission_in_the_received_asset_without_enough_bnb() -> None:
    """faqs/commission_faq.md: "If you do not have enough BNB to pay the discounted commission, the full commission
    will be taken out of your received amount ... instead." A BUY's BNB commission is the standard commission
    (quantity x rate, in BTC) valued at the trade price and BNBUSDT (600 by default), x 0.25."""
    with _server(commission="bnb", balances={"USDT": 10_000.0, "BNB": 0.001}) as server:
        client = _client(server)
        first = client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                           "quantity": "0.01"})
        price = Decimal(first["fills"][0]["price"])
        in_bnb = (Decimal("0.00001") * price / 600 * Decimal("0.25")).quantize(Decimal("1e-8"))
        assert (first["fills"][0]["commission"], first["fills"][0]["commissionAsset"]) == (str(in_bnb), "BNB")
        assert _held(client, "BTC") == Decimal("0.01") and _held(client, "BNB") == Decimal("0.001") - in_bnb
        second = client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                            "quantity": "0.01"})
        assert second["fills"][0]["commissionAsset"] == "BNB"  # ~0.00075 BNB left covers another ~0.00025
        third = client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                           "quantity": "0.04"})  # needs ~0.001 BNB: only ~0.0005 left
        assert [(f["commission"], f["commissionAsset"]) for f in third["fills"]] == [("0.00004000", "BTC")]
        assert _held(client, "BTC") == Decimal("0.05") + Decimal("0.01") - Decimal("0.00004")
        assert _held(client, "BNB") == Decimal("0.001") - 2 * in_bnb


@pytest.mark.req("R9.2")
def test_commission_rates_endpoint_has_the_documented_shape_and_says_whether_bnb_pays() -> None:
    """rest-api.md, Query Commission Rates (USER_DATA), GET /api/v3/account/commission, weight 20; the discount
    block as faqs/commission_faq.md's example (discountAsset BNB, discount 0.25), enabled for the account only
    when BNB pays the fees."""
    for rule, enabled in (("base", False), ("bnb", True)):
        with _server(commission=rule, maker_fee=0.0008) as server:
            client = _client(server)
            rates = client.private_get_account_commission({"symbol": "BTCUSDT"})
            assert int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"]) == 20
            zero = {"maker": "0.00000000", "taker": "0.00000000", "buyer": "0.00000000", "seller": "0.00000000"}
            assert rates == {
                "symbol": "BTCUSDT",
                "standardCommission": {"maker": "0.00080000", "taker": "0.00100000", "buyer": "0.00000000",
                                       "seller": "0.00000000"},
                "specialCommission": zero, "taxCommission": zero,
                "discount": {"enabledForAccount": enabled, "enabledForSymbol": True, "discountAsset": "BNB",
                             "discount": "0.25000000"},
            }
            with pytest.raises(ccxt.BadRequest, match="-1121"):
                client.private_get_account_commission({"symbol": "DOGEUSDT"})
            assert ("BNB/USDT" in client.load_markets()) is enabled  # the BNBUSDT market exists to price BNB


@pytest.mark.req("R9.1")
@pytest.mark.parametrize(("rule", "affordable"), [("base", True), ("bnb", True), ("quote", False)])
def test_a_buy_limit_locks_what_the_rule_makes_it_pay(rule: str, affordable: bool) -> None:
    """faqs/commission_faq.md: the commission comes out of the received asset (base) or BNB, so a BUY pays
    price x quantity of the quote and locks exactly that; only the kept "quote" simplification charges the fee on
    top (a lock with fee room). rest-api.md, errors.md: -2010 "Account has insufficient balance ..." otherwise."""
    with _server(commission=rule, balances={"USDT": 10_000.0}) as server:
        client = _client(server)
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.2",
                 "price": "50000"}  # exactly the 10,000 USDT held
        if not affordable:
            with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
                client.private_post_order(order)
            return
        placed = client.private_post_order(order)
        assert client.fetch_balance()["USDT"]["used"] == 10_000.0
        _price(server, 49_000.0)
        assert _raw_order(client, placed["orderId"])["status"] == "FILLED"
        assert _held(client, "USDT") == 0 and _held(client, "BTC") == Decimal("0.2") - Decimal("0.0002")
        with pytest.raises(ccxt.InsufficientFunds):  # nothing left to buy with: the affordability check holds
            client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"})


# --- R9.4: outcome unknown, then late execution -------------------------------------------------------------------
@pytest.mark.req("R9.4")
def test_late_execution_answers_1007_and_books_the_order_late_ms_later_as_if_it_arrived_then(
        server: SandboxServer) -> None:
    """rest-api.md, General API Information: "Timeout waiting for response from backend server. Send status unknown;
    execution status unknown." (-1007) "does not always mean that the request failed in the Matching Engine";
    HTTP Return Codes: a 5XX's execution status is UNKNOWN and could have been a success. errors.md -2013 until
    the engine has it."""
    client = _client(server)
    _control(server, "POST", "faults", {"spec": "late_execution=1,late_ms=3000"})
    sent = server.state()["market_time"]
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        client.create_order("BTC/USDT", "market", "buy", 0.01, None, {"newClientOrderId": "rampart-late"})
    _control(server, "POST", "faults", {"spec": ""})
    assert _stats(server)["late_orders"] == [{"clientOrderId": "rampart-late", "symbol": "BTCUSDT", "sent": sent,
                                             "due": sent + 3_000, "outcome": "pending"}]
    _price(server, 61_000.0)  # the market moves before the order reaches the engine
    _control(server, "POST", "advance", {"ms": 2_999})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "rampart-late"})
    assert client.fetch_balance()["USDT"]["free"] == 10_000.0
    _control(server, "POST", "advance", {"ms": 1})
    found = client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "rampart-late"})
    assert found["status"] == "closed" and found["filled"] == 0.01 and found["timestamp"] == sent + 3_000
    assert 61_000 <= found["average"] < 61_010  # it executed at the price of its arrival
    assert _stats(server)["late_orders"][0]["outcome"] == "booked"


@pytest.mark.req("R9.4")
def test_late_execution_in_realtime_is_booked_by_the_background_matcher_without_any_request() -> None:
    """rest-api.md, General API Information (-1007): the order may still execute after the client got the error;
    with the realtime clock nobody needs to ask for it to happen."""
    sets = [_flat("BTCUSDT", 60_000.0, n=20_000)]
    config = SandboxConfig(source=tuple(sets), clock="realtime", speed=60.0, start=sets[0].frame["ts"][HISTORY])
    with SandboxServer(config) as server:
        client = _client(server)
        _control(server, "POST", "faults", {"spec": "late_execution=1,late_ms=1000"})
        with pytest.raises(ccxt.RequestTimeout, match="-1007"):
            client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000, {"newClientOrderId": "rt-late"})
        requests = len(_stats(server)["api_requests"])
        log = server.exchange.late_orders[0]
        deadline = time.monotonic() + 20
        while log["outcome"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log["outcome"] == "booked" and len(_stats(server)["api_requests"]) == requests
        order = server.exchange.account_of(DEMO_API_KEY).orders[log["orderId"]]
        assert order.time >= log["due"] and order.status == "NEW"


@pytest.mark.req("R9.4")
def test_lost_response_still_books_first_then_answers_1007(server: SandboxServer) -> None:
    """rest-api.md, HTTP Return Codes: a 5XX does not mean the request failed; the kept ``lost_response`` fault
    books the order and then answers 503 -1007."""
    client = _client(server)
    _control(server, "POST", "faults", {"spec": "lost_response=1"})
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 55_000, {"newClientOrderId": "rampart-lost2"})
    _control(server, "POST", "faults", {"spec": ""})
    assert client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "rampart-lost2"})["status"] == "open"


# --- R9.5: deterministic one-shot errors --------------------------------------------------------------------------
@pytest.mark.req("R9.5")
def test_injected_errors_fail_exactly_the_next_matching_requests(server: SandboxServer) -> None:
    """errors.md -1008 SERVER_BUSY and -1007 TIMEOUT (served 503: rest-api.md, HTTP Return Codes, 5XX = Binance's
    side), -2010 NEW_ORDER_REJECTED with its message, and a plain 503 from the edge; ``match`` compares parameter
    values case-insensitively and only the matching requests are hit."""
    client = _client(server)
    stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC", "quantity": "0.01",
            "price": "55000", "stopPrice": "56000"}
    limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
             "price": "55000"}

    def inject(error: str, **extra: Any) -> None:
        _control(server, "POST", "inject", {"method": "POST", "path": "/api/v3/order",
                                            "match": {"type": "stop_loss_limit"}, "error": error} | extra)

    inject("busy")
    assert client.private_post_order(limit)["status"] == "NEW"  # not a stop: untouched
    with pytest.raises(ccxt.ExchangeError, match=r"-1008.*Server is currently overloaded with other requests"):
        client.private_post_order(stop)
    assert _stats(server)["api_requests"][-1]["status"] == 503
    inject("unknown")
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        client.private_post_order(stop)
    inject("reject", msg="Stop loss limit orders are not supported for this symbol.")
    with pytest.raises(ccxt.InvalidOrder, match=r"-2010.*Stop loss limit orders are not supported"):
        client.private_post_order(stop)
    inject("server_error")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.private_post_order(stop)
    assert [o["type"] for o in client.fetch_open_orders("BTC/USDT")] == ["limit"]  # none of them was booked
    inject("lost")
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        client.private_post_order(stop | {"newClientOrderId": "inj-lost"})
    assert client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "inj-lost"})["status"] == "open"
    inject("late", late_ms=500)
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        client.private_post_order(stop | {"newClientOrderId": "inj-late", "price": "54000", "stopPrice": "54500"})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "inj-late"})
    _control(server, "POST", "advance", {"ms": 500})
    assert client.fetch_order(None, "BTC/USDT", {"origClientOrderId": "inj-late"})["status"] == "open"
    inject("busy", count=2)
    assert len(_control(server, "GET", "stats")["inject_pending"]) == 1
    _control(server, "DELETE", "inject")
    assert client.private_post_order(stop | {"price": "53000", "stopPrice": "53500"})["orderId"]
    stats = _stats(server)
    assert stats["injected"] == {"busy": 1, "unknown": 1, "reject": 1, "server_error": 1, "lost": 1, "late": 1}
    assert stats["inject_pending"] == []
    bad = httpx.post(server.url + "/sandbox/inject", json={"path": "/api/v3/account", "error": "late"})
    assert bad.status_code == 400 and "POST /api/v3/order" in bad.json()["detail"]


# --- R9.5: 429, Retry-After and 418 bans --------------------------------------------------------------------------
BANNED = re.compile(r"^Way too much request weight used; IP banned until (\d+)\. "
                    r"Please use WebSocket Streams for live updates to avoid bans\.$")


@pytest.mark.req("R9.5")
def test_a_request_before_retry_after_expires_gets_the_ip_banned_and_repeat_bans_double(
        server: SandboxServer) -> None:
    """rest-api.md, LIMITS / IP Limits: "failing to back off after receiving 429s will result in an automated IP
    ban (HTTP status 418)", "from 2 minutes to 3 days" for repeat offenders; Retry-After on a 418 = seconds until
    the ban is over; errors.md -1003 "Way too much request weight used; IP banned until %s."."""
    client = _client(server)
    _control(server, "POST", "inject", {"method": "GET", "path": "/api/v3/account", "error": "rate_limit",
                                        "retry_after": 30})
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        client.fetch_balance()
    assert client.last_response_headers["Retry-After"] == "30"
    with pytest.raises(ccxt.DDoSProtection, match="418"):  # did not wait: banned
        client.fetch_ticker("BTC/USDT")
    banned = httpx.get(server.url + "/api/v3/time", timeout=5)  # during the ban: every /api/v3 request
    assert banned.status_code == 418 and 100 <= int(banned.headers["Retry-After"]) <= 120
    body = banned.json()
    found = BANNED.match(body["msg"])
    assert body["code"] == -1003 and found
    (ban,) = _stats(server)["bans"]
    assert ban["seconds"] == 120 and int(found.group(1)) == ban["until"] == ban["start"] + 120_000
    assert httpx.get(server.url + "/sandbox/state").status_code == 200  # control routes are not the API
    _control(server, "POST", "unban")
    assert client.fetch_time() > 0
    _control(server, "POST", "inject", {"path": "/api/v3/time", "error": "rate_limit", "retry_after": 30})
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        client.fetch_time()
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        client.fetch_time()
    assert [b["seconds"] for b in _stats(server)["bans"]] == [120, 240]  # a repeat offender: doubled


@pytest.mark.req("R9.5")
def test_bans_double_up_to_three_days() -> None:
    """rest-api.md, IP Limits: bans "scale in duration for repeat offenders, from 2 minutes to 3 days"."""
    limits = RateLimits(ban_s=120)
    now = 1_000_000
    seconds = []
    for _ in range(14):
        limits.limited(now, 1)
        refused = limits.refuse(now + 10)
        assert refused is not None
        seconds.append(refused[1])
        limits.unban()
    assert seconds[:4] == [120, 240, 480, 960] and seconds[-1] == 3 * 86_400 and max(seconds) == 3 * 86_400
    assert limits.refuse(now + 20) is None


@pytest.mark.req("R9.5")
def test_a_client_that_waits_out_retry_after_is_not_banned_and_nothing_arrived_before(
        server: SandboxServer) -> None:
    """rest-api.md, IP Limits: "A Retry-After header is sent with a 418 or 429 responses and will give the number
    of seconds required to wait, in the case of a 429, to prevent a ban". Waits 1 s of wall time, as Binance's
    Retry-After is in seconds; asserts only that nothing arrived before it expired."""
    _control(server, "POST", "inject", {"path": "/api/v3/time", "error": "rate_limit", "retry_after": 1})
    first = httpx.get(server.url + "/api/v3/time", timeout=5)
    assert first.status_code == 429 and first.json()["code"] == -1003
    time.sleep(int(first.headers["Retry-After"]))
    again = httpx.get(server.url + "/api/v3/time", timeout=5)
    assert again.status_code == 200
    stats = _stats(server)
    (limited,) = stats["retry_afters"]
    arrivals = [r["t"] for r in stats["api_requests"]]
    assert not [t for t in arrivals if limited["t"] < t < limited["until"]] and stats["bans"] == []


@pytest.mark.req("R9.5")
def test_over_the_weight_limit_a_429_until_the_minute_ends_then_418_for_the_impatient() -> None:
    """rest-api.md, IP Limits: every response carries X-MBX-USED-WEIGHT-1M; over the limit 429 -1003 "Too much
    request weight used; current limit is %s request weight per 1 MINUTE" with Retry-After; sending again before
    it expires gets the 418."""
    for _ in range(3):  # the weight is per wall-clock minute: try again if the minute turned meanwhile
        minute = time.time() // 60
        with _server(weight_limit=50) as server:
            answers = [httpx.get(server.url + "/api/v3/exchangeInfo", timeout=5) for _ in range(3)]
            nxt = httpx.get(server.url + "/api/v3/ping", timeout=5)
            bans = _stats(server)["bans"]
        if time.time() // 60 == minute:
            break
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-MBX-USED-WEIGHT-1M"] for a in answers] == ["20", "40", "60"]
    assert answers[2].json()["msg"].startswith("Too much request weight used; current limit is 50 request")
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert nxt.status_code == 418 and nxt.json()["code"] == -1003 and bans[0]["seconds"] == 120


# --- R9.5: timestamps ---------------------------------------------------------------------------------------------
@pytest.mark.req("R9.5")
def test_timing_security_boundaries_as_documented() -> None:
    """rest-api.md, Timing security: processed only if timestamp < serverTime + 1000 and serverTime - timestamp
    <= recvWindow (default 5000); else -1021 (errors.md: "...outside of the recvWindow." / "...1000ms ahead of the
    server's time."). Timestamps may be in microseconds (General API Information)."""
    keys = KeyRing()
    keys.add("k", "s", "k")
    auth = Authenticator(keys, 60_000)
    server = 1_700_000_000_000

    def check(timestamp: int, window: str | None = None) -> str:
        params = {"timestamp": str(timestamp)} | ({"recvWindow": window} if window else {})
        query = urlencode(params)
        try:
            auth.verify("k", f"{query}&signature={hmac_hex('s', query)}", "", params, server)
        except BinanceError as exc:
            return exc.msg
        return "ok"

    ahead = "Timestamp for this request was 1000ms ahead of the server's time."
    outside = "Timestamp for this request is outside of the recvWindow."
    assert check(server + 999) == "ok" and check(server + 1_000) == ahead
    assert check(server - 5_000) == "ok" and check(server - 5_001) == outside
    assert check(server - 9_000, "10000") == "ok" and check(server - 10_001, "10000") == outside
    assert check((server - 4_000) * 1_000) == "ok" and check((server + 2_000) * 1_000) == ahead  # microseconds


@pytest.mark.req("R9.5")
def test_clock_skew_shifts_server_time_and_the_timestamp_checks(server: SandboxServer) -> None:
    """rest-api.md, Timing security (-1021 both ways) and Check server time (GET /api/v3/time): a client whose
    clock is off by more than recvWindow is refused until it measures the offset from the server's time."""
    client = _client(server)
    _control(server, "POST", "clock-skew", {"ms": 20_000})  # the server is 20 s ahead of this machine
    assert abs(client.fetch_time() - (time.time() * 1000 + 20_000)) < 5_000
    with pytest.raises(ccxt.InvalidNonce, match=r"-1021.*outside of the recvWindow"):
        client.fetch_balance()
    _control(server, "POST", "clock-skew", {"ms": -20_000})  # now 20 s behind
    with pytest.raises(ccxt.InvalidNonce, match=r"-1021.*1000ms ahead of the server's time"):
        client.fetch_balance()
    client.load_time_difference()  # the client measures the offset and signs with the server's time
    assert client.fetch_balance()["USDT"]["free"] == 10_000.0
    assert _stats(server)["clock_skew_ms"] == -20_000


# --- R9.5: market closed ------------------------------------------------------------------------------------------
@pytest.mark.req("R9.5")
def test_a_symbol_not_trading_refuses_new_orders_market_closed_and_cancels_still_work(
        server: SandboxServer) -> None:
    """enums.md, Symbol status (TRADING, END_OF_DAY, HALT, BREAK, CANCEL_ONLY) shown by exchangeInfo; errors.md,
    -1013 and the order-placement messages: "Market is closed." - The symbol is not trading. Nothing trades while
    it is closed: a resting order fills only when trading resumes."""
    client = _client(server)
    resting = client.create_order("BTC/USDT", "limit", "buy", 0.01, 59_000)
    spare = client.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000)
    _control(server, "POST", "symbol-status", {"symbol": "BTCUSDT", "status": "BREAK"})
    assert client.cancel_order(spare["id"], "BTC/USDT")["status"] == "canceled"
    info = client.public_get_exchangeinfo({"symbol": "BTCUSDT"})["symbols"][0]
    assert info["status"] == "BREAK" and client.load_markets(reload=True)["BTC/USDT"]["active"] is False
    with pytest.raises(ccxt.MarketClosed, match="Market is closed"):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 58_000)
    with pytest.raises(ccxt.MarketClosed):
        client.create_order("BTC/USDT", "market", "sell", 0.01)
    with pytest.raises(BinanceError) as refused:  # the code and status ccxt read it from
        server.exchange.place_order(DEMO_API_KEY, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                   "quantity": "0.01"})
    assert (refused.value.code, refused.value.msg, refused.value.status) == (-1013, "Market is closed.", 400)
    _control(server, "POST", "symbol-status", {"symbol": "BTCUSDT", "status": "HALT"})
    _price(server, 58_500.0)  # under its limit, but the market is halted
    assert client.fetch_order(resting["id"], "BTC/USDT")["status"] == "open"
    another = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    _control(server, "POST", "symbol-status", {"symbol": "BTCUSDT", "status": "TRADING"})
    kept = client.private_post_order(another | {"quantity": "0.01", "price": "50000"})
    _control(server, "POST", "symbol-status", {"symbol": "BTCUSDT", "status": "CANCEL_ONLY"})
    assert client.cancel_order(str(kept["orderId"]), "BTC/USDT")["status"] == "canceled"
    _control(server, "POST", "symbol-status", {"symbol": "BTCUSDT", "status": "TRADING"})
    _control(server, "POST", "advance", {"ms": 1_000})
    done = client.fetch_order(resting["id"], "BTC/USDT")
    assert done["status"] == "closed" and done["average"] == 59_000
    assert _stats(server)["symbol_status"] == {"BTCUSDT": "TRADING"}


# --- R9.5: PERCENT_PRICE_BY_SIDE and MAX_NUM_ALGO_ORDERS ----------------------------------------------------------
@pytest.mark.req("R9.5")
def test_percent_price_by_side_bounds_prices_by_the_side_multipliers_of_the_5_minute_average() -> None:
    """filters.md, PERCENT_PRICE_BY_SIDE: a BUY passes if avg x bidMultiplierDown <= price <= avg x bidMultiplierUp,
    a SELL with the ask multipliers, avg being the price over the last avgPriceMins minutes (rest-api.md, Current
    average price); errors.md, Filter failures, -1013. The stopPrice is bound by PRICE_FILTER only."""
    with _server({"BTCUSDT": 100.0}, percent_price_by_side=(1.1, 0.9, 1.3, 0.8),
                 balances={"USDT": 10_000.0, "BTC": 10.0}) as server:
        client = _client(server)
        (rule,) = [f for f in client.public_get_exchangeinfo()["symbols"][0]["filters"]
                   if f["filterType"] == "PERCENT_PRICE_BY_SIDE"]
        assert rule == {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "1.1", "bidMultiplierDown": "0.9",
                        "askMultiplierUp": "1.3", "askMultiplierDown": "0.8", "avgPriceMins": 5}
        _price(server, 120.0)  # a jump: the 5-minute average is still 100
        assert client.public_get_avgprice({"symbol": "BTCUSDT"})["price"] == "100.00000000"

        def limit(side: str, price: str, **extra: str) -> Any:
            return client.private_post_order({"symbol": "BTCUSDT", "side": side, "type": "LIMIT",
                                              "timeInForce": "GTC", "quantity": "0.1", "price": price} | extra)

        assert limit("BUY", "110")["status"] == "NEW"  # <= 100 x 1.1, though the market is at 120
        for side, price in (("BUY", "110.01"), ("BUY", "89.99"), ("SELL", "130.01"), ("SELL", "79.99")):
            with pytest.raises(ccxt.InvalidOrder, match="Filter failure: PERCENT_PRICE_BY_SIDE"):
                limit(side, price)
        assert limit("SELL", "130")["status"] == "NEW" and limit("BUY", "90")["status"] == "NEW"
        stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC",
                "quantity": "0.1"}
        with pytest.raises(ccxt.InvalidOrder, match="PERCENT_PRICE_BY_SIDE"):
            client.private_post_order(stop | {"stopPrice": "85", "price": "79"})
        assert client.private_post_order(stop | {"stopPrice": "75", "price": "80"})["orderId"]  # stopPrice: free
        _control(server, "POST", "advance", {"ms": 5 * MIN})  # five minutes at 120: the average follows
        assert client.public_get_avgprice({"symbol": "BTCUSDT"})["price"] == "120.00000000"
        assert limit("BUY", "130")["status"] == "FILLED"


@pytest.mark.req("R9.5")
def test_max_num_algo_orders_counts_the_open_stop_orders_of_the_symbol(server: SandboxServer) -> None:
    """filters.md, MAX_NUM_ALGO_ORDERS: "the maximum number of 'algo' orders an account is allowed to have open on
    a symbol", algo = STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT; MAX_NUM_ORDERS counts both kinds;
    errors.md, Filter failures: "Filter failure: MAX_NUM_ALGO_ORDERS" (-1013)."""
    client = _client(server)
    filters = {f["filterType"]: f for f in client.public_get_exchangeinfo()["symbols"][0]["filters"]}
    assert filters["MAX_NUM_ALGO_ORDERS"]["maxNumAlgoOrders"] == 5 and filters["MAX_NUM_ORDERS"]["maxNumOrders"] == 200
    stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC", "quantity": "0.01"}
    ids = [client.private_post_order(stop | {"stopPrice": str(59_000 - k * 100), "price": str(58_980 - k * 100)}
                                     )["orderId"] for k in range(5)]
    for extra in ({"type": "STOP_LOSS_LIMIT", "stopPrice": "50000", "price": "49900"},
                  {"type": "TAKE_PROFIT", "stopPrice": "61000", "price": "", "timeInForce": ""},
                  {"type": "TAKE_PROFIT_LIMIT", "stopPrice": "61000", "price": "61100"}):
        with pytest.raises(ccxt.BadRequest, match=r"-1013.*Filter failure: MAX_NUM_ALGO_ORDERS"):
            client.private_post_order({k: v for k, v in (stop | extra).items() if v})
    assert client.create_order("BTC/USDT", "limit", "buy", 0.01, 50_000)["status"] == "open"  # not algo
    client.cancel_order(str(ids[0]), "BTC/USDT")
    assert client.private_post_order(stop | {"stopPrice": "50000", "price": "49900"})["orderId"]
    _price(server, 58_850.0)  # the highest stop triggers past its limit: still an open STOP_LOSS_LIMIT
    assert _raw_order(client, str(ids[1]))["isWorking"] is True
    with pytest.raises(ccxt.BadRequest, match="MAX_NUM_ALGO_ORDERS"):
        client.private_post_order(stop | {"stopPrice": "48000", "price": "47900"})


# --- R9.5: self-trade prevention ----------------------------------------------------------------------------------
def _sell_at(client: ccxt.binance, price: str, qty: str = "0.01", **extra: str) -> dict[str, Any]:
    """A resting SELL limit of this account inside the spread (the path is at 60,000, the ask 60,003)."""
    order: dict[str, Any] = client.private_post_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                                       "timeInForce": "GTC", "quantity": qty, "price": price} | extra)
    assert order["status"] == "NEW"
    return order


def _buy(client: ccxt.binance, **params: str) -> dict[str, Any]:
    order: dict[str, Any] = client.private_post_order({"symbol": "BTCUSDT", "side": "BUY", **params})
    return order


@pytest.mark.req("R9.5")
def test_self_trade_prevention_expires_per_the_takers_mode(server: SandboxServer) -> None:
    """faqs/stp_faq.md: the taker's mode decides; EXPIRE_MAKER (the symbol's default) expires the resting order,
    EXPIRE_TAKER the incoming one, EXPIRE_BOTH both, with status EXPIRED_IN_MATCH (enums.md) and preventedMatchId /
    preventedQuantity (rest-api.md, Conditional fields in Order Responses); the new-order response lists
    preventedMatches. A mode the symbol does not allow is refused with -1013."""
    client = _client(server)
    info = client.public_get_exchangeinfo()["symbols"][0]
    assert info["defaultSelfTradePreventionMode"] == "EXPIRE_MAKER"
    assert info["allowedSelfTradePreventionModes"] == ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT",
                                                       "TRANSFER"]
    maker = _sell_at(client, "60001")
    taker = first = _buy(client, type="MARKET", quantity="0.02")  # default mode EXPIRE_MAKER
    assert taker["status"] == "FILLED" and taker["executedQty"] == "0.02000000"
    assert [f["price"] for f in taker["fills"]] == ["60003.00000000"]  # the book beyond the own order
    assert taker["preventedMatches"] == [{"preventedMatchId": 0, "makerOrderId": maker["orderId"],
                                          "price": "60001.00000000", "makerPreventedQuantity": "0.01000000"}]
    expired = _raw_order(client, maker["orderId"])
    assert (expired["status"], expired["preventedMatchId"], expired["preventedQuantity"]) == (
        "EXPIRED_IN_MATCH", 0, "0.01000000")
    assert client.fetch_order(str(maker["orderId"]), "BTC/USDT")["status"] == "expired"

    maker = _sell_at(client, "60001")
    taker = _buy(client, type="LIMIT", timeInForce="GTC", quantity="0.02", price="60005",
                 selfTradePreventionMode="EXPIRE_TAKER")
    assert (taker["status"], taker["executedQty"], taker["preventedQuantity"]) == (
        "EXPIRED_IN_MATCH", "0.00000000", "0.02000000")
    assert taker["preventedMatches"][0]["takerPreventedQuantity"] == "0.02000000"
    assert _raw_order(client, maker["orderId"])["status"] == "NEW"
    assert client.fetch_balance()["USDT"]["used"] == 0  # the expired taker's lock is back

    taker = _buy(client, type="LIMIT", timeInForce="GTC", quantity="0.02", price="60005",
                 selfTradePreventionMode="EXPIRE_BOTH")
    assert taker["status"] == "EXPIRED_IN_MATCH" and _raw_order(client, maker["orderId"])["status"] == (
        "EXPIRED_IN_MATCH")
    assert "preventedMatchId" not in _raw_order(client, first["orderId"])  # a taker that only filled: none
    with pytest.raises(ccxt.BadRequest, match=r"-1013.*does not allow the specified self-trade prevention mode"):
        _buy(client, type="MARKET", quantity="0.01", selfTradePreventionMode="NONE")
    prevented = client.private_get_mypreventedmatches({"symbol": "BTCUSDT", "orderId": taker["orderId"]})
    assert [(p["selfTradePreventionMode"], p["takerOrderId"]) for p in prevented] == [
        ("EXPIRE_BOTH", taker["orderId"])]


@pytest.mark.req("R9.5")
def test_self_trade_prevention_decrement_prevents_the_smaller_quantity_on_both(server: SandboxServer) -> None:
    """faqs/stp_faq.md, DECREMENT (Scenario G): "increases the prevented quantity of both orders by the amount of
    the prevented match. The smaller of the two orders will expire"; original - executed - prevented is what
    remains; TRANSFER between orders of one account behaves as DECREMENT."""
    client = _client(server)
    maker = _sell_at(client, "60001", qty="0.05")
    taker = _buy(client, type="LIMIT", timeInForce="GTC", quantity="0.02", price="60001",
                 selfTradePreventionMode="DECREMENT")
    assert (taker["status"], taker["preventedQuantity"]) == ("EXPIRED_IN_MATCH", "0.02000000")
    left = _raw_order(client, maker["orderId"])
    assert (left["status"], left["preventedQuantity"], left["executedQty"]) == ("NEW", "0.02000000", "0.00000000")
    taker = _buy(client, type="MARKET", quantity="0.04", selfTradePreventionMode="TRANSFER")
    assert taker["status"] == "FILLED" and taker["executedQty"] == "0.01000000"  # 0.03 prevented, 0.01 bought
    assert taker["preventedQuantity"] == "0.03000000"
    assert _raw_order(client, maker["orderId"])["status"] == "EXPIRED_IN_MATCH"
    assert client.fetch_balance()["BTC"]["used"] == 0  # the expired maker holds nothing any more


# --- R9.3 / R9.5: a stop-limit gapped through --------------------------------------------------------------------
@pytest.mark.req("R9.3")
def test_a_stop_limit_gapped_through_triggers_and_works_on_the_book_but_stays_new(server: SandboxServer) -> None:
    """rest-api.md, Query order: ``isWorking`` / ``workingTime`` (-1 until the order is on the book); a
    STOP_LOSS_LIMIT "will execute" as a LIMIT at ``price`` once ``stopPrice`` is reached: gapped past its limit,
    it rests there, triggered but unfilled, status NEW, until the price comes back."""
    client = _client(server)
    stop = client.create_order("BTC/USDT", "limit", "sell", 0.01, 57_900, {"stopLossPrice": 58_000})
    before = _raw_order(client, stop["id"])
    assert (before["isWorking"], before["workingTime"], before["stopPrice"]) == (False, -1, "58000.00000000")
    _price(server, 57_000.0)  # one jump through the stop and the limit
    gap_time = server.state()["market_time"]
    after = _raw_order(client, stop["id"])
    assert (after["status"], after["isWorking"], after["workingTime"], after["updateTime"]) == (
        "NEW", True, gap_time, gap_time)
    assert (after["type"], after["executedQty"], after["time"]) == ("STOP_LOSS_LIMIT", "0.00000000", before["time"])
    assert client.fetch_order(stop["id"], "BTC/USDT")["status"] == "open"
    assert client.fetch_balance()["BTC"]["used"] == 0.01  # still locked: it can fill
    _control(server, "POST", "advance", {"ms": MIN})
    assert _raw_order(client, stop["id"])["status"] == "NEW"
    _price(server, 57_950.0)  # back above the limit: it fills there, as the maker
    done = _raw_order(client, stop["id"])
    assert done["status"] == "FILLED" and Decimal(done["cummulativeQuoteQty"]) == Decimal("579.00")
    assert client.fetch_my_trades("BTC/USDT")[-1]["takerOrMaker"] == "maker"
