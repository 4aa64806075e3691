"""Versioned schema migrations for the Rampart DuckDB store.

``MIGRATIONS`` is the ordered history of the schema; ``migrate`` applies the ones a database lacks,
each in its own transaction, and records them in ``schema_migrations``. A database that carries a
version this code does not know was written by newer code and is refused rather than guessed at.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import duckdb

from core.errors import StoreError


class Migration(NamedTuple):
    """One schema step: applied once, in ``version`` order."""

    version: int
    name: str
    sql: str


_SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name VARCHAR,
    applied_at TIMESTAMPTZ
)
"""

# Operators query these tables by name: keep table and column names stable.
_V1_CORE_TABLES = """
CREATE TABLE sessions (
    id VARCHAR PRIMARY KEY,
    mode VARCHAR NOT NULL CHECK (mode IN ('backtest', 'paper', 'live')),
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    strategy VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    symbols VARCHAR[],
    timeframe VARCHAR,
    status VARCHAR NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    error VARCHAR,
    starting_equity DOUBLE,
    final_equity DOUBLE,
    settings JSON
);

CREATE TABLE orders (
    session_id VARCHAR NOT NULL,
    client_order_id VARCHAR NOT NULL,
    exchange_order_id VARCHAR,
    symbol VARCHAR,
    side VARCHAR,
    type VARCHAR,
    qty DOUBLE,
    price DOUBLE,
    stop_price DOUBLE,
    status VARCHAR,
    filled_qty DOUBLE,
    avg_fill_price DOUBLE,
    created_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    tag VARCHAR,            -- 'entry' | 'exit' | 'stop'
    reason VARCHAR,
    PRIMARY KEY (session_id, client_order_id)
);

CREATE TABLE fills (
    session_id VARCHAR NOT NULL,
    fill_id VARCHAR NOT NULL,
    client_order_id VARCHAR,
    symbol VARCHAR,
    side VARCHAR,
    qty DOUBLE,
    price DOUBLE,
    fee DOUBLE,
    fee_asset VARCHAR,
    liquidity VARCHAR,
    slippage DOUBLE,        -- quote-currency cost versus the reference price
    ts TIMESTAMPTZ,
    PRIMARY KEY (session_id, fill_id)
);

CREATE TABLE trades (
    session_id VARCHAR NOT NULL,
    trade_id VARCHAR NOT NULL,
    mode VARCHAR,
    symbol VARCHAR,
    entry_time TIMESTAMPTZ,
    exit_time TIMESTAMPTZ,
    entry_price DOUBLE,
    exit_price DOUBLE,
    qty DOUBLE,
    fees DOUBLE,
    gross_pnl DOUBLE,
    net_pnl DOUBLE,
    return_pct DOUBLE,
    entry_reason VARCHAR,
    exit_reason VARCHAR,
    exit_kind VARCHAR,      -- 'signal' | 'stop' | 'target' | 'emergency' | 'end'
    PRIMARY KEY (session_id, trade_id)
);

-- No key: a session writes 100k+ rows here and bulk-insert speed matters more than uniqueness.
CREATE TABLE equity (
    session_id VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    equity DOUBLE,
    cash DOUBLE,
    exposure DOUBLE
);

CREATE TABLE decisions (
    session_id VARCHAR NOT NULL,
    decision_id VARCHAR,
    ts TIMESTAMPTZ,
    symbol VARCHAR,
    kind VARCHAR,           -- 'signal' | 'denied' | 'order'
    action VARCHAR,
    code VARCHAR,
    reason VARCHAR,
    details JSON
);

CREATE TABLE events (
    event_id VARCHAR PRIMARY KEY,
    session_id VARCHAR,
    ts TIMESTAMPTZ,
    kind VARCHAR,
    severity VARCHAR CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    code VARCHAR,
    message VARCHAR,
    details JSON
);

CREATE TABLE gate_results (
    id VARCHAR PRIMARY KEY,
    session_id VARCHAR,
    strategy VARCHAR,
    passed BOOLEAN,
    win_rate DOUBLE,
    sharpe DOUBLE,
    sortino DOUBLE,
    max_drawdown DOUBLE,
    profit_factor DOUBLE,
    trades INTEGER,
    thresholds JSON,
    reasons JSON,
    metrics JSON,
    config_hash VARCHAR,
    created_at TIMESTAMPTZ
);
"""

