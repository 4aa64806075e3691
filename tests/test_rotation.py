"""Hot key rotation (R8.3) on the sandbox through the real ccxt client: proven, swapped between requests,
refused when bad, rolled back when refused once in use, and `rampart keys rotate` with and without a session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.build import config_hash
from core.config import Settings, load_settings
from core.live.session import LiveOptions, LiveSession
from core.market import generate
from core.node import open_live
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET, SandboxConfig
from core.sandbox.server import SandboxServer
from core.security.rotation import KeyRotator
from core.store import Store
from core.venue import sandbox_at
from tests.sandbox_rig import Rig, sandbox, settings_for

ROOT = Path(__file__).resolve().parent.parent
STRATEGY: dict[str, Any] = {"name": "sma_cross", "params": {"fast": 3, "slow": 8, "stop_pct": 0.004}}
OLD_KEY, OLD_SECRET = "rotation-old-key-0001", "rotation-old-secret-aaaa"
NEW_KEY, NEW_SECRET = "rotation-new-key-0002", "rotation-new-secret-bbbb"
FLAT = [40_000.0] * 12


def write_secrets(folder: Path, key: str | None = None, secret: str | None = None) -> None:
    """Replace the files the way a secret mount does: each file whole (write aside, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in (("api_key", key), ("api_secret", secret)):
        if value is not None:
            tmp = folder / f".{name}.tmp"
            tmp.write_text(value + "\n")
            os.replace(tmp, folder / name)


def dir_credentials(folder: Path, every: int = 1) -> dict[str, Any]:
    return {"provider": "dir", "secrets_dir": str(folder), "check_every_polls": every}


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def events(session: LiveSession, prefix: str = "KEY_") -> list[dict[str, Any]]:
    engine = session.engine
    assert engine is not None
    return [e for e in engine.result.events if str(e["code"]).startswith(prefix)]


def add_key(server: SandboxServer, key: str, secret: str, account: str) -> None:
    httpx.post(f"{server.url}/sandbox/keys", json={"api_key": key, "secret": secret, "account": account}
               ).raise_for_status()


def revoke_key(server: SandboxServer, key: str) -> None:
    httpx.delete(f"{server.url}/sandbox/keys/{key}").raise_for_status()


# --- under steady traffic, free-running ---------------------------------------------------------------------
def free_running_settings(tmp_path: Path, secrets: Path) -> Settings:
    settings = load_settings(data_dir=tmp_path, strategy=STRATEGY, market={"timeframe": "1m"},
                             credentials=dir_credentials(secrets, every=2),
                             breakers={"consecutive_losses": 50, "slippage_bps": 1000},  # orders keep flowing
                             exchange={"weight_limit": TRAFFIC_WEIGHT})
    Store(settings.db_path).record_gate({"passed": True, "config_hash": config_hash(settings),
                                         "strategy": STRATEGY["name"], "reasons": []})
    return settings


# the traffic below sends as fast as answers come back: more request weight a minute than Binance's 6,000
TRAFFIC_WEIGHT = 200_000


class Traffic(threading.Thread):
    """Signed requests through the session's broker as fast as they come back: balance, open orders and a
    test order (Binance's /order/test: validated and signed like a real one, nothing placed)."""

    def __init__(self, session: LiveSession, pause_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pause_s = pause_s
        self.session, self.halt = session, threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        broker, client = self.session.broker, self.session.client
        calls = [("fetch_balance", client.fetch_balance, ()),
                 ("fetch_open_orders", client.fetch_open_orders, ("BTC/USDT",)),
                 ("test_order", client.create_order, ("BTC/USDT", "market", "buy", 0.001, None, {"test": True}))]
        i = 0
        while not self.halt.is_set():
            what, fn, args = calls[i % len(calls)]
            i += 1
            try:
                broker.call(what, fn, *args)
                self.ok += 1
            except Exception as exc:
                self.failures.append(f"{what}: {exc}")
            self.halt.wait(self.pause_s)


@pytest.mark.req("R8.3")
def test_rotation_under_steady_traffic_fails_no_request_and_trading_goes_on_after_the_old_key_is_revoked(
    tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    write_secrets(secrets, OLD_KEY, OLD_SECRET)
    settings = free_running_settings(tmp_path / "d", secrets)
    sets = generate(["BTCUSDT", "ETHUSDT"], "1m", 0.5, 11)
    config = SandboxConfig(source=tuple(sets), speed=120.0, start=sets[0].frame["ts"][60],
                           api_keys={OLD_KEY: OLD_SECRET}, weight_limit=TRAFFIC_WEIGHT)
    with SandboxServer(config) as server:
        session = open_live(settings, sandbox_at(server.url), LiveOptions(poll_interval_s=0.05, duration_s=400))
        stop = threading.Event()
        runner = threading.Thread(target=session.run, args=(stop,), daemon=True)
        traffic = Traffic(session)
        runner.start()
        traffic.start()
        try:
            wait_until(lambda: session.bars >= 8 and traffic.ok >= 30, 120, "bars and traffic before the rotation")
            add_key(server, NEW_KEY, NEW_SECRET, account=OLD_KEY)  # the overlap: both keys valid
            write_secrets(secrets, NEW_KEY, NEW_SECRET)
            wait_until(lambda: session.credentials is not None and session.credentials.key_id == "…0002", 120,
                       "the session to rotate")
            revoke_key(server, OLD_KEY)
            at_revoke = server.stats()
            bars_at_revoke, ok_at_revoke = session.bars, traffic.ok
            wait_until(lambda: server.stats()["orders_placed"].get(NEW_KEY, 0)
                       > at_revoke["orders_placed"].get(NEW_KEY, 0) and session.bars >= bars_at_revoke + 10
                       and traffic.ok >= ok_at_revoke + 30, 120, "trading on the new key after the revocation")
        finally:
            traffic.halt.set()
            stop.set()
            traffic.join(10)
            runner.join(30)
        stats = server.stats()
    assert traffic.failures == []  # zero failed requests on our side...
    assert stats["auth_failures"] == {} and stats["auth_failure_codes"] == {}  # ...and on the exchange's
    assert list(session.broker.errors) == []
    assert stats["auth_calls"][OLD_KEY] > 0 and stats["auth_calls"][NEW_KEY] > 0
    assert stats["orders_placed"].get(OLD_KEY, 0) > 0  # orders went out under both keys
    rotated = [e for e in events(session) if e["code"] == "KEY_ROTATED"]
    assert len(rotated) == 1 and not [e for e in events(session) if e["code"] == "KEY_ROTATION_REFUSED"]
    assert rotated[0]["details"] == {"old_key_id": "…0001", "new_key_id": "…0002", "trigger": "source changed",
                                     "request_id": None}
    assert session.engine is not None and session.engine.result.errors == []
    stored = Store(settings.db_path).query("select code, message, details from events where code like 'KEY_%'")
    assert stored["code"].to_list() == ["KEY_ROTATED"]
    for text in [*stored["message"], *stored["details"]]:  # key ids only, never a key or a secret
        assert OLD_KEY not in text and NEW_KEY not in text and OLD_SECRET not in text and NEW_SECRET not in text
    note = Store(settings.db_path).query("select kind, title, body from notifications where kind = 'security'")
    assert note["title"].to_list() == ["API key rotated"] and "…0001 -> …0002" in note["body"][0]


# --- bar by bar on the manual-clock sandbox -----------------------------------------------------------------
@pytest.fixture
def demo_secrets(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    write_secrets(folder, DEMO_API_KEY, DEMO_API_SECRET)
    return folder


@pytest.mark.req("R8.3")
def test_a_rotation_to_an_invalid_key_is_refused_and_the_old_key_stays_in_use(
    tmp_path: Path, demo_secrets: Path
) -> None:
    with sandbox(FLAT, [2_000.0] * 12) as server:
        rig = Rig(server, settings_for(tmp_path / "d", credentials=dir_credentials(demo_secrets)))
        rig.bar()
        calls_before = server.stats()["auth_calls"][DEMO_API_KEY]
        write_secrets(demo_secrets, "unknown-key-9999", "whatever-secret-1")  # a key the exchange never issued
        rig.bar()
        rig.bar()  # seen twice: tried, refused
        refused = [e for e in events(rig.session) if e["code"] == "KEY_ROTATION_REFUSED"]
        assert len(refused) == 1
        assert refused[0]["details"]["old_key_id"] == "…-key" and refused[0]["details"]["new_key_id"] == "…9999"
        assert "stays in use" in refused[0]["message"] and "whatever-secret-1" not in refused[0]["message"]
        for _ in range(3):
            rig.bar()  # not retried while the source holds the same refused pair
        assert len([e for e in events(rig.session) if e["code"] == "KEY_ROTATION_REFUSED"]) == 1
        assert rig.session.client.apiKey == DEMO_API_KEY and rig.session.credentials.key_id == "…-key"  # type: ignore[union-attr]
        write_secrets(demo_secrets, DEMO_API_KEY, "wrong-secret-for-demo")  # a wrong signature this time
        rig.bar()
        rig.bar()
        assert len([e for e in events(rig.session) if e["code"] == "KEY_ROTATION_REFUSED"]) == 2
        stats = server.stats()
        assert stats["auth_calls"][DEMO_API_KEY] > calls_before  # the old key kept working all along
        assert set(stats["auth_failures"]) == {"unknown-key-9999", DEMO_API_KEY}  # only the verifications failed
        assert stats["auth_failures"][DEMO_API_KEY] == 1
        rig.stop()
    notes = Store(rig.settings.db_path).query("select title, urgent from notifications where kind = 'security'")
    assert notes["title"].to_list() == ["API key rotation refused"] * 2 and all(notes["urgent"])


@pytest.mark.req("R8.3")
def test_a_half_written_source_is_never_tried_and_the_whole_pair_rotates(tmp_path: Path, demo_secrets: Path) -> None:
    with sandbox(FLAT, [2_000.0] * 12) as server:
        add_key(server, NEW_KEY, NEW_SECRET, account=DEMO_API_KEY)
        rig = Rig(server, settings_for(tmp_path / "d", credentials=dir_credentials(demo_secrets)))
        write_secrets(demo_secrets, key=NEW_KEY)  # the key file first...
        rig.bar()
        write_secrets(demo_secrets, secret=NEW_SECRET)  # ...then the secret, one poll later
        rig.bar()
        rig.bar()
        codes = [e["code"] for e in events(rig.session)]
        assert codes == ["KEY_ROTATED"]
        assert server.stats()["auth_failures"] == {}
        revoke_key(server, DEMO_API_KEY)
        rig.bar()
        assert rig.stop() == "ACTIVE"
        assert rig.session.client.apiKey == NEW_KEY and server.stats()["auth_failures"] == {}


@pytest.mark.req("R8.3")
def test_a_key_refused_once_in_use_is_rolled_back_to_the_old_one(tmp_path: Path, demo_secrets: Path) -> None:
    with sandbox(FLAT, [2_000.0] * 12) as server:
        add_key(server, NEW_KEY, NEW_SECRET, account=DEMO_API_KEY)
        rig = Rig(server, settings_for(tmp_path / "d", credentials=dir_credentials(demo_secrets)))
        broker = rig.session.broker
        swap = broker.swap_credentials

        def swap_then_revoke(key: str, secret: str) -> None:  # the exchange drops the new key right after
            swap(key, secret)
            if key == NEW_KEY:
                revoke_key(server, NEW_KEY)

        broker.swap_credentials = swap_then_revoke  # type: ignore[method-assign]
        write_secrets(demo_secrets, NEW_KEY, NEW_SECRET)
        rig.bar()
        rig.bar()
        refused = [e for e in events(rig.session) if e["code"] == "KEY_ROTATION_REFUSED"]
        assert len(refused) == 1 and "rolled back to key …-key" in refused[0]["message"]
        assert rig.session.client.apiKey == DEMO_API_KEY and rig.session.client.secret == DEMO_API_SECRET
        rig.bar()
        assert rig.stop() == "ACTIVE"


# --- rampart keys rotate --------------------------------------------------------------------------------------
def keys_rotate(settings: Settings, url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", "keys", "rotate", "--sandbox-url", url,
            "--data-dir", str(settings.data_dir), *extra]


def cli_env(secrets: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPART_")}
    return {**env, "PYTHONPATH": str(ROOT), "RAMPART_CREDENTIALS__PROVIDER": "dir",
            "RAMPART_CREDENTIALS__SECRETS_DIR": str(secrets)}


@pytest.mark.req("R8.3")
def test_keys_rotate_asks_the_running_session_which_proves_and_swaps_the_key(
    tmp_path: Path, demo_secrets: Path
) -> None:
    with sandbox(FLAT, [2_000.0] * 40) as server:
        add_key(server, NEW_KEY, NEW_SECRET, account=DEMO_API_KEY)
        # a long check interval: only the command makes this session look at its source
        rig = Rig(server, settings_for(tmp_path / "d", credentials=dir_credentials(demo_secrets, every=1000)))
        write_secrets(demo_secrets, NEW_KEY, NEW_SECRET)
        proc = subprocess.Popen(keys_rotate(rig.settings, server.url, "--wait", "60"), cwd=ROOT,
                                env=cli_env(demo_secrets), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            rig.bar()  # the session's polls pick the request up
            time.sleep(0.1)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.startswith("KEY_ROTATED: API key rotated: …-key -> …0002")
        assert rig.session.client.apiKey == NEW_KEY
        rotated = [e for e in events(rig.session) if e["code"] == "KEY_ROTATED"]
        assert rotated[0]["details"]["trigger"].startswith("rampart keys rotate by ")
        rig.stop()
    for blob in (out, err):
        assert NEW_SECRET not in blob and DEMO_API_SECRET not in blob and NEW_KEY not in blob


@pytest.mark.req("R8.3")
def test_keys_rotate_without_a_session_verifies_and_changes_nothing_and_refuses_a_bad_key(
    tmp_path: Path, demo_secrets: Path
) -> None:
    settings = load_settings(data_dir=tmp_path / "d")
    with SandboxServer(SandboxConfig(clock="manual", synthetic_days=2, warmup_days=1)) as server:
        ok = subprocess.run(keys_rotate(settings, server.url), cwd=ROOT, env=cli_env(demo_secrets),
                            capture_output=True, text=True, timeout=120)
        write_secrets(demo_secrets, DEMO_API_KEY, "not-the-demo-secret")
        bad = subprocess.run(keys_rotate(settings, server.url), cwd=ROOT, env=cli_env(demo_secrets),
                             capture_output=True, text=True, timeout=120)
        shown = subprocess.run([sys.executable, "-m", "core.cli", "keys", "show"], cwd=ROOT,
                               env=cli_env(demo_secrets), capture_output=True, text=True, timeout=120)
        stats = server.stats()
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("KEY_VERIFIED: key …-key verified by a signed read; no live session runs")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines()[-1].startswith("error: KEY_ROTATION_REFUSED: the exchange refused key …-key")
    assert "Signature for this request is not valid" in bad.stderr and "not-the-demo-secret" not in bad.stderr
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"provider dir: secrets directory {demo_secrets}; key …-key"
    assert stats["orders_placed"] == {}  # verified by a read, nothing traded
    assert not (settings.data_dir / "live").exists()  # no session state, no request file
    rows = Store(settings.db_path).query("select kind, code, details from events order by ts")
    assert rows["code"].to_list() == ["KEY_VERIFIED", "KEY_ROTATION_REFUSED"] and set(rows["kind"]) == {"security"}
    assert json.loads(rows["details"][1])["new_key_id"] == "…-key"
    notes = Store(settings.db_path).query("select title from notifications")
    assert notes["title"].to_list() == ["API key rotation refused"]


@pytest.mark.req("R8.3")
def test_every_live_session_watches_its_credentials_source(tmp_path: Path, demo_secrets: Path) -> None:
    with sandbox(FLAT, [2_000.0] * 12) as server:
        rig = Rig(server, settings_for(tmp_path / "d", credentials=dir_credentials(demo_secrets, every=7)))
        rotators = [o for o in rig.session.observers if isinstance(o, KeyRotator)]
        assert len(rotators) == 1 and rotators[0].every == 7
        assert rotators[0].provider.describe() == f"secrets directory {demo_secrets}"
        rig.stop()
