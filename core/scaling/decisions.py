"""Scaling decisions (R5.4, R2.5): each outcome of a review is a ``scaling_decisions`` row with its justification
and the performance history it was based on, an ``events`` row (for the audit journal) and a notification.

A review has one id (its Prefect flow run id) and one row per outcome it reached — ``proposed`` then
``approved`` / ``rejected`` / ``expired``, or only ``not_eligible``; the row id is ``<review>:<outcome>``, so
a retried step never writes a second row or a second message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.events import Event, ScalingEvent
from core.notify import Notification, notify
from core.scaling.eligibility import Eligibility
from core.store import Store
from core.store import scaling as scaling_repo

EVENT_CODES = {"proposed": "SCALING_PROPOSED", "approved": "SCALING_APPROVED", "rejected": "SCALING_REJECTED",
               "expired": "SCALING_EXPIRED", "not_eligible": "SCALING_NOT_ELIGIBLE"}
SEVERITY = {"proposed": "warning", "approved": "warning", "rejected": "info", "expired": "warning",
            "not_eligible": "info"}


@dataclass(frozen=True)
class Outcome:
    """What became of a review: who answered, why, and (approvals) where the change was applied."""

    outcome: str
    reviewer: str | None = None
    comment: str | None = None
    detail: str = ""  # e.g. why an approval was refused, or where it was applied
    applied: dict[str, Any] | None = None


def record_outcome(store: Store, review: Eligibility, review_id: str, result: Outcome,
                   how_to_answer: str = "", now: datetime | None = None) -> str:
    """Store the decision row and its event, then notify; returns the decision id."""
    if result.outcome not in EVENT_CODES:
        raise ValueError(f"unknown scaling outcome {result.outcome!r}; use one of {', '.join(EVENT_CODES)}")
    when = now or datetime.now(UTC)
    decision_id = f"{review_id}:{result.outcome}"
    prop = review.proposal
    justification = {"summary": review.summary(), "reasons": review.reasons, "detail": result.detail,
                     "checks": [c.to_dict() for c in review.checks], "applied": result.applied,
                     "proposal": prop.to_dict() if prop else None}
    store.insert_rows("scaling_decisions", [{
        "decision_id": decision_id, "ts": when, "kind": prop.kind if prop else review.kind,
        "outcome": result.outcome, "from_rung": prop.from_rung if prop else review.rung,
        "to_rung": prop.to_rung if prop else None, "symbol": prop.symbol if prop else None,
        "reviewer": result.reviewer, "comment": result.comment, "flow_run_id": review_id,
        "justification": justification, "evidence": review.evidence,
    }], on_conflict="ignore")
    title = _title(review, result)
    facts = {"review_id": review_id, "decision_id": decision_id, "outcome": result.outcome,
             "reviewer": result.reviewer, "comment": result.comment, "detail": result.detail,
             "proposal": prop.to_dict() if prop else None, "applied": result.applied}
    store.record(Event.of(EVENT_CODES[result.outcome], ScalingEvent(title=title, extra=facts),
                          SEVERITY[result.outcome], int(when.timestamp() * 1000)), kind="scaling")
    body = "\n".join(x for x in (result.detail, review.summary(), how_to_answer) if x)
    fields = {"review": review_id, "rung": review.rung}
    if result.reviewer:
        fields["reviewer"] = result.reviewer
    notify(store, Notification(key=f"scaling:{decision_id}", kind="scaling", severity=SEVERITY[result.outcome],
                               title=title, body=body, fields=fields))
    return decision_id


def _title(review: Eligibility, result: Outcome) -> str:
    prop = review.proposal
    what = prop.text() if prop else f"no change (rung {review.rung})"
    if result.outcome == "not_eligible":
        return f"Scaling review: nothing proposed - {'; '.join(review.reasons)[:300]}"
    if result.outcome == "proposed":
        return f"Scaling review: approval needed - {what}"
    by = f" by {result.reviewer}" if result.reviewer else ""
    return f"Scaling review {result.outcome}{by}: {what}"


def review_rows(store: Store, review_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Recent decision rows (newest first), optionally of one review."""
    return scaling_repo.decision_rows(store, review_id, limit)
