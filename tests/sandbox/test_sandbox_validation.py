"""The sandbox refuses what the API text refuses, with the code it names."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.sandbox

CAPTURE = {"order_id": "ORDER-0001", "amount": 10000, "dummy": True}
CANCEL = {"order_id": "SANDBOX-CAPTURED-0001", "amount": 100, "dummy": True}
REAUTHORIZE = {
    "order_id": "NEW-0001",
    "original_order_id": "ORDER-0001",
    "amount": 10000,
    "capture": True,
    "dummy": True,
}
AUTHORIZE = {
    "order_id": "NEW-0002",
    "amount": 10000,
    "capture": True,
    "paynow_account_id": "TEST-ACCOUNT-101",
    "paynow_card_id": "232QDFCPFBR93UBEAITN7EQHL",
    "paynow_default_card": True,
    "dummy": True,
}
VALID = {
    "card-capture": CAPTURE,
    "card-cancel": CANCEL,
    "card-reauthorize": REAUTHORIZE,
    "card-authorize": AUTHORIZE,
}


def with_field(body: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with one field set (or removed, for ``...``)."""
    changed = dict(body)
    if value is ...:
        changed.pop(name, None)
    else:
        changed[name] = value
    return changed


@pytest.mark.parametrize("endpoint", sorted(VALID))
def test_every_endpoint_accepts_the_api_texts_example_shape(pop, endpoint):
    """A well-formed request with the test key and dummy true succeeds."""
    answer = pop.post(endpoint, VALID[endpoint])

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.json()["status"] == "success"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_a_method_other_than_post_answers_rc32(pop, sandbox, method):
    """GET (and every other non-POST method) answers RC32 with HTTP 405."""
    answer = pop.session.request(method, sandbox.url("card-capture"))

    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.json() == {
        "status": "failure",
        "result_code": "RC32",
        "message": f"{method} method is not supported",
    }


@pytest.mark.parametrize(
    "key",
    [None, "Wrong-Key", ""],
    ids=["no-header", "unknown-key", "empty-key"],
)
def test_a_missing_or_unknown_key_answers_rc17_with_401(pop, key):
    """Without the server key as Basic user name, POP answers RC17."""
    answer = pop.post("card-capture", CAPTURE, key=key)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="POP"'
    assert answer.json() == {
        "status": "failure",
        "result_code": "RC17",
        "message": "Merchant authentication failed. Please check POP_SERVER_KEY",
    }


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic VGVzdC1QT1AtU2VydmVyLUtleTp4",  # Test-POP-Server-Key:x (a password)
        "Basic VGVzdC1QT1AtU2VydmVyLUtleQ==",  # Test-POP-Server-Key (no colon)
        "Bearer VGVzdC1QT1AtU2VydmVyLUtleTo=",
        "Basic not*base64",
    ],
)
def test_a_malformed_basic_header_answers_rc17(pop, authorization):
    """The password must be empty, the scheme Basic, the token base64."""
    answer = pop.post(
        "card-capture", CAPTURE, key=None, headers={"Authorization": authorization}
    )

    assert answer.json()["result_code"] == "RC17"


def test_the_api_texts_auth_string_is_accepted(pop):
    """AUTH_STRING from the API text authenticates the test merchant."""
    auth = {"Authorization": "Basic VGVzdC1QT1AtU2VydmVyLUtleTo="}
    answer = pop.post("card-capture", CAPTURE, key=None, headers=auth)

    assert answer.json()["result_code"] == "R001"


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json;charset=UTF-8",
        'Application/JSON; charset="utf-8"',
    ],
)
def test_json_media_type_with_or_without_utf8_charset_is_accepted(pop, content_type):
    """The charset parameter may be given, in any letter case."""
    answer = pop.post("card-capture", CAPTURE, content_type=content_type)

    assert answer.json()["result_code"] == "R001"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=shift_jis",
    ],
)
def test_another_media_type_answers_rc30_with_415(pop, content_type):
    """Only application/json (UTF-8) is supported."""
    answer = pop.post("card-capture", CAPTURE, content_type=content_type)

    assert answer.status_code == 415
    assert answer.json() == {
        "status": "failure",
        "result_code": "RC30",
        "message": "Unsupported “Media Type”",
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"order_id=A&amount=1",
        b'{"order_id": "A-1", "amount": 100',
        b'["A-1", 100]',
        b'"text"',
        b'{"order_id": "A-1", "amount": NaN, "dummy": true}',
        b'{"order_id": "A-1", "amount": 1, "amount": 2, "dummy": true}',
        b'\xef\xbb\xbf{"order_id": "A-1", "amount": 1, "dummy": true}',
        '{"order_id": "A-1", "amount": 1, "dummy": true}'.encode("utf-16"),
        b'{"order_id": "\xff", "amount": 1, "dummy": true}',
    ],
    ids=[
        "empty",
        "form",
        "cut",
        "array",
        "string",
        "nan",
        "duplicate-key",
        "bom",
        "utf-16",
        "not-utf-8",
    ],
)
def test_a_body_that_is_not_one_strict_json_object_answers_rc43(pop, raw):
    """Invalid JSON, a non-object, NaN, duplicate keys or a BOM answer RC43."""
    answer = pop.post("card-capture", raw=raw)

    assert answer.status_code == 400
    assert answer.json() == {
        "status": "failure",
        "result_code": "RC43",
        "message": "Invalid JSON string - JSON string in the POST request is invalid",
    }


