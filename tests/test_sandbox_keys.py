"""API key permissions in the sandbox, as Binance models them, through the REAL ccxt client on the manual clock:
read-only keys (USER_DATA reads work, TRADE endpoints answer 401 -2015 and book nothing), keys with withdrawals
enabled, GET /sapi/v1/account/apiRestrictions, the account's canTrade / canWithdraw, a test order's
computeCommissionRates, and POST /sandbox/keys (R9.8; the -2015 refusal R9.5). Each test cites the section of
../shared/binance-docs it follows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import ccxt
import httpx
import pytest

from core.errors import ConfigError
from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, KeyPermissions, SandboxConfig, SandboxServer
from core.sandbox.auth import hmac_hex
from tests.helpers import candles

FAST: dict[str, Any] = {"enableRateLimit": False, "timeout": 5_000}
RO_KEY, RO_SECRET = "read-only-key", "read-only-secret"
WD_KEY, WD_SECRET = "withdraw-key", "withdraw-secret"
REFUSED = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
MARKET_BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
RESTRICTION_FLAGS = ("enableInternalTransfer", "enableMargin", "enableFutures", "permitsUniversalTransfer",
                     "enableVanillaOptions", "enableFixApiTrade", "enableFixReadOnly", "enablePortfolioMarginTrading")


def _server(**overrides: Any) -> SandboxServer:
    """A manual-clock sandbox on flat 1-minute BTCUSDT candles at 60,000 with three keys (three accounts): the
    demo key (default permissions), a read-only key and a key with withdrawals enabled."""
    btc = candles([(60_000.0,) * 4] * 180, "BTCUSDT", tf="1m", volume=50.0)
    settings: dict[str, Any] = {
        "source": (btc,), "clock": "manual", "start": btc.frame["ts"][60],
        "balances": {"USDT": 10_000.0, "BTC": 1.0},
        "api_keys": {DEMO_API_KEY: DEMO_API_SECRET, RO_KEY: RO_SECRET, WD_KEY: WD_SECRET},
        "key_permissions": {RO_KEY: KeyPermissions(trading=False), WD_KEY: KeyPermissions(withdrawals=True)},
    } | overrides
    return SandboxServer(SandboxConfig(**settings))


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with _server() as srv:
        yield srv


def _client(server: SandboxServer, key: str = DEMO_API_KEY, secret: str = DEMO_API_SECRET) -> ccxt.binance:
    return server.client(key, secret, **FAST)


def _control(server: SandboxServer, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, server.url + "/sandbox/" + path, json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def _refused_body(client: ccxt.binance, exc: ccxt.BaseError) -> None:
    """The refusal is Binance's, byte for byte: HTTP 401 and -2015."""
    assert client.last_http_response is not None and json.loads(client.last_http_response) == REFUSED
    assert str(exc) == 'binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'


