"""Emergency-stop benchmark (issue 4): time from the call to flat on the sandbox with two positions.

Usage: ``python bench/emergency_stop.py [RUNS]`` (default 5). Each run seeds BTCUSDT and ETHUSDT positions with
their protective stops on the exchange (plus one open limit order Rampart did not place), journals them in a
fresh live state, then calls ``emergency_stop`` over loopback HTTP with the real ccxt client. Prints one JSON
line: the median and max ``seconds_to_flat`` (call → exchange confirmed flat) and of the whole call (which also
saves the state and records the DuckDB event). Target: under 1 s on loopback.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.config import Settings, load_settings  # noqa: E402
from core.control.emergency import emergency_stop  # noqa: E402
from core.domain import Order, OrderStatus, OrderTag, OrderType, Position, Side  # noqa: E402
from core.market import generate  # noqa: E402
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig  # noqa: E402
from core.sandbox.server import SandboxServer  # noqa: E402
from core.state.live import LiveState, save_state  # noqa: E402
from core.venue import sandbox_at  # noqa: E402

POSITIONS = {"BTCUSDT": ("BTC/USDT", 0.01), "ETHUSDT": ("ETH/USDT", 0.1)}


def seed(client: Any, settings: Settings, run: int) -> None:
    """Two positions with their stops on the exchange and in a fresh live state, plus a foreign limit order."""
    totals = client.fetch_balance()["total"]
    state = LiveState(session_id=f"bench-{run}", baseline={a: float(totals.get(a) or 0.0) for a in ("BTC", "ETH")})
    now = int(time.time() * 1000)
    for sym, (ccxt_sym, qty) in POSITIONS.items():
        price = float(client.create_order(ccxt_sym, "market", "buy", qty, None,
                                          {"newClientOrderId": f"rp-bench-{sym}-{run}"})["average"])
        stop = round(price * 0.95, 2)
        qty = round(qty * (1 - 0.001), 8)  # held: Binance takes a buy's commission in the coin received
        placed = client.create_order(ccxt_sym, "limit", "sell", qty, round(stop * 0.995, 2), {
            "newClientOrderId": f"rp-bstop-{sym}-{run}", "stopLossPrice": stop, "timeInForce": "GTC"})
        state.remember_position(Position(sym, qty, price, now, "bench entry", stop=stop), sym)
        order = Order(f"rp-bstop-{sym}-{run}", sym, Side.SELL, OrderType.STOP, qty, OrderTag.STOP, now,
                      "protective stop", stop_price=stop)
        order.exchange_order_id, order.status = str(placed["id"]), OrderStatus.ACCEPTED
        state.remember_order(order)
    bid = float(client.fetch_ticker("BTC/USDT")["bid"])
    client.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2), {"newClientOrderId": f"man-{run}"})
    save_state(settings.data_dir / "live" / "state.json", state)


def main(runs: int = 5) -> dict[str, Any]:
    logging.getLogger("rampart.notify").setLevel(logging.ERROR + 100)  # keep stdout to the one JSON line
    os.environ["RAMPART_API_KEY"], os.environ["RAMPART_API_SECRET"] = DEMO_API_KEY, DEMO_API_SECRET
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 0.5, 11)
    config = SandboxConfig(source=tuple(sets), speed=60.0, start=sets[0].frame["ts"][60])
    to_flat: list[float] = []
    whole: list[float] = []
    with SandboxServer(config) as server, tempfile.TemporaryDirectory() as tmp:
        client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
        for run in range(runs):
            settings = load_settings(data_dir=Path(tmp) / f"run{run}")
            seed(client, settings, run)
            t0 = time.perf_counter()
            report = emergency_stop(settings, "benchmark", "bench", sandbox_at(server.url))
            whole.append(time.perf_counter() - t0)
            if not report.flat or report.seconds_to_flat is None:
                raise SystemExit(f"run {run} did not end flat: {report.text()}")
            to_flat.append(report.seconds_to_flat)
    return {"bench": "emergency_stop", "runs": runs, "positions": len(POSITIONS), "open_orders": 3,
            "median_seconds_to_flat": round(statistics.median(to_flat), 4),
            "max_seconds_to_flat": round(max(to_flat), 4),
            "median_seconds_call": round(statistics.median(whole), 4), "target_seconds": 1.0,
            "met": statistics.median(to_flat) < 1.0}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)))
