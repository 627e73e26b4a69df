"""Tests for popbatch.client: every row of the retry table becomes the right Outcome.

Most tests mount a fake adapter on the client's session, so that each HTTP
answer and each transport error is exactly the one under test. A few use a
tiny socket server, because only a real connection shows what urllib3 does
when a connection is refused, dropped after the request, or cut short.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPResponse
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
)

from popbatch import __version__
from popbatch.client import BODY_TEXT_LIMIT, READ_LIMIT, PopClient
from popbatch.config import ServerKey, Timeouts
from popbatch.errors import ConfigurationError
from popbatch.operations import CANCEL, CAPTURE, REAUTHORIZE, Operation
from popbatch.rows import Outcome, OutcomeKind

E = TypeVar("E", bound=BaseException)

ENDPOINT = "https://pop.example.test/pop/v1"
KEY = ServerKey("canary-Key-8d1f2a77e0")
TOKEN = base64.b64encode(b"canary-Key-8d1f2a77e0:").decode()
SENT_AT = datetime(2026, 12, 3, 9, 30, 0, tzinfo=UTC)
BODY = b'{"order_id":"A-1","amount":1000,"dummy":true}'

CHECK_ORDER = "Check this order's status before re-running."
UNSURE = f"the request may or may not have been processed. {CHECK_ORDER}"


# -- a fake transport ----------------------------------------------------------------


@dataclass
class Reply:
    """One scripted HTTP answer for the fake adapter."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    raw: Any = None  # a file-like object to read the body from instead


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeAdapter(BaseAdapter):
    """Answers each request with the next scripted reply or raises the next error.

    Each request takes ``latency`` seconds on ``clock``.
    """

    def __init__(self, *script: Reply | BaseException) -> None:
        super().__init__()
        self.script = list(script)
        self.requests: list[requests.PreparedRequest] = []
        self.closed = 0
        self.clock = FakeClock()
        self.latency = 0.042

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        self.requests.append(request)
        self.clock.now += self.latency
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step

        response = requests.Response()
        response.status_code = step.status
        response.headers = CaseInsensitiveDict(step.headers)
        response.raw = step.raw or HTTPResponse(
            body=io.BytesIO(step.body),
            headers=step.headers,
            status=step.status,
            preload_content=False,
        )
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        self.closed += 1


def pop_json(**fields: Any) -> bytes:
    """A POP answer for order A-1, success by default, with ``fields`` changed."""
    answer: dict[str, Any] = {
        "order_id": "A-1",
        "status": "success",
        "result_code": "R001",
        "message": "Payment Captured Successfully",
        "m_status": "success",
        "v_result_code": "A001000000000000",
        "merr_msg": "処理が成功しました。",
    }
    answer.update(fields)
    return json.dumps({k: v for k, v in answer.items() if v is not None}).encode()


def json_reply(http_status: int = 200, /, **fields: Any) -> Reply:
    """A POP JSON reply under ``http_status``."""
    return Reply(http_status, pop_json(**fields), {"Content-Type": "application/json"})


def before_gateway(code: str, http_status: int = 200, /, **fields: Any) -> Reply:
    """A POP failure from before the gateway: no m_status and no gateway field."""
    return json_reply(
        http_status,
        status="failure",
        result_code=code,
        message="error",
        m_status=None,
        v_result_code=None,
        merr_msg=None,
        **fields,
    )


def make_client(adapter: FakeAdapter, *, read: float = 30.0) -> PopClient:
    """A client on the fake adapter and its clock; the wall clock says SENT_AT."""
    return PopClient(
        endpoint=ENDPOINT,
        key=KEY,
        timeouts=Timeouts(connect=5.0, read=read),
        adapter=adapter,
        clock=adapter.clock,
        now=lambda: SENT_AT,
    )


def send_one(
    step: Reply | BaseException,
    operation: Operation = CAPTURE,
    *,
    order_id: str = "A-1",
    original_order_id: str | None = None,
    read: float = 30.0,
) -> Outcome:
    """Send one request to a fake adapter answering with ``step``."""
    with make_client(FakeAdapter(step), read=read) as client:
        return client.send(
            operation, BODY, order_id=order_id, original_order_id=original_order_id
        )


def raised(error: E, cause: BaseException | None = None) -> E:
    """``error`` as it looks once raised (with its cause and traceback)."""
    try:
        raise error from cause
    except BaseException:
        return error


def gave_up(reason: Exception) -> MaxRetryError:
    """urllib3's error when it gave up on ``reason`` (it never retries here)."""
    return raised(MaxRetryError(None, "/pop/v1/card-capture", reason))  # type: ignore[arg-type]


