"""A local Slack-compatible Web API for tests: ``auth.test``, ``chat.postMessage`` and ``conversations.history``
on 127.0.0.1, recording every request and message, with switches to misbehave like the real service.

``SlackServer().start()`` (or ``with SlackServer() as slack``) listens on a free port; give the real slack-sdk
``slack.api_url`` as ``base_url``. Switches: ``down()`` / ``up()`` (connection refused, then back on the same
port), ``fail(503)`` (every call answers 5xx until ``recover()``), ``rate_limit(retry_after, times)`` (429 with
Retry-After), ``lose_responses(times)`` (the message is posted but the connection closes without an answer),
``refuse_blocks(times)`` (``invalid_blocks`` for messages with blocks), ``refuse_key(key)`` (that message, always),
``hold_posts()`` / ``release_posts()`` (a post waits, unanswered, until released: a send in progress).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "xoxb-1234567890-test-rampart-token"
CHANNEL_ID = "C0RAMPART1"
CHANNEL_NAME = "#rampart-ops"


@dataclass(frozen=True)
class Seen:
    """One request as received: the API method, when (time.time()), and the HTTP status answered (0: none)."""

    method: str
    at: float
    status: int
    key: str | None = None  # the message's metadata key (chat.postMessage)


@dataclass
class SlackServer:
    token: str = TOKEN
    channel_id: str = CHANNEL_ID
    channel_name: str = CHANNEL_NAME
    messages: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fail_status: int | None = None
    _rate_limits: list[float] = field(default_factory=list)
    _lose: int = 0
    _refuse_blocks: int = 0
    _refused_keys: dict[str, str] = field(default_factory=dict)
    _waiting: int = 0
    _ts: int = 0
    _gate: threading.Event = field(default_factory=lambda: _open_event())

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> SlackServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="slack-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._gate.set()  # a held post is answered, not left hanging
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SlackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"  # slack-sdk needs the trailing slash

    # --- switches ----------------------------------------------------------------------------------------------
    def down(self) -> None:
        """Stop listening: connections are refused until ``up()``."""
        self.stop()

    def up(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self.start()

    def fail(self, status: int = 503) -> None:
        self._fail_status = status

    def recover(self) -> None:
        self._fail_status = None

    def rate_limit(self, retry_after: float, times: int = 1) -> None:
        with self._lock:
            self._rate_limits = [retry_after] * times

    def lose_responses(self, times: int = 1) -> None:
        self._lose = times

    def refuse_blocks(self, times: int = 1) -> None:
        self._refuse_blocks = times

    def refuse_key(self, key: str, error: str = "msg_too_long") -> None:
        """Refuse every post of the message with this metadata key (a message Slack never takes)."""
        self._refused_keys[key] = error

    def hold_posts(self) -> None:
        """Every post from now on waits, unanswered, until ``release_posts()``."""
        self._gate.clear()

    def release_posts(self) -> None:
        self._gate.set()

    def posts_waiting(self) -> int:
        with self._lock:
            return self._waiting

    # --- what arrived ------------------------------------------------------------------------------------------
    def posted_keys(self) -> list[str]:
        """The metadata keys of the posted messages, in the order they were posted."""
        with self._lock:
            return [m["metadata"]["event_payload"]["key"] for m in self.messages if m.get("metadata")]

    def posts(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == "chat.postMessage"]

    def message(self, key: str) -> dict[str, Any]:
        with self._lock:
            found = [m for m in self.messages if (m.get("metadata") or {}).get("event_payload", {}).get("key") == key]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} messages with key {key!r}; keys: {self.posted_keys()}")
        return found[0]

    # --- the API -----------------------------------------------------------------------------------------------
    def handle(self, method: str, auth: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers); status 0 = close the connection without answering."""
        key = ((args.get("metadata") or {}).get("event_payload") or {}).get("key") if method.endswith(
            "postMessage") else None
        status, body, headers = self._answer(method, auth, args)
        with self._lock:
            self.seen.append(Seen(method, time.time(), status, key))
        return status, body, headers

    def _answer(self, method: str, auth: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self._fail_status is not None:
            return self._fail_status, {"ok": False, "error": "service_unavailable"}, {}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth" if auth else "not_authed"}, {}
        if method == "auth.test":
            return 200, {"ok": True, "url": "https://rampart-test.slack.com/", "team": "rampart-test",
                         "user": "rampart", "user_id": "UBOT00001", "bot_id": "BBOT00001"}, {}
        if method == "chat.postMessage":
            return self._post(args)
        if method == "conversations.history":
            return self._history(args)
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _post(self, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not self._gate.is_set():
            with self._lock:
                self._waiting += 1
            self._gate.wait()
            with self._lock:
                self._waiting -= 1
        with self._lock:
            if self._rate_limits:
                wait = self._rate_limits.pop(0)
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": f"{wait:g}"}
        if args.get("channel") not in (self.channel_id, self.channel_name):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if not args.get("text") and not args.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        key = ((args.get("metadata") or {}).get("event_payload") or {}).get("key")
        if key in self._refused_keys:
            return 200, {"ok": False, "error": self._refused_keys[key]}, {}
        if args.get("blocks") and self._refuse_blocks > 0:
            self._refuse_blocks -= 1
            return 200, {"ok": False, "error": "invalid_blocks"}, {}
        with self._lock:
            self._ts += 1
            ts = f"{int(time.time())}.{self._ts:06d}"
            message = {"type": "message", "ts": ts, "channel": self.channel_id, "text": args.get("text", ""),
                       "blocks": args.get("blocks") or [], "metadata": args.get("metadata"),
                       "received_at": time.time()}
            self.messages.append(message)
        if self._lose > 0:
            self._lose -= 1
            return 0, {}, {}
        return 200, {"ok": True, "channel": self.channel_id, "ts": ts, "message": message}, {}

    def _history(self, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if args.get("channel") != self.channel_id:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        oldest = float(args.get("oldest") or 0)
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [m for m in reversed(self.messages) if float(m["ts"].split(".")[0]) >= int(oldest)]
        out = [{k: v for k, v in m.items() if k != "received_at" and (with_meta or k != "metadata")} for m in found]
        return 200, {"ok": True, "messages": out, "has_more": False}, {}


def _open_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _handler(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            self._serve(dict(parse_qs(urlparse(self.path).query)))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if "json" in (self.headers.get("Content-Type") or ""):
                args = json.loads(raw or "{}")
            else:
                args = dict(parse_qs(raw))
            self._serve({**dict(parse_qs(urlparse(self.path).query)), **args})

        def _serve(self, args: dict[str, Any]) -> None:
            flat = {k: v[0] if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str) else v
                    for k, v in args.items()}
            method = urlparse(self.path).path.removeprefix("/api/")
            status, body, headers = server.handle(method, self.headers.get("Authorization") or "", flat)
            if status == 0:  # posted, then the connection drops: the client never learns the outcome
                self.close_connection = True
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


__all__ = ["CHANNEL_ID", "CHANNEL_NAME", "TOKEN", "Seen", "SlackServer"]
