"""Read and check a new-order request's parameters the way Binance spot does, with its error codes.

Only what does not depend on the market or the account is checked here (parameters, PRICE_FILTER tick,
LOT_SIZE, TRAILING_DELTA, ICEBERG_PARTS); notional, price bands, balances and duplicates need the exchange.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from decimal import Decimal

from core.sandbox import binance_errors as be
from core.sandbox.orders import STOP_TYPES
from core.sandbox.symbols import (
    ORDER_TYPES,
    STP_ALLOWED,
    STP_DEFAULT,
    STP_MODES,
    ZERO,
    SymbolSpec,
    check_iceberg,
    check_quantity,
    check_trailing,
    parse_decimal,
)

CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
CLIENT_ID_RANGE = "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESP_TYPES = ("ACK", "RESULT", "FULL")
_ID_ALPHABET = string.ascii_letters + string.digits


def new_client_id() -> str:
    """A Binance-looking generated client order id (22 characters)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


@dataclass(frozen=True)
class NewOrder:
    """A validated new-order request."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal | None
    quote_qty: Decimal | None
    price: Decimal
    stop_price: Decimal
    trailing_delta: int | None
    iceberg_qty: Decimal
    client_order_id: str
    resp_type: str
    stp_mode: str

    @property
    def is_market(self) -> bool:
        return self.type == "MARKET"

    @property
    def takes_limit(self) -> bool:
        return self.type in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")


def _enum(params: dict[str, str], name: str, allowed: tuple[str, ...], code: int, msg: str) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = raw.upper()
    if value not in allowed:
        raise be.BinanceError(code, msg)
    return value


def _require_absent(params: dict[str, str], *names: str) -> None:
    for name in names:
        if params.get(name) not in (None, ""):
            raise be.not_required(name)


def _trailing(params: dict[str, str]) -> int | None:
    raw = params.get("trailingDelta")
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise be.illegal_chars("trailingDelta", "^[0-9]{1,20}$")
    delta = int(raw)
    check_trailing(delta)
    return delta


def _client_id(params: dict[str, str]) -> str:
    raw = params.get("newClientOrderId")
    if raw is None:
        return new_client_id()
    if raw == "":
        raise be.BinanceError(-1118, "New client order ID was empty.")
    if not CLIENT_ID.match(raw):
        raise be.illegal_chars("newClientOrderId", CLIENT_ID_RANGE)
    return raw


def parse_new_order(params: dict[str, str], specs: dict[str, SymbolSpec]) -> NewOrder:
    """A NewOrder from the request's parameters; BinanceError (-11xx, -1013) when they are not acceptable."""
    symbol = params.get("symbol", "")
    if not symbol:
        raise be.mandatory("symbol")
    if symbol.upper() not in specs:
        raise be.invalid_symbol()
    spec = specs[symbol.upper()]
    side = _enum(params, "side", ("BUY", "SELL"), -1117, "Invalid side.")
    order_type = _enum(params, "type", ORDER_TYPES, -1116, "Invalid orderType.")
    if side is None:
        raise be.mandatory("side")
    if order_type is None:
        raise be.mandatory("type")
    tif = _enum(params, "timeInForce", TIME_IN_FORCE, -1115, "Invalid timeInForce.")
    resp_default = "FULL" if order_type in ("MARKET", "LIMIT", "LIMIT_MAKER") else "ACK"
    resp_type = _enum(params, "newOrderRespType", RESP_TYPES, -1130,
                      "Invalid data sent for parameter 'newOrderRespType'.") or resp_default
    stp = _enum(params, "selfTradePreventionMode", STP_MODES, -1130,
                "Invalid data sent for parameter 'selfTradePreventionMode'.") or STP_DEFAULT
    if stp not in STP_ALLOWED:
        raise be.stp_mode_not_allowed()
    quantity = parse_decimal(params, "quantity")
    quote_qty = parse_decimal(params, "quoteOrderQty")
    price = parse_decimal(params, "price")
    stop = parse_decimal(params, "stopPrice")
    iceberg = parse_decimal(params, "icebergQty")
    trailing = _trailing(params)

    if order_type == "MARKET":
        _require_absent(params, "price", "stopPrice", "trailingDelta", "icebergQty", "timeInForce")
        if quantity is None and quote_qty is None:
            raise be.BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if quantity is not None and quote_qty is not None:
            raise be.BinanceError(-1128, "Combination of optional parameters invalid.")
        if quote_qty is not None and quote_qty <= 0:
            raise be.BinanceError(-1013, "Invalid quoteOrderQty.")
    else:
        _require_absent(params, "quoteOrderQty")
        if quantity is None:
            raise be.mandatory("quantity")
    if order_type in ("LIMIT", "LIMIT_MAKER"):
        _require_absent(params, "stopPrice", "trailingDelta")
    if order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
        if tif is None:
            raise be.mandatory("timeInForce")
    elif order_type != "MARKET":
        _require_absent(params, "timeInForce")
    if order_type in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
        if price is None:
            raise be.mandatory("price")
    elif order_type != "MARKET":
        _require_absent(params, "price")
    if order_type in STOP_TYPES and stop is None and trailing is None:
        raise be.mandatory("stopPrice")
    if quantity is not None:
        check_quantity(spec, quantity, market=order_type == "MARKET")
    if iceberg is not None and iceberg > 0:
        limit_types = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        if order_type not in limit_types or tif not in (None, "GTC"):
            raise be.order_rejected("Iceberg orders are only allowed on GTC limit orders.")
        check_iceberg(quantity or ZERO, iceberg, spec)
    return NewOrder(
        symbol=spec.symbol, side=side, type=order_type, time_in_force=tif or "GTC", quantity=quantity,
        quote_qty=quote_qty, price=price or ZERO, stop_price=stop or ZERO, trailing_delta=trailing,
        iceberg_qty=iceberg or ZERO, client_order_id=_client_id(params), resp_type=resp_type, stp_mode=stp,
    )
