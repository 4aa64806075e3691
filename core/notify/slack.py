"""Slack through slack-sdk: post one outbox row, or look for it in the channel, and say what happened.

Each post carries message metadata (``event_type`` ``rampart_notification``, payload ``key``), so a message whose
response was lost can be found again with ``conversations.history`` instead of being posted twice. slack-sdk's
own retries are switched off: retrying is the outbox's job (a blind retry after a lost response would duplicate).

Outcomes: ``delivered``; ``retry`` — Slack cannot take messages now (no connection, 5xx, 429, a bad token or
channel) and every pending message waits; ``refused`` — Slack refused this one message (the next try is plain
text). ``unconfirmed`` marks failures after which the message may nevertheless have been posted.
"""

from __future__ import annotations

import logging
import re
import socket
import urllib.error
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from core.config.notify import NotifyConfig
from core.errors import ConfigError
from core.notify.messages import fallback_text, render
from core.notify.outbox import OutboxRow
from core.redact import redact, register_secret

log = logging.getLogger("rampart.notify.slack")
EVENT_TYPE = "rampart_notification"
HISTORY_PAGES = 5  # pages of 200 messages searched for a lost message before posting it again
# Slack answers that mean "not now / not with this setup", not "not this message": everything waits.
UNAVAILABLE = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "channel_not_found", "not_in_channel", "is_archived", "restricted_action",
    "team_access_not_granted", "ekm_access_denied", "org_login_required", "access_denied",
})
AMBIGUOUS_ERRORS = frozenset({"internal_error", "fatal_error", "request_timeout"})  # may have been posted
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


@dataclass(frozen=True)
class Outcome:
    status: Literal["delivered", "retry", "refused"]
    error: str = ""
    channel: str | None = None
    ts: str | None = None
    retry_after: float | None = None  # seconds, from a 429's Retry-After
    unconfirmed: bool = False  # the message may have been posted anyway


@dataclass(frozen=True)
class Lookup:
    """Result of looking for a message by its key: found (with ts), absent, or unknown (could not look)."""

    found: bool
    outcome: Outcome | None = None  # when the lookup itself failed because Slack is unavailable
    checked: bool = True  # False: looking is not possible here (no channel id, no history scope)


class SlackSender:
    """Posts outbox rows to the configured channel with the real slack-sdk ``WebClient``."""

    def __init__(self, cfg: NotifyConfig, *, timeout_s: int | None = None) -> None:
        if not cfg.slack_configured or cfg.slack_token is None:
            raise ConfigError("Slack is not configured: set RAMPART_NOTIFY__SLACK_TOKEN and "
                              "RAMPART_NOTIFY__SLACK_CHANNEL")
        token = cfg.slack_token.get_secret_value().strip()
        register_secret(token)  # whatever prints it later (an error, a log line) prints *** instead
        self.channel = (cfg.slack_channel or "").strip()
        self.channel_id: str | None = self.channel if _CHANNEL_ID.match(self.channel) else None
        quiet = logging.getLogger("rampart.notify.slack_sdk")
        quiet.setLevel(logging.CRITICAL)  # slack-sdk logs every failure at ERROR; delivery logs them once, redacted
        kwargs: dict[str, Any] = {"base_url": cfg.slack_base_url} if cfg.slack_base_url else {}
        self.client = WebClient(token=token, timeout=timeout_s or cfg.timeout_s, retry_handlers=[], logger=quiet,
                                **kwargs)

    def post(self, row: OutboxRow, *, plain: bool = False) -> Outcome:
        """chat.postMessage with blocks (or the plain text alone) and the key as metadata."""
        text, blocks = render(row)
        if plain:
            text, blocks = fallback_text(row), []
        try:
            resp = self.client.chat_postMessage(
                channel=self.channel, text=text, blocks=blocks or None, unfurl_links=False, unfurl_media=False,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"key": row.key, "kind": row.kind}})
        except SlackApiError as exc:
            return _api_failure(exc)
        except Exception as exc:  # transport: refused, timeout, reset, DNS, bad URL
            return _transport_failure(exc)
        channel = str(resp.get("channel") or "") or None
        if channel and _CHANNEL_ID.match(channel):
            self.channel_id = channel
        return Outcome("delivered", channel=channel, ts=str(resp.get("ts") or "") or None)

    def find(self, key: str, since: datetime, channel_id: str | None) -> Lookup:
        """Look for the message carrying ``key`` posted since ``since`` (conversations.history with metadata)."""
        channel = self.channel_id or channel_id
        if channel is None:
            return Lookup(found=False, checked=False)
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                resp = self.client.conversations_history(channel=channel, oldest=f"{since.timestamp() - 5:.6f}",
                                                         include_all_metadata=True, limit=200, cursor=cursor)
            except SlackApiError as exc:
                failed = _api_failure(exc)
                if failed.status == "retry" and _error_code(exc) not in ("missing_scope", "channel_not_found",
                                                                         "not_in_channel", "no_permission"):
                    return Lookup(found=False, outcome=failed)
                return Lookup(found=False, checked=False)  # cannot look here: post (may duplicate, logged)
            except Exception as exc:
                return Lookup(found=False, outcome=_transport_failure(exc))
            for message in resp.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("key") == key:
                    return Lookup(found=True, outcome=Outcome("delivered", channel=channel,
                                                              ts=str(message.get("ts") or "") or None))
            cursor = ((resp.get("response_metadata") or {}).get("next_cursor") or None)
            if not resp.get("has_more") or not cursor:
                return Lookup(found=False)
        return Lookup(found=False)


def _error_code(exc: SlackApiError) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    return str(data.get("error") or "")


def _api_failure(exc: SlackApiError) -> Outcome:
    status = int(exc.response.status_code or 0)
    code = _error_code(exc) or f"http_{status}"
    error = redact(f"Slack {code} (HTTP {status})")
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return Outcome("retry", error, retry_after=_retry_after(exc.response.headers))
    if status >= 500 or code in UNAVAILABLE:
        return Outcome("retry", error, unconfirmed=status >= 500 or code in AMBIGUOUS_ERRORS)
    return Outcome("refused", error)


def _transport_failure(exc: BaseException) -> Outcome:
    """No answer: refused / unresolvable means it never arrived; anything else (timeout, reset) may have."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    never_sent = isinstance(reason, ConnectionRefusedError | socket.gaierror) or (
        isinstance(exc, SlackClientError) and not isinstance(exc, SlackApiError))
    return Outcome("retry", redact(f"Slack unreachable: {type(reason).__name__}: {reason}")[:300],
                   unconfirmed=not never_sent)


def _retry_after(headers: Any) -> float | None:
    for name in ("Retry-After", "retry-after"):
        value = (headers or {}).get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        try:
            return max(0.0, float(value)) if value is not None else None
        except (TypeError, ValueError):
            return None
    return None


__all__ = ["EVENT_TYPE", "Lookup", "Outcome", "SlackSender"]
