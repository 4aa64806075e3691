"""Binance's own networks, order state between bars and the preflight that checks the key (issue 14, R9.6–R9.8).

The demo and testnet clients are inspected offline (no request leaves the machine). Everything else runs a live
session on the manual-clock sandbox through the real ccxt client: a rehearsal venue recorded as such, a stop that
fills between two bars, the clock drifting before and during a session, keys without trading permission or with
withdrawals, and fees above what the gate assumed. The between-bar timers run on the session's ``monotonic``
clock, which the tests drive instead of sleeping.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from core.cli import app
from core.config import load_settings
from core.config.venue import ExchangeConfig
from core.errors import ConfigError
from core.live.preflight import PreflightFailed
from core.live.session import LiveOptions
from core.node import open_live
from core.sandbox.config import DEMO_API_SECRET
from core.scaling.eligibility import evaluate
from core.store import Store
from core.store import trading as trading_repo
from core.store.dashboard import read_snapshot
from core.venue import Venue, sandbox_at, venue_for
from tests.sandbox_rig import BTC, ETH, Rig, by_code, enter, leave, sandbox, settings_for
from tests.test_scaling import live_history, scaling_settings

QUIET = {"slippage_bps": 1000.0, "api_errors": 1000, "consecutive_losses": 50}
HOSTS = {"binance-demo": "demo-api.binance.com", "binance-testnet": "testnet.binance.vision"}


def control(server: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{server.url}/sandbox/{path}", json=body)
    response.raise_for_status()
    return dict(response.json())


def rehearsal_on(server: Any, name: str = "binance-demo") -> Venue:
    """The rehearsal venue ``name`` as Rampart records it, its requests sent to the sandbox instead of Binance's
    network (which this machine cannot reach) and on the sandbox's clock (replayed candles)."""
    return replace(venue_for(ExchangeConfig(name=name)), base_url=server.url, network="", clock="exchange")


# --- R9.7: the demo and testnet venues -------------------------------------------------------------------------
@pytest.mark.req("R9.7")
@pytest.mark.parametrize("name", ["binance-demo", "binance-testnet"])
def test_demo_and_testnet_build_the_real_client_in_that_mode_on_the_wall_clock(name: str, tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, exchange={"name": name})
    venue = venue_for(settings.exchange)
    client = venue.client(api_key="rehearsal-key", secret="rehearsal-secret")
    spot = {k: v for k, v in client.urls["api"].items() if k in ("public", "private", "v1")}
    assert spot and all(v.startswith(f"https://{HOSTS[name]}/api/") for v in spot.values()), spot
    if name == "binance-demo":  # ccxt's Demo Mode, not its sandbox mode
        assert client.options["enableDemoTrading"] is True and not client.isSandboxModeEnabled
    else:
        assert client.isSandboxModeEnabled and not client.options.get("enableDemoTrading")
    assert client.options["defaultType"] == "spot" and client.verbose is False
    clock = venue.engine_clock()
    assert venue.clock == "wall" and clock is not None and abs(clock() - time.time() * 1000) < 5_000
    assert (venue.live_evidence, venue.real_money, venue.key_restrictions) == (False, False, False)
    assert venue.state_path(tmp_path) == tmp_path / "live" / name / "state.json"
    assert "rehearsal" in venue.describe()
    production = venue_for(ExchangeConfig(name="binance")).client()
    assert production.urls["api"]["public"].startswith("https://api.binance.com/")  # untouched by the modes
    with pytest.raises(ConfigError, match="only for the sandbox"):
        venue_for(ExchangeConfig(name=name, url="http://127.0.0.1:8765"))


