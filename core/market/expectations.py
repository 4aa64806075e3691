"""The candle expectation suite, defined once: what each check asserts, the columns it runs on, and the words
of the DataProblem it raises. Two executors read it: Great Expectations for batches (core.market.quality)
and plain polars expressions for the live loop (core.market.quality_polars), so they cannot drift apart.

Row checks run on derived columns computed in polars first (a bound is null when an input is null), so a
null/NaN/infinite row is reported once, under ``not_null``, and not again by every comparison. Every
expectation's semantics are those of its Great Expectations namesake: a column-map check skips null values
(except the null checks themselves), a pair check skips a row where either value is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from core.errors import DataError, DataProblem
from core.market.candles import (
    CANDLE_COLUMNS,
    PRICE_COLUMNS,
    VALUE_COLUMNS,
    CandleSet,
    format_duration,
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

Kind = Literal["not_null", "null", "unique", "between", "pair_ge"]


@dataclass(frozen=True)
class Expectation:
    """One expectation on the derived frame; ``check`` is the DataProblem it fails under.

    not_null: ``column`` has no null. null: ``column`` is all null. unique: no non-null value of ``column``
    repeats (every occurrence fails). between: each non-null value lies in [min_value, max_value] (a None
    bound is open; strict_min excludes min_value). pair_ge: ``column`` >= ``other`` where both are present.
    """

    check: str
    kind: Kind
    column: str
    other: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False


def suite(step_ms: int) -> tuple[Expectation, ...]:
    """The expectations for one timeframe (the gap check needs the expected step, in ms)."""
    return (
        *(Expectation("not_null", "not_null", c) for c in ("ts_ms", *VALUE_COLUMNS)),
        Expectation("high_ge_open_close", "pair_ge", "high", other="hi_bound"),
        Expectation("low_le_open_close", "pair_ge", "lo_bound", other="low"),
        *(Expectation("positive_prices", "between", c, min_value=0, strict_min=True) for c in PRICE_COLUMNS),
        Expectation("non_negative_volume", "between", "volume", min_value=0),
        Expectation("increasing_ts", "null", "back_step"),
        Expectation("no_duplicates", "unique", "ts_ms"),
        Expectation("no_gaps", "between", "fwd_step", min_value=step_ms, max_value=step_ms),
    )


def derive(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns the expectations run on: NaN/inf as null, ts as epoch ms, step to the previous row, bounds."""
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


def problems(cs: CandleSet, derived: pl.DataFrame, rows_by_check: dict[str, set[int]],
             step_ms: int) -> list[DataProblem]:
    """One DataProblem per failed check, in CHECKS order, from the failing row indices an executor found."""
    return [
        _problem(check, cs.symbol, sorted(rows_by_check[check]), derived, cs.frame, step_ms)
        for check in CHECKS
        if rows_by_check.get(check)
    ]


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
