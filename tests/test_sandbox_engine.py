"""The sandbox exchange's engine without HTTP: price path, klines, matching, filters, balances and fees."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from core.errors import ConfigError
from core.market import generate, resample
from core.market.candles import CandleSet
from core.sandbox import account_api as api
from core.sandbox.binance_errors import BinanceError
from core.sandbox.config import DEMO_API_KEY as KEY
from core.sandbox.config import SandboxConfig
from core.sandbox.exchange import SandboxExchange
from core.sandbox.faults import FaultConfig, parse_faults
from core.sandbox.market import Market

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
MIN = 60_000


def _candles(rows: list[tuple[float, float, float, float]], symbol: str = "BTCUSDT") -> CandleSet:
    frame = pl.DataFrame({
        "ts": pl.Series([T0_MS + i * MIN for i in range(len(rows))]).cast(pl.Datetime("ms", "UTC")),
        "open": [r[0] for r in rows], "high": [r[1] for r in rows], "low": [r[2] for r in rows],
        "close": [r[3] for r in rows], "volume": [60.0] * len(rows),
    })
    return CandleSet(symbol, "1m", frame)


def _exchange(rows: list[tuple[float, float, float, float]], **overrides: Any) -> SandboxExchange:
    """A manual-clock exchange on scripted BTCUSDT candles, market time at the first candle's open."""
    settings: dict[str, Any] = {"clock": "manual", "source": _candles(rows), "start": T0,
                                "balances": {"USDT": 10_000.0}} | overrides
    return SandboxExchange(SandboxConfig(**settings))


FLAT = [(100.0, 100.0, 100.0, 100.0)] * 30
DIP = [(100.0, 100.0, 90.0, 90.0), *[(90.0, 90.0, 90.0, 90.0)] * 30]  # red: 100 -> 90 by t+20s, then flat


def _order(ex: SandboxExchange, **params: str) -> dict[str, Any]:
    return ex.place_order(KEY, {"symbol": "BTCUSDT", **params})


def _rejects(ex: SandboxExchange, code: int, msg: str, **params: str) -> None:
    with pytest.raises(BinanceError) as info:
        _order(ex, **params)
    assert (info.value.code, info.value.msg) == (code, msg)


def _balance(ex: SandboxExchange, asset: str) -> tuple[Decimal, Decimal]:
    account = ex.account_of(KEY)
    return account.free[asset], account.locked[asset]


def test_path_walks_red_candles_open_low_high_close_and_green_open_high_low_close() -> None:
    market = Market(SandboxConfig(clock="manual", source=_candles([(100, 110, 90, 95), (95, 105, 85, 100)]),
                                  start=T0))
    path = market.path("BTCUSDT")
    red = [path.price_at(T0_MS + t) for t in (0, 10_000, 20_000, 40_000, 59_999)]
    green = [path.price_at(T0_MS + MIN + t) for t in (0, 20_000, 40_000, 59_999)]
    assert red == [100, 95, 90, 110, 95]
    assert green == [95, 105, 85, 100]


def test_klines_rebuild_the_source_candles_exactly_and_roll_them_up() -> None:
    source = generate(["BTCUSDT"], "1m", 1.0, seed=3)[0]
    ex = SandboxExchange(SandboxConfig(clock="manual", source=source, warmup_days=0.5))
    minute = ex.quotes.klines("BTCUSDT", "1m", None, None, 5)
    frame = source.frame.filter(pl.col("ts").dt.epoch("ms") < ex.market.now()).tail(4)
    assert [k[0] for k in minute[:4]] == frame.get_column("ts").dt.epoch("ms").to_list()
    prices = frame.select("open", "high", "low", "close").rows()
    assert [tuple(float(x) for x in k[1:5]) for k in minute[:4]] == prices
    assert minute[-1][0] == ex.market.now()  # the forming candle, opened right now
    assert minute[0][6] == minute[0][0] + MIN - 1 and isinstance(minute[0][8], int) and len(minute[0]) == 12

    hourly = ex.quotes.klines("BTCUSDT", "1h", T0_MS, None, 6)
    expected = resample(source.frame, "1m", "1h").head(6)
    assert [tuple(float(x) for x in k[1:5]) for k in hourly] == expected.select("open", "high", "low", "close").rows()
    assert [float(k[5]) for k in hourly] == pytest.approx(expected.get_column("volume").to_list())
    with pytest.raises(BinanceError, match="Invalid interval"):
        ex.quotes.klines("BTCUSDT", "7m", None, None, 5)


