"""The candle data-quality gate for batches: the shared expectation suite (core.market.expectations) run by
Great Expectations, every failed check as one DataProblem naming its rows.

Paper validation, downloads, resampling, reports and the flows check through here. The live loop checks
each new window with the same suite compiled to polars (core.market.quality_polars), without GX.

Great Expectations is imported lazily (its import costs seconds and ~240 MB) and its ephemeral context,
datasource and suites are built once per process and reused, so repeated validation is cheap. Nothing is
written to disk, no network is used and no progress bar is printed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from core.errors import DataError, DataProblem, DataQualityError
from core.market.candles import CandleSet, timeframe_ms
from core.market.expectations import CHECKS, Expectation, derive, problems, suite

__all__ = ["CHECKS", "check_candles", "validate_candles"]


@dataclass
class _Gx:
    """The cached Great Expectations objects: one context, one batch definition, one suite per timeframe."""

    gx: Any
    context: Any
    batch_definition: Any
    suites: dict[int, Any]


_cache: _Gx | None = None
_lock = threading.Lock()  # GX contexts are not thread-safe; validations are short, so serialise them


def check_candles(cs: CandleSet) -> list[DataProblem]:
    """Run every check on ``cs``; one DataProblem per failed check (empty list = clean)."""
    if cs.frame.height == 0:
        return []
    step_ms = timeframe_ms(cs.timeframe)
    derived = derive(cs.frame)
    data = derived.drop("ts").to_pandas()
    with _lock:
        gxo = _gx()
        gx_suite = _suite(gxo, step_ms)
        batch = gxo.batch_definition.get_batch(batch_parameters={"dataframe": data})
        result = batch.validate(gx_suite, result_format={"result_format": "COMPLETE"})
    return problems(cs, derived, _failed_rows(result), step_ms)


def validate_candles(cs: CandleSet) -> None:
    """Raise DataQualityError listing every problem when ``cs`` fails any check."""
    found = check_candles(cs)
    if found:
        raise DataQualityError(found)


def _gx() -> _Gx:
    global _cache
    if _cache is None:
        import great_expectations as gx

        # GX pins one module's logger to INFO to announce its temporary docs folder; operators need none of it.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = context.data_sources.add_pandas("rampart_candles").add_dataframe_asset("candles")
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        _cache = _Gx(gx, context, batch_definition, {})
    return _cache


def _suite(gxo: _Gx, step_ms: int) -> Any:
    """The GX suite for one timeframe, compiled from the shared definition on first use."""
    if step_ms in gxo.suites:
        return gxo.suites[step_ms]
    gx_suite = gxo.context.suites.add(gxo.gx.ExpectationSuite(name=f"candles_{step_ms}ms"))
    for x in suite(step_ms):
        gx_suite.add_expectation(_compile(gxo.gx.expectations, x))
    gxo.suites[step_ms] = gx_suite
    return gx_suite


def _compile(e: Any, x: Expectation) -> Any:
    """The Great Expectations expectation for one shared definition; ``meta.check`` names its DataProblem."""
    meta = {"check": x.check}
    if x.kind == "not_null":
        return e.ExpectColumnValuesToNotBeNull(column=x.column, meta=meta)
    if x.kind == "null":
        return e.ExpectColumnValuesToBeNull(column=x.column, meta=meta)
    if x.kind == "unique":
        return e.ExpectColumnValuesToBeUnique(column=x.column, meta=meta)
    if x.kind == "between":
        return e.ExpectColumnValuesToBeBetween(column=x.column, min_value=x.min_value, max_value=x.max_value,
                                               strict_min=x.strict_min, meta=meta)
    if x.kind == "pair_ge":
        return e.ExpectColumnPairValuesAToBeGreaterThanB(column_A=x.column, column_B=x.other, or_equal=True,
                                                         ignore_row_if="either_value_is_missing", meta=meta)
    raise DataError(f"unknown expectation kind {x.kind!r}")


def _failed_rows(result: Any) -> dict[str, set[int]]:
    """Failing row indices per check name; an expectation that crashed is an error, not a data problem."""
    rows: dict[str, set[int]] = {}
    for r in result.results:
        info = r.exception_info or {}
        if info.get("raised_exception"):
            raise DataError(
                f"data-quality check {r.expectation_config.type} crashed: {info.get('exception_message')}"
            )
        if r.success:
            continue
        check = r.expectation_config.meta["check"]
        rows.setdefault(check, set()).update(int(i) for i in r.result.get("unexpected_index_list") or [])
    return rows
