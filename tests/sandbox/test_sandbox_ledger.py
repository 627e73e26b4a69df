"""The sandbox's answers depend on each order's history, as a gateway's would."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

import pytest

from popbatch.sandbox.ledger import JST, Ledger
from popbatch.sandbox.seed import Seed

pytestmark = pytest.mark.sandbox

T = TypeVar("T")

FIXED_TIME = datetime(2026, 12, 3, 17, 11, 58, tzinfo=JST)


def ledger_with(
    *orders: dict[str, Any], accounts: list[dict[str, Any]] | None = None
) -> Ledger:
    """A ledger seeded with ``orders`` and ``accounts``, on a fixed clock."""
    seed = Seed.from_mapping(
        {"orders": list(orders), "paynow_accounts": accounts or []}
    )
    return Ledger(seed, clock=lambda: FIXED_TIME)


def known(value: T | None) -> T:
    """The value, which the test expects to be there."""
    assert value is not None
    return value


ACCOUNT: dict[str, Any] = {
    "account_id": "ACC-1",
    "cards": [
        {
            "card_id": "CARD-A",
            "default": True,
            "masked_card_number": "411111*11",
            "card_expire": "12/34",
        },
        {
            "card_id": "CARD-B",
            "masked_card_number": "545454*54",
            "card_expire": "08/30",
            "acquirer_code": "05",
        },
        {"card_id": "CARD-BAD", "decline": True},
    ],
}


def test_a_capture_of_an_authorised_order_succeeds_and_records_it():
    """The first capture is applied and leaves the order captured."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000})

    outcome = ledger.capture("A-1", 1000, dummy=True)

    assert (outcome.result_code, outcome.applied) == ("R001", True)
    view = known(ledger.order("A-1"))
    assert (view.state, view.captured, view.balance) == ("captured", 1000, 1000)
    assert [(e.operation, e.amount, e.at) for e in view.history] == [
        ("capture", 1000, "20261203171158")
    ]


def test_a_second_capture_fails_with_rm03_and_changes_nothing():
    """Capturing twice is a gateway failure, never a second charge."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000})
    ledger.capture("A-1", 1000, dummy=True)

    outcome = ledger.capture("A-1", 1000, dummy=True)

    assert (outcome.result_code, outcome.v_result_code, outcome.merr_msg) == (
        "RM03",
        "AC47000000000000",
        "既に売上済みの取引です。",
    )
    assert outcome.applied is False
    assert len(known(ledger.order("A-1")).history) == 1


def test_a_capture_above_the_authorised_amount_fails_with_the_texts_ac38():
    """The capture failure example of the API text: RM01, AC38."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000})

    outcome = ledger.capture("A-1", 1001, dummy=True)

    assert (outcome.result_code, outcome.v_result_code, outcome.merr_msg) == (
        "RM01",
        "AC38000000000000",
        "パラメータで指定した金額は超過しています。",
    )
    assert known(ledger.order("A-1")).state == "authorised"


def test_a_capture_below_the_authorised_amount_captures_that_amount():
    """A partial capture is allowed; the rest of the authorisation lapses."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000})

    outcome = ledger.capture("A-1", 600, dummy=True)

    assert outcome.result_code == "R001"
    assert (
        known(ledger.order("A-1")).captured,
        known(ledger.order("A-1")).balance,
    ) == (600, 600)


def test_a_capture_of_an_unknown_order_fails_with_rm03():
    """The ledger never invents an order."""
    outcome = ledger_with().capture("NOPE", 100, dummy=True)

    assert (outcome.result_code, outcome.v_result_code) == ("RM03", "AC45000000000000")
    assert outcome.merr_msg == "指定されたオーダーIDの取引が存在しません。"


def test_a_capture_of_a_cancelled_order_fails_with_rm03():
    """A voided authorisation cannot be captured."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000, "state": "cancelled"})

    outcome = ledger.capture("A-1", 1000, dummy=True)

    assert (outcome.result_code, outcome.v_result_code) == ("RM03", "AC48000000000000")


