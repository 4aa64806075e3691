"""The daily report as JSON, validated against its versioned JSON Schema (``schema/daily-report-v1.json``).

The schema documents every field; a document that does not validate is never written (the error names the
field), so a consumer can rely on it. Version 1 only gains optional fields; a breaking change is a new file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import DataError
from core.reporting.daily.builder import DailyReport
from core.reporting.daily.files import atomic_write

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "daily-report-v1.json"


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The JSON Schema of version 1 (shipped beside this module)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


_LEAVES = ("time", "timeOrNull", "num")  # one-line definitions used thousands of times per document


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with references to the one-line leaf definitions replaced by their content: the same rules,
    without a reference lookup per timestamp and number (a 1,000-trade day has tens of thousands)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.removeprefix("#/$defs/") in _LEAVES:
            return dict(defs[ref.removeprefix("#/$defs/")])
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    fast = _inline(schema, schema["$defs"])
    return Draft202012Validator(fast, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(doc: dict[str, Any]) -> None:
    """Raise DataError listing (up to five) places where ``doc`` breaks the schema."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message[:200]}" for e in errors[:5]]
        raise DataError(f"daily report does not match {SCHEMA_PATH.name} ({len(errors)} problem(s)): "
                        + "; ".join(lines))


def to_json(report: DailyReport) -> str:
    validate(report.doc)
    return json.dumps(report.doc, indent=1, ensure_ascii=False, allow_nan=False)


def write_json(report: DailyReport, path: Path) -> Path:
    """Validate, then write ``path`` atomically."""
    text = to_json(report)
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = ["SCHEMA_PATH", "load_schema", "to_json", "validate", "write_json"]
