"""``rampart sandbox`` arguments, and the sandbox served by a separate process that the real ccxt client uses."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.sandbox import DEMO_API_KEY, DEMO_API_SECRET, ccxt_client
from core.sandbox.cli import KEY_ENV, SECRET_ENV, build_config

ROOT = Path(__file__).resolve().parent.parent


def test_keys_come_from_the_environment_else_the_documented_demo_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert dict(build_config().api_keys) == {DEMO_API_KEY: DEMO_API_SECRET}
    monkeypatch.setenv(KEY_ENV, "ops-key")
    monkeypatch.setenv(SECRET_ENV, "ops-secret")
    config = build_config(port=0, speed=120, source="a.feather, b.feather", faults="error5xx=0.1", clock="manual")
    assert dict(config.api_keys) == {"ops-key": "ops-secret"} and "ops-secret" not in repr(config)
    assert config.sources() == ["a.feather", "b.feather"] and config.faults.error5xx == 0.1 and config.manual
    assert config.commission == "base" and build_config(commission="bnb").commission == "bnb"


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"faults": "boom=1"}, "bad fault 'boom=1'"),
    ({"clock": "fast"}, "--clock 'fast'"),
    ({"speed": -1.0}, "--speed must be more than 0"),
    ({"speed": float("nan")}, "--speed must be"),
    ({"days": 1e9}, "--days must be more than 0 and at most 366"),
    ({"port": 70_000}, "--port must be 0 (any free port) to 65535, got 70000"),
    ({"source": " , "}, "--source is empty"),
    ({"commission": "usdt"}, "--commission 'usdt'"),
])
def test_bad_arguments_raise_a_one_line_config_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value) and "\n" not in str(info.value)


def _first_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if selector.select(timeout=0.2):
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    return ""


def test_a_separate_sandbox_process_serves_the_real_ccxt_client_and_stops_on_sigterm() -> None:
    env = {**os.environ, KEY_ENV: "proc-key", SECRET_ENV: "proc-secret"}
    command = [sys.executable, "-m", "core.sandbox", "--port", "0", "--clock", "manual", "--days", "2",
               "--warmup-days", "1"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = _first_line(proc, 60)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert match and int(match.group(1)) > 0, banner
        assert "proc-key" in banner and "proc-secret" not in banner
        client = ccxt_client(match.group(0), "proc-key", "proc-secret", enableRateLimit=False, timeout=5_000)
        assert client.fetch_balance()["USDT"]["free"] == 10_000.0
    finally:
        proc.terminate()
        try:
            _, errors = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, errors = proc.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught: -15 is the clean exit here.
    assert proc.returncode in (0, -15) and "Traceback" not in errors
