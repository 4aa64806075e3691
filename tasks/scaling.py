"""Thin Prefect task adapters for the scaling review (R5): evaluate, record an outcome, conclude an answer."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import load_settings
from core.control.approval import Answer, conclude, how_to_answer, refuse_answer, review_markdown
from core.control.auth import Refusal
from core.scaling.decisions import Outcome, record_outcome
from core.scaling.eligibility import Eligibility, evaluate
from core.store import Store


@task(cache_policy=NO_CACHE)
def evaluate_review_task(overrides: dict[str, Any], kind: str, timeout_s: int | None) -> tuple[Eligibility, int]:
    """The eligibility from DuckDB, and how long the review waits for an answer (seconds)."""
    settings = load_settings(**overrides)
    review = evaluate(Store(settings.db_path), settings, kind=kind)
    get_run_logger().info(review.summary())
    return review, int(timeout_s or settings.scaling.review_timeout_days * 86_400)


@task(cache_policy=NO_CACHE)
def record_review_task(overrides: dict[str, Any], review: Eligibility, review_id: str, outcome: str,
                       detail: str = "") -> str:
    """Store the outcome (decision row, event, notification); a proposal also becomes a markdown artifact."""
    settings = load_settings(**overrides)
    hint = how_to_answer(review_id) if outcome == "proposed" else ""
    decision = record_outcome(Store(settings.db_path), review, review_id, Outcome(outcome, detail=detail), hint)
    if outcome in ("proposed", "not_eligible"):
        create_markdown_artifact(key="scaling-review", markdown=review_markdown(review, review_id),
                                 description=review.summary()[:500])
    return decision


@task(cache_policy=NO_CACHE, retries=0)
def conclude_review_task(overrides: dict[str, Any], review: Eligibility, review_id: str, approve: bool,
                         reviewer: str, comment: str, control_url: str | None) -> Outcome:
    """Record the reviewer's answer; an approval that counts is applied to the live session first."""
    settings = load_settings(**overrides)
    result = conclude(settings, review, review_id, Answer(approve, reviewer, comment), control_url=control_url)
    get_run_logger().info("scaling review %s: %s (%s)", review_id, result.outcome, result.detail)
    return result


@task(cache_policy=NO_CACHE)
def refuse_answer_task(overrides: dict[str, Any], review_id: str, refusal: Refusal, approve: bool) -> str:
    """Record an answer refused for its proof (an event; never the token); returns the line for the run log."""
    settings = load_settings(**overrides)
    return refuse_answer(settings, review_id, refusal, approve, "the Prefect review form")
