"""How report numbers read, the same in the terminal, the HTML page and the PDF: a metric that needs closed trades
shows "—" when there were none (not "0.0 %" or "0.00"), an undefined number shows "—", and a ratio that is
infinite because nothing was lost shows "∞"."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DASH, INFINITE = "—", "∞"
# ratios that have no meaning without a closed trade (the R1.3 conventions store 0.0 for them)
NEEDS_TRADES = frozenset({"win_rate", "profit_factor", "expectancy", "avg_win", "avg_loss", "sharpe", "sortino"})
# None with trades means +inf here (profit without a loss; no losing period)
INFINITE_WHEN_NONE = frozenset({"profit_factor", "sortino"})

# (key, label, unit, amount: scales with the traded size)
KEY_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("net_pnl", "Net P&L (USDT)", "pnl", True),
    ("return_pct", "Return", "pct_points", True),
    ("max_drawdown", "Max drawdown", "pct", True),
    ("fees", "Fees (USDT)", "usd", True),
    ("final_equity", "Final equity (USDT)", "usd", True),
    ("trades", "Closed trades", "count", False),
    ("win_rate", "Win rate", "pct", False),
    ("profit_factor", "Profit factor", "ratio", False),
    ("expectancy", "Expectancy (USDT per trade)", "pnl", True),
    ("sharpe", "Sharpe", "ratio", False),
    ("sortino", "Sortino", "ratio", False),
    ("exposure", "Time-weighted exposure", "pct", False),
)


def number(value: Any, unit: str = "num") -> str:
    """One number as text: '—' when missing or not finite."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    if isinstance(value, float) and not math.isfinite(value):
        return INFINITE if value > 0 else DASH
    if unit == "count":
        return f"{int(value):,}"
    if unit == "pct":
        return f"{value * 100:.1f} %"
    if unit == "pct_points":
        return f"{value:+.2f} %"
    if unit == "pnl":
        return f"{value:+,.2f}"
    if unit == "usd":
        return f"{value:,.2f}"
    if unit == "bps":
        return f"{value:,.1f}"
    return f"{value:,.2f}"


PERCENT_CHECKS = frozenset({"win_rate", "max_drawdown"})
COUNT_CHECKS = frozenset({"trades", "errors"})


def check_value(name: str, value: Any, trades: int | None = None) -> str:
    """A gate check's value or threshold: percent for win rate and drawdown, whole numbers for counts; with
    ``trades`` 0, '—' for the checks that need trades (the win rate and Sharpe of no trade)."""
    if trades == 0 and name in NEEDS_TRADES:
        return DASH
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if name in PERCENT_CHECKS:
        return f"{value * 100:.1f} %"
    if name in COUNT_CHECKS:
        return f"{int(value)}"
    return f"{value:.2f}"


def metric(metrics: Mapping[str, Any], key: str, unit: str) -> str:
    """``metrics[key]`` as text, '—' for a trade ratio when no trade closed."""
    trades = metrics.get("trades")
    value = metrics.get(key)
    if key in NEEDS_TRADES and not trades:
        return DASH
    if value is None and key in INFINITE_WHEN_NONE and trades:
        return INFINITE
    return number(value, unit)


__all__ = ["COUNT_CHECKS", "DASH", "INFINITE", "KEY_METRICS", "NEEDS_TRADES", "PERCENT_CHECKS", "check_value", "metric",
           "number"]
