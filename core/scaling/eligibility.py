"""Is a step up the ladder (R5.2) or a new symbol (R5.3) due? Computed from the live rows in DuckDB.

The evidence window is the last ``scaling.window_days`` days before the review. A proposal needs all of:
``window_days`` at the current rung (rung history from the live sessions' SESSION_STARTED — every start is
rung 1, R6.4 — and SCALING_APPLIED events), live data on every full UTC day of the window (consecutive),
positive net P&L of the live trades closed in the window, the R1.4 targets on the window's live equity and
trades, no risk breach in the window (R2.3 daily loss, R4.5 drawdown, R6.1 emergency stop, R6.2 breakers) and
a live state that is ACTIVE and not de-risked. The result lists every check in words, so "nothing proposed"
always says why, and carries the evidence (the daily P&L table, the metrics, the breaches) that R5.4 stores.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from core.config import Settings
from core.config.ladder import rung
from core.metrics import Metrics, compute_metrics
from core.risk.breakers import CODES as BREAKER_CODES
from core.scaling.symbols import next_candidate, symbol_refusal
from core.state.live import load_state
from core.store import Store
from core.store import trading as trading_repo

BREACH_CODES: tuple[str, ...] = ("DAILY_LOSS_LIMIT", "DRAWDOWN_DERISK", "EMERGENCY_STOP", *BREAKER_CODES.values())
KINDS = ("auto", "step_up", "new_symbol")


@dataclass(frozen=True)
class Proposal:
    """A change for a human to approve. Rungs are numbered from 1, as operators count them."""

    kind: str  # 'step_up' | 'new_symbol'
    from_rung: int
    to_rung: int
    risk_per_trade: float
    exposure_cap: float
    symbol: str | None = None
    half_risk_days: int = 0

    def text(self) -> str:
        if self.kind == "new_symbol":
            return (f"add {self.symbol}, traded at half risk ({self.risk_per_trade / 2:.3%} per trade) for its "
                    f"first {self.half_risk_days} days")
        return (f"step up from rung {self.from_rung} to rung {self.to_rung}: risk {self.risk_per_trade:.2%} per "
                f"trade, exposure cap {self.exposure_cap:.0%}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    text: str  # a failed check's text starts with its CODE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Eligibility:
    """The review's verdict: the proposal (None: nothing due), every check in words, and the evidence."""

    kind: str
    rung: int  # the current rung, from 1
    proposal: Proposal | None
    checks: tuple[Check, ...]
    evidence: dict[str, Any]
    at: datetime

    @property
    def eligible(self) -> bool:
        return self.proposal is not None

    @property
    def reasons(self) -> list[str]:
        """Why nothing is proposed (the failed checks), or, when eligible, every check that was met."""
        failed = [c.text for c in self.checks if not c.passed]
        return failed or [c.text for c in self.checks]

    def summary(self) -> str:
        if self.proposal is not None:
            return f"Proposed: {self.proposal.text()}."
        return f"Nothing proposed (rung {self.rung}): " + "; ".join(self.reasons)


def evaluate(store: Store, settings: Settings, now: datetime | None = None, kind: str = "auto") -> Eligibility:
    """Eligibility at ``now`` (default: the wall clock). ``kind``: 'auto' (a step up while the ladder has one,
    then new symbols), 'step_up' or 'new_symbol'."""
    if kind not in KINDS:
        raise ValueError(f"unknown review kind {kind!r}; use one of {', '.join(KINDS)}")
    now = now or datetime.now(UTC)
    cfg = settings.scaling
    start = now - timedelta(days=cfg.window_days)
    index, since = current_rung(store, now)
    trades, equity = _trades(store, start, now), _equity(store, start, now)
    breaches = _breaches(store, start, now)
    daily = daily_table(trades, equity, start, now)
    metrics = _metrics(equity, trades, settings.gate.period)
    checks = [_days_check(index, since, now, cfg.window_days), _consecutive_check(daily),
              _pnl_check(trades, cfg.window_days), *_target_checks(metrics, settings),
              _breach_check(breaches), _state_check(settings)]
    chosen, proposal, why = _choose(store, settings, index, kind, now)
    checks.append(Check("proposal", proposal is not None, why))
    evidence = {
        "window": {"start": start.isoformat(), "end": now.isoformat(), "days": cfg.window_days},
        "rung": {"current": index + 1, "since": since.isoformat() if since else None},
        "daily": daily, "metrics": metrics.to_dict() if metrics else None, "breaches": breaches,
        "thresholds": {**settings.gate.model_dump(), "min_trades": _min_trades(settings)},
    }
    ok = all(c.passed for c in checks)
    return Eligibility(chosen, index + 1, proposal if ok else None, tuple(checks), evidence, now)


