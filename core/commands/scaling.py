"""`rampart approvals list` and `rampart approve`: scaling reviews from the terminal (R5, R2.5).

Both talk to the Prefect server's REST API (``PREFECT_API_URL``, default the local ``make serve`` server).
``approve`` needs the operator's own token (``RAMPART_OPERATOR_TOKEN`` or a hidden prompt; role operator or
admin) and ``--reviewer`` must be that operator: the name recorded with the decision is the one the token proves.
The token travels in the answer, as from the Prefect UI's form: the review run checks it against the hashed tokens
itself and deletes the answer from the Prefect server once read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from core.commands import EXIT_USAGE, fail

DataDirOpt = Annotated[Path | None, typer.Option(help="where the database is (default ./data)")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    approvals = typer.Typer(help="Scaling reviews waiting for a human's answer (R5, R2.5).", rich_markup_mode=None)
    approvals.command("list")(approvals_list)
    app.add_typer(approvals, name="approvals")
    app.command("approve")(approve)


def approvals_list(data_dir: DataDirOpt = None,
                   as_json: Annotated[bool, typer.Option("--json", help="one JSON object per review")] = False) -> None:
    """List the scaling reviews paused for an answer, with what each proposes."""
    from core.scaling.reviews import PrefectApi

    reviews = PrefectApi().paused_reviews()
    proposals = _proposals(data_dir)
    if as_json:
        for r in reviews:
            typer.echo(json.dumps({"run_id": r.run_id, "name": r.name, "paused_at": r.paused_at,
                                   "expires_at": r.expires_at, "proposal": proposals.get(r.run_id)}))
        return
    if not reviews:
        typer.echo("no scaling review is waiting for an answer")
        return
    for r in reviews:
        typer.echo(f"{r.run_id}  paused {str(r.paused_at)[:16]}  expires {str(r.expires_at)[:16]}  "
                   f"{proposals.get(r.run_id) or '(proposal not in this database)'}")
    typer.echo("answer with: rampart approve RUN_ID --reviewer NAME --yes|--no --comment TEXT")


def approve(run_id: Annotated[str, typer.Argument(help="the paused scaling-review flow run id")],
            reviewer: Annotated[str, typer.Option(help="your operator name (must match your token)")] = "",
            yes: Annotated[bool | None, typer.Option("--yes/--no", help="approve or reject")] = None,
            comment: Annotated[str, typer.Option(help="why (recorded with the decision; required)")] = "",
            data_dir: DataDirOpt = None) -> None:
    """Answer a paused scaling review: --yes applies the proposal (through the review run), --no rejects it."""
    from core.config import load_settings, run_overrides
    from core.control.auth import Operator, authorize
    from core.events import Event, EventCode, OverrideOutcome, ScalingEvent
    from core.scaling.reviews import PrefectApi, waiting_keyset
    from core.store import Store

    if yes is None or not reviewer.strip() or not comment.strip():
        raise fail("give --yes or --no, --reviewer NAME and --comment TEXT (who and why are recorded, R2.5)",
                   EXIT_USAGE)
    settings = load_settings(**run_overrides(data_dir=data_dir))
    token = os.environ.get("RAMPART_OPERATOR_TOKEN") or (
        typer.prompt("operator token", hide_input=True, default="", show_default=False) if sys.stdin.isatty()
        else "")
    who = authorize(token or None, settings.operators, "operator")
    store = Store(settings.db_path)
    if not isinstance(who, Operator) or who.name != reviewer.strip():
        code = who.code if not isinstance(who, Operator) else "REVIEWER_MISMATCH"
        detail = who.detail if not isinstance(who, Operator) else f"--reviewer {reviewer} is not {who.name}, " \
                                                                   "whose token this is"
        refused = OverrideOutcome(action="approve-scaling", accepted=False, detail=f"scaling answer refused: {detail}",
                                  who=reviewer, extra={"run_id": run_id, "reviewer": reviewer})
        store.record(Event.of(code, refused), kind="scaling")
        raise fail(f"{code}: {detail} (the refusal is recorded)")
    api = PrefectApi()
    run = api.flow_run(run_id)
    if waiting_keyset(run) is None:
        state = (run.get("state") or {}).get("name")
        raise fail(f"flow run {run_id} is not waiting for an answer (state {state})")
    # the review checks the token again itself (an answer without one is refused) and deletes it once read
    ok, why = api.resume(run_id, {"decision": "approve" if yes else "reject", "operator_token": token,
                                  "comment": comment.strip()})
    if not ok:
        raise fail(f"Prefect did not accept the answer: {why}")
    answered = ScalingEvent(title=f"scaling review {run_id} {'approved' if yes else 'rejected'} by {who.name}: "
                                  f"{comment}", extra={"run_id": run_id, "approve": bool(yes), "reviewer": who.name,
                                                       "comment": comment})
    store.record(Event.of(EventCode.SCALING_ANSWERED, answered), kind="scaling")
    verdict = "approved" if yes else "rejected"
    typer.echo(f"review {run_id} {verdict} by {who.name}; the review run records the decision"
               + (" and applies it" if yes else ""))


def _proposals(data_dir: Path | None) -> dict[str, str]:
    """Review id -> the proposal text, from the decisions in this data dir's database."""
    from core.config import load_settings, run_overrides
    from core.store import Store
    from core.store import scaling as scaling_repo

    settings = load_settings(**run_overrides(data_dir=data_dir))
    if not settings.db_path.exists():
        return {}
    return scaling_repo.proposal_texts(Store(settings.db_path))
