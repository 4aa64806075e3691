"""The live node's hand-over files on the data directory: commands for the running session, and its marker.

Other processes (an operator's override, the dashboard run alone, key rotation) never touch a running session's
engine: they write a command file (whole, then renamed in) that the session applies at its next poll. The session
marker names the running session's pid and control URL.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def live_dir(data_dir: Path) -> Path:
    return data_dir / "live"


def session_marker(data_dir: Path) -> Path:
    return live_dir(data_dir) / "session.json"


def running_session(data_dir: Path) -> dict[str, Any] | None:
    """The live session currently running on this data dir (its marker names a live pid), or None."""
    marker = session_marker(data_dir)
    try:
        info: dict[str, Any] = json.loads(marker.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return info


def pending_commands(data_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Commands waiting for the running session, oldest first."""
    return read_queue(live_dir(data_dir) / "commands")


def read_queue(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The JSON files of a hand-over folder (commands, rotation requests), oldest first; a file that cannot be read
    yet is left for the next poll."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue  # half-written: picked up on the next poll
    return out


def write_command(data_dir: Path, command: dict[str, Any]) -> None:
    """Hand ``command`` (with an ``id``) to the live session on ``data_dir``: written whole, then renamed in."""
    folder = live_dir(data_dir) / "commands"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{command['id'][:8]}.json"
    tmp = folder / (name + ".tmp")
    tmp.write_text(json.dumps(command))
    os.replace(tmp, folder / name)
