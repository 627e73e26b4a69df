"""Result codes, messages and gateway answers, as the sandbox reads the API text.

This table is the sandbox's own reading of docs/pop-card-api.txt, kept apart
from ``popbatch.operations`` on purpose: if both sides shared one table, one
wrong entry would pass both. Where the text shows an example response, the
``message`` here is the example's; otherwise it is the description from the
text's result code table. Gateway codes that the text does not show are the
sandbox's own choices; the README's sandbox section lists each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CAPTURE: Final = "card-capture"
CANCEL: Final = "card-cancel"
REAUTHORIZE: Final = "card-reauthorize"
AUTHORIZE: Final = "card-authorize"
ENDPOINTS: Final = (CAPTURE, CANCEL, REAUTHORIZE, AUTHORIZE)

SUCCESS_CODES: Final = {
    CAPTURE: "R001",
    CANCEL: "R002",
    REAUTHORIZE: "R003",
    AUTHORIZE: "R004",
}

# The success message of each example response ("Re-Authorize" included: the
# reauthorize example says so, although the code table says "Reauthorized").
MESSAGES: Final = {
    "R001": "Payment Captured Successfully",
    "R002": "Payment Cancelled Successfully",
    "R003": "Payment Re-Authorize Successfully",
    "R004": "Payment Authorized Successfully",
    "RA01": "Application Error",
    "RD01": "Database Error",
    "RM01": "Gateway error",
    "RM03": "MDK Error",
    "RC01": "Invalid “Order ID”",
    "RC17": "Merchant authentication failed. Please check POP_SERVER_KEY",
    "RC26": "Invalid value for “Dummy”",
    "RC27": "Invalid value for “Capture”",
    "RC2A": "Invalid “PayNow Account ID”",
    "RC2F": "Invalid value for “PayNow Default Card”",
    "RC2K": "Invalid value for “PayNow Card ID”",
    "RC30": "Unsupported “Media Type”",
    "RC32": "GET method is not supported",
    "RC3A": "Invalid “Amount”",
    "RC3C": "Invalid “Original orderId”",
    "RC43": "Invalid JSON string - JSON string in the POST request is invalid",
    "RC44": "“Dummy” should be “true” for test merchant",
}

# Every code the sandbox can answer per endpoint (RC3B, RC40 and RC41 never:
# the request tables have no security code or JPO fields that could trigger them).
_COMMON: Final = frozenset(
    {"RA01", "RD01", "RM01", "RM03", "RC01", "RC17", "RC26", "RC30", "RC32"}
    | {"RC3A", "RC43", "RC44"}
)
CODES_BY_ENDPOINT: Final = {
    CAPTURE: _COMMON | {"R001"},
    CANCEL: _COMMON | {"R002"},
    REAUTHORIZE: _COMMON | {"R003", "RC27", "RC3C"},
    AUTHORIZE: _COMMON | {"R004", "RC27", "RC2A", "RC2F", "RC2K"},
}

# HTTP statuses for answers that stop before the gateway, in the default
# "http" mode; the API text names none, so these are the sandbox's choice.
# Answers from the gateway (success, decline, ledger refusals) are 200.
HTTP_STATUS: Final = {
    "RC17": 401,
    "RC32": 405,
    "RC30": 415,
    "RC44": 403,
}
VALIDATION_STATUS: Final = 400

SUCCESS_V_RESULT: Final = "A001000000000000"
# The authorize example's code: card payment plus the PayNowID service.
AUTHORIZE_V_RESULT: Final = "A001X00100000000"
SUCCESS_MERR: Final = "処理が成功しました。"


@dataclass(frozen=True, slots=True)
class GatewayRefusal:
    """A failure the payment gateway returns: m_status failure with its codes."""

    result_code: str
    v_result_code: str
    merr_msg: str


# From the API text's capture and cancel examples.
AMOUNT_EXCEEDED: Final = GatewayRefusal(
    "RM01", "AC38000000000000", "パラメータで指定した金額は超過しています。"
)
# The sandbox's choices (the text shows no example for these ledger states).
UNKNOWN_ORDER: Final = GatewayRefusal(
    "RM03", "AC45000000000000", "指定されたオーダーIDの取引が存在しません。"
)
ALREADY_CAPTURED: Final = GatewayRefusal(
    "RM03", "AC47000000000000", "既に売上済みの取引です。"
)
ALREADY_CANCELLED: Final = GatewayRefusal(
    "RM03", "AC48000000000000", "既に取消済みの取引です。"
)
ORDER_ID_IN_USE: Final = GatewayRefusal(
    "RM03", "AC49000000000000", "指定されたオーダーIDは既に使用されています。"
)
# From the API text's authorize failure example (the card could not be found).
PAYNOW_NO_CARD: Final = GatewayRefusal(
    "RM01", "AC22XH0900000000", "カード番号パラメータが設定していません。"
)

PAYNOW_SUCCESS_MESSAGE: Final = "処理が成功しました。"
PAYNOW_UNKNOWN_CARD: Final = "未登録のカードです。"
PAYNOW_UNKNOWN_ACCOUNT: Final = "未登録の会員IDです。"
PAYNOW_NO_DEFAULT_CARD: Final = "標準カードが設定されていません。"
PAYNOW_DECLINED: Final = "決済処理に失敗しました。"
