"""Secret hygiene (R8.2): scrub credentials from any text before it is logged, stored, sent or shown.

Two nets: every secret value Rampart has loaded is registered (``register_secret``) and replaced wherever it
appears, and patterns catch secret-shaped text that was never registered (Binance-style 64-character mixed-case keys,
``signature=...`` query parameters, ``X-MBX-APIKEY`` headers, Slack tokens, Bearer tokens).
``install_log_redaction()`` puts a ``RedactingFilter`` on the root logger's handlers and on the loggers
Rampart, ccxt, httpx, uvicorn and Prefect use; call ``redact(text)`` on anything else that leaves the process
(notifications, reports, dashboard responses, exception messages).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_PATTERNS = (
    re.compile(r"(?i)(signature=)[0-9a-f]{16,}"),
    re.compile(r"(?i)(x-mbx-apikey['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|apikey|secret|token|password)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"()xox[abposr]-[A-Za-z0-9-]{8,}"),
    # Binance-style keys: 64 mixed-case alphanumerics (lowercase hex digests such as hashes stay readable)
    re.compile(r"()\b(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{64}\b"),
)
LOGGERS = ("", "rampart", "ccxt", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "prefect",
           "prefect.flow_runs", "prefect.task_runs", "slack_sdk")


def register_secret(value: str | None) -> None:
    """Remember a secret value so ``redact`` masks it wherever it shows up (short values are ignored)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped token replaced by ``***``."""
    if not text:
        return text
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_value(value: Any) -> Any:
    """``redact`` applied through dicts, lists and tuples (for JSON rows and API responses)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the filter to the known loggers and to every handler they (and the root) have now."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


__all__ = ["MASK", "RedactingFilter", "install_log_redaction", "redact", "redact_value", "register_secret"]
