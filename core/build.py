"""The one engine builder for backtest, paper and live: strategy per symbol, risk engine, broker, portfolio.

The modes differ only in parameters: which broker fills (the paper fill model, or the exchange), how big an entry
is (the strategy's full scale in paper validation; rung 1 live, clamped to the hard caps), whether the automatic
controls act (always live; in paper when ``paper.risk_controls``) and what state they start from (a live restart
carries SAFE_MODE/HALTED, de-risking and breakers over). Paper and backtest never build an exchange client and
never read credentials (R1.1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from core.config import INSTRUMENTS, Settings
from core.domain import Instrument, Mode
from core.engine import Engine, SessionResult
from core.execution.broker import Broker
from core.execution.paper import FillModelConfig, PaperBroker
from core.market.candles import CandleSet
from core.portfolio import Portfolio
from core.risk.breakers import CircuitBreakers
from core.risk.engine import RiskConfig, RiskEngine
from core.strategy import build_params, make_strategy, params_hash
from core.strategy.base import Strategy


def config_hash(settings: Settings) -> str:
    """The strategy's config hash: strategy, every parameter (defaults included), timeframe and symbols.

    Changing any of them invalidates the paper gate for live trading (R1.5)."""
    params = build_params(settings.strategy.name, settings.strategy.params)
    extra = {"timeframe": settings.market.timeframe, "symbols": sorted(settings.market.symbols)}
    return params_hash(settings.strategy.name, params, extra)


def new_session_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Sizing:
    """How big an entry is: risk per trade, exposure cap, the sizing rule, and whether the R5.5 caps clamp."""

    risk_per_trade: float
    exposure_cap: float
    mode: str = "risk"
    hard_caps: bool = False

    @classmethod
    def full_scale(cls, settings: Settings) -> Sizing:
        """Paper validation and backtests: the strategy's own scale from ``settings.sizing``."""
        s = settings.sizing
        return cls(s.risk_per_trade, s.exposure_cap, s.mode)


def build_engine(settings: Settings, mode: Mode, broker: Broker, portfolio: Portfolio, *,
                 instruments: dict[str, Instrument], sizing: Sizing, controls: bool,
                 saved_risk: dict[str, Any] | None = None, session_id: str | None = None,
                 strategies: dict[str, Strategy] | None = None, record_decisions: bool = True,
                 breakers: bool | None = None) -> Engine:
    """An engine for ``mode`` on ``broker``. ``controls``: the automatic risk controls act, and the circuit
    breakers unless ``breakers`` says otherwise; ``saved_risk``: a live restart's trading state, de-risking and
    breakers; ``strategies`` replaces the configured strategy (tests that script signals)."""
    market = settings.market
    risk = RiskEngine(RiskConfig(
        allowed_symbols=(*market.allowed_symbols, *market.added_symbols), instruments=instruments,
        risk_per_trade=sizing.risk_per_trade, exposure_cap=sizing.exposure_cap, sizing_mode=sizing.mode,
        fee_rate=settings.paper.taker_fee, limits=settings.risk if controls else None, hard_caps=sizing.hard_caps,
    ))
    if saved_risk is not None:
        risk.restore(saved_risk)  # SAFE_MODE/HALTED/de-risk survive a restart (R2.4, R4.5, R6.4)
    if controls if breakers is None else breakers:
        saved = (saved_risk or {}).get("breakers")
        risk.breakers = (CircuitBreakers.from_state(settings.breakers, saved) if saved
                         else CircuitBreakers(settings.breakers))
    if strategies is None:
        params = build_params(settings.strategy.name, settings.strategy.params)
        strategies = {s: make_strategy(settings.strategy.name, params) for s in market.symbols}
    return Engine(session_id=session_id or new_session_id(), mode=mode, strategies=strategies,
                  instruments=instruments, risk=risk, broker=broker, portfolio=portfolio,
                  config_hash=config_hash(settings), timeframe=market.timeframe,
                  strategy_name=settings.strategy.name, record_decisions=record_decisions)


def build_paper_engine(settings: Settings, mode: Mode, *, session_id: str | None = None,
                       instruments: dict[str, Instrument] | None = None, record_decisions: bool = True,
                       strategies: dict[str, Strategy] | None = None) -> Engine:
    """Backtest/paper: the PaperBroker with the paper fill model, at the strategy's full scale."""
    paper = settings.paper
    portfolio = Portfolio(paper.starting_cash)
    broker = PaperBroker(FillModelConfig(paper.taker_fee, paper.maker_fee, paper.slippage_bps), portfolio)
    symbols = strategies or settings.market.symbols
    return build_engine(settings, mode, broker, portfolio,
                        instruments=instruments or {s: INSTRUMENTS[s] for s in symbols},
                        sizing=Sizing.full_scale(settings), controls=paper.risk_controls, session_id=session_id,
                        strategies=strategies, record_decisions=record_decisions)


def run_paper_session(candle_sets: list[CandleSet], settings: Settings, mode: Mode = Mode.PAPER,
                      session_id: str | None = None) -> SessionResult:
    """Run the strategy over the candles on the paper broker; errors are recorded in the result (R1.5)."""
    engine = build_paper_engine(settings, mode, session_id=session_id)
    return engine.run(candle_sets)
