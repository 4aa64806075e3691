"""Compare the replay's speed of two checkouts on a noisy machine: interleaved runs, minimum and quartiles.

Usage: ``python bench/replay_ab.py DIR_A DIR_B [--rounds 3] [--runs 5] [--ops]``

Each round starts one child process per checkout (alternating which goes first); a child loads the shared
500,000-bar workload, warms up on 5,000 bars, then times ``--runs`` full runs of the engine (as ``bench/replay.py``
does) and checks the exact trades and final equity. Printed per checkout: the fastest run, the first quartile and
the median — on a shared machine the minimum and the quartile move least. ``--ops`` adds a deterministic measure:
Python bytecodes executed per trade over a 100,000-bar run (``sys.settrace`` with opcode events), which does not
depend on the machine's load at all (but weighs a cheap load and an expensive call the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import bench.replay as r
mode, n = sys.argv[2], int(sys.argv[3])
if mode == "time":
    frame = r.bench_frame(500_000)
    r.run_rampart(frame.head(5_000))
    walls = []
    for _ in range(n):
        res = r.run_rampart(frame)
        if (res["trades"], res["final_equity"]) != (5565, 27.45):
            raise SystemExit(f"wrong result: {res}")
        walls.append(res["wall_s"])
    print("RESULT " + json.dumps(walls))
else:
    frame = r.bench_frame(100_000)
    r.run_rampart(frame.head(5_000))
    ops = 0
    def tracer(f, event, arg):
        global ops
        if event == "call":
            f.f_trace_opcodes = True
        elif event == "opcode":
            ops += 1
        return tracer
    sys.settrace(tracer)
    res = r.run_rampart(frame)
    sys.settrace(None)
    print("RESULT " + json.dumps([ops / res["trades"]]))
'''


def child(checkout: str, mode: str, n: int) -> list[float]:
    env = {**os.environ, "BENCH_DATA": str(ROOT / "bench" / "data" / "data_500k.npz")}
    proc = subprocess.run([sys.executable, "-c", CHILD, checkout, mode, str(n)], capture_output=True, text=True,
                          cwd=checkout, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{checkout}: {proc.stderr.strip()[-1500:]}")
    values: list[float] = json.loads(line[len("RESULT "):])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ops", action="store_true", help="also count bytecodes per trade (slow: ~1 min each)")
    args = parser.parse_args()
    from bench.replay import ensure_data

    ensure_data()
    walls: dict[str, list[float]] = {args.a: [], args.b: []}
    for r in range(args.rounds):
        for checkout in (args.a, args.b) if r % 2 == 0 else (args.b, args.a):
            walls[checkout] += child(checkout, "time", args.runs)
    for checkout, values in walls.items():
        v = sorted(values)
        line = f"{checkout}: min {v[0]:.4f} s  q25 {v[len(v) // 4]:.4f} s  median {statistics.median(v):.4f} s"
        if args.ops:
            line += f"  {child(checkout, 'ops', 1)[0]:,.0f} bytecodes a trade"
        print(line)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
