"""Each injected fault looks on the wire the way the real failure does."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import pytest
import requests

from popbatch.sandbox import Faults, SandboxError
from popbatch.sandbox.faults import FaultDrawer, FaultKind, Stage

pytestmark = pytest.mark.sandbox

CAPTURE = {"order_id": "ORDER-0001", "amount": 10000, "dummy": True}


def wait_until(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll until ``condition`` holds (a synchronisation, not a timing check)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the sandbox did not get there in time"
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("kind", "status"), [("too_many_requests", 429), ("unavailable", 503)]
)
def test_429_and_503_carry_retry_after_in_seconds_and_are_not_applied(
    pop, sandbox, kind, status
):
    """The overload answers say when to come back, and nothing happened."""
    sandbox.set_faults(**{kind: 1.0}, retry_after_s=7)

    answer = pop.post("card-capture", CAPTURE)

    assert answer.status_code == status
    assert answer.headers["Retry-After"] == "7"
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert (sandbox.received("ORDER-0001"), sandbox.applied("ORDER-0001")) == (1, 0)
    assert sandbox.order("ORDER-0001").state == "authorised"


def test_retry_after_can_be_an_http_date(pop, sandbox):
    """RFC 9110 allows an HTTP-date; the sandbox sends one on request."""
    sandbox.set_faults(unavailable=1.0, retry_after_s=30, retry_after_style="http-date")

    answer = pop.post("card-capture", CAPTURE)

    when = parsedate_to_datetime(answer.headers["Retry-After"])
    assert answer.headers["Retry-After"].endswith(" GMT")
    assert when.tzinfo is not None


def test_retry_after_can_be_left_out(pop, sandbox):
    """A 503 without Retry-After is a different case for the retry table."""
    sandbox.set_faults(unavailable=1.0, retry_after_style="none")

    answer = pop.post("card-capture", CAPTURE)

    assert answer.status_code == 503
    assert "Retry-After" not in answer.headers


def test_502_html_is_sent_after_the_request_was_applied(pop, sandbox):
    """A gateway page after the work was done: exactly why nobody may retry blindly."""
    sandbox.set_faults(bad_gateway_html=1.0)

    answer = pop.post("card-capture", CAPTURE)

    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.text.startswith("<!DOCTYPE html>")
    assert sandbox.applied("ORDER-0001") == 1
    assert sandbox.order("ORDER-0001").state == "captured"


def test_200_with_a_maintenance_page_is_not_applied(pop, sandbox):
    """HTTP 200 with HTML in Japanese; the request did not get through."""
    sandbox.set_faults(maintenance_html=1.0)

    answer = pop.post("card-capture", CAPTURE)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "メンテナンス" in answer.text
    assert sandbox.applied("ORDER-0001") == 0


@pytest.mark.parametrize("code", ["RA01", "RD01", "RM01"])
def test_not_processed_codes_come_without_gateway_fields(pop, sandbox, code):
    """RA01, RD01 and RM01 before the gateway: no m_status, nothing applied."""
    sandbox.set_faults(**{code.lower(): 1.0})

    answer = pop.post("card-capture", CAPTURE)

    assert answer.status_code == 200
    assert answer.json() == {
        "order_id": "ORDER-0001",
        "status": "failure",
        "result_code": code,
        "message": {
            "RA01": "Application Error",
            "RD01": "Database Error",
            "RM01": "Gateway error",
        }[code],
    }
    assert sandbox.applied("ORDER-0001") == 0


def test_not_processed_codes_can_come_with_another_http_status(pop, sandbox):
    """The HTTP status of the not-processed fault is a setting."""
    sandbox.set_faults(ra01=1.0, not_processed_status=500)

    answer = pop.post("card-capture", CAPTURE)

    assert (answer.status_code, answer.json()["result_code"]) == (500, "RA01")


def test_not_processed_codes_still_follow_validation(pop, sandbox):
    """A request POP would refuse is refused, fault or not."""
    sandbox.set_faults(rm01=1.0)

    answer = pop.post("card-capture", CAPTURE | {"amount": "1"})

    assert answer.json()["result_code"] == "RC3A"


def test_close_before_apply_drops_the_connection_and_changes_nothing(pop, sandbox):
    """The client sees the connection end without an answer; not applied."""
    sandbox.set_faults(close_before_apply=1.0)

    with pytest.raises(requests.ConnectionError):
        pop.post("card-capture", CAPTURE)

    assert (sandbox.received("ORDER-0001"), sandbox.applied("ORDER-0001")) == (1, 0)
    assert sandbox.order("ORDER-0001").state == "authorised"


def test_close_after_apply_drops_the_connection_after_the_ledger_changed(pop, sandbox):
    """The worst case for a retry: the capture happened, the answer is lost."""
    sandbox.set_faults(close_after_apply=1.0)

    with pytest.raises(requests.ConnectionError):
        pop.post("card-capture", CAPTURE)

    assert (sandbox.received("ORDER-0001"), sandbox.applied("ORDER-0001")) == (1, 1)
    assert sandbox.order("ORDER-0001").state == "captured"


def test_a_dropped_connection_sends_not_one_byte(sandbox):
    """On the socket: the request is read, then end of stream, no status line."""
    sandbox.set_faults(close_after_apply=1.0)
    body = json.dumps(CAPTURE).encode()
    head = (
        f"POST /pop/v1/card-capture HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {sandbox.authorization()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    with socket.create_connection(
        (sandbox.host, sandbox.port), timeout=5
    ) as connection:
        connection.sendall(head + body)
        received = connection.recv(1024)

    assert received == b""


def test_a_truncated_body_arrives_half_and_the_request_was_applied(sandbox):
    """Content-Length promises the whole answer; half of it comes, then EOF."""
    sandbox.set_faults(truncated_body=1.0)
    body = json.dumps(CAPTURE).encode()
    head = (
        f"POST /pop/v1/card-capture HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {sandbox.authorization()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    with socket.create_connection(
        (sandbox.host, sandbox.port), timeout=5
    ) as connection:
        connection.sendall(head + body)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)

    header, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in header.split(b"\r\n") if line.startswith(b"Content-Length")
        ).split(b":")[1]
    )
    assert header.startswith(b"HTTP/1.1 200 OK")
    assert len(payload) == length // 2
    assert sandbox.applied("ORDER-0001") == 1


def test_requests_reports_a_truncated_body_as_an_error(pop, sandbox):
    """A plain client cannot mistake the cut answer for a whole one."""
    sandbox.set_faults(truncated_body=1.0)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        pop.post("card-capture", CAPTURE)


def test_a_hung_request_times_out_at_the_client_and_was_applied(pop, sandbox):
    """The server never answers; the client's read timeout decides."""
    sandbox.set_faults(hang=1.0)

    with pytest.raises(requests.ReadTimeout):
        pop.post("card-capture", CAPTURE, timeout=0.3)

    assert (sandbox.received("ORDER-0001"), sandbox.applied("ORDER-0001")) == (1, 1)


