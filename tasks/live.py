"""Thin Prefect task adapters for the live session: open (preflight + reconcile) and run until stopped."""

from __future__ import annotations

import threading
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import load_settings
from core.live.session import LiveOptions, LiveSummary, summary_text
from core.node import open_live
from tasks.artifacts import live_summary_markdown


@task(cache_policy=NO_CACHE, retries=0)
def run_live_session_task(overrides: dict[str, Any], duration_s: float | None, max_bars: int | None,
                          poll_interval_s: float) -> LiveSummary:
    """The long-running execution task. Cancellation (SIGTERM → TerminationSignal) still flushes and closes
    the session: ``run`` shuts down in ``finally``; protective stops stay on the exchange."""
    settings = load_settings(**overrides)
    options = LiveOptions(poll_interval_s=poll_interval_s, duration_s=duration_s, max_bars=max_bars)
    session = open_live(settings, None, options)
    get_run_logger().info("live session %s started on %s", session.session_id, session.venue.describe())
    summary = session.run(threading.Event())
    get_run_logger().info(summary_text(summary))
    return summary


@task(cache_policy=NO_CACHE)
def publish_live_summary_task(summary: LiveSummary) -> None:
    """The session's end as a table, with what stays open (and its stop)."""
    paper = getattr(summary, "mode", "live") == "paper"
    create_markdown_artifact(key="paper-forward-summary" if paper else "live-session-summary",
                             markdown=live_summary_markdown(summary),
                             description=summary_text(summary).splitlines()[0][:500])
