"""The weekly scaling review on a real Prefect server (issue 7 acceptance; SPEC R5.1-R5.4, R2.5, R6.3, R6.4).

``prefect server start`` runs for the test session (tests/prefect_server.py). Each review is the real flow in
its own process (``scaling_review_flow(...)`` with PREFECT_API_URL pointing at the server), as a worker would
run it. The store holds 8 days of live history (tests/test_scaling.py ``live_history``); the live session is a
real one on the manual-clock sandbox, serving its control API, so an approval travels flow -> control API ->
command file -> the session's next poll.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.state.live import load_state
from core.store import Store
from core.venue import sandbox_at
from tests.prefect_server import PrefectServer
from tests.test_scaling import LOSING, OPERATORS, TOKENS, live_history

ROOT = Path(__file__).resolve().parent.parent
RUN_FLOW = ("import json, sys\nfrom flows.scaling_review import scaling_review_flow\n"
            "print('RESULT ' + json.dumps(scaling_review_flow(**json.loads(sys.argv[1]))), flush=True)\n")


def start_review(server: PrefectServer, data_dir: Path, **params: Any) -> tuple[subprocess.Popen[bytes], Path]:
    """The review flow in its own process against the server; the worker's env carries the operator token."""
    env = {**server.env, "RAMPART_OPERATORS": json.dumps(OPERATORS), "RAMPART_OPERATOR_TOKEN": TOKENS["operator"],
           "PYTHONPATH": str(ROOT)}
    env.pop("RAMPART_DATA_DIR", None)
    log = data_dir.parent / f"review-{data_dir.name}-{time.monotonic_ns()}.log"
    args = json.dumps({"data_dir": str(data_dir), "poll_interval_s": 1, **params})
    proc = subprocess.Popen([sys.executable, "-c", RUN_FLOW, args], env=env, cwd=ROOT, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    return proc, log


def finish(proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, text[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][7:])
    return result


def wait_paused(server: PrefectServer, data_dir: Path, proc: subprocess.Popen[bytes], log: Path,
                after: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scaling-review run of ``data_dir`` once it is paused for input (``after``: paused again, for a new
    answer, after that pause)."""
    before = after and after["state"]["state_details"]["run_input_keyset"]["response"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        runs = httpx.post(f"{server.url}/flow_runs/filter", json={
            "flows": {"name": {"any_": ["scaling-review"]}},
            "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}).json()
        mine = [r for r in runs if r["parameters"].get("data_dir") == str(data_dir)
                and r["state"]["state_details"]["run_input_keyset"]["response"] != before]
        if mine:
            return dict(mine[0])
        time.sleep(0.5)
    raise AssertionError(f"the review never paused:\n{log.read_text()[-3000:]}")


def resume(server: PrefectServer, run: dict[str, Any], **answer: str) -> dict[str, Any]:
    """Resume a paused review as the Prefect UI's form does: POST /flow_runs/{id}/resume with the answer."""
    resp = httpx.post(f"{server.url}/flow_runs/{run['id']}/resume", json={"run_input": answer}, timeout=30)
    body: dict[str, Any] = resp.json()
    return body


def refusals(data_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """The refused answers to review ``run_id``, oldest first."""
    rows = Store(data_dir / "rampart.duckdb").query(
        "select code, details from events where kind = 'scaling' and code like 'OVERRIDE_%' "
        "and details->>'$.review_id' = ? order by ts",
        [run_id])
    return [{"code": r["code"], **json.loads(r["details"])} for r in rows.iter_rows(named=True)]


def decisions(data_dir: Path, run_id: str) -> dict[str, dict[str, Any]]:
    rows = Store(data_dir / "rampart.duckdb").query("select * from scaling_decisions where flow_run_id = ?", [run_id])
    return {r["outcome"]: r for r in rows.iter_rows(named=True)}


def limits(session: Any) -> tuple[float, float]:
    risk = session.engine.risk.config
    return risk.risk_per_trade, risk.exposure_cap


@pytest.mark.req("R5.2")
@pytest.mark.req("R5.1")
@pytest.mark.req("R5.4")
@pytest.mark.req("R2.5")
@pytest.mark.req("R6.3")
@pytest.mark.req("R6.4")
def test_an_approved_review_moves_the_live_session_to_rung_2_and_a_rejected_one_changes_nothing(
    prefect_server: PrefectServer, tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main
    from core.live.session import LiveOptions
    from core.node import open_live
    from tests.sandbox_rig import BTC, ETH, sandbox, settings_for

    data_dir = tmp_path / "data"
    settings = settings_for(data_dir, operators=OPERATORS)
    live_history(settings, datetime.now(UTC))
    monkeypatch.setenv("PREFECT_API_URL", prefect_server.url)
    monkeypatch.setenv("RAMPART_OPERATOR_TOKEN", TOKENS["operator"])
    monkeypatch.setenv("RAMPART_OPERATORS", json.dumps(OPERATORS))
    with sandbox([BTC] * 6, [ETH] * 6) as server:
        session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05, control_port=0))
        assert limits(session) == (0.001, 0.02)

        # 1. the review pauses with the proposal and its evidence in the input form; rejected from the terminal
        proc, log = start_review(prefect_server, data_dir, timeout_s=600)
        run = wait_paused(prefect_server, data_dir, proc, log)
        keys = run["state"]["state_details"]["run_input_keyset"]
        schema = json.loads(httpx.get(f"{prefect_server.url}/flow_runs/{run['id']}/input/{keys['schema']}").text)
        assert set(schema["required"]) == set(schema["properties"]) == {"decision", "operator_token", "comment"}
        assert schema["properties"]["decision"]["enum"] == ["approve", "reject"]
        assert "default" not in schema["properties"]["decision"]  # no side chosen for the reviewer
        assert schema["properties"]["operator_token"]["format"] == "password"  # a masked input in the UI
        form = json.loads(httpx.get(f"{prefect_server.url}/flow_runs/{run['id']}/input/{keys['description']}").text)
        assert "step up from rung 1 to rung 2: risk 0.25% per trade, exposure cap 4%" in form
        assert "Daily live P&L" in form and "no risk breach in the window" in form and f"rampart approve {run['id']}" \
            in form
        assert main(["approvals", "list", "--data-dir", str(data_dir)]) == 0
        assert f"{run['id']}  paused" in capsys.readouterr().out
        assert main(["approve", run["id"], "--reviewer", "alice", "--no", "--comment", "one more week first",
                     "--data-dir", str(data_dir)]) == 0
        rejected = finish(proc, log)
        assert rejected["outcome"] == "rejected"
        session.step()  # the session's next poll: nothing to apply
        assert limits(session) == (0.001, 0.02)
        rows = decisions(data_dir, run["id"])
        assert set(rows) == {"proposed", "rejected"} and rows["rejected"]["comment"] == "one more week first"
        assert rows["rejected"]["reviewer"] == "alice"

        # 2. the next review, answered as the Prefect UI does: without a valid operator token nothing happens
        proc, log = start_review(prefect_server, data_dir, timeout_s=600)
        run = wait_paused(prefect_server, data_dir, proc, log)
        assert resume(prefect_server, run, decision="approve", comment="no token")["status"] == "REJECT"
        answers = []  # where Prefect kept each answer (the token in it) until the review read it
        for token, code in (("not-a-token", "OVERRIDE_BAD_TOKEN"), (TOKENS["viewer"], "OVERRIDE_FORBIDDEN")):
            answers.append(run["state"]["state_details"]["run_input_keyset"]["response"])
            answered = resume(prefect_server, run, decision="approve", operator_token=token, comment="trust me")
            assert answered["status"] == "ACCEPT"  # Prefect takes any well-formed answer; the review checks it
            run = wait_paused(prefect_server, data_dir, proc, log, after=run)
            form = json.loads(httpx.get(f"{prefect_server.url}/flow_runs/{run['id']}/input/"
                                        f"{run['state']['state_details']['run_input_keyset']['description']}").text)
            assert "An answer was refused" in form and code in form
            refused = refusals(data_dir, run["id"])
            assert refused[-1]["code"] == code and len(refused) == (1 if code == "OVERRIDE_BAD_TOKEN" else 2)
            session.step()
            assert limits(session) == (0.001, 0.02)  # refused: nothing applied
        assert set(decisions(data_dir, run["id"])) == {"proposed"}
        answers.append(run["state"]["state_details"]["run_input_keyset"]["response"])
        answered = resume(prefect_server, run, decision="approve", operator_token=TOKENS["operator"],
                          comment="8 green days, targets met")
        assert answered["status"] == "ACCEPT"
        approved = finish(proc, log)
        assert approved["outcome"] == "approved" and approved["detail"] == "applied to the running session"
        assert [httpx.get(f"{prefect_server.url}/flow_runs/{run['id']}/input/{key}").status_code
                for key in answers] == [404, 404, 404]  # every answer, and the token in it, deleted once read
        logs = httpx.post(f"{prefect_server.url}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run["id"]]}}})
        texts = [log.read_text(), logs.text, *(str(r) for r in Store(settings.db_path).query(
            "select * from events").iter_rows()), *(str(r) for r in Store(settings.db_path).query(
            "select * from scaling_decisions").iter_rows())]
        assert "refused" in logs.text and not any(tok in t for t in texts for tok in (*TOKENS.values(), "not-a-token"))
        session.step()
        assert limits(session) == (0.0025, 0.04) and session.status()["rung"] == 2
        events = Store(settings.db_path).query("select code, details from events where session_id = ?",
                                               [session.session_id])
        applied = json.loads(events.filter(events["code"] == "SCALING_APPLIED")["details"][0])
        assert applied["to_rung"] == 2 and applied["reviewer"] == "alice" and applied["review_id"] == run["id"]
        stopped = threading.Event()
        stopped.set()
        session.run(stopped)
        assert load_state(data_dir / "live" / "state.json").rung == 1

        # R6.4: a restart trades at rung 1 again, whatever was approved before
        restarted = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05))
        assert limits(restarted) == (0.001, 0.02) and restarted.status()["rung"] == 1
        restarted.run(stopped)

    rows = decisions(data_dir, run["id"])
    assert set(rows) == {"proposed", "approved"}
    row = rows["approved"]
    assert (row["kind"], row["from_rung"], row["to_rung"], row["reviewer"]) == ("step_up", 1, 2, "alice")
    assert row["comment"] == "8 green days, targets met"
    evidence, why = json.loads(row["evidence"]), json.loads(row["justification"])
    assert len(evidence["daily"]) == 8 and evidence["metrics"]["trades"] >= 30 and evidence["breaches"] == []
    assert why["applied"]["accepted"] and any("net P&L +" in r for r in why["reasons"])
    codes = set(Store(settings.db_path).query("select code from events where kind = 'scaling'")["code"])
    assert {"SCALING_PROPOSED", "SCALING_REJECTED", "SCALING_APPROVED", "SCALING_ANSWERED"} <= codes
    notes = Store(settings.db_path).query("select notification_id, title from notifications where kind = 'scaling'")
    assert f"scaling:{run['id']}:approved" in notes["notification_id"].to_list()
    assert any(f"rampart approve {run['id']}" in b for b in Store(settings.db_path).query(
        "select body from notifications where notification_id = ?", [f"scaling:{run['id']}:proposed"])["body"])
    state = httpx.get(f"{prefect_server.url}/flow_runs/{run['id']}").json()["state"]["type"]
    assert state == "COMPLETED"


@pytest.mark.req("R5.2")
@pytest.mark.req("R5.4")
def test_an_unanswered_review_expires_and_a_losing_week_or_a_breach_proposes_nothing_and_says_why(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    from core.config import load_settings

    now = datetime.now(UTC)
    cases = {"expire": {}, "losing": {"pnls": LOSING}, "breach": {"breach": "DAILY_LOSS_LIMIT"}}
    procs = {}
    for name, history in cases.items():
        data_dir = tmp_path / name
        live_history(load_settings(data_dir=data_dir), now, **history)
        procs[name] = (data_dir, *start_review(prefect_server, data_dir, timeout_s=3))
    results = {name: finish(proc, log) for name, (_, proc, log) in procs.items()}

    assert results["expire"]["outcome"] == "expired"
    expired = decisions(procs["expire"][0], results["expire"]["review_id"])
    assert set(expired) == {"proposed", "expired"} and expired["expired"]["to_rung"] == 2
    assert "no answer within 3 s" in json.loads(expired["expired"]["justification"])["detail"]
    run = httpx.get(f"{prefect_server.url}/flow_runs/{results['expire']['review_id']}").json()
    assert run["state"]["type"] != "PAUSED"  # Prefect ends an expired pause too

    for name, needle in (("losing", "LOSING_WINDOW: net P&L -"), ("breach", "RISK_BREACH: 1 in the window "
                                                                            "(DAILY_LOSS_LIMIT at")):
        assert results[name]["outcome"] == "not_eligible"
        assert any(r.startswith(needle) for r in results[name]["reasons"]), results[name]
        rows = decisions(procs[name][0], results[name]["review_id"])
        assert set(rows) == {"not_eligible"} and rows["not_eligible"]["to_rung"] is None
        assert needle in json.loads(rows["not_eligible"]["justification"])["summary"]
        state = httpx.get(f"{prefect_server.url}/flow_runs/{results[name]['review_id']}").json()["state"]["type"]
        assert state == "COMPLETED"  # never paused: nothing to decide
