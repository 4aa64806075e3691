"""Order lists (OTO, OPO) and cancelReplace on the sandbox, through the REAL ccxt.binance client (R9.3).

The entry and its protective stop go to the exchange in one request (POST /api/v3/orderList/oto or /opo: a
marketable LIMIT IOC working BUY and a STOP_LOSS_LIMIT pending SELL); an exit replaces the stop with a market sell
in one request (POST /api/v3/order/cancelReplace). ccxt has no unified method for either: its implicit API methods
``privatePostOrderListOto``, ``privatePostOrderListOpo``, ``privatePostOrderCancelReplace``,
``privateGetOrderList``, ``privateGetOpenOrderList`` and ``privateDeleteOrderList`` send them signed, as the broker
will. Manual clock: prices move only when the test moves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import ccxt
import httpx
import pytest

from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig, SandboxServer
from core.sandbox.auth import request_weight

pytestmark = pytest.mark.req("R9.3")

FAST: dict[str, Any] = {"enableRateLimit": False, "timeout": 5_000}
PRICE = 40_000.0
STOP, STOP_LIMIT = "39200.00", "39000.00"  # the pending stop: triggers at 39,200, sells down to 39,000
QTY = Decimal("0.01")
STEP = Decimal("0.00001")  # BTCUSDT's LOT_SIZE step in the sandbox
TAKER = Decimal("0.001")


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(clock="manual", synthetic_days=2.0, warmup_days=1.0)) as srv:
        _control(srv, "price", {"symbol": "BTCUSDT", "price": PRICE})
        yield srv


@pytest.fixture
def client(server: SandboxServer) -> ccxt.binance:
    exchange = server.client(DEMO_API_KEY, DEMO_API_SECRET, **FAST)
    exchange.load_markets()
    return exchange


def _control(server: SandboxServer, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{server.url}/sandbox/{path}", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def _price(server: SandboxServer, price: float) -> None:
    _control(server, "price", {"symbol": "BTCUSDT", "price": price})


def sellable_after_fee(qty: Decimal, fills: int = 1) -> Decimal:
    """What a client should give an OTO's pending SELL when the BUY's commission is charged in the coin bought
    (Binance without BNB fees): the quantity less the taker commission, each fill's rounded up to 8 places, floored
    to the lot step. (An OPO needs no such sizing: the exchange takes what the BUY received.)"""
    fee = (qty * TAKER).quantize(Decimal("0.00000001"), ROUND_UP) + Decimal("0.00000001") * (fills - 1)
    return ((qty - fee) / STEP).to_integral_value(ROUND_DOWN) * STEP


def _oto(client: ccxt.binance, *, working_price: str = "40100.00", tif: str = "IOC", pending_qty: Decimal | None,
         opo: bool = False, **extra: str | None) -> dict[str, Any]:
    """Place an OTO (or OPO) entry; ``extra`` overrides a parameter, None leaves it out."""
    params: dict[str, Any] = {
        "symbol": "BTCUSDT", "listClientOrderId": "entry-1", "newOrderRespType": "FULL",
        "workingType": "LIMIT", "workingSide": "BUY", "workingClientOrderId": "entry-1-buy",
        "workingPrice": working_price, "workingQuantity": str(QTY), "workingTimeInForce": tif,
        "pendingType": "STOP_LOSS_LIMIT", "pendingSide": "SELL", "pendingClientOrderId": "entry-1-stop",
        "pendingStopPrice": STOP, "pendingPrice": STOP_LIMIT, "pendingTimeInForce": "GTC",
    } | extra
    params = {k: v for k, v in params.items() if v is not None}
    if pending_qty is not None:
        params["pendingQuantity"] = format(pending_qty, "f")
    place = client.privatePostOrderListOpo if opo else client.privatePostOrderListOto
    return dict(place(params))


def _order(client: ccxt.binance, client_order_id: str) -> dict[str, Any]:
    return dict(client.privateGetOrder({"symbol": "BTCUSDT", "origClientOrderId": client_order_id}))


def _balance(client: ccxt.binance, asset: str) -> tuple[Decimal, Decimal]:
    row = next(b for b in client.privateGetAccount()["balances"] if b["asset"] == asset)
    return Decimal(row["free"]), Decimal(row["locked"])


def error_body(exc: Exception) -> dict[str, Any]:
    """The Binance JSON of a refused request: ccxt ends its message with the response body."""
    text = str(exc)
    body: dict[str, Any] = json.loads(text[text.index("{"):])
    return body


def _replace(client: ccxt.binance, qty: Decimal, mode: str = "STOP_ON_FAILURE", **extra: str) -> dict[str, Any]:
    params = {"symbol": "BTCUSDT", "cancelReplaceMode": mode, "cancelOrigClientOrderId": "entry-1-stop",
              "side": "SELL", "type": "MARKET", "quantity": str(qty), "newClientOrderId": "exit-1",
              "newOrderRespType": "FULL"} | extra
    return dict(client.privatePostOrderCancelReplace(params))


# --- exchangeInfo -------------------------------------------------------------------------------------------------
def test_exchange_info_says_the_venue_takes_oto_opo_and_cancel_replace(client: ccxt.binance) -> None:
    """rest-api.md / CHANGELOG: ``otoAllowed``, ``opoAllowed`` and ``cancelReplaceAllowed`` per symbol tell a client
    which of these requests the venue takes; filters.md MAX_NUM_ORDER_LISTS bounds the open lists."""
    info = client.market("BTC/USDT")["info"]
    assert info["otoAllowed"] is True and info["opoAllowed"] is True and info["cancelReplaceAllowed"] is True
    assert info["ocoAllowed"] is False  # not served
    filters = {f["filterType"]: f for f in info["filters"]}
    assert filters["MAX_NUM_ORDER_LISTS"]["maxNumOrderLists"] == 20
    assert request_weight("POST", "/api/v3/orderList/oto", {}) == 1
    assert request_weight("POST", "/api/v3/order/cancelReplace", {}) == 1
    assert request_weight("GET", "/api/v3/openOrderList", {}) == 6


# --- OTO entry: position and stop together ------------------------------------------------------------------------
def test_oto_entry_leaves_a_position_and_its_stop_for_the_quantity_received(
        server: SandboxServer, client: ccxt.binance) -> None:
    usdt_before, _ = _balance(client, "USDT")
    net = sellable_after_fee(QTY)
    placed = _oto(client, pending_qty=net)
    assert placed["contingencyType"] == "OTO" and placed["listClientOrderId"] == "entry-1"
    assert (placed["listStatusType"], placed["listOrderStatus"]) == ("EXEC_STARTED", "EXECUTING")
    working, pending = placed["orderReports"]
    assert [o["clientOrderId"] for o in placed["orders"]] == ["entry-1-buy", "entry-1-stop"]
    assert working["status"] == "FILLED" and working["orderListId"] == placed["orderListId"]
    assert sum(Decimal(f["commission"]) for f in working["fills"]) == QTY * TAKER
    assert {f["commissionAsset"] for f in working["fills"]} == {"BTC"}  # Binance without BNB: the coin received
    # rest-api.md: "the placement response will show the working order as FILLED but the pending order will still
    # appear as PENDING_NEW. You need to query the status of the pending order again"
    assert pending["status"] == "PENDING_NEW" and pending["workingTime"] == -1

    stop = _order(client, "entry-1-stop")
    assert stop["status"] == "NEW" and stop["type"] == "STOP_LOSS_LIMIT" and stop["isWorking"] is False
    assert Decimal(stop["origQty"]) == net and stop["orderListId"] == placed["orderListId"]
    assert _balance(client, "BTC") == (QTY - QTY * TAKER - net, net)  # the stop locks what it will sell
    assert Decimal(working["cummulativeQuoteQty"]) == usdt_before - _balance(client, "USDT")[0]
    opened = client.fetch_open_orders("BTC/USDT")
    assert [o["clientOrderId"] for o in opened] == ["entry-1-stop"]
    assert [lst["listStatusType"] for lst in client.privateGetOpenOrderList()] == ["EXEC_STARTED"]

    _price(server, 39_100.0)  # through the stop, above its limit: triggers and sells
    assert _order(client, "entry-1-stop")["status"] == "FILLED"
    assert client.privateGetOrderList({"orderListId": placed["orderListId"]})["listOrderStatus"] == "ALL_DONE"
    assert client.privateGetOpenOrderList() == []
    assert sum(_balance(client, "BTC")) < STEP  # dust only


def test_oto_stop_for_the_whole_bought_quantity_is_rejected_when_the_fee_was_taken_in_the_coin(
        client: ccxt.binance) -> None:
    """An OTO's pending quantity is fixed when it is sent. The BUY's commission came out of the BTC bought, so a
    SELL for all of it lacks funds when it is placed: user-data-stream.md's expiry reason REJECTED ("rejected by
    the matching engine when trying to place it on the order book. Common reasons are lack of funds"). The
    position is then on the exchange with no stop: a client sizes the stop as sellable_after_fee, or uses OPO."""
    placed = _oto(client, pending_qty=QTY)
    assert placed["orderReports"][0]["status"] == "FILLED"
    stop = _order(client, "entry-1-stop")
    assert stop["status"] == "EXPIRED" and stop["expiryReason"] == "REJECTED"
    assert client.privateGetOrderList({"origClientOrderId": "entry-1"})["listStatusType"] == "ALL_DONE"
    assert client.fetch_open_orders("BTC/USDT") == []
    assert _balance(client, "BTC") == (QTY - QTY * TAKER, 0)  # held, unprotected


def test_opo_stop_takes_the_quantity_the_buy_received(client: ccxt.binance) -> None:
    """faqs/opo: the pending order gets "the received quantity ... with commission deducted as appropriate. The
    commission is taken from the available funds instead (i.e. free balances) if ... there are enough"."""
    placed = _oto(client, pending_qty=None, opo=True)
    assert placed["contingencyType"] == "OTO" and "origQty" not in placed["orderReports"][1]
    stop = _order(client, "entry-1-stop")
    assert stop["status"] == "NEW" and Decimal(stop["origQty"]) == QTY - QTY * TAKER  # 0.00999: on the lot step
    assert _balance(client, "BTC") == (0, QTY - QTY * TAKER)
    client.privateDeleteOrderList({"symbol": "BTCUSDT", "listClientOrderId": "entry-1"})
    # the BTC the first entry left free now pays the second one's commission: the stop gets all 0.01 bought
    _oto(client, pending_qty=None, opo=True, listClientOrderId="entry-2", workingClientOrderId="entry-2-buy",
         pendingClientOrderId="entry-2-stop")
    assert Decimal(_order(client, "entry-2-stop")["origQty"]) == QTY


