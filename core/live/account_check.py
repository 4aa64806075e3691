"""What the API key may do and what the account pays, checked before a live session trades (R9.8).

- Trading: the key's spot trading permission (``/sapi/v1/account/apiRestrictions`` where the venue serves it, the
  account's ``canTrade`` elsewhere) and a test order (``POST /api/v3/order/test``, TRADE security: a read-only key
  gets -2015 there, not at the first real order).
- Withdrawals: a key that can withdraw is refused unless ``credentials.allow_withdrawal_keys``; Rampart never
  withdraws. Demo Mode and the Spot Testnet cannot withdraw and do not serve the /sapi endpoints.
- Fees: the account's commission per traded symbol (``GET /api/v3/account/commission``: standard + tax + special,
  the larger of the buyer and seller side) may not exceed the rates the paper fill model and live sizing use
  (``paper.taker_fee`` / ``paper.maker_fee``): a gate passed at lower fees proves nothing about this account.
  The BNB discount (``discount.enabledForAccount``) says whether BNB pays the fees; without BNB to pay, Binance
  charges the coin received, which the live path handles either way (R9.1, R9.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config import Settings
from core.domain import Instrument
from core.errors import AuthenticationError, ExchangeRejected
from core.events import AccountChecked
from core.execution.ccxt_broker import CcxtBroker
from core.venue import Venue

FEE_TOLERANCE = 1e-9


@dataclass
class AccountFindings:
    """The failures (each says what to do) and the facts preflight records as ACCOUNT_CHECKED."""

    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    can_trade: bool = False
    can_withdraw: bool | None = None
    ip_restricted: bool | None = None
    taker: float = 0.0
    maker: float = 0.0
    bnb_fees: bool = False

    def event(self, venue: Venue, skew_ms: int) -> AccountChecked:
        return AccountChecked(venue=venue.name, skew_ms=skew_ms, can_trade=self.can_trade,
                              can_withdraw=self.can_withdraw, ip_restricted=self.ip_restricted, taker=self.taker,
                              maker=self.maker, bnb_fees=self.bnb_fees, warnings=list(self.warnings))


def check_account(settings: Settings, venue: Venue, broker: CcxtBroker,
                  instruments: dict[str, Instrument]) -> AccountFindings:
    """The key's permissions and the account's fees; AuthenticationError when the key is refused outright."""
    found = AccountFindings()
    client = broker.client
    account = broker.read("account", client.private_get_account)  # a signed read proves the keys
    found.can_trade = bool(account.get("canTrade", False))
    if venue.key_restrictions:
        limits = broker.read("api_restrictions", client.sapi_get_account_apirestrictions)
        found.can_trade = found.can_trade and bool(limits.get("enableSpotAndMarginTrading"))
        found.can_withdraw = bool(limits.get("enableWithdrawals"))
        found.ip_restricted = bool(limits.get("ipRestrict"))
    elif not venue.network:
        found.can_withdraw = bool(account.get("canWithdraw"))
    if found.can_trade:
        _test_order(broker, instruments, found)
    if not found.can_trade:
        found.failures.append("KEY_CANNOT_TRADE: the API key has no spot trading permission; enable 'Enable Spot & "
                              "Margin Trading' for it in the exchange's API Management (keep withdrawals off)")
    if found.can_withdraw and not settings.credentials.allow_withdrawal_keys:
        found.failures.append("KEY_CAN_WITHDRAW: the API key has withdrawals enabled; Rampart never withdraws: "
                              "create a key without withdrawal permission (or accept the risk with "
                              "RAMPART_CREDENTIALS__ALLOW_WITHDRAWAL_KEYS=true)")
    if found.ip_restricted is False and venue.real_money:
        found.warnings.append("the API key is not restricted to trusted IPs: restrict it to this machine's IP")
    _check_fees(settings, broker, list(instruments), found)
    if found.bnb_fees:
        free = float(account_balances(account).get("BNB") or 0.0)
        if free <= 0:
            found.warnings.append("BNB pays the fees but the account holds no BNB: fees come out of the coin received")
    return found


def _test_order(broker: CcxtBroker, instruments: dict[str, Instrument], found: AccountFindings) -> None:
    """A test MARKET buy (validated, never executed): the TRADE-security proof of the key."""
    symbol, inst = next(iter(instruments.items()))
    params = {"symbol": symbol, "side": "BUY", "type": "MARKET",
              "quoteOrderQty": f"{max(inst.min_notional * 2, 10.0):.2f}"}
    try:
        broker.read("order_test", broker.client.private_post_order_test, params)  # never executes: retried
    except AuthenticationError:
        found.can_trade = False
    except ExchangeRejected as exc:  # a filter or the balance: the key may trade, the test says why it did not
        found.warnings.append(f"the test order was refused ({str(exc)[:160]})")


def _check_fees(settings: Settings, broker: CcxtBroker, symbols: list[str], found: AccountFindings) -> None:
    paper = settings.paper
    for symbol in symbols:
        info = broker.read("account_commission", broker.client.private_get_account_commission, {"symbol": symbol})
        try:
            taker, maker = commission_rates(info)
        except ValueError as exc:  # fees unknown: the gate's proof cannot be compared with this account
            found.failures.append(f"FEE_UNKNOWN: {symbol}'s commission rates could not be read ({exc}); retry, "
                                  "or check the exchange's GET /api/v3/account/commission answer")
            continue
        found.taker, found.maker = max(found.taker, taker), max(found.maker, maker)
        discount = info.get("discount") or {}
        found.bnb_fees = found.bnb_fees or bool(discount.get("enabledForAccount") and discount.get("enabledForSymbol"))
        if taker > paper.taker_fee + FEE_TOLERANCE:
            found.failures.append(
                f"FEE_RATE: {symbol} pays {taker:.4%} taker on this account but paper validation and sizing assume "
                f"{paper.taker_fee:.4%}: set RAMPART_PAPER__TAKER_FEE={taker:g} and run paper validation again")
        if maker > paper.maker_fee + FEE_TOLERANCE:
            found.failures.append(
                f"FEE_RATE: {symbol} pays {maker:.4%} maker on this account but paper validation assumes "
                f"{paper.maker_fee:.4%}: set RAMPART_PAPER__MAKER_FEE={maker:g} and run paper validation again")


def commission_rates(info: dict[str, Any]) -> tuple[float, float]:
    """(taker, maker) of one symbol's GET /api/v3/account/commission answer: standard + tax + special, each with the
    larger of the buyer and seller rate (commission_faq.md: the received amount times the sum of the rates).
    ValueError when the standard rates are missing or any rate is not a number."""
    if not isinstance(info.get("standardCommission"), dict):
        raise ValueError("no standardCommission in the answer")
    total = {"taker": 0.0, "maker": 0.0}
    for part in ("standardCommission", "taxCommission", "specialCommission"):
        rates = info.get(part) or {}
        side = max(_rate(rates, "buyer"), _rate(rates, "seller"))
        for kind in total:
            total[kind] += _rate(rates, kind) + side
    return total["taker"], total["maker"]


def _rate(rates: dict[str, Any], key: str) -> float:
    value = rates.get(key)
    try:
        rate = float(value) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise ValueError(f"{key} rate {value!r} is not a number") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{key} rate {value!r} is not a fraction")
    return rate


def account_balances(account: dict[str, Any]) -> dict[str, float]:
    """asset -> free balance of a GET /api/v3/account answer."""
    out: dict[str, float] = {}
    for row in account.get("balances") or []:
        try:
            out[str(row.get("asset"))] = float(row.get("free") or 0.0)
        except (TypeError, ValueError):
            continue
    return out


__all__ = ["AccountFindings", "account_balances", "check_account", "commission_rates"]
