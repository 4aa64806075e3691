"""Emergency-stop benchmark: time to flat on the sandbox, clean (issue 4) or under faults with the live process killed.

Usage:
  python bench/emergency_stop.py [RUNS]                       # clean loopback timing, default 5 runs (issue 4)
  python bench/emergency_stop.py --faults "error5xx=0.4,timeout=0.2,rate_limit=0.2" --trials 10 [--deadline S]
                                 [--no-kill]

Each run seeds BTCUSDT and ETHUSDT positions with their protective stops on the exchange (plus one open limit
order Rampart did not place) and journals them in a fresh live state. Clean mode then calls ``emergency_stop``
over loopback HTTP with the real ccxt client and prints one JSON line: the median and max ``seconds_to_flat``
(call → exchange confirmed flat) and of the whole call.

Fault mode runs each trial on its own sandbox (its own "IP", so one trial's Retry-After never touches the next):
a real ``rampart live`` process starts on the seeded account (gate passed, reconciled, the stops adopted) and is
killed with SIGKILL; the fault spec is switched on (seeded per trial), and ``emergency_stop`` runs with the
deadline (``emergency.deadline_s``, 120 s, unless ``--deadline``). The faults are then switched off and the
exchange itself is asked whether the account is flat (no open order, every base asset back at the baseline), and
whether any sell was doubled or any ban earned. One line per trial goes to stderr; the JSON summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.build import config_hash  # noqa: E402
from core.config import Settings, load_settings  # noqa: E402
from core.control.emergency import emergency_stop  # noqa: E402
from core.domain import Order, OrderStatus, OrderTag, OrderType, Position, Side  # noqa: E402
from core.market import generate  # noqa: E402
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig  # noqa: E402
from core.sandbox.server import SandboxServer  # noqa: E402
from core.state.live import LiveState, save_state  # noqa: E402
from core.store import Store  # noqa: E402
from core.venue import sandbox_at  # noqa: E402

POSITIONS = {"BTCUSDT": ("BTC/USDT", 0.01), "ETHUSDT": ("ETH/USDT", 0.1)}
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 100, "slow": 500}}  # never signals here
HEAVY = "error5xx=0.4,timeout=0.2,rate_limit=0.2"


def seed(client: Any, settings: Settings, run: int) -> dict[str, float]:
    """Two positions with their stops on the exchange and in a fresh live state, plus a foreign limit order.
    Returns the baseline (the holdings that are not Rampart's)."""
    totals = client.fetch_balance()["total"]
    baseline = {a: float(totals.get(a) or 0.0) for a in ("BTC", "ETH")}
    state = LiveState(session_id=f"bench-{run}", baseline=baseline)
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
    return baseline


def sandbox_config() -> SandboxConfig:
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 0.5, 11)
    return SandboxConfig(source=tuple(sets), speed=60.0, start=sets[0].frame["ts"][60])


def quiet() -> None:
    logging.getLogger("rampart").setLevel(logging.ERROR + 100)  # keep stdout to the JSON summary
    # a sandbox stopped while a timeout fault still holds a request logs its cancellation: the bench's, not the stop's
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL + 100)
    os.environ["RAMPART_API_KEY"], os.environ["RAMPART_API_SECRET"] = DEMO_API_KEY, DEMO_API_SECRET


# --- clean loopback timing (issue 4) -----------------------------------------------------------------------------
def clean(runs: int = 5) -> dict[str, Any]:
    quiet()
    to_flat: list[float] = []
    whole: list[float] = []
    with SandboxServer(sandbox_config()) as server, tempfile.TemporaryDirectory() as tmp:
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


