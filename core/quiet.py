"""The replay's fast path: run a stretch of bars on which nothing but the strategies' decisions can happen.

Most bars of a replay are quiet: once the bar's fills are booked (``Engine.fill_bar``, the full step's first
step too), no working stop or limit is within the bar's range, the day does not change and no monitor threshold
(daily loss, drawdown, unrealized loss) is crossed. On such a bar the engine's full step (``Engine.step_range``)
only marks equity and asks the strategies, so ``quiet`` does just that, with everything the full step would look
up per bar held in locals: the books' marks, the orders' trigger prices, the monitors' thresholds. Cash is
constant through a stretch, and so is equity while every book is flat: those marks are written in bulk.

A stretch ends before the first bar where anything else can happen (an order can trigger: the next stretch books
it first; a new day or a monitor: the engine runs that bar through the full step) and after a bar on which a
strategy signalled (handled here, exactly as the full step would). The result is the same as running every bar
through the full step: same marks to the bit, same decisions, orders and events (``tests/test_quiet.py``). Live
sessions always take the full step.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.domain import Signal
    from core.engine import Engine
    from core.execution.book import Book

Mark = tuple["array[float]", float, float | None]  # a holding book's closes, its quantity, its cost (None: dust)
Pending = tuple[int, int, float, tuple[Mark, ...]]  # a quiet stretch: first bar, bars, cash, holdings
_NAN = array("d", [math.nan])
Wake = tuple["array[float]", float, "array[float]", float]  # lows, the price a low reaches to wake, highs, same


def quiet(engine: Engine, i: int, end: int) -> int:
    """Run the quiet bars from ``i`` on, up to ``end``; return the first bar not run (``end`` when all were; ``i``
    when bar ``i`` needs the full step)."""
    books = engine.books
    ts_list = books[0].ts if books else array("q")
    risk = engine.risk
    day_end = risk.day_end  # a new day's first bar is the monitors' (full step)
    stop = end if not ts_list or day_end > ts_list[end - 1] else bisect_left(ts_list, day_end, i, end)
    if stop == i:
        return i
    # The bar's fills come first, as in the full step (which finds nothing more to fill if it runs the bar after
    # all): a bar on which orders fill is then marked and decided like any other.
    engine._i = i
    engine.fill_bar(i)
    marks: list[Mark] = []  # per book holding a position or dust: its closes, the quantity, its cost (None: dust)
    wakes: list[Wake] = []  # per book with working orders: its lows and highs, the prices that trigger them
    floor = engine.portfolio.cash  # the least equity can be on any bar: every holding at its lowest close
    for book in books:
        if book.working:
            wakes.append((book.low, book.wake_low, book.high, book.wake_high))
        pos = book.position
        if pos is not None:
            marks.append((book.close, pos.qty, pos.avg_price))
        elif book.dust:
            marks.append((book.close, book.dust, None))
        else:
            continue
        floor += marks[-1][1] * book.lowest_close() if marks[-1][1] >= 0.0 else -math.inf
    if marks:
        if not (floor >= 0.0 and _unwatched(engine)):
            return _watched(engine, books, marks, wakes, i, stop)
    else:  # flat: equity is the cash on every bar, so a threshold not crossed now is not crossed later
        cash = engine.portfolio.cash
        ul_limit = -risk.limits.unrealized_loss_limit if risk.controls else -math.inf
        if cash <= risk.daily_floor or cash <= risk.dd_floor or (ul_limit * cash > 0.0) is not risk.tightened:
            return i
    if len(books) == 1 and i >= books[0].warm and len(wakes) <= 1:
        return _single(engine, books[0], marks, wakes, i, stop)
    return _unwatched_run(engine, books, marks, wakes, i, stop)


def _unwatched(engine: Engine) -> bool:
    """True when no monitor can act while equity is not negative: the risk controls are off (no daily-loss or
    drawdown floor, no unrealized-loss limit, no episode open)."""
    risk = engine.risk
    return not risk.controls and risk.daily_floor == -math.inf and risk.dd_floor == -math.inf and not risk.tightened


def _unwatched_run(engine: Engine, books: list[Book], marks: list[Mark], wakes: list[Wake], i: int, stop: int) -> int:
    """No monitor can act: the bars are only checked against the orders' trigger prices, the strategies decide,
    and the equity marks are written in bulk (at once before a signal is handled, so it sees them all)."""
    cash = engine.portfolio.cash
    k = i
    marked = reached = i  # bars [i, marked) have their equity and cash marks; bars [i, reached) were run
    try:
        for k in range(i, stop):
            for low, wake_low, high, wake_high in wakes:
                if low[k] <= wake_low or high[k] >= wake_high:
                    return k
            reached = k + 1
            fired = False
            for book in books:
                signal = book.ask(k)
                if signal is not None:
                    if not fired:
                        _mark(engine, cash, marks, marked, k + 1)
                        marked, fired = k + 1, True
                        engine._i = k
                    engine._on_signal(book, signal, k, _equity_at(cash, marks, k))
            if fired:
                return k + 1
    finally:
        engine._i = k
        _mark(engine, cash, marks, marked, reached)
    return stop


def _single(engine: Engine, book: Book, marks: list[Mark], wakes: list[Wake], i: int, stop: int) -> int:
    """``_unwatched_run`` for the common case — one symbol, past its warm-up, at most one order working — with
    nothing looked up per bar but the series and the order's trigger prices (``_stretch``)."""
    bar, feeds = book.bar, book.feeds
    low, wake_low, high, wake_high = wakes[0] if wakes else (book.low, -math.inf, book.high, math.inf)
    cash = engine.portfolio.cash
    try:
        run = _stretch(len(feeds), wake_low > -math.inf, wake_high < math.inf)
        k, signal = run(book, feeds, book.strategy.on_bar, bar, i, stop, low, wake_low, high, wake_high,
                        *chain.from_iterable(feeds))
    except BaseException as exc:  # on bar.at, which was set before anything else on it
        engine._i = bar.at
        _mark(engine, cash, marks, i, bar.at + 1)  # the full step marks a bar before its strategy decides
        if isinstance(exc, IndexError):
            raise book.read_beyond(bar.at, exc) from exc
        raise
    _mark(engine, cash, marks, i, k)
    if k > i:
        engine._i = k - 1
    if signal is not None:
        engine._on_signal(book, signal, k - 1, _equity_at(cash, marks, k - 1))
    return k


