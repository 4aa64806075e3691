"""Automatic risk controls on scripted price paths through the paper broker (SPEC R2.3, R2.4, R4.1–R4.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.config import INSTRUMENTS
from core.config.risk import RiskLimits
from core.domain import OrderStatus, OrderTag, Signal, TradingState
from core.engine import Engine
from core.errors import ConfigError
from core.risk.engine import RiskConfig, RiskEngine
from core.strategy.base import Strategy
from tests.helpers import Scripted, candles, enter, flat, leave, scripted_engine

SID = "b" * 32


def engine(strategies: dict[str, Strategy], *, limits: RiskLimits | None = None, risk: float = 0.01,
           cap: float = 1.0) -> Engine:
    return scripted_engine(strategies, session_id=SID, fee=0.0, risk=risk, cap=cap, limits=limits or RiskLimits())


def codes(eng: Engine) -> list[str]:
    return [d["code"] for d in eng.result.decisions]


@pytest.mark.req("R2.3")
@pytest.mark.req("R2.4")
def test_daily_loss_limit_puts_the_session_in_safe_mode_entries_refused_exits_fill() -> None:
    # buy 50 at 100 (stop 80, risk 10 % of equity → 5,000 notional), then the price slides 3 %: equity -1.5 %
    rows = [*flat(100, 2), (100, 100, 100, 100), (99, 99, 97, 97), *flat(97, 3), (97, 97, 97, 97), *flat(97, 3)]
    script = {0: enter(stop=80.0), 4: lambda i, b: Signal.enter(b.symbol, 80.0, "second entry"), 6: leave("done")}
    eng = engine({"BTCUSDT": Scripted(script)}, risk=0.1, limits=RiskLimits(drawdown_limit=0.5))
    res = eng.run([candles(rows)])
    assert eng.risk.state is TradingState.SAFE_MODE
    assert "DAILY_LOSS_LIMIT" in codes(eng) and "STATE_CHANGED" in [e["code"] for e in res.events]
    denied = [d for d in res.decisions if d["kind"] == "denied"]
    assert denied and denied[0]["code"] == "TRADING_STATE"  # the second entry was refused …
    (trade,) = res.trades
    assert trade.exit_reason == "done"  # … while the exit still filled
    detail = next(d["reason"] for d in res.decisions if d["code"] == "DAILY_LOSS_LIMIT")
    assert "-1.00% of start-of-day equity 10,000.00" in detail


@pytest.mark.req("R2.4")
@pytest.mark.req("R6.4")
def test_safe_mode_and_de_risking_survive_a_restart() -> None:
    first = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT",), instruments=INSTRUMENTS, limits=RiskLimits()))
    first.transition(TradingState.SAFE_MODE, "daily loss", 0)
    first.derisked = True
    second = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT",), instruments=INSTRUMENTS, limits=RiskLimits()))
    second.restore(first.to_state())
    assert second.state is TradingState.SAFE_MODE and second.derisked
    assert second.risk_per_trade == RiskLimits().derisked_risk_per_trade
    with pytest.raises(ConfigError, match="cannot go from SAFE_MODE to REDUCING"):
        second.transition(TradingState.REDUCING, "automatic", 1)


def _closes(calm: float, burst: float, n_long: int = 200, n_short: int = 24) -> list[float]:
    moves = [calm if k % 2 else -calm for k in range(n_long)] + [burst if k % 2 else -burst for k in range(n_short)]
    prices = [100.0]
    for m in moves:
        prices.append(prices[-1] * math.exp(m))
    return prices


@pytest.mark.req("R4.1")
@pytest.mark.parametrize(("burst", "lo", "hi", "mult"), [(0.01, 0.9, 1.1, 1.0), (0.018, 1.5, 2.0, 0.75),
                                                          (0.03, 2.0, 3.0, 0.5)])
def test_volatility_ratio_scales_the_size(burst: float, lo: float, hi: float, mult: float) -> None:
    limits = RiskLimits(vol_short_window=24, vol_long_window=200)
    closes = _closes(0.01, burst)
    risk = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT",), instruments=INSTRUMENTS, limits=limits))
    risk.prepare({"BTCUSDT": closes})
    i = len(closes) - 1
    ratio = risk.vol_ratio["BTCUSDT"][i]
    assert lo <= ratio < hi  # the 200-bar baseline includes the 24-bar burst
    approved = risk.check_entry(Signal.enter("BTCUSDT", 90.0, "x"), 100.0, 10_000.0, 10_000.0, 0.0, 0, i)
    calm = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT",), instruments=INSTRUMENTS))
    base = calm.check_entry(Signal.enter("BTCUSDT", 90.0, "x"), 100.0, 10_000.0, 10_000.0, 0.0, 0, i)
    assert approved.inputs["size_multiplier"] == mult  # type: ignore[union-attr]
    assert approved.qty == pytest.approx(base.qty * mult, abs=1e-5)  # type: ignore[union-attr]


def _correlated(rho: float, n: int = 600, seed: int = 1) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n) * 0.01
    b = rho * a + math.sqrt(1 - rho**2) * rng.standard_normal(n) * 0.01
    return {"BTCUSDT": list(100 * np.exp(np.cumsum(np.r_[0, a]))),
            "ETHUSDT": list(50 * np.exp(np.cumsum(np.r_[0, b])))}


@pytest.mark.req("R4.2")
@pytest.mark.parametrize(("rho", "blocked"), [(0.8, True), (0.5, False)])
def test_correlation_blocks_a_second_position_above_the_limit(rho: float, blocked: bool) -> None:
    risk = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT", "ETHUSDT"), instruments=INSTRUMENTS,
                                 limits=RiskLimits(corr_window=500)))
    closes = _correlated(rho)
    risk.prepare(closes)
    i = len(closes["BTCUSDT"]) - 1
    verdict = risk.check_entry(Signal.enter("ETHUSDT", 45.0, "x"), 50.0, 10_000.0, 9_000.0, 1_000.0, 0, i,
                               ("BTCUSDT",))
    if blocked:
        assert verdict.code == "CORRELATION_BLOCK"  # type: ignore[union-attr]
        assert verdict.detail.startswith("ETHUSDT~BTCUSDT rho=0.") and verdict.detail.endswith(">0.70")  # type: ignore[union-attr]
    else:
        assert not hasattr(verdict, "code"), verdict
    alone = risk.check_entry(Signal.enter("ETHUSDT", 45.0, "x"), 50.0, 10_000.0, 10_000.0, 0.0, 0, i, ())
    assert not hasattr(alone, "code")  # no open position: nothing to correlate with


@pytest.mark.req("R4.3")
def test_unrealized_loss_over_5_percent_moves_every_stop_20_percent_closer_once() -> None:
    # 100 % exposure at 100 with a stop at 50; the price falls 6 % (no stop hit), then 8 %: tighten once
    rows = [*flat(100, 2), (100, 100, 100, 100), (94, 94, 94, 94), (92, 92, 92, 92), *flat(92, 3)]
    eng = engine({"BTCUSDT": Scripted({0: enter(stop=50.0)})}, risk=0.5, limits=RiskLimits(
        daily_loss_limit=0.2, drawdown_limit=0.5))
    res = eng.run([candles(rows)])
    stops = [o for o in res.orders if o.tag is OrderTag.STOP]
    assert len(stops) == 2 and stops[0].status is OrderStatus.CANCELED and stops[1].is_open
    assert stops[1].stop_price == pytest.approx(94 - (94 - 50) * 0.8)
    assert codes(eng).count("UNREALIZED_LOSS_TIGHTEN") == 1


@pytest.mark.req("R4.5")
def test_a_3_percent_drawdown_cuts_risk_per_trade_to_0_05_percent_until_reset() -> None:
    rows = [*flat(100, 2), (100, 100, 100, 100), (96, 96, 96, 96), *flat(96, 2), *flat(96, 6)]
    script = {0: enter(stop=50.0), 4: leave("cut"), 7: enter(stop=90.0, reason="after the drawdown")}
    eng = engine({"BTCUSDT": Scripted(script)}, risk=0.5, limits=RiskLimits(daily_loss_limit=0.2))
    res = eng.run([candles(rows)])
    assert eng.risk.derisked and "DRAWDOWN_DERISK" in codes(eng)
    later = next(d for d in res.decisions if d["reason"] == "after the drawdown")
    assert later["details"]["sizing"]["risk_per_trade"] == 0.0005
    # an operator's reset (R6.3 comes with overrides) restores the configured risk
    eng.risk.derisked = False
    assert eng.risk.risk_per_trade == 0.5


@pytest.mark.req("R4.4")
def test_latency_over_2s_pauses_entries_and_they_resume_after_settling() -> None:
    risk = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT",), instruments=INSTRUMENTS,
                                 limits=RiskLimits(latency_window=3, latency_settle_s=60)))
    sig = Signal.enter("BTCUSDT", 90.0, "x")
    actions = [risk.on_latency(s, t) for s, t in ((0.1, 0), (3.0, 1_000), (3.0, 2_000), (3.0, 3_000))]
    assert [a.code for a in actions if a] == ["LATENCY_PAUSE"]
    paused = risk.check_entry(sig, 100.0, 10_000.0, 10_000.0, 0.0, 3_000)
    assert paused.code == "LATENCY_PAUSE" and "3.00s > 2.00s" in paused.detail  # type: ignore[union-attr]
    for t in range(4_000, 8_000, 1_000):
        assert risk.on_latency(0.1, t) is None  # the rolling mean drops, the settle period starts
    assert risk.latency_paused
    resumed = risk.on_latency(0.1, 70_000)
    assert resumed is not None and resumed.code == "LATENCY_RESUME" and not risk.latency_paused
    assert not hasattr(risk.check_entry(sig, 100.0, 10_000.0, 10_000.0, 0.0, 70_000), "code")


@pytest.mark.req("R3.5")
def test_without_limits_no_control_acts_paper_validation_measures_the_strategy() -> None:
    rows = [*flat(100, 2), (100, 100, 100, 100), (80, 80, 80, 80), *flat(80, 3)]
    eng = scripted_engine({"BTCUSDT": Scripted({0: enter(stop=50.0)})}, session_id=SID, risk=0.5, fee=0.0)
    risk = eng.risk
    eng.run([candles(rows)])
    assert risk.state is TradingState.ACTIVE and not risk.derisked
    assert not [d for d in eng.result.decisions if d["kind"] == "action"]


@pytest.mark.req("R6.2")
def test_a_losing_streak_trips_the_breaker_and_blocks_entries_for_its_cooldown() -> None:
    from core.config.risk import BreakerConfig
    from core.risk.breakers import CircuitBreakers

    # three round trips that each lose (buy 100, sell 99), then entries on every bar of the next 3 hours
    # each loss happens inside a bar (no gap between a decision's close and the next open: no slippage)
    rows = [*flat(100, 1)] + [(100, 100, 99, 99), (99, 100, 99, 100)] * 3 + [*flat(100, 6)]
    script = {k: enter(stop=90.0) for k in (0, 2, 4)} | {k: leave("lose") for k in (1, 3, 5)}
    script |= {k: enter(stop=90.0, reason="after the streak") for k in range(6, 12)}
    eng = engine({"BTCUSDT": Scripted(script)}, limits=RiskLimits(daily_loss_limit=0.2, drawdown_limit=0.5))
    eng.risk.breakers = CircuitBreakers(BreakerConfig(consecutive_losses=3, losses_cooldown_hours=2))
    res = eng.run([candles(rows)])
    assert "BREAKER_CONSECUTIVE_LOSSES" in codes(eng)
    after = [d for d in res.decisions if d["reason"] == "after the streak"]
    tripped_at = next(d["ts"] for d in res.decisions if d["code"] == "BREAKER_CONSECUTIVE_LOSSES")
    since = (tripped_at // 3_600_000 + 1) * 3_600_000  # the cooldown counts from the end of the bar it tripped in
    for d in after:
        blocked = d["ts"] < since + 2 * 3_600_000
        assert (d["code"] == "BREAKER_COOLDOWN") is blocked, d
    assert any(d["code"] == "BREAKER_COOLDOWN" for d in after) and any(d["kind"] == "order" for d in after)


@pytest.mark.req("R6.2")
@pytest.mark.parametrize("hours", ["0.5", "25"])
def test_a_cooldown_outside_1_to_24_hours_is_refused_at_load(hours: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import load_settings

    monkeypatch.setenv("RAMPART_BREAKERS__SLIPPAGE_COOLDOWN_HOURS", hours)
    with pytest.raises(ConfigError, match=rf"RAMPART_BREAKERS__SLIPPAGE_COOLDOWN_HOURS: .*between 1 and 24 hours; "
                                          rf"got {hours}"):
        load_settings()
