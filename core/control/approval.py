"""A reviewer's answer to a scaling review: the form's text, the checks on the answer, and applying a yes.

The review form (Prefect's pause input) shows ``review_markdown``. Every answer, from the Prefect UI or
``rampart approve``, carries the operator's own token: ``prove_answer`` hashes it and compares it in constant time
with the hashes in ``RAMPART_OPERATORS`` (role operator or admin, R6.3), and the name recorded is the one the token
proves. An answer without that proof is refused and recorded (``refuse_answer``), and the review waits for another.
An approval counts only with a comment saying why (R2.5); otherwise it is recorded as rejected, with the reason.
A valid approval is applied through the running session's control API (``POST /api/overrides/approve-scaling``,
found from the session marker) with the review worker's operator token (``RAMPART_OPERATOR_TOKEN``); with no
session running, through ``apply_override`` on the saved state.
Before applying, the evidence is computed again: a proposal that no longer holds (a breach while the review
waited) is not applied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from core.config import Settings
from core.control.auth import RANK, Operator, Refusal, authorize
from core.control.overrides import apply_override
from core.events import Event, EventCode, OverrideOutcome, ScalingEvent
from core.scaling.changes import change_refusal
from core.scaling.decisions import Outcome, record_outcome
from core.scaling.eligibility import Eligibility, evaluate
from core.state.commands import running_session
from core.store import Store


@dataclass(frozen=True)
class Answer:
    approve: bool
    reviewer: str
    comment: str


def how_to_answer(review_id: str) -> str:
    return (f"Answer in the Prefect UI (flow run {review_id}: Resume; choose approve or reject, enter your operator "
            f"token and a comment) or run: rampart approve {review_id} --reviewer NAME --yes|--no --comment TEXT")


def review_markdown(review: Eligibility, review_id: str) -> str:
    """The proposal and its evidence, as the Prefect UI shows it above the approve/reject form."""
    prop = review.proposal
    lines = [f"## Scaling review: {prop.text() if prop else 'nothing to propose'}", "",
             f"Current rung: **{review.rung}**. Review `{review_id}` at {review.at:%Y-%m-%d %H:%M} UTC.", "",
             "| check | result |", "|---|---|"]
    lines += [f"| {c.name} | {'ok' if c.passed else 'NO'}: {c.text} |" for c in review.checks]
    lines += ["", "### Daily live P&L (UTC)", "", "| day | trades | net P&L | equity close |", "|---|---|---|---|"]
    for d in review.evidence.get("daily", []):
        close = f"{d['equity_close']:,.2f}" if d.get("equity_close") is not None else "-"
        lines.append(f"| {d['day']} | {d['trades']} | {d['net_pnl']:+,.2f} | {close} |")
    breaches = review.evidence.get("breaches") or []
    lines += ["", f"Risk breaches in the window: {len(breaches) or 'none'}", "",
              "Choose **approve** only if you agree, or **reject**. Your operator token proves who answers: it is "
              "checked against the hashed tokens and removed from Prefect as soon as the review reads it; an "
              "answer without a valid token is refused and recorded. Say why in the comment. "
              + how_to_answer(review_id)]
    return "\n".join(lines)


def prove_answer(settings: Settings, token: str | None) -> Operator | Refusal:
    """Who answers a review, proven by their own token (hashed, compared in constant time with every configured
    hash), or why not: no token, an unknown one, or a viewer's. The same proof ``rampart approve`` asks for."""
    return authorize(token or None, settings.operators, "operator")


def refuse_answer(settings: Settings, review_id: str, refusal: Refusal, approve: bool, via: str) -> str:
    """Record an answer refused for its proof (never the token) as an event; returns the line to show."""
    verdict = "approval" if approve else "rejection"
    detail = f"scaling answer refused: {refusal.detail} ({verdict} of review {review_id} from {via})"
    refused = OverrideOutcome(action="approve-scaling", accepted=False, detail=detail,
                              extra={"review_id": review_id, "approve": approve, "via": via})
    Store(settings.db_path).record(Event.of(refusal.code, refused), kind="scaling")
    return f"{refusal.code}: {detail}"


def answer_problem(settings: Settings, answer: Answer) -> str | None:
    """Why an approval does not count (R2.5 who and why, R6.3 role), or None."""
    name = answer.reviewer.strip()
    if not name:
        return "REVIEWER_MISSING: an approval needs the reviewer's operator name (R2.5)"
    if not answer.comment.strip():
        return "COMMENT_MISSING: an approval needs a comment saying why (R2.5, R6.3)"
    roles = {op.name: op.role for op in settings.operators}
    if RANK.get(roles.get(name, ""), -1) < RANK["operator"]:
        return f"REVIEWER_NOT_AUTHORIZED: {name} is not an operator or admin in RAMPART_OPERATORS (R6.3)"
    return None