# --- under faults, the live process killed -----------------------------------------------------------------------
def start_and_kill_live(server: SandboxServer, settings: Settings, data_dir: Path) -> float:
    """A real `rampart live` on the seeded account, killed with SIGKILL once it has reconciled (it saved its own
    session id). Returns the seconds it ran."""
    state_file = data_dir / "live" / "state.json"
    params = [a for k, v in STRATEGY["params"].items() for a in ("--param", f"{k}={v}")]
    cmd = [sys.executable, "-m", "core.cli", "live", "--exchange", "sandbox", "--sandbox-url", server.url,
           "--strategy", STRATEGY["name"], *params, "--timeframe", "1m", "--poll", "0.1", "--data-dir", str(data_dir)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while json.loads(state_file.read_text()).get("session_id", "").startswith("bench-"):
            if proc.poll() is not None or time.monotonic() - t0 > 120:
                raise SystemExit(f"the live process did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    if proc.returncode != -signal.SIGKILL:
        raise SystemExit(f"the live process ended by itself ({proc.returncode}), not by the kill")
    return time.monotonic() - t0


def ground_truth(server: SandboxServer, baseline: dict[str, float]) -> dict[str, Any]:
    """What the exchange says, faults off: open orders, managed holdings left, doubled sells, bans."""
    client = server.client(DEMO_API_KEY, DEMO_API_SECRET)
    open_orders = sum(len(client.fetch_open_orders(s)) for s, _ in POSITIONS.values())
    totals = client.fetch_balance()["total"]
    left = {a: round(float(totals.get(a) or 0.0) - baseline[a], 10) for a in baseline}
    orders = [o for s, _ in POSITIONS.values() for o in client.fetch_orders(s, limit=1000)]
    sells = Counter(str(o["clientOrderId"]) for o in orders if str(o["clientOrderId"]).startswith("rp-estop-"))
    limits = server.stats()
    return {"open_orders": open_orders, "left": left, "doubled_sells": sum(n > 1 for n in sells.values()),
            "sells": sum(sells.values()), "bans": len(limits["bans"]), "retry_afters": len(limits["retry_afters"]),
            "flat": open_orders == 0 and all(abs(v) < 1e-9 for v in left.values())}


def trial(n: int, faults: str, deadline: float | None, kill: bool, tmp: Path) -> dict[str, Any]:
    data_dir = tmp / f"trial{n}"
    settings = load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m"})
    with SandboxServer(sandbox_config()) as server:
        baseline = seed(server.client(DEMO_API_KEY, DEMO_API_SECRET), settings, n)
        Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                             "strategy": STRATEGY["name"], "reasons": []})
        lived = start_and_kill_live(server, settings, data_dir) if kill else 0.0
        server.service.faults.set_spec(f"{faults},seed={n + 1}")
        t0 = time.monotonic()
        report = emergency_stop(settings, "benchmark under faults", "bench", sandbox_at(server.url),
                                deadline_s=deadline)
        call_s = time.monotonic() - t0
        injected = server.stats()["faults_injected"]
        server.service.faults.set_spec("")
        server.service.limits.unban()  # the check below is ours, not the stop's: it must not wait for a ban
        truth = ground_truth(server, baseline)
    return {"trial": n, "verdict_flat": report.flat, "flat": truth["flat"], "seconds_to_flat": report.seconds_to_flat,
            "seconds_call": round(call_s, 2), "deadline_s": report.deadline_s, "live_ran_s": round(lived, 1),
            "requests": report.requests, "failed_requests": report.failures, "waits": len(report.waits),
            "waited_s": round(sum(float(w.split()[1]) for w in report.waits), 1), "faults_injected": injected,
            "doubled_sells": truth["doubled_sells"], "sells": truth["sells"], "bans": truth["bans"],
            "open_orders_left": truth["open_orders"], "left": truth["left"],
            "leftovers": report.leftovers, "verdict": report.summary()}


def under_faults(trials: int, faults: str, deadline: float | None, kill: bool) -> dict[str, Any]:
    quiet()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(trials):
            result = trial(n, faults, deadline, kill, Path(tmp))
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "verdict"}), file=sys.stderr, flush=True)
    flat = [r for r in results if r["flat"] and r["verdict_flat"]]
    times = sorted(r["seconds_to_flat"] for r in flat)
    return {"bench": "emergency_stop_under_faults", "faults": faults, "trials": trials, "live_killed": kill,
            "deadline_s": results[0]["deadline_s"] if results else deadline,
            "flat_within_deadline": len(flat), "verdict_matches_exchange": sum(r["flat"] == r["verdict_flat"]
                                                                             for r in results),
            "seconds_to_flat": {"min": times[0], "median": round(statistics.median(times), 1), "max": times[-1]}
            if times else None,
            "requests_median": statistics.median(r["requests"] for r in results) if results else None,
            "retry_after_waits": sum(r["waits"] for r in results),
            "doubled_sells": sum(r["doubled_sells"] for r in results), "bans": sum(r["bans"] for r in results),
            "not_flat": [{"trial": r["trial"], "leftovers": r["leftovers"]} for r in results if r not in flat]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=5, help="clean runs (no --faults)")
    parser.add_argument("--faults", default=None, help=f"fault spec, e.g. {HEAVY}")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=None, help="seconds (default emergency.deadline_s)")
    parser.add_argument("--no-kill", action="store_true", help="do not start and kill a live process first")
    args = parser.parse_args(argv)
    if args.faults is None:
        return clean(args.runs)
    return under_faults(args.trials, args.faults, args.deadline, not args.no_kill)


if __name__ == "__main__":
    print(json.dumps(main()))
