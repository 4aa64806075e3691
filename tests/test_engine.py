"""The engine loop, the paper fill model, portfolio accounting and risk sizing, on scripted candles."""

from __future__ import annotations

import math

import pytest

from core.config import INSTRUMENTS
from core.domain import (
    ORDER_TRANSITIONS,
    Instrument,
    Order,
    OrderStatus,
    OrderTag,
    OrderType,
    Reason,
    Side,
    Signal,
)
from core.engine import Engine
from core.errors import OrderError
from core.execution.paper import FillModelConfig, PaperBroker
from core.portfolio import Portfolio
from core.risk.sizing import CASH_BUFFER, SizeRefused, SizingInputs, size_by_risk
from core.strategy.base import Strategy
from tests.helpers import Scripted, candles, enter, flat, leave, scripted_engine

SID = "a" * 32


def make_engine(strategies: dict[str, Strategy], *, cash: float = 10_000.0, fee: float = 0.001,
                slip_bps: float = 0.0, risk: float = 0.01, cap: float = 1.0, allowed: tuple[str, ...] = ("BTCUSDT",),
                instruments: dict[str, Instrument] | None = None) -> Engine:
    return scripted_engine(strategies, session_id=SID, cash=cash, fee=fee, slip_bps=slip_bps, risk=risk, cap=cap,
                           allowed=allowed, instruments=instruments)


@pytest.mark.req("R1.2")
def test_market_entry_fills_at_next_open_with_slippage_and_fee_sized_by_risk() -> None:
    rows = [(100, 100, 100, 100), (101, 102, 100, 101), *flat(101, 3)]
    eng = make_engine({"BTCUSDT": Scripted({0: enter(stop=95.0)})}, slip_bps=10)
    res = eng.run([candles(rows)])
    assert res.errors == []
    (fill,) = res.fills
    # SPEC: qty = equity * risk / (entry - stop) = 10,000 * 1 % / (100 - 95) = 20, rounded down to the lot step
    assert fill.qty == pytest.approx(20.0)
    assert fill.price == pytest.approx(101 * 1.001)  # next bar's open, 10 bps worse
    # Binance's rule without BNB: the buy's commission is charged in the coin received, valued at the fill price
    assert (fill.fee_asset, fill.fee_qty) == ("BTC", pytest.approx(20 * 0.001))
    assert fill.fee == pytest.approx(20 * 101 * 1.001 * 0.001)
    # slippage against the decision bar's close (100), as live measures it: the gap to the open and the model
    assert fill.slippage == pytest.approx(20 * (101.101 - 100))
    assert eng.portfolio.cash == pytest.approx(10_000 - 20 * 101.101)  # the commission did not come from cash
    held = eng.portfolio.positions["BTCUSDT"].qty
    assert held == pytest.approx(19.98)
    # the protective stop is working on the book for what the account holds, as it would be on the exchange
    stop_orders = [o for o in res.orders if o.tag is OrderTag.STOP]
    assert len(stop_orders) == 1 and stop_orders[0].stop_price == 95.0 and stop_orders[0].is_open
    assert stop_orders[0].qty == pytest.approx(19.98)
    assert res.equity[-1] == pytest.approx(eng.portfolio.cash + held * 101)


@pytest.mark.req("R1.2")
def test_stop_triggers_intrabar_at_the_stop_and_trade_carries_both_reasons() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (99, 99.5, 94, 96), *flat(96, 2)]
    eng = make_engine({"BTCUSDT": Scripted({0: enter(stop=95.0, reason="breakout above 99")})})
    res = eng.run([candles(rows)])
    (trade,) = res.trades
    assert trade.exit_price == pytest.approx(95.0)
    assert trade.exit_kind == "stop"
    assert trade.entry_reason == "breakout above 99"
    assert "protective stop 95.00" in trade.exit_reason
    assert trade.net_pnl == pytest.approx((95 - 100) * 19.98 - trade.fees)  # what the commission left is sold
    assert eng.portfolio.cash == pytest.approx(10_000 + trade.net_pnl)  # P&L is exactly the cash change


@pytest.mark.req("R1.2")
def test_gap_through_the_stop_fills_at_the_open_which_is_worse() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (90, 92, 89, 91), *flat(91, 2)]
    res = make_engine({"BTCUSDT": Scripted({0: enter(stop=95.0)})}, slip_bps=5).run([candles(rows)])
    (trade,) = res.trades
    assert trade.exit_price == pytest.approx(90 * (1 - 0.0005))


@pytest.mark.req("R1.2")
def test_stop_is_live_on_the_entry_bar() -> None:
    rows = [(100, 100, 100, 100), (100, 100.5, 94, 97), *flat(97, 2)]
    res = make_engine({"BTCUSDT": Scripted({0: enter(stop=95.0)})}).run([candles(rows)])
    (trade,) = res.trades
    assert trade.entry_ts == trade.exit_ts and trade.exit_price == pytest.approx(95.0)


