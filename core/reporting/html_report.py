"""The paper or backtest report as one self-contained HTML page (no scripts, no external assets): verdict, data
window, sizing, key metrics at the metrics' scale and as traded beside buy-and-hold, the equity and drawdown charts
as inline SVG, per-symbol results, the gate's checks, refused entries and the trades.

It renders the report document (``report.json``'s content), so the page never shows a number the JSON lacks. Every
text from the document is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from core.reporting.charts import Chart, report_charts
from core.reporting.display import DASH, KEY_METRICS, check_value, metric, number

MAX_TRADES = 500  # rows in the page's trade table; trades.csv has them all
_W, _H, _LEFT, _BOTTOM, _TOP = 960, 290, 70, 28, 40

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"DejaVu Sans",sans-serif;color:#141821;margin:24px auto;max-width:1200px;
padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e1e4e9;padding-bottom:4px}
.muted{color:#646a76}.pass{color:#1b7f3b}.fail{color:#c82828}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eceef2;text-align:right;vertical-align:top;white-space:nowrap}
th:first-child,td:first-child,td.l,th.l{text-align:left}td.l{white-space:normal;min-width:14em}
th{background:#f3f4f7;font-weight:600}
.notes{background:#fff6e5;border-left:4px solid #e67e22;padding:8px 14px;margin:12px 0}
.notes li{margin:4px 0}svg{display:block;margin:6px 0 14px}
"""


def render_html(doc: Mapping[str, Any]) -> str:
    """The whole page for one report document."""
    session = doc.get("session") or {}
    title = _title(doc)
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{escape(title)}</h1>", _subtitle(session)]
    parts += [_notes(doc.get("notes") or []), _gate(doc.get("gate")), _window(session.get("window") or {}),
              _sizing(doc), _key_metrics(doc), _charts(doc), _symbols(doc.get("symbols") or []),
              _blocked(doc.get("blocked_by_code") or {}, len(doc.get("blocked") or [])),
              _trades(doc.get("trades") or []), _errors(doc.get("errors") or []), "</body></html>"]
    return "\n".join(p for p in parts if p)


def _title(doc: Mapping[str, Any]) -> str:
    gate = doc.get("gate")
    if doc.get("kind") == "backtest" or gate is None:
        return "Rampart backtest report"
    return f"Rampart paper validation: {'PASSED' if gate.get('passed') else 'FAILED'}"


def _subtitle(session: Mapping[str, Any]) -> str:
    bits = [f"strategy <b>{escape(str(session.get('strategy', '')))}</b>",
            f"params {escape(str(session.get('params') or '{}'))}",
            f"symbols {escape(', '.join(session.get('symbols') or []))}",
            f"timeframe {escape(str(session.get('timeframe', '')))}"]
    if session.get("config_hash"):
        bits.append(f"config {escape(str(session['config_hash'])[:8])}")
    bits.append(f"session {escape(str(session.get('id', '')))}")
    return f"<p class=\"muted\">{' · '.join(bits)}</p>"


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "<div class=\"notes\" id=\"notes\"><b>Read first</b><ul>" + "".join(
        f"<li>{escape(n)}</li>" for n in notes) + "</ul></div>"


def _window(w: Mapping[str, Any]) -> str:
    if not w:
        return ""
    rows = [("First bar (open, UTC)", _when(w.get("first_bar"))), ("Last bar (open, UTC)", _when(w.get("last_bar"))),
            ("Data ends (last close, UTC)", _when(w.get("end"))), ("Bars", number(w.get("bars"), "count")),
            ("Days", number(w.get("days"))), ("Timeframe", escape(str(w.get("timeframe") or DASH))),
            ("Candles", escape(str(w.get("source") or DASH)))]
    return "<h2>Data window</h2><table id=\"window\">" + "".join(
        f"<tr><th class=\"l\">{k}</th><td class=\"l\">{v}</td></tr>" for k, v in rows) + "</table>"


def _sizing(doc: Mapping[str, Any]) -> str:
    sizing = doc.get("sizing") or {}
    if not sizing:
        return ""
    note = str(sizing.get("note") or "")
    return (f"<h2>Sizing</h2><p id=\"sizing\">{escape(note[:1].upper() + note[1:])}. The trades below and in "
            f"trades.csv are at the traded size; the metrics and the gate at {_times(sizing.get('metrics_scale'))} "
            "that size.</p>")