def connection_error(reason: Exception) -> requests.ConnectionError:
    """What requests raises when urllib3 gave up on ``reason``."""
    return requests.ConnectionError(gave_up(reason))


# -- what is sent -----------------------------------------------------------------------


def test_send_posts_the_body_byte_for_byte_with_the_pop_headers() -> None:
    """The request is a POST of the given bytes, with Basic auth and JSON headers."""
    adapter = FakeAdapter(json_reply(), json_reply())
    client = make_client(adapter)

    client.send(CAPTURE, BODY, order_id="A-1")
    client.send(CAPTURE, BODY, order_id="A-1")

    first, second = adapter.requests
    assert first.method == "POST"
    assert first.url == "https://pop.example.test/pop/v1/card-capture"
    assert first.body == BODY
    assert second.body == BODY
    assert dict(first.headers) == {
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        "User-Agent": f"popbatch/{__version__}",
        "Authorization": f"Basic {TOKEN}",
        "Content-Length": str(len(BODY)),
    }


def test_send_joins_the_endpoint_and_the_operation_with_one_slash() -> None:
    """A trailing slash on the endpoint does not double the slash."""
    adapter = FakeAdapter(json_reply(result_code="R002"))
    client = PopClient(
        endpoint=ENDPOINT + "/", key=KEY, timeouts=Timeouts(), adapter=adapter
    )

    client.send(CANCEL, BODY, order_id="A-1")

    assert adapter.requests[0].url == "https://pop.example.test/pop/v1/card-cancel"


def test_default_adapter_never_retries_anything() -> None:
    """urllib3 may not re-send a POST: no retries of any kind, one connection."""
    client = PopClient(endpoint=ENDPOINT, key=KEY, timeouts=Timeouts())

    adapter = client._session.get_adapter(ENDPOINT)

    assert isinstance(adapter, HTTPAdapter)
    retries = adapter.max_retries
    assert (retries.total, retries.connect, retries.read, retries.status) == (
        0,
        0,
        False,
        0,
    )
    assert (retries.redirect, retries.other) == (0, 0)
    assert adapter._pool_maxsize == 1  # type: ignore[attr-defined]
    client.close()


def test_outcome_carries_timezone_aware_times_and_elapsed_ms() -> None:
    """sent_at comes from the wall clock; received_at adds the measured time."""
    outcome = send_one(json_reply())

    assert outcome.sent_at == SENT_AT
    assert outcome.elapsed_ms == 42
    assert outcome.received_at == SENT_AT + timedelta(milliseconds=42)


def test_client_reconnects_after_an_idle_spell() -> None:
    """After more than 2 s idle the pooled connection is dropped before sending."""
    adapter = FakeAdapter(json_reply(), json_reply(), json_reply())
    client = make_client(adapter)
    clock = adapter.clock

    client.send(CAPTURE, BODY, order_id="A-1")
    clock.now += 1.5
    client.send(CAPTURE, BODY, order_id="A-1")
    closed_after_short_pause = adapter.closed
    clock.now += 2.5
    client.send(CAPTURE, BODY, order_id="A-1")

    assert closed_after_short_pause == 0
    assert adapter.closed == 1


# -- POP JSON answers --------------------------------------------------------------------


def test_success_code_succeeds() -> None:
    """status success with the operation's success code is a success."""
    outcome = send_one(json_reply())

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.reason == "succeeded"
    assert outcome.detail == "R001 Payment Captured Successfully"
    assert outcome.result_code == "R001"
    assert outcome.http_status == 200
    assert outcome.content_type == "application/json"
    assert outcome.response is not None
    assert outcome.response["merr_msg"] == "処理が成功しました。"
    assert outcome.body_text is None
    assert outcome.stops_batch is False


def test_answer_without_order_id_is_accepted() -> None:
    """order_id is optional in POP's answer; its absence is not a mismatch."""
    outcome = send_one(json_reply(order_id=None))

    assert outcome.kind is OutcomeKind.SUCCEEDED


def test_reauthorize_accepts_the_original_order_id_in_the_answer() -> None:
    """The API text's reauthorize example answers with the original order's id."""
    outcome = send_one(
        json_reply(order_id="ORDER-0001", result_code="R003"),
        REAUTHORIZE,
        order_id="ORDER-0002",
        original_order_id="ORDER-0001",
    )

    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.detail == "R003 Payment Reauthorized Successfully"


def test_another_order_id_in_the_answer_is_unknown() -> None:
    """An answer about another order says nothing certain about this one."""
    outcome = send_one(json_reply(order_id="B-9"))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "order_id_mismatch"
    assert outcome.detail == (
        f"POP answered for order 'B-9', but 'A-1' was sent; {UNSURE}"
    )


