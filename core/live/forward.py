"""ForwardSession: paper trading on the live market — freqtrade's dry run (R1.1, R1.6, issue 17).

The live session's loop, feed, recorder, inbox and observers, on the exchange's *public* market data, with the
``ForwardBroker``'s simulated fills instead of orders. No credentials are read and no authenticated endpoint is
ever called: the exchange client is built without keys. It runs until stopped, on the wall clock of a real venue or
the sandbox's own clock.

Restart-safe: the simulated account (cash, positions with their entry facts, working stops, dust, trading and risk
state, breakers) lives in its own state file (``data/paper-forward/<venue>/state.json``), written before every
order and after every bar; rows go to DuckDB as the live session's do, tagged mode ``paper`` and ``forward`` in the
session's settings. A market order journalled before a crash whose fill was never recorded did not happen: it is
expired at the restart, and nothing external ever saw it (rows and notifications follow the state file).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.build import Sizing, build_engine, history_bars
from core.config import Settings
from core.domain import Instrument, Mode, OrderType
from core.errors import ExchangeError
from core.events import Event, EventCode, SessionStarted
from core.execution.ccxt_broker import CcxtBroker
from core.execution.forward import ForwardBroker
from core.execution.paper import FillModelConfig
from core.live.feed import ExchangeFeed
from core.live.preflight import PreflightFailed
from core.live.session import STARTUP_WAIT_S, LiveOptions, LiveSession
from core.market.candles import symbol_to_ccxt, timeframe_ms
from core.portfolio import Portfolio
from core.result import session_row
from core.security.credentials import KeyHolder
from core.state.live import load_state
from core.store import Store
from core.venue import Venue

log = logging.getLogger("rampart.forward")
NO_KEYS = "forward paper trading reads no credentials"


def forward_state_path(data_dir: Path, venue: Venue) -> Path:
    """The simulated account's state file: one per venue, apart from any live account's."""
    return Path(data_dir) / "paper-forward" / venue.name / "state.json"


class ForwardSession(LiveSession):
    """A forward paper session. Build with ``core.node.open_forward``; ``run`` it like a live session."""

    mode = Mode.PAPER

    def __init__(self, settings: Settings, venue: Venue, data: CcxtBroker, options: LiveOptions | None = None,
                 store: Store | None = None, state_path: Path | None = None) -> None:
        super().__init__(settings, venue, data, KeyHolder(None, NO_KEYS), options, store,
                         state_path or forward_state_path(settings.data_dir, venue))
        self.recorder.mode = Mode.PAPER
        self.recorder.keeps_cash = True
        self.paper: ForwardBroker | None = None

    @property
    def marker_path(self) -> Path:
        """Its own marker: overrides and the emergency stop are about the live account, never this one."""
        return self.state_path.parent / "session.json"

    def preflight(self) -> dict[str, Instrument]:
        """The markets and their filters, from the public API; no gate is needed to paper-trade."""
        self.broker.wait_limited_s = STARTUP_WAIT_S
        try:
            return self.broker.instruments(self.symbols)
        except ExchangeError as exc:
            raise PreflightFailed(f"forward paper trading cannot start: the exchange's public market data did not "
                                  f"load ({exc}); check --exchange / --sandbox-url and the network") from None

    def start(self, instruments: dict[str, Instrument]) -> None:
        """Restore the simulated account, load the history window, and trade from the next closed bar on."""
        self.state = self.recorder.state = load_state(self.state_path)
        first_start = self.state.session_id is None
        paper = self.settings.paper
        cash = self.state.cash if self.state.cash is not None else paper.starting_cash
        portfolio = Portfolio(cash)
        broker = ForwardBroker(FillModelConfig(paper.taker_fee, paper.maker_fee, paper.slippage_bps,
                                               paper.commission), portfolio, self._mid, lambda: 0,
                               timeframe_ms(self.settings.market.timeframe))
        sizing = Sizing.as_live(self.settings) if paper.risk_controls else Sizing.full_scale(self.settings)
        engine = build_engine(self.settings, Mode.PAPER, broker, portfolio, instruments=instruments, sizing=sizing,
                              controls=paper.risk_controls, session_id=self.session_id,
                              saved_risk=None if first_start else {**self.state.risk,
                                                                   "state": self.state.trading_state})
        engine.result.scale = sizing.scale
        engine.clock = self.venue.engine_clock()
        engine.max_signal_age_ms = int(self.settings.live.max_signal_age_s * 1000)  # as live: no stale entries
        engine.quote = self.quote
        broker.clock = self._market_now
        broker.before_submit = self.recorder.journal
        self.engine, self.paper = engine, broker
        self.broker.on_latency = self._on_latency
        self.broker.on_error = engine.on_api_error
        row = session_row(self.session_id, Mode.PAPER, self.settings, self.chash, datetime.now(UTC), self.venue)
        self.store.begin_session({**row, "settings": {**row["settings"], "forward": True}, "starting_equity": cash})
        self.feed = ExchangeFeed(self.broker, self.symbols, self.settings.market.timeframe,
                                 history_bars(self.settings))
        sets = self.feed.closed_window()
        self._bar_at = time.time()
        engine.start_live(sets)
        self._restore_account(broker)
        engine.emit(Event.of(EventCode.SESSION_STARTED, SessionStarted(
            restart=not first_start, previous_session=self.state.session_id,
            risk_per_trade=engine.risk.config.risk_per_trade, exposure_cap=engine.risk.config.exposure_cap,
            state=engine.risk.state.value, mode=self.mode.value)))
        self.state.session_id = self.session_id
        self.broker.wait_limited_s = 0.0
        self._flush()

    def _restore_account(self, broker: ForwardBroker) -> None:
        """Positions, dust and working orders from the state file, as they were at the last write."""
        engine = self.engine
        if engine is None:
            return
        engine.portfolio.dust.update({s: float(q) for s, q in self.state.dust.items() if s in self.symbols})
        for book in engine.books:
            book.dust = engine.portfolio.dust.get(book.symbol, 0.0)
            orders = [self.state.order(cid) for cid, d in self.state.orders.items() if d["symbol"] == book.symbol]
            working = [o for o in orders if o.type is not OrderType.MARKET]
            engine.restore(self.state.position(book.symbol), working, book.symbol)
            broker.restored(book)
            for order in orders:
                if order.type is OrderType.MARKET:  # sent before a crash, its fill never recorded: it did not fill
                    engine.result.orders.append(order)
                    broker.expire(order, book, engine.now(), "journalled before a restart; its simulated fill "
                                                             "was never recorded, so it did not happen")

    # --- between bars -----------------------------------------------------------------------------------------
    def _refresh_orders(self) -> bool:
        """Every ``order_poll_s``: working stops and limits against the live price (a touched stop fills now)."""
        engine, broker = self.engine, self.paper
        poll = self.options.order_poll_s if self.options.order_poll_s is not None else self.settings.live.order_poll_s
        if engine is None or broker is None or self.monotonic() - self._orders_at < poll:
            return False
        self._orders_at = self.monotonic()
        booked = False
        for book in engine.books:
            fills = broker.poll(book)
            if fills:
                engine.book(book.symbol, fills)
                booked = True
        if booked:
            engine.mark_live()
        return booked

    def _protect(self) -> None:
        self._orders_at = self.monotonic()  # simulated stops cannot go missing: nothing to protect

    def _check_reconcile(self) -> None:
        """No account on the exchange to compare with: the state file is the account."""

    def _check_halt(self) -> bool:
        return False  # the emergency stop owns a real account; a simulated one trades on

    def _market_now(self) -> int:
        """When a simulated fill happens: the wall clock on a real venue; on the sandbox's own clock, the end of the
        latest closed candle (the moment the session acts on it), as the exchange would stamp a real fill."""
        engine = self.engine
        if engine is None or engine.clock is not None or not engine.books or not engine.books[0].ts:
            return engine.now() if engine is not None else int(time.time() * 1000)
        return engine.books[0].ts[-1] + engine.timeframe_ms

    def _mid(self, symbol: str) -> float | None:
        """The live price: the middle of the best bid and ask (public order book); None when it did not answer."""
        try:
            book: dict[str, Any] = self.broker.read("fetch_order_book", self.broker.client.fetch_order_book,
                                                    symbol_to_ccxt(symbol), 5)
        except ExchangeError as exc:
            log.warning("forward paper: no live price for %s (%s); the order waits for the next poll", symbol, exc)
            return None
        bids, asks = book.get("bids") or [], book.get("asks") or []
        if not bids or not asks:
            return None
        return (float(bids[0][0]) + float(asks[0][0])) / 2


__all__ = ["ForwardSession", "forward_state_path"]
