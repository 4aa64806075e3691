"""Cost of one candle data-quality check: the Great Expectations executor (batches) against the polars one (live).

Usage: ``python bench/quality.py [N]``: each executor runs in its own child process (so its imports and memory are
its own) on the same windows of 1-minute candles: 1,000 clean rows, 1,000 rows with five faults, and the 2-row
seam-plus-new-bar window a live poll checks. Per window: one warm-up call, then N timed calls. Prints one JSON line
per executor: p50/p99 per call in ms, first-call time (import and set-up included) and the resident memory the
executor's import and first call added.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.market import CandleSet, generate

EXECUTORS = {"gx": "core.market.quality", "polars": "core.market.quality_polars"}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _windows() -> dict[str, CandleSet]:
    clean = generate(["BTCUSDT"], "1m", 1000 / 1440, seed=7)[0].frame
    idx = pl.int_range(pl.len())
    broken = clean.with_columns(
        pl.when(idx == 100).then(float("nan")).otherwise(pl.col("close")).alias("close"),
        pl.when(idx == 200).then(-1.0).otherwise(pl.col("volume")).alias("volume"),
        pl.when(idx == 300).then(pl.col("low") - 1).otherwise(pl.col("high")).alias("high"),
        pl.when(idx == 400).then(0.0).otherwise(pl.col("open")).alias("open"),
    ).filter(idx != 500)
    return {"1000_clean": CandleSet("BTCUSDT", "1m", clean), "1000_five_faults": CandleSet("BTCUSDT", "1m", broken),
            "2_live_poll": CandleSet("BTCUSDT", "1m", clean.tail(2))}


def child(name: str, n: int) -> None:
    windows = _windows()
    before = _rss_mb()
    t0 = time.perf_counter()
    executor = importlib.import_module(EXECUTORS[name])
    executor.check_candles(windows["1000_clean"])
    first_ms = (time.perf_counter() - t0) * 1000
    out: dict[str, object] = {"executor": name, "first_call_ms": round(first_ms, 1),
                              "rss_added_mb": round(_rss_mb() - before, 1),
                              "gx_imported": "great_expectations" in sys.modules}
    for label, cs in windows.items():
        executor.check_candles(cs)
        times = np.empty(n)
        for k in range(n):
            start = time.perf_counter_ns()
            executor.check_candles(cs)
            times[k] = time.perf_counter_ns() - start
        out[label] = {"p50_ms": round(float(np.percentile(times, 50)) / 1e6, 3),
                      "p99_ms": round(float(np.percentile(times, 99)) / 1e6, 3)}
    print(json.dumps(out))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    for name in EXECUTORS:
        done = subprocess.run([sys.executable, __file__, "--child", name, str(n)], capture_output=True, text=True,
                              check=True)
        print(done.stdout.strip())


if __name__ == "__main__":
    main()