@pytest.mark.parametrize("code", ["RX99", "R002"])
def test_result_code_the_operation_does_not_know_is_unknown(code: str) -> None:
    """A code outside the operation's list (even another operation's) is unknown."""
    outcome = send_one(json_reply(status="failure", result_code=code))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "unknown_result_code"
    assert outcome.result_code == code
    assert outcome.detail == (
        f"POP answered result code {code!r}, which popbatch does not know for "
        f"capture; {UNSURE}"
    )


@pytest.mark.parametrize("code", ["RA01", "RD01", "RM01"])
def test_error_before_the_gateway_is_not_processed(code: str) -> None:
    """RA01, RD01 and RM01 without m_status never reached the gateway."""
    outcome = send_one(before_gateway(code))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == "pop_error_before_gateway"
    assert outcome.detail.startswith(f"POP answered {code} (")
    assert outcome.detail.endswith(
        "before reaching the payment gateway; nothing was processed."
    )
    assert outcome.retry_after_s is None


def test_decline_with_m_status_failure_fails_with_the_gateway_message() -> None:
    """A gateway refusal is an answer: failed, with the gateway's words and codes."""
    outcome = send_one(
        json_reply(
            status="failure",
            result_code="RM01",
            m_status="failure",
            v_result_code="AG48000000000000",
            merr_msg="無効カードです。",
        )
    )

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "declined"
    assert outcome.detail == (
        "the payment gateway refused it: 無効カードです。 (RM01, gateway code "
        "AG48000000000000)"
    )
    assert outcome.stops_batch is False


def test_pending_at_the_gateway_is_unknown() -> None:
    """m_status pending may still complete: a person checks."""
    outcome = send_one(
        json_reply(status="failure", result_code="RM01", m_status="pending")
    )

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "gateway_pending"
    assert outcome.detail == (
        "the payment gateway reports this transaction as pending (RM01); it may "
        f"still complete. {CHECK_ORDER}"
    )


def test_rejected_key_is_not_processed_and_stops_the_batch() -> None:
    """RC17 would repeat on every row; POP did nothing with this one."""
    outcome = send_one(before_gateway("RC17"))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == "key_rejected"
    assert outcome.stops_batch is True
    assert outcome.detail == (
        "POP rejected the server key (RC17). Check POP_SERVER_KEY or --server-key-file."
    )


def test_test_merchant_without_dummy_is_not_processed_and_stops_the_batch() -> None:
    """RC44 would repeat on every row; POP did nothing with this one."""
    outcome = send_one(before_gateway("RC44"))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == "test_merchant_needs_dummy"
    assert outcome.stops_batch is True
    assert outcome.detail == (
        "POP answered RC44: this is a test merchant, which takes test requests "
        "only. Run without --live, or use the live server key."
    )


def test_validation_code_fails_without_stopping() -> None:
    """An RC code about the row's values is a failure of that row only."""
    outcome = send_one(before_gateway("RC3A"))

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "invalid_request"
    assert outcome.detail == 'POP refused the request: RC3A Invalid "Amount"'
    assert outcome.stops_batch is False


def test_other_failure_without_m_status_fails() -> None:
    """RM03 without m_status is a failure POP reports, not one to retry."""
    outcome = send_one(before_gateway("RM03"))

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "pop_failure"
    assert outcome.detail == (
        "POP answered RM03 (MDK Error - an error returned by the Payment Gateway)"
    )


@pytest.mark.parametrize(
    ("http_status", "fields", "contradiction"),
    [
        (
            200,
            {"result_code": "RA01"},
            "status 'success' with result code RA01, not R001",
        ),
        (
            200,
            {"m_status": "failure"},
            "status 'success' with m_status 'failure'",
        ),
        (500, {}, "status 'success' under HTTP 500"),
        (
            200,
            {"status": "failure", "result_code": "RM01"},
            "status 'failure' (RM01) with m_status 'success'",
        ),
        (
            200,
            {"status": "failure", "m_status": None},
            "status 'failure' with the success code R001",
        ),
        (200, {"status": "ok"}, "status 'ok' is neither 'success' nor 'failure'"),
        (
            200,
            {"m_status": "done"},
            "m_status 'done' is not one the API text lists",
        ),
    ],
)
def test_answer_that_contradicts_itself_is_unknown(
    http_status: int, fields: dict[str, Any], contradiction: str
) -> None:
    """Money may have moved when POP's fields disagree, so a person checks."""
    outcome = send_one(json_reply(http_status, **fields))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "contradictory_answer"
    assert outcome.detail == (
        f"POP's answer contradicts itself ({contradiction}); {UNSURE}"
    )


