"""The live path under Binance's real rules (issue 13, SPEC R9.1–R9.5), on the sandbox through the real ccxt client.

Each scenario cites the part of ../shared/binance-docs it follows. The sandbox runs on a manual clock: every
``rig.bar()`` closes one more 1-minute candle and steps the session once, so what happens is exact; only Binance's
own Retry-After, in seconds, is waited in real time (and then only "nothing before it expired" is asserted).
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from core.control.emergency import emergency_stop
from core.execution.ccxt_client import make_binance
from core.execution.order_lists import ListSupport
from core.reporting.daily.builder import build_daily_report
from core.reporting.daily.candles import default_source
from core.store import Store
from core.venue import sandbox_at
from tests.sandbox_rig import BTC, CCXT, ETH, Rig, by_code, enter, exchange, held, inject, leave, sandbox
from tests.sandbox_rig import settings_for as rig_settings

QUIET = {"slippage_bps": 1000.0, "api_errors": 1000, "consecutive_losses": 50}


def settings_for(tmp_path: Path, **overrides: Any) -> Any:
    return rig_settings(tmp_path, breakers=QUIET, live={"order_poll_s": 0}, **overrides)


def stop_orders(server: Any, symbol: str = "BTCUSDT") -> list[dict[str, Any]]:
    return [o for o in exchange(server).fetch_open_orders(CCXT[symbol]) if o["info"]["type"] == "STOP_LOSS_LIMIT"]


def codes(rig: Rig) -> list[str]:
    return rig.events()["code"].to_list()


def market_buys(server: Any) -> list[dict[str, Any]]:
    return [o for o in exchange(server).fetch_orders("BTC/USDT") if o["type"] == "market" and o["side"] == "buy"]


# --- R9.1: a buy's commission in the coin received; the stop covers what is held; dust is reported -------------
@pytest.mark.req("R9.1")
def test_with_binance_commission_the_position_is_what_the_account_holds_and_the_dust_is_reported(
    tmp_path: Path, creds: None
) -> None:
    """faqs/commission_faq.md "How is the commission calculated?": a BUY's received amount is the quantity, and the
    commission is deducted from it unless BNB pays. filters.md LOT_SIZE: what is below the step cannot be sold."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:  # the sandbox's default: commission in the asset received
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))  # 200 USDT at 40,000: 0.005 BTC bought, 0.000005 BTC commission
        account = held(server, "BTC")
        position = rig.engine.portfolio.positions["BTCUSDT"]
        assert account == pytest.approx(0.004995) and position.qty == pytest.approx(account)
        (stop,) = stop_orders(server)
        assert float(stop["amount"]) == pytest.approx(0.00499)  # the sellable quantity: the lot step is 0.00001
        rig.bar(BTCUSDT=leave("done"))
        assert stop_orders(server) == [] and held(server, "BTC") == pytest.approx(0.000005)  # dust stays
        rig.bar()
        rig.stop()
        client = make_binance(base_url=server.url)
        report = build_daily_report(Store(settings.db_path), settings, date(2024, 1, 1),
                                    default_source(settings.data_dir, [], client))
    events = rig.events()
    assert events.filter(pl.col("severity").is_in(["error", "critical"])).height == 0, events
    (dust,) = by_code(Store(settings.db_path).query("SELECT code, details FROM events WHERE session_id = ?",
                                                    [rig.session.session_id]), "DUST_LEFT")["details"].to_list()
    assert json.loads(dust)["qty"] == pytest.approx(0.000005) and json.loads(dust)["symbol"] == "BTCUSDT"
    (trade,) = Store(settings.db_path).query("SELECT qty, fees FROM trades WHERE session_id = ?",
                                             [rig.session.session_id]).rows()
    assert trade[0] == pytest.approx(0.00499) and trade[1] > 0
    (reported,) = report.doc["risk"]["dust"]
    assert reported["symbol"] == "BTCUSDT" and reported["qty"] == pytest.approx(0.000005)
    assert report.doc["risk"]["counts"]["dust"] == 1