_V2_INDEXES_AND_SUMMARY = """
CREATE INDEX idx_trades_session ON trades (session_id);
CREATE INDEX idx_gate_results_hash_time ON gate_results (config_hash, created_at);

-- win_rate follows R1.3: closed trades with net P&L > 0 / closed trades (NULL when there are none).
CREATE VIEW v_session_summary AS
SELECT
    s.id AS session_id,
    s.mode,
    s.strategy,
    s.status,
    s.started_at,
    s.ended_at,
    coalesce(t.trades, 0) AS trades,
    coalesce(t.net_pnl, 0.0) AS net_pnl,
    t.win_rate,
    s.final_equity
FROM sessions AS s
LEFT JOIN (
    SELECT
        session_id,
        count(*) AS trades,
        sum(net_pnl) AS net_pnl,
        avg(CASE WHEN net_pnl > 0 THEN 1.0 ELSE 0.0 END) AS win_rate
    FROM trades
    GROUP BY session_id
) AS t ON t.session_id = s.id;
"""

# Issues 5-8: the notification outbox, alerts, metric snapshots, scaling decisions, audit anchors.
_V3_MONITORING_SCALING_AUDIT = """
-- The outbox (R3.2): a notification is stored here before any delivery attempt; the dedupe key is the id.
CREATE TABLE notifications (
    notification_id VARCHAR PRIMARY KEY,  -- deterministic per fact (e.g. 'trade-exit:<trade_id>'): dedupe
    created_at TIMESTAMPTZ NOT NULL,
    session_id VARCHAR,
    kind VARCHAR NOT NULL,                -- 'entry' | 'exit' | 'state' | 'breaker' | 'alert' | 'emergency' | ...
    severity VARCHAR CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    urgent BOOLEAN DEFAULT false,         -- skips any batching (emergency)
    title VARCHAR,
    body VARCHAR,
    fields JSON,                          -- label -> value shown in the message
    status VARCHAR NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'logged', 'failed')),
    attempts INTEGER DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ,
    channel VARCHAR,
    message_ts VARCHAR,                   -- Slack's ts of the delivered message
    last_error VARCHAR
);
CREATE INDEX idx_notifications_status ON notifications (status, next_attempt_at);

-- Alerts (R3.4): each with a severity, a coded reason and the evidence.
CREATE TABLE alerts (
    alert_id VARCHAR PRIMARY KEY,
    session_id VARCHAR,
    ts TIMESTAMPTZ NOT NULL,
    rule VARCHAR NOT NULL,                -- 'slippage' | 'rejections' | 'position_mismatch' | 'stale_data' | ...
    severity VARCHAR CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    code VARCHAR NOT NULL,
    reason VARCHAR,
    evidence JSON
);

-- The 15-minute metrics (R3.3), recomputed from trades and equity.
CREATE TABLE metrics_snapshots (
    snapshot_id VARCHAR PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL,
    scope VARCHAR NOT NULL,               -- 'live' (all live sessions) | a session id
    mode VARCHAR,
    trades INTEGER,
    win_rate DOUBLE,
    profit_factor DOUBLE,
    max_drawdown DOUBLE,
    sharpe DOUBLE,
    sortino DOUBLE,
    net_pnl DOUBLE,
    metrics JSON,
    flow_run_id VARCHAR
);

-- Scaling (R5.4): proposed, approved, rejected, expired; with the justification and the history used.
CREATE TABLE scaling_decisions (
    decision_id VARCHAR PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL,
    kind VARCHAR NOT NULL,                -- 'step_up' | 'new_symbol'
    outcome VARCHAR NOT NULL CHECK (outcome IN ('proposed', 'approved', 'rejected', 'expired', 'not_eligible')),
    from_rung INTEGER,
    to_rung INTEGER,
    symbol VARCHAR,
    reviewer VARCHAR,
    comment VARCHAR,
    flow_run_id VARCHAR,
    justification JSON,
    evidence JSON
);

-- Audit-log anchors (R8.5): the journal's latest hash copied here at intervals, so truncation shows.
CREATE TABLE audit_anchors (
    anchor_id VARCHAR PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL,
    seq BIGINT NOT NULL,
    record_hash VARCHAR NOT NULL,
    journal VARCHAR
);
"""

