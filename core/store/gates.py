"""Named reads for the gate (R1.5–R1.7): every gate attempt for a config hash, and the forward paper record.

A forward paper session is a ``sessions`` row with mode 'paper' and ``"forward": true`` in its settings, on a venue;
its equity curve, trades (mode 'paper') and events are stored bar by bar, as a live session's are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import polars as pl

from core.store.repository import Store

_JSON = ("thresholds", "reasons", "metrics", "data")
_FORWARD = "json_extract_string(settings, '$.forward') = 'true'"


def gate_attempts(store: Store, config_hash: str | None = None) -> list[dict[str, Any]]:
    """Every gate record for ``config_hash`` (all of them when None), oldest first, JSON columns decoded."""
    where, params = ("WHERE config_hash = ? ", [config_hash]) if config_hash is not None else ("", [])
    frame = store.query(f"SELECT * FROM gate_results {where}ORDER BY created_at NULLS FIRST, rowid", params or None)
    rows = frame.rows(named=True)
    for row in rows:
        for name in _JSON:
            if isinstance(row.get(name), str):
                with suppress(ValueError):  # else kept as the text it is; the gate treats the field as absent
                    row[name] = json.loads(row[name])
    return rows


def config_hashes(store: Store, prefix: str) -> list[str]:
    """The config hashes with a gate record that start with ``prefix`` (for ``rampart gate history --config``)."""
    frame = store.query("SELECT DISTINCT config_hash FROM gate_results WHERE starts_with(config_hash, ?) "
                        "ORDER BY config_hash", [prefix])
    return [str(h) for h in frame["config_hash"].to_list()] if frame.height else []


def forward_sessions(store: Store, config_hash: str, venue: str) -> pl.DataFrame:
    """id, status, started_at, ended_at, starting_equity, error of the forward paper sessions of ``config_hash`` on
    ``venue``, oldest first."""
    return store.query("SELECT id, status, started_at, ended_at, starting_equity, error FROM sessions "
                       f"WHERE mode = 'paper' AND {_FORWARD} AND config_hash = ? AND venue = ? "
                       "ORDER BY started_at, id", [config_hash, venue])


def _ids(session_ids: Sequence[str]) -> str:
    return ", ".join("?" for _ in session_ids)


def forward_equity(store: Store, session_ids: Sequence[str]) -> pl.DataFrame:
    """ts, equity, cash, exposure of the sessions in time order."""
    if not session_ids:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "equity": pl.Float64, "cash": pl.Float64,
                                    "exposure": pl.Float64})
    return store.query(f"SELECT ts, equity, cash, exposure FROM equity WHERE session_id IN ({_ids(session_ids)}) "
                       "ORDER BY ts", list(session_ids))


def forward_trades(store: Store, session_ids: Sequence[str]) -> pl.DataFrame:
    """The sessions' closed trades (mode 'paper'), in exit order."""
    if not session_ids:
        return pl.DataFrame(schema={"trade_id": pl.String, "net_pnl": pl.Float64, "fees": pl.Float64})
    return store.query(f"SELECT trade_id, symbol, qty, fees, gross_pnl, net_pnl, exit_time FROM trades "
                       f"WHERE session_id IN ({_ids(session_ids)}) AND mode = 'paper' ORDER BY exit_time, trade_id",
                       list(session_ids))


def session_errors(store: Store, session_ids: Sequence[str]) -> pl.DataFrame:
    """session_id, message of every SESSION_ERROR event of the sessions, in time order."""
    if not session_ids:
        return pl.DataFrame(schema={"session_id": pl.String, "message": pl.String})
    return store.query(f"SELECT session_id, message FROM events WHERE session_id IN ({_ids(session_ids)}) "
                       "AND code = 'SESSION_ERROR' ORDER BY ts", list(session_ids))


__all__ = ["config_hashes", "forward_equity", "forward_sessions", "forward_trades", "gate_attempts",
           "session_errors"]
