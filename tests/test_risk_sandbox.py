"""Risk-control scenarios on the sandbox exchange through the real ccxt client (issue 4 acceptance).

The sandbox runs on a manual clock: each scenario moves market time one 1-minute bar at a time
(``POST /sandbox/advance``) and steps the live session once per bar, so the price path the session trades and
the order of events are exact, and nothing waits on wall time (except the latency fault, which adds real
seconds to every exchange response). Entries and exits come from ``Cue``, a strategy the test drives bar by
bar; it replaces the configured strategy's instances after start, so the gate record still matches the
settings. Live sizing is rung 1 (0.1 % risk, 2 % exposure cap): the limits are scaled down in the settings
(e.g. a 0.05 % daily loss limit) so a few percent fall of a 200 USDT position crosses them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from core.domain import TradingState
from core.store import Store
from tests.sandbox_rig import (
    ACTION_CODES,
    BTC,
    ETH,
    Rig,
    by_code,
    enter,
    exchange,
    flat,
    held,
    leave,
    number,
    open_stops,
    sandbox,
    scripted_sandbox,
    set_faults,
    settings_for,
)


def assert_logged(rig: Rig) -> None:
    """R3.5: every denial and every automatic action of the session is in the decision log with its code and
    its numbers; every action event has its decision row (same code, same bar time)."""
    decisions = rig.decisions()
    for row in decisions.filter(pl.col("kind") == "denied").iter_rows(named=True):
        details = json.loads(row["details"])
        assert row["code"] and details["denied"] and details["state"], row
        assert details["stop"] is not None or row["action"] == "exit", row  # the signal's own number
        if row["code"] != "TRADING_STATE":  # a state refusal's "number" is the state itself
            assert re.search(r"\d", details["denied"]), row
    actions = decisions.filter(pl.col("kind") == "action")
    for row in actions.iter_rows(named=True):
        assert row["code"] in ACTION_CODES and re.search(r"\d", row["reason"]), row
        assert set(json.loads(row["details"])) >= {"state", "derisked", "latency_s"}, row
    logged = set(zip(actions["code"], actions["ts"], strict=True))
    events = rig.events().filter(pl.col("code").is_in(ACTION_CODES))
    missing = set(zip(events["code"], events["ts"], strict=True)) - logged
    assert not missing, f"automatic actions missing from the decision log: {missing}"


# --- R2.3 / R2.4 / R6.4: daily loss limit → SAFE_MODE, exits fill, SAFE_MODE survives a restart -----------------
@pytest.mark.req("R2.3")
@pytest.mark.req("R2.4")
@pytest.mark.req("R6.4")
@pytest.mark.req("R3.5")
def test_daily_loss_limit_on_the_sandbox_sets_safe_mode_exits_still_fill_and_a_restart_keeps_it(
    tmp_path: Path, creds: None
) -> None:
    # 200 USDT of BTC (the 2 % cap) falls 3 %: about -6.2 USDT with fees, beyond a 0.05 % (5 USDT) daily limit
    btc = [BTC, BTC, BTC * 0.97, BTC * 0.97, BTC * 0.97, BTC * 0.97]
    settings = settings_for(tmp_path, risk={"daily_loss_limit": 0.0005})
    with sandbox(btc, [ETH] * 6) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))  # sized to the cap, filled on the exchange
        rig.bar()  # the fill is booked, the protective stop goes on the exchange
        assert open_stops(server, "BTCUSDT") == [BTC * 0.96]
        rig.bar(ETHUSDT=enter(0.04, "entry after the loss"))  # the fall: limit hit before the strategy runs
        assert rig.engine.risk.state is TradingState.SAFE_MODE
        rig.bar(BTCUSDT=leave("exit in safe mode"))
        rig.bar()
        assert flat(server, "BTC") and open_stops(server, "BTCUSDT") == []  # the exit filled
        assert rig.stop() == "SAFE_MODE"
        first = rig

        second = Rig(server, settings)  # a restart on the same data directory
        assert second.engine.risk.state is TradingState.SAFE_MODE
        second.bar(BTCUSDT=enter(0.04, "entry after the restart"))
        assert second.stop() == "SAFE_MODE"
        orders = exchange(server).fetch_orders("BTC/USDT") + exchange(server).fetch_orders("ETH/USDT")

    decisions, events = first.decisions(), first.events()
    (limit,) = by_code(decisions, "DAILY_LOSS_LIMIT").rows(named=True)
    assert limit["kind"] == "action" and "-0.05% of start-of-day equity 10,000.00" in limit["reason"]
    pnl = number(r"day P&L ([-+][\d,.]+)", limit["reason"])
    assert -7.0 < pnl <= -5.0
    changed = by_code(events, "STATE_CHANGED")
    assert changed.height == 1 and changed["message"][0].startswith("ACTIVE -> SAFE_MODE")
    assert changed["severity"][0] == "critical"
    (refused,) = by_code(decisions, "TRADING_STATE").rows(named=True)
    assert refused["symbol"] == "ETHUSDT" and refused["reason"] == "entry after the loss"
    (trade,) = Store(settings.db_path).query("select exit_reason, net_pnl from trades where session_id = ?",
                                             [first.session.session_id]).rows()
    assert trade[0] == "exit in safe mode" and trade[1] < -5.0
    assert_logged(first)
    # the restarted session refused its entry for the state it inherited, and sent no entry at all
    (again,) = second.decisions().filter(pl.col("kind") != "action").rows(named=True)
    assert again["code"] == "TRADING_STATE" and json.loads(again["details"])["state"] == "SAFE_MODE"
    started = by_code(second.events(), "SESSION_STARTED")["message"][0]
    assert "state SAFE_MODE" in started
    assert_logged(second)
    # the entry (a limit IOC in an order list) and the exit: no ETH, no second BTC buy
    assert [o["side"] for o in orders if o["info"]["type"] in ("MARKET", "LIMIT")] == ["buy", "sell"]
    state = json.loads((settings.data_dir / "live" / "state.json").read_text())
    assert state["trading_state"] == "SAFE_MODE"


# --- R4.3: unrealized loss beyond the limit → every stop 20 % closer on the exchange, once per episode -----------
@pytest.mark.req("R4.3")
@pytest.mark.req("R3.5")
def test_unrealized_loss_moves_every_stop_on_the_exchange_20_percent_closer_once_per_episode(
    tmp_path: Path, creds: None
) -> None:
    # two positions of 100 USDT each (10 % stops: 0.1 % risk) fill the 2 % cap together; a 1.5 % fall loses
    # ~3 USDT, beyond 0.02 % of equity (2 USDT); a 1 % rise ends the episode
    fall, deeper, back = 0.985, 0.975, 1.01
    btc = [BTC, BTC, BTC * fall, BTC * deeper, BTC * back, BTC * fall, BTC * fall]
    eth = [ETH, ETH, ETH * fall, ETH * deeper, ETH * back, ETH * fall, ETH * fall]
    settings = settings_for(tmp_path, risk={"unrealized_loss_limit": 0.0002})
    with sandbox(btc, eth) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.10), ETHUSDT=enter(0.10))
        rig.bar()  # both filled and booked; both protective stops on the exchange
        first = {"BTCUSDT": BTC * 0.9, "ETHUSDT": ETH * 0.9}
        assert {s: open_stops(server, s) for s in first} == {s: [p] for s, p in first.items()}
        rig.bar()  # the fall: unrealized loss over the limit
        price = {"BTCUSDT": BTC * fall, "ETHUSDT": ETH * fall}
        tightened = {s: round(price[s] - (price[s] - first[s]) * 0.8, 2) for s in first}
        for sym, stop in tightened.items():
            assert open_stops(server, sym) == [pytest.approx(stop, abs=0.01)]  # the old one was cancelled
        rig.bar()  # a further fall, same episode: no second move
        for sym, stop in tightened.items():
            assert open_stops(server, sym) == [pytest.approx(stop, abs=0.01)]
        rig.bar()  # recovery ends the episode ...
        rig.bar()  # ... and a new breach moves the stops once more, from where they are
        for sym, stop in tightened.items():
            again = round(price[sym] - (price[sym] - stop) * 0.8, 2)
            assert open_stops(server, sym) == [pytest.approx(again, abs=0.01)]
            assert rig.engine.portfolio.positions[sym].stop == pytest.approx(again, abs=0.01)
        rig.stop()
    codes = rig.decisions().filter(pl.col("kind") == "action")["code"].to_list()
    assert codes == ["UNREALIZED_LOSS_TIGHTEN", "UNREALIZED_LOSS_RECOVERED", "UNREALIZED_LOSS_TIGHTEN"]
    assert rig.engine.risk.state is TradingState.ACTIVE  # tightening stops changes no trading state
    assert_logged(rig)


# --- R4.4: exchange latency → LATENCY_PAUSE, exits proceed; latency back down → LATENCY_RESUME -----------------


@pytest.mark.req("R4.4")
@pytest.mark.req("R3.5")
def test_sandbox_latency_of_3s_pauses_entries_while_an_exit_fills_and_entries_resume_after_settling(
    tmp_path: Path, creds: None
) -> None:
    settings = settings_for(tmp_path, risk={"latency_window": 3, "latency_settle_s": 2})
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        set_faults(server, "latency=3")  # every /api/v3 response now takes 3 s more
        rig.bar(BTCUSDT=leave("exit under latency"), ETHUSDT=enter(0.04, "entry under latency"))
        assert rig.engine.risk.latency_paused
        set_faults(server, "")
        assert flat(server, "BTC")  # the exit filled on the exchange despite the pause
        rig.bar()  # latency is low again: the settle period starts
        rig.bar(ETHUSDT=enter(0.04, "entry after the latency settled"))
        assert not rig.engine.risk.latency_paused
        rig.bar()
        assert held(server, "ETH") > 0  # the entry filled on the exchange
        rig.stop()
    decisions = rig.decisions()
    (pause,) = by_code(decisions, "LATENCY_PAUSE").filter(pl.col("kind") == "action").rows(named=True)
    rolling = number(r"latency ([\d.]+)s > 2.00s", pause["reason"])
    assert rolling >= 2.0  # printed to 2 decimals: above the limit, possibly by less than 0.005 s
    (refused,) = decisions.filter(pl.col("kind") == "denied").rows(named=True)
    assert refused["code"] == "LATENCY_PAUSE" and refused["reason"] == "entry under latency"
    (resume,) = by_code(decisions, "LATENCY_RESUME").rows(named=True)
    assert resume["ts"] - pause["ts"] >= 2_000  # settled for latency_settle_s on the engine clock
    entries = decisions.filter((pl.col("kind") == "order") & (pl.col("action") == "enter"))
    assert entries["reason"].to_list() == ["cue entry", "entry after the latency settled"]
    assert by_code(decisions, "SUBMITTED").filter(pl.col("action") == "exit")["reason"].to_list() == [
        "exit under latency"]
    assert_logged(rig)


# --- R4.5: drawdown from the high-water mark → risk per trade de-risked, across a restart ------------------------
@pytest.mark.req("R4.5")
@pytest.mark.req("R6.4")
@pytest.mark.req("R3.5")
def test_drawdown_limit_on_the_sandbox_derisks_the_next_entry_and_the_restart_keeps_it(
    tmp_path: Path, creds: None
) -> None:
    btc = [BTC, BTC, BTC * 0.97] + [BTC * 0.97] * 6
    settings = settings_for(tmp_path, risk={"drawdown_limit": 0.0005})  # 5 USDT under the 10,000 high
    derisked = settings.risk.derisked_risk_per_trade
    with sandbox(btc, [ETH] * 9) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        rig.bar()  # the fall: drawdown ~0.06 %
        assert rig.engine.risk.derisked
        rig.bar(BTCUSDT=leave())
        rig.bar(ETHUSDT=enter(0.05, "entry after the drawdown"))
        rig.bar()
        rig.stop()
        second = Rig(server, settings)
        assert second.engine.risk.derisked and second.engine.risk.risk_per_trade == derisked
        second.bar(BTCUSDT=enter(0.04, "entry after the restart"))
        second.stop()
    (action,) = by_code(rig.decisions(), "DRAWDOWN_DERISK").rows(named=True)
    assert "0.10% -> 0.05%" in action["reason"] and ">= 0.05%" in action["reason"]
    entries = rig.decisions().filter((pl.col("kind") == "order") & (pl.col("action") == "enter"))
    sizing = [json.loads(d)["sizing"] for d in entries["details"]]
    assert [s["risk_per_trade"] for s in sizing] == [0.001, derisked] and sizing[1]["derisked"] is True
    after = sizing[1]
    assert after["binding"] == "risk"  # the de-risked size itself, not a cap: qty x stop distance = 0.05 % equity
    assert after["qty"] * (after["price"] - after["stop"]) == pytest.approx(after["equity"] * derisked, rel=0.01)
    (restarted,) = second.decisions().filter(pl.col("kind") == "order").rows(named=True)
    assert json.loads(restarted["details"])["sizing"]["risk_per_trade"] == derisked
    assert_logged(rig)
    assert_logged(second)


# --- R6.2: a breaker trips on the sandbox and blocks entries for its cooldown ------------------------------------
@pytest.mark.req("R6.2")
@pytest.mark.req("R3.5")
def test_a_losing_streak_on_the_sandbox_trips_the_breaker_and_entries_are_refused(
    tmp_path: Path, creds: None
) -> None:
    # flat prices: every round trip loses the spread and two fees
    settings = settings_for(tmp_path, breakers={"consecutive_losses": 2, "losses_cooldown_hours": 1})
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        for _ in range(2):
            rig.bar(BTCUSDT=enter(0.04))
            rig.bar(BTCUSDT=leave("losing exit"))
        rig.bar(BTCUSDT=enter(0.04, "entry after the streak"), ETHUSDT=enter(0.04, "other symbol"))
        rig.bar()
        assert flat(server, "BTC") and held(server, "ETH") == 0.0  # neither entry reached the exchange
        rig.stop()
    decisions = rig.decisions()
    trades = Store(settings.db_path).query("select net_pnl from trades where session_id = ?",
                                           [rig.session.session_id])["net_pnl"]
    assert trades.len() == 2 and (trades < 0).all()
    (tripped,) = by_code(decisions, "BREAKER_CONSECUTIVE_LOSSES").rows(named=True)
    refused = decisions.filter(pl.col("kind") == "denied")
    assert refused["code"].to_list() == ["BREAKER_COOLDOWN", "BREAKER_COOLDOWN"]
    assert set(refused["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    for details in refused["details"]:
        left = number(r"another ([\d.]+) h", json.loads(details)["denied"])
        # blocked for the 1-hour cooldown, counted from the end of the bar it tripped in (the same bars in paper)
        assert 0.9 < left <= 1.02  # 1 h + the rest of the bar (1 min), shown to two decimals
    assert tripped["ts"] <= refused["ts"][0]
    assert_logged(rig)


# --- found while testing: same-bar entries each see the whole exposure room ---------------------------------------
@pytest.mark.req("R2.1")
def test_two_entries_on_the_same_bar_stay_within_the_exposure_cap_together(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.01), ETHUSDT=enter(0.01))  # each alone would be cut to the 2 % cap
        rig.bar()
        notional = held(server, "BTC") * BTC + held(server, "ETH") * ETH
        rig.stop()
    assert notional <= 0.02 * 10_000 * 1.001


@pytest.mark.req("R3.5")
def test_a_denied_entry_is_logged_with_the_market_price_it_was_decided_at(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))  # takes the whole 2 % exposure room
        rig.bar(ETHUSDT=enter(0.04, "no room left"))
        rig.stop()
    (refused,) = rig.decisions().filter(pl.col("kind") == "denied").rows(named=True)
    # what the cap leaves (the BTC commission's worth: Binance takes it in BTC) is below what one order may be
    assert refused["code"] in ("EXPOSURE_CAP", "BELOW_LOT_STEP", "BELOW_MIN_NOTIONAL")
    assert json.loads(refused["details"]).get("market", {}).get("price") == ETH


# --- R4.1 / R4.2: scripted return paths whose volatility ratio and correlation are known exactly -----------------
# The live feed's window covers the risk windows (core/live/session.py), so a 200-bar correlation acts as well.


def log_returns(closes: list[float]) -> Any:
    return np.diff(np.log(np.asarray(closes)))


VOL_SHORT, VOL_LONG = 6, 40
VOL_HISTORY = 70  # candles before the entry bar (even, so the alternating path is back at its start on it)


def vol_path(start: float, ratio: float, base: float = 0.001) -> list[float]:
    """Log returns alternating +-base, the last VOL_SHORT of them (ending on the entry bar) +-burst, with burst
    chosen so std(short) / std(long) == ``ratio`` (sample std; the long window holds the short one). The entry
    bar closes at ``start`` whatever the ratio, so the sizes of the scenarios compare directly. A negative
    ``base`` alternates the other way round (two such paths have correlation -1, far from a block)."""
    s, n = VOL_SHORT, VOL_LONG
    k = ratio**2 * (n - s) * (s - 1) / (s * ((n - 1) - ratio**2 * (s - 1)))  # (burst / base)^2
    calm, burst = round(start * np.exp(base), 2), round(start * np.exp(base * np.sqrt(k)), 2)
    return [start if j % 2 == 0 else (burst if j > VOL_HISTORY - s else calm) for j in range(VOL_HISTORY + 1)]


def vol_ratio(closes: list[float]) -> float:
    rets = log_returns(closes)
    return float(np.std(rets[-VOL_SHORT:], ddof=1) / np.std(rets[-VOL_LONG:], ddof=1))


@pytest.mark.req("R4.1")
@pytest.mark.req("R3.5")
def test_volatility_ratio_1_6_and_2_2_on_the_sandbox_scale_the_entry_size_by_0_75_and_0_5(
    tmp_path: Path, creds: None
) -> None:
    # a calm market (ratio 1.0) for both symbols, then BTC at ratio 1.6 and ETH at 2.2; 12.5 % stops: the 0.1 %
    # risk buys 80 USDT of each, both together under the 200 USDT cap, so the risk formula sets every size
    sized: dict[str, dict[str, Any]] = {}
    for market, ratios in {"calm": (1.0, 1.0), "volatile": (1.6, 2.2)}.items():
        paths = {"BTCUSDT": vol_path(BTC, ratios[0]), "ETHUSDT": vol_path(ETH, ratios[1], -0.001)}
        for sym, target in zip(paths, ratios, strict=True):
            assert vol_ratio(paths[sym]) == pytest.approx(target, abs=0.01)  # the path is what we say it is
        settings = settings_for(tmp_path / market, risk={"vol_short_window": VOL_SHORT, "vol_long_window": VOL_LONG})
        with scripted_sandbox(paths["BTCUSDT"], paths["ETHUSDT"], VOL_HISTORY) as server:
            rig = Rig(server, settings)
            rig.bar(BTCUSDT=enter(0.125), ETHUSDT=enter(0.125))
            on_exchange = {"BTCUSDT": held(server, "BTC"), "ETHUSDT": held(server, "ETH")}  # market orders fill now
            rig.stop()
        for row in rig.decisions().filter(pl.col("kind") == "order").rows(named=True):
            sym, sizing = row["symbol"], json.loads(row["details"])["sizing"]
            price = BTC if sym == "BTCUSDT" else ETH
            assert sizing["binding"] == "risk" and sizing["price"] == price and sizing["stop"] == price * 0.875
            assert sizing["vol_ratio"] == pytest.approx(vol_ratio(paths[sym]), rel=1e-6)
            assert on_exchange[sym] == pytest.approx(sizing["qty"] * (1 - 0.001))  # less the commission in the coin
            sized[f"{market} {sym}"] = sizing
        assert_logged(rig)
    assert len(sized) == 4
    for sym in ("BTCUSDT", "ETHUSDT"):
        calm = sized[f"calm {sym}"]
        assert calm["size_multiplier"] == 1.0
        assert calm["qty"] * (calm["price"] - calm["stop"]) == pytest.approx(10_000 * 0.001, rel=0.01)
    for sym, mult in (("BTCUSDT", 0.75), ("ETHUSDT", 0.5)):
        volatile, calm = sized[f"volatile {sym}"], sized[f"calm {sym}"]
        assert volatile["size_multiplier"] == mult
        assert volatile["qty"] == pytest.approx(calm["qty"] * mult, rel=1e-9)


def corr_paths(rho: float, window: int, history: int, seed: int = 7) -> tuple[list[float], list[float]]:
    """BTC and ETH closes whose last ``window`` log returns (ending at candle ``history``) have sample correlation
    ``rho`` exactly (before rounding to cents): centred, orthonormalised normal draws; flat before them."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2, window))
    z -= z.mean(axis=1, keepdims=True)
    z[1] -= z[1] @ z[0] / (z[0] @ z[0]) * z[0]
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    scale = 0.002 * np.sqrt(window)  # ~0.2 % per bar
    btc_r, eth_r = scale * z[0], scale * (rho * z[0] + np.sqrt(1 - rho**2) * z[1])
    flat = history - window
    btc = [BTC] * flat + [round(float(p), 2) for p in BTC * np.exp(np.cumsum(np.r_[0.0, btc_r]))]
    eth = [ETH] * flat + [round(float(p), 2) for p in ETH * np.exp(np.cumsum(np.r_[0.0, eth_r]))]
    return btc, eth


