"""Everything one running sandbox holds: the exchange engine, authentication, weight meter, rate-limit bans,
faults, and the server clock's skew.

The FastAPI app, the control routes and tests all reach the sandbox through one SandboxService, so a test
can drive the market (``service.exchange.advance``) and read counters without HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Any

from core.sandbox.auth import SAPI_IP_LIMIT, Authenticator, WeightMeter
from core.sandbox.config import KeyPermissions, SandboxConfig
from core.sandbox.exchange import SandboxExchange
from core.sandbox.faults import FaultInjector
from core.sandbox.limits import RateLimits
from core.sandbox.market import wall_ms


class SandboxService:
    """One sandbox: build it from a config (the market is loaded here), serve it with create_app."""

    def __init__(self, config: SandboxConfig, exchange: SandboxExchange | None = None) -> None:
        self.config = config
        self.exchange = exchange or SandboxExchange(config)
        self.auth = Authenticator(self.exchange.keys, config.recv_window_max)
        self.weights = WeightMeter(config.weight_limit)
        self.sapi_weights = WeightMeter(SAPI_IP_LIMIT)  # Binance meters SAPI (/sapi/...) weight apart
        self.faults = FaultInjector(config.faults)
        self.limits = RateLimits(config.ban_s)
        self.clock_skew_ms = 0  # POST /sandbox/clock-skew: the server's time = wall clock + this
        self._matcher: asyncio.Task[None] | None = None

    def server_ms(self) -> int:
        """The time the server reports (/api/v3/time, serverTime) and checks signed timestamps against."""
        return wall_ms() + self.clock_skew_ms

    async def start(self) -> None:
        """Start market time now and, in realtime mode, the background matcher."""
        self.exchange.restart_clock()
        if not self.config.manual:
            self._matcher = asyncio.create_task(self._match_forever())

    async def stop(self) -> None:
        if self._matcher is not None:
            self._matcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._matcher
            self._matcher = None

    async def _match_forever(self) -> None:
        """Resting orders fill at the right market time even when no request comes in."""
        period = 1.0 / self.config.match_hz
        while True:
            self.exchange.sync()
            await asyncio.sleep(period)

    def stats(self) -> dict[str, Any]:
        """Counters for tests and operators: authenticated calls, auth failures, orders, injected faults."""
        with self.exchange.lock:
            return {
                **self.auth.stats.json(),
                "orders_placed": dict(self.exchange.orders_placed),
                "weight_used_1m": self.weights.used,
                "sapi_weight_used_1m": self.sapi_weights.used,
                "faults": self.faults.config.spec(),
                "faults_injected": dict(self.faults.injected),
                "injected": dict(self.faults.injections_done),
                "inject_pending": self.faults.pending_injections(),
                "late_orders": [dict(o) for o in self.exchange.late_orders],
                "clock_skew_ms": self.clock_skew_ms,
                "symbol_status": dict(self.exchange.status),
                **self.limits.json(),
            }

    def state(self) -> dict[str, Any]:
        """Market time, prices and every account's balances and open orders (no secrets)."""
        with self.exchange.lock:
            now = self.exchange.sync()
            market = self.exchange.market
            accounts = {}
            for account in self.exchange.accounts.values():
                accounts[account.id] = {
                    "keys": self.exchange.keys.keys_of(account.id),
                    "key_permissions": {k: asdict(self.exchange.keys.permissions(k) or KeyPermissions())
                                        for k in self.exchange.keys.keys_of(account.id)},
                    "balances": account.balances_json(self.exchange.assets, omit_zero=False),
                    "open_orders": [o.query_json() for o in account.open_orders()],
                    "orders": len(account.orders),
                    "trades": len(account.trades),
                }
            return {
                "market_time": now, "clock": self.config.clock, "speed": self.config.speed,
                "exhausted": market.exhausted,
                "prices": {s: float(market.specs[s].round_price(market.price(s, now))) for s in market.symbols},
                "accounts": accounts,
            }
