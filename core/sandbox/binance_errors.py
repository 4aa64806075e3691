"""Binance API errors as the sandbox raises them: code, message and HTTP status exactly as Binance sends them.

The app turns a BinanceError into ``{"code": ..., "msg": ...}`` with its HTTP status, so ccxt maps it to the
same exception class it would for real Binance.
"""

from __future__ import annotations

from core.errors import ExchangeError

DECIMAL_RANGE = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"


class BinanceError(ExchangeError):
    """A refusal in Binance's words: ``code`` (e.g. -2010), ``msg`` and the HTTP ``status`` (400 unless said)."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}


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
