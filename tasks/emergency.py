"""Thin Prefect task adapter for the emergency stop (R6.1): run it once, never retried, publish the report."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import load_settings
from core.control.emergency import emergency_stop
from core.venue import venue_for
from tasks.artifacts import emergency_markdown


@task(cache_policy=NO_CACHE, retries=0)
def emergency_stop_task(overrides: dict[str, Any], reason: str, who: str,
                        deadline_s: float | None = None) -> dict[str, Any]:
    """HALT and flatten; each progress line goes to the run log as it happens; the report becomes a Markdown
    artifact (tables) and the returned dict. Not retried by Prefect: the stop retries its own exchange calls until
    flat or its deadline, and a second run is always safe to start by hand."""
    settings = load_settings(**overrides)
    logger = get_run_logger()
    report = emergency_stop(settings, reason, who, venue_for(settings.exchange), deadline_s=deadline_s,
                            progress=logger.info)
    (logger.info if report.flat else logger.critical)(report.summary())
    create_markdown_artifact(key="emergency-stop", markdown=emergency_markdown(report),
                             description=report.summary()[:500])
    return report.to_dict()