def change_of(review: Eligibility, review_id: str, answer: Answer) -> dict[str, Any]:
    prop = review.proposal
    if prop is None:
        raise ValueError("a review without a proposal has nothing to approve")
    return {"review_id": review_id, "kind": prop.kind, "to_rung": prop.to_rung if prop.kind == "step_up" else None,
            "symbol": prop.symbol, "reviewer": answer.reviewer.strip(), "comment": answer.comment.strip()}


def conclude(settings: Settings, review: Eligibility, review_id: str, answer: Answer, *,
             control_url: str | None = None, token: str | None = None, now: datetime | None = None) -> Outcome:
    """Turn the reviewer's answer into the recorded outcome; an approval that counts is applied first."""
    store = Store(settings.db_path)
    when = now or datetime.now(UTC)
    reviewer, comment = answer.reviewer.strip() or None, answer.comment.strip() or None
    if not answer.approve:
        result = Outcome("rejected", reviewer, comment, "rejected by the reviewer")
    elif problem := _why_not(settings, store, review, review_id, answer, when):
        result = Outcome("rejected", reviewer, comment, f"approval not accepted: {problem}")
    else:
        change = change_of(review, review_id, answer)
        applied = apply_change(settings, change, control_url, token or os.environ.get("RAMPART_OPERATOR_TOKEN"))
        detail = (f"applied to the {applied['applied_to']}" if applied["accepted"]
                  else f"APPROVED BUT NOT APPLIED: {applied['code']}: {applied['detail']}")
        result = Outcome("approved", reviewer, comment, detail, applied)
    record_outcome(store, review, review_id, result, now=when)
    if result.applied is not None and not result.applied["accepted"]:
        failed = ScalingEvent(title=result.detail, extra={"review_id": review_id, **result.applied})
        store.record(Event.of(EventCode.SCALING_APPLY_FAILED, failed), kind="scaling")
    return result


def _why_not(settings: Settings, store: Store, review: Eligibility, review_id: str, answer: Answer,
             now: datetime) -> str | None:
    """Why an approval cannot be applied: who/why missing, the change refused, or the evidence changed while the
    review waited (e.g. a breach since the proposal): fail closed, the next review proposes again."""
    problem = answer_problem(settings, answer)
    if problem is not None:
        return problem
    refused = change_refusal(settings, change_of(review, review_id, answer), now)
    if refused is not None:
        return refused[1]
    fresh = evaluate(store, settings, now, review.kind)
    if fresh.proposal != review.proposal:
        return f"NO_LONGER_ELIGIBLE: the evidence changed while the review waited: {fresh.summary()}"
    return None


def apply_change(settings: Settings, change: dict[str, Any], control_url: str | None,
                 token: str | None) -> dict[str, Any]:
    """Apply through the running session's control API, else through ``apply_override`` (command file for a
    session without a control API, or the saved state). Returns accepted, code, detail, applied_to, via."""
    reason = (f"scaling review {change['review_id']}: {change['kind']} approved by {change['reviewer']}: "
              f"{change['comment']}")
    url = control_url or (running_session(settings.data_dir) or {}).get("control_url")
    if url:
        try:
            resp = httpx.post(f"{url.rstrip('/')}/api/overrides/approve-scaling", timeout=15,
                              json={"reason": reason, "scaling": change},
                              headers={"Authorization": f"Bearer {token}"} if token else {})
        except httpx.HTTPError as exc:
            via = f"control API {url} unreachable ({type(exc).__name__}); applied locally"
        else:
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
            if resp.status_code == 200:
                return {"accepted": True, "code": "OVERRIDE_ACCEPTED", "detail": body.get("detail", ""),
                        "applied_to": body.get("applied_to"), "via": f"control API {url}"}
            found = body.get("detail")
            err: dict[str, Any] = found if isinstance(found, dict) else {}
            return {"accepted": False, "code": err.get("code", f"HTTP_{resp.status_code}"),
                    "detail": err.get("detail", resp.text[:300]), "applied_to": None, "via": f"control API {url}"}
    else:
        via = "apply_override (no control API running)"
    result = apply_override(settings, "approve-scaling", token, reason, scaling=change)
    return {"accepted": result.accepted, "code": result.code, "detail": result.detail,
            "applied_to": result.applied_to, "via": via}
