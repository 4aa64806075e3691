"""Value types of the trading domain: orders (a state machine), fills, positions, trades, signals, states.

Vocabulary follows nautilus_trader: commands are verbs (``SubmitOrder``), events past tense
(``OrderDenied``, ``OrderFilled``). Quantities are base-asset units, prices and money are quote (USDT).
Timestamps are integer milliseconds since the epoch, UTC — the exchange's own unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.errors import OrderError
from core.quickinit import quick_init


def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def dt_to_ms(dt: datetime) -> int:
    """Aware datetime → epoch milliseconds (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class Mode(StrEnum):
    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop-market for paper; STOP_LOSS_LIMIT on the exchange


class OrderTag(StrEnum):
    """Why an order exists: it opens a position, closes one on a signal, or protects one."""

    ENTRY = "entry"
    EXIT = "exit"
    STOP = "stop"


class OrderStatus(StrEnum):
    INITIALIZED = "initialized"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


_S = OrderStatus
# The order state machine: status -> statuses it may move to. Anything else is a bug or a bad exchange payload.
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.INITIALIZED: frozenset({_S.SUBMITTED, _S.REJECTED, _S.CANCELED}),
    _S.SUBMITTED: frozenset({_S.ACCEPTED, _S.REJECTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}
OPEN_STATUSES = frozenset({_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED})

# The members the order path reads on every fill, as plain names: in Python 3.11 reading an Enum member through
# its class (``Side.BUY``) takes ~90 ns — ``EnumType.__getattr__`` puts every class attribute read on a slow
# path — against ~10 ns for a module global, and a replay reads them hundreds of thousands of times.
BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
TAG_ENTRY, TAG_EXIT, TAG_STOP = OrderTag.ENTRY, OrderTag.EXIT, OrderTag.STOP
INITIALIZED, SUBMITTED, ACCEPTED, PARTIALLY_FILLED = _S.INITIALIZED, _S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED
FILLED, CANCELED, REJECTED = _S.FILLED, _S.CANCELED, _S.REJECTED


class TradingState(StrEnum):
    """ACTIVE trades normally; REDUCING only shrinks; SAFE_MODE allows exits only; HALTED trades nothing new."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    SAFE_MODE = "SAFE_MODE"
    HALTED = "HALTED"


class Reason(StrEnum):
    """Coded reasons carried by every refusal or automatic action."""

    NOT_ALLOWED_SYMBOL = "NOT_ALLOWED_SYMBOL"
    TRADING_STATE = "TRADING_STATE"
    INVALID_STOP = "INVALID_STOP"
    BELOW_LOT_STEP = "BELOW_LOT_STEP"
    BELOW_MIN_NOTIONAL = "BELOW_MIN_NOTIONAL"
    EXPOSURE_CAP = "EXPOSURE_CAP"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    ORDER_PENDING = "ORDER_PENDING"
    ALREADY_IN_POSITION = "ALREADY_IN_POSITION"
    STALE_SIGNAL = "STALE_SIGNAL"


@dataclass(frozen=True, slots=True)
class Instrument:
    """Exchange trading rules for one symbol (Binance filters PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    symbol: str
    tick_size: float = 0.01
    lot_step: float = 0.00001  # 0 means fractional (no rounding), used by the benchmark workload
    min_notional: float = 5.0

    def round_qty(self, qty: float) -> float:
        """Round a quantity *down* to the lot step (never up: that would exceed the risk budget)."""
        if self.lot_step <= 0:
            return qty
        steps = int(qty / self.lot_step + 1e-9)
        return round(steps * self.lot_step, 12)


@quick_init
@dataclass(frozen=True, slots=True)
class Signal:
    """What a strategy wants: enter long with a protective stop, or exit; always with its reason in words and a
    short reason code (``TIME_EXIT``, ``TAKE_PROFIT``…) that reports and the parity checks compare."""

    symbol: str
    action: str  # "enter" | "exit"
    reason: str
    stop: float | None = None
    target: float | None = None
    indicators: dict[str, float] = field(default_factory=dict)
    code: str = ""

    @staticmethod
    def enter(symbol: str, stop: float, reason: str, target: float | None = None, *, code: str = "ENTRY",
              **indicators: float) -> Signal:
        """Buy, with the protective ``stop`` price (below the close) placed on the exchange as soon as it fills;
        ``target`` is kept on the position (``bar.position.target``) for the strategy's own exit."""
        return Signal(symbol, "enter", reason, stop, target, indicators, code)

    @staticmethod
    def exit(symbol: str, reason: str, *, code: str = "EXIT", **indicators: float) -> Signal:
        """Sell the whole position at market."""
        return Signal(symbol, "exit", reason, None, None, indicators, code)


class Order:
    """A working order and its state machine; ``apply`` moves it along ``ORDER_TRANSITIONS`` or raises."""

    __slots__ = (
        "avg_fill_price", "client_order_id", "code", "created_ts", "exchange_order_id", "filled_qty", "price",
        "qty", "quote_qty", "reason", "side", "status", "stop_price", "symbol", "tag", "target", "type",
        "updated_ts",
    )

    def __init__(
        self, client_order_id: str, symbol: str, side: Side, type: OrderType, qty: float, tag: OrderTag,
        created_ts: int, reason: str = "", price: float | None = None, stop_price: float | None = None,
        quote_qty: float | None = None, target: float | None = None, code: str = "",
    ) -> None:
        if not qty > 0:
            raise OrderError(f"order {client_order_id}: quantity must be positive, got {qty}")
        self.client_order_id = client_order_id
        self.exchange_order_id: str | None = None
        self.symbol = symbol
        self.side = side
        self.type = type
        self.qty = qty
        self.tag = tag
        self.price = price
        self.quote_qty = quote_qty  # spend this much quote (market buy); qty is then an estimate
        self.stop_price = stop_price
        self.reason = reason
        self.target = target  # an entry's take-profit level, kept on the position for the strategy
        self.code = code  # the signal's reason code (ENTRY, TIME_EXIT, STOP, ...)
        self.status = INITIALIZED
        self.filled_qty = 0.0
        self.avg_fill_price = 0.0
        self.created_ts = created_ts
        self.updated_ts = created_ts

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        return self.qty - self.filled_qty

    def apply(self, status: OrderStatus, ts: int) -> None:
        if status not in ORDER_TRANSITIONS[self.status]:
            raise OrderError(f"order {self.client_order_id}: illegal transition {self.status} -> {status}")
        self.status = status
        self.updated_ts = ts

    def record_fill(self, qty: float, price: float, ts: int) -> None:
        """Add a (partial) fill: updates average price and moves to PARTIALLY_FILLED or FILLED."""
        total = self.filled_qty + qty
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        done = total >= self.qty * (1 - 1e-9)
        self.apply(FILLED if done else PARTIALLY_FILLED, ts)

    def to_row(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id, "exchange_order_id": self.exchange_order_id,
            "symbol": self.symbol, "side": self.side.value, "type": self.type.value, "qty": self.qty,
            "price": self.price, "stop_price": self.stop_price, "status": self.status.value,
            "filled_qty": self.filled_qty, "avg_fill_price": self.avg_fill_price or None,
            "created_at": ms_to_dt(self.created_ts), "updated_at": ms_to_dt(self.updated_ts),
            "tag": self.tag.value, "reason": self.reason,
        }


@quick_init
@dataclass(frozen=True, slots=True)
class OrderFilled:
    """Event: (part of) an order was executed. ``fee`` is the commission valued in quote (R9.2), ``fee_asset`` the
    asset it was charged in; ``slippage`` is the quote cost versus the reference price."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    ts: int
    tag: OrderTag
    liquidity: str = "taker"
    slippage: float = 0.0
    fee_asset: str = "USDT"
    fee_qty: float = 0.0  # base units the commission took from a buy (Binance's rule without BNB, R9.1)

    @property
    def held(self) -> float:
        """What the fill adds to (a buy) or takes from (a sell) the position on the account."""
        return self.qty - self.fee_qty if self.side is BUY else self.qty

    def to_row(self) -> dict[str, Any]:
        return {
            "fill_id": self.fill_id, "client_order_id": self.client_order_id, "symbol": self.symbol,
            "side": self.side.value, "qty": self.qty, "price": self.price, "fee": self.fee,
            "fee_asset": self.fee_asset, "liquidity": self.liquidity, "slippage": self.slippage,
            "ts": ms_to_dt(self.ts),
        }


@quick_init
@dataclass(frozen=True, slots=True)
class OrderDenied:
    """Event: the risk engine refused an order. ``code`` is a Reason, ``detail`` carries the numbers; ``checks``
    the checks that ran up to the refusal (the last one failed), each with its numbers."""

    symbol: str
    code: str
    detail: str
    ts: int
    checks: tuple[dict[str, Any], ...] = ()

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


@dataclass(slots=True)
class Position:
    """An open long position and what it cost to open (entry fees are carried into the closing trade)."""

    symbol: str
    qty: float
    avg_price: float
    entry_ts: int
    entry_reason: str
    entry_fees: float = 0.0
    stop: float | None = None
    exit_qty: float = 0.0
    exit_value: float = 0.0
    exit_fees: float = 0.0
    # what the strategy said at entry: the open time of the bar it decided on (its identity in every mode and
    # across restarts: bars held count from it) and its target; a position adopted from the exchange has none
    signal_ts: int | None = None
    target: float | None = None

    @property
    def entry_price(self) -> float:
        """The average fill price of the entry."""
        return self.avg_price


@quick_init
@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip, with the reasons in words for entering and leaving."""

    trade_id: str
    symbol: str
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    qty: float
    fees: float
    gross_pnl: float
    net_pnl: float
    entry_reason: str
    exit_reason: str
    exit_kind: str
    exit_code: str = ""  # the exit signal's code, STOP for the protective stop, PROTECT for a protection sale

    def to_row(self) -> dict[str, Any]:
        cost = self.entry_price * self.qty
        return {
            "trade_id": self.trade_id, "symbol": self.symbol, "entry_time": ms_to_dt(self.entry_ts),
            "exit_time": ms_to_dt(self.exit_ts), "entry_price": self.entry_price, "exit_price": self.exit_price,
            "qty": self.qty, "fees": self.fees, "gross_pnl": self.gross_pnl, "net_pnl": self.net_pnl,
            "return_pct": self.net_pnl / cost if cost else 0.0, "entry_reason": self.entry_reason,
            "exit_reason": self.exit_reason, "exit_kind": self.exit_kind, "exit_code": self.exit_code,
        }
