"""Read one UTC day of live trading from DuckDB: sessions, equity, trades with their orders and decisions, fills,
events, plus the cumulative history up to the day's end and the paper-validation baseline.

Which rows belong to the day: equity points and events stamped inside it, trades that closed inside it. A
session whose bars run on a replayed clock (the sandbox) but whose control events carry wall time (emergency
stop, overrides) gets those events at its last bar, so the day they concern still shows them. The statements are
in ``core.store.trading``.

A ``Period`` can also be one session's own span (``rampart report daily --session ID``): its bars from first to
last on whatever clock they ran (the sandbox's market time), that session's rows only, from its own starting equity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from core.store import Store
from core.store import trading as trading_repo

DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TS = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Period:
    """What a report covers: [start, end) and the day it is filed under; ``session_id`` limits it to one session,
    ``clock`` says whether its times are the wall clock or a replayed market clock (the sandbox's)."""

    day: date
    start: datetime
    end: datetime
    session_id: str | None = None
    clock: str = "wall"
    note: str | None = None  # why this period was chosen, when the operator did not name it

    @classmethod
    def of_day(cls, day: date) -> Period:
        return cls(day, *day_bounds(day))

    @property
    def is_day(self) -> bool:
        return self.session_id is None and (self.start, self.end) == day_bounds(self.day)

    @property
    def label(self) -> str:
        """'2024-01-01' for a day; 'session 1a2b3c4d, 2024-01-01 23:50 – 2024-01-02 00:14 UTC (market time)'."""
        if self.is_day:
            return self.day.isoformat()
        span = f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"
        who = f"session {self.session_id[:8]}, " if self.session_id else ""
        return f"{who}{span}" + (" (market time)" if self.clock == "market" else "")

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "session_id": self.session_id, "clock": self.clock,
                "label": self.label}


@dataclass
class DayData:
    """Everything the report reads, as frames (timestamps UTC)."""

    day: date
    start: datetime
    end: datetime
    sessions: pl.DataFrame  # live sessions that marked equity, closed a trade or logged an event in the day
    equity: pl.DataFrame  # ts, equity, cash, exposure, session_id — inside the day, ascending
    start_equity: float | None  # equity at 00:00 UTC, or at session start when later (SPEC conventions)
    trades: pl.DataFrame  # live trades closed in the day, with entry/exit order and decision links
    fills: pl.DataFrame  # the day's sessions' fills with order type/tag and the decision's reference price
    decisions: pl.DataFrame  # the day's sessions' decisions (since the earliest entry of a trade closed today)
    events: pl.DataFrame  # events of the day (session events and session-less ones: alerts, emergency stops)
    history_equity: pl.DataFrame  # every live equity point before the day's end (cumulative metrics)
    history_trades: pl.DataFrame  # every live trade closed before the day's end
    first_equity: float | None  # starting equity of the first live session (cumulative metrics)
    paper: dict[str, Any] | None = None  # latest passed gate for the config hash, with its session's trades
    config_hash: str | None = None
    settings_json: dict[str, Any] = field(default_factory=dict)  # the latest session's stored settings
    period: Period | None = None  # None: the UTC day ``day``

    @property
    def session_ids(self) -> list[str]:
        return [str(s) for s in self.sessions["id"].to_list()] if self.sessions.height else []


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + DAY


def load_day(store: Store, day: date, period: Period | None = None) -> DayData:
    """Read the day (or ``period``); an empty day (no live session) comes back with empty frames, never an error."""
    period = period or Period.of_day(day)
    day, start, end = period.day, period.start, period.end
    sessions = _sessions(store, start, end) if period.session_id is None else _one_session(store, period)
    ids = [str(i) for i in sessions["id"].to_list()] if sessions.height else []
    equity = trading_repo.session_equity(store, ids, start, end)
    trades = trading_repo.session_trades_closed(store, ids, start, end)
    since = start
    if trades.height:
        since = min(start, trades["entry_time"].min())  # type: ignore[type-var,assignment]
    # Decisions that created an order carry its client order id: the link from a fill back to its decision.
    decisions = trading_repo.session_decisions(store, ids, since - DAY, end)
    fills = _fills(store, ids, since - DAY, end, decisions)
    history_equity, history_trades, first_equity = _history(store, end)
    events = _events(store, sessions, ids, start, end)
    if period.session_id is not None and events.height:  # its own events and those of no session
        events = events.filter(pl.col("session_id").is_null() | pl.col("session_id").is_in(ids))
    data = DayData(day, start, end, sessions, equity, _start_equity(sessions, equity), trades, fills,
                   decisions, events, history_equity, history_trades, first_equity, period=period)
    if sessions.height:
        latest = sessions.sort("started_at").row(-1, named=True)
        data.config_hash = latest["config_hash"]
        data.settings_json = _json(latest.get("settings"))
        data.paper = load_paper_baseline(store, str(latest["config_hash"]))
    data.trades = link_trades(data.trades, fills, decisions)
    return data


