"""What the Prefect run forms offer and how the runs are named.

Parameter types here give the Prefect UI a real form: choices for the strategy, the timeframe and the exchange,
bounds on the numbers, and no ``null`` branches (a ``str | None`` parameter shows the UI's confusing "Property is
type None"). An empty text means "the configured value"; ``None`` from a Python caller is read the same way.

The strategy is a choice of the built-ins and the strategies found in the strategies folder when the flow was
loaded (``rampart strategies`` lists them), or any other text: ``path/to/file.py:Class``, ``package.module:Class``
or a strategy added to the folder since. Core resolves it and names the valid choices when it matches nothing.

Run names read ``strategy · symbols · date`` (UTC) instead of Prefect's random adjective-animal pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from core.config import load_settings
from core.market.candles import TIMEFRAMES
from core.strategy import BUILTINS, list_strategies


def _none_to(empty: Any) -> Callable[[Any], Any]:
    """A validator that reads a Python caller's ``None`` as the form's "not set" value."""
    return lambda value: empty if value is None else value


def _known_strategies() -> tuple[str, ...]:
    names = list(BUILTINS)
    try:  # the strategies folder of the configuration the flow is loaded with; a broken file hides only itself
        refs, _problems = list_strategies(load_settings().strategy.folder)
    except Exception:  # a bad environment must not stop the flow from loading; the run reports it
        return tuple(names)
    names += [r.label for r in refs if r.label not in names]
    return tuple(names)


KNOWN_STRATEGIES = _known_strategies()
NO_PARAMS: dict[str, Any] = {}  # never mutated: the shared "no parameter overrides" default
NO_FILES: list[str] = []

KnownStrategy = Annotated[Literal[("", *KNOWN_STRATEGIES)], Field(title="A known strategy")]  # type: ignore[valid-type]
OtherStrategy = Annotated[str, Field(title="path/to/file.py:Class, package.module:Class or a name in the folder")]
StrategyChoice = Annotated[KnownStrategy | OtherStrategy, BeforeValidator(_none_to(""))]
TimeframeChoice = Annotated[Literal[("", *TIMEFRAMES)], BeforeValidator(_none_to(""))]  # type: ignore[valid-type]
ExchangeChoice = Annotated[Literal["", "sandbox", "binance-demo", "binance-testnet", "binance"],
                           BeforeValidator(_none_to(""))]
Text = Annotated[str, BeforeValidator(_none_to(""))]
Days = Annotated[float, Field(ge=0, le=3_650), BeforeValidator(_none_to(0))]
Seconds = Annotated[float, Field(ge=0, le=10 * 365 * 86_400), BeforeValidator(_none_to(0))]
Deadline = Annotated[float, Field(ge=0, le=3_600), BeforeValidator(_none_to(0))]  # emergency.deadline_s's bound
Count = Annotated[int, Field(ge=0), BeforeValidator(_none_to(0))]
Params = Annotated[dict[str, Any], BeforeValidator(_none_to({}))]


def unset(value: Any) -> Any:
    """``None`` for a form's "not set" ("" or 0), so the configuration decides."""
    return value or None


def _when() -> datetime:
    from prefect.runtime import flow_run

    start = flow_run.scheduled_start_time
    return datetime.fromtimestamp(start.timestamp(), UTC) if start is not None else datetime.now(UTC)


def _strategy_label(spec: str) -> str:
    """``path/to/momentum.py:Momentum`` -> ``Momentum``; a plain name stays."""
    spec = spec.strip()
    if ":" in spec:
        return spec.rsplit(":", 1)[1]
    return spec.rsplit("/", 1)[-1].removesuffix(".py")


def _configured(param: str, value: Any) -> str:
    if value:
        return str(value)
    try:
        settings = load_settings()
    except Exception:  # a name must never fail a run; the run itself reports bad settings
        return "configured"
    return {"strategy": settings.strategy.name, "symbols": ",".join(settings.market.symbols),
            "exchange": settings.exchange.name}.get(param, "configured")


def strategy_run_name() -> str:
    """``mean_reversion · BTCUSDT,ETHUSDT · 2025-06-01 09:00 UTC`` from the run's parameters."""
    from prefect.runtime import flow_run

    p = flow_run.parameters
    strategy = _strategy_label(_configured("strategy", p.get("strategy")))
    return f"{strategy} · {_configured('symbols', p.get('symbols'))} · {_when():%Y-%m-%d %H:%M} UTC"


def live_run_name() -> str:
    """``sma_cross · BTCUSDT,ETHUSDT · sandbox · 2025-06-01 09:00 UTC``."""
    from prefect.runtime import flow_run

    p = flow_run.parameters
    strategy = _strategy_label(_configured("strategy", p.get("strategy")))
    return (f"{strategy} · {_configured('symbols', p.get('symbols'))} · {_configured('exchange', p.get('exchange'))}"
            f" · {_when():%Y-%m-%d %H:%M} UTC")


def emergency_run_name() -> str:
    from prefect.runtime import flow_run

    return f"EMERGENCY STOP · {_configured('exchange', flow_run.parameters.get('exchange'))} · " \
           f"{_when():%Y-%m-%d %H:%M:%S} UTC"


def dated_run_name(label: str) -> Callable[[], str]:
    """``label · 2025-06-01 09:00 UTC`` (the daily report uses the day it reports on instead)."""
    def name() -> str:
        from prefect.runtime import flow_run

        day = flow_run.parameters.get("date")
        return f"{label} · {day}" if day else f"{label} · {_when():%Y-%m-%d %H:%M} UTC"
    return name
