"""The synthetic market: deterministic, realistic enough to rehearse on, and clean."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from core.market import SyntheticConfig, check_candles, generate, regime_path
from core.market.synthetic import DOWN, RANGE, UP

FEE = 0.001  # 0.1 % a side


@pytest.fixture(scope="module")
def year_1h() -> list[pl.DataFrame]:
    return [cs.frame for cs in generate(["BTCUSDT", "ETHUSDT"], "1h", 365, seed=11)]


def _log_returns(frame: pl.DataFrame) -> np.ndarray:
    return np.diff(np.log(frame["close"].to_numpy()))


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate(["BTCUSDT", "ETHUSDT"], "5m", 3, seed=42)
    b = generate(["BTCUSDT", "ETHUSDT"], "5m", 3, seed=42)
    c = generate(["BTCUSDT", "ETHUSDT"], "5m", 3, seed=43)
    assert all(x.frame.equals(y.frame) for x, y in zip(a, b, strict=True))
    assert not a[0].frame.equals(c[0].frame)
    assert not np.allclose(a[0].frame["close"].to_numpy(), c[0].frame["close"].to_numpy())


def test_btc_and_eth_returns_are_correlated_about_0_8(year_1h: list[pl.DataFrame]) -> None:
    btc, eth = (_log_returns(f) for f in year_1h)
    assert 0.7 <= np.corrcoef(btc, eth)[0, 1] <= 0.9
    assert 1.15 <= eth.std() / btc.std() <= 1.45  # ETH about 1.3x as volatile


def test_volatility_clusters(year_1h: list[pl.DataFrame]) -> None:
    r = np.abs(_log_returns(year_1h[0]))
    acf = [np.corrcoef(r[:-k], r[k:])[0, 1] for k in (1, 2, 5, 10, 24)]
    assert min(acf) > 0.05, acf
    shuffled = np.random.default_rng(0).permutation(r)
    assert abs(np.corrcoef(shuffled[:-1], shuffled[1:])[0, 1]) < 0.05  # the measure is not biased upwards


def test_candles_are_consistent_on_tick_and_realistically_priced() -> None:
    sets = generate(["BTCUSDT", "ETHUSDT", "SOLUSDT"], "15m", 20, seed=5)
    for cs, start in zip(sets, (60_000.0, 3_000.0, 100.0), strict=True):
        f = cs.frame
        assert f.height == 20 * 96
        assert f["open"][0] == start
        assert (f["open"][1:] == f["close"][:-1]).all()  # open = previous close
        assert f.select((pl.col("high") >= pl.max_horizontal("open", "close")).all()).item()
        assert f.select((pl.col("low") <= pl.min_horizontal("open", "close")).all()).item()
        cents = f.select(pl.col("open", "high", "low", "close") * 100).to_numpy()
        assert np.abs(cents - np.round(cents)).max() < 1e-6  # 0.01 tick
        assert (f["volume"] > 0).all()
        assert 0.5 * start < f["close"].median() < 2 * start  # type: ignore[operator]
        steps = f["ts"].diff().drop_nulls().dt.total_milliseconds().unique().to_list()
        assert steps == [15 * 60_000]


def test_volume_is_higher_when_moves_are_bigger(year_1h: list[pl.DataFrame]) -> None:
    frame = year_1h[0]
    moves = pl.DataFrame({"move": np.abs(_log_returns(frame)), "volume": frame["volume"][1:]})
    assert moves.select(pl.corr("move", "volume", method="spearman")).item() > 0.3


@pytest.mark.parametrize(("tf", "days"), [("1m", 2), ("5m", 30), ("4h", 60), ("1d", 200)])
def test_passes_the_quality_suite_at_every_scale(tf: str, days: int) -> None:
    for cs in generate(["BTCUSDT", "ETHUSDT"], tf, days, seed=3):
        assert check_candles(cs) == []


def test_start_is_floored_to_the_timeframe_and_long_timeframes_are_aligned() -> None:
    start = datetime(2024, 3, 1, 13, 7, tzinfo=UTC)
    five = generate(["BTCUSDT"], "5m", 1, seed=1, start=start)[0].frame
    assert five["ts"][0] == datetime(2024, 3, 1, 13, 5, tzinfo=UTC)
    four = generate(["BTCUSDT"], "4h", 10, seed=1, start=start)[0].frame
    assert four.height == 60
    assert four["ts"][0] == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert (four["open"][1:] == four["close"][:-1]).all()


def test_regimes_switch_and_persist_for_days() -> None:
    states, drift = regime_path(24 * 730, seed=2)
    assert set(np.unique(states).tolist()) == {UP, DOWN, RANGE}
    changes = np.flatnonzero(np.diff(states)) + 1
    runs = np.diff(np.concatenate([[0], changes, [states.size]]))
    assert runs[:-1].min() >= 24  # min_regime_days = 1
    assert runs.mean() > 48
    assert (drift[states == UP] > 0).all() and (drift[states == DOWN] < 0).all()
    assert (drift[states == RANGE] == 0).all()


def _ema(x: np.ndarray, span: int) -> np.ndarray:
    return pl.Series(x).ewm_mean(span=span, adjust=False).to_numpy()


def test_trends_give_an_ema_crossover_an_edge_after_fees() -> None:
    """Long when EMA(20) > EMA(50) on 1h closes, fees 0.1 % a side, over a year, across seeds."""
    net = []
    for seed in range(8):
        close = generate(["BTCUSDT"], "1h", 365, seed=seed)[0].frame["close"].to_numpy()
        held = (_ema(close, 20) > _ema(close, 50)).astype(float)[:-1]
        trades = np.abs(np.diff(np.concatenate([[0.0], held])))
        net.append(float((held * np.diff(np.log(close)) - trades * FEE).sum()))
    assert np.mean(net) > 0.1, net  # > ~10 % a year on average
    assert sum(n > 0 for n in net) >= 6, net


def test_ranges_mean_revert_and_trends_persist() -> None:
    """Variance ratio of 24h vs 1h returns: < 1 while ranging (reversion), > 1 while trending (drift)."""
    days = 730
    close = generate(["BTCUSDT"], "1h", days, seed=4)[0].frame["close"].to_numpy()
    states, _ = regime_path(24 * days, seed=4)
    r = np.diff(np.log(close))
    blocks = r[: (r.size // 24) * 24].reshape(-1, 24)
    block_state = states[1 : blocks.size + 1].reshape(-1, 24)
    ratios = {}
    for name, wanted in (("range", (RANGE,)), ("trend", (UP, DOWN))):
        pure = np.isin(block_state, wanted).all(axis=1)
        ratios[name] = float((blocks[pure].sum(axis=1) ** 2).mean() / (24 * (blocks[pure] ** 2).mean()))
    assert ratios["range"] < 0.8, ratios
    assert ratios["trend"] > 1.2, ratios


def test_bad_requests_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="unknown timeframe"):
        generate(["BTCUSDT"], "7m", 1, seed=1)
    with pytest.raises(ConfigError, match="shorter than one 1d candle"):
        generate(["BTCUSDT"], "1d", 0.5, seed=1)
    with pytest.raises(ConfigError, match="symbols repeat"):
        generate(["BTCUSDT", "BTCUSDT"], "1h", 1, seed=1)
    with pytest.raises(ConfigError, match="at least one symbol"):
        generate([], "1h", 1, seed=1)
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        generate(["BTCUSDT"], "1h", 1, seed=-1)
    with pytest.raises(ConfigError, match="timezone-aware"):
        generate(["BTCUSDT"], "1h", 1, seed=1, start=datetime(2024, 1, 1))
    with pytest.raises(ConfigError, match="correlation must be in"):
        SyntheticConfig(correlation=1.0)
    with pytest.raises(ConfigError, match="impossible for 3 symbols"):
        generate(["BTCUSDT", "ETHUSDT", "SOLUSDT"], "1h", 1, seed=1, config=SyntheticConfig(correlation=-0.9))
    with pytest.raises(ConfigError, match="alpha \\+ beta < 1"):
        SyntheticConfig(garch_alpha=0.1, garch_beta=0.95)
