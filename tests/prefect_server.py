"""A real, persistent-style Prefect server for tests that need one (pauses, schedules, workers).

``prefect_server`` (session-scoped, see conftest) starts ``prefect server start`` on 127.0.0.1 with its own
PREFECT_HOME and SQLite file in a temp folder, waits for /api/health, and stops it at the end.
``server.env`` is the environment a subprocess (worker, ``serve``, the CLI) needs to talk to it;
``server.activate()`` points this process's Prefect client at it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrefectServer:
    url: str  # the API URL, ending in /api
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PREFECT_API_URL": self.url, "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Point this process's Prefect client at the server for the duration."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            yield


def start_prefect_server(tmp: Path, timeout_s: float = 120.0, ui: bool = False) -> PrefectServer:
    """``ui``: serve the Prefect UI too, at the server's root (``url`` without ``/api``)."""
    port = free_port()
    home = tmp / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "true" if ui else "false", "PREFECT_API_URL": "",
           "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
           "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "5"}
    log_path = tmp / "prefect-server.log"
    prefect_bin = str(Path(sys.executable).parent / "prefect")
    proc = subprocess.Popen([prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return PrefectServer(url, home, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_prefect_server(PrefectServer(url, home, proc, log_path))
    raise RuntimeError(f"prefect server did not answer within {timeout_s} s:\n{log_path.read_text()[-3000:]}")


def stop_prefect_server(server: PrefectServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
