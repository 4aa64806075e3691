"""Weekly scaling review (SPEC R5, R2.5): evidence → proposal → pause for a human's answer → record and apply.

Nothing due: the outcome ``not_eligible`` is recorded with the reasons, and the run ends. A step up or a new
symbol due: ``proposed`` is recorded and notified, then the run pauses (``pause_flow_run(wait_for_input=...)``)
with the proposal and its evidence as the form's description in the Prefect UI; the answer comes from the UI
or ``rampart approve``. Unanswered within ``scaling.review_timeout_days`` (or ``timeout_s``): ``expired``.

Every answer carries the operator's own token (R2.5, R6.3), as the CLI asks for it: the form's token field is a
password input, the review hashes the token and compares it in constant time with ``RAMPART_OPERATORS``, and
deletes the answer from the Prefect server as soon as it has read it (the token is never logged, returned or
stored by Rampart). An answer without a valid token is refused, recorded as an event, and the review pauses again
for another answer, with the refusal shown above the form.
"""

import itertools
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.input.actions import delete_flow_run_input
from prefect.runtime import flow_run
from pydantic import Field, SecretStr

from core.config import load_settings, run_overrides
from core.control.approval import prove_answer, review_markdown
from core.control.auth import Operator
from core.scaling.eligibility import Eligibility
from flows.parameters import Count, Text, dated_run_name, unset
from tasks.credentials import secure_run
from tasks.scaling import conclude_review_task, evaluate_review_task, record_review_task, refuse_answer_task


class ScalingInput(RunInput):
    """Approve or reject the proposed scaling change; your operator token proves who answers."""

    decision: Literal["approve", "reject"] = Field(
        title="Decision", description="approve applies the proposal to the live session; reject closes the review "
        "without a change")
    operator_token: SecretStr = Field(
        title="Operator token", min_length=1, description="your own Rampart operator token (role operator or "
        "admin): checked against the hashed tokens, removed from Prefect once read, never logged")
    comment: str = Field(title="Comment", min_length=1, description="why you approve or reject; recorded with the "
                         "decision")


@flow(name="scaling-review", log_prints=True, flow_run_name=dated_run_name("scaling review"))
def scaling_review_flow(data_dir: Text = "", kind: Literal["auto", "step_up", "new_symbol"] = "auto",
                        timeout_s: Count = 0, poll_interval_s: Annotated[int, Field(ge=1, le=3_600)] = 10,
                        control_url: Text = "") -> dict[str, Any]:
    """Propose a step up the ladder or a new symbol when the evidence allows it, and wait for a human's answer.

    Args:
        data_dir: where the database is (empty: the configured data dir, ./data by default).
        kind: what to consider: auto (a step up, else a new symbol), step_up or new_symbol.
        timeout_s: how long to wait for an answer, in seconds (0: scaling.review_timeout_days).
        poll_interval_s: how often the paused review looks for an answer, in seconds.
        control_url: the live session's control API (empty: found from the running session).
    """
    secure_run()  # R8.2: secrets scrubbed from every log, Prefect's run logs included
    overrides = run_overrides(data_dir=unset(data_dir))
    review_id = str(flow_run.id or uuid.uuid4())
    review, timeout = evaluate_review_task(overrides, kind, unset(timeout_s))
    if review.proposal is None:
        record_review_task(overrides, review, review_id, "not_eligible")
        return {"review_id": review_id, "outcome": "not_eligible", "reasons": review.reasons}
    record_review_task(overrides, review, review_id, "proposed")
    answer = proven_answer(overrides, review, review_id, timeout, poll_interval_s)
    if answer is None:
        record_review_task(overrides, review, review_id, "expired", f"no answer within {timeout} s")
        return {"review_id": review_id, "outcome": "expired", "proposal": review.proposal.text()}
    reviewer, approve, comment = answer
    result = conclude_review_task(overrides, review, review_id, approve, reviewer, comment, unset(control_url))
    return {"review_id": review_id, "outcome": result.outcome, "detail": result.detail,
            "proposal": review.proposal.text()}


def proven_answer(overrides: dict[str, Any], review: Eligibility, review_id: str, timeout: int,
                  poll_interval_s: int) -> tuple[str, bool, str] | None:
    """Pause for answers until one carries a valid operator token: (the operator it proves, approve, comment);
    None when the time is up. Each refused answer is recorded and shown above the next form."""
    settings = load_settings(**overrides)
    logger = get_run_logger()
    deadline = time.monotonic() + timeout
    note = ""
    for attempt in itertools.count(1):
        left = math.ceil(deadline - time.monotonic())
        if left <= 0:
            return None
        form = ScalingInput.with_initial_data(description=review_markdown(review, review_id) + note)
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=left, poll_interval=poll_interval_s,
                                    key=f"scaling-review-{attempt}")
        except FlowPauseTimeout:
            return None
        who = prove_answer(settings, _take_token(answer))
        approve = answer.decision == "approve"
        if isinstance(who, Operator):
            logger.info("scaling review %s: %s by %s", review_id, answer.decision, who.name)
            return who.name, approve, answer.comment
        line = refuse_answer_task(overrides, review_id, who, approve)
        logger.warning("%s; the review waits for another answer", line)
        note = (f"\n\n---\n\n**An answer was refused at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: {who.code}: "
                f"{who.detail}.** Answer again with your own operator token.")
    return None  # unreachable: the loop returns


def _take_token(answer: ScalingInput) -> str:
    """The token, read once; the answer holding it is deleted from the Prefect server right away."""
    token = answer.operator_token.get_secret_value()
    try:
        delete_flow_run_input(key=answer.metadata.key)
    except Exception as exc:  # the check goes on; the operator is told to act
        get_run_logger().error("could not delete the answer from the Prefect server (%s): the operator token in it "
                               "stays there until the run is deleted; rotate that token", type(exc).__name__)
    return token


if __name__ == "__main__":
    scaling_review_flow()
