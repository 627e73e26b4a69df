"""Contract tests: popbatch's own PopClient against the sandbox, code by code.

The sandbox implements the API text on its own; the client classifies
what comes back. Each result code the sandbox can answer, and each rule of
its ledger, is sent here through a real PopClient over HTTP, and the test
checks the Outcome the client makes of it: kind, reason, result code, and
whether the batch must stop. Codes that stop before the gateway are checked
under both of the sandbox's readings of their HTTP status (400/401/403/405/415,
or always 200), since the API text names none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from popbatch.client import NO_RETRIES, PopClient
from popbatch.config import ServerKey, Timeouts
from popbatch.operations import AUTHORIZE, CANCEL, CAPTURE, REAUTHORIZE, Operation
from popbatch.rows import Outcome, OutcomeKind
from popbatch.sandbox import Faults, SandboxServer

pytestmark = pytest.mark.sandbox

FAILED = OutcomeKind.FAILED
SUCCEEDED = OutcomeKind.SUCCEEDED
NOT_PROCESSED = OutcomeKind.NOT_PROCESSED

# The default seed's PayNow account with a standard card (TEST-ACCOUNT-101).
ACCOUNT = "TEST-ACCOUNT-101"
CARD = "9TTH6VLQ3RJH9JR38ISKFRPDG"


def body(**fields: Any) -> bytes:
    """A request body as popbatch writes it: JSON, dummy true unless given."""
    fields.setdefault("dummy", True)
    return json.dumps(fields, ensure_ascii=False).encode()


def verdict(outcome: Outcome) -> tuple[OutcomeKind, str, str | None, bool]:
    """What the client made of an answer: kind, reason, result code, stops."""
    return outcome.kind, outcome.reason, outcome.result_code, outcome.stops_batch


class Rewriting(HTTPAdapter):
    """A real transport that changes one thing of each request before it leaves.

    The client always sends POST with ``application/json``; only a request
    changed on its way out can show what it makes of RC30 and RC32.
    """

    def __init__(self, change: Callable[[requests.PreparedRequest], None]) -> None:
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=NO_RETRIES)
        self._change = change

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        self._change(request)
        return super().send(request, *args, **kwargs)


@pytest.fixture(params=["http", "always-200"])
def pop(
    request: pytest.FixtureRequest,
    sandbox: SandboxServer,
    make_sandbox: Callable[..., SandboxServer],
) -> SandboxServer:
    """The sandbox, under each reading of the HTTP status of refusals."""
    if request.param == "http":
        return sandbox
    return make_sandbox(error_status="always-200")


@pytest.fixture
def client_for() -> Iterator[Callable[..., PopClient]]:
    """Make clients for a sandbox (test key unless told), closed after the test."""
    made: list[PopClient] = []

    def make(
        server: SandboxServer, *, key: str | None = None, **settings: Any
    ) -> PopClient:
        client = PopClient(
            endpoint=server.base_url,
            key=ServerKey(key or server.test_key or ""),
            timeouts=Timeouts(connect=2.0, read=5.0),
            **settings,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def send(
    client: PopClient,
    operation: Operation,
    payload: bytes,
    order_id: str,
    original_order_id: str | None = None,
) -> Outcome:
    """Send one request and return the client's outcome."""
    return client.send(
        operation, payload, order_id=order_id, original_order_id=original_order_id
    )


# -- success codes -------------------------------------------------------------------


def test_r001_capture_succeeds(sandbox: SandboxServer, client_for: Any) -> None:
    """R001: a capture of an authorised order."""
    sandbox.add_order("C-1", 1000)

    outcome = send(
        client_for(sandbox), CAPTURE, body(order_id="C-1", amount=1000), "C-1"
    )

    assert verdict(outcome) == (SUCCEEDED, "succeeded", "R001", False)
    assert outcome.detail == "R001 Payment Captured Successfully"
    assert outcome.http_status == 200


def test_r002_cancel_succeeds(sandbox: SandboxServer, client_for: Any) -> None:
    """R002: a partial refund of a captured order."""
    sandbox.add_order("C-2", 1000, state="captured")

    outcome = send(client_for(sandbox), CANCEL, body(order_id="C-2", amount=300), "C-2")

    assert verdict(outcome) == (SUCCEEDED, "succeeded", "R002", False)


