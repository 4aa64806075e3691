"""Slack Block Kit for one outbox row: a header with the severity's sign, the body, the fields as label/value
pairs and a context line (kind, session, time). Every piece of text passes ``redact`` on its way out (R8.2).

The plain ``text`` is the fallback Slack shows in notifications and to clients without blocks, and what is sent
alone when Slack refused the blocks of a message.
"""

from __future__ import annotations

from typing import Any

from core.notify.outbox import OutboxRow
from core.redact import redact

SIGNS = {"info": ":information_source:", "warning": ":warning:", "error": ":x:", "critical": ":rotating_light:"}
KIND_SIGNS = {"entry": ":chart_with_upwards_trend:", "exit": ":checkered_flag:", "emergency": ":rotating_light:",
              "gate": ":vertical_traffic_light:"}
# Slack's limits: header 150 chars, section text 3000, a field 2000, at most 10 fields a section, 50 blocks.
HEADER_MAX, TEXT_MAX, FIELD_MAX, FIELDS_PER_SECTION, MAX_FIELDS = 150, 3000, 2000, 10, 30


def render(row: OutboxRow) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for ``row``."""
    sign = KIND_SIGNS.get(row.kind) if row.severity == "info" else None
    sign = sign or SIGNS.get(row.severity, SIGNS["info"])
    title = _clip(redact(row.title) or row.kind, HEADER_MAX - len(sign) - 1)
    body = redact(row.body)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": f"{sign} {title}",
                                                                "emoji": True}}]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, TEXT_MAX)}})
    pairs = [(str(k), _value(v)) for k, v in row.fields.items()][:MAX_FIELDS]
    for start in range(0, len(pairs), FIELDS_PER_SECTION):
        chunk = pairs[start:start + FIELDS_PER_SECTION]
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": _clip(f"*{redact(label)}*\n{redact(value)}", FIELD_MAX)}
            for label, value in chunk
        ]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(row)}]})
    return fallback_text(row), blocks


def fallback_text(row: OutboxRow) -> str:
    """One readable plain message: title, body and the fields on one line each."""
    lines = [redact(row.title)]
    if row.body:
        lines.append(redact(row.body))
    lines += [redact(f"{k}: {_value(v)}") for k, v in row.fields.items()][:MAX_FIELDS]
    lines.append(_context(row))
    return _clip("\n".join(lines), TEXT_MAX)


def _context(row: OutboxRow) -> str:
    parts = [row.kind, row.severity]
    if row.session_id:
        parts.append(f"session {row.session_id[:8]}")
    parts.append(row.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
    return " · ".join(parts)


def _value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    return str(value) or "-"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["fallback_text", "render"]
