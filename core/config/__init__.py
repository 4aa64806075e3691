"""Settings: every number Rampart acts on, validated against SPEC ranges when loaded.

Sources, highest priority first: keyword overrides (the CLI), environment variables ``RAMPART_*`` (nested
with ``__``: ``RAMPART_GATE__MIN_SHARPE=0.8``), a ``.env`` file in the working directory, then the defaults
below. An invalid value stops the load with a ``ConfigError`` naming the variable and the valid range, so
nothing runs on a half-valid configuration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from core.config.alerts import AlertConfig
from core.config.dashboard import DashboardConfig
from core.config.gate import GateConfig
from core.config.logs import LogsConfig
from core.config.notify import NotifyConfig
from core.config.reports import ReportConfig
from core.config.risk import BreakerConfig, RiskLimits
from core.config.scaling import ScalingConfig
from core.config.security import AuditConfig, CredentialsConfig, OperatorConfig
from core.config.values import SymbolList, json_text
from core.config.venue import ExchangeConfig
from core.domain import Instrument
from core.errors import ConfigError
from core.market.candles import TIMEFRAMES

# Binance spot filters (PRICE_FILTER tickSize, LOT_SIZE stepSize, NOTIONAL minNotional) for the symbols Rampart
# knows. Live sessions replace these with the exchange's own values from exchangeInfo.
INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": Instrument("BTCUSDT", tick_size=0.01, lot_step=0.00001, min_notional=5.0),
    "ETHUSDT": Instrument("ETHUSDT", tick_size=0.01, lot_step=0.0001, min_notional=5.0),
    "SOLUSDT": Instrument("SOLUSDT", tick_size=0.01, lot_step=0.001, min_notional=5.0),
    "BNBUSDT": Instrument("BNBUSDT", tick_size=0.01, lot_step=0.001, min_notional=5.0),
}
MAX_SYMBOLS = 2  # R2.2: at most two symbols until scaling approves more


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PaperConfig(_Frozen):
    """The simulated broker: starting cash, fees and the slippage model."""

    starting_cash: float = Field(10_000.0, gt=0, le=1e9, description="USDT at session start")
    taker_fee: float = Field(0.001, ge=0, le=0.01, description="fee rate of market and stop orders (0.1 %)")
    maker_fee: float = Field(0.001, ge=0, le=0.01, description="fee rate of limit orders")
    slippage_bps: float = Field(2.0, ge=0, le=500, description="market/stop fills this many bps worse than the open "
                                "or the stop (the sandbox's own cost is half its 1 bp spread: 0.5)")
    commission: Literal["base", "quote"] = Field("base", description="base: a buy's commission is charged in the coin "
                                                 "received, as Binance does without BNB; quote: in USDT (the shared "
                                                 "benchmark's definition)")
    risk_controls: bool = Field(True, description="apply the live risk controls in paper and backtests, scaled to the "
                                "paper size, so the gate judges the trades live would make (R1.1); false measures the "
                                "bare strategy")


class SizingConfig(_Frozen):
    """How big an entry is. Paper validation measures the strategy at its own full scale (R1 / issue 2)."""

    mode: Literal["risk", "all_in"] = Field("risk", description="risk: SPEC formula; all_in: spend all cash")
    risk_per_trade: float = Field(0.01, gt=0, le=0.05, description="equity fraction lost if the stop is hit")
    exposure_cap: float = Field(1.0, gt=0, le=1.0, description="open notional / equity at most")


class StrategyConfig(_Frozen):
    name: str = Field("mean_reversion", description="a built-in (mean_reversion, trend, sma_cross), "
                      "path/to/file.py:Class, package.module:Class, or the name of a strategy in the strategies folder")
    params: Annotated[dict[str, Any], NoDecode, BeforeValidator(json_text('{"fast": 10}'))] = Field(
        default_factory=dict, description="overrides of the strategy's defaults (JSON)")
    folder: Path = Field(Path("strategies"), description="where your own strategies live: every *.py file in it is "
                         "searched for Strategy classes (rampart strategies lists them)")


class LiveConfig(_Frozen):
    """The live session's loop between bars (``RAMPART_LIVE__*``)."""

    order_poll_s: float = Field(5.0, ge=0, le=3_600, description="R9.6: order and fill state is refreshed at least "
                                "this often between bars (0 = every poll)")
    max_clock_skew_ms: int = Field(1_000, ge=50, le=1_000, description="R9.8: preflight refuses a local clock this "
                                   "far from the exchange's or more (Binance rejects requests 1,000 ms ahead)")
    clock_sync_s: float = Field(300.0, ge=10, le=86_400, description="R9.8: the clock's offset to the exchange is "
                                "measured again this often during a session (a -1021 answer also resynchronises)")
    max_signal_age_s: float = Field(300.0, ge=0, le=86_400 * 7, description="a loop catching up after an outage "
                                    "decides every closed bar, but sends no entry for a bar more than this much "
                                    "older than the newest closed bar (STALE_SIGNAL); exits always go")


