"""Why each trade was entered and left, in words a trader reads (R7.3).

The entry sentence comes from the entry decision's indicator values (per strategy), its protective stop, target and
sizing; the exit sentence from how the position closed: the strategy's exit signal with its numbers, the protective
stop (and whether the risk engine had tightened it, when and why), a take-profit target, or an emergency stop (who
and why). When a decision is missing (a position adopted at reconciliation) the stored reason text is used, so
every trade has both sentences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_NUM = "{:,.2f}"


@dataclass(frozen=True)
class TradeContext:
    """What the words are made from; every field may be missing except the trade itself."""

    trade: dict[str, Any]  # a trades row (entry/exit price and time, qty, exit_kind, entry/exit_reason)
    strategy: str
    params: dict[str, Any]  # the strategy's parameters, defaults included
    entry: dict[str, Any] | None = None  # entry decision details (indicators, stop, target, sizing, state)
    exit: dict[str, Any] | None = None  # exit decision details (signal exits)
    exit_stop: float | None = None  # stop price of the stop order that closed the trade
    tightened: dict[str, Any] | None = None  # UNREALIZED_LOSS_TIGHTEN event during the trade (ts, details)
    stop_tighten: float = 0.8  # settings.risk.stop_tighten
    emergency: dict[str, Any] | None = None  # EMERGENCY_STOP event details (who, reason)


def details(raw: Any) -> dict[str, Any] | None:
    """A decision's details column (JSON text or dict) as a dict, or None."""
    if raw is None:
        return None
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _n(x: Any) -> str:
    return _NUM.format(float(x))


def _hhmm(ts: Any) -> str:
    return ts.strftime("%H:%M") if isinstance(ts, datetime) else str(ts)


def _ind(d: dict[str, Any] | None) -> dict[str, Any]:
    value = (d or {}).get("indicators") or {}
    return value if isinstance(value, dict) else {}


# --- entries -----------------------------------------------------------------------------------------------
def _entry_signal(ctx: TradeContext) -> str | None:
    ind, p = _ind(ctx.entry), ctx.params
    try:
        if ctx.strategy == "sma_cross" and {"sma_fast", "sma_slow", "close"} <= ind.keys():
            return (f"SMA{p.get('fast', '')} {_n(ind['sma_fast'])} above SMA{p.get('slow', '')} "
                    f"{_n(ind['sma_slow'])} at close {_n(ind['close'])}")
        if ctx.strategy == "mean_reversion" and {"zscore", "sma", "close"} <= ind.keys():
            z = float(ind["zscore"])
            rsi = f", RSI {float(ind['rsi']):.1f} < {p.get('rsi_max', '')}" if "rsi" in ind else ""
            return (f"close {_n(ind['close'])} fell {-z:.1f}σ below its {p.get('window', '')}-bar mean "
                    f"{_n(ind['sma'])} (z = {z:.2f}){rsi}")
        if ctx.strategy == "trend" and {"ema_fast", "ema_slow", "ema_trend", "close"} <= ind.keys():
            return (f"EMA{p.get('fast', '')} {_n(ind['ema_fast'])} crossed above EMA{p.get('slow', '')} "
                    f"{_n(ind['ema_slow'])} with close {_n(ind['close'])} above the EMA{p.get('trend', '')} trend "
                    f"filter {_n(ind['ema_trend'])}")
    except (TypeError, ValueError):
        return None
    return None


def _entry_plan(ctx: TradeContext) -> str:
    d = ctx.entry or {}
    parts = []
    stop, close = d.get("stop"), _ind(d).get("close") or (d.get("market") or {}).get("price")
    if isinstance(stop, int | float):
        below = f" ({(1 - stop / close):.1%} below {_n(close)})" if isinstance(close, int | float) and close else ""
        parts.append(f"stop {_n(stop)}{below}")
    if isinstance(d.get("target"), int | float):
        parts.append(f"target {_n(d['target'])}")
    sizing = d.get("sizing") or {}
    if isinstance(sizing.get("risk_per_trade"), int | float):
        bound = f", {sizing['binding']}-bound" if sizing.get("binding") else ""
        parts.append(f"sized at {sizing['risk_per_trade']:.2%} risk{bound}")
    return "; ".join(parts)


def entry_text(ctx: TradeContext) -> str:
    """'Entry: <signal with indicator values>; stop ...; target ...; sized ...; filled at ...'."""
    t = ctx.trade
    signal = _entry_signal(ctx) or str(t.get("entry_reason") or "").strip()
    if not signal:
        signal = "reason not recorded (a position adopted from the exchange at reconciliation)"
    plan = _entry_plan(ctx)
    filled = f"filled {float(t['qty']):g} at {_n(t['entry_price'])}" if t.get("entry_price") else ""
    return "Entry: " + "; ".join(x for x in (signal, plan, filled) if x)