@cache
def _stretch(n: int, on_low: bool, on_high: bool) -> Callable[..., tuple[int, Signal | None]]:
    """The single-symbol stretch for a strategy fed ``n`` series, the feeds written out one by one (a loop over
    them is a tenth of the time a bar takes) and only the trigger prices that exist checked (``on_low``: a sell
    stop or a buy limit is working; ``on_high``: a buy stop or a sell limit). It runs bars from ``k`` until a bar
    where an order can trigger (returned as is), or a bar whose decision is a signal or made the strategy read a
    new series (returned as the next bar, with the signal), or ``stop``."""
    args = "".join(f", a{j}, s{j}" for j in range(n))
    feed = "".join(f"        a{j}(s{j}[k])\n" for j in range(n))
    tests = (("low[k] <= wake_low", on_low), ("high[k] >= wake_high", on_high))
    reach = " or ".join(test for test, on in tests if on)
    wake = f"        if {reach}:\n            return k, None\n" if reach else ""
    code = (f"def stretch(book, feeds, decide, bar, k, stop, low, wake_low, high, wake_high{args}):\n"
            "    for k in range(k, stop):\n"
            f"{wake}"
            "        bar.at = k\n"
            f"{feed}"
            "        signal = decide(bar)\n"
            "        if signal is not None or book.feeds is not feeds:\n"
            "            return k + 1, signal\n"
            "    return stop, None\n")
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # our own template; n is an int
    stretch: Callable[..., tuple[int, Signal | None]] = namespace["stretch"]
    return stretch


def _equity_at(cash: float, marks: list[Mark], k: int) -> float:
    """Equity at bar ``k``'s close, summed in the full step's order (the same float, to the bit)."""
    equity = cash
    for close, qty, _ in marks:
        equity += qty * close[k]
    return equity