@pytest.mark.parametrize("endpoint", sorted(VALID))
@pytest.mark.parametrize(
    "order_id",
    [
        ...,
        None,
        "",
        "A" * 101,
        "ORDER 1",
        "ＷＳ－００７",
        "A/1",
        "A-1\n",
        12345,
        ["A-1"],
    ],
    ids=[
        "missing",
        "null",
        "empty",
        "101-chars",
        "space",
        "full-width",
        "slash",
        "newline",
        "number",
        "list",
    ],
)
def test_a_bad_order_id_answers_rc01(pop, endpoint, order_id):
    """order_id is a string of 1 to 100 of A-Z a-z 0-9 - _ on every endpoint."""
    answer = pop.post(endpoint, with_field(VALID[endpoint], "order_id", order_id))

    assert answer.status_code == 400
    assert answer.json()["result_code"] == "RC01"
    assert answer.json()["message"] == "Invalid “Order ID”"


def test_an_order_id_of_exactly_100_characters_is_accepted(pop, sandbox):
    """The limit is inclusive."""
    order_id = "A" * 99 + "_"
    sandbox.add_order(order_id, 500)

    answer = pop.result(
        "card-capture", with_field(CAPTURE, "order_id", order_id) | {"amount": 500}
    )

    assert answer["result_code"] == "R001"
    assert answer["order_id"] == order_id


@pytest.mark.parametrize(
    "amount",
    [
        "100",
        1.5,
        0,
        100_000_000,
        True,
        False,
        100.0,
        -1,
        None,
        [100],
        {"value": 1},
    ],
    ids=[
        "string",
        "fraction",
        "zero",
        "nine-digits",
        "true",
        "false",
        "float",
        "negative",
        "null",
        "list",
        "object",
    ],
)
@pytest.mark.parametrize("endpoint", sorted(VALID))
def test_an_amount_that_is_not_a_json_integer_from_1_to_99999999_answers_rc3a(
    pop, endpoint, amount
):
    """Types matter: the amount is a JSON integer, 1 to 99,999,999."""
    answer = pop.post(endpoint, with_field(VALID[endpoint], "amount", amount))

    assert answer.status_code == 400
    assert answer.json()["result_code"] == "RC3A"
    assert answer.json()["message"] == "Invalid “Amount”"


@pytest.mark.parametrize("literal", ["10000.0", "1e4", "1E4", "10000e0"])
def test_an_amount_written_as_a_json_float_literal_answers_rc3a(pop, literal):
    """10000.0 or 1e4 in the JSON text is a float, not an integer."""
    raw = f'{{"order_id": "ORDER-0001", "amount": {literal}, "dummy": true}}'.encode()

    answer = pop.post("card-capture", raw=raw)

    assert answer.json()["result_code"] == "RC3A"


@pytest.mark.parametrize(
    "endpoint", ["card-capture", "card-reauthorize", "card-authorize"]
)
def test_a_missing_amount_answers_rc3a_where_it_is_required(pop, endpoint):
    """Only cancel may leave the amount out."""
    answer = pop.post(endpoint, with_field(VALID[endpoint], "amount", ...))

    assert answer.json()["result_code"] == "RC3A"