class EmergencyConfig(_Frozen):
    """The emergency stop (``RAMPART_EMERGENCY__*``, R6.1)."""

    deadline_s: float = Field(120.0, ge=5, le=3_600, description="the emergency stop retries (honouring the "
                              "exchange's Retry-After) until flat or this many seconds have passed")


class MarketConfig(_Frozen):
    symbols: SymbolList = ("BTCUSDT", "ETHUSDT")
    allowed_symbols: SymbolList = ("BTCUSDT", "ETHUSDT")
    # R5.3: symbols beyond the allow-list, each added by an approved scaling decision (live refuses to start
    # on one without it; see core.scaling.symbols). Each one raises the R2.2 limit of two by one.
    added_symbols: SymbolList = ()
    timeframe: str = "1h"

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        if value not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe '{value}'; use one of {', '.join(TIMEFRAMES)}")
        return value

    @model_validator(mode="after")
    def _allowed(self) -> MarketConfig:
        # Model-level checks: each message starts with the variable it is about (describe_validation keeps it).
        unknown = [s for s in self.added_symbols if s not in INSTRUMENTS or s in self.allowed_symbols]
        if unknown:
            raise ValueError(f"RAMPART_MARKET__ADDED_SYMBOLS: {', '.join(unknown)} unknown or already on the "
                             "allow-list (RAMPART_MARKET__ALLOWED_SYMBOLS)")
        try:
            check_symbols(self.symbols, (*self.allowed_symbols, *self.added_symbols),
                          MAX_SYMBOLS + len(set(self.added_symbols)))
        except ValueError as exc:
            where = " (set by RAMPART_MARKET__ALLOWED_SYMBOLS)" if "allow-list" in str(exc) else ""
            raise ValueError(f"RAMPART_MARKET__SYMBOLS (--symbols): {exc}{where}") from None
        return self


def check_symbols(symbols: tuple[str, ...] | list[str], allowed: tuple[str, ...] | list[str],
                  limit: int = MAX_SYMBOLS) -> None:
    """R2.2: only known, allow-listed symbols, at most two (plus approved additions, R5.3), no duplicates;
    ValueError says which one and why."""
    if not symbols:
        raise ValueError("no symbols given; use e.g. BTCUSDT,ETHUSDT")
    if len(symbols) > limit:
        raise ValueError(f"{len(symbols)} symbols given; at most {limit} may trade (R2.2)")
    for sym in symbols:
        if sym not in INSTRUMENTS:
            raise ValueError(f"unknown symbol '{sym}'; known: {', '.join(INSTRUMENTS)}")
        if sym not in allowed:
            raise ValueError(f"symbol '{sym}' is not on the allow-list ({', '.join(allowed)})")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"duplicate symbol in {', '.join(symbols)}")


class Settings(BaseSettings):
    """All of Rampart's settings. Build with ``load_settings()`` to get readable errors."""

    model_config = SettingsConfigDict(
        env_prefix="RAMPART_", env_nested_delimiter="__", env_file=".env", extra="ignore", frozen=True,
    )

    data_dir: Path = Field(Path("data"), description="runtime files: database, reports, logs")
    paper: PaperConfig = PaperConfig()
    sizing: SizingConfig = SizingConfig()
    gate: GateConfig = GateConfig()
    strategy: StrategyConfig = StrategyConfig()
    market: MarketConfig = MarketConfig()
    risk: RiskLimits = RiskLimits()
    breakers: BreakerConfig = BreakerConfig()
    operators: Annotated[tuple[OperatorConfig, ...], NoDecode, BeforeValidator(json_text(
        '[{"name": "alice", "role": "operator", "token_sha256": "<64 hex>"}]'))] = Field(
        (), description="who may override, by role; tokens hashed (JSON)")
    notify: NotifyConfig = NotifyConfig()
    dashboard: DashboardConfig = DashboardConfig()
    alerts: AlertConfig = AlertConfig()
    reports: ReportConfig = ReportConfig()
    scaling: ScalingConfig = ScalingConfig()
    exchange: ExchangeConfig = ExchangeConfig()
    live: LiveConfig = LiveConfig()
    emergency: EmergencyConfig = EmergencyConfig()
    credentials: CredentialsConfig = CredentialsConfig()
    audit: AuditConfig = AuditConfig()
    logs: LogsConfig = LogsConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _scaling_symbols(self) -> Settings:
        """R5.3: a review may only propose known symbols that are not trading yet."""
        bad = [s for s in self.scaling.candidate_symbols if s not in INSTRUMENTS or s in self.market.allowed_symbols]
        if bad:
            raise ValueError(f"RAMPART_SCALING__CANDIDATE_SYMBOLS: {', '.join(bad)} unknown or already on the "
                             f"allow-list; known: {', '.join(INSTRUMENTS)}")
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "rampart.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


