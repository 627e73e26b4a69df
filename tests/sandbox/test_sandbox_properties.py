"""Whatever arrives, the sandbox answers POP JSON with a documented code."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.sandbox

# Written out from the API text's tables, not imported from the sandbox, so
# that the property checks the sandbox against the text itself.
COMMON = {
    "RA01",
    "RD01",
    "RM01",
    "RM03",
    "RC01",
    "RC17",
    "RC26",
    "RC30",
    "RC32",
    "RC3A",
    "RC43",
    "RC44",
}
DOCUMENTED = {
    "card-capture": COMMON | {"R001"},
    "card-cancel": COMMON | {"R002"},
    "card-reauthorize": COMMON | {"R003", "RC27", "RC3B", "RC3C", "RC40", "RC41"},
    "card-authorize": COMMON | {"R004", "RC27", "RC2A", "RC2F", "RC2K"},
}
SUCCESS = {
    "card-capture": "R001",
    "card-cancel": "R002",
    "card-reauthorize": "R003",
    "card-authorize": "R004",
}
FIELDS = [
    "order_id",
    "original_order_id",
    "amount",
    "capture",
    "dummy",
    "paynow_account_id",
    "paynow_card_id",
    "paynow_default_card",
]
KNOWN_IDS = [
    "ORDER-0001",
    "SANDBOX-AUTH-0001",
    "SANDBOX-CAPTURED-0001",
    "SANDBOX-REFUNDED-0001",
    "SANDBOX-CANCELLED-0001",
    "SANDBOX-DECLINE-0001",
    "TEST-ACCOUNT-101",
    "TEST-ACCOUNT-102",
    "TEST-ACCOUNT-103",
    "232QDFCPFBR93UBEAITN7EQHL",
    "9TTH6VLQ3RJH9JR38ISKFRPDG",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=120),
    st.sampled_from(KNOWN_IDS),
    st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    st.integers(min_value=1, max_value=99_999_999),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
bodies = st.fixed_dictionaries(
    {},
    optional={name: json_values for name in FIELDS}
    | {"memo": json_values, "": json_values},
)
raw_bodies = st.one_of(
    bodies.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        None,
        "application/json; charset=latin-1",
    ]
)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    endpoint=st.sampled_from(sorted(DOCUMENTED)),
    body=raw_bodies,
    content_type=content_types,
    key=st.sampled_from(["test", "live", "wrong", None]),
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT"]),
)
def test_any_request_gets_a_documented_pop_answer_and_never_a_500(
    pop, sandbox, endpoint, body, content_type, key, method
):
    """Random bodies, fields, types, keys and media types: always POP JSON."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    if key is not None:
        chosen = {"test": sandbox.test_key, "live": sandbox.live_key, "wrong": "Nope"}[
            key
        ]
        headers["Authorization"] = sandbox.authorization(chosen)

    answer = pop.session.request(
        method, sandbox.url(endpoint), data=body, headers=headers, timeout=10
    )

    assert answer.status_code in {200, 400, 401, 403, 405, 415}
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    data = answer.json()
    code = data["result_code"]
    event(code)
    assert code in DOCUMENTED[endpoint]
    assert data["status"] == ("success" if code == SUCCESS[endpoint] else "failure")
    assert isinstance(data["message"], str)
    assert data["message"]
    reached_gateway = code in {SUCCESS[endpoint], "RM01", "RM03"}
    assert ("m_status" in data) == reached_gateway
    assert (answer.status_code == 200) == reached_gateway
    if "order_id" in data:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,100}", data["order_id"])


def mostly(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """A field value that is plausible nine times in ten, else any JSON at all."""
    choice = st.tuples(st.sampled_from(range(10)), valid, json_values)
    return choice.map(lambda drawn: drawn[2] if drawn[0] == 9 else drawn[1])


ids = st.one_of(
    st.sampled_from(KNOWN_IDS[:6]),
    st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
)
near_valid_bodies = st.fixed_dictionaries(
    {
        "order_id": mostly(ids),
        "amount": mostly(st.integers(min_value=1, max_value=20_000)),
        "dummy": mostly(st.just(True)),
    },
    optional={
        "original_order_id": mostly(ids),
        "capture": mostly(st.booleans()),
        "paynow_account_id": mostly(
            st.sampled_from(
                ["TEST-ACCOUNT-101", "TEST-ACCOUNT-102", "TEST-ACCOUNT-103", "NOBODY"]
            )
        ),
        "paynow_card_id": mostly(
            st.sampled_from([*KNOWN_IDS[9:], "DECLINECARD00000000000001", "NO-CARD"])
        ),
        "paynow_default_card": mostly(st.booleans()),
    },
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(endpoint=st.sampled_from(sorted(DOCUMENTED)), body=near_valid_bodies)
def test_near_valid_requests_reach_the_ledger_and_still_answer_documented_codes(
    pop, sandbox, endpoint, body
):
    """Plausible bodies with the right headers: successes, declines, refusals."""
    answer = pop.post(endpoint, body)

    data = answer.json()
    code = data["result_code"]
    event(code)
    assert code in DOCUMENTED[endpoint]
    assert data["status"] == ("success" if code == SUCCESS[endpoint] else "failure")
    reached_gateway = code in {SUCCESS[endpoint], "RM01", "RM03"}
    assert ("m_status" in data) == reached_gateway
    if reached_gateway:
        assert data["m_status"] == (
            "success" if code == SUCCESS[endpoint] else "failure"
        )
        assert re.fullmatch(r"[A-Z0-9]{16}", data["v_result_code"])
        assert data["merr_msg"]
