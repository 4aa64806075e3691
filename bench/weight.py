"""Request weight of a live session (R9.5): how much of the exchange's weight per minute Rampart uses.

Usage: ``python bench/weight.py [MINUTES] [SPEED]`` (default 60 minutes at speed 1: one 1-minute candle per wall
minute, as live). A realtime sandbox serves BTCUSDT and ETHUSDT; a live session trades them with an active
strategy (SMA 3/8 crossings) at the default poll settings (a light poll every 0.25 s, order state every
``live.order_poll_s``). Every response's ``X-MBX-USED-WEIGHT-1M`` is recorded; the script prints one JSON line:
the highest weight used in any wall minute against ``exchange.weight_limit`` × ``exchange.max_weight_share``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.build import config_hash  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.live.session import LiveOptions  # noqa: E402
from core.market import generate  # noqa: E402
from core.node import open_live  # noqa: E402
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig  # noqa: E402
from core.sandbox.server import SandboxServer  # noqa: E402
from core.store import Store  # noqa: E402
from core.venue import sandbox_at  # noqa: E402


def main(minutes: float = 60.0, speed: float = 1.0) -> dict[str, Any]:
    logging.getLogger("rampart").setLevel(logging.ERROR + 100)  # keep stdout to the one JSON line
    os.environ["RAMPART_API_KEY"], os.environ["RAMPART_API_SECRET"] = DEMO_API_KEY, DEMO_API_SECRET
    data_dir = Path(tempfile.mkdtemp(prefix="rampart-weight-"))
    settings = load_settings(data_dir=data_dir, strategy={"name": "sma_cross", "params": {"fast": 3, "slow": 8}},
                             market={"timeframe": "1m"})
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                         "strategy": "sma_cross", "reasons": []})
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 30.0, 5)
    per_minute: dict[int, int] = {}
    with SandboxServer(SandboxConfig(source=tuple(sets), speed=speed, start=sets[0].frame["ts"][2_000])) as server:
        session = open_live(settings, sandbox_at(server.url), LiveOptions(duration_s=minutes * 60))
        observe = session.broker.budget.observe

        def record(headers: Any, error: str | None = None) -> None:
            observe(headers, error)
            used = {str(k).lower(): v for k, v in (headers or {}).items()}.get("x-mbx-used-weight-1m")
            if used is not None:
                minute = int(time.time() // 60)
                per_minute[minute] = max(per_minute.get(minute, 0), int(used))

        session.broker.budget.observe = record  # type: ignore[method-assign]
        summary = session.run(threading.Event())
        requests = server.stats().get("api_requests_total")
    ex = settings.exchange
    allowed = ex.weight_limit * ex.max_weight_share
    peak = max(per_minute.values(), default=0)
    return {"minutes": minutes, "speed": speed, "bars": summary.bars, "trades": summary.trades,
            "requests": requests, "peak_weight_per_minute": peak, "median_weight_per_minute":
                sorted(per_minute.values())[len(per_minute) // 2] if per_minute else 0,
            "weight_limit": ex.weight_limit, "share": ex.max_weight_share, "allowed": allowed,
            "under_share": peak <= allowed, "stopped": summary.stopped_because}


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args)))
