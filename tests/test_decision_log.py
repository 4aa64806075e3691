"""The decision log (SPEC R3.5) of live trades on the sandbox exchange through the real ccxt client.

For one trade, the rows in DuckDB — found from the trade's client order ids — tell the whole story with numbers:
the signal and its reason and indicators, market conditions (price, volatility ratio, bid/ask spread), each risk
check with its result, the sizing inputs, the request sent, the exchange's response, the latency, the fill with its
fee and slippage, and the exit with its reason and P&L. The JSON lines log holds the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.domain import Signal
from core.monitoring.decision_log import decision_log_path, explain_trade
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.store import Store
from tests.sandbox_rig import BTC, ETH, Cue, Rig, enter, leave, sandbox, settings_for

DEMO = (DEMO_API_KEY, DEMO_API_SECRET)
CHECKS = ["allow_list", "trading_state", "breakers", "latency", "correlation", "stop", "volatility", "exposure_cap",
          "cash", "lot_step", "min_notional"]


def sma_entry(fast: float, slow: float) -> Cue:
    """An entry in words with its indicator values, as a strategy gives it, stop 4 % under the close."""
    return lambda bar: Signal.enter(bar.symbol, round(bar.close[-1] * 0.96, 2),
                                    f"SMA3 {fast:.2f} > SMA8 {slow:.2f} at close {bar.close[-1]:.2f}",
                                    sma_fast=fast, sma_slow=slow, close=bar.close[-1])


def json_log(settings_dir: Path, session_id: str) -> dict[str, dict[str, Any]]:
    lines = decision_log_path(settings_dir).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return {r["decision_id"]: r for r in rows if r["session_id"] == session_id}


def the_trade(rig: Rig) -> dict[str, Any]:
    (trade,) = Store(rig.settings.db_path).query("SELECT * FROM trades WHERE session_id = ?",
                                                 [rig.session.session_id]).rows(named=True)
    return trade


@pytest.mark.req("R3.5")
def test_one_trade_is_explained_by_its_rows_from_signal_to_exit(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path)
    btc = [BTC, BTC, BTC * 1.01, BTC * 1.01, BTC * 1.01]
    with sandbox(btc, [ETH] * 5, order_lists=False) as server:  # single orders: one request each
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=sma_entry(40_010.5, 39_990.25), ETHUSDT=enter(0.04, "no room left"))
        rig.bar()
        rig.bar(BTCUSDT=leave("SMA3 40,380.00 < SMA8 40,390.00 at close 40,400.00"))
        rig.bar()
        rig.stop()
    store = Store(settings.db_path)
    sid = rig.session.session_id
    trade = the_trade(rig)
    story = explain_trade(store, sid, trade["trade_id"])
    assert [(r["kind"], r["action"]) for r in story] == [
        ("order", "enter"), ("execution", "create_order"), ("fill", "buy"),
        ("order", "exit"), ("execution", "create_order"), ("fill", "sell"), ("trade", "close")]
    signal, sent, bought, exit_signal, sold_sent, sold, closed = story

    # the signal: reason in words, indicators, market conditions, every check passed, the sizing inputs
    d = signal["details"]
    assert signal["reason"] == "SMA3 40010.50 > SMA8 39990.25 at close 40000.00" and signal["code"] == "SUBMITTED"
    assert d["indicators"] == {"sma_fast": 40_010.5, "sma_slow": 39_990.25, "close": BTC} and d["stop"] == 38_400.0
    market = d["market"]
    assert market["price"] == BTC and market["vol_ratio"] == 1.0 and market["latency_s"] > 0
    assert market["bid"] < BTC < market["ask"] and market["spread"] == pytest.approx(market["ask"] - market["bid"])
    assert market["spread_bps"] == pytest.approx(1.0, abs=0.01)  # the sandbox's 1 bp book
    # every check that ran, in order, each with the numbers it compared (R3.5: a truthful log)
    assert [c["check"] for c in d["checks"]] == CHECKS and {c["result"] for c in d["checks"]} == {"pass"}
    checks = {c["check"]: c for c in d["checks"]}
    assert checks["allow_list"]["symbol"] == "BTCUSDT" and checks["trading_state"]["state"] == "ACTIVE"
    assert checks["breakers"]["blocking"] is None
    assert checks["latency"]["limit_s"] == 2.0 and 0 < checks["latency"]["latency_s"] < 2.0
    assert checks["correlation"] == {"check": "correlation", "result": "pass", "pairs": [], "max": 0.7}
    assert checks["stop"]["stop"] == 38_400.0 and checks["stop"]["price"] == BTC
    assert checks["volatility"]["vol_ratio"] == 1.0 and checks["volatility"]["multiplier"] == 1.0
    assert checks["exposure_cap"]["cap"] == 0.02 and checks["exposure_cap"]["room"] == pytest.approx(200.0)
    sizing = d["sizing"]
    assert sizing["equity"] == 10_000.0 and sizing["risk_per_trade"] == 0.001 and sizing["exposure_cap"] == 0.02
    assert sizing["price"] == BTC and sizing["stop"] == 38_400.0 and sizing["binding"] == "exposure_cap"
    cid = d["order"]["client_order_id"]

    # the request, the exchange's answer and the latency
    request, response = sent["details"]["request"], sent["details"]["response"]
    assert sent["code"] == "ORDER_SENT" and sent["details"]["client_order_id"] == cid
    assert request["params"]["newClientOrderId"] == cid
    assert (request["symbol"], request["type"], request["side"], request["amount"]) == (
        "BTC/USDT", "market", "buy", sizing["qty"])
    assert response["clientOrderId"] == cid and response["status"] == "closed" and response["id"]
    assert response["filled"] == sizing["qty"] and response["average"] == market["ask"]
    # Binance charges a buy's commission in the coin received (faqs/commission_faq.md): 0.1 % of the BTC bought
    assert response["fee"]["currency"] == "BTC" and response["fee"]["cost"] == pytest.approx(sizing["qty"] * 0.001)
    assert 0 < sent["details"]["latency_s"] < 5

    # the fill: price, fee, slippage against the decision close
    f = bought["details"]
    assert f["client_order_id"] == cid and f["qty"] == sizing["qty"] and f["price"] == response["average"]
    assert f["fee_asset"] == "BTC"  # its value in USDT at the fill price (R9.2)
    assert f["fee"] == pytest.approx(response["fee"]["cost"] * response["average"])
    assert f["reference"] == "decision close" and f["reference_price"] == BTC
    assert f["slippage_bps"] == pytest.approx((f["price"] / BTC - 1) * 10_000, abs=1e-3)
    assert f["slippage_quote"] == pytest.approx((f["price"] - BTC) * f["qty"], abs=1e-6)
    stored = Store(settings.db_path).query("SELECT slippage FROM fills WHERE fill_id = ?", [f["fill_id"]]).item()
    assert f["slippage_quote"] == pytest.approx(stored, abs=1e-6)  # the broker measures it the same way

    # the exit: its reason, its execution and fill, and the closed trade
    assert exit_signal["reason"] == trade["exit_reason"] and exit_signal["details"]["market"]["price"] == BTC * 1.01
    exit_cid = exit_signal["details"]["order"]["client_order_id"]
    assert sold_sent["details"]["request"]["params"]["newClientOrderId"] == exit_cid
    assert sold["details"]["price"] == trade["exit_price"] and sold["details"]["reference_price"] == BTC * 1.01
    t = closed["details"]
    assert closed["code"] == "EXIT_SIGNAL" and trade["exit_reason"] in closed["reason"]
    assert t["entry_client_order_ids"] == [cid] and t["exit_client_order_id"] == exit_cid
    assert t["net_pnl"] == pytest.approx(trade["net_pnl"]) and t["fees"] == pytest.approx(f["fee"] + sold["details"]
                                                                                          ["fee"])
    assert t["entry_reason"] == signal["reason"]

    # the denied ETH entry has its market conditions too, spread included
    (denied,) = rig.decisions().filter(pl.col("kind") == "denied").rows(named=True)
    dm = json.loads(denied["details"])["market"]
    assert denied["code"] == "EXPOSURE_CAP" and dm["bid"] < ETH < dm["ask"] and dm["spread"] > 0

    # stored once each; the JSON lines log holds the same rows
    rows = store.query("SELECT decision_id, details FROM decisions WHERE session_id = ?", [sid])
    assert rows["decision_id"].is_unique().all()
    logged = json_log(settings.data_dir, sid)
    assert set(logged) == set(rows["decision_id"])
    for row in story:
        assert logged[row["decision_id"]]["details"] == row["details"]
        assert logged[row["decision_id"]]["kind"] == row["kind"]


@pytest.mark.req("R3.5")
def test_a_protective_stop_exit_is_measured_against_its_trigger(tmp_path: Path, creds: None) -> None:
    btc = [BTC, BTC, BTC, BTC * 0.9575, BTC * 0.9575, BTC * 0.9575]  # through the 38,400 stop, above its limit
    settings = settings_for(tmp_path)
    with sandbox(btc, [ETH] * 6, order_lists=False) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()  # booked; the stop goes on the exchange
        rig.bar()  # the price falls through the stop
        rig.bar()  # the stop's fill is booked: the trade closes
        rig.stop()
    trade = the_trade(rig)
    story = explain_trade(Store(settings.db_path), rig.session.session_id, trade["trade_id"])
    assert [r["kind"] for r in story] == ["order", "execution", "fill", "execution", "fill", "trade"]
    _, _, _, placed, stopped, closed = story
    params = placed["details"]["request"]["params"]
    assert params["stopLossPrice"] == 38_400.0 and placed["details"]["response"]["status"] == "open"
    assert placed["details"]["request"]["price"] == pytest.approx(38_400.0 * 0.995, abs=0.01)  # its limit
    f = stopped["details"]
    assert f["reference"] == "stop trigger" and f["reference_price"] == 38_400.0 and f["order_tag"] == "stop"
    assert f["price"] < 38_400.0 and f["slippage_bps"] == pytest.approx((1 - f["price"] / 38_400.0) * 10_000,
                                                                         abs=1e-3)
    assert closed["code"] == "EXIT_STOP" and closed["details"]["exit_reason"] == trade["exit_reason"]
    assert "protective stop 38400.00 hit" in closed["reason"]
    assert closed["details"]["exit_client_order_id"] == f["client_order_id"] == params["newClientOrderId"]


@pytest.mark.req("R3.5")
@pytest.mark.req("R9.3")
def test_with_order_lists_the_log_shows_the_entry_list_and_the_exit_replacing_the_stop(
        tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path)
    btc = [BTC, BTC, BTC * 1.001, BTC * 1.001, BTC * 1.001]
    with sandbox(btc, [ETH] * 5) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        rig.bar(BTCUSDT=leave("done"))
        rig.bar()
        rig.stop()
    trade = the_trade(rig)
    story = explain_trade(Store(settings.db_path), rig.session.session_id, trade["trade_id"])
    assert [(r["kind"], r["action"]) for r in story] == [
        ("order", "enter"), ("execution", "create_order_list"), ("fill", "buy"),
        ("order", "exit"), ("execution", "cancel_replace"), ("fill", "sell"), ("trade", "close")]
    _, listed, _, exit_signal, replaced, _, _ = story
    entry_cid = listed["details"]["client_order_id"]
    params = listed["details"]["request"]["params"]
    assert params["workingType"] == "LIMIT" and params["workingTimeInForce"] == "IOC"
    assert params["pendingType"] == "STOP_LOSS_LIMIT" and float(params["pendingStopPrice"]) == 38_400.0
    reports = {o["clientOrderId"]: o for o in listed["details"]["response"]["orders"]}
    assert reports[entry_cid]["status"] == "FILLED" and reports[params["pendingClientOrderId"]]["status"] in (
        "PENDING_NEW", "NEW")
    exit_cid = exit_signal["details"]["order"]["client_order_id"]
    request = replaced["details"]["request"]["params"]
    assert request["newClientOrderId"] == exit_cid and request["cancelOrigClientOrderId"] == params[
        "pendingClientOrderId"] and request["cancelReplaceMode"] == "STOP_ON_FAILURE"
    assert {o["status"] for o in replaced["details"]["response"]["orders"]} == {"CANCELED", "FILLED"}


@pytest.mark.req("R9.3")
def test_an_entry_list_whose_price_ran_away_does_not_fill_and_leaves_nothing_open(tmp_path: Path,
                                                                                  creds: None) -> None:
    """The working buy is a limit IOC at most 0.5 % above the decision close: a market 1 % away is not chased."""
    settings = settings_for(tmp_path)
    with sandbox([BTC, BTC * 1.01, BTC * 1.01], [ETH] * 3) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))  # decided at 40,000; the market opens the next candle at 40,400
        rig.bar()
        held = server.client(*DEMO).fetch_balance()["total"].get("BTC", 0.0)
        open_orders = server.client(*DEMO).fetch_open_orders("BTC/USDT")
        rig.stop()
    assert held == 0.0 and open_orders == [] and rig.engine.portfolio.positions == {}
    orders = Store(settings.db_path).query("select tag, status from orders where session_id = ?",
                                           [rig.session.session_id]).rows()
    assert sorted(orders) == [("entry", "expired"), ("stop", "expired")]
