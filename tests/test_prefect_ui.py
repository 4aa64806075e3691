"""Approving a scaling step in the Prefect UI, in a real browser (issue 18 acceptance; SPEC R2.5, R6.3, R5.4).

A Prefect server with its UI (``prefect server start``, tests/prefect_server.py) and the scaling review in its own
process, paused on the proposal. Headless Chromium (Playwright) opens the run in the Prefect UI (V2, the default
UI), presses Resume and answers in the form as an operator would: the form shows the proposal, the Decision has no
default, the token field is a password input, and an empty form is not sent. An approval with a wrong token is
refused, recorded and shown above the next form; with the operator's own token it is approved and applied.
Screenshots go to test-artifacts/prefect-ui-*.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from core.config import load_settings
from tests.prefect_server import PrefectServer, start_prefect_server, stop_prefect_server
from tests.test_scaling import OPERATORS, TOKENS, live_history
from tests.test_scaling_flow import decisions, finish, refusals, start_review, wait_paused

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (make sysdeps)")


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-ui"), ui=True)
    try:
        yield server
    finally:
        stop_prefect_server(server)


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium.new_context(viewport={"width": 1400, "height": 1100}).new_page()
        finally:
            chromium.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"prefect-ui-{name}.png"), full_page=True)


def open_resume_form(page: Any, server: PrefectServer, run_id: str) -> Any:
    """The run's page in the Prefect UI, its menu, Resume: the dialog with the review's form."""
    page.goto(f"{server.url.removesuffix('/api')}/v2/runs/flow-run/{run_id}")
    page.get_by_role("button", name="Open menu").click(timeout=60_000)
    page.get_by_role("menuitem", name="Resume").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Resume Flow Run")).to_be_visible(timeout=30_000)
    return dialog


def answer(page: Any, dialog: Any, decision: str, token: str, comment: str) -> None:
    dialog.get_by_role("button", name="Select Decision").click()
    page.get_by_role("option", name=decision, exact=True).click()
    dialog.get_by_role("textbox", name="Operator token").fill(token)
    dialog.get_by_role("textbox", name="Comment").fill(comment)


def run_state(server: PrefectServer, run_id: str) -> dict[str, Any]:
    state: dict[str, Any] = httpx.get(f"{server.url}/flow_runs/{run_id}", timeout=10).json()["state"]
    return state


@pytest.mark.req("R2.5")
@pytest.mark.req("R6.3")
@pytest.mark.req("R5.4")
def test_an_operator_approves_in_the_prefect_ui_only_with_their_own_token(
    ui_server: PrefectServer, page: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, operators=OPERATORS)
    live_history(settings, datetime.now(UTC))
    proc, log = start_review(ui_server, data_dir, timeout_s=900)
    try:
        run = wait_paused(ui_server, data_dir, proc, log)

        # the form: the proposal and its evidence, a Decision without a default, a masked token field
        dialog = open_resume_form(page, ui_server, run["id"])
        expect(dialog.get_by_text("step up from rung 1 to rung 2", exact=False).first).to_be_visible()
        expect(dialog.get_by_role("button", name="Select Decision")).to_have_text("Select")
        assert dialog.get_by_role("textbox", name="Operator token").get_attribute("type") == "password"
        shot(page, "1-form")
        dialog.get_by_role("button", name="Resume").click()  # nothing filled in: not sent
        expect(dialog.get_by_text("Resume Flow Run")).to_be_visible()
        assert run_state(ui_server, run["id"])["type"] == "PAUSED" and refusals(data_dir, run["id"]) == []
        shot(page, "2-empty-refused")

        # an approval with a token that proves nobody: refused by the review, recorded, shown on the next form
        answer(page, dialog, "approve", "guessed-token", "looks fine to me")
        dialog.get_by_role("button", name="Resume").click()
        run = wait_paused(ui_server, data_dir, proc, log, after=run)
        assert [r["code"] for r in refusals(data_dir, run["id"])] == ["OVERRIDE_BAD_TOKEN"]
        assert set(decisions(data_dir, run["id"])) == {"proposed"}
        dialog = open_resume_form(page, ui_server, run["id"])
        expect(dialog.get_by_text("An answer was refused", exact=False)).to_be_visible()
        expect(dialog.get_by_text("OVERRIDE_BAD_TOKEN", exact=False).first).to_be_visible()
        shot(page, "3-refused-answer-shown")

        # the operator's own token: approved, applied (no session running: to the saved state), recorded as alice
        answer(page, dialog, "approve", TOKENS["operator"], "8 green days, targets met")
        shot(page, "4-filled")
        dialog.get_by_role("button", name="Resume").click()
        result = finish(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result["outcome"] == "approved" and result["detail"] == "applied to the saved state"
    row = decisions(data_dir, run["id"])["approved"]
    assert (row["reviewer"], row["comment"], row["to_rung"]) == ("alice", "8 green days, targets met", 2)
    applied = json.loads(row["justification"])["applied"]
    assert applied["accepted"] and applied["applied_to"] == "saved state" and applied["code"] == "OVERRIDE_ACCEPTED"
    assert run_state(ui_server, run["id"])["type"] == "COMPLETED"
    keyset = run["state"]["state_details"]["run_input_keyset"]
    assert httpx.get(f"{ui_server.url}/flow_runs/{run['id']}/input/{keyset['response']}").status_code == 404
    dump = json.dumps([decisions(data_dir, run["id"]), refusals(data_dir, run["id"])], default=str)
    assert TOKENS["operator"] not in dump and "guessed-token" not in dump and TOKENS["operator"] not in log.read_text()
    page.goto(f"{ui_server.url.removesuffix('/api')}/v2/runs/flow-run/{run['id']}")
    expect(page.get_by_text("Completed").first).to_be_visible(timeout=30_000)
    shot(page, "5-completed")
