"""The candle data-quality check for the live loop: the shared expectation suite (core.market.expectations)
compiled to polars expressions, so each new window is checked in about a millisecond without importing Great
Expectations (whose import alone costs ~240 MB of a live node's memory).

Same suite, same derived columns, same DataProblem objects (check, rows, timestamps, detail) as the batch
gate in core.market.quality; tests/test_quality_executors.py holds the two to that.
"""

from __future__ import annotations

import polars as pl

from core.errors import DataError, DataProblem, DataQualityError
from core.market.candles import CandleSet, timeframe_ms
from core.market.expectations import CHECKS, Expectation, derive, problems, suite

__all__ = ["CHECKS", "check_candles", "validate_candles"]

_compiled: dict[int, list[tuple[str, pl.Expr]]] = {}  # per step: (check, failing-row mask) per expectation


def check_candles(cs: CandleSet) -> list[DataProblem]:
    """Run every check on ``cs``; one DataProblem per failed check (empty list = clean)."""
    if cs.frame.height == 0:
        return []
    step_ms = timeframe_ms(cs.timeframe)
    derived = derive(cs.frame)
    compiled = _compiled.get(step_ms)
    if compiled is None:
        compiled = _compiled[step_ms] = [(x.check, _failing(x)) for x in suite(step_ms)]
    masks = derived.select(mask.alias(str(i)) for i, (_, mask) in enumerate(compiled))
    rows: dict[str, set[int]] = {}
    for (check, _), column in zip(compiled, masks.iter_columns(), strict=True):
        if column.any():
            rows.setdefault(check, set()).update(column.arg_true().to_list())
    return problems(cs, derived, rows, step_ms)


def validate_candles(cs: CandleSet) -> None:
    """Raise DataQualityError listing every problem when ``cs`` fails any check."""
    found = check_candles(cs)
    if found:
        raise DataQualityError(found)


def _failing(x: Expectation) -> pl.Expr:
    """True on each row the expectation rejects (GX semantics: see core.market.expectations)."""
    col = pl.col(x.column)
    if x.kind == "not_null":
        return col.is_null()
    if x.kind == "null":
        return col.is_not_null()
    if x.kind == "unique":
        return col.is_not_null() & col.is_duplicated()
    if x.kind == "between":
        inside = pl.lit(True)
        if x.min_value is not None:
            inside = inside & (col > x.min_value if x.strict_min else col >= x.min_value)
        if x.max_value is not None:
            inside = inside & (col <= x.max_value)
        return col.is_not_null() & ~inside
    if x.kind == "pair_ge":
        other = pl.col(str(x.other))
        return col.is_not_null() & other.is_not_null() & (col < other)
    raise DataError(f"unknown expectation kind {x.kind!r}")
