"""The gate's verdict (SPEC R1.4, R1.5): judge a session's metrics, and judge a stored record again.

``evaluate_gate`` turns a session's metrics and errors into a verdict with one coded reason per failed check;
``GateVerdict.to_record`` shapes it, with the evidence it was judged on, as the store's ``gate_results`` row;
``rejudge`` judges a stored record's metrics at other thresholds (the ones in force at go-live, R1.7).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.config.gate import GateConfig
from core.metrics import Metrics

if TYPE_CHECKING:
    from core.gate.evidence import Evidence

# Each metric check, the GateConfig field holding its threshold, and how the value must compare with it.
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("win_rate", "min_win_rate", ">"),
    ("sharpe", "min_sharpe", ">"),
    ("max_drawdown", "max_drawdown", "<"),
    ("trades", "min_trades", ">="),
)
THRESHOLD_OF = {name: setting for name, setting, _ in CHECKS}


@dataclass(frozen=True)
class GateCheck:
    """One gate condition: ``value op threshold`` must hold (op is '>', '<', '>=' or '==')."""

    name: str
    value: float
    threshold: float
    op: str
    passed: bool


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision with every check, the coded failure reasons and the config it judged."""

    passed: bool
    checks: tuple[GateCheck, ...]
    reasons: tuple[str, ...]
    config_hash: str
    thresholds: Mapping[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        """How many session errors the verdict counted (the ``errors`` check)."""
        return next((int(c.value) for c in self.checks if c.name == "errors"), 0)

    def to_record(self, session_id: str, strategy: str, metrics: Metrics,
                  evidence: Evidence | None = None) -> dict[str, Any]:
        """The store's ``gate_results`` row, naming the data it was judged on when ``evidence`` is given (R1.7).
        Top-level NaN becomes None; ``metrics`` is JSON-safe."""
        return {
            "id": uuid.uuid4().hex,
            "session_id": session_id,
            "strategy": strategy,
            "passed": self.passed,
            "win_rate": _nan_to_none(metrics.win_rate),
            "sharpe": _nan_to_none(metrics.sharpe),
            "sortino": _nan_to_none(metrics.sortino),
            "max_drawdown": _nan_to_none(metrics.max_drawdown),
            "profit_factor": _nan_to_none(metrics.profit_factor),
            "trades": metrics.trades,
            "thresholds": dict(self.thresholds),
            "reasons": list(self.reasons),
            "metrics": metrics.to_dict(),
            "config_hash": self.config_hash,
            "created_at": datetime.now(UTC),
            "errors": self.errors,
            **(evidence.columns() if evidence is not None else {}),
        }


def _nan_to_none(value: float) -> float | None:
    # inf stays: a DOUBLE column holds it and "no losing trade" must not read as "unknown".
    return None if math.isnan(value) else value


def _pct_pair(value: float, threshold: float) -> tuple[str, str]:
    """Both as percentages with one decimal, or more when one decimal would make them look equal."""
    for digits in (1, 2, 3, 4):
        shown = f"{value * 100:.{digits}f}%", f"{threshold * 100:.{digits}f}%"
        if shown[0] != shown[1] or value == threshold:
            return shown
    return shown


def _num_pair(value: float, threshold: float) -> tuple[str, str]:
    for digits in (2, 3, 4, 6):
        shown = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if shown[0] != shown[1] or value == threshold:
            return shown
    return shown


def _holds(value: float, op: str, threshold: float) -> bool:
    # A NaN compares false with everything, so a metric that could not be measured fails closed.
    if op == ">":
        return value > threshold
    if op == "<":
        return value < threshold
    if op == ">=":
        return value >= threshold
    return value == threshold


def _reason(name: str, value: float, threshold: float) -> str:
    if name == "win_rate":
        return "WIN_RATE_TOO_LOW: {} <= {}".format(*_pct_pair(value, threshold))
    if name == "sharpe":
        return "SHARPE_TOO_LOW: {} <= {}".format(*_num_pair(value, threshold))
    if name == "max_drawdown":
        return "DRAWDOWN_TOO_DEEP: {} >= {}".format(*_pct_pair(value, threshold))
    return f"TOO_FEW_TRADES: {value:g} < {threshold:g}"


def threshold_text(name: str, threshold: float) -> str:
    """'> 45.0%', '> 0.50', '< 15.0%', '>= 30': how a check's threshold reads."""
    op = {n: o for n, _, o in CHECKS}[name]
    if name in ("win_rate", "max_drawdown"):
        return f"{op} {threshold * 100:.1f}%"
    if name == "sharpe":
        return f"{op} {threshold:.2f}"
    return f"{op} {threshold:g}"


def _judge(values: Mapping[str, float], errors: int, cfg: GateConfig) -> tuple[tuple[GateCheck, ...], list[str]]:
    checks: list[GateCheck] = []
    reasons: list[str] = []
    for name, setting, op in CHECKS:
        value, threshold = values[name], float(getattr(cfg, setting))
        if name == "trades":
            threshold = int(threshold)
        ok = _holds(value, op, threshold)
        checks.append(GateCheck(name, value, threshold, op, ok))
        if not ok:
            reasons.append(_reason(name, value, threshold))
    checks.append(GateCheck("errors", errors, 0, "==", errors == 0))
    return tuple(checks), reasons


def evaluate_gate(metrics: Metrics, errors: Sequence[str], cfg: GateConfig, config_hash: str) -> GateVerdict:
    """Pass only if win rate > min, Sharpe > min, drawdown < max, trades >= min and no session error.

    A NaN metric fails its check (comparisons with NaN are false), so the gate fails closed.
    """
    values = {"win_rate": metrics.win_rate, "sharpe": metrics.sharpe, "max_drawdown": metrics.max_drawdown,
              "trades": metrics.trades}
    checks, reasons = _judge(values, len(errors), cfg)
    reasons.extend(f"SESSION_ERROR: {err}" for err in errors)
    return GateVerdict(passed=all(c.passed for c in checks), checks=checks, reasons=tuple(reasons),
                       config_hash=config_hash, thresholds=cfg.model_dump())


@dataclass(frozen=True)
class Rejudged:
    """A stored record judged at other thresholds: the verdict now, and each check that fails now although it
    passed at the thresholds recorded with it (``relaxed``: name, value, recorded threshold, threshold now)."""

    passed: bool
    reasons: tuple[str, ...]
    relaxed: tuple[tuple[str, float, float, float], ...]


def record_errors(record: Mapping[str, Any]) -> int:
    """The session errors a record counted: its ``errors`` column, or (records before it) its SESSION_ERROR reasons."""
    stored = record.get("errors")
    if isinstance(stored, int) and not isinstance(stored, bool):
        return stored
    reasons = record.get("reasons")
    items = reasons if isinstance(reasons, list) else [reasons] if isinstance(reasons, str) else []
    return sum(1 for r in items if str(r).startswith("SESSION_ERROR"))


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def rejudge(record: Mapping[str, Any], cfg: GateConfig) -> Rejudged:
    """Judge a stored gate record's metrics at ``cfg`` (the thresholds in force now). A metric stored as NULL
    fails closed; a Sharpe measured over another return period than ``cfg.period`` cannot be compared and fails."""
    values = {name: _number(record.get(name)) for name, _, _ in CHECKS}
    _, reasons = _judge(values, record_errors(record), cfg)
    stored = record.get("thresholds")
    recorded: Mapping[str, Any] = stored if isinstance(stored, Mapping) else {}
    period = recorded.get("period", cfg.period)
    if period != cfg.period:
        reasons.append(f"SHARPE_PERIOD: the Sharpe was measured on {period} returns, the gate in force measures "
                       f"{cfg.period} (gate.period); run the gate again")
    errors = record_errors(record)
    if errors:
        reasons.append(f"SESSION_ERROR: {errors} error(s) in the session")
    relaxed = []
    for name, setting, op in CHECKS:
        then, now = recorded.get(setting), float(getattr(cfg, setting))
        value = values[name]
        if isinstance(then, int | float) and _holds(value, op, float(then)) and not _holds(value, op, now):
            relaxed.append((name, values[name], float(then), now))
    return Rejudged(not reasons, tuple(reasons), tuple(relaxed))
