"""Thin Prefect task adapters over core.validation: build inputs, call one core function, log, return.

Every task here has side effects or large in-memory inputs, so none is cached (``NO_CACHE``); none is
retried, because a paper session is deterministic and a failure is a finding, not a glitch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core import validation
from core.build import config_hash, new_session_id
from core.config import Settings, load_settings
from core.domain import Mode
from core.engine import SessionResult
from core.errors import DataProblem
from core.gate import Evidence, GateVerdict, candle_evidence
from core.market import CandleSet
from core.metrics import Metrics
from core.store import Store
from tasks.artifacts import verdict_markdown


@task(cache_policy=NO_CACHE)
def load_settings_task(overrides: dict[str, Any]) -> Settings:
    return load_settings(**overrides)


@task(cache_policy=NO_CACHE)
def load_candles_task(source: str | Sequence[str], settings: Settings, days: float | None,
                      seed: int) -> list[CandleSet]:
    sets = validation.load_market(source, settings, days=days, seed=seed)
    get_run_logger().info("loaded %s", ", ".join(f"{cs.symbol} {cs.timeframe} x{cs.frame.height}" for cs in sets))
    return sets


@task(cache_policy=NO_CACHE)
def data_evidence_task(sets: list[CandleSet], source: str | Sequence[str], seed: int, days: float | None) -> Evidence:
    """What the gate is judged on (R1.7): synthetic or a replay of files, symbols, window, content hash."""
    return candle_evidence(sets, source, seed=seed, days=days)


@task(cache_policy=NO_CACHE)
def begin_session_task(settings: Settings, mode: str = "paper") -> tuple[str, str]:
    session_id, chash = new_session_id(), config_hash(settings)
    Store(settings.db_path).begin_session(
        validation.session_row(session_id, Mode(mode), settings, chash, datetime.now(UTC)))
    return session_id, chash


@task(cache_policy=NO_CACHE)
def check_candles_task(sets: list[CandleSet]) -> list[DataProblem]:
    problems = validation.check_market(sets)
    for p in problems:
        get_run_logger().error("data-quality problem: %s", p)
    return problems


@task(cache_policy=NO_CACHE)
def run_session_task(sets: list[CandleSet], settings: Settings, session_id: str, mode: str = "paper") -> SessionResult:
    result = validation.run_session(sets, settings, Mode(mode), session_id)
    for err in result.errors:
        get_run_logger().error("session error: %s", err)
    return result


@task(cache_policy=NO_CACHE)
def evaluate_gate_task(result: SessionResult | None, settings: Settings, problems: list[DataProblem],
                       chash: str) -> tuple[Metrics, GateVerdict]:
    return validation.evaluate(result, settings, problems, chash)


@task(cache_policy=NO_CACHE)
def store_results_task(settings: Settings, session_id: str, result: SessionResult | None, verdict: GateVerdict,
                       metrics: Metrics, problems: list[DataProblem], record_gate: bool = True,
                       evidence: Evidence | None = None) -> None:
    validation.persist(Store(settings.db_path), session_id, result, verdict, metrics, settings, problems,
                       record_gate=record_gate, evidence=evidence)


@task(cache_policy=NO_CACHE)
def write_report_task(settings: Settings, session_id: str, chash: str, result: SessionResult | None,
                      metrics: Metrics, verdict: GateVerdict, problems: list[DataProblem]) -> dict[str, Path]:
    return validation.write_report(settings, session_id, chash, result, metrics, verdict, problems)


@task(cache_policy=NO_CACHE)
def publish_verdict_task(metrics: Metrics, verdict: GateVerdict, report: dict[str, Path]) -> None:
    """The verdict as Markdown tables (checks, key numbers, reasons) with links to the report's files."""
    state = "passed" if verdict.passed else "FAILED: " + "; ".join(verdict.reasons)
    create_markdown_artifact(key="paper-gate-verdict", markdown=verdict_markdown(metrics, verdict, report),
                             description=f"Paper gate {state}"[:500])


@task(cache_policy=NO_CACHE)
def notify_task(verdict: GateVerdict, session_id: str) -> None:
    # Slack delivery arrives with the notification outbox; until then the verdict goes to the run log.
    state = "PASSED" if verdict.passed else "FAILED"
    reasons = "; ".join(verdict.reasons) or "all checks met"
    get_run_logger().info("paper gate %s for session %s: %s", state, session_id, reasons)
