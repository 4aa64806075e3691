"""The engine configured like the shared benchmark workload reproduces its exact result."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _gen(shared_dir: Path) -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("gen_data", shared_dir / "bench" / "gen_data.py")
    if spec is None or spec.loader is None:
        pytest.skip("../shared/bench/gen_data.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data: dict[str, object] = module.gen(500_000)
    return data


@pytest.mark.req("R1.2")
@pytest.mark.req("R1.3")
def test_benchmark_workload_gives_5565_round_trips_and_final_equity_27_45(shared_dir: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from replay import run_rampart  # the benchmark's own configuration of the engine

    d = _gen(shared_dir)
    frame = pl.DataFrame({
        "ts": (pl.Series(d["ts"]).cast(pl.Int64) // 1_000_000).cast(pl.Datetime("ms", "UTC")),
        **{k: d[k] for k in ("open", "high", "low", "close", "volume")},
    })
    result = run_rampart(frame)
    assert result["trades"] == 5_565
    assert result["final_equity"] == 27.45
