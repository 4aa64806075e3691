"""The tamper-evident audit journal (R8.5) on a journal written by a real live session on the sandbox, an override
and an emergency stop: what it records, that an untouched journal verifies, and that every kind of tampering —
edit, re-hash, delete, insert, reorder, truncate — is caught by `rampart audit verify` naming the record."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings, load_settings
from core.control.emergency import emergency_stop
from core.control.overrides import apply_override
from core.domain import TradingState
from core.errors import ConfigError
from core.sandbox.config import DEMO_API_KEY, DEMO_API_SECRET
from core.security.audit import (
    KEY_ENV,
    AuditJournal,
    canonical,
    journal_path,
    load_anchors,
    load_audit_key,
    record_hash,
    record_mac,
    verify,
)
from core.store import Store
from core.venue import sandbox_at
from tests.sandbox_rig import BTC, ETH, Rig, by_code, enter, leave, sandbox, settings_for

ROOT = Path(__file__).resolve().parent.parent
K = 7  # the record each tampering test works on


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose journal holds a live session (entry, exit), a refused override and an emergency stop."""
    data = tmp_path_factory.mktemp("recorded")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAMPART_API_KEY", DEMO_API_KEY)
        mp.setenv("RAMPART_API_SECRET", DEMO_API_SECRET)
        mp.delenv(KEY_ENV, raising=False)
        settings = settings_for(data, audit={"anchor_every": 10})
        with sandbox([BTC] * 8, [ETH] * 8) as server:
            rig = Rig(server, settings)
            rig.bar(BTCUSDT=enter(0.04))
            rig.bar()
            rig.bar(BTCUSDT=leave())
            rig.bar()
            rig.stop()
            apply_override(settings, "resume", "not-a-token", "let me in")  # refused: still journalled
            emergency_stop(settings, "audit test", "alice", sandbox_at(server.url))
    return data