def test_limit_buy_rests_and_fills_at_its_limit_as_maker_where_the_path_crosses_it() -> None:
    """faqs/commission_faq.md, "How is the commission calculated?": a BUY's commission is the received quantity x
    the rate, taken from the base asset received; the lock is price x qty (no fee is paid in quote)."""
    ex = _exchange(DIP)
    placed = _order(ex, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="95")
    assert placed["status"] == "NEW" and placed["fills"] == []
    assert _balance(ex, "USDT") == (Decimal("10000") - Decimal("9.5"), Decimal("9.5"))
    ex.advance(30_000)
    trade = api.my_trades(ex, ex.account_of(KEY), {"symbol": "BTCUSDT"})[0]
    assert (trade["price"], trade["isMaker"], trade["commission"]) == ("95.00000000", True, "0.00010000")
    assert trade["commissionAsset"] == "BTC"
    assert trade["time"] == T0_MS + 10_000  # 100 -> 90 over 20 s crosses 95 at 10 s
    assert _balance(ex, "USDT") == (Decimal("10000") - Decimal("9.5"), Decimal(0))
    assert _balance(ex, "BTC") == (Decimal("0.0999"), Decimal(0))


def test_stop_loss_limit_sell_triggers_at_its_stop_and_sells_into_the_bids() -> None:
    ex = _exchange(DIP)
    _order(ex, side="BUY", type="MARKET", quantity="0.1")  # holds 0.0999: the buy's fee was paid in BTC
    stop = _order(ex, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.0999", price="93",
                  stopPrice="94", newOrderRespType="RESULT")
    assert stop["status"] == "NEW" and stop["workingTime"] == -1 and _balance(ex, "BTC")[1] == Decimal("0.0999")
    ex.advance(30_000)
    done = api.query_order(ex, ex.account_of(KEY), {"symbol": "BTCUSDT", "orderId": str(stop["orderId"])})
    assert done["status"] == "FILLED" and done["isWorking"] is True
    assert done["workingTime"] == T0_MS + 12_000  # 100 -> 90 over 20 s crosses 94 at 12 s
    assert Decimal("93") <= Decimal(done["cummulativeQuoteQty"]) / Decimal("0.0999") < Decimal("94")
    assert _balance(ex, "BTC") == (Decimal(0), Decimal(0))


def test_a_gap_through_a_stop_limit_leaves_it_resting_until_the_price_comes_back() -> None:
    ex = _exchange(FLAT)
    _order(ex, side="BUY", type="MARKET", quantity="0.1")
    stop = _order(ex, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.0999", price="93.5",
                  stopPrice="94")
    account = ex.account_of(KEY)
    ex.set_price("BTCUSDT", 92.0)  # gaps through stop and limit: triggered, but nobody bids 93.5
    order = account.orders[stop["orderId"]]
    assert (order.status, order.triggered, order.executed_qty) == ("NEW", True, 0)
    ex.set_price("BTCUSDT", 93.6)
    assert order.status == "FILLED" and order.trades[0].price == Decimal("93.5") and order.trades[0].is_maker


def test_trailing_stop_sell_follows_the_high_and_triggers_delta_below_it() -> None:
    ex = _exchange(FLAT)
    _order(ex, side="BUY", type="MARKET", quantity="0.1")
    trail = _order(ex, side="SELL", type="STOP_LOSS", quantity="0.0999", trailingDelta="500",
                   newOrderRespType="RESULT")
    assert trail["trailingDelta"] == 500 and trail["trailingTime"] == T0_MS
    order = ex.account_of(KEY).orders[trail["orderId"]]
    for price in (120.0, 115.0):  # 5 % below the 120 high is 114
        ex.set_price("BTCUSDT", price)
    assert order.status == "NEW" and order.extreme == 120.0
    ex.set_price("BTCUSDT", 113.0)
    assert order.status == "FILLED" and order.trades[0].price == Decimal("112.99")


