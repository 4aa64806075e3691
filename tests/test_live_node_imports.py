"""A live node loads only what its loop uses (issue 19): ``rampart live`` in a fresh interpreter, the dashboard served
and watched, bars traded on the sandbox, then the modules its process imported are checked.

Paper validation's reports and PDF writer (fpdf), Great Expectations (the batch data-quality executor) and
slack-sdk (no Slack configured) must never be imported, nor ccxt's exchanges other than Binance: each is tens of
megabytes resident for the whole life of the node (docs/benchmarks.md, "A live node's footprint").
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from core.control.auth import hash_token
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.store import Store
from tests.sandbox_rig import BAR_MS, BTC, ETH, sandbox, settings_for

ROOT = Path(__file__).resolve().parent.parent
BARS = 8
LINE_WAIT_S = 120.0  # a guard against a hung child only; nothing here is timed
# The interpreter's modules when it exits, written where the first argument says; the rest is `rampart ...`.
CHILD = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
from core.cli import main
sys.exit(main(args))
"""
NEVER = ("fpdf", "great_expectations", "slack_sdk", "core.reporting", "core.validation", "matplotlib")


def _lines(proc: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.put(line.rstrip("\n"))


def _next(lines: queue.Queue[str], pattern: str) -> str:
    while True:
        try:
            line = lines.get(timeout=LINE_WAIT_S)
        except queue.Empty:
            raise AssertionError(f"the live node printed no line matching {pattern!r}") from None
        if re.search(pattern, line):
            return line


@pytest.mark.req("R3.1")
@pytest.mark.req("R3.2")
def test_a_live_node_never_imports_reports_pdf_great_expectations_slack_or_other_exchanges(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)  # sma_cross 3/8 on 1-minute bars, a passed gate for it
    token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAMPART_", "SLACK"))}
    env |= {"PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "RAMPART_API_KEY": DEMO_API_KEY,
            "RAMPART_API_SECRET": DEMO_API_SECRET,
            "RAMPART_OPERATORS": json.dumps([{"name": "watcher", "role": "viewer", "token_sha256": hash_token(token)}])}
    modules = tmp_path / "modules.json"
    # a rise (SMA 3 crosses above SMA 8: an entry) then a fall (the exit), on flat-priced candles
    closes = [BTC] * 2 + [BTC * 1.002, BTC * 1.004, BTC * 1.006] + [BTC * 0.99, BTC * 0.98, BTC * 0.97]
    with sandbox(closes, [ETH] * len(closes)) as server:
        args = ["live", "--exchange", "sandbox", "--sandbox-url", server.url, "--data-dir", str(settings.data_dir),
                "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8", "--timeframe", "1m",
                "--control-port", "0", "--poll", "0.05", "--max-bars", str(BARS)]
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(modules), *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_lines, args=(proc, lines), daemon=True).start()
        try:
            url = re.sub(r"^Dashboard ", "", _next(lines, r"^Dashboard http://127\.0\.0\.1:\d+"))
            with httpx.Client(base_url=url, timeout=30.0) as page:  # the page, as an operator's browser loads it
                page.post("/login", json={"token": token}).raise_for_status()
                assert page.get("/").status_code == 200
                assert page.get("/api/snapshot").json()["session_id"]
                assert page.get("/metrics").status_code == 200
            for _ in range(BARS):
                httpx.post(f"{server.url}/sandbox/advance", json={"ms": BAR_MS}).raise_for_status()
                _next(lines, r"^bar ")  # the node traded it
            _next(lines, r"^Live session \w+: \d+ bars")
            _, err = proc.communicate(timeout=LINE_WAIT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    sides = Store(settings.db_path).query("SELECT side FROM fills ORDER BY ts")["side"].to_list()
    assert sides == ["buy", "sell"], sides  # an entry and its exit went through the whole order path
    loaded = json.loads(modules.read_text())
    assert "core.dashboard.app" in loaded and "ccxt.binance" in loaded  # it did serve the page and trade
    assert [m for m in loaded if m.split(".")[0] in NEVER or m.startswith(NEVER)] == []
    others = [m for m in loaded if m.startswith("ccxt.") and not m.startswith("ccxt.base")
              and m not in ("ccxt.binance", "ccxt.abstract", "ccxt.abstract.binance")]
    assert others == [], f"ccxt exchanges a Binance node never uses: {others}"
