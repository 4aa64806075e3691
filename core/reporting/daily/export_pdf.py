"""The daily report as a PDF (fpdf2): summary, key metrics side by side, recommendation, equity and drawdown charts
drawn with fpdf2's own lines and polygons, the backtest attribution, the trade table with the reasons in words,
and the day's risk events.

Text is set in DejaVu Sans (a Unicode TTF: σ, →, ≥ print as such) from ``settings.reports.font_dir``; without it
the export stops with a ConfigError saying how to install it (``make sysdeps``).
"""

from __future__ import annotations

import math
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.reporting.daily.builder import DailyReport
from core.reporting.daily.files import atomic_write
from core.reporting.pdfpage import FONT, FONT_FILES, MONO, ReportPdf, check_fonts

_Pdf = ReportPdf

INK, MUTED, LIVE, BACKTEST, LOSS, GRID = (20, 24, 33), (100, 106, 118), (22, 101, 192), (230, 126, 34), \
    (200, 40, 40), (225, 228, 233)
MAX_POINTS = 800  # a chart line never needs more points than the page has dots across
# (header, width in characters, alignment) of the monospaced trade table
MONO_COLS = (("#", 5, "R"), ("symbol", 9, "L"), ("entry (UTC)", 13, "L"), ("exit (UTC)", 13, "L"),
             ("qty", 11, "R"), ("entry", 12, "R"), ("exit", 12, "R"), ("fees", 8, "R"), ("slippage", 9, "R"),
             ("net P&L", 10, "R"), ("exit kind", 11, "L"), ("bt net P&L", 11, "R"), ("backtest", 10, "L"))