def test_market_buy_pays_the_ask_and_the_taker_fee_in_the_base_asset_received() -> None:
    """faqs/commission_faq.md, "How is the commission calculated?": the received amount x the rate, in the
    received asset (the quantity on a BUY, the notional on a SELL) when BNB does not pay."""
    ex = _exchange(FLAT)
    bought = _order(ex, side="BUY", type="MARKET", quantity="0.5")
    cost = sum(Decimal(f["price"]) * Decimal(f["qty"]) for f in bought["fills"])
    fee = sum(Decimal(f["commission"]) for f in bought["fills"])
    assert bought["status"] == "FILLED" and bought["fills"][0]["price"] == "100.00000000"  # ask = 100.00
    assert fee == Decimal("0.5") * Decimal("0.001") and bought["fills"][0]["commissionAsset"] == "BTC"
    assert _balance(ex, "USDT")[0] == Decimal(10_000) - cost
    assert _balance(ex, "BTC") == (Decimal("0.5") - fee, Decimal(0))
    sold = _order(ex, side="SELL", type="MARKET", quantity="0.4995")
    assert sold["fills"][0]["price"] == "99.99000000"  # the bid, a tick under
    assert sold["fills"][0]["commissionAsset"] == "USDT"
    assert _balance(ex, "BTC") == (Decimal(0), Decimal(0))


def test_quote_sized_market_buy_spends_its_quote_amount() -> None:
    ex = _exchange(FLAT)
    bought = _order(ex, side="BUY", type="MARKET", quoteOrderQty="50")
    assert bought["status"] == "FILLED" and bought["origQuoteOrderQty"] == "50.00000000"
    assert Decimal(bought["cummulativeQuoteQty"]) == Decimal("50") and bought["origQty"] == bought["executedQty"]


@pytest.mark.parametrize(("params", "code", "msg"), [
    ({"quantity": "0.000015"}, -1013, "Filter failure: LOT_SIZE"),
    ({"price": "95.005"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"quantity": "0.04"}, -1013, "Filter failure: NOTIONAL"),  # 3.8 USDT < 5
    ({"price": "1000"}, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
    ({"symbol": "DOGEUSDT"}, -1121, "Invalid symbol."),
    ({"quantity": ""}, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."),
    ({"quantity": "1e-5"}, -1100, "Illegal characters found in parameter 'quantity'; legal range is "
                                  "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    ({"quantity": "0.000000001"}, -1111, "Parameter 'quantity' has too much precision."),
    ({"side": "HOLD"}, -1117, "Invalid side."),
    ({"type": "OCO"}, -1116, "Invalid orderType."),
    ({"timeInForce": "GTX"}, -1115, "Invalid timeInForce."),
    ({"stopPrice": "90"}, -1106, "Parameter 'stopPrice' sent when not required."),
])
def test_new_orders_are_checked_like_binance(params: dict[str, str], code: int, msg: str) -> None:
    ex = _exchange(FLAT)
    base = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "price": "95"}
    _rejects(ex, code, msg, **(base | params))


def test_market_lot_size_trailing_delta_and_immediate_trigger_are_refused() -> None:
    ex = _exchange(FLAT, balances={"USDT": 1e7})
    _rejects(ex, -1013, "Filter failure: MARKET_LOT_SIZE", side="BUY", type="MARKET", quantity="101")
    _rejects(ex, -1013, "Filter failure: TRAILING_DELTA", side="SELL", type="STOP_LOSS", quantity="0.1",
             trailingDelta="5000")
    _rejects(ex, -2010, "Order would trigger immediately.", side="BUY", type="STOP_LOSS", quantity="0.1",
             stopPrice="99")
    _rejects(ex, -2010, "Order would immediately match and take.", side="BUY", type="LIMIT_MAKER",
             quantity="0.1", price="100.5")


def test_balance_duplicates_and_unknown_orders_get_binance_errors() -> None:
    ex = _exchange(FLAT)
    _rejects(ex, -2010, "Account has insufficient balance for requested action.", side="BUY", type="LIMIT",
             timeInForce="GTC", quantity="200", price="99")
    resting = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1", "price": "95",
               "newClientOrderId": "rampart-1"}
    first = _order(ex, **resting)
    _rejects(ex, -2010, "Duplicate order sent.", **resting)
    account = ex.account_of(KEY)
    api.cancel_order(ex, account, {"symbol": "BTCUSDT", "origClientOrderId": "rampart-1"})
    with pytest.raises(BinanceError, match=r"-2011 Unknown order sent\."):
        api.cancel_order(ex, account, {"symbol": "BTCUSDT", "orderId": str(first["orderId"])})
    with pytest.raises(BinanceError, match=r"-2013 Order does not exist\."):
        api.query_order(ex, account, {"symbol": "BTCUSDT", "orderId": "999"})
    assert _order(ex, **resting)["status"] == "NEW"  # Binance: client ids are unique among OPEN orders only
    strict = _exchange(FLAT, unique_client_order_ids="all")
    _order(strict, **resting | {"type": "MARKET", "price": "", "timeInForce": ""})
    _rejects(strict, -2010, "Duplicate order sent.", **resting)


def test_cancel_releases_the_lock_and_ioc_fok_expire() -> None:
    ex = _exchange(FLAT, balances={"USDT": 1e7})
    account = ex.account_of(KEY)
    placed = _order(ex, side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="99")
    assert _balance(ex, "USDT")[1] == Decimal("99")  # price x qty: the fee is paid in the BTC received
    canceled = api.cancel_order(ex, account, {"symbol": "BTCUSDT", "orderId": str(placed["orderId"])})
    assert canceled["status"] == "CANCELED" and canceled["origClientOrderId"] == placed["clientOrderId"]
    assert _balance(ex, "USDT") == (Decimal(10_000_000), Decimal(0))
    ioc = _order(ex, side="BUY", type="LIMIT", timeInForce="IOC", quantity="1", price="99")
    fok = _order(ex, side="BUY", type="LIMIT", timeInForce="FOK", quantity="9000", price="100.02")
    assert (ioc["status"], ioc["executedQty"]) == ("EXPIRED", "0.00000000")
    assert (fok["status"], fok["executedQty"]) == ("EXPIRED", "0.00000000")  # three levels hold < 9000
    assert _balance(ex, "USDT") == (Decimal(10_000_000), Decimal(0))


def test_partial_fill_fault_expires_a_market_order_and_rests_a_limit_until_the_price_crosses() -> None:
    ex = _exchange(FLAT)
    market = ex.place_order(KEY, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.1"},
                            partial=0.5)
    assert (market["status"], market["executedQty"], market["origQty"]) == ("EXPIRED", "0.05000000", "0.10000000")
    limit = ex.place_order(KEY, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                 "quantity": "0.1", "price": "100.5"}, partial=0.3)
    order = ex.account_of(KEY).orders[limit["orderId"]]
    assert (limit["status"], limit["executedQty"]) == ("PARTIALLY_FILLED", "0.03000000")
    ex.advance(5_000)
    assert order.status == "PARTIALLY_FILLED"  # the price has not moved: the rest waits
    ex.set_price("BTCUSDT", 101.0)
    ex.set_price("BTCUSDT", 100.0)
    assert order.status == "FILLED" and order.trades[-1].price == Decimal("100.5")


