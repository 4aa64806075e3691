"""HTTP fuzz (issue 16): every route of the dashboard and the control API, with and without credentials, answers
malformed input with a 4xx JSON error that says what is wrong, never a 5xx; below the operator role nothing
changes state.

The routes come from the apps' OpenAPI schemas, so a new route is fuzzed without touching this file. Real uvicorn
servers on 127.0.0.1, a real DuckDB file, real logins (cookie and CSRF) and a sandbox exchange for emergency stops.
Hypothesis runs derandomized with a fixed number of examples per route, so a run is repeatable and bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import Settings, load_settings
from core.control.api import ControlServer, create_control_app
from core.control.http_errors import MAX_BODY_BYTES
from core.control.overrides import ACTIONS
from core.dashboard.actions import OVERRIDES
from core.dashboard.auth import COOKIE, CSRF_HEADER, LoginGuard
from core.dashboard.server import OfflineDashboard
from core.risk.breakers import NAMES as BREAKERS
from core.risk.breakers import CircuitBreakers
from core.sandbox.server import SandboxServer
from core.state.live import LiveState, save_state
from core.store import Store
from core.venue import sandbox_at
from tests.dashboard_rig import TOKENS, operators
from tests.test_live import market, sandbox_config

EXAMPLES = 260  # per app and credential class, shared by its routes, each getting 20 to 30 (a refused override
PER_ROUTE = (20, 30)  # is recorded, audited and notified: ~0.3 s of DuckDB writes, so the bound keeps the time)
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
# Known values for path parameters by name (the valid ones, so fuzzing reaches past the 404); any other parameter
# gets random text only.
PATH_NAMES: dict[str, tuple[str, ...]] = {"action": ("emergency-stop", *OVERRIDES, *ACTIONS)}
BODY_KEYS = ("reason", "confirm", "breaker", "scaling", "token", "kind", "to_rung", "symbol", "reviewer")
UNKNOWN_NAMES = ("nope", "RESUME", "resume ", "clear_breaker", "../state", "slippage\x00", "x" * 300, "ümlaut", "")
CONTENT_TYPES = (None, "application/json", "application/json; charset=latin-1", "application/vnd.x+json",
                 "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz",
                 "application/octet-stream", "application/", ";;", "text/html; charset=\"utf-16\"")


# --- the servers ----------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """One served app, its settings, and logged-in sessions by role (re-made when a fuzzed /logout ends one)."""

    app: FastAPI
    url: str
    settings: Settings
    guard: LoginGuard
    bearer_paths: frozenset[str]  # the control API's routes: Bearer tokens; the dashboard's take the cookie
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (cookie, csrf)

    def session(self, role: str) -> tuple[str, str]:
        if role not in self.sessions:
            answer = httpx.post(self.url + "/login", data={"token": TOKENS[role]}, timeout=30)
            if answer.status_code == 200:
                self.sessions[role] = (answer.cookies[COOKIE], answer.json()["csrf"])
            else:  # the control API alone has no login: a made-up cookie stands in
                self.sessions[role] = (f"no-login-{role}", f"no-csrf-{role}")
        return self.sessions[role]


def fuzz_settings(tmp_path: Path) -> Settings:
    """Saved state with breakers, so a clear-breaker reaches them (an unknown name used to crash there)."""
    settings = load_settings(data_dir=tmp_path, operators=operators())
    breakers = CircuitBreakers(settings.breakers).to_state()
    save_state(tmp_path / "live" / "state.json", LiveState(trading_state="SAFE_MODE", risk={"breakers": breakers}))
    return settings


@contextmanager
def served(app_name: str, tmp_path: Path) -> Iterator[Target]:
    """The dashboard (with the control API's routes beside it, as `rampart dashboard` serves it) or the control
    API alone; emergency stops go to a sandbox exchange."""
    settings = fuzz_settings(tmp_path)
    with SandboxServer(sandbox_config(market())) as exchange:
        venue = sandbox_at(exchange.url)
        bearer = frozenset(path for path, _ in routes(create_control_app(settings, dict, venue)))
        if app_name == "dashboard":
            with OfflineDashboard(settings, venue, port=0) as dash:
                yield Target(dash.app, dash.url, settings, dash.guard, bearer)
            return
        Store(settings.db_path).schema_version()
        guard = LoginGuard(settings.dashboard.lockout_after, settings.dashboard.lockout_s)
        app = create_control_app(settings, lambda: {"state": "SAFE_MODE"}, venue, guard=guard)
        server = ControlServer(app).start()
        try:
            yield Target(app, server.url, settings, guard, bearer)
        finally:
            server.stop()


def routes(app: FastAPI) -> list[tuple[str, tuple[str, ...]]]:
    """(path template, methods) of every route the app serves, from its OpenAPI schema (built even when not
    served; it walks included routers, which ``app.routes`` lists as one lazy entry)."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return [(path, tuple(sorted(m.upper() for m in ops))) for path, ops in sorted(paths.items())]


# --- what is sent ---------------------------------------------------------------------------------------------------
HUGE_INT = st.integers(min_value=10**18, max_value=10**40) | st.integers(max_value=-(10**18))
SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**63) | HUGE_INT
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(BODY_KEYS) | st.text(max_size=6), inner, max_size=4),
                           max_leaves=8)
ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)  # what a header may carry


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` four times in five: a request is malformed in a few ways at a time, so most get past the first
    check to the code behind it."""
    # (st.one_of with a branch repeated does not weigh it: Hypothesis picks among distinct branches)
    return st.sampled_from((True, True, True, True, False)).flatmap(lambda u: usual if u else other)


NAMES = st.sampled_from((*BREAKERS, *ACTIONS, *UNKNOWN_NAMES)) | st.text(max_size=12)
SCALING = st.fixed_dictionaries({}, optional={
    "kind": mostly(st.sampled_from(("step_up", "new_symbol", "nope")), JSON_VALUES),
    "reviewer": mostly(st.sampled_from(("rita", "")), JSON_VALUES),
    "to_rung": mostly(st.sampled_from((2, 3, 99, -1, 10**30, True, "2")), JSON_VALUES),
    "symbol": mostly(st.sampled_from(("ETHUSDT", "BTCUSDT", "DOGEUSDT")), JSON_VALUES),
    "comment": st.text(max_size=10),
})
SHAPED = st.fixed_dictionaries({
    "reason": mostly(st.sampled_from(("checked the positions", "", "  ")) | st.text(max_size=30), JSON_VALUES),
    "confirm": mostly(st.just(True), JSON_VALUES),
}, optional={
    "breaker": mostly(NAMES, JSON_VALUES),
    "scaling": mostly(SCALING, JSON_VALUES),
    "token": mostly(st.sampled_from((*TOKENS.values(), "guess-123456")), JSON_VALUES),
})


def _raw_json(draw: st.DrawFn) -> bytes:
    """JSON text ``json.dumps`` would not write: invalid UTF-8 inside strings, NaN, numbers past every limit,
    nesting past the recursion limit, truncation, a byte-order mark, a body past the size limit."""
    kind = draw(st.sampled_from(("latin1", "nan", "digits", "deep", "cut", "bom", "huge")))
    if kind == "latin1":
        return b'{"reason": "caf\xe9 \xff\xfe", "confirm": true, "breaker": "slippage"}'
    if kind == "nan":
        return b'{"reason": NaN, "confirm": Infinity, "breaker": -Infinity, "scaling": {"to_rung": 1e999}}'
    if kind == "digits":
        return b'{"reason": "x", "confirm": true, "token": ' + b"9" * draw(st.integers(4_000, 20_000)) + b"}"
    if kind == "deep":
        depth = draw(st.integers(900, 30_000))
        return b'{"reason": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge":  # past the body limit: refused before it is read
        return b'{"reason": "' + b"x" * draw(st.integers(MAX_BODY_BYTES, 4 * MAX_BODY_BYTES)) + b'"}'
    if kind == "cut":
        return b'{"reason": "checked", "confirm": tr'
    return b'\xef\xbb\xbf{"reason": "bom", "confirm": true}'


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes | None, str | None]:
    """(body, content type)."""
    if draw(mostly(st.just(True), st.just(False))):  # mostly a JSON object of the fields the routes read
        return json.dumps(draw(SHAPED)).encode(), "application/json"
    kind = draw(st.sampled_from(("shaped", "none", "json", "raw-json", "bytes", "form")))
    content_type = draw(st.sampled_from(CONTENT_TYPES) | ASCII)
    if kind == "none":
        return None, content_type
    if kind == "shaped":
        return json.dumps(draw(SHAPED)).encode(), content_type
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode(), content_type
    if kind == "raw-json":
        return _raw_json(draw), content_type
    if kind == "bytes":
        return draw(st.binary(max_size=300)), content_type
    token = draw(st.sampled_from((*TOKENS.values(), "guess-123456")) | st.text(max_size=20))
    return f"token={token}&reason=x".encode() + draw(st.binary(max_size=20)), content_type


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None
    credential: str  # for the report, and to re-login after a fuzzed /logout

    def short(self) -> str:
        body = (self.body or b"")[:120]
        return f"{self.method} {self.path} params={self.params} credential={self.credential} headers=" \
               f"{ {k: v for k, v in self.headers.items() if k != 'cookie'} } body={body!r}"


NO_ROLE = ("none", "bad-bearer", "bad-cookie", "garbage-authorization", "viewer-bearer", "viewer-cookie")
WITH_ROLE = ("operator-bearer", "operator-cookie", "admin-bearer", "admin-cookie")


@st.composite
def requests(draw: st.DrawFn, target: Target, route: tuple[str, tuple[str, ...]],
             credentials: tuple[str, ...]) -> Request:
    template, methods = route
    path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: quote(draw(_path_value(m.group(1))), safe=""), template)
    if draw(mostly(st.just(False), st.just(True))):  # now and then a path no route has
        path = draw(st.sampled_from((path + "/", path + "/x", "/api/" + quote(draw(ASCII)),
                                     "/" + quote(draw(st.text(max_size=20))))))
    method = draw(mostly(st.sampled_from(methods), st.sampled_from(METHODS)))
    params = draw(st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3))
    body, content_type = draw(bodies())
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["content-type"] = content_type
    fits = [c for c in credentials if c.endswith("-bearer" if template in target.bearer_paths else "-cookie")]
    credential = draw(mostly(st.sampled_from(fits), st.sampled_from(credentials)) if fits else
                      st.sampled_from(credentials))
    role, _, channel = credential.partition("-")
    if channel == "bearer":
        headers["authorization"] = f"Bearer {TOKENS[role]}" if role in TOKENS else f"Bearer {draw(ASCII)}"
    elif channel == "authorization":
        headers["authorization"] = draw(st.sampled_from(("Bearer", "Basic eDp5", "bearer  x", "Bearer\tx")) | ASCII)
    elif channel == "cookie":
        cookie, csrf = target.session(role) if role in TOKENS else (draw(ASCII.filter(lambda s: ";" not in s)), "x")
        headers["cookie"] = f"{COOKIE}={cookie}"
        presented = draw(mostly(st.just("right"), st.sampled_from(("wrong", "missing"))))
        if presented != "missing":
            headers[CSRF_HEADER] = csrf if presented == "right" else draw(ASCII)
        origin = draw(mostly(st.sampled_from((None, "same")), st.sampled_from(("http://evil.example", "null"))))
        if origin is not None:
            headers["origin"] = target.url if origin == "same" else origin
    return Request(method, path, params, {k: v.strip() for k, v in headers.items()}, body, credential)


def _path_value(name: str) -> st.SearchStrategy[str]:
    known = PATH_NAMES.get(name, ())
    anything = st.sampled_from(UNKNOWN_NAMES) | st.text(max_size=20)
    return mostly(st.sampled_from(known), anything) if known else anything


# --- what must come back --------------------------------------------------------------------------------------------
def error_message(body: bytes) -> str:
    """The coded one-line message of an error answer: ``{"code", "detail"}`` (the dashboard's and the framework's
    errors) or ``{"detail": {"code", "detail"}}`` (the control API's refusals). Raises when it is neither."""
    data = json.loads(body)
    assert isinstance(data, dict), data
    coded = data["detail"] if isinstance(data.get("detail"), dict) else data
    code, detail = coded.get("code"), coded.get("detail")
    assert isinstance(code, str) and code.isupper() and code, data
    assert isinstance(detail, str) and detail.strip() and "\n" not in detail, data
    return f"{code}: {detail}"


def send(client: httpx.Client, target: Target, request: Request) -> tuple[int, bytes, str]:
    """One request; an event stream is closed after its headers (it would run until the server stops)."""
    with client.stream(request.method, request.path, params=request.params, headers=request.headers,
                       content=request.body) as answer:
        media = answer.headers.get("content-type", "")
        body = b"" if media.startswith("text/event-stream") else answer.read()
        status = answer.status_code
    if request.path == "/logout" and status == 200:  # a fuzzed logout ended a session: the next one logs in again
        target.sessions.pop(request.credential.partition("-")[0], None)
    target.guard.succeeded("127.0.0.1")  # keep the lockout (tested in test_dashboard_api) from answering everything
    return status, body, media


def check(status: int, body: bytes, media: str, request: Request) -> None:
    where = request.short()
    assert status < 500, f"{status} for {where}: {body[:300]!r}"
    if status >= 400 and request.method != "HEAD":
        assert media.startswith("application/json"), f"{status} {media} for {where}: {body[:300]!r}"
        error_message(body)


def fuzz(target: Target, credentials: tuple[str, ...], examples: int = EXAMPLES,
         verdict: Callable[[int, bytes, str, Request], None] = check) -> int:
    """About ``examples`` requests, shared evenly by the app's routes (each gets its own Hypothesis run, so a
    route with a body is not starved by the static files). Returns the number of routes."""
    table = routes(target.app)
    with httpx.Client(base_url=target.url, timeout=60) as client:
        for route in table:
            @settings(max_examples=min(max(examples // len(table), PER_ROUTE[0]), PER_ROUTE[1]), derandomize=True,
                      database=None, deadline=None, suppress_health_check=list(HealthCheck))
            @given(requests(target, route, credentials))
            def one(request: Request) -> None:
                verdict(*send(client, target, request), request)

            one()
    return len(table)


# --- the tests ------------------------------------------------------------------------------------------------------
def unchanged(settings: Settings) -> tuple[bytes, list[str]]:
    """What only an operator may change: the saved state, the HALT flag and commands, accepted actions."""
    live = settings.data_dir / "live"
    files = sorted(str(p.relative_to(live)) for p in live.rglob("*") if p.is_file())
    rows = Store(settings.db_path).query("select code from events where kind in ('override', 'control') and "
                                         "code in ('OVERRIDE_ACCEPTED', 'EMERGENCY_STOP')")
    return (live / "state.json").read_bytes(), files + rows["code"].to_list()


@pytest.mark.req("R3.1")
@pytest.mark.req("R6.3")
@pytest.mark.parametrize("app_name", ["dashboard", "control"])
def test_no_route_answers_5xx_without_the_operator_role_and_nothing_changes(
    tmp_path: Path, creds: None, app_name: str
) -> None:
    with served(app_name, tmp_path) as target:
        assert {"/api/status", "/api/emergency-stop", "/api/overrides/{action}"} <= {p for p, _ in routes(target.app)}
        before = unchanged(target.settings)
        fuzz(target, NO_ROLE)
        assert unchanged(target.settings) == before
        refused = set(Store(target.settings.db_path).query("select code from events")["code"].to_list())
        assert {"OVERRIDE_NO_TOKEN", "OVERRIDE_BAD_TOKEN", "OVERRIDE_FORBIDDEN"} <= refused  # it reached the checks


@pytest.mark.req("R3.1")
@pytest.mark.req("R6.3")
@pytest.mark.parametrize("app_name", ["dashboard", "control"])
def test_no_route_answers_5xx_to_an_operator(tmp_path: Path, creds: None, app_name: str) -> None:
    with served(app_name, tmp_path) as target:
        if app_name == "dashboard":
            assert {"/login", "/api/actions/{action}", "/metrics"} <= {p for p, _ in routes(target.app)}
        fuzz(target, WITH_ROLE)
        _, done = unchanged(target.settings)
        assert "OVERRIDE_ACCEPTED" in done and "EMERGENCY_STOP" in done  # it reached past every check, too


@pytest.mark.req("R6.3")
@pytest.mark.parametrize("app_name", ["dashboard", "control"])
def test_the_requests_that_crashed_the_apps_get_a_coded_4xx_naming_what_to_fix(
    tmp_path: Path, creds: None, app_name: str
) -> None:
    """The 500s the fuzzing found (issue 16), each pinned: bytes that are not UTF-8, an unknown override, an
    unknown breaker, a list where a symbol belongs, numbers past Python's digit limit, JSON nested too deep,
    a body past the limit."""
    operator = {"authorization": f"Bearer {TOKENS['operator']}", "content-type": "application/json"}
    overrides, breakers = ", ".join(ACTIONS), ", ".join(BREAKERS)
    cases: list[tuple[str, dict[str, str], bytes, int, str, str]] = [
        ("/api/overrides/resume", {"content-type": "text/plain"}, b"\xff\xfe\x00\x81", 422, "INVALID_REQUEST",
         "JSON object"),
        ("/api/overrides/resume", operator, b'{"reason": "caf\xe9"}', 400, "BAD_REQUEST", "UTF-8"),
        ("/api/overrides/clear_breaker", {"content-type": "application/json"}, b'{"reason": "x"}', 404,
         "UNKNOWN_OVERRIDE", overrides),
        ("/api/overrides/clear-breaker", operator, b'{"reason": "x", "breaker": "slipage"}', 422,
         "OVERRIDE_UNKNOWN_BREAKER", breakers),
        ("/api/overrides/approve-scaling", operator, json.dumps({"reason": "x", "scaling": {
            "kind": "new_symbol", "reviewer": "rita", "symbol": ["DOGEUSDT"]}}).encode(), 422, "INVALID_REQUEST",
         "body.scaling.symbol"),
        ("/api/emergency-stop", operator, b'{"reason": ' + b"9" * 5_000 + b"}", 400, "BAD_REQUEST", "4,300 digits"),
        ("/api/emergency-stop", operator, b'{"reason": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", 400, "BAD_REQUEST",
         "nesting"),
        ("/api/emergency-stop", {}, b"x" * (MAX_BODY_BYTES + 1), 413, "REQUEST_ENTITY_TOO_LARGE", "KiB"),
    ]
    with served(app_name, tmp_path) as target:
        before = unchanged(target.settings)
        if app_name == "dashboard":
            cookie, csrf = target.session("operator")
            browser = {"cookie": f"{COOKIE}={cookie}", CSRF_HEADER: csrf, "content-type": "application/json"}
            cases += [
                ("/login", {"content-type": "application/json"}, b'{"token": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
                 400, "LOGIN_NO_TOKEN", "token"),
                ("/login", {"content-type": "application/json"}, b'{"token": ' + b"9" * 5_000 + b"}", 400,
                 "LOGIN_NO_TOKEN", "token"),
                ("/api/actions/clear-breaker", browser, b'{"reason": "x", "confirm": true, "breaker": ["slippage"]}',
                 422, "INVALID_REQUEST", "breaker"),
                ("/api/actions/clear-breaker", browser, b'{"reason": "x", "confirm": true, "breaker": "slipage"}',
                 422, "OVERRIDE_UNKNOWN_BREAKER", breakers),
                ("/api/actions/resume", browser, b'{"reason": {"why": "x"}, "confirm": true}', 422,
                 "OVERRIDE_NO_REASON", "reason"),
            ]
        with httpx.Client(base_url=target.url, timeout=30) as client:
            for path, headers, body, status, code, hint in cases:
                answer = client.post(path, headers=headers, content=body)
                assert answer.status_code == status, (path, body[:60], answer.text)
                message = error_message(answer.content)
                assert message.startswith(code + ": ") and hint in message, (path, body[:60], message)
            assert "/api/status" in error_message(client.get("/no/such/route").content)  # the routes, named
            assert error_message(client.delete("/api/status").content).endswith("use GET")
        assert unchanged(target.settings) == before  # refused, all of them: nothing applied
