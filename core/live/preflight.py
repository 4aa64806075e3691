"""Preflight: every check a live session must pass before it may trade, all reported together (R1.5, R2.2, R2.5,
R9.8).

The gate for this exact config hash (``core.gate.go_live``: on a real-money venue, proven on real market data and
passing at the thresholds in force, R1.7; with ``gate.require_forward``, a passed forward record too); no HALT flag;
approved added symbols; credentials present and accepted by a signed read; the exchange answering with a clock
within ``live.max_clock_skew_ms`` of ours (either way: Binance rejects a request 1,000 ms ahead of its time, and our
candle and day boundaries are wall-clock ones);
markets and filters loaded; the key allowed to trade and not to withdraw; the account's fees no higher than the
gate assumed (``core.live.account_check``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from core.config import Settings
from core.domain import Instrument
from core.errors import AuthenticationError, ExchangeError, RampartError
from core.events import AccountChecked
from core.execution.ccxt_broker import CallRecord, CcxtBroker
from core.gate import go_live
from core.live.account_check import check_account
from core.scaling.symbols import unapproved_symbols
from core.security.credentials import Credentials
from core.state.halt import read_halt
from core.store import Store
from core.store.gates import gate_attempts
from core.venue import Venue


class PreflightFailed(RampartError):
    """Live trading refused to start; the message lists every failed check and what to do."""


@dataclass(frozen=True)
class Cleared:
    """What a passed preflight found: the instruments' rules, the account's facts and the clock's offset."""

    instruments: dict[str, Instrument]
    account: AccountChecked | None
    skew_ms: int


def preflight(settings: Settings, venue: Venue, broker: CcxtBroker, store: Store, config_hash: str,
              credentials: Credentials | None, credentials_problem: str | None) -> Cleared:
    """Every check before trading; PreflightFailed naming each failed check and what to do about it."""
    failures: list[str] = []
    halt = read_halt(settings.data_dir)
    if halt is not None:
        failures.append(f"HALTED: emergency stop by {halt.get('who')} ({halt.get('reason')}); an operator must "
                        "resume before live trading starts again")
    gate = go_live(gate_attempts(store, config_hash), config_hash, datetime.now(UTC), settings.gate,
                   real_money=venue.real_money)
    if not gate.ok:
        failures.extend(gate.reasons)
    unapproved = unapproved_symbols(store, settings)
    if unapproved:  # R2.5 / R5.3: the symbol list grows only by an approved scaling decision
        failures.append(f"SYMBOL_NOT_APPROVED: {', '.join(unapproved)} has no approved new-symbol decision; "
                        "run the scaling review (flows/scaling_review.py) and approve it first")
    if credentials is None:
        failures.append(f"NO_CREDENTIALS: {credentials_problem or 'set RAMPART_API_KEY and RAMPART_API_SECRET'}")
    instruments: dict[str, Instrument] = {}
    account: AccountChecked | None = None
    skew = 0
    try:
        skew = clock_skew_ms(broker)
        limit = settings.live.max_clock_skew_ms
        if abs(skew) >= limit:
            failures.append(skew_problem(skew, limit))
        instruments = broker.instruments(list(settings.market.symbols))
        if credentials is not None:
            found = check_account(settings, venue, broker, instruments)
            failures.extend(found.failures)
            if found.taker > 0:  # the broker's fee estimates and OTO stop quantities use the account's own rate
                broker.taker_rate = found.taker
            account = found.event(venue, skew)
    except AuthenticationError as exc:
        failures.append(f"CREDENTIALS_REFUSED: the exchange refused the API key or secret ({exc}); "
                        "check RAMPART_API_KEY / RAMPART_API_SECRET, the key's IP whitelist and that it belongs to "
                        f"{venue.name}")
    except ExchangeError as exc:
        failures.append(f"EXCHANGE_UNREACHABLE: {exc}")
    if failures:
        raise PreflightFailed("live trading refused: " + "; ".join(failures))
    return Cleared(instruments, account, skew)


def clock_skew_ms(broker: CcxtBroker) -> int:
    """The exchange's clock minus ours, in ms, measured against the middle of the request that answered — not of
    the whole read, which may have waited out a back-off or retried first."""
    answered: list[CallRecord] = []

    def note(record: CallRecord) -> None:
        if record.what == "fetch_time" and record.error is None:
            answered.append(record)

    broker.listeners.append(note)
    try:
        server = broker.read("fetch_time", broker.client.fetch_time)
    finally:
        broker.listeners.remove(note)
    middle = answered[-1].started + answered[-1].latency_s / 2 if answered else time.time()
    return int(server) - int(middle * 1000)


def skew_problem(skew: int, limit: int) -> str:
    """The CLOCK_SKEW failure, saying which way the clock is off and what that does."""
    if skew < 0:
        where = (f"the local clock is {-skew} ms ahead of the exchange's: Binance rejects requests 1,000 ms or more "
                 "ahead of its time (-1021)")
    else:
        where = (f"the local clock is {skew} ms behind the exchange's: candles and the trading day would start "
                 "late, and requests older than recvWindow are rejected")
    return f"CLOCK_SKEW: {where} (limit {limit} ms); sync the clock (chrony or ntp, e.g. `chronyc makestep`)"


__all__ = ["Cleared", "PreflightFailed", "clock_skew_ms", "preflight", "skew_problem"]
