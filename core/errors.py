"""Rampart's one exception tree: every error a caller may need to handle derives from RampartError.

Exchange and library errors are translated once, at the adapter boundary, into one of these
(`raise ConfigError(...) from exc`). Each message says what is wrong and what to do about it.
A risk refusal is *not* an exception: it is a returned ``OrderDenied`` event.
"""

from __future__ import annotations

from dataclasses import dataclass


class RampartError(Exception):
    """Base class of every error Rampart raises on purpose."""


class ConfigError(RampartError):
    """A setting or command-line argument is invalid; the message names it and the valid range."""


class StrategyError(ConfigError):
    """A strategy cannot be loaded or used: its file does not import, the class is not a Strategy, or an indicator
    is malformed. The message names the file or class and what to fix."""


class LookAheadError(StrategyError):
    """A strategy read beyond the bar it decides on, or an indicator changed an earlier bar's value when a later bar
    arrived (it used future data). The session fails closed: no decision is taken on such data."""


class DataError(RampartError):
    """Market data could not be read or is unusable (missing file, unknown format, bad columns)."""


@dataclass(frozen=True)
class DataProblem:
    """One failed data-quality check: which check, on which rows, with a short explanation."""

    check: str
    symbol: str
    rows: tuple[int, ...]
    timestamps: tuple[str, ...]
    detail: str

    def __str__(self) -> str:
        shown = ", ".join(f"row {r} ({t})" for r, t in zip(self.rows[:5], self.timestamps[:5], strict=False))
        more = f" and {len(self.rows) - 5} more" if len(self.rows) > 5 else ""
        return f"{self.symbol} {self.check}: {self.detail} at {shown}{more}"


class DataQualityError(DataError):
    """A batch of candles failed the data-quality suite; ``problems`` names each failed check and row."""

    def __init__(self, problems: list[DataProblem], where: str = "") -> None:
        self.problems = list(problems)
        self.where = where  # e.g. the file and resolution the rows belong to; "" when the caller knows
        lines = "; ".join(str(p) for p in self.problems)
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{len(self.problems)} data-quality problem(s): {lines}")


class StoreError(RampartError):
    """The DuckDB store could not be opened, migrated or written (e.g. locked by another process)."""


class SessionError(RampartError):
    """A trading session failed; the session is recorded as errored and the gate fails (R1.5)."""


class TradingHalted(SessionError):
    """An emergency stop took over the account while the session was about to send an order: the order is not
    sent and the session stops as halted. Not a failure of the session."""


class OrderError(RampartError):
    """An order could not be built or was rejected by the broker for a reason that is not a risk denial."""


class ExchangeError(RampartError):
    """The exchange (or the sandbox) failed or refused a request. Subclasses say whether a retry can help."""


class ExchangeUnavailable(ExchangeError):
    """Network error, timeout, 5xx or rate limit: transient, a retry may succeed. For an order, its outcome is
    unknown (Binance: "execution status unknown"): ask the exchange before sending anything again (R9.4)."""


class ExchangeBusy(ExchangeUnavailable):
    """Binance -1008: the server is overloaded; try again later (R9.5)."""


class RateLimited(ExchangeUnavailable):
    """The exchange asked us to back off (429 Retry-After, 418 IP ban) or our own weight budget is spent: nothing
    is sent until ``until`` (epoch seconds). ``banned`` is an IP ban (HTTP 418)."""

    def __init__(self, message: str, until: float, banned: bool = False) -> None:
        super().__init__(message)
        self.until = until
        self.banned = banned


class ClockOutOfSync(ExchangeUnavailable):
    """Binance -1021: our timestamp is ahead of the server's or outside recvWindow; resynchronise the clock."""


class AuthenticationError(ExchangeError):
    """Credentials are missing, malformed or refused by the exchange: fix the keys; never retried."""


class ExchangeRejected(ExchangeError):
    """The exchange refused the request itself (filters, balance, unknown symbol): retrying will not help."""


class OrderNotFound(ExchangeError):
    """The exchange does not know this order (never accepted, or already purged)."""
