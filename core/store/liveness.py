"""Which process runs a session, and whether it still does: how a session killed with -9 is told from a live one.

A session row carries its ``owner``, ``host:pid:start`` (``start`` = the process's start time in clock ticks since
boot, from /proc, so a pid reused by a later process is not mistaken for the session's). A session whose owner is
gone was never closed: the next session's start closes it as ``crashed`` (``Store.begin_session``).
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _stat(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (state first), or [] where /proc has none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return []
    # The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    return text[text.rfind(")") + 2:].split()


def _start_ticks(pid: int) -> str:
    """The process's start time since boot (field 22 of /proc/PID/stat), or "" where /proc has none."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


@cache
def _host() -> str:
    return socket.gethostname().replace(":", "_") or "localhost"


def owner_token(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (or of ``pid`` on this host)."""
    pid = os.getpid() if pid is None else pid
    return f"{_host()}:{pid}:{_start_ticks(pid)}"


def owner_alive(owner: str | None) -> bool | None:
    """True while the owning process runs, False once it has ended, None when it cannot be told from here (the
    session runs on another host). A row without an owner was written before owners were recorded: its process
    cannot still be writing to this schema, so it counts as ended."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != _host():
        return None
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    now = fields[19] if len(fields) > 19 else ""
    return not (start and now and now != start)  # the pid was reused by a later process: the owner has ended


__all__ = ["owner_alive", "owner_token"]