@pytest.fixture
def data_dir(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the recorded data dir (journal, key, DuckDB with the anchors)."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    return Path(shutil.copytree(recorded, tmp_path / "data"))


def settings_of(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir)


def records(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal_path(settings_of(data_dir)).read_text().splitlines()]


def cli_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core.cli", "audit", "verify", "--data-dir", str(data_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def api_verify(data_dir: Path) -> Any:
    settings = settings_of(data_dir)
    path = journal_path(settings)
    return verify(path, load_audit_key(settings, create=False), load_anchors(Store(settings.db_path), path))


@pytest.mark.req("R8.5")
@pytest.mark.req("R8.2")
def test_a_live_session_journals_each_credential_use_order_fill_and_state_change_never_a_key(data_dir: Path) -> None:
    settings = settings_of(data_dir)
    path = journal_path(settings)
    text = path.read_text()
    recs = records(data_dir)
    kinds = Counter(r["kind"] for r in recs)
    expected = {"credential_use", "order", "fill", "trade", "event", "session_end", "override", "emergency_stop"}
    assert expected <= set(kinds)
    uses = [r["data"] for r in recs if r["kind"] == "credential_use"]
    assert {u["key_id"] for u in uses} == {"…" + DEMO_API_KEY[-4:]}
    endpoints = {u["endpoint"] for u in uses}
    assert {"fetch_balance", "fetch_open_orders"} <= endpoints
    assert endpoints & {"create_order", "create_order_list"} and endpoints & {"cancel_order", "cancel_replace"}
    assert not endpoints & {"fetch_ohlcv", "fetch_time", "load_markets"}  # public calls use no key
    store = Store(settings.db_path)
    sid = next(r["data"]["session_id"] for r in recs if r["kind"] == "session_end")
    fills = store.query("select fill_id from fills where session_id = ?", [sid])["fill_id"].to_list()
    assert sorted(r["data"]["fill_id"] for r in recs if r["kind"] == "fill") == sorted(fills) and len(fills) == 2
    assert kinds["trade"] == 1
    statuses = [(r["data"]["client_order_id"], r["data"]["status"]) for r in recs if r["kind"] == "order"]
    assert len(statuses) >= 3 and {"filled", "canceled"} <= {s for _, s in statuses}  # every order change
    codes = {r["data"]["code"] for r in recs if r["kind"] == "event"}
    assert {"SESSION_STARTED", "SESSION_STOPPED"} <= codes
    stop = next(r["data"] for r in recs if r["kind"] == "emergency_stop")
    assert stop["who"] == "alice" and stop["key_id"] == "…" + DEMO_API_KEY[-4:]
    override = next(r["data"] for r in recs if r["kind"] == "override")
    assert override["code"] == "OVERRIDE_BAD_TOKEN" and override["accepted"] is False
    # never a credential: not the exchange key or secret, not the audit key
    key_file = settings.data_dir / "audit" / "audit.key"
    audit_key = key_file.read_text()
    for secret in (DEMO_API_KEY, DEMO_API_SECRET, audit_key):
        assert secret not in text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # the head is anchored in DuckDB (the last one at the end) and on the notification channel
    anchors = load_anchors(store, path)
    assert len(anchors) >= 3 and (anchors[-1].seq, anchors[-1].record_hash) == (recs[-1]["seq"], recs[-1]["hash"])
    notes = store.query("select body from notifications where kind = 'audit'")["body"].to_list()
    assert any(any(a.record_hash in body for body in notes) for a in anchors)


@pytest.mark.req("R8.5")
def test_an_untouched_journal_verifies_by_command_and_api(data_dir: Path) -> None:
    result = api_verify(data_dir)
    recs = records(data_dir)
    assert result.ok and result.first_bad_seq is None and result.records == len(recs) > 20
    assert (result.last_seq, result.last_hash) == (recs[-1]["seq"], recs[-1]["hash"])
    proc = cli_verify(data_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(recs)} records intact" in proc.stdout and f"last record {len(recs)}" in proc.stdout


def _lines(data_dir: Path) -> list[str]:
    return journal_path(settings_of(data_dir)).read_text().splitlines()


def _write(data_dir: Path, lines: list[str]) -> None:
    journal_path(settings_of(data_dir)).write_text("".join(line + "\n" for line in lines))


def edit(lines: list[str]) -> None:
    rec = json.loads(lines[K - 1])
    rec["data"]["tampered"] = True
    lines[K - 1] = canonical(rec)


def rehash(lines: list[str]) -> None:  # an attacker who knows the format but not the key
    rec = json.loads(lines[K - 1])
    rec["data"]["tampered"] = True
    rec["hash"] = record_hash(rec["seq"], rec["ts"], rec["kind"], rec["data"], rec["prev"])
    lines[K - 1] = canonical(rec)


def delete(lines: list[str]) -> None:
    del lines[K - 1]


def insert_forged(lines: list[str]) -> None:  # a whole new record K+1, chained properly, MAC'd with a guessed key
    prev = json.loads(lines[K - 1])
    rec = {"seq": K + 1, "ts": prev["ts"], "kind": "order", "data": {"client_order_id": "forged"},
           "prev": prev["hash"]}
    rec["hash"] = record_hash(rec["seq"], rec["ts"], rec["kind"], rec["data"], rec["prev"])
    rec["mac"] = record_mac(b"guessed-key-guessed-key", rec["hash"])
    lines.insert(K, canonical(rec))


def insert_copy(lines: list[str]) -> None:  # a genuine record replayed further down
    lines.insert(K, lines[2])


def reorder(lines: list[str]) -> None:
    lines[K - 1], lines[K] = lines[K], lines[K - 1]


def truncate(lines: list[str]) -> None:
    del lines[-5:]


CASES: list[tuple[Callable[[list[str]], None], Callable[[int], int], Callable[[int], str]]] = [
    (edit, lambda n: K, lambda n: f"record {K} (line {K}) was edited"),
    (rehash, lambda n: K, lambda n: f"record {K} (line {K}) has an invalid MAC"),
    (delete, lambda n: K, lambda n: f"record {K} missing (deleted)"),
    (insert_forged, lambda n: K + 1, lambda n: f"record {K + 1} (line {K + 1}) has an invalid MAC"),
    (insert_copy, lambda n: 3, lambda n: f"record 3 appears again at line {K + 1}"),
    (reorder, lambda n: K + 1, lambda n: f"record {K + 1} at line {K} is out of order"),
    (truncate, lambda n: n - 4, lambda n: f"record {n - 4} missing: anchor at seq {n}"),
]


@pytest.mark.req("R8.5")
@pytest.mark.parametrize(("tamper", "bad_seq", "why"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_kind_of_tampering_is_caught_naming_the_record(
    data_dir: Path, tamper: Callable[[list[str]], None], bad_seq: Callable[[int], int], why: Callable[[int], str]
) -> None:
    lines = _lines(data_dir)
    n = len(lines)
    tamper(lines)
    _write(data_dir, lines)
    result = api_verify(data_dir)
    assert not result.ok and result.first_bad_seq == bad_seq(n)
    assert why(n) in result.why
    proc = cli_verify(data_dir)
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and why(n) in proc.stderr, proc.stderr


@pytest.mark.req("R8.5")
def test_a_rewrite_with_the_key_still_shows_against_the_anchors_and_a_wrong_key_fails_at_once(
    data_dir: Path
) -> None:
    settings = settings_of(data_dir)
    path = journal_path(settings)
    key = load_audit_key(settings, create=False)
    anchors = load_anchors(Store(settings.db_path), path)
    # someone holding the key rebuilds the whole chain with one record changed
    original = records(data_dir)
    path.unlink()
    journal = AuditJournal(path, key)
    for rec in original:
        journal.append(rec["kind"], **({**rec["data"], "tampered": True} if rec["seq"] == K else rec["data"]))
    result = verify(path, key, anchors)
    first_anchor = anchors[0].seq
    assert not result.ok and result.first_bad_seq == first_anchor and "does not match its anchor" in result.why
    assert verify(path, key).ok  # without the anchors the rebuilt chain is self-consistent
    wrong = verify(path, b"another-key-another-key")
    assert not wrong.ok and wrong.first_bad_seq == 1 and "invalid MAC" in wrong.why


@pytest.mark.req("R8.5")
def test_several_processes_append_to_one_journal_without_breaking_the_chain(tmp_path: Path) -> None:
    path, key = tmp_path / "audit" / "audit.jsonl", "k" * 32
    script = ("import sys\nfrom pathlib import Path\nfrom core.security.audit import AuditJournal\n"
              "j = AuditJournal(Path(sys.argv[1]), sys.argv[2])\n"
              "for i in range(60):\n    j.append('override', writer=sys.argv[3], i=i)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), key, f"w{n}"], cwd=ROOT, env=env)
             for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    result = verify(path, key)
    assert result.ok and result.records == result.last_seq == 240
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert Counter(r["data"]["writer"] for r in recs) == {f"w{n}": 60 for n in range(4)}


@pytest.mark.req("R8.5")
def test_a_torn_last_line_is_reported_and_later_appends_keep_chaining(tmp_path: Path) -> None:
    path, key = tmp_path / "a.jsonl", "k" * 32
    journal = AuditJournal(path, key)
    for i in range(3):
        journal.append("order", i=i)
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 4, "ts": "2024-')  # a crash in the middle of a write
    record = journal.append("order", i=4)
    assert record["seq"] == 4 and record["prev"] == json.loads(path.read_text().splitlines()[2])["hash"]
    result = verify(path, key)
    assert not result.ok and result.first_bad_seq == 4 and "line 4" in result.why and "not valid JSON" in result.why


@pytest.mark.req("R8.5")
def test_the_audit_key_comes_from_the_environment_or_the_secrets_dir_and_must_be_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "audit_key").write_text("from-the-secrets-dir-0123456789\n")
    settings = load_settings(data_dir=tmp_path / "d", credentials={"secrets_dir": secrets_dir})
    assert load_audit_key(settings) == b"from-the-secrets-dir-0123456789"
    monkeypatch.setenv(KEY_ENV, "from-the-environment-0123456789")
    assert load_audit_key(settings) == b"from-the-environment-0123456789"
    assert not (tmp_path / "d" / "audit" / "audit.key").exists()  # nothing generated while one is configured
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match="too short"):
        load_audit_key(settings)
    monkeypatch.delenv(KEY_ENV)
    bare = load_settings(data_dir=tmp_path / "e")
    with pytest.raises(ConfigError, match="no audit key"):
        load_audit_key(bare, create=False)
    proc = cli_verify(tmp_path / "e")
    assert proc.returncode == 1 and proc.stderr.startswith("error: no audit key")


@pytest.mark.req("R8.5")
def test_while_the_journal_cannot_be_written_entries_are_halted_and_nothing_is_lost(
    tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = settings_for(tmp_path)
    path = journal_path(settings)
    aside = tmp_path / "journal-aside"
    with sandbox([BTC] * 5, [ETH] * 5) as server:
        rig = Rig(server, settings)
        path.rename(aside)
        path.mkdir()  # the journal's place is taken: every write fails
        rig.bar()
        rig.bar(BTCUSDT=enter(0.04, "entry without an audit trail"))
        assert rig.engine.risk.state is TradingState.SAFE_MODE
        path.rmdir()
        aside.rename(path)  # the disk is back: the held records are written at the next flush
        rig.stop()
    events = rig.events()
    assert by_code(events, "AUDIT_UNAVAILABLE")["severity"].to_list() == ["critical"]
    assert by_code(events, "OBSERVER_FAILED").height >= 1
    refused = by_code(rig.decisions(), "TRADING_STATE")
    assert refused["reason"].to_list() == ["entry without an audit trail"]
    result = api_verify(settings.data_dir)
    codes = {r["data"].get("code") for r in records(settings.data_dir) if r["kind"] == "event"}
    assert result.ok and {"AUDIT_UNAVAILABLE", "STATE_CHANGED", "SESSION_STOPPED"} <= codes