@pytest.mark.req("R9.7")
def test_rampart_live_exchange_binance_demo_talks_to_the_demo_network(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds the Demo Mode client: its preflight goes to demo-api.binance.com (unreachable from this
    machine, or refusing made-up keys where the network is there) and refuses to trade, saying where it went."""
    monkeypatch.setenv("RAMPART_API_KEY", "made-up-demo-key")
    monkeypatch.setenv("RAMPART_API_SECRET", "made-up-demo-secret")
    monkeypatch.setenv("RAMPART_EXCHANGE__TIMEOUT_MS", "1000")
    result = CliRunner().invoke(app, ["live", "--exchange", "binance-demo", "--data-dir", str(tmp_path),
                                      "--duration", "1"])
    out = result.output + str(result.exception or "")
    assert result.exit_code != 0 and "live trading refused" in out
    assert "demo-api.binance.com" in out or "belongs to binance-demo" in out, out
    assert "api.binance.com/api" not in out.replace("demo-api.binance.com", "")  # never the production hosts
    assert "made-up-demo-secret" not in out


@pytest.mark.req("R9.7")
@pytest.mark.req("R5.2")
def test_a_rehearsal_session_records_its_venue_keeps_its_own_state_and_is_never_live_evidence(
    tmp_path: Path, creds: None
) -> None:
    settings = settings_for(tmp_path, breakers=QUIET, live={"order_poll_s": 0})
    with sandbox([BTC] * 4 + [BTC * 1.02] * 4, [ETH] * 8) as server:
        rig = Rig(server, settings, venue=rehearsal_on(server))
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        rig.bar()
        rig.bar(BTCUSDT=leave())
        rig.bar()
        rig.stop()
    store = Store(settings.db_path)
    row = store.query("select venue, live_evidence, mode from sessions where id = ?", [rig.session.session_id])
    assert row.rows() == [("binance-demo", False, "live")]
    trades = store.query("select net_pnl from trades where session_id = ?", [rig.session.session_id])
    assert trades.height == 1 and trades["net_pnl"][0] > 0  # it traded, and won
    assert (tmp_path / "live" / "binance-demo" / "state.json").exists()
    assert not (tmp_path / "live" / "state.json").exists()  # the real account's state is untouched
    # none of it is a live result: not in the live trades, the daily report's sessions, the dashboard's live view
    assert trading_repo.live_trades(store).height == 0 and trading_repo.live_sessions(store).height == 0
    day = datetime.now(UTC) - timedelta(days=3650)
    assert trading_repo.day_sessions(store, day, datetime.now(UTC) + timedelta(days=1)).height == 0
    live_page = read_snapshot(settings.db_path)
    assert live_page["sessions"] == 0 and live_page["realized"]["trades"] == 0
    rehearsal_page = read_snapshot(settings.db_path, evidence=False)  # a rehearsal's own dashboard shows it
    assert rehearsal_page["sessions"] == 1 and rehearsal_page["realized"]["trades"] == 1


@pytest.mark.req("R9.7")
@pytest.mark.req("R5.2")
def test_demo_trading_never_counts_toward_scaling(tmp_path: Path) -> None:
    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now, session_id="demo-weeks", live_evidence=False)  # eight fine days, on demo
    review = evaluate(Store(settings.db_path), settings, now)
    assert not review.eligible and review.proposal is None
    assert any(r.startswith("NOT_ENOUGH_DAYS") or "no live" in r for r in review.reasons), review.reasons

    live_history(settings, now, days=4, session_id="real-days")  # four real days beside eight demo days
    review = evaluate(Store(settings.db_path), settings, now)
    assert not review.eligible and any(r.startswith("NOT_ENOUGH_DAYS: 4.0 days") for r in review.reasons)


# --- R9.6: order state between bars ------------------------------------------------------------------------------
@pytest.mark.req("R9.6")
@pytest.mark.req("R4.1")
def test_a_stop_fill_between_bars_reaches_the_portfolio_and_the_loss_limit_within_order_poll_s(
    tmp_path: Path, creds: None
) -> None:
    # 200 USDT of BTC stopped out 4 % lower: about -8 USDT, beyond a 0.05 % (5 USDT) daily loss limit
    settings = settings_for(tmp_path, breakers=QUIET, risk={"daily_loss_limit": 0.0005})
    assert settings.live.order_poll_s == 5.0  # the default
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        session = rig.session
        now = [time.monotonic()]  # from here on the test moves the session's timers
        session.monotonic = lambda: now[0]
        rig.bar(BTCUSDT=enter(0.04))  # the entry fills and its stop goes on the exchange at 38,400
        assert "BTCUSDT" in rig.engine.portfolio.positions
        bars, candle = session.bars, session.status()["last_candle_ts"]
        control(server, "price", {"symbol": "BTCUSDT", "price": BTC * 0.958})  # through the stop, above its limit
        control(server, "advance", {"ms": 2_000})  # two seconds into the bar: no new candle has closed
        now[0] += 1.0
        assert not session.step() and "BTCUSDT" in rig.engine.portfolio.positions  # 1 s < order_poll_s
        now[0] += settings.live.order_poll_s
        assert not session.step()  # still no new bar, but order state is read again
        status = session.status()
        assert "BTCUSDT" not in rig.engine.portfolio.positions and status["positions"] == {}
        assert (session.bars, status["last_candle_ts"]) == (bars, candle)  # before the next bar
        assert status["state"] == "SAFE_MODE" and status["today_pnl"] < -5.0
        dust = rig.engine.portfolio.dust.get("BTCUSDT", 0.0)  # the commission's unsellable rest, at the close
        assert status["equity"] == pytest.approx(rig.engine.portfolio.cash + dust * BTC)
        events = rig.events()
        assert by_code(events, "DAILY_LOSS_LIMIT").height == 1 and by_code(events, "STOP_TRIGGERED").height <= 1
        trades = Store(settings.db_path).query("select exit_reason, net_pnl from trades where session_id = ?",
                                               [session.session_id])
        assert trades.height == 1 and trades["net_pnl"][0] < -5.0  # stored at once, not at the next bar
        rig.stop()


# --- R9.8: the clock ------------------------------------------------------------------------------------------------
@pytest.mark.req("R9.8")
@pytest.mark.parametrize(("skew", "says"), [(-1_500, r"1[45]\d\d ms ahead of the exchange's"),
                                            (1_500, r"1[45]\d\d ms behind the exchange's")])
def test_a_clock_1_5_s_off_either_way_is_refused_and_preflight_says_why(skew: int, says: str, tmp_path: Path,
                                                                        creds: None) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        control(server, "clock-skew", {"ms": skew})  # the exchange's time minus ours
        with pytest.raises(PreflightFailed) as refused:
            open_live(settings, sandbox_at(server.url), LiveOptions())
    message = str(refused.value)
    assert "CLOCK_SKEW" in message and re.search(says, message) and "limit 1000 ms" in message and "chrony" in message
    assert Store(settings.db_path).query("select count(*) as n from sessions")["n"][0] == 0  # nothing started


@pytest.mark.req("R9.8")
@pytest.mark.req("R9.5")
def test_skew_appearing_mid_session_is_resynchronised_and_no_order_fails(tmp_path: Path, creds: None) -> None:
    settings = settings_for(tmp_path, breakers=QUIET, live={"order_poll_s": 0})
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        session = rig.session
        now = [time.monotonic()]  # from here on the test moves the session's timers
        session.monotonic = lambda: now[0]
        control(server, "clock-skew", {"ms": -3_000})  # our requests now arrive 3 s ahead of the server: -1021
        rig.bar(BTCUSDT=enter(0.04))  # the entry meets -1021, the clock is measured again, it is sent again
        assert "BTCUSDT" in rig.engine.portfolio.positions
        assert abs(session.broker.clock_offset_ms - 3_000) < 1_000
        first = httpx.get(f"{server.url}/sandbox/stats").json()["auth_failure_codes"].get("-1021", 0)
        assert first >= 1

        control(server, "clock-skew", {"ms": -8_000})  # it drifts further; the periodic check catches it
        now[0] += settings.live.clock_sync_s
        rig.bar(BTCUSDT=leave())
        assert "BTCUSDT" not in rig.engine.portfolio.positions
        stats = httpx.get(f"{server.url}/sandbox/stats").json()
        assert stats["auth_failure_codes"].get("-1021", 0) == first  # resynchronised before any order went
        assert abs(session.broker.clock_offset_ms - 8_000) < 1_000
        rig.stop()
    events = rig.events()
    assert by_code(events, "CLOCK_RESYNCED").height >= 1
    for code in ("ORDER_REJECTED", "ORDER_NOT_SENT", "ORDER_OUTCOME_UNKNOWN", "BREAKER_API_ERRORS"):
        assert by_code(events, code).height == 0, code


# --- R9.8: the key and the account ------------------------------------------------------------------------------
def add_key(server: Any, api_key: str, **permissions: bool) -> None:
    control(server, "keys", {"api_key": api_key, "secret": DEMO_API_SECRET, **permissions})


@pytest.mark.req("R9.8")
@pytest.mark.parametrize(("permissions", "code", "names"), [
    ({"trading": False}, "KEY_CANNOT_TRADE", "Enable Spot & Margin Trading"),
    ({"withdrawals": True}, "KEY_CAN_WITHDRAW", "withdrawals enabled"),
])
def test_a_read_only_key_and_a_key_that_can_withdraw_are_refused_naming_the_permission(
    permissions: dict[str, bool], code: str, names: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        add_key(server, "preflight-key-1", **permissions)
        monkeypatch.setenv("RAMPART_API_KEY", "preflight-key-1")
        monkeypatch.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
        with pytest.raises(PreflightFailed) as refused:
            open_live(settings, sandbox_at(server.url), LiveOptions())
        placed = httpx.get(f"{server.url}/sandbox/stats").json()["orders_placed"]
    message = str(refused.value)
    assert f"{code}:" in message and names in message, message
    assert DEMO_API_SECRET not in message and not any(placed.values())  # nothing traded, no secret said


@pytest.mark.req("R9.8")
def test_a_withdrawal_key_is_accepted_when_allowed_and_preflight_records_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(tmp_path, credentials={"allow_withdrawal_keys": True})
    with sandbox([BTC] * 4, [ETH] * 4, commission="bnb") as server:
        add_key(server, "preflight-key-2", withdrawals=True)
        monkeypatch.setenv("RAMPART_API_KEY", "preflight-key-2")
        monkeypatch.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
        rig = Rig(server, settings)
        rig.bar()
        rig.stop()
    (checked,) = by_code(rig.events(), "ACCOUNT_CHECKED")["message"].to_list()
    assert "withdrawals ENABLED" in checked and "paid in BNB" in checked and "taker 0.1 %" in checked
    account = rig.session.account
    assert account is not None and account.can_trade and account.can_withdraw and account.bnb_fees
    assert account.taker == pytest.approx(0.001) and abs(account.skew_ms) < 1_000


@pytest.mark.req("R9.8")
def test_an_account_paying_more_than_the_gate_assumed_is_refused_with_the_setting_to_change(
    tmp_path: Path, creds: None
) -> None:
    settings = settings_for(tmp_path)
    assert settings.paper.taker_fee == 0.001
    with sandbox([BTC] * 4, [ETH] * 4, taker_fee=0.002) as server, pytest.raises(PreflightFailed) as refused:
        open_live(settings, sandbox_at(server.url), LiveOptions())
    message = str(refused.value)
    assert "FEE_RATE: BTCUSDT pays 0.2000% taker" in message and "RAMPART_PAPER__TAKER_FEE=0.002" in message
    assert "run paper validation again" in message
