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

import polars as pl

from core.config import Settings
from core.errors import ConfigError
from core.market.candles import timeframe_ms
from core.notify import Notification, notify
from core.reporting.daily.builder import DailyReport, build_daily_report
from core.reporting.daily.candles import CandleSource
from core.reporting.daily.data import DAY, Period, day_bounds
from core.reporting.daily.export_csv import write_csv
from core.reporting.daily.export_json import write_json
from core.reporting.daily.export_pdf import check_fonts, write_pdf
from core.store import Store
from core.store import trading as trading_repo

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


def report_dir(settings: Settings, day: date, period: Period | None = None) -> Path:
    """DATA_DIR/reports/YYYY-MM-DD for a day; DATA_DIR/reports/sessions/<id>[/YYYY-MM-DD] for a session."""
    if period is not None and period.session_id is not None:
        folder = settings.reports_dir / "sessions" / period.session_id
        return folder / period.day.isoformat() if period.is_day or _whole_day(period) else folder
    return settings.reports_dir / day.isoformat()


def _whole_day(period: Period) -> bool:
    return (period.start, period.end) == day_bounds(period.day)


def resolve_period(store: Store, date_text: str | None, session: str | None,
                   now: datetime | None = None) -> Period:
    """What ``rampart report daily`` reports. ``session`` (an id or its first characters): that session's bars from
    first to last on whatever clock they ran, or its day ``date_text``. ``date_text`` alone: that UTC day. Neither:
    yesterday (UTC), unless no live session ran then and the latest one ran on a replayed market clock (the
    sandbox's, whose bars carry market time): that session, with a note saying so. ConfigError names what to fix."""
    if session is not None:
        span = _session_span(store, session)
        if date_text:
            return Period(parse_day(date_text), *day_bounds(parse_day(date_text)), session_id=str(span["id"]),
                          clock=_clock(span))
        return _session_period(span)
    day = parse_day(date_text, now)
    if date_text or trading_repo.day_sessions(store, *day_bounds(day)).height:
        return Period.of_day(day)
    latest = trading_repo.session_spans(store)
    if not latest.height or _clock(latest.row(0, named=True)) != "market":
        return Period.of_day(day)
    found = _session_period(latest.row(0, named=True))
    note = (f"No live session ran on {day.isoformat()} (UTC); the latest session, {found.session_id}, ran on a "
            f"replayed market clock, so this report covers it: {found.label}. Use --date for a day, --session for "
            "a session.")
    return Period(found.day, found.start, found.end, found.session_id, found.clock, note)


def _session_span(store: Store, session: str) -> dict[str, Any]:
    text = session.strip()
    if len(text) < 4:
        raise ConfigError(f"--session '{session}' is too short; give the session id or at least its first 8 "
                          "characters")
    spans = trading_repo.session_spans(store, text)
    exact = spans.filter(pl.col("id") == text)
    if exact.height:
        spans = exact
    if not spans.height:
        raise ConfigError(f"no session '{text}' in {store.path}; `rampart status` or the sessions table lists them")
    if spans.height > 1:
        raise ConfigError(f"--session '{text}' matches {spans.height} sessions ({', '.join(spans['id'].to_list())});"
                          " give more of the id")
    span = spans.row(0, named=True)
    sid, mode = str(span["id"]), str(span["mode"])
    if mode != "live":
        raise ConfigError(f"session {sid} is a {mode} session: its report is reports/{mode}/{sid}/ (report.html); "
                          "the daily report covers live sessions")
    if span.get("live_evidence") is False:
        raise ConfigError(f"session {sid} ran on {span.get('venue')}, a rehearsal network: its trades are not live "
                          "results (R9.7); its own rows are in the store")
    if not span["bars"]:
        raise ConfigError(f"session {sid} recorded no bar: there is nothing to report")
    return span


def _clock(span: dict[str, Any]) -> str:
    """'market' when the session's bars ran a day or more away from the wall time it started at (the sandbox)."""
    first, started = span.get("first_bar"), span.get("started_at")
    if first is None or started is None:
        return "wall"
    return "market" if abs(started - first) >= DAY else "wall"


def _session_period(span: dict[str, Any]) -> Period:
    step = timedelta(milliseconds=_step_ms(span.get("timeframe")))
    last: datetime = span["last_bar"]
    return Period(last.date(), span["first_bar"], last + step, session_id=str(span["id"]), clock=_clock(span))


def _step_ms(timeframe: Any) -> int:
    try:
        return timeframe_ms(str(timeframe))
    except ConfigError:
        return 60_000  # an unknown timeframe: the period still ends after the last bar


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
    session = (doc.get("period") or {}).get("session_id")
    key = f"daily-report:session:{session}:{doc['period']['start']}" if session else f"daily-report:{doc['date']}"
    note = Notification(key=key, kind="report",
                        severity="warning" if sug["degraded"] else "info",
                        title=f"Daily report {doc['period']['label'] if session else doc['date']}",
                        body=f"{report.headline.split(': ', 1)[-1]}. {sug['summary']}",
                        fields=fields)
    notify(store, note)
    return note


def generate_daily_report(settings: Settings, day: date, *, formats: Sequence[str] = FORMATS, out: Path | None = None,
                          candles: CandleSource | None = None, announce_it: bool = True,
                          store: Store | None = None, period: Period | None = None) -> DailyRun:
    """Build the day's (or ``period``'s) report, write it, announce it. Bad input (formats, fonts) fails before
    anything is written."""
    formats = parse_formats(formats)
    if "pdf" in formats:
        check_fonts(settings.reports.font_dir)
    store = store or Store(settings.db_path)
    report = build_daily_report(store, settings, day, candles, period=period)
    folder = Path(out) if out else report_dir(settings, report.day, period)
    paths = write_report(report, folder, formats, settings.reports.font_dir)
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
           "parse_formats", "report_dir", "resolve_period", "write_report"]