# v4: which venue a session ran on, and whether its trades are live evidence (R5.2, R9.7). Rows written before
# v4 have NULLs: a live session then counts as evidence, as it did.
_V4_SESSION_VENUE = """
ALTER TABLE sessions ADD COLUMN venue VARCHAR;
ALTER TABLE sessions ADD COLUMN live_evidence BOOLEAN;
"""

# v5: each trade's exit reason code (the strategy's TIME_EXIT, TAKE_PROFIT..., STOP, PROTECT): what the parity
# checks and reports compare across backtest, paper and live (R10.3).
_V5_TRADE_EXIT_CODE = """
ALTER TABLE trades ADD COLUMN exit_code VARCHAR;
"""

# v6: a session whose process died is closed as 'crashed' by the next session's start; ``owner`` says which process
# runs a session (host:pid:process start), so the next start can tell a dead one from a live one. DuckDB cannot
# change a CHECK constraint in place: the table is rebuilt with the same columns and rows (the summary view reads it).
_V6_SESSION_CRASHED = """
DROP VIEW v_session_summary;
ALTER TABLE sessions RENAME TO sessions_v5;
CREATE TABLE sessions (
    id VARCHAR PRIMARY KEY,
    mode VARCHAR NOT NULL CHECK (mode IN ('backtest', 'paper', 'live')),
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    strategy VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    symbols VARCHAR[],
    timeframe VARCHAR,
    status VARCHAR NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'crashed')),
    error VARCHAR,
    starting_equity DOUBLE,
    final_equity DOUBLE,
    settings JSON,
    venue VARCHAR,
    live_evidence BOOLEAN,
    owner VARCHAR
);
INSERT INTO sessions (id, mode, started_at, ended_at, strategy, config_hash, symbols, timeframe, status, error,
                      starting_equity, final_equity, settings, venue, live_evidence)
SELECT id, mode, started_at, ended_at, strategy, config_hash, symbols, timeframe, status, error,
       starting_equity, final_equity, settings, venue, live_evidence
FROM sessions_v5;
DROP TABLE sessions_v5;
CREATE VIEW v_session_summary AS
SELECT s.id AS session_id, s.mode, s.strategy, s.status, s.started_at, s.ended_at, coalesce(t.trades, 0) AS trades,
       coalesce(t.net_pnl, 0.0) AS net_pnl, t.win_rate, s.final_equity
FROM sessions AS s
LEFT JOIN (
    SELECT session_id, count(*) AS trades, sum(net_pnl) AS net_pnl,
           avg(CASE WHEN net_pnl > 0 THEN 1.0 ELSE 0.0 END) AS win_rate
    FROM trades GROUP BY session_id
) AS t ON t.session_id = s.id;
"""

# v7: what each gate was judged on (R1.7): the evidence's kind ('synthetic' | 'replay' | 'forward'), whether it is
# real market data, its source, symbols, window, days covered, a content hash, the venue (forward records), the
# session errors it counted and its details (files, seed, sessions). Rows from before v7 have NULLs: no evidence
# recorded, so they never count as real-money evidence (core.gate.golive).
_V7_GATE_EVIDENCE = """
ALTER TABLE gate_results ADD COLUMN evidence VARCHAR;
ALTER TABLE gate_results ADD COLUMN real_data BOOLEAN;
ALTER TABLE gate_results ADD COLUMN data_source VARCHAR;
ALTER TABLE gate_results ADD COLUMN symbols VARCHAR[];
ALTER TABLE gate_results ADD COLUMN window_start TIMESTAMPTZ;
ALTER TABLE gate_results ADD COLUMN window_end TIMESTAMPTZ;
ALTER TABLE gate_results ADD COLUMN days DOUBLE;
ALTER TABLE gate_results ADD COLUMN data_hash VARCHAR;
ALTER TABLE gate_results ADD COLUMN venue VARCHAR;
ALTER TABLE gate_results ADD COLUMN errors INTEGER;
ALTER TABLE gate_results ADD COLUMN data JSON;
"""