@pytest.mark.req("R9.1")
@pytest.mark.req("R9.4")
def test_a_fill_whose_trades_cannot_be_read_books_the_commission_in_the_coin_received(
    tmp_path: Path, creds: None
) -> None:
    """rest-api.md "Query order": the order's report carries no commission; myTrades does. The list's answer is
    lost, the look-up finds the entry filled, and myTrades answers -1008 each time: the fee is then estimated as
    Binance charges it (the account's taker rate, in BTC for a buy), so the books hold what the account holds and
    the stop covers it. (Found by the chaos bench: estimated in USDT, the books held one lot step more than the
    account, the stop for it was refused and the position went unprotected.)"""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        inject(server, "lost", path="/api/v3/orderList/opo")
        inject(server, "busy", count=50, method="GET", path="/api/v3/myTrades")
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        account = held(server, "BTC")
        assert account == pytest.approx(0.004995)
        assert rig.engine.portfolio.positions["BTCUSDT"].qty == pytest.approx(account, abs=1e-12)
        (stop,) = stop_orders(server)
        assert float(stop["amount"]) == pytest.approx(0.00499)
        rig.bar()
        rig.stop()
    (fill,) = Store(settings.db_path).query("SELECT fee, fee_asset, qty, price FROM fills WHERE session_id = ?",
                                            [rig.session.session_id]).rows(named=True)
    assert fill["fee_asset"] == "BTC" and fill["fee"] == pytest.approx(0.000005 * fill["price"], rel=1e-6)
    assert "UNPROTECTED" not in codes(rig)


@pytest.mark.req("R9.1")
@pytest.mark.req("R9.3")
@pytest.mark.parametrize("kind", ["opo", "oto"])
def test_dust_from_an_earlier_trade_is_covered_by_the_next_stop_without_an_alert(
    tmp_path: Path, creds: None, kind: str
) -> None:
    """The first round trip leaves 0.000005 BTC below the lot step; with the next buy's coins one more lot step
    can be sold. faqs/opo: an OPO's pending sell takes what the buy received, the commission taken from the free
    balance first, so it covers that step. An OTO's pending quantity is fixed when it is sent (the buy less its
    commission): its stop is swapped in one request for one covering the whole sellable quantity — a routine
    step, not an UNPROTECTED alert."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 10, [ETH] * 10) as server:
        rig = Rig(server, settings)
        if kind == "oto":  # a venue that advertises OTO and cancelReplace but not OPO
            rig.session.broker.support["BTCUSDT"] = ListSupport(opo=False, oto=True, cancel_replace=True)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar(BTCUSDT=leave("done"))
        assert held(server, "BTC") == pytest.approx(0.000005)
        rig.bar(BTCUSDT=enter(0.04, "again"))
        rig.bar()
        account = held(server, "BTC")
        buy = [o for o in exchange(server).fetch_orders("BTC/USDT") if o["side"] == "buy"][-1]
        brought = float(buy["filled"]) * (1 - 0.001)  # what the second buy left after its commission
        sellable, alone = math.floor(account / 1e-5 + 1e-6) * 1e-5, math.floor(brought / 1e-5 + 1e-6) * 1e-5
        assert sellable == pytest.approx(alone + 1e-5)  # the dust makes one more lot step sellable
        assert [float(o["amount"]) for o in stop_orders(server)] == [pytest.approx(sellable)]
        assert rig.engine.portfolio.positions["BTCUSDT"].qty == pytest.approx(account)
        rig.bar()
        rig.stop()
    assert "UNPROTECTED" not in codes(rig) and "ORDER_REJECTED" not in codes(rig)


# --- R9.2: a commission paid in BNB is valued at BNBUSDT ------------------------------------------------------
@pytest.mark.req("R9.2")
def test_fees_paid_in_bnb_are_valued_at_the_bnb_price_and_take_nothing_from_the_position(
    tmp_path: Path, creds: None
) -> None:
    """faqs/commission_faq.md: with BNB fee payment on, the commission is converted into BNB at the exchange rate,
    discounted, and taken from the BNB balance."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 6, [ETH] * 6, commission="bnb", balances={"USDT": 10_000.0, "BNB": 1.0}) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        bnb_price = float(exchange(server).fetch_ticker("BNB/USDT")["last"])
        bnb_spent = 1.0 - held(server, "BNB")
        assert held(server, "BTC") == pytest.approx(0.005)  # nothing taken from the coins bought
        assert rig.engine.portfolio.positions["BTCUSDT"].qty == pytest.approx(0.005)
        rig.stop()
    (fill,) = Store(settings.db_path).query("SELECT fee, fee_asset, qty, price FROM fills WHERE session_id = ?",
                                            [rig.session.session_id]).rows(named=True)
    assert fill["fee_asset"] == "BNB" and bnb_spent > 0
    assert fill["fee"] == pytest.approx(bnb_spent * bnb_price, rel=1e-6)  # at BNBUSDT, not at BTC's 40,000
    assert fill["fee"] < fill["qty"] * fill["price"] * 0.001  # the discounted rate


