"""The scaling ladder, its hard caps, eligibility from DuckDB and new symbols (issue 7), without Prefect.

Stores are real DuckDB files filled with live history (``live_history``: a live session row, hourly equity
marks and a trade every four hours, relative to the review time). The flow on a real Prefect server is in
tests/test_scaling_flow.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.build import config_hash
from core.config import INSTRUMENTS, Settings, load_settings
from core.config.ladder import LADDER, Rung, rung
from core.control.auth import hash_token
from core.control.overrides import apply_override
from core.domain import Signal
from core.errors import ConfigError
from core.risk.engine import EntryApproved, RiskConfig, RiskEngine
from core.scaling.eligibility import BREACH_CODES, evaluate
from core.scaling.symbols import DAY_MS, half_risk_until
from core.state.live import LiveState, load_state
from core.store import Store
from core.venue import sandbox_at

TOKENS = {"viewer": "scaling-view-token", "operator": "scaling-op-token", "admin": "scaling-admin-token"}
OPERATORS = [{"name": {"viewer": "victor", "operator": "alice", "admin": "root"}[role], "role": role,
              "token_sha256": hash_token(tok)} for role, tok in TOKENS.items()]
PROFIT = (3.0, 3.0, 3.0, 3.0, -1.0)  # a trade every 4 h: 80 % winners, +11 USDT per 5 trades
LOSING = (1.0, -3.0, -3.0)


def scaling_settings(data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(data_dir=data_dir, operators=OPERATORS, **overrides)


def live_history(settings: Settings, now: datetime, days: float = 8, pnls: tuple[float, ...] = PROFIT,
                 breach: str | None = None, session_id: str = "hist-live", skip_day: int | None = None,
                 live_evidence: bool = True) -> None:
    """``days`` of live trading up to ``now``: a session row, SESSION_STARTED, hourly equity, a trade every 4 h
    (net P&L cycling through ``pnls``), optionally a breach event two days ago or a day without any mark.
    ``live_evidence`` False: on a rehearsal network (Binance Demo Mode) instead."""
    store = Store(settings.db_path)
    start = now - timedelta(days=days, hours=1)
    store.begin_session({"id": session_id, "mode": "live", "started_at": start, "strategy": "sma_cross",
                         "config_hash": "hist", "symbols": ["BTCUSDT"], "timeframe": "1h",
                         "starting_equity": 10_000.0, "venue": "sandbox" if live_evidence else "binance-demo",
                         "live_evidence": live_evidence})
    store.record_event(kind="session", severity="info", code="SESSION_STARTED", message="live session started at "
                       "rung 1", session_id=session_id, ts=start)
    trades, marks, equity, t, k = [], [], 10_000.0, start, 0
    while t <= now:
        if int((t - start).total_seconds() // 3600) % 4 == 2:
            pnl = pnls[k % len(pnls)]
            k += 1
            equity += pnl
            trades.append({"trade_id": f"t{k}", "symbol": "BTCUSDT", "mode": "live", "exit_time": t,
                           "entry_time": t - timedelta(hours=1), "entry_price": 40_000.0, "qty": 0.01,
                           "exit_price": 40_000.0 + pnl * 100, "fees": 0.8, "gross_pnl": pnl + 0.8, "net_pnl": pnl,
                           "exit_reason": "cue"})
        if skip_day is None or t.date() != (now - timedelta(days=skip_day)).date():
            marks.append({"ts": t, "equity": equity, "cash": equity, "exposure": 0.0})
        t += timedelta(hours=1)
    store.append_many({"trades": pl.DataFrame(trades).with_columns(pl.lit(session_id).alias("session_id")),
                       "equity": pl.DataFrame(marks).with_columns(pl.lit(session_id).alias("session_id"))})
    if breach:
        store.record_event(kind="session", severity="critical", code=breach, message=f"{breach}: limit hit",
                           session_id=session_id, ts=now - timedelta(days=2))


def approved_symbol(settings: Settings, symbol: str, when: datetime) -> None:
    """A recorded new-symbol approval, as the scaling review writes it."""
    Store(settings.db_path).insert_rows("scaling_decisions", [{
        "decision_id": f"review-{symbol}:approved", "ts": when, "kind": "new_symbol", "outcome": "approved",
        "symbol": symbol, "reviewer": "alice", "comment": "liquid enough", "flow_run_id": f"review-{symbol}",
        "justification": {"reasons": []}, "evidence": {}}])


def scaling_change(**kw: Any) -> dict[str, Any]:
    return {"review_id": "r1", "kind": "step_up", "to_rung": 2, "symbol": None, "reviewer": "alice",
            "comment": "a good week", **kw}


# --- R5.1 / R5.5: the ladder is a setting, never above the hard caps -----------------------------------------
@pytest.mark.req("R5.5")
@pytest.mark.req("R5.1")
@pytest.mark.parametrize(("ladder", "needle"), [
    ([[0.001, 0.02], [0.02, 0.04]], "risk per trade 2.00% is above the hard cap 1%"),
    ([[0.001, 0.02], [0.005, 0.15]], "exposure cap 15.00% is above the hard cap 10%"),
    ([[0.002, 0.02], [0.005, 0.04]], "above where live starts"),
    ([[0.001, 0.02], [0.0005, 0.04]], "must step up"),
])
def test_a_ladder_asking_for_more_than_the_hard_caps_is_refused_at_load(
    ladder: list[list[float]], needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMPART_SCALING__LADDER", json.dumps(ladder))
    with pytest.raises(ConfigError) as err:
        load_settings(data_dir=tmp_path)
    assert "RAMPART_SCALING__LADDER" in str(err.value) and needle in str(err.value)
    with pytest.raises(ConfigError, match="RAMPART_SCALING__LADDER"):  # the same through keyword settings
        load_settings(data_dir=tmp_path, scaling={"ladder": [{"risk_per_trade": r, "exposure_cap": e}
                                                             for r, e in ladder]})


@pytest.mark.req("R5.1")
@pytest.mark.req("R2.1")
def test_the_default_ladder_is_the_spec_ladder_and_a_custom_one_within_the_caps_loads(tmp_path: Path) -> None:
    default = load_settings(data_dir=tmp_path).scaling.rungs
    assert [(r.risk_per_trade, r.exposure_cap) for r in default] == [(0.001, 0.02), (0.0025, 0.04), (0.005, 0.06),
                                                                     (0.01, 0.10)]
    assert default == LADDER and rung(0, default) == Rung(0.001, 0.02) and rung(99, default) == Rung(0.01, 0.10)
    custom = load_settings(data_dir=tmp_path, scaling={"ladder": [[0.0005, 0.01], [0.001, 0.02]]}).scaling.rungs
    assert rung(1, custom) == Rung(0.001, 0.02)


@pytest.mark.req("R5.5")
def test_the_hard_caps_hold_where_sizes_are_computed_whatever_the_rung_says() -> None:
    risk = RiskEngine(RiskConfig(allowed_symbols=("BTCUSDT",), instruments=INSTRUMENTS, risk_per_trade=0.05,
                                 exposure_cap=1.0, hard_caps=True))
    wide = Signal.enter("BTCUSDT", 36_000.0, "wide stop")  # 10 % stop: risk alone would allow 50 % of equity
    approved = risk.check_entry(wide, 40_000.0, 10_000.0, 10_000.0, 0.0, ts=0)
    assert isinstance(approved, EntryApproved)
    assert approved.inputs["risk_per_trade"] == 0.01 and approved.inputs["exposure_cap"] == 0.10
    assert approved.qty * 40_000.0 <= 0.10 * 10_000.0 + 1e-9
    risk.set_rung(Rung(0.03, 0.5))  # a rung beyond the caps cannot even be set
    assert (risk.config.risk_per_trade, risk.config.exposure_cap) == (0.01, 0.10)
    tight = risk.check_entry(Signal.enter("BTCUSDT", 39_600.0, "1 % stop"), 40_000.0, 10_000.0, 10_000.0, 0.0, ts=0)
    assert isinstance(tight, EntryApproved) and tight.qty * 400.0 <= 0.01 * 10_000.0 + 1e-9  # loss at stop <= 1 %


# --- R5.3: half risk for a new symbol's first days ---------------------------------------------------------
@pytest.mark.req("R5.3")
def test_a_new_symbol_trades_at_half_risk_for_its_first_days_counted_from_its_first_session() -> None:
    state = LiveState()
    until = half_risk_until(state, ["BTCUSDT", "SOLUSDT"], ("SOLUSDT",), now_ms=1_000, days=7)
    assert until == {"SOLUSDT": 1_000 + 7 * DAY_MS} and state.new_symbols["SOLUSDT"]["first_ms"] == 1_000
    assert half_risk_until(state, ["SOLUSDT"], ("SOLUSDT",), now_ms=5 * DAY_MS, days=7) == until  # a restart keeps it
    risk = RiskEngine(RiskConfig(allowed_symbols=("SOLUSDT",), instruments=INSTRUMENTS, risk_per_trade=0.001,
                                 exposure_cap=0.02, hard_caps=True))
    risk.new_symbols = until
    signal = Signal.enter("SOLUSDT", 180.0, "10 % stop")
    early = risk.check_entry(signal, 200.0, 10_000.0, 10_000.0, 0.0, ts=until["SOLUSDT"] - 1)
    later = risk.check_entry(signal, 200.0, 10_000.0, 10_000.0, 0.0, ts=until["SOLUSDT"])
    assert isinstance(early, EntryApproved) and isinstance(later, EntryApproved)
    assert early.inputs["new_symbol_half_risk"] and not later.inputs["new_symbol_half_risk"]
    assert early.qty == pytest.approx(later.qty / 2, rel=0.01)  # 10 000 x 0.1 % / 20 = 0.5 SOL, then 0.25


# --- R5.2: eligibility from DuckDB -------------------------------------------------------------------------
@pytest.mark.req("R5.2")
@pytest.mark.req("R5.1")
def test_eight_profitable_days_without_breaches_propose_the_next_rung_with_the_evidence(tmp_path: Path) -> None:
    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now)
    review = evaluate(Store(settings.db_path), settings, now)
    assert review.eligible and review.rung == 1 and review.proposal is not None
    prop = review.proposal
    assert (prop.kind, prop.from_rung, prop.to_rung) == ("step_up", 1, 2)
    assert (prop.risk_per_trade, prop.exposure_cap) == (0.0025, 0.04)
    assert "rung 2: risk 0.25% per trade, exposure cap 4%" in review.summary()
    ev = review.evidence
    assert len(ev["daily"]) == 8 and all(d["marks"] > 0 and d["net_pnl"] > 0 for d in ev["daily"][1:-1])
    assert ev["metrics"]["win_rate"] == pytest.approx(0.8, abs=0.05) and ev["breaches"] == []
    assert any("days at rung 1" in r for r in review.reasons) and any("net P&L +" in r for r in review.reasons)


@pytest.mark.req("R5.2")
@pytest.mark.parametrize(("history", "needle"), [
    ({"pnls": LOSING}, "LOSING_WINDOW: net P&L -"),
    *[({"breach": code}, f"RISK_BREACH: 1 in the window ({code} at") for code in BREACH_CODES],
    ({"days": 4}, "NOT_ENOUGH_DAYS: 4.0 days at rung 1"),
    ({"skip_day": 3}, "MISSING_DAYS: no live data on"),
])
def test_a_losing_week_a_breach_too_few_or_broken_days_propose_nothing_and_say_why(
    history: dict[str, Any], needle: str, tmp_path: Path
) -> None:
    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now, **history)
    review = evaluate(Store(settings.db_path), settings, now)
    assert not review.eligible and review.proposal is None
    assert any(r.startswith(needle) for r in review.reasons), review.reasons
    assert review.summary().startswith("Nothing proposed (rung 1): ") and needle in review.summary()


@pytest.mark.req("R5.2")
@pytest.mark.req("R6.4")
def test_days_at_the_rung_count_from_the_last_step_up_and_a_restart_goes_back_to_rung_1(tmp_path: Path) -> None:
    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now, days=12)
    store = Store(settings.db_path)
    store.record_event(kind="session", severity="warning", code="SCALING_APPLIED", message="rung 2",
                       details={"to_rung": 2}, session_id="hist-live", ts=now - timedelta(days=3))
    review = evaluate(store, settings, now)
    assert review.rung == 2 and any(r.startswith("NOT_ENOUGH_DAYS: 3.0 days at rung 2") for r in review.reasons)
    store.record_event(kind="session", severity="info", code="SESSION_STARTED", message="restart",
                       session_id="hist-live", ts=now - timedelta(days=1))
    again = evaluate(store, settings, now)
    assert again.rung == 1 and any(r.startswith("NOT_ENOUGH_DAYS: 1.0 days at rung 1") for r in again.reasons)


# --- R6.3 / R2.5: the approve-scaling override ---------------------------------------------------------------
@pytest.mark.req("R6.3")
@pytest.mark.req("R2.5")
@pytest.mark.req("R6.4")
def test_approve_scaling_needs_an_operator_a_reason_and_a_valid_change_and_is_recorded(tmp_path: Path) -> None:
    settings = scaling_settings(tmp_path)
    viewer = apply_override(settings, "approve-scaling", TOKENS["viewer"], "looks good", scaling=scaling_change())
    assert not viewer.accepted and viewer.code == "OVERRIDE_FORBIDDEN"
    no_reason = apply_override(settings, "approve-scaling", TOKENS["operator"], " ", scaling=scaling_change())
    assert not no_reason.accepted and no_reason.code == "OVERRIDE_NO_REASON"
    for bad, code in ((scaling_change(to_rung=9), "SCALING_BAD_RUNG"), (scaling_change(reviewer=""),
                      "SCALING_NO_REVIEWER"), (None, "SCALING_BAD_CHANGE")):
        refused = apply_override(settings, "approve-scaling", TOKENS["operator"], "a good week", scaling=bad)
        assert not refused.accepted and refused.code == code
    ok = apply_override(settings, "approve-scaling", TOKENS["admin"], "a good week", scaling=scaling_change())
    assert ok.accepted and ok.applied_to == "saved state"
    assert load_state(tmp_path / "live" / "state.json").rung == 0  # no session: a start trades at rung 1 anyway
    rows = Store(settings.db_path).query("select code, details from events where kind = 'override' order by ts")
    accepted = json.loads(rows.filter(pl.col("code") == "OVERRIDE_ACCEPTED")["details"][0])
    assert accepted["who"] == "root" and accepted["reason"] == "a good week" and accepted["scaling"]["to_rung"] == 2
    assert rows.height == 6  # every attempt, refused or accepted, is recorded


@pytest.mark.req("R5.3")
@pytest.mark.req("R2.5")
def test_a_second_new_symbol_within_7_days_is_refused_and_not_proposed(tmp_path: Path) -> None:
    settings = scaling_settings(tmp_path, scaling={"ladder": [[0.001, 0.02]],  # one rung: already at the top
                                                   "candidate_symbols": "SOLUSDT,BNBUSDT"})
    now = datetime.now(UTC)
    live_history(settings, now)
    first = evaluate(Store(settings.db_path), settings, now)
    assert first.proposal is not None and (first.proposal.kind, first.proposal.symbol) == ("new_symbol", "SOLUSDT")
    assert "half risk" in first.proposal.text()
    ok = apply_override(settings, "approve-scaling", TOKENS["operator"], "SOL is liquid",
                        scaling=scaling_change(kind="new_symbol", symbol="SOLUSDT", to_rung=None))
    assert ok.accepted and "SOLUSDT" in load_state(tmp_path / "live" / "state.json").new_symbols
    approved_symbol(settings, "SOLUSDT", now - timedelta(days=2))
    second = apply_override(settings, "approve-scaling", TOKENS["operator"], "BNB too",
                            scaling=scaling_change(kind="new_symbol", symbol="BNBUSDT", to_rung=None))
    assert not second.accepted and second.code == "NEW_SYMBOL_TOO_SOON" and "at most one per 7 days" in second.detail
    review = evaluate(Store(settings.db_path), settings, now)
    assert not review.eligible and any(r.startswith("NEW_SYMBOL_TOO_SOON: SOLUSDT") for r in review.reasons)
    later = evaluate(Store(settings.db_path), settings, now + timedelta(days=6))  # 8 days after SOL's approval
    assert not any(r.startswith("NEW_SYMBOL_TOO_SOON") for r in later.reasons)


@pytest.mark.req("R2.5")
@pytest.mark.req("R5.3")
@pytest.mark.req("R2.2")
def test_live_refuses_an_added_symbol_without_approval_and_trades_an_approved_one_at_half_risk(
    tmp_path: Path, creds: None
) -> None:
    from core.live.session import LiveOptions, PreflightFailed
    from core.node import open_live
    from core.sandbox.config import SandboxConfig
    from core.sandbox.server import SandboxServer
    from tests.sandbox_rig import BTC, STRATEGY, WARMUP_BARS, Rig, enter, path

    settings = load_settings(data_dir=tmp_path, strategy=STRATEGY, market={
        "timeframe": "1m", "symbols": "BTCUSDT,SOLUSDT", "added_symbols": "SOLUSDT"})
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings), "strategy": "sma_cross"})
    sets = [path([BTC] * 6, "BTCUSDT"), path([200.0] * 6, "SOLUSDT")]
    with SandboxServer(SandboxConfig(source=tuple(sets), clock="manual", start=sets[0].frame["ts"][WARMUP_BARS])) \
            as server:
        with pytest.raises(PreflightFailed, match="SYMBOL_NOT_APPROVED: SOLUSDT has no approved new-symbol decision"):
            open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05))
        approved_symbol(settings, "SOLUSDT", datetime.now(UTC))
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.10), SOLUSDT=enter(0.10))
        rig.stop()
    sized = {r["symbol"]: json.loads(r["details"])["sizing"] for r in rig.decisions().iter_rows(named=True)
             if r["kind"] == "order"}
    assert sized["SOLUSDT"]["new_symbol_half_risk"] and not sized["BTCUSDT"]["new_symbol_half_risk"]
    assert sized["SOLUSDT"]["size_multiplier"] == 0.5 and sized["BTCUSDT"]["size_multiplier"] == 1.0
    notional = {s: d["qty"] * d["price"] / d["equity"] for s, d in sized.items()}
    assert notional["BTCUSDT"] == pytest.approx(0.01, rel=0.02)  # 0.1 % risk / 10 % stop
    assert notional["SOLUSDT"] == pytest.approx(0.005, rel=0.02)  # half of it
    assert load_state(tmp_path / "live" / "state.json").new_symbols["SOLUSDT"]["first_ms"] is not None


# --- the CLI refuses before it reaches Prefect -------------------------------------------------------------
@pytest.mark.req("R6.3")
@pytest.mark.req("R2.5")
@pytest.mark.parametrize(("token", "args", "exit_code", "needle"), [
    (TOKENS["operator"], ["--reviewer", "alice", "--comment", "ok"], 2, "give --yes or --no"),
    (TOKENS["operator"], ["--reviewer", "alice", "--yes"], 2, "--comment TEXT"),
    (TOKENS["viewer"], ["--reviewer", "victor", "--yes", "--comment", "ok"], 1, "OVERRIDE_FORBIDDEN"),
    (TOKENS["operator"], ["--reviewer", "root", "--yes", "--comment", "ok"], 1, "REVIEWER_MISMATCH"),
])
def test_rampart_approve_needs_an_answer_a_comment_and_the_reviewers_own_operator_token(
    token: str, args: list[str], exit_code: int, needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    monkeypatch.setenv("RAMPART_OPERATORS", json.dumps(OPERATORS))
    monkeypatch.setenv("RAMPART_OPERATOR_TOKEN", token)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never reached
    assert main(["approve", "0b7e7c9e-0000-4000-8000-000000000000", *args, "--data-dir", str(tmp_path)]) == exit_code
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and token not in err


@pytest.mark.req("R5.4")
def test_rampart_approvals_list_says_clearly_when_prefect_is_not_reachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert main(["approvals", "list", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Prefect API at http://127.0.0.1:9/api" in err and "make serve" in err


# --- concluding a review (what the flow does after the pause), without Prefect ------------------------------
@pytest.mark.req("R2.5")
@pytest.mark.req("R6.3")
@pytest.mark.req("R5.4")
@pytest.mark.parametrize(("answer", "needle"), [
    (("", "fine"), "REVIEWER_MISSING"),
    (("alice", " "), "COMMENT_MISSING"),
    (("victor", "fine"), "REVIEWER_NOT_AUTHORIZED: victor"),  # a viewer
    (("mallory", "fine"), "REVIEWER_NOT_AUTHORIZED: mallory"),  # nobody
])
def test_an_approval_without_an_authorized_reviewer_or_a_comment_is_recorded_as_rejected(
    answer: tuple[str, str], needle: str, tmp_path: Path
) -> None:
    from core.control.approval import Answer, conclude

    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now)
    review = evaluate(Store(settings.db_path), settings, now)
    result = conclude(settings, review, "review-1", Answer(True, *answer), token=TOKENS["operator"])
    assert result.outcome == "rejected" and needle in result.detail and result.applied is None
    [row] = Store(settings.db_path).query("select outcome, justification from scaling_decisions").rows()
    assert row[0] == "rejected" and needle in json.loads(row[1])["detail"]


@pytest.mark.req("R5.2")
@pytest.mark.req("R5.4")
def test_an_approval_is_not_applied_when_a_breach_happened_while_the_review_waited(tmp_path: Path) -> None:
    from core.control.approval import Answer, conclude

    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now)
    review = evaluate(Store(settings.db_path), settings, now)
    assert review.eligible
    Store(settings.db_path).record_event(kind="session", severity="critical", code="DRAWDOWN_DERISK",
                                         message="drawdown 3%", session_id="hist-live", ts=now + timedelta(hours=1))
    result = conclude(settings, review, "review-2", Answer(True, "alice", "looks fine"), token=TOKENS["operator"],
                      now=now + timedelta(hours=2))
    assert result.outcome == "rejected" and "NO_LONGER_ELIGIBLE" in result.detail and "DRAWDOWN_DERISK" in result.detail
    codes = Store(settings.db_path).query("select code from events where kind = 'override'")["code"].to_list()
    assert codes == []  # nothing was applied


@pytest.mark.req("R5.4")
@pytest.mark.req("R2.5")
def test_an_approval_with_no_session_running_is_recorded_with_who_why_and_the_evidence(tmp_path: Path) -> None:
    from core.control.approval import Answer, conclude

    settings, now = scaling_settings(tmp_path), datetime.now(UTC)
    live_history(settings, now)
    review = evaluate(Store(settings.db_path), settings, now)
    result = conclude(settings, review, "review-3", Answer(True, "alice", "a steady week"), token=TOKENS["operator"],
                      now=now)
    assert result.outcome == "approved" and result.detail == "applied to the saved state"
    row = Store(settings.db_path).query("select * from scaling_decisions").row(0, named=True)
    assert (row["reviewer"], row["comment"], row["to_rung"], row["flow_run_id"]) == ("alice", "a steady week", 2,
                                                                                      "review-3")
    assert row["ts"] == now and len(json.loads(row["evidence"])["daily"]) == 8
    assert load_state(tmp_path / "live" / "state.json").rung == 0  # R6.4: nothing to raise until a session runs
