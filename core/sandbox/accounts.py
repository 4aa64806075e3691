"""Accounts of the sandbox exchange (balances free/locked, orders, trades) and the API keys that reach them.

An account is named after the API key it was created with; more keys can be added to it (two valid keys
during a rotation) and revoked. Each key has its KeyPermissions (read, trade, withdraw, IP-restricted) and a
creation time (wall ms). Secrets stay inside the KeyRing: nothing here renders them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.errors import ConfigError
from core.sandbox import binance_errors as be
from core.sandbox.config import KeyPermissions
from core.sandbox.orders import Order, Trade
from core.sandbox.symbols import ZERO, fmt


@dataclass
class Account:
    """One spot account. Every order's lock is part of ``locked``; ``free`` is what new orders can use."""

    id: str
    free: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    locked: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    update_time: int = 0
    prevented: list[dict[str, Any]] = field(default_factory=list)  # myPreventedMatches, oldest first

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from free to locked, or refuse with Binance's insufficient-balance error."""
        if amount > self.free[asset]:
            raise be.order_rejected(be.INSUFFICIENT_BALANCE)
        self.free[asset] -= amount
        self.locked[asset] += amount

    def release(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` back from locked to free (an order ended with some of its lock unused)."""
        self.locked[asset] -= amount
        self.free[asset] += amount

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def find(self, symbol: str, order_id: int | None, client_order_id: str | None) -> Order | None:
        """The order by id, or the latest one with that client order id, on ``symbol``."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.symbol != symbol:
                return None
            if client_order_id is not None and order.client_order_id != client_order_id:
                return None
            return order
        matches = [o for o in self.orders.values() if o.symbol == symbol and o.client_order_id == client_order_id]
        return matches[-1] if matches else None

    def balances_json(self, assets: list[str], omit_zero: bool) -> list[dict[str, Any]]:
        names = list(dict.fromkeys([*assets, *self.free.keys(), *self.locked.keys()]))
        rows = []
        for asset in names:
            free, locked = self.free[asset], self.locked[asset]
            if omit_zero and free == ZERO and locked == ZERO:
                continue
            rows.append({"asset": asset, "free": fmt(free), "locked": fmt(locked)})
        return rows


@dataclass(frozen=True)
class ApiKey:
    """One key of the ring: its secret (never in ``repr``), account, permissions and creation time (wall ms)."""

    secret: str = field(repr=False)
    account: str
    permissions: KeyPermissions
    create_time: int


class KeyRing:
    """API key -> ApiKey (secret, account id, permissions). Lookups never expose the secret beyond the signature
    check."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}

    def add(self, api_key: str, secret: str, account: str, permissions: KeyPermissions | None = None) -> None:
        """Add ``api_key`` to ``account``, or replace its secret and permissions (editing the same key keeps its
        creation time; a new secret is a new key, created now)."""
        if not api_key or not secret or len(api_key) > 128 or any(c.isspace() for c in api_key):
            raise ConfigError("an API key and secret must be non-empty (key: no spaces, at most 128 characters)")
        old = self._keys.get(api_key)
        if old is not None and old.account != account:
            raise ConfigError(f"API key {api_key!r} already belongs to another account")
        created = old.create_time if old is not None and old.secret == secret else time.time_ns() // 1_000_000
        self._keys[api_key] = ApiKey(secret, account, permissions or KeyPermissions(), created)

    def revoke(self, api_key: str) -> None:
        if api_key not in self._keys:
            raise ConfigError(f"API key {api_key!r} is not known; nothing to revoke")
        del self._keys[api_key]

    def secret(self, api_key: str) -> str | None:
        entry = self._keys.get(api_key)
        return entry.secret if entry else None

    def account(self, api_key: str) -> str | None:
        entry = self._keys.get(api_key)
        return entry.account if entry else None

    def get(self, api_key: str) -> ApiKey | None:
        return self._keys.get(api_key)

    def permissions(self, api_key: str) -> KeyPermissions | None:
        entry = self._keys.get(api_key)
        return entry.permissions if entry else None

    def keys_of(self, account: str) -> list[str]:
        return [k for k, entry in self._keys.items() if entry.account == account]
