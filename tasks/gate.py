"""Thin Prefect task adapter for the forward gate (R1.6): judge the forward paper record of the configured strategy
on its venue and record it once it covers ``gate.forward_min_days``; publish the verdict."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.build import config_hash
from core.config import load_settings
from core.gate.forward import evaluate_forward
from core.store import Store
from core.venue import venue_for
from tasks.artifacts import cell, table

ARTIFACT_KEY = "forward-gate-verdict"


@task(cache_policy=NO_CACHE, retries=0)
def forward_gate_task(overrides: dict[str, Any]) -> dict[str, Any]:
    """The forward record's verdict as plain data: status 'none' | 'short' (nothing recorded) | 'judged'."""
    settings = load_settings(**overrides)
    venue, chash = venue_for(settings.exchange), config_hash(settings)
    out = evaluate_forward(Store(settings.db_path), settings, venue, chash)
    get_run_logger().info(out.message)
    return {"status": out.status, "passed": out.passed, "message": out.message, "config_hash": chash,
            "venue": venue.name, "covered_days": out.covered_days, "needed_days": out.needed_days,
            "sessions": out.sessions, "reasons": list(out.verdict.reasons) if out.verdict else [],
            "metrics": out.metrics.to_dict() if out.metrics else None,
            "record_id": out.record["id"] if out.record else None}


@task(cache_policy=NO_CACHE)
def publish_forward_gate_task(verdict: dict[str, Any]) -> None:
    """The verdict as a Markdown table (and the reasons as a list)."""
    head = {"judged": "PASSED" if verdict["passed"] else "FAILED"}.get(verdict["status"], "not judged yet")
    rows = [("status", verdict["status"]), ("verdict", verdict["message"]), ("venue", verdict["venue"]),
            ("config", verdict["config_hash"][:8]), ("sessions", verdict["sessions"]),
            ("days covered", f"{verdict['covered_days']:.1f} of {verdict['needed_days']:g} needed")]
    lines = [f"# Forward gate: {head}", "", *table(("", "value"), rows)]
    if verdict["reasons"]:
        lines += ["", "## Why it failed", "", *(f"- {cell(r)}" for r in verdict["reasons"])]
    create_markdown_artifact(key=ARTIFACT_KEY, markdown="\n".join(lines) + "\n",
                             description="The forward paper record's gate verdict (R1.6)")
