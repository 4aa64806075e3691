"""The main job of ``make run``: paper-validate, and only if the gate passes, rehearse go-live on a local sandbox.

Starts ``rampart sandbox`` as its own process (port chosen free, accelerated clock), trades a bounded live
session against it with the real ccxt client and the sandbox's demo key, prints the summary, and stops the
sandbox. Exit code: 0 when both ran, 3 when the gate refused, 1 on an error.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
from pathlib import Path

from core.config import Settings, load_settings
from core.config.security import OperatorConfig
from core.control.auth import hash_token
from core.live.forward import forward_state_path
from core.live.session import LiveOptions, LiveSession, summary_text
from core.market.candles import base_asset, symbol_to_ccxt
from core.node import open_forward, open_live
from core.redact import install_log_redaction, register_secret
from core.reporting.paper_report import format_verdict
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.validation import run_paper_validation
from core.venue import sandbox_at

URL = re.compile(r"http://127\.0\.0\.1:\d+")


def start_sandbox(speed: float) -> tuple[subprocess.Popen[str], str]:
    """``python -m core.sandbox`` on a free port; returns the process and its URL (from its banner)."""
    proc = subprocess.Popen([sys.executable, "-m", "core.sandbox", "--port", "0", "--speed", str(speed),
                             "--commission", "base"],  # Binance's rule: a buy's commission in the coin received
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    match = URL.search(line)
    if match is None:
        proc.terminate()
        raise SystemExit(f"error: the sandbox did not start: {line.strip() or 'no output'}")
    return proc, match.group(0)


def protection_lines(session: LiveSession) -> list[str]:
    """What stays open on the exchange after the rehearsal, and the stop covering each position (R9.3)."""
    broker = session.broker
    totals = broker.read("fetch_balance", broker.client.fetch_balance).get("total", {})
    lines = []
    for sym in session.symbols:
        asset = base_asset(sym)
        held = float(totals.get(asset) or 0.0) - float(session.state.baseline.get(asset, 0.0))
        inst = session.engine.instruments[sym] if session.engine is not None else None
        sellable = inst.round_qty(held) if inst is not None else held
        if sellable <= 0:
            continue
        stops = [o for o in broker.read("fetch_open_orders", broker.client.fetch_open_orders, symbol_to_ccxt(sym))
                 if o.get("side") == "sell"]
        covered = sum(float(o.get("remaining") or o.get("amount") or 0.0) for o in stops)
        trigger = ", ".join(str(o.get("triggerPrice") or o.get("stopPrice") or o.get("price")) for o in stops)
        verdict = "covered by its stop" if covered >= sellable * (1 - 1e-9) else "NOT COVERED"
        lines.append(f"Open on the exchange: {sym} {held:.8f} {asset} (sellable {sellable:g}), {verdict}"
                     + (f" at {trigger} for {covered:g}" if stops else ""))
    return lines or ["Open on the exchange: no position"]


def demo_operators(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Throwaway operator and viewer tokens for this rehearsal's dashboard: only their hashes go into the
    settings, the log redaction masks them, and they are printed once on the terminal for the person running it."""
    tokens = {role: secrets.token_urlsafe(18) for role in ("operator", "viewer")}
    for token in tokens.values():
        register_secret(token)
    extra = tuple(OperatorConfig(name=f"demo-{role}", role=role, token_sha256=hash_token(token))
                  for role, token in tokens.items())
    return settings.model_copy(update={"operators": (*settings.operators, *extra)}), tokens


def forward_rehearsal(settings: Settings, url: str, speed: float, seconds: float) -> None:
    """A short forward paper session on the sandbox's live market (public data, simulated fills, no keys) before
    the live one: what `rampart paper --forward` does for days on Binance before go-live."""
    print(f"Forward paper: the sandbox's live market at {url} ({speed:g}x), {seconds:g} s, simulated fills, no keys")
    forward_forget(settings, url)
    session = open_forward(settings, sandbox_at(url), LiveOptions(poll_interval_s=0.1, duration_s=seconds))
    print(summary_text(session.run(threading.Event())) + "\n")


def forward_forget(settings: Settings, url: str) -> None:
    """Every rehearsal's simulated account starts fresh."""
    forward_state_path(settings.data_dir, sandbox_at(url)).unlink(missing_ok=True)


def main(days: float = 120.0, seed: int = 5, live_seconds: float = 120.0, speed: float = 3600.0,
         forward_seconds: float = 30.0) -> int:
    install_log_redaction()
    settings = load_settings()
    outcome = run_paper_validation(settings, "synthetic", days=days, seed=seed)
    print(format_verdict(outcome.metrics, outcome.verdict))
    print(f"Report   {outcome.report_paths.get('json')}\nDatabase {outcome.db_path}\n")
    if not outcome.verdict.passed:
        print("The gate refused: no live session. Change the strategy or its parameters and validate again.")
        return 3
    proc, url = start_sandbox(speed)
    try:
        forward_rehearsal(settings, url, speed, forward_seconds)
        os.environ.setdefault("RAMPART_API_KEY", DEMO_API_KEY)  # the sandbox's public demo pair
        os.environ.setdefault("RAMPART_API_SECRET", DEMO_API_SECRET)
        print(f"Live rehearsal: sandbox exchange at {url} ({speed:g}x), {live_seconds:g} s, first rung of the ladder")
        state = Path(settings.data_dir) / "live" / "sandbox-demo-state.json"
        state.unlink(missing_ok=True)  # every rehearsal opens a fresh sandbox account
        live_settings, tokens = demo_operators(settings)
        options = LiveOptions(poll_interval_s=0.1, duration_s=live_seconds, control_port=0)
        session = open_live(live_settings, sandbox_at(url), options, state_path=state)
        if session.control is not None:
            print(f"Dashboard {session.control.url} while the rehearsal runs; log in with the operator token "
                  f"{tokens['operator']} or the viewer token {tokens['viewer']} (made for this rehearsal only)")
        summary = session.run(threading.Event())
        print(summary_text(summary))
        for line in protection_lines(session):
            print(line)
        print(f"Live trades, orders and events are in {settings.db_path} (mode = 'live'); "
              f"state in {state}")
        return 1 if summary.stopped_because.startswith("error") else 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main(live_seconds=float(os.environ.get("RAMPART_DEMO_LIVE_SECONDS", "120"))))