# --- R9.3 / R9.5: -1008 on the protective stop; the session goes on and the stop is placed again ---------------
@pytest.mark.req("R9.3")
@pytest.mark.req("R9.5")
def test_a_busy_answer_to_the_stop_leaves_the_session_running_and_the_stop_is_placed_again_at_once(
    tmp_path: Path, creds: None
) -> None:
    """errors.md -1008 SERVER_BUSY: "Please try again" — the stop is sent again, within protect_within_s. On a venue
    without order lists, where the stop is a request of its own after the fill."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, order_lists=False) as server:
        rig = Rig(server, settings)
        inject(server, "busy", match={"type": "STOP_LOSS_LIMIT"})
        started = time.monotonic()
        rig.bar(BTCUSDT=enter(0.04))
        assert [float(o["info"]["stopPrice"]) for o in stop_orders(server)] == [BTC * 0.96]
        assert time.monotonic() - started < settings.risk.protect_within_s
        rig.bar()
        rig.bar()
        assert rig.stop() == "ACTIVE"
    seen = codes(rig)
    assert "ORDER_NOT_SENT" in seen and "UNPROTECTED" in seen and "PROTECTION_RESTORED" in seen
    assert "SESSION_ERROR" not in seen
    alerts = Store(settings.db_path).query("SELECT rule, code FROM alerts WHERE session_id = ?",
                                           [rig.session.session_id]).rows()
    assert ("protection", "UNPROTECTED") in alerts


# --- R9.3: a crash between the entry's fill and its stop; the restart places the stop before anything else -----
@pytest.mark.req("R9.3")
@pytest.mark.req("R6.4")
def test_after_a_crash_between_the_fill_and_its_stop_the_restart_places_the_stop_first(
    tmp_path: Path, creds: None
) -> None:
    """On a venue without order lists, the stop is a request of its own after the fill: a crash can fall between."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, order_lists=False) as server:
        first = Rig(server, settings)
        inject(server, "busy", count=50, match={"type": "STOP_LOSS_LIMIT"})
        first.bar(BTCUSDT=enter(0.04))  # filled; every stop refused: the process dies now (no shutdown)
        assert stop_orders(server) == [] and held(server, "BTC") > 0
        httpx.delete(f"{server.url}/sandbox/inject").raise_for_status()
        second = Rig(server, settings)  # the restart: reconcile, restore, protect, before any bar
        (stop,) = stop_orders(server)
        assert float(stop["amount"]) == pytest.approx(0.00499)
        sent = Store(settings.db_path).query(
            "SELECT tag FROM orders WHERE session_id = ? ORDER BY created_at", [second.session.session_id])
        assert sent["tag"].to_list()[:1] == ["stop"]
        second.stop()


# --- R9.3: a session that stops leaves no position without its stop ----------------------------------------------
@pytest.mark.req("R9.3")
def test_a_stopping_session_places_a_missing_stop_before_it_exits(tmp_path: Path, creds: None) -> None:
    """Every stop of the last bar was refused (-1008 twice: the placement and the protector's retry); the operator
    stops the session before the next poll. It places the stop before it exits: the position is left protected."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, order_lists=False) as server:
        rig = Rig(server, settings)
        inject(server, "busy", count=2, match={"type": "STOP_LOSS_LIMIT"})
        rig.bar(BTCUSDT=enter(0.04))
        assert stop_orders(server) == [] and held(server, "BTC") > 0  # unprotected when the stop arrives
        assert rig.stop() == "ACTIVE"
        (stop,) = stop_orders(server)
        assert float(stop["amount"]) == pytest.approx(0.00499)
    seen = codes(rig)
    assert seen.index("PROTECTION_RESTORED") > seen.index("UNPROTECTED")
    assert seen.index("PROTECTION_RESTORED") < seen.index("SESSION_STOPPED")


@pytest.mark.req("R9.3")
def test_a_stop_the_exchange_keeps_refusing_at_exit_is_an_alert_and_the_next_start_places_it(
    tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exchange refuses every stop until the session has gone: the session says so (UNPROTECTED, cause EXIT, an
    alert; its summary shows NO STOP WORKING) and the next start places the stop before anything else."""
    monkeypatch.setattr("core.live.session.EXIT_PROTECT_S", 1.0)
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, order_lists=False) as server:
        rig = Rig(server, settings)
        inject(server, "busy", count=1000, match={"type": "STOP_LOSS_LIMIT"})
        rig.bar(BTCUSDT=enter(0.04))
        stopped = threading.Event()
        stopped.set()
        summary = rig.session.run(stopped)
        assert stop_orders(server) == []
        assert any("NO STOP WORKING" in line for line in summary.open_positions), summary.open_positions
        httpx.delete(f"{server.url}/sandbox/inject").raise_for_status()
        second = Rig(server, settings)
        assert len(stop_orders(server)) == 1
        second.stop()
    events = Store(settings.db_path).query("SELECT code, details FROM events WHERE session_id = ?",
                                           [rig.session.session_id])
    exits = [json.loads(d) for c, d in events.rows() if c == "UNPROTECTED" and json.loads(d).get("cause") == "EXIT"]
    assert [e["symbol"] for e in exits] == ["BTCUSDT"]
    alerts = Store(settings.db_path).query("SELECT rule, code FROM alerts WHERE session_id = ?",
                                           [rig.session.session_id]).rows()
    assert ("protection", "UNPROTECTED") in alerts


