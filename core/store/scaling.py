"""The ``scaling_decisions`` table (R5.4, R2.5): named reads. Rows go in with ``Store.insert_rows``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.store.repository import Store


def approved_symbols(store: Store) -> dict[str, datetime]:
    """Symbol -> the ts of its latest approved ``new_symbol`` decision."""
    rows = store.query("SELECT symbol, max(ts) AS ts FROM scaling_decisions WHERE kind = 'new_symbol' "
                       "AND outcome = 'approved' AND symbol IS NOT NULL GROUP BY symbol")
    return {str(r["symbol"]): r["ts"] for r in rows.iter_rows(named=True)}


def decision_rows(store: Store, review_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """decision_id, ts, kind, outcome, from_rung, to_rung, symbol, reviewer, comment, flow_run_id of the latest
    ``limit`` decisions (of review ``review_id`` when given), newest first."""
    where, params = ("WHERE flow_run_id = ?", [review_id]) if review_id else ("", [])
    frame = store.query(f"SELECT decision_id, ts, kind, outcome, from_rung, to_rung, symbol, reviewer, comment, "
                        f"flow_run_id FROM scaling_decisions {where} ORDER BY ts DESC LIMIT {int(limit)}", params)
    return list(frame.iter_rows(named=True))


def proposal_texts(store: Store) -> dict[str, str]:
    """Review id (flow_run_id) -> the proposal's text, for every ``proposed`` decision."""
    rows = store.query("SELECT flow_run_id, json_extract_string(justification, '$.proposal.text') AS text "
                       "FROM scaling_decisions WHERE outcome = 'proposed'")
    return {str(r["flow_run_id"]): str(r["text"]) for r in rows.iter_rows(named=True)}


__all__ = ["approved_symbols", "decision_rows", "proposal_texts"]