def test_a_capture_of_an_order_flagged_to_decline_is_declined():
    """Decline flags give m_status failure with the text's AG48 code."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000, "decline": True})

    outcome = ledger.capture("A-1", 1000, dummy=True)

    assert (outcome.result_code, outcome.v_result_code, outcome.merr_msg) == (
        "RM01",
        "AG48000000000000",
        "無効カードです。",
    )
    assert outcome.reached_gateway is True
    assert known(ledger.order("A-1")).state == "authorised"


def test_partial_refunds_keep_a_running_balance_until_nothing_is_left():
    """Each refund lowers the balance; one above it fails; the last one cancels."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000, "state": "captured"})

    first = ledger.cancel("A-1", 300, dummy=True)
    too_much = ledger.cancel("A-1", 701, dummy=True)
    rest = ledger.cancel("A-1", 700, dummy=True)
    again = ledger.cancel("A-1", 1, dummy=True)

    assert [
        first.result_code,
        too_much.result_code,
        rest.result_code,
        again.result_code,
    ] == [
        "R002",
        "RM01",
        "R002",
        "RM03",
    ]
    assert too_much.v_result_code == "AC38000000000000"
    assert again.v_result_code == "AC48000000000000"
    view = known(ledger.order("A-1"))
    assert (view.state, view.refunded, view.balance) == ("cancelled", 1000, 0)


def test_a_cancel_without_amount_refunds_everything_that_is_left():
    """The API default: no amount means the full (remaining) amount."""
    ledger = ledger_with(
        {"order_id": "A-1", "amount": 1000, "state": "captured", "refunded": 400}
    )

    outcome = ledger.cancel("A-1", None, dummy=True)

    assert outcome.result_code == "R002"
    assert known(ledger.order("A-1")).history[-1].amount == 600
    assert known(ledger.order("A-1")).state == "cancelled"


def test_a_cancel_of_an_authorised_order_voids_it():
    """Cancel before capture releases the authorisation."""
    ledger = ledger_with({"order_id": "A-1", "amount": 1000})

    outcome = ledger.cancel("A-1", None, dummy=True)

    assert outcome.result_code == "R002"
    view = known(ledger.order("A-1"))
    assert (view.state, view.voided, view.history[-1].operation) == (
        "cancelled",
        1000,
        "void",
    )


def test_a_cancel_of_an_unknown_order_fails_with_rm03():
    """There is nothing to refund."""
    outcome = ledger_with().cancel("NOPE", 100, dummy=True)

    assert (outcome.result_code, outcome.v_result_code, outcome.applied) == (
        "RM03",
        "AC45000000000000",
        False,
    )


def test_reauthorize_charges_the_original_card_as_a_new_order():
    """A new order is made with the original's card, captured by default."""
    card = {
        "masked_card_number": "545454*54",
        "card_expire": "01/29",
        "acquirer_code": "02",
    }
    ledger = ledger_with({"order_id": "OLD-1", "amount": 1000, "card": card})

    outcome = ledger.reauthorize("NEW-1", "OLD-1", 2500, capture=True, dummy=True)

    assert (outcome.result_code, outcome.applied) == ("R003", True)
    assert known(outcome.card).masked_card_number == "545454*54"
    assert outcome.transaction_datetime == "20261203171158"
    assert re.fullmatch(r"[0-9]{6}", known(outcome.auth_code))
    new = known(ledger.order("NEW-1"))
    assert (new.state, new.authorised, new.captured) == ("captured", 2500, 2500)


def test_reauthorize_with_capture_false_leaves_the_new_order_authorised():
    """capture false authorises only; a later capture is then possible."""
    ledger = ledger_with({"order_id": "OLD-1", "amount": 1000})

    ledger.reauthorize("NEW-1", "OLD-1", 2500, capture=False, dummy=True)
    later = ledger.capture("NEW-1", 2500, dummy=True)

    assert later.result_code == "R001"