def test_opo_refuses_a_pending_quantity_and_a_sell_entry(client: ccxt.binance) -> None:
    """errors.md -1225 PENDING_PARAM_NOT_REQUIRED, -1222 OPO_WORKING_MUST_BE_BUY."""
    with pytest.raises(ccxt.ExchangeError, match="-1225"):
        _oto(client, pending_qty=QTY, opo=True)
    with pytest.raises(ccxt.ExchangeError, match="-1222"):
        _oto(client, pending_qty=None, opo=True, workingSide="SELL")
    assert client.fetch_open_orders("BTC/USDT") == []


# --- the working order does not fill (completely) -----------------------------------------------------------------
def test_ioc_entry_that_does_not_fill_expires_the_list_and_places_no_stop(client: ccxt.binance) -> None:
    usdt = _balance(client, "USDT")
    placed = _oto(client, working_price="39990.00", pending_qty=sellable_after_fee(QTY))  # below the ask
    working, pending = placed["orderReports"]
    assert working["status"] == "EXPIRED" and working["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    assert pending["status"] == "EXPIRED" and pending["expiryReason"] == "OTO_PHASE_ONE_EXPIRED"
    assert placed["listStatusType"] == "ALL_DONE"
    assert client.fetch_open_orders("BTC/USDT") == [] and client.privateGetOpenOrderList() == []
    assert _balance(client, "USDT") == usdt and sum(_balance(client, "BTC")) == 0


def test_partial_fill_of_the_ioc_entry_leaves_the_part_bought_without_a_stop(
        server: SandboxServer, client: ccxt.binance) -> None:
    """rest-api.md: the pending order is placed only when the working order is FULLY filled; an IOC that filled in
    part expires, and with it the list (OTO_PHASE_ONE_EXPIRED). What was bought is unprotected: the client must
    place a stop for it itself (R9.3)."""
    _control(server, "faults", {"spec": "partial_fill=1.0,seed=3"})
    placed = _oto(client, pending_qty=sellable_after_fee(QTY))
    working, _ = placed["orderReports"]
    bought = Decimal(working["executedQty"])
    assert working["status"] == "EXPIRED" and QTY / 4 <= bought <= QTY * 3 / 4
    assert _order(client, "entry-1-stop")["expiryReason"] == "OTO_PHASE_ONE_EXPIRED"
    assert client.fetch_open_orders("BTC/USDT") == []
    assert _balance(client, "BTC") == (bought - bought * TAKER, 0)


def test_resting_entry_places_its_stop_when_the_price_comes_to_it(server: SandboxServer, client: ccxt.binance) -> None:
    placed = _oto(client, working_price="39500.00", tif="GTC", pending_qty=sellable_after_fee(QTY))
    assert placed["orderReports"][0]["status"] == "NEW"
    assert [o["info"]["status"] for o in client.fetch_open_orders("BTC/USDT")] == ["NEW", "PENDING_NEW"]
    _price(server, 39_450.0)  # the buy fills as the maker; its stop goes on the book at once
    assert _order(client, "entry-1-buy")["status"] == "FILLED"
    stop = _order(client, "entry-1-stop")
    assert stop["status"] == "NEW" and stop["workingTime"] == -1  # a stop works once triggered
    assert client.privateGetOrderList({"orderListId": placed["orderListId"]})["listStatusType"] == "EXEC_STARTED"


def test_cancelling_either_order_or_the_list_cancels_both(client: ccxt.binance) -> None:
    usdt = _balance(client, "USDT")
    _oto(client, working_price="39500.00", tif="GTC", pending_qty=sellable_after_fee(QTY))
    client.cancel_order(None, "BTC/USDT", {"origClientOrderId": "entry-1-stop"})  # the PENDING_NEW one
    assert _order(client, "entry-1-buy")["status"] == "CANCELED" and _balance(client, "USDT") == usdt

    placed = _oto(client, working_price="39500.00", tif="GTC", pending_qty=sellable_after_fee(QTY))
    done = client.privateDeleteOrderList({"symbol": "BTCUSDT", "orderListId": placed["orderListId"]})
    assert done["listOrderStatus"] == "ALL_DONE" and [r["status"] for r in done["orderReports"]] == ["CANCELED"] * 2
    with pytest.raises(ccxt.OrderNotFound, match="Unknown order list sent"):
        client.privateDeleteOrderList({"symbol": "BTCUSDT", "orderListId": placed["orderListId"]})

    _oto(client, working_price="39500.00", tif="GTC", pending_qty=sellable_after_fee(QTY),
         listClientOrderId="entry-3", workingClientOrderId="entry-3-buy", pendingClientOrderId="entry-3-stop")
    everything = client.privateDeleteOpenOrders({"symbol": "BTCUSDT"})  # rest-api.md: a list is one entry
    assert [e.get("listClientOrderId") for e in everything] == ["entry-3"]
    assert _balance(client, "USDT") == usdt and client.privateGetOpenOrderList() == []
    assert len(client.privateGetAllOrderList()) == 3


@pytest.mark.parametrize(("change", "code", "text"), [
    ({"workingType": None}, -1102, "'workingType'"),
    ({"workingType": "MARKET"}, -1130, "'workingType'"),
    ({"pendingTimeInForce": None}, -1102, "'pendingTimeInForce'"),
    ({"workingPrice": "40100.000000001"}, -1111, "'workingPrice'"),
    ({"pendingPrice": "39000.000000001"}, -1111, "'pendingPrice'"),
    ({"workingPrice": "40100.001"}, -1013, "PRICE_FILTER"),
    ({"pendingQuantity": None}, -1102, "'pendingQuantity'"),
    ({"pendingQuantity": "0.0000001"}, -1013, "LOT_SIZE"),
    ({"pendingQuantity": "0.0001"}, -1013, "NOTIONAL"),
    ({"pendingClientOrderId": "entry-1-buy"}, -2010, "Duplicate order sent."),
])
def test_bad_order_list_parameters_are_refused_and_nothing_is_booked(
        client: ccxt.binance, change: dict[str, str | None], code: int, text: str) -> None:
    usdt = _balance(client, "USDT")
    params = dict(change)
    qty = params.pop("pendingQuantity", str(sellable_after_fee(QTY)))
    with pytest.raises(ccxt.ExchangeError) as refused:
        _oto(client, pending_qty=Decimal(qty) if qty else None, **params)
    body = error_body(refused.value)
    assert body["code"] == code and text in body["msg"]
    assert client.fetch_open_orders("BTC/USDT") == [] and _balance(client, "USDT") == usdt
    assert client.privateGetAllOrderList() == []


def test_a_second_open_list_with_the_same_list_client_order_id_is_refused(client: ccxt.binance) -> None:
    _oto(client, working_price="39500.00", tif="GTC", pending_qty=sellable_after_fee(QTY))
    with pytest.raises(ccxt.ExchangeError, match="-2010"):
        _oto(client, working_price="39500.00", tif="GTC", pending_qty=sellable_after_fee(QTY),
             workingClientOrderId="other-buy", pendingClientOrderId="other-stop")


# --- cancelReplace: the exit replaces the stop in one request -----------------------------------------------------
def test_cancel_replace_swaps_the_stop_for_a_market_sell_in_one_request(
        server: SandboxServer, client: ccxt.binance) -> None:
    net = sellable_after_fee(QTY)
    placed = _oto(client, pending_qty=net)
    sent: list[str] = []
    original = client.fetch

    def spy(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        sent.append(f"{method} {url.split('?')[0].split('/', 3)[3]}")
        return original(url, method, headers, body)

    client.fetch = spy
    result = _replace(client, net)
    client.fetch = original
    assert sent == ["POST api/v3/order/cancelReplace"]
    assert (result["cancelResult"], result["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    cancelled, sold = result["cancelResponse"], result["newOrderResponse"]
    assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == "entry-1-stop"
    assert cancelled["orderListId"] == placed["orderListId"] and cancelled["type"] == "STOP_LOSS_LIMIT"
    assert sold["status"] == "FILLED" and sold["clientOrderId"] == "exit-1" and Decimal(sold["executedQty"]) == net
    assert sold["fills"][0]["commissionAsset"] == "USDT"
    parsed = client.parse_order(sold, client.market("BTC/USDT"))  # the broker's view of the exit
    assert parsed["status"] == "closed" and parsed["filled"] == float(net) and parsed["side"] == "sell"
    assert client.fetch_open_orders("BTC/USDT") == [] and sum(_balance(client, "BTC")) < STEP
    assert client.privateGetOrderList({"origClientOrderId": "entry-1"})["listStatusType"] == "ALL_DONE"


def test_ccxt_edit_order_is_cancel_replace_too(client: ccxt.binance) -> None:
    """ccxt's unified edit_order on spot sends the same request (STOP_ON_FAILURE, cancelOrderId) and returns the new
    order only; the cancel half is then known only from the exception when it fails."""
    net = sellable_after_fee(QTY)
    _oto(client, pending_qty=net)
    stop_id = _order(client, "entry-1-stop")["orderId"]
    sold = client.edit_order(str(stop_id), "BTC/USDT", "market", "sell", float(net), None,
                             {"newClientOrderId": "exit-1"})
    assert sold["status"] == "closed" and sold["clientOrderId"] == "exit-1" and sold["filled"] == float(net)
    assert _order(client, "entry-1-stop")["status"] == "CANCELED"


def test_cancel_replace_stop_on_failure_sells_nothing_when_the_stop_is_gone(
        server: SandboxServer, client: ccxt.binance) -> None:
    """rest-api.md: a failed cancel with STOP_ON_FAILURE -> 400 -2022 "Order cancel-replace failed." with the
    cancel's -2011 and newOrderResult NOT_ATTEMPTED; ALLOW_FAILURE places the new order anyway -> 409 -2021."""
    net = sellable_after_fee(QTY)
    _oto(client, pending_qty=net)
    _price(server, 39_100.0)  # the stop triggered and sold: it is gone
    btc = _balance(client, "BTC")
    with pytest.raises(ccxt.ExchangeError) as failed:
        _replace(client, net)
    body = error_body(failed.value)
    assert (body["code"], body["msg"]) == (-2022, "Order cancel-replace failed.")
    assert body["data"] == {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                            "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": None}
    assert _balance(client, "BTC") == btc
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        _order(client, "exit-1")  # never placed

    _control(server, "deposit", {"account": DEMO_API_KEY, "asset": "BTC", "amount": 0.001})
    with pytest.raises(ccxt.ExchangeError) as half:
        _replace(client, Decimal("0.001"), "ALLOW_FAILURE")
    body = error_body(half.value)
    assert (body["code"], body["data"]["cancelResult"], body["data"]["newOrderResult"]) == (-2021, "FAILURE", "SUCCESS")
    assert body["data"]["newOrderResponse"]["status"] == "FILLED"
    assert client.last_http_response and '"code":-2021' in client.last_http_response  # HTTP 409's body, also here


def test_cancel_replace_cancelled_but_new_order_refused_leaves_the_position_without_its_stop(
        client: ccxt.binance) -> None:
    """Not transactional (web-socket-api.md: "in STOP_ON_FAILURE mode, if the new order placement fails, the old
    order is still canceled"): 409 -2021 with cancelResult SUCCESS; the client must re-protect the position."""
    net = sellable_after_fee(QTY)
    _oto(client, pending_qty=net)
    with pytest.raises(ccxt.ExchangeError) as half:
        _replace(client, net + STEP * 10)  # more than held
    data = error_body(half.value)["data"]
    assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
    assert data["newOrderResponse"] == {"code": -2010, "msg": "Account has insufficient balance for requested action."}
    assert data["cancelResponse"]["status"] == "CANCELED" and client.fetch_open_orders("BTC/USDT") == []
    assert _balance(client, "BTC")[1] == 0


def test_cancel_replace_with_a_bad_new_order_cancels_nothing(client: ccxt.binance) -> None:
    """rest-api.md: "Filters and Order Count are evaluated before the processing of the cancellation and order
    placement occurs": a refused parameter or filter leaves the stop in place."""
    net = sellable_after_fee(QTY)
    _oto(client, pending_qty=net)
    with pytest.raises(ccxt.ExchangeError, match="LOT_SIZE"):
        _replace(client, Decimal("0.000001"))
    with pytest.raises(ccxt.ExchangeError, match="-1102"):
        _replace(client, net, cancelReplaceMode="")
    with pytest.raises(ccxt.ExchangeError, match="-1145"):
        _replace(client, net, cancelRestrictions="ONLY_SOMETIMES")
    assert _order(client, "entry-1-stop")["status"] == "NEW"
    with pytest.raises(ccxt.ExchangeError, match="-2022"):  # ONLY_PARTIALLY_FILLED: the NEW stop is not cancelled
        _replace(client, net, cancelRestrictions="ONLY_PARTIALLY_FILLED")
    assert _order(client, "entry-1-stop")["status"] == "NEW"


# --- faults -------------------------------------------------------------------------------------------------------
def _inject(server: SandboxServer, path: str, error: str) -> None:
    _control(server, "inject", {"method": "POST", "path": path, "error": error})


def test_faults_strike_order_lists_and_cancel_replace(server: SandboxServer, client: ccxt.binance) -> None:
    """An injected 503 -1008 (busy) or plain 503 happens before the request is processed: nothing is booked or
    cancelled. A lost response (503 -1007) comes after it: the list or the replacement exists although the client
    got an error, and is found by its client ids (R9.4)."""
    net = sellable_after_fee(QTY)
    _inject(server, "/api/v3/orderList/oto", "busy")
    with pytest.raises(ccxt.ExchangeError, match="-1008"):  # OperationFailed on Binance's own host
        _oto(client, pending_qty=net)
    assert client.privateGetAllOrderList() == [] and sum(_balance(client, "BTC")) == 0

    _inject(server, "/api/v3/orderList/oto", "lost")
    with pytest.raises(ccxt.NetworkError):
        _oto(client, pending_qty=net)
    assert client.privateGetOrderList({"origClientOrderId": "entry-1"})["listStatusType"] == "EXEC_STARTED"
    assert _order(client, "entry-1-stop")["status"] == "NEW"

    _inject(server, "/api/v3/order/cancelReplace", "server_error")
    with pytest.raises(ccxt.NetworkError):
        _replace(client, net)
    assert _order(client, "entry-1-stop")["status"] == "NEW"  # nothing happened

    _inject(server, "/api/v3/order/cancelReplace", "lost")
    with pytest.raises(ccxt.NetworkError):
        _replace(client, net)
    assert _order(client, "entry-1-stop")["status"] == "CANCELED" and _order(client, "exit-1")["status"] == "FILLED"
    assert server.stats()["injected"] == {"busy": 1, "lost": 2, "server_error": 1}


def test_lost_and_late_injections_name_the_paths_they_apply_to(server: SandboxServer) -> None:
    response = httpx.post(f"{server.url}/sandbox/inject", json={"path": "/api/v3/orderList/oto", "error": "late"})
    assert response.status_code == 400 and "POST /api/v3/order" in response.text
