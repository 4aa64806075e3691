"""``/metrics``: the dashboard snapshot in the Prometheus text exposition format (version 0.0.4).

Hand-written rather than through prometheus_client's global registry: the values are the snapshot's, so the
page and the scrape never disagree. ``rampart_orders_total`` counts orders by their *current* status, so a
status's count can fall (an order moves from new to filled): it is exposed as a gauge.
"""

from __future__ import annotations

from typing import Any

from core.domain import TradingState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: Any) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value))


class _Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            self.lines.append(f"{name}{{{text}}} {_num(value)}" if text else f"{name} {_num(value)}")


def render(snapshot: dict[str, Any]) -> str:
    """The exposition text for one snapshot (NaN where a value is unknown, e.g. latency with no session)."""
    pnl = snapshot.get("pnl") or {}
    doc = _Doc()
    doc.metric("rampart_equity", "gauge", "Equity in the quote currency (cash + positions at the last close).",
               [({}, snapshot.get("equity"))])
    doc.metric("rampart_pnl_realized", "gauge", "Net P&L of closed live trades, after fees.",
               [({}, pnl.get("realized"))])
    doc.metric("rampart_pnl_unrealized", "gauge", "P&L of open positions at the last close.",
               [({}, pnl.get("unrealized"))])
    doc.metric("rampart_pnl_today", "gauge", "Equity minus start-of-day equity (UTC day).", [({}, pnl.get("today"))])
    doc.metric("rampart_pnl_since_start", "gauge", "Equity minus the first live session's starting equity.",
               [({}, pnl.get("since_start"))])
    doc.metric("rampart_exposure", "gauge", "Open positions' notional / equity.", [({}, snapshot.get("exposure"))])
    doc.metric("rampart_api_latency_seconds", "gauge", "Rolling exchange latency the risk engine watches (R4.4).",
               [({}, snapshot.get("latency_s"))])
    orders = snapshot.get("orders") or {}
    doc.metric("rampart_orders_total", "gauge", "Live orders by current status.",
               [({"status": str(status)}, n) for status, n in sorted(orders.items())])
    doc.metric("rampart_errors_total", "counter", "Events of severity error or critical.",
               [({}, snapshot.get("errors") or 0)])
    state = snapshot.get("state")
    doc.metric("rampart_trading_state", "gauge", "1 for the current trading state, 0 for the others.",
               [({"state": s.value}, s.value == state) for s in TradingState])
    doc.metric("rampart_breaker_active", "gauge", "1 while the circuit breaker blocks new entries.",
               [({"breaker": str(b.get("name"))}, bool(b.get("tripped"))) for b in snapshot.get("breakers") or []])
    doc.metric("rampart_rung", "gauge", "Risk ladder rung (1 = first).", [({}, snapshot.get("rung"))])
    return "\n".join(doc.lines) + "\n"


__all__ = ["CONTENT_TYPE", "render"]