def test_r003_reauthorize_succeeds_with_the_original_id_in_the_answer(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """R003: the answer carries the original order's id, as the API text's example."""
    payload = body(order_id="C-3", original_order_id="ORDER-0001", amount=500)

    outcome = send(client_for(sandbox), REAUTHORIZE, payload, "C-3", "ORDER-0001")

    assert verdict(outcome) == (SUCCEEDED, "succeeded", "R003", False)
    assert outcome.response is not None
    assert outcome.response["order_id"] == "ORDER-0001"


def test_r004_authorize_succeeds(sandbox: SandboxServer, client_for: Any) -> None:
    """R004: a charge of a stored PayNowID card."""
    payload = body(order_id="C-4", amount=700, paynow_account_id=ACCOUNT)

    outcome = send(client_for(sandbox), AUTHORIZE, payload, "C-4")

    assert verdict(outcome) == (SUCCEEDED, "succeeded", "R004", False)
    assert outcome.response is not None
    assert outcome.response["paynow_status"] == "success"


# -- refusals before the gateway -------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "payload", "code"),
    [
        (CAPTURE, body(order_id="bad id!", amount=1000), "RC01"),
        (CAPTURE, body(order_id="V-1", amount=1000, dummy="true"), "RC26"),
        (
            REAUTHORIZE,
            body(
                order_id="V-2", original_order_id="ORDER-0001", amount=1, capture="yes"
            ),
            "RC27",
        ),
        (AUTHORIZE, body(order_id="V-3", amount=100), "RC2A"),
        (
            AUTHORIZE,
            body(
                order_id="V-4",
                amount=100,
                paynow_account_id=ACCOUNT,
                paynow_card_id=CARD,
                paynow_default_card="yes",
            ),
            "RC2F",
        ),
        (
            AUTHORIZE,
            body(
                order_id="V-5",
                amount=100,
                paynow_account_id=ACCOUNT,
                paynow_card_id="C" * 101,
            ),
            "RC2K",
        ),
        (CAPTURE, body(order_id="V-6", amount="100"), "RC3A"),
        (CAPTURE, body(order_id="V-7", amount=0), "RC3A"),
        (
            REAUTHORIZE,
            body(order_id="V-8", original_order_id="bad id!", amount=1),
            "RC3C",
        ),
        (CAPTURE, b'{"order_id": "V-9", "amount": 1000, "dummy": true', "RC43"),
    ],
    ids=[
        "RC01",
        "RC26",
        "RC27",
        "RC2A",
        "RC2F",
        "RC2K",
        "RC3A",
        "RC3A-zero",
        "RC3C",
        "RC43",
    ],
)
def test_invalid_request_codes_fail_without_stopping_the_batch(
    pop: SandboxServer, client_for: Any, operation: Operation, payload: bytes, code: str
) -> None:
    """A refused field is this row's failure: Failed, the batch goes on."""
    sent = {"order_id": "V-9"} if code == "RC43" else json.loads(payload)
    original = sent.get("original_order_id")

    outcome = send(client_for(pop), operation, payload, sent["order_id"], original)

    assert verdict(outcome) == (FAILED, "invalid_request", code, False)
    assert outcome.detail.startswith(f"POP refused the request: {code} ")


def test_rc30_wrong_media_type_fails(pop: SandboxServer, client_for: Any) -> None:
    """RC30: a body sent as text/plain (changed on its way out) is refused."""

    def as_text(request: requests.PreparedRequest) -> None:
        request.headers["Content-Type"] = "text/plain"

    client = client_for(pop, adapter=Rewriting(as_text))

    outcome = send(client, CAPTURE, body(order_id="V-10", amount=1000), "V-10")

    assert verdict(outcome) == (FAILED, "invalid_request", "RC30", False)
    assert outcome.http_status == (415 if pop.config.error_status == "http" else 200)


def test_rc32_other_method_fails_as_a_pop_answer_not_a_wrong_endpoint(
    pop: SandboxServer, client_for: Any
) -> None:
    """RC32 under HTTP 405 is POP JSON: judged by its code, the batch goes on."""

    def as_get(request: requests.PreparedRequest) -> None:
        request.method = "GET"

    client = client_for(pop, adapter=Rewriting(as_get))

    outcome = send(client, CAPTURE, body(order_id="V-11", amount=1000), "V-11")

    assert verdict(outcome) == (FAILED, "invalid_request", "RC32", False)


def test_rc17_rejected_key_is_not_processed_and_stops_the_batch(
    pop: SandboxServer, client_for: Any
) -> None:
    """RC17: every further row would be refused the same way."""
    client = client_for(pop, key="Not-The-Key")

    outcome = send(client, CAPTURE, body(order_id="V-12", amount=1000), "V-12")

    assert verdict(outcome) == (NOT_PROCESSED, "key_rejected", "RC17", True)
    assert "Not-The-Key" not in repr(outcome)


def test_rc44_test_merchant_without_dummy_is_not_processed_and_stops_the_batch(
    pop: SandboxServer, client_for: Any
) -> None:
    """RC44: a test merchant's key with dummy false."""
    payload = body(order_id="V-13", amount=1000, dummy=False)

    outcome = send(client_for(pop), CAPTURE, payload, "V-13")

    assert verdict(outcome) == (
        NOT_PROCESSED,
        "test_merchant_needs_dummy",
        "RC44",
        True,
    )


