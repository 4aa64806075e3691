"""Chaos benchmark: a live session on the sandbox killed with SIGKILL at random moments, then checked against the
exchange's own records.

Usage:
  python bench/chaos.py --trials N --seed S [--speed X] [--markdown FILE]

Each trial has its own data dir, DuckDB store and sandbox (realtime clock at ``--speed``, 120x: one 1-minute bar
every 0.5 s), a passed gate recorded for the config hash, and a real ``rampart live`` process (sma_cross 3/8 with
a 0.4 % stop on 1-minute bars: it trades every few bars) with the sandbox's demo keys. The kill moment cycles
through (in an order shuffled by the seed):

- ``startup``: a first session runs until it holds a position and is stopped with SIGTERM (its stop stays on the
  exchange); a second one is killed at a random point between its first request and the end of its start
  (preflight, reconciliation, protection check);
- ``flat``: after a random delay, the first moment the session's state file shows no position and no order;
- ``holding``: after a random delay, the first moment it shows a position and no order awaiting an answer;
- ``in_flight``: after a random delay, the first moment the sandbox holds an order request (place, cancel, order
  list, cancel-replace) it has not answered yet, plus 0-100 ms; every request is delayed 40 ms in these trials
  (``latency``), so the kill lands before the exchange books the order, between its answer and the next order
  (an entry's fill and its stop, a stop's cancel and the exit), or later in the same step.

Every other trial runs with faults through /sandbox/faults (5xx, timeouts, lost responses, 429s) for the killed
session and the restart. Right after the kill (faults off, before any restart) the exchange is asked which non-dust
positions its working stops do not cover. Then ``rampart live`` restarts (faults as before), trades
``RESTART_BARS`` bars and is stopped with SIGTERM; the exchange is asked again which positions are without a stop.
A last start with the faults off (``--max-bars 2``) reconciles what the restart could not book under the faults;
then the exchange's orders, trades and balances are compared with Rampart's store and state file
(bench/chaos_checks.py says exactly what each check counts). One JSON line per trial goes to stderr, the JSON
summary to stdout and a Markdown table to ``--markdown``; ``--keep DIR`` keeps every trial's data dir and logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import chaos_checks as checks  # noqa: E402
from core.build import config_hash  # noqa: E402
from core.config import Settings, load_settings  # noqa: E402
from core.market import generate  # noqa: E402
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig  # noqa: E402
from core.sandbox.server import SandboxServer  # noqa: E402
from core.store import Store  # noqa: E402

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.004}}
MOMENTS = ("startup", "flat", "holding", "in_flight")
FAULTS = "error5xx=0.05,timeout=0.02,timeout_s=1.5,lost_response=0.1,rate_limit=0.003"
WARMUP_BARS = 60
ORDER_PATHS = frozenset({"/api/v3/order", "/api/v3/orderList/oto", "/api/v3/orderList/opo", "/api/v3/orderList",
                         "/api/v3/order/cancelReplace"})
DELAY = "latency=0.04"  # in_flight trials: every request held 40 ms, so a kill can land inside an order's round trip
RESTART_BARS = 8
FINAL_BARS = 2  # the clean reconciling start after the restart
WAIT_S = 120.0  # longest wait for a moment or a start before the trial says it missed it
COUNTS = ("duplicates", "unknown_orders", "lost_fills", "mismatches", "unprotected_at_kill",
          "unprotected_after_restart", "overbooked_fills", "ended_by_itself", "failed_restarts", "missed_moments")


class Live:
    """One ``rampart live`` process on the trial's sandbox and data dir."""

    def __init__(self, url: str, data_dir: Path, log: Path, *extra: str) -> None:
        params = [a for k, v in STRATEGY["params"].items() for a in ("--param", f"{k}={v}")]
        cmd = [sys.executable, "-m", "core.cli", "live", "--exchange", "sandbox", "--sandbox-url", url,
               "--strategy", STRATEGY["name"], *params, "--timeframe", "1m", "--poll", "0.1",
               "--data-dir", str(data_dir), *extra]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAMPART_API_KEY": DEMO_API_KEY,
               "RAMPART_API_SECRET": DEMO_API_SECRET}
        self.state_file = data_dir / "live" / "state.json"
        self.before = checks.read_state(self.state_file).get("session_id")
        self.t0 = time.monotonic()
        with open(log, "a") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def state(self) -> dict[str, Any]:
        return checks.read_state(self.state_file)

    def started(self) -> bool:
        """The session wrote its own id: preflight, reconciliation and the first protection check are done."""
        sid = self.state().get("session_id")
        return sid is not None and sid != self.before

    def wait(self, condition: Callable[[], bool], timeout: float = WAIT_S, poll: float = 0.005) -> bool:
        """Poll ``condition`` until it holds (True) or the process ends or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(poll)
        return False

    def stop_after(self, timeout: float) -> int:
        """Wait for the process to end by itself (``--max-bars``); SIGTERM it after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.stop()

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM: the session stops taking entries, leaves its stops on the exchange, flushes and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            return self.kill()


