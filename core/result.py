"""``SessionResult``: everything a session produced — equity curve, orders, fills, trades, decisions, events —
ready for the metrics, the gate and the store (``session_row``, ``session_frames``: the rows every mode stores, here
so that a live node need not import paper validation and its reports)."""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from core.domain import Mode, Order, OrderFilled, Position, Trade, ms_to_dt

if TYPE_CHECKING:
    from core.config import Settings
    from core.venue import Venue


@dataclass
class SessionResult:
    """Everything a session produced, ready for metrics, the gate and the store."""

    session_id: str
    mode: Mode
    strategy: str
    config_hash: str
    symbols: tuple[str, ...]
    timeframe: str
    starting_equity: float
    started_at: datetime
    ended_at: datetime | None = None
    final_equity: float = 0.0
    # one value per bar, packed (a long replay holds millions)
    ts: array[int] = field(default_factory=lambda: array("q"))
    equity: array[float] = field(default_factory=lambda: array("d"))
    cash: array[float] = field(default_factory=lambda: array("d"))
    orders: list[Order] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    open_positions: dict[str, Position] = field(default_factory=dict)
    fees_paid: float = 0.0
    loop_seconds: float = 0.0
    scale: float = 1.0  # paper "as live": the metrics are shown at this multiple of the traded size

    @property
    def status(self) -> str:
        return "failed" if self.errors else "completed"

    def equity_frame(self) -> pl.DataFrame:
        eq = pl.Series("equity", self.equity, pl.Float64)
        cash = pl.Series("cash", self.cash, pl.Float64)
        return pl.DataFrame({
            "ts": pl.Series("ts", self.ts[: len(self.equity)], pl.Int64).cast(pl.Datetime("ms", "UTC")),
            "equity": eq, "cash": cash,
            # long-only spot: everything that is not cash is open notional
            "exposure": ((eq - cash) / eq).fill_nan(0.0),
        })

    def trades_frame(self) -> pl.DataFrame:
        rows = [t.to_row() for t in self.trades]
        return pl.DataFrame(rows, schema=TRADE_SCHEMA) if rows else pl.DataFrame(schema=TRADE_SCHEMA)

    def scaled_frames(self) -> tuple[pl.DataFrame, pl.DataFrame, float, float]:
        """(equity, trades, fees, final equity) at ``scale`` times the traded size: what the same trades make at the
        strategy's own risk per trade. Equity moves ``scale`` times as far from the start; quantities, P&L and fees
        are ``scale`` times; prices and returns per trade stay."""
        equity, trades, k = self.equity_frame(), self.trades_frame(), self.scale
        if k == 1.0:
            return equity, trades, self.fees_paid, self.final_equity
        start = self.starting_equity
        scaled = start + (pl.col("equity") - start) * k
        equity = equity.with_columns(
            scaled.alias("equity"), (start + (pl.col("cash") - start) * k).alias("cash"),
            ((pl.col("equity") - pl.col("cash")) * k / scaled).fill_nan(0.0).alias("exposure"))
        trades = trades.with_columns(*(pl.col(c) * k for c in ("qty", "fees", "gross_pnl", "net_pnl")))
        return equity, trades, self.fees_paid * k, start + (self.final_equity - start) * k


TRADE_SCHEMA: dict[str, Any] = {
    "trade_id": pl.String, "symbol": pl.String, "entry_time": pl.Datetime("us", "UTC"),
    "exit_time": pl.Datetime("us", "UTC"), "entry_price": pl.Float64, "exit_price": pl.Float64, "qty": pl.Float64,
    "fees": pl.Float64, "gross_pnl": pl.Float64, "net_pnl": pl.Float64, "return_pct": pl.Float64,
    "entry_reason": pl.String, "exit_reason": pl.String, "exit_kind": pl.String, "exit_code": pl.String,
}


def session_row(session_id: str, mode: Mode, settings: Settings, chash: str, started_at: datetime,
                venue: Venue | None = None) -> dict[str, Any]:
    """The ``sessions`` row of a new session; ``venue`` for sessions that trade on an exchange."""
    return {
        "id": session_id, "mode": mode.value, "started_at": started_at, "strategy": settings.strategy.name,
        "config_hash": chash, "symbols": list(settings.market.symbols), "timeframe": settings.market.timeframe,
        "starting_equity": settings.paper.starting_cash,
        "settings": json.loads(settings.model_dump_json(include={"strategy", "market", "paper", "sizing", "gate"})),
        **({"venue": venue.name, "live_evidence": venue.live_evidence} if venue is not None else {}),
    }


def session_frames(result: SessionResult) -> dict[str, pl.DataFrame]:
    """The session's rows as frames for the store (orders, fills, trades, equity, decisions, events)."""
    frames: dict[str, pl.DataFrame] = {
        "equity": result.equity_frame(),
        "trades": result.trades_frame(),
    }
    if result.orders:
        frames["orders"] = pl.DataFrame([o.to_row() for o in result.orders], infer_schema_length=None)
    if result.fills:
        frames["fills"] = pl.DataFrame([f.to_row() for f in result.fills], infer_schema_length=None)
    if result.decisions:
        frames["decisions"] = pl.DataFrame([
            {**d, "ts": ms_to_dt(d["ts"]), "details": json.dumps(d["details"], default=str)}
            for d in result.decisions
        ], infer_schema_length=None)
    if result.events:
        frames["events"] = pl.DataFrame([
            {**e, "event_id": f"{result.session_id[:8]}-ev{n}", "ts": ms_to_dt(e["ts"]),
             "details": json.dumps(e["details"], default=str)}
            for n, e in enumerate(result.events, 1)
        ], infer_schema_length=None)
    return frames
