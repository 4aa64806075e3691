"""Cost of the pre-trade checks per entry decision, every control on (issue 4 target: p99 under 50 µs).

Usage: ``python bench/pretrade.py [N]``: a RiskEngine with all limits and circuit breakers, indicators prepared
for BTCUSDT and ETHUSDT over 10,000 bars, one position open (so the correlation check runs), then N
``check_entry`` calls timed one by one. Prints one JSON line with p50/p99/max in microseconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import INSTRUMENTS
from core.config.risk import BreakerConfig, RiskLimits
from core.domain import Signal
from core.risk.breakers import CircuitBreakers
from core.risk.engine import EntryApproved, RiskConfig, RiskEngine


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rng = np.random.default_rng(7)
    bars = 10_000
    a = rng.standard_normal(bars) * 0.004
    b = 0.3 * a + rng.standard_normal(bars) * 0.004
    closes = {"BTCUSDT": list(60_000 * np.exp(np.cumsum(a))), "ETHUSDT": list(3_000 * np.exp(np.cumsum(b)))}
    risk = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT", "ETHUSDT"), instruments=INSTRUMENTS,
                                 risk_per_trade=0.001, exposure_cap=0.02, limits=RiskLimits()))
    risk.breakers = CircuitBreakers(BreakerConfig())
    risk.prepare(closes)
    timings = np.empty(n)
    approved = 0
    clock = time.perf_counter_ns
    for k in range(n):
        i = 500 + k % (bars - 500)
        price = closes["ETHUSDT"][i]
        signal = Signal.enter("ETHUSDT", price * 0.98, "bench entry")
        t0 = clock()
        verdict = risk.check_entry(signal, price, 10_000.0, 9_900.0, 100.0, i * 60_000, i, ("BTCUSDT",))
        timings[k] = clock() - t0
        approved += isinstance(verdict, EntryApproved)
    us = timings / 1000.0
    print(json.dumps({"checks": n, "approved": approved, "p50_us": round(float(np.percentile(us, 50)), 2),
                      "p99_us": round(float(np.percentile(us, 99)), 2), "max_us": round(float(us.max()), 1),
                      "target_p99_us": 50}))


if __name__ == "__main__":
    main()
