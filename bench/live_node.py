"""A live node's footprint (issue 19): resident memory, its drift, CPU per idle poll and per bar, bar-to-order latency.

Usage: ``python bench/live_node.py [--minutes 10] [--speed 30] [--timeframe 1m] [--poll 0.25]``.

A realtime sandbox (the bar's market minutes pass ``speed`` times faster than the wall's: at 30 a 1-minute bar
closes every 2 s) serves BTCUSDT and ETHUSDT in this process; ``rampart live`` trades them in a child process as
an operator would start it, with the dashboard and control API on (``--control-port 0``) and a page watching it
(a viewer logged in, its server-sent-events stream open all the run). The strategy is an active one (SMA 3/8
crossings), so bars bring orders. While it runs, the child's ``/proc/<pid>/status`` (VmRSS, VmHWM) and
``/proc/<pid>/stat`` (user + system CPU) are sampled every ``--sample-s``; the sandbox notes the wall and market
time of every request it serves. Printed, one JSON object:

- ``rss_mb``: steady state (median from the end of the first minute on), min, max, peak (VmHWM), and ``drift_pct``:
  the median of the last minute against the median of the second minute;
- ``cpu``: the share of one core over the run, while idle (sample intervals without a bar) and per poll (idle CPU
  over the polls the sandbox served in them), and per bar (CPU beyond the idle rate in the intervals around each
  bar's heartbeat line);
- ``bar_to_order_ms``: for each bar that brought an order, from the candle's close on the market clock to the
  first order request reaching the exchange (poll wait included), in wall milliseconds (market ms / speed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.build import config_hash  # noqa: E402
from core.config import load_settings, run_overrides  # noqa: E402
from core.control.auth import hash_token  # noqa: E402
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig  # noqa: E402
from core.sandbox.server import SandboxServer  # noqa: E402
from core.store import Store  # noqa: E402

SYMBOLS = "BTCUSDT,ETHUSDT"
STRATEGY, PARAMS = "sma_cross", {"fast": 3, "slow": 8}
ORDER_PATHS = ("/api/v3/order", "/api/v3/orderList/oto", "/api/v3/orderList/opo", "/api/v3/order/cancelReplace")
TF_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
CLK_TCK = os.sysconf("SC_CLK_TCK")
URL = re.compile(r"Dashboard (http://127\.0\.0\.1:\d+)")


@dataclass
class Requests:
    """An ASGI wrapper round the sandbox's app: (wall, market ms, method, path, query) of every request served."""

    app: Any
    market_now: Any
    seen: list[tuple[float, int, str, str, str]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append((time.monotonic(), self.market_now(), scope["method"], scope["path"],
                              scope.get("query_string", b"").decode()))
        await self.app(scope, receive, send)


def proc_sample(pid: int) -> tuple[float, float, float] | None:
    """(VmRSS MB, VmHWM MB, CPU seconds user + system) of ``pid``; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    kb = {k: float(v.split()[0]) for k, v in (line.split(":", 1) for line in status.splitlines() if ":" in line)
          if k in ("VmRSS", "VmHWM")}
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of proc(5))
    return kb.get("VmRSS", 0.0) / 1024, kb.get("VmHWM", 0.0) / 1024, cpu


def watch_dashboard(url: str, token: str, stop: threading.Event, events: list[float]) -> None:
    """What an open dashboard page does: log in, then hold the snapshot stream open, counting its events (until
    the node stops serving it)."""
    with httpx.Client(base_url=url, timeout=httpx.Timeout(10.0, read=60.0)) as web:
        web.post("/login", json={"token": token}).raise_for_status()
        try:
            with web.stream("GET", "/api/stream") as stream:
                for line in stream.iter_lines():
                    if line.startswith("event: snapshot"):
                        events.append(time.monotonic())
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            return  # the node stopped and closed the stream


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median_between(samples: list[tuple[float, float, float, float]], start: float, end: float) -> float | None:
    values = [s[1] for s in samples if start <= s[0] < end]
    return statistics.median(values) if values else None


def cpu_split(samples: list[tuple[float, float, float, float]], bars: list[float], polls: list[float],
              margin_s: float) -> dict[str, Any]:
    """Idle rate from intervals with no bar's heartbeat within ``margin_s``; the rest is the bars' work."""
    idle_cpu = idle_wall = busy_cpu = busy_wall = 0.0
    idle_intervals = []
    for (t0, _, _, c0), (t1, _, _, c1) in itertools.pairwise(samples):
        near_bar = any(t0 - margin_s <= b <= t1 + margin_s for b in bars)
        if near_bar:
            busy_cpu, busy_wall = busy_cpu + (c1 - c0), busy_wall + (t1 - t0)
        else:
            idle_cpu, idle_wall = idle_cpu + (c1 - c0), idle_wall + (t1 - t0)
            idle_intervals.append((t0, t1))
    idle_polls = sum(1 for p in polls if any(a <= p < b for a, b in idle_intervals))
    rate = idle_cpu / idle_wall if idle_wall else 0.0
    wall = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    total = samples[-1][3] - samples[0][3] if len(samples) > 1 else 0.0
    n_bars = sum(1 for b in bars if samples[0][0] <= b <= samples[-1][0]) if samples else 0
    return {"share_of_core_pct": round(100 * total / wall, 2) if wall else None,
            "idle_share_of_core_pct": round(100 * rate, 2),
            "idle_polls": idle_polls, "idle_polls_per_s": round(idle_polls / idle_wall, 2) if idle_wall else None,
            "per_idle_poll_ms": round(1000 * idle_cpu / idle_polls, 3) if idle_polls else None,
            "per_bar_ms": round(1000 * (busy_cpu - rate * busy_wall) / n_bars, 1) if n_bars else None,
            "bars_measured": n_bars}


def latencies(seen: list[tuple[float, int, str, str, str]], tf_ms: int, speed: float, since: float) -> list[float]:
    """Per bar boundary: the first order request in the bar after it, market ms since the close / speed."""
    first: dict[int, int] = {}
    for wall, market, method, path, _ in seen:
        if wall < since or method != "POST" or path not in ORDER_PATHS:
            continue
        close = market // tf_ms * tf_ms
        first.setdefault(close, market)
    return [(market - close) / speed for close, market in sorted(first.items())]


def run(minutes: float, speed: float, timeframe: str, poll: float, sample_s: float) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="rampart-live-node-"))
    token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPART_")}  # Slack and the rest: defaults
    env |= {"RAMPART_API_KEY": DEMO_API_KEY, "RAMPART_API_SECRET": DEMO_API_SECRET, "PYTHONPATH": str(ROOT),
            "RAMPART_OPERATORS": json.dumps([{"name": "bench-viewer", "role": "viewer",
                                              "token_sha256": hash_token(token)}])}
    server = SandboxServer(SandboxConfig(speed=speed, clock="realtime", commission="base"))
    requests = Requests(server.app, server.exchange.market.now)
    server.app = requests
    with server:
        overrides = run_overrides(SYMBOLS, STRATEGY, timeframe, PARAMS, data_dir, "sandbox", server.url)
        settings = load_settings(**overrides)
        Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                             "strategy": STRATEGY, "reasons": []})
        cmd = [sys.executable, "-m", "core.cli", "live", "--exchange", "sandbox", "--sandbox-url", server.url,
               "--control-port", "0", "--duration", str(minutes * 60), "--poll", str(poll), "--symbols", SYMBOLS,
               "--strategy", STRATEGY, "--timeframe", timeframe, "--data-dir", str(data_dir),
               *[a for k, v in PARAMS.items() for a in ("--param", f"{k}={v}")]]
        lines: list[tuple[float, str]] = []
        started = threading.Event()
        stop = threading.Event()
        snapshots: list[float] = []
        errors = open(data_dir / "live.stderr", "w")  # noqa: SIM115 (closed below)
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)

        def read() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                lines.append((time.monotonic(), line.rstrip()))
                match = URL.search(line)
                if match:
                    started.set()
                    threading.Thread(target=watch_dashboard, args=(match.group(1), token, stop, snapshots),
                                     daemon=True).start()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        samples: list[tuple[float, float, float, float]] = []
        while child.poll() is None and not started.wait(0.1):
            pass
        t0 = time.monotonic()
        while child.poll() is None:
            got = proc_sample(child.pid)
            if got is not None:
                samples.append((time.monotonic() - t0, *got))
            time.sleep(sample_s)
        stop.set()
        reader.join(timeout=10)
        errors.close()
    if not samples:
        raise SystemExit(f"the live node did not run: {(data_dir / 'live.stderr').read_text()[-2000:]}")
    bars = [t - t0 for t, line in lines if line.startswith("bar ")]
    polls = [w - t0 for w, _, method, path, query in requests.seen
             if method == "GET" and path == "/api/v3/klines" and "limit=2" in query.split("&")]
    lat = latencies(requests.seen, TF_MS[timeframe], speed, t0)
    end = samples[-1][0]
    rss = [s[1] for s in samples if s[0] >= 60.0] or [s[1] for s in samples]
    second = median_between(samples, 60.0, 120.0)
    last = median_between(samples, end - 60.0, end + 1)
    return {
        "minutes": minutes, "speed": speed, "timeframe": timeframe, "poll_s": poll, "exit_code": child.returncode,
        "summary": next((line for _, line in reversed(lines) if line.startswith("Live session")), None),
        "bars": len(bars), "dashboard_snapshots_pushed": len(snapshots),
        "rss_mb": {"steady_median": round(statistics.median(rss), 1), "min": round(min(rss), 1),
                   "max": round(max(rss), 1), "peak_hwm": round(max(s[2] for s in samples), 1),
                   "second_minute": second and round(second, 1), "last_minute": last and round(last, 1),
                   "drift_pct": round(100 * (last - second) / second, 2) if second and last else None},
        "cpu": cpu_split(samples, bars, polls, margin_s=sample_s),
        "bar_to_order_ms": {"orders": len(lat), "p50": _ms(pct(lat, 0.5)), "p99": _ms(pct(lat, 0.99)),
                            "max": _ms(max(lat) if lat else None)},
        "data_dir": str(data_dir),
    }


def _ms(seconds_ms: float | None) -> float | None:
    return None if seconds_ms is None else round(seconds_ms, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the live node runs")
    parser.add_argument("--speed", type=float, default=30.0, help="market seconds per wall second")
    parser.add_argument("--timeframe", default="1m", choices=sorted(TF_MS), help="the bars traded")
    parser.add_argument("--poll", type=float, default=0.25, help="the live node's --poll")
    parser.add_argument("--sample-s", type=float, default=0.5, help="how often /proc is read")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.minutes, args.speed, args.timeframe, args.poll, args.sample_s)))


if __name__ == "__main__":
    main()
