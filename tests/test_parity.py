"""The same decisions in backtest, paper and live (R10.3, R1.1): every built-in strategy, on four weeks of real
5-minute Binance candles traded as hourly bars, makes the same entries, exits and refusals — bar, side, reason
code — in a backtest, a paper run and a live session on the sandbox (manual clock, the real ccxt client over
HTTP). The backtest sees each hour's OHLC; the sandbox replays the 5-minute path inside it, so a stop triggers
where the real tape crossed it.

The paper runs apply the live risk controls and start where live started (flat, fresh breakers; the candles
before are history, as the live session's window is). Parameters are chosen so that time exits and take-profits
are common, since those are the exits that need per-trade state.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from core.build import config_hash, history_bars, run_paper_session
from core.config import Settings, load_settings
from core.domain import Mode, dt_to_ms
from core.live.session import LiveOptions
from core.market import CandleSet, align, load_candles, resample
from core.node import open_live
from core.result import SessionResult
from core.sandbox.config import SandboxConfig
from core.sandbox.server import SandboxServer
from core.store import Store
from core.validation import evaluate, write_report
from core.venue import sandbox_at

TF_MS = 3_600_000
# a bar every few milliseconds of wall time: far more requests per wall minute than Binance allows a real session
WEIGHT_LIMIT = 1_000_000
START = "2024-03-04"  # a volatile stretch of real candles
TRADED_BARS = 4 * 7 * 24  # four weeks of hourly bars
PARAMS: dict[str, dict[str, Any]] = {
    # short give-up time: time exits are common
    "mean_reversion": {"window": 20, "entry_z": 1.2, "rsi_max": 45, "max_bars": 6, "trend": 0, "stop_atr": 4},
    # a 1.5-ATR target: take-profits are common
    "trend": {"fast": 6, "slow": 24, "trend": 72, "atr": 14, "stop_atr": 3, "target_atr": 1.5},
    "sma_cross": {"fast": 6, "slow": 18, "stop_pct": 0.004},
}

Row = tuple[str, int, str, str]  # (symbol, bar open time, what, reason code)
# An entry refused for its size: which of these it is depends on lot-step rounding at live's tiny first-rung sizes
# (no room left under the cap is EXPOSURE_CAP at 10x the size, BELOW_LOT_STEP at 1x). The bar must match; the
# controls' refusals (correlation, breakers, state, latency...) must match by code.
SIZE_CODES = {"EXPOSURE_CAP", "BELOW_LOT_STEP", "BELOW_MIN_NOTIONAL", "INSUFFICIENT_CASH"}


def refusal(code: str) -> str:
    return "SIZE" if code in SIZE_CODES else code


def real_candles(market_data_dir: Path, bars: int) -> tuple[list[CandleSet], list[CandleSet]]:
    """(the 5-minute candles the sandbox replays, the hourly bars the backtest reads), ``bars`` hours of each."""
    fine, hourly = [], []
    for symbol, name in (("BTCUSDT", "BTC_USDT"), ("ETHUSDT", "ETH_USDT")):
        cs = load_candles(market_data_dir / f"{name}-5m.feather")
        frame = cs.frame.filter(pl.col("ts") >= pl.lit(START).str.to_datetime(time_zone="UTC")).head(bars * 12)
        fine.append(CandleSet(symbol, "5m", frame))
        hourly.append(CandleSet(symbol, "1h", resample(frame, "5m", "1h")))
    return align(fine), align(hourly)


def settings_for(data_dir: Path, name: str) -> Settings:
    # the paper fill model at the sandbox's own cost (half its 1 bp spread), fees as the sandbox charges them
    return load_settings(data_dir=data_dir, strategy={"name": name, "params": PARAMS[name]},
                         market={"timeframe": "1h"},
                         paper={"slippage_bps": 0.5, "taker_fee": 0.001, "commission": "base"},
                         exchange={"weight_limit": WEIGHT_LIMIT})


def bar_of(ms: int) -> int:
    return ms // TF_MS * TF_MS


def paper_rows(result: SessionResult) -> list[Row]:
    """Entries at the bar they were decided on, exits at the bar they filled on, refusals with their code."""
    rows: list[Row] = []
    for d in result.decisions:
        if d["kind"] == "denied" and d["action"] == "enter":
            rows.append((d["symbol"], d["ts"], "refused", refusal(str(d["code"]))))
    for o in result.orders:
        if o.tag.value == "entry" and o.filled_qty > 0:
            rows.append((o.symbol, o.created_ts, "enter", o.code))
    for t in result.trades:
        rows.append((t.symbol, bar_of(t.exit_ts), "exit", t.exit_code))
    return sorted(rows)


def live_rows(store: Store, session_id: str) -> list[Row]:
    refused = store.query("select symbol, epoch_ms(ts) as ts, code from decisions where session_id = ? and "
                          "kind = 'denied' and action = 'enter'", [session_id])
    entries = store.query(
        "select o.symbol, epoch_ms(o.created_at) as ts, d.details->>'$.signal_code' as code from orders o "
        "join decisions d on d.session_id = o.session_id and d.details->>'$.order.client_order_id' = "
        "o.client_order_id where o.session_id = ? and o.tag = 'entry' and o.filled_qty > 0", [session_id])
    trades = store.query("select symbol, epoch_ms(exit_time) as ts, exit_code from trades where session_id = ?",
                         [session_id])
    rows: list[Row] = [(s, t, "refused", refusal(c)) for s, t, c in refused.iter_rows()]
    rows += [(s, t, "enter", c) for s, t, c in entries.iter_rows()]
    rows += [(s, bar_of(t), "exit", c) for s, t, c in trades.iter_rows()]
    return sorted(rows)


def paper_report(settings: Settings, result: SessionResult) -> Path:
    chash = config_hash(settings)
    metrics, verdict = evaluate(result, settings, [], chash)
    return write_report(settings, result.session_id, chash, result, metrics, verdict, [])["json"]


def before(rows: list[Row], end: int) -> list[Row]:
    return [r for r in rows if r[1] < end]


def run_live(tmp_path: Path, settings: Settings, sets: list[CandleSet], history: int, bars: int) -> list[Row]:
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                         "strategy": settings.strategy.name, "reasons": []})
    config = SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][history * 12],
                           warmup_days=history * TF_MS / 86_400_000 + 1, weight_limit=WEIGHT_LIMIT)
    with SandboxServer(config) as server:
        session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.0))
        assert session.engine is not None and session.engine.books[0].ts[0] == dt_to_ms(sets[0].frame["ts"][0])
        clock = httpx.Client(base_url=server.url)
        for _ in range(bars):
            clock.post("/sandbox/advance", json={"ms": TF_MS}).raise_for_status()
            assert session.step(), "the session saw no new closed bar"
        stopped = threading.Event()
        stopped.set()
        session.run(stopped)
    return live_rows(Store(settings.db_path), session.session_id)


@pytest.mark.req("R10.3")
@pytest.mark.req("R1.1")
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_backtest_paper_and_live_make_the_same_entries_exits_and_refusals(
        name: str, tmp_path: Path, market_data_dir: Path, creds: None) -> None:
    settings = settings_for(tmp_path, name)
    history = history_bars(settings)
    bars = TRADED_BARS
    fine, sets = real_candles(market_data_dir, history + bars + 1)
    trade_from = dt_to_ms(sets[0].frame["ts"][history])
    end = dt_to_ms(sets[0].frame["ts"][history + bars])  # live trades the bars before this one
    backtest = run_paper_session(sets, settings, Mode.BACKTEST, trade_from=trade_from)
    paper = run_paper_session(sets, settings, Mode.PAPER, trade_from=trade_from)
    assert backtest.errors == [] and paper.errors == []
    expected = before(paper_rows(backtest), end)
    assert before(paper_rows(paper), end) == expected
    exits = {code for _, _, what, code in expected if what == "exit"}
    wanted = {"mean_reversion": {"TIME_EXIT", "TARGET"}, "trend": {"TAKE_PROFIT"}, "sma_cross": {"CROSS_DOWN"}}
    assert wanted[name] <= exits, f"{name}: the candles did not exercise {wanted[name] - exits}"
    live = run_live(tmp_path, settings, fine, history, bars)
    assert before(live, end) == expected
    # the paper report lists the controls' refusals: on the same bars, with the same codes, as live refused them
    report = json.loads(paper_report(settings, paper).read_text())
    shown = [(b["symbol"], dt_to_ms(datetime.fromisoformat(b["ts"])), "refused", refusal(b["code"]))
             for b in report["blocked"]]
    assert before(sorted(shown), end) == [r for r in before(live, end) if r[2] == "refused"]
    assert report["sizing"]["as_live"] and report["sizing"]["risk_per_trade"] == 0.001
