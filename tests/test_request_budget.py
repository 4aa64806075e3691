"""The request budget of one IP (R9.5) and fee valuation (R9.2), on their own: Binance's LIMITS section says a 429
must be followed by backing off for Retry-After seconds or the IP is banned (418), and every response reports the
weight used this minute (rest-api.md, "LIMITS"); a commission is charged in its own asset (commission_faq.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.errors import RateLimited
from core.execution.ccxt_broker import CcxtBroker
from core.execution.fees import fee_in_quote
from core.execution.limits import RequestBudget


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.req("R9.5")
def test_routine_reads_stop_at_the_share_of_the_weight_and_orders_may_use_the_rest() -> None:
    clock = Clock()
    budget = RequestBudget(limit=1_000, share=0.5, clock=clock)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "499"})
    budget.check("fetch_ohlcv")  # under half: fine
    budget.observe({"x-mbx-used-weight-1m": "500"})
    with pytest.raises(RateLimited, match="routine reads wait for the next minute") as refused:
        budget.check("fetch_ohlcv")
    assert refused.value.until == (clock.t // 60 + 1) * 60
    budget.check("create_order")  # a protective stop or an exit may still go out
    budget.check("cancel_order")
    clock.t = refused.value.until  # the minute turned: the weight starts again
    budget.check("fetch_ohlcv")
    assert budget.peak_used == 500


@pytest.mark.req("R9.5")
def test_a_429_blocks_every_call_for_its_retry_after_and_a_418_ban_for_its_duration(tmp_path: Path) -> None:
    clock = Clock()
    shared = tmp_path / "backoff.json"
    budget = RequestBudget(limit=6_000, share=0.5, path=shared, clock=clock)
    budget.observe({"Retry-After": "7"}, "fetch_ohlcv: RateLimitExceeded: binance 429 {\"code\":-1003}")
    for call in ("fetch_ohlcv", "create_order", "cancel_order"):  # orders too: sending now would get us banned
        with pytest.raises(RateLimited, match="backing off until"):
            budget.check(call)
    other = RequestBudget(path=shared, clock=clock)  # another process on the same data directory
    assert other.wait_s("create_order") == pytest.approx(7.0)
    clock.t += 7.0
    budget.check("create_order")
    budget.observe({"Retry-After": "120"}, "fetch_balance: DDoSProtection: binance 418 IP banned until 123")
    with pytest.raises(RateLimited, match="IP banned until") as banned:
        other.check("fetch_balance")
    assert banned.value.banned and banned.value.until == pytest.approx(clock.t + 120)
    budget.observe(None, "fetch_order: ExchangeUnavailable: binance 503 Service Unavailable")  # not a back-off
    assert budget.backoff() is not None and budget.backoff().until == pytest.approx(clock.t + 120)  # type: ignore


@pytest.mark.req("R9.2")
def test_every_fee_is_valued_in_its_own_asset_never_at_the_traded_symbols_price() -> None:
    broker = CcxtBroker(object())  # valuation only: no call is made for the base or the quote
    broker._prices["BNB"] = (600.0, math.inf)  # the BNBUSDT price, as read from the exchange
    fees = broker.value_fees("BTCUSDT", 40_000.0, [(0.000005, "BTC")])
    assert fees.value == pytest.approx(0.2) and fees.base_qty == 0.000005 and fees.asset == "BTC"
    fees = broker.value_fees("BTCUSDT", 40_000.0, [(0.2, "USDT")])
    assert fees.value == pytest.approx(0.2) and fees.base_qty == 0.0
    fees = broker.value_fees("BTCUSDT", 40_000.0, [(0.0001, "BNB")])
    assert fees.value == pytest.approx(0.06) and fees.asset == "BNB"  # 0.0001 BNB x 600, not x 40,000
    order = {"fees": [{"cost": 0.0001, "currency": "BNB"}]}
    assert fee_in_quote(order, 40_000.0, "BTCUSDT", lambda asset: 600.0) == pytest.approx(0.06)
    assert math.isnan(fee_in_quote(order, 40_000.0, "BTCUSDT"))  # unknown rather than 100x too much
