"""The dashboard web app (R3.1): the page, login, the snapshot and its push stream, operator actions, /metrics.

Routes: ``GET /`` the page (static, no external assets, strict CSP); ``POST /login`` (form or JSON ``token``)
sets the session cookie; ``POST /logout``; ``GET /api/me`` (who, role, the CSRF token for this session);
``GET /api/snapshot`` and ``GET /api/stream`` (server-sent events, one ``snapshot`` event per new version);
``POST /api/actions/{emergency-stop|resume|clear-breaker}`` with JSON ``{reason, confirm: true, breaker?}`` and
the ``X-CSRF-Token`` header; ``GET /metrics`` (Prometheus). The control API's Bearer routes (/api/status,
/api/emergency-stop, /api/overrides/{action}) are served beside them when given.

/metrics and /api/snapshot need a viewer: the session cookie or ``Authorization: Bearer <viewer token>`` (so a
scraper can use a viewer token); the server binds 127.0.0.1 unless configured otherwise. Bad tokens on any
route count toward the same login lockout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from core.config import Settings
from core.control.auth import RANK, Operator, authenticate
from core.control.http_errors import install_error_handlers
from core.dashboard.actions import OVERRIDES, Actions
from core.dashboard.auth import COOKIE, CSRF_HEADER, LoginGuard, WebSession, WebSessions, csrf_ok, login_token
from core.dashboard.hub import DashboardHub
from core.dashboard.prometheus import CONTENT_TYPE, render

log = logging.getLogger("rampart.dashboard")
STATIC = Path(__file__).parent / "static"
FILES = {"/": ("index.html", "text/html; charset=utf-8"), "/static/app.js": ("app.js", "text/javascript"),
         "/static/app.css": ("app.css", "text/css")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store"),
           (b"content-security-policy", CSP.encode())]
KEEPALIVE_S = 15.0
STREAM_TICK_S = 0.2
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class SecurityHeaders:
    """Adds the security headers to every response (plain ASGI: streaming responses pass untouched)."""

    def __init__(self, app: Callable[[Scope, Any, Any], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *[h for h in HEADERS if h[0] not in names]]
            await send(message)

        await self.app(scope, receive, with_headers)


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status)


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    value = request.headers.get("authorization") or ""
    return value[7:].strip() or None if value.lower().startswith("bearer ") else None


def _same_origin(request: Request) -> bool:
    """A browser's POST names its origin; it must be this server (SameSite and CSRF already stand guard)."""
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")