@pytest.mark.req("R9.3")
def test_a_stop_that_covers_too_little_is_replaced_in_one_request_never_cancelled_first(
    tmp_path: Path, creds: None
) -> None:
    """The books find the working stop covering less than the position (here: the stop order's quantity as
    recorded is cut). The replacement for the whole quantity goes in one order/cancelReplace, so there is no moment
    between a cancel and a new stop, whatever the exchange answers meanwhile."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        (first,) = stop_orders(server)
        (working,) = [o for o in rig.engine.books[0].working if o.tag.value == "stop"]
        working.qty = 0.002  # what the books believe the stop covers
        before = len(server.stats()["api_requests"])
        rig.bar()
        (stop,) = stop_orders(server)
        assert stop["clientOrderId"] != first["clientOrderId"] and float(stop["amount"]) == pytest.approx(0.00499)
        rig.stop()
    sent = [(r["method"], r["path"]) for r in server.stats()["api_requests"][before:]]
    assert ("POST", "/api/v3/order/cancelReplace") in sent
    assert ("DELETE", "/api/v3/order") not in sent
    seen = codes(rig)
    assert seen.index("PROTECTION_RESTORED") > seen.index("UNPROTECTED")


@pytest.mark.req("R6.4")
@pytest.mark.req("R9.4")
def test_an_order_that_ended_while_away_is_recorded_by_the_restart_even_if_its_sender_never_stored_it(
    tmp_path: Path, creds: None
) -> None:
    """A session journals its stop, then dies before its rows reach the store; meanwhile the stop is cancelled on
    the exchange. The restart finds it in the journal, ended: it records it, so every order Rampart ever sent is in
    the store (the chaos bench counted such orders as unknown), and places a new stop."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        first = Rig(server, settings)
        first.bar(BTCUSDT=enter(0.04))
        (stop,) = stop_orders(server)
        exchange(server).cancel_order(stop["id"], "BTC/USDT")
        store = Store(settings.db_path)
        store.execute("DELETE FROM orders WHERE client_order_id = ?", [stop["clientOrderId"]])  # never stored
        second = Rig(server, settings)  # the restart
        assert len(stop_orders(server)) == 1
        second.stop()
    rows = store.query("SELECT session_id, status FROM orders WHERE client_order_id = ?",
                       [stop["clientOrderId"]]).rows()
    assert rows == [(second.session.session_id, "canceled")]


