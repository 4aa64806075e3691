"""Named reads of the trading history: sessions, trades, equity, fills, decisions, events and gate verdicts.

The daily report, the alert monitor, the 15-minute metrics, the decision log, scaling eligibility and key rotation
read the store through these functions instead of writing SQL. Each is one ``Store.query`` (one read-only unit of
work) and returns a polars frame (timestamps in UTC) unless its docstring says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl

from core.store.repository import Store

# Live results are the live sessions that are live evidence: a rehearsal on Binance's demo or testnet network
# (sessions.live_evidence false, R9.7) never counts in reports, metrics or scaling; older rows (NULL) did trade live.
EVIDENCE = "coalesce({s}.live_evidence, true)"
LIVE_IDS = "(SELECT id FROM sessions WHERE mode = 'live' AND coalesce(live_evidence, true))"

# Decisions that created an order carry its client order id: the link from a fill back to its decision.
_DECISION_SQL = """
SELECT session_id, ts, symbol, kind, action, code, reason, details,
       json_extract_string(details, '$.order.client_order_id') AS client_order_id,
       TRY_CAST(json_extract(details, '$.market.price') AS DOUBLE) AS ref_price
FROM decisions WHERE session_id IN ({ids}) AND ts >= ? AND ts < ?
"""

_DAY_SESSIONS_SQL = """
WITH day_ids AS (
    SELECT session_id FROM equity WHERE ts >= ? AND ts < ?
    UNION SELECT session_id FROM trades WHERE exit_time >= ? AND exit_time < ?
    UNION SELECT session_id FROM events WHERE ts >= ? AND ts < ? AND code = 'SESSION_STARTED'
)
SELECT s.*, b.first_bar, b.last_bar, b.bars,
       (SELECT e.equity FROM equity e JOIN sessions p ON p.id = e.session_id
        WHERE p.mode = 'live' AND coalesce(p.live_evidence, true) AND e.ts < ? ORDER BY e.ts DESC LIMIT 1)
       AS prior_equity
FROM sessions s
LEFT JOIN (SELECT session_id, min(ts) AS first_bar, max(ts) AS last_bar, count(*) AS bars FROM equity
           GROUP BY session_id) b ON b.session_id = s.id
WHERE s.mode = 'live' AND coalesce(s.live_evidence, true) AND s.id IN (SELECT session_id FROM day_ids)
ORDER BY s.started_at
"""

# Within one bar of the engine clock: decisions, then the orders they sent (and cancels), then the fills booked on
# it (a market order's fill is booked on the bar it was sent), then the protective stops placed after an entry's
# fill, then the trade a fill closed. Ties keep the order the rows were made in (decision_id).
_STORY_ORDER = ("CASE WHEN kind = 'execution' AND json_extract(details, '$.request.params.stopLossPrice') IS NOT NULL "
                "THEN 3 WHEN kind = 'execution' THEN 1 WHEN kind = 'fill' THEN 2 WHEN kind = 'trade' THEN 4 ELSE 0 END")


def _live_scope(session_id: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (on ``sessions s``) for all live-evidence sessions, or for one live session (a rehearsal's
    own metrics are its own)."""
    if session_id is None:
        return f"s.mode = 'live' AND {EVIDENCE.format(s='s')}", []
    return "s.mode = 'live' AND s.id = ?", [session_id]


def _in_sessions(store: Store, sql: str, ids: Sequence[str], params: Sequence[Any]) -> pl.DataFrame:
    """Run ``sql`` with ``{ids}`` bound to the session ids (an empty list matches nothing)."""
    marks = ", ".join("?" for _ in ids) or "NULL"
    return store.query(sql.format(ids=marks), [*ids, *params])