@pytest.mark.parametrize("http_status", [500, 502, 504, 599])
def test_pop_json_failure_under_http_5xx_is_unknown_whatever_its_fields(
    http_status: int,
) -> None:
    """Breaks review: a 5xx other than 503 with Retry-After is unknown, even RA01.

    The retry table's "any other HTTP 5xx" wins over the body: a server
    error may come after the request was processed (a 500 carrying RA01 was
    sent twice).
    """
    outcome = send_one(before_gateway("RA01", http_status))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "server_error"
    assert outcome.detail == (
        f"HTTP {http_status} (a server error) although POP's answer says RA01 "
        f"(Application Error - an unknown error has occurred on VeriTrans side); "
        f"{UNSURE}"
    )
    assert outcome.http_status == http_status
    assert outcome.result_code == "RA01"
    assert outcome.stops_batch is False


# -- answers that are not POP JSON --------------------------------------------------------

HTML_502 = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    b"<h1>Bad Gateway</h1></body></html>"
)
MAINTENANCE = (
    '<!DOCTYPE html><html lang="ja"><body>'
    "<p>ただいまメンテナンス中です。</p></body></html>"
).encode()
HTML = {"Content-Type": "text/html; charset=utf-8"}


def test_html_502_is_unknown_with_the_evidence() -> None:
    """Case 18, HE-002: a gateway page after a POST proves nothing either way."""
    outcome = send_one(Reply(502, HTML_502, HTML))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "not_pop_json"
    assert outcome.detail == (
        "HTTP 502, response is not POP JSON (text/html); the request may or may "
        "not have been processed. Check this order's status before re-running."
    )
    assert outcome.http_status == 502
    assert outcome.content_type == "text/html; charset=utf-8"
    assert outcome.body_text == HTML_502.decode()
    assert outcome.response is None


def test_html_maintenance_page_under_200_is_unknown_not_success() -> None:
    """Case 18, HE-004: a 200 status alone never counts as success."""
    outcome = send_one(Reply(200, MAINTENANCE, HTML))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "not_pop_json"
    assert outcome.detail == (
        f"HTTP 200 but the body is not POP JSON (text/html); {UNSURE}"
    )
    assert outcome.body_text == MAINTENANCE.decode()


def test_shift_jis_page_without_charset_is_still_readable() -> None:
    """A Japanese page that declares no charset is read as cp932, not mangled."""
    page = "<p>ただいまメンテナンス中です。</p>".encode("cp932")

    outcome = send_one(Reply(200, page, {"Content-Type": "text/html"}))

    assert outcome.body_text == "<p>ただいまメンテナンス中です。</p>"


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        (b"", "empty body"),
        (b"[1, 2]", "application/json"),
        (b'{"status": "success"}', "application/json"),
        (b'{"status": "success", "result_code": 1}', "application/json"),
    ],
)
def test_body_that_is_not_pop_json_is_unknown(body: bytes, shape: str) -> None:
    """JSON that is not an object with status and result_code is not POP JSON."""
    outcome = send_one(Reply(200, body, {"Content-Type": "application/json"}))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "not_pop_json"
    assert (
        outcome.detail == f"HTTP 200 but the body is not POP JSON ({shape}); {UNSURE}"
    )


def test_other_5xx_without_retry_after_is_unknown() -> None:
    """A 503 without Retry-After is like any other 5xx: maybe processed."""
    outcome = send_one(Reply(503, b"busy", {"Content-Type": "text/plain"}))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.detail == (
        f"HTTP 503, response is not POP JSON (text/plain); {UNSURE}"
    )


@pytest.mark.parametrize(
    ("status", "body", "shape"),
    [
        (404, b"<html><h1>Not Found</h1></html>", "text/html"),
        (405, b"", "empty body"),
    ],
)
def test_404_or_405_page_is_not_processed_and_stops_the_batch(
    status: int, body: bytes, shape: str
) -> None:
    """Breaks review: a web server's 404/405 page never reached POP; pending, stop."""
    outcome = send_one(Reply(status, body, {"Content-Type": "text/html"}))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == "wrong_endpoint"
    assert outcome.stops_batch is True
    assert outcome.detail == (
        f"HTTP {status} from {ENDPOINT}/card-capture, response is not POP JSON "
        f"({shape}): this URL is not a POP endpoint, so nothing was processed."
    )


def test_404_with_pop_json_is_judged_by_its_fields() -> None:
    """Only a page that is not POP JSON says the URL is wrong; POP's own answer counts."""
    outcome = send_one(before_gateway("RC01", 404))

    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.reason == "invalid_request"
    assert outcome.stops_batch is False