# --- exits -------------------------------------------------------------------------------------------------
def _exit_signal(ctx: TradeContext) -> str | None:
    ind, p = _ind(ctx.exit), ctx.params
    reason = str(ctx.trade.get("exit_reason") or "")
    try:
        if ctx.strategy == "sma_cross" and {"sma_fast", "sma_slow", "close"} <= ind.keys():
            return (f"SMA{p.get('fast', '')} {_n(ind['sma_fast'])} fell below SMA{p.get('slow', '')} "
                    f"{_n(ind['sma_slow'])} at close {_n(ind['close'])}")
        if ctx.strategy == "mean_reversion" and {"zscore", "close"} <= ind.keys():
            z = float(ind["zscore"])
            if "time exit" in reason:
                return f"time exit: no reversion within {p.get('max_bars', '')} bars (close {_n(ind['close'])}, " \
                       f"z = {z:.2f})"
            return (f"target reached: close {_n(ind['close'])} back to its {p.get('window', '')}-bar mean "
                    f"{_n(ind.get('sma', ind['close']))} (z = {z:.2f} ≥ {p.get('exit_z', 0)})")
        if ctx.strategy == "trend" and "close" in ind:
            if "target" in ind:
                return f"take-profit target {_n(ind['target'])} reached at close {_n(ind['close'])}"
            if {"ema_fast", "ema_slow"} <= ind.keys():
                return (f"EMA{p.get('fast', '')} {_n(ind['ema_fast'])} crossed below EMA{p.get('slow', '')} "
                        f"{_n(ind['ema_slow'])} at close {_n(ind['close'])}")
    except (TypeError, ValueError):
        return None
    return None


def _stop_words(ctx: TradeContext) -> str:
    t = ctx.trade
    stop = ctx.exit_stop
    first = (ctx.entry or {}).get("stop")
    text = f"protective stop hit, sold at {_n(t['exit_price'])}"
    if stop is not None:
        entry = float(t["entry_price"])
        text += f" (stop {_n(stop)}, {(1 - stop / entry):.1%} below the entry {_n(entry)})" if entry else ""
    ev = ctx.tightened
    if ev is not None:
        closer = 1 - ctx.stop_tighten
        moved = f" from {_n(first)}" if isinstance(first, int | float) else ""
        moved += f" to {_n(stop)}" if stop is not None else ""
        facts = details(ev.get("details")) or {}
        why = ""
        if isinstance(facts.get("unrealized"), int | float) and isinstance(facts.get("limit"), int | float):
            why = (f" (unrealized {facts['unrealized']:+,.2f}, {facts.get('unrealized_pct') or 0:+.2%} of equity, "
                   f"beyond -{facts['limit']:.2%})")
        text += (f"; the stop had been tightened {closer:.0%} closer{moved} at {_hhmm(ev.get('ts'))} after the "
                 f"unrealized loss passed the limit{why}")
    return text


def exit_text(ctx: TradeContext) -> str:
    """'Exit: <why, with the numbers>' for signal, stop, target, emergency and end-of-session exits."""
    t = ctx.trade
    kind = str(t.get("exit_kind") or "signal")
    raw = str(t.get("exit_reason") or "").strip()
    if kind == "emergency":
        e = ctx.emergency or {}
        who, why = e.get("who") or "an operator", e.get("reason") or raw or "no reason recorded"
        return f"Exit: emergency stop by {who}: '{why}'; sold at market {_n(t['exit_price'])}"
    if kind == "stop":
        return "Exit: " + _stop_words(ctx)
    if kind == "target":
        return f"Exit: take-profit target reached, sold at {_n(t['exit_price'])}" + (f" ({raw})" if raw else "")
    if kind == "end":
        return f"Exit: closed at the end of the session at {_n(t['exit_price'])}" + (f" ({raw})" if raw else "")
    words = _exit_signal(ctx) or raw or "exit signal (no reason recorded)"
    state = (ctx.exit or {}).get("state")
    mode = f" (taken in {state}: new entries blocked, exits allowed)" if state in ("SAFE_MODE", "HALTED") else ""
    return f"Exit: {words}; sold at {_n(t['exit_price'])}{mode}"


__all__ = ["TradeContext", "details", "entry_text", "exit_text"]
