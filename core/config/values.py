"""How list and object settings are written: symbols in the comma form (``BTCUSDT,ETHUSDT``) or as JSON, objects and
lists of objects as JSON. A value that is neither is refused with what to write instead, naming the variable."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_settings import NoDecode


def _symbol_list(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"must be symbols separated by commas (BTCUSDT,ETHUSDT) or a JSON list; got "
                                 f"{value!r}") from None
        else:
            value = [p for p in text.split(",") if p.strip()]
    if isinstance(value, list | tuple):
        out = [str(s).strip().upper() for s in value]
        bad = [s for s in out if not s.isalnum()]
        if bad:
            raise ValueError(f"symbols are letters and digits, e.g. BTCUSDT,ETHUSDT; got {', '.join(bad)}")
        return out
    return value


def json_text(example: str) -> Callable[[Any], Any]:
    """A before-validator for an object or list setting: text must be JSON (``example`` shows the shape)."""

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(f"must be JSON, e.g. {example}; got {value[:60]!r}") from None
        return value

    return parse


# A list of exchange symbols: ``BTCUSDT,ETHUSDT`` (the README's form) or ``["BTCUSDT", "ETHUSDT"]``.
SymbolList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_symbol_list)]

__all__ = ["SymbolList", "json_text"]