def test_route_repr_leaves_out_the_authorization_header() -> None:
    """Issue 5: the prepared headers hold the key's Basic token; no repr shows them."""
    client = make_client(FakeAdapter())

    shown = repr(client._route(CAPTURE))

    assert TOKEN not in shown
    assert "headers" not in shown


def test_long_body_is_capped_with_a_marker() -> None:
    """The evidence fits one spreadsheet cell and says that it was cut."""
    page = b"<p>" + b"x" * 40_000 + b"</p>"

    outcome = send_one(Reply(502, page, HTML))

    assert outcome.body_text is not None
    assert len(outcome.body_text) == BODY_TEXT_LIMIT
    assert outcome.body_text.endswith(
        "\n[popbatch: cut here; the body had 40,007 characters]"
    )
    assert outcome.body_text.startswith("<p>xxx")


def test_huge_body_is_not_read_to_the_end() -> None:
    """A body over the read limit is cut there and marked so."""
    outcome = send_one(Reply(200, b"x" * (READ_LIMIT + 70_000), HTML))

    assert outcome.reason == "not_pop_json"
    assert outcome.detail == (
        f"HTTP 200 but the body is not POP JSON (text/html, over 1,048,576 bytes); "
        f"{UNSURE}"
    )
    assert outcome.body_text is not None
    assert len(outcome.body_text) == BODY_TEXT_LIMIT
    assert outcome.body_text.endswith(
        "\n[popbatch: cut here; the body was larger than 1,048,576 bytes]"
    )


def test_truncated_body_is_unknown_with_what_arrived() -> None:
    """A body shorter than its Content-Length is cut off: maybe processed."""
    partial = b'{"order_id":"A-1","status":"succ'
    headers = {"Content-Type": "application/json", "Content-Length": "180"}

    outcome = send_one(Reply(200, partial, headers))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "truncated_body"
    assert outcome.detail == (
        f"HTTP 200, the response ended early (32 of 180 bytes received); {UNSURE}"
    )
    assert outcome.body_text == partial.decode()


class _StallingBody(io.RawIOBase):
    """A body that gives some bytes, then times out."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls == 1:
            return b'{"order_id":'
        raise ReadTimeoutError(None, "/", "Read timed out.")  # type: ignore[arg-type]


def test_read_timeout_inside_the_body_is_unknown() -> None:
    """Headers arrived, then the body stalled: the refund may have been made."""
    reply = Reply(
        200, headers={"Content-Type": "application/json"}, raw=_StallingBody()
    )

    outcome = send_one(reply, CANCEL, read=2.0)

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "read_timeout"
    assert outcome.detail == (
        "HTTP 200 arrived, then nothing more within 2 s (read timeout); the refund "
        "may have been made. Check before re-running."
    )
    assert outcome.body_text == '{"order_id":'


# -- status rules: 429, 503 with Retry-After, 401, 403 -------------------------------------


def test_429_is_not_processed_whatever_the_body() -> None:
    """A 429 is retried after Retry-After, even with an HTML body."""
    outcome = send_one(
        Reply(429, b"<html>slow down</html>", {**HTML, "Retry-After": "7"})
    )

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == "rate_limited"
    assert outcome.retry_after_s == 7.0
    assert outcome.detail == (
        "HTTP 429: POP asked to slow down (retry after 7 s); nothing was processed."
    )
    assert outcome.body_text == "<html>slow down</html>"


def test_429_without_retry_after_has_no_wait() -> None:
    """Without Retry-After the retry policy chooses the wait."""
    outcome = send_one(before_gateway("RA01", 429))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.retry_after_s is None
    assert outcome.detail == "HTTP 429: POP asked to slow down; nothing was processed."


def test_503_with_retry_after_as_a_date_is_not_processed() -> None:
    """Retry-After may be an HTTP date; the wait is counted from the answer."""
    date = "Thu, 03 Dec 2026 09:31:00 GMT"

    outcome = send_one(Reply(503, b"", {"Retry-After": date}))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == "service_unavailable"
    assert outcome.retry_after_s == pytest.approx(59.958)
    assert outcome.detail == (
        "HTTP 503: POP is unavailable for now (retry after 59.958 s); nothing was "
        "processed."
    )


def test_503_with_unreadable_retry_after_is_still_not_processed() -> None:
    """The header's presence is what says nothing was done; the wait falls back."""
    outcome = send_one(Reply(503, b"", {"Retry-After": "soon"}))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.retry_after_s is None
    assert outcome.detail == (
        "HTTP 503: POP is unavailable for now (its Retry-After 'soon' could not be "
        "read); nothing was processed."
    )