# --- R9.3: with order lists the stop rides on the entry; a crash cannot fall between them ------------------------
@pytest.mark.req("R9.3")
@pytest.mark.req("R6.4")
def test_with_order_lists_the_stop_is_on_the_exchange_from_the_fill_and_the_restart_keeps_that_one(
    tmp_path: Path, creds: None
) -> None:
    """rest-api.md orderList/opo: the pending STOP_LOSS_LIMIT is placed when the working buy has fully filled, for
    the quantity it delivered. The process dies right after (no shutdown); the restart sends no second stop."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        first = Rig(server, settings)
        first.bar(BTCUSDT=enter(0.04))
        (stop,) = stop_orders(server)
        # what the buy delivered after its commission in BTC, on the lot step: the whole holding is covered
        assert float(stop["amount"]) == pytest.approx(0.00499) and held(server, "BTC") == pytest.approx(0.004995)
        assert stop["clientOrderId"].endswith("a")  # the stop that was sent with the entry
        sent = Store(settings.db_path).query("SELECT client_order_id, tag, status FROM orders WHERE session_id = ?",
                                             [first.session.session_id]).rows()
        assert {(t, st) for _, t, st in sent} == {("entry", "filled"), ("stop", "accepted")}
        second = Rig(server, settings)  # the restart: reconcile, restore, protect
        second.bar()
        assert [o["clientOrderId"] for o in stop_orders(server)] == [stop["clientOrderId"]]
        second.bar(BTCUSDT=leave())  # the exit replaces the stop in one request (order/cancelReplace)
        assert stop_orders(server) == [] and held(server, "BTC") < 0.00001
        second.stop()
    requests = [r["path"] for r in server.stats()["api_requests"]]
    assert "/api/v3/order/cancelReplace" in requests and "/api/v3/orderList/opo" in requests


@pytest.mark.req("R9.4")
@pytest.mark.req("R9.3")
@pytest.mark.parametrize("path", ["/api/v3/orderList/opo", "/api/v3/order"])
def test_a_lost_answer_whose_look_up_is_refused_too_stays_unknown_and_is_booked_when_seen(
    tmp_path: Path, creds: None, path: str
) -> None:
    """The order (an OPO list, or a plain order on a venue without lists) is booked, its answer lost (503 -1007),
    and the look-up by client id meets -1008 four times. That says nothing about the order: its outcome stays
    unknown, it stays in the journal and the polls find it. (Found by the chaos bench: taken for "not sent", such
    orders and their fills were dropped from the books, the journal and the store.)"""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, order_lists=path != "/api/v3/order") as server:
        rig = Rig(server, settings)
        inject(server, "lost", path=path)
        inject(server, "busy", count=4, method="GET", path="/api/v3/order")
        rig.bar(BTCUSDT=enter(0.04))
        assert rig.session.state.orders, "the order left the journal"
        rig.bar()
        rig.bar()
        buys = [o for o in exchange(server).fetch_orders("BTC/USDT") if o["side"] == "buy"]
        assert len(buys) == 1 and buys[0]["status"] == "closed"
        assert rig.engine.portfolio.positions["BTCUSDT"].qty == pytest.approx(held(server, "BTC"))
        assert len(stop_orders(server)) == 1
        rig.stop()
    stored = Store(settings.db_path).query("SELECT client_order_id, status FROM orders WHERE session_id = ?",
                                           [rig.session.session_id]).rows()
    assert (buys[0]["clientOrderId"], "filled") in stored
    assert "ORDER_NOT_SENT" not in codes(rig)


@pytest.mark.req("R9.4")
@pytest.mark.req("R9.3")
def test_an_order_list_whose_answer_is_lost_makes_exactly_one_position_with_one_stop(tmp_path: Path,
                                                                                    creds: None) -> None:
    """The list is booked, the answer is a 503 -1007: the entry is asked for by its client id, never re-sent."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        inject(server, "lost", path="/api/v3/orderList/opo")
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar(BTCUSDT=enter(0.04, "a second signal"))
        rig.bar()
        buys = [o for o in exchange(server).fetch_orders("BTC/USDT") if o["side"] == "buy"]
        assert len(buys) == 1 and buys[0]["status"] == "closed"
        assert len(stop_orders(server)) == 1
        assert rig.engine.portfolio.positions["BTCUSDT"].qty == pytest.approx(held(server, "BTC"))
        rig.stop()


