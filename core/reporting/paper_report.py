"""The report of one paper-validation cycle or backtest (SPEC R1.3): JSON, CSV, an HTML page and a PDF, and the
terminal summary.

Every file is written atomically (temp file, fsync, ``os.replace``): CSVs first, then report.html and report.pdf,
``report.json`` last, so a crash leaves either the previous file or the new one, never half a file, and a present
``report.json`` means the other files were written too. The HTML page and the PDF render the JSON document itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError
from core.fileio import atomic_write
from core.gate import GateCheck, GateVerdict
from core.metrics import Metrics
from core.reporting.display import check_value, metric
from core.reporting.html_report import render_html
from core.reporting.pdf_report import write_report_pdf
from core.reporting.pdfpage import check_fonts

SCHEMA_VERSION = 1
FILES = {"json": "report.json", "trades": "trades.csv", "metrics": "metrics.csv", "equity": "equity.csv",
         "blocked": "blocked.csv"}
EXTRA_FILES = {"symbols": "symbols.csv", "html": "report.html", "pdf": "report.pdf"}
log = logging.getLogger("rampart.reporting")
BLOCKED_SCHEMA: dict[str, Any] = {"ts": pl.Datetime("ms", "UTC"), "symbol": pl.String, "code": pl.String,
                                  "detail": pl.String, "signal": pl.String, "signal_code": pl.String}

_LABELS = {
    "win_rate": "win rate",
    "sharpe": "sharpe",
    "max_drawdown": "max drawdown",
    "trades": "trades",
    "errors": "errors",
}


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: NaN/inf -> None, datetimes -> ISO 8601, paths/enums -> str."""
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    # Anything else (Path, UUID, ...) is shown by its text rather than failing the whole report.
    return str(value)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """CSV cannot hold nested values: lists/structs/objects become JSON text; NaN becomes empty."""
    fixes: list[pl.Expr | pl.Series] = []
    for name, dtype in frame.schema.items():
        if dtype.is_nested() or dtype == pl.Object:
            texts = [json.dumps(json_safe(v)) for v in frame.get_column(name).to_list()]
            fixes.append(pl.Series(name, texts, dtype=pl.String))
        elif dtype.is_float():
            fixes.append(pl.col(name).fill_nan(None))
    return frame.with_columns(fixes) if fixes else frame


def _metrics_frame(metrics: Metrics) -> pl.DataFrame:
    numeric = {k: v for k, v in dataclasses.asdict(metrics).items() if not isinstance(v, str)}
    values = [None if isinstance(v, float) and math.isnan(v) else float(v) for v in numeric.values()]
    schema = {"metric": pl.String, "value": pl.Float64}
    return pl.DataFrame({"metric": list(numeric), "value": values}, schema=schema)


def _equity_frame(equity: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("ts", "equity") if c not in equity.columns]
    if missing:
        raise DataError(f"equity curve needs columns ts and equity; missing {missing}")
    return equity.select("ts", "equity")


def _gate_section(verdict: GateVerdict | None) -> dict[str, Any] | None:
    if verdict is None:  # a backtest has no gate
        return None
    return {
        "passed": verdict.passed,
        "config_hash": verdict.config_hash,
        "thresholds": dict(verdict.thresholds),
        "checks": [dataclasses.asdict(c) for c in verdict.checks],
        "reasons": list(verdict.reasons),
    }


def write_paper_report(
    out_dir: Path,
    *,
    session: Mapping[str, Any],
    metrics: Metrics,
    verdict: GateVerdict | None,
    trades: pl.DataFrame,
    equity: pl.DataFrame,
    errors: Sequence[str],
    blocked: pl.DataFrame | None = None,
    sizing: Mapping[str, Any] | None = None,
    analysis: Mapping[str, Any] | None = None,
    font_dir: Path | None = None,
    kind: str = "paper",
) -> dict[str, Path]:
    """Write report.json, trades.csv, metrics.csv, equity.csv, blocked.csv and report.html into ``out_dir`` (created
    if needed); symbols.csv with an ``analysis``; report.pdf when ``font_dir`` holds the fonts (else a note says why
    not).

    ``trades`` are the trades as live would make them; ``blocked`` the entries the risk controls refused (bar,
    symbol, code, detail); ``sizing`` how entries were sized and the scale the metrics are shown at; ``analysis``
    (``core.reporting.analysis.analyse``) the data window, per-symbol rows, buy-and-hold, curves and hints;
    ``verdict`` None for a backtest. Returns the written paths keyed "json", "trades", "metrics", "equity",
    "blocked", and "symbols", "html", "pdf" when written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / name for key, name in FILES.items()}
    equity_out = _equity_frame(equity)
    blocked = blocked if blocked is not None else pl.DataFrame(schema=BLOCKED_SCHEMA)
    extra = dict(analysis or {})
    notes = list(extra.pop("hints", []))
    pdf_problem = _pdf_problem(font_dir)
    if pdf_problem:
        notes.append(f"report.pdf not written: {pdf_problem}")
    atomic_write(paths["trades"], _csv_ready(trades).write_csv)
    atomic_write(paths["metrics"], _metrics_frame(metrics).write_csv)
    atomic_write(paths["equity"], _csv_ready(equity_out).write_csv)
    atomic_write(paths["blocked"], _csv_ready(blocked).write_csv)
    if extra.get("symbols"):
        paths["symbols"] = atomic_write(out_dir / EXTRA_FILES["symbols"],
                                        _csv_ready(pl.DataFrame(extra["symbols"], infer_schema_length=None)).write_csv)
    paths["html"] = out_dir / EXTRA_FILES["html"]
    if font_dir is not None and not pdf_problem:
        paths["pdf"] = out_dir / EXTRA_FILES["pdf"]
    window = {**dict(session.get("window") or {}), **dict(extra.pop("window", None) or {})}
    document = json_safe({
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "generated_at": datetime.now(UTC),
        "session": {**dict(session), **({"window": window} if window else {})},
        "sizing": dict(sizing or {}),
        "metrics": metrics.to_dict(),
        "gate": _gate_section(verdict),
        "errors": list(errors),
        "notes": notes,
        "trades": trades.to_dicts(),
        "blocked": blocked.to_dicts(),
        "blocked_by_code": dict(sorted(blocked["code"].value_counts().iter_rows())) if blocked.height else {},
        **extra,
        "files": {k: p.name for k, p in paths.items() if k != "json"},
    })
    html = render_html(document)
    atomic_write(paths["html"], lambda p: _write_text(p, html))
    if "pdf" in paths and font_dir is not None:
        write_report_pdf(document, paths["pdf"], font_dir)
    text = json.dumps(document, indent=2, allow_nan=False)
    atomic_write(paths["json"], lambda p: _write_text(p, text + "\n"))
    return paths


def _pdf_problem(font_dir: Path | None) -> str | None:
    """Why the PDF cannot be written (its fonts are missing), or None. The report's other files never wait for it."""
    if font_dir is None:
        return None
    try:
        check_fonts(font_dir)
    except ConfigError as exc:
        log.warning("report.pdf not written: %s", exc)
        return str(exc)
    return None