def test_the_largest_amount_is_accepted(pop, sandbox):
    """99,999,999 is within the limit."""
    sandbox.add_order("BIG-1", 99_999_999)

    answer = pop.result(
        "card-capture", {"order_id": "BIG-1", "amount": 99_999_999, "dummy": True}
    )

    assert answer["result_code"] == "R001"


@pytest.mark.parametrize("endpoint", sorted(VALID))
@pytest.mark.parametrize(
    "dummy", ["true", 1, None, "false"], ids=["string", "one", "null", "string-false"]
)
def test_a_dummy_that_is_not_a_json_boolean_answers_rc26(pop, endpoint, dummy):
    """dummy must be true or false, as JSON booleans."""
    answer = pop.post(endpoint, with_field(VALID[endpoint], "dummy", dummy))

    assert answer.status_code == 400
    assert answer.json()["result_code"] == "RC26"


@pytest.mark.parametrize("endpoint", sorted(VALID))
@pytest.mark.parametrize("dummy", [False, ...], ids=["false", "missing"])
def test_the_test_merchant_without_dummy_true_answers_rc44_with_403(
    pop, endpoint, dummy
):
    """dummy defaults to false, and a test merchant must send true."""
    answer = pop.post(endpoint, with_field(VALID[endpoint], "dummy", dummy))

    assert answer.status_code == 403
    assert answer.json()["result_code"] == "RC44"
    assert answer.json()["message"] == "“Dummy” should be “true” for test merchant"


@pytest.mark.parametrize("dummy", [False, ...], ids=["false", "missing"])
def test_a_live_merchant_may_send_dummy_false(pop, sandbox, dummy):
    """The live key accepts dummy false (and dummy left out)."""
    answer = pop.result(
        "card-capture", with_field(CAPTURE, "dummy", dummy), key=sandbox.live_key
    )

    assert answer["result_code"] == "R001"
    assert sandbox.order("ORDER-0001").history[-1].dummy is False


def test_a_live_merchant_may_also_send_dummy_true(pop, sandbox):
    """Going Live: dummy true stays possible at any time."""
    answer = pop.result("card-capture", CAPTURE, key=sandbox.live_key)

    assert answer["result_code"] == "R001"


@pytest.mark.parametrize("endpoint", ["card-reauthorize", "card-authorize"])
@pytest.mark.parametrize("capture", ["true", 1, None], ids=["string", "one", "null"])
def test_a_capture_flag_that_is_not_a_json_boolean_answers_rc27(pop, endpoint, capture):
    """capture is a JSON boolean on reauthorize and authorize."""
    answer = pop.post(endpoint, with_field(VALID[endpoint], "capture", capture))

    assert answer.json()["result_code"] == "RC27"


@pytest.mark.parametrize(
    "original",
    [..., None, "", "B" * 101, "OLD 1", 7],
    ids=["missing", "null", "empty", "101-chars", "space", "number"],
)
def test_a_bad_original_order_id_answers_rc3c(pop, original):
    """original_order_id follows the order_id rules, and is required."""
    answer = pop.post(
        "card-reauthorize", with_field(REAUTHORIZE, "original_order_id", original)
    )

    assert answer.status_code == 400
    assert answer.json()["result_code"] == "RC3C"
    assert answer.json()["message"] == "Invalid “Original orderId”"


@pytest.mark.parametrize(
    "account_id",
    [..., None, "", "A" * 101, 101],
    ids=["missing", "null", "empty", "101-chars", "number"],
)
def test_a_bad_paynow_account_id_answers_rc2a(pop, account_id):
    """paynow_account_id is a required string of 1 to 100 characters."""
    answer = pop.post(
        "card-authorize", with_field(AUTHORIZE, "paynow_account_id", account_id)
    )

    assert answer.json()["result_code"] == "RC2A"


@pytest.mark.parametrize(
    "card_id",
    [None, "", "C" * 101, 5],
    ids=["null", "empty", "101-chars", "number"],
)
def test_a_bad_paynow_card_id_answers_rc2k(pop, card_id):
    """paynow_card_id is optional, but a string of 1 to 100 characters when sent."""
    answer = pop.post(
        "card-authorize", with_field(AUTHORIZE, "paynow_card_id", card_id)
    )

    assert answer.json()["result_code"] == "RC2K"


