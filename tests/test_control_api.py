"""The control API of a running live session: status for viewers, emergency stop and overrides for operators."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from core.live.session import LiveOptions
from core.node import open_live
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.sandbox.server import SandboxServer
from core.state.live import load_state
from core.store import Store
from core.venue import sandbox_at
from tests.test_live import STRATEGY, market, pass_gate, sandbox_config
from tests.test_overrides import TOKENS, settings_with_operators


@pytest.mark.req("R6.1")
@pytest.mark.req("R6.3")
@pytest.mark.req("R6.5")
def test_control_api_refuses_viewers_and_stops_the_session_for_an_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMPART_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
    settings = settings_with_operators(tmp_path, strategy=STRATEGY, market={"timeframe": "1m"})
    pass_gate(settings)
    with SandboxServer(sandbox_config(market())) as server:
        session = open_live(settings, sandbox_at(server.url),
                            LiveOptions(poll_interval_s=0.1, duration_s=60, control_port=0))
        assert session.control is not None
        runner = threading.Thread(target=session.run, args=(threading.Event(),), daemon=True)
        runner.start()
        api = session.control.url

        def call(path: str, token: str | None, **body: object) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.post(f"{api}{path}", json=body, headers=headers, timeout=30)

        status = httpx.get(f"{api}/api/status", headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
        assert status.status_code == 200 and status.json()["state"] == "ACTIVE" and status.json()["rung"] == 1
        assert httpx.get(f"{api}/api/status").status_code == 401
        assert call("/api/emergency-stop", None, reason="x").status_code == 401
        viewer = call("/api/emergency-stop", TOKENS["viewer"], reason="I am only a viewer")
        assert viewer.status_code == 403 and viewer.json()["detail"]["code"] == "OVERRIDE_FORBIDDEN"
        assert call("/api/emergency-stop", TOKENS["operator"], reason="  ").status_code == 422
        stopped = call("/api/emergency-stop", TOKENS["operator"], reason="exchange incident")
        assert stopped.status_code == 200 and stopped.json()["flat"] is True
        runner.join(timeout=30)
        assert not runner.is_alive()
        open_orders = server.client(DEMO_API_KEY, DEMO_API_SECRET).fetch_open_orders("BTC/USDT")
    assert open_orders == [] and load_state(tmp_path / "live" / "state.json").trading_state == "HALTED"
    events = Store(settings.db_path).query("select code, message from events where kind in ('override', 'control')")
    codes = events["code"].to_list()
    assert codes.count("OVERRIDE_NO_TOKEN") == 2 and "OVERRIDE_FORBIDDEN" in codes and "EMERGENCY_STOP" in codes
