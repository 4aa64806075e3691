"""Run outcomes the Prefect UI shows as they are: Markdown artifacts and Failed states.

Artifacts are Markdown tables with short cells (they fit the page; terminal text in a code block is cut off at the
right edge) and links to the files a run wrote, by absolute path. A run that did its work but whose outcome is a
failure — a paper gate not passed, an account not flat after an emergency stop — ends in a Failed state named for
what failed, with the reasons as its message, instead of a green Completed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect.states import Failed, State

from core.gate import GateVerdict
from core.metrics import Metrics

DASH = "—"
GATE_FAILED = "Gate failed"
NOT_FLAT = "Not flat"
_CHECK_LABELS = {"win_rate": "win rate", "sharpe": "Sharpe", "max_drawdown": "max drawdown", "trades": "closed trades",
                 "errors": "session errors"}
_NEEDS_TRADES = {"win_rate", "sharpe", "profit_factor", "expectancy", "sortino"}


class RunFailed(Exception):
    """The result of a run that ended Failed by its outcome; ``outcome`` is what the run would have returned."""

    def __init__(self, message: str, outcome: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.outcome = dict(outcome)

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.outcome)


def failed(name: str, reasons: Sequence[str], outcome: Mapping[str, Any]) -> State[Any]:
    """A Failed state named ``name`` whose message is the reasons; its result raises ``RunFailed``."""
    message = "; ".join(reasons) or name
    return Failed(name=name, message=message, data=RunFailed(f"{name}: {message}", outcome))


def cell(text: Any) -> str:
    """One table cell: pipes escaped, newlines folded, so a reason never breaks the table."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or DASH


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def file_links(paths: Mapping[str, Path | str]) -> list[str]:
    """``| kind | [name](file:///abs/path) |`` rows: the absolute path, whatever the run's working directory."""
    rows = []
    for kind, path in paths.items():
        full = Path(path).resolve()
        rows.append((kind, f"[{full}]({full.as_uri()})"))
    return table(("file", "where"), rows) if rows else []


def _number(value: float | None, unit: str, trades: int | None = None, key: str = "") -> str:
    if value is None or (key in _NEEDS_TRADES and trades == 0):
        return DASH
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else DASH
    if isinstance(value, float) and math.isnan(value):
        return DASH
    if unit == "pct":
        return f"{value * 100:.1f} %"
    if unit == "count":
        return f"{int(value):,}"
    if unit == "usd":
        return f"{value:+,.2f}"
    return f"{value:.2f}"


def _check_unit(name: str) -> str:
    return {"win_rate": "pct", "max_drawdown": "pct", "trades": "count", "errors": "count"}.get(name, "ratio")


def verdict_markdown(metrics: Metrics, verdict: GateVerdict, files: Mapping[str, Path | str],
                     quote: str = "USDT") -> str:
    """The paper gate: every check, the key numbers, the reasons and the report's files."""
    state = "PASSED" if verdict.passed else "FAILED"
    lines = [f"# Paper validation: {state}", "", f"Config `{verdict.config_hash[:8]}`.", ""]
    rows = []
    for c in verdict.checks:
        unit = _check_unit(c.name)
        rows.append((_CHECK_LABELS.get(c.name, c.name), _number(c.value, unit, metrics.trades, c.name),
                     f"{c.op} {_number(c.threshold, unit)}", "ok" if c.passed else "**FAIL**"))
    lines += table(("check", "value", "threshold", "result"), rows)
    m = metrics
    numbers = [("net P&L", f"{_number(m.net_pnl, 'usd')} {quote}"), ("return", f"{m.return_pct:+.1f} %"),
               ("fees", f"{m.fees:,.2f} {quote}"),
               ("profit factor", _number(m.profit_factor, "ratio", m.trades, "profit_factor")),
               ("expectancy", _number(m.expectancy, "usd", m.trades, "expectancy")),
               ("Sortino", _number(m.sortino, "ratio", m.trades, "sortino")), ("exposure", _number(m.exposure, "pct"))]
    lines += ["", *table(("metric", "value"), numbers)]
    if verdict.reasons:
        lines += ["", "## Why it failed", "", *(f"- {cell(r)}" for r in verdict.reasons)]
    links = file_links(files)
    if links:
        lines += ["", "## Report", "", *links]
    return "\n".join(lines) + "\n"


def live_summary_markdown(summary: Any) -> str:
    """A live or forward paper session's end: the numbers, and what stays open (with its stop)."""
    paper = getattr(summary, "mode", "live") == "paper"
    what = "Forward paper session" if paper else "Live session"
    rows = [("session", summary.session_id), ("bars", summary.bars), ("closed trades", summary.trades),
            ("net P&L", f"{summary.net_pnl:+,.2f} USDT"), ("equity", f"{summary.equity:,.2f} USDT"),
            ("state", summary.state), ("stopped because", summary.stopped_because)]
    lines = [f"# {what} {summary.session_id[:8]}", "", *table(("", "value"), rows), ""]
    where = "in the simulated account" if paper else "on the exchange"
    open_positions = tuple(getattr(summary, "open_positions", ()) or ())
    if open_positions:
        lines += [f"## Stays open {where}", "", *table(("position",), ((p,) for p in open_positions))]
    else:
        lines.append(f"Nothing stays open {where}.")
    return "\n".join(lines) + "\n"


def emergency_markdown(report: Any) -> str:
    """The emergency stop: the verdict, what was cancelled and sold, what is left."""
    head = "FLAT" if report.flat else "NOT FLAT"
    lines = [f"# Emergency stop: {head}", "", f"**{cell(report.summary())}**", ""]
    lines += table(("", "value"), (("by", report.who), ("reason", report.reason), ("exchange", report.exchange),
                                   ("state", report.state), ("requests", f"{report.requests} ({report.failures} "
                                                                         "failed)"),
                                   ("took", f"{report.seconds:.1f} s of {report.deadline_s:g} s")))
    if report.cancelled:
        lines += ["", "## Cancelled", "", *table(
            ("symbol", "side", "type", "qty", "price", "client order id", "Rampart's"),
            ((o["symbol"], o.get("side"), o.get("type"), o.get("qty"), o.get("price"), o.get("client_order_id"),
              "yes" if o.get("rampart") else "no") for o in report.cancelled))]
    if report.sells:
        lines += ["", "## Sold", "", *table(
            ("symbol", "qty", "avg price", "fees", "P&L"),
            ((s, f"{i['qty']:g}", _price(i.get("avg_price")), f"{i['fees']:.4f}", _price(i.get("pnl")))
             for s, i in report.sells.items()))]
    left = [*report.leftovers, *(f"dust {s} {q:g} (below the minimum order)" for s, q in report.dust.items())]
    if left:
        lines += ["", "## Left", "", *(f"- {cell(x)}" for x in left)]
    if report.errors:
        lines += ["", "## Errors on the way", "", *(f"- {cell(x)}" for x in report.errors)]
    return "\n".join(lines) + "\n"


def _price(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) and math.isfinite(value) else DASH