def _key_metrics(doc: Mapping[str, Any]) -> str:
    m = doc.get("metrics") or {}
    at_scale, traded, hold = doc.get("at_scale") or {}, doc.get("as_traded") or {}, doc.get("buy_and_hold") or {}
    scale = (doc.get("sizing") or {}).get("metrics_scale") or 1.0
    head = ["metric", f"strategy (metrics, {_times(scale)})"]
    if traded and scale != 1:
        head.append("as traded (first rung)")
    if hold:
        head.append("buy-and-hold")
    rows = []
    for key, label, unit, amount in KEY_METRICS:
        source = {**m, "final_equity": at_scale.get("final_equity", m.get("final_equity"))}
        cells = [label, metric(source, key, unit)]
        if traded and scale != 1:
            cells.append(number(traded.get(key), unit) if amount and key in traded else "same" if not amount
                         else DASH)
        if hold:
            cells.append(number(hold.get(key), unit) if key in hold else DASH)
        rows.append(cells)
    return "<h2>Key metrics</h2>" + _table(head, rows, "metrics")


def _charts(doc: Mapping[str, Any]) -> str:
    charts = report_charts(doc)
    if not charts:
        return "<h2>Equity and drawdown</h2><p class=\"muted\">No equity curve (fewer than two bars).</p>"
    return "<h2>Equity and drawdown</h2>" + "".join(_svg(c, n) for n, c in enumerate(charts))


def _svg(c: Chart, n: int) -> str:
    w, h = _W - _LEFT - 10, _H - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + c.fx(x) * w

    def py(y: float) -> float:
        return _TOP + c.fy(y) * h

    out = [f"<svg id=\"chart-{n}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{_W}\" height=\"{_H}\" "
           f"viewBox=\"0 0 {_W} {_H}\" role=\"img\" aria-label=\"{escape(c.title)}\" font-size=\"11\" "
           "font-family=\"DejaVu Sans, sans-serif\">",
           f"<text x=\"{_LEFT}\" y=\"14\" font-weight=\"bold\" font-size=\"13\">{escape(c.title)}</text>"]
    for value, label in c.yticks:
        y = py(value)
        out.append(f"<line x1=\"{_LEFT}\" x2=\"{_LEFT + w}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#e1e4e9\"/>"
                   f"<text x=\"{_LEFT - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\" fill=\"#646a76\">{label}</text>")
    for value, label in c.xticks:
        x = px(value)
        anchor = "start" if value == c.xticks[0][0] else "end" if value == c.xticks[-1][0] else "middle"
        out.append(f"<text x=\"{x:.1f}\" y=\"{_TOP + h + 16}\" text-anchor=\"{anchor}\" fill=\"#646a76\">"
                   f"{escape(label)}</text>")
    out.append(f"<rect x=\"{_LEFT}\" y=\"{_TOP}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#8c929e\"/>")
    legend_x = float(_LEFT)
    for line in c.lines:
        color = "rgb({},{},{})".format(*line.color)
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(c.xs, line.ys, strict=True))
        if line.fill:
            zero = py(0.0)
            out.append(f"<polygon points=\"{px(c.x0):.1f},{zero:.1f} {pts} {px(c.x1):.1f},{zero:.1f}\" "
                       f"fill=\"{color}\" fill-opacity=\"0.18\" stroke=\"none\"/>")
        dash = " stroke-dasharray=\"6 4\"" if line.dashed else ""
        out.append(f"<polyline class=\"series\" points=\"{pts}\" fill=\"none\" stroke=\"{color}\" "
                   f"stroke-width=\"{line.width * 1.4:.1f}\"{dash}/>")
        out.append(f"<text x=\"{legend_x:.0f}\" y=\"{_TOP - 8}\" fill=\"{color}\">— {escape(line.label)}</text>")
        legend_x += 6.5 * (len(line.label) + 2) + 18
    out.append("</svg>")
    return "".join(out)


