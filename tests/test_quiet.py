"""The replay's fast path (``core/quiet.py``) gives exactly the result of the full step on every bar.

Each case runs the same candles twice: as replays run (quiet stretches through the fast path, the other bars through
``Engine.step_range``), and with the fast path switched off (every bar through the full step). Equity and cash marks
must be the same floats, and decisions, orders, fills, trades, events and the risk engine's state the same.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

import core.engine
from core.build import build_paper_engine
from core.config import load_settings
from core.domain import Mode
from core.engine import SessionResult
from core.market.synthetic import generate
from core.quiet import quiet
from core.strategy import Bar, Signal, Strategy, sma


def _run(params: dict[str, Any], fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[SessionResult, dict, int]:
    settings = load_settings(**{k: v for k, v in params.items() if k != "days"})
    engine = build_paper_engine(settings, Mode.BACKTEST, session_id="f" * 32, as_live=False)
    quiet_bars = 0

    def counted(eng: Any, i: int, end: int) -> int:
        nonlocal quiet_bars
        j = quiet(eng, i, end)
        quiet_bars += j - i
        return j

    monkeypatch.setattr(core.engine, "quiet", counted if fast else (lambda eng, i, end: i))
    sets = generate(list(settings.market.symbols), settings.market.timeframe, params.get("days", 60.0), 11)
    result = engine.run(sets)
    risk = engine.risk
    return result, {"hwm": risk.hwm, "state": risk.state, "derisked": risk.derisked, "tightened": risk.tightened,
                    "day_end": risk.day_end, "daily_floor": risk.daily_floor, "dd_floor": risk.dd_floor}, quiet_bars


def _same_floats(a: Any, b: Any) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


RISKY = {"risk_per_trade": 0.02, "exposure_cap": 1.0}  # sized as paper validation sizes, big enough to move equity
CASES: dict[str, dict[str, Any]] = {
    "sma all-in, controls off (the benchmark's shape)": {
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20, "stop_pct": 0.02}},
        "market": {"symbols": ["BTCUSDT"], "timeframe": "15m"},
        "paper": {"risk_controls": False}, "sizing": {"mode": "all_in"}},
    "sma by risk, two symbols, controls off": {
        "strategy": {"name": "sma_cross", "params": {"fast": 5, "slow": 20, "stop_pct": 0.01}},
        "market": {"symbols": ["BTCUSDT", "ETHUSDT"], "timeframe": "15m"},
        "paper": {"risk_controls": False}},
    "trend, two symbols, stops tightened and de-risked": {
        "strategy": {"name": "trend"}, "market": {"symbols": ["BTCUSDT", "ETHUSDT"], "timeframe": "15m"},
        "risk": {"daily_loss_limit": 0.2, "drawdown_limit": 0.02, "unrealized_loss_limit": 0.003}, "sizing": RISKY},
    "mean reversion, stops tightened and de-risked": {
        "strategy": {"name": "mean_reversion"}, "market": {"symbols": ["ETHUSDT"], "timeframe": "5m"}, "days": 30.0,
        "risk": {"daily_loss_limit": 0.2, "drawdown_limit": 0.02, "unrealized_loss_limit": 0.003}, "sizing": RISKY},
    "sma, the daily loss limit stops the session": {
        "strategy": {"name": "sma_cross"}, "market": {"symbols": ["BTCUSDT"], "timeframe": "15m"},
        "risk": {"daily_loss_limit": 0.002, "drawdown_limit": 0.01, "unrealized_loss_limit": 0.002}, "sizing": RISKY},
}
MONITORS = {"DAILY_LOSS_LIMIT", "UNREALIZED_LOSS_TIGHTEN", "UNREALIZED_LOSS_RECOVERED", "DRAWDOWN_DERISK"}


@pytest.mark.req("R1.1")
@pytest.mark.req("R10.3")
@pytest.mark.parametrize("case", list(CASES))
def test_the_fast_path_gives_the_full_steps_result_bar_for_bar(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    params = CASES[case]
    fast, fast_risk, quiet_bars = _run(params, True, monkeypatch)
    full, full_risk, none = _run(params, False, monkeypatch)
    assert fast.errors == full.errors == []
    assert none == 0 and quiet_bars > len(full.equity) // 2  # the fast path ran most bars
    assert len(full.trades) >= (1 if "daily loss" in case else 5)
    if settings_on(params):  # the monitors acted, so the hand-over to the full step on their bars was exercised
        assert {e["code"] for e in full.events} & MONITORS
    assert _same_floats(fast.equity, full.equity) and not any(math.isnan(x) for x in fast.equity)
    assert _same_floats(fast.cash, full.cash)
    assert list(fast.ts) == list(full.ts)
    assert fast.decisions == full.decisions
    assert [o.to_row() for o in fast.orders] == [o.to_row() for o in full.orders]
    assert fast.fills == full.fills
    assert fast.trades == full.trades
    assert fast.events == full.events
    assert fast_risk == full_risk
    assert fast.final_equity == full.final_equity


def settings_on(params: dict[str, Any]) -> bool:
    return bool(params.get("paper", {}).get("risk_controls", True))


class LateReader(Strategy):
    """Reads no candle series until its 300th bar, then ``bar.close`` and ``bar.high`` on every bar, and trades on
    them: a series first read in the middle of a quiet stretch must grow from the next bar on there too."""

    name = "late_reader"

    def init(self) -> None:
        self.fast = self.indicator(sma("close", 5))
        self.seen: list[tuple[int, int, float, float]] = []

    def on_bar(self, bar: Bar) -> Signal | None:
        if len(self.fast) < 300:
            return None
        close, high = bar.close, bar.high  # the first read happens on a bar that does not signal
        self.seen.append((bar.ts, len(close), close[-1], high[-1]))
        if len(self.fast) == 300:
            return None
        if bar.position is None and close[-1] > self.fast[-1] * 1.002:
            return Signal.enter(bar.symbol, close[-1] * 0.98, "close above its SMA5")
        if bar.position is not None and close[-1] < self.fast[-1]:
            return Signal.exit(bar.symbol, "close below its SMA5")
        return None


@pytest.mark.req("R10.3")
def test_a_series_first_read_mid_stretch_grows_bar_by_bar_in_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(market={"symbols": ["BTCUSDT"], "timeframe": "15m"}, paper={"risk_controls": False},
                             sizing={"mode": "all_in"})
    sets = generate(["BTCUSDT"], "15m", 30.0, 5)
    runs = []
    for fast in (True, False):
        monkeypatch.setattr(core.engine, "quiet", quiet if fast else (lambda eng, i, end: i))
        strategy = LateReader()
        engine = build_paper_engine(settings, Mode.BACKTEST, session_id="f" * 32, as_live=False,
                                    strategies={"BTCUSDT": strategy})
        result = engine.run(sets)
        closes, highs = engine.books[0].close, engine.books[0].high
        first = len(closes) - len(strategy.seen)
        # every bar saw its own close and high, the series ending at it
        assert [(n, c, h) for _, n, c, h in strategy.seen] == [
            (k + 1, closes[k], highs[k]) for k in range(first, len(closes))]
        runs.append((strategy.seen, result))
    (fast_seen, fast_result), (full_seen, full_result) = runs
    assert fast_seen == full_seen and len(fast_result.trades) >= 5
    assert fast_result.trades == full_result.trades and fast_result.decisions == full_result.decisions