def run_overrides(symbols: str | None = None, strategy: str | None = None, timeframe: str | None = None,
                  params: dict[str, Any] | None = None, data_dir: str | Path | None = None,
                  exchange: str | None = None, exchange_url: str | None = None) -> dict[str, Any]:
    """Settings overrides from a run's options (CLI flags, flow parameters); None leaves the setting alone."""
    market: dict[str, Any] = {}
    if symbols:
        market["symbols"] = symbols
    if timeframe:
        market["timeframe"] = timeframe
    overrides: dict[str, Any] = {"market": market} if market else {}
    if strategy or params:
        overrides["strategy"] = {"params": params or {}, **({"name": strategy} if strategy else {})}
    if data_dir:
        overrides["data_dir"] = data_dir
    venue = {k: v for k, v in (("name", exchange), ("url", exchange_url)) if v is not None}
    if venue:
        overrides["exchange"] = venue
    return overrides


def load_settings(**overrides: Any) -> Settings:
    """Load settings from overrides, environment and .env; ConfigError lists each bad value and what to fix."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe_validation(exc)}") from None
    except SettingsError as exc:  # a section given whole (RAMPART_MARKET=...) that is not JSON
        raise ConfigError(f"invalid settings: {_settings_error(exc)}") from None
    from core.strategy import build_params

    try:  # a ConfigError naming the parameter or the strategy
        build_params(settings.strategy.name, settings.strategy.params,
                     settings.strategy.folder)
    except ConfigError as exc:
        raise ConfigError(f"invalid settings: {_strategy_variable(exc)}: {exc}") from None
    return settings


_FIELD = re.compile(r'field "(\w+)"')


def _settings_error(exc: SettingsError) -> str:
    found = _FIELD.search(str(exc))
    name = f"RAMPART_{found.group(1).upper()}" if found else "a RAMPART_* variable"
    section = Settings.model_fields.get(found.group(1)) if found else None
    parts = list(getattr(section.annotation, "model_fields", {})) if section is not None else []
    part = f"{name}__{parts[0].upper()}=..." if parts else f"{name}__<PART>=..."
    return f"{name}: not valid JSON; set its parts instead (e.g. {part}) or give a JSON object"


SECRET_NAMES = re.compile(r"(?i)key|secret|token|password|passphrase")


def describe_validation(exc: ValidationError) -> str:
    """One line per problem, named as the environment variable that sets it (RAMPART_GATE__MIN_SHARPE). The value
    is shown unless it may be a secret (R8.2): never for an unknown setting or a name that sounds like one."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        name = "RAMPART_" + "__".join(loc).upper() if loc else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parts.append(f"{name}: not a setting; remove it (exchange keys go in RAMPART_API_KEY / "
                         "RAMPART_API_SECRET or the secrets directory, never in settings)")
            continue
        if msg.startswith("RAMPART_"):  # a model-level check that names its own variable
            parts.append(msg)
            continue
        nested = _nested_under_scalar(err, loc)
        if nested:
            parts.append(f"{name}__{nested}: not a setting; {name} takes one value, not parts")
            continue
        shows_value = "got " in msg or bool(SECRET_NAMES.search(name))
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) and not shows_value \
            else ""
        parts.append(f"{name}: {msg}{got}")
    return "; ".join(parts)


def _nested_under_scalar(err: Any, loc: list[str]) -> str:
    """``RAMPART_GATE__MIN_SHARPE__X=1`` arrives as {"x": "1"} for a number: the unknown part's name, else ""."""
    given = err.get("input")
    if not isinstance(given, dict) or not given or not loc:
        return ""
    model: Any = Settings
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel | dict):
        return ""
    if "dict" in str(model):  # e.g. dict[str, Any] behind Annotated/Optional: parts are its keys
        return ""
    return "__".join(str(k).upper() for k in list(given)[:1])


def _strategy_variable(exc: ConfigError) -> str:
    """The variable (and option) a strategy error is about: its parameters, else its name."""
    if "parameter" in str(exc):
        return "RAMPART_STRATEGY__PARAMS (--param)"
    return "RAMPART_STRATEGY__NAME (--strategy)"
