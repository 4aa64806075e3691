"""The day's risk events and the session's coverage of the day, for the daily report.

Risk events: trading-state changes and automatic actions (daily loss, drawdown de-risking, stop tightening, latency
pause), breakers, operator actions (overrides, emergency stop), alerts, other warnings and errors, and the entries
the risk engine refused, counted by coded reason. Coverage: which bars of the day a live session traded, and when
it was not running.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl

from core.events import Category, EventCode, category_of

# The report's sections by event category (core.events): the trading state with what moved it (automatic risk
# actions, operators), breakers, alerts, the session's start and stop, and anything else that warned.
SECTIONS = {Category.STATE: "state", Category.RISK: "state", Category.OPERATOR: "state", Category.BREAKER: "breaker",
            Category.ALERT: "alert"}
ROUTINE = frozenset({EventCode.SESSION_STARTED, EventCode.SESSION_STOPPED})


def _category(code: str, kind: str, severity: str) -> str | None:
    category = category_of(code, kind)
    if category in SECTIONS:
        return SECTIONS[category]
    if code in ROUTINE:
        return "session"
    return "other" if severity in ("warning", "error", "critical") else None


def risk_section(events: pl.DataFrame, decisions: pl.DataFrame, start: datetime, end: datetime) -> dict[str, Any]:
    """Events by category (state, breaker, alert, session, other) and denials by reason for the day."""
    rows = []
    for ev in events.iter_rows(named=True) if events.height else []:
        cat = _category(str(ev["code"]), str(ev.get("kind") or ""), str(ev.get("severity") or "info"))
        if cat is None:
            continue
        rows.append({"ts": ev["ts"], "category": cat, "code": ev["code"], "severity": ev["severity"],
                     "message": ev["message"] or "", "session_id": ev["session_id"]})
    denials: dict[str, dict[str, Any]] = {}
    refused = decisions.filter((pl.col("kind") == "denied") & (pl.col("ts") >= start) & (pl.col("ts") < end)) \
        if decisions.height else decisions
    for d in refused.iter_rows(named=True):
        entry = denials.setdefault(d["code"], {"code": d["code"], "count": 0, "symbols": set(), "first": d["ts"],
                                               "example": ""})
        entry["count"] += 1
        entry["symbols"].add(d["symbol"])
        if not entry["example"]:
            entry["example"] = _denied_text(d["details"]) or d["reason"] or ""
    by_reason = sorted(({**v, "symbols": sorted(v["symbols"])} for v in denials.values()),
                       key=lambda v: (-v["count"], v["code"]))
    counts = {cat: sum(1 for r in rows if r["category"] == cat) for cat in ("state", "breaker", "alert", "other")}
    dust = _dust(events)
    return {"events": rows, "denials": by_reason, "dust": dust,
            "counts": {**counts, "denials": sum(v["count"] for v in by_reason), "dust": len(dust)}}


def _dust(events: pl.DataFrame) -> list[dict[str, Any]]:
    """Base units left below what can be sold (R9.1): tracked and reported, never an error."""
    out = []
    for ev in events.filter(pl.col("code") == EventCode.DUST_LEFT).iter_rows(named=True) if events.height else []:
        facts = ev.get("details")
        facts = json.loads(facts) if isinstance(facts, str) else facts or {}
        out.append({"ts": ev["ts"], "symbol": facts.get("symbol"), "qty": facts.get("qty"),
                    "value": facts.get("value"), "total": facts.get("total"), "session_id": ev.get("session_id")})
    return out


def _denied_text(raw: Any) -> str:
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return ""
    return str((value or {}).get("denied") or "") if isinstance(value, dict) else ""


def coverage(equity: pl.DataFrame, start: datetime, end: datetime, step_ms: int) -> dict[str, Any]:
    """Bars traded live in the day and the gaps (not running) between 00:00 and 24:00 UTC."""
    step = timedelta(milliseconds=step_ms)
    day_bars = int((end - start) / step)
    if not equity.height:
        return {"day_bars": day_bars, "live_bars": 0, "first_bar": None, "last_bar": None,
                "down": [{"from": start, "to": end, "bars": day_bars}]}
    ts = equity["ts"].unique().sort().to_list()
    down = []
    edges = [start - step, *ts, end]
    for a, b in pairwise(edges):
        if b - a > step:
            down.append({"from": a + step, "to": b, "bars": int((b - a) / step) - 1})
    return {"day_bars": day_bars, "live_bars": len(ts), "first_bar": ts[0], "last_bar": ts[-1], "down": down}


__all__ = ["coverage", "risk_section"]
