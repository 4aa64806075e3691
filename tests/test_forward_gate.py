"""The forward record's gate (SPEC R1.6) and go-live on it: ``rampart gate --forward`` over forward paper sessions
seeded into a real DuckDB the way a forward session writes them (mode 'paper', ``"forward": true`` in the settings,
the venue, equity, trades and events; the account carried from one session to the next), and a live session on the
manual-clock sandbox that refuses to start under ``gate.require_forward`` until a forward record passed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from core.build import Sizing, config_hash, new_session_id
from core.cli import app
from core.config import Settings, load_settings
from core.config.gate import GateConfig
from core.config.venue import ExchangeConfig
from core.domain import Mode
from core.engine import SessionResult
from core.gate import Evidence, evaluate_gate
from core.gate.forward import evaluate_forward, paper_scale
from core.live.preflight import PreflightFailed
from core.live.session import LiveOptions, LiveSession
from core.market import CandleSet
from core.metrics import compute_metrics
from core.node import open_live
from core.store import Store
from core.store.gates import gate_attempts
from core.validation import run_session, session_frames, session_row
from core.venue import Venue, sandbox_at, venue_for
from tests.helpers import candles
from tests.sandbox_rig import BTC, ETH, STRATEGY, sandbox

T0 = datetime(2024, 3, 1, tzinfo=UTC)
SANDBOX = sandbox_at("http://127.0.0.1:8765")
BINANCE = venue_for(ExchangeConfig(name="binance"))
# Thresholds a few days of 1-minute sma_cross can meet: what is tested is the record, not the strategy.
LENIENT = {"min_win_rate": 0.0, "min_sharpe": -10.0, "max_drawdown": 1.0, "min_trades": 1, "forward_min_days": 2}
ENV = {"RAMPART_STRATEGY__NAME": STRATEGY["name"], "RAMPART_STRATEGY__PARAMS": json.dumps(STRATEGY["params"]),
       "RAMPART_MARKET__TIMEFRAME": "1m", **{f"RAMPART_GATE__{k.upper()}": str(v) for k, v in LENIENT.items()}}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forward sessions' configuration, for load_settings and the `rampart` command alike."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def forward_settings(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=data_dir, paper={"risk_controls": False}, **overrides)


def waves(start: datetime, days: float, seed: int) -> list[CandleSet]:
    """A market sma_cross trades well: each symbol a 4-hour price wave of 4 %, phases set by ``seed``."""
    bars = int(days * 1440)
    sets = []
    for k, (symbol, price) in enumerate((("BTCUSDT", BTC), ("ETHUSDT", ETH))):
        closes = [price * (1 + 0.02 * math.sin(2 * math.pi * (i + 37 * seed + 60 * k) / 240)) for i in range(bars + 1)]
        rows = [(a, max(a, b) * 1.0002, min(a, b) * 0.9998, b) for a, b in itertools.pairwise(closes)]
        sets.append(candles(rows, symbol, tf="1m", start=start))
    return sets


def forward_session(store: Store, settings: Settings, venue: Venue, start: datetime, days: float, seed: int, *,
                    running: bool = False, forward: bool = True, error: str | None = None) -> SessionResult:
    """One forward paper session of the engine on ``waves``, written as the forward session writes it."""
    sets = waves(start, days, seed)
    sid = new_session_id()
    row = session_row(sid, Mode.PAPER, settings, config_hash(settings), start, venue)
    store.begin_session({**row, "settings": {**row["settings"], **({"forward": True} if forward else {})},
                         "starting_equity": settings.paper.starting_cash})
    result = run_session(sets, settings, Mode.PAPER, sid)
    frames = session_frames(result)
    frames["trades"] = frames["trades"].with_columns(pl.lit("paper").alias("mode"))
    for lo in range(0, frames["equity"].height, 500):  # flushed as it goes, as the recorder does bar by bar
        chunk = {"equity": frames["equity"].slice(lo, 500)}
        if lo == 0:
            chunk |= {t: f for t, f in frames.items() if t not in ("equity", "orders")}
        store.append_many({t: f.with_columns(pl.lit(sid).alias("session_id")) for t, f in chunk.items()})
    if not running:
        store.finish_session(sid, status="failed" if error else "completed", ended_at=start + timedelta(days=days),
                             final_equity=result.final_equity, error=error, frames={})
    return result


def stopped(session: LiveSession) -> str:
    """Stop a started session the way an operator's stop does; the state it closed in."""
    stop = threading.Event()
    stop.set()
    return session.run(stop).state