@pytest.mark.req("R1.2")
def test_exit_signal_sells_at_next_open_and_cancels_the_protective_stop() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (104, 106, 103, 105), (107, 108, 106, 107), *flat(107, 2)]
    res = make_engine({"BTCUSDT": Scripted({0: enter(stop=95.0), 2: leave("momentum faded")})}).run([candles(rows)])
    (trade,) = res.trades
    assert trade.exit_price == pytest.approx(107.0) and trade.exit_kind == "signal"
    assert trade.exit_reason == "momentum faded"
    stop = next(o for o in res.orders if o.tag is OrderTag.STOP)
    assert stop.status is OrderStatus.CANCELED
    assert res.open_positions == {}


@pytest.mark.req("R1.2")
def test_limit_orders_fill_at_the_limit_or_better_with_the_maker_fee() -> None:
    port = Portfolio(10_000.0)
    broker = PaperBroker(FillModelConfig(taker_fee=0.001, maker_fee=0.0005, slippage_bps=50), port)
    cs = candles([(100, 101, 98, 99), (97, 99, 96, 98)])
    eng = make_engine({"BTCUSDT": Scripted({})})
    eng.load([cs])
    bar = eng.books[0]
    buy = Order("b1", "BTCUSDT", Side.BUY, OrderType.LIMIT, 1.0, OrderTag.ENTRY, 0, price=99.0)
    broker.submit(buy, bar, 0)
    (f1,) = broker.on_bar(bar, 0)
    assert f1.price == 99.0 and f1.liquidity == "maker" and f1.fee == pytest.approx(99 * 0.0005)
    buy2 = Order("b2", "BTCUSDT", Side.BUY, OrderType.LIMIT, 1.0, OrderTag.ENTRY, 0, price=99.0)
    broker.submit(buy2, bar, 0)
    (f2,) = broker.on_bar(bar, 1)  # opens at 97, below the limit: the better price
    assert f2.price == 97.0
    far = Order("b3", "BTCUSDT", Side.BUY, OrderType.LIMIT, 1.0, OrderTag.ENTRY, 0, price=90.0)
    broker.submit(far, bar, 0)
    assert broker.on_bar(bar, 1) == [] and far.is_open


@pytest.mark.req("R1.2")
def test_fee_default_is_a_tenth_of_a_percent() -> None:
    assert FillModelConfig().taker_fee == 0.001
    from core.config import PaperConfig

    assert PaperConfig().taker_fee == 0.001


def test_order_state_machine_refuses_illegal_transitions() -> None:
    order = Order("x", "BTCUSDT", Side.BUY, OrderType.MARKET, 1.0, OrderTag.ENTRY, 0)
    order.apply(OrderStatus.SUBMITTED, 1)
    order.record_fill(0.4, 100.0, 2)
    assert order.status is OrderStatus.PARTIALLY_FILLED
    order.record_fill(0.6, 110.0, 3)
    assert order.status is OrderStatus.FILLED and order.avg_fill_price == pytest.approx(106.0)
    with pytest.raises(OrderError, match="illegal transition"):
        order.apply(OrderStatus.CANCELED, 4)
    assert all(not ORDER_TRANSITIONS[s] for s in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED))
    with pytest.raises(OrderError, match="quantity must be positive"):
        Order("y", "BTCUSDT", Side.BUY, OrderType.MARKET, 0.0, OrderTag.ENTRY, 0)


def _inputs(**kw: float) -> SizingInputs:
    base = dict(equity=10_000.0, cash=10_000.0, price=100.0, stop=95.0, risk_per_trade=0.01, size_multiplier=1.0,
                exposure_cap=1.0, open_notional=0.0, fee_rate=0.001)
    base.update(kw)
    return SizingInputs(**base)


def test_sizing_follows_the_spec_formula_and_rounds_down_to_the_lot_step() -> None:
    inst = Instrument("BTCUSDT", 0.01, 0.001, 5.0)
    sized = size_by_risk(_inputs(stop=97.0, size_multiplier=0.5), inst)
    # 10,000 * 1 % * 0.5 / 3 = 16.6666… → 16.666 at lot step 0.001 (down, never up)
    assert not isinstance(sized, SizeRefused) and sized.qty == pytest.approx(16.666) and sized.binding == "risk"


def test_sizing_caps_by_exposure_and_cash() -> None:
    inst = INSTRUMENTS["BTCUSDT"]
    capped = size_by_risk(_inputs(exposure_cap=0.1, stop=99.9), inst)
    assert not isinstance(capped, SizeRefused) and capped.binding == "exposure_cap"
    assert capped.qty * 100 <= 0.1 * 10_000 + 1e-9
    full = size_by_risk(_inputs(exposure_cap=0.5, open_notional=5_000.0), inst)
    assert isinstance(full, SizeRefused) and full.code == Reason.EXPOSURE_CAP
    poor = size_by_risk(_inputs(cash=1_000.0, stop=99.9), inst)
    assert not isinstance(poor, SizeRefused) and poor.binding == "cash"
    assert poor.qty * 100 * 1.001 * (1 + CASH_BUFFER) <= 1_000.0 + 1e-9


