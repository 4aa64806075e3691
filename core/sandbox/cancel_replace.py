"""POST /api/v3/order/cancelReplace on the sandbox (no HTTP): cancel an order and place a new one in one request.

As rest-api.md ("Cancel an Existing Order and Send a New Order") and errors.md (-2021, -2022) describe it:
- the new order's parameters and filters are checked first: a bad parameter or a filter failure (-11xx, -1013)
  refuses the whole request, nothing cancelled;
- the cancel (``cancelOrderId`` and/or ``cancelOrigClientOrderId``; ``cancelNewClientOrderId``; ``cancelRestrictions``
  ONLY_NEW / ONLY_PARTIALLY_FILLED) fails with -2011 as DELETE /api/v3/order would. Cancelling an order of an
  order list cancels the whole list (its cancelResponse is the order's, with its orderListId);
- ``cancelReplaceMode`` STOP_ON_FAILURE: a failed cancel -> HTTP 400 -2022 "Order cancel-replace failed." with
  ``data`` {cancelResult FAILURE, newOrderResult NOT_ATTEMPTED, cancelResponse {code, msg}, newOrderResponse null};
  ALLOW_FAILURE: the new order is attempted anyway;
- cancelled but the new order refused (funds, market closed ...) -> HTTP 409 -2021 "Order cancel-replace partially
  failed." (the cancel stays done: not transactional); cancel failed but the new order placed (ALLOW_FAILURE) ->
  409 -2021; both failed -> 400 -2022; both succeeded -> 200 {cancelResult SUCCESS, newOrderResult SUCCESS,
  cancelResponse, newOrderResponse}.
Not modelled: the unfilled order count (so ``orderRateLimitExceededMode`` is only validated), pegged orders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.sandbox import binance_errors as be
from core.sandbox.account_api import int_param
from core.sandbox.order_params import new_client_id, parse_new_order

if TYPE_CHECKING:
    from core.sandbox.accounts import Account
    from core.sandbox.exchange import SandboxExchange

MODES = ("STOP_ON_FAILURE", "ALLOW_FAILURE")
RESTRICTIONS = ("ONLY_NEW", "ONLY_PARTIALLY_FILLED")
RATE_MODES = ("DO_NOTHING", "CANCEL_ONLY")
PARTIALLY_FAILED = "Order cancel-replace partially failed."
FAILED = "Order cancel-replace failed."
RESTRICTED = "Order was not canceled due to cancel restrictions."


def _enum(params: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = params.get(name, "")
    if not raw:
        return None
    if raw.upper() not in allowed:
        if name == "cancelRestrictions":
            raise be.BinanceError(-1145, "Invalid cancelRestrictions")
        raise be.invalid_param(name)
    return raw.upper()


def cancel_replace(exchange: SandboxExchange, api_key: str, params: dict[str, str], *,
                   partial: float | None = None) -> dict[str, Any]:
    """The 200 answer, or BinanceError: a plain refusal (nothing done), or -2021/-2022 with ``data``."""
    with exchange.lock:
        now = exchange.sync()
        mode = _enum(params, "cancelReplaceMode", MODES)
        if mode is None:
            raise be.mandatory("cancelReplaceMode")
        restriction = _enum(params, "cancelRestrictions", RESTRICTIONS)
        _enum(params, "orderRateLimitExceededMode", RATE_MODES)
        cancel_id = int_param(params, "cancelOrderId")
        cancel_client_id = params.get("cancelOrigClientOrderId") or None
        if cancel_id is None and cancel_client_id is None:
            raise be.BinanceError(-1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both "
                                         "were empty/null!")
        req = parse_new_order(params, exchange.market.specs)
        account = exchange.account_of(api_key)
        spec = exchange.market.specs[req.symbol]
        exchange.check_filters(req, spec, exchange.market.price(req.symbol, now), now)

        cancelled, cancel_response = _cancel(exchange, account, req.symbol, cancel_id, cancel_client_id,
                                             restriction, params.get("cancelNewClientOrderId") or new_client_id())
        data: dict[str, Any] = {"cancelResult": "SUCCESS" if cancelled else "FAILURE",
                                "newOrderResult": "NOT_ATTEMPTED", "cancelResponse": cancel_response,
                                "newOrderResponse": None}
        if not cancelled and mode == "STOP_ON_FAILURE":
            raise be.BinanceError(-2022, FAILED, 400, data)
        try:
            data["newOrderResponse"] = exchange.place_order(api_key, params, partial=partial)
            data["newOrderResult"] = "SUCCESS"
        except be.BinanceError as exc:
            data["newOrderResponse"] = {"code": exc.code, "msg": exc.msg}
            data["newOrderResult"] = "FAILURE"
        placed = data["newOrderResult"] == "SUCCESS"
        if cancelled and placed:
            return data
        if cancelled or placed:
            raise be.BinanceError(-2021, PARTIALLY_FAILED, 409, data)
        raise be.BinanceError(-2022, FAILED, 400, data)


def _cancel(exchange: SandboxExchange, account: Account, symbol: str, order_id: int | None, client_id: str | None,
            restriction: str | None, cancel_client_id: str) -> tuple[bool, dict[str, Any]]:
    """(cancelled?, the cancelResponse: the cancelled order, or the -2011 error as {code, msg})."""
    order = account.find(symbol, order_id, client_id)
    if order is None or not order.is_open:
        return False, be.unknown_order().body()
    if restriction is not None and order.status != restriction.removeprefix("ONLY_"):
        return False, {"code": -2011, "msg": RESTRICTED}
    now = exchange.cancel(account, order)
    return True, order.cancel_json(cancel_client_id, now)