# --------------------------------------------------------------------- sessions
def day_sessions(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    """Live sessions that marked equity, closed a trade or started in [start, end): every sessions column plus
    first_bar, last_bar, bars (their whole equity span) and prior_equity (the last live mark before ``start``),
    ordered by started_at."""
    return store.query(_DAY_SESSIONS_SQL, [start, end, start, end, start, end, start])


_SPAN_SQL = """
SELECT s.*, b.first_bar, b.last_bar, coalesce(b.bars, 0) AS bars, CAST(NULL AS DOUBLE) AS prior_equity
FROM sessions s
LEFT JOIN (SELECT session_id, min(ts) AS first_bar, max(ts) AS last_bar, count(*) AS bars FROM equity
           GROUP BY session_id) b ON b.session_id = s.id
WHERE {where} ORDER BY s.started_at DESC, s.id LIMIT 10
"""


def session_spans(store: Store, id_prefix: str | None = None) -> pl.DataFrame:
    """Sessions whose id starts with ``id_prefix`` (any mode), or the latest live-evidence session with bars when
    None: every sessions column plus first_bar, last_bar, bars and prior_equity (NULL: a session's own report starts
    from its own starting equity), newest first, at most 10 rows."""
    if id_prefix is None:
        return store.query(_SPAN_SQL.format(where=f"s.mode = 'live' AND {EVIDENCE.format(s='s')} AND b.bars > 0"))
    return store.query(_SPAN_SQL.format(where="starts_with(s.id, ?)"), [id_prefix])


def live_sessions(store: Store, session_id: str | None = None) -> pl.DataFrame:
    """id, starting_equity of every live session (or of live session ``session_id``), by started_at, id."""
    where, params = _live_scope(session_id)
    return store.query(f"SELECT s.id, s.starting_equity FROM sessions s WHERE {where} "
                       "ORDER BY s.started_at, s.id", params)


def running_live_session(store: Store) -> str | None:
    """The id of the latest-started live session still running, or None."""
    running = store.query("SELECT id FROM sessions WHERE mode = 'live' AND status = 'running' "
                          "ORDER BY started_at DESC LIMIT 1")
    return str(running["id"][0]) if running.height else None


def first_live_starting_equity(store: Store, end: datetime) -> float | None:
    """The starting equity of the live session whose first bar before ``end`` came first (by bar time, not
    started_at: a replayed sandbox session's bars and wall clock differ), or None."""
    first = store.query("SELECT s.starting_equity FROM sessions s JOIN (SELECT session_id, min(ts) AS first_bar "
                        "FROM equity WHERE ts < ? GROUP BY session_id) b ON b.session_id = s.id WHERE s.mode = "
                        f"'live' AND {EVIDENCE.format(s='s')} AND s.starting_equity IS NOT NULL "
                        "ORDER BY b.first_bar LIMIT 1", [end])
    return float(first["starting_equity"][0]) if first.height else None


# --------------------------------------------------------------------- equity
def session_equity(store: Store, session_ids: Sequence[str], start: datetime, end: datetime) -> pl.DataFrame:
    """session_id, ts, equity, cash, exposure of these sessions' marks in [start, end), by ts."""
    return _in_sessions(store, "SELECT session_id, ts, equity, cash, exposure FROM equity WHERE session_id IN ({ids}) "
                               "AND ts >= ? AND ts < ? ORDER BY ts", session_ids, [start, end])


def live_equity(store: Store, session_id: str | None = None) -> pl.DataFrame:
    """ts, equity, exposure of every live mark (or of live session ``session_id``), by ts."""
    where, params = _live_scope(session_id)
    return store.query(f"SELECT e.ts, e.equity, e.exposure FROM equity e JOIN sessions s ON s.id = e.session_id "
                       f"WHERE {where} ORDER BY e.ts", params)


def live_equity_before(store: Store, end: datetime) -> pl.DataFrame:
    """ts, equity, exposure of every live mark before ``end``, by ts."""
    return store.query("SELECT e.ts, e.equity, e.exposure FROM equity e JOIN sessions s ON s.id = e.session_id "
                       f"WHERE s.mode = 'live' AND {EVIDENCE.format(s='s')} AND e.ts < ? ORDER BY e.ts", [end])


def live_equity_between(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    """ts, equity, exposure of the live marks in [start, end] (both ends included), by ts."""
    return store.query("SELECT e.ts, e.equity, e.exposure FROM equity e JOIN sessions s ON s.id = e.session_id "
                       f"WHERE s.mode = 'live' AND {EVIDENCE.format(s='s')} AND e.ts >= ? AND e.ts <= ? ORDER BY e.ts",
                       [start, end])


# --------------------------------------------------------------------- trades
def session_trades_closed(store: Store, session_ids: Sequence[str], start: datetime, end: datetime) -> pl.DataFrame:
    """Every trades column of these sessions' live trades closed in [start, end), by exit_time, trade_id."""
    return _in_sessions(store, "SELECT * FROM trades WHERE session_id IN ({ids}) AND mode = 'live' AND exit_time >= ? "
                               "AND exit_time < ? ORDER BY exit_time, trade_id", session_ids, [start, end])


def live_trades(store: Store, session_id: str | None = None) -> pl.DataFrame:
    """trade_id, net_pnl, fees, exit_time of every live session's trades (or of live session ``session_id``),
    by exit_time, trade_id."""
    where, params = _live_scope(session_id)
    return store.query(f"SELECT t.trade_id, t.net_pnl, t.fees, t.exit_time FROM trades t JOIN sessions s "
                       f"ON s.id = t.session_id WHERE {where} ORDER BY t.exit_time, t.trade_id", params)


def latest_live_trades(store: Store, config_hash: str, limit: int, evidence: bool = True) -> pl.DataFrame:
    """trade_id, net_pnl of the ``limit`` latest live trades of sessions with ``config_hash``, newest first
    (``evidence`` False: of the rehearsal networks' sessions instead)."""
    return store.query(
        "SELECT t.trade_id, t.net_pnl FROM trades t JOIN sessions s ON s.id = t.session_id "
        f"WHERE s.mode = 'live' AND {EVIDENCE.format(s='s')} = ? AND s.config_hash = ? "
        "ORDER BY t.exit_time DESC, t.trade_id DESC LIMIT ?", [evidence, config_hash, limit])


def live_trades_before(store: Store, end: datetime) -> pl.DataFrame:
    """net_pnl, fees, exit_time of every live trade closed before ``end``, by exit_time."""
    return store.query(f"SELECT net_pnl, fees, exit_time FROM trades WHERE session_id IN {LIVE_IDS} "
                       "AND exit_time < ? ORDER BY exit_time", [end])


def live_trades_between(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    """trade_id, symbol, exit_time, net_pnl, fees of the live trades closed in [start, end], by exit_time."""
    return store.query("SELECT trade_id, symbol, exit_time, net_pnl, fees FROM trades WHERE session_id IN "
                       f"{LIVE_IDS} AND exit_time >= ? AND exit_time <= ? ORDER BY exit_time", [start, end])


def session_trades(store: Store, session_id: str) -> pl.DataFrame:
    """net_pnl, fees, return_pct, qty, entry_price of every trade of one session (stored order)."""
    return store.query("SELECT net_pnl, fees, return_pct, qty, entry_price FROM trades WHERE session_id = ?",
                       [session_id])


# --------------------------------------------------------------------- fills
def session_fills(store: Store, session_ids: Sequence[str], since: datetime, end: datetime) -> pl.DataFrame:
    """These sessions' fills in [since, end) by ts: session_id, fill_id, client_order_id, symbol, side, qty, price,
    fee, ts, and their order's order_type, tag and stop_price (null when the order is not stored)."""
    return _in_sessions(store, "SELECT f.session_id, f.fill_id, f.client_order_id, f.symbol, f.side, f.qty, f.price, "
                               "f.fee, f.ts, o.type AS order_type, o.tag, o.stop_price FROM fills f LEFT JOIN orders o "
                               "ON o.session_id = f.session_id AND o.client_order_id = f.client_order_id WHERE "
                               "f.session_id IN ({ids}) AND f.ts >= ? AND f.ts < ? ORDER BY f.ts",
                        session_ids, [since, end])


# --------------------------------------------------------------------- decisions
def session_decisions(store: Store, session_ids: Sequence[str], since: datetime, end: datetime) -> pl.DataFrame:
    """These sessions' decisions in [since, end): session_id, ts, symbol, kind, action, code, reason, details,
    plus client_order_id (of the order a decision created) and ref_price (the market price it saw)."""
    return _in_sessions(store, _DECISION_SQL, session_ids, [since, end])


def order_decisions(store: Store, session_id: str, client_order_ids: Sequence[str]) -> pl.DataFrame:
    """decision_id, ts, symbol, kind, action, code, reason, details of one session's decisions about these orders
    (as the order, fill or trade's exit), in the order things happened."""
    ids = list(client_order_ids)
    return store.query(
        "SELECT decision_id, ts, symbol, kind, action, code, reason, details FROM decisions "
        "WHERE session_id = ? AND (list_contains(?::VARCHAR[], json_extract_string(details, '$.order.client_order_id'))"
        " OR list_contains(?::VARCHAR[], json_extract_string(details, '$.client_order_id'))"
        " OR list_contains(?::VARCHAR[], json_extract_string(details, '$.exit_client_order_id'))) "
        f"ORDER BY ts, {_STORY_ORDER}, decision_id", [session_id, ids, ids, ids])


def trade_decision(store: Store, session_id: str, trade_id: str) -> pl.DataFrame:
    """details of the ``trade`` decision row(s) of one closed trade of a session."""
    return store.query("SELECT details FROM decisions WHERE session_id = ? AND kind = 'trade' AND "
                       "json_extract_string(details, '$.trade_id') = ?", [session_id, trade_id])


# --------------------------------------------------------------------- events
def day_events(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    """event_id, session_id, ts, kind, severity, code, message, details of the events in [start, end) of live
    sessions or of no session, by ts."""
    return store.query("SELECT event_id, session_id, ts, kind, severity, code, message, details FROM events "
                       f"WHERE ts >= ? AND ts < ? AND (session_id IS NULL OR session_id IN {LIVE_IDS}) ORDER BY ts",
                       [start, end])


def wall_clock_events(store: Store, session_ids: Sequence[str]) -> pl.DataFrame:
    """The events of these sessions stamped a day or more away from their bars (they carry wall time), as in
    ``day_events`` but with ts = the session's last bar; unordered."""
    marks = ", ".join("?" for _ in session_ids)
    return store.query(f"SELECT e.event_id, e.session_id, s.last_bar AS ts, e.kind, e.severity, e.code, "
                       f"e.message, e.details FROM events e JOIN (SELECT session_id, min(ts) AS first_bar, "
                       f"max(ts) AS last_bar FROM equity GROUP BY session_id) s ON s.session_id = e.session_id "
                       f"WHERE e.session_id IN ({marks}) AND (e.ts < s.first_bar - INTERVAL 1 DAY OR "
                       f"e.ts > s.last_bar + INTERVAL 1 DAY)", list(session_ids))


def rung_events(store: Store, until: datetime) -> pl.DataFrame:
    """ts, code, to_rung (text, SCALING_APPLIED only) of the live sessions' SESSION_STARTED and SCALING_APPLIED
    events up to ``until``, by ts, event_id."""
    return store.query(
        "SELECT e.ts, e.code, json_extract_string(e.details, '$.to_rung') AS to_rung FROM events e "
        f"JOIN sessions s ON s.id = e.session_id WHERE s.mode = 'live' AND {EVIDENCE.format(s='s')} AND e.code IN ("
        "'SESSION_STARTED', "
        "'SCALING_APPLIED') AND e.ts <= ? ORDER BY e.ts, e.event_id", [until])


def coded_live_events(store: Store, codes: Sequence[str], start: datetime, end: datetime) -> pl.DataFrame:
    """ts, code, message, session_id of the events with one of ``codes`` in [start, end] of live sessions or of
    no session, by ts."""
    marks = ", ".join("?" for _ in codes) or "NULL"
    return store.query(
        f"SELECT e.ts, e.code, e.message, e.session_id FROM events e LEFT JOIN sessions s ON s.id = e.session_id "
        f"WHERE e.code IN ({marks}) AND ((s.mode = 'live' AND {EVIDENCE.format(s='s')}) OR e.session_id IS NULL) "
        "AND e.ts >= ? AND e.ts <= ? "
        "ORDER BY e.ts", [*codes, start, end])


def key_event_answering(store: Store, request_id: str) -> tuple[Any, ...] | None:
    """(code, message, details) of a KEY_* event answering the rotation request ``request_id``, or None."""
    rows = store.query("select code, message, details from events where code like 'KEY_%' and "
                       "json_extract_string(details, '$.request_id') = ? limit 1", [request_id]).rows()
    return rows[0] if rows else None


# --------------------------------------------------------------------- gate verdicts
def latest_passed_gate(store: Store, config_hash: str) -> pl.DataFrame:
    """id, win_rate, profit_factor of the newest passed gate for ``config_hash`` (at most one row)."""
    return store.query("SELECT id, win_rate, profit_factor FROM gate_results WHERE config_hash = ? AND passed "
                       "ORDER BY created_at DESC LIMIT 1", [config_hash])


def latest_passed_gate_costs(store: Store, config_hash: str) -> pl.DataFrame:
    """id, session_id, created_at, metrics, thresholds (JSON text) of the newest passed gate for ``config_hash``,
    with its session's summed fill slippage and fill notional (qty * price); at most one row."""
    return store.query("SELECT g.id, g.session_id, g.created_at, g.metrics, g.thresholds, (SELECT coalesce(sum("
                       "f.slippage), 0) FROM fills f WHERE f.session_id = g.session_id) AS slippage, (SELECT "
                       "coalesce(sum(f.qty * f.price), 0) FROM fills f WHERE f.session_id = g.session_id) AS notional "
                       "FROM gate_results g WHERE g.config_hash = ? AND g.passed ORDER BY g.created_at DESC LIMIT 1",
                       [config_hash])


__all__ = ["coded_live_events", "day_events", "day_sessions", "first_live_starting_equity", "key_event_answering",
           "latest_live_trades", "latest_passed_gate", "latest_passed_gate_costs", "live_equity",
           "live_equity_before", "live_equity_between", "live_sessions", "live_trades", "live_trades_before",
           "live_trades_between", "order_decisions", "rung_events", "running_live_session", "session_decisions",
           "session_equity", "session_fills", "session_spans", "session_trades", "session_trades_closed",
           "trade_decision", "wall_clock_events"]
