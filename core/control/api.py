"""The control API a live session serves on 127.0.0.1: status, emergency stop and overrides over HTTP.

Every request carries ``Authorization: Bearer <operator token>``; roles as in ``core.control.auth``
(status: viewer; emergency stop and overrides: operator). Refusals answer 401/403 with a coded reason and
are recorded like every other override attempt. The dashboard (a later issue) builds on these routes.
A malformed request gets a 4xx JSON error saying what to fix (``core.control.http_errors``); an unknown override
is a 404 naming the valid ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from core.config import Settings
from core.control.auth import Operator, authorize
from core.control.emergency import emergency_stop
from core.control.http_errors import install_error_handlers
from core.control.overrides import ACTIONS, apply_override
from core.events import Event, OverrideOutcome
from core.store import Store
from core.venue import Venue

HTTP_STATUS = {"OVERRIDE_NO_TOKEN": 401, "OVERRIDE_BAD_TOKEN": 401, "OVERRIDE_FORBIDDEN": 403}


class AuthGuard(Protocol):
    """Counts failed logins toward a lockout (the dashboard's ``LoginGuard``); bad Bearer tokens count too."""

    def locked(self, source: str) -> float: ...

    def failed(self, source: str, channel: str) -> tuple[int, Any]: ...

    def succeeded(self, source: str) -> None: ...


class EmergencyBody(BaseModel):
    reason: str


class ScalingChange(BaseModel):
    """approve-scaling: the approved change (``core.scaling.changes`` judges it). Only the types are checked
    here, so a list where a symbol belongs is a 422 and not a crash; other fields pass through."""

    model_config = ConfigDict(extra="allow")
    kind: StrictStr | None = None
    reviewer: StrictStr | None = None
    to_rung: StrictInt | None = None
    symbol: StrictStr | None = None
    comment: StrictStr | None = None


class OverrideBody(BaseModel):
    reason: str = ""
    breaker: str | None = None
    scaling: ScalingChange | None = None


def _token(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return None


def create_control_app(settings: Settings, status: Callable[[], dict[str, Any]], venue: Venue,
                       guard: AuthGuard | None = None) -> FastAPI:
    """``status`` returns the running session's view (state, rung, breakers, latency, positions). With a
    ``guard``, bad tokens count toward the login lockout and a locked-out client is refused (429)."""
    app = FastAPI(title="Rampart control API", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    def source(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def refuse_locked(request: Request) -> None:
        left = guard.locked(source(request)) if guard is not None else 0.0
        if left > 0:
            raise HTTPException(429, {"code": "LOGIN_LOCKED", "detail": f"too many failed logins: try again in "
                                                                        f"{left:.0f} s"})

    def count(request: Request, good_token: bool) -> None:
        """A good token breaks a run of failures; a bad one counts toward the lockout."""
        if guard is not None:
            if good_token:
                guard.succeeded(source(request))
            else:
                guard.failed(source(request), "control API")

    def who(request: Request, authorization: str | None, role: str, action: str) -> Operator:
        refuse_locked(request)
        found = authorize(_token(authorization), settings.operators, role)
        if isinstance(found, Operator):
            count(request, True)
            return found
        if found.code == "OVERRIDE_BAD_TOKEN":
            count(request, False)
        refused = OverrideOutcome(action=action, accepted=False, detail=f"refused over the control API: {found.detail}")
        Store(settings.db_path).record(Event.of(found.code, refused), kind="override")
        raise HTTPException(HTTP_STATUS.get(found.code, 403), {"code": found.code, "detail": found.detail})

    @app.get("/api/status")
    def get_status(request: Request, authorization: str | None = Header(default=None)) -> dict[str, Any]:
        who(request, authorization, "viewer", "status")
        return status()

    @app.post("/api/emergency-stop")
    def post_emergency_stop(request: Request, body: EmergencyBody,
                            authorization: str | None = Header(default=None)) -> dict[str, Any]:
        operator = who(request, authorization, "operator", "emergency-stop")
        if not body.reason.strip():
            raise HTTPException(422, {"code": "OVERRIDE_NO_REASON", "detail": "an emergency stop needs a reason"})
        if status().get("mode") == "paper":  # never the credentials and the account behind a paper session
            raise HTTPException(409, {"code": "PAPER_SESSION", "detail": "a forward paper session holds no real "
                                      "account: there is nothing to flatten; stop the session instead"})
        report = emergency_stop(settings, body.reason, operator.name, venue)
        result: dict[str, Any] = report.to_dict()
        return result

    @app.post("/api/overrides/{action}")
    def post_override(request: Request, action: str, body: OverrideBody,
                      authorization: str | None = Header(default=None)) -> dict[str, Any]:
        if action not in ACTIONS:  # a wrong path, like any unknown route: nothing to authorize or record
            raise HTTPException(404, {"code": "UNKNOWN_OVERRIDE", "detail": f"unknown override {action[:40]!r}; "
                                                                            f"use one of: {', '.join(ACTIONS)}"})
        refuse_locked(request)
        scaling = body.scaling.model_dump(exclude_unset=True) if body.scaling is not None else None
        result = apply_override(settings, action, _token(authorization), body.reason, breaker=body.breaker,
                                scaling=scaling)
        if result.code == "OVERRIDE_BAD_TOKEN" or result.who is not None:  # a wrong token, or a good one
            count(request, result.who is not None)
        if not result.accepted:
            raise HTTPException(HTTP_STATUS.get(result.code, 422), {"code": result.code, "detail": result.detail})
        return {"accepted": True, "action": action, "detail": result.detail, "applied_to": result.applied_to}

    return app


class ControlServer:
    """The control API in a background thread on 127.0.0.1 (port 0 picks a free one: see ``.port``)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                     access_log=False, timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, name="rampart-control", daemon=True)
        self.host = host
        self.port = port

    def start(self) -> ControlServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        sockets = [s for srv in getattr(self._server, "servers", []) for s in srv.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
