"""Run work on another thread and wait for its result: the notifier thread hands its outbox reads and writes to
the live session's trading thread, which runs them on its next poll (``drain``).

Why: DuckDB fails, rather than waits, when two threads of one process open or close the same database file at the
same moment, so in the live process only the trading thread touches DuckDB; the notifier thread does the slow
part (Slack over HTTP) and must never make a trading-thread write fail.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from core.errors import StoreError

T = TypeVar("T")
_Item = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "Future[Any]"]


class Handoff:
    """``run(fn, ...)`` from any thread; ``drain()`` on the owning thread runs what is waiting."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the owning thread; StoreError when it does not get to it in time or was closed."""
        if self._closed:
            raise StoreError("the session's outbox hand-off is closed (the session is stopping)")
        future: Future[T] = Future()
        self._queue.put((fn, args, kwargs, future))
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout as exc:
            future.cancel()  # not run later behind our back (a late claim would hold rows for nothing)
            raise StoreError(f"the trading thread did not run the outbox work within {self.timeout_s:g} s") from exc
        except CancelledError as exc:
            raise StoreError("outbox work cancelled: the session is stopping") from exc

    def drain(self) -> int:
        """Run everything waiting (on the owning thread); returns how many ran."""
        ran = 0
        while True:
            try:
                fn, args, kwargs, future = self._queue.get_nowait()
            except queue.Empty:
                return ran
            if not future.set_running_or_notify_cancel():
                continue
            ran += 1
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed back to the waiting thread, which reports it
                future.set_exception(exc)

    def close(self) -> None:
        """Refuse new work and cancel what waits (the waiting thread gets a StoreError at once)."""
        self._closed = True
        while True:
            try:
                *_, future = self._queue.get_nowait()
            except queue.Empty:
                return
            future.cancel()


__all__ = ["Handoff"]
