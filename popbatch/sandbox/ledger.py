"""The order ledger: what the sandbox's gateway remembers between requests.

An order is authorised (seeded, or created by reauthorize or authorize),
then captured, and cancelled or refunded in one or more parts, with a
running balance. Responses depend on that history: a second capture, an
amount above what is left, or an unknown order fail the way a gateway
would. Every change happens under one lock, so concurrent workers see the
ledger move from one consistent state to the next.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from popbatch.sandbox import codes
from popbatch.sandbox.codes import GatewayRefusal
from popbatch.sandbox.seed import Card, Decline, OrderSeed, Seed

# POP is a Japanese service: transaction_datetime is read as Japan time.
JST = timezone(timedelta(hours=9), "JST")


def japan_now() -> datetime:
    """The current time in Japan, the zone of transaction_datetime."""
    return datetime.now(JST)


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One change to an order, kept as its history."""

    at: str
    operation: str
    amount: int
    dummy: bool


@dataclass(slots=True)
class _Order:
    order_id: str
    authorised: int
    card: Card
    decline: Decline | None = None
    voided: int = 0
    captured: int | None = None
    refunded: int = 0
    history: list[LedgerEvent] = field(default_factory=list)

    @property
    def balance(self) -> int:
        if self.captured is None:
            return self.authorised - self.voided
        return self.captured - self.refunded

    @property
    def state(self) -> str:
        if self.balance == 0:
            return "cancelled"
        if self.captured is None:
            return "authorised"
        return "partially_refunded" if self.refunded else "captured"


@dataclass(frozen=True, slots=True)
class OrderView:
    """A snapshot of one order, for tests and the counters endpoint."""

    order_id: str
    state: str
    authorised: int
    captured: int | None
    refunded: int
    voided: int
    balance: int
    card: Card
    history: tuple[LedgerEvent, ...]


@dataclass(slots=True)
class _Account:
    account_id: str
    cards: dict[str, Card]
    default_card: str | None


@dataclass(frozen=True, slots=True)
class PaynowResult:
    """The PayNowID part of an authorize answer."""

    status: str
    message: str
    account_id: str | None = None
    card_id: str | None = None
    default_card: bool | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the gateway made of one request.

    ``reached_gateway`` is False for failures POP decides before the gateway
    (RC3C): those carry no m_status. ``applied`` says the ledger changed.
    """

    result_code: str
    applied: bool = False
    reached_gateway: bool = True
    v_result_code: str | None = None
    merr_msg: str | None = None
    center_error_code: str | None = None
    card: Card | None = None
    auth_code: str | None = None
    transaction_datetime: str | None = None
    paynow: PaynowResult | None = None

    @property
    def succeeded(self) -> bool:
        """Whether this is a success answer (R001 to R004)."""
        return self.result_code in _SUCCESS_CODES


_SUCCESS_CODES = frozenset(codes.SUCCESS_CODES.values())


class Ledger:
    """Orders and PayNow accounts; every method is thread-safe."""

    def __init__(
        self, seed: Seed | None = None, *, clock: Callable[[], datetime] = japan_now
    ) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, _Order] = {}
        self._accounts: dict[str, _Account] = {}
        self._clock = clock
        if seed is not None:
            self.load(seed)

    def load(self, seed: Seed) -> None:
        """Add the seed's orders and accounts, replacing any with the same id."""
        orders = {item.order_id: _order_from_seed(item) for item in seed.orders}
        accounts = {
            item.account_id: _Account(
                item.account_id, dict(item.cards), item.default_card
            )
            for item in seed.accounts
        }
        with self._lock:
            self._orders.update(orders)
            self._accounts.update(accounts)

    def clear(self) -> None:
        """Forget every order and account."""
        with self._lock:
            self._orders.clear()
            self._accounts.clear()

    def order(self, order_id: str) -> OrderView | None:
        """A snapshot of one order, or None if the ledger does not know it."""
        with self._lock:
            order = self._orders.get(order_id)
            return None if order is None else _view(order)

    def default_card(self, account_id: str) -> str | None:
        """The standard card id of a PayNow account (None: unknown or unset)."""
        with self._lock:
            account = self._accounts.get(account_id)
            return None if account is None else account.default_card

    def __len__(self) -> int:
        with self._lock:
            return len(self._orders)

    def capture(self, order_id: str, amount: int, *, dummy: bool) -> Outcome:
        """Capture an authorised order for ``amount`` (at most what is authorised)."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return _refused(codes.UNKNOWN_ORDER)
            if order.balance == 0:
                return _refused(codes.ALREADY_CANCELLED)
            if order.captured is not None:
                return _refused(codes.ALREADY_CAPTURED)
            if amount > order.balance:
                return _refused(codes.AMOUNT_EXCEEDED)
            if order.decline is not None:
                return _declined(order.decline, None, "")

            order.captured = amount
            self._record(order, "capture", amount, dummy)
        return _succeeded(codes.CAPTURE)

    def cancel(self, order_id: str, amount: int | None, *, dummy: bool) -> Outcome:
        """Cancel or refund ``amount`` of an order (all that is left when None)."""
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return _refused(codes.UNKNOWN_ORDER)
            if order.balance == 0:
                return _refused(codes.ALREADY_CANCELLED)
            wanted = order.balance if amount is None else amount
            if wanted > order.balance:
                return _refused(codes.AMOUNT_EXCEEDED)

            if order.captured is None:
                order.voided += wanted
                self._record(order, "void", wanted, dummy)
            else:
                order.refunded += wanted
                self._record(order, "refund", wanted, dummy)
        return _succeeded(codes.CANCEL)

    def reauthorize(
        self,
        order_id: str,
        original_order_id: str,
        amount: int,
        *,
        capture: bool,
        dummy: bool,
    ) -> Outcome:
        """Charge the card of ``original_order_id`` again, as a new order."""
        with self._lock:
            original = self._orders.get(original_order_id)
            if original is None:
                return Outcome(result_code="RC3C", reached_gateway=False)
            if order_id in self._orders:
                return _refused(codes.ORDER_ID_IN_USE)
            when = self._stamp()
            if original.decline is not None:
                return _declined(original.decline, original.card, when)

            self._open(order_id, amount, original.card, capture, dummy, when)
        return _charged(codes.REAUTHORIZE, order_id, original.card, when)

    def authorize(
        self,
        order_id: str,
        amount: int,
        *,
        capture: bool,
        account_id: str,
        card_id: str | None,
        make_default: bool | None,
        dummy: bool,
    ) -> Outcome:
        """Charge a PayNow account's card (its standard card when none is named)."""
        with self._lock:
            if order_id in self._orders:
                return _refused(codes.ORDER_ID_IN_USE)
            account = self._accounts.get(account_id)
            if account is None:
                return _paynow_refused(codes.PAYNOW_UNKNOWN_ACCOUNT)
            chosen = card_id if card_id is not None else account.default_card
            if chosen is None:
                return _paynow_refused(codes.PAYNOW_NO_DEFAULT_CARD)
            card = account.cards.get(chosen)
            if card is None:
                return _paynow_refused(codes.PAYNOW_UNKNOWN_CARD)
            when = self._stamp()
            if card.decline is not None:
                paynow = PaynowResult(status="failure", message=codes.PAYNOW_DECLINED)
                return _declined(card.decline, card, when, paynow)

            # The API text: paynow_default_card defaults to true when a card is named.
            if card_id is not None and make_default is not False:
                account.default_card = card_id
            self._open(order_id, amount, card, capture, dummy, when)
            paynow = PaynowResult(
                status="success",
                message=codes.PAYNOW_SUCCESS_MESSAGE,
                account_id=account_id,
                card_id=chosen,
                default_card=account.default_card == chosen,
            )
        return _charged(codes.AUTHORIZE, order_id, card, when, paynow)

    def _open(
        self,
        order_id: str,
        amount: int,
        card: Card,
        capture: bool,
        dummy: bool,
        when: str,
    ) -> None:
        order = _Order(order_id=order_id, authorised=amount, card=card)
        order.history.append(LedgerEvent(when, "authorise", amount, dummy))
        if capture:
            order.captured = amount
            order.history.append(LedgerEvent(when, "capture", amount, dummy))
        self._orders[order_id] = order

    def _record(self, order: _Order, operation: str, amount: int, dummy: bool) -> None:
        order.history.append(LedgerEvent(self._stamp(), operation, amount, dummy))

    def _stamp(self) -> str:
        return self._clock().astimezone(JST).strftime("%Y%m%d%H%M%S")


