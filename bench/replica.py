"""The SQL replica's cost on a big store (issue 18): what a refresh costs and whether trading notices it.

Usage: ``python bench/replica.py [ROWS] [SECONDS]`` (default 5,000,000 equity rows, 20 s). Writes a store with ROWS
equity marks, ROWS/4 decisions (JSON details with risk checks) and ROWS/100 trades over 50 finished sessions plus
one running live session, then measures, printing one JSON line:

- ``first``: the first copy (a new replica directory): seconds, and the longest single hold of the store;
- ``incremental``: refreshes after one bar's rows each (1 equity mark, 2 decisions, an order updated in place):
  median seconds and the longest hold of the store;
- ``trading``: a thread appending one bar's rows every 50 ms (as the recorder does) for SECONDS with no refresh,
  then for SECONDS with a refresh every second (30x the session's rate): append latency p50/p99/max in ms.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.store import Store
from core.store import replica as replica_mod
from core.store.db import unit_of_work

LIVE = "live-session"


def build(path: Path, rows: int) -> Store:
    store = Store(path)
    store.schema_version()
    with unit_of_work(path, what="bench data") as conn:
        conn.execute("""INSERT INTO sessions (id, mode, started_at, ended_at, strategy, config_hash, status)
            SELECT 's' || i, 'backtest', now(), now(), 'trend', 'h', 'completed' FROM range(50) r(i)""")
        conn.execute(f"""INSERT INTO equity SELECT 's' || (i % 50), to_timestamp(1.7e9 + i * 60),
            10000 + random() * 100,
            5000 * random(), random() FROM range({rows}) r(i)""")
        conn.execute(f"""INSERT INTO decisions SELECT 's' || (i % 50), 'd' || i, to_timestamp(1.7e9 + i * 60),
            'BTCUSDT', 'order', 'enter', 'SUBMITTED', 'sma cross up', json_object('checks', [
                json_object('check', 'exposure_cap', 'result', 'pass', 'room', random() * 200),
                json_object('check', 'cash', 'result', 'pass', 'cash', 5000)], 'sizing', json_object('qty', 0.01))
            FROM range({rows // 4}) r(i)""")
        conn.execute(f"""INSERT INTO trades (session_id, trade_id, mode, symbol, entry_time, exit_time, net_pnl)
            SELECT 's' || (i % 50), 't' || i, 'backtest', 'BTCUSDT', to_timestamp(1.7e9 + i * 600),
                   to_timestamp(1.7e9 + i * 600 + 300), (i % 7) - 3.0 FROM range({rows // 100}) r(i)""")
    store.begin_session({"id": LIVE, "mode": "live", "started_at": datetime.now(UTC), "strategy": "trend",
                         "config_hash": "h", "venue": "sandbox"})
    return store


def one_bar(store: Store, n: int) -> None:
    now = datetime.now(UTC)
    store.append_many({
        "equity": pl.DataFrame({"session_id": [LIVE], "ts": [now], "equity": [10_000.0 + n]}),
        "decisions": pl.DataFrame({"session_id": [LIVE] * 2, "decision_id": [f"b{n}a", f"b{n}b"], "ts": [now] * 2,
                                   "kind": ["order", "fill"], "details": ['{"checks": []}'] * 2}),
        "orders": pl.DataFrame({"session_id": [LIVE], "client_order_id": ["stop-1"], "status": [f"s{n % 3}"],
                                "updated_at": [now]})})


@contextlib.contextmanager
def holds() -> Iterator[list[float]]:
    """Time every unit the refresh holds the store for."""
    seen: list[float] = []
    original = replica_mod._Source.unit

    @contextlib.contextmanager
    def timed(self: Any, what: str) -> Iterator[Any]:
        started = time.perf_counter()
        with original(self, what) as conn:
            yield conn
        seen.append(time.perf_counter() - started)

    replica_mod._Source.unit = timed  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        replica_mod._Source.unit = original  # type: ignore[method-assign]


def latencies(store: Store, seconds: float, refreshing: bool) -> dict[str, float]:
    stop = threading.Event()

    def refresher() -> None:
        while not stop.is_set():
            replica_mod.refresh(store.path, read_only=False)  # as the session's publisher does
            stop.wait(1.0)

    thread = threading.Thread(target=refresher) if refreshing else None
    if thread:
        thread.start()
    took: list[float] = []
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        started = time.perf_counter()
        one_bar(store, n)
        took.append((time.perf_counter() - started) * 1000)
        n += 1
        time.sleep(0.05)
    stop.set()
    if thread:
        thread.join()
    took.sort()
    return {"p50_ms": round(took[len(took) // 2], 1), "p99_ms": round(took[int(len(took) * 0.99)], 1),
            "max_ms": round(took[-1], 1), "appends": len(took)}


def main(rows: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rampart.duckdb"
        store = build(path, rows)
        result: dict[str, Any] = {"rows": rows, "store_mb": round(path.stat().st_size / 1e6, 1)}
        with holds() as seen:
            started = time.perf_counter()
            replica_mod.refresh(path)
            result["first"] = {"seconds": round(time.perf_counter() - started, 2),
                               "longest_hold_s": round(max(seen), 3), "units": len(seen)}
        times, longest = [], 0.0
        for n in range(10):
            one_bar(store, n)
            with holds() as seen:
                started = time.perf_counter()
                replica_mod.refresh(path)
                times.append(time.perf_counter() - started)
                longest = max(longest, *seen)
        result["incremental"] = {"median_s": round(statistics.median(times), 3), "longest_hold_s": round(longest, 3)}
        result["trading"] = {"quiet": latencies(store, seconds, False), "refreshing": latencies(store, seconds, True)}
        return result


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
    span = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    print(json.dumps(main(count, span)))
