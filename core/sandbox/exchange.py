"""The sandbox exchange's engine (no HTTP): accounts, order placement, and matching against the price path.

Fill model:
- MARKET orders (and triggered STOP_LOSS/TAKE_PROFIT) take liquidity from the synthetic book at the current
  path price: buys walk the asks, sells the bids (so they pay the spread), as the taker;
- a marketable LIMIT takes the book up to its limit; the rest rests (GTC) or expires (IOC/FOK);
- resting limits fill in full at their limit, as the maker, when the path reaches them (no queue);
- stops trigger where the path crosses them (see core.sandbox.matching). A jump of a manual price override
  is a gap: stops triggered by it see the price after the gap.
Commission (faqs/commission_faq.md, "How is the commission calculated?"), by ``SandboxConfig.commission``:
- "base" (Binance without BNB fee payment): the received amount x the rate, in the received asset: a buy gets
  qty - fee of the base asset, a sell price x qty - fee of the quote; a buy locks price x qty (no fee room);
- "bnb": the doc's formula literally, (standard commission x BNB exchange rate) x discount (0.25), taken from the
  free BNB at the BNB price in the quote asset (BNBUSDT) when that covers it, else the full commission as "base";
- "quote" (the old simplification, kept for comparison): both sides pay in the quote asset; a buy pays
  price x qty + fee and its limit locks price x qty x (1 + the larger rate).
Each trade reports the commission and ``commissionAsset`` as charged; rounded to 8 decimals.

Self-trade prevention (faqs/stp_faq.md): a taker that would trade with a resting order of its own account, where
its walk through the book reaches that order's price, acts by the taker's mode: EXPIRE_TAKER / EXPIRE_MAKER /
EXPIRE_BOTH expire the remaining quantity (status EXPIRED_IN_MATCH, preventedMatchId, preventedQuantity), and
DECREMENT (TRANSFER within one account) prevents the smaller remaining quantity on both. The synthetic book
belongs to other accounts, so it never self-trades.

A symbol that is not TRADING (POST /sandbox/symbol-status) refuses new orders with "Market is closed." and
does not match (nothing trades while it is closed); cancels work. Orders that the late_execution fault delayed
reach the engine at their market time (``defer_order``), as if they had arrived then.

Order lists (OTO/OPO, core.sandbox.list_desk) are ordinary orders tied by ``order_list_id``: when one ends
(``_finish``) the desk places, expires or cancels the other.

Matching runs before every request (``sync``) and from a background task, so resting orders fill at the
right market time even when nobody asks. One re-entrant lock guards all state.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from core.errors import ConfigError
from core.sandbox import binance_errors as be
from core.sandbox.accounts import Account, KeyRing
from core.sandbox.config import KeyPermissions, SandboxConfig
from core.sandbox.list_desk import ListDesk
from core.sandbox.market import Market
from core.sandbox.matching import crossing, pending, update_trail, would_trigger_now
from core.sandbox.order_params import NewOrder, parse_new_order
from core.sandbox.orders import LIMIT_TYPES, STP_EXPIRED, Order, Trade
from core.sandbox.quotes import Quotes
from core.sandbox.symbols import (
    EIGHT,
    MAX_NUM_ALGO_ORDERS,
    MAX_NUM_ORDERS,
    SYMBOL_STATUSES,
    ZERO,
    SymbolSpec,
    check_notional,
    check_percent_price,
    check_price,
    fmt,
)

WALK_DEPTH = 500  # book levels a market order may walk
BNB = "BNB"
BNB_DISCOUNT = Decimal("0.25")  # faqs/commission_faq.md's example "discount"
Plan = list[tuple[Decimal, Decimal]]


def _dec(x: float) -> Decimal:
    return Decimal(str(x))


@dataclass(order=True)
class Arrival:
    """A new order that reaches the matching engine late (the late_execution fault): at market time ``due``."""

    due: int
    seq: int
    api_key: str = field(compare=False)
    params: dict[str, str] = field(compare=False)
    partial: float | None = field(compare=False, default=None)
    log: dict[str, Any] = field(compare=False, default_factory=dict)


class SandboxExchange:
    """Accounts, orders and matching for every symbol of ``market``."""

    def __init__(self, config: SandboxConfig, market: Market | None = None) -> None:
        self.config = config
        self.market = market or Market(config)
        self.quotes = Quotes(self.market)
        self.lock = threading.RLock()
        self.keys = KeyRing()
        self.accounts: dict[str, Account] = {}
        self.orders_placed: Counter[str] = Counter()
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._working: dict[str, list[Order]] = {s: [] for s in self.market.symbols}
        self._last: dict[str, tuple[int, float]] = {}
        self._taker, self._maker = _dec(config.taker_fee), _dec(config.maker_fee)
        self._rule = config.commission
        # Only the "quote" rule charges a buy's fee on top of its price: then a buy's lock needs fee room.
        self._lock_rate = max(self._taker, self._maker) if self._rule == "quote" else ZERO
        self.status: dict[str, str] = dict.fromkeys(self.market.symbols, "TRADING")
        self._arrivals: list[Arrival] = []
        self._arrival_ids = itertools.count(1)
        self.late_orders: list[dict[str, Any]] = []  # every deferred order and what became of it
        self._prevented_ids: defaultdict[str, Iterator[int]] = defaultdict(itertools.count)
        self.desk = ListDesk(self)  # order lists (OTO/OPO): their orders are ordinary orders plus this bookkeeping
        for key, secret in config.api_keys.items():
            self._open_account(key)
            self.keys.add(key, secret, key, config.permissions(key))
        self.restart_clock()

    # --- accounts and keys ---------------------------------------------------------------------------
    @property
    def assets(self) -> list[str]:
        names = [a for s in self.market.specs.values() for a in (s.base, s.quote)]
        return list(dict.fromkeys([*self.config.balances, *names]))

    def _open_account(self, account_id: str) -> Account:
        account = Account(account_id, update_time=self.market.now())
        for asset, amount in self.config.balances.items():
            account.free[asset] = _dec(amount)
        self.accounts[account_id] = account
        return account

    def account_of(self, api_key: str) -> Account:
        """The account an API key (or account id) reaches; ConfigError when neither is known."""
        account_id = self.keys.account(api_key) or (api_key if api_key in self.accounts else None)
        if account_id is None:
            raise ConfigError(f"no sandbox account for key {api_key!r}")
        return self.accounts[account_id]

    def add_key(self, api_key: str, secret: str, account: str | None = None,
                permissions: KeyPermissions | None = None) -> str:
        """Give ``account`` (an account id or one of its keys; default the first account) another key, or replace
        a key's secret and permissions (default: read and trade, no withdrawals)."""
        with self.lock:
            target = self.account_of(account).id if account else next(iter(self.accounts))
            self.keys.add(api_key, secret, target, permissions)
            return target

    def revoke_key(self, api_key: str) -> None:
        with self.lock:
            self.keys.revoke(api_key)

    def deposit(self, account: str, asset: str, amount: float) -> None:
        """Credit (or with a negative amount, debit) a free balance: a change Rampart did not make."""
        with self.lock:
            acct = self.account_of(account)
            value = _dec(amount)
            if acct.free[asset.upper()] + value < 0:
                raise ConfigError(f"cannot take {-amount} {asset}: the free balance is {acct.free[asset.upper()]}")
            acct.free[asset.upper()] += value
            acct.update_time = self.market.now()

    # --- clock and matching --------------------------------------------------------------------------
    def restart_clock(self) -> None:
        """Realtime: market time starts again at the start now (server start); matching resumes from there."""
        with self.lock:
            self.market.restart_clock()
            if self.config.manual and self._last:
                return
            now = self.market.now()
            self._last = {s: (now, self.market.price(s, now)) for s in self.market.symbols}

    def sync(self) -> int:
        """Match every symbol's resting orders up to the current market time, booking late arrivals at their
        time on the way; returns that time."""
        with self.lock:
            now = self.market.now()
            while self._arrivals and self._arrivals[0].due <= now:
                arrival = self._arrivals.pop(0)
                self._match_all(arrival.due)
                self._arrive(arrival)
            self._match_all(now)
            return now

    def _match_all(self, t: int) -> None:
        for symbol in self._working:
            self._match_symbol(symbol, t)

    def set_symbol_status(self, symbol: str, status: str) -> None:
        """The symbol's trading status (enums.md): anything but TRADING refuses new orders and stops matching."""
        with self.lock:
            if symbol not in self.market.specs:
                raise ConfigError(f"unknown sandbox symbol {symbol!r}; trading {', '.join(self.market.symbols)}")
            if status not in SYMBOL_STATUSES:
                raise ConfigError(f"symbol status {status!r} must be one of {', '.join(SYMBOL_STATUSES)}")
            self.sync()
            self.status[symbol] = status

    def advance(self, ms: int) -> int:
        """Manual mode: move market time by ``ms`` and match along the way."""
        with self.lock:
            self.sync()
            self.market.advance(ms)
            return self.sync()

    def set_price(self, symbol: str, price: float | None) -> None:
        """Manual mode: jump ``symbol`` to ``price`` now (a gap) and match; None returns to the candles."""
        with self.lock:
            if symbol not in self.market.specs:
                raise ConfigError(f"unknown sandbox symbol {symbol!r}; trading {', '.join(self.market.symbols)}")
            self.sync()
            self.market.set_price(symbol, price)
            self.sync()

    def _match_symbol(self, symbol: str, now: int) -> None:
        last_t, last_p = self._last[symbol]
        if now < last_t:
            return
        path = self.market.path(symbol)
        if not self._working[symbol] or self.status[symbol] != "TRADING":  # a closed market does not trade
            self._last[symbol] = (now, path.price_at(now))
            return
        for t, p in path.points_between(last_t, now):
            self._segment(symbol, last_t, last_p, t, p)
            last_t, last_p = t, p
        self._last[symbol] = (last_t, last_p)

    def _segment(self, symbol: str, t0: int, p0: float, t1: int, p1: float) -> None:
        """Apply, in path order, every event on ``symbol`` along the straight move (t0, p0) -> (t1, p1)."""
        tick = float(self.market.specs[symbol].tick)
        done = 0.0
        for _ in range(8 * len(self._working[symbol]) + 8):
            p_from = p0 + (p1 - p0) * done
            best: tuple[float, int, Order, str] | None = None
            for order in self._working[symbol]:
                cond = pending(order, tick)
                if cond is None:
                    continue
                f = crossing(cond[1], cond[2], p_from, p1)
                if f is not None:
                    at = done + f * (1.0 - done)
                    if best is None or (at, order.order_id) < (best[0], best[1]):
                        best = (at, order.order_id, order, cond[0])
            if best is None:
                break
            done, _, order, event = best
            t = t0 + round((t1 - t0) * done)
            # A zero-time jump is a gap: whatever it triggers sees the price after the gap.
            price = p1 if t1 == t0 else p0 + (p1 - p0) * done
            self._apply(order, event, t, price)
        for order in self._working[symbol]:
            update_trail(order, p1)

    def _apply(self, order: Order, event: str, t: int, price: float) -> None:
        account = self.accounts[order.account]
        if event == "fill":
            self._book_fill(account, order, order.price, order.remaining, t, maker=True)
        elif event == "arm":
            order.needs_cross = False
        elif event == "activate":
            order.trailing_active, order.extreme, order.trailing_time = True, price, t
        else:
            self._trigger(account, order, t, price)

    def _trigger(self, account: Account, order: Order, t: int, price: float) -> None:
        order.triggered, order.working_time, order.update_time = True, t, t
        limit = order.price if order.type.endswith("_LIMIT") else None
        if limit is not None and not self._marketable(order.symbol, order.side, limit, price):
            order.needs_cross = True  # joined the book at its limit: fills only if the price comes back
            return
        plan = self._plan(order.symbol, order.side, price, t, qty=order.remaining, limit=limit)
        if order.side == "BUY" and limit is None:
            spec = self.market.specs[order.symbol]
            plan = _affordable(plan, account.free[spec.quote] + order.locked, self._taker_room)
        self._take(account, order, plan, t, limit=limit)
        if order.is_open and limit is None:
            self._finish(account, order, "EXPIRED", t)

    # --- execution -----------------------------------------------------------------------------------
    def _marketable(self, symbol: str, side: str, limit: Decimal, price: float) -> bool:
        bid, ask = self.quotes.top(symbol, price)
        return limit >= ask if side == "BUY" else limit <= bid

    def _plan(self, symbol: str, side: str, price: float, t: int, *, qty: Decimal | None = None,
              quote: Decimal | None = None, limit: Decimal | None = None) -> Plan:
        """The (price, qty) fills a taker would get from the book, best level first."""
        spec = self.market.specs[symbol]
        bids, asks = self.quotes.book(symbol, WALK_DEPTH, price=price, t=t)
        plan: Plan = []
        for level_price, level_qty in asks if side == "BUY" else bids:
            if limit is not None and (level_price > limit if side == "BUY" else level_price < limit):
                break
            take = level_qty if qty is None else min(level_qty, qty)
            if quote is not None:
                take = min(take, spec.floor_qty(quote / level_price))
            if take <= 0:
                break
            plan.append((level_price, take))
            if qty is not None:
                qty -= take
                if qty <= 0:
                    break
            if quote is not None:
                quote -= level_price * take
        return plan

    @property
    def _taker_room(self) -> Decimal:
        """The fee a buyer pays on top of the price (only under the "quote" rule)."""
        return self._taker if self._rule == "quote" else ZERO

    def _bnb_per_quote(self, quote: str, t: int) -> Decimal | None:
        """BNB's exchange rate: BNB per unit of ``quote`` at market time ``t`` (BNBUSDT for USDT); None if unpriced."""
        if quote == BNB:
            return Decimal(1)
        symbol = BNB + quote
        if symbol not in self.market.specs:
            return None
        bnb_price = self.market.specs[symbol].round_price(self.market.price(symbol, t))
        return Decimal(1) / bnb_price if bnb_price > 0 else None

    def _fee(self, account: Account, spec: SymbolSpec, side: str, price: Decimal, qty: Decimal,
             quote_qty: Decimal, rate: Decimal, t: int) -> tuple[Decimal, str]:
        """(commission, its asset) of one fill under the commission rule (faqs/commission_faq.md)."""
        if self._rule == "quote":
            return (quote_qty * rate).quantize(EIGHT, ROUND_HALF_UP), spec.quote
        # Standard commission = the received amount x the rate: the quantity on a BUY, the notional on a SELL.
        received_asset, received = (spec.base, qty) if side == "BUY" else (spec.quote, quote_qty)
        standard = (received * rate).quantize(EIGHT, ROUND_HALF_UP)
        if self._rule == "bnb":
            per_quote = self._bnb_per_quote(spec.quote, t)
            if per_quote is not None:
                in_quote = standard * price if received_asset == spec.base else standard
                in_bnb = (in_quote * per_quote * BNB_DISCOUNT).quantize(EIGHT, ROUND_HALF_UP)
                if account.free[BNB] >= in_bnb:
                    return in_bnb, BNB
            # "If you do not have enough BNB to pay the discounted commission, the full commission will be taken
            # out of your received amount ... instead."
        return standard, received_asset

    def _book_fill(self, account: Account, order: Order, price: Decimal, qty: Decimal, t: int, *,
                   maker: bool) -> Trade:
        spec = self.market.specs[order.symbol]
        quote_qty = (price * qty).quantize(EIGHT, ROUND_HALF_UP)
        rate = self._maker if maker else self._taker
        commission, fee_asset = self._fee(account, spec, order.side, price, qty, quote_qty, rate, t)
        if order.side == "BUY":
            self._spend(account, order, spec.quote, quote_qty)
            account.free[spec.base] += qty
        else:
            self._spend(account, order, spec.base, qty)
            account.free[spec.quote] += quote_qty
        if order.side == "BUY" and fee_asset == spec.quote:  # "quote" rule: paid with the price, from the lock
            self._spend(account, order, fee_asset, commission)
        else:  # out of the received amount, or from the free BNB
            account.free[fee_asset] -= commission
        trade = Trade(next(self._trade_ids), order.order_id, order.symbol, order.account, price, qty, quote_qty,
                      commission, fee_asset, t, order.side == "BUY", maker, order.order_list_id)
        order.trades.append(trade)
        account.trades.append(trade)
        order.executed_qty += qty
        order.cum_quote += quote_qty
        order.update_time = account.update_time = t
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._finish(account, order, "FILLED", t)
        return trade

    def _spend(self, account: Account, order: Order, asset: str, amount: Decimal) -> None:
        """Pay from the order's lock first, the rest from the free balance."""
        from_lock = min(order.locked, amount) if order.locked_asset == asset else ZERO
        account.locked[asset] -= from_lock
        order.locked -= from_lock
        account.free[asset] -= amount - from_lock

    def _finish(self, account: Account, order: Order, status: str, t: int) -> None:
        """End an order: set its final status, hand back what it still locks, take it off the book."""
        order.status = status
        order.update_time = t
        if order.locked > 0:
            account.release(order.locked_asset, order.locked)
            order.locked = ZERO
        working = self._working[order.symbol]
        if order in working:
            working.remove(order)
        if order.order_list_id >= 0:  # what this means for the rest of its order list
            self.desk.order_done(account, order, t)

    # --- self-trade prevention -----------------------------------------------------------------------
    def _take(self, account: Account, order: Order, plan: Plan, t: int, *, limit: Decimal | None) -> list[Trade]:
        """Execute the taker ``order`` along ``plan`` (best level first). Where its walk reaches a resting order of
        the same account (at that order's price or better), self-trade prevention acts first; a limit taker also
        meets those within its limit beyond the plan, as its rest would on the book (faqs/stp_faq.md)."""
        makers = self._own_makers(order, limit)
        buy = order.side == "BUY"
        trades: list[Trade] = []
        for level_price, level_qty in plan:
            while makers and (makers[0].price <= level_price if buy else makers[0].price >= level_price):
                if self._prevent(account, order, makers.pop(0), t):
                    return trades
            take = min(level_qty, order.remaining)
            if take <= 0 or not order.is_open:
                return trades
            trades.append(self._book_fill(account, order, level_price, take, t, maker=False))
        while limit is not None and makers and order.is_open:
            if self._prevent(account, order, makers.pop(0), t):
                break
        return trades

    def _own_makers(self, order: Order, limit: Decimal | None) -> list[Order]:
        """The account's resting orders on the other side that ``order`` could reach, best price first."""
        buy = order.side == "BUY"
        makers = [o for o in self._working[order.symbol]
                  if o.account == order.account and o is not order and o.side != order.side and o.rests_as_limit
                  and o.is_open and (limit is None or (o.price <= limit if buy else o.price >= limit))]
        return sorted(makers, key=lambda o: (o.price if buy else -o.price, o.order_id))

    def _prevent(self, account: Account, taker: Order, maker: Order, t: int) -> bool:
        """One prevented match between ``taker`` and the resting ``maker`` by the taker's STP mode (the taker's mode
        decides; TRANSFER within one account acts as DECREMENT). True when it expired the taker."""
        mode = "DECREMENT" if taker.stp_mode == "TRANSFER" else taker.stp_mode
        if mode == "NONE":
            return False
        match_id = next(self._prevented_ids[taker.symbol])
        taker_qty = taker.remaining if mode in ("EXPIRE_TAKER", "EXPIRE_BOTH") else None
        maker_qty = maker.remaining if mode in ("EXPIRE_MAKER", "EXPIRE_BOTH") else None
        if mode == "DECREMENT":
            taker_qty = maker_qty = min(taker.remaining, maker.remaining)
        entry: dict[str, Any] = {"preventedMatchId": match_id, "makerOrderId": maker.order_id,
                                 "price": fmt(maker.price)}
        if taker_qty is not None:
            entry["takerPreventedQuantity"] = fmt(taker_qty)
        if maker_qty is not None:
            entry["makerPreventedQuantity"] = fmt(maker_qty)
        taker.prevented_matches.append(entry)
        account.prevented.append({
            "symbol": taker.symbol, "preventedMatchId": match_id, "takerOrderId": taker.order_id,
            "makerSymbol": maker.symbol, "makerOrderId": maker.order_id, "tradeGroupId": -1,
            "selfTradePreventionMode": mode, "price": fmt(maker.price),
            **{k: v for k, v in entry.items() if k.endswith("PreventedQuantity")}, "transactTime": t,
        })
        for order, qty in ((maker, maker_qty), (taker, taker_qty)):
            if qty is None:
                continue
            order.prevented_qty += qty
            order.prevented_match_id = match_id
            order.update_time = t
            self._release_part(account, order, qty)
            if order.remaining <= 0:
                self._finish(account, order, STP_EXPIRED, t)
        account.update_time = t
        return not taker.is_open

    def _release_part(self, account: Account, order: Order, qty: Decimal) -> None:
        """Hand back the lock of ``qty`` that will no longer execute (STP)."""
        if order.locked <= 0:
            return
        amount = qty if order.side == "SELL" else (order.price * qty * (1 + self._lock_rate)).quantize(EIGHT)
        amount = min(amount, order.locked)
        account.release(order.locked_asset, amount)
        order.locked -= amount

    # --- placement -----------------------------------------------------------------------------------
    def place_order(self, api_key: str, params: dict[str, str], *, partial: float | None = None,
                    test: bool = False, foreign: bool = False) -> dict[str, Any]:
        """POST /api/v3/order for the account of ``api_key``: the Binance response, or BinanceError."""
        with self.lock:
            now = self.sync()
            return self._place(api_key, params, now, partial=partial, test=test, foreign=foreign)

    def defer_order(self, api_key: str, params: dict[str, str], delay_ms: int, *,
                    partial: float | None = None) -> int:
        """The late_execution fault: the order reaches the matching engine ``delay_ms`` of market time from now
        (booked then, as if sent then; refused silently then if the engine refuses it). Parameters are checked
        now, as the API checks them before the engine. Returns the market time it will arrive."""
        with self.lock:
            now = self.sync()
            req = parse_new_order(params, self.market.specs)
            self.account_of(api_key)
            fixed = dict(params) | {"newClientOrderId": req.client_order_id}  # the id the client will look for
            log = {"clientOrderId": req.client_order_id, "symbol": req.symbol, "sent": now, "due": now + delay_ms,
                   "outcome": "pending"}
            self.late_orders.append(log)
            bisect.insort(self._arrivals, Arrival(now + delay_ms, next(self._arrival_ids), api_key, fixed,
                                                  partial, log))
            return now + delay_ms

    def _arrive(self, arrival: Arrival) -> None:
        try:
            placed = self._place(arrival.api_key, arrival.params, arrival.due, partial=arrival.partial)
        except be.BinanceError as exc:
            arrival.log["outcome"] = f"rejected {exc.code} {exc.msg}"
            return
        except ConfigError as exc:  # the key was revoked meanwhile
            arrival.log["outcome"] = f"rejected: {exc}"
            return
        arrival.log |= {"outcome": "booked", "orderId": placed["orderId"]}

    def _place(self, api_key: str, params: dict[str, str], now: int, *, partial: float | None = None,
               test: bool = False, foreign: bool = False) -> dict[str, Any]:
        """Place the order at market time ``now`` (the current time, or a late arrival's)."""
        req = parse_new_order(params, self.market.specs)
        account = self.account_of(api_key)
        spec = self.market.specs[req.symbol]
        price = self.market.price(req.symbol, now)
        self._check(account, req, spec, price, now)
        if test:
            return {}
        order = Order(
            next(self._order_ids), account.id, req.symbol, req.client_order_id, req.side, req.type,
            req.time_in_force, req.price, req.quantity or ZERO, now, stop_price=req.stop_price,
            iceberg_qty=req.iceberg_qty, orig_quote_qty=req.quote_qty or ZERO,
            trailing_delta=req.trailing_delta, stp_mode=req.stp_mode, update_time=now, foreign=foreign,
        )
        if req.is_market:
            trades = self._place_market(account, order, req, spec, price, now, partial)
        elif req.type in LIMIT_TYPES:
            trades = self._place_limit(account, order, req, spec, price, now, partial)
        else:
            trades = self._place_stop(account, order, spec, price, now)
        account.orders[order.order_id] = order
        if order.is_open:
            self._working[order.symbol].append(order)
        self.orders_placed["foreign" if foreign else api_key] += 1
        return order.new_json(req.resp_type, now, trades)

    def _check(self, account: Account, req: NewOrder, spec: SymbolSpec, price: float, now: int) -> None:
        if self.status[req.symbol] != "TRADING":
            raise be.market_closed()
        self.check_filters(req, spec, price, now)
        open_here = account.open_orders(req.symbol)
        if len(open_here) >= MAX_NUM_ORDERS:
            raise be.filter_failure("MAX_NUM_ORDERS")
        if req.type not in ("MARKET", *LIMIT_TYPES) and sum(o.is_stop for o in open_here) >= MAX_NUM_ALGO_ORDERS:
            raise be.filter_failure("MAX_NUM_ALGO_ORDERS")
        pool = account.open_orders() if self.config.unique_client_order_ids == "open" else account.orders.values()
        if any(o.client_order_id == req.client_order_id for o in pool):
            raise be.order_rejected(be.DUPLICATE_ORDER)

    def _place_market(self, account: Account, order: Order, req: NewOrder, spec: SymbolSpec, price: float,
                      now: int, partial: float | None) -> list[Trade]:
        qty, quote = req.quantity, req.quote_qty
        if order.side == "SELL" and qty is not None and qty > account.free[spec.base]:
            raise be.order_rejected(be.INSUFFICIENT_BALANCE)
        if partial is not None:
            qty = max(spec.step, spec.floor_qty(qty * _dec(partial))) if qty is not None else None
            quote = (quote * _dec(partial)).quantize(EIGHT) if quote is not None else None
        plan = self._plan(order.symbol, order.side, price, now, qty=qty, quote=quote)
        filled = sum((q for _, q in plan), ZERO)
        if quote is not None and filled < spec.min_qty:
            raise be.filter_failure("LOT_SIZE")
        if order.side == "BUY":
            cost = sum((p * q for p, q in plan), ZERO) * (1 + self._taker_room)
            if cost > account.free[spec.quote]:
                raise be.order_rejected(be.INSUFFICIENT_BALANCE)
        elif filled > account.free[spec.base]:
            raise be.order_rejected(be.INSUFFICIENT_BALANCE)
        if req.quote_qty is not None:
            # Binance reports what a quote-sized order bought as its quantity; an expired one, what it aimed at.
            bid, ask = self.quotes.top(order.symbol, price)
            aimed = spec.floor_qty(req.quote_qty / (ask if order.side == "BUY" else bid))
            order.orig_qty = filled if partial is None else max(aimed, filled)
        order.working_time = now
        trades = self._take(account, order, plan, now, limit=None)
        if order.is_open:
            self._finish(account, order, "EXPIRED", now)
        return trades

    def _place_limit(self, account: Account, order: Order, req: NewOrder, spec: SymbolSpec, price: float,
                     now: int, partial: float | None) -> list[Trade]:
        marketable = self._marketable(order.symbol, order.side, order.price, price)
        crosses_own = bool(self._own_makers(order, order.price))  # the account's own order is the best price
        if req.type == "LIMIT_MAKER" and (marketable or crosses_own):
            raise be.order_rejected(be.WOULD_TAKE)
        self._lock_for(account, order, spec, order.price)
        order.working_time = now
        trades: list[Trade] = []
        if marketable or crosses_own:
            cap = order.orig_qty if partial is None else max(spec.step, spec.floor_qty(order.orig_qty * _dec(partial)))
            plan = self._plan(order.symbol, order.side, price, now, qty=cap, limit=order.price) if marketable else []
            if not (req.time_in_force == "FOK" and sum((q for _, q in plan), ZERO) < order.orig_qty):
                trades = self._take(account, order, plan, now, limit=order.price)
            order.needs_cross = partial is not None and order.is_open
        if order.is_open and req.time_in_force in ("IOC", "FOK"):
            order.expiry_reason = "UNFILLED_IOC_QUANTITY_EXPIRED" if req.time_in_force == "IOC" else \
                "UNFILLED_FOK_ORDER_EXPIRED"
            self._finish(account, order, "EXPIRED", now)
        return trades

    def _place_stop(self, account: Account, order: Order, spec: SymbolSpec, price: float, now: int) -> list[Trade]:
        if would_trigger_now(order, price):
            raise be.order_rejected(be.WOULD_TRIGGER)
        if order.type.endswith("_LIMIT"):
            unit = order.price
        else:
            unit = order.stop_price if order.stop_price > 0 else spec.round_price(price)
        self._lock_for(account, order, spec, unit)
        if order.trailing_delta is not None:
            order.extreme = price
            if order.stop_price == 0:
                order.trailing_active, order.trailing_time = True, now
        return []

    def _lock_for(self, account: Account, order: Order, spec: SymbolSpec, unit_price: Decimal) -> None:
        """Lock what the order may spend: the base for a sell, price x qty x (1 + fee) quote for a buy."""
        if order.side == "SELL":
            asset, amount = spec.base, order.orig_qty
        else:
            asset, amount = spec.quote, (unit_price * order.orig_qty * (1 + self._lock_rate)).quantize(EIGHT)
        account.lock(asset, amount)
        order.locked_asset, order.locked = asset, amount

    def check_filters(self, req: NewOrder, spec: SymbolSpec, price: float, now: int, *, notional: bool = True) -> None:
        """The symbol filters on the order's prices and notional (PRICE_FILTER, PERCENT_PRICE_BY_SIDE, NOTIONAL)."""
        reference = spec.round_price(price)
        if req.takes_limit:
            check_price(spec, req.price)
            check_percent_price(spec, req.side, req.price, self.quotes.average_price(req.symbol, now))
        if req.stop_price > 0:
            check_price(spec, req.stop_price)
        if not notional:
            return
        if req.quote_qty is not None:
            check_notional(spec, req.quote_qty, market=True)
        elif req.quantity is not None:
            unit = req.price if req.takes_limit else (req.stop_price if req.stop_price > 0 else reference)
            check_notional(spec, unit * req.quantity, market=req.is_market)

    # --- cancels -------------------------------------------------------------------------------------
    def cancel(self, account: Account, order: Order) -> int:
        """Cancel one open order (caller checked it is open); returns the market time of the cancel."""
        with self.lock:
            now = self.market.now()
            self._finish(account, order, "CANCELED", now)
            account.update_time = now
            return now


def _affordable(plan: Plan, budget: Decimal, fee: Decimal) -> Plan:
    """The head of ``plan`` a buyer with ``budget`` quote can pay (fees included)."""
    out: Plan = []
    for price, qty in plan:
        cost = price * qty * (1 + fee)
        if cost > budget:
            break
        out.append((price, qty))
        budget -= cost
    return out
