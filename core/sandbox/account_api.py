"""The signed Binance spot endpoints as plain functions: (exchange, account, params) -> Binance JSON.

POST /order is SandboxExchange.place_order; these are the rest: query and cancel an order, cancel all,
openOrders, allOrders, account, account/commission, myTrades and myPreventedMatches, and a test order's commission
rates, with Binance's parameter rules and error codes.
"""

from __future__ import annotations

from typing import Any

from core.sandbox import binance_errors as be
from core.sandbox.accounts import Account
from core.sandbox.config import KeyPermissions
from core.sandbox.exchange import BNB, BNB_DISCOUNT, SandboxExchange
from core.sandbox.order_params import new_client_id
from core.sandbox.orders import Order

DEFAULT_LIMIT, MAX_LIMIT = 500, 1000
ZERO_RATE = "0.00000000"


def int_param(params: dict[str, str], name: str, *, required: bool = False) -> int | None:
    """An integer parameter (-1102 when required and missing, -1100 when not digits)."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise be.mandatory(name)
        return None
    if not raw.lstrip("-").isdigit():
        raise be.illegal_chars(name, "^[0-9]{1,20}$")
    return int(raw)


def bool_param(params: dict[str, str], name: str) -> bool:
    """A BOOLEAN parameter: "true" or "false" in any case, absent = false (-1100 otherwise)."""
    raw = params.get(name, "").lower()
    if raw not in ("", "true", "false"):
        raise be.illegal_chars(name, "^(true|false)$")
    return raw == "true"


def limit_param(params: dict[str, str], default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    limit = int_param(params, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise be.invalid_param("limit")
    return limit


def symbol_param(exchange: SandboxExchange, params: dict[str, str], *, required: bool = True) -> str | None:
    raw = params.get("symbol")
    if not raw:
        if required:
            raise be.mandatory("symbol")
        return None
    if raw.upper() not in exchange.market.specs:
        raise be.invalid_symbol()
    return raw.upper()


def _find(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> tuple[str, Order | None]:
    symbol = symbol_param(exchange, params) or ""
    order_id = int_param(params, "orderId")
    client_id = params.get("origClientOrderId") or None
    if order_id is None and client_id is None:
        raise be.BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return symbol, account.find(symbol, order_id, client_id)


def query_order(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> dict[str, Any]:
    """GET /api/v3/order: -2013 when the order does not exist."""
    with exchange.lock:
        exchange.sync()
        _, order = _find(exchange, account, params)
        if order is None:
            raise be.no_such_order()
        return order.query_json()


def cancel_order(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> dict[str, Any]:
    """DELETE /api/v3/order: -2011 when the order is unknown or no longer open (filled, canceled, expired)."""
    with exchange.lock:
        exchange.sync()
        _, order = _find(exchange, account, params)
        if order is None or not order.is_open:
            raise be.unknown_order()
        now = exchange.cancel(account, order)
        return order.cancel_json(params.get("newClientOrderId") or new_client_id(), now)


def cancel_open_orders(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """DELETE /api/v3/openOrders: every open order of the symbol, an order list's as one entry shaped like DELETE
    /api/v3/orderList's answer (rest-api.md's example); -2011 when there is none."""
    with exchange.lock:
        exchange.sync()
        symbol = symbol_param(exchange, params)
        orders = account.open_orders(symbol)
        if not orders:
            raise be.unknown_order()
        cancel_id = new_client_id()
        out = []
        for order in orders:
            if order.order_list_id >= 0:
                lst = exchange.desk.lists[order.order_list_id]
                if not lst.done:
                    out.append(exchange.desk.cancel(account, lst, cancel_id))
                continue
            now = exchange.cancel(account, order)
            out.append(order.cancel_json(cancel_id, now))
        return out


def open_orders(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/openOrders (all symbols when none is given)."""
    with exchange.lock:
        exchange.sync()
        symbol = symbol_param(exchange, params, required=False)
        return [o.query_json() for o in account.open_orders(symbol)]


def _window(items: list[Any], params: dict[str, str], time_of: Any, id_of: Any, from_name: str) -> list[Any]:
    """Binance's paging: from an id upwards, or within [startTime, endTime], else the most recent ``limit``."""
    limit = limit_param(params)
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    from_id = int_param(params, from_name)
    if from_id is not None:
        return [x for x in items if id_of(x) >= from_id][:limit]
    if start is not None or end is not None:
        picked = [x for x in items if (start is None or time_of(x) >= start) and (end is None or time_of(x) <= end)]
        return picked[:limit] if start is not None else picked[-limit:]
    return items[-limit:]