def test_order_below_min_notional_is_not_sent() -> None:
    inst = Instrument("BTCUSDT", 0.01, 0.00001, 5.0)
    refused = size_by_risk(_inputs(equity=100.0, cash=100.0, price=60_000.0, stop=30_000.0), inst)
    assert isinstance(refused, SizeRefused) and refused.code == Reason.BELOW_MIN_NOTIONAL


def test_denials_are_returned_events_recorded_as_decisions_with_codes() -> None:
    rows = [*flat(100, 4)]
    strategies: dict[str, Strategy] = {
        "ETHUSDT": Scripted({0: enter(stop=95.0)}),  # not on this engine's allow-list
        "BTCUSDT": Scripted({0: enter(stop=101.0)}),  # stop above the price
    }
    eng = make_engine(strategies, allowed=("BTCUSDT",))
    res = eng.run([candles(rows, "ETHUSDT"), candles(rows, "BTCUSDT")])
    codes = {d["symbol"]: d["code"] for d in res.decisions}
    assert codes == {"ETHUSDT": Reason.NOT_ALLOWED_SYMBOL, "BTCUSDT": Reason.INVALID_STOP}
    assert all(d["kind"] == "denied" and d["reason"] for d in res.decisions)
    assert res.orders == [] and res.errors == []


@pytest.mark.req("R1.5")
def test_an_exception_during_the_session_is_recorded_with_its_bar() -> None:
    def boom(i: int, bar: object) -> Signal:
        raise ZeroDivisionError("indicator blew up")

    res = make_engine({"BTCUSDT": Scripted({2: boom})}).run([candles(flat(100, 5))])
    assert res.status == "failed"
    assert len(res.errors) == 1 and "ZeroDivisionError at bar 2 (2024-01-01T02:00:00+00:00)" in res.errors[0]
    assert any(e["code"] == "SESSION_ERROR" and "traceback" in e["details"] for e in res.events)


@pytest.mark.req("R1.2")
def test_two_symbols_share_one_equity_curve() -> None:
    btc = candles([(100, 100, 100, 100), (100, 100, 100, 100), (110, 110, 110, 110), (110, 110, 110, 110)])
    eth = candles([(50, 50, 50, 50), (50, 50, 50, 50), (45, 45, 45, 45), (45, 45, 45, 45)], "ETHUSDT")
    eng = make_engine({"BTCUSDT": Scripted({0: enter(90.0)}), "ETHUSDT": Scripted({0: enter(40.0)})}, fee=0.0,
                      allowed=("BTCUSDT", "ETHUSDT"))
    res = eng.run([btc, eth])
    btc_qty = eng.portfolio.positions["BTCUSDT"].qty
    eth_qty = eng.portfolio.positions["ETHUSDT"].qty
    assert res.equity[-1] == pytest.approx(eng.portfolio.cash + btc_qty * 110 + eth_qty * 45)
    frame = res.equity_frame()
    assert frame.height == 4 and not math.isnan(frame["exposure"][-1]) and frame["exposure"][-1] > 0


@pytest.mark.req("R1.2")
def test_exit_at_the_open_and_a_stop_in_the_same_bar_sell_once() -> None:
    # exit decided on bar 2, fills at bar 3's open; bar 3 then trades through the stop: only one sell may happen
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 99, 100), (99, 99, 90, 91), *flat(91, 2)]
    eng = make_engine({"BTCUSDT": Scripted({0: enter(stop=95.0), 2: leave()})})
    res = eng.run([candles(rows)])
    assert res.errors == []
    (trade,) = res.trades
    assert trade.exit_kind == "signal" and trade.exit_price == pytest.approx(99.0)
    assert [f.side for f in res.fills] == [Side.BUY, Side.SELL]
    assert eng.portfolio.cash == pytest.approx(10_000 + trade.net_pnl)


@pytest.mark.req("R1.2")
def test_client_order_ids_are_deterministic_base36_within_binances_36_characters() -> None:
    from core.execution.broker import base36, client_order_id

    edges = [0, 1, 35, 36, 1295, 1296, 46_655, 46_656, 1_679_615, 1_679_616, 2_176_782_335, 2_176_782_336,
             1_641_000_240, 10**15]
    for n in edges + list(range(0, 3_000_000_000, 7_777_777)):
        digits = base36(n)
        assert int(digits, 36) == n and (digits == "0" or not digits.startswith("0")), n
    cid = client_order_id(SID, "BTCUSDT", 1_641_000_240_000, "entry")
    assert cid == client_order_id(SID, "BTCUSDT", 1_641_000_240_000, "entry") == "rpaaaaaaaa-BTCUSDT-r50bw0e"
    assert len(client_order_id(SID, "BTCUSDT", 10**18, "stop", 12)) <= 36
