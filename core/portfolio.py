"""Portfolio: cash, open positions, realized P&L and fees, closed trades — updated only by fills.

Spot, long-only: a buy adds to (or opens) the position, a sell reduces it; the round trip becomes a ``Trade`` when
the position is flat again. Entry fees travel with the position, so a trade's net P&L is what the round trip did
to cash. A buy's commission charged in the base asset (Binance's rule without BNB) is not on the account: the
position holds what the account received (R9.1). What is left after a sell below what can be sold (the lot step,
the minimum notional) is dust: the trade closes and the dust is kept apart, valued at the market, never an error.
"""

from __future__ import annotations

from core.domain import BUY, OrderFilled, Position, Trade
from core.errors import OrderError

_FLAT = 1e-12


class Portfolio:
    """Money and holdings of one session. ``equity(marks)`` = cash + mark-to-market of open positions."""

    def __init__(self, starting_cash: float) -> None:
        self.starting_cash = starting_cash
        self.cash = starting_cash
        self.positions: dict[str, Position] = {}
        self.trades: list[Trade] = []
        self.fees_paid = 0.0
        self.realized_pnl = 0.0  # net of fees, closed trades only
        self.dust: dict[str, float] = {}  # symbol -> base units held that cannot be sold (R9.1)

    def apply_fill(self, fill: OrderFilled, reason: str, exit_kind: str = "signal",
                   dust_below: float = 0.0, exit_code: str = "") -> Trade | None:
        """Book a fill; returns the Trade when it closes a position. ``reason`` is the order's reason in words and
        ``exit_code`` its code; after a sell, a remainder below ``dust_below`` units is dust."""
        self.fees_paid += fill.fee
        if fill.side is BUY:
            self._buy(fill, reason)
            return None
        return self._sell(fill, reason, exit_kind, dust_below, exit_code)

    def _buy(self, fill: OrderFilled, reason: str) -> None:
        held = fill.held + self.dust.pop(fill.symbol, 0.0)  # dust joins the new position: sold with it
        # a commission in the base asset is not paid from cash; any other (quote, BNB) is
        self.cash -= fill.qty * fill.price + fill.fee - fill.fee_qty * fill.price
        pos = self.positions.get(fill.symbol)
        if pos is None:
            self.positions[fill.symbol] = Position(
                fill.symbol, held, fill.price, fill.ts, reason, entry_fees=fill.fee
            )
            return
        total = pos.qty + held
        pos.avg_price = (pos.avg_price * pos.qty + fill.price * held) / total
        pos.qty = total
        pos.entry_fees += fill.fee

    def _sell(self, fill: OrderFilled, reason: str, exit_kind: str, dust_below: float = 0.0,
              exit_code: str = "") -> Trade | None:
        pos = self.positions.get(fill.symbol)
        if pos is None or fill.qty > pos.qty * (1 + 1e-9) + _FLAT:
            held = 0.0 if pos is None else pos.qty
            raise OrderError(f"sell of {fill.qty} {fill.symbol} exceeds the position ({held}); spot is long-only")
        self.cash += fill.qty * fill.price - fill.fee
        pos.exit_qty += fill.qty
        pos.exit_value += fill.qty * fill.price
        pos.exit_fees += fill.fee
        pos.qty -= fill.qty
        if pos.qty > _FLAT and pos.qty > pos.exit_qty * 1e-9 and pos.qty >= dust_below:
            return None
        del self.positions[fill.symbol]
        if pos.qty > _FLAT:  # below what can be sold: kept apart as dust (R9.1)
            self.dust[fill.symbol] = self.dust.get(fill.symbol, 0.0) + pos.qty
        qty = pos.exit_qty
        exit_price = pos.exit_value / qty
        gross = (exit_price - pos.avg_price) * qty
        fees = pos.entry_fees + pos.exit_fees
        trade = Trade(
            trade_id=f"{fill.symbol}-{len(self.trades) + 1}", symbol=fill.symbol, entry_ts=pos.entry_ts,
            exit_ts=fill.ts, entry_price=pos.avg_price, exit_price=exit_price, qty=qty, fees=fees,
            gross_pnl=gross, net_pnl=gross - fees, entry_reason=pos.entry_reason, exit_reason=reason,
            exit_kind=exit_kind, exit_code=exit_code,
        )
        self.realized_pnl += trade.net_pnl
        self.trades.append(trade)
        return trade

    def equity(self, marks: dict[str, float]) -> float:
        """Cash plus open positions at ``marks`` (symbol → price); a missing mark uses the entry price."""
        value = self.cash
        for sym, pos in self.positions.items():
            value += pos.qty * marks.get(sym, pos.avg_price)
        for sym, qty in self.dust.items():
            value += qty * marks.get(sym, 0.0)
        return value

    def unrealized_pnl(self, marks: dict[str, float]) -> float:
        return sum((marks.get(s, p.avg_price) - p.avg_price) * p.qty for s, p in self.positions.items())