@pytest.mark.parametrize(
    ("status", "reason", "detail"),
    [
        (
            401,
            "http_unauthorized",
            "HTTP 401: POP did not accept the server key. Check POP_SERVER_KEY or "
            "--server-key-file.",
        ),
        (
            403,
            "http_forbidden",
            "HTTP 403: POP refused access (the server key, or this machine's "
            "address, is not allowed). Check the key and the merchant's settings.",
        ),
    ],
)
def test_401_and_403_are_not_processed_and_stop_the_batch(
    status: int, reason: str, detail: str
) -> None:
    """Every further row would be refused the same way, before any processing."""
    outcome = send_one(Reply(status, b"<html>no</html>", HTML))

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == reason
    assert outcome.detail == detail
    assert outcome.stops_batch is True


@pytest.mark.parametrize(
    ("status", "code", "reason"),
    [(401, "RC17", "key_rejected"), (403, "RC44", "test_merchant_needs_dummy")],
)
def test_401_or_403_with_pop_json_is_named_after_its_code(
    status: int, code: str, reason: str
) -> None:
    """POP's own RC17 or RC44 names the cause more precisely than the status."""
    reply = before_gateway(code, status)

    outcome = send_one(reply)

    assert outcome.kind is OutcomeKind.NOT_PROCESSED
    assert outcome.reason == reason
    assert outcome.stops_batch is True
    assert outcome.result_code == code


# -- transport errors --------------------------------------------------------------------


def test_connection_refused_is_not_sent() -> None:
    """Nothing left this machine, so the row can be sent again."""
    refused = raised(
        NewConnectionError(None, "Failed to establish a new connection"),  # type: ignore[arg-type]
        ConnectionRefusedError(111, "Connection refused"),
    )

    outcome = send_one(connection_error(refused))

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "connect_failed"
    assert outcome.detail == (
        "could not connect to pop.example.test:443 (connection refused); nothing was "
        "sent."
    )
    assert outcome.http_status is None


def dns_failure(errno: int, text: str) -> BaseException:
    """What urllib3 raises when getaddrinfo answers ``errno``."""
    gaierror = socket.gaierror(errno, text)
    # urllib3 passes the connection; the classification never looks at it.
    error = NameResolutionError("pop.example.test", None, gaierror)  # type: ignore[arg-type]
    return raised(error, gaierror)


def test_a_host_name_that_does_not_exist_is_not_sent_and_stops_the_batch() -> None:
    """DNS says there is no such name (a typo in --endpoint): every row would fail."""
    outcome = send_one(connection_error(dns_failure(-2, "Name or service not known")))

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "host_not_found"
    assert outcome.stops_batch
    assert outcome.detail == (
        "could not connect: the host name of pop.example.test:443 does not exist "
        "in DNS (name or service not known); nothing was sent."
    )


def test_a_dns_failure_that_may_pass_is_not_sent() -> None:
    """No resolver could be reached (EAI_AGAIN): retried like any connect failure."""
    outcome = send_one(
        connection_error(dns_failure(-3, "Temporary failure in name resolution"))
    )

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "dns_failed"
    assert not outcome.stops_batch
    assert outcome.detail == (
        "could not connect: the host name of pop.example.test:443 could not be "
        "resolved (temporary failure in name resolution); nothing was sent."
    )


def test_connect_timeout_is_not_sent() -> None:
    """No connection within the connect timeout: nothing was sent."""
    timeout = raised(ConnectTimeoutError(None, "timed out"))

    outcome = send_one(requests.ConnectTimeout(gave_up(timeout)))

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "connect_timeout"
    assert outcome.detail == (
        "could not connect to pop.example.test:443 within 5 s (connect timeout); "
        "nothing was sent."
    )


def test_proxy_failure_is_not_sent() -> None:
    """A proxy that cannot be reached never passed the request on."""
    failed = raised(
        ProxyError("Unable to connect to proxy", OSError(111, "Connection refused"))
    )

    outcome = send_one(requests.exceptions.ProxyError(gave_up(failed)))

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "proxy_failed"


def test_certificate_failure_is_not_sent() -> None:
    """A certificate that fails verification stops the handshake: nothing sent."""
    bad = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    bad.reason = "CERTIFICATE_VERIFY_FAILED"

    outcome = send_one(requests.exceptions.SSLError(gave_up(bad)))

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "tls_failed"
    assert outcome.detail == (
        "could not connect to pop.example.test:443: the TLS handshake failed "
        "(certificate verify failed); nothing was sent."
    )


def test_tls_error_after_the_handshake_is_unknown() -> None:
    """A TLS error outside the handshake may come after the request left."""
    bad = raised(ssl.SSLError(1, "[SSL: BAD_RECORD_MAC] bad record mac"))
    bad.reason = "BAD_RECORD_MAC"

    outcome = send_one(
        requests.exceptions.SSLError(gave_up(bad)),
        CANCEL,
    )

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "connection_dropped"
    assert outcome.detail == (
        "TLS error (bad record mac) after the request was sent; the refund may have "
        "been made. Check before re-running."
    )