def fmt(value: Any, unit: str = "num") -> str:
    """A number for a table cell: '—' when undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if unit == "count":
        return f"{int(value):,}"
    if unit == "pct":
        return f"{value:.2%}"
    if unit == "usd":
        return f"{value:,.2f}"
    if unit == "bps":
        return f"{value:,.1f}"
    if unit == "pnl":
        return f"{value:+,.2f}" if value else "0.00"
    return f"{value:,.2f}"


def _time(text: Any, with_date: bool = False) -> str:
    if not isinstance(text, str):
        return "—"
    moment = datetime.fromisoformat(text)
    return moment.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def _down_to(text: str, day: str, dated: bool) -> str:
    return _time(text, True) if dated else _until(text, day)


def _until(text: str, day: str) -> str:
    """An end time, 24:00 when it is the next midnight."""
    return "24:00" if text[:10] != day and text[11:16] == "00:00" else _time(text)


def write_pdf(report: DailyReport, path: Path, font_dir: Path) -> Path:
    """Render the report to ``path`` (atomically)."""
    fonts = check_fonts(font_dir)
    doc = report.doc
    pdf = _Pdf(f"Rampart daily report {_label(doc)}", fonts)
    pdf.add_page()
    _summary(pdf, doc)
    _charts(pdf, doc)
    _comparison(pdf, doc)
    _trades(pdf, doc)
    _risk(pdf, doc)
    return atomic_write(path, lambda tmp: pdf.output(str(tmp)))


# --- sections ----------------------------------------------------------------------------------------------
def _label(doc: dict[str, Any]) -> str:
    """'2024-01-01 (UTC)' for a day; the period's label for one session's span."""
    period = doc.get("period") or {}
    return str(period["label"]) if period.get("session_id") else f"{doc['date']} (UTC)"


def _multi_day(doc: dict[str, Any]) -> bool:
    """The report spans more than one calendar day (a session's report): times need their date."""
    period = doc.get("period") or {}
    if not period:
        return False
    start, end = datetime.fromisoformat(period["start"]), datetime.fromisoformat(period["end"])
    return start.date() != (end - timedelta(microseconds=1)).date()


def _summary(pdf: _Pdf, doc: dict[str, Any]) -> None:
    pdf.heading(f"Rampart daily report — {_label(doc)}", 16 if len(_label(doc)) < 40 else 13)
    pdf.para(doc["headline"], 10)
    s, cov = doc["strategy"], doc["coverage"]
    dated = _multi_day(doc)
    pdf.para(f"Strategy {s['name']} {s['params']} on {', '.join(s['symbols'])} {s['timeframe']}, config "
             f"{s['config_hash'][:8]}. Live bars {cov['live_bars']:,} of {cov['day_bars']:,}; not running: "
             + (", ".join(f"{_time(d['from'], dated)}–{_down_to(d['to'], doc['date'], dated)}" for d in cov["down"])
                or "never")
             + ".",
             8, MUTED)
    for note in doc["notes"]:
        pdf.para(f"Note: {note}", 9, LOSS)
    pdf.ln(2)
    pdf.heading("Key metrics", 11)
    widths = (62, 40, 40, 40, 40)
    pdf.row([(h, w, "L" if i == 0 else "R") for i, (h, w) in enumerate(zip(
        ("metric", "live (session)" if (doc.get("period") or {}).get("session_id") else "live (day)",
         "live (cumulative)", "backtest (same candles)", "paper validation"), widths,
        strict=True))], bold=True, fill=GRID)
    cum = doc["metrics"]["cumulative"] or {}
    for r in doc["comparison"]["side_by_side"]:
        values = (r["live"], cum.get(r["metric"]), r["backtest"], r["paper"])
        pdf.row([(r["label"], widths[0], "L"), *[(fmt(v, r["unit"]), w, "R") for v, w in
                                                   zip(values, widths[1:], strict=True)]])
    pdf.ln(2)
    sug = doc["suggestions"]
    pdf.heading(f"Recommendation: {sug['recommendation'].replace('_', ' ')}", 11)
    pdf.para(sug["summary"], 9)
    for item in sug["suggestions"]:
        change = (f"{item['setting']}: {item['current']} → {item['suggested']} ({item.get('how') or ''})"
                  if item["kind"] == "parameter" else "manual review")
        pdf.para(f"• {item['title']} — {change}", 9)
        pdf.para(f"   Evidence: {item['evidence']}. Why: {item['why']}.", 8, MUTED)


def _series(points: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    step = max(1, math.ceil(len(points) / MAX_POINTS))
    pts = points[::step] + ([points[-1]] if points and (len(points) - 1) % step else [])
    xs = [datetime.fromisoformat(p["ts"]).timestamp() for p in pts]
    return xs, [float(p[key]) for p in pts]


def _charts(pdf: _Pdf, doc: dict[str, Any]) -> None:
    pdf.add_page()
    pdf.heading("Equity and drawdown", 12)
    points = doc["equity"]["points"]
    if not points:
        pdf.para("No equity curve: no live session traded bars on this day.", 10, LOSS)
        return
    live = _series(points, "equity")
    lines = [(live, LIVE, False, "live")]
    bt = doc["comparison"]["backtest"].get("equity") or []
    if bt:
        lines.append((_series(bt, "equity"), BACKTEST, True, "backtest (paper fill model)"))
    top = pdf.get_y() + 8
    xfmt = "%m-%d %H:%M" if _multi_day(doc) else "%H:%M"
    _chart(pdf, 30, top, 250, 78, lines, "Equity (USDT)", "{:,.2f}", xfmt=xfmt)
    dd = _series(points, "drawdown")
    _chart(pdf, 30, top + 96, 250, 52, [((dd[0], [-v * 100 for v in dd[1]]), LOSS, False, "drawdown")],
           "Drawdown from the running high (%)", "{:.3f}", fill=True, xfmt=xfmt)


def _chart(pdf: _Pdf, x: float, y: float, w: float, h: float,
           lines: list[tuple[tuple[list[float], list[float]], tuple[int, int, int], bool, str]], title: str,
           yfmt: str, fill: bool = False, xfmt: str = "%H:%M") -> None:
    """Axes, grid, labels and one polyline per series; ``fill`` shades from the zero line (drawdown)."""
    xs_all = [v for (xs, _), *_ in lines for v in xs]
    ys_all = [v for (_, ys), *_ in lines for v in ys] + ([0.0] if fill else [])
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = min(ys_all), max(ys_all)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1
    pad = (y1 - y0) * 0.06
    y0, y1 = y0 - pad, y1 + pad

    def px(v: float) -> float:
        return x + (v - x0) / (x1 - x0) * w if x1 > x0 else x + w / 2

    def py(v: float) -> float:
        return y + h - (v - y0) / (y1 - y0) * h

    pdf.set_font(FONT, "B", 9)
    pdf.set_text_color(*INK)
    pdf.text(x, y - 2, title)
    pdf.set_font(FONT, "", 6.5)
    pdf.set_line_width(0.15)
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        pdf.set_draw_color(*GRID)
        pdf.line(x, py(v), x + w, py(v))
        pdf.set_text_color(*MUTED)
        pdf.text(x - 17, py(v) + 1, yfmt.format(v))
    for k in range(5):
        t = x0 + (x1 - x0) * k / 4
        label = datetime.fromtimestamp(t, UTC).strftime(xfmt)
        pdf.text(px(t) - pdf.get_string_width(label) / 2, y + h + 4, label)
    pdf.set_draw_color(*MUTED)
    pdf.rect(x, y, w, h)
    for n, ((xs, ys), color, dashed, label) in enumerate(lines):
        pts = [(px(a), py(b)) for a, b in zip(xs, ys, strict=True)]
        pdf.set_draw_color(*color)
        pdf.set_line_width(0.45)
        if fill and len(pts) > 1:
            pdf.set_fill_color(248, 210, 210)
            pdf.polygon([(pts[0][0], py(0.0)), *pts, (pts[-1][0], py(0.0))], style="F")
        if dashed:
            pdf.set_dash_pattern(dash=1.5, gap=1.0)
        pdf.polyline(pts)
        pdf.set_dash_pattern()
        pdf.set_text_color(*color)
        pdf.text(x + w - 70, y + 4 + 4 * n, f"— {label}")
    pdf.set_line_width(0.2)


def _comparison(pdf: _Pdf, doc: dict[str, Any]) -> None:
    pdf.add_page()
    bt = doc["comparison"]["backtest"]
    pdf.heading("Live against the backtest over the same candles", 12)
    pdf.para(f"Backtest: {bt['status']} — {bt['note']}", 8.5, MUTED)
    att = bt.get("attribution")
    if att:
        pdf.para(f"Closed-trade net P&L: live {fmt(att['live_net_pnl'], 'pnl')}, backtest "
                 f"{fmt(att['backtest_net_pnl'], 'pnl')}, difference {fmt(att['difference'], 'pnl')} USDT. Trades "
                 f"matched {att['matched']}, missed live {att['missed']}, extra live {att['extra']}, carried in "
                 f"{att.get('carried_in', 0)}.", 9)
        pdf.row([("component", 60, "L"), ("USDT", 30, "R"), ("share", 25, "R")], bold=True, fill=GRID)
        total = sum(abs(v) for v in att["components"].values()) or 1.0
        for name, value in att["components"].items():
            pdf.row([(name.replace("_", " "), 60, "L"), (fmt(value, "pnl"), 30, "R"),
                     (f"{abs(value) / total:.0%}", 25, "R")])
        for m in att["missed_trades"]:
            pdf.para(f"Missed live: {m['symbol']} entry {_time(m['entry_time'])} (backtest net "
                     f"{fmt(m['net_pnl'], 'pnl')}): {m['why']}", 8)
    paper = doc["comparison"]["paper"]
    pdf.ln(2)
    pdf.heading("Live against paper validation", 12)
    pdf.para(paper["note"], 8.5, MUTED)
    gap = paper.get("gap")
    if gap:
        pdf.para(f"Net return per trade: {fmt(gap['return_gap_bps'], 'bps')} bps against paper; costs explain "
                 f"{fmt(gap['costs_bps'], 'bps')} bps, the market the remaining {fmt(gap['market_bps'], 'bps')} bps. "
                 f"Win rate {fmt(gap['win_rate_gap'], 'pct')}, profit factor {fmt(gap['profit_factor_gap'])} "
                 "against paper.", 9)


def _trades(pdf: _Pdf, doc: dict[str, Any]) -> None:
    """The trade table in DejaVu Sans Mono, one text line per row and per wrapped reason: columns align by
    character count, so a day with 1,000 trades needs no per-cell layout work (fpdf2's cell wrapping is slow)."""
    pdf.add_page()
    pdf.heading(f"Trades ({len(doc['trades'])})", 12)
    if not doc["trades"]:
        pdf.para("No trade closed on this day.", 10, LOSS)
        return
    pdf.set_font(MONO, "", 7.4)
    char_w, line_h = pdf.get_string_width("0"), 3.4
    width = int((pdf.w - pdf.l_margin - pdf.r_margin) / char_w)
    y = pdf.get_y() + 3
    y = _mono_header(pdf, y, line_h)
    bottom = pdf.h - pdf.b_margin
    for n, t in enumerate(doc["trades"], 1):
        twin = t.get("backtest") or {}
        row = _mono_row((str(n), t["symbol"], _time(t["entry_time"], True), _time(t["exit_time"], True),
                         f"{t['qty']:g}", fmt(t["entry_price"]), fmt(t["exit_price"]), fmt(t["fees"]),
                         fmt(t["slippage_cost"]), fmt(t["net_pnl"], "pnl"), t["exit_kind"],
                         fmt(twin.get("backtest_net_pnl"), "pnl"), t.get("backtest_match") or "—"))
        words = [*_wrap(t["entry_text"], width - 6), *_wrap(t["exit_text"], width - 6)]
        if y + (1 + len(words)) * line_h > bottom:
            pdf.add_page()
            y = _mono_header(pdf, pdf.t_margin + 3, line_h)
        pdf.set_text_color(*INK)
        pdf.text(pdf.l_margin, y, row)
        pdf.set_text_color(*MUTED)
        for k, line in enumerate(words, 1):
            pdf.text(pdf.l_margin + 5 * char_w, y + k * line_h, line)
        y += (1 + len(words)) * line_h + 0.8
    pdf.set_y(y)


def _mono_row(values: tuple[str, ...]) -> str:
    return "".join(v[:w - 1].rjust(w - 1) + " " if a == "R" else v[:w - 1].ljust(w) for v, (_, w, a) in
                   zip(values, MONO_COLS, strict=True))


def _mono_header(pdf: _Pdf, y: float, line_h: float) -> float:
    pdf.set_fill_color(*GRID)
    pdf.rect(pdf.l_margin, y - line_h + 0.6, pdf.w - pdf.l_margin - pdf.r_margin, line_h + 0.4, style="F")
    pdf.set_text_color(*INK)
    pdf.text(pdf.l_margin, y, _mono_row(tuple(h for h, _, _ in MONO_COLS)))
    return y + line_h + 0.8


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent="  ", break_long_words=True) or [""]


def _risk(pdf: _Pdf, doc: dict[str, Any]) -> None:
    risk = doc["risk"]
    pdf.add_page()
    pdf.heading("Risk events of the day", 12)
    events = [e for e in risk["events"] if e["category"] != "session"]
    if not events and not risk["denials"]:
        pdf.para("No risk event: no state change, breaker, alert or refused entry.", 9)
    for e in risk["events"]:
        message = e["message"].removeprefix(f"{e['code']}: ")
        pdf.para(f"{_time(e['ts'], _multi_day(doc))}  [{e['category']}/{e['severity']}] {e['code']}: {message}", 8,
                 LOSS if e["severity"] == "critical" else INK)
    if risk["denials"]:
        pdf.ln(2)
        pdf.heading("Refused entries by reason", 10)
        pdf.row([("reason", 50, "L"), ("count", 18, "R"), ("symbols", 40, "L"), ("example", 160, "L")], bold=True,
                fill=GRID)
        for d in risk["denials"]:
            pdf.row([(d["code"], 50, "L"), (str(d["count"]), 18, "R"), (", ".join(d["symbols"]), 40, "L"),
                     (d["example"][:110], 160, "L")])


__all__ = ["FONT", "FONT_FILES", "MONO", "check_fonts", "fmt", "write_pdf"]
