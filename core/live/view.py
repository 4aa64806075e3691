"""``LiveView``: the read-only ``SessionView`` of a running live session, what its observers are given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.view import PositionView

if TYPE_CHECKING:
    from core.live.session import LiveSession
    from core.venue import Venue


class LiveView:
    """Reads a ``LiveSession``; offers nothing that changes it."""

    __slots__ = ("_s",)

    def __init__(self, session: LiveSession) -> None:
        self._s = session

    @property
    def session_id(self) -> str:
        return self._s.session_id

    @property
    def config_hash(self) -> str:
        return self._s.chash

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._s.symbols)

    @property
    def venue(self) -> Venue:
        return self._s.venue

    @property
    def started(self) -> bool:
        return self._s.engine is not None

    @property
    def bars(self) -> int:
        return self._s.bars

    @property
    def last_candle_ts(self) -> int | None:
        feed = self._s.feed
        return feed.last_ts if feed is not None else None

    @property
    def latency_paused(self) -> bool:
        engine = self._s.engine
        return engine is not None and engine.risk.latency_paused

    @property
    def latency_s(self) -> float:
        engine = self._s.engine
        return engine.risk.latency if engine is not None else 0.0

    def now_ms(self) -> int:
        engine = self._s.engine
        if engine is None:
            raise RuntimeError("the session has not started: it has no clock yet")
        return engine.now()

    def status(self) -> dict[str, Any]:
        return self._s.status()

    def positions(self) -> dict[str, PositionView]:
        engine = self._s.engine
        if engine is None:
            return {}
        return {s: PositionView(s, p.qty, p.avg_price, p.stop) for s, p in engine.portfolio.positions.items()}

    def known_orders(self) -> tuple[frozenset[str], frozenset[str]]:
        engine = self._s.engine
        orders = list(engine.result.orders) if engine is not None else []
        cids = {o.client_order_id for o in orders} | set(self._s.state.orders)
        return frozenset(cids), frozenset(o.exchange_order_id for o in orders if o.exchange_order_id)

    def baseline(self) -> Mapping[str, float]:
        return dict(self._s.state.baseline)

    def dust(self) -> Mapping[str, float]:
        engine = self._s.engine
        return dict(engine.portfolio.dust) if engine is not None else {}


__all__ = ["LiveView"]
