"""One expectation suite, two executors: Great Expectations (the batch gate) and polars (the live loop) give the
same verdict and the same DataProblem objects (check, rows, timestamps, detail) on every corrupt-candle case, and
a live session on the sandbox never imports Great Expectations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DataError, DataProblem, DataQualityError
from core.market import CandleSet, generate, quality, quality_polars
from core.market.candles import VALUE_COLUMNS
from tests.test_source_quality import KINDS as SOURCE_KINDS
from tests.test_source_quality import ROW

ROOT = Path(__file__).resolve().parent.parent
NAN, INF = float("nan"), float("inf")

Corrupt = Callable[[pl.DataFrame], pl.DataFrame]


def _window(n: int = 60, tf: str = "1m", seed: int = 5) -> pl.DataFrame:
    return generate(["BTCUSDT"], tf, n * (1 if tf == "1m" else 5) / 1440, seed=seed)[0].frame


def _edit(row: int, **values: float | None) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        at_row = pl.int_range(pl.len()) == row
        return frame.with_columns(
            pl.when(at_row).then(pl.lit(v, dtype=pl.Float64)).otherwise(pl.col(c)).alias(c) for c, v in values.items()
        )

    return edit


def _rows(*order: int) -> Corrupt:
    return lambda frame: frame[list(order)]


def _shift_ts(row: int, ms: int) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        at_row = pl.int_range(pl.len()) == row
        return frame.with_columns(pl.when(at_row).then(pl.col("ts") + pl.duration(milliseconds=ms))
                                  .otherwise(pl.col("ts")).alias("ts"))

    return edit


def _null_ts(row: int) -> Corrupt:
    at_row = pl.int_range(pl.len()) == row
    return lambda frame: frame.with_columns(pl.when(at_row).then(None).otherwise(pl.col("ts")).alias("ts"))


def _swap_high_low(row: int) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        r = frame.row(row, named=True)
        return _edit(row, high=r["low"], low=r["high"])(frame)

    return edit


def _high_under_body(row: int) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        r = frame.row(row, named=True)
        body_top, body_bottom = max(r["open"], r["close"]), min(r["open"], r["close"])
        return _edit(row, high=(body_top + body_bottom) / 2, low=body_bottom - 1)(frame)

    return edit


def _low_over_body(row: int) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        r = frame.row(row, named=True)
        return _edit(row, low=max(r["open"], r["close"]) + 1, high=r["high"] + 2)(frame)

    return edit


def _all(*edits: Corrupt) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        for e in edits:
            frame = e(frame)
        return frame

    return edit


_SEQ = list(range(60))
# case -> (corruption of a 60-row 1-minute window, the checks that must fail)
CASES: dict[str, tuple[Corrupt, set[str]]] = {
    **{f"{how}_{c}": (_edit(7, **{c: v}), {"not_null"})
       for c in VALUE_COLUMNS for how, v in (("nan", NAN), ("null", None), ("inf", INF), ("minus_inf", -INF))},
    "null_ts": (_null_ts(5), {"not_null"}),
    "nan_and_inf_in_one_row": (_edit(3, close=NAN, high=INF), {"not_null"}),
    "nan_in_ten_rows": (_all(*(_edit(r, open=NAN) for r in range(10, 20))), {"not_null"}),
    "zero_open": (_edit(6, open=0.0, low=0.0), {"positive_prices"}),
    "zero_everything": (_edit(6, open=0.0, high=0.0, low=0.0, close=0.0), {"positive_prices"}),
    "negative_low": (_edit(9, low=-1.0), {"positive_prices"}),
    "negative_volume": (_edit(2, volume=-1.0), {"non_negative_volume"}),
    "high_below_low": (_swap_high_low(11), {"high_ge_open_close"}),
    "high_below_body": (_high_under_body(12), {"high_ge_open_close"}),
    "low_above_body": (_low_over_body(4), {"low_le_open_close"}),
    "duplicate": (_rows(*_SEQ[:21], 20, *_SEQ[21:]), {"no_duplicates"}),
    "triplicate": (_rows(*_SEQ[:21], 20, 20, *_SEQ[21:]), {"no_duplicates"}),
    "swapped_rows": (_rows(*_SEQ[:3], 4, 3, *_SEQ[5:]), {"increasing_ts", "no_gaps"}),
    "reversed": (lambda f: f.reverse(), {"increasing_ts"}),
    "gap": (lambda f: f.filter(pl.int_range(pl.len()) != 30), {"no_gaps"}),
    "many_gaps": (lambda f: f.gather_every(2), {"no_gaps"}),
    "off_grid": (_shift_ts(8, 30_000), {"no_gaps"}),
    "swapped_and_repeated": (_rows(*_SEQ[:3], 4, 3, *_SEQ[5:8], 7, *_SEQ[8:]),
                             {"increasing_ts", "no_duplicates", "no_gaps"}),
    "every_fault_at_once": (_all(_edit(2, volume=-1.0), _low_over_body(4), _edit(6, open=0.0, low=0.0),
                                 _edit(8, high=None), _swap_high_low(10), _high_under_body(12), _edit(14, close=INF),
                                 _rows(*_SEQ[:30], 29, *_SEQ[31:40], 41, 40, *_SEQ[42:])),
                            {"not_null", "high_ge_open_close", "low_le_open_close", "positive_prices",
                             "non_negative_volume", "increasing_ts", "no_duplicates", "no_gaps"}),
    # Edge values that are no fault: both executors must pass them.
    "zero_volume": (_edit(3, volume=0.0), set()),
    "flat_candle": (_edit(3, open=5.0, high=5.0, low=5.0, close=5.0), set()),
    "clean": (lambda f: f, set()),
}


def _both(cs: CandleSet) -> tuple[list[DataProblem], list[DataProblem]]:
    return quality.check_candles(cs), quality_polars.check_candles(cs)


@pytest.mark.req("R1.5")
@pytest.mark.parametrize("case", list(CASES))
def test_both_executors_name_the_same_problems_on_each_corrupt_window(case: str) -> None:
    corrupt, expected = CASES[case]
    cs = CandleSet("BTCUSDT", "1m", corrupt(_window()))
    by_gx, by_polars = _both(cs)
    assert {p.check for p in by_gx} == expected, by_gx  # the case breaks what it says it breaks
    assert by_polars == by_gx


@pytest.mark.req("R1.5")
@pytest.mark.parametrize("kind", list(SOURCE_KINDS))
def test_both_executors_agree_on_the_source_file_corruptions_in_a_1000_row_window(kind: str) -> None:
    corrupt, check, words = SOURCE_KINDS[kind]
    cs = CandleSet("ETHUSDT", "1m", corrupt(_window(1200, seed=11)))
    by_gx, by_polars = _both(cs)
    named = {p.check: p for p in by_gx}
    assert words in named[check].detail and named[check].rows[0] == ROW, by_gx
    assert by_polars == by_gx


@pytest.mark.req("R1.5")
def test_both_executors_use_the_set_timeframe_and_pass_clean_and_empty_windows() -> None:
    five = _window(40, "5m")
    for tf in ("1m", "5m", "15m"):
        by_gx, by_polars = _both(CandleSet("BTCUSDT", tf, five))
        assert by_polars == by_gx and bool(by_gx) == (tf != "5m"), (tf, by_gx)
    assert _both(CandleSet("BTCUSDT", "5m", five.head(0))) == ([], [])


@pytest.mark.req("R1.5")
def test_both_executors_raise_the_same_error_and_refuse_the_same_unnormalized_frame() -> None:
    cs = CandleSet("BTCUSDT", "1m", _all(_swap_high_low(3), _edit(9, close=NAN))(_window()))
    errors = []
    for executor in (quality, quality_polars):
        with pytest.raises(DataQualityError) as info:
            executor.validate_candles(cs)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "2 data-quality problem" in errors[0]

    raw = CandleSet("BTCUSDT", "1m", _window().with_columns(pl.col("ts").dt.epoch("ms")))
    messages = []
    for executor in (quality, quality_polars):
        with pytest.raises(DataError, match=r"wrong column types.*normalize\(\)") as refused:
            executor.check_candles(raw)
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


_VALUES = st.sampled_from([NAN, INF, -INF, 0.0, -1.0, -1e-9, 1e9, None])
_EDIT = st.one_of(
    st.tuples(st.just("value"), st.integers(0, 39), st.sampled_from(VALUE_COLUMNS), _VALUES),
    st.tuples(st.just("swap_high_low"), st.integers(0, 39)),
    st.tuples(st.just("null_ts"), st.integers(0, 39)),
    st.tuples(st.just("shift_ts"), st.integers(0, 39), st.sampled_from([-120_000, -60_000, -1, 1, 30_000, 60_000])),
    st.tuples(st.just("repeat"), st.integers(0, 39)),
    st.tuples(st.just("drop"), st.integers(0, 39)),
)


def _apply(frame: pl.DataFrame, edit: tuple[object, ...]) -> pl.DataFrame:
    kind, row = edit[0], min(int(edit[1]), frame.height - 1)  # type: ignore[call-overload]
    if kind == "value":
        return _edit(row, **{str(edit[2]): edit[3]})(frame)  # type: ignore[arg-type]
    if kind == "swap_high_low":
        return _swap_high_low(row)(frame)
    if kind == "null_ts":
        return _null_ts(row)(frame)
    if kind == "shift_ts":
        return _shift_ts(row, int(edit[2]))(frame)  # type: ignore[call-overload]
    order = list(range(frame.height))
    return frame[order[: row + 1] + order[row:]] if kind == "repeat" else frame[order[:row] + order[row + 1:]]


@pytest.mark.req("R1.5")
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(_EDIT, min_size=1, max_size=6))
def test_any_mix_of_corruptions_gets_the_same_problems_from_both_executors(edits: list[tuple[object, ...]]) -> None:
    frame = _window(40, seed=3)
    for edit in edits:
        frame = _apply(frame, edit)
    by_gx, by_polars = _both(CandleSet("BTCUSDT", "1m", frame))
    assert by_polars == by_gx


LIVE_SCRIPT = """
import json, sys, tempfile
from pathlib import Path
import core.live.feed as feed
from tests.sandbox_rig import BTC, ETH, Rig, enter, leave, sandbox, settings_for

