"""The strategy API a trader imports, the built-in strategies, and finding a strategy by name or spec.

Write one (docs/strategies.md has the guide and a complete example)::

    from core.strategy import Bar, Params, Signal, Strategy, atr, ema, sma

and run it without touching Rampart: ``rampart paper --strategy path/to/my_strategy.py:MyStrategy`` (or
``package.module:Class``, or a name found in the strategies folder, ``RAMPART_STRATEGY__FOLDER``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.domain import Signal
from core.errors import StrategyError
from core.strategy.bar import Bar
from core.strategy.base import Params, Series, Strategy, StrategyParams, column, params_hash
from core.strategy.indicators import atr, ema, highest, lowest, rolling_std, rsi, sma
from core.strategy.loader import StrategyRef, discover, is_spec, load_spec, source_hash
from core.strategy.mean_reversion import MeanReversion
from core.strategy.sma_cross import SmaCross
from core.strategy.trend import TrendFollower

BUILTINS: dict[str, type[Strategy]] = {s.name: s for s in (TrendFollower, MeanReversion, SmaCross)}
STRATEGIES = BUILTINS  # the name older callers use

__all__ = [
    "BUILTINS", "STRATEGIES", "Bar", "Params", "Series", "Signal", "Strategy", "StrategyParams", "StrategyRef",
    "atr", "build_params", "column", "ema", "highest", "list_strategies", "lowest", "make_strategy", "params_hash",
    "resolve", "rolling_std", "rsi", "sma", "strategy_source_hash",
]


def resolve(spec: str, folder: Path | None = None) -> StrategyRef:
    """The strategy ``spec`` names: a built-in, ``file.py[:Class]``, ``module:Class``, or a strategy found in
    ``folder`` by its ``name`` or class name. StrategyError says what exists when nothing matches."""
    spec = spec.strip()
    if spec in BUILTINS:
        return StrategyRef(spec, BUILTINS[spec], "built-in")
    if is_spec(spec):
        return load_spec(spec, base=None)
    found: list[StrategyRef] = []
    problems: list[str] = []
    if folder is not None:
        found, problems = discover(folder)
        matches = [r for r in found if spec in (r.cls.name, r.cls.__name__)]
        if len(matches) == 1:
            return StrategyRef(spec, matches[0].cls, matches[0].origin)
        if len(matches) > 1:
            raise StrategyError(f"strategy {spec!r} is defined in {len(matches)} files of {folder}: "
                                f"{', '.join(r.origin for r in matches)}; use file.py:Class")
    names = sorted(BUILTINS) + sorted({r.label for r in found})
    hint = f"; {len(problems)} file(s) in {folder} failed to import: {problems[0]}" if problems else ""
    raise StrategyError(f"unknown strategy {spec!r}; use one of: {', '.join(names)}, or path/to/file.py:Class"
                        f"{hint}")


def build_params(spec: str, params: dict[str, Any] | None = None, folder: Path | None = None) -> Params:
    """Validate ``params`` for strategy ``spec``; StrategyError names the parameter, what is wrong, and the valid
    names when one is unknown."""
    cls = resolve(spec, folder).cls
    try:
        return cls.Params(**(params or {}))
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"]) or spec
            msg = str(e["msg"]).removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = f"not a parameter of {spec}; use one of: {', '.join(cls.Params.model_fields)}"
            problems.append(f"{where}: {msg}")
        raise StrategyError(f"strategy '{spec}' parameters invalid: {'; '.join(problems)}") from None


def make_strategy(spec: str, params: Params, folder: Path | None = None) -> Strategy:
    """A fresh strategy instance (one per symbol: each holds its symbol's indicator series)."""
    cls = resolve(spec, folder).cls
    try:
        return cls(params)
    except StrategyError:
        raise
    except Exception as exc:  # the strategy's own __init__/init failed: its author's to fix
        raise StrategyError(f"{cls.__name__} could not be set up: {type(exc).__name__}: {exc}") from exc


def strategy_source_hash(spec: str, folder: Path | None = None) -> str:
    """The hash of the strategy's source code and the modules it imports from its own folder (R10.2)."""
    return source_hash(resolve(spec, folder).cls, folder)


def list_strategies(folder: Path | None = None) -> tuple[list[StrategyRef], list[str]]:
    """The built-ins, then every strategy found in ``folder``; and one line per file that failed to import."""
    refs = [StrategyRef(name, cls, "built-in") for name, cls in BUILTINS.items()]
    problems: list[str] = []
    if folder is not None:
        found, problems = discover(folder)
        refs.extend(found)
    return refs, problems
