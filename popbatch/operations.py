"""The four POP card operations as data: endpoint, row fields, result codes.

Everything here is taken from the POP API text (the copy in
``docs/pop-card-api.txt``); nothing else in popbatch spells a field name,
a length or a result code of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class FieldKind(StrEnum):
    """How a row field is read, normalised and checked."""

    ORDER_ID = "order_id"  # 1-100 of A-Z a-z 0-9 - _
    AMOUNT = "amount"  # a whole number of yen, 1 to 99,999,999
    BOOLEAN = "boolean"  # a JSON boolean
    PAYNOW_ID = "paynow_id"  # text of at most 100 characters


@dataclass(frozen=True, slots=True)
class Field:
    """One request field that a row supplies.

    Args:
        api_default: what POP assumes when the field is left out, as the
            API text states it; shown in the results when a cell is blank.
    """

    name: str
    kind: FieldKind
    required: bool
    max_length: int | None = None
    api_default: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One POP endpoint and the row fields it takes."""

    name: str
    endpoint: str
    success_code: str
    fields: tuple[Field, ...]
    # Result codes that only this endpoint returns (API text, "Result Codes").
    own_codes: frozenset[str]

    def field(self, name: str) -> Field:
        """Return the field called ``name``; KeyError when it has none."""
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        """The names of the row fields, in the API text's order."""
        return tuple(field.name for field in self.fields)

    @property
    def known_codes(self) -> frozenset[str]:
        """Every result code this endpoint can answer with."""
        return COMMON_CODES | self.own_codes


ORDER_ID_MAX = 100
PAYNOW_ID_MAX = 100
AMOUNT_MIN = 1
AMOUNT_MAX = 99_999_999

_ORDER_ID = Field("order_id", FieldKind.ORDER_ID, True, ORDER_ID_MAX)
_AMOUNT = Field("amount", FieldKind.AMOUNT, True)
_CAPTURE = Field("capture", FieldKind.BOOLEAN, False, api_default="true")

# Result codes and their meanings, as the API text lists them.
RESULT_CODES: Final[dict[str, str]] = {
    "R001": "Payment Captured Successfully",
    "R002": "Payment Cancelled Successfully",
    "R003": "Payment Reauthorized Successfully",
    "R004": "Payment Authorized Successfully",
    "RA01": "Application Error - an unknown error has occurred on VeriTrans side",
    "RD01": "Database Error - a severe error in the VeriTrans database",
    "RM01": "Gateway Error - an error while connecting to the Payment Gateway",
    "RM03": "MDK Error - an error returned by the Payment Gateway",
    "RC01": 'Invalid "Order ID"',
    "RC17": "Merchant authentication failed. Please check POP_SERVER_KEY",
    "RC26": 'Invalid value for "Dummy"',
    "RC27": 'Invalid value for "Capture"',
    "RC2A": 'Invalid "PayNow Account ID"',
    "RC2F": 'Invalid value for "PayNow Default Card"',
    "RC2K": 'Invalid value for "PayNow Card ID"',
    "RC30": 'Unsupported "Media Type"',
    "RC32": "GET method is not supported",
    "RC3A": 'Invalid "Amount"',
    "RC3B": 'Invalid "Security Code"',
    "RC3C": 'Invalid "Original orderId"',
    "RC40": 'Invalid value for "JPO"',
    "RC41": 'Invalid value for "JPO Count"',
    "RC43": "Invalid JSON string - JSON string in the POST request is invalid",
    "RC44": '"Dummy" should be "true" for test merchant',
}

COMMON_CODES: Final = frozenset(
    {"RA01", "RD01", "RM01", "RM03", "RC01", "RC17", "RC26", "RC30", "RC32"}
    | {"RC3A", "RC43", "RC44"}
)

CAPTURE = Operation(
    name="capture",
    endpoint="card-capture",
    success_code="R001",
    fields=(_ORDER_ID, _AMOUNT),
    own_codes=frozenset({"R001"}),
)
CANCEL = Operation(
    name="cancel",
    endpoint="card-cancel",
    success_code="R002",
    # A blank amount cancels or refunds the full amount (API text, Cancel).
    fields=(_ORDER_ID, Field("amount", FieldKind.AMOUNT, False, api_default="full")),
    own_codes=frozenset({"R002"}),
)
REAUTHORIZE = Operation(
    name="reauthorize",
    endpoint="card-reauthorize",
    success_code="R003",
    fields=(
        _ORDER_ID,
        Field("original_order_id", FieldKind.ORDER_ID, True, ORDER_ID_MAX),
        _AMOUNT,
        _CAPTURE,
    ),
    own_codes=frozenset({"R003", "RC27", "RC3B", "RC3C", "RC40", "RC41"}),
)
AUTHORIZE = Operation(
    name="authorize",
    endpoint="card-authorize",
    success_code="R004",
    fields=(
        _ORDER_ID,
        _AMOUNT,
        _CAPTURE,
        Field("paynow_account_id", FieldKind.PAYNOW_ID, True, PAYNOW_ID_MAX),
        Field("paynow_card_id", FieldKind.PAYNOW_ID, False, PAYNOW_ID_MAX),
        Field("paynow_default_card", FieldKind.BOOLEAN, False, api_default="true"),
    ),
    own_codes=frozenset({"R004", "RC27", "RC2A", "RC2F", "RC2K"}),
)

OPERATIONS: Final[dict[str, Operation]] = {
    op.name: op for op in (CAPTURE, CANCEL, REAUTHORIZE, AUTHORIZE)
}


def describe_code(code: str | None) -> str:
    """Return the API text's meaning of a result code, or a neutral phrase."""
    if code is None:
        return "no result code"
    return RESULT_CODES.get(code, "not a result code the API text lists")
