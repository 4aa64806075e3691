"""The decision log's execution half and its JSON lines (R3.5): enough to explain a live trade without the code.

The engine already writes a ``decisions`` row per signal (reason, indicators, market conditions, each risk check
with its result, sizing inputs, outcome) and per automatic action. ``DecisionLog`` adds, for a live session:

- the spread at decision time: ``quote`` (the session's quote source) reads the top of the exchange's order book
  when a signal is decided, so the signal row's ``market`` holds bid, ask and spread next to price and volatility ratio;
- ``execution`` rows: every order sent or cancelled — the request (ccxt arguments, client order id), the
  exchange's answer (id, status, filled, average, fees) or the error, and the latency;
- ``fill`` rows: price, quantity, fee, and slippage against the decision close (market orders) or the stop
  trigger (stops), in quote and in bps;
- ``trade`` rows: each closed round trip with its P&L, exit reason and the client order ids behind it.

Rows are timed on the engine clock like the engine's own (the bar on which an order was sent or a fill booked);
the exchange's and the wall clock's times are in the details (``sent_at``, ``filled_at``, ``exit_time``).
Its rows go straight to DuckDB at each flush (the engine's ``result.decisions`` are not touched, so nothing is
written twice), and every decision row of the session — the engine's and these — is appended as one JSON object
per line to ``<data_dir>/logs/decisions.jsonl``, redacted, and rotated by size (``logs.decisions_rotate_mb``, the
newest ``logs.decisions_keep_files`` parts kept: ``core.logfiles``; DuckDB keeps every row). ``order_story`` /
``explain_trade`` read a trade back.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from core.config.logs import LogsConfig
from core.domain import ms_to_dt
from core.errors import ExchangeError
from core.execution.ccxt_broker import CallRecord, CcxtBroker
from core.logfiles import RotatingLog, mib
from core.market.candles import ccxt_to_symbol, symbol_to_ccxt
from core.monitoring.references import OrderReferences, details_of
from core.monitoring.rules import slippage_bps
from core.redact import redact_value
from core.store import Store
from core.store import trading as trading_repo

if TYPE_CHECKING:
    from core.view import SessionView

LOGGED_CALLS = ("create_order", "cancel_order", "create_order_list", "cancel_replace")
ORDER_CALLS = ("create_order", "create_order_list", "cancel_replace")  # calls that place an order
BOOK_DEPTH = 5  # Binance's lightest order-book request
DECISION_SCHEMA: dict[str, Any] = {
    "session_id": pl.String, "decision_id": pl.String, "ts": pl.Datetime("us", "UTC"), "symbol": pl.String,
    "kind": pl.String, "action": pl.String, "code": pl.String, "reason": pl.String, "details": pl.String,
}


def decision_log_path(data_dir: Path) -> Path:
    return Path(data_dir) / "logs" / "decisions.jsonl"


class DecisionLog:
    """A ``SessionObserver`` and a broker listener for one live session; ``quote`` is the session's spread source."""

    def __init__(self, view: SessionView, store: Store, broker: CcxtBroker, data_dir: Path, model_bps: float,
                 path: Path | None = None, logs: LogsConfig | None = None) -> None:
        self.view = view
        self.store = store
        self.broker = broker
        self.path = path or decision_log_path(data_dir)
        logs = logs or LogsConfig()
        self.log = RotatingLog(self.path, mib(logs.decisions_rotate_mb), logs.decisions_keep_files)
        self.model_bps = model_bps
        self.refs = OrderReferences()
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # exchange calls may come from another thread (key rotation)
        self._ids = itertools.count(1)  # next() is atomic: ids stay unique across threads
        self._entries: dict[str, list[str]] = {}  # symbol -> client order ids of the open position's buys
        self._exits: dict[str, str] = {}  # symbol -> client order id of the latest sell fill

    # --- market conditions ---------------------------------------------------------------------------------
    def quote(self, symbol: str) -> dict[str, Any]:
        """Best bid/ask and spread now (one light order-book request); the error instead if the exchange fails.
        While the exchange is slow (latency pause, R4.4) it is skipped: it would delay the order, an exit included."""
        if self.view.latency_paused:
            return {"spread_skipped": f"exchange latency {self.view.latency_s:.2f}s: the order goes first"}
        broker = self.broker
        try:
            book = broker.call("fetch_order_book", broker.client.fetch_order_book, symbol_to_ccxt(symbol),
                               BOOK_DEPTH)
        except ExchangeError as exc:
            return {"spread_error": str(exc)[:200]}
        bids, asks = book.get("bids") or [], book.get("asks") or []
        if not bids or not asks:
            return {"spread_error": "empty order book"}
        bid, ask = float(bids[0][0]), float(asks[0][0])
        mid = (bid + ask) / 2
        return {"bid": bid, "ask": ask, "spread": round(ask - bid, 10),
                "spread_bps": round((ask - bid) / mid * 10_000, 4) if mid > 0 else None}

    # --- broker listener -----------------------------------------------------------------------------------
    def on_call(self, record: CallRecord) -> None:
        if record.what in LOGGED_CALLS:
            row = self._execution(record)
            with self._lock:
                self._pending.append(row)

    # --- SessionObserver -----------------------------------------------------------------------------------
    def on_flush(self, view: SessionView, new: Mapping[str, pl.DataFrame]) -> None:
        self.refs.learn(new)
        with self._lock:
            mine, self._pending = self._pending, []
        mine.extend(self._fills(new.get("fills")))
        mine.extend(self._trades(new.get("trades")))
        self._write(mine, _engine_rows(new.get("decisions")))

    def on_stop(self, view: SessionView) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        self._write(pending, [])

    # --- rows ----------------------------------------------------------------------------------------------
    def _row(self, ts: datetime, symbol: str, kind: str, action: str, code: str, reason: str,
             details: dict[str, Any]) -> dict[str, Any]:
        sid = self.view.session_id
        return {"session_id": sid, "decision_id": f"{sid[:8]}-{kind[0]}{next(self._ids)}", "ts": ts, "symbol": symbol,
                "kind": kind, "action": action, "code": code, "reason": reason, "details": details}

    def _now(self) -> datetime:
        return ms_to_dt(self.view.now_ms()) if self.view.started else datetime.now(UTC)

    def _execution(self, rec: CallRecord) -> dict[str, Any]:
        """An order sent or cancelled: request, response (or error), latency."""
        params = next((a for a in rec.args if isinstance(a, dict)), {}) | rec.kwargs.get("params", {})
        cid = (params.get("newClientOrderId") or params.get("workingClientOrderId")
               or params.get("origClientOrderId"))
        if rec.what in ("create_order_list", "cancel_replace"):  # Binance's own parameters, as sent
            request = {"symbol": params.get("symbol"), "params": dict(params)}
            symbol = str(params.get("symbol") or "")
        elif rec.what == "create_order":
            names = ("symbol", "type", "side", "amount", "price")
            request = {n: v for n, v in zip(names, rec.args, strict=False) if not isinstance(v, dict)}
            symbol = str(request.get("symbol") or "")
        else:
            request = {"order_id": rec.args[0] if rec.args else None, "symbol": rec.args[1] if len(rec.args) > 1
                       else None}
            symbol = str(request.get("symbol") or "")
        request["params"] = params
        response = _response(rec.result) if rec.error is None else None
        ok = rec.error is None
        verb = "order" if rec.what in ORDER_CALLS else "cancel"
        code = {("order", True): "ORDER_SENT", ("order", False): "ORDER_FAILED", ("cancel", True): "ORDER_CANCELED",
                ("cancel", False): "CANCEL_FAILED"}[(verb, ok)]
        if response and "orders" in response:
            outcome = "; ".join(f"{o.get('clientOrderId')} {o.get('type')} {o.get('status')} filled "
                                f"{o.get('executedQty')}" for o in response["orders"])
        else:
            outcome = (f"{response.get('status')}, filled {response.get('filled')} at {response.get('average')}"
                       if response else f"failed: {rec.error}")
        reason = f"{rec.what} {cid}: {outcome} in {rec.latency_s * 1000:.0f} ms"
        details = {"client_order_id": cid, "request": request, "response": response, "error": rec.error,
                   "latency_s": round(rec.latency_s, 6),
                   "sent_at": datetime.fromtimestamp(rec.started, UTC).isoformat()}
        return self._row(self._now(), _exchange_symbol(symbol), "execution", rec.what, code, reason, details)

    def _fills(self, fills: pl.DataFrame | None) -> list[dict[str, Any]]:
        if fills is None or not fills.height:
            return []
        rows = []
        for f in fills.iter_rows(named=True):
            cid, side, qty, price = f["client_order_id"], f["side"], float(f["qty"]), float(f["price"])
            if side == "buy":
                self._entries.setdefault(f["symbol"], []).append(cid)
            else:
                self._exits[f["symbol"]] = cid
            ref = self.refs.get(cid)
            details: dict[str, Any] = {"client_order_id": cid, "fill_id": f["fill_id"], "filled_at": f["ts"],
                                       "side": side, "qty": qty, "price": price, "notional": qty * price,
                                       "fee": f["fee"], "fee_asset": f["fee_asset"], "liquidity": f["liquidity"],
                                       "model_slippage_bps": self.model_bps}
            words = f"{side} {qty:g} {f['symbol']} at {price:,.2f}, fee {float(f['fee'] or 0):.4f} {f['fee_asset']}"
            if ref is not None:
                bps = slippage_bps(side, price, ref.price)
                details |= {"reference_price": ref.price, "reference": ref.source, "order_tag": ref.tag,
                            "slippage_bps": round(bps, 4), "slippage_quote": round(bps / 10_000 * ref.price * qty, 8)}
                words += f"; slippage {bps:+.2f} bps against the {ref.source} {ref.price:,.2f}"
            rows.append(self._row(self._now(), f["symbol"], "fill", side, "FILLED", words, details))
        return rows

    def _trades(self, trades: pl.DataFrame | None) -> list[dict[str, Any]]:
        if trades is None or not trades.height:
            return []
        rows = []
        for t in trades.iter_rows(named=True):
            sym = t["symbol"]
            details = {k: v for k, v in t.items() if k not in ("session_id", "mode")}
            details |= {"entry_client_order_ids": self._entries.pop(sym, []),
                        "exit_client_order_id": self._exits.get(sym)}
            reason = (f"closed {sym}: {t['exit_reason']} ({t['exit_kind']}); net P&L {float(t['net_pnl']):+,.4f} "
                      f"after fees {float(t['fees']):.4f}")
            rows.append(self._row(self._now(), sym, "trade", "close", f"EXIT_{str(t['exit_kind']).upper()}",
                                  reason, details))
        return rows

    # --- writing -------------------------------------------------------------------------------------------
    def _write(self, mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
        """Our rows into DuckDB (one transaction); the engine's (already stored) and ours to the JSON lines."""
        if mine:
            frame = pl.DataFrame([{**r, "details": _json(r["details"])} for r in mine], schema=DECISION_SCHEMA)
            self.store.append("decisions", frame)
        lines = []
        for row in theirs + mine:
            ts = row["ts"]
            record = {**row, "ts": ts.isoformat() if isinstance(ts, datetime) else ts}
            lines.append(_json(redact_value(_clean(record))))
        self.log.write(lines)


def _engine_rows(decisions: pl.DataFrame | None) -> list[dict[str, Any]]:
    if decisions is None or not decisions.height:
        return []
    return [{**r, "details": details_of(r.get("details"))} for r in decisions.iter_rows(named=True)]


def _response(result: Any) -> dict[str, Any] | None:
    """The parts of ccxt's parsed order that explain an execution (an order list's or a cancel-replace's raw
    Binance answer: each order's report)."""
    if not isinstance(result, dict):
        return None
    if "orderReports" in result or "newOrderResponse" in result:
        reports = result.get("orderReports") or [r for r in (result.get("cancelResponse"),
                                                              result.get("newOrderResponse")) if r]
        keys: tuple[str, ...] = ("clientOrderId", "orderId", "status", "type", "side", "origQty", "executedQty",
                                 "price", "stopPrice", "cummulativeQuoteQty")
        return {"orders": [{k: r.get(k) for k in keys if r.get(k) is not None} for r in reports
                           if isinstance(r, dict)], "listStatusType": result.get("listStatusType")}
    keys = ("id", "clientOrderId", "status", "type", "side", "amount", "filled", "remaining", "average", "price",
            "cost", "fee", "fees", "timestamp", "stopPrice")
    out = {k: result.get(k) for k in keys if result.get(k) is not None}
    trades = result.get("trades") or []
    if trades:
        out["trades"] = [{k: t.get(k) for k in ("id", "price", "amount", "cost", "fee")} for t in trades]
    return out


def _exchange_symbol(symbol: str) -> str:
    try:
        return ccxt_to_symbol(symbol) if "/" in symbol else symbol
    except Exception:  # an odd symbol must not lose the row
        return symbol


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, datetimes ISO text, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _json(value: Any) -> str:
    return json.dumps(_clean(value), default=str, separators=(",", ":"))


# --- reading a trade back ------------------------------------------------------------------------------------
def order_story(store: Store, session_id: str, client_order_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every decision row about these orders, in the order things happened: signal (with checks, sizing and market
    conditions) → execution (request, response, latency) → fill (fee, slippage) → trade (exit reason, P&L)."""
    frame = trading_repo.order_decisions(store, session_id, client_order_ids)
    return [{**r, "details": details_of(r["details"])} for r in frame.iter_rows(named=True)]


def explain_trade(store: Store, session_id: str, trade_id: str) -> list[dict[str, Any]]:
    """The story of one closed trade (see ``order_story``), found from its ``trade`` row's client order ids."""
    found = trading_repo.trade_decision(store, session_id, trade_id)
    if not found.height:
        return []
    details = details_of(found["details"][0])
    ids = [*details.get("entry_client_order_ids", []), details.get("exit_client_order_id")]
    return order_story(store, session_id, [i for i in ids if i])


__all__ = ["DecisionLog", "decision_log_path", "explain_trade", "order_story"]