def requests_seen(server: SandboxServer) -> int:
    return server.service.limits.request_count


def order_request_open(server: SandboxServer) -> str | None:
    """An order request (place, cancel, list, cancel-replace) the sandbox has received and not answered yet."""
    recent = list(islice(reversed(server.service.limits.requests), 30))  # one C call: no torn read
    return next((f"{r['method']} {r['path']}" for r in recent if r["status"] is None
                 and r["method"] in ("POST", "DELETE") and r["path"] in ORDER_PATHS), None)


def settle(server: SandboxServer, timeout: float = 5.0) -> None:
    """Wait until the sandbox has answered every order request it holds (a request outlives its sender)."""
    deadline = time.monotonic() + timeout
    while order_request_open(server) is not None and time.monotonic() < deadline:
        time.sleep(0.01)


def look(server: SandboxServer, spec: str) -> checks.Snapshot:
    """The exchange's view with the faults off (the bench's own look must not meet them), then the faults back."""
    server.service.faults.set_spec("")
    server.service.limits.unban()  # a Retry-After the session earned is not the bench's to wait out
    try:
        return checks.read_exchange(server.client(DEMO_API_KEY, DEMO_API_SECRET), SYMBOLS)
    finally:
        server.service.faults.set_spec(spec)


def holding(state: dict[str, Any]) -> bool:
    return bool(state.get("positions")) and not checks.in_flight(state)


def flat(state: dict[str, Any]) -> bool:
    return not state.get("positions") and not state.get("orders")


def kill_at(server: SandboxServer, live: Live, moment: str, rng: random.Random,
            startup_window: float) -> dict[str, Any]:
    """Wait for ``moment`` in ``live``'s life and SIGKILL it there; what the state file showed at the kill."""
    if moment == "startup":
        seen = requests_seen(server)
        hit = live.wait(lambda: requests_seen(server) > seen)  # its imports are done: it talks to the exchange
        time.sleep(rng.uniform(0.0, 0.9 * startup_window))  # the prelude's start took about this long
        hit = hit and not live.started()
    else:
        hit = live.wait(live.started)
        time.sleep(rng.uniform(0.0, 4.0))  # so the kill lands at different points of the session
        condition = {"flat": lambda: flat(live.state()), "holding": lambda: holding(live.state()),
                     "in_flight": lambda: order_request_open(server) is not None}[moment]
        hit = hit and live.wait(condition, poll=0.001)
        if moment == "in_flight":
            time.sleep(rng.uniform(0.0, 0.1))
    state, at_exchange = live.state(), order_request_open(server)
    code = live.kill()
    return {"hit": hit, "returncode": code, "ran_s": round(time.monotonic() - live.t0, 2),
            "positions": sorted(state.get("positions") or {}), "in_flight": checks.in_flight(state),
            "order_request_open": at_exchange}


def store_records(settings: Settings) -> tuple[set[str], dict[str, float]]:
    """Every client id in any session's orders, and the quantity booked in fills per client id."""
    store = Store(settings.db_path)
    known = {str(r[0]) for r in store.query("select distinct client_order_id from orders").rows()}
    booked = {str(cid): float(qty) for cid, qty in store.query(
        "select client_order_id, sum(qty) from fills group by client_order_id").rows()}
    return known, booked


