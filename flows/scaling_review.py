"""Weekly scaling review (SPEC R5, R2.5): evidence → proposal → pause for a human's answer → record and apply.

Nothing due: the outcome ``not_eligible`` is recorded with the reasons, and the run ends. A step up or a new
symbol due: ``proposed`` is recorded and notified, then the run pauses (``pause_flow_run(wait_for_input=...)``)
with the proposal and its evidence as the form's description in the Prefect UI; the answer comes from the UI
or ``rampart approve``. Unanswered within ``scaling.review_timeout_days`` (or ``timeout_s``): ``expired``.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from pydantic import Field

from core.config import run_overrides
from core.control.approval import review_markdown
from tasks.credentials import secure_run
from tasks.scaling import conclude_review_task, evaluate_review_task, record_review_task


class ScalingInput(RunInput):
    """Approve or reject the proposed scaling change."""

    approve: bool = Field(default=False, description="true approves the proposal; false rejects it")
    reviewer: str = Field(default="", description="your operator name, as in RAMPART_OPERATORS (required)")
    comment: str = Field(default="", description="why you approve or reject (recorded with the decision)")


@flow(name="scaling-review", log_prints=True)
def scaling_review_flow(data_dir: str | None = None, kind: str = "auto", timeout_s: int | None = None,
                        poll_interval_s: int = 10, control_url: str | None = None) -> dict[str, Any]:
    """Propose a step up the ladder or a new symbol when the evidence allows it, and wait for a human's answer.

    kind: auto | step_up | new_symbol. timeout_s: how long to wait (default scaling.review_timeout_days).
    control_url: the live session's control API (default: found from the running session)."""
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(data_dir=data_dir)
    review_id = str(flow_run.id or uuid.uuid4())
    review, timeout = evaluate_review_task(overrides, kind, timeout_s)
    if review.proposal is None:
        record_review_task(overrides, review, review_id, "not_eligible")
        return {"review_id": review_id, "outcome": "not_eligible", "reasons": review.reasons}
    record_review_task(overrides, review, review_id, "proposed")
    form = ScalingInput.with_initial_data(description=review_markdown(review, review_id))
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_interval_s,
                                key="scaling-review")
    except FlowPauseTimeout:
        record_review_task(overrides, review, review_id, "expired", f"no answer within {timeout} s")
        return {"review_id": review_id, "outcome": "expired", "proposal": review.proposal.text()}
    result = conclude_review_task(overrides, review, review_id, answer.approve, answer.reviewer, answer.comment,
                                  control_url)
    return {"review_id": review_id, "outcome": result.outcome, "detail": result.detail,
            "proposal": review.proposal.text()}


if __name__ == "__main__":
    scaling_review_flow()
