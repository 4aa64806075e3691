"""Shared fixtures: where ../shared lives (tests that need it skip cleanly without it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder beside the project; skips the test when it is not there."""
    path = Path(os.environ.get("RAMPART_SHARED_DIR", ROOT.parent / "shared"))
    if not (path / "SPEC.md").is_file():
        pytest.skip(f"../shared not found at {path}")
    return path


@pytest.fixture(scope="session")
def market_data_dir(shared_dir: Path) -> Path:
    """The real Binance candles in ../shared/market-data/binance-spot (skip when absent)."""
    path = shared_dir / "market-data" / "binance-spot"
    if not path.is_dir():
        pytest.skip(f"market data not found at {path}")
    return path


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole run (it costs ~7 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Prefect server (``prefect server start``) for the whole run; see tests/prefect_server.py."""
    from tests.prefect_server import start_prefect_server, stop_prefect_server

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    try:
        yield server
    finally:
        stop_prefect_server(server)


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's public demo key pair as the live credentials."""
    from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET

    monkeypatch.setenv("RAMPART_API_KEY", DEMO_API_KEY)
    monkeypatch.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