def all_orders(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/allOrders for one symbol, oldest first."""
    with exchange.lock:
        exchange.sync()
        symbol = symbol_param(exchange, params)
        orders = sorted((o for o in account.orders.values() if o.symbol == symbol), key=lambda o: o.order_id)
        picked = _window(orders, params, lambda o: o.time, lambda o: o.order_id, "orderId")
        return [o.query_json() for o in picked]


def my_trades(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/myTrades for one symbol (optionally one order), oldest first."""
    with exchange.lock:
        exchange.sync()
        symbol = symbol_param(exchange, params)
        order_id = int_param(params, "orderId")
        trades = [t for t in account.trades if t.symbol == symbol and (order_id is None or t.order_id == order_id)]
        picked = _window(trades, params, lambda t: t.time, lambda t: t.id, "fromId")
        return [t.json() for t in picked]


def account_info(exchange: SandboxExchange, account: Account, params: dict[str, str],
                 permissions: KeyPermissions | None = None) -> dict[str, Any]:
    """GET /api/v3/account: commissions, permissions and balances (free/locked) as Binance spot.

    ``canTrade`` and ``canWithdraw`` are the account as the calling key sees it: its ``trading`` and
    ``withdrawals`` permissions (KeyPermissions; the default key trades and cannot withdraw). ``canDeposit`` is
    always true."""
    rights = permissions or KeyPermissions()
    with exchange.lock:
        exchange.sync()
        omit = params.get("omitZeroBalances", "false").lower() == "true"
        taker = exchange.config.taker_fee
        maker = exchange.config.maker_fee
        return {
            "makerCommission": round(maker * 10_000), "takerCommission": round(taker * 10_000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": f"{maker:.8f}", "taker": f"{taker:.8f}", "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": rights.trading, "canWithdraw": rights.withdrawals, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": account.update_time,
            "accountType": "SPOT", "balances": account.balances_json(exchange.assets, omit),
            "permissions": ["SPOT"], "uid": _uid(account.id),
        }


def commission_rates(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> dict[str, Any]:
    """GET /api/v3/account/commission (rest-api.md, Query Commission Rates): the configured maker/taker rates,
    no tax or special commission, and the BNB discount, enabled for the account when BNB pays the fees."""
    symbol = symbol_param(exchange, params)
    config = exchange.config
    nothing = {"maker": ZERO_RATE, "taker": ZERO_RATE, "buyer": ZERO_RATE, "seller": ZERO_RATE}
    return {
        "symbol": symbol,
        "standardCommission": {"maker": f"{config.maker_fee:.8f}", "taker": f"{config.taker_fee:.8f}",
                               "buyer": ZERO_RATE, "seller": ZERO_RATE},
        "specialCommission": dict(nothing),
        "taxCommission": dict(nothing),
        "discount": _discount(exchange),
    }


def commission_for_test_order(exchange: SandboxExchange) -> dict[str, Any]:
    """POST /api/v3/order/test with computeCommissionRates=true (rest-api.md, Test new order): the rates trades
    from that order would pay, maker and taker (the configured fees; no special or tax commission), and the
    BNB discount, enabled for the account when BNB pays the fees."""
    config = exchange.config
    nothing = {"maker": ZERO_RATE, "taker": ZERO_RATE}
    return {
        "standardCommissionForOrder": {"maker": f"{config.maker_fee:.8f}", "taker": f"{config.taker_fee:.8f}"},
        "specialCommissionForOrder": dict(nothing),
        "taxCommissionForOrder": dict(nothing),
        "discount": _discount(exchange),
    }


def _discount(exchange: SandboxExchange) -> dict[str, Any]:
    return {"enabledForAccount": exchange.config.commission == "bnb", "enabledForSymbol": True,
            "discountAsset": BNB, "discount": f"{BNB_DISCOUNT:.8f}"}


def prevented_matches(exchange: SandboxExchange, account: Account, params: dict[str, str]) -> list[dict[str, Any]]:
    """GET /api/v3/myPreventedMatches: by ``preventedMatchId``, or by ``orderId`` (taker or maker) optionally from
    ``fromPreventedMatchId`` with ``limit``."""
    with exchange.lock:
        exchange.sync()
        symbol = symbol_param(exchange, params)
        match_id = int_param(params, "preventedMatchId")
        order_id = int_param(params, "orderId")
        rows = [m for m in account.prevented if m["symbol"] == symbol]
        if match_id is not None:
            return [dict(m) for m in rows if m["preventedMatchId"] == match_id]
        if order_id is None:
            raise be.BinanceError(-1102, "Param 'preventedMatchId' or 'orderId' must be sent, "
                                         "but both were empty/null!")
        start = int_param(params, "fromPreventedMatchId")
        rows = [m for m in rows if order_id in (m["takerOrderId"], m["makerOrderId"])
                and (start is None or m["preventedMatchId"] >= start)]
        return [dict(m) for m in rows[:limit_param(params)]]


def _uid(account_id: str) -> int:
    """A stable numeric account id (Binance's uid) derived from the account name."""
    return 100_000_000 + sum((i + 1) * ord(c) for i, c in enumerate(account_id)) % 900_000_000
