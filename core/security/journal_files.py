"""The audit journal's files (``core.security.audit``): the writers' lock, the chain's head across the current file
and its numbered parts, and every line of them in chain order for ``verify``.

The current file is renamed to a part by a rotation (``core.logfiles``), so the lock lives on ``<journal>.lock``, a
file never renamed; the parts are never renamed or deleted once written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from core.logfiles import part_path, parts

GENESIS = "0" * 64


@contextlib.contextmanager
def locked(path: Path, *, required: bool = True) -> Iterator[None]:
    """The writers' exclusive lock on ``<journal>.lock`` (a file never renamed, unlike the journal). A reader
    passes ``required=False`` and goes unlocked where it cannot create the lock file (a read-only copy)."""
    fd: int | None = None
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        if required:
            raise
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the lock


def head(path: Path) -> tuple[int, str]:
    """The chain's last readable record: in the active file, else (just rotated, or a crash before the first
    write) in the newest part that has one."""
    for file in [path, *(p for _, p in reversed(parts(path)))]:
        try:
            with open(file, "rb") as fh:
                seq, digest = _tail(fh)
        except FileNotFoundError:
            continue
        if seq:
            return seq, digest
    return 0, GENESIS


def torn(fh: IO[bytes]) -> bool:
    """Whether the file ends in a partial line (a crash mid-write)."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return False
    fh.seek(size - 1)
    return fh.read(1) != b"\n"


def _tail(fh: IO[bytes]) -> tuple[int, str]:
    """(seq, hash) of the last complete, parseable record of one file; (0, GENESIS) when it has none."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return 0, GENESIS
    chunk = 8192
    while True:
        start = max(0, size - chunk)
        fh.seek(start)
        lines = fh.read(size - start).split(b"\n")
        whole = lines if start == 0 else lines[1:]  # the first piece may be the end of a longer line
        for raw in reversed(whole):
            try:
                record = json.loads(raw)
                return int(record["seq"]), str(record["hash"])
            except (ValueError, KeyError, TypeError):
                continue  # torn or garbage: the chain continues from the last readable record; verify flags it
        if start == 0:
            return 0, GENESIS
        chunk *= 4


class JournalFiles:
    """The journal's files in chain order. The parts are never renamed once written; the current file may be, by a
    rotation, so it is opened under the writers' lock together with the listing, and read through that handle."""

    def __init__(self, path: Path) -> None:
        with locked(path, required=False):
            self.parts = parts(path)
            try:
                self.active: IO[bytes] | None = open(path, "rb")  # noqa: SIM115 - closed by __exit__
            except FileNotFoundError:
                self.active = None
        self.names = [p.name for _, p in self.parts] + ([path.name] if self.active else [])
        numbers = {n for n, _ in self.parts}
        self.missing = [part_path(path, n).name for n in range(1, max(numbers, default=0)) if n not in numbers]

    def __len__(self) -> int:
        return len(self.names)

    def __enter__(self) -> JournalFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active is not None:
            self.active.close()

    def lines(self) -> Iterator[tuple[int, str, bytes]]:
        """(position, where, raw line) of every line: ``line 7``, or ``line 7 of audit.jsonl.000002`` when the
        journal has several files."""
        pos, several = 0, len(self.names) > 1
        for index, name in enumerate(self.names):
            owned = index < len(self.parts)
            fh = open(self.parts[index][1], "rb") if owned else self.active  # noqa: SIM115 - closed below
            if fh is None:
                continue
            fh.seek(0)
            try:
                for lineno, raw in enumerate(fh, 1):
                    pos += 1
                    yield pos, f"line {lineno} of {name}" if several else f"line {lineno}", raw.rstrip(b"\n")
            finally:
                if owned:
                    fh.close()

    def where(self, seq: int, after: int) -> str | None:
        """Where record ``seq`` appears after position ``after`` (a second pass, only once something is wrong)."""
        for pos, where, raw in self.lines():
            if pos > after and _seq_of(raw) == seq:
                return where
        return None


def _seq_of(raw: bytes) -> int | None:
    try:
        return int(json.loads(raw)["seq"])
    except (ValueError, KeyError, TypeError):
        return None


__all__ = ["GENESIS", "JournalFiles", "head", "locked", "torn"]
