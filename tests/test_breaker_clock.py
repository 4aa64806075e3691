"""Circuit breakers measure time on one clock (R6.2): times recorded on another clock (wall time before the first
bar, a sandbox's market time after a restart) never keep errors in the window or a breaker tripped for years."""

from __future__ import annotations

import pytest

from core.config.risk import BreakerConfig
from core.risk.breakers import API_ERRORS, CONSECUTIVE_LOSSES, CircuitBreakers

pytestmark = pytest.mark.req("R6.2")

S, H = 1_000, 3_600_000
MARKET = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the sandbox's market time
WALL = MARKET + 91_000_000 * S  # ~2.9 years later: the wall clock the "-9.1e7 s" came from


def test_api_errors_stamped_on_another_clock_leave_the_window() -> None:
    cb = CircuitBreakers(BreakerConfig(api_errors=10, api_error_window_s=300))
    assert [cb.on_api_error(WALL + i, "timeout") for i in range(9)] == [None] * 9
    # the first error on the market clock: nine "future" errors are not in its 5-minute window
    assert cb.on_api_error(MARKET, "timeout") is None
    api = next(r for r in cb.status(MARKET) if r["name"] == API_ERRORS)
    assert api["counters"]["errors_in_window"] == 1
    trips = [cb.on_api_error(MARKET + i * S, "5xx") for i in range(1, 10)]
    assert trips[:-1] == [None] * 8
    trip = trips[-1]
    assert trip is not None and trip.name == API_ERRORS
    assert trip.trigger.startswith("10 API errors in 9s (limit 10 in 300s")  # never a negative span


def test_a_restart_on_another_clock_keeps_only_what_its_window_holds() -> None:
    cfg = BreakerConfig(api_errors=3, api_error_window_s=60)
    before = CircuitBreakers(cfg)
    before.on_api_error(WALL, "timeout")
    before.on_api_error(WALL + S, "timeout")
    restored = CircuitBreakers.from_state(cfg, before.to_state())
    assert restored.on_api_error(MARKET, "timeout") is None  # 1 in the window, not 3
    assert restored.on_api_error(MARKET + S, "timeout") is None
    tripped = restored.on_api_error(MARKET + 2 * S, "timeout")
    assert tripped is not None and tripped.trigger.startswith("3 API errors in 2s")


def test_a_cooldown_stamped_on_another_clock_restarts_for_its_full_length_not_for_years() -> None:
    cb = CircuitBreakers(BreakerConfig(consecutive_losses=2, losses_cooldown_hours=4))
    cb.on_trade_closed(-1.0, WALL)
    assert cb.on_trade_closed(-1.0, WALL + 1) is not None
    # on the market clock the trip's end is ~2.9 years ahead: it blocks for its full 4 h from now, then lifts
    assert cb.blocking(MARKET) == (CONSECUTIVE_LOSSES, 4 * H)
    assert cb.blocking(MARKET + 4 * H - 1) == (CONSECUTIVE_LOSSES, 1)
    assert cb.blocking(MARKET + 4 * H) is None


def test_a_cooldown_within_the_longest_allowed_is_kept_even_if_the_setting_was_lowered() -> None:
    tripped = CircuitBreakers(BreakerConfig(consecutive_losses=1, losses_cooldown_hours=24))
    assert tripped.on_trade_closed(-1.0, MARKET) is not None
    restored = CircuitBreakers.from_state(BreakerConfig(consecutive_losses=1, losses_cooldown_hours=1),
                                          tripped.to_state())
    assert restored.blocking(MARKET + H) == (CONSECUTIVE_LOSSES, 23 * H)  # one clock: never lifted early