def test_connection_closed_after_sending_is_unknown() -> None:
    """Case 19, CR-002: the server read the refund and hung up."""
    dropped = ProtocolError(
        "Connection aborted.",
        http.client.RemoteDisconnected("Remote end closed connection without response"),
    )

    outcome = send_one(requests.ConnectionError(dropped), CANCEL)

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "connection_dropped"
    assert outcome.detail == (
        "connection closed after the request was sent; the refund may have been "
        "made. Check before re-running."
    )


def test_connection_reset_after_sending_is_unknown() -> None:
    """A reset after the request left may follow a capture that was made."""
    reset = ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
    )

    outcome = send_one(requests.ConnectionError(reset))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.detail == (
        "connection reset after the request was sent; the capture may have been "
        "made. Check before re-running."
    )


def test_read_timeout_is_unknown() -> None:
    """Case 19, CR-004: no answer within the read timeout."""
    message = "Read timed out. (read timeout=2)"
    timeout = ReadTimeoutError(None, "/", message)  # type: ignore[arg-type]

    outcome = send_one(requests.ReadTimeout(timeout), CANCEL, read=2.0)

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "read_timeout"
    assert outcome.detail == (
        "no response within 2 s (read timeout); the refund may have been made. "
        "Check before re-running."
    )


def test_garbage_instead_of_http_is_unknown() -> None:
    """A status line that is not HTTP came after the request was sent."""
    garbage = ProtocolError(
        "Connection aborted.", http.client.BadStatusLine("SSH-2.0-OpenSSH")
    )

    outcome = send_one(requests.ConnectionError(garbage))

    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "invalid_http_response"


# -- the key stays secret -------------------------------------------------------------------


def test_key_is_scrubbed_from_an_echoed_body() -> None:
    """A debug page that echoes the Authorization header does not leak the key."""
    page = f"<pre>Authorization: Basic {TOKEN}\nkey={KEY.reveal()}</pre>".encode()

    outcome = send_one(Reply(500, page, HTML))

    assert outcome.body_text == "<pre>Authorization: Basic ********\nkey=********</pre>"


def test_key_is_scrubbed_from_transport_error_text() -> None:
    """Exception text from the network layer is scrubbed before it is shown."""
    leaky = raised(ProxyError(f"proxy said {KEY.reveal()}", OSError("no")))

    outcome = send_one(requests.exceptions.ProxyError(gave_up(leaky)))

    assert KEY.reveal() not in outcome.detail
    assert "********" in outcome.detail