def test_market_stops_at_the_last_price_when_the_source_runs_out() -> None:
    ex = _exchange([(100, 101, 99, 100.5)] * 3)
    ex.advance(10 * MIN)
    assert ex.market.exhausted and ex.market.price("BTCUSDT") == 100.5
    last = ex.quotes.klines("BTCUSDT", "1m", None, None, 1)[0]
    assert last[1:5] == ["100.50000000"] * 4 and last[5] == "0.00000000"


def test_config_refuses_bad_values_and_never_shows_secrets() -> None:
    config = SandboxConfig(api_keys={"k1": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(config) and "k1" in repr(config) and "s3cr3t" not in str(config)
    with pytest.raises(ConfigError, match="speed"):
        SandboxConfig(speed=0)
    with pytest.raises(ConfigError, match="at least one API key"):
        SandboxConfig(api_keys={})
    with pytest.raises(ConfigError, match="outside the candles"):
        SandboxExchange(SandboxConfig(source=_candles(FLAT), warmup_days=1.0))
    with pytest.raises(ConfigError, match="manual clock"):
        _exchange(FLAT, clock="realtime").advance(1_000)


def test_fault_specs_parse_and_bad_specs_say_what_to_fix() -> None:
    spec = "latency=3.0,error5xx=0.2,timeout=0.1,lost_response=0.5,partial_fill=0.5,rate_limit=0.1"
    config = parse_faults(spec)
    assert config == FaultConfig(latency=3.0, error5xx=0.2, timeout=0.1, lost_response=0.5, partial_fill=0.5,
                                 rate_limit=0.1)
    assert parse_faults(config.spec()) == config and parse_faults("") == FaultConfig()
    with pytest.raises(ConfigError, match="name one of latency, error5xx"):
        parse_faults("explode=1")
    with pytest.raises(ConfigError, match="not a probability"):
        parse_faults("error5xx=2")
