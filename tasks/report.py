"""Thin Prefect task adapters for the daily report (R7): build, write, publish as an artifact, announce.

Every task has side effects or large inputs, so none is cached (``NO_CACHE``). Building is retried once: the only
transient failure is the DuckDB file being held by another process longer than the store's lock wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from core.config import Settings, load_settings
from core.reporting.daily.builder import DailyReport, build_daily_report
from core.reporting.daily.candles import default_source
from core.reporting.daily.export_pdf import check_fonts
from core.reporting.daily.publish import announce, markdown_summary, parse_day, parse_formats, report_dir, write_report
from core.store import Store
from core.venue import venue_for


@task(cache_policy=NO_CACHE)
def load_report_settings_task(overrides: dict[str, Any], formats: str) -> tuple[Settings, tuple[str, ...]]:
    """Settings and formats, checked before anything runs (a PDF needs its font)."""
    settings = load_settings(**overrides)
    chosen = parse_formats(formats)
    if "pdf" in chosen:
        check_fonts(settings.reports.font_dir)
    return settings, chosen


@task(cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def build_report_task(settings: Settings, day: str | None, candles: list[str] | None,
                      fetch_candles: bool) -> DailyReport:
    client = venue_for(settings.exchange).client() if fetch_candles else None  # public klines, no keys
    source = default_source(settings.data_dir, [Path(c) for c in candles or []], client)
    report = build_daily_report(Store(settings.db_path), settings, parse_day(day), source)
    get_run_logger().info(report.headline)
    return report


@task(cache_policy=NO_CACHE)
def write_report_task(report: DailyReport, settings: Settings, formats: tuple[str, ...],
                      out: str | None) -> dict[str, Path]:
    folder = Path(out) if out else report_dir(settings, report.day)
    paths = write_report(report, folder, formats, settings.reports.font_dir)
    get_run_logger().info("daily report written: %s", ", ".join(str(p) for p in paths.values()))
    return paths


@task(cache_policy=NO_CACHE)
def publish_artifact_task(report: DailyReport, paths: dict[str, Path]) -> None:
    files = {kind: path.resolve() for kind, path in paths.items()}  # absolute: the UI has no working directory
    create_markdown_artifact(key=f"daily-report-{report.day.isoformat()}", markdown=markdown_summary(report, files),
                             description=f"Rampart daily report {report.day.isoformat()}")


@task(cache_policy=NO_CACHE)
def announce_task(settings: Settings, report: DailyReport, paths: dict[str, Path]) -> str:
    return announce(Store(settings.db_path), report, paths).key