# v8: views for the questions operators ask in SQL (docs/data.md), each view and column described in the catalog
# (duckdb_views(), duckdb_columns(): `rampart sql` shows them with .views and .schema). Views only: nothing is
# rewritten, and the replica operators query (core.store.replica) copies them.
_V8_OPERATOR_VIEWS = """
CREATE VIEW v_trades AS
SELECT t.session_id, t.trade_id, coalesce(t.mode, s.mode) AS mode, s.venue, s.strategy, t.symbol,
       t.entry_time, t.exit_time, date_diff('second', t.entry_time, t.exit_time) / 60.0 AS minutes_held,
       t.qty, t.entry_price, t.exit_price, t.qty * t.entry_price AS entry_value,
       t.gross_pnl, t.fees, t.net_pnl, t.return_pct, t.net_pnl > 0 AS won,
       t.entry_reason, t.exit_reason, t.exit_kind, t.exit_code
FROM trades AS t
LEFT JOIN sessions AS s ON s.id = t.session_id;
COMMENT ON VIEW v_trades IS 'Closed trades with their entry and exit reasons, the session''s venue and strategy';
COMMENT ON COLUMN v_trades.minutes_held IS 'exit_time - entry_time in minutes';
COMMENT ON COLUMN v_trades.entry_value IS 'qty * entry_price (quote currency)';
COMMENT ON COLUMN v_trades.won IS 'net_pnl > 0 (after fees), as the win rate counts it (R1.3)';
COMMENT ON COLUMN v_trades.exit_kind IS 'signal | stop | target | emergency | end';
COMMENT ON COLUMN v_trades.exit_code IS 'the exit''s reason code (EXIT, STOP, TAKE_PROFIT, TIME_EXIT, PROTECT...)';

CREATE VIEW v_daily_pnl AS
SELECT CAST(timezone('UTC', t.exit_time) AS DATE) AS day, coalesce(t.mode, s.mode) AS mode,
       count(DISTINCT t.session_id) AS sessions, count(*) AS trades,
       count(*) FILTER (WHERE t.net_pnl > 0) AS wins,
       count(*) FILTER (WHERE t.net_pnl > 0) / count(*) AS win_rate,
       sum(t.gross_pnl) AS gross_pnl, sum(t.fees) AS fees, sum(t.net_pnl) AS net_pnl,
       max(t.net_pnl) AS best_trade, min(t.net_pnl) AS worst_trade
FROM trades AS t
LEFT JOIN sessions AS s ON s.id = t.session_id
WHERE t.exit_time IS NOT NULL
GROUP BY ALL;
COMMENT ON VIEW v_daily_pnl IS 'Realized P&L of closed trades per UTC day (the day they closed) and mode';
COMMENT ON COLUMN v_daily_pnl.day IS 'UTC date of exit_time (market time for backtests and sandbox sessions)';
COMMENT ON COLUMN v_daily_pnl.win_rate IS 'wins / trades (R1.3)';

-- A remainder worth under 5 (Binance's minimum order value, so it cannot be sold) is dust, not a position.
CREATE VIEW v_open_positions AS
WITH f AS (
    SELECT s.mode, s.venue, f.symbol, f.ts, f.fill_id, f.side, f.qty, f.price,
           -- fee is valued in quote at the fill's price; charged in the coin, it took fee / price of it (R9.1)
           CASE WHEN f.side = 'buy' THEN f.qty - CASE WHEN starts_with(f.symbol, coalesce(f.fee_asset, '~'))
                                                      THEN coalesce(f.fee, 0.0) / f.price ELSE 0.0 END
                ELSE -f.qty END AS delta
    FROM fills AS f
    JOIN sessions AS s ON s.id = f.session_id
    WHERE s.venue IS NOT NULL
), held AS (
    SELECT *, sum(delta) OVER w AS held_after
    FROM f
    WINDOW w AS (PARTITION BY mode, venue, symbol ORDER BY ts, fill_id ROWS UNBOUNDED PRECEDING)
), lots AS (
    SELECT *, sum(CASE WHEN side = 'buy' AND (held_after - delta) * price < 5 THEN 1 ELSE 0 END) OVER w AS lot
    FROM held
    WINDOW w AS (PARTITION BY mode, venue, symbol ORDER BY ts, fill_id ROWS UNBOUNDED PRECEDING)
), positions AS (
    SELECT mode, venue, symbol, sum(delta) AS qty, max(ts) AS last_fill_at,
           arg_max(price, epoch_us(ts)) AS last_fill_price, max(lot) AS lot
    FROM lots
    GROUP BY ALL
), entries AS (
    SELECT l.mode, l.venue, l.symbol, min(l.ts) AS opened_at, sum(l.qty * l.price) / sum(l.qty) AS avg_entry_price
    FROM lots AS l
    JOIN positions AS p ON p.mode = l.mode AND p.venue = l.venue AND p.symbol = l.symbol AND p.lot = l.lot
    WHERE l.side = 'buy'
    GROUP BY ALL
), latest AS (
    SELECT mode, venue, arg_max(id, started_at) AS session_id, arg_max(status, started_at) AS session_status
    FROM sessions
    WHERE venue IS NOT NULL
    GROUP BY ALL
), stops AS (
    SELECT session_id, symbol, arg_max(stop_price, updated_at) AS stop_price
    FROM orders
    WHERE tag = 'stop' AND status IN ('submitted', 'accepted', 'partially_filled')
    GROUP BY ALL
)
SELECT p.mode, p.venue, p.symbol, p.qty, e.avg_entry_price, p.qty * e.avg_entry_price AS entry_value, e.opened_at,
       p.last_fill_at, p.last_fill_price, st.stop_price, l.session_id, l.session_status
FROM positions AS p
JOIN entries AS e ON e.mode = p.mode AND e.venue = p.venue AND e.symbol = p.symbol
LEFT JOIN latest AS l ON l.mode = p.mode AND l.venue = p.venue
LEFT JOIN stops AS st ON st.session_id = l.session_id AND st.symbol = p.symbol
WHERE p.qty * e.avg_entry_price >= 5;
COMMENT ON VIEW v_open_positions IS 'What Rampart holds per exchange account by its fills, with the working stop';
COMMENT ON COLUMN v_open_positions.qty IS 'base units: buys (less fees paid in the coin) minus sells, all sessions';
COMMENT ON COLUMN v_open_positions.avg_entry_price IS 'average price of the buys since the position was last flat';
COMMENT ON COLUMN v_open_positions.opened_at IS 'the first buy since the position was last flat';
COMMENT ON COLUMN v_open_positions.stop_price IS 'the working protective stop of the venue''s latest session';
COMMENT ON COLUMN v_open_positions.session_id IS 'the latest session on this venue and mode';

CREATE VIEW v_decisions AS
SELECT d.session_id, s.mode, d.decision_id, d.ts, d.symbol, d.kind, d.action, d.code, d.reason,
       json_extract_string(d.details, '$.denied') AS denied_because,
       json_extract_string(d.details, '$.signal_code') AS signal_code,
       json_extract_string(d.details, '$.state') AS trading_state,
       TRY_CAST(json_extract_string(d.details, '$.market.price') AS DOUBLE) AS price,
       TRY_CAST(json_extract_string(d.details, '$.market.spread_bps') AS DOUBLE) AS spread_bps,
       TRY_CAST(json_extract_string(d.details, '$.stop') AS DOUBLE) AS stop,
       TRY_CAST(json_extract_string(d.details, '$.sizing.qty') AS DOUBLE) AS sized_qty,
       json_extract_string(d.details, '$.sizing.binding') AS sizing_binding,
       CAST(coalesce(json_array_length(d.details, '$.checks'), 0) AS INTEGER) AS checks,
       coalesce((SELECT list(c.value ->> 'check' ORDER BY TRY_CAST(c.key AS INTEGER))
                 FROM json_each(d.details, '$.checks') AS c WHERE c.value ->> 'result' = 'fail'),
                CAST([] AS VARCHAR[])) AS failed_checks,
       d.details
FROM decisions AS d
LEFT JOIN sessions AS s ON s.id = d.session_id;
COMMENT ON VIEW v_decisions IS 'Every decision (signals sent or refused, automatic actions, fills, trades), key facts';
COMMENT ON COLUMN v_decisions.kind IS 'order (sent) | denied (refused) | action (automatic) | execution | fill | trade';
COMMENT ON COLUMN v_decisions.denied_because IS 'why a refused signal was refused';
COMMENT ON COLUMN v_decisions.trading_state IS 'ACTIVE | SAFE_MODE | HALTED when it was decided';
COMMENT ON COLUMN v_decisions.price IS 'the close the signal was decided on';
COMMENT ON COLUMN v_decisions.spread_bps IS 'the spread at decision time (live)';
COMMENT ON COLUMN v_decisions.sized_qty IS 'the quantity sizing gave (sent orders)';
COMMENT ON COLUMN v_decisions.sizing_binding IS 'which limit set the size (risk, exposure_cap, cash...)';
COMMENT ON COLUMN v_decisions.checks IS 'risk checks run (see v_decision_checks)';
COMMENT ON COLUMN v_decisions.failed_checks IS 'names of the checks that failed, in order';

CREATE VIEW v_decision_checks AS
SELECT d.session_id, s.mode, d.decision_id, d.ts, d.symbol, d.kind, d.action, d.code, d.reason,
       TRY_CAST(c.key AS INTEGER) + 1 AS check_no, c.value ->> 'check' AS check_name, c.value ->> 'result' AS result,
       c.value AS check_details
FROM decisions AS d
LEFT JOIN sessions AS s ON s.id = d.session_id,
     json_each(d.details, '$.checks') AS c;
COMMENT ON VIEW v_decision_checks IS 'One row per risk check of a decision (R3.5), check_no in the order they ran';
COMMENT ON COLUMN v_decision_checks.result IS 'pass | fail | off';
COMMENT ON COLUMN v_decision_checks.check_details IS 'the check''s inputs and limits (JSON)';

CREATE VIEW v_alerts AS
SELECT a.alert_id, a.ts, a.session_id, s.mode, s.venue, s.strategy, a.rule, a.severity, a.code, a.reason, a.evidence,
       n.status AS notification_status, n.delivered_at
FROM alerts AS a
LEFT JOIN sessions AS s ON s.id = a.session_id
LEFT JOIN notifications AS n ON n.notification_id = 'alert:' || a.alert_id;
COMMENT ON VIEW v_alerts IS 'Alerts (R3.4) with their session and their notification';
COMMENT ON VIEW v_session_summary IS 'One row per session: mode, strategy, status, trades, net P&L, win rate';
COMMENT ON COLUMN v_alerts.notification_status IS 'pending | delivered | logged | failed (NULL: shared another''s)';
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables", _V1_CORE_TABLES),
    Migration(2, "indexes and session summary view", _V2_INDEXES_AND_SUMMARY),
    Migration(3, "outbox, alerts, metric snapshots, scaling decisions, audit anchors", _V3_MONITORING_SCALING_AUDIT),
    Migration(4, "session venue and live evidence", _V4_SESSION_VENUE),
    Migration(5, "trade exit codes", _V5_TRADE_EXIT_CODE),
    Migration(6, "crashed sessions and session owners", _V6_SESSION_CRASHED),
    Migration(7, "gate evidence", _V7_GATE_EVIDENCE),
    Migration(8, "operator views", _V8_OPERATOR_VIEWS),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _check_ordered(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)) or any(v < 1 for v in versions):
        raise StoreError(f"migration versions must be unique, positive and ascending, got {versions}")


def applied_versions(conn: duckdb.DuckDBPyConnection) -> list[int]:
    """Versions recorded in ``schema_migrations`` (empty for a fresh database)."""
    conn.execute(_SCHEMA_MIGRATIONS_DDL)
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    return [row[0] for row in rows]


def current_version(conn: duckdb.DuckDBPyConnection) -> int:
    """Highest applied version, 0 for a fresh database. Works on read-only connections."""
    # fetchall, not fetchone: DuckDB 2.0 refuses further work on a connection with an unfinished result.
    tables = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchall()
    if tables[0][0] == 0:
        return 0
    rows = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()
    return int(rows[0][0])


def migrate(
    conn: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply the missing migrations in order, each in its own transaction; return the versions applied.

    ``conn`` must be writable and not inside a transaction. Raises StoreError when the database holds a
    version this code does not know (it was written by newer code) or a migration fails (that
    migration is rolled back; earlier ones stay applied).
    """
    _check_ordered(migrations)
    try:
        done = applied_versions(conn)
    except duckdb.Error as exc:
        raise StoreError(f"cannot read schema_migrations: {exc}") from exc
    known = {m.version for m in migrations}
    unknown = sorted(set(done) - known)
    if unknown:
        raise StoreError(
            f"database schema has version(s) {unknown} unknown to this code (it knows up to "
            f"{max(known, default=0)}): it was written by a newer Rampart; upgrade Rampart or use "
            "another RAMPART_DATA_DIR"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        _apply_one(conn, migration)
        applied.append(migration.version)
    return applied


def _apply_one(conn: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(migration.sql)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            [migration.version, migration.name, datetime.now(UTC)],
        )
        conn.execute("COMMIT")
    except duckdb.Error as exc:
        conn.execute("ROLLBACK")
        raise StoreError(
            f"migration {migration.version} ({migration.name}) failed and was rolled back: {exc}"
        ) from exc