@pytest.mark.req("R4.2")
@pytest.mark.req("R3.5")
@pytest.mark.parametrize("corr_window", [50, 200])
def test_correlation_0_8_with_btc_held_blocks_an_eth_entry_on_the_sandbox_while_0_5_lets_it_fill(
    tmp_path: Path, creds: None, corr_window: int
) -> None:
    history = corr_window + 10
    for rho in (0.8, 0.5):
        # BTC enters on bar 1 (candle history - 1); on bar 2 (candle history, the window's end) its fill is booked
        # before the strategies run, so the ETH entry cued there is decided with the BTC position open
        btc, eth = corr_paths(rho, corr_window, history)
        measured = float(np.corrcoef(log_returns(btc)[-corr_window:], log_returns(eth)[-corr_window:])[0, 1])
        assert measured == pytest.approx(rho, abs=0.01)
        # the correlated paths move ~0.5 % a bar and a market order fills at the next candle's price: that is
        # slippage against the decision close, which must not trip the slippage breaker in this scenario
        settings = settings_for(tmp_path / str(rho), risk={"corr_window": corr_window},
                                breakers={"slippage_bps": 1000}, exchange={"entry_limit_bps": 500})
        with scripted_sandbox(btc, eth, history - 1) as server:
            rig = Rig(server, settings)
            rig.bar(BTCUSDT=enter(0.20))  # 20 % stops: 50 USDT each, both well inside the 200 USDT cap
            rig.bar(ETHUSDT=enter(0.20, f"entry at rho {rho}"))
            assert held(server, "BTC") > 0 and rig.engine.portfolio.positions.get("BTCUSDT") is not None
            eth_held = held(server, "ETH")  # a market order fills at once on the sandbox
            rig.stop()
        decisions = rig.decisions()
        refused = decisions.filter(pl.col("kind") == "denied")
        if rho > 0.7:
            (row,) = refused.rows(named=True)
            denied = json.loads(row["details"])["denied"]
            assert row["code"] == "CORRELATION_BLOCK" and row["symbol"] == "ETHUSDT", row
            assert denied.startswith("ETHUSDT~BTCUSDT rho=") and denied.endswith(">0.70"), denied
            assert number(r"rho=([\d.]+)>", denied) == pytest.approx(measured, abs=0.005)
            assert eth_held == 0.0  # nothing reached the exchange
        else:
            assert refused.height == 0
            entries = decisions.filter((pl.col("kind") == "order") & (pl.col("action") == "enter"))
            assert entries["symbol"].to_list() == ["BTCUSDT", "ETHUSDT"]
            sizing = json.loads(entries["details"][1])["sizing"]
            assert sizing["binding"] == "risk" and sizing["qty"] > 0  # filled on the exchange, less its commission
            assert eth_held == pytest.approx(sizing["qty"] * (1 - 0.001))
        assert_logged(rig)
