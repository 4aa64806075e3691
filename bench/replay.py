"""Replay benchmark (../shared/bench): the full Rampart engine and backtesting.py on the same 500k bars.

Usage: ``python bench/replay.py [N]`` (default 500000). Generates the data with the shared gen_data.py when
missing, times Rampart's engine (indicator preparation + the bar loop: strategy → risk → broker →
portfolio, decisions recorded) and backtesting.py's ``run()``, and prints one JSON line: each engine's
bars_per_s, trades, final_equity and peak RSS, and the speed ratio.

Each engine runs in its own child process of this lean parent: Linux carries a parent's peak RSS into a
forked child, so a child of a parent that had loaded the data would report the parent's memory as its own.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_BENCH = Path(os.environ.get("RAMPART_SHARED_DIR", ROOT.parent / "shared")) / "bench"
DATA = ROOT / "bench" / "data" / "data_500k.npz"


def ensure_data() -> Path:
    if not DATA.exists():
        DATA.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(SHARED_BENCH / "gen_data.py"), "500000", str(DATA)], check=True)
    return DATA


def bench_frame(n: int) -> pl.DataFrame:
    import numpy as np
    import polars as pl

    d = np.load(ensure_data())
    return pl.DataFrame({
        "ts": pl.Series(d["ts"][:n] // 1_000_000).cast(pl.Datetime("ms", "UTC")),
        **{k: d[k][:n] for k in ("open", "high", "low", "close", "volume")},
    })


def run_rampart(frame: pl.DataFrame) -> dict[str, Any]:
    """The benchmark workload on the full engine: all-in, next-open fills, fee 0.1 %, no slippage."""
    from core.build import build_paper_engine
    from core.config import load_settings
    from core.domain import Instrument, Mode
    from core.market.candles import CandleSet

    settings = load_settings(
        strategy={"name": "sma_cross", "params": {"fast": 20, "slow": 50, "stop_pct": 0.5}},
        market={"symbols": ["BTCUSDT"], "timeframe": "1m"},
        paper={"starting_cash": 1_000_000.0, "taker_fee": 0.001, "slippage_bps": 0.0, "commission": "quote",
               "risk_controls": False},
        sizing={"mode": "all_in"},
    )
    # Fractional quantities and no minimum notional, as the shared workload defines it.
    engine = build_paper_engine(settings, Mode.BACKTEST, instruments={"BTCUSDT": Instrument("BTCUSDT", 0.01, 0.0, 0.0)})
    t0 = time.perf_counter()
    result = engine.run([CandleSet("BTCUSDT", "1m", frame)])
    wall = time.perf_counter() - t0
    if result.errors:
        raise SystemExit(f"engine errors: {result.errors}")
    return {"bars": frame.height, "wall_s": round(wall, 4), "bars_per_s": round(frame.height / wall),
            "trades": len(result.trades), "final_equity": round(result.final_equity, 2),
            "decisions": len(result.decisions),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


def child(argv: list[str], cwd: Path) -> dict[str, Any] | None:
    """Run one engine in a child process and parse its ``RESULT {json}`` line."""
    env = {**os.environ, "BENCH_DATA": str(ensure_data())}
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=cwd)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print(f"{argv[0]} failed: {proc.stderr.strip()[-800:]}", file=sys.stderr)
        return None
    r: dict[str, Any] = json.loads(line[len("RESULT "):])
    keys = ("bars", "wall_s", "bars_per_s", "trades", "final_equity", "decisions", "peak_rss_mb")
    return {k: r[k] for k in keys if k in r}


def rampart_child(n: int) -> None:
    frame = bench_frame(n)
    run_rampart(frame.head(5_000))  # warm imports and code paths once
    print("RESULT " + json.dumps(run_rampart(frame)))


def main() -> None:
    if sys.argv[1:2] == ["--rampart-child"]:
        rampart_child(int(sys.argv[2]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    ensure_data()
    ours = child([str(Path(__file__).resolve()), "--rampart-child", str(n)], ROOT)
    peer = child([str(SHARED_BENCH / "peer_backtesting_py.py"), str(n)], SHARED_BENCH)
    if ours is None:
        raise SystemExit(1)
    ratio = round(ours["bars_per_s"] / peer["bars_per_s"], 2) if peer else None
    print(json.dumps({"workload": "sma20/50 all-in next-open fee 0.1%", "rampart": ours, "backtesting.py": peer,
                      "ratio_vs_backtesting_py": ratio}))


if __name__ == "__main__":
    main()
