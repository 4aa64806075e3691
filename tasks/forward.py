"""Thin Prefect task adapter for forward paper trading: open (public data, no keys) and run until stopped."""

from __future__ import annotations

import threading
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.config import load_settings
from core.live.session import LiveOptions, LiveSummary, summary_text
from core.node import open_forward


@task(cache_policy=NO_CACHE, retries=0)
def run_forward_session_task(overrides: dict[str, Any], duration_s: float | None, max_bars: int | None,
                             poll_interval_s: float) -> LiveSummary:
    """The long-running forward paper session. Cancellation still flushes and closes it (``run``'s finally)."""
    settings = load_settings(**overrides)
    options = LiveOptions(poll_interval_s=poll_interval_s, duration_s=duration_s, max_bars=max_bars)
    session = open_forward(settings, None, options)
    get_run_logger().info("forward paper session %s started on %s", session.session_id, session.venue.describe())
    summary = session.run(threading.Event())
    get_run_logger().info(summary_text(summary))
    return summary