def _check_row(check: GateCheck, trades: int) -> str:
    label = _LABELS.get(check.name, check.name.replace("_", " "))
    value = check_value(check.name, check.value, trades)
    threshold = f"{check.op} {check_value(check.name, check.threshold)}"
    result = "ok" if check.passed else "FAIL"
    return f"  {label:<16} {value:>8}     {threshold:<11} {result}"


def _summary(metrics: Metrics, quote: str) -> str:
    m = metrics.to_dict()
    exposure = "n/a" if math.isnan(metrics.exposure) else f"{metrics.exposure * 100:.0f} %"
    return " · ".join(
        (
            f"Trades {metrics.trades}",
            f"Net P&L {metrics.net_pnl:+,.2f} {quote} ({metrics.return_pct:+.1f} %)",
            f"Fees {metrics.fees:,.2f}",
            f"Profit factor {metric(m, 'profit_factor', 'ratio')}",
            f"Expectancy {metric(m, 'expectancy', 'usd')}",
            f"Sortino {metric(m, 'sortino', 'ratio')}",
            f"Exposure {exposure}",
        )
    )


def blocked_frame(decisions: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The entries the risk engine refused, one row each: when, which symbol, the code and its numbers in words."""
    rows = [{"ts": datetime.fromtimestamp(d["ts"] / 1000, tz=UTC), "symbol": d["symbol"], "code": str(d["code"]),
             "detail": str(d["details"].get("denied", "")), "signal": str(d.get("reason", "")),
             "signal_code": str(d["details"].get("signal_code", ""))}
            for d in decisions if d.get("kind") == "denied" and d.get("action") == "enter"]
    return pl.DataFrame(rows, schema=BLOCKED_SCHEMA) if rows else pl.DataFrame(schema=BLOCKED_SCHEMA)


def format_blocked(blocked: pl.DataFrame) -> str:
    """One line: how many entries the controls refused, by code."""
    if blocked.height == 0:
        return "Blocked entries: none"
    counts = ", ".join(f"{code} {n}" for code, n in sorted(blocked["code"].value_counts().iter_rows()))
    return f"Blocked entries: {blocked.height} ({counts})"


def format_verdict(metrics: Metrics, verdict: GateVerdict, *, quote: str = "USDT") -> str:
    """A fixed-width table of the gate checks for the terminal, a one-line summary, and the reasons."""
    state = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"Paper validation: {state}   (config {verdict.config_hash[:8]})",
        f"  {'check':<16} {'value':>8}     {'threshold':<11} result",
        *(_check_row(c, metrics.trades) for c in verdict.checks),
        _summary(metrics, quote),
    ]
    if verdict.reasons:
        lines.append("Reasons:")
        lines.extend(f"  - {reason}" for reason in verdict.reasons)
    return "\n".join(lines)


def format_metrics(metrics: Metrics, *, quote: str = "USDT") -> str:
    """The R1.3 metric set for a backtest (no gate), one readable block for the terminal."""
    m = metrics.to_dict()
    dd = "n/a" if math.isnan(metrics.max_drawdown) else f"{metrics.max_drawdown * 100:.1f} %"
    return "\n".join((
        "Backtest",
        f"  win rate {metric(m, 'win_rate', 'pct')} · Sharpe {metric(m, 'sharpe', 'ratio')} ({metrics.period}, "
        f"{metrics.periods} periods) · max drawdown {dd}",
        _summary(metrics, quote),
    ))


def format_notes(notes: Sequence[str]) -> str:
    """The report's hints for the terminal, one 'Note:' line each ('' when there are none)."""
    return "\n".join(f"Note: {n}" for n in notes)