def _order_from_seed(item: OrderSeed) -> _Order:
    order = _Order(
        order_id=item.order_id,
        authorised=item.amount,
        card=item.card,
        decline=item.decline,
    )
    if item.state == "captured":
        order.captured = item.captured
        order.refunded = item.refunded
    elif item.state == "cancelled":
        order.voided = item.amount
    return order


def _view(order: _Order) -> OrderView:
    return OrderView(
        order_id=order.order_id,
        state=order.state,
        authorised=order.authorised,
        captured=order.captured,
        refunded=order.refunded,
        voided=order.voided,
        balance=order.balance,
        card=order.card,
        history=tuple(order.history),
    )


def auth_code_for(order_id: str) -> str:
    """A stable six-digit authorisation code for an order."""
    return f"{zlib.crc32(order_id.encode()) % 1_000_000:06d}"


def _succeeded(endpoint: str) -> Outcome:
    return Outcome(
        result_code=codes.SUCCESS_CODES[endpoint],
        applied=True,
        v_result_code=codes.SUCCESS_V_RESULT,
        merr_msg=codes.SUCCESS_MERR,
    )


def _charged(
    endpoint: str,
    order_id: str,
    card: Card,
    when: str,
    paynow: PaynowResult | None = None,
) -> Outcome:
    v_result = (
        codes.AUTHORIZE_V_RESULT
        if endpoint == codes.AUTHORIZE
        else codes.SUCCESS_V_RESULT
    )
    return Outcome(
        result_code=codes.SUCCESS_CODES[endpoint],
        applied=True,
        v_result_code=v_result,
        merr_msg=codes.SUCCESS_MERR,
        card=card,
        auth_code=auth_code_for(order_id),
        transaction_datetime=when,
        paynow=paynow,
    )


def _refused(refusal: GatewayRefusal) -> Outcome:
    return Outcome(
        result_code=refusal.result_code,
        v_result_code=refusal.v_result_code,
        merr_msg=refusal.merr_msg,
    )


def _paynow_refused(message: str) -> Outcome:
    refusal = codes.PAYNOW_NO_CARD
    return Outcome(
        result_code=refusal.result_code,
        v_result_code=refusal.v_result_code,
        merr_msg=refusal.merr_msg,
        paynow=PaynowResult(status="failure", message=message),
    )


def _declined(
    decline: Decline, card: Card | None, when: str, paynow: PaynowResult | None = None
) -> Outcome:
    # The reauthorize failure example: RM01, m_status failure, the card, the
    # time and a center error code. A capture decline shows none of those.
    return Outcome(
        result_code="RM01",
        v_result_code=decline.v_result_code,
        merr_msg=decline.merr_msg,
        center_error_code=decline.center_error_code if card is not None else None,
        card=card,
        transaction_datetime=when or None,
        paynow=paynow,
    )
