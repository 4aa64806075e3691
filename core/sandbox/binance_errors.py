"""Binance API errors as the sandbox raises them: code, message and HTTP status exactly as Binance sends them.

The app turns a BinanceError into ``{"code": ..., "msg": ...}`` with its HTTP status, so ccxt maps it to the
same exception class it would for real Binance.
"""

from __future__ import annotations

from typing import Any

from core.errors import ExchangeError

DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"


class BinanceError(ExchangeError):
    """A refusal in Binance's words: ``code`` (e.g. -2010), ``msg`` and the HTTP ``status`` (400 unless said)."""

    def __init__(self, code: int, msg: str, status: int = 400, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.data = data  # cancelReplace's -2021/-2022 carry what happened to each half (rest-api.md)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            body["data"] = self.data
        return body


def mandatory(param: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def illegal_chars(param: str, legal: str = DECIMAL_RANGE) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{param}'; legal range is '{legal}'.")


def not_required(param: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{param}' sent when not required.")


def too_much_precision(param: str) -> BinanceError:
    return BinanceError(-1111, f"Parameter '{param}' has too much precision.")


def invalid_param(param: str) -> BinanceError:
    return BinanceError(-1130, f"Invalid data sent for parameter '{param}'.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


def order_rejected(msg: str) -> BinanceError:
    return BinanceError(-2010, msg)


def unknown_order_list() -> BinanceError:
    """Cancel of an order list that is unknown or no longer open."""
    return BinanceError(-2011, "Unknown order list sent.")


def no_such_order_list() -> BinanceError:
    """Query of an order list that does not exist."""
    return BinanceError(-2013, "Order list does not exist.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def invalid_interval() -> BinanceError:
    return BinanceError(-1120, "Invalid interval.")


def unknown_order() -> BinanceError:
    """Cancel of an order that is unknown or no longer open."""
    return BinanceError(-2011, "Unknown order sent.")


def no_such_order() -> BinanceError:
    """Query of an order that does not exist."""
    return BinanceError(-2013, "Order does not exist.")


def bad_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def outside_recv_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def ahead_of_server() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def too_much_weight(limit: int) -> BinanceError:
    return BinanceError(
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        status=429,
    )


def ip_banned(until_ms: int) -> BinanceError:
    """errors.md -1003, with HTTP 418 (rest-api.md, HTTP Return Codes): the IP kept sending after a 429."""
    return BinanceError(
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
        status=418,
    )


def server_busy() -> BinanceError:
    """errors.md -1008 SERVER_BUSY, a server-side (5XX, rest-api.md HTTP Return Codes) refusal: nothing processed."""
    return BinanceError(-1008, "Server is currently overloaded with other requests. Please try again in a few minutes.",
                        status=503)


def market_closed() -> BinanceError:
    """A new order on a symbol that is not TRADING (errors.md, -1013 and the order-placement messages)."""
    return BinanceError(-1013, "Market is closed.")


def stp_mode_not_allowed() -> BinanceError:
    """faqs/stp_faq.md: a selfTradePreventionMode outside the symbol's allowedSelfTradePreventionModes."""
    return BinanceError(-1013, "This symbol does not allow the specified self-trade prevention mode.")


def status_unknown() -> BinanceError:
    return BinanceError(
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        status=503,
    )


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
WOULD_TRIGGER = "Order would trigger immediately."
WOULD_TAKE = "Order would immediately match and take."
