"""Daily report flow (SPEC R7), scheduled at 00:10 UTC for the previous day: build the report from DuckDB (the
backtest's candles from DATA_DIR/candles, then the exchange's public klines), write JSON/CSV/PDF under
data/reports/YYYY-MM-DD/, publish it as an artifact and announce it."""

from typing import Annotated, Any, Literal

from prefect import flow
from pydantic import BeforeValidator

from core.config import run_overrides
from flows.parameters import NO_FILES, Text, dated_run_name, unset
from tasks.credentials import secure_run
from tasks.report import (
    announce_task,
    build_report_task,
    load_report_settings_task,
    publish_artifact_task,
    write_report_task,
)

# where missing candles come from; "offline" (or None from Python) fetches none
CandleExchange = Annotated[Literal["binance", "binance-demo", "binance-testnet", "sandbox", "offline"],
                           BeforeValidator(lambda v: "offline" if v is None else v)]
Files = Annotated[list[str], BeforeValidator(lambda v: [] if v is None else v)]


@flow(name="daily-report", log_prints=True, flow_run_name=dated_run_name("daily report"))
def daily_report_flow(date: Text = "", formats: str = "json,csv,pdf", out: Text = "", candles: Files = NO_FILES,
                      exchange: CandleExchange = "binance", sandbox_url: Text = "", data_dir: Text = "",
                      notify: bool = True) -> dict[str, Any]:
    """The daily report of one UTC day: live against backtest and paper, trade by trade.

    Args:
        date: the day, YYYY-MM-DD (empty: yesterday, UTC).
        formats: comma-separated, from json, csv and pdf.
        out: the folder to write to (empty: data/reports/YYYY-MM-DD).
        candles: candle files for the backtest replay (empty: DATA_DIR/candles, then the exchange's klines).
        exchange: where missing candles come from, as public klines without keys ("offline": none are fetched).
        sandbox_url: the sandbox exchange's URL when exchange is sandbox (empty: the configured one).
        data_dir: where the database is (empty: the configured data dir, ./data by default).
        notify: announce the report (Slack, or the log without Slack).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    online = exchange != "offline"
    overrides = run_overrides(data_dir=unset(data_dir), exchange=exchange if online else None,
                              exchange_url=unset(sandbox_url))
    settings, chosen = load_report_settings_task(overrides, formats)
    report = build_report_task(settings, unset(date), candles or None, online)
    paths = write_report_task(report, settings, chosen, unset(out))
    publish_artifact_task(report, paths)
    key = announce_task(settings, report, paths) if notify else None
    return {"date": report.day.isoformat(), "status": report.status, "headline": report.headline,
            "recommendation": report.doc["suggestions"]["recommendation"], "notification": key,
            "files": {k: str(v) for k, v in paths.items()}}


if __name__ == "__main__":
    daily_report_flow()
