"""Generate, write and announce the daily report: the steps the CLI and the Prefect flow share.

Files go to ``DATA_DIR/reports/YYYY-MM-DD/`` (or ``out``): ``trades.csv`` and ``metrics.csv``, ``report.pdf``,
then ``report.json`` last, so a present JSON means the other files of the run were written. The announcement is a
notification in the outbox (``core.notify``) keyed by the day, so a re-run never sends it twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import ConfigError
from core.notify import Notification, notify
from core.reporting.daily.builder import DailyReport, build_daily_report
from core.reporting.daily.candles import CandleSource
from core.reporting.daily.export_csv import write_csv
from core.reporting.daily.export_json import write_json
from core.reporting.daily.export_pdf import check_fonts, write_pdf
from core.store import Store

FORMATS = ("json", "csv", "pdf")


@dataclass
class DailyRun:
    report: DailyReport
    paths: dict[str, Path]


def parse_day(text: str | None, now: datetime | None = None) -> date:
    """YYYY-MM-DD, or the previous UTC day when empty (the report runs shortly after midnight)."""
    if not text:
        return ((now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--date '{text}' is not a day; use YYYY-MM-DD, e.g. 2024-01-31") from None


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """'json,csv,pdf' (any subset, any order) as a tuple; ConfigError names an unknown one."""
    items = [text] if isinstance(text, str) else list(text)
    chosen = [f.strip().lower() for part in items for f in part.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ConfigError(f"unknown report format {', '.join(unknown) or '(none)'}; use a comma-separated subset of "
                          f"{','.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in chosen)


def report_dir(settings: Settings, day: date) -> Path:
    return settings.reports_dir / day.isoformat()


def write_report(report: DailyReport, folder: Path, formats: Sequence[str], font_dir: Path) -> dict[str, Path]:
    """Write the chosen formats (CSV, PDF, then JSON last)."""
    paths: dict[str, Path] = {}
    if "csv" in formats:
        paths.update(write_csv(report, folder))
    if "pdf" in formats:
        paths["pdf"] = write_pdf(report, folder / "report.pdf", font_dir)
    if "json" in formats:
        paths["json"] = write_json(report, folder / "report.json")
    return paths


def announce(store: Store, report: DailyReport, paths: dict[str, Path]) -> Notification:
    """The notification for operators (stored in the outbox, then delivered)."""
    doc = report.doc
    day = doc["metrics"]["day"] or {}
    sug = doc["suggestions"]
    att = doc["comparison"]["backtest"].get("attribution") or {}
    fields: dict[str, Any] = {"status": doc["status"], "trades": day.get("trades", 0),
                              "net P&L (USDT)": round(float(day.get("net_pnl") or 0.0), 2),
                              "recommendation": sug["recommendation"].replace("_", " ")}
    if att:
        fields["vs backtest (USDT)"] = round(float(att["difference"]), 2)
    if paths:
        fields["files"] = str(next(iter(paths.values())).parent)
    note = Notification(key=f"daily-report:{doc['date']}", kind="report",
                        severity="warning" if sug["degraded"] else "info",
                        title=f"Daily report {doc['date']}",
                        body=f"{report.headline.split(': ', 1)[-1]}. {sug['summary']}",
                        fields=fields)
    notify(store, note)
    return note


def generate_daily_report(settings: Settings, day: date, *, formats: Sequence[str] = FORMATS, out: Path | None = None,
                          candles: CandleSource | None = None, announce_it: bool = True,
                          store: Store | None = None) -> DailyRun:
    """Build the day's report, write it, announce it. Bad input (formats, fonts) fails before anything is written."""
    formats = parse_formats(formats)
    if "pdf" in formats:
        check_fonts(settings.reports.font_dir)
    store = store or Store(settings.db_path)
    report = build_daily_report(store, settings, day, candles)
    paths = write_report(report, Path(out) if out else report_dir(settings, day), formats, settings.reports.font_dir)
    if announce_it:
        announce(store, report, paths)
    return DailyRun(report, paths)


def markdown_summary(report: DailyReport, paths: dict[str, Path]) -> str:
    """The Prefect artifact: headline, key numbers side by side, recommendation, files."""
    doc = report.doc
    lines = [f"# Daily report {doc['date']}", "", f"**{report.headline}**", ""]
    lines += [f"> {note}" for note in doc["notes"]]
    lines += ["", "| metric | live | backtest | paper |", "|---|---|---|---|"]
    for r in doc["comparison"]["side_by_side"]:
        lines.append(f"| {r['label']} | {_cell(r['live'])} | {_cell(r['backtest'])} | {_cell(r['paper'])} |")
    sug = doc["suggestions"]
    lines += ["", f"**Recommendation: {sug['recommendation'].replace('_', ' ')}** — {sug['summary']}", ""]
    for s in sug["suggestions"]:
        change = f"`{s['setting']}` {s['current']} → {s['suggested']}" if s["kind"] == "parameter" else "review"
        lines.append(f"- {s['title']}: {change}. Evidence: {s['evidence']}")
    lines += ["", *[f"- {kind}: `{path}`" for kind, path in paths.items()]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


__all__ = ["FORMATS", "DailyRun", "announce", "generate_daily_report", "markdown_summary", "parse_day",
           "parse_formats", "report_dir", "write_report"]
