"""RiskEngine: the trading state, the pre-trade checks and the monitors — the same in backtest, paper and live.

Pre-trade checks are a chain of early returns; a refusal is a returned ``OrderDenied`` with a coded reason and
its numbers, never an exception. Exits are always allowed. Monitors run on every bar (``on_mark``, called by
the engine only when a threshold may have been crossed) and on every exchange call (``on_latency``); what they
do automatically comes back as typed ``Event``s (``core.events``) that the engine records and carries out.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from core.config.ladder import NEW_SYMBOL_RISK_MULTIPLIER, Rung, capped
from core.config.risk import RiskLimits
from core.domain import Instrument, OrderDenied, Reason, Signal, TradingState
from core.errors import ConfigError
from core.events import (
    DailyLossHit,
    DrawdownDerisked,
    Event,
    EventCode,
    LatencyChanged,
    StateChanged,
    StopsTightened,
    UnrealizedRecovered,
)
from core.packed import floats
from core.quickinit import quick_init
from core.risk.sizing import SizeRefused, SizingInputs, size_all_in, size_by_risk

DAY_MS = 86_400_000
_T = TradingState
# Who may go where. Automatic moves only ever tighten (to SAFE_MODE or HALTED); loosening is an operator's.
STATE_TRANSITIONS: dict[TradingState, frozenset[TradingState]] = {
    _T.ACTIVE: frozenset({_T.REDUCING, _T.SAFE_MODE, _T.HALTED}),
    _T.REDUCING: frozenset({_T.ACTIVE, _T.SAFE_MODE, _T.HALTED}),
    _T.SAFE_MODE: frozenset({_T.ACTIVE, _T.HALTED}),
    _T.HALTED: frozenset({_T.ACTIVE}),
}
ENTRY_STATES = frozenset({_T.ACTIVE})


@dataclass(frozen=True)
class RiskConfig:
    allowed_symbols: tuple[str, ...]
    instruments: dict[str, Instrument]
    risk_per_trade: float = 0.01
    exposure_cap: float = 1.0
    sizing_mode: str = "risk"
    fee_rate: float = 0.001
    # None: no automatic controls — paper validation and backtests measure the strategy itself (issue 2);
    # live sessions always run with limits (and paper sessions can, e.g. to rehearse the rules).
    limits: RiskLimits | None = None
    hard_caps: bool = False  # live: sizes never above the R5.5 caps, whatever the rung says


@quick_init
@dataclass(frozen=True, slots=True)
class EntryApproved:
    """An entry passed every check; ``checks`` lists each that ran, in order, with its numbers (decision log)."""

    qty: float
    quote_qty: float | None
    inputs: dict[str, Any]
    checks: tuple[dict[str, Any], ...] = field(default=())


def _denied(sym: str, ts: int, checks: list[dict[str, Any]], code: str, detail: str) -> OrderDenied:
    """The refusal by the last check that ran (marked failed), with every check up to it."""
    checks[-1]["result"] = "fail"
    return OrderDenied(sym, code, detail, ts, tuple(checks))


def _check(name: str, **numbers: Any) -> dict[str, Any]:
    return {"check": name, "result": "pass", **numbers}


def _off(name: str) -> dict[str, Any]:
    return {"check": name, "result": "off"}


class RiskEngine:
    """Owns the trading state, de-risking, latency pause and the per-bar indicators the checks read."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.controls = config.limits is not None
        self.limits = config.limits or RiskLimits()
        self.state = TradingState.ACTIVE
        self.derisked = False
        self.tightened = False  # inside an unrealized-loss episode (R4.3): stops already moved once
        self.latency_paused = False
        self._latency: deque[float] = deque(maxlen=self.limits.latency_window)
        self._latency_ok_since: int | None = None
        # per-bar thresholds the engine compares against inline (cheap); crossing one calls on_mark
        self.day_end = 0 if self.controls else 2**62
        self.sod_equity = math.nan
        self.daily_floor = -math.inf
        self.hwm = -math.inf
        self.dd_floor = -math.inf
        self.vol_mult: dict[str, array[float]] = {}
        self.vol_ratio: dict[str, array[float]] = {}
        self.corr: dict[tuple[str, str], array[float]] = {}
        self.breakers: Any = None  # CircuitBreakers when configured
        self.new_symbols: dict[str, int] = {}  # R5.3: symbol -> epoch ms until which it trades at half risk

    # --- state ---------------------------------------------------------------------------------------------
    def transition(self, new: TradingState, why: str, ts: int, cause: str | None = None) -> Event | None:
        """Move along STATE_TRANSITIONS; an illegal move is refused (ConfigError), a no-op returns None.
        ``cause``: the code of what caused the move (DAILY_LOSS_LIMIT, SUSPICIOUS_ORDER, an override …)."""
        if new is self.state:
            return None
        if new not in STATE_TRANSITIONS[self.state]:
            raise ConfigError(f"trading state cannot go from {self.state} to {new}")
        old, self.state = self.state, new
        if new is not TradingState.ACTIVE:
            self.daily_floor = -math.inf  # already stopped: no second trigger today
        return Event.of(EventCode.STATE_CHANGED, StateChanged(old=old.value, new=new.value, why=why, cause=cause),
                        "critical" if new in (_T.SAFE_MODE, _T.HALTED) else "warning", ts)

    # --- indicators for the checks -------------------------------------------------------------------------
    def prepare(self, closes: dict[str, array[float]]) -> None:
        """Rolling volatility ratio and pairwise return correlation per bar, computed once per batch."""
        if not self.controls:
            return
        lim = self.limits
        frame = pl.DataFrame({sym: np.array(values, dtype=np.float64) for sym, values in closes.items()})
        rets = frame.select((pl.col(s) / pl.col(s).shift(1)).log().alias(s) for s in closes)
        for sym in closes:
            ratio = (rets[sym].rolling_std(lim.vol_short_window) / rets[sym].rolling_std(lim.vol_long_window))
            ratio = ratio.fill_null(1.0).fill_nan(1.0)
            mult = pl.select(pl.when(ratio >= lim.vol_ratio_high).then(lim.vol_mult_high)
                             .when(ratio >= lim.vol_ratio_mid).then(lim.vol_mult_mid).otherwise(1.0)).to_series()
            self.vol_ratio[sym] = floats(ratio)
            self.vol_mult[sym] = floats(mult)
        symbols = list(closes)
        for a in symbols:
            for b in symbols:
                if a < b:
                    rho = rets.select(pl.rolling_corr(a, b, window_size=lim.corr_window)).to_series()
                    values = floats(rho.fill_null(0.0).fill_nan(0.0))
                    self.corr[(a, b)] = self.corr[(b, a)] = values

    def size_multiplier(self, symbol: str, i: int) -> float:
        """R4.1 volatility scaling at bar ``i`` (1.0 when calm or unknown)."""
        mult = self.vol_mult.get(symbol)
        return mult[i] if mult is not None and i < len(mult) else 1.0

    @property
    def risk_per_trade(self) -> float:
        """R4.5: the de-risked value once the drawdown limit was reached, until an operator resets it."""
        return self.limits.derisked_risk_per_trade if self.derisked else self.config.risk_per_trade

    # --- pre-trade chain -----------------------------------------------------------------------------------
    def check_entry(self, signal: Signal, price: float, equity: float, cash: float, open_notional: float,
                    ts: int, i: int = -1, open_symbols: tuple[str, ...] = ()) -> OrderDenied | EntryApproved:
        """The chain of early returns. Every verdict lists exactly the checks that ran, each with the numbers it
        compared and its result ("pass", "fail", or "off" for a control switched off), for the decision log."""
        cfg, lim = self.config, self.limits
        sym = signal.symbol
        checks: list[dict[str, Any]] = []

        checks.append({"check": "allow_list", "result": "pass", "symbol": sym,
                       "allowed": list(cfg.allowed_symbols)})
        if sym not in cfg.allowed_symbols:
            return _denied(sym, ts, checks, Reason.NOT_ALLOWED_SYMBOL,
                           f"{sym} not in {','.join(cfg.allowed_symbols)}")
        checks.append({"check": "trading_state", "result": "pass", "state": str(self.state)})
        if self.state not in ENTRY_STATES:
            return _denied(sym, ts, checks, Reason.TRADING_STATE, f"state {self.state} allows no new entries")
        if self.breakers is None:
            checks.append({"check": "breakers", "result": "off"})
        else:
            blocked = self.breakers.blocking(ts)
            checks.append({"check": "breakers", "result": "pass", "blocking": blocked[0] if blocked else None,
                           "hours_left": round(blocked[1] / 3_600_000, 4) if blocked else 0.0})
            if blocked is not None:
                return _denied(sym, ts, checks, "BREAKER_COOLDOWN",
                               f"{blocked[0]} breaker blocks entries for another {blocked[1] / 3_600_000:.2f} h")
        if not self.controls:
            checks.append({"check": "latency", "result": "off"})
        else:
            checks.append({"check": "latency", "result": "pass", "latency_s": round(self.latency, 4),
                           "limit_s": lim.latency_limit_s, "calls": len(self._latency),
                           "paused": self.latency_paused})
            if self.latency_paused:
                return _denied(sym, ts, checks, "LATENCY_PAUSE",
                               f"exchange latency {self.latency:.2f}s > {lim.latency_limit_s:.2f}s "
                               f"(rolling {len(self._latency)} calls)")
        if not self.controls:
            checks.append({"check": "correlation", "result": "off"})
        else:
            pairs: list[dict[str, Any]] = [{"with": other, "rho": rho[i]} for other in open_symbols
                     if other != sym and (rho := self.corr.get((sym, other))) is not None and 0 <= i < len(rho)]
            checks.append({"check": "correlation", "result": "pass", "pairs": pairs, "max": lim.corr_max})
            for pair in pairs:
                if pair["rho"] > lim.corr_max:
                    return _denied(sym, ts, checks, "CORRELATION_BLOCK",
                                   f"{sym}~{pair['with']} rho={pair['rho']:.2f}>{lim.corr_max:.2f}")
        stop = signal.stop
        checks.append({"check": "stop", "result": "pass", "stop": stop, "price": price})
        if stop is None or not 0 < stop < price:
            return _denied(sym, ts, checks, Reason.INVALID_STOP,
                           f"stop {stop} must be between 0 and the price {price:.2f}")
        return self._size(signal, price, equity, cash, open_notional, ts, i, checks)

    def _size(self, signal: Signal, price: float, equity: float, cash: float, open_notional: float, ts: int,
              i: int, checks: list[dict[str, Any]]) -> OrderDenied | EntryApproved:
        cfg = self.config
        sym = signal.symbol
        inst = cfg.instruments[sym]
        if cfg.sizing_mode == "all_in":
            sized = size_all_in(cash, price, cfg.fee_rate, inst)
            inputs: dict[str, Any] = {"mode": "all_in", "cash": cash, "price": price}
        else:
            half = ts < self.new_symbols.get(sym, 0)
            vol = self.size_multiplier(sym, i)
            mult = vol * (NEW_SYMBOL_RISK_MULTIPLIER if half else 1.0)
            risk, cap = self.risk_per_trade, cfg.exposure_cap
            if cfg.hard_caps:
                safe = capped(risk, cap)
                risk, cap = safe.risk_per_trade, safe.exposure_cap
            ratio = self.vol_ratio.get(sym)
            vol_ratio = ratio[i] if ratio is not None and 0 <= i < len(ratio) else None
            lim = self.limits
            checks.append(_check("volatility", vol_ratio=vol_ratio, multiplier=vol, mid=lim.vol_ratio_mid,
                                 high=lim.vol_ratio_high) if self.controls else _off("volatility"))
            x = SizingInputs(equity, cash, price, signal.stop or 0.0, risk, mult, cap, open_notional, cfg.fee_rate)
            sized = size_by_risk(x, inst)
            inputs = {"mode": "risk", "equity": equity, "cash": cash, "price": price, "stop": signal.stop,
                      "risk_per_trade": risk, "derisked": self.derisked, "size_multiplier": mult,
                      "vol_ratio": vol_ratio, "exposure_cap": cap, "open_notional": open_notional,
                      "new_symbol_half_risk": half}
        checks.extend(sized.checks)  # made for this call: the decision log keeps them as they are
        if isinstance(sized, SizeRefused):
            return OrderDenied(sym, sized.code, sized.detail, ts, tuple(checks))
        inputs["qty"] = sized.qty
        inputs["binding"] = sized.binding
        return EntryApproved(sized.qty, sized.quote_qty, inputs, tuple(checks))

    # --- monitors ------------------------------------------------------------------------------------------
    def on_mark(self, ts: int, equity: float, unrealized: float, prev_equity: float | None) -> list[Event]:
        """A threshold may have been crossed at this mark: new day, daily loss, drawdown, unrealized loss."""
        lim = self.limits
        actions: list[Event] = []
        if ts >= self.day_end:  # start-of-day equity: at 00:00 UTC, or at session start when later
            self.sod_equity = prev_equity if prev_equity is not None else equity
            self.day_end = (ts // DAY_MS + 1) * DAY_MS
            active = self.state is TradingState.ACTIVE
            self.daily_floor = self.sod_equity * (1 - lim.daily_loss_limit) if active else -math.inf
        if equity <= self.daily_floor:
            pnl = equity - self.sod_equity
            hit = Event.of(EventCode.DAILY_LOSS_LIMIT, DailyLossHit(
                day_pnl=pnl, day_pnl_pct=pnl / self.sod_equity, limit=lim.daily_loss_limit,
                sod_equity=self.sod_equity, equity=equity), ts=ts)
            act = self.transition(TradingState.SAFE_MODE, hit.message, ts, cause=EventCode.DAILY_LOSS_LIMIT)
            actions.extend([hit, *([act] if act else [])])
        if equity <= self.dd_floor and not self.derisked:
            self.derisked = True
            actions.append(Event.of(EventCode.DRAWDOWN_DERISK, DrawdownDerisked(
                drawdown=1 - equity / self.hwm, hwm=self.hwm, limit=lim.drawdown_limit,
                risk_before=self.config.risk_per_trade, risk_after=lim.derisked_risk_per_trade), ts=ts))
            self.dd_floor = -math.inf
        breach = unrealized < -lim.unrealized_loss_limit * equity
        if breach and not self.tightened:
            self.tightened = True
            actions.append(Event.of(EventCode.UNREALIZED_LOSS_TIGHTEN, StopsTightened(
                unrealized=unrealized, unrealized_pct=unrealized / equity, limit=lim.unrealized_loss_limit,
                factor=lim.stop_tighten), ts=ts))
        elif not breach and self.tightened:
            self.tightened = False
            actions.append(Event.of(EventCode.UNREALIZED_LOSS_RECOVERED, UnrealizedRecovered(
                unrealized=unrealized, limit=lim.unrealized_loss_limit), ts=ts))
        return actions

    def set_rung(self, step: Rung) -> None:
        """An approved rung (R5.1) becomes the sizing base; live sizing still clamps to the hard caps."""
        safe = capped(step.risk_per_trade, step.exposure_cap)
        self.config = replace(self.config, risk_per_trade=safe.risk_per_trade, exposure_cap=safe.exposure_cap)

    def new_high(self, equity: float) -> None:
        self.hwm = equity
        if self.controls and not self.derisked:
            self.dd_floor = equity * (1 - self.limits.drawdown_limit)

    @property
    def latency(self) -> float:
        return sum(self._latency) / len(self._latency) if self._latency else 0.0

    def on_latency(self, seconds: float, ts: int) -> Event | None:
        """R4.4 with hysteresis: pause above the limit; resume after it stayed below for the settle period."""
        if not self.controls:
            return None
        self._latency.append(seconds)
        lim = self.limits
        rolling = self.latency
        if rolling > lim.latency_limit_s:
            self._latency_ok_since = None
            if not self.latency_paused:
                self.latency_paused = True
                return Event.of(EventCode.LATENCY_PAUSE, LatencyChanged(latency_s=rolling, limit_s=lim.latency_limit_s),
                                ts=ts)
            return None
        if self.latency_paused:
            if self._latency_ok_since is None:
                self._latency_ok_since = ts
            elif ts - self._latency_ok_since >= lim.latency_settle_s * 1000:
                self.latency_paused = False
                self._latency_ok_since = None
                return Event.of(EventCode.LATENCY_RESUME, LatencyChanged(
                    latency_s=rolling, limit_s=lim.latency_limit_s, settle_s=lim.latency_settle_s), ts=ts)
        return None

    # --- persistence (live) --------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"state": self.state.value, "derisked": self.derisked, "hwm": self.hwm if math.isfinite(self.hwm)
                else None, "tightened": self.tightened,
                "breakers": self.breakers.to_state() if self.breakers is not None else None}

    def restore(self, data: dict[str, Any]) -> None:
        """SAFE_MODE, HALTED and de-risking survive restarts (R2.4, R4.5, R6.4)."""
        self.state = TradingState(data.get("state", TradingState.ACTIVE.value))
        self.derisked = bool(data.get("derisked", False))
        self.tightened = bool(data.get("tightened", False))
        if data.get("hwm") is not None:
            self.new_high(float(data["hwm"]))


