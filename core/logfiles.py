"""Size-rotated append-only files: the active file and, beside it, its numbered parts, oldest first.

``decisions.jsonl`` is appended to until an append finds it at or past its size limit; it is then renamed
``decisions.jsonl.000001`` (the next number after the highest part) and a new active file starts. Numbers only
grow, so the parts sort in the order they were written and a missing number shows a missing file. A rotation is
a rename (atomic) followed by an fsync of the folder, so a crash leaves either the old layout or the new one.

The callers decide who may write at once: the decision log has one writer (its live session), the audit journal
holds a lock around read-the-head + rotate + write (``core.security.audit``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from core.fileio import fsync_dir

log = logging.getLogger("rampart.logfiles")

PART_DIGITS = 6
MIB = 1024 * 1024


def mib(value: float) -> int:
    """A size setting in MiB as bytes (at least 1, so a tiny test limit still means "rotate")."""
    return max(1, int(value * MIB))


def part_path(path: Path, number: int) -> Path:
    """The name of part ``number`` of ``path``: ``decisions.jsonl.000003``."""
    return path.with_name(f"{path.name}.{number:0{PART_DIGITS}d}")


def parts(path: Path) -> list[tuple[int, Path]]:
    """The rotated parts of ``path`` as (number, file), oldest first; other files in the folder are ignored."""
    path = Path(path)
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    prefix = path.name + "."
    found = []
    for name in names:
        suffix = name[len(prefix):] if name.startswith(prefix) else ""
        if suffix.isdigit() and suffix.isascii():
            found.append((int(suffix), path.with_name(name)))
    return sorted(found)


def all_files(path: Path) -> list[Path]:
    """Every file of the log in writing order: the parts, then the active file if it exists."""
    path = Path(path)
    return [p for _, p in parts(path)] + ([path] if path.is_file() else [])


def rotation_due(path: Path, max_bytes: int) -> bool:
    """Whether the active file has reached ``max_bytes`` (a missing file has not)."""
    try:
        return os.stat(path).st_size >= max_bytes
    except FileNotFoundError:
        return False


def rotate(path: Path) -> Path:
    """Rename the active file to the next part number and make the rename durable; returns the part's path.

    Never replaces an existing file: a part that appeared meanwhile (a writer outside the caller's lock) raises
    FileExistsError instead of losing it.
    """
    path = Path(path)
    existing = parts(path)
    target = part_path(path, (existing[-1][0] if existing else 0) + 1)
    os.link(path, target)  # fails if the target exists, where a rename would silently replace it
    os.unlink(path)
    fsync_dir(path.parent)
    return target


def prune(path: Path, keep: int) -> list[Path]:
    """Delete the oldest parts beyond the newest ``keep`` (0 keeps them all); returns what was deleted."""
    if keep <= 0:
        return []
    doomed = [p for _, p in parts(path)][:-keep]
    for old in doomed:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return doomed


class RotatingLog:
    """Append-only text lines at ``path``, rotated at ``max_bytes``, keeping the newest ``keep`` parts (0 = all).

    One writer per file: the rotation is not locked against another process appending at the same time.
    """

    def __init__(self, path: Path, max_bytes: int, keep: int = 0) -> None:
        self.path = Path(path)
        self.max_bytes = max(1, int(max_bytes))
        self.keep = keep

    def write(self, lines: Iterable[str]) -> None:
        """Append ``lines`` (each without its newline) as one write, rotating first if the file is full."""
        text = "".join(line + "\n" for line in lines)
        if not text:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if rotation_due(self.path, self.max_bytes):
            done = rotate(self.path)
            gone = prune(self.path, self.keep)
            log.info("rotated %s to %s%s", self.path, done.name,
                     f"; deleted {', '.join(p.name for p in gone)}" if gone else "")
        with self.path.open("a", encoding="utf-8") as out:
            out.write(text)


__all__ = ["MIB", "RotatingLog", "all_files", "mib", "part_path", "parts", "prune", "rotate", "rotation_due"]
