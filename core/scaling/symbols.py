"""New symbols (R5.3, R2.5): at most one approved per 7 days, none traded without approval, half risk at first.

Where the approved list lives: every approval is a ``scaling_decisions`` row (kind ``new_symbol``, outcome
``approved``, with who, when, why) — the authority, checked when live starts. The live state file keeps, per
approved symbol, when a session first traded it (``LiveState.new_symbols[sym]["first_ms"]``): its half-risk
days count from there, across restarts. To trade an approved symbol the operator adds it to
``RAMPART_MARKET__ADDED_SYMBOLS`` and ``RAMPART_MARKET__SYMBOLS`` (a new paper gate is needed: the config hash
covers the symbols, R1.5) and restarts the live session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.config import Settings
from core.state.live import LiveState
from core.store import Store
from core.store import scaling as scaling_repo

DAY_MS = 86_400_000


def approved_symbols(store: Store) -> dict[str, datetime]:
    """Symbol -> when its (latest) new-symbol approval was recorded."""
    return scaling_repo.approved_symbols(store)


def symbol_refusal(store: Store, settings: Settings, symbol: str, now: datetime) -> tuple[str, str] | None:
    """(code, why) ``symbol`` may not be approved as a new symbol now, or None. At most one per
    ``new_symbol_days``."""
    if symbol in settings.market.allowed_symbols:
        return "SYMBOL_ALREADY_ALLOWED", f"{symbol} is on the allow-list already"
    approved = approved_symbols(store)
    if symbol in approved:
        return "SYMBOL_ALREADY_APPROVED", f"{symbol} was approved on {approved[symbol]:%Y-%m-%d %H:%M} UTC"
    days = settings.scaling.new_symbol_days
    recent = {s: ts for s, ts in approved.items() if now - ts < timedelta(days=days)}
    if recent:
        sym, ts = max(recent.items(), key=lambda item: item[1])
        return "NEW_SYMBOL_TOO_SOON", (f"{sym} was approved on {ts:%Y-%m-%d %H:%M} UTC; the next new symbol can "
                                       f"be approved from {ts + timedelta(days=days):%Y-%m-%d %H:%M} UTC (R5.3: at "
                                       f"most one per {days} days)")
    return None


def next_candidate(store: Store, settings: Settings) -> str | None:
    """The first configured candidate symbol that is neither allowed nor approved yet."""
    approved = approved_symbols(store)
    for sym in settings.scaling.candidate_symbols:
        if sym not in settings.market.allowed_symbols and sym not in approved:
            return sym
    return None


def unapproved_symbols(store: Store, settings: Settings) -> list[str]:
    """Symbols the settings would trade beyond the allow-list without an approved decision (R2.5)."""
    extra = [s for s in settings.market.symbols if s not in settings.market.allowed_symbols]
    if not extra:
        return []
    approved = approved_symbols(store)
    return [s for s in extra if s not in approved]


def remember_approval(state: LiveState, symbol: str, decision: dict[str, Any]) -> None:
    """Note an approved symbol in the live state (its first trading day is set when a session trades it)."""
    entry = state.new_symbols.setdefault(symbol, {"first_ms": None})
    entry.update({k: decision.get(k) for k in ("review_id", "who", "reviewer", "requested_at")})


def half_risk_until(state: LiveState, symbols: list[str], added: tuple[str, ...], now_ms: int,
                    days: int) -> dict[str, int]:
    """Symbol -> epoch ms until which it trades at half risk (R5.3), for the new symbols this session trades.

    New = approved in the state or added in the settings (a lost state file must not mean full risk). The first
    session that trades one starts its clock (``first_ms``), saved with the state."""
    until: dict[str, int] = {}
    for sym in symbols:
        if sym not in added and sym not in state.new_symbols:
            continue
        entry = state.new_symbols.setdefault(sym, {"first_ms": None})
        if entry.get("first_ms") is None:
            entry["first_ms"] = now_ms
        until[sym] = int(entry["first_ms"]) + days * DAY_MS
    return until