@pytest.mark.parametrize("flag", ["true", 1, None], ids=["string", "one", "null"])
def test_a_paynow_default_card_that_is_not_a_json_boolean_answers_rc2f(pop, flag):
    """paynow_default_card is a JSON boolean."""
    answer = pop.post(
        "card-authorize", with_field(AUTHORIZE, "paynow_default_card", flag)
    )

    assert answer.json()["result_code"] == "RC2F"


def test_paynow_default_card_without_a_card_id_answers_rc2f(pop):
    """The text says to leave the flag unset without a card id; the sandbox holds to it."""
    body = with_field(AUTHORIZE, "paynow_card_id", ...)

    answer = pop.post("card-authorize", body)

    assert answer.json()["result_code"] == "RC2F"


def test_ids_of_exactly_100_characters_are_accepted_for_paynow(pop, sandbox):
    """The PayNow id limits are inclusive."""
    account, card = "A" * 100, "C" * 100
    sandbox.add_account(account, [{"card_id": card}], default_card=card)

    body = AUTHORIZE | {"paynow_account_id": account, "paynow_card_id": card}
    answer = pop.result("card-authorize", body)

    assert answer["result_code"] == "R004"


def test_fields_are_checked_in_the_order_of_the_request_table(pop):
    """With several bad fields, the first in the table decides the code."""
    body = {
        "order_id": "",
        "original_order_id": "",
        "amount": "x",
        "capture": 1,
        "dummy": "x",
    }

    answers = [
        pop.result("card-reauthorize", body)["result_code"],
        pop.result("card-reauthorize", body | {"order_id": "N-1"})["result_code"],
        pop.result(
            "card-reauthorize",
            body | {"order_id": "N-1", "original_order_id": "ORDER-0001"},
        )["result_code"],
    ]

    assert answers == ["RC01", "RC3C", "RC3A"]


def test_unknown_fields_are_ignored(pop):
    """Fields the request table does not list do not change the answer."""
    body = CAPTURE | {"memo": "髙山テスト店", "capture": "not a flag", "jpo": 3}

    answer = pop.result("card-capture", body)

    assert answer["result_code"] == "R001"


def test_a_refusal_echoes_the_order_id_only_when_it_is_valid(pop):
    """An invalid order_id is never echoed back; a valid one is."""
    invalid = pop.result("card-capture", with_field(CAPTURE, "order_id", "bad id"))
    valid = pop.result("card-capture", with_field(CAPTURE, "amount", "1"))

    assert "order_id" not in invalid
    assert valid["order_id"] == "ORDER-0001"


def test_always_200_mode_answers_every_pop_json_with_http_200(make_sandbox):
    """--error-status always-200 keeps the POP body and drops the HTTP status."""
    import requests

    server = make_sandbox(error_status="always-200")
    headers = {"Content-Type": "application/json"}

    with requests.Session() as session:
        unauthorised = session.post(
            server.url("card-capture"), json=CAPTURE, headers=headers
        )
        wrong_type = session.post(
            server.url("card-capture"),
            data=b"{}",
            headers={"Authorization": server.authorization()},
        )

    assert (unauthorised.status_code, unauthorised.json()["result_code"]) == (
        200,
        "RC17",
    )
    assert (wrong_type.status_code, wrong_type.json()["result_code"]) == (200, "RC30")


def test_a_path_outside_the_endpoints_answers_404_html(pop, sandbox):
    """Unknown paths are not POP endpoints and get no POP JSON."""
    answer = pop.session.post(sandbox.base_url + "/card-refund", data=b"{}")

    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"


def test_a_configured_base_path_moves_the_endpoints(make_sandbox):
    """The base path is configurable; the default path then answers 404."""
    import requests

    server = make_sandbox(base_path="/other/v9/")
    headers = {
        "Authorization": server.authorization(),
        "Content-Type": "application/json",
    }

    with requests.Session() as session:
        moved = session.post(server.url("card-capture"), json=CAPTURE, headers=headers)
        old = session.post(
            server.url("card-capture").replace("/other/v9", "/pop/v1"),
            json=CAPTURE,
            headers=headers,
        )

    assert server.base_url.endswith("/other/v9")
    assert moved.json()["result_code"] == "R001"
    assert old.status_code == 404