def _sessions(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    """The day's live sessions with their bar span and the last live equity mark before the day (one query)."""
    return trading_repo.day_sessions(store, start, end)


def _one_session(store: Store, period: Period) -> pl.DataFrame:
    """The period's session when its bars reach into the period (as ``day_sessions`` shapes it), else empty."""
    span = trading_repo.session_spans(store, period.session_id).filter(pl.col("id") == period.session_id)
    if not span.height:
        return span
    row = span.row(0, named=True)
    inside = row["first_bar"] is not None and row["first_bar"] < period.end and row["last_bar"] >= period.start
    if not inside:
        return span.clear()
    before = trading_repo.session_equity(store, [str(row["id"])], EPOCH, period.start)
    if before.height:  # a later day of the session starts from its own last mark before the day
        span = span.with_columns(pl.lit(float(before["equity"][-1]), pl.Float64).alias("prior_equity"))
    return span


def _start_equity(sessions: pl.DataFrame, equity: pl.DataFrame) -> float | None:
    """Equity at 00:00 UTC: the last live mark before the day, else the first session's starting equity."""
    if not sessions.height:
        return None
    prior = sessions["prior_equity"].drop_nulls()
    if prior.len():
        return float(prior[0])
    first = sessions["starting_equity"].drop_nulls()
    if first.len():
        return float(first[0])
    return float(equity["equity"][0]) if equity.height else None


def _fills(store: Store, ids: list[str], since: datetime, end: datetime, decisions: pl.DataFrame) -> pl.DataFrame:
    """Fills with their order's type, tag and stop, and the reference price their cost is measured from:
    the decision's market price for market orders, the stop price for stops."""
    fills = trading_repo.session_fills(store, ids, since, end)
    refs = decisions.filter(pl.col("client_order_id").is_not_null()).select(
        "session_id", "client_order_id", pl.col("ref_price").alias("decision_price")).unique(
        ["session_id", "client_order_id"], keep="first")
    if not fills.height:
        return fills.with_columns(pl.lit(None, pl.Float64).alias("ref_price"))
    fills = fills.join(refs, on=["session_id", "client_order_id"], how="left")
    ref = pl.when(pl.col("tag") == "stop").then(pl.col("stop_price")).otherwise(pl.col("decision_price"))
    return fills.with_columns(ref.alias("ref_price")).drop("decision_price")


def _events(store: Store, sessions: pl.DataFrame, ids: list[str], start: datetime, end: datetime) -> pl.DataFrame:
    events = trading_repo.day_events(store, start, end)
    replayed = _replayed_sessions(sessions, start, end)
    if replayed:
        # only events stamped a day or more away from the session's bars: those carry wall time
        late = trading_repo.wall_clock_events(store, replayed)
        if late.height:
            events = pl.concat([events, late.cast(events.schema)]).unique("event_id").sort("ts")
    return events


def _replayed_sessions(sessions: pl.DataFrame, start: datetime, end: datetime) -> list[str]:
    """Sessions whose bars ran on a replayed clock (bar time a day or more away from the wall time they started
    at) and whose last bar falls in this day."""
    out = []
    for row in sessions.iter_rows(named=True):
        first, last = row.get("first_bar"), row.get("last_bar")
        if first is None or last is None or not start <= last < end:
            continue
        if abs(row["started_at"] - first) >= DAY:
            out.append(str(row["id"]))
    return out


def _history(store: Store, end: datetime) -> tuple[pl.DataFrame, pl.DataFrame, float | None]:
    equity = trading_repo.live_equity_before(store, end)
    trades = trading_repo.live_trades_before(store, end)
    # ordered by first bar, not started_at: a replayed (sandbox) session's bars and wall clock differ
    return equity, trades, trading_repo.first_live_starting_equity(store, end)


def load_paper_baseline(store: Store, config_hash: str) -> dict[str, Any] | None:
    """The latest passed gate for ``config_hash`` (its metrics) and its paper session's per-trade numbers."""
    gate = trading_repo.latest_passed_gate_costs(store, config_hash)
    if not gate.height:
        return None
    row = gate.row(0, named=True)
    trades = trading_repo.session_trades(store, row["session_id"])
    return {"gate_id": row["id"], "session_id": row["session_id"], "created_at": row["created_at"],
            "metrics": _json(row["metrics"]), "thresholds": _json(row["thresholds"]), "trades": trades,
            "slippage": float(row["slippage"]), "fill_notional": float(row["notional"])}


def link_trades(trades: pl.DataFrame, fills: pl.DataFrame, decisions: pl.DataFrame) -> pl.DataFrame:
    """Each trade with the client order ids of its entry (first buy fill) and exit (last sell fill), the exit
    order's tag and stop price, and the entry/exit decisions (time, details JSON)."""
    if not trades.height:
        return trades
    keys = ["session_id", "symbol"]
    buys = (fills.filter(pl.col("side") == "buy").group_by([*keys, "ts"]).agg(
        pl.col("client_order_id").first().alias("entry_cid")).rename({"ts": "entry_time"}))
    sells = (fills.filter(pl.col("side") == "sell").group_by([*keys, "ts"]).agg(
        pl.col("client_order_id").last().alias("exit_cid"), pl.col("tag").last().alias("exit_tag"),
        pl.col("stop_price").last().alias("exit_stop")).rename({"ts": "exit_time"}))
    by_cid = decisions.filter(pl.col("client_order_id").is_not_null()).unique(
        ["session_id", "client_order_id"], keep="first")
    entry = by_cid.select("session_id", pl.col("client_order_id").alias("entry_cid"),
                          pl.col("ts").alias("entry_decided"), pl.col("details").alias("entry_details"))
    exit_ = by_cid.select("session_id", pl.col("client_order_id").alias("exit_cid"),
                          pl.col("ts").alias("exit_decided"), pl.col("details").alias("exit_details"))
    return (trades.join(buys.with_columns(pl.col("entry_time").cast(_TS)), on=[*keys, "entry_time"], how="left")
            .join(sells.with_columns(pl.col("exit_time").cast(_TS)), on=[*keys, "exit_time"], how="left")
            .join(entry, on=["session_id", "entry_cid"], how="left")
            .join(exit_, on=["session_id", "exit_cid"], how="left")
            .sort("exit_time", "trade_id"))


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {}
    return value if value is not None else {}


__all__ = ["DAY", "DayData", "Period", "day_bounds", "link_trades", "load_day", "load_paper_baseline"]
