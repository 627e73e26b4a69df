"""The seed file: orders and PayNow accounts the ledger starts with.

A seed is JSON with two optional lists::

    {"orders": [{"order_id": "A-1", "amount": 1000}, ...],
     "paynow_accounts": [{"account_id": "ACC-1",
                          "cards": [{"card_id": "C1", "default": true}, ...]}]}

Every field is checked strictly (unknown keys are errors, so a typo such as
``ammount`` cannot quietly seed the wrong thing), and each error names the
file and the entry. No card number is ever stored: a card is its masked
number, expiry and acquirer code, which is all POP returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from popbatch.sandbox.errors import SandboxError

MAX_AMOUNT = 99_999_999
ORDER_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,100}")
_MASKED_CARD = re.compile(r"[0-9]{6}\*[0-9]{2}")
_CARD_EXPIRE = re.compile(r"(0[1-9]|1[0-2])/[0-9]{2}")
_ACQUIRER = re.compile(r"[0-9]{2}")
_V_RESULT_CODE = re.compile(r"[A-Z0-9]{16}")

ORDER_STATES = ("authorised", "captured", "cancelled")
# The API text spells it "authorize"; both spellings mean the same state.
_STATE_ALIASES = {"authorized": "authorised"}


@dataclass(frozen=True, slots=True)
class Decline:
    """How the gateway declines a card (defaults: the API text's example)."""

    v_result_code: str = "AG48000000000000"
    merr_msg: str = "無効カードです。"
    center_error_code: str = "G61"


@dataclass(frozen=True, slots=True)
class Card:
    """A card as POP shows it: masked number, expiry, acquirer, and a decline."""

    masked_card_number: str = "411111*11"
    card_expire: str = "12/34"
    acquirer_code: str = "01"
    decline: Decline | None = None


@dataclass(frozen=True, slots=True)
class OrderSeed:
    """One order the ledger knows before any request."""

    order_id: str
    amount: int
    state: str = "authorised"
    captured: int | None = None
    refunded: int = 0
    card: Card = field(default_factory=Card)
    decline: Decline | None = None


@dataclass(frozen=True, slots=True)
class AccountSeed:
    """One PayNow account: its cards by id, and the standard (default) card."""

    account_id: str
    cards: Mapping[str, Card]
    default_card: str | None = None


@dataclass(frozen=True, slots=True)
class Seed:
    """Orders and accounts to load into a ledger."""

    orders: tuple[OrderSeed, ...] = ()
    accounts: tuple[AccountSeed, ...] = ()

    @classmethod
    def from_mapping(cls, data: object, *, source: str = "seed") -> Seed:
        """Check and convert JSON-like data; ``source`` names it in errors.

        Raises:
            SandboxError: the data does not follow the seed format.
        """
        top = _mapping(data, source, {"orders", "paynow_accounts", "comment"})
        orders = [
            _order(item, f"{source}: orders[{index}]")
            for index, item in enumerate(
                _list(top.get("orders", []), f"{source}: orders")
            )
        ]
        accounts = [
            _account(item, f"{source}: paynow_accounts[{index}]")
            for index, item in enumerate(
                _list(top.get("paynow_accounts", []), f"{source}: paynow_accounts")
            )
        ]
        _refuse_duplicates([order.order_id for order in orders], f"{source}: order_id")
        _refuse_duplicates(
            [account.account_id for account in accounts], f"{source}: account_id"
        )

        return cls(orders=tuple(orders), accounts=tuple(accounts))


def load_seed_file(path: Path) -> Seed:
    """Read a seed file.

    Raises:
        SandboxError: the file is missing, unreadable, not JSON, or not a seed.
    """
    return Seed.from_mapping(read_json_file(path, "seed"), source=path.name)


def read_json_file(path: Path, what: str) -> object:
    """Read a JSON file for the sandbox, with one-line errors naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SandboxError(f"{what} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SandboxError(
            f"cannot read the {what} file {str(path)!r}: {reason}"
        ) from None

    try:
        data: object = json.loads(text)
    except ValueError as exc:
        raise SandboxError(
            f"{what} file {str(path)!r} is not valid JSON: {exc}"
        ) from None
    return data


def _order(item: object, where: str) -> OrderSeed:
    data = _mapping(
        item,
        where,
        {"order_id", "amount", "state", "captured", "refunded", "card", "decline"},
    )
    order_id = _order_id(data.get("order_id"), f"{where}.order_id")
    where = f"{where} ({order_id})"
    amount = _amount(data.get("amount"), f"{where}: amount")
    state = data.get("state", "authorised")
    state = _STATE_ALIASES.get(state, state) if isinstance(state, str) else state
    if state not in ORDER_STATES:
        raise SandboxError(f"{where}: state must be one of {', '.join(ORDER_STATES)}")

    captured = data.get("captured")
    refunded = data.get("refunded", 0)
    if state != "captured" and (captured is not None or refunded):
        raise SandboxError(f"{where}: captured and refunded need state 'captured'")
    if state == "captured":
        captured = (
            amount if captured is None else _amount(captured, f"{where}: captured")
        )
        if captured > amount:
            raise SandboxError(
                f"{where}: captured {captured} is more than amount {amount}"
            )
        if not _is_int(refunded) or not 0 <= refunded <= captured:
            raise SandboxError(
                f"{where}: refunded must be an integer from 0 to {captured}"
            )

    return OrderSeed(
        order_id=order_id,
        amount=amount,
        state=state,
        captured=captured,
        refunded=refunded,
        card=_card(data.get("card", {}), f"{where}: card"),
        decline=_decline(data.get("decline", False), f"{where}: decline"),
    )


def _account(item: object, where: str) -> AccountSeed:
    data = _mapping(item, where, {"account_id", "cards"})
    account_id = data.get("account_id")
    if not isinstance(account_id, str) or not 1 <= len(account_id) <= 100:
        raise SandboxError(
            f"{where}.account_id must be a string of 1 to 100 characters"
        )
    where = f"{where} ({account_id})"

    cards: dict[str, Card] = {}
    defaults: list[str] = []
    for index, entry in enumerate(_list(data.get("cards", []), f"{where}: cards")):
        card_where = f"{where}: cards[{index}]"
        card_data = _mapping(entry, card_where, {"card_id", "default", *_CARD_KEYS})
        card_id = card_data.pop("card_id", None)
        if not isinstance(card_id, str) or not 1 <= len(card_id) <= 100:
            raise SandboxError(
                f"{card_where}.card_id must be a string of 1 to 100 characters"
            )
        if card_id in cards:
            raise SandboxError(f"{where}: card_id {card_id!r} appears more than once")
        is_default = card_data.pop("default", False)
        if not isinstance(is_default, bool):
            raise SandboxError(f"{card_where}: default must be true or false")
        if is_default:
            defaults.append(card_id)
        cards[card_id] = _card(card_data, card_where)

    # The standard card of PayNowID: one at most, or none (then every
    # authorize must name its card).
    if len(defaults) > 1:
        raise SandboxError(
            f"{where}: only one card can be the default (found {', '.join(defaults)})"
        )
    default = defaults[0] if defaults else None
    return AccountSeed(account_id=account_id, cards=cards, default_card=default)


_CARD_KEYS = {"masked_card_number", "card_expire", "acquirer_code", "decline"}


def _card(item: object, where: str) -> Card:
    data = _mapping(item, where, _CARD_KEYS)
    card = Card()
    masked = data.get("masked_card_number", card.masked_card_number)
    expire = data.get("card_expire", card.card_expire)
    acquirer = data.get("acquirer_code", card.acquirer_code)
    if not isinstance(masked, str) or not _MASKED_CARD.fullmatch(masked):
        raise SandboxError(f"{where}: masked_card_number must look like 411111*11")
    if not isinstance(expire, str) or not _CARD_EXPIRE.fullmatch(expire):
        raise SandboxError(f"{where}: card_expire must be MM/YY")
    if not isinstance(acquirer, str) or not _ACQUIRER.fullmatch(acquirer):
        raise SandboxError(f"{where}: acquirer_code must be two digits")

    return Card(
        masked_card_number=masked,
        card_expire=expire,
        acquirer_code=acquirer,
        decline=_decline(data.get("decline", False), f"{where}: decline"),
    )


def _decline(item: object, where: str) -> Decline | None:
    if item is False:
        return None
    if item is True:
        return Decline()

    data = _mapping(item, where, {"v_result_code", "merr_msg", "center_error_code"})
    default = Decline()
    code = data.get("v_result_code", default.v_result_code)
    message = data.get("merr_msg", default.merr_msg)
    center = data.get("center_error_code", default.center_error_code)
    if not isinstance(code, str) or not _V_RESULT_CODE.fullmatch(code):
        raise SandboxError(
            f"{where}: v_result_code must be 16 capital letters or digits"
        )
    if not isinstance(message, str) or not 1 <= len(message) <= 300:
        raise SandboxError(f"{where}: merr_msg must be a string of 1 to 300 characters")
    if not isinstance(center, str) or not 1 <= len(center) <= 3:
        raise SandboxError(f"{where}: center_error_code must be 1 to 3 characters")

    return Decline(v_result_code=code, merr_msg=message, center_error_code=center)


def _mapping(item: object, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise SandboxError(f"{where} must be a JSON object")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise SandboxError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )
    return dict(item)


def _list(item: object, where: str) -> list[Any]:
    if not isinstance(item, list):
        raise SandboxError(f"{where} must be a JSON list")
    return item


def _order_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not ORDER_ID_PATTERN.fullmatch(value):
        raise SandboxError(
            f"{where} must be 1 to 100 of A-Z a-z 0-9 - _ (got {value!r})"
        )
    return value


def _amount(value: object, where: str) -> int:
    if not _is_int(value) or not 1 <= value <= MAX_AMOUNT:
        raise SandboxError(
            f"{where} must be an integer from 1 to {MAX_AMOUNT} (got {value!r})"
        )
    return value


def _is_int(value: object) -> TypeGuard[int]:
    # JSON true is a Python bool, which is an int: refuse it explicitly.
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_duplicates(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise SandboxError(f"{what} {value!r} appears more than once")
        seen.add(value)
