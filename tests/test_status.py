"""`rampart status` and the live summary (issue 18): what runs, what is held, what protects it, the gate."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from core.cli import main
from core.live.session import summary_text
from tests.sandbox_rig import BTC, ETH, Rig, enter, sandbox, settings_for


def status(capsys: pytest.CaptureFixture[str], data_dir: Path, *extra: str) -> str:
    assert main(["status", "--data-dir", str(data_dir), *extra]) == 0
    return capsys.readouterr().out


@pytest.mark.req("R3.1")
@pytest.mark.req("R9.3")
def test_status_during_and_after_a_live_session_and_the_summary_lists_what_stays_open(
        tmp_path: Path, creds: None, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(tmp_path)
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        during = status(capsys, settings.data_dir)
        sid = rig.session.session_id[:8]
        assert f"Running   session {sid}" in during and "state ACTIVE, rung 1" in during
        assert "BTCUSDT 0.004995 @" in during and f"stop {BTC * 0.96:,.2f} for 0.00499" in during
        assert "Gate      may go live: GATE_OK" in during and "Last bar" in during
        report = json.loads(status(capsys, settings.data_dir, "--json"))
        assert report["accounts"]["live"]["positions"]["BTCUSDT"]["stops_working"][0]["qty"] == 0.00499
        stopped = threading.Event()
        stopped.set()
        summary = rig.session.run(stopped)
    text = summary_text(summary)
    assert "stays open on the exchange: BTCUSDT 0.004995 @" in text and f"stop {BTC * 0.96:,.2f} for 0.00499" in text
    after = status(capsys, settings.data_dir)
    assert "Running   no live session" in after and f"live session {sid}" in after and "completed" in after
    assert "BTCUSDT 0.004995" in after  # the position and its stop stay, on the exchange and in the state file
