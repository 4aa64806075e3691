"""Built-in strategies and the registry that builds one by name from settings."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.errors import ConfigError
from core.strategy.base import Strategy, StrategyParams, params_hash
from core.strategy.mean_reversion import MeanReversion
from core.strategy.sma_cross import SmaCross
from core.strategy.trend import TrendFollower

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (TrendFollower, MeanReversion, SmaCross)}

__all__ = ["STRATEGIES", "Strategy", "StrategyParams", "build_params", "make_strategy", "params_hash"]


def build_params(name: str, params: dict[str, Any] | None = None) -> StrategyParams:
    """Validate ``params`` for strategy ``name``; ConfigError says which parameter is wrong and why."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(f"unknown strategy '{name}'; use one of: {', '.join(sorted(STRATEGIES))}")
    try:
        return cls.Params(**(params or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or name}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"strategy '{name}' parameters invalid: {problems}") from None


def make_strategy(name: str, params: StrategyParams) -> Strategy:
    """A fresh strategy instance (one per symbol: instances hold that symbol's indicator lists)."""
    return STRATEGIES[name](params)