def current_rung(store: Store, now: datetime) -> tuple[int, datetime | None]:
    """(rung index from 0, since when) from the live sessions' rung events up to ``now``: the start of the
    trailing run of events at the same rung (a restart at rung 1 continues a rung-1 period)."""
    rows = trading_repo.rung_events(store, now)
    index, since = 0, None
    for ts, code, to_rung in rows.iter_rows():
        step = int(to_rung) - 1 if code == "SCALING_APPLIED" and to_rung is not None else 0
        if since is None or step != index:
            index, since = step, ts
    return index, since


def _trades(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    return trading_repo.live_trades_between(store, start, end)


def _equity(store: Store, start: datetime, end: datetime) -> pl.DataFrame:
    return trading_repo.live_equity_between(store, start, end)


def _breaches(store: Store, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = trading_repo.coded_live_events(store, BREACH_CODES, start, end)
    return [{"ts": r["ts"].isoformat(), "code": r["code"], "message": r["message"], "session_id": r["session_id"]}
            for r in rows.iter_rows(named=True)]


def daily_table(trades: pl.DataFrame, equity: pl.DataFrame, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """One row per UTC day of the window: closed trades, their net P&L, and the first/last equity mark."""
    per_trade = {r["day"]: r for r in trades.group_by(pl.col("exit_time").dt.date().alias("day")).agg(
        pl.len().alias("trades"), pl.col("net_pnl").sum().alias("net_pnl")).iter_rows(named=True)} \
        if trades.height else {}
    per_mark = {r["day"]: r for r in equity.group_by(pl.col("ts").dt.date().alias("day")).agg(
        pl.len().alias("marks"), pl.col("equity").first().alias("open"), pl.col("equity").last().alias("close"))
        .iter_rows(named=True)} if equity.height else {}
    out = []
    day: date = start.date()
    while day <= end.date():
        t, m = per_trade.get(day, {}), per_mark.get(day, {})
        out.append({"day": day.isoformat(), "trades": int(t.get("trades", 0)),
                    "net_pnl": round(float(t.get("net_pnl", 0.0)), 2), "marks": int(m.get("marks", 0)),
                    "equity_open": m.get("open"), "equity_close": m.get("close")})
        day += timedelta(days=1)
    return out


def _metrics(equity: pl.DataFrame, trades: pl.DataFrame, period: str) -> Metrics | None:
    if equity.height == 0:
        return None
    frame = equity.select("ts", "equity", pl.col("exposure").fill_null(0.0))
    return compute_metrics(frame, trades.select("net_pnl", "fees"), starting_equity=float(equity["equity"][0]),
                           period=period)


def _min_trades(settings: Settings) -> int:
    return settings.scaling.min_trades or settings.gate.min_trades


def _days_check(index: int, since: datetime | None, now: datetime, need: int) -> Check:
    if since is None:
        return Check("days_at_rung", False, "NO_LIVE_HISTORY: no live session has run yet")
    days = (now - since).total_seconds() / 86_400
    text = f"{days:.1f} days at rung {index + 1} (R5.2 needs >= {need})"
    return Check("days_at_rung", days >= need, text if days >= need else f"NOT_ENOUGH_DAYS: {text}")


def _consecutive_check(daily: list[dict[str, Any]]) -> Check:
    """Every full UTC day inside the window has live marks (the window's first and last days are partial)."""
    gaps = [d["day"] for d in daily[1:-1] if d["marks"] == 0]
    if gaps:
        return Check("consecutive_days", False, f"MISSING_DAYS: no live data on {', '.join(gaps)} (the session "
                     "was not running; R5.2 needs consecutive days)")
    return Check("consecutive_days", True, f"live data on each of the {max(len(daily) - 2, 0)} full days of the "
                 "window")


def _pnl_check(trades: pl.DataFrame, days: int) -> Check:
    net = float(trades["net_pnl"].sum()) if trades.height else 0.0
    text = f"net P&L {net:+,.2f} USDT from {trades.height} live trades over the last {days} days"
    return Check("net_pnl", net > 0, text if net > 0 else f"LOSING_WINDOW: {text} (must be positive)")


def _target_checks(m: Metrics | None, settings: Settings) -> list[Check]:
    """R1.4's thresholds on the window's live data."""
    g, need = settings.gate, _min_trades(settings)
    if m is None:
        return [Check("targets", False, "NO_LIVE_DATA: no live equity marks in the window")]
    sharpe = m.sharpe if math.isfinite(m.sharpe) else float("nan")
    return [
        _cmp("win_rate", m.win_rate > g.min_win_rate, "WIN_RATE_TOO_LOW", f"win rate {m.win_rate:.1%}",
             f"> {g.min_win_rate:.1%}"),
        _cmp("sharpe", sharpe > g.min_sharpe, "SHARPE_TOO_LOW", f"Sharpe {sharpe:.2f}", f"> {g.min_sharpe:.2f}"),
        _cmp("max_drawdown", m.max_drawdown < g.max_drawdown, "DRAWDOWN_TOO_DEEP",
             f"max drawdown {m.max_drawdown:.2%}", f"< {g.max_drawdown:.1%}"),
        _cmp("trades", m.trades >= need, "TOO_FEW_TRADES", f"{m.trades} closed live trades", f">= {need}"),
    ]


def _cmp(name: str, passed: bool, code: str, value: str, bound: str) -> Check:
    return Check(name, passed, f"{value} {bound}" if passed else f"{code}: {value}, target {bound} (R1.4)")


def _breach_check(breaches: list[dict[str, Any]]) -> Check:
    if not breaches:
        return Check("breaches", True, "no risk breach in the window")
    listed = "; ".join(f"{b['code']} at {b['ts'][:16]}" for b in breaches[:5])
    more = f" and {len(breaches) - 5} more" if len(breaches) > 5 else ""
    return Check("breaches", False, f"RISK_BREACH: {len(breaches)} in the window ({listed}{more})")


def _state_check(settings: Settings) -> Check:
    from core.state.halt import read_halt  # heavy (exchange code): only when a review runs

    if read_halt(settings.data_dir) is not None:
        return Check("state", False, "HALTED: an emergency stop is in force")
    state = load_state(settings.data_dir / "live" / "state.json")
    if state.trading_state != "ACTIVE":
        return Check("state", False, f"NOT_ACTIVE: the live state is {state.trading_state}")
    if state.risk.get("derisked"):
        return Check("state", False, "DERISKED: drawdown de-risking (R4.5) is in force until an operator resets it")
    return Check("state", True, "live state ACTIVE, not de-risked")


def _choose(store: Store, settings: Settings, index: int, kind: str,
            now: datetime) -> tuple[str, Proposal | None, str]:
    """The change a review would propose: a step up while the ladder has one ('auto'), else a new symbol."""
    rungs = settings.scaling.rungs
    if kind != "new_symbol" and index < len(rungs) - 1:
        up = rung(index + 1, rungs)
        prop = Proposal("step_up", index + 1, index + 2, up.risk_per_trade, up.exposure_cap)
        return "step_up", prop, f"next: {prop.text()}"
    if kind == "step_up":
        return "step_up", None, f"TOP_RUNG: rung {index + 1} is the top of the ladder"
    symbol = next_candidate(store, settings)
    if symbol is None:
        return "new_symbol", None, ("NO_CANDIDATE_SYMBOL: at the top rung and no symbol left to propose "
                                    "(RAMPART_SCALING__CANDIDATE_SYMBOLS)")
    refusal = symbol_refusal(store, settings, symbol, now)
    if refusal is not None:
        return "new_symbol", None, f"{refusal[0]}: {refusal[1]}"
    cur = rung(index, rungs)
    prop = Proposal("new_symbol", index + 1, index + 1, cur.risk_per_trade, cur.exposure_cap, symbol,
                    settings.scaling.new_symbol_days)
    return "new_symbol", prop, f"next: {prop.text()}"