# --- R9.3: a stop-limit that triggers in a gap and stays unfilled; the position is sold at market --------------
@pytest.mark.req("R9.3")
def test_a_stop_that_triggers_in_a_gap_and_stays_unfilled_is_replaced_by_a_market_sell(
    tmp_path: Path, creds: None
) -> None:
    """rest-api.md, order query: a triggered STOP_LOSS_LIMIT is working on the book (``isWorking``) as a LIMIT at
    its price; below that price it does not fill."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))  # stop 38,400, its limit 0.5 % lower
        httpx.post(f"{server.url}/sandbox/price", json={"symbol": "BTCUSDT", "price": BTC * 0.90}).raise_for_status()
        (stop,) = stop_orders(server)
        assert stop["status"] == "open" and stop["info"].get("isWorking") in (True, "true")
        rig.bar()  # the poll sees the triggered, unfilled stop: sold at market
        assert held(server, "BTC") < 0.00001 and stop_orders(server) == []
        rig.stop()
    events = Store(settings.db_path).query("SELECT kind, code, severity, details FROM events WHERE session_id = ?",
                                           [rig.session.session_id])
    (sold,) = events.filter((pl.col("code") == "PROTECTION_SOLD") & (pl.col("kind") == "session")).rows(named=True)
    assert sold["severity"] == "critical" and json.loads(sold["details"])["cause"] == "TRIGGERED_UNFILLED"
    assert events.filter((pl.col("code") == "PROTECTION_SOLD") & (pl.col("kind") == "alert")).height == 1
    (trade,) = Store(settings.db_path).query("SELECT exit_price, exit_reason FROM trades WHERE session_id = ?",
                                             [rig.session.session_id]).rows()
    assert trade[0] < BTC * 0.91 and "protection" in trade[1]


# --- R9.4: 503 -1007, and the order executes later: exactly one position ---------------------------------------
@pytest.mark.req("R9.4")
def test_an_order_that_executes_after_a_503_makes_exactly_one_position(tmp_path: Path, creds: None) -> None:
    """rest-api.md: a 5XX means "execution status UNKNOWN and could have been a success"; errors.md -1007. A single
    market order (a venue without order lists; the list's own unknown outcome is tested below)."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, order_lists=False) as server:
        rig = Rig(server, settings)
        inject(server, "late", match={"type": "MARKET"}, late_ms=90_000)
        rig.bar(BTCUSDT=enter(0.04))  # answered 503 -1007; the order reaches the book 90 s of market time later
        assert market_buys(server) == [] and "ORDER_OUTCOME_UNKNOWN" in codes(rig)
        rig.bar(BTCUSDT=enter(0.04, "a second signal while the first is unknown"))
        assert market_buys(server) == []  # nothing re-sent
        rig.bar()  # the first order executed meanwhile: found by its client id, booked once
        rig.bar()
        buys = market_buys(server)
        assert len(buys) == 1 and buys[0]["status"] == "closed"
        assert rig.engine.portfolio.positions["BTCUSDT"].qty == pytest.approx(held(server, "BTC"))
        assert len(stop_orders(server)) == 1
        rig.stop()
    pending = rig.decisions().filter(pl.col("code") == "ORDER_PENDING")
    assert pending.height >= 1  # the second signal was refused while the first was unknown


# --- R9.5: 429 with Retry-After; 418 bans; every caller waits ---------------------------------------------------
@pytest.mark.req("R9.5")
def test_nothing_reaches_the_exchange_before_a_retry_after_expires_and_an_ip_ban_is_waited_out(
    tmp_path: Path, creds: None
) -> None:
    """rest-api.md LIMITS: after a 429, back off for Retry-After seconds; continuing gets the IP banned (418, with
    Retry-After until the ban is over). Every caller honours it: the live loop and the emergency stop."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8, ban_s=2) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        inject(server, "rate_limit", method="GET", path="/api/v3/klines", retry_after=1)
        httpx.post(f"{server.url}/sandbox/advance", json={"ms": 60_000}).raise_for_status()
        hit = time.time()
        assert not rig.session.step()  # the 429
        while time.time() - hit < 0.9:
            rig.session.step()  # polls during the Retry-After send nothing
            time.sleep(0.05)
        time.sleep(max(0.0, hit + 1.2 - time.time()))
        stats = httpx.get(f"{server.url}/sandbox/stats").json()
        times = sorted(r["t"] / 1000 for r in stats["api_requests"])
        during = [t for t in times if hit + 0.05 < t < hit + 0.95]
        assert during == [], during
        assert rig.session.step()  # after it: the bar is traded
        # a violation of a Retry-After gets the IP banned; every caller then waits the ban out
        inject(server, "rate_limit", method="GET", path="/api/v3/time", retry_after=5)
        for _ in range(2):
            httpx.get(f"{server.url}/api/v3/time")  # someone else on this IP sends during the Retry-After: 418
        report = emergency_stop(settings, "test: exchange incident", "tester", sandbox_at(server.url))
        rig.stop()
    assert report.flat, report.text()
    assert any("IP ban" in w or "Retry-After" in w for w in report.waits), report.text()
    assert "waited:" in report.text()


@pytest.mark.req("R9.6")
@pytest.mark.req("R10.3")
def test_a_loop_catching_up_sends_no_entry_for_a_stale_bar_but_still_exits(tmp_path: Path, creds: None) -> None:
    """One poll brings ten closed bars (the loop was held up): every bar is decided, in order, but an entry on a bar
    more than ``live.max_signal_age_s`` (300 s: five 1-minute bars) behind the newest is refused STALE_SIGNAL —
    its price is history. (Found by the chaos bench: an OPO decided 46 bars late filled below its own stop.) An
    exit on such a bar still goes; the next entry, on a current bar, is sent."""
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 30, [ETH] * 30) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        assert held(server, "BTC") > 0
        rig.cues["BTCUSDT"].cue = leave("late exit")
        httpx.post(f"{server.url}/sandbox/advance", json={"ms": 10 * 60_000}).raise_for_status()
        assert rig.session.step() and rig.session.bars == 11
        assert held(server, "BTC") < 1e-4  # the exit went
        rig.cues["ETHUSDT"].cue = enter(0.04, "late entry")
        httpx.post(f"{server.url}/sandbox/advance", json={"ms": 10 * 60_000}).raise_for_status()
        assert rig.session.step() and rig.session.bars == 21
        assert held(server, "ETH") == 0  # the entry did not
        rig.bar(ETHUSDT=enter(0.04, "current entry"))
        assert held(server, "ETH") > 0
        rig.stop()
    decisions = rig.decisions()
    stale = decisions.filter(pl.col("code") == "STALE_SIGNAL").rows(named=True)
    details = json.loads(stale[0]["details"])
    assert [d["symbol"] for d in stale] == ["ETHUSDT"] and stale[0]["reason"] == "late entry"
    assert "9 bar(s) behind the newest closed bar" in details["denied"]
    assert details["checks"][-1]["check"] == "signal_age" and details["checks"][-1]["bars_behind"] == 9
    entries = decisions.filter((pl.col("symbol") == "ETHUSDT") & (pl.col("kind") == "order"))
    assert entries.height == 1 and "current entry" in entries["reason"][0]


@pytest.mark.req("R1.6")
def test_a_session_with_a_bar_budget_runs_exactly_that_many_bars_when_one_poll_brings_more(
    tmp_path: Path, creds: None
) -> None:
    """--max-bars 2, and the first poll finds three closed bars (a loop that fell behind, a loaded machine): the
    session runs two and stops; the third is left for the next start."""
    from core.live.session import LiveOptions
    from core.node import open_live

    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.01, max_bars=2))
        httpx.post(f"{server.url}/sandbox/advance", json={"ms": 3 * 60_000}).raise_for_status()
        summary = session.run()
    assert summary.bars == 2 and summary.stopped_because == "max bars reached"
    assert session.engine is not None and len(session.engine.result.ts) == 2


@pytest.mark.req("R6.4")
@pytest.mark.req("R9.4")
def test_the_state_file_forgets_an_order_only_once_its_rows_are_in_the_store(
    tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every save of the state file is checked: an order that leaves the journal (it ended) must already be in the
    store, so a kill between the two writes loses nothing. Periodic reconciliation every bar, an entry and an exit
    that fill within their bars."""
    import core.live.recorder as recorder
    from core.live.session import LiveOptions
    from core.state.live import load_state

    settings = settings_for(tmp_path)
    forgotten_unstored: list[str] = []
    real_save = recorder.save_state

    def checked_save(path: Path, state: Any) -> None:
        before = set(load_state(path).orders) if path.exists() else set()
        gone = before - set(state.orders)
        if gone and settings.db_path.exists():
            marks = ", ".join("?" * len(gone))
            rows = Store(settings.db_path).query(
                f"SELECT client_order_id FROM orders WHERE client_order_id IN ({marks})", list(gone))
            stored = set(rows["client_order_id"])
            forgotten_unstored.extend(sorted(gone - stored))
        real_save(path, state)

    monkeypatch.setattr(recorder, "save_state", checked_save)
    with sandbox([BTC] * 10, [ETH] * 10, order_lists=False) as server:
        rig = Rig(server, settings)
        rig.session.options = LiveOptions(poll_interval_s=0.05, reconcile_every=1)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar(BTCUSDT=leave())
        rig.bar()
        rig.stop()
    assert forgotten_unstored == []