def trial(n: int, moment: str, faulty: bool, rng: random.Random, tmp: Path, speed: float) -> dict[str, Any]:
    t0 = time.monotonic()
    data_dir = tmp / f"trial{n}"
    settings = load_settings(data_dir=data_dir, strategy=STRATEGY, market={"timeframe": "1m", "symbols": SYMBOLS})
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                         "strategy": STRATEGY["name"], "reasons": []})
    sets = generate(SYMBOLS, "1m", 0.5, rng.randrange(1, 10_000))
    config = SandboxConfig(source=tuple(sets), speed=speed, start=sets[0].frame["ts"][WARMUP_BARS])
    spec = f"{FAULTS},seed={n + 1}" if faulty else ""
    result: dict[str, Any] = {"trial": n, "moment": moment, "faults": faulty}
    with SandboxServer(config) as server:
        server.service.faults.set_spec(spec)
        window = 0.0
        if moment == "startup":  # a position to recover, left by a session stopped the proper way
            first = Live(server.url, data_dir, data_dir / "prelude.log")
            seen = requests_seen(server)
            talking = first.wait(lambda: requests_seen(server) > seen)
            talked = time.monotonic()
            first.wait(first.started)
            window = time.monotonic() - talked if talking else 1.0
            first.wait(lambda: holding(first.state()))
            result["prelude_returncode"] = first.stop()
        server.service.faults.set_spec(",".join(p for p in (spec, DELAY if moment == "in_flight" else "") if p))
        victim = Live(server.url, data_dir, data_dir / "killed.log")
        result["kill"] = kill_at(server, victim, moment, rng, window)
        settle(server)  # an order the dead process sent is still booked by the exchange: look after that
        state = checks.read_state(victim.state_file)
        baseline = state.get("baseline") or {}
        at_kill = look(server, spec)
        result["unprotected_at_kill"] = checks.unprotected(at_kill, SYMBOLS, baseline)
        result["open_orders_at_kill"] = len(at_kill.open_orders)
        restart = Live(server.url, data_dir, data_dir / "restart.log")
        started = restart.wait(restart.started)
        if started:
            time.sleep(RESTART_BARS * 60.0 / speed)
        result["restart_returncode"] = restart.stop()
        result["restart_started"] = started
        settle(server)
        stopped = look(server, "")  # the faults stay off from here on
        result["unprotected_after_restart"] = checks.unprotected(
            stopped, SYMBOLS, checks.read_state(restart.state_file).get("baseline") or {})
        # What the restart could not book under the faults (a fill its last poll did not get) is booked by the next
        # start's reconciliation: one more short session, faults off, before the books are compared.
        final_run = Live(server.url, data_dir, data_dir / "final.log", "--max-bars", str(FINAL_BARS))
        result["final_returncode"] = final_run.stop_after(FINAL_BARS * 60.0 / speed + WAIT_S)
        until = server.exchange.market.now()  # the books are as of now; the market goes on
        final = look(server, "")
        result["faults_injected"] = {k: v for k, v in server.service.faults.injected.items() if v}
    state = checks.read_state(final_run.state_file)
    known, booked = store_records(settings)
    lost, over = checks.lost_fills(final, booked, until)
    result.update({
        "duplicates": checks.duplicates(final), "unknown_orders": checks.unknown_orders(final, known),
        "lost_fills": lost, "overbooked_fills": over, "mismatches": checks.mismatches(final, SYMBOLS, state, until),
        "fills_after_stop": len(checks.after(final, until)),
        "exchange_orders": len(final.orders), "exchange_trades": len(final.trades),
        "seconds": round(time.monotonic() - t0, 1)})
    result["failed_restarts"] = int(not started or result["restart_returncode"] != 0) + int(
        result["final_returncode"] != 0)
    result["ended_by_itself"] = int(result["kill"]["returncode"] != -signal.SIGKILL)
    for name, failed in (("killed", result["ended_by_itself"]), ("restart", not started or result[
            "restart_returncode"] != 0), ("final", result["final_returncode"] != 0)):
        if failed:
            result[f"{name}_output"] = (data_dir / f"{name}.log").read_text().strip().splitlines()[-2:]
    result["missed_moments"] = int(not result["kill"]["hit"])
    return result