def test_reauthorize_with_an_unknown_original_answers_rc3c_before_the_gateway():
    """An original order POP does not know is RC3C, without m_status."""
    outcome = ledger_with().reauthorize("NEW-1", "NOPE", 100, capture=True, dummy=True)

    assert (outcome.result_code, outcome.reached_gateway, outcome.applied) == (
        "RC3C",
        False,
        False,
    )


def test_an_order_id_reused_for_a_new_charge_fails_with_rm03():
    """reauthorize and authorize need an order id the ledger has not seen."""
    ledger = ledger_with({"order_id": "OLD-1", "amount": 1000}, accounts=[ACCOUNT])

    reauthorized = ledger.reauthorize("OLD-1", "OLD-1", 100, capture=True, dummy=True)
    authorized = ledger.authorize(
        "OLD-1",
        100,
        capture=True,
        account_id="ACC-1",
        card_id=None,
        make_default=None,
        dummy=True,
    )

    for outcome in (reauthorized, authorized):
        assert (outcome.result_code, outcome.v_result_code, outcome.merr_msg) == (
            "RM03",
            "AC49000000000000",
            "指定されたオーダーIDは既に使用されています。",
        )


def test_reauthorize_from_a_declining_card_is_declined_like_the_texts_example():
    """The reauthorize failure example: AG48, the card, the time, center code G61."""
    ledger = ledger_with({"order_id": "OLD-1", "amount": 1000, "decline": True})

    outcome = ledger.reauthorize("NEW-1", "OLD-1", 100, capture=True, dummy=True)

    assert (outcome.result_code, outcome.v_result_code, outcome.center_error_code) == (
        "RM01",
        "AG48000000000000",
        "G61",
    )
    assert known(outcome.card).masked_card_number == "411111*11"
    assert ledger.order("NEW-1") is None


def test_a_declined_charge_leaves_its_order_id_free():
    """A decline does not use up the order id (a sandbox assumption)."""
    ledger = ledger_with(
        {"order_id": "OLD-1", "amount": 1000, "decline": True},
        {"order_id": "OLD-2", "amount": 1000},
    )
    ledger.reauthorize("NEW-1", "OLD-1", 100, capture=True, dummy=True)

    outcome = ledger.reauthorize("NEW-1", "OLD-2", 100, capture=True, dummy=True)

    assert outcome.result_code == "R003"


def test_authorize_without_a_card_id_charges_the_standard_card():
    """With no paynow_card_id the account's default card pays."""
    ledger = ledger_with(accounts=[ACCOUNT])

    outcome = ledger.authorize(
        "N-1",
        100,
        capture=True,
        account_id="ACC-1",
        card_id=None,
        make_default=None,
        dummy=True,
    )

    assert outcome.result_code == "R004"
    assert (known(outcome.paynow).card_id, known(outcome.paynow).default_card) == (
        "CARD-A",
        True,
    )


def test_authorize_with_a_card_id_makes_it_the_standard_card_by_default():
    """paynow_default_card defaults to true when a card is named."""
    ledger = ledger_with(accounts=[ACCOUNT])

    outcome = ledger.authorize(
        "N-1",
        100,
        capture=True,
        account_id="ACC-1",
        card_id="CARD-B",
        make_default=None,
        dummy=True,
    )

    assert (known(outcome.paynow).card_id, known(outcome.paynow).default_card) == (
        "CARD-B",
        True,
    )
    assert ledger.default_card("ACC-1") == "CARD-B"


def test_authorize_with_default_card_false_keeps_the_standard_card():
    """paynow_default_card false charges the card without making it standard."""
    ledger = ledger_with(accounts=[ACCOUNT])

    outcome = ledger.authorize(
        "N-1",
        100,
        capture=True,
        account_id="ACC-1",
        card_id="CARD-B",
        make_default=False,
        dummy=True,
    )

    assert (known(outcome.paynow).card_id, known(outcome.paynow).default_card) == (
        "CARD-B",
        False,
    )
    assert ledger.default_card("ACC-1") == "CARD-A"