def _symbols(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    head = ["symbol", "trades", "win rate", "profit factor", "net P&L (metrics)", "net P&L (as traded)", "fees",
            "return", "avg per trade", "buy-and-hold", "refused entries", "open at end"]
    body = [[r["symbol"], number(r.get("trades"), "count"), metric(r, "win_rate", "pct"),
             metric(r, "profit_factor", "ratio"), number(r.get("net_pnl"), "pnl"),
             number(r.get("net_pnl_as_traded"), "pnl"), number(r.get("fees"), "usd"),
             number(r.get("return_pct"), "pct_points"), number(r.get("avg_return_pct"), "pct_points"),
             number(r.get("buy_and_hold_pct"), "pct_points"), number(r.get("blocked_entries"), "count"),
             _held(r.get("open_at_end"))] for r in rows]
    return "<h2>Per symbol</h2>" + _table(head, body, "symbols")


def _held(position: Mapping[str, Any] | None) -> str:
    if not position:
        return DASH
    return f"{position.get('qty', 0):g} @ {number(position.get('avg_price'), 'usd')}"


def _gate(gate: Mapping[str, Any] | None) -> str:
    if not gate:
        return ""
    trades = next((int(c["value"]) for c in gate.get("checks") or [] if c["name"] == "trades"), None)
    rows = [[c["name"].replace("_", " "), check_value(c["name"], c.get("value"), trades), f"{c.get('op', '')} "
             f"{check_value(c['name'], c.get('threshold'))}", "<span class=\"pass\">ok</span>" if c.get("passed")
             else "<span class=\"fail\">FAIL</span>"] for c in gate.get("checks") or []]
    reasons = "".join(f"<li>{escape(r)}</li>" for r in gate.get("reasons") or [])
    return ("<h2>Gate</h2>" + _table(["check", "value", "threshold", "result"], rows, "gate", raw_last=True)
            + (f"<ul>{reasons}</ul>" if reasons else ""))


def _blocked(by_code: Mapping[str, Any], total: int) -> str:
    if not total:
        return "<h2>Entries the risk controls refused</h2><p>None.</p>"
    rows = [[escape(code), number(n, "count")] for code, n in by_code.items()]
    return (f"<h2>Entries the risk controls refused ({total:,})</h2>" + _table(["code", "entries"], rows, "blocked")
            + "<p class=\"muted\">Each one with its numbers is in blocked.csv.</p>")


def _trades(trades: Sequence[Mapping[str, Any]]) -> str:
    if not trades:
        return "<h2>Trades</h2><p>No trade closed.</p>"
    shown = trades[:MAX_TRADES]
    head = ["#", "symbol", "entry (UTC)", "exit (UTC)", "qty", "entry", "exit", "fees", "net P&L", "exit kind",
            "entry reason", "exit reason"]
    rows = [[str(n), t.get("symbol", ""), _when(t.get("entry_time")), _when(t.get("exit_time")),
             f"{t.get('qty') or 0:g}", number(t.get("entry_price"), "usd"), number(t.get("exit_price"), "usd"),
             number(t.get("fees"), "usd"), number(t.get("net_pnl"), "pnl"), str(t.get("exit_kind") or ""),
             str(t.get("entry_reason") or ""), str(t.get("exit_reason") or "")] for n, t in enumerate(shown, 1)]
    more = f"<p class=\"muted\">The first {MAX_TRADES:,} of {len(trades):,}; trades.csv has all.</p>" \
        if len(trades) > MAX_TRADES else ""
    return (f"<h2>Trades ({len(trades):,}, at the traded size)</h2>" + _table(head, rows, "trades", left={1, 10, 11})
            + more)


def _errors(errors: Sequence[str]) -> str:
    if not errors:
        return ""
    return "<h2>Errors</h2><ul>" + "".join(f"<li class=\"fail\">{escape(e)}</li>" for e in errors) + "</ul>"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], ident: str, *, raw_last: bool = False,
           left: frozenset[int] | set[int] = frozenset()) -> str:
    def cell(k: int, text: str, tag: str) -> str:
        cls = " class=\"l\"" if k in left else ""
        body = text if raw_last and k == len(head) - 1 and tag == "td" else escape(text)
        return f"<{tag}{cls}>{body}</{tag}>"

    return (f"<table id=\"{ident}\"><tr>" + "".join(cell(k, h, "th") for k, h in enumerate(head)) + "</tr>"
            + "".join("<tr>" + "".join(cell(k, v, "td") for k, v in enumerate(r)) + "</tr>" for r in rows)
            + "</table>")


def _times(scale: Any) -> str:
    return f"{scale:g}x" if isinstance(scale, int | float) else DASH


def _when(text: Any) -> str:
    return escape(str(text)[:16].replace("T", " ")) if text else DASH


__all__ = ["MAX_TRADES", "render_html"]
