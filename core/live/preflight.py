"""Preflight: every check a live session must pass before it may trade, all reported together (R1.5, R2.2, R2.5).

A recent passed gate for this exact config hash; no HALT flag; approved added symbols; credentials present and
accepted by a signed read; the exchange answering with a clock close to ours; markets and filters loaded.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from core.config import Settings
from core.domain import Instrument
from core.errors import AuthenticationError, ExchangeError, RampartError
from core.execution.ccxt_broker import CcxtBroker
from core.gate import check_go_live
from core.scaling.symbols import unapproved_symbols
from core.security.credentials import Credentials
from core.state.halt import read_halt
from core.store import Store


class PreflightFailed(RampartError):
    """Live trading refused to start; the message lists every failed check and what to do."""


def preflight(settings: Settings, broker: CcxtBroker, store: Store, config_hash: str,
              credentials: Credentials | None, credentials_problem: str | None,
              max_clock_skew_ms: int) -> dict[str, Instrument]:
    """The exchange's instrument rules for the traded symbols; PreflightFailed naming each failed check."""
    failures: list[str] = []
    halt = read_halt(settings.data_dir)
    if halt is not None:
        failures.append(f"HALTED: emergency stop by {halt.get('who')} ({halt.get('reason')}); an operator must "
                        "resume before live trading starts again")
    ok, why = check_go_live(store.latest_gate(config_hash), config_hash, datetime.now(UTC), settings.gate)
    if not ok:
        failures.append(why)
    unapproved = unapproved_symbols(store, settings)
    if unapproved:  # R2.5 / R5.3: the symbol list grows only by an approved scaling decision
        failures.append(f"SYMBOL_NOT_APPROVED: {', '.join(unapproved)} has no approved new-symbol decision; "
                        "run the scaling review (flows/scaling_review.py) and approve it first")
    if credentials is None:
        failures.append(f"NO_CREDENTIALS: {credentials_problem or 'set RAMPART_API_KEY and RAMPART_API_SECRET'}")
    instruments: dict[str, Instrument] = {}
    client = broker.client
    try:
        server = broker.read("fetch_time", client.fetch_time)
        skew = int(server) - int(time.time() * 1000)
        if abs(skew) > max_clock_skew_ms:
            failures.append(f"CLOCK_SKEW: local clock is {skew} ms off the exchange's; sync it (chrony/ntp)")
        instruments = broker.instruments(list(settings.market.symbols))
        if credentials is not None:
            broker.read("fetch_balance", client.fetch_balance)  # a signed read proves the keys
    except AuthenticationError as exc:
        failures.append(f"CREDENTIALS_REFUSED: the exchange refused the API key or secret ({exc}); "
                        "check RAMPART_API_KEY / RAMPART_API_SECRET")
    except ExchangeError as exc:
        failures.append(f"EXCHANGE_UNREACHABLE: {exc}")
    if failures:
        raise PreflightFailed("live trading refused: " + "; ".join(failures))
    return instruments


__all__ = ["PreflightFailed", "preflight"]
