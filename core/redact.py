"""Secret hygiene (R8.2): scrub credentials from any text before it is logged, stored, sent or shown.

Two nets: every secret value Rampart has loaded is registered (``register_secret``) and replaced wherever it
appears, and patterns catch secret-shaped text that was never registered (Binance-style 64-character mixed-case keys,
``signature=...`` query parameters, ``X-MBX-APIKEY`` headers, Slack tokens, Bearer tokens).

``install_log_redaction()`` (called by every entry point: the CLI's ``main``, each flow through
``tasks.credentials.secure_run``) scrubs every log record three ways, so a handler configured later (Prefect's
``APILogHandler`` on ``prefect.flow_runs``/``prefect.task_runs``, uvicorn's, a test's) is covered too:
a log-record factory rewrites each record's message as it is created, a ``RedactingFilter`` sits on every
logger and handler that exists at the time (it also scrubs tracebacks, which are rendered later), and the
uncaught-exception hooks print scrubbed tracebacks. Call ``redact(text)`` / ``redact_value(obj)`` on anything
else that leaves the process (notifications, reports, dashboard responses, exception messages).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
_PATTERNS = (
    re.compile(r"(?i)(signature=)[0-9a-f]{16,}"),
    re.compile(r"(?i)(x-mbx-apikey['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&}]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|apikey|secret|token|password)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;&}]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"()xox[abposr]-[A-Za-z0-9-]{8,}"),
    # Binance-style keys: 64 mixed-case alphanumerics (lowercase hex digests such as hashes stay readable)
    re.compile(r"()\b(?=[A-Za-z0-9]*[A-Z])(?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]{64}\b"),
)
LOGGERS = ("", "rampart", "ccxt", "ccxt.base.exchange", "urllib3", "httpx", "httpcore", "uvicorn", "uvicorn.error",
           "uvicorn.access", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.extra", "slack_sdk")


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


def scrub_record(record: logging.LogRecord) -> None:
    """Mask secrets in a record's message, arguments, traceback and stack, in place.

    A clean message keeps its arguments untouched (uvicorn's access formatter unpacks them); otherwise
    string arguments are scrubbed one by one, and only if the message still leaks is it frozen as text."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not hide the record
        message, record.args = str(record.msg), None
    if redact(message) != message:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = redact_value(record.args)
        try:
            still = record.getMessage()
        except Exception:
            still = message
        if redact(still) != still:
            record.msg, record.args = redact(still), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None  # formatters print exc_text instead
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Rewrites each record (message, arguments, traceback) with secrets masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


_FILTER = RedactingFilter()
_installed: dict[str, Any] = {}


def _redacting_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        scrub_record(record)
        return record

    factory.rampart_redacting = True  # type: ignore[attr-defined]
    return factory


def _print_scrubbed(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        sys.stderr.write(f"Exception in thread {args.thread.name if args.thread else '?'}:\n")
        _print_scrubbed(args.exc_type, args.exc_value, args.exc_traceback)


def install_log_redaction() -> None:
    """Scrub every log record from now on (record factory), filter every current logger and handler, and
    print uncaught tracebacks scrubbed. Idempotent: call it at every entry point, after logging is set up."""
    if not getattr(logging.getLogRecordFactory(), "rampart_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
    names = set(LOGGERS) | set(logging.Logger.manager.loggerDict)
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    if "excepthook" not in _installed:
        _installed["excepthook"] = sys.excepthook
        sys.excepthook = _print_scrubbed
        threading.excepthook = _thread_hook


__all__ = ["MASK", "RedactingFilter", "install_log_redaction", "redact", "redact_value", "register_secret",
           "scrub_record"]