@pytest.mark.req("R9.8")
@pytest.mark.req("R9.5")
def test_a_read_only_key_reads_but_every_trade_endpoint_answers_2015_and_nothing_is_booked(
        server: SandboxServer) -> None:
    """rest-api.md, Request Security: "API keys can be configured to allow access only to certain types of secure
    endpoints"; USER_DATA (account, account/commission, openOrders, myTrades) works with a read-only key, TRADE
    (New order, Test new order, Cancel order, Cancel All Open Orders) answers errors.md -2015 REJECTED_MBX_KEY with
    HTTP 401, counted as an auth failure of that key, and nothing reaches the engine."""
    client = _client(server, RO_KEY, RO_SECRET)  # fresh: no private call succeeded yet
    with pytest.raises(ccxt.AuthenticationError) as refused:
        client.create_order("BTC/USDT", "market", "buy", 0.001)
    assert type(refused.value) is ccxt.AuthenticationError  # ccxt's table: -2015 -> AuthenticationError
    _refused_body(client, refused.value)
    for attempt in (lambda: client.private_post_order_test(MARKET_BUY),
                    lambda: client.private_delete_order({"symbol": "BTCUSDT", "orderId": "1"}),
                    lambda: client.private_delete_openorders({"symbol": "BTCUSDT"})):
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            attempt()
    payload = urlencode(MARKET_BUY | {"timestamp": str(server.service.server_ms())})
    raw = httpx.post(server.url + "/api/v3/order", content=f"{payload}&signature={hmac_hex(RO_SECRET, payload)}",
                     headers={"X-MBX-APIKEY": RO_KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert (raw.status_code, raw.json()) == (401, REFUSED)
    stats = server.stats()
    assert stats["auth_failures"] == {RO_KEY: 5} and stats["auth_failure_codes"] == {"-2015": 5}
    assert RO_KEY not in stats["auth_calls"] and stats["orders_placed"] == {}

    account = client.private_get_account()
    balances = {b["asset"]: (b["free"], b["locked"]) for b in account["balances"]}
    assert balances["USDT"] == ("10000.00000000", "0.00000000") and balances["BTC"] == ("1.00000000", "0.00000000")
    assert (account["canTrade"], account["canWithdraw"], account["canDeposit"]) == (False, False, True)
    assert client.private_get_account_commission({"symbol": "BTCUSDT"})["symbol"] == "BTCUSDT"
    assert client.fetch_open_orders("BTC/USDT") == [] and client.fetch_my_trades("BTC/USDT") == []
    state = server.state()["accounts"][RO_KEY]
    assert (state["orders"], state["trades"], state["open_orders"]) == (0, 0, [])
    assert state["key_permissions"] == {RO_KEY: {"reading": True, "trading": False, "withdrawals": False,
                                                 "ip_restrict": True}}
    assert server.stats()["auth_calls"] == {RO_KEY: 4}  # the reads; the refusals are failures only


@pytest.mark.req("R9.8")
@pytest.mark.req("R9.5")
def test_after_a_successful_private_call_ccxt_turns_2015_into_ddos_protection(server: SandboxServer) -> None:
    """ccxt binance treats -2015 after the client's first successful private call as a temporary ban
    (options['hasAlreadyAuthenticatedSuccessfully'] -> DDoSProtection, a NetworkError): a preflight that reads
    the account first must not retry a permission refusal as if it were a network fault. The wire is the same."""
    client = _client(server, RO_KEY, RO_SECRET)
    assert client.fetch_balance()["USDT"]["free"] == 10_000.0
    assert client.options["hasAlreadyAuthenticatedSuccessfully"] is True
    with pytest.raises(ccxt.DDoSProtection) as refused:
        client.create_order("BTC/USDT", "market", "buy", 0.001)
    assert isinstance(refused.value, ccxt.NetworkError) and not isinstance(refused.value, ccxt.AuthenticationError)
    _refused_body(client, refused.value)
    sapi_only = _client(server, RO_KEY, RO_SECRET)
    sapi_only.sapi_get_account_apirestrictions()  # a SAPI success does not set the flag (ccxt: api 'private' only)
    with pytest.raises(ccxt.AuthenticationError):
        sapi_only.create_order("BTC/USDT", "market", "buy", 0.001)
    assert server.stats()["orders_placed"] == {}


@pytest.mark.req("R9.8")
def test_a_read_only_key_on_the_trading_account_sees_its_orders_but_cannot_cancel_them(
        server: SandboxServer) -> None:
    """rest-api.md, Request Security: "a separate API key with USER_DATA permission to monitor your order status":
    GET order / openOrders / myTrades of the account work, DELETE order / openOrders (TRADE) answer -2015."""
    _control(server, "POST", "keys", {"api_key": "watcher", "secret": "watcher-secret", "trading": False})
    trader, watcher = _client(server), _client(server, "watcher", "watcher-secret")
    resting = trader.create_order("BTC/USDT", "limit", "buy", 0.001, 59_000)
    trader.create_order("BTC/USDT", "market", "buy", 0.001)
    assert watcher.fetch_order(resting["id"], "BTC/USDT")["status"] == "open"
    assert [o["id"] for o in watcher.fetch_open_orders("BTC/USDT")] == [resting["id"]]
    assert len(watcher.fetch_my_trades("BTC/USDT")) >= 1
    for cancel in (lambda: watcher.cancel_order(resting["id"], "BTC/USDT"),
                   lambda: watcher.private_delete_openorders({"symbol": "BTCUSDT"})):
        with pytest.raises(ccxt.DDoSProtection, match="-2015"):  # the watcher already read successfully
            cancel()
    assert trader.fetch_order(resting["id"], "BTC/USDT")["status"] == "open"
    assert server.stats()["auth_failures"] == {"watcher": 2}


@pytest.mark.req("R9.8")
def test_api_restrictions_answer_binances_shape_on_the_sapi_weight_only(server: SandboxServer) -> None:
    """Binance wallet docs, Get API Key Permission (USER_DATA), GET /sapi/v1/account/apiRestrictions, weight(IP) 1,
    counted on the SAPI meter (X-SAPI-USED-IP-WEIGHT-1M), not in /api/v3's X-MBX-USED-WEIGHT-1M. The default key
    reads and trades spot, cannot withdraw and is IP-restricted; every flag the sandbox has no notion of is false."""
    restrictions: dict[str, dict[str, Any]] = {}
    for key, secret in ((DEMO_API_KEY, DEMO_API_SECRET), (RO_KEY, RO_SECRET), (WD_KEY, WD_SECRET)):
        client = _client(server, key, secret)
        restrictions[key] = client.sapi_get_account_apirestrictions()
        headers = {k.lower(): v for k, v in client.last_response_headers.items()}
        assert "x-mbx-used-weight-1m" not in headers and "x-sapi-used-ip-weight-1m" in headers
    assert server.stats()["weight_used_1m"] == 0  # nothing reached the /api/v3 meter
    assert 1 <= server.stats()["sapi_weight_used_1m"] <= 3  # weight 1 each (3 unless the wall minute turned)
    trader = restrictions[DEMO_API_KEY]
    assert list(trader) == ["ipRestrict", "createTime", "enableReading", "enableWithdrawals",
                            "enableInternalTransfer", "enableMargin", "enableFutures", "permitsUniversalTransfer",
                            "enableVanillaOptions", "enableFixApiTrade", "enableFixReadOnly",
                            "enableSpotAndMarginTrading", "enablePortfolioMarginTrading"]
    expected = {DEMO_API_KEY: (True, False), RO_KEY: (False, False), WD_KEY: (True, True)}
    for key, (trading, withdrawals) in expected.items():
        got = restrictions[key]
        assert (got["enableSpotAndMarginTrading"], got["enableWithdrawals"]) == (trading, withdrawals)
        assert got["enableReading"] is True and got["ipRestrict"] is True
        assert not any(got[flag] for flag in RESTRICTION_FLAGS)
        assert isinstance(got["createTime"], int) and got["createTime"] <= server.service.server_ms()
    withdrawer = _client(server, WD_KEY, WD_SECRET).private_get_account()
    assert (withdrawer["canTrade"], withdrawer["canWithdraw"]) == (True, True)
    assert (_client(server).private_get_account()["canWithdraw"]) is False


@pytest.mark.req("R9.8")
def test_api_restrictions_are_signed_like_every_user_data_endpoint(server: SandboxServer) -> None:
    """rest-api.md, SIGNED Endpoint security: without a known X-MBX-APIKEY -2015 (401), with a bad signature
    -1022; both are auth failures."""
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        _client(server, "nobody", "nothing").sapi_get_account_apirestrictions()
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        _client(server, RO_KEY, "wrong-secret").sapi_get_account_apirestrictions()
    assert httpx.get(server.url + "/sapi/v1/account/apiRestrictions").status_code == 401
    assert server.stats()["auth_failure_codes"] == {"-2015": 2, "-1022": 1}


@pytest.mark.req("R9.8")
@pytest.mark.parametrize(("commission", "enabled"), [("base", False), ("bnb", True)])
def test_a_test_order_computes_commission_rates_with_the_bnb_discount_flag(commission: str, enabled: bool) -> None:
    """rest-api.md, Test new order (TRADE): without computeCommissionRates the answer is {} at weight 1; with it
    the order's standard, special and tax commission (maker, taker) and the BNB discount at weight 20
    (faqs/commission_faq.md, test order differences); the discount is enabled for the account when BNB pays."""
    with _server(commission=commission, maker_fee=0.0008, taker_fee=0.001) as server:
        client = _client(server)
        assert client.private_post_order_test(MARKET_BUY) == {}
        assert client.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "1"  # the first request of the server
        rates = client.private_post_order_test(MARKET_BUY | {"computeCommissionRates": True})
        assert client.last_response_headers["X-MBX-USED-WEIGHT-1M"] in ("21", "20")  # 20 (the minute may turn)
        zero = {"maker": "0.00000000", "taker": "0.00000000"}
        assert rates == {
            "standardCommissionForOrder": {"maker": "0.00080000", "taker": "0.00100000"},
            "specialCommissionForOrder": zero, "taxCommissionForOrder": zero,
            "discount": {"enabledForAccount": enabled, "enabledForSymbol": True, "discountAsset": "BNB",
                         "discount": "0.25000000"},
        }
        assert client.private_post_order_test(MARKET_BUY | {"computeCommissionRates": "false"}) == {}
        with pytest.raises(ccxt.BadRequest, match="-1100"):
            client.private_post_order_test(MARKET_BUY | {"computeCommissionRates": "yes"})
        with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):  # still validated as a new order (filters)
            client.private_post_order_test(MARKET_BUY | {"quantity": "0.00001", "computeCommissionRates": True})
        assert server.stats()["orders_placed"] == {} and server.state()["accounts"][DEMO_API_KEY]["orders"] == 0


@pytest.mark.req("R9.8")
def test_post_sandbox_keys_adds_and_replaces_a_key_with_its_permissions(server: SandboxServer) -> None:
    """POST /sandbox/keys: a key on the first configured key's account unless told; "trading", "withdrawals",
    "ip_restrict" (and "reading", which Binance never turns off) set what Binance's API Management page would;
    posting the key again replaces its permissions. The answer and the state never carry the secret."""
    added = httpx.post(server.url + "/sandbox/keys", json={"api_key": "ops", "secret": "ops-secret-123",
                                                            "trading": False, "ip_restrict": False}, timeout=5)
    assert added.status_code == 200 and "ops-secret-123" not in added.text
    assert added.json() == {"api_key": "ops", "account": DEMO_API_KEY}
    assert server.state()["accounts"][DEMO_API_KEY]["key_permissions"]["ops"] == {
        "reading": True, "trading": False, "withdrawals": False, "ip_restrict": False}
    ops = _client(server, "ops", "ops-secret-123")
    first = ops.sapi_get_account_apirestrictions()
    assert (first["enableSpotAndMarginTrading"], first["ipRestrict"]) == (False, False)
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        ops.create_order("BTC/USDT", "market", "buy", 0.001)

    _control(server, "POST", "keys", {"api_key": "ops", "secret": "ops-secret-123", "withdrawals": True})
    again = ops.sapi_get_account_apirestrictions()
    assert (again["enableSpotAndMarginTrading"], again["enableWithdrawals"], again["ipRestrict"]) == (True, True, True)
    assert again["createTime"] == first["createTime"]  # the same key, edited
    bought = ops.create_order("BTC/USDT", "market", "buy", 0.001)
    assert bought["status"] == "closed"
    assert _client(server).fetch_order(bought["id"], "BTC/USDT")["filled"] == 0.001  # the demo account's order

    _control(server, "POST", "keys", {"api_key": "blind", "secret": "blind-secret", "reading": False})
    blind = _client(server, "blind", "blind-secret")
    for read in (blind.private_get_account, blind.sapi_get_account_apirestrictions):  # USER_DATA needs reading
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            read()
    on_other = _control(server, "POST", "keys", {"api_key": "wd2", "secret": "s-2", "account": WD_KEY})
    assert on_other["account"] == WD_KEY
    state = server.state()
    assert state["accounts"][DEMO_API_KEY]["keys"] == [DEMO_API_KEY, "ops", "blind"]
    assert state["accounts"][WD_KEY]["key_permissions"]["wd2"]["trading"] is True
    assert "ops-secret-123" not in str(state) + str(server.stats())
    bad = httpx.post(server.url + "/sandbox/keys", json={"api_key": "x", "secret": "bad-secret-9", "trading": "maybe"})
    assert bad.status_code == 422 and "bad-secret-9" not in bad.text


@pytest.mark.req("R9.8")
def test_key_permissions_must_name_configured_keys_and_stay_out_of_secrets() -> None:
    """SandboxConfig: a key_permissions entry for a key not in api_keys is a ConfigError naming it; permissions
    are booleans; the repr shows the keys' permissions, never their secrets."""
    with pytest.raises(ConfigError, match="key_permissions names API key 'ghost', which is not in api_keys"):
        SandboxConfig(api_keys={"k1": "s1"}, key_permissions={"ghost": KeyPermissions(trading=False)})
    with pytest.raises(ConfigError, match="must be a KeyPermissions"):
        SandboxConfig(api_keys={"k1": "s1"}, key_permissions={"k1": {"trading": False}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="trading='no' must be true or false"):
        KeyPermissions(trading="no")  # type: ignore[arg-type]
    config = SandboxConfig(api_keys={"k1": "secret-one", "k2": "secret-two"},
                           key_permissions={"k2": KeyPermissions(trading=False, withdrawals=True)})
    assert config.permissions("k1") == KeyPermissions(reading=True, trading=True, withdrawals=False, ip_restrict=True)
    assert config.permissions("k2").withdrawals and not config.permissions("k2").trading
    assert "secret-one" not in repr(config) and "secret-two" not in repr(config) and "trading=False" in repr(config)