def test_key_appears_in_no_repr_and_no_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The DEBUG request line masks the Authorization header."""
    caplog.set_level(logging.DEBUG, logger="popbatch.client")
    adapter = FakeAdapter(json_reply())
    client = make_client(adapter)

    outcome = client.send(CAPTURE, BODY, order_id="A-1")

    shown = caplog.text + repr(client) + repr(outcome)
    assert KEY.reveal() not in shown
    assert TOKEN not in shown
    assert "'Authorization': 'Basic ********'" in caplog.text
    assert "order_id=A-1" in caplog.text


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            "ftp://pop.example.test/pop/v1",
            "the endpoint 'ftp://pop.example.test/pop/v1' is not an http:// or https:// URL",
        ),
        (
            "https://user:secret@pop.example.test/pop/v1",
            "the endpoint must not contain a user name or password",
        ),
        (
            "https://pop.example.test/pop/v1?x=1",
            "the endpoint 'https://pop.example.test/pop/v1?x=1' must not have a query or fragment",
        ),
    ],
)
def test_unusable_endpoint_is_a_configuration_error(
    endpoint: str, message: str
) -> None:
    """The endpoint is checked before anything is sent."""
    with pytest.raises(ConfigurationError) as caught:
        PopClient(endpoint=endpoint, key=KEY, timeouts=Timeouts())

    assert str(caught.value) == message


# -- a real socket server ----------------------------------------------------------------


class TinyServer:
    """A loopback HTTP/1.1 server that reads whole requests and then does as told.

    ``actions`` are taken one per request, in order: ``answer`` (a POP
    success), ``drop`` (close without answering), ``hang`` (say nothing
    until the server stops), ``truncate`` (promise 200 bytes, send 20, close).
    """

    def __init__(self, *actions: str) -> None:
        self.actions = list(actions)
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self._done = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/pop/v1"

    def stop(self) -> None:
        # shutdown() wakes threads blocked in accept() or recv(); close() does not.
        self._done.set()
        for sock in [self._listener, *self._open]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while self._serve_one(conn, reader):
                pass
        except OSError:
            pass
        finally:
            reader.close()
            conn.close()

    def _serve_one(self, conn: socket.socket, reader: io.BufferedReader) -> bool:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline()
            if not line:
                return False
            head += line
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.requests.append(head + reader.read(length))

        action = self.actions.pop(0) if self.actions else "answer"
        if action == "answer":
            body = pop_json()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return True
        if action == "hang":
            self._done.wait(10)
        elif action == "truncate":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 200\r\n\r\n" + pop_json()[:20]
            )
        return False


@pytest.fixture
def tiny_server() -> Iterator[Callable[..., TinyServer]]:
    """Start TinyServers for a test and stop them after it."""
    started: list[TinyServer] = []

    def start(*actions: str) -> TinyServer:
        server = TinyServer(*actions)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def real_client(endpoint: str, *, read: float = 5.0) -> PopClient:
    """A client with the real adapter."""
    return PopClient(
        endpoint=endpoint, key=KEY, timeouts=Timeouts(connect=2.0, read=read)
    )


def test_dropped_connection_reaches_the_server_exactly_once(
    tiny_server: Callable[..., TinyServer],
) -> None:
    """Case 19: nothing in requests or urllib3 replays a POST dropped after sending."""
    server = tiny_server("drop", "answer")

    with real_client(server.endpoint) as client:
        outcome = client.send(CANCEL, BODY, order_id="A-1")

    assert len(server.requests) == 1
    assert server.requests[0].endswith(b"\r\n\r\n" + BODY)
    assert outcome.kind is OutcomeKind.UNKNOWN
    assert outcome.reason == "connection_dropped"


def test_read_timeout_reaches_the_server_exactly_once(
    tiny_server: Callable[..., TinyServer],
) -> None:
    """A request that times out is reported, not sent again."""
    server = tiny_server("hang", "answer")

    with real_client(server.endpoint, read=0.2) as client:
        outcome = client.send(CANCEL, BODY, order_id="A-1")

    assert len(server.requests) == 1
    assert outcome.reason == "read_timeout"
    assert outcome.detail.startswith("no response within 0.2 s (read timeout)")


def test_real_truncated_body_is_unknown(tiny_server: Callable[..., TinyServer]) -> None:
    """urllib3 notices a body shorter than its Content-Length."""
    server = tiny_server("truncate")

    with real_client(server.endpoint) as client:
        outcome = client.send(CAPTURE, BODY, order_id="A-1")

    assert outcome.reason == "truncated_body"
    assert outcome.detail.startswith("HTTP 200, the response ended early (20 of 200")
    assert outcome.body_text == pop_json()[:20].decode()


def test_real_connection_refused_is_not_sent() -> None:
    """Nothing listens on the port: could not connect, nothing sent."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]

    with real_client(f"http://127.0.0.1:{port}/pop/v1") as client:
        outcome = client.send(CAPTURE, BODY, order_id="A-1")

    assert outcome.kind is OutcomeKind.NOT_SENT
    assert outcome.reason == "connect_failed"
    assert outcome.detail == (
        f"could not connect to 127.0.0.1:{port} (connection refused); nothing was sent."
    )


def test_requests_reuse_one_connection(tiny_server: Callable[..., TinyServer]) -> None:
    """Answers are read to the end, so the connection goes back to the pool."""
    server = tiny_server("answer", "answer", "answer")

    with real_client(server.endpoint) as client:
        outcomes = [client.send(CAPTURE, BODY, order_id="A-1") for _ in range(3)]

    assert [outcome.kind for outcome in outcomes] == [OutcomeKind.SUCCEEDED] * 3
    assert server.connections == 1
    assert len(server.requests) == 3


def _headers_of(request: bytes) -> Mapping[str, str]:
    lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return {
        name.lower(): value.strip()
        for name, value in (line.split(":", 1) for line in lines)
    }


def test_real_request_carries_exactly_the_pop_headers(
    tiny_server: Callable[..., TinyServer],
) -> None:
    """On the wire: POST, JSON, Basic auth, our User-Agent, no compression asked."""
    server = tiny_server("answer")

    with real_client(server.endpoint) as client:
        client.send(CAPTURE, BODY, order_id="A-1")

    request = server.requests[0]
    assert request.startswith(b"POST /pop/v1/card-capture HTTP/1.1\r\n")
    headers = _headers_of(request)
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["authorization"] == f"Basic {TOKEN}"
    assert headers["user-agent"] == f"popbatch/{__version__}"
    assert headers["content-length"] == str(len(BODY))
    assert headers.get("accept-encoding", "identity") == "identity"
