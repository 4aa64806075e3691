"""The equity and drawdown charts of a paper or backtest report, as geometry both renderers draw: inline SVG in the
HTML page, fpdf2 lines and polygons in the PDF. One place decides the series, their scales and axis labels, so the
page and the PDF show the same picture."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

RGB = tuple[int, int, int]
STRATEGY, AS_TRADED, HOLD, LOSS = (22, 101, 192), (140, 146, 158), (230, 126, 34), (200, 40, 40)


@dataclass(frozen=True)
class Line:
    label: str
    color: RGB
    ys: list[float]
    dashed: bool = False
    fill: bool = False  # shade between the line and zero (drawdown)
    width: float = 1.0


@dataclass(frozen=True)
class Chart:
    """Series over one time axis with their value range and axis ticks (x in epoch seconds)."""

    title: str
    xs: list[float]
    lines: list[Line]
    y0: float
    y1: float
    yticks: list[tuple[float, str]]
    xticks: list[tuple[float, str]]

    @property
    def x0(self) -> float:
        return self.xs[0]

    @property
    def x1(self) -> float:
        return self.xs[-1]

    def fx(self, x: float) -> float:
        """``x`` as a fraction of the width (0 left, 1 right)."""
        return (x - self.x0) / (self.x1 - self.x0) if self.x1 > self.x0 else 0.5

    def fy(self, y: float) -> float:
        """``y`` as a fraction of the height from the top (0 top, 1 bottom)."""
        return 1 - (y - self.y0) / (self.y1 - self.y0)


def report_charts(doc: Mapping[str, Any]) -> list[Chart]:
    """The equity chart (strategy at the metrics' scale, as traded when the scale is not 1, buy-and-hold) and the
    drawdown chart (strategy, buy-and-hold), from the report document's ``curves``; [] without points."""
    points = (doc.get("curves") or {}).get("points") or []
    if len(points) < 2:
        return []
    xs = [datetime.fromisoformat(p["ts"]).timestamp() for p in points]
    scale = float((doc.get("sizing") or {}).get("metrics_scale") or 1.0)
    strategy = "strategy" if scale == 1 else f"strategy at {scale:g}x the traded size (the metrics)"
    equity = [Line(strategy, STRATEGY, [p["equity"] for p in points], width=1.4)]
    if scale != 1 and all(p.get("equity_as_traded") is not None for p in points):
        equity.append(Line("as traded (live's first rung)", AS_TRADED, [p["equity_as_traded"] for p in points]))
    held = all(p.get("buy_and_hold") is not None for p in points)
    if held:
        equity.append(Line("buy-and-hold, same candles", HOLD, [p["buy_and_hold"] for p in points], dashed=True))
    dd = [Line("strategy drawdown", LOSS, [-100 * p["drawdown"] for p in points], fill=True, width=1.2)]
    if held:
        dd.append(Line("buy-and-hold drawdown", HOLD, [-100 * p["buy_and_hold_drawdown"] for p in points],
                       dashed=True))
    return [chart("Equity (USDT)", xs, equity, "{:,.0f}"), chart("Drawdown from the running high (%)", xs, dd,
                                                                  "{:.1f}", zero=True)]


def chart(title: str, xs: Sequence[float], lines: list[Line], yfmt: str, zero: bool = False) -> Chart:
    values = [v for line in lines for v in line.ys if math.isfinite(v)] + ([0.0] if zero else [])
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    ticks = nice_ticks(lo, hi)
    y0, y1 = min(lo, ticks[0]), max(hi, ticks[-1])
    return Chart(title, list(xs), lines, y0, y1, [(t, yfmt.format(t)) for t in ticks], time_ticks(xs[0], xs[-1]))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-12 * max(1.0, abs(hi)):
        ticks.append(ticks[-1] + step)
    return ticks


def time_ticks(x0: float, x1: float, count: int = 6) -> list[tuple[float, str]]:
    """``count`` evenly spaced times labelled for the span: dates over several days, day and hour over a day or
    two, hours and minutes within one."""
    span = x1 - x0
    fmt = "%Y-%m-%d" if span > 5 * 86_400 else "%m-%d %H:%M" if span > 86_400 else "%H:%M"
    if span <= 0:
        return [(x0, datetime.fromtimestamp(x0, UTC).strftime(fmt))]
    return [(x0 + span * k / (count - 1), datetime.fromtimestamp(x0 + span * k / (count - 1), UTC).strftime(fmt))
            for k in range(count)]


__all__ = ["AS_TRADED", "HOLD", "LOSS", "RGB", "STRATEGY", "Chart", "Line", "chart", "nice_ticks", "report_charts",
           "time_ticks"]