def create_dashboard_app(settings: Settings, hub: DashboardHub, actions: Actions, guard: LoginGuard,
                         sessions: WebSessions | None = None, control: FastAPI | None = None) -> FastAPI:
    """The app; ``control`` (the control API app) adds its Bearer routes beside the dashboard's."""
    app = FastAPI(title="Rampart dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    web_sessions = sessions or WebSessions(settings.dashboard.session_ttl_s)
    operators = settings.operators

    def current(request: Request) -> WebSession | None:
        return web_sessions.get(request.cookies.get(COOKIE))

    def viewer(request: Request) -> WebSession | Operator | JSONResponse:
        """The cookie's session, or a Bearer token of any role (bad tokens count toward the lockout)."""
        web = current(request)
        if web is not None:
            return web
        token = _bearer(request)
        if token is None:
            return _error(401, "LOGIN_REQUIRED", "log in, or send Authorization: Bearer <viewer token>")
        return check_token(request, token, "API token")

    def check_token(request: Request, token: str, channel: str) -> Operator | JSONResponse:
        source = _source(request)
        left = guard.locked(source)
        if left > 0:
            return _error(429, "LOGIN_LOCKED", f"too many failed logins: try again in {left:.0f} s")
        found = authenticate(token, operators)
        if found is None:
            count, lockout = guard.failed(source, channel)
            actions.login(source, None, failures=count, channel=channel)
            if lockout is not None:
                return _error(429, "LOGIN_LOCKED", f"{count} failed logins in a row: logins locked for "
                                                   f"{lockout.locked_for_s:g} s")
            return _error(401, "LOGIN_FAILED", "the token matches no operator")
        guard.succeeded(source)
        return found

    @app.get("/")
    @app.get("/static/app.js")
    @app.get("/static/app.css")
    def page(request: Request) -> Response:
        name, media = FILES[request.url.path]
        return Response((STATIC / name).read_bytes(), media_type=media)

    @app.post("/login")
    async def login(request: Request) -> Response:
        token = login_token(await request.body(), request.headers.get("content-type", ""))
        if token is None:
            return _error(400, "LOGIN_NO_TOKEN", "send the operator token as the form field 'token'")
        found = await run_in_threadpool(check_token, request, token, "dashboard")
        if isinstance(found, JSONResponse):
            return found
        await run_in_threadpool(actions.login, _source(request), found.name)
        session_id, web = web_sessions.create(found.name, found.role, token)
        response = JSONResponse({"name": web.name, "role": web.role, "csrf": web.csrf,
                                 "can_act": RANK[web.role] >= RANK["operator"]})
        response.set_cookie(COOKIE, session_id, max_age=settings.dashboard.session_ttl_s, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @app.post("/logout")
    def logout(request: Request) -> Response:
        web = current(request)
        if web is not None and not csrf_ok(web, request.headers.get(CSRF_HEADER)):
            return _error(403, "CSRF_INVALID", f"send the session's {CSRF_HEADER} header")
        web_sessions.drop(request.cookies.get(COOKIE))
        response = JSONResponse({"logged_out": True})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/api/me")
    def me(request: Request) -> Response:
        web = current(request)
        if web is None:
            return _error(401, "LOGIN_REQUIRED", "log in with an operator token")
        return JSONResponse({"name": web.name, "role": web.role, "csrf": web.csrf,
                             "can_act": RANK[web.role] >= RANK["operator"]})

    @app.get("/api/snapshot")
    def snapshot(request: Request) -> Response:
        who = viewer(request)
        if isinstance(who, JSONResponse):
            return who
        return Response(hub.latest()[1], media_type="application/json")

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        who = viewer(request)
        if isinstance(who, JSONResponse):
            return who
        hub.latest()
        return Response(render(hub.snapshot), media_type=CONTENT_TYPE)

    @app.get("/api/stream")
    async def stream(request: Request) -> Response:
        if current(request) is None:
            return _error(401, "LOGIN_REQUIRED", "log in with an operator token")
        await run_in_threadpool(hub.latest)  # the first build may read DuckDB: not on the event loop
        return StreamingResponse(_events(request, hub, lambda: current(request) is not None),
                                 media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    @app.post("/api/actions/{action}")
    def act(request: Request, action: str, body: dict[str, Any]) -> Response:
        web = current(request)
        if web is None:
            return _error(401, "LOGIN_REQUIRED", "log in with an operator token")
        if not _same_origin(request) or not csrf_ok(web, request.headers.get(CSRF_HEADER)):
            actions.refused(action, web.name, "CSRF_INVALID", "missing or wrong CSRF token, or foreign origin")
            return _error(403, "CSRF_INVALID", f"send the session's {CSRF_HEADER} header from this page")
        if action not in ("emergency-stop", *OVERRIDES):
            return _error(404, "UNKNOWN_ACTION", f"use one of: emergency-stop, {', '.join(OVERRIDES)}")
        reason, breaker = body.get("reason"), body.get("breaker") or None
        if body.get("confirm") is not True:
            return _error(422, "CONFIRM_REQUIRED", "confirm the action (confirm: true)")
        if not isinstance(reason, str) or not reason.strip():
            return _error(422, "OVERRIDE_NO_REASON", "give a reason (text)")
        if breaker is not None and not isinstance(breaker, str):
            return _error(422, "INVALID_REQUEST", "breaker must be the breaker's name (text)")
        if action == "emergency-stop":
            status, result = actions.emergency_stop(web, reason.strip())
        else:
            status, result = actions.override(action, web, reason.strip(), breaker)
        _refresh_after(hub)
        return JSONResponse(result, status_code=status)

    if control is not None:
        app.include_router(control.router)
    app.add_middleware(SecurityHeaders)
    return app


def _refresh_after(hub: DashboardHub) -> None:
    """After an action: HALTED shows at once; the events it recorded come with the next poll's database read.
    A failed refresh must not turn an action that was done into an error answer."""
    try:
        hub.refresh(database=False)
    except Exception:  # the session's status may be mid-update on the trading thread; the next poll shows it
        log.exception("dashboard: refresh after an action failed")
    hub.mark_stale()


async def _events(request: Request, hub: DashboardHub, allowed: Callable[[], bool]) -> AsyncIterator[str]:
    """One ``snapshot`` event per new version; a comment now and then keeps proxies from closing the stream."""
    sent, quiet_since = -1, time.monotonic()
    yield "retry: 1000\n\n"
    while not hub.closed and allowed():
        version, payload = hub.latest()
        if version != sent:
            sent, quiet_since = version, time.monotonic()
            yield f"id: {version}\nevent: snapshot\ndata: {payload}\n\n"
        elif time.monotonic() - quiet_since > KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(STREAM_TICK_S)


__all__ = ["create_dashboard_app"]
