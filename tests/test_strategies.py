"""Built-in strategies: every entry carries a protective stop and its reason in words with the numbers."""

from __future__ import annotations

import re

import pytest

from core.build import run_paper_session
from core.config import load_settings
from core.domain import Mode
from core.errors import ConfigError
from core.market import align, generate
from core.strategy import STRATEGIES, build_params, params_hash
from tests.helpers import candles

NUMBER = re.compile(r"\d+\.\d{2}")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.req("R1.1")
@pytest.mark.req("R1.2")
def test_every_entry_has_a_stop_below_the_price_and_a_reason_with_indicator_values(name: str) -> None:
    settings = load_settings(strategy={"name": name}, market={"timeframe": "1h"})
    sets = align(generate(["BTCUSDT", "ETHUSDT"], "1h", 90, seed=4))
    res = run_paper_session(sets, settings, Mode.PAPER)
    assert res.errors == []
    entries = [d for d in res.decisions if d["action"] == "enter"]
    assert len(entries) >= 5, f"{name} produced only {len(entries)} entries on 90 days"
    for d in entries:
        close = d["details"]["indicators"]["close"]
        assert 0 < d["details"]["stop"] < close
        assert len(NUMBER.findall(d["reason"])) >= 3, d["reason"]
        assert f"{d['details']['stop']:.2f}" in d["reason"]  # the stop is stated in words too
    for t in res.trades:
        assert t.entry_reason and t.exit_reason and t.exit_kind in {"signal", "stop"}


@pytest.mark.req("R1.1")
def test_trend_follower_buys_the_cross_above_and_sells_the_cross_below() -> None:
    up = [100 + k * 0.5 for k in range(60)]
    down = [up[-1] - k * 1.0 for k in range(1, 40)]
    closes = [100.0] * 30 + up + down
    rows = [(c, c + 0.2, c - 0.2, c) for c in closes]
    settings = load_settings(strategy={"name": "trend", "params": {"fast": 3, "slow": 8, "trend": 10, "atr": 3}},
                             market={"symbols": ["BTCUSDT"]}, paper={"risk_controls": False})
    res = run_paper_session([candles(rows)], settings, Mode.BACKTEST)
    assert res.errors == []
    t0 = res.ts[0]
    signals = [((d["ts"] - t0) // 3_600_000, d["action"], d["details"]["signal_code"]) for d in res.decisions]
    assert [(a, c) for _, a, c in signals] == [("enter", "CROSS_UP"), ("exit", "CROSS_DOWN")]
    assert 30 <= signals[0][0] < 40 and 90 <= signals[1][0] < 100


@pytest.mark.req("R1.1")
def test_mean_reversion_buys_dips_only_while_the_trend_filter_rises() -> None:
    settings = load_settings(strategy={"name": "mean_reversion"}, market={"timeframe": "1h"})
    sets = align(generate(["BTCUSDT", "ETHUSDT"], "1h", 120, seed=5))
    res = run_paper_session(sets, settings, Mode.PAPER)
    entries = [d for d in res.decisions if d["action"] == "enter"]
    assert entries and all("EMA48 rising" in d["reason"] for d in entries)
    for d in entries:
        m = re.search(r"rising ([\d.]+) -> ([\d.]+)", d["reason"])
        assert m and float(m.group(2)) > float(m.group(1))


def test_unknown_or_out_of_range_parameters_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="stop_atr"):
        build_params("trend", {"stop_atr": -1})
    with pytest.raises(ConfigError, match="nonsense"):
        build_params("mean_reversion", {"nonsense": 1})
    with pytest.raises(ConfigError, match=r"fast .* must be shorter than slow"):
        build_params("trend", {"fast": 50, "slow": 20})


@pytest.mark.req("R1.5")
def test_config_hash_changes_with_any_parameter_and_only_then() -> None:
    base = build_params("mean_reversion", {})
    same = build_params("mean_reversion", {"window": base.window})  # type: ignore[attr-defined]
    assert params_hash("mean_reversion", base) == params_hash("mean_reversion", same)
    for field, value in (("window", 41), ("entry_z", 1.6), ("trend", 0), ("stop_atr", 2.5)):
        changed = build_params("mean_reversion", {field: value})
        assert params_hash("mean_reversion", changed) != params_hash("mean_reversion", base), field