def _mark(engine: Engine, cash: float, marks: list[Mark], lo: int, hi: int) -> None:
    """Bars [lo, hi) marked: the stretch is noted for ``settle``, which writes the cash and equity marks of every
    pending stretch in a few array operations instead of a few per stretch. Cash is unchanged through a stretch,
    and so is equity while nothing is held (its new high, if any, goes to the risk engine now)."""
    if hi > lo:
        engine.pending_marks.append((lo, hi - lo, cash, tuple(marks)))
        if not marks and cash > engine.risk.hwm:
            engine.risk.new_high(cash)


def settle(engine: Engine) -> None:
    """Write the pending marks (``_mark``) after those already written: cash, and equity — the cash, plus each
    holding at the bar's close, added in the full step's order, so every value is the float the full step
    computes; then a holding's new high, if any, to the risk engine. Runs before anything else appends a mark or
    reads them, and when a replay ends."""
    pending, engine.pending_marks = engine.pending_marks, []
    if not pending:
        return
    res = engine.result
    n = np.array([item[1] for item in pending], dtype=np.int64)
    start = np.cumsum(n) - n  # where each stretch begins among the new marks
    step = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(start, n)  # 0.. within a stretch
    at = len(res.equity)
    res.equity.extend(_NAN * len(step))
    res.cash.extend(_NAN * len(step))
    equities = np.frombuffer(res.equity, dtype=np.float64)[at:]  # writable views: released on return
    cashes = np.frombuffer(res.cash, dtype=np.float64)[at:]
    cashes[:] = np.repeat(np.array([item[2] for item in pending]), n)
    equities[:] = cashes  # a flat stretch's equity is its cash
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, item in enumerate(pending):  # stretches holding the same books are computed together
        if item[3]:
            groups.setdefault(tuple(id(close) for close, _, _ in item[3]), []).append(j)
    top = -math.inf
    for js in groups.values():
        these = np.array(js, dtype=np.int64)
        count = n[these]
        where = np.repeat(start[these], count) + (np.arange(int(count.sum()), dtype=np.int64)
                                                  - np.repeat(np.cumsum(count) - count, count))
        bars = np.repeat(np.array([pending[j][0] for j in js], dtype=np.int64), count) + step[where]
        equity = cashes[where].copy()
        for m, (close, _, _) in enumerate(pending[js[0]][3]):
            qty = np.repeat(np.array([pending[j][3][m][1] for j in js]), count)
            equity += qty * np.frombuffer(close, dtype=np.float64)[bars]
        equities[where] = equity
        top = max(top, float(equity.max()))
    del equities, cashes
    if top > engine.risk.hwm:
        engine.risk.new_high(top)


def _watched(engine: Engine, books: list[Book], marks: list[Mark], wakes: list[Wake], i: int, stop: int) -> int:
    """Holdings the monitors watch (risk controls on): each bar is marked to its close and checked against the
    monitors and the orders' trigger prices before the strategies decide."""
    settle(engine)  # this path appends its marks one by one: the pending ones go first
    risk = engine.risk
    res = engine.result
    cash = engine.portfolio.cash
    daily_floor, dd_floor, hwm, tightened = risk.daily_floor, risk.dd_floor, risk.hwm, risk.tightened
    ul_limit = -risk.limits.unrealized_loss_limit if risk.controls else -math.inf
    equities = res.equity
    eq_append = equities.append
    k = i - 1
    try:
        for k in range(i, stop):
            for low, wake_low, high, wake_high in wakes:
                if low[k] <= wake_low or high[k] >= wake_high:
                    return k
            equity = cash
            unrealized = 0.0
            for close, qty, cost in marks:
                price = close[k]
                equity += qty * price
                if cost is not None:
                    unrealized += qty * (price - cost)
            if equity <= daily_floor or equity <= dd_floor or (unrealized < ul_limit * equity) is not tightened:
                return k
            eq_append(equity)
            if equity > hwm:
                hwm = equity
                risk.new_high(equity)
                dd_floor = risk.dd_floor
            fired = False
            for book in books:
                signal = book.ask(k)
                if signal is not None:
                    if not fired:
                        res.cash.extend(array("d", [cash]) * (len(equities) - len(res.cash)))
                        fired = True
                        engine._i = k
                    engine._on_signal(book, signal, k, equity)
            if fired:
                return k + 1
    finally:
        engine._i = max(k, i)
        res.cash.extend(array("d", [cash]) * (len(equities) - len(res.cash)))
    return stop
