"""Assemble a trading session from settings: strategy per symbol, risk engine, broker, portfolio, engine.

Backtest and paper differ only in what is recorded and gated; live (later) swaps the broker. Paper mode
builds a PaperBroker and nothing else: no exchange client, no credentials (R1.1).
"""

from __future__ import annotations

import uuid

from core.config import INSTRUMENTS, Settings
from core.domain import Instrument, Mode
from core.engine import Engine, SessionResult
from core.execution.paper import FillModelConfig, PaperBroker
from core.market.candles import CandleSet
from core.portfolio import Portfolio
from core.risk.breakers import CircuitBreakers
from core.risk.engine import RiskConfig, RiskEngine
from core.strategy import build_params, make_strategy, params_hash


def config_hash(settings: Settings) -> str:
    """The strategy's config hash: strategy, every parameter (defaults included), timeframe and symbols.

    Changing any of them invalidates the paper gate for live trading (R1.5)."""
    params = build_params(settings.strategy.name, settings.strategy.params)
    extra = {"timeframe": settings.market.timeframe, "symbols": sorted(settings.market.symbols)}
    return params_hash(settings.strategy.name, params, extra)


def new_session_id() -> str:
    return uuid.uuid4().hex


def build_paper_engine(settings: Settings, mode: Mode, *, session_id: str | None = None,
                       instruments: dict[str, Instrument] | None = None,
                       record_decisions: bool = True) -> Engine:
    """An engine on the PaperBroker with the paper fill model and full-scale sizing from ``settings``."""
    instruments = instruments or {s: INSTRUMENTS[s] for s in settings.market.symbols}
    params = build_params(settings.strategy.name, settings.strategy.params)
    strategies = {s: make_strategy(settings.strategy.name, params) for s in settings.market.symbols}
    paper = settings.paper
    portfolio = Portfolio(paper.starting_cash)
    broker = PaperBroker(FillModelConfig(paper.taker_fee, paper.maker_fee, paper.slippage_bps), portfolio)
    risk = RiskEngine(RiskConfig(
        allowed_symbols=settings.market.allowed_symbols, instruments=instruments,
        risk_per_trade=settings.sizing.risk_per_trade, exposure_cap=settings.sizing.exposure_cap,
        sizing_mode=settings.sizing.mode, fee_rate=paper.taker_fee,
        limits=settings.risk if paper.risk_controls else None,
    ))
    if paper.risk_controls:
        risk.breakers = CircuitBreakers(settings.breakers)
    return Engine(session_id=session_id or new_session_id(), mode=mode, strategies=strategies,
                  instruments=instruments, risk=risk, broker=broker, portfolio=portfolio,
                  config_hash=config_hash(settings), timeframe=settings.market.timeframe,
                  strategy_name=settings.strategy.name, record_decisions=record_decisions)


def run_paper_session(candle_sets: list[CandleSet], settings: Settings, mode: Mode = Mode.PAPER,
                      session_id: str | None = None) -> SessionResult:
    """Run the strategy over the candles on the paper broker; errors are recorded in the result (R1.5)."""
    engine = build_paper_engine(settings, mode, session_id=session_id)
    return engine.run(candle_sets)
