"""The paper or backtest report as a PDF (fpdf2, DejaVu fonts as the daily report): verdict, data window, sizing,
key metrics at the metrics' scale and as traded beside buy-and-hold, the gate's checks, the equity and drawdown
charts drawn with fpdf2's own lines, per-symbol results, refused entries by code and the trades.

Like the HTML page it renders the report document, so both show the same numbers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.fileio import atomic_write
from core.reporting.charts import Chart, report_charts
from core.reporting.display import DASH, KEY_METRICS, check_value, metric, number
from core.reporting.pdfpage import FONT, MONO, ReportPdf, check_fonts

MAX_TRADES = 1_000  # rows in the PDF's trade table; trades.csv has them all
INK, MUTED, LOSS, GRID = (20, 24, 33), (100, 106, 118), (200, 40, 40), (225, 228, 233)
_TRADE_COLS = (("#", 6, "R"), ("symbol", 9, "L"), ("entry (UTC)", 17, "L"), ("exit (UTC)", 17, "L"),
               ("qty", 12, "R"), ("entry", 12, "R"), ("exit", 12, "R"), ("fees", 9, "R"), ("net P&L", 11, "R"),
               ("exit kind", 10, "L"), ("exit reason", 44, "L"))


def write_report_pdf(doc: Mapping[str, Any], path: Path, font_dir: Path) -> Path:
    """Render ``doc`` to ``path`` atomically; ConfigError (before writing) when the fonts are missing."""
    fonts = check_fonts(font_dir)
    session = doc.get("session") or {}
    pdf = ReportPdf(f"{_title(doc)} · session {str(session.get('id', ''))[:8]}", fonts)
    pdf.add_page()
    _summary(pdf, doc)
    _charts(pdf, doc)
    _symbols(pdf, doc)
    _trades(pdf, doc)
    return atomic_write(path, lambda tmp: pdf.output(str(tmp)))


def _title(doc: Mapping[str, Any]) -> str:
    gate = doc.get("gate")
    if doc.get("kind") == "backtest" or gate is None:
        return "Rampart backtest report"
    return f"Rampart paper validation: {'PASSED' if gate.get('passed') else 'FAILED'}"


def _summary(pdf: ReportPdf, doc: Mapping[str, Any]) -> None:
    session = doc.get("session") or {}
    pdf.heading(_title(doc), 16)
    pdf.para(f"Strategy {session.get('strategy')} {session.get('params') or {}} on "
             f"{', '.join(session.get('symbols') or [])} {session.get('timeframe')}; config "
             f"{str(session.get('config_hash') or '')[:8]}; session {session.get('id')}", 8.5, MUTED)
    for note in doc.get("notes") or []:
        pdf.para(f"Note: {note}", 9, LOSS)
    w = session.get("window") or {}
    if w:
        pdf.ln(1)
        pdf.heading("Data window", 11)
        pdf.para(f"{_when(w.get('first_bar'))} to {_when(w.get('end'))} UTC (last bar opens {_when(w.get('last_bar'))})"
                 f": {number(w.get('bars'), 'count')} bars of {w.get('timeframe')}, {number(w.get('days'))} days. "
                 f"Candles: {w.get('source') or DASH}.", 9)
    sizing = doc.get("sizing") or {}
    if sizing:
        pdf.para(f"Sizing: {sizing.get('note', '')}. The trades listed are at the traded size; the metrics and the "
                 f"gate at {_times(sizing.get('metrics_scale'))} that size.", 8.5, MUTED)
    pdf.ln(1)
    pdf.heading("Key metrics", 11)
    _metrics_table(pdf, doc)
    gate = doc.get("gate")
    if gate:
        pdf.ln(2)
        pdf.heading("Gate", 11)
        trades = next((int(c["value"]) for c in gate.get("checks") or [] if c["name"] == "trades"), None)
        pdf.row([("check", 50, "L"), ("value", 30, "R"), ("threshold", 34, "R"), ("result", 22, "R")], bold=True,
                fill=GRID)
        for c in gate.get("checks") or []:
            pdf.row([(c["name"].replace("_", " "), 50, "L"), (check_value(c["name"], c.get("value"), trades), 30, "R"),
                     (f"{c.get('op', '')} {check_value(c['name'], c.get('threshold'))}", 34, "R"),
                     ("ok" if c.get("passed") else "FAIL", 22, "R")])
        for reason in gate.get("reasons") or []:
            pdf.para(f"• {reason}", 8.5, LOSS)


def _metrics_table(pdf: ReportPdf, doc: Mapping[str, Any]) -> None:
    m = doc.get("metrics") or {}
    at_scale, traded, hold = doc.get("at_scale") or {}, doc.get("as_traded") or {}, doc.get("buy_and_hold") or {}
    scale = (doc.get("sizing") or {}).get("metrics_scale") or 1.0
    head: list[tuple[str, float, str]] = [("metric", 62, "L"), (f"strategy (metrics, {_times(scale)})", 52, "R")]
    if traded and scale != 1:
        head.append(("as traded (first rung)", 48, "R"))
    if hold:
        head.append(("buy-and-hold", 40, "R"))
    pdf.row(head, bold=True, fill=GRID)
    source = {**m, "final_equity": at_scale.get("final_equity", m.get("final_equity"))}
    for key, label, unit, amount in KEY_METRICS:
        cells: list[tuple[str, float, str]] = [(label, 62, "L"), (metric(source, key, unit), 52, "R")]
        if traded and scale != 1:
            cells.append((number(traded.get(key), unit) if amount and key in traded else "same" if not amount
                          else DASH, 48, "R"))
        if hold:
            cells.append((number(hold.get(key), unit) if key in hold else DASH, 40, "R"))
        pdf.row(cells)


def _charts(pdf: ReportPdf, doc: Mapping[str, Any]) -> None:
    pdf.add_page()
    pdf.heading("Equity and drawdown", 12)
    charts = report_charts(doc)
    if not charts:
        pdf.para("No equity curve (fewer than two bars).", 10, LOSS)
        return
    top = pdf.get_y() + 10
    _chart(pdf, charts[0], 30, top, 250, 78)
    if len(charts) > 1:
        _chart(pdf, charts[1], 30, top + 100, 250, 50)


def _chart(pdf: ReportPdf, c: Chart, x: float, y: float, w: float, h: float) -> None:
    def px(v: float) -> float:
        return x + c.fx(v) * w

    def py(v: float) -> float:
        return y + c.fy(v) * h

    pdf.set_font(FONT, "B", 9)
    pdf.set_text_color(*INK)
    pdf.text(x, y - 6, c.title)
    pdf.set_font(FONT, "", 6.5)
    pdf.set_line_width(0.15)
    for value, label in c.yticks:
        pdf.set_draw_color(*GRID)
        pdf.line(x, py(value), x + w, py(value))
        pdf.set_text_color(*MUTED)
        pdf.text(x - 2 - pdf.get_string_width(label), py(value) + 1, label)
    for value, label in c.xticks:
        shift = 0 if value == c.xticks[0][0] else 1 if value == c.xticks[-1][0] else 0.5
        pdf.text(px(value) - pdf.get_string_width(label) * shift, y + h + 4, label)
    pdf.set_draw_color(*MUTED)
    pdf.rect(x, y, w, h)
    legend_x = x
    for line in c.lines:
        pts = [(px(a), py(b)) for a, b in zip(c.xs, line.ys, strict=True)]
        if line.fill:
            pdf.set_fill_color(248, 210, 210)
            pdf.polygon([(pts[0][0], py(0.0)), *pts, (pts[-1][0], py(0.0))], style="F")
        pdf.set_draw_color(*line.color)
        pdf.set_line_width(0.3 * line.width)
        if line.dashed:
            pdf.set_dash_pattern(dash=1.5, gap=1.0)
        pdf.polyline(pts)
        pdf.set_dash_pattern()
        pdf.set_font(FONT, "", 7)
        pdf.set_text_color(*line.color)
        pdf.text(legend_x, y - 1.5, f"— {line.label}")
        legend_x += pdf.get_string_width(f"— {line.label}") + 6
    pdf.set_line_width(0.2)


def _symbols(pdf: ReportPdf, doc: Mapping[str, Any]) -> None:
    rows = doc.get("symbols") or []
    pdf.add_page()
    pdf.heading("Per symbol", 12)
    cols = (("symbol", 22, "L"), ("trades", 15, "R"), ("win rate", 18, "R"), ("profit f.", 18, "R"),
            ("net P&L", 24, "R"), ("as traded", 22, "R"), ("fees", 20, "R"), ("return", 18, "R"),
            ("avg/trade", 18, "R"), ("buy & hold", 22, "R"), ("refused", 16, "R"), ("open at end", 40, "R"))
    pdf.row(list(cols), bold=True, fill=GRID)
    for r in rows:
        held = r.get("open_at_end")
        values = (r["symbol"], number(r.get("trades"), "count"), metric(r, "win_rate", "pct"),
                  metric(r, "profit_factor", "ratio"), number(r.get("net_pnl"), "pnl"),
                  number(r.get("net_pnl_as_traded"), "pnl"), number(r.get("fees"), "usd"),
                  number(r.get("return_pct"), "pct_points"), number(r.get("avg_return_pct"), "pct_points"),
                  number(r.get("buy_and_hold_pct"), "pct_points"), number(r.get("blocked_entries"), "count"),
                  f"{held['qty']:g} @ {number(held.get('avg_price'), 'usd')}" if held else DASH)
        pdf.row([(v, w, a) for v, (_, w, a) in zip(values, cols, strict=True)])
    hold = doc.get("buy_and_hold") or {}
    if hold:
        pdf.para(f"Buy-and-hold: {hold.get('method', '')}.", 8, MUTED)
    blocked = doc.get("blocked_by_code") or {}
    pdf.ln(2)
    pdf.heading(f"Entries the risk controls refused ({len(doc.get('blocked') or []):,})", 11)
    if not blocked:
        pdf.para("None.", 9)
    for code, n in blocked.items():
        pdf.row([(str(code), 60, "L"), (number(n, "count"), 20, "R")])
    for err in doc.get("errors") or []:
        pdf.para(f"Error: {err}", 8.5, LOSS)


def _trades(pdf: ReportPdf, doc: Mapping[str, Any]) -> None:
    """One monospaced text line per trade (fast for thousands of rows; columns align by character)."""
    trades = doc.get("trades") or []
    pdf.add_page()
    pdf.heading(f"Trades ({len(trades):,}, at the traded size)", 12)
    if not trades:
        pdf.para("No trade closed.", 10, LOSS)
        return
    pdf.set_font(MONO, "", 7.2)
    line_h, bottom = 3.4, pdf.h - pdf.b_margin
    y = _header(pdf, pdf.get_y() + 3, line_h)
    for n, t in enumerate(trades[:MAX_TRADES], 1):
        if y + line_h > bottom:
            pdf.add_page()
            y = _header(pdf, pdf.t_margin + 3, line_h)
        pdf.set_text_color(*INK)
        pdf.text(pdf.l_margin, y, _line((str(n), str(t.get("symbol", "")), _when(t.get("entry_time")),
                                         _when(t.get("exit_time")), f"{t.get('qty') or 0:g}",
                                         number(t.get("entry_price"), "usd"), number(t.get("exit_price"), "usd"),
                                         number(t.get("fees"), "usd"), number(t.get("net_pnl"), "pnl"),
                                         str(t.get("exit_kind") or ""),
                                         textwrap.shorten(str(t.get("exit_reason") or ""), 43, placeholder="…"))))
        y += line_h
    if len(trades) > MAX_TRADES:
        pdf.set_y(y + 2)
        pdf.para(f"The first {MAX_TRADES:,} of {len(trades):,}; trades.csv has all.", 8, MUTED)


def _line(values: tuple[str, ...]) -> str:
    return "".join(v[:w - 1].rjust(w - 1) + " " if a == "R" else v[:w - 1].ljust(w) for v, (_, w, a) in
                   zip(values, _TRADE_COLS, strict=True))


def _header(pdf: ReportPdf, y: float, line_h: float) -> float:
    pdf.set_fill_color(*GRID)
    pdf.rect(pdf.l_margin, y - line_h + 0.6, pdf.w - pdf.l_margin - pdf.r_margin, line_h + 0.4, style="F")
    pdf.set_text_color(*INK)
    pdf.text(pdf.l_margin, y, _line(tuple(h for h, _, _ in _TRADE_COLS)))
    return y + line_h + 0.8


def _times(scale: Any) -> str:
    return f"{scale:g}x" if isinstance(scale, int | float) else DASH


def _when(text: Any) -> str:
    return str(text)[:16].replace("T", " ") if text else DASH


__all__ = ["MAX_TRADES", "write_report_pdf"]
