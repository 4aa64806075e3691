"""Paper validation, step by step: load candles → check them → run the paper session → metrics → gate →
store → report. The Prefect flow (flows/paper_validation.py) and the CLI compose these same steps.

A data-quality failure or any error during the session fails the gate (R1.5) with the problems listed;
the session, its rows and the gate record are written in one transaction each, so nothing is half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from core.build import Sizing, config_hash, new_session_id, run_paper_session
from core.config import Settings
from core.domain import Mode, ms_to_dt
from core.engine import SessionResult
from core.errors import ConfigError, DataError, DataProblem
from core.gate import Evidence, GateVerdict, candle_evidence, evaluate_gate
from core.market import CandleSet, align, check_candles, generate, load_candles, resample_set
from core.market.candles import timeframe_ms
from core.metrics import Metrics, compute_metrics
from core.reporting.analysis import analyse, hints, source_text
from core.reporting.paper_report import blocked_frame, write_paper_report
from core.result import session_frames, session_row  # here for the callers of this module
from core.store import Store

log = logging.getLogger("rampart.validation")


@dataclass
class ValidationOutcome:
    """What a paper validation produced: the verdict, its numbers and where everything was written."""

    session_id: str
    config_hash: str
    metrics: Metrics
    verdict: GateVerdict
    problems: list[DataProblem]
    result: SessionResult | None
    db_path: Path
    report_paths: dict[str, Path] = field(default_factory=dict)


def load_market(source: str | Sequence[str | Path], settings: Settings, *, days: float | None = None,
                seed: int = 7) -> list[CandleSet]:
    """Candles for ``settings.market.symbols`` at its timeframe: synthetic, or from files (one per symbol).

    Files at a finer timeframe are resampled; ``days`` keeps the last N days of a file. Errors say what to fix.
    """
    symbols = list(settings.market.symbols)
    tf = settings.market.timeframe
    if isinstance(source, str) and source == "synthetic":
        return generate(symbols, tf, days if days is not None else 120.0, seed)
    paths = [source] if isinstance(source, str | Path) else list(source)
    sets = {}
    for path in paths:
        cs = load_candles(path)
        if cs.symbol in sets:
            raise ConfigError(f"two files for {cs.symbol}: give one file per symbol")
        sets[cs.symbol] = _to_timeframe(cs, tf)
    missing = [s for s in symbols if s not in sets]
    if missing:
        raise ConfigError(f"no file for {', '.join(missing)} among {', '.join(str(p) for p in paths)}; "
                          f"pass one file per symbol or choose --symbols {','.join(sets)}")
    chosen = [sets[s] for s in symbols]
    if days is not None:
        chosen = [_last_days(cs, days) for cs in chosen]
    return chosen


def _to_timeframe(cs: CandleSet, tf: str) -> CandleSet:
    if cs.timeframe == tf:
        return cs
    if timeframe_ms(cs.timeframe) > timeframe_ms(tf):
        raise ConfigError(f"{cs.symbol} candles are {cs.timeframe}, coarser than the timeframe {tf}; "
                          f"use --timeframe {cs.timeframe} or finer data")
    return resample_set(cs, tf)  # checks the source candles first, naming the file's bad rows


def _last_days(cs: CandleSet, days: float) -> CandleSet:
    if cs.frame.height == 0:
        return cs
    end = cs.frame["ts"].max()
    cutoff = pl.lit(end).cast(cs.frame["ts"].dtype) - pl.duration(milliseconds=int(days * 86_400_000))
    return CandleSet(cs.symbol, cs.timeframe, cs.frame.filter(pl.col("ts") > cutoff))


def check_market(sets: list[CandleSet]) -> list[DataProblem]:
    """Run the data-quality suite on every batch; an empty list means every check passed."""
    problems: list[DataProblem] = []
    for cs in sets:
        problems.extend(check_candles(cs))
    return problems


def run_session(sets: list[CandleSet], settings: Settings, mode: Mode = Mode.PAPER,
                session_id: str | None = None, progress: Callable[[int, int], None] | None = None) -> SessionResult:
    """Align the symbols on one timeline and run the paper session."""
    aligned = align(sets) if len(sets) > 1 else sets
    return run_paper_session(aligned, settings, mode, session_id, progress=progress)


def evaluate(result: SessionResult | None, settings: Settings, problems: Sequence[DataProblem],
             chash: str) -> tuple[Metrics, GateVerdict]:
    """R1.3 metrics of the session and the R1.4/R1.5 verdict; data problems and session errors fail it."""
    errors = [f"DATA_QUALITY {p}" for p in problems]
    if result is None:
        start = settings.paper.starting_cash
        equity = pl.DataFrame({"ts": [datetime.now(UTC)], "equity": [start], "exposure": [0.0]})
        trades = pl.DataFrame({"net_pnl": [], "fees": []}, schema={"net_pnl": pl.Float64, "fees": pl.Float64})
        metrics = compute_metrics(equity, trades, starting_equity=start, period=settings.gate.period)
    else:
        errors.extend(result.errors)
        equity, trades, fees, _ = result.scaled_frames()  # live's trades at the strategy's own size
        if equity.height == 0:
            equity = pl.DataFrame({"ts": [datetime.now(UTC)], "equity": [result.starting_equity],
                                   "exposure": [0.0]})
        metrics = compute_metrics(equity, trades, starting_equity=result.starting_equity, fees=fees,
                                  period=settings.gate.period)
    return metrics, evaluate_gate(metrics, errors, settings.gate, chash)


def persist(store: Store, session_id: str, result: SessionResult | None, verdict: GateVerdict,
            metrics: Metrics, settings: Settings, problems: Sequence[DataProblem], *, record_gate: bool = True,
            evidence: Evidence | None = None) -> None:
    """Close the session (one transaction with all its rows) and record the gate result (paper only), naming the
    data it was judged on (``evidence``, R1.7)."""
    errors = [f"DATA_QUALITY {p}" for p in problems] + (result.errors if result else [])
    frames = session_frames(result) if result is not None else {}
    store.finish_session(
        session_id, status="failed" if errors else "completed", ended_at=datetime.now(UTC),
        final_equity=result.final_equity if result else settings.paper.starting_cash,
        error="; ".join(errors)[:4000] or None, frames=frames,
    )
    if record_gate:
        store.record_gate(verdict.to_record(session_id, settings.strategy.name, metrics, evidence))
        _notify_gate(store, session_id, verdict, metrics, settings)


def _notify_gate(store: Store, session_id: str, verdict: GateVerdict, metrics: Metrics, settings: Settings) -> None:
    """The verdict to operators (R3.2), after it is stored. Slack is called only when configured; a notification
    that cannot be stored is logged and does not change the verdict."""
    from core.errors import StoreError
    from core.notify import notify_now
    from core.notify.notes import gate_note

    note = gate_note(session_id, settings.strategy.name, verdict.passed, metrics.to_dict(), list(verdict.reasons),
                     verdict.config_hash)
    try:
        notify_now(settings, store, note)
    except StoreError as exc:
        log.error("gate notification for session %s not stored: %s", session_id, exc)


def run_paper_validation(settings: Settings, source: str | Sequence[str | Path], *, days: float | None = None,
                         seed: int = 7, store: Store | None = None,
                         progress: Callable[[int, int], None] | None = None) -> ValidationOutcome:
    """The whole cycle for the CLI (the flow runs the same steps as tasks). Raises only on bad input.
    ``progress``: told (bars done, bars in all) while the session runs."""
    store = store or Store(settings.db_path)
    chash = config_hash(settings)
    sets = load_market(source, settings, days=days, seed=seed)
    session_id = new_session_id()
    started = datetime.now(UTC)
    store.begin_session(session_row(session_id, Mode.PAPER, settings, chash, started))
    problems = check_market(sets)
    for p in problems:
        log.error("data-quality problem, session %s: %s", session_id, p)
    result = None if problems else run_session(sets, settings, Mode.PAPER, session_id, progress)
    for err in result.errors if result else []:
        log.error("paper session %s error: %s", session_id, err)
    metrics, verdict = evaluate(result, settings, problems, chash)
    persist(store, session_id, result, verdict, metrics, settings, problems,
            evidence=candle_evidence(sets, source, seed=seed, days=days))
    paths = write_report(settings, session_id, chash, result, metrics, verdict, problems, sets=sets,
                         source=source_text(source, days, seed))
    return ValidationOutcome(session_id, chash, metrics, verdict, problems, result, settings.db_path, paths)


def write_report(settings: Settings, session_id: str, chash: str, result: SessionResult | None, metrics: Metrics,
                 verdict: GateVerdict | None, problems: Sequence[DataProblem], *,
                 sets: Sequence[CandleSet] | None = None, mode: Mode = Mode.PAPER,
                 source: str | None = None) -> dict[str, Path]:
    """report.json, report.html, report.pdf and the trades/metrics/equity/blocked/symbols CSVs under
    data/reports/<mode>/<session id>/. ``sets`` (the run's candles) give buy-and-hold over the same candles;
    ``verdict`` is None for a backtest."""
    errors = [f"DATA_QUALITY {p}" for p in problems] + (result.errors if result else [])
    session: dict[str, Any] = {"id": session_id, "mode": mode.value, "strategy": settings.strategy.name,
               "params": settings.strategy.params, "config_hash": chash,
               "symbols": list(settings.market.symbols), "timeframe": settings.market.timeframe,
               "starting_equity": settings.paper.starting_cash,
               "open_positions": {s: {"qty": p.qty, "avg_price": p.avg_price}
                                  for s, p in (result.open_positions.items() if result else [])}}
    blocked = blocked_frame(result.decisions if result else [])
    if result is not None:
        trades, equity = result.trades_frame(), result.equity_frame()
        session["window"] = {"first_bar": ms_to_dt(result.ts[0]) if result.ts else None,
                             "last_bar": ms_to_dt(result.ts[-1]) if result.ts else None, "bars": len(result.ts)}
        analysis = analyse(result, settings, sets, blocked, source)
    else:
        trades = pl.DataFrame(schema={"trade_id": pl.String, "net_pnl": pl.Float64, "fees": pl.Float64})
        equity = pl.DataFrame(schema={"ts": pl.Datetime("ms", "UTC"), "equity": pl.Float64})
        analysis = {"hints": hints(settings, None)}
    out = settings.reports_dir / mode.value / session_id
    return write_paper_report(out, session=session, metrics=metrics, verdict=verdict, trades=trades,
                              equity=equity, errors=errors, blocked=blocked, sizing=paper_sizing(settings, result),
                              analysis=analysis, font_dir=settings.reports.font_dir, kind=mode.value)


def paper_sizing(settings: Settings, result: SessionResult | None) -> dict[str, Any]:
    """How the paper run sized its entries and at what scale its metrics are shown (the report's ``sizing``)."""
    sizing = Sizing.as_live(settings) if settings.paper.risk_controls else Sizing.full_scale(settings)
    return {"as_live": settings.paper.risk_controls, "risk_per_trade": sizing.risk_per_trade,
            "exposure_cap": sizing.exposure_cap, "mode": sizing.mode,
            "metrics_scale": result.scale if result is not None else sizing.scale,
            "note": ("trades sized as live's first rung sizes them, with the live risk controls; metrics shown at "
                     f"{sizing.scale:g}x (the strategy's risk per trade {settings.sizing.risk_per_trade:.2%})"
                     if settings.paper.risk_controls else "the bare strategy at its own size, controls off")}


__all__ = ["DataError", "ValidationOutcome", "check_market", "evaluate", "load_market", "persist",
           "run_paper_validation", "run_session", "session_frames", "session_row", "write_report"]
