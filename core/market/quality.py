"""The candle data-quality suite (Great Expectations): every failed check as one DataProblem naming its rows.

Great Expectations is imported lazily (its import costs seconds) and its ephemeral context, datasource
and suites are built once per process and reused, so repeated validation is cheap. Nothing is
written to disk, no network is used and no progress bar is printed.

Row checks run on derived columns computed in polars first (a bound is null when an input is null),
so a null/NaN/infinite row is reported once, under ``not_null``, and not again by every comparison.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from core.errors import DataError, DataProblem, DataQualityError
from core.market.candles import (
    CANDLE_COLUMNS,
    PRICE_COLUMNS,
    VALUE_COLUMNS,
    CandleSet,
    format_duration,
    timeframe_ms,
)

CHECKS: tuple[str, ...] = (
    "not_null",
    "high_ge_open_close",
    "low_le_open_close",
    "positive_prices",
    "non_negative_volume",
    "increasing_ts",
    "no_duplicates",
    "no_gaps",
)
_SHOWN = 3  # how many examples a problem's detail spells out


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
    derived = _derive(cs.frame)
    data = derived.drop("ts").to_pandas()
    with _lock:
        gxo = _gx()
        suite = _suite(gxo, step_ms)
        batch = gxo.batch_definition.get_batch(batch_parameters={"dataframe": data})
        result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    rows_by_check = _failed_rows(result)
    return [
        _problem(check, cs.symbol, sorted(rows_by_check[check]), derived, cs.frame, step_ms)
        for check in CHECKS
        if rows_by_check.get(check)
    ]


def validate_candles(cs: CandleSet) -> None:
    """Raise DataQualityError listing every problem when ``cs`` fails any check."""
    problems = check_candles(cs)
    if problems:
        raise DataQualityError(problems)


def _derive(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns the expectations run on: NaN as null, ts as epoch ms, step to the previous row, bounds."""
    bad = [c for c, t in frame.select(CANDLE_COLUMNS).schema.items() if c != "ts" and not t.is_numeric()]
    if not isinstance(frame.schema["ts"], pl.Datetime) or bad:
        raise DataError(f"candle frame has wrong column types ({frame.schema}); pass it through normalize()")
    # An infinite value is no number a candle can hold: like NaN it becomes null, so not_null names it once.
    floats = frame.select(CANDLE_COLUMNS).with_columns(
        pl.when(pl.col(c).is_infinite()).then(None).otherwise(pl.col(c).fill_nan(None)).alias(c)
        for c in VALUE_COLUMNS
    )
    any_price_null = pl.any_horizontal(pl.col(PRICE_COLUMNS).is_null())
    high_lt_low = pl.col("high") < pl.col("low")
    return floats.with_columns(
        ts_ms=pl.col("ts").dt.epoch("ms"),
        step=pl.col("ts").dt.epoch("ms").diff(),
        # high must be the bar's maximum; a high < low row is reported here, once.
        hi_bound=pl.when(any_price_null).then(None).otherwise(pl.max_horizontal("open", "close", "low")),
        lo_bound=pl.when(any_price_null | high_lt_low)
        .then(None)
        .otherwise(pl.min_horizontal("open", "close")),
    ).with_columns(
        # Splitting the step keeps each ordering fault under one name: <0 out of order, 0 duplicate, >0 gap.
        back_step=pl.when(pl.col("step") < 0).then(pl.col("step")).otherwise(None),
        fwd_step=pl.when(pl.col("step") > 0).then(pl.col("step")).otherwise(None),
    )


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
    """The suite for one timeframe (the gap check needs the expected step), built on first use."""
    if step_ms in gxo.suites:
        return gxo.suites[step_ms]
    e = gxo.gx.expectations

    def meta(check: str, what: str) -> dict[str, str]:
        return {"check": check, "what": what}

    expectations = [
        *(
            e.ExpectColumnValuesToNotBeNull(column=c, meta=meta("not_null", c))
            for c in ("ts_ms", *VALUE_COLUMNS)
        ),
        e.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="high",
            column_B="hi_bound",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=meta("high_ge_open_close", "high"),
        ),
        e.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="lo_bound",
            column_B="low",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=meta("low_le_open_close", "low"),
        ),
        *(
            e.ExpectColumnValuesToBeBetween(
                column=c, min_value=0, strict_min=True, meta=meta("positive_prices", c)
            )
            for c in PRICE_COLUMNS
        ),
        e.ExpectColumnValuesToBeBetween(
            column="volume", min_value=0, meta=meta("non_negative_volume", "volume")
        ),
        e.ExpectColumnValuesToBeNull(column="back_step", meta=meta("increasing_ts", "ts")),
        e.ExpectColumnValuesToBeUnique(column="ts_ms", meta=meta("no_duplicates", "ts")),
        e.ExpectColumnValuesToBeBetween(
            column="fwd_step", min_value=step_ms, max_value=step_ms, meta=meta("no_gaps", "ts")
        ),
    ]
    suite = gxo.context.suites.add(gxo.gx.ExpectationSuite(name=f"candles_{step_ms}ms"))
    for expectation in expectations:
        suite.add_expectation(expectation)
    gxo.suites[step_ms] = suite
    return suite


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


