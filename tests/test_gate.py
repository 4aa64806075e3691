"""The paper-validation gate (SPEC R1.4, R1.5) and the go-live check on the latest gate record."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core.config.gate import GateConfig
from core.gate import GateVerdict, check_go_live, evaluate_gate
from core.metrics import Metrics

HASH = "3f2a9c1e" + "0" * 56
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _metrics(**changes: Any) -> Metrics:
    """A session that passes the default gate; ``changes`` break one thing at a time."""
    base = Metrics(
        trades=41,
        wins=22,
        losses=19,
        win_rate=22 / 41,
        sharpe=1.23,
        sortino=1.8,
        max_drawdown=0.073,
        profit_factor=1.62,
        expectancy=30.11,
        avg_win=150.0,
        avg_loss=-110.0,
        exposure=0.23,
        time_in_market=0.4,
        fees=123.45,
        net_pnl=1234.56,
        gross_profit=3300.0,
        gross_loss=2065.44,
        starting_equity=10_000.0,
        final_equity=11_234.56,
        return_pct=12.3456,
        periods=60,
        period="1d",
    )
    return dataclasses.replace(base, **changes)


def _gate(metrics: Metrics, errors: tuple[str, ...] = (), **cfg: Any) -> GateVerdict:
    return evaluate_gate(metrics, errors, GateConfig(**cfg), HASH)


@pytest.mark.req("R1.3")
@pytest.mark.req("R1.4")
def test_gate_passes_when_every_threshold_holds() -> None:
    verdict = _gate(_metrics())
    assert verdict.passed and verdict.reasons == ()
    assert [c.name for c in verdict.checks] == ["win_rate", "sharpe", "max_drawdown", "trades", "errors"]
    assert all(c.passed for c in verdict.checks)
    assert verdict.config_hash == HASH


@pytest.mark.req("R1.4")
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"win_rate": 0.412}, "WIN_RATE_TOO_LOW: 41.2% <= 45.0%"),
        ({"sharpe": 0.31}, "SHARPE_TOO_LOW: 0.31 <= 0.50"),
        ({"max_drawdown": 0.173}, "DRAWDOWN_TOO_DEEP: 17.3% >= 15.0%"),
        ({"trades": 12}, "TOO_FEW_TRADES: 12 < 30"),
    ],
)
def test_gate_fails_on_each_threshold_alone(changes: dict[str, Any], reason: str) -> None:
    verdict = _gate(_metrics(**changes))
    assert not verdict.passed
    assert verdict.reasons == (reason,)
    assert [c.name for c in verdict.checks if not c.passed] == [_check_of(reason)]


def _check_of(reason: str) -> str:
    return {"WIN": "win_rate", "SHA": "sharpe", "DRA": "max_drawdown", "TOO": "trades"}[reason[:3]]


@pytest.mark.req("R1.4")
def test_boundary_values_fail_because_the_gate_is_strict() -> None:
    at_limits = _metrics(win_rate=0.45, sharpe=0.5, max_drawdown=0.15, trades=30)
    verdict = _gate(at_limits)
    assert not verdict.passed
    assert verdict.reasons == (
        "WIN_RATE_TOO_LOW: 45.0% <= 45.0%",
        "SHARPE_TOO_LOW: 0.50 <= 0.50",
        "DRAWDOWN_TOO_DEEP: 15.0% >= 15.0%",
    )  # exactly min_trades is enough
    # Just below the limit prints enough digits to show the difference.
    assert _gate(_metrics(win_rate=0.4499)).reasons == ("WIN_RATE_TOO_LOW: 44.99% <= 45.00%",)


@pytest.mark.req("R1.4")
def test_thresholds_are_settings() -> None:
    lenient: dict[str, Any] = {"min_win_rate": 0.4, "min_sharpe": 0.2, "max_drawdown": 0.2, "min_trades": 10}
    assert _gate(_metrics(win_rate=0.412, sharpe=0.31, max_drawdown=0.173, trades=12), **lenient).passed
    assert not _gate(_metrics(), min_trades=42).passed


@pytest.mark.req("R1.5")
def test_any_session_error_fails_the_gate_with_one_reason_each() -> None:
    errors = ("DataQualityError: 1 data-quality problem(s): BTCUSDT gap", "order rejected: -2010")
    verdict = _gate(_metrics(), errors)
    assert not verdict.passed
    assert verdict.reasons == tuple(f"SESSION_ERROR: {e}" for e in errors)
    errors_check = verdict.checks[-1]
    assert (errors_check.name, errors_check.value, errors_check.passed) == ("errors", 2, False)


@pytest.mark.req("R1.4")
def test_nan_metric_fails_closed() -> None:
    assert not _gate(_metrics(sharpe=float("nan"))).passed


@pytest.mark.req("R1.4")
def test_record_holds_values_thresholds_verdict_and_config_hash() -> None:
    m = _metrics(trades=12)
    record = _gate(m).to_record("sess-1", "sma_cross", m)
    assert record["passed"] is False and record["config_hash"] == HASH
    assert (record["session_id"], record["strategy"], record["trades"]) == ("sess-1", "sma_cross", 12)
    assert record["win_rate"] == m.win_rate and record["sharpe"] == 1.23
    assert record["thresholds"]["min_win_rate"] == 0.45 and record["thresholds"]["min_trades"] == 30
    assert record["reasons"] == ["TOO_FEW_TRADES: 12 < 30"]
    assert record["metrics"]["fees"] == 123.45
    assert len(record["id"]) == 32 and record["created_at"].tzinfo is not None
    json.dumps({k: v for k, v in record.items() if k != "created_at"}, allow_nan=False)


@pytest.mark.req("R1.4")
@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("min_win_rate", 1.5, "min_win_rate must be >= 0 and <= 1"),
        ("min_sharpe", -11, "min_sharpe must be >= -10 and <= 10"),
        ("max_drawdown", 0, "max_drawdown must be > 0 and <= 1"),
        ("min_trades", 0, "min_trades must be >= 1 and <= 100000"),
        ("max_age_days", 400, "max_age_days must be >= 1 and <= 365"),
        ("period", "2d", "period must be one of 1h, 4h, 1d, 1w"),
    ],
)
def test_out_of_range_settings_name_the_field_and_range(field: str, value: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        GateConfig(**{field: value})


def _record(**changes: Any) -> dict[str, Any]:
    row = {"config_hash": HASH, "passed": True, "created_at": NOW - timedelta(days=3), "reasons": []}
    return {**row, **changes}


@pytest.mark.req("R1.5")
def test_go_live_refused_without_a_gate_record() -> None:
    ok, reason = check_go_live(None, HASH, NOW, GateConfig())
    assert not ok
    assert reason == "NO_GATE: no paper validation for config 3f2a9c1e; run `rampart paper` first"


@pytest.mark.req("R1.5")
def test_go_live_refused_when_strategy_config_changed() -> None:
    ok, reason = check_go_live(_record(config_hash="b" * 64), HASH, NOW, GateConfig())
    assert not ok and reason.startswith("NO_GATE:") and "bbbbbbbb" in reason


@pytest.mark.req("R1.5")
def test_go_live_refused_when_latest_gate_failed() -> None:
    latest = _record(passed=False, reasons=["SHARPE_TOO_LOW: 0.31 <= 0.50"])
    ok, reason = check_go_live(latest, HASH, NOW, GateConfig())
    assert not ok and reason.startswith("GATE_FAILED:") and "SHARPE_TOO_LOW: 0.31 <= 0.50" in reason


@pytest.mark.req("R1.5")
def test_go_live_refused_when_gate_expired_and_allowed_within_max_age() -> None:
    cfg = GateConfig()
    ok, reason = check_go_live(_record(created_at=NOW - timedelta(days=30, seconds=1)), HASH, NOW, cfg)
    assert not ok and reason.startswith("GATE_EXPIRED:") and "30 days" in reason
    assert check_go_live(_record(created_at=NOW - timedelta(days=30)), HASH, NOW, cfg)[0]
    week = GateConfig(max_age_days=7)
    assert not check_go_live(_record(created_at=NOW - timedelta(days=8)), HASH, NOW, week)[0]


@pytest.mark.req("R1.5")
def test_go_live_allowed_for_a_recent_passed_gate_of_the_same_config() -> None:
    ok, reason = check_go_live(_record(), HASH, NOW, GateConfig())
    assert ok and reason.startswith("GATE_OK:")
    naive = _record(created_at=(NOW - timedelta(days=1)).replace(tzinfo=None))  # DuckDB TIMESTAMP, UTC
    assert check_go_live(naive, HASH, NOW, GateConfig())[0]


@pytest.mark.req("R1.5")
def test_go_live_refused_on_a_malformed_record() -> None:
    ok, reason = check_go_live(_record(passed="yes"), HASH, NOW, GateConfig())
    assert not ok and reason.startswith("GATE_INVALID:")
