"""Candles are checked at the resolution they are stored in, before resampling: a corrupt 1-minute row in a file
traded at 1h is refused by `rampart paper`, naming the file, the row and the fault, and nothing is recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from core.cli import main
from core.errors import DataQualityError
from core.market import CandleSet, check_candles, load_candles, resample, resample_set

ROW = 1000  # the corrupted row of the 1-minute file (rows count from 0, as the error says)

Corrupt = Callable[[pl.DataFrame], pl.DataFrame]


def _set(column: str, value: float) -> Corrupt:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        at_row = pl.int_range(pl.len()) == ROW
        return frame.with_columns(pl.when(at_row).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))

    return edit


def _high_below_low(frame: pl.DataFrame) -> pl.DataFrame:
    at_row = pl.int_range(pl.len()) == ROW
    return frame.with_columns(
        pl.when(at_row).then(pl.col("low")).otherwise(pl.col("high")).alias("high"),
        pl.when(at_row).then(pl.col("high")).otherwise(pl.col("low")).alias("low"),
    )


def _duplicate(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame[: ROW + 1], frame[ROW:]])  # the row appears twice, at ROW and ROW + 1


# kind -> (corruption, the check that must name it, words of its detail)
KINDS: dict[str, tuple[Corrupt, str, str]] = {
    "nan": (_set("close", float("nan")), "not_null", "missing or NaN close"),
    "zero": (_set("open", 0.0), "positive_prices", "open=0.0"),
    "negative_price": (_set("low", -1.0), "positive_prices", "low=-1.0"),
    "negative_volume": (_set("volume", -5.0), "non_negative_volume", "negative volume"),
    "inf_high": (_set("high", float("inf")), "not_null", "infinite high"),
    "inf_volume": (_set("volume", float("inf")), "not_null", "infinite volume"),
    "high_below_low": (_high_below_low, "high_ge_open_close", "high below low"),
    "duplicate_ts": (_duplicate, "no_duplicates", "timestamp appears more than once"),
}


@pytest.fixture(scope="module")
def minute_file(shared_dir: Path) -> Path:
    path = shared_dir / "market-data" / "binance-spot" / "BTC_USDT-1m.feather"
    if not path.is_file():
        pytest.skip(f"market data not found at {path}")
    return path


def _write_corrupt(source: Path, kind: str, folder: Path) -> tuple[Path, str]:
    """A copy of the real 1-minute file with one corrupt row; returns it and the row's timestamp."""
    raw = pl.read_ipc(source)
    stamp = raw["date"][ROW].strftime("%Y-%m-%dT%H:%M:%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.name
    KINDS[kind][0](raw).write_ipc(path)
    return path, stamp


def _recorded(data_dir: Path) -> int:
    """Rows in the tables a paper run writes (the database may exist; it must hold nothing)."""
    db = data_dir / "rampart.duckdb"
    if not db.exists():
        return 0
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {t for (t,) in con.execute("select table_name from information_schema.tables").fetchall()}
        return sum(con.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[index]
                   for t in tables & {"sessions", "gate_results", "equity", "decisions", "events", "notifications"})


@pytest.mark.req("R1.5")
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_corrupt_minute_row_traded_at_1h_is_refused_naming_the_row(
    kind: str, minute_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, stamp = _write_corrupt(minute_file, kind, tmp_path / "market")
    data_dir = tmp_path / "data"
    code = main(["paper", "--source", str(path), "--symbols", "BTCUSDT", "--timeframe", "1h",
                 "--data-dir", str(data_dir)])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    line = lines[0]
    _, check, words = KINDS[kind]
    assert path.name in line and "1m candles, checked before resampling to 1h" in line, line
    assert f"BTCUSDT {check}: " in line and words in line, line
    assert f"row {ROW} ({stamp})" in line, line
    if kind == "duplicate_ts":
        assert f"row {ROW + 1} ({stamp})" in line, line
    assert "Traceback" not in err
    assert _recorded(data_dir) == 0
    assert not (data_dir / "reports").exists()


@pytest.mark.req("R1.5")
def test_the_same_corruption_passes_the_hourly_check_so_only_the_source_check_sees_it(
    minute_file: Path, tmp_path: Path
) -> None:
    path, _ = _write_corrupt(minute_file, "high_below_low", tmp_path)
    cs = load_candles(path)
    hourly = CandleSet("BTCUSDT", "1h", resample(cs.frame, "1m", "1h"))
    assert check_candles(hourly) == []  # what the traded batch's check alone would have said
    with pytest.raises(DataQualityError) as info:
        resample_set(cs, "1h")
    assert [(p.check, p.rows) for p in info.value.problems] == [("high_ge_open_close", (ROW,))]
    assert info.value.where.startswith(path.name)


@pytest.mark.req("R1.5")
def test_a_clean_minute_file_is_resampled_and_validated(
    minute_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    code = main(["paper", "--source", str(minute_file), "--symbols", "BTCUSDT", "--timeframe", "1h",
                 "--data-dir", str(data_dir)])
    out, err = capsys.readouterr()
    assert code in (0, 3), err  # passed or failed the gate on its metrics: either way it ran
    assert "data problem" not in out
    assert _recorded(data_dir) > 0
    cs = resample_set(load_candles(minute_file), "1h")
    assert cs.timeframe == "1h" and cs.frame.height >= 700 and cs.source == str(minute_file)
