"""Error answers of the dashboard and the control API: every refused request gets a 4xx JSON
``{"code", "detail"}`` whose detail is one line saying what to fix.

FastAPI's own answers to a malformed request echo the input back, and fail with a 500 when that input is not
UTF-8 text (a body of random bytes); they may also repeat a token someone pasted into a body. These handlers
answer from the error's location and message only. The control API's coded refusals
(``{"detail": {"code", "detail"}}``, read by ``core.control.approval``) pass through unchanged. ``BodyLimit``
refuses a body larger than any request of these APIs needs (413) before it is read into memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

MAX_PROBLEMS = 3  # more than this in one answer is noise: the first ones say what to fix
MAX_BODY_BYTES = 64 * 1024  # the largest request (an approve-scaling change) is well under 1 KiB
Message = MutableMapping[str, Any]


def error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "detail": _line(detail)}, status_code=status, headers=headers)


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).name
    except ValueError:
        return f"HTTP_{status}"


def _line(text: str, limit: int = 500) -> str:
    """One line, bounded: messages may quote a library's multi-line text."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body" and len(parts) > 1 and all(p.isdigit() for p in parts[1:]):
        return "body"  # a JSON decode error's location is a character offset, not a field
    return ".".join(parts) or "request"


def describe(errors: Sequence[Any]) -> str:
    """What is wrong with a request, from pydantic/FastAPI error records, never quoting the input."""
    problems = []
    for err in errors[:MAX_PROBLEMS]:
        where, kind = _where(err.get("loc", ())), err.get("type", "")
        if kind == "json_invalid":
            problems.append(f"{where} is not valid JSON ({(err.get('ctx') or {}).get('error', 'decode error')}): "
                            "send a JSON object with Content-Type: application/json")
        elif kind in ("dict_type", "model_attributes_type") and where == "body":
            problems.append("body must be a JSON object with Content-Type: application/json")
        else:
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(errors) - MAX_PROBLEMS
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return error(422, "INVALID_REQUEST", describe(errors) or "the request is not valid")


async def _http(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # registered for that class only
        raise exc
    headers = dict(exc.headers or {})
    if isinstance(exc.detail, dict):  # a coded refusal of the control API: its documented shape
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
    code = _code(exc.status_code)
    detail = str(exc.detail)
    if detail == "Not Found":  # Starlette's words for a path no route has
        detail = f"no such route; the routes are: {', '.join(sorted(request.app.openapi()['paths']))}"
    elif detail == "Method Not Allowed":
        allowed = next((v for k, v in headers.items() if k.lower() == "allow"), "another method")
        detail = f"method {request.method} not allowed here; use {allowed}"
    elif detail == "There was an error parsing the body":  # FastAPI's words for JSON that json.loads refused
        detail = ("the body is not JSON that can be read (UTF-8, numbers under 4,300 digits, nesting under 1,000 "
                  "levels): send a JSON object with Content-Type: application/json")
    return error(exc.status_code, code, detail, headers)


class BodyLimit:
    """413 for a request body over ``max_bytes``: at once when Content-Length says so, else (chunked) as soon as
    the app has read that much. Plain ASGI, so streaming responses pass untouched."""

    def __init__(self, app: Callable[[Message, Any, Any], Awaitable[None]], max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Message, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b"")) if message["type"] == "http.request" else 0
            if received > self.max_bytes:  # an HTTPException: the app's handlers answer it (FastAPI re-raises it)
                raise StarletteHTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"the request body is larger than {self.max_bytes // 1024} KiB; these requests are a few hundred bytes"

    def _too_large(self) -> JSONResponse:
        return error(413, _code(413), self._detail())


def install_error_handlers(app: FastAPI) -> None:
    """Coded one-line JSON answers for malformed requests, unknown routes and wrong methods; bodies bounded."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_middleware(BodyLimit)


__all__ = ["MAX_BODY_BYTES", "BodyLimit", "describe", "error", "install_error_handlers"]
