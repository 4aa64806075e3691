"""Look-ahead analysis (R10.4): does a strategy decide differently when the bars after the decision are hidden?

The strategy runs once over all the candles, then again over the candles cut at a few checkpoints (the bars where
it decided, and bars spread over the run). A strategy that uses only what has happened makes, up to each
checkpoint, exactly the decisions of the full run, and its indicators have exactly the same values; any
difference is look-ahead: an indicator computed with later bars (``shift(-1)``, a whole-series mean), or state
taken from the whole candle frame. A read beyond the current bar fails in every mode on its own (``Engine``).
This is freqtrade's lookahead-analysis, on Rampart's engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.build import build_paper_engine
from core.config import Settings
from core.domain import Mode, ms_to_dt
from core.engine import Engine
from core.market import CandleSet, align

_TOL = 1e-9


@dataclass(frozen=True)
class Finding:
    """One sign of look-ahead: where, and what differed."""

    kind: str  # "read" (beyond the current bar), "indicator", "decision"
    symbol: str
    ts: int | None
    detail: str

    def __str__(self) -> str:
        when = f" at {ms_to_dt(self.ts).isoformat()}" if self.ts is not None else ""
        return f"LOOK_AHEAD {self.kind} {self.symbol}{when}: {self.detail}"


@dataclass
class LookAheadReport:
    """The verdict: ``passed`` when nothing changed at any checkpoint."""

    strategy: str
    bars: int
    checkpoints: list[int] = field(default_factory=list)  # bar open times checked
    decisions: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        head = (f"Look-ahead check of {self.strategy}: {'PASSED' if self.passed else 'FLAGGED'} — {self.bars} bars, "
                f"{self.decisions} decisions, {len(self.checkpoints)} checkpoints with the later bars hidden")
        return [head, *(f"  {f}" for f in self.findings)]

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "passed": self.passed, "bars": self.bars, "decisions": self.decisions,
                "checkpoints": [ms_to_dt(t).isoformat() for t in self.checkpoints],
                "findings": [{"kind": f.kind, "symbol": f.symbol,
                              "ts": ms_to_dt(f.ts).isoformat() if f.ts is not None else None,
                              "detail": f.detail} for f in self.findings]}


def check_lookahead(settings: Settings, sets: list[CandleSet], checkpoints: int = 12) -> LookAheadReport:
    """Run the strategy of ``settings`` over ``sets`` in full and cut at up to ``checkpoints`` bars; report every
    decision or indicator value that changes when the later bars are hidden."""
    aligned = align(sets) if len(sets) > 1 else sets
    full, result = _run(settings, aligned)
    report = LookAheadReport(settings.strategy.name, len(full.books[0].ts) if full.books else 0)
    reads = [e for e in result.errors if "LookAheadError" in e]
    if reads:
        report.findings.append(Finding("read", "*", None, reads[0]))
        return report
    decisions = _decisions(result.decisions)
    report.decisions = len(decisions)
    ts: Sequence[int] = full.books[0].ts if full.books else []
    for k in _checkpoints(ts, decisions, full, checkpoints):
        cut = [CandleSet(cs.symbol, cs.timeframe, cs.frame.head(k + 1)) for cs in aligned]
        part, part_result = _run(settings, cut)
        report.checkpoints.append(ts[k])
        finding = _first_difference(full, part, decisions, _decisions(part_result.decisions), ts[k])
        if finding is not None:
            report.findings.append(finding)
            break  # one proof is enough; the first checkpoint that differs is the earliest found
    return report


def _run(settings: Settings, sets: list[CandleSet]) -> tuple[Engine, Any]:
    engine = build_paper_engine(settings, Mode.BACKTEST)
    return engine, engine.run(sets)


def _decisions(rows: list[dict[str, Any]]) -> list[tuple[int, str, str, str, str]]:
    return [(d["ts"], d["symbol"], d["action"], d["code"], str(d["details"].get("signal_code", "")))
            for d in rows if d["kind"] in ("order", "denied")]


def _checkpoints(ts: Sequence[int], decisions: list[tuple[int, str, str, str, str]], engine: Engine,
                 n: int) -> list[int]:
    """Bar indices to cut at: where decisions were taken (the first ones, then spread), and bars spread over the
    run after the warm-up; ascending, at most ``n``."""
    if not ts or n <= 0:
        return []
    index = {t: k for k, t in enumerate(ts)}
    warm = max((b.warm for b in engine.books), default=0)
    at_decisions = sorted({index[d[0]] for d in decisions if d[0] in index})
    picks = set(_spread(at_decisions, (n + 1) // 2))
    span = list(range(min(warm, len(ts) - 1), len(ts) - 1))
    picks.update(_spread(span, n - len(picks)))
    return sorted(picks)[:n]


def _spread(items: list[int], n: int) -> list[int]:
    if n <= 0 or not items:
        return []
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(k * step)] for k in range(n)]


def _first_difference(full: Engine, part: Engine, full_decisions: list[tuple[int, str, str, str, str]],
                      part_decisions: list[tuple[int, str, str, str, str]], cut_ts: int) -> Finding | None:
    expected = [d for d in full_decisions if d[0] <= cut_ts]
    for want, got in zip(expected, part_decisions, strict=False):
        if want != got:
            return Finding("decision", want[1], want[0], f"with all the bars: {want[2]} {want[4] or want[3]}; with "
                           f"the bars after {ms_to_dt(cut_ts).isoformat()} hidden: {got[2]} {got[4] or got[3]} at "
                           f"{ms_to_dt(got[0]).isoformat()}")
    if len(expected) != len(part_decisions):
        longer = expected if len(expected) > len(part_decisions) else part_decisions
        extra = longer[min(len(expected), len(part_decisions))]
        which = "all the bars" if longer is expected else "the later bars hidden"
        return Finding("decision", extra[1], extra[0], f"{extra[2]} {extra[4] or extra[3]} only with {which}")
    for fb, pb in zip(full.books, part.books, strict=True):
        for (name, fs), (_, ps) in zip(fb.strategy.declared(), pb.strategy.declared(), strict=True):
            for k, (a, b) in enumerate(zip(fs, ps, strict=False)):
                if not _same(a, b):
                    return Finding("indicator", fb.symbol, fb.ts[k],
                                   f"{name!r} is {a!r} with all the bars and {b!r} with the bars after "
                                   f"{ms_to_dt(cut_ts).isoformat()} hidden: it is computed with later bars")
    return None


def _same(a: float, b: float) -> bool:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    return abs(a - b) <= _TOL * max(abs(a), abs(b))
