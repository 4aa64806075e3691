"""Symbol rules of the sandbox: Binance spot's filters per symbol, their checks, and exchangeInfo's JSON.

Values follow Binance spot (2024): BTCUSDT tick 0.01 / step 0.00001, ETHUSDT tick 0.01 / step 0.0001,
minimum notional 5 USDT. Symbols not in the table get tick 0.01 / step 0.001.

PERCENT_PRICE_BY_SIDE (filters.md) bounds a LIMIT/LIMIT_MAKER/*_LIMIT ``price`` by the side's multipliers of the
average price over the last ``avgPriceMins`` (5) minutes, the one GET /api/v3/avgPrice serves; ``stopPrice`` gets
PRICE_FILTER only. Self-trade prevention: the default mode and the allowed modes are Binance's for all symbols
after the changelog's 2025-05-07 (DECREMENT) and 2026-04-02 (TRANSFER) releases; a mode outside them is refused
with faqs/stp_faq.md's -1013. Symbol status (enums.md): TRADING, END_OF_DAY, HALT, BREAK, CANCEL_ONLY.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from core.market.candles import symbol_to_ccxt
from core.sandbox import binance_errors as be

EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)
_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")

ORDER_TYPES: tuple[str, ...] = (
    "LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT",
)
STP_MODES: tuple[str, ...] = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER")
STP_DEFAULT = "EXPIRE_MAKER"
STP_ALLOWED: tuple[str, ...] = ("EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER")
SYMBOL_STATUSES: tuple[str, ...] = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")
AVG_PRICE_MINS = 5
MAX_NUM_ORDERS = 200
MAX_NUM_ALGO_ORDERS = 5
MAX_NUM_ORDER_LISTS = 20  # filters.md, MAX_NUM_ORDER_LISTS (the CHANGELOG's 20 per symbol)
ICEBERG_PARTS = 10
TRAILING_MIN, TRAILING_MAX = 10, 2000
PRICE_MULT_UP, PRICE_MULT_DOWN = Decimal(5), Decimal("0.2")  # PERCENT_PRICE_BY_SIDE defaults, both sides


@dataclass(frozen=True)
class SymbolSpec:
    """One spot symbol's trading rules (Decimals, as the exchange compares them)."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal = Decimal(5)
    max_notional: Decimal = Decimal(9_000_000)
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal(1_000_000)
    bid_up: Decimal = PRICE_MULT_UP  # PERCENT_PRICE_BY_SIDE bidMultiplierUp (BUY orders)
    bid_down: Decimal = PRICE_MULT_DOWN
    ask_up: Decimal = PRICE_MULT_UP  # askMultiplierUp (SELL orders)
    ask_down: Decimal = PRICE_MULT_DOWN

    def round_price(self, price: float | Decimal) -> Decimal:
        """Nearest tick (used for book and fill prices derived from the float path)."""
        d = Decimal(str(price)) if isinstance(price, float) else price
        return (d / self.tick).to_integral_value(ROUND_HALF_UP) * self.tick

    def floor_qty(self, qty: Decimal) -> Decimal:
        """Quantity rounded down to the lot step."""
        return (qty / self.step).to_integral_value(ROUND_DOWN) * self.step


_TABLE: dict[str, tuple[str, str, str, str, str]] = {
    # symbol: tick, step, min_qty, max_qty, market max qty
    "BTCUSDT": ("0.01", "0.00001", "0.00001", "9000", "100"),
    "ETHUSDT": ("0.01", "0.0001", "0.0001", "9000", "2000"),
    "LTCUSDT": ("0.01", "0.001", "0.001", "90000", "20000"),
    "SOLUSDT": ("0.01", "0.001", "0.001", "90000", "20000"),
    "BNBUSDT": ("0.01", "0.001", "0.001", "90000", "5000"),
    "XRPUSDT": ("0.0001", "0.1", "0.1", "9222449", "1000000"),
}
_DEFAULT = ("0.01", "0.001", "0.001", "90000", "10000")


def spec_for(symbol: str) -> SymbolSpec:
    """The rules of ``symbol`` (exchange form, e.g. BTCUSDT)."""
    base, quote = symbol_to_ccxt(symbol).split("/")
    tick, step, min_qty, max_qty, market_max = (Decimal(v) for v in _TABLE.get(symbol, _DEFAULT))
    return SymbolSpec(symbol, base, quote, tick, step, min_qty, max_qty, market_max, min_price=tick)


def fmt(value: Decimal | float | int) -> str:
    """Binance's decimal string: eight places, e.g. "0.05000000"."""
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(d.quantize(EIGHT, ROUND_HALF_UP), "f")


def parse_decimal(params: dict[str, str], name: str, *, required: bool = False) -> Decimal | None:
    """A decimal parameter as Binance reads it: plain digits only, at most 8 places (-1100, -1102, -1111)."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise be.mandatory(name)
        return None
    if not _DECIMAL.match(raw):
        raise be.illegal_chars(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise be.illegal_chars(name) from None
    if value != value.quantize(EIGHT, ROUND_DOWN):
        raise be.too_much_precision(name)
    return value


def _multiple(value: Decimal, base: Decimal, unit: Decimal) -> bool:
    return unit == 0 or (value - base) % unit == 0


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER (range and tick) of a ``price`` or ``stopPrice``."""
    if price <= 0:
        raise be.BinanceError(-1013, "Invalid price.")
    if price < spec.min_price or price > spec.max_price or not _multiple(price, spec.min_price, spec.tick):
        raise be.filter_failure("PRICE_FILTER")


