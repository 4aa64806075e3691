"""Circuit breakers (R6.2): exact thresholds, exact cooldowns, resets, overrides, persistence, config ranges."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from core.config.risk import BreakerConfig
from core.domain import dt_to_ms
from core.errors import ConfigError, StoreError
from core.risk.breakers import API_ERRORS, CONSECUTIVE_LOSSES, SLIPPAGE, BreakerTripped, CircuitBreakers

pytestmark = pytest.mark.req("R6.2")

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def make(**kw: float) -> CircuitBreakers:
    return CircuitBreakers(BreakerConfig(**kw))


def lose(cb: CircuitBreakers, n: int, ts: int = T0, pnl: float = -1.0) -> list[BreakerTripped | None]:
    return [cb.on_trade_closed(pnl, ts + i) for i in range(n)]


# --- consecutive losses ------------------------------------------------------------------------------------
def test_losses_trip_exactly_at_threshold_with_numbers_in_detail() -> None:
    cb = make(consecutive_losses=4, losses_cooldown_hours=4)
    pnls = [-12.3, -8.1, -3.0, -1.2]
    assert [cb.on_trade_closed(p, T0 + i) for i, p in enumerate(pnls[:3])] == [None, None, None]
    assert cb.blocking(T0 + 2) is None  # three losses: not yet
    trip = cb.on_trade_closed(pnls[3], T0 + 3)
    assert trip is not None
    assert trip.name == CONSECUTIVE_LOSSES and trip.code == "BREAKER_CONSECUTIVE_LOSSES"
    assert trip.until_ts == T0 + 3 + 4 * H
    assert trip.detail == ("4 losing trades in a row (-12.30, -8.10, -3.00, -1.20 USDT); "
                           "entries blocked for 4h until 2024-01-01T04:00:00Z")


def test_losses_block_for_cooldown_and_not_a_millisecond_longer() -> None:
    cb = make(consecutive_losses=2, losses_cooldown_hours=4)
    trip = lose(cb, 2)[-1]
    assert trip is not None
    assert cb.blocking(trip.until_ts - 1) == (CONSECUTIVE_LOSSES, 1)
    assert cb.blocking(trip.until_ts) is None
    assert cb.blocking(T0 + 1) == (CONSECUTIVE_LOSSES, 4 * H)


def test_a_win_or_break_even_resets_the_loss_streak() -> None:
    cb = make(consecutive_losses=3)
    assert lose(cb, 2) == [None, None]
    assert cb.on_trade_closed(5.0, T0 + 10) is None
    assert lose(cb, 2, T0 + 20) == [None, None]  # streak restarted: 2 < 3
    assert cb.on_trade_closed(0.0, T0 + 30) is None  # break-even is not a loss either
    assert lose(cb, 2, T0 + 40) == [None, None]
    assert cb.blocking(T0 + 50) is None
    assert cb.on_trade_closed(-1.0, T0 + 60) is not None


def test_no_retrip_during_cooldown_and_counters_fresh_after() -> None:
    cb = make(consecutive_losses=2, losses_cooldown_hours=1)
    trip = lose(cb, 2)[-1]
    assert trip is not None
    assert lose(cb, 5, T0 + 100) == [None] * 5  # ignored while in cooldown
    assert cb.blocking(trip.until_ts - 1) == (CONSECUTIVE_LOSSES, 1)  # cooldown not extended
    assert cb.on_trade_closed(-1.0, trip.until_ts) is None  # one loss after cooldown: a fresh streak of 1
    again = cb.on_trade_closed(-1.0, trip.until_ts + 1)
    assert again is not None and again.until_ts == trip.until_ts + 1 + H


# --- API errors ----------------------------------------------------------------------------------------------
def test_api_errors_trip_at_threshold_within_window() -> None:
    cb = make(api_errors=5, api_error_window_s=60, api_cooldown_hours=1)
    for i in range(4):
        assert cb.on_api_error(T0 + i * 1000, "HTTP 503") is None
    assert cb.blocking(T0 + 4000) is None
    trip = cb.on_api_error(T0 + 4000, "timeout GET /api/v3/order")
    assert trip is not None and trip.code == "BREAKER_API_ERRORS"
    assert trip.until_ts == T0 + 4000 + H
    assert "5 API errors in 4s" in trip.detail and "timeout GET /api/v3/order" in trip.detail
    assert cb.blocking(trip.until_ts - 1) == (API_ERRORS, 1)
    assert cb.blocking(trip.until_ts) is None


def test_api_errors_outside_window_do_not_count() -> None:
    window = 60_000
    cb = make(api_errors=5, api_error_window_s=60)
    for _ in range(4):
        cb.on_api_error(T0)
    # The window is (t - 60 s, t]: an error exactly 60 s older than the newest has left it.
    assert cb.on_api_error(T0 + window) is None
    assert cb.blocking(T0 + window) is None
    assert cb.status(T0 + window)[1]["counters"]["errors_in_window"] == 1
    inside = make(api_errors=5, api_error_window_s=60)
    for _ in range(4):
        inside.on_api_error(T0)
    assert inside.on_api_error(T0 + window - 1) is not None  # one millisecond younger: all five count


def test_api_errors_spread_thinly_never_trip() -> None:
    cb = make(api_errors=5, api_error_window_s=10)
    assert all(cb.on_api_error(T0 + i * 3000) is None for i in range(100))  # one every 3 s: at most 4 per 10 s
    assert cb.status(T0 + 297_000)[1]["counters"]["errors_in_window"] == 4


# --- slippage ------------------------------------------------------------------------------------------------
def test_slippage_trips_only_above_threshold() -> None:
    cb = make(slippage_bps=50, slippage_cooldown_hours=2)
    assert cb.on_fill(50.0, T0, "BTCUSDT buy") is None  # at the limit: allowed
    assert cb.on_fill(-500.0, T0 + 1) is None  # favourable slippage never trips
    assert cb.blocking(T0 + 1) is None
    trip = cb.on_fill(50.01, T0 + 2, "BTCUSDT buy 0.01 @ 43000")
    assert trip is not None and trip.code == "BREAKER_SLIPPAGE"
    assert trip.detail.startswith("fill slippage 50.0 bps on BTCUSDT buy 0.01 @ 43000 exceeds 50 bps")
    assert trip.until_ts == T0 + 2 + 2 * H
    assert cb.blocking(trip.until_ts - 1) == (SLIPPAGE, 1)
    assert cb.blocking(trip.until_ts) is None
    assert cb.on_fill(999.0, T0 + 3) is None  # in cooldown: no second event


def test_non_finite_inputs_are_refused() -> None:
    cb = make()
    with pytest.raises(ValueError, match="net_pnl must be a finite number"):
        cb.on_trade_closed(float("nan"), T0)
    with pytest.raises(ValueError, match="slippage_bps must be a finite number"):
        cb.on_fill(float("inf"), T0)


# --- several breakers, overrides, status ---------------------------------------------------------------------
def test_blocking_reports_the_longest_and_clear_lifts_only_that_one() -> None:
    cb = make(consecutive_losses=1, losses_cooldown_hours=4, slippage_cooldown_hours=2)
    assert cb.on_fill(100.0, T0) is not None
    assert cb.on_trade_closed(-1.0, T0) is not None
    assert cb.blocking(T0 + 10) == (CONSECUTIVE_LOSSES, 4 * H - 10)
    assert cb.clear(CONSECUTIVE_LOSSES, T0 + 10) is True
    assert cb.blocking(T0 + 10) == (SLIPPAGE, 2 * H - 10)
    assert cb.clear(CONSECUTIVE_LOSSES, T0 + 11) is False  # already clear
    assert cb.clear(API_ERRORS, T0 + 11) is False
    assert cb.clear(SLIPPAGE, T0 + 12) is True
    assert cb.blocking(T0 + 12) is None
    assert cb.on_trade_closed(-1.0, T0 + 13) is not None  # cleared breaker can trip again at once


def test_clear_after_cooldown_returns_false_and_unknown_name_is_refused() -> None:
    cb = make(consecutive_losses=1, losses_cooldown_hours=1)
    trip = cb.on_trade_closed(-1.0, T0)
    assert trip is not None
    assert cb.clear(CONSECUTIVE_LOSSES, trip.until_ts) is False
    with pytest.raises(ConfigError, match=r"unknown circuit breaker 'losses'.*consecutive_losses"):
        cb.clear("losses", T0)


def test_status_lists_every_breaker_with_counters() -> None:
    cb = make(consecutive_losses=3, api_errors=5, slippage_bps=20)
    lose(cb, 2)
    cb.on_api_error(T0, "429")
    trip = cb.on_fill(30.0, T0 + 5)
    assert trip is not None
    rows = {r["name"]: r for r in cb.status(T0 + 5)}
    assert set(rows) == {CONSECUTIVE_LOSSES, API_ERRORS, SLIPPAGE}
    assert rows[CONSECUTIVE_LOSSES]["tripped"] is False and rows[CONSECUTIVE_LOSSES]["ms_left"] == 0
    assert rows[CONSECUTIVE_LOSSES]["counters"]["losing_streak"] == 2
    assert rows[API_ERRORS]["counters"]["errors_in_window"] == 1
    assert rows[SLIPPAGE]["tripped"] is True and rows[SLIPPAGE]["ms_left"] == 2 * H
    assert rows[SLIPPAGE]["until"] == "2024-01-01T02:00:00Z" and rows[SLIPPAGE]["last_trip"] == trip.detail
    assert {r["name"]: r["tripped"] for r in cb.status(trip.until_ts)}[SLIPPAGE] is False


# --- persistence ---------------------------------------------------------------------------------------------
def test_state_round_trips_through_json() -> None:
    cfg = BreakerConfig(consecutive_losses=3, api_errors=5, slippage_cooldown_hours=3)
    cb = CircuitBreakers(cfg)
    lose(cb, 2)
    for i in range(3):
        cb.on_api_error(T0 + i, "503")
    trip = cb.on_fill(80.0, T0 + 10)
    assert trip is not None
    back = CircuitBreakers.from_state(cfg, json.loads(json.dumps(cb.to_state())))
    assert back.to_state() == cb.to_state()
    assert back.blocking(trip.until_ts - 1) == (SLIPPAGE, 1)
    assert back.blocking(trip.until_ts) is None
    assert back.on_trade_closed(-1.0, T0 + 20) is not None  # the pending streak of 2 survived
    assert back.on_api_error(T0 + 21) is None
    assert back.on_api_error(T0 + 22) is not None  # 3 saved + 2 new = 5


def test_restored_counters_fit_a_lowered_threshold() -> None:
    cb = make(consecutive_losses=5, api_errors=10)
    lose(cb, 4)
    back = CircuitBreakers.from_state(BreakerConfig(consecutive_losses=3), cb.to_state())
    assert back.status(T0)[0]["counters"]["losing_streak"] == 2  # at most threshold - 1 pending
    assert back.on_trade_closed(-1.0, T0 + 10) is not None


def test_malformed_state_is_refused() -> None:
    with pytest.raises(StoreError, match="circuit-breaker state is malformed"):
        CircuitBreakers.from_state(BreakerConfig(), {"version": 1, "until": {}})
    with pytest.raises(StoreError, match="version 99"):
        CircuitBreakers.from_state(BreakerConfig(), {**make().to_state(), "version": 99})


# --- configuration ranges ------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["losses_cooldown_hours", "api_cooldown_hours", "slippage_cooldown_hours"])
@pytest.mark.parametrize("hours", [0.5, 25])
def test_cooldowns_outside_1_to_24_hours_are_rejected(field: str, hours: float) -> None:
    with pytest.raises(ValidationError) as err:
        BreakerConfig(**{field: hours})
    msg = err.value.errors()[0]["msg"]
    assert f"{field} must be between 1 and 24 hours; got {hours:g}" in msg


@pytest.mark.parametrize("field", ["losses_cooldown_hours", "api_cooldown_hours", "slippage_cooldown_hours"])
@pytest.mark.parametrize("hours", [1, 24])
def test_cooldowns_of_1_and_24_hours_are_accepted_and_used(field: str, hours: float) -> None:
    cfg = BreakerConfig(**{field: hours})
    assert getattr(cfg, field) == hours
    cb = CircuitBreakers(BreakerConfig(consecutive_losses=1, api_errors=1, **{field: hours}))
    trip = {"losses_cooldown_hours": lambda: cb.on_trade_closed(-1.0, T0),
            "api_cooldown_hours": lambda: cb.on_api_error(T0),
            "slippage_cooldown_hours": lambda: cb.on_fill(100.0, T0)}[field]()
    assert trip is not None and trip.until_ts == T0 + hours * H


@pytest.mark.parametrize(("field", "value", "text"), [
    ("consecutive_losses", 0, "between 1 and 50 trades; got 0"),
    ("consecutive_losses", 51, "between 1 and 50 trades; got 51"),
    ("api_error_window_s", 5, "between 10 and 3600 seconds; got 5"),
    ("slippage_bps", 0.5, "between 1 and 1000 bps; got 0.5"),
    ("slippage_bps", float("nan"), "got nan"),
])
def test_other_ranges_are_checked(field: str, value: float, text: str) -> None:
    with pytest.raises(ValidationError, match=text):
        BreakerConfig(**{field: value})


def test_config_is_frozen_and_strict_about_names() -> None:
    with pytest.raises(ValidationError, match="cooldown_hours"):
        BreakerConfig(cooldown_hours=2)  # type: ignore[call-arg]
    cfg = BreakerConfig()
    with pytest.raises(ValidationError):
        cfg.slippage_bps = 10  # type: ignore[misc]
    assert dt_to_ms(datetime(2024, 1, 1)) == T0  # the constant the detail strings above rely on
