"""The chaos benchmark's ground truth: what the exchange holds, and what it says against Rampart's records.

``read_exchange`` asks the sandbox (faults off) through the real ccxt client for balances, every order, every
trade, the open orders, prices and filters. The checks compare that snapshot with Rampart's own records:

- ``unprotected``: a non-dust position (its sellable quantity, floored to the lot step, worth the minimum notional)
  that the working protective stops (open STOP_LOSS / STOP_LOSS_LIMIT sells) do not cover for its sellable quantity,
  allowing one lot step (the dust a buy's commission leaves may sit beside the stopped quantity);
- ``duplicates``: a client order id the exchange holds twice, or two entries (buys) for one decision (the same
  symbol and bar in the id ``rp<session>-<SYMBOL>-<bar ts36><tag>``, from different sessions);
- ``unknown_orders``: an exchange order whose client id is in no session's ``orders`` table;
- ``lost_fills``: an exchange order whose executed quantity is more than the ``fills`` table holds for its client id
  (``overbooked`` is the opposite: fills booked that the exchange never made);
- ``mismatches``: a symbol whose managed quantity in the state file (position + dust) is not the account's holding
  above the baseline.

The sandbox's market clock keeps running after a session stops, and a stop left on the exchange may fill then:
given ``until`` (the market time the session ended), the last two checks count only the exchange's trades up to
then and take the holding as it was then; the later trades are the next session's to book (``after``).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOP_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT"})
QTY_EPS = 1e-9


@dataclass(frozen=True)
class Snapshot:
    """What the exchange holds for the symbols: ``orders`` and ``open_orders`` are ccxt orders, ``trades`` ccxt
    trades, ``filters`` symbol -> (lot step, minimum notional)."""

    balances: dict[str, float]
    orders: list[dict[str, Any]]
    open_orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    prices: dict[str, float]
    filters: dict[str, tuple[float, float]]


def ccxt_symbol(symbol: str) -> str:
    return f"{symbol[:-4]}/{symbol[-4:]}"


def read_exchange(client: Any, symbols: list[str]) -> Snapshot:
    """The account as the exchange sees it now (ask with the faults off: this is the bench's look, not Rampart's)."""
    markets = client.load_markets()
    filters: dict[str, tuple[float, float]] = {}
    for sym in symbols:
        info = {f["filterType"]: f for f in markets[ccxt_symbol(sym)]["info"].get("filters", [])}
        notional = info.get("NOTIONAL") or info.get("MIN_NOTIONAL") or {}
        filters[sym] = (float(info["LOT_SIZE"]["stepSize"]), float(notional.get("minNotional", 5.0)))

    def trades() -> list[dict[str, Any]]:
        return [t for s in symbols for t in client.fetch_my_trades(ccxt_symbol(s), limit=1000)]

    # the market goes on while we read: a stop that fills between the balance and the trades would show in the
    # trades and not in the balance. Read until the trades before and after the balance are the same.
    for _ in range(50):
        before = trades()
        totals = client.fetch_balance()["total"]
        orders = [o for s in symbols for o in client.fetch_orders(ccxt_symbol(s), limit=1000)]
        open_orders = [o for s in symbols for o in client.fetch_open_orders(ccxt_symbol(s))]
        after = trades()
        if [t["id"] for t in before] == [t["id"] for t in after]:
            break
    return Snapshot(
        balances={str(a): float(v or 0.0) for a, v in totals.items()},
        orders=orders, open_orders=open_orders, trades=after,
        prices={s: float(client.fetch_ticker(ccxt_symbol(s))["bid"]) for s in symbols},
        filters=filters)


def _symbol(order: dict[str, Any]) -> str:
    return str(order["symbol"]).replace("/", "")


def held(snap: Snapshot, symbol: str, baseline: dict[str, float]) -> float:
    """Base units on the account above what was there before Rampart (the state file's baseline)."""
    asset = symbol[:-4]
    return snap.balances.get(asset, 0.0) - float(baseline.get(asset, 0.0))


def unprotected(snap: Snapshot, symbols: list[str], baseline: dict[str, float]) -> list[dict[str, Any]]:
    """Every non-dust position the working stops do not cover, with its sellable and covered quantities."""
    out = []
    for sym in symbols:
        step, min_notional = snap.filters[sym]
        sellable = math.floor(held(snap, sym, baseline) / step + 1e-6) * step
        price = snap.prices[sym]
        if sellable <= 0 or sellable * price < min_notional:
            continue  # flat, or dust that cannot be sold anyway
        covered = sum(float(o["amount"]) - float(o.get("filled") or 0.0) for o in snap.open_orders
                      if _symbol(o) == sym and o["side"] == "sell" and o["info"].get("type") in STOP_TYPES)
        if sellable - covered > step * 1.01:
            out.append({"symbol": sym, "sellable": round(sellable, 8), "covered": round(covered, 8),
                        "value": round(sellable * price, 2)})
    return out


def decision_key(cid: str) -> tuple[str, str] | None:
    """(symbol, bar ts36 + tag) of one of Rampart's client ids: the same for every session deciding that bar."""
    parts = cid.split("-", 2)
    if len(parts) != 3 or not parts[0].startswith("rp"):
        return None
    return parts[1], parts[2]


def duplicates(snap: Snapshot) -> list[dict[str, Any]]:
    """Client ids the exchange holds more than once; entries (buys) sent twice for one decision."""
    counts = Counter(str(o.get("clientOrderId")) for o in snap.orders)
    out: list[dict[str, Any]] = [{"kind": "client_id", "id": cid, "count": n} for cid, n in counts.items() if n > 1]
    entries: dict[tuple[str, str], set[str]] = defaultdict(set)
    for o in snap.orders:
        key = decision_key(str(o.get("clientOrderId")))
        if key is not None and o["side"] == "buy":
            entries[key].add(str(o["clientOrderId"]))
    out += [{"kind": "decision", "id": "-".join(k), "orders": sorted(v)} for k, v in entries.items() if len(v) > 1]
    return out


def unknown_orders(snap: Snapshot, known: set[str]) -> list[str]:
    """Exchange orders whose client id no session of Rampart's store recorded."""
    return sorted({str(o.get("clientOrderId")) for o in snap.orders} - known)


def after(snap: Snapshot, until: int | None) -> list[dict[str, Any]]:
    """The exchange's trades after market time ``until`` (none when it is None)."""
    return [] if until is None else [t for t in snap.trades if int(t["timestamp"]) > until]


def lost_fills(snap: Snapshot, booked: dict[str, float],
               until: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(orders with exchange fills the ``fills`` table lacks, orders with more booked than the exchange filled),
    the exchange's trades counted up to market time ``until``."""
    by_id = {str(o["id"]): str(o.get("clientOrderId")) for o in snap.orders}
    executed: dict[str, float] = defaultdict(float)
    trades: Counter[str] = Counter()
    late = {id(t) for t in after(snap, until)}
    for t in (t for t in snap.trades if id(t) not in late):
        cid = by_id.get(str(t.get("order")), f"order {t.get('order')}")
        executed[cid] += float(t["amount"])
        trades[cid] += 1
    lost, over = [], []
    for cid in sorted(set(executed) | set(booked)):
        exchange, ours = executed.get(cid, 0.0), booked.get(cid, 0.0)
        tolerance = max(QTY_EPS, exchange * 1e-9)
        if exchange - ours > tolerance:
            lost.append({"id": cid, "exchange": exchange, "booked": ours, "trades": trades[cid]})
        elif ours - exchange > tolerance:
            over.append({"id": cid, "exchange": exchange, "booked": ours})
    return lost, over


def mismatches(snap: Snapshot, symbols: list[str], state: dict[str, Any],
               until: int | None = None) -> list[dict[str, Any]]:
    """Symbols whose managed quantity in the state file (position + dust) is not what the account held at market
    time ``until`` (now, when None)."""
    out = []
    baseline = state.get("baseline") or {}
    late = after(snap, until)
    for sym in symbols:
        books = float((state.get("positions") or {}).get(sym, {}).get("qty", 0.0)) + float(
            (state.get("dust") or {}).get(sym, 0.0))
        account = held(snap, sym, baseline)
        for t in (t for t in late if str(t["symbol"]).replace("/", "") == sym):  # undo what came after
            fee = t.get("fee") or {}
            in_base = float(fee.get("cost") or 0.0) if fee.get("currency") == sym[:-4] else 0.0
            account -= float(t["amount"]) - in_base if t["side"] == "buy" else -float(t["amount"]) - in_base
        if abs(books - account) > max(QTY_EPS, abs(account) * 1e-9):
            out.append({"symbol": sym, "books": books, "exchange": account})
    return out


def read_state(path: Path) -> dict[str, Any]:
    """The live state file, or {} while there is none (it is replaced atomically, so a read is whole)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data


def in_flight(state: dict[str, Any]) -> list[str]:
    """Orders journalled as sent whose answer the state file does not record yet: tags, e.g. ['entry']."""
    return sorted(o["tag"] for o in (state.get("orders") or {}).values()
                  if o.get("status") in ("initialized", "submitted"))
