"""Go-live on the evidence (SPEC R1.5–R1.7): ``core.gate.go_live`` over the gate attempts stored for a config hash.

A rehearsal venue keeps the R1.5 rule (the newest attempt passed and is recent, on any data). A real-money venue
needs real market data (recorded candles spanning gate.min_days, or a forward record), judges every standing attempt
at the thresholds in force, and cannot be shopped for: a failure stands until a later attempt on data containing its
window passes, or it expires. The records are built by the gate's own code (evaluate_gate, to_record, Evidence).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.config.gate import GateConfig
from core.gate import Evidence, evaluate_gate, go_live, rejudge
from core.gate.golive import standing
from core.metrics import Metrics
from tests.test_gate import _metrics

HASH = "9c1e3f2a" + "0" * 56
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
JAN = datetime(2024, 1, 1, tzinfo=UTC)


def evidence(kind: str = "replay", days: float = 90.0, start: datetime = JAN, real: bool | None = None,
             venue: str | None = None) -> Evidence:
    return Evidence(kind, real if real is not None else kind != "synthetic",  # type: ignore[arg-type]
                    "BTC_USDT-1h.feather, ETH_USDT-1h.feather" if kind == "replay" else "seed 5",
                    ("BTCUSDT", "ETHUSDT"), start, start + timedelta(days=days), days, "ab" * 32, venue=venue)


def attempt(metrics: Metrics | None = None, ev: Evidence | None = None, age_days: float = 2.0,
            errors: tuple[str, ...] = (), **thresholds: Any) -> dict[str, Any]:
    """A stored attempt as `rampart paper` records it: judged at ``thresholds`` (the settings of that run)."""
    m = metrics or _metrics()
    row = evaluate_gate(m, errors, GateConfig(**thresholds), HASH).to_record("sess", "mean_reversion", m, ev)
    return {**row, "created_at": NOW - timedelta(days=age_days)}


def real(attempts: list[dict[str, Any]], **cfg: Any) -> tuple[bool, str]:
    verdict = go_live(attempts, HASH, NOW, GateConfig(**cfg), real_money=True)
    return verdict.ok, verdict.why


@pytest.mark.req("R1.7")
def test_a_gate_passed_only_on_synthetic_data_is_refused_for_real_money_and_enough_to_rehearse() -> None:
    synthetic = [attempt(_metrics(sharpe=0.2), evidence("synthetic"), age_days=3),  # the shipped seed fails,
                 attempt(ev=evidence("synthetic"), age_days=1)]  # another seed passes for the same hash
    ok, why = real(synthetic)
    assert not ok and why.startswith("GATE_NOT_REAL_DATA:"), why
    assert "passed on 2024-05-31 12:00 UTC on synthetic data" in why and "60 days of recorded candles" in why
    assert "forward record of 7 days" in why
    rehearsal = go_live(synthetic, HASH, NOW, GateConfig(), real_money=False)
    assert rehearsal.ok and rehearsal.why.startswith("GATE_OK:")  # the sandbox may rehearse on it
    legacy = {"config_hash": HASH, "passed": True, "created_at": NOW - timedelta(days=1), "reasons": []}
    ok, why = real([legacy])  # a record from before the evidence was kept proves nothing about its data
    assert not ok and "no evidence recorded" in why


@pytest.mark.req("R1.7")
def test_real_candles_must_span_gate_min_days() -> None:
    ok, why = real([attempt(ev=evidence(days=30.0))])
    assert not ok and "30.0 days of replay data (< gate.min_days 60)" in why
    assert real([attempt(ev=evidence(days=60.0))])[0]
    assert real([attempt(ev=evidence(days=30.0))], min_days=30)[0]  # the setting in force decides
    ok, why = real([attempt(ev=evidence("forward", days=5.0, venue="binance"))])
    assert not ok and "5.0 days of forward data (< gate.forward_min_days 7)" in why
    ok, why = real([attempt(ev=evidence("forward", days=8.0, real=False, venue="sandbox"))])
    assert not ok and "forward on a rehearsal market, not the real one" in why
    assert real([attempt(ev=evidence("forward", days=8.0, venue="binance"))])[0]


@pytest.mark.req("R1.7")
def test_a_gate_passed_only_under_relaxed_thresholds_is_refused_naming_the_check_and_both_thresholds() -> None:
    relaxed = attempt(_metrics(sharpe=0.31), evidence(), min_sharpe=0.2)  # RAMPART_GATE__MIN_SHARPE=0.2 for one run
    assert relaxed["passed"] is True and relaxed["thresholds"]["min_sharpe"] == 0.2
    ok, why = real([relaxed])
    assert not ok and why.startswith("GATE_THRESHOLDS:"), why
    assert "sharpe 0.31 passed at > 0.20 (recorded) but the threshold in force is > 0.50" in why
    assert real([relaxed], min_sharpe=0.2)[0]  # judged at the thresholds in force: relaxed at go-live too, it passes
    judged = rejudge(relaxed, GateConfig())
    assert not judged.passed and judged.reasons == ("SHARPE_TOO_LOW: 0.31 <= 0.50",)
    assert judged.relaxed == (("sharpe", 0.31, 0.2, 0.5),)


@pytest.mark.req("R1.7")
def test_a_failure_on_real_data_cannot_be_answered_by_choosing_other_candles() -> None:
    failed = attempt(_metrics(sharpe=0.31), evidence(start=JAN), age_days=5)
    other_window = attempt(ev=evidence(start=JAN + timedelta(days=120)), age_days=1)
    ok, why = real([failed, other_window])
    assert not ok and why.startswith("GATE_FAILED: 1 of 2 standing attempts on real data"), why
    assert "(1 pass)" in why and "every attempt counts" in why and "SHARPE_TOO_LOW: 0.31 <= 0.50" in why
    assert "1 of 2 attempts for this config passed" in why
    containing = attempt(ev=evidence(start=JAN - timedelta(days=10), days=150), age_days=0.5)
    assert standing([failed, other_window, containing]) == [other_window, containing]
    ok, why = real([failed, other_window, containing])  # a later pass on data that includes the failure's window
    assert ok and why.startswith("GATE_OK: config 9c1e3f2a passed on real data: 2 standing attempt(s)"), why
    earlier_pass = attempt(ev=evidence(start=JAN - timedelta(days=10), days=150), age_days=6)
    assert not real([earlier_pass, failed])[0]  # containing, but older: the newer failure stands


@pytest.mark.req("R1.7")
def test_a_failure_stands_until_it_expires_and_a_pass_expires_alike() -> None:
    failed = attempt(_metrics(win_rate=0.40), evidence(start=JAN), age_days=31)
    passed = attempt(ev=evidence(start=JAN + timedelta(days=120)), age_days=1)
    assert not real([{**failed, "created_at": NOW - timedelta(days=25)}, passed])[0]  # within 30 days it counts
    assert real([failed, passed])[0]  # older than gate.max_age_days: it no longer counts
    ok, why = real([attempt(ev=evidence(), age_days=31)])
    assert not ok and why.startswith("GATE_EXPIRED:") and "gate.max_age_days 30" in why


@pytest.mark.req("R1.5")
@pytest.mark.req("R1.7")
def test_session_errors_and_a_changed_sharpe_period_fail_at_go_live() -> None:
    errored = attempt(ev=evidence(), errors=("DATA_QUALITY BTCUSDT gap",))
    ok, why = real([errored])
    assert not ok and "SESSION_ERROR: 1 error(s) in the session" in why
    hourly = attempt(ev=evidence(), period="1h")
    ok, why = real([hourly])
    assert not ok and "SHARPE_PERIOD: the Sharpe was measured on 1h returns, the gate in force measures 1d" in why


@pytest.mark.req("R1.6")
@pytest.mark.parametrize("real_money", [True, False])
def test_require_forward_needs_a_passed_recent_forward_record(real_money: bool) -> None:
    replay = attempt(ev=evidence(), age_days=3) if real_money else attempt(ev=evidence("synthetic"), age_days=3)
    cfg = GateConfig(require_forward=True)
    refused = go_live([replay], HASH, NOW, cfg, real_money=real_money)
    assert not refused.ok and refused.reasons[-1].startswith("FORWARD_REQUIRED: gate.require_forward is set and "
                                                             "config 9c1e3f2a has no forward record")
    venue = "binance" if real_money else "sandbox"
    failing = attempt(_metrics(trades=12), evidence("forward", days=8.0, venue=venue, real=real_money), age_days=1)
    refused = go_live([replay, failing], HASH, NOW, cfg, real_money=real_money)
    assert not refused.ok and "fails at the thresholds in force: TOO_FEW_TRADES: 12 < 30" in refused.why
    forward = attempt(ev=evidence("forward", days=8.0, venue=venue, real=real_money), age_days=0.5)
    allowed = go_live([replay, failing, forward], HASH, NOW, cfg, real_money=real_money)
    assert allowed.ok and allowed.reasons[-1].startswith("FORWARD_OK:"), allowed.why
    if real_money:  # for real money the forward record must be the real market's
        sandbox_forward = attempt(ev=evidence("forward", days=8.0, venue="sandbox", real=False), age_days=0.2)
        refused = go_live([replay, sandbox_forward], HASH, NOW, cfg, real_money=True)
        assert not refused.ok and "no forward record on the real market" in refused.why
    without = go_live([replay, forward], HASH, NOW, GateConfig(), real_money=real_money)
    assert without.ok and not any(r.startswith("FORWARD") for r in without.reasons)


@pytest.mark.req("R1.7")
def test_attempts_for_other_config_hashes_are_ignored() -> None:
    other = {**attempt(ev=evidence()), "config_hash": "f" * 64}
    ok, why = real([other])
    assert not ok and why.startswith("NO_GATE: no paper validation for config 9c1e3f2a")
