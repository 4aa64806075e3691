"""RiskEngine: the pre-trade checks every order passes, the same in backtest, paper and live.

Checks are a chain of early returns; a refusal is a returned ``OrderDenied`` with a coded reason and its
numbers — never an exception. Exits are always allowed (they only reduce risk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.domain import Instrument, OrderDenied, Reason, Signal, TradingState
from core.risk.sizing import Sized, SizeRefused, SizingInputs, size_all_in, size_by_risk

ENTRY_STATES = frozenset({TradingState.ACTIVE})


@dataclass(frozen=True)
class RiskConfig:
    allowed_symbols: tuple[str, ...]
    instruments: dict[str, Instrument]
    risk_per_trade: float = 0.01
    exposure_cap: float = 1.0
    sizing_mode: str = "risk"
    fee_rate: float = 0.001


@dataclass(frozen=True, slots=True)
class EntryApproved:
    """An entry passed every check; ``checks`` lists them in order for the decision log."""

    qty: float
    quote_qty: float | None
    inputs: dict[str, Any]
    checks: tuple[str, ...] = field(default=())


class RiskEngine:
    """Owns the trading state and the pre-trade chain. Monitors (daily loss, drawdown…) will set ``state``."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.state = TradingState.ACTIVE

    def size_multiplier(self, symbol: str) -> float:
        """Volatility and new-symbol scaling multiply the size here (R4.1, R5.3); 1.0 when calm."""
        return 1.0

    def check_entry(self, signal: Signal, price: float, equity: float, cash: float, open_notional: float,
                    ts: int) -> OrderDenied | EntryApproved:
        cfg = self.config
        sym = signal.symbol
        if sym not in cfg.allowed_symbols:
            return OrderDenied(sym, Reason.NOT_ALLOWED_SYMBOL, f"{sym} not in {','.join(cfg.allowed_symbols)}", ts)
        if self.state not in ENTRY_STATES:
            return OrderDenied(sym, Reason.TRADING_STATE, f"state {self.state} allows no new entries", ts)
        stop = signal.stop
        if stop is None or not 0 < stop < price:
            return OrderDenied(sym, Reason.INVALID_STOP, f"stop {stop} must be between 0 and the price {price:.2f}",
                               ts)
        inst = cfg.instruments[sym]
        if cfg.sizing_mode == "all_in":
            sized = size_all_in(cash, price, cfg.fee_rate, inst)
            inputs: dict[str, Any] = {"mode": "all_in", "cash": cash, "price": price}
        else:
            mult = self.size_multiplier(sym)
            x = SizingInputs(equity, cash, price, stop, cfg.risk_per_trade, mult, cfg.exposure_cap, open_notional,
                             cfg.fee_rate)
            sized = size_by_risk(x, inst)
            inputs = {"mode": "risk", "equity": equity, "cash": cash, "price": price, "stop": stop,
                      "risk_per_trade": cfg.risk_per_trade, "size_multiplier": mult,
                      "exposure_cap": cfg.exposure_cap, "open_notional": open_notional}
        if isinstance(sized, SizeRefused):
            return OrderDenied(sym, sized.code, sized.detail, ts)
        return self._approved(sized, inputs)

    @staticmethod
    def _approved(sized: Sized, inputs: dict[str, Any]) -> EntryApproved:
        inputs["qty"] = sized.qty
        inputs["binding"] = sized.binding
        return EntryApproved(sized.qty, sized.quote_qty, inputs,
                             ("allow_list", "trading_state", "stop", "exposure_cap", "cash", "lot_step",
                              "min_notional"))
