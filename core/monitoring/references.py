"""What each live order's fills are measured against, learned from the rows a live session flushes.

A market entry or exit is measured against the close it was decided at (the decision row's ``market.price``); a
protective stop against its trigger price (the order row's ``stop_price``). The decision log prices each fill's
slippage with it and the slippage alert rule compares that with the paper model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from core.monitoring.rules import Reference


class OrderReferences:
    """client order id -> Reference, from the ``decisions`` and ``orders`` rows of each flush."""

    def __init__(self) -> None:
        self._refs: dict[str, Reference] = {}

    def learn(self, new: Mapping[str, pl.DataFrame]) -> None:
        decisions = new.get("decisions")
        if decisions is not None and decisions.height:
            for row in decisions.filter(pl.col("kind") == "order").iter_rows(named=True):
                details = details_of(row.get("details"))
                order = details.get("order") or {}
                price = (details.get("market") or {}).get("price")
                cid = order.get("client_order_id")
                if cid and isinstance(price, int | float):
                    tag = "entry" if row.get("action") == "enter" else "exit"
                    self._refs[cid] = Reference(cid, float(price), "decision close", tag)
        orders = new.get("orders")
        if orders is not None and orders.height:
            for row in orders.filter(pl.col("tag") == "stop").iter_rows(named=True):
                cid, stop = row.get("client_order_id"), row.get("stop_price")
                if cid and stop and cid not in self._refs:
                    self._refs[cid] = Reference(cid, float(stop), "stop trigger", "stop")

    def get(self, client_order_id: str | None) -> Reference | None:
        return self._refs.get(client_order_id or "")


def details_of(raw: Any) -> dict[str, Any]:
    """A decisions/events ``details`` value as a dict (flushed frames carry it as JSON text)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


__all__ = ["OrderReferences", "details_of"]
