"""Request checks, in the sandbox's own reading of the API text.

Headers first (Basic authentication, media type), then the body: strict
JSON, then each field in the order of the endpoint's request table, then
dummy. The first failure answers. Types are JSON types: an amount is a JSON
integer (not "100", not 1.5, not 100.0, not true), a flag is a JSON boolean,
and ``null`` is never a way to leave a field out (leave it out).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeGuard

from popbatch.sandbox import codes
from popbatch.sandbox.seed import MAX_AMOUNT, ORDER_ID_PATTERN

MAX_ID_LENGTH = 100

# Tells a field left out from a field sent as null (which is refused).
_ABSENT: Any = object()


class Merchant(Enum):
    """Which kind of server key authenticated the request."""

    TEST = "test"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class PopRequest:
    """A request that passed every check, with the API's defaults filled in."""

    endpoint: str
    order_id: str
    amount: int | None
    dummy: bool
    capture: bool = True
    original_order_id: str | None = None
    paynow_account_id: str | None = None
    paynow_card_id: str | None = None
    paynow_default_card: bool | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused before the gateway, with the result code to answer."""

    result_code: str


class _Malformed(ValueError):
    """The body is not a JSON text POP accepts."""


def authenticate(
    header: str | None, test_keys: Sequence[str], live_keys: Sequence[str]
) -> Merchant | None:
    """The merchant whose key is in ``Authorization: Basic``, or None (RC17).

    The user name is the server key and the password must be empty.
    """
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, password = decoded.partition(":")
    if not colon or password:
        return None

    # Compare with every key in constant time: timing tells nothing about them.
    known = [(k, Merchant.TEST) for k in test_keys] + [
        (k, Merchant.LIVE) for k in live_keys
    ]
    merchant = None
    for candidate, kind in known:
        if hmac.compare_digest(key.encode(), candidate.encode()):
            merchant = kind
    return merchant


def is_json_media_type(header: str | None) -> bool:
    """Whether Content-Type is application/json, with at most a UTF-8 charset."""
    if header is None:
        return False
    media_type, *parameters = header.split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for parameter in parameters:
        if not parameter.strip():
            continue
        name, equals, value = parameter.partition("=")
        if not equals:
            return False
        if name.strip().lower() == "charset" and value.strip().strip(
            '"'
        ).lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def parse_body(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when POP would answer RC43.

    Strict: UTF-8 without a byte order mark, no duplicate keys, no NaN or
    Infinity, and the top level must be an object.
    """
    try:
        document = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
        )
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _Malformed("a key appears twice")
    return document


def _refuse_constant(name: str) -> None:
    raise _Malformed(f"{name} is not JSON")


def check_fields(
    endpoint: str, document: dict[str, Any], merchant: Merchant
) -> PopRequest | Refusal:
    """Check the body's fields for ``endpoint``; unknown fields are ignored."""
    order_id = document.get("order_id")
    if not _is_order_id(order_id):
        return Refusal("RC01")

    original = document.get("original_order_id")
    if endpoint == codes.REAUTHORIZE and not _is_order_id(original):
        return Refusal("RC3C")

    amount = document.get("amount", _ABSENT)
    amount_optional = endpoint == codes.CANCEL
    if not (_is_amount(amount) or (amount_optional and amount is _ABSENT)):
        return Refusal("RC3A")

    capture = document.get("capture", True)
    if endpoint in (codes.REAUTHORIZE, codes.AUTHORIZE) and not isinstance(
        capture, bool
    ):
        return Refusal("RC27")

    refusal = _check_paynow(document) if endpoint == codes.AUTHORIZE else None
    if refusal is not None:
        return refusal

    # dummy is optional and defaults to false; a test merchant must send true.
    dummy = document.get("dummy", False)
    if not isinstance(dummy, bool):
        return Refusal("RC26")
    if merchant is Merchant.TEST and not dummy:
        return Refusal("RC44")

    return PopRequest(
        endpoint=endpoint,
        order_id=order_id,
        amount=amount if _is_amount(amount) else None,
        dummy=dummy,
        capture=capture is True,
        original_order_id=original if endpoint == codes.REAUTHORIZE else None,
        paynow_account_id=document.get("paynow_account_id"),
        paynow_card_id=document.get("paynow_card_id"),
        paynow_default_card=document.get("paynow_default_card"),
    )


def _check_paynow(document: dict[str, Any]) -> Refusal | None:
    if not _is_paynow_id(document.get("paynow_account_id")):
        return Refusal("RC2A")
    card_id = document.get("paynow_card_id", _ABSENT)
    if card_id is not _ABSENT and not _is_paynow_id(card_id):
        return Refusal("RC2K")

    # "If paynow_card_id is not specified, leave it unset": the sandbox holds
    # the merchant to that, so a flag without a card is refused.
    default_card = document.get("paynow_default_card", _ABSENT)
    if default_card is not _ABSENT and (
        not isinstance(default_card, bool) or card_id is _ABSENT
    ):
        return Refusal("RC2F")
    return None


def _is_order_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ORDER_ID_PATTERN.fullmatch(value) is not None


def _is_paynow_id(value: object) -> bool:
    # The text gives only a length for these ids; whether an id exists is the
    # gateway's question, answered by the ledger.
    return isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH


def _is_amount(value: object) -> TypeGuard[int]:
    # A JSON integer only: bool is an int subclass in Python, and 100.0 or
    # 1e2 arrive as floats; number (8) and "1 to 99,999,999" bound it.
    return type(value) is int and 1 <= value <= MAX_AMOUNT
