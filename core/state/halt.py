"""The HALT flag (``data_dir/live/HALT``): once written by an emergency stop, no Rampart process sends an order.

It is a file so that every process on the data directory sees it: the live session checks it before every order
and at every poll, and an operator's resume removes it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.fileio import fsync_dir


def halt_path(data_dir: Path) -> Path:
    return Path(data_dir) / "live" / "HALT"


def write_halt(data_dir: Path, reason: str, who: str, requested_at: datetime | None = None) -> dict[str, Any]:
    """Write the HALT flag atomically (temp file, fsync, rename, fsync of the folder); returns its content."""
    now = datetime.now(UTC)
    flag = {"reason": reason, "who": who, "ts": int(now.timestamp() * 1000),
            "requested_at": (requested_at or now).isoformat(), "pid": os.getpid()}
    path = halt_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".HALT.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(flag, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)  # the rename itself must survive a power cut too
    return flag


def read_halt(data_dir: Path) -> dict[str, Any] | None:
    """The HALT flag, or None when trading is not halted. An unreadable flag still means HALTED."""
    path = halt_path(data_dir)
    try:
        flag = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        flag = None
    if isinstance(flag, dict):
        return flag
    return {"reason": f"unreadable HALT file {path}", "who": "unknown", "ts": None, "requested_at": None}
