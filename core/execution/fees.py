"""Commissions as Binance charges them (R9.1, R9.2): read from ccxt's parsed orders and trades, valued in quote —
a commission in the base asset at the fill price (it also reduces what a buy holds), in the quote as it is, in BNB
(or any other asset) at that asset's own USDT price, never at the traded symbol's — and estimated at the account's
taker rate, in the coin received, when the trades cannot be read."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.domain import Order, Side
from core.market.candles import base_asset

QUOTE = "USDT"


@dataclass(frozen=True)
class Fees:
    """An order's commission so far: its value in quote, the base units it took from a buy, and its asset."""

    value: float
    base_qty: float
    asset: str


def fee_entries(info: dict[str, Any]) -> list[tuple[float, str]]:
    """(cost, currency) of each fee ccxt parsed for an order or a trade."""
    fees = info.get("fees") or ([info["fee"]] if info.get("fee") else [])
    return [(float(f.get("cost") or 0.0), str(f.get("currency") or "")) for f in fees if isinstance(f, dict)]


def value_fees(symbol: str, fill_price: float, entries: list[tuple[float, str]],
               usdt_price: Callable[[str], float]) -> Fees:
    """(cost, asset) commissions valued in quote: the base at the fill price, the quote as it is, any other asset
    (BNB) at its own USDT price (R9.2)."""
    base = base_asset(symbol)
    value = base_qty = 0.0
    asset = QUOTE
    for cost, currency in entries:
        if cost <= 0:
            continue
        asset = currency or QUOTE
        if asset == QUOTE:
            value += cost
        elif asset == base:
            value += cost * fill_price
            base_qty += cost
        else:
            value += cost * usdt_price(asset)
    return Fees(value, base_qty, asset)


def estimated_fees(order: Order, taker_rate: float) -> Fees:
    """The commission at the account's taker rate in the coin received: a buy's in the base asset (it reduces what
    is held, so the stop and the exit sell what the account has), a sell's in quote (R9.1)."""
    if order.side is Side.BUY:
        base_fee = order.filled_qty * taker_rate
        return Fees(base_fee * order.avg_fill_price, base_fee, base_asset(order.symbol))
    return Fees(order.filled_qty * order.avg_fill_price * taker_rate, 0.0, QUOTE)


def fee_in_quote(info: dict[str, Any], price: float, symbol: str,
                 usdt_price: Callable[[str], float] | None = None) -> float:
    """An order's (or trade's) total fee valued in quote (``value_fees``): another asset (BNB) at its USDT price
    from ``usdt_price`` — NaN when that is not given, never at the traded symbol's price (R9.2)."""
    return value_fees(symbol, price, fee_entries(info), usdt_price or (lambda _asset: math.nan)).value


__all__ = ["QUOTE", "Fees", "estimated_fees", "fee_entries", "fee_in_quote", "value_fees"]
