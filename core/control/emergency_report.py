"""What an emergency stop did, in one record: the event's details, the notification, the operator's output (R6.5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from core.domain import TradingState
from core.execution.broker import OUR_PREFIX

MAX_PROGRESS = 400  # progress lines kept in the report (the operator saw them all as they came)


@dataclass
class EmergencyReport:
    reason: str
    who: str
    exchange: str
    requested_at: str
    halt_file: str
    deadline_s: float = 120.0
    cancelled: list[dict[str, Any]] = field(default_factory=list)  # one entry per cancelled order
    # symbol -> (qty sold, average price; None when every sell's answer was lost and its price is not known)
    closed: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)  # what still stands when not flat
    flat: bool = False
    seconds_to_flat: float | None = None
    seconds: float = 0.0  # the exchange work, from the call to the verdict
    state: str = TradingState.HALTED.value
    dust: dict[str, float] = field(default_factory=dict)  # managed qty too small to sell, by symbol
    sells: dict[str, dict[str, Any]] = field(default_factory=dict)  # symbol -> fees, entry price, pnl, order ids
    errors: list[str] = field(default_factory=list)  # problems met on the way (some may have been overcome)
    waits: list[str] = field(default_factory=list)  # back-offs the exchange asked for (429, IP ban), waited out
    requests: int = 0  # exchange requests sent (retries included)
    failures: int = 0  # of which failed and were retried or given up on
    progress: list[str] = field(default_factory=list)  # the lines the operator saw, in order

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["closed"] = {s: [q, p] for s, (q, p) in self.closed.items()}
        return out

    def say(self, line: str) -> None:
        if len(self.progress) < MAX_PROGRESS:
            self.progress.append(line)

    def summary(self) -> str:
        """The verdict in one line: for the notification, the event message and the operator's last line."""
        closed = ", ".join(f"{s} {q:g} @ {_fmt_price(p)}" for s, (q, p) in self.closed.items()) or "none"
        outcome = (f"FLAT in {self.seconds_to_flat:.3f} s" if self.flat and self.seconds_to_flat is not None
                   else f"NOT FLAT ({'; '.join(self.leftovers) or 'see errors'}); safe to run again")
        return (f"EMERGENCY STOP by {self.who} on {self.exchange} ({self.reason}): {outcome}; "
                f"{len(self.cancelled)} order(s) cancelled; closed {closed}; state {self.state}")

    def text(self) -> str:
        """The details, then the verdict as the last line."""
        lines = [f"HALT flag: {self.halt_file}"]
        for o in self.cancelled:
            who = "Rampart" if o["rampart"] else "not Rampart's"
            lines.append(f"cancelled {o['symbol']} {o['side']} {o['type']} {o['qty']} @ {o['price']} "
                         f"[{o['client_order_id']}, {who}]")
        for sym, info in self.sells.items():
            lines.append(f"sold {sym}: {info['qty']:g} @ {_fmt_price(info['avg_price'])}, fees {info['fees']:.4f}, "
                         f"P&L {_fmt_opt(info.get('pnl'))}")
        lines += [f"dust left {sym}: {qty:g} (below the minimum order)" for sym, qty in self.dust.items()]
        lines += [f"waited: {item}" for item in self.waits]
        lines += [f"LEFT: {item}" for item in self.leftovers]
        lines += [f"error: {item}" for item in self.errors]
        lines.append(f"exchange requests: {self.requests} ({self.failures} failed and retried or given up), "
                     f"{self.seconds:.1f} s of a {self.deadline_s:g} s deadline")
        return "\n".join([*(f"  {line}" for line in lines), self.summary()])

    def markdown(self) -> str:
        body = "\n".join(f"- {line.strip()}" for line in self.text().splitlines()[:-1])
        return f"# Emergency stop\n\n**{self.summary()}**\n\n{body}\n"


def describe_cancelled(sym: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The orders one entry of a cancel-all answer stands for, as the report lists them. An order list (OTO/OPO/OCO)
    is one entry whose ``orderReports`` are its orders; a cancel's answer carries each order's own client id as
    ``origClientOrderId`` (its ``clientOrderId`` is the cancel request's)."""
    raw = entry.get("info") if isinstance(entry.get("info"), dict) else {}
    reports = (raw or {}).get("orderReports")
    if isinstance(reports, list) and reports:
        return [_describe(sym, r) for r in reports if isinstance(r, dict)]
    if raw:
        return [_describe(sym, raw)]
    return [{"symbol": sym, "id": str(entry.get("id")), "client_order_id": str(entry.get("clientOrderId") or ""),
             "rampart": str(entry.get("clientOrderId") or "").startswith(OUR_PREFIX), "side": entry.get("side"),
             "type": entry.get("type"), "qty": entry.get("amount"), "price": entry.get("price"),
             "stop_price": entry.get("stopPrice"), "outcome": "canceled"}]


def _describe(sym: str, raw: dict[str, Any]) -> dict[str, Any]:
    """One order from Binance's own fields."""
    cid = str(raw.get("origClientOrderId") or raw.get("clientOrderId") or "")
    return {"symbol": sym, "id": str(raw.get("orderId")), "client_order_id": cid, "rampart": cid.startswith(OUR_PREFIX),
            "side": str(raw.get("side") or "").lower() or None, "type": str(raw.get("type") or "").lower() or None,
            "qty": _num(raw.get("origQty")), "price": _num(raw.get("price")), "stop_price": _num(raw.get("stopPrice")),
            "outcome": str(raw.get("status") or "canceled").lower()}


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number or None


def _fmt_opt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+,.2f}"


def _fmt_price(value: float | None) -> str:
    return "price unknown" if value is None else f"{value:,.2f}"
