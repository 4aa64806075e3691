"""Daily report flow (SPEC R7), scheduled at 00:10 UTC for the previous day: build the report from DuckDB (the
backtest's candles from DATA_DIR/candles, then the exchange's public klines), write JSON/CSV/PDF under
data/reports/YYYY-MM-DD/, publish it as an artifact and announce it."""

from __future__ import annotations

from typing import Any

from prefect import flow

from core.config import run_overrides
from tasks.credentials import secure_run
from tasks.report import (
    announce_task,
    build_report_task,
    load_report_settings_task,
    publish_artifact_task,
    write_report_task,
)


@flow(name="daily-report", log_prints=True)
def daily_report_flow(date: str | None = None, formats: str = "json,csv,pdf", out: str | None = None,
                      candles: list[str] | None = None, exchange: str | None = "binance",
                      sandbox_url: str | None = None, data_dir: str | None = None,
                      notify: bool = True) -> dict[str, Any]:
    """``date`` YYYY-MM-DD (default: yesterday, UTC); missing candles come as public klines from ``exchange``
    (binance or sandbox; None: offline)."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url)
    settings, chosen = load_report_settings_task(overrides, formats)
    report = build_report_task(settings, date, candles, exchange is not None)
    paths = write_report_task(report, settings, chosen, out)
    publish_artifact_task(report, paths)
    key = announce_task(settings, report, paths) if notify else None
    return {"date": report.day.isoformat(), "status": report.status, "headline": report.headline,
            "recommendation": report.doc["suggestions"]["recommendation"], "notification": key,
            "files": {k: str(v) for k, v in paths.items()}}


if __name__ == "__main__":
    daily_report_flow()
