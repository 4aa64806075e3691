"""Backtest: the paper engine over historical candles without the gate; the session is stored as mode=backtest and
reported like a paper run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.build import config_hash, new_session_id
from core.config import Settings
from core.domain import Mode
from core.engine import SessionResult
from core.errors import DataQualityError
from core.metrics import Metrics
from core.reporting.analysis import source_text
from core.store import Store
from core.validation import check_market, evaluate, load_market, persist, run_session, session_row, write_report


@dataclass
class BacktestOutcome:
    session_id: str
    metrics: Metrics
    result: SessionResult
    errors: list[str]
    report_paths: dict[str, Path] = field(default_factory=dict)


def run_backtest(settings: Settings, source: str | Sequence[str | Path], *, days: float | None = None,
                 seed: int = 7, store: Store | None = None) -> BacktestOutcome:
    """Run and store a backtest, then write its report under data/reports/backtest/<session id>/ (JSON, CSV, HTML,
    PDF: the data window, per-symbol results, buy-and-hold over the same candles, equity and drawdown charts). Bad
    candles raise DataQualityError before anything is written."""
    sets = load_market(source, settings, days=days, seed=seed)
    problems = check_market(sets)
    if problems:
        raise DataQualityError(problems)
    store = store or Store(settings.db_path)
    chash = config_hash(settings)
    session_id = new_session_id()
    store.begin_session(session_row(session_id, Mode.BACKTEST, settings, chash, datetime.now(UTC)))
    result = run_session(sets, settings, Mode.BACKTEST, session_id)
    metrics, verdict = evaluate(result, settings, [], chash)
    persist(store, session_id, result, verdict, metrics, settings, [], record_gate=False)
    paths = write_report(settings, session_id, chash, result, metrics, None, [], sets=sets, mode=Mode.BACKTEST,
                         source=source_text(source, days, seed))
    return BacktestOutcome(session_id, metrics, result, result.errors, paths)
