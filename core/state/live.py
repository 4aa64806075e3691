"""The live session's durable state: trading state, ladder rung, managed positions and working orders.

Written atomically (temp file, fsync, rename) *before* every order is sent and after every bar, so a
process killed at any instant restarts knowing every order it may have sent (R6.4). The exchange remains
the authority: reconciliation compares this file with it and repairs the file, never the other way round.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.domain import Order, OrderStatus, OrderTag, OrderType, Position, Side, TradingState
from core.errors import ConfigError


@dataclass
class LiveState:
    trading_state: str = TradingState.ACTIVE.value
    rung: int = 0
    session_id: str | None = None
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # working or in-flight, by client order id
    baseline: dict[str, float] = field(default_factory=dict)  # base-asset holdings that are not Rampart's
    risk: dict[str, Any] = field(default_factory=dict)  # de-risking, high-water mark, breakers (RiskEngine.to_state)
    # R5.3: approved new symbols -> {"review_id", "reviewer", "who", "requested_at", "first_ms"}: first_ms is when
    # a session first traded it (its half-risk days count from there); kept across restarts
    new_symbols: dict[str, dict[str, Any]] = field(default_factory=dict)
    dust: dict[str, float] = field(default_factory=dict)  # symbol -> base units held below what can be sold
    cash: float | None = None  # forward paper only: the simulated account's quote balance (live: the exchange's)

    # --- conversions ---------------------------------------------------------------------------------------
    def remember_order(self, order: Order) -> None:
        self.orders[order.client_order_id] = {
            "symbol": order.symbol, "side": order.side.value, "type": order.type.value, "qty": order.qty,
            "tag": order.tag.value, "reason": order.reason, "price": order.price, "stop_price": order.stop_price,
            "quote_qty": order.quote_qty, "created_ts": order.created_ts, "status": order.status.value,
            "exchange_order_id": order.exchange_order_id, "filled_qty": order.filled_qty,
        }

    def order(self, client_order_id: str) -> Order:
        d = self.orders[client_order_id]
        order = Order(client_order_id, d["symbol"], Side(d["side"]), OrderType(d["type"]), d["qty"],
                      OrderTag(d["tag"]), d["created_ts"], d.get("reason", ""), d.get("price"), d.get("stop_price"),
                      d.get("quote_qty"))
        order.exchange_order_id = d.get("exchange_order_id")
        order.status = OrderStatus(d.get("status", OrderStatus.SUBMITTED.value))
        if order.status is OrderStatus.INITIALIZED:
            order.status = OrderStatus.SUBMITTED  # it may have reached the exchange before the crash
        return order

    def remember_position(self, pos: Position | None, symbol: str) -> None:
        if pos is None:
            self.positions.pop(symbol, None)
        else:
            self.positions[symbol] = asdict(pos)

    def position(self, symbol: str) -> Position | None:
        d = self.positions.get(symbol)
        return Position(**d) if d else None


def load_state(path: Path) -> LiveState:
    """The saved state, or a fresh one when there is none; a corrupt file is an error, never ignored."""
    if not path.exists():
        return LiveState()
    try:
        data = json.loads(path.read_text())
        return LiveState(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"live state file {path} is unreadable ({exc}); inspect it, then move it away "
                          "to start from the exchange's view") from None


def save_state(path: Path, state: LiveState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(asdict(state), fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
