"""`rampart report daily`: the daily report in JSON, CSV and PDF (R7), of a UTC day or of one session (whatever clock
its bars ran on: the sandbox's market time included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.commands import EXIT_USAGE, SandboxUrlOpt, fail

report_app = typer.Typer(help="Reports: the daily report of live trading (R7).", rich_markup_mode=None)


def _candle_files(items: list[str] | None) -> list[Path]:
    files = [Path(s.strip()) for part in items or [] for s in part.split(",") if s.strip()]
    for path in files:
        if not path.is_file():
            raise fail(f"candle file not found: {path}; check the path")
    return files




@report_app.command("daily")
def daily(
    date: Annotated[str | None, typer.Option("--date", help="UTC day YYYY-MM-DD (default: yesterday; when no live "
                                                          "session ran then and the latest ran on the sandbox's "
                                                          "market clock, that session)")] = None,
    session: Annotated[str | None, typer.Option("--session", help="report this live session (its id or first 8+ "
                                                                  "characters): its bars from first to last, on "
                                                                  "whatever clock they ran; with --date, that day "
                                                                  "of it")] = None,
    formats: Annotated[str, typer.Option("--format", help="comma-separated subset of json,csv,pdf")] =
    "json,csv,pdf",
    out: Annotated[Path | None, typer.Option(help="folder (default DATA_DIR/reports/YYYY-MM-DD, or "
                                                  "DATA_DIR/reports/sessions/ID for --session)")] = None,
    candles: Annotated[list[str] | None, typer.Option(
        "--candles", help="candle files for the backtest, one per symbol (repeat or comma-separate); default "
                          "DATA_DIR/candles/SYMBOL-TF.parquet")] = None,
    exchange: Annotated[str | None, typer.Option(help="also fetch missing candles as public klines from this "
                                                      "exchange, sandbox or binance (no keys); default offline")]
    = None,
    sandbox_url: SandboxUrlOpt = None,
    data_dir: Annotated[Path | None, typer.Option(help="where the database and reports are (default ./data)")] = None,
    no_notify: Annotated[bool, typer.Option("--no-notify", help="write the files but send no notification")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as one JSON object")] = False,
) -> None:
    """Build the daily report: key metrics (day and cumulative), live against the backtest over the same candles
    and against paper validation with the differences attributed, every trade with its reasons in words, the
    day's risk events and suggestions when live degrades. Writes report.json, trades.csv, metrics.csv, report.pdf."""
    from core.config import load_settings, run_overrides
    from core.errors import ConfigError
    from core.reporting.daily.candles import default_source
    from core.reporting.daily.publish import generate_daily_report, parse_day, parse_formats, resolve_period
    from core.store import Store
    from core.venue import venue_for

    try:
        parse_day(date)
        chosen = parse_formats(formats)
    except ConfigError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    files = _candle_files(candles)
    settings = load_settings(**run_overrides(data_dir=data_dir, exchange=exchange, exchange_url=sandbox_url))
    if not settings.db_path.is_file():
        raise fail(f"no database at {settings.db_path}; check --data-dir (or RAMPART_DATA_DIR)")
    store = Store(settings.db_path)
    try:
        period = resolve_period(store, date, session)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    client = venue_for(settings.exchange).client() if exchange is not None else None  # public klines: no keys
    source = default_source(settings.data_dir, files, client)
    run = generate_daily_report(settings, period.day, formats=chosen, out=out, candles=source,
                                announce_it=not no_notify, store=store, period=period)
    doc = run.report.doc
    if as_json:
        typer.echo(json.dumps({"date": doc["date"], "period": doc["period"], "status": doc["status"],
                               "headline": doc["headline"], "trades": len(doc["trades"]),
                               "recommendation": doc["suggestions"]["recommendation"],
                               "files": {k: str(v) for k, v in run.paths.items()}}))
        return
    typer.echo(run.report.headline)
    for note in doc["notes"]:
        typer.echo(f"  note: {note}")
    typer.echo(f"  {doc['suggestions']['summary']}")
    for kind, path in run.paths.items():
        typer.echo(f"  {kind:<11} {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(report_app, name="report")
