"""The chaos benchmark's checks (bench/chaos_checks.py) read a real sandbox account and find what they claim to find.

The benchmark itself (bench/chaos.py) is timed on the wall clock and is never run by the tests; its checks are,
here, on a manual-clock sandbox through the real ccxt client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench import chaos_checks as checks
from core.market import generate
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig
from core.sandbox.server import SandboxServer

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
ENTRY = "rpaaaaaaaa-BTCUSDT-s6ab40e"  # Rampart's id shape: session, symbol, bar ts36 + tag


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    sets = generate(SYMBOLS, "1m", 0.2, 5)
    with SandboxServer(SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][60])) as srv:
        yield srv


def buy(client: Any, cid: str, qty: float = 0.01) -> dict[str, Any]:
    order: dict[str, Any] = client.create_order("BTC/USDT", "market", "buy", qty, None, {"newClientOrderId": cid})
    return order


@pytest.mark.req("R9.3")
def test_a_position_counts_as_unprotected_until_a_working_stop_covers_its_sellable_quantity(
        server: SandboxServer) -> None:
    client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
    buy(client, ENTRY)
    snap = checks.read_exchange(client, SYMBOLS)
    naked = checks.unprotected(snap, SYMBOLS, {})
    held = snap.balances["BTC"]  # the buy's commission was taken in BTC: less than 0.01 is held
    assert [u["symbol"] for u in naked] == ["BTCUSDT"] and naked[0]["covered"] == 0
    assert naked[0]["sellable"] == pytest.approx(int(held / 0.00001) * 0.00001)
    stop = round(snap.prices["BTCUSDT"] * 0.95, 2)
    client.create_order("BTC/USDT", "limit", "sell", 0.005, round(stop * 0.995, 2),
                        {"newClientOrderId": "rpaaaaaaaa-BTCUSDT-s6ab40s", "stopLossPrice": stop,
                         "timeInForce": "GTC"})
    half = checks.unprotected(checks.read_exchange(client, SYMBOLS), SYMBOLS, {})
    assert half and half[0]["covered"] == pytest.approx(0.005)  # a stop for half of it is not protection
    client.create_order("BTC/USDT", "limit", "sell", round(naked[0]["sellable"] - 0.005, 5), round(stop * 0.995, 2),
                        {"newClientOrderId": "rpaaaaaaaa-BTCUSDT-s6ab40s1", "stopLossPrice": stop,
                         "timeInForce": "GTC"})
    assert checks.unprotected(checks.read_exchange(client, SYMBOLS), SYMBOLS, {}) == []
    # holdings that were on the account before Rampart (the baseline) need no stop of Rampart's
    assert checks.unprotected(snap, SYMBOLS, {"BTC": held}) == []


@pytest.mark.req("R6.4")
def test_duplicates_unknown_orders_lost_fills_and_mismatches_are_found_on_the_exchange(
        server: SandboxServer) -> None:
    client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
    buy(client, ENTRY)
    buy(client, ENTRY)  # a market order is closed at once, so the exchange takes its id again
    buy(client, "rpbbbbbbbb-BTCUSDT-s6ab40e")  # another session deciding the same bar
    buy(client, "rpbbbbbbbb-BTCUSDT-s6ab41e")  # the next bar: a decision of its own
    snap = checks.read_exchange(client, SYMBOLS)
    found = {(d["kind"], d["id"]) for d in checks.duplicates(snap)}
    assert found == {("client_id", ENTRY), ("decision", "BTCUSDT-s6ab40e")}
    known = {ENTRY, "rpbbbbbbbb-BTCUSDT-s6ab40e"}
    assert checks.unknown_orders(snap, known) == ["rpbbbbbbbb-BTCUSDT-s6ab41e"]
    filled = {str(o["clientOrderId"]): float(o["filled"]) for o in snap.orders}
    booked = {**filled, ENTRY: 0.01, "rpbbbbbbbb-BTCUSDT-s6ab40e": 0.0, "rpcccccccc-ETHUSDT-s6ab40e": 0.5}
    lost, over = checks.lost_fills(snap, booked)  # ENTRY's two orders filled 0.02 on the exchange
    assert [(x["id"], x["trades"]) for x in lost] == [(ENTRY, 2), ("rpbbbbbbbb-BTCUSDT-s6ab40e", 1)]
    assert [x["id"] for x in over] == ["rpcccccccc-ETHUSDT-s6ab40e"]
    assert checks.lost_fills(snap, filled | {ENTRY: 0.02}) == ([], [])
    held = snap.balances["BTC"]
    state = {"positions": {"BTCUSDT": {"qty": held - 1e-6}}, "dust": {"BTCUSDT": 1e-6}, "baseline": {}}
    assert checks.mismatches(snap, SYMBOLS, state) == []
    state["dust"] = {}
    assert [m["symbol"] for m in checks.mismatches(snap, SYMBOLS, state)] == ["BTCUSDT"]


@pytest.mark.req("R6.4")
def test_a_fill_after_the_session_stopped_is_the_next_sessions_to_book_not_a_lost_fill(server: SandboxServer) -> None:
    client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
    bought = buy(client, ENTRY)
    stopped = server.exchange.market.now()  # the session ends here, holding what the buy left
    held = client.fetch_balance()["total"]["BTC"]
    server.exchange.advance(60_000)
    client.create_order("BTC/USDT", "market", "sell", 0.005, None, {"newClientOrderId": "rpaaaaaaaa-BTCUSDT-s6ab41s"})
    snap = checks.read_exchange(client, SYMBOLS)
    state = {"positions": {"BTCUSDT": {"qty": held}}, "baseline": {}}
    booked = {ENTRY: float(bought["filled"])}
    assert len(checks.after(snap, stopped)) == 1
    assert checks.lost_fills(snap, booked, stopped) == ([], [])
    assert checks.mismatches(snap, SYMBOLS, state, stopped) == []
    assert [x["id"] for x in checks.lost_fills(snap, booked)[0]] == ["rpaaaaaaaa-BTCUSDT-s6ab41s"]  # counted as of now
    assert [m["symbol"] for m in checks.mismatches(snap, SYMBOLS, state)] == ["BTCUSDT"]