def test_a_reset_lets_go_of_hung_connections(sandbox):
    """After reset the held socket is closed, so no thread waits forever."""
    sandbox.set_faults(hang=1.0)
    body = json.dumps(CAPTURE).encode()
    head = (
        f"POST /pop/v1/card-capture HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {sandbox.authorization()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    with socket.create_connection(
        (sandbox.host, sandbox.port), timeout=5
    ) as connection:
        connection.sendall(head + body)
        wait_until(lambda: sandbox.applied("ORDER-0001") == 1)
        sandbox.reset()
        received = connection.recv(1024)

    assert received == b""


def test_latency_is_drawn_between_its_bounds():
    """A latency range gives delays within it, and a fixed latency is exact."""
    drawer = FaultDrawer()
    ranged = Faults(latency_s=0.1, latency_max_s=0.3, seed=1)
    fixed = Faults(latency_s=0.25)

    delays = [drawer.draw(ranged, key=f"k{n}").delay_s for n in range(200)]

    assert all(0.1 <= delay <= 0.3 for delay in delays)
    assert len(set(delays)) > 100
    assert drawer.draw(fixed, key="k").delay_s == 0.25


def test_latency_rate_spares_a_share_of_requests():
    """latency_rate 0 means no delay at all."""
    faults = Faults(latency_s=0.2, latency_rate=0.0, seed=3)

    delays = {FaultDrawer().draw(faults, key=f"k{n}").delay_s for n in range(50)}

    assert delays == {0.0}


