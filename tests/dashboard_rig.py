"""Helpers for the dashboard tests: operators with known tokens, a Rig whose session serves the dashboard, and
seeded 15-minute metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import polars as pl

from core.config import Settings
from core.dashboard.actions import retrying
from core.live.session import LiveOptions
from core.node import open_live
from core.store import Store
from core.venue import sandbox_at
from tests.sandbox_rig import CueStrategy, Rig

TOKENS = {"viewer": "view-token-123", "operator": "op-token-456", "admin": "admin-token-789"}
NAMES = {"viewer": "vera", "operator": "olga", "admin": "ada"}


def operators() -> list[dict[str, Any]]:
    from core.control.auth import hash_token

    return [{"name": NAMES[role], "role": role, "token_sha256": hash_token(tok)} for role, tok in TOKENS.items()]


@dataclass
class DashRig(Rig):
    """The manual-clock Rig, its session serving the dashboard and control API (control_port=0)."""

    def __post_init__(self) -> None:
        self.session = open_live(self.settings, sandbox_at(self.server.url),
                                 LiveOptions(poll_interval_s=0.05, control_port=0))
        self.cues = {}
        for book in self.engine.books:
            self.cues[book.symbol] = self.engine.strategies[book.symbol] = CueStrategy()
            book.use(self.cues[book.symbol])

    @property
    def url(self) -> str:
        if self.session.control is None:
            raise AssertionError("the session serves no dashboard")
        return self.session.control.url


def seed_metrics(settings: Settings, **values: Any) -> dict[str, Any]:
    """One 15-minute metrics snapshot for all live trading (what the scheduled flow stores, R3.3)."""
    row = {"snapshot_id": "seeded-metrics", "ts": datetime(2024, 1, 2, 3, 15, tzinfo=UTC), "scope": "live",
           "mode": "live", "trades": 12, "win_rate": 0.583, "profit_factor": 1.74, "max_drawdown": 0.0213,
           "sharpe": 1.31, "sortino": 1.9, "net_pnl": 41.5, "metrics": {}, **values}
    Store(settings.db_path).insert_rows("metrics_snapshots", [row])
    return row


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
    """A read while a dashboard in this process may be reading too (its connection conflicts for an instant)."""
    return retrying(lambda: Store(settings.db_path).query(sql, params))


def login(base_url: str, token: str) -> tuple[httpx.Client, str]:
    """An HTTP client holding the session cookie, and the session's CSRF token."""
    client = httpx.Client(base_url=base_url, timeout=30)
    answer = client.post("/login", data={"token": token})
    answer.raise_for_status()
    return client, str(answer.json()["csrf"])
