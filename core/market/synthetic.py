"""A seeded synthetic crypto market to rehearse on: regimes, volatility clustering, correlated symbols.

The log price of each symbol is the sum of two parts driven by correlated fat-tailed shocks:
- a random walk with the regime's drift (trending up / trending down / none while ranging), and
- an Ornstein-Uhlenbeck deviation that carries most of the noise while ranging, so ranges
  mean-revert around a slowly wandering level, and fades out during trends.
Regimes follow a Markov chain on an hourly clock and last days. Volatility is a GARCH(1,1) on
the hourly clock (the only Python loop: one step per hour), scaled per regime and per symbol.
Candles are built at the requested timeframe (timeframes above 1h are rolled up from 1h), with
intrabar highs and lows drawn from the Brownian-bridge extremes of each bar, prices on a 0.01
tick, open = previous close, and lognormal volume that rises with |return| and volatility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.market.candles import TS_DTYPE, CandleSet, symbol_to_ccxt, timeframe_ms
from core.market.resample import resample

UP, DOWN, RANGE = 0, 1, 2
REGIME_NAMES: tuple[str, ...] = ("up", "down", "range")
_HOUR_MS = 3_600_000
_YEAR_MS = 365 * 24 * _HOUR_MS


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the synthetic market; the defaults look like BTC/ETH on Binance in 2024."""

    seed: int | None = None  # the seed argument of generate() wins when both are given
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)  # fixed, so data does not depend on the day it is made
    annual_vol: float = 0.50  # BTC's baseline annualised volatility of log returns
    vol_multipliers: tuple[tuple[str, float], ...] = (("BTC", 1.0), ("ETH", 1.3))  # by base asset
    other_vol_multiplier: float = 1.5
    correlation: float = 0.8  # between every pair of symbols' shocks
    start_prices: tuple[tuple[str, float], ...] = (("BTC", 60_000.0), ("ETH", 3_000.0))
    other_start_price: float = 100.0
    tick: float = 0.01
    t_dof: float = 5.0  # Student-t shocks: fat tails like real returns
    garch_alpha: float = 0.06  # hourly GARCH(1,1): reaction to the last hour's shock
    garch_beta: float = 0.925  # ... and persistence (alpha + beta < 1)
    max_vol_ratio: float = 4.0  # caps GARCH volatility at this multiple of the baseline
    trend_drift_per_day: float = 0.022  # mean |drift| of log price per day in a trend (scaled per symbol)
    trend_mean_days: float = 4.0
    range_mean_days: float = 5.0
    min_regime_days: float = 1.0
    trend_to_range: float = 0.6  # when a trend ends: P(range), else the opposite trend
    range_noise_share: float = 0.85  # share of a ranging bar's variance that mean-reverts
    range_half_life_hours: float = 6.0
    regime_vol: tuple[float, float, float] = (1.0, 1.25, 0.8)  # volatility multiplier: up, down, range
    intrabar_scale: float = 0.7  # wicks: Brownian-bridge extremes with this fraction of the bar's volatility
    volume_quote_per_minute: float = 1_000_000.0  # typical traded value per minute, in quote currency
    volume_noise: float = 0.6  # std of log volume noise
    volume_return_sensitivity: float = 0.5  # log volume added per unit of |shock|
    initial_regime: str | None = None  # "up", "down", "range" or None (drawn from the seed)

    def __post_init__(self) -> None:
        positive = (
            "annual_vol",
            "tick",
            "t_dof",
            "trend_mean_days",
            "range_mean_days",
            "range_half_life_hours",
            "other_start_price",
            "other_vol_multiplier",
            "volume_quote_per_minute",
            "intrabar_scale",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"SyntheticConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.t_dof <= 2:
            raise ConfigError(f"SyntheticConfig.t_dof must be > 2 (finite variance), got {self.t_dof}")
        if not (self.garch_alpha >= 0 and self.garch_beta >= 0 and self.garch_alpha + self.garch_beta < 1):
            raise ConfigError("SyntheticConfig.garch_alpha and garch_beta must be >= 0 with alpha + beta < 1")
        if not -1 < self.correlation < 1:
            raise ConfigError(f"SyntheticConfig.correlation must be in (-1, 1), got {self.correlation}")
        if not (0 <= self.trend_to_range <= 1 and 0 <= self.range_noise_share < 1):
            raise ConfigError(
                "SyntheticConfig.trend_to_range must be in [0, 1] and range_noise_share in [0, 1)"
            )
        if self.min_regime_days < 0 or self.min_regime_days > min(self.trend_mean_days, self.range_mean_days):
            raise ConfigError("SyntheticConfig.min_regime_days must be between 0 and the mean regime lengths")
        if self.initial_regime not in (None, *REGIME_NAMES):
            raise ConfigError(f"SyntheticConfig.initial_regime must be one of {REGIME_NAMES} or None")
        if self.start.tzinfo is None:
            raise ConfigError("SyntheticConfig.start must be timezone-aware (UTC)")


def generate(
    symbols: list[str],
    timeframe: str,
    days: float,
    seed: int,
    start: datetime | None = None,
    config: SyntheticConfig | None = None,
) -> list[CandleSet]:
    """Candles for ``symbols`` over ``days`` from ``start`` (floored to the timeframe).

    Same seed, same data. ``seed`` and ``start`` given here win over ``config.seed``/``config.start``.
    """
    cfg = config or SyntheticConfig()
    tf_ms = timeframe_ms(timeframe)
    _check_symbols(symbols)
    when = start or cfg.start
    if when.tzinfo is None:
        raise ConfigError("start must be timezone-aware (UTC), e.g. datetime(2024, 1, 1, tzinfo=UTC)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    start_ms = int(when.timestamp() * 1000) // tf_ms * tf_ms
    if not math.isfinite(days) or days * 86_400_000 < tf_ms:
        raise ConfigError(f"days={days} is shorter than one {timeframe} candle; ask for more days")
    n_out = int(days * 86_400_000 // tf_ms)
    # Above 1h we simulate hourly candles and roll them up, so the hourly clock stays the finest step.
    bar_ms = min(tf_ms, _HOUR_MS)
    n_bars = n_out * (tf_ms // bar_ms)
    frames = _simulate(symbols, bar_ms, n_bars, start_ms, seed, cfg)
    bar_tf = timeframe if bar_ms == tf_ms else "1h"
    return [
        CandleSet(sym, timeframe, frame if bar_tf == timeframe else resample(frame, bar_tf, timeframe))
        for sym, frame in zip(symbols, frames, strict=True)
    ]


def regime_path(
    n_hours: int, seed: int, config: SyntheticConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The hourly regime (UP/DOWN/RANGE) and signed drift per day that generate() uses for this seed."""
    cfg = config or SyntheticConfig()
    return _regimes(_streams(seed)[0], n_hours, cfg)


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent random streams (regimes, shocks, wicks, volume), so one part never shifts another."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def _check_symbols(symbols: list[str]) -> None:
    if not symbols:
        raise ConfigError("generate() needs at least one symbol, e.g. ['BTCUSDT', 'ETHUSDT']")
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"symbols repeat: {symbols}; list each once")


def _base(symbol: str) -> str:
    try:
        return symbol_to_ccxt(symbol).split("/")[0]
    except ConfigError:
        return symbol.upper()


def _regimes(rng: np.random.Generator, n_hours: int, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Markov regimes lasting days: trend -> range or reversal; range -> a new trend either way."""
    states = np.empty(n_hours, dtype=np.int8)
    drift = np.empty(n_hours, dtype=np.float64)
    state = REGIME_NAMES.index(cfg.initial_regime) if cfg.initial_regime else int(rng.integers(3))
    pos = 0
    while pos < n_hours:
        mean_days = cfg.range_mean_days if state == RANGE else cfg.trend_mean_days
        days = cfg.min_regime_days + rng.exponential(mean_days - cfg.min_regime_days)
        hours = max(1, round(days * 24))
        intensity = rng.uniform(0.5, 1.5)  # trends differ in strength
        sign = {UP: 1.0, DOWN: -1.0, RANGE: 0.0}[state]
        states[pos : pos + hours] = state
        drift[pos : pos + hours] = sign * intensity * cfg.trend_drift_per_day
        pos += hours
        if state == RANGE:
            state = UP if rng.random() < 0.5 else DOWN
        else:
            state = RANGE if rng.random() < cfg.trend_to_range else (DOWN if state == UP else UP)
    return states, drift


def _garch(u_hour: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Hourly volatility relative to the baseline: v_h = (1-a-b) + a*v*u^2 + b*v, capped."""
    a, b = cfg.garch_alpha, cfg.garch_beta
    cap = cfg.max_vol_ratio**2
    out = np.empty(u_hour.size)
    v = 1.0
    for h, u in enumerate(u_hour.tolist()):  # plain floats: ~1 µs a step, one step per hour
        out[h] = v
        v = min(cap, (1 - a - b) + a * v * u * u + b * v)
    return np.sqrt(out)


def _shocks(rng: np.random.Generator, n: int, k: int, cfg: SyntheticConfig) -> np.ndarray:
    """Unit-variance Student-t shocks, shape (n, k), correlated across symbols by Cholesky."""
    corr = np.full((k, k), cfg.correlation)
    np.fill_diagonal(corr, 1.0)
    try:
        chol = np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise ConfigError(f"correlation {cfg.correlation} is impossible for {k} symbols; raise it") from None
    z = rng.standard_t(cfg.t_dof, size=(n, k)) / math.sqrt(cfg.t_dof / (cfg.t_dof - 2))
    return z @ chol.T


def _ou(e: np.ndarray, phi: float) -> np.ndarray:
    """D_t = phi * D_{t-1} + e_t per column, via polars' exponential filter (no Python loop)."""
    alpha = 1.0 - phi
    padded = np.vstack([np.zeros((1, e.shape[1])), e])  # D_0 = e_0 needs a zero start
    cols = [
        pl.Series(padded[:, j]).ewm_mean(alpha=alpha, adjust=False).to_numpy()[1:] for j in range(e.shape[1])
    ]
    return np.column_stack(cols) / alpha


def _simulate(
    symbols: list[str], bar_ms: int, n: int, start_ms: int, seed: int, cfg: SyntheticConfig
) -> list[pl.DataFrame]:
    rng_regime, rng_shock, rng_wick, rng_volume = _streams(seed)
    k = len(symbols)
    per_hour = _HOUR_MS // bar_ms
    n_hours = -(-n // per_hour)
    states, drift_day = _regimes(rng_regime, n_hours, cfg)
    hour = np.arange(n) // per_hour
    state = states[hour]
    share = np.where(state == RANGE, cfg.range_noise_share, 0.0)[:, None]  # mean-reverting share of variance
    z_walk, z_rev = _shocks(rng_shock, n, k, cfg), _shocks(rng_shock, n, k, cfg)
    unit = np.sqrt(1 - share) * z_walk + np.sqrt(share) * z_rev
    # GARCH feeds on the first symbol's hourly shock (the market factor); every symbol shares its clock.
    padded = np.zeros(n_hours * per_hour)
    padded[:n] = unit[:, 0]
    u_hour = padded.reshape(n_hours, per_hour).sum(axis=1) / math.sqrt(per_hour)
    rel_vol = (_garch(u_hour, cfg) * np.asarray(cfg.regime_vol)[states])[hour][:, None]
    mult = np.array([dict(cfg.vol_multipliers).get(_base(s), cfg.other_vol_multiplier) for s in symbols])
    sigma = cfg.annual_vol * math.sqrt(bar_ms / _YEAR_MS) * mult[None, :] * rel_vol  # (n, k) per-bar vol
    drift = (drift_day[hour] * bar_ms / 86_400_000)[:, None] * mult[None, :]
    phi = 0.5 ** (bar_ms / _HOUR_MS / cfg.range_half_life_hours)
    walk = np.cumsum(drift + sigma * np.sqrt(1 - share) * z_walk, axis=0)
    log_path = walk + _ou(sigma * np.sqrt(share) * z_rev, phi)
    prices = dict(cfg.start_prices)
    p0 = np.array([prices.get(_base(s), cfg.other_start_price) for s in symbols])
    ts = pl.Series("ts", start_ms + np.arange(n, dtype=np.int64) * bar_ms).cast(TS_DTYPE)
    return [
        _candles(
            ts,
            p0[j],
            log_path[:, j],
            sigma[:, j],
            np.abs(unit[:, j]),
            rel_vol[:, 0],
            bar_ms,
            cfg,
            rng_wick,
            rng_volume,
        )
        for j in range(k)
    ]


def _candles(
    ts: pl.Series,
    p0: float,
    x: np.ndarray,
    sigma: np.ndarray,
    abs_z: np.ndarray,
    rel_vol: np.ndarray,
    bar_ms: int,
    cfg: SyntheticConfig,
    rng_wick: np.random.Generator,
    rng_volume: np.random.Generator,
) -> pl.DataFrame:
    """OHLCV for one symbol from its log path: bridge-extreme wicks, tick rounding, lognormal volume."""
    n = x.size
    prev = np.concatenate([[0.0], x[:-1]])
    move = x - prev
    var = (cfg.intrabar_scale * sigma) ** 2
    # Extremes of a Brownian bridge from 0 to `move`: M = (b + sqrt(b^2 - 2 var ln U)) / 2, and its mirror.
    up = 0.5 * (move + np.sqrt(move**2 - 2 * var * np.log(rng_wick.random(n))))
    down = 0.5 * (move - np.sqrt(move**2 - 2 * var * np.log(rng_wick.random(n))))
    tick = cfg.tick
    close = np.maximum(_on_tick(p0 * np.exp(x), tick), tick)
    open_ = np.concatenate([_on_tick(np.array([p0]), tick), close[:-1]])
    high = np.maximum.reduce([_on_tick(p0 * np.exp(prev + up), tick), open_, close])
    low = np.maximum(np.minimum.reduce([_on_tick(p0 * np.exp(prev + down), tick), open_, close]), tick)
    base = cfg.volume_quote_per_minute * bar_ms / 60_000 / p0
    noise = cfg.volume_noise * rng_volume.standard_normal(n) - cfg.volume_noise**2 / 2
    # Capped so a fat-tail shock makes a volume spike, not a 10,000x outlier.
    surge = cfg.volume_return_sensitivity * (np.minimum(abs_z, 5.0) - math.sqrt(2 / math.pi))
    volume = np.round(base * rel_vol * np.exp(noise + surge), 5)
    return pl.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})


def _on_tick(price: np.ndarray, tick: float) -> np.ndarray:
    """Round to the tick; the second rounding removes float dust (60000.010000000002 -> 60000.01)."""
    return np.round(np.round(price / tick) * tick, 10)