def test_latency_delays_the_answer_over_http(pop, sandbox):
    """A fixed latency still answers normally, later."""
    sandbox.set_faults(latency_s=0.05)

    answer = pop.post("card-capture", CAPTURE)

    assert answer.json()["result_code"] == "R001"
    assert answer.elapsed.total_seconds() >= 0.05


def test_a_seed_makes_the_draws_repeatable_whatever_the_order_of_requests():
    """Same seed, same request keys: the same faults, in any order."""
    faults = Faults(too_many_requests=0.3, hang=0.2, rm01=0.1, seed=42)
    keys = [f"card-capture|O-{n}|0" for n in range(300)]

    first = [FaultDrawer().draw(faults, key=key).kind for key in keys]
    backwards = [FaultDrawer().draw(faults, key=key).kind for key in reversed(keys)]

    assert first == list(reversed(backwards))
    assert {kind for kind in first} == {
        None,
        FaultKind.TOO_MANY_REQUESTS,
        FaultKind.HANG,
        FaultKind.RM01,
    }


def test_rates_are_honoured_roughly():
    """Over many draws each kind comes about as often as its rate says."""
    faults = Faults(too_many_requests=0.25, close_after_apply=0.25, seed=7)
    drawer = FaultDrawer()

    kinds = [drawer.draw(faults, key=str(n)).kind for n in range(4000)]

    assert 800 < kinds.count(FaultKind.TOO_MANY_REQUESTS) < 1200
    assert 800 < kinds.count(FaultKind.CLOSE_AFTER_APPLY) < 1200


def test_every_kind_has_a_stage():
    """Front kinds are not applied, back kinds are, the rest replace the gateway."""
    stages = {kind.value: kind.stage for kind in FaultKind}

    assert stages == {
        "too_many_requests": Stage.FRONT,
        "unavailable": Stage.FRONT,
        "maintenance_html": Stage.FRONT,
        "close_before_apply": Stage.FRONT,
        "ra01": Stage.INSTEAD,
        "rd01": Stage.INSTEAD,
        "rm01": Stage.INSTEAD,
        "bad_gateway_html": Stage.BACK,
        "truncated_body": Stage.BACK,
        "close_after_apply": Stage.BACK,
        "hang": Stage.BACK,
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"too_many_requests": 0.6, "unavailable": 0.6},
            "fault rates add up to 1.2; together they may not pass 1",
        ),
        ({"hang": 1.5}, "hang must be a rate from 0 to 1, got 1.5"),
        (
            {"latency_s": 0.5, "latency_max_s": 0.1},
            "latency must be 0 or more, and latency_max_s at least latency_s",
        ),
        (
            {"retry_after_style": "minutes"},
            "retry_after_style must be 'seconds', 'http-date' or 'none'",
        ),
        ({"hangs": 1.0}, "unknown fault setting 'hangs'"),
        ({"hang": "1"}, "fault setting 'hang' must be a number, got '1'"),
        (
            {"not_processed_status": 200.5},
            "not_processed_status must be a whole number",
        ),
    ],
    ids=["sum", "rate", "latency", "style", "unknown", "type", "whole-number"],
)
def test_impossible_fault_settings_are_refused(settings, message):
    """Fault settings are checked when they are set."""
    with pytest.raises(SandboxError) as caught:
        Faults.from_mapping(settings)

    assert str(caught.value).startswith(message)


def test_reset_turns_faults_off(pop, sandbox):
    """A reset returns to the configured faults (none for the session sandbox)."""
    sandbox.set_faults(too_many_requests=1.0)

    sandbox.reset()
    answer = pop.post("card-capture", CAPTURE)

    assert answer.status_code == 200
