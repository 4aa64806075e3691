"""The live session's recorder: each bar's new rows into DuckDB (one transaction), the state file after every bar,
and the journal entry written *before* every order is sent (so a restart knows every order that may exist).

Once the HALT flag is up the emergency stop owns the account and the state file: nothing more is sent or saved.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from core.domain import Mode, Order
from core.engine import Engine
from core.errors import TradingHalted
from core.execution.broker import Broker
from core.execution.ccxt_broker import CcxtBroker
from core.result import session_frames
from core.state.live import LiveState, save_state
from core.store import Store

INCREMENTAL_TABLES = ("fills", "trades", "decisions", "events", "equity")


class Recorder:
    """Writes one live session's rows and state; ``halted`` says whether an emergency stop has taken over."""

    def __init__(self, store: Store, session_id: str, state_path: Path, state: LiveState,
                 halted: Callable[[], bool]) -> None:
        self.store, self.session_id, self.state_path = store, session_id, state_path
        self.state = state
        self.halted = halted
        self.mode = Mode.LIVE  # what its trades are tagged; forward paper: PAPER
        self.keeps_cash = False  # forward paper: the simulated cash lives in the state file
        self._written: dict[str, int] = {}
        self._restarted = True  # until the first flush after a restart: fills a dead session stored are not re-written
        self._order_marks: dict[str, tuple[str, float]] = {}

    def journal(self, order: Order) -> None:
        """The broker's ``before_submit``: remember the order durably, or refuse to send it once HALTED."""
        if self.halted():
            raise TradingHalted(f"HALTED by an emergency stop: {order.client_order_id} not sent")
        self.state.remember_order(order)
        save_state(self.state_path, self.state)

    def flush(self, engine: Engine, *brokers: CcxtBroker | Broker) -> dict[str, pl.DataFrame]:
        """This bar's new rows into DuckDB in one transaction, then the state file; returns the new rows."""
        for broker in brokers:
            notices: list[Any] = getattr(broker, "notices", [])
            for notice in notices:
                engine.emit(notice)
            notices.clear()
        res = engine.result
        frames = session_frames(res)
        new: dict[str, pl.DataFrame] = {}
        for table in INCREMENTAL_TABLES:
            frame = frames.get(table)
            done = self._written.get(table, 0)
            if frame is not None and frame.height > done:
                new[table] = frame.slice(done).with_columns(pl.lit(self.session_id).alias("session_id"))
                self._written[table] = frame.height
        changed = [o for o in res.orders if self._order_marks.get(o.client_order_id) != (o.status, o.filled_qty)]
        if changed:
            new["orders"] = pl.DataFrame([o.to_row() for o in changed], infer_schema_length=None).with_columns(
                pl.lit(self.session_id).alias("session_id"))
            self._order_marks.update({o.client_order_id: (o.status, o.filled_qty) for o in changed})
        if "trades" in new:
            new["trades"] = new["trades"].with_columns(pl.lit(self.mode.value).alias("mode"))
        if self._restarted and ("fills" in new or "trades" in new):
            self._drop_stored(new)
        self.store.append_many(new)
        self.save(engine)
        return new

    def _drop_stored(self, new: dict[str, pl.DataFrame]) -> None:
        """A session killed between writing its rows and saving its state leaves fills the restart books again
        (reconciliation finds them filled): they are the same fills (same fill ids), and the trades they closed the
        same trades; stored once, not twice."""
        self._restarted = False
        fills = new.get("fills")
        if fills is not None and fills.height:
            ids = fills["fill_id"].to_list()
            marks = ", ".join("?" * len(ids))
            stored = set(self.store.query(f"select fill_id from fills where fill_id in ({marks})", ids)["fill_id"])
            if stored:
                new["fills"] = fills.filter(~pl.col("fill_id").is_in(list(stored)))
        trades = new.get("trades")
        if trades is not None and trades.height:
            keys = self.store.query("select symbol, exit_time, qty from trades where exit_time >= ?",
                                    [trades["exit_time"].min()])
            known = {(r[0], r[1], round(float(r[2]), 10)) for r in keys.iter_rows()}
            keep = [(r["symbol"], r["exit_time"], round(float(r["qty"]), 10)) not in known
                    for r in trades.iter_rows(named=True)]
            new["trades"] = trades.filter(pl.Series(keep, dtype=pl.Boolean))

    def save(self, engine: Engine) -> None:
        """The state file from the engine: trading state, risk state, positions, working orders."""
        if self.halted():  # checked right before writing: the stop's HALTED state wins
            return
        state = self.state
        state.trading_state = engine.risk.state.value
        state.risk = engine.risk.to_state()
        state.dust = {s: q for s, q in engine.portfolio.dust.items() if q > 0}
        if self.keeps_cash:
            state.cash = engine.portfolio.cash
        state.orders = {}
        for bar in engine.books:
            state.remember_position(bar.position, bar.symbol)
            for order in bar.working:
                state.remember_order(order)
        save_state(self.state_path, state)


__all__ = ["Recorder"]
