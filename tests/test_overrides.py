"""Operator overrides (R6.3): authorized, with a role and a reason; every attempt recorded and notified."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from core.config import Settings, load_settings
from core.config.risk import BreakerConfig
from core.control.auth import hash_token
from core.control.overrides import apply_override
from core.domain import TradingState
from core.live.session import LiveOptions
from core.risk.breakers import CircuitBreakers
from core.state.halt import write_halt
from core.state.live import LiveState, load_state, save_state
from core.store import Store
from core.venue import sandbox_at

TOKENS = {"viewer": "view-token-123", "operator": "op-token-456", "admin": "admin-token-789"}


def settings_with_operators(tmp_path: Path, **kw: object) -> Settings:
    operators = [{"name": f"{role}-person", "role": role, "token_sha256": hash_token(tok)}
                 for role, tok in TOKENS.items()]
    return load_settings(data_dir=tmp_path, operators=operators, **kw)


def events(settings: Settings) -> list[tuple[str, str, dict[str, object]]]:
    rows = Store(settings.db_path).query("select code, severity, details from events where kind = 'override'")
    return [(c, s, json.loads(d)) for c, s, d in rows.rows()]


@pytest.mark.req("R6.3")
@pytest.mark.parametrize(("token", "reason", "code"), [
    (None, "back to work", "OVERRIDE_NO_TOKEN"),
    ("not-a-token", "back to work", "OVERRIDE_BAD_TOKEN"),
    (TOKENS["viewer"], "back to work", "OVERRIDE_FORBIDDEN"),
    (TOKENS["operator"], "   ", "OVERRIDE_NO_REASON"),
])
def test_an_override_without_token_with_a_viewer_token_or_without_reason_is_refused_and_recorded(
    tmp_path: Path, token: str | None, reason: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_with_operators(tmp_path)
    save_state(tmp_path / "live" / "state.json", LiveState(trading_state="SAFE_MODE"))
    with caplog.at_level(logging.WARNING, logger="rampart.notify"):
        result = apply_override(settings, "resume", token, reason)
    assert not result.accepted and result.code == code
    assert load_state(tmp_path / "live" / "state.json").trading_state == "SAFE_MODE"  # nothing changed
    [(stored_code, severity, details)] = events(settings)
    assert stored_code == code and severity == "error" and details["accepted"] is False
    assert "REFUSED" in caplog.text
    assert all(tok not in caplog.text for tok in TOKENS.values())


@pytest.mark.req("R6.3")
@pytest.mark.req("R2.4")
@pytest.mark.req("R6.1")
def test_resume_by_an_operator_clears_safe_mode_and_the_halt_flag_in_the_saved_state(tmp_path: Path) -> None:
    settings = settings_with_operators(tmp_path)
    save_state(tmp_path / "live" / "state.json", LiveState(trading_state="HALTED"))
    write_halt(tmp_path, "flash crash", "oncall")
    result = apply_override(settings, "resume", TOKENS["operator"], "market normal again, checked positions")
    assert result.accepted and result.applied_to == "saved state" and result.who == "operator-person"
    assert load_state(tmp_path / "live" / "state.json").trading_state == "ACTIVE"
    assert not (tmp_path / "live" / "HALT").exists()
    [(code, _, details)] = events(settings)
    assert code == "OVERRIDE_ACCEPTED" and details["reason"] == "market normal again, checked positions"


@pytest.mark.req("R6.3")
@pytest.mark.req("R4.5")
@pytest.mark.req("R6.2")
def test_reset_derisking_and_clear_breaker_in_the_saved_state(tmp_path: Path) -> None:
    settings = settings_with_operators(tmp_path)
    breakers = CircuitBreakers(BreakerConfig(consecutive_losses=1))
    assert breakers.on_trade_closed(-5.0, 1_000) is not None
    save_state(tmp_path / "live" / "state.json",
               LiveState(risk={"derisked": True, "hwm": 10_500.0, "breakers": breakers.to_state()}))
    assert apply_override(settings, "reset-derisk", TOKENS["admin"], "drawdown reviewed").accepted
    refused = apply_override(settings, "clear-breaker", TOKENS["operator"], "reviewed")
    assert not refused.accepted and refused.code == "OVERRIDE_NO_BREAKER"
    assert apply_override(settings, "clear-breaker", TOKENS["operator"], "reviewed",
                          breaker="consecutive_losses").accepted
    risk = load_state(tmp_path / "live" / "state.json").risk
    assert risk["derisked"] is False
    restored = CircuitBreakers.from_state(settings.breakers, risk["breakers"])
    assert restored.blocking(2_000) is None


@pytest.mark.req("R6.3")
@pytest.mark.req("R2.4")
def test_a_running_session_applies_the_resume_on_its_next_poll(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from core.node import open_live
    from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
    from core.sandbox.server import SandboxServer
    from tests.test_live import STRATEGY, market, pass_gate, sandbox_config

    monkeypatch.setenv("RAMPART_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
    settings = settings_with_operators(tmp_path, strategy=STRATEGY, market={"timeframe": "1m"})
    pass_gate(settings)
    save_state(tmp_path / "live" / "state.json", LiveState(trading_state="SAFE_MODE"))
    with SandboxServer(sandbox_config(market())) as server:
        session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.1, max_bars=6))
        assert session.engine is not None and session.engine.risk.state is TradingState.SAFE_MODE
        result = apply_override(settings, "resume", TOKENS["operator"], "loss reviewed, resuming")
        assert result.accepted and result.applied_to == "running session"
        session.run(threading.Event())
    assert session.engine.risk.state is TradingState.ACTIVE
    codes = Store(settings.db_path).query("select code from events where session_id = ?",
                                          [session.session_id])["code"].to_list()
    assert "OVERRIDE_APPLIED" in codes and "STATE_CHANGED" in codes
    assert load_state(tmp_path / "live" / "state.json").trading_state == "ACTIVE"
