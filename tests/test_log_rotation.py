"""Bounded logs: the audit journal and the decision log rotate by size. The audit chain runs on across its files
(none is ever deleted) and `rampart audit verify` walks them all, catching an edited, deleted or reordered file by
name; the decision log keeps its newest parts (every row is in DuckDB too)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.config import load_settings
from core.logfiles import RotatingLog, all_files, part_path, parts, rotate
from core.monitoring.decision_log import decision_log_path
from core.security.audit import KEY_ENV, AuditJournal, canonical, journal_path, open_journal, verify
from tests.sandbox_rig import BTC, ETH, Rig, enter, leave, sandbox, settings_for

ROOT = Path(__file__).resolve().parent.parent
KEY = "k" * 32
LIMIT = 2_000  # bytes: a record is ~250, so a file holds about eight


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rotated_journal(folder: Path, records: int = 40) -> tuple[Path, AuditJournal]:
    path = folder / "audit" / "audit.jsonl"
    journal = AuditJournal(path, KEY, max_bytes=LIMIT)
    for i in range(records):
        journal.append("order", client_order_id=f"rp-{i}", note="x" * 40)
    return path, journal


def verify_cli(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["audit", "verify", "--data-dir", str(data_dir)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.req("R8.5")
def test_the_journal_rotates_at_its_size_limit_and_the_chain_continues_across_files(tmp_path: Path) -> None:
    path, journal = rotated_journal(tmp_path)
    files = all_files(path)
    assert len(files) >= 4 and files[-1] == path and [n for n, _ in parts(path)] == list(range(1, len(files)))
    record_size = max(len(line) + 1 for f in files for line in f.read_text().splitlines())
    for part in files[:-1]:  # a file is closed by the first append that finds it at the limit
        assert LIMIT <= part.stat().st_size < LIMIT + record_size
    assert path.stat().st_size < LIMIT + record_size
    chain = [r for f in files for r in lines_of(f)]
    assert [r["seq"] for r in chain] == list(range(1, 41))
    for before, after in itertools.pairwise(files):  # each new file's first record links to the last
        assert lines_of(after)[0]["prev"] == lines_of(before)[-1]["hash"]
    assert journal.last() == (40, chain[-1]["hash"])
    result = verify(path, KEY)
    assert result.ok and result.records == result.last_seq == 40 and result.files == len(files)
    assert result.why == f"40 records intact in {len(files)} files"


@pytest.mark.req("R8.5")
def test_a_crash_between_rotation_and_the_next_write_loses_no_link(tmp_path: Path) -> None:
    path, journal = rotated_journal(tmp_path, records=5)
    last = journal.last()
    rotate(path)  # the current file became a part; the process died before writing to a new one
    assert not path.exists() and journal.last() == last
    record = journal.append("order", client_order_id="after-the-crash")
    assert (record["seq"], record["prev"]) == (last[0] + 1, last[1])
    assert verify(path, KEY).ok


@pytest.mark.req("R8.5")
def test_settings_rotate_the_journal_and_the_verify_command_reads_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = load_settings(data_dir=tmp_path, audit={"rotate_mb": LIMIT / 1024 / 1024})
    journal = open_journal(settings)
    assert journal is not None and journal.path == journal_path(settings)
    for i in range(30):
        journal.append("override", who="alice", i=i)
    assert len(parts(journal.path)) >= 2
    code, out, err = verify_cli(tmp_path, capsys)
    assert code == 0 and "30 records intact in" in out and "last record 30" in out, out + err


def _edit_middle(path: Path) -> tuple[int, str]:
    middle = part_path(path, 2)
    lines = middle.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["data"]["note"] = "rewritten"
    lines[1] = canonical(rec)
    middle.write_text("".join(line + "\n" for line in lines))
    return rec["seq"], f"record {rec['seq']} (line 2 of {middle.name}) was edited"


def _delete_middle(path: Path) -> tuple[int, str]:
    middle = part_path(path, 2)
    seqs = [r["seq"] for r in lines_of(middle)]
    middle.unlink()
    return seqs[0], (f"records {seqs[0]}-{seqs[-1]} missing (deleted): record {seqs[0] - 1} is followed by record "
                     f"{seqs[-1] + 1} (line 1 of {part_path(path, 3).name}); file {middle.name} is missing")


def _swap_files(path: Path) -> tuple[int, str]:
    second, third = part_path(path, 2), part_path(path, 3)
    first_of_second, first_of_third = lines_of(second)[0]["seq"], lines_of(third)[0]["seq"]
    aside = path.with_name("aside")
    second.rename(aside)
    third.rename(second)
    aside.rename(third)
    return int(first_of_third), (f"record {first_of_third} at line 1 of {second.name} is out of order: record "
                                 f"{first_of_second} comes after it (line 1 of {third.name})")


def _delete_first(path: Path) -> tuple[int, str]:
    first = part_path(path, 1)
    last_seq = lines_of(first)[-1]["seq"]
    first.unlink()
    return 1, (f"records 1-{last_seq} missing (deleted): the journal starts with record {last_seq + 1} (line 1 of "
               f"{part_path(path, 2).name}); file {first.name} is missing")


TAMPER = {"edit": _edit_middle, "delete": _delete_middle, "reorder": _swap_files, "delete_first": _delete_first}


@pytest.mark.req("R8.5")
@pytest.mark.parametrize("tamper", list(TAMPER))
def test_an_edited_deleted_or_reordered_file_fails_verification_naming_it(
    tamper: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    path, _ = rotated_journal(tmp_path)
    assert len(parts(path)) >= 3
    bad_seq, why = TAMPER[tamper](path)
    result = verify(path, KEY)
    assert not result.ok and result.first_bad_seq == bad_seq and why in result.why, result.why
    code, out, err = verify_cli(tmp_path, capsys)
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 1 and why in lines[0], err


@pytest.mark.req("R8.5")
def test_several_processes_append_through_rotations_without_breaking_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    script = ("import sys\nfrom pathlib import Path\nfrom core.security.audit import AuditJournal\n"
              f"j = AuditJournal(Path(sys.argv[1]), sys.argv[2], max_bytes={LIMIT})\n"
              "for i in range(60):\n    j.append('override', writer=sys.argv[3], i=i)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), KEY, f"w{n}"], cwd=ROOT, env=env)
             for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    result = verify(path, KEY)
    assert result.ok and result.records == result.last_seq == 240 and result.files > 20, result
    writers = Counter(r["data"]["writer"] for f in all_files(path) for r in lines_of(f))
    assert writers == {f"w{n}": 60 for n in range(4)}


@pytest.mark.req("R3.5")
def test_the_decision_log_rotates_and_keeps_its_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "decisions.jsonl"
    log = RotatingLog(path, max_bytes=1_000, keep=2)
    for i in range(60):
        log.write([json.dumps({"decision_id": f"d{i}", "reason": "r" * 60})])
    assert [n for n, _ in parts(path)][-2:] == [n for n, _ in parts(path)] and len(parts(path)) == 2
    newest_first_part = parts(path)[0][0]
    assert newest_first_part > 2  # older parts were deleted, the numbers keep growing
    kept = [r["decision_id"] for f in all_files(path) for r in lines_of(f)]
    assert kept == [f"d{i}" for i in range(60 - len(kept), 60)]  # the newest rows, none torn, in order
    for part in all_files(path)[:-1]:
        assert part.stat().st_size >= 1_000


@pytest.mark.req("R3.5")
@pytest.mark.req("R8.5")
def test_a_live_session_rotates_both_logs_from_the_settings_and_its_journal_verifies(
    tmp_path: Path, creds: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    settings = settings_for(tmp_path, audit={"rotate_mb": 3_000 / 1024 / 1024},
                            logs={"decisions_rotate_mb": 2_000 / 1024 / 1024, "decisions_keep_files": 3})
    with sandbox([BTC] * 8, [ETH] * 8) as server:
        rig = Rig(server, settings)
        rig.bar(BTCUSDT=enter(0.04))
        rig.bar()
        rig.bar(BTCUSDT=leave())
        rig.bar()
        rig.stop()
    decisions = decision_log_path(tmp_path)
    assert 1 <= len(parts(decisions)) <= 3
    assert all(lines_of(f) for f in all_files(decisions))
    journal = journal_path(settings)
    assert len(parts(journal)) >= 2
    code, out, err = verify_cli(tmp_path, capsys)
    assert code == 0 and "records intact in" in out and "anchored at seq" in out, out + err