@pytest.mark.parametrize(
    ("account_id", "card_id", "message"),
    [
        ("NOPE", None, "未登録の会員IDです。"),
        ("ACC-1", "NOPE", "未登録のカードです。"),
        ("ACC-2", None, "標準カードが設定されていません。"),
    ],
    ids=["unknown-account", "unknown-card", "no-standard-card"],
)
def test_authorize_without_a_usable_card_fails_like_the_texts_example(
    account_id, card_id, message
):
    """The authorize failure example: RM01, AC22XH09, paynow_status failure."""
    no_default = {"account_id": "ACC-2", "cards": [{"card_id": "X"}]}
    ledger = ledger_with(accounts=[ACCOUNT, no_default])

    outcome = ledger.authorize(
        "N-1",
        100,
        capture=True,
        account_id=account_id,
        card_id=card_id,
        make_default=None,
        dummy=True,
    )

    assert (outcome.result_code, outcome.v_result_code) == ("RM01", "AC22XH0900000000")
    assert outcome.merr_msg == "カード番号パラメータが設定していません。"
    assert (known(outcome.paynow).status, known(outcome.paynow).message) == (
        "failure",
        message,
    )
    assert ledger.order("N-1") is None


def test_authorize_with_a_declining_card_is_declined():
    """A card flagged to decline gives AG48 and a failed PayNow operation."""
    ledger = ledger_with(accounts=[ACCOUNT])

    outcome = ledger.authorize(
        "N-1",
        100,
        capture=True,
        account_id="ACC-1",
        card_id="CARD-BAD",
        make_default=None,
        dummy=True,
    )

    assert (
        outcome.result_code,
        outcome.v_result_code,
        known(outcome.paynow).status,
    ) == (
        "RM01",
        "AG48000000000000",
        "failure",
    )
    assert ledger.default_card("ACC-1") == "CARD-A"


# Over HTTP: the answer's fields, as the API text's examples show them.

SUCCESS_FIELDS = [
    "order_id",
    "status",
    "result_code",
    "message",
    "m_status",
    "v_result_code",
    "merr_msg",
]


def test_capture_and_cancel_answers_carry_exactly_the_texts_fields(pop):
    """R001 and R002 answers have the seven fields of the examples."""
    captured = pop.result(
        "card-capture", {"order_id": "ORDER-0001", "amount": 10000, "dummy": True}
    )
    cancelled = pop.result(
        "card-cancel", {"order_id": "ORDER-0001", "amount": 100, "dummy": True}
    )

    assert captured == {
        "order_id": "ORDER-0001",
        "status": "success",
        "result_code": "R001",
        "message": "Payment Captured Successfully",
        "m_status": "success",
        "v_result_code": "A001000000000000",
        "merr_msg": "処理が成功しました。",
    }
    assert list(cancelled) == SUCCESS_FIELDS
    assert (cancelled["result_code"], cancelled["message"]) == (
        "R002",
        "Payment Cancelled Successfully",
    )


def test_a_gateway_failure_answers_http_200_with_m_status_failure(pop):
    """A ledger refusal reached the gateway: HTTP 200, m_status failure."""
    answer = pop.post("card-cancel", {"order_id": "UNKNOWN-1", "dummy": True})

    assert answer.status_code == 200
    assert answer.json() == {
        "order_id": "UNKNOWN-1",
        "status": "failure",
        "result_code": "RM03",
        "message": "MDK Error",
        "m_status": "failure",
        "v_result_code": "AC45000000000000",
        "merr_msg": "指定されたオーダーIDの取引が存在しません。",
    }


def test_a_reauthorize_answer_carries_the_original_order_id_and_the_card(pop):
    """As in the text's example, the answer names the original order."""
    body = {
        "order_id": "NEW-9",
        "original_order_id": "ORDER-0001",
        "amount": 500,
        "dummy": True,
    }

    answer = pop.result("card-reauthorize", body)

    assert list(answer) == [
        *SUCCESS_FIELDS,
        "acquirer_code",
        "auth_code",
        "masked_card_number",
        "transaction_datetime",
    ]
    assert answer["order_id"] == "ORDER-0001"
    assert answer["message"] == "Payment Re-Authorize Successfully"
    assert re.fullmatch(r"[0-9]{6}\*[0-9]{2}", answer["masked_card_number"])
    assert re.fullmatch(r"20[0-9]{12}", answer["transaction_datetime"])
    assert re.fullmatch(r"[0-9]{6}", answer["auth_code"])
    assert re.fullmatch(r"[0-9]{2}", answer["acquirer_code"])


