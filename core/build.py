"""The one engine builder for backtest, paper and live: strategy per symbol, risk engine, broker, portfolio.

The modes differ only in parameters: which broker fills (the paper fill model, or the exchange), how big an entry
is (the strategy's full scale in paper validation; rung 1 live, clamped to the hard caps), whether the automatic
controls act (always live; in paper when ``paper.risk_controls``) and what state they start from (a live restart
carries SAFE_MODE/HALTED, de-risking and breakers over). Paper and backtest never build an exchange client and
never read credentials (R1.1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.config import INSTRUMENTS, Settings
from core.config.ladder import rung
from core.domain import Instrument, Mode
from core.engine import Engine, SessionResult
from core.execution.broker import Broker
from core.execution.paper import FillModelConfig, PaperBroker
from core.market.candles import CandleSet
from core.portfolio import Portfolio
from core.risk.breakers import CircuitBreakers
from core.risk.engine import RiskConfig, RiskEngine
from core.strategy import build_params, make_strategy, params_hash, strategy_source_hash
from core.strategy.base import Strategy


def config_hash(settings: Settings) -> str:
    """The strategy's config hash: strategy, its source code (and the modules it imports from its folder), every
    parameter (defaults included), timeframe and symbols.

    Changing any of them invalidates the paper gate for live trading (R1.5, R10.2)."""
    strategy = settings.strategy
    params = build_params(strategy.name, strategy.params, strategy.folder)
    extra = {"timeframe": settings.market.timeframe, "symbols": sorted(settings.market.symbols),
             "source": strategy_source_hash(strategy.name, strategy.folder)}
    return params_hash(strategy.name, params, extra)


MAX_HISTORY_BARS = 999  # Binance serves at most 1,000 klines a request: the window plus the forming candle


def history_bars(settings: Settings) -> int:
    """Closed candles a live session loads before it trades: twice the strategy's warm-up, and the risk controls'
    windows (returns need one more close); at most what one klines request returns."""
    cfg = settings.strategy
    warmup = make_strategy(cfg.name, build_params(cfg.name, cfg.params, cfg.folder), cfg.folder).warmup
    lim = settings.risk
    return min(max(2 * warmup, 60, lim.vol_long_window + 1, lim.corr_window + 1), MAX_HISTORY_BARS)


def new_session_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Sizing:
    """How big an entry is: risk per trade, exposure cap, the sizing rule, and whether the R5.5 caps clamp."""

    risk_per_trade: float
    exposure_cap: float
    mode: str = "risk"
    hard_caps: bool = False

    scale: float = 1.0  # the metrics are shown at this multiple of the traded size (``as_live``)

    @classmethod
    def full_scale(cls, settings: Settings) -> Sizing:
        """The strategy's own scale from ``settings.sizing``, exactly (the daily report's backtest of a live day)."""
        s = settings.sizing
        return cls(s.risk_per_trade, s.exposure_cap, s.mode)

    @classmethod
    def as_live(cls, settings: Settings) -> Sizing:
        """Paper validation and backtests judge the trades live would make (R1.1): every entry sized exactly as live
        sizes it on its first rung — the same risk per trade, exposure cap, lot steps and minimum notional, so the
        same entries fit and the same ones are refused — and the controls' thresholds as live has them. ``scale``
        = the strategy's own risk per trade / the first rung's: the gate's metrics are shown at that scale
        (``scale_result``), so a drawdown or an expectancy means what it would at full size."""
        s = settings.sizing
        if s.mode != "risk":
            return cls.full_scale(settings)
        first = rung(0, settings.scaling.rungs)
        return cls(first.risk_per_trade, first.exposure_cap, "risk", hard_caps=True,
                   scale=s.risk_per_trade / first.risk_per_trade)


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
        cfg = settings.strategy
        params = build_params(cfg.name, cfg.params, cfg.folder)
        strategies = {s: make_strategy(cfg.name, params, cfg.folder) for s in market.symbols}
    return Engine(session_id=session_id or new_session_id(), mode=mode, strategies=strategies,
                  instruments=instruments, risk=risk, broker=broker, portfolio=portfolio,
                  config_hash=config_hash(settings), timeframe=market.timeframe,
                  strategy_name=settings.strategy.name, record_decisions=record_decisions)


def build_paper_engine(settings: Settings, mode: Mode, *, session_id: str | None = None,
                       instruments: dict[str, Instrument] | None = None, record_decisions: bool = True,
                       strategies: dict[str, Strategy] | None = None, as_live: bool = True) -> Engine:
    """Backtest/paper: the PaperBroker with the paper fill model. With the risk controls on (the default) and
    ``as_live``, entries are sized as live's first rung sizes them (``Sizing.as_live``); otherwise exactly
    ``settings.sizing`` (a backtest of a live day at its own rung, or the bare strategy with the controls off)."""
    paper = settings.paper
    portfolio = Portfolio(paper.starting_cash)
    broker = PaperBroker(FillModelConfig(paper.taker_fee, paper.maker_fee, paper.slippage_bps, paper.commission),
                         portfolio)
    symbols = strategies or settings.market.symbols
    sizing = Sizing.as_live(settings) if as_live and paper.risk_controls else Sizing.full_scale(settings)
    engine = build_engine(settings, mode, broker, portfolio,
                          instruments=instruments or {s: INSTRUMENTS[s] for s in symbols},
                          sizing=sizing, controls=paper.risk_controls, session_id=session_id,
                          strategies=strategies, record_decisions=record_decisions)
    engine.result.scale = sizing.scale
    return engine


def run_paper_session(candle_sets: list[CandleSet], settings: Settings, mode: Mode = Mode.PAPER,
                      session_id: str | None = None, trade_from: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> SessionResult:
    """Run the strategy over the candles on the paper broker; errors are recorded in the result (R1.5).
    ``trade_from``: bars before it are history only (a comparison with a live session that started there);
    ``progress``: told (bars done, bars in all) as the run goes."""
    engine = build_paper_engine(settings, mode, session_id=session_id)
    engine.progress = progress
    return engine.run(candle_sets, trade_from)
