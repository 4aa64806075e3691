"""The forward record's gate (SPEC R1.6): the R1.3 metrics over every forward paper session of a config hash on one
venue, judged by the same gate (R1.4, R1.5) once its bars cover ``gate.forward_min_days``, and recorded with
evidence kind ``forward``.

The sessions of a forward record are one simulated account run in pieces (a restart opens a new session that
carries the account on), so their equity curves are read as one curve in time order, a bar stored twice counted
once, and the days covered are the bars stored (downtime between sessions is not evidence). As in paper validation,
entries were sized as live's first rung sizes them and the metrics are shown at the strategy's own risk per trade.
A session error (a SESSION_ERROR event, or a session closed as failed) fails the record (R1.5); a session whose
process died (``crashed``) lost nothing (the forward session is restart-safe) and is only counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

from core.config import Settings
from core.config.ladder import rung
from core.gate.evidence import DAY_MS, Evidence, frame_digest
from core.gate.verdict import GateVerdict, evaluate_gate
from core.market.candles import timeframe_ms
from core.metrics import Metrics, compute_metrics
from core.store import Store
from core.store import gates as gate_store
from core.venue import Venue

Status = Literal["none", "short", "judged"]


@dataclass(frozen=True)
class ForwardOutcome:
    """What ``evaluate_forward`` found: no sessions, too few days (nothing recorded), or a judged record."""

    status: Status
    message: str
    covered_days: float
    needed_days: int
    sessions: int
    verdict: GateVerdict | None = None
    metrics: Metrics | None = None
    evidence: Evidence | None = None
    record: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is not None and self.verdict.passed


def paper_scale(settings: Settings) -> float:
    """The multiple of the traded size the gate's metrics are shown at: ``core.build.Sizing.as_live(settings).scale``
    (core.build is a sibling layer; tests/test_forward_gate.py checks the two agree)."""
    s = settings.sizing
    if not settings.paper.risk_controls or s.mode != "risk":
        return 1.0
    return s.risk_per_trade / rung(0, settings.scaling.rungs).risk_per_trade


def evaluate_forward(store: Store, settings: Settings, venue: Venue, config_hash: str, *,
                     record: bool = True) -> ForwardOutcome:
    """Judge the forward record of ``config_hash`` on ``venue``; with ``record``, store the gate record."""
    cfg = settings.gate
    short, need = config_hash[:8], cfg.forward_min_days
    sessions = gate_store.forward_sessions(store, config_hash, venue.name)
    if sessions.height == 0:
        return ForwardOutcome("none", f"NO_FORWARD: no forward paper session for config {short} on {venue.describe()}"
                              f"; run `rampart paper --forward --exchange {venue.name}` first", 0.0, need, 0)
    ids = [str(i) for i in sessions["id"].to_list()]
    equity = gate_store.forward_equity(store, ids).unique(subset="ts", keep="last", maintain_order=True).sort("ts")
    tf = timeframe_ms(settings.market.timeframe)
    covered = equity.height * tf / DAY_MS
    window = _window(equity, tf)
    if covered < need:
        return ForwardOutcome("short", (
            f"FORWARD_TOO_SHORT: the forward record of config {short} on {venue.name} covers {covered:.1f} of the "
            f"{need} days gate.forward_min_days needs ({equity.height} bars of {settings.market.timeframe} in "
            f"{len(ids)} session(s){window}); {need - covered:.1f} more days; nothing recorded"), covered, need,
            len(ids))
    first_equity = sessions["starting_equity"][0]
    start = float(first_equity) if first_equity is not None else settings.paper.starting_cash
    k = paper_scale(settings)
    curve = _scaled_curve(equity, start, k)
    trades = gate_store.forward_trades(store, ids).with_columns(pl.col("net_pnl") * k, pl.col("fees") * k)
    errors = _errors(store, sessions)
    metrics = compute_metrics(curve, trades, starting_equity=start, fees=float(trades["fees"].sum() or 0.0),
                              period=cfg.period)
    verdict = evaluate_gate(metrics, errors, cfg, config_hash)
    crashed = int((sessions["status"] == "crashed").sum())
    evidence = Evidence(
        "forward", venue.real_money, f"forward paper on {venue.name}, {len(ids)} session(s)",
        tuple(settings.market.symbols), _utc(equity["ts"][0]), _utc(equity["ts"][-1]) + timedelta(milliseconds=tf),
        covered, _digest(ids, equity, trades), venue=venue.name,
        details={"sessions": ids, "bars": equity.height, "timeframe": settings.market.timeframe,
                 "crashed_sessions": crashed, "metrics_scale": k, "venue": venue.describe()})
    row = verdict.to_record(ids[-1], settings.strategy.name, metrics, evidence)
    if record:
        store.record_gate(row)
    state = "PASSED" if verdict.passed else "FAILED"
    message = (f"FORWARD_{state}: the forward record of config {short} on {venue.name} ({len(ids)} session(s), "
               f"{covered:.1f} days{window}) {state.lower()} the gate"
               + ("" if record else " (not recorded)"))
    return ForwardOutcome("judged", message, covered, need, len(ids), verdict, metrics, evidence,
                          row if record else None)


def _scaled_curve(equity: pl.DataFrame, start: float, k: float) -> pl.DataFrame:
    """The account's curve at ``k`` times the traded size: equity moves k times as far from the start."""
    scaled = pl.lit(start) + (pl.col("equity") - start) * k
    exposure = ((pl.col("equity") - pl.col("cash")) * k / scaled).fill_nan(0.0)
    return equity.select("ts", scaled.alias("equity"),
                         pl.when(pl.col("cash").is_null()).then(pl.col("exposure")).otherwise(exposure)
                         .alias("exposure"))


def _errors(store: Store, sessions: pl.DataFrame) -> list[str]:
    """Every session error: SESSION_ERROR events, and the error of a session closed as failed without one."""
    events = gate_store.session_errors(store, [str(i) for i in sessions["id"].to_list()])
    found = [f"{str(r['session_id'])[:8]}: {r['message']}" for r in events.iter_rows(named=True)]
    seen = set(events["session_id"].to_list()) if events.height else set()
    for row in sessions.iter_rows(named=True):
        if row["status"] == "failed" and row["id"] not in seen:
            found.append(f"{str(row['id'])[:8]}: {row['error'] or 'session failed'}")
    return found


def _window(equity: pl.DataFrame, tf: int) -> str:
    if equity.height == 0:
        return ""
    first, last = _utc(equity["ts"][0]), _utc(equity["ts"][-1]) + timedelta(milliseconds=tf)
    return f", {first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M} UTC"


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise TypeError(f"expected a timestamp, got {value!r}")


def _digest(ids: list[str], equity: pl.DataFrame, trades: pl.DataFrame) -> str:
    """The record's content hash: its sessions, its equity curve and its trades' P&L and fees."""
    parts = ",".join(ids), frame_digest([("equity", equity)], ("ts", "equity")), \
        frame_digest([("trades", trades)], ("net_pnl", "fees"))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


__all__ = ["ForwardOutcome", "evaluate_forward", "paper_scale"]