def test_live_merchant_may_send_dummy_false(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """The live key takes dummy false: the real charge path succeeds."""
    sandbox.add_order("V-14", 1000)
    client = client_for(sandbox, key=sandbox.live_key)

    outcome = send(
        client, CAPTURE, body(order_id="V-14", amount=1000, dummy=False), "V-14"
    )

    assert verdict(outcome) == (SUCCEEDED, "succeeded", "R001", False)


# -- errors before the gateway: not processed ------------------------------------------


@pytest.mark.parametrize("code", ["RA01", "RD01", "RM01"])
def test_error_without_m_status_is_not_processed(
    sandbox: SandboxServer, client_for: Any, code: str
) -> None:
    """RA01, RD01, RM01 without m_status: nothing was processed, retry is safe."""
    sandbox.add_order("N-1", 1000)
    sandbox.set_faults(Faults.from_mapping({code.lower(): 1.0}))

    outcome = send(
        client_for(sandbox), CAPTURE, body(order_id="N-1", amount=1000), "N-1"
    )

    assert verdict(outcome) == (NOT_PROCESSED, "pop_error_before_gateway", code, False)
    assert sandbox.applied("N-1") == 0


# -- the ledger ------------------------------------------------------------------------


def test_decline_is_failed_with_the_gateway_message(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """RM01 with m_status failure: a decline, an answer, never a stop."""
    sandbox.add_order("L-1", 1000, decline=True)

    outcome = send(
        client_for(sandbox), CAPTURE, body(order_id="L-1", amount=1000), "L-1"
    )

    assert verdict(outcome) == (FAILED, "declined", "RM01", False)
    assert outcome.detail == (
        "the payment gateway refused it: 無効カードです。 (RM01, gateway code "
        "AG48000000000000)"
    )


def test_second_capture_is_refused_by_the_gateway(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """A captured order captured again: RM03, failed, applied once in all."""
    sandbox.add_order("L-2", 1000)
    client = client_for(sandbox)
    first = send(client, CAPTURE, body(order_id="L-2", amount=1000), "L-2")

    second = send(client, CAPTURE, body(order_id="L-2", amount=1000), "L-2")

    assert verdict(first) == (SUCCEEDED, "succeeded", "R001", False)
    assert verdict(second) == (FAILED, "declined", "RM03", False)
    assert second.detail == (
        "the payment gateway refused it: 既に売上済みの取引です。 (RM03, gateway "
        "code AC47000000000000)"
    )
    assert sandbox.applied("L-2") == 1


def test_capture_above_the_authorised_amount_is_refused(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """More than was authorised: RM01 with m_status failure (the API text's example)."""
    sandbox.add_order("L-3", 1000)

    outcome = send(
        client_for(sandbox), CAPTURE, body(order_id="L-3", amount=1001), "L-3"
    )

    assert verdict(outcome) == (FAILED, "declined", "RM01", False)
    assert "AC38000000000000" in outcome.detail


def test_refund_above_what_remains_is_refused(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """700 of 1000 refunded already, 400 more asked: RM01, failed."""
    sandbox.add_order("L-4", 1000, state="captured", refunded=700)

    outcome = send(client_for(sandbox), CANCEL, body(order_id="L-4", amount=400), "L-4")

    assert verdict(outcome) == (FAILED, "declined", "RM01", False)
    assert sandbox.order("L-4") is not None
    assert sandbox.order("L-4").balance == 300  # type: ignore[union-attr]


def test_cancel_of_an_unknown_order_is_refused(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """An order the gateway does not know: RM03, failed."""
    outcome = send(client_for(sandbox), CANCEL, body(order_id="L-5"), "L-5")

    assert verdict(outcome) == (FAILED, "declined", "RM03", False)
    assert "AC45000000000000" in outcome.detail


def test_reauthorize_of_an_unknown_original_is_rc3c(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """An original order the sandbox does not know: RC3C before the gateway."""
    payload = body(order_id="L-6", original_order_id="NO-SUCH-ORDER", amount=100)

    outcome = send(client_for(sandbox), REAUTHORIZE, payload, "L-6", "NO-SUCH-ORDER")

    assert verdict(outcome) == (FAILED, "invalid_request", "RC3C", False)


@pytest.mark.parametrize(
    ("operation", "payload"),
    [
        (
            REAUTHORIZE,
            body(order_id="ORDER-0001", original_order_id="ORDER-0001", amount=1),
        ),
        (AUTHORIZE, body(order_id="ORDER-0001", amount=1, paynow_account_id=ACCOUNT)),
    ],
    ids=["reauthorize", "authorize"],
)
def test_order_id_reused_for_a_new_charge_is_refused(
    sandbox: SandboxServer, client_for: Any, operation: Operation, payload: bytes
) -> None:
    """A new charge under an order id the gateway knows: RM03, failed, not applied."""
    outcome = send(client_for(sandbox), operation, payload, "ORDER-0001", "ORDER-0001")

    assert verdict(outcome) == (FAILED, "declined", "RM03", False)
    assert "AC49000000000000" in outcome.detail
    assert sandbox.applied("ORDER-0001") == 0


def test_unknown_paynow_card_is_refused(
    sandbox: SandboxServer, client_for: Any
) -> None:
    """A card the account does not hold: RM01 with m_status failure."""
    payload = body(
        order_id="L-7", amount=100, paynow_account_id=ACCOUNT, paynow_card_id="NOPE"
    )

    outcome = send(client_for(sandbox), AUTHORIZE, payload, "L-7")

    assert verdict(outcome) == (FAILED, "declined", "RM01", False)