def continued(settings: Settings, result: SessionResult) -> Settings:
    """The settings of the restart: the same config, the account's equity carried on."""
    return settings.model_copy(update={"paper": settings.paper.model_copy(update={"starting_cash":
                                                                                  result.final_equity})})


@pytest.mark.req("R1.6")
def test_the_forward_record_is_judged_once_it_covers_forward_min_days_and_recorded(tmp_path: Path, env: None) -> None:
    settings = forward_settings(tmp_path)
    store = Store(settings.db_path)
    first = forward_session(store, settings, SANDBOX, T0, 1.25, seed=3)
    # Not part of this record: a replay paper run, another venue's forward session, another configuration's.
    forward_session(store, settings, SANDBOX, T0, 1.0, seed=8, forward=False)
    forward_session(store, settings, BINANCE, T0, 1.0, seed=9)
    other = forward_settings(tmp_path, strategy={"params": {"fast": 4, "slow": 8}})
    forward_session(store, other, SANDBOX, T0, 3.0, seed=10)

    short = evaluate_forward(store, settings, SANDBOX, config_hash(settings))
    assert short.status == "short" and short.sessions == 1 and short.verdict is None
    assert "covers 1.2 of the 2 days gate.forward_min_days needs (1800 bars of 1m in 1 session(s)" in short.message
    assert "0.8 more days; nothing recorded" in short.message
    assert gate_attempts(store) == []

    second = forward_session(store, continued(settings, first), SANDBOX, T0 + timedelta(days=1.25), 1.0, seed=4,
                             running=True)  # restarted, still running
    out = evaluate_forward(store, settings, SANDBOX, config_hash(settings))
    assert out.status == "judged" and out.sessions == 2 and out.covered_days == pytest.approx(2.25)
    assert out.metrics is not None and out.verdict is not None and out.evidence is not None
    expected = compute_metrics(pl.concat([first.equity_frame(), second.equity_frame()]),
                               pl.concat([first.trades_frame(), second.trades_frame()]),
                               starting_equity=first.starting_equity, period="1d")
    assert out.metrics.trades == len(first.trades) + len(second.trades) > 0
    for name in ("win_rate", "sharpe", "max_drawdown", "net_pnl", "profit_factor", "fees"):
        assert getattr(out.metrics, name) == pytest.approx(getattr(expected, name), rel=1e-9), name
    (stored,) = gate_attempts(store, config_hash(settings))
    assert stored["passed"] is out.verdict.passed is True
    assert (stored["evidence"], stored["real_data"], stored["venue"]) == ("forward", False, "sandbox")
    assert stored["days"] == pytest.approx(2.25) and stored["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert stored["window_start"] == T0 and stored["window_end"] == T0 + timedelta(days=2.25)
    assert stored["data"]["sessions"] == [first.session_id, second.session_id]
    assert stored["session_id"] == second.session_id and len(stored["data_hash"]) == 64
    assert stored["thresholds"]["forward_min_days"] == 2 and stored["errors"] == 0


@pytest.mark.req("R1.5")
@pytest.mark.req("R1.6")
def test_a_session_error_fails_the_forward_record(tmp_path: Path, env: None) -> None:
    settings = forward_settings(tmp_path)
    store = Store(settings.db_path)
    first = forward_session(store, settings, SANDBOX, T0, 1.5, seed=3)
    forward_session(store, continued(settings, first), SANDBOX, T0 + timedelta(days=1.5), 1.0, seed=4,
                    error="ExchangeError at bar 7: the feed broke")
    out = evaluate_forward(store, settings, SANDBOX, config_hash(settings))
    assert out.verdict is not None and not out.verdict.passed
    assert any(r.startswith("SESSION_ERROR: ") and r.endswith("ExchangeError at bar 7: the feed broke")
               for r in out.verdict.reasons), out.verdict.reasons
    assert gate_attempts(store)[0]["errors"] == 1


@pytest.mark.req("R1.6")
def test_the_metrics_are_shown_at_the_scale_paper_validation_uses() -> None:
    for risk_controls in (True, False):
        settings = load_settings(paper={"risk_controls": risk_controls})
        sizing = Sizing.as_live(settings) if risk_controls else Sizing.full_scale(settings)  # as ForwardSession
        assert paper_scale(settings) == sizing.scale
    assert paper_scale(load_settings()) == pytest.approx(10.0)  # 1 % per trade, measured from live's 0.1 %


@pytest.mark.req("R1.6")
def test_rampart_gate_forward_says_what_is_missing_then_records_the_verdict(tmp_path: Path, env: None) -> None:
    runner, args = CliRunner(), ["gate", "--forward", "--exchange", "sandbox", "--data-dir", str(tmp_path)]
    none = runner.invoke(app, args)
    assert none.exit_code == 3 and "NO_FORWARD: no forward paper session for config" in none.output
    assert not (tmp_path / "rampart.duckdb").exists()  # looking wrote nothing
    settings = forward_settings(tmp_path)
    store = Store(settings.db_path)
    first = forward_session(store, settings, SANDBOX, T0, 1.0, seed=3)
    short = runner.invoke(app, args)
    assert short.exit_code == 3 and "covers 1.0 of the 2 days" in short.output, short.output
    forward_session(store, continued(settings, first), SANDBOX, T0 + timedelta(days=1), 1.5, seed=4)
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 0, done.output
    verdict = json.loads(done.output)
    assert verdict["status"] == "judged" and verdict["passed"] and verdict["covered_days"] == pytest.approx(2.5)
    assert verdict["record_id"] == gate_attempts(store)[0]["id"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "Forward gate: PASSED" in table.output and "win rate" in table.output
    assert "Evidence forward forward paper on sandbox, 2 session(s): BTCUSDT,ETHUSDT" in table.output
    strict = runner.invoke(app, args, env={"RAMPART_GATE__MIN_TRADES": "100000"})
    assert strict.exit_code == 3 and "TOO_FEW_TRADES" in strict.output
    assert [a["passed"] for a in gate_attempts(store)] == [True, True, False]  # every attempt is kept


@pytest.mark.req("R1.6")
def test_the_forward_gate_flow_records_and_publishes_the_verdict(prefect_harness: None, tmp_path: Path,
                                                               env: None) -> None:
    from flows.forward_gate import forward_gate

    settings = forward_settings(tmp_path)
    forward_session(Store(settings.db_path), settings, SANDBOX, T0, 2.5, seed=3)
    out = forward_gate(exchange="sandbox", data_dir=str(tmp_path))
    assert out["status"] == "judged" and out["passed"] and out["sessions"] == 1
    assert gate_attempts(Store(settings.db_path))[0]["id"] == out["record_id"]


@pytest.mark.req("R1.6")
def test_with_require_forward_live_refuses_without_a_forward_record_and_starts_with_it(
    tmp_path: Path, env: None, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMPART_GATE__REQUIRE_FORWARD", "true")
    settings = forward_settings(tmp_path)
    assert settings.gate.require_forward
    store = Store(settings.db_path)
    store.record_gate({"passed": True, "config_hash": config_hash(settings), "strategy": STRATEGY["name"],
                       "reasons": []})  # the replay gate (the sandbox rehearses on any data)
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        venue = sandbox_at(server.url)
        with pytest.raises(PreflightFailed) as refused:
            open_live(settings, venue, LiveOptions())
        message = str(refused.value)
        assert "FORWARD_REQUIRED: gate.require_forward is set and config " in message
        assert "has no forward record" in message and "rampart gate --forward" in message
        assert store.query("select count(*) from sessions where mode = 'live'").item() == 0

        forward_session(store, settings, venue, T0, 2.5, seed=3)
        judged = CliRunner().invoke(app, ["gate", "--forward", "--exchange", "sandbox", "--sandbox-url", server.url,
                                          "--data-dir", str(tmp_path)])
        assert judged.exit_code == 0, judged.output
        assert stopped(open_live(settings, venue, LiveOptions())) == "ACTIVE"  # preflight passed: it trades
    assert store.query("select count(*) from sessions where mode = 'live'").item() == 1


@pytest.mark.req("R1.7")
def test_for_a_real_money_venue_preflight_refuses_rehearsal_evidence_and_relaxed_thresholds_with_the_reason(
    tmp_path: Path, env: None, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox dressed as a real-money venue (as tests/test_rehearsal.py dresses rehearsal venues)."""
    for name in ("MIN_WIN_RATE", "MIN_SHARPE", "MAX_DRAWDOWN", "MIN_TRADES"):
        monkeypatch.delenv(f"RAMPART_GATE__{name}")  # the R1.4 defaults are in force at go-live
    settings = forward_settings(tmp_path)
    store, chash = Store(settings.db_path), config_hash(settings)
    forward_session(store, settings, SANDBOX, T0, 2.5, seed=3)
    sandbox_record = evaluate_forward(store, settings, SANDBOX, chash)
    assert sandbox_record.passed and sandbox_record.metrics is not None
    with sandbox([BTC] * 4, [ETH] * 4) as server:
        assert stopped(open_live(settings, sandbox_at(server.url), LiveOptions())) == "ACTIVE"  # may rehearse
        real_money = replace(sandbox_at(server.url), real_money=True)
        with pytest.raises(PreflightFailed) as refused:
            open_live(settings, real_money, LiveOptions())
        message = str(refused.value)
        assert "GATE_NOT_REAL_DATA: the gate for config" in message and "forward on a rehearsal market" in message
        assert "real money needs a gate on real market data" in message

        # 90 days of recorded candles, passed only because RAMPART_GATE__MIN_SHARPE=0.2 was set for that run
        weak = dataclasses.replace(sandbox_record.metrics, sharpe=0.31, trades=40)
        replay = Evidence("replay", True, "BTC_USDT-1h.feather, ETH_USDT-1h.feather", ("BTCUSDT", "ETHUSDT"),
                          T0, T0 + timedelta(days=90), 90.0, "cd" * 32)
        relaxed = evaluate_gate(weak, [], GateConfig(min_sharpe=0.2), chash)
        store.record_gate(relaxed.to_record("replay-1", STRATEGY["name"], weak, replay))
        with pytest.raises(PreflightFailed) as refused:
            open_live(settings, real_money, LiveOptions())
        message = str(refused.value)
        assert "GATE_THRESHOLDS: the gate for config" in message and "passed only under relaxed thresholds" in message
        assert "sharpe 0.31 passed at > 0.20 (recorded) but the threshold in force is > 0.50" in message

        # the same strategy proven on a longer window that contains it, at the thresholds in force: live starts
        longer = replace(replay, start=T0 - timedelta(days=30), days=120.0, content_hash="ef" * 32)
        good = dataclasses.replace(weak, sharpe=1.4)
        store.record_gate(evaluate_gate(good, [], settings.gate, chash).to_record("replay-2", "sma_cross", good,
                                                                                   longer))
        assert stopped(open_live(settings, real_money, LiveOptions())) == "ACTIVE"