def check_percent_price(spec: SymbolSpec, side: str, price: Decimal, average: Decimal) -> None:
    """PERCENT_PRICE_BY_SIDE (filters.md): a BUY's price within [avg x bidMultiplierDown, avg x bidMultiplierUp],
    a SELL's within the ask multipliers, ``average`` being the price over the last avgPriceMins minutes."""
    if average <= 0:
        return
    up, down = (spec.bid_up, spec.bid_down) if side == "BUY" else (spec.ask_up, spec.ask_down)
    if not average * down <= price <= average * up:
        raise be.filter_failure("PERCENT_PRICE_BY_SIDE")


def check_quantity(spec: SymbolSpec, qty: Decimal, *, market: bool) -> None:
    """LOT_SIZE for every order, MARKET_LOT_SIZE too for market orders."""
    if qty <= 0:
        raise be.BinanceError(-1013, "Invalid quantity.")
    if qty < spec.min_qty or qty > spec.max_qty or not _multiple(qty, spec.min_qty, spec.step):
        raise be.filter_failure("LOT_SIZE")
    if market and qty > spec.market_max_qty:
        raise be.filter_failure("MARKET_LOT_SIZE")


def check_notional(spec: SymbolSpec, notional: Decimal, *, market: bool) -> None:
    """NOTIONAL: min applies to every order (applyMinToMarket), max only to non-market orders."""
    if notional < spec.min_notional or (not market and notional > spec.max_notional):
        raise be.filter_failure("NOTIONAL")


def check_trailing(delta: int) -> None:
    if not TRAILING_MIN <= delta <= TRAILING_MAX:
        raise be.filter_failure("TRAILING_DELTA")


def check_iceberg(qty: Decimal, iceberg: Decimal, spec: SymbolSpec) -> None:
    if iceberg <= 0 or iceberg > qty or -(-qty // iceberg) > ICEBERG_PARTS:
        raise be.filter_failure("ICEBERG_PARTS")
    check_quantity(spec, iceberg, market=False)


def _filters(spec: SymbolSpec) -> list[dict[str, Any]]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": fmt(spec.min_price), "maxPrice": fmt(spec.max_price),
         "tickSize": fmt(spec.tick)},
        {"filterType": "LOT_SIZE", "minQty": fmt(spec.min_qty), "maxQty": fmt(spec.max_qty),
         "stepSize": fmt(spec.step)},
        {"filterType": "ICEBERG_PARTS", "limit": ICEBERG_PARTS},
        {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(0), "maxQty": fmt(spec.market_max_qty),
         "stepSize": fmt(0)},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": TRAILING_MIN,
         "maxTrailingAboveDelta": TRAILING_MAX, "minTrailingBelowDelta": TRAILING_MIN,
         "maxTrailingBelowDelta": TRAILING_MAX},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": _plain(spec.bid_up),
         "bidMultiplierDown": _plain(spec.bid_down), "askMultiplierUp": _plain(spec.ask_up),
         "askMultiplierDown": _plain(spec.ask_down), "avgPriceMins": AVG_PRICE_MINS},
        {"filterType": "NOTIONAL", "minNotional": fmt(spec.min_notional), "applyMinToMarket": True,
         "maxNotional": fmt(spec.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_NUM_ALGO_ORDERS},
        {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": MAX_NUM_ORDER_LISTS},
    ]


def _plain(value: Decimal) -> str:
    """A multiplier as Binance writes it: "5", "0.2"."""
    return format(value.normalize(), "f")


def symbol_info(spec: SymbolSpec, status: str = "TRADING", order_lists: bool = True) -> dict[str, Any]:
    """One entry of exchangeInfo's ``symbols``, shaped as Binance spot returns it; ``order_lists`` False stands for
    a venue without OTO/OPO and cancel-replace."""
    return {
        "symbol": spec.symbol,
        "status": status,
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": True,
        "ocoAllowed": False,
        "otoAllowed": order_lists,  # POST /api/v3/orderList/oto (core.sandbox.order_lists)
        "opoAllowed": order_lists,  # POST /api/v3/orderList/opo (faqs/opo: needs otoAllowed and opoAllowed)
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": order_lists,  # POST /api/v3/order/cancelReplace (core.sandbox.cancel_replace)
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": _filters(spec),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": STP_DEFAULT,
        "allowedSelfTradePreventionModes": list(STP_ALLOWED),
    }


def exchange_info(specs: list[SymbolSpec], server_time: int, weight_limit: int,
                  statuses: Mapping[str, str] | None = None, order_lists: bool = True) -> dict[str, Any]:
    """The whole /api/v3/exchangeInfo body (``statuses``: symbol -> status, TRADING when not given)."""
    statuses = statuses or {}
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200_000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61_000},
        ],
        "exchangeFilters": [],
        "symbols": [symbol_info(s, statuses.get(s.symbol, "TRADING"), order_lists) for s in specs],
    }