def _iso(ms: int | None) -> str:
    if ms is None:
        return "unknown time"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problem(check: str, symbol: str, rows: list[int], derived: pl.DataFrame, frame: pl.DataFrame,
             step_ms: int) -> DataProblem:
    ts = derived.get_column("ts_ms")
    stamps = tuple(_iso(ts[i]) for i in rows)
    return DataProblem(check, symbol, tuple(rows), stamps, _detail(check, rows, derived, frame, step_ms))


def _detail(check: str, rows: list[int], derived: pl.DataFrame, frame: pl.DataFrame, step_ms: int) -> str:
    """A short sentence for the check, with the first few concrete values (``frame`` holds them as given)."""
    picked = derived[rows[:_SHOWN]]
    many = f" ({len(rows)} rows)" if len(rows) > 1 else ""
    if check == "no_gaps":
        parts = [
            f"{'gap' if step > step_ms else 'off-grid step'} of {format_duration(step)} "
            f"after {_iso(t - step)}"
            for t, step in zip(picked["ts_ms"], picked["fwd_step"], strict=True)
        ]
        return "; ".join(parts) + f"{many}, expected one candle every {format_duration(step_ms)}"
    if check == "increasing_ts":
        return "; ".join(f"ts goes back {format_duration(-s)}" for s in picked["back_step"]) + many
    if check == "no_duplicates":
        return f"timestamp appears more than once{many}"
    if check == "not_null":
        return _not_null_detail(frame[rows]) + many
    if check == "high_ge_open_close":
        return "; ".join(_ohlc(r, _high_fault(r)) for r in picked.iter_rows(named=True)) + many
    if check == "low_le_open_close":
        return "; ".join(_ohlc(r, "low above min(open, close)") for r in picked.iter_rows(named=True)) + many
    if check == "positive_prices":
        values = [f"{c}={r[c]}" for r in picked.iter_rows(named=True) for c in PRICE_COLUMNS
                  if r[c] is not None and r[c] <= 0]
        return f"price <= 0 ({', '.join(values)}){many}"
    return f"negative volume{many}"


def _not_null_detail(rows: pl.DataFrame) -> str:
    """Which columns of the failing rows are missing/NaN and which are infinite."""
    missing = [c for c in CANDLE_COLUMNS if rows.get_column(c).is_null().any()]
    missing += [c for c in VALUE_COLUMNS if c not in missing and rows.get_column(c).is_nan().any()]
    infinite = [c for c in VALUE_COLUMNS if rows.get_column(c).is_infinite().any()]
    parts = [f"missing or NaN {', '.join(missing)}"] if missing else []
    parts += [f"infinite {', '.join(infinite)}"] if infinite else []
    return "; ".join(parts)


def _high_fault(row: dict[str, Any]) -> str:
    return "high below low" if row["high"] < row["low"] else "high below max(open, close)"


def _ohlc(row: dict[str, Any], what: str) -> str:
    return f"{what}: o={row['open']} h={row['high']} l={row['low']} c={row['close']}"
