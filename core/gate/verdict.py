"""The paper-validation gate (SPEC R1.4, R1.5): judge a paper session's metrics, and decide go-live.

``evaluate_gate`` turns a session's metrics and errors into a verdict with one coded reason per
failed check; ``GateVerdict.to_record`` shapes it as the store's ``gate_results`` row;
``check_go_live`` refuses live trading unless the latest gate record for the *same* strategy
config hash passed and is recent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.config.gate import GateConfig
from core.metrics import Metrics


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

    def to_record(self, session_id: str, strategy: str, metrics: Metrics) -> dict[str, Any]:
        """The store's ``gate_results`` row. Top-level NaN becomes None; ``metrics`` is JSON-safe."""
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


def evaluate_gate(metrics: Metrics, errors: Sequence[str], cfg: GateConfig, config_hash: str) -> GateVerdict:
    """Pass only if win rate > min, Sharpe > min, drawdown < max, trades >= min and no session error.

    A NaN metric fails its check (comparisons with NaN are false), so the gate fails closed.
    """
    m = metrics
    checks = (
        GateCheck("win_rate", m.win_rate, cfg.min_win_rate, ">", m.win_rate > cfg.min_win_rate),
        GateCheck("sharpe", m.sharpe, cfg.min_sharpe, ">", m.sharpe > cfg.min_sharpe),
        GateCheck("max_drawdown", m.max_drawdown, cfg.max_drawdown, "<", m.max_drawdown < cfg.max_drawdown),
        GateCheck("trades", m.trades, cfg.min_trades, ">=", m.trades >= cfg.min_trades),
        GateCheck("errors", len(errors), 0, "==", len(errors) == 0),
    )
    reasons: list[str] = []
    by_name = {c.name: c for c in checks}
    if not by_name["win_rate"].passed:
        reasons.append("WIN_RATE_TOO_LOW: {} <= {}".format(*_pct_pair(metrics.win_rate, cfg.min_win_rate)))
    if not by_name["sharpe"].passed:
        reasons.append("SHARPE_TOO_LOW: {} <= {}".format(*_num_pair(metrics.sharpe, cfg.min_sharpe)))
    if not by_name["max_drawdown"].passed:
        reasons.append(
            "DRAWDOWN_TOO_DEEP: {} >= {}".format(*_pct_pair(metrics.max_drawdown, cfg.max_drawdown))
        )
    if not by_name["trades"].passed:
        reasons.append(f"TOO_FEW_TRADES: {metrics.trades} < {cfg.min_trades}")
    reasons.extend(f"SESSION_ERROR: {err}" for err in errors)
    return GateVerdict(
        passed=all(c.passed for c in checks),
        checks=checks,
        reasons=tuple(reasons),
        config_hash=config_hash,
        thresholds=cfg.model_dump(),
    )


def _reasons_text(reasons: Any) -> str:
    # The store may hand reasons back as a list or as the JSON/text it was saved as.
    if isinstance(reasons, str):
        return reasons
    return "; ".join(str(r) for r in reasons or ())


def _as_utc(moment: datetime) -> datetime:
    # A naive timestamp is UTC by project convention (a DuckDB TIMESTAMP column comes back naive).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_go_live(
    latest: Mapping[str, Any] | None, config_hash: str, now: datetime, cfg: GateConfig
) -> tuple[bool, str]:
    """May live trading start? Only if ``latest`` (the newest gate record) is for ``config_hash``,
    passed, and is at most ``cfg.max_age_days`` old at ``now``. Returns (allowed, coded reason)."""
    short = config_hash[:8]
    if latest is None:
        return False, f"NO_GATE: no paper validation for config {short}; run `rampart paper` first"
    if latest.get("config_hash") != config_hash:
        other = str(latest.get("config_hash"))[:8]
        return False, (
            f"NO_GATE: no paper validation for config {short} (the latest is for config {other}: "
            "the strategy, its code or its parameters changed); run `rampart paper` first"
        )
    created = latest.get("created_at")
    passed = latest.get("passed")
    if not isinstance(created, datetime) or not isinstance(passed, bool):
        return False, (
            f"GATE_INVALID: the gate record for config {short} lacks passed/created_at; "
            "run `rampart paper` again"
        )
    when = _as_utc(created)
    day = when.strftime("%Y-%m-%d %H:%M UTC")
    if not passed:
        why = _reasons_text(latest.get("reasons")) or "no reason recorded"
        return False, f"GATE_FAILED: paper validation for config {short} failed on {day}: {why}"
    age = _as_utc(now) - when
    if age > timedelta(days=cfg.max_age_days):
        return False, (
            f"GATE_EXPIRED: paper validation for config {short} passed on {day}, {age.days} days ago "
            f"(limit {cfg.max_age_days} days); run `rampart paper` again"
        )
    return True, f"GATE_OK: paper validation for config {short} passed on {day} ({age.days} days ago)"