sizes = []
polars_check = feed.check_candles
def counted(cs):
    sizes.append(cs.frame.height)
    return polars_check(cs)
feed.check_candles = counted

with tempfile.TemporaryDirectory() as folder, sandbox([BTC] * 2 + [BTC * 1.01] * 4, [ETH] * 6) as server:
    rig = Rig(server, settings_for(Path(folder)))
    rig.bar(BTCUSDT=enter(0.10))
    rig.bar()
    rig.bar(BTCUSDT=leave())
    rig.bar()
    state = rig.stop()
print(json.dumps({"checked": sizes, "state": state, "executor": polars_check.__module__,
                  "gx": sorted(m for m in sys.modules if m.split(".")[0] == "great_expectations")}))
"""


@pytest.mark.req("R1.5")
def test_a_live_session_on_the_sandbox_checks_every_window_without_importing_great_expectations(
    tmp_path: Path,
) -> None:
    from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET

    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAMPART_API_KEY": DEMO_API_KEY,
           "RAMPART_API_SECRET": DEMO_API_SECRET, "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", LIVE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["executor"] == "core.market.quality_polars"
    # The first window (the strategies' history) and then one seam-plus-new-bar window per bar, two symbols each.
    assert len(report["checked"]) >= 10 and max(report["checked"]) > 2, report
    assert report["gx"] == [], report
