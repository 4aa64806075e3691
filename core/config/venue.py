"""Exchange settings (``RAMPART_EXCHANGE__*``): which venue a live session, an emergency stop, a key rotation or
a candle download talks to. What each venue means (its hosts, its clock, whether its trades are live evidence)
is ``core.venue``'s; here are only the choices."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VenueName = Literal["sandbox", "binance-demo", "binance-testnet", "binance"]
VENUE_NAMES: tuple[str, ...] = ("sandbox", "binance-demo", "binance-testnet", "binance")
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8765"


class ExchangeConfig(BaseModel):
    """The venue and how to reach it. The sandbox needs its URL; Binance uses its own hosts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: VenueName = Field("sandbox", description="sandbox (the local Binance twin), binance-demo (Binance Demo "
                            "Mode), binance-testnet (Binance Spot Testnet): rehearsals, never live evidence; "
                            "binance: real money")
    url: str | None = Field(None, description=f"the sandbox's URL (default {DEFAULT_SANDBOX_URL}); only the "
                            "sandbox takes one")
    timeout_ms: int = Field(10_000, ge=500, le=120_000, description="one exchange call's timeout")
    max_weight_share: float = Field(0.5, gt=0, le=1, description="R9.5: routine reads stop at this share of the "
                                    "exchange's request weight per minute (orders and cancels may use the rest)")
    weight_limit: int = Field(6_000, ge=10, le=1_000_000, description="the exchange's request weight per minute "
                              "(Binance spot: 6,000)")
    entry_limit_bps: float = Field(50.0, ge=1, le=1_000, description="R9.3: where an entry carries its stop in an "
                                   "order list, its buy is a limit IOC at most this far above the decision close: "
                                   "a market that ran further is not chased (the entry expires, nothing opens)")
    unknown_outcome_s: float = Field(60.0, ge=1, le=3_600, description="R9.4: how long an order whose outcome is "
                                     "unknown is asked for before it counts as never arrived (nothing is re-sent)")
