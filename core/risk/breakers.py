"""Circuit breakers (SPEC R6.2): trip on a loss streak, an API-error burst or one abnormal fill, then block entries.

Pure and clock-free: every method takes ``ts``, the engine clock in epoch milliseconds, so backtest, paper and
live behave identically and tests can step time exactly. Times must come from one clock; a ``ts`` behind what was
recorded (a restart on another clock, a sandbox's market time after wall time) is taken as the new clock: errors
stamped after it leave the window, and a cooldown ending further ahead than the longest one allowed restarts from
``ts`` for its full length (never shorter), so nothing sticks for years and nothing is lifted early.

A breaker blocks on ``[trip_ts, until_ts)``: at ``until_ts - 1`` it still blocks, at ``until_ts`` it is quiet
again. While a breaker is in cooldown its events are ignored (it cannot re-trip, and the cooldown is not
extended), so after the cooldown every counter starts from zero. ``blocking`` is called per entry decision and
does constant work.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from core.config.risk import BreakerConfig
from core.domain import ms_to_dt
from core.errors import ConfigError, StoreError
from core.events import BreakerTrip, Event

CONSECUTIVE_LOSSES = "consecutive_losses"
API_ERRORS = "api_errors"
SLIPPAGE = "slippage"
NAMES: tuple[str, ...] = (CONSECUTIVE_LOSSES, API_ERRORS, SLIPPAGE)
CODES: dict[str, str] = {
    CONSECUTIVE_LOSSES: "BREAKER_CONSECUTIVE_LOSSES",
    API_ERRORS: "BREAKER_API_ERRORS",
    SLIPPAGE: "BREAKER_SLIPPAGE",
}
STATE_VERSION = 1
_MS_PER_HOUR = 3_600_000
# No cooldown the settings allow ends further ahead than this: an end beyond it was stamped on another clock.
MAX_AHEAD_MS = round(max(hi for name, (_, hi, _) in BreakerConfig.RANGES.items() if name.endswith("_hours"))
                     * _MS_PER_HOUR)

log = logging.getLogger("rampart.breakers")


@dataclass(frozen=True, slots=True)
class BreakerTripped:
    """A breaker tripped. ``code`` is one of ``CODES``; ``detail`` carries the numbers in words."""

    name: str
    code: str
    detail: str
    until_ts: int
    trigger: str = ""  # what tripped it, with the numbers
    cooldown_hours: float = 0.0

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"

    def event(self, ts: int) -> Event:
        """The ``BREAKER_*`` event (its payload says which breaker, why, and until when)."""
        trip = BreakerTrip(breaker=self.name, trigger=self.trigger, cooldown_hours=self.cooldown_hours,
                           until_ms=self.until_ts, until=_iso(self.until_ts))
        return Event.of(self.code, trip, ts=ts)


def _iso(ts: int) -> str:
    return ms_to_dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number; got {value!r}")
    return value


class CircuitBreakers:
    """The three breakers of R6.2 with their counters and cooldowns; ``to_state``/``from_state`` persist them."""

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self._cooldown_ms = {
            CONSECUTIVE_LOSSES: round(cfg.losses_cooldown_hours * _MS_PER_HOUR),
            API_ERRORS: round(cfg.api_cooldown_hours * _MS_PER_HOUR),
            SLIPPAGE: round(cfg.slippage_cooldown_hours * _MS_PER_HOUR),
        }
        self._window_ms = round(cfg.api_error_window_s * 1000)
        self._until: dict[str, int] = dict.fromkeys(NAMES, 0)
        self._max_until = 0  # fast path for blocking(): nothing blocks at or after this instant
        self._last: dict[str, BreakerTripped | None] = dict.fromkeys(NAMES)
        self._losses: list[float] = []  # net P&L of the current losing streak
        # Only the newest N error times matter: N errors in the window <=> the oldest of the last N is inside it.
        self._errors: deque[int] = deque(maxlen=cfg.api_errors)
        self._last_error = ""

    # --- events --------------------------------------------------------------------------------------------
    def on_trade_closed(self, net_pnl: float, ts: int) -> BreakerTripped | None:
        """A closed trade: a loss (net P&L < 0) extends the streak; anything else (win, break-even) resets it."""
        _finite(net_pnl, "net_pnl")
        self._one_clock(ts)
        if self._in_cooldown(CONSECUTIVE_LOSSES, ts):
            return None
        if net_pnl >= 0:
            self._losses.clear()
            return None
        self._losses.append(net_pnl)
        n = len(self._losses)
        if n < self.cfg.consecutive_losses:
            return None
        pnls = ", ".join(f"{p:.2f}" for p in self._losses)
        self._losses.clear()
        return self._trip(CONSECUTIVE_LOSSES, ts, f"{n} losing trades in a row ({pnls} USDT)")

    def on_api_error(self, ts: int, what: str = "") -> BreakerTripped | None:
        """An API error (5xx, timeout, 429, auth); trips at ``api_errors`` errors within ``api_error_window_s``."""
        self._one_clock(ts)
        if self._in_cooldown(API_ERRORS, ts):
            return None
        self._errors.append(ts)
        self._last_error = what
        # The window is (ts - window, ts]: an error exactly window_s old has left it.
        if len(self._errors) < self.cfg.api_errors or self._errors[0] <= ts - self._window_ms:
            return None
        span_s = (ts - self._errors[0]) / 1000
        self._errors.clear()
        last = f"; last: {what}" if what else ""
        return self._trip(API_ERRORS, ts, f"{self.cfg.api_errors} API errors in {span_s:g}s "
                                          f"(limit {self.cfg.api_errors} in {self.cfg.api_error_window_s:g}s{last})")

    def on_fill(self, slippage_bps: float, ts: int, what: str = "") -> BreakerTripped | None:
        """A fill's adverse slippage vs its reference price, in bps (positive = worse); trips above the limit."""
        _finite(slippage_bps, "slippage_bps")
        self._one_clock(ts)
        if self._in_cooldown(SLIPPAGE, ts) or slippage_bps <= self.cfg.slippage_bps:
            return None
        on = f" on {what}" if what else ""
        return self._trip(SLIPPAGE, ts, f"fill slippage {slippage_bps:.1f} bps{on} exceeds "
                                        f"{self.cfg.slippage_bps:g} bps")

    # --- queries and overrides -----------------------------------------------------------------------------
    def blocking(self, ts: int) -> tuple[str, int] | None:
        """(name, ms left) of the breaker that blocks longest at ``ts``, or None. Hot path: constant work."""
        if ts >= self._max_until:
            return None
        if self._max_until - ts > MAX_AHEAD_MS:
            self._one_clock(ts)
        name = max(NAMES, key=self._until.__getitem__)
        return name, self._until[name] - ts

    def clear(self, name: str, ts: int) -> bool:
        """Operator override (R6.3 checks the role and reason): lift ``name`` now; False if it was not blocking."""
        if name not in self._until:
            raise ConfigError(f"unknown circuit breaker '{name}'; use one of {', '.join(NAMES)}")
        was = self._in_cooldown(name, ts)
        self._until[name] = 0
        self._reset_counters(name)
        self._max_until = max(self._until.values())
        return was

    def status(self, ts: int) -> list[dict[str, Any]]:
        """Every breaker, tripped or not, with its threshold, counters and last trip — for the dashboard/CLI."""
        cfg = self.cfg
        self._one_clock(ts)
        counters: dict[str, dict[str, Any]] = {
            CONSECUTIVE_LOSSES: {"losing_streak": len(self._losses), "threshold": cfg.consecutive_losses},
            API_ERRORS: {"errors_in_window": sum(1 for t in self._errors if t > ts - self._window_ms),
                         "threshold": cfg.api_errors, "window_s": cfg.api_error_window_s},
            SLIPPAGE: {"threshold_bps": cfg.slippage_bps},
        }
        rows = []
        for name in NAMES:
            until = self._until[name]
            tripped = ts < until
            last = self._last[name]
            rows.append({
                "name": name, "code": CODES[name], "tripped": tripped,
                "until": _iso(until) if tripped else None, "until_ts": until if tripped else None,
                "ms_left": until - ts if tripped else 0, "cooldown_hours": self._cooldown_ms[name] / _MS_PER_HOUR,
                "counters": counters[name], "last_trip": last.detail if last else None,
            })
        return rows

    # --- persistence ---------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-ready snapshot: cooldowns and counters survive a restart (a restart never lifts a breaker)."""
        return {
            "version": STATE_VERSION,
            "until": dict(self._until),
            "last": {n: (t.detail, t.until_ts) if t else None for n, t in self._last.items()},
            "losses": list(self._losses),
            "errors": list(self._errors),
            "last_error": self._last_error,
        }

    @classmethod
    def from_state(cls, cfg: BreakerConfig, d: dict[str, Any]) -> CircuitBreakers:
        """Rebuild from ``to_state``. A trip keeps its persisted end even if the cooldown setting changed."""
        cb = cls(cfg)
        try:
            if d["version"] != STATE_VERSION:
                raise ValueError(f"version {d['version']!r}, expected {STATE_VERSION}")
            for name in NAMES:
                cb._until[name] = int(d["until"][name])
                last = d["last"][name]
                cb._last[name] = BreakerTripped(name, CODES[name], str(last[0]), int(last[1])) if last else None
            # Counters may exceed a lowered threshold: keep only what the new config can use.
            losses = [float(x) for x in d["losses"]]
            keep = cfg.consecutive_losses - 1  # a full streak would have tripped; at most N-1 can be pending
            cb._losses = losses[-keep:] if keep else []
            cb._errors.extend(int(t) for t in d["errors"])
            cb._last_error = str(d["last_error"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StoreError(f"saved circuit-breaker state is malformed ({type(exc).__name__}: {exc}); "
                             f"it must come from CircuitBreakers.to_state()") from exc
        cb._max_until = max(cb._until.values())
        return cb

    # --- internals -----------------------------------------------------------------------------------------
    def _one_clock(self, ts: int) -> None:
        """Re-base what was recorded on another clock onto ``ts``'s (see the module docstring)."""
        if self._errors and self._errors[-1] > ts:
            kept = [t for t in self._errors if t <= ts]
            log.warning("API-error breaker: %d error time(s) after now (%s) dropped: they were stamped on another "
                        "clock", len(self._errors) - len(kept), _iso(ts))
            self._errors.clear()
            self._errors.extend(kept)
        if self._max_until - ts <= MAX_AHEAD_MS:
            return
        for name in NAMES:
            if self._until[name] - ts > MAX_AHEAD_MS:
                log.warning("breaker %s: cooldown end %s is further ahead of now (%s) than any cooldown; restarting "
                            "its full cooldown from now", name, _iso(self._until[name]), _iso(ts))
                self._until[name] = ts + self._cooldown_ms[name]
        self._max_until = max(self._until.values())

    def _in_cooldown(self, name: str, ts: int) -> bool:
        return ts < self._until[name]

    def _trip(self, name: str, ts: int, what: str) -> BreakerTripped:
        until = ts + self._cooldown_ms[name]
        hours = self._cooldown_ms[name] / _MS_PER_HOUR
        event = BreakerTripped(name, CODES[name], f"{what}; entries blocked for {hours:g}h until {_iso(until)}",
                               until, what, hours)
        self._until[name] = until
        self._max_until = max(self._max_until, until)
        self._last[name] = event
        return event

    def _reset_counters(self, name: str) -> None:
        if name == CONSECUTIVE_LOSSES:
            self._losses.clear()
        elif name == API_ERRORS:
            self._errors.clear()