def test_reauthorize_echo_new_answers_with_the_new_order_id(make_sandbox):
    """--reauthorize-order-id new: the answer carries the request's order_id."""
    import requests

    server = make_sandbox(reauthorize_echo="new")
    body = {
        "order_id": "NEW-9",
        "original_order_id": "ORDER-0001",
        "amount": 500,
        "dummy": True,
    }
    headers = {
        "Authorization": server.authorization(),
        "Content-Type": "application/json",
    }

    with requests.Session() as session:
        answer = session.post(
            server.url("card-reauthorize"), json=body, headers=headers
        ).json()

    assert (answer["order_id"], answer["result_code"]) == ("NEW-9", "R003")


def test_a_reauthorize_of_an_unknown_original_answers_rc3c_without_m_status(pop):
    """RC3C is decided before the gateway, so it has no gateway fields."""
    body = {
        "order_id": "NEW-9",
        "original_order_id": "NEVER-SEEN",
        "amount": 500,
        "dummy": True,
    }

    answer = pop.post("card-reauthorize", body)

    assert answer.status_code == 400
    assert answer.json() == {
        "order_id": "NEVER-SEEN",
        "status": "failure",
        "result_code": "RC3C",
        "message": "Invalid “Original orderId”",
    }


def test_a_reauthorize_decline_has_the_fields_of_the_texts_failure_example(pop):
    """The seeded declining order answers like the reauthorize failure example."""
    body = {
        "order_id": "NEW-9",
        "original_order_id": "SANDBOX-DECLINE-0001",
        "amount": 500,
        "dummy": True,
    }

    answer = pop.result("card-reauthorize", body)

    assert list(answer) == [
        *SUCCESS_FIELDS,
        "masked_card_number",
        "transaction_datetime",
        "center_error_code",
    ]
    assert (answer["m_status"], answer["merr_msg"], answer["center_error_code"]) == (
        "failure",
        "無効カードです。",
        "G61",
    )


def test_an_authorize_answer_carries_every_field_of_the_texts_example(pop):
    """R004 answers have card_expire and the paynow_* fields."""
    body = {
        "order_id": "NEW-9",
        "amount": 500,
        "paynow_account_id": "TEST-ACCOUNT-101",
        "dummy": True,
    }

    answer = pop.result("card-authorize", body)

    assert list(answer) == [
        *SUCCESS_FIELDS,
        "acquirer_code",
        "auth_code",
        "masked_card_number",
        "card_expire",
        "transaction_datetime",
        "paynow_status",
        "paynow_account_id",
        "paynow_card_id",
        "paynow_message",
        "paynow_default_card",
    ]
    assert answer["v_result_code"] == "A001X00100000000"
    assert re.fullmatch(r"(0[1-9]|1[0-2])/[0-9]{2}", answer["card_expire"])
    assert (answer["paynow_status"], answer["paynow_default_card"]) == ("success", True)


def test_an_authorize_failure_has_the_fields_of_the_texts_failure_example(pop):
    """An unknown card answers like the authorize failure example."""
    body = {
        "order_id": "NEW-9",
        "amount": 500,
        "paynow_account_id": "TEST-ACCOUNT-101",
        "paynow_card_id": "NOT-A-CARD",
        "dummy": True,
    }

    answer = pop.result("card-authorize", body)

    assert answer == {
        "order_id": "NEW-9",
        "status": "failure",
        "result_code": "RM01",
        "message": "Gateway error",
        "m_status": "failure",
        "v_result_code": "AC22XH0900000000",
        "merr_msg": "カード番号パラメータが設定していません。",
        "paynow_status": "failure",
        "paynow_message": "未登録のカードです。",
    }
