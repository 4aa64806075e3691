"""`make serve` (issue 7): the server, the work pool, every deployment with its schedule and a worker come up; a
flow run triggered through the API runs on the worker; stopping `make serve` stops all of it.

The target runs for real (``make -o install serve``: the venv is already installed) with its own PREFECT_HOME
and a free port, and RAMPART_DATA_DIR in a temp folder so flow runs write nothing into the checkout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.prefect_server import free_port

ROOT = Path(__file__).resolve().parent.parent
SCHEDULES = {"metrics": ("interval", 900.0), "daily-report": ("cron", "10 0 * * *"),
             "scaling-review": ("cron", "0 9 * * 1")}


def deployable() -> dict[str, str]:
    """Deployment name -> entrypoint, for the deployments of prefect.yaml whose flow file exists."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d["entrypoint"] for d in spec["deployments"]
            if (ROOT / d["entrypoint"].split(":")[0]).is_file()}


def wait_for(what: str, probe: Any, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"make serve exited while waiting for {what}:\n{log.read_text()[-4000:]}"
        try:
            found = probe()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{what} not there within {timeout_s} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "RAMPART_PREFECT_PORT": str(port),
           "RAMPART_DATA_DIR": str(tmp_path / "data"), "PREFECT_WORKER_QUERY_SECONDS": "2",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "PREFECT_UI_ENABLED": "false"}
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(["make", "-s", "-o", "install", "serve"], cwd=ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}/api", proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.mark.req("R3.3")
@pytest.mark.req("R7.1")
def test_make_serve_brings_up_server_deployments_with_schedules_and_a_worker_that_runs_a_triggered_flow(
    served: tuple[str, subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    api, proc, log = served
    expected = deployable()
    assert {"backtest", "scaling-review"} <= set(expected)

    def deployments() -> dict[str, Any] | None:
        found = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()}
        return found if set(expected) <= set(found) else None

    found = wait_for("every deployment", deployments, proc, log)
    for name, entrypoint in expected.items():
        assert found[name]["entrypoint"] == entrypoint and found[name]["work_pool_name"] == "rampart"
    for name, (kind, value) in SCHEDULES.items():
        if name in expected:
            [schedule] = [s["schedule"] for s in found[name]["schedules"]]
            assert schedule[kind] == value and schedule["timezone"] == "UTC", schedule
    pool = httpx.get(f"{api}/work_pools/rampart", timeout=5).json()
    assert pool["type"] == "process"
    wait_for("an online worker", lambda: [w for w in httpx.post(f"{api}/work_pools/rampart/workers/filter", json={},
                                                                timeout=5).json() if w["status"] == "ONLINE"],
             proc, log)
    review = found["scaling-review"]["id"]
    wait_for("the weekly review's scheduled runs", lambda: httpx.post(f"{api}/flow_runs/filter", timeout=5, json={
        "deployments": {"id": {"any_": [review]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json(),
        proc, log)

    def create() -> dict[str, Any] | None:
        # a loaded machine can make the server's SQLite answer 5xx: asked again with an idempotency key, so a
        # request the server did take still makes exactly one run
        reply = httpx.post(f"{api}/deployments/{found['backtest']['id']}/create_flow_run", timeout=30,
                           json={"parameters": {"days": 3, "data_dir": str(tmp_path / "data")},
                                 "idempotency_key": f"make-serve-{tmp_path.name}"})
        try:
            body: dict[str, Any] = reply.json()
        except ValueError:  # a plain-text error page
            return None
        return body if reply.status_code < 300 and "id" in body else None

    run = wait_for("the triggered backtest run to be created", create, proc, log)

    def finished() -> str | None:
        state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=5).json()["state"]["type"]
        return state if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    assert wait_for("the triggered backtest run", finished, proc, log) == "COMPLETED", log.read_text()[-4000:]
    assert (tmp_path / "data" / "rampart.duckdb").is_file()  # the worker ran it with the served environment

    os.killpg(proc.pid, signal.SIGTERM)  # what a service manager does (Ctrl-C: SIGINT, the same path)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while "[serve] stopped" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "[serve] stopped" in log.read_text(), log.read_text()[-3000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