def count(value: Any) -> int:
    return len(value) if isinstance(value, list) else int(value)


def summarise(results: list[dict[str, Any]], seed: int, speed: float, wall: float) -> dict[str, Any]:
    per_moment: dict[str, dict[str, int]] = {}
    for moment in MOMENTS:
        rows = [r for r in results if r["moment"] == moment]
        per_moment[moment] = {"trials": len(rows), "with_faults": sum(r["faults"] for r in rows),
                              **{c: sum(count(r[c]) for r in rows) for c in COUNTS}}
    seconds = sorted(r["seconds"] for r in results)
    return {"bench": "chaos", "trials": len(results), "seed": seed, "speed": speed, "faults": FAULTS,
            "restart_bars": RESTART_BARS, "with_faults": sum(r["faults"] for r in results),
            "totals": {c: sum(count(r[c]) for r in results) for c in COUNTS},
            "per_moment": per_moment,
            "kills_with_position": sum(bool(r["kill"]["positions"]) for r in results),
            "kills_with_order_in_flight": sum(bool(r["kill"]["in_flight"] or r["kill"]["order_request_open"])
                                              for r in results),
            "exchange_orders": sum(r["exchange_orders"] for r in results),
            "exchange_trades": sum(r["exchange_trades"] for r in results),
            "fills_after_stop": sum(r["fills_after_stop"] for r in results),
            "seconds": {"total": round(wall, 1), "per_trial_median": seconds[len(seconds) // 2] if seconds else None,
                        "per_trial_max": seconds[-1] if seconds else None},
            "findings": [{"trial": r["trial"], "moment": r["moment"], "faults": r["faults"],
                          **{c: r[c] for c in COUNTS if count(r[c])}}
                         for r in results if any(count(r[c]) for c in COUNTS)]}


def markdown(summary: dict[str, Any]) -> str:
    heads = ["kill moment", "trials", "with faults", *COUNTS]
    lines = ["| " + " | ".join(h.replace("_", " ") for h in heads) + " |", "|" + "---|" * len(heads)]
    rows = [(m, summary["per_moment"][m]) for m in MOMENTS] + [("**all**", {
        "trials": summary["trials"], "with_faults": summary["with_faults"], **summary["totals"]})]
    for name, row in rows:
        lines.append("| " + " | ".join([name, *(str(row[k]) for k in ("trials", "with_faults", *COUNTS))]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", type=float, default=120.0, help="market seconds per wall second")
    parser.add_argument("--moments", default=",".join(MOMENTS), help="kill moments to cycle through")
    parser.add_argument("--markdown", type=Path, default=ROOT / "bench" / "data" / "chaos.md")
    parser.add_argument("--keep", type=Path, default=None, help="keep each trial's data dir and logs under DIR")
    args = parser.parse_args(argv)
    moments = tuple(m.strip() for m in args.moments.split(",") if m.strip())
    if not 1 <= args.trials <= 10_000 or not 10 <= args.speed <= 3_600:
        parser.error("--trials must be 1..10000 and --speed 10..3600")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep} must be a new or empty folder (a trial starts from a fresh data dir)")
    if not moments or set(moments) - set(MOMENTS):
        parser.error(f"--moments takes some of {','.join(MOMENTS)}")
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL + 100)  # a held request cancelled at stop
    rng = random.Random(args.seed)
    plan = [(moments[i % len(moments)], (i // len(moments)) % 2 == 1) for i in range(args.trials)]
    rng.shuffle(plan)
    results = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rampart-chaos-") as tmp:
        where = args.keep or Path(tmp)
        for n, (moment, faulty) in enumerate(plan):
            result = trial(n, moment, faulty, random.Random(rng.random()), where, args.speed)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    summary = summarise(results, args.seed, args.speed, time.monotonic() - t0)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(summary))
    return summary


if __name__ == "__main__":
    print(json.dumps(main()))
