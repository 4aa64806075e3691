"""Scaling reviews waiting on a Prefect server, over its REST API (core never imports prefect).

A review waits as a paused ``scaling-review`` flow run whose state names the input keys (``run_input_keyset``:
the form's schema and description). Resuming is ``POST /api/flow_runs/{id}/resume`` with the answer as
``run_input`` (``decision`` approve|reject, the operator's ``operator_token``, ``comment``); the server checks
it against the schema, and the review checks the token and deletes the answer once read. The API URL is
``PREFECT_API_URL`` (as for every Prefect client), by default the local server ``make serve`` starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import RampartError

DEFAULT_API_URL = "http://127.0.0.1:4200/api"
FLOW_NAME = "scaling-review"


class PrefectUnavailable(RampartError):
    """The Prefect API could not be reached or refused the request."""


@dataclass(frozen=True)
class PausedReview:
    run_id: str
    name: str
    paused_at: str | None
    expires_at: str | None
    keyset: dict[str, str]


class PrefectApi:
    def __init__(self, url: str | None = None, timeout_s: float = 15.0) -> None:
        self.url = (url or os.environ.get("PREFECT_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            resp = httpx.request(method, f"{self.url}{path}", json=body, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise PrefectUnavailable(f"cannot reach the Prefect API at {self.url} ({type(exc).__name__}); start it "
                                     "with `make serve` or set PREFECT_API_URL") from None
        if resp.status_code >= 500:
            raise PrefectUnavailable(f"the Prefect API at {self.url} answered {resp.status_code}: {resp.text[:200]}")
        return resp

    def paused_reviews(self) -> list[PausedReview]:
        """Scaling reviews waiting for an answer, newest first."""
        body = {"flows": {"name": {"any_": [FLOW_NAME]}},
                "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}, "sort": "START_TIME_DESC", "limit": 200}
        resp = self._call("POST", "/flow_runs/filter", body)
        if resp.status_code != 200:
            raise PrefectUnavailable(f"listing flow runs failed ({resp.status_code}): {resp.text[:200]}")
        return [_paused(run) for run in resp.json()]

    def flow_run(self, run_id: str) -> dict[str, Any]:
        resp = self._call("GET", f"/flow_runs/{run_id}")
        if resp.status_code == 404 or resp.status_code == 422:
            raise RampartError(f"no flow run {run_id} on {self.url}; list waiting reviews with `rampart approvals "
                               "list`")
        result: dict[str, Any] = resp.json()
        return result

    def read_input(self, run_id: str, key: str) -> Any:
        """A flow run input value (JSON-decoded), or None when there is none."""
        resp = self._call("GET", f"/flow_runs/{run_id}/input/{key}")
        return json.loads(resp.text) if resp.status_code == 200 else None

    def resume(self, run_id: str, run_input: dict[str, Any]) -> tuple[bool, str]:
        """(accepted, why not). The server validates ``run_input`` against the paused run's form."""
        resp = self._call("POST", f"/flow_runs/{run_id}/resume", {"run_input": run_input})
        if resp.status_code >= 300:
            return False, f"HTTP {resp.status_code}: {resp.text[:300]}"
        body = resp.json()
        if body.get("status") == "ACCEPT":
            return True, ""
        return False, str((body.get("details") or {}).get("reason") or body.get("status"))


def _paused(run: dict[str, Any]) -> PausedReview:
    state = run.get("state") or {}
    details = state.get("state_details") or {}
    return PausedReview(str(run["id"]), str(run.get("name")), state.get("timestamp"), details.get("pause_timeout"),
                        details.get("run_input_keyset") or {})


def waiting_keyset(run: dict[str, Any]) -> dict[str, str] | None:
    """The input keyset of a run paused for an answer, else None."""
    state = run.get("state") or {}
    if state.get("type") != "PAUSED":
        return None
    keyset = (state.get("state_details") or {}).get("run_input_keyset")
    return keyset if isinstance(keyset, dict) else None
