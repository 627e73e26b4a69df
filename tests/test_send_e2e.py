"""End to end: DESIGN.md's "When to retry" table, row by row, against the sandbox.

Every test runs a whole batch (through the command line, or through
``pipeline.run_batch`` where milliseconds of backoff keep retried rows from
waiting) with real HTTP to the sandbox and a real SQLite journal, then
checks what a user sees: the group each row lands in, the reason and
detail in the results, the lines printed, the exit code. The sandbox's
counters show what reached it: a request is never applied twice, and a
retried request carries the same bytes as the first.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from harness import (
    TEST_KEY,
    Popbatch,
    assert_applied_at_most_once,
    assert_one_body,
    free_port,
)
from run_output import EXIT_LATER, EXIT_OK, EXIT_REVIEW, Run, expected_summary

from popbatch.cli.output import setup_logging
from popbatch.client import PopClient
from popbatch.journal import Journal
from popbatch.ratelimit import RateLimiter
from popbatch.sandbox import Faults, SandboxServer

pytestmark = pytest.mark.sandbox

DATA = Path(__file__).parent / "data"
UNSURE = (
    "the request may or may not have been processed. "
    "Check this order's status before re-running."
)


def json_answer(**fields: Any) -> dict[str, Any]:
    """A scripted POP JSON answer (HTTP 200) for the order it is queued for."""
    answer: dict[str, Any] = {"order_id": "{order_id}", "status": "failure"}
    answer.update(fields)
    return {"status": 200, "json": answer}


def seeded(sandbox: SandboxServer, *order_ids: str, amount: int = 1000) -> list[str]:
    """Add authorised orders to the sandbox's ledger; return their ids."""
    for order_id in order_ids:
        sandbox.add_order(order_id, amount)
    return list(order_ids)


def reason_and_detail(ran: Run, group: str) -> dict[str, tuple[str, str]]:
    """order_id -> (reason, detail) for the rows of one group."""
    return {row["order_id"]: (row["reason"], row["detail"]) for row in ran.group(group)}


# -- the field cases ------------------------------------------------------------------


def test_case_18_html_pages_go_to_review_and_the_batch_goes_on(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Case 18: a 502 page and a 200 maintenance page are Review; 2 + 2, exit 3."""
    sandbox.set_script(DATA / "stubs" / "18-html-error-page.json")
    orders = ["HE-001", "HE-002", "HE-003", "HE-004"]
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 3
    assert ran.said == expected_summary(
        1,
        ran.folder,
        EXIT_REVIEW,
        succeeded=(2, 2000),
        review=(2, 2000),
        review_orders=["HE-002", "HE-004"],
        journal=popbatch.journal,
    )
    assert ran.order_ids("succeeded") == ["HE-001", "HE-003"]
    assert reason_and_detail(ran, "review") == {
        "HE-002": (
            "not_pop_json",
            f"HTTP 502, response is not POP JSON (text/html); {UNSURE}",
        ),
        "HE-004": (
            "not_pop_json",
            f"HTTP 200 but the body is not POP JSON (text/html); {UNSURE}",
        ),
    }
    review = {row["order_id"]: row for row in ran.group("review")}
    assert review["HE-002"]["http_status"] == "502"
    assert review["HE-002"]["content_type"] == "text/html; charset=utf-8"
    assert review["HE-002"]["request sent"] == (
        '{"order_id": "HE-002", "amount": 1000, "dummy": true}'
    )
    assert "<h1>Bad Gateway</h1>" in review["HE-002"]["response received"]
    assert "ただいまメンテナンス中です" in review["HE-004"]["response received"]
    assert review["HE-004"]["sent_at"]
    assert review["HE-004"]["received_at"]
    assert {oid: sandbox.received(oid) for oid in orders} == dict.fromkeys(orders, 1)


def test_case_19_dropped_and_timed_out_refunds_are_not_sent_again(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Case 19: a closed connection and a 2 s read timeout go to Review, sent once."""
    sandbox.set_script(DATA / "stubs" / "19-connection-drop-no-blind-retry.json")
    orders = ["CR-001", "CR-002", "CR-003", "CR-004"]
    file = popbatch.write_csv("partial_refunds.csv", [[oid, 500] for oid in orders])

    ran = popbatch.run("cancel", file, "--timeout", "2")

    assert ran.exit_code == 3
    assert ran.order_ids("succeeded") == ["CR-001", "CR-003"]
    assert reason_and_detail(ran, "review") == {
        "CR-002": (
            "connection_dropped",
            "connection closed after the request was sent; the refund may have "
            "been made. Check before re-running.",
        ),
        "CR-004": (
            "read_timeout",
            "no response within 2 s (read timeout); the refund may have been "
            "made. Check before re-running.",
        ),
    }
    for order_id in orders:
        assert_one_body(sandbox, order_id, times=1)
    assert ran.order_ids("failed") == []


def test_review_rows_are_not_sent_again_by_a_later_run(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Re-running after case 18 sends nothing: Review rows wait for a person."""
    sandbox.set_script(DATA / "stubs" / "18-html-error-page.json")
    file = popbatch.captures("capture.csv", ["HE-001", "HE-002", "HE-003", "HE-004"])
    popbatch.run("capture", file)

    again = popbatch.run("capture", file)

    assert again.exit_code == 3
    assert again.counts()["review"] == 2
    assert sandbox.received() == 4


# -- not sent: nothing listening -------------------------------------------------------


def test_unreachable_gateway_leaves_every_row_pending(tmp_path: Path) -> None:
    """Connection refused: nothing sent, rows stay pending (exit 75), none in Review."""
    port = free_port()
    popbatch = Popbatch(tmp_path)
    file = popbatch.captures("capture.csv", ["U-1", "U-2", "U-3", "U-4"])

    ran = popbatch.run_batch(
        "capture", file, endpoint=f"http://127.0.0.1:{port}/pop/v1", concurrency=1
    )

    assert ran.exit_code == 75
    refused = (
        f"could not connect to 127.0.0.1:{port} (connection refused); nothing was sent."
    )
    assert ran.lines[0] == (
        f"4 rows stay pending: 1 after 3 attempts, 3 because this run's 3 retries "
        f"were used up (last answer: {refused[:-1]}). Run the same command again "
        "later to send them."
    )
    assert ran.counts()["pending"] == 4
    assert ran.counts()["review"] == 0
    assert reason_and_detail(ran, "pending") == dict.fromkeys(
        ["U-1", "U-2", "U-3", "U-4"], ("connect_failed", refused)
    )


def test_unreachable_gateway_through_the_command_line(tmp_path: Path) -> None:
    """One row, nothing listening: the terminal says it could not connect; exit 75."""
    port = free_port()
    popbatch = Popbatch(tmp_path)
    file = popbatch.captures("capture.csv", ["U-1"])

    ran = popbatch.run("capture", file, endpoint=f"http://127.0.0.1:{port}/pop/v1")

    assert ran.exit_code == 75
    assert ran.said[0] == (
        f"1 row stays pending after 3 attempts (last answer: could not connect to "
        f"127.0.0.1:{port} (connection refused); nothing was sent). Run the same "
        "command again later to send it."
    )
    assert ran.said[-1] == EXIT_LATER
    assert ran.counts()["review"] == 0


# -- not processed: 429, 503 with Retry-After ------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"body": "<html><body>Too Many Requests</body></html>"}, "-"),
        ({"body": ""}, "-"),
        (
            {
                "json": {
                    "order_id": "{order_id}",
                    "status": "failure",
                    "result_code": "RA01",
                }
            },
            "RA01",
        ),
    ],
    ids=["html", "empty", "pop-json"],
)
def test_429_is_retried_whatever_its_body(
    sandbox: SandboxServer, popbatch: Popbatch, body: dict[str, Any], code: str
) -> None:
    """A 429 says nothing was done: the same bytes go again and the row succeeds."""
    orders = seeded(sandbox, "T-1")
    sandbox.script_order(
        "T-1", {"status": 429, "headers": {"Retry-After": "0"}, **body}
    )
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 0
    assert ran.order_ids("succeeded") == ["T-1"]
    assert_one_body(sandbox, "T-1", times=2)
    assert sandbox.applied("T-1") == 1
    assert [line for line in ran.log_lines if line.startswith("WARNING batch=")] == [
        "WARNING batch=1 row=2 order_id=T-1 op=capture amount=1000 "
        f"outcome=not_processed code={code} "
        f"attempt=1 ms={ran_ms(ran, 'T-1')} reason=rate_limited retry_in=0.00s "
        "wait=retry_after"
    ]


def ran_ms(ran: Run, order_id: str) -> str:
    """The ms= value the first WARNING line about ``order_id`` shows."""
    for line in ran.log_lines:
        if f"order_id={order_id} " in line:
            found = re.search(r" ms=(\S+)", line)
            assert found is not None
            return found.group(1)
    raise AssertionError(f"no log line about {order_id}")


def test_503_with_retry_after_in_seconds_waits_that_long(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Retry-After: 1 on a 503: the second request comes a second after the first."""
    orders = seeded(sandbox, "S-1")
    sandbox.script_order(
        "S-1", {"status": 503, "headers": {"Retry-After": "1"}, "body": "busy"}
    )
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 0
    assert ran.order_ids("succeeded") == ["S-1"]
    assert_one_body(sandbox, "S-1", times=2)
    first, second = sandbox.requests("S-1")
    # A lower bound only: it holds however slow the machine is.
    assert (second.received_at - first.received_at).total_seconds() >= 0.95
    assert any(
        "reason=service_unavailable retry_in=1.00s wait=retry_after" in line
        for line in ran.log_lines
    )


def test_503_with_retry_after_as_an_http_date_is_honoured(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """An HTTP date in Retry-After is read (one already past means: at once)."""
    orders = seeded(sandbox, "S-2")
    past = formatdate(time.time() - 30, usegmt=True)
    sandbox.script_order(
        "S-2", {"status": 503, "headers": {"Retry-After": past}, "body": "busy"}
    )
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 0
    assert_one_body(sandbox, "S-2", times=2)
    assert sandbox.applied("S-2") == 1
    assert any(
        "reason=service_unavailable retry_in=0.00s wait=retry_after" in line
        for line in ran.log_lines
    )


def test_503_without_retry_after_is_review_not_retried(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Any other 5xx, a 503 without Retry-After included, is unknown: sent once."""
    orders = seeded(sandbox, "S-3")
    sandbox.set_faults(unavailable=1.0, retry_after_style="none")
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "review") == {
        "S-3": (
            "not_pop_json",
            f"HTTP 503, response is not POP JSON (text/html); {UNSURE}",
        )
    }
    assert sandbox.received("S-3") == 1


def test_retry_after_beyond_the_ceiling_stops_with_the_rest_pending(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """POP asks for 120 s, --max-retry-wait is 60: stop, nothing waits, exit 75."""
    orders = seeded(sandbox, "W-1", "W-2", "W-3")
    sandbox.set_faults(too_many_requests=1.0, retry_after_s=120)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, "--max-retry-wait", "60")

    assert ran.exit_code == 75
    assert ran.said == [
        "POP asked to wait 120 s before sending more, longer than the 60 s "
        "ceiling; the remaining rows stay pending. Run the same command again later.",
        *expected_summary(1, ran.folder, EXIT_LATER, pending=(3, 3000)),
    ]
    assert sandbox.received() == 1
    assert sandbox.applied() == 0


# -- unknown: Review, sent once --------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "reason", "detail"),
    [
        (
            {"close_after_apply": 1.0},
            "connection_dropped",
            "connection closed after the request was sent; the capture may have "
            "been made. Check before re-running.",
        ),
        (
            {"close_before_apply": 1.0},
            "connection_dropped",
            "connection closed after the request was sent; the capture may have "
            "been made. Check before re-running.",
        ),
        (
            {"hang": 1.0},
            "read_timeout",
            "no response within 0.5 s (read timeout); the capture may have been "
            "made. Check before re-running.",
        ),
        (
            {"bad_gateway_html": 1.0},
            "not_pop_json",
            f"HTTP 502, response is not POP JSON (text/html); {UNSURE}",
        ),
        (
            {"maintenance_html": 1.0},
            "not_pop_json",
            f"HTTP 200 but the body is not POP JSON (text/html); {UNSURE}",
        ),
    ],
    ids=[
        "dropped-after-apply",
        "dropped-before-apply",
        "read-timeout",
        "502",
        "200-html",
    ],
)
def test_answers_that_may_hide_a_capture_go_to_review_sent_once(
    sandbox: SandboxServer,
    popbatch: Popbatch,
    faults: dict[str, float],
    reason: str,
    detail: str,
) -> None:
    """Dropped, timed out or not POP JSON: Review with evidence, exit 3, sent once."""
    orders = seeded(sandbox, "Q-1")
    sandbox.set_faults(Faults.from_mapping(faults))
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, "--timeout", "0.5")

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "review") == {"Q-1": (reason, detail)}
    assert_one_body(sandbox, "Q-1", times=1)
    assert sandbox.applied("Q-1") <= 1


def test_truncated_body_is_review_with_what_arrived(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """A body cut in half: Review, the bytes that arrived kept, sent once."""
    orders = seeded(sandbox, "Q-2")
    sandbox.set_faults(truncated_body=1.0)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 3
    (row,) = ran.group("review")
    found = re.fullmatch(
        r"HTTP 200, the response ended early \((\d+) of (\d+) bytes received\); "
        + re.escape(UNSURE),
        row["detail"],
    )
    assert found is not None, row["detail"]
    arrived, announced = int(found.group(1)), int(found.group(2))
    assert arrived == announced // 2
    assert row["reason"] == "truncated_body"
    assert row["response received"].startswith('{"order_id":"Q-2"')
    assert_one_body(sandbox, "Q-2", times=1)
    assert sandbox.applied("Q-2") == 1


@pytest.mark.parametrize(
    ("answer", "reason", "detail"),
    [
        (
            json_answer(result_code="RX99", message="?"),
            "unknown_result_code",
            f"POP answered result code 'RX99', which popbatch does not know for "
            f"capture; {UNSURE}",
        ),
        (
            json_answer(
                order_id="OTHER-9",
                status="success",
                result_code="R001",
                m_status="success",
            ),
            "order_id_mismatch",
            f"POP answered for order 'OTHER-9', but 'M-1' was sent; {UNSURE}",
        ),
        (
            json_answer(result_code="RM01", m_status="pending"),
            "gateway_pending",
            "the payment gateway reports this transaction as pending (RM01); it may "
            "still complete. Check this order's status before re-running.",
        ),
    ],
    ids=["unknown-code", "order-id-mismatch", "m-status-pending"],
)
def test_pop_answers_in_doubt_go_to_review(
    sandbox: SandboxServer,
    popbatch: Popbatch,
    answer: dict[str, Any],
    reason: str,
    detail: str,
) -> None:
    """Unknown code, another order's id, m_status pending: Review, never re-sent."""
    orders = seeded(sandbox, "M-1")
    sandbox.script_order("M-1", answer)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "review") == {"M-1": (reason, detail)}
    assert_one_body(sandbox, "M-1", times=1)


@pytest.mark.parametrize("echo", ["original", "new"])
def test_reauthorize_accepts_the_original_or_the_new_order_id(
    make_sandbox: Any, tmp_path: Path, echo: str
) -> None:
    """The API text's reauthorize example answers with the original id: a success."""
    server = make_sandbox(reauthorize_echo=echo)
    server.add_order("ORIG-1", 3000)
    popbatch = Popbatch(tmp_path, server)
    file = popbatch.write_csv(
        "reauthorize.csv",
        [["NEW-1", "ORIG-1", 3000]],
        "order_id,original_order_id,amount",
    )

    ran = popbatch.run("reauthorize", file)

    assert ran.exit_code == 0
    assert ran.order_ids("succeeded") == ["NEW-1"]
    (answer,) = ran.group("succeeded")
    assert answer["result_code"] == "R003"
    assert server.applied("NEW-1") == 1


# -- not processed before the gateway: RA01, RD01, RM01 without m_status ---------------


@pytest.mark.parametrize(
    ("fault", "code", "meaning"),
    [
        (
            "ra01",
            "RA01",
            "Application Error - an unknown error has occurred on VeriTrans side",
        ),
        ("rd01", "RD01", "Database Error - a severe error in the VeriTrans database"),
        (
            "rm01",
            "RM01",
            "Gateway Error - an error while connecting to the Payment Gateway",
        ),
    ],
)
def test_errors_before_the_gateway_are_retried_then_left_pending(
    sandbox: SandboxServer, popbatch: Popbatch, fault: str, code: str, meaning: str
) -> None:
    """RA01/RD01/RM01 without m_status: three identical attempts, pending, exit 75."""
    orders = seeded(sandbox, "N-1")
    sandbox.set_faults(Faults.from_mapping({fault: 1.0}))
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run_batch("capture", file)

    assert ran.exit_code == 75
    detail = (
        f"POP answered {code} ({meaning}) before reaching the payment gateway; "
        "nothing was processed."
    )
    assert ran.lines[0] == (
        f"1 row stays pending after 3 attempts (last answer: {detail[:-1]}). Run the "
        "same command again later to send it."
    )
    assert reason_and_detail(ran, "pending") == {
        "N-1": ("pop_error_before_gateway", detail)
    }
    assert_one_body(sandbox, "N-1", times=3)
    assert sandbox.applied("N-1") == 0


def test_error_before_the_gateway_then_success_is_applied_once(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """RA01 once, then the real answer: two identical requests, applied once."""
    orders = seeded(sandbox, "N-2")
    sandbox.script_order(
        "N-2", json_answer(result_code="RA01", message="Application Error")
    )
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run_batch("capture", file)

    assert ran.exit_code == 0
    assert ran.order_ids("succeeded") == ["N-2"]
    assert_one_body(sandbox, "N-2", times=2)
    assert sandbox.applied("N-2") == 1


def test_pending_rows_are_sent_by_the_next_run(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Once the gateway recovers, the same command sends the pending rows, once each."""
    orders = seeded(sandbox, "N-3", "N-4")
    sandbox.set_faults(rm01=1.0)
    file = popbatch.captures("capture.csv", orders)
    first = popbatch.run_batch("capture", file)
    sandbox.set_faults()

    again = popbatch.run_batch("capture", file)

    assert first.exit_code == 75
    assert again.exit_code == 0
    assert again.order_ids("succeeded") == orders
    assert {oid: sandbox.applied(oid) for oid in orders} == {"N-3": 1, "N-4": 1}


# -- failed: declines never stop a batch ----------------------------------------------


def test_declines_are_failed_and_never_stop_the_batch(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Five declines in a row with --stop-after 2: all answered, Failed, exit 1."""
    orders = [f"D-{n}" for n in range(1, 6)]
    for order_id in orders:
        sandbox.add_order(order_id, 1000, decline=True)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, "--stop-after", "2")

    assert ran.exit_code == 1
    assert ran.order_ids("failed") == orders
    assert reason_and_detail(ran, "failed")["D-1"] == (
        "refused by the payment gateway",
        "the payment gateway refused it: 無効カードです。 (RM01, gateway code "
        "AG48000000000000)",
    )
    assert (
        ran.said[-1]
        == "Exit 1: some rows failed at POP, were rejected, or need a decision"
    )
    for order_id in orders:
        assert_one_body(sandbox, order_id, times=1)


# -- failed, and the batch stops: the key, the merchant, the endpoint ------------------


def test_rejected_key_stops_the_batch_after_the_first_request(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """RC17: one request, every row pending, exit 78, no key shown."""
    orders = seeded(sandbox, "K-1", "K-2", "K-3", "K-4", "K-5")
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, key="Wrong-Key-5f0c2e")

    assert ran.exit_code == 78
    assert ran.said[0] == (
        "POP rejected the server key (RC17). Check POP_SERVER_KEY or "
        "--server-key-file; the remaining rows stay pending."
    )
    assert ran.counts()["pending"] == 5
    assert reason_and_detail(ran, "pending")["K-1"] == (
        "key_rejected",
        "POP rejected the server key (RC17). Check POP_SERVER_KEY or "
        "--server-key-file.",
    )
    assert sandbox.received() == 1
    assert sandbox.applied() == 0
    assert "Wrong-Key-5f0c2e" not in ran.stderr


def test_same_command_finishes_the_batch_once_the_key_is_fixed(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """The row POP refused for the key was not processed: the re-run sends it."""
    orders = seeded(sandbox, "K-6", "K-7", "K-8")
    file = popbatch.captures("capture.csv", orders)
    popbatch.run("capture", file, key="Wrong-Key-5f0c2e")

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 0
    assert ran.order_ids("succeeded") == ["K-6", "K-7", "K-8"]
    assert [sandbox.applied(order) for order in orders] == [1, 1, 1]


def test_rejected_key_under_always_200_stops_the_batch_too(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """RC17 in a 200 answer is judged by its code: the batch stops all the same."""
    server = make_sandbox(error_status="always-200")
    popbatch = Popbatch(tmp_path, server)
    file = popbatch.captures("capture.csv", ["K-1", "K-2"])

    ran = popbatch.run("capture", file, key="Wrong-Key-5f0c2e")

    assert ran.exit_code == 78
    assert ran.counts()["failed"] == 0
    assert ran.counts()["pending"] == 2
    assert server.received() == 1


def test_test_merchant_sending_live_stops_the_batch(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """RC44: a test merchant's key with --live: stop after one, say how to fix it."""
    orders = seeded(sandbox, "L-1", "L-2", "L-3")
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, "--live", "--yes")

    assert ran.exit_code == 78
    assert (
        "POP answered RC44: this server key belongs to a test merchant, which takes "
        "test requests only. Run without --live, or use the live server key; the "
        "remaining rows stay pending."
    ) in ran.said
    assert ran.counts()["failed"] == 0
    assert ran.counts()["pending"] == 3
    assert sandbox.received() == 1


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (
            401,
            "http_unauthorized",
            "POP answered HTTP 401: the server key was not accepted. Check "
            "POP_SERVER_KEY or --server-key-file; the remaining rows stay pending.",
        ),
        (
            403,
            "http_forbidden",
            "POP answered HTTP 403: access was refused (the server key, or this "
            "machine's address, is not allowed). Check the key and the merchant's "
            "settings; the remaining rows stay pending.",
        ),
    ],
)
def test_401_and_403_pages_stop_the_batch(
    sandbox: SandboxServer, popbatch: Popbatch, status: int, reason: str, message: str
) -> None:
    """A proxy's 401 or 403 page: every row pending, the batch stops, exit 78."""
    orders = seeded(sandbox, "H-1", "H-2", "H-3")
    sandbox.script_order("H-1", {"status": status, "body": "<html>denied</html>"})
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 78
    assert message in ran.said
    assert reason_and_detail(ran, "pending")["H-1"][0] == reason
    assert ran.order_ids("pending") == ["H-1", "H-2", "H-3"]
    assert sandbox.received() == 1


def test_wrong_endpoint_stops_the_batch_at_the_first_404(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Breaks review: a web server's 404 page: every row pending, stop, exit 78."""
    orders = seeded(sandbox, "E-1", "E-2", "E-3", "E-4")
    file = popbatch.captures("capture.csv", orders)
    wrong = sandbox.base_url.replace("/pop/v1", "/pop/v2")

    ran = popbatch.run("capture", file, endpoint=wrong)

    assert ran.exit_code == 78
    assert ran.said[0] == (
        "The endpoint answered HTTP 404 with a page that is not POP JSON, so the "
        "URL is not a POP endpoint. Check --endpoint (or POP_ENDPOINT); the row "
        "sent was not processed and stays pending with the remaining rows."
    )
    assert ran.counts() == {
        "succeeded": 0,
        "failed": 0,
        "rejected": 0,
        "review": 0,
        "skipped": 0,
        "pending": 4,
    }
    assert reason_and_detail(ran, "pending")["E-1"] == (
        "wrong_endpoint",
        f"HTTP 404 from {wrong}/card-capture, response is not POP JSON "
        "(text/html): this URL is not a POP endpoint, so nothing was processed.",
    )
    assert ran.order_ids("pending") == ["E-1", "E-2", "E-3", "E-4"]
    assert sandbox.received() == 0
    assert sandbox.applied() == 0


def test_a_host_name_that_does_not_exist_stops_the_batch_with_exit_78(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """A typo in the host (.invalid never resolves): a configuration error, not
    "try again later", so that cron does not retry a typo for ever."""
    try:
        socket.getaddrinfo("pay3.example.invalid", 443)
    except socket.gaierror as error:
        if error.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver answers {error} for .invalid")
    orders = seeded(sandbox, "N-1", "N-2", "N-3")
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, endpoint="https://pay3.example.invalid/pop/v1")

    assert ran.exit_code == 78
    assert ran.said[0] == (
        "could not connect: the host name of pay3.example.invalid:443 does not "
        "exist in DNS (name or service not known). Check --endpoint (or "
        "POP_ENDPOINT) and this machine's DNS; nothing was sent, and the rows "
        "stay pending."
    )
    assert ran.order_ids("pending") == ["N-1", "N-2", "N-3"]
    assert reason_and_detail(ran, "pending")["N-1"][0] == "host_not_found"
    assert sandbox.received() == 0


def test_rows_held_by_a_wrong_endpoint_are_sent_once_it_is_fixed(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Breaks review: the row sent to a wrong endpoint was not processed; sent once.

    The endpoint is part of what identifies a batch, so the run with the
    right endpoint is batch 2.
    """
    orders = seeded(sandbox, "E-7", "E-8")
    file = popbatch.captures("capture.csv", orders)
    wrong = sandbox.base_url.replace("/pop/v1", "/pop/v2")
    popbatch.run("capture", file, endpoint=wrong)

    ran = popbatch.run("capture", file, endpoint=sandbox.base_url)

    assert ran.exit_code == 0
    assert ran.said == expected_summary(2, ran.folder, EXIT_OK, succeeded=(2, 2000))
    assert ran.order_ids("succeeded") == ["E-7", "E-8"]
    assert {oid: sandbox.applied(oid) for oid in orders} == {"E-7": 1, "E-8": 1}
    for order_id in orders:
        assert_one_body(sandbox, order_id, times=1)


def test_405_page_stops_the_batch_like_a_404(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """A 405 that is not POP JSON means the URL is not POP's either: all pending."""
    orders = seeded(sandbox, "E-5", "E-6")
    sandbox.script_order("E-5", {"status": 405, "body": "Method Not Allowed"})
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 78
    assert ran.said[0].startswith("The endpoint answered HTTP 405 with a page")
    assert ran.group("review") == []
    assert reason_and_detail(ran, "pending")["E-5"][0] == "wrong_endpoint"
    assert ran.order_ids("pending") == ["E-5", "E-6"]
    assert sandbox.received() == 1


# -- consecutive answers stop the batch ------------------------------------------------


def test_consecutive_not_processed_answers_stop_the_batch(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """--stop-after 2, every request a 429: stop after two, the rest pending, 75."""
    orders = seeded(sandbox, "C-1", "C-2", "C-3", "C-4")
    sandbox.set_faults(too_many_requests=1.0, retry_after_s=0)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, "--stop-after", "2")

    assert ran.exit_code == 75
    assert ran.said == [
        "2 requests in a row were not sent or not processed (last: HTTP 429: POP "
        "asked to slow down (retry after 0 s); nothing was processed); the "
        "remaining rows stay pending. Run the same command again later.",
        *expected_summary(1, ran.folder, EXIT_LATER, pending=(4, 4000)),
    ]
    assert_one_body(sandbox, "C-1", times=2)
    assert sandbox.received() == 2


def test_consecutive_unknown_outcomes_stop_the_batch(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Every request times out: stop after --stop-after of them, rest pending, 75."""
    orders = seeded(sandbox, "V-1", "V-2", "V-3", "V-4", "V-5")
    sandbox.set_faults(hang=1.0)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run(
        "capture",
        file,
        "--stop-after",
        "2",
        "--timeout",
        "0.3",
        "--concurrency",
        "1",
    )

    assert ran.exit_code == 75
    assert ran.said[0] == (
        "2 requests in a row had an unknown outcome (last: no response within 0.3 s "
        "(read timeout); the capture may have been made. Check before re-running); "
        "the remaining rows stay pending. Check the Review rows, then run the same "
        "command again."
    )
    assert ran.order_ids("review") == ["V-1", "V-2"]
    assert ran.order_ids("pending") == ["V-3", "V-4", "V-5"]
    assert sandbox.received() == 2


def test_run_wide_retry_budget_leaves_the_rest_pending(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Five rows, each RA01 once: three retries in the run, two rows left pending."""
    orders = seeded(sandbox, "B-1", "B-2", "B-3", "B-4", "B-5")
    for order_id in orders:
        sandbox.script_order(order_id, json_answer(result_code="RA01", message="x"))
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run_batch("capture", file, concurrency=1)

    assert ran.exit_code == 75
    assert ran.order_ids("succeeded") == ["B-1", "B-2", "B-3"]
    assert ran.order_ids("pending") == ["B-4", "B-5"]
    assert ran.lines[0] == (
        "2 rows stay pending: this run's 3 retries were used up (last answer: POP "
        "answered RA01 (Application Error - an unknown error has occurred on "
        "VeriTrans side) before reaching the payment gateway; nothing was "
        "processed). Run the same command again later to send them."
    )
    assert sandbox.received() == 8

    again = popbatch.run_batch("capture", file, concurrency=1)

    assert again.exit_code == 0
    assert again.counts()["succeeded"] == 5
    assert_applied_at_most_once(sandbox, orders)
    assert {oid: sandbox.applied(oid) for oid in orders} == dict.fromkeys(orders, 1)


# -- rate limit, workers, sessions, timeouts -------------------------------------------


def test_every_attempt_of_every_worker_passes_the_one_limiter(
    sandbox: SandboxServer, popbatch: Popbatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One limiter for the run; every request, retries included, acquires it first."""
    limiters: list[CountingLimiter] = []

    class CountingLimiter(RateLimiter):
        def __init__(self, rate: float, **settings: Any) -> None:
            super().__init__(rate, **settings)
            self.granted = 0
            self.threads: set[str] = set()
            self._count_lock = threading.Lock()
            limiters.append(self)

        def acquire(self, stop: threading.Event | None = None) -> bool:
            granted = super().acquire(stop)
            with self._count_lock:
                self.granted += granted
                self.threads.add(threading.current_thread().name)
            return granted

    monkeypatch.setattr("popbatch.sender.RateLimiter", CountingLimiter)
    orders = seeded(sandbox, *(f"R-{n}" for n in range(1, 13)))
    for order_id in orders[:3]:
        sandbox.script_order(
            order_id, {"status": 429, "headers": {"Retry-After": "0"}, "body": ""}
        )
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run_batch("capture", file, concurrency=3)

    assert ran.exit_code == 0
    (limiter,) = limiters
    assert limiter.rate == 0
    assert limiter.granted == sandbox.received() == 15
    assert limiter.threads <= {
        "MainThread",
        "popbatch-worker-0",
        "popbatch-worker-1",
        "popbatch-worker-2",
    }
    assert_applied_at_most_once(sandbox, orders)


def test_each_worker_has_a_client_of_its_own(
    sandbox: SandboxServer, popbatch: Popbatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One PopClient (one Session) per worker, never used by two threads at once."""
    clients: list[RecordingClient] = []

    class RecordingClient(PopClient):
        def __init__(self, **settings: Any) -> None:
            super().__init__(**settings)
            self.threads: set[str] = set()
            clients.append(self)

        def send(self, *args: Any, **kwargs: Any) -> Any:
            self.threads.add(threading.current_thread().name)
            return super().send(*args, **kwargs)

    monkeypatch.setattr("popbatch.sender.PopClient", RecordingClient)
    orders = seeded(sandbox, *(f"P-{n}" for n in range(1, 21)))
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run_batch("capture", file, concurrency=4)

    assert ran.exit_code == 0
    assert len(clients) == 4
    assert len({id(client._session) for client in clients}) == 4
    for n, client in enumerate(clients):
        # The first row goes alone, on the calling thread, with worker 0's client.
        assert client.threads <= {f"popbatch-worker-{n}"} | (
            {"MainThread"} if n == 0 else set()
        )


def test_timeouts_given_on_the_command_line_are_used_and_recorded(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """--connect-timeout and --timeout reach the client and the batch's record."""
    orders = seeded(sandbox, "O-1")
    sandbox.set_faults(hang=1.0)
    file = popbatch.captures("capture.csv", orders)

    ran = popbatch.run("capture", file, "--connect-timeout", "1.5", "--timeout", "0.4")

    assert reason_and_detail(ran, "review")["O-1"][1].startswith(
        "no response within 0.4 s (read timeout)"
    )
    journal = Journal.open(popbatch.journal)
    try:
        (batch,) = journal.list_batches()
    finally:
        journal.close()
    assert batch.options["timeouts"] == {"connect": 1.5, "read": 0.4}


# -- what the log says -----------------------------------------------------------------


def row_lines(text: str) -> list[str]:
    """The log lines about rows, without time stamps and with ms=N for the timing."""
    found = []
    for line in text.splitlines():
        level_and_message = line.split(" ", 2)[-1]
        if " row=" in f" {level_and_message.split(' ', 1)[-1]}":
            found.append(re.sub(r" ms=\d+", " ms=N", level_and_message))
    return found


ROW_LINES = [
    "INFO batch=1 row=2 order_id=G-1 op=capture amount=1000 outcome=succeeded "
    "code=R001 attempt=1 ms=N reason=succeeded",
    "WARNING batch=1 row=3 order_id=G-2 op=capture amount=1000 "
    "outcome=not_processed code=- attempt=1 ms=N reason=rate_limited retry_in=0.00s "
    "wait=retry_after",
    "INFO batch=1 row=3 order_id=G-2 op=capture amount=1000 outcome=succeeded "
    "code=R001 attempt=2 ms=N reason=succeeded",
    "INFO batch=1 row=4 order_id=G-3 op=capture amount=1000 outcome=failed "
    "code=RM01 attempt=1 ms=N reason=declined",
    "INFO batch=1 row=5 order_id=G-4 op=capture amount=1000 outcome=unknown code=- "
    "attempt=1 ms=N reason=not_pop_json",
]


def logged_batch(sandbox: SandboxServer, popbatch: Popbatch) -> Path:
    """A batch with a success, a retried 429, a decline and a Review row."""
    seeded(sandbox, "G-1", "G-2", "G-4")
    sandbox.add_order("G-3", 1000, decline=True)
    sandbox.script_order("G-2", {"status": 429, "headers": {"Retry-After": "0"}})
    sandbox.script_order("G-4", {"status": 502, "body": "<html>502</html>"})
    return popbatch.captures("capture.csv", ["G-1", "G-2", "G-3", "G-4"])


def test_log_file_has_one_line_per_row_outcome_and_retries_at_warning(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """--log-file: a key=value INFO line per row, a WARNING per retry; stderr quiet."""
    file = logged_batch(sandbox, popbatch)
    log = popbatch.root / "popbatch.log"

    ran = popbatch.run("capture", file, "--concurrency", "1", "--log-file", str(log))

    assert ran.exit_code == 3
    assert row_lines(log.read_text("utf-8")) == ROW_LINES
    # Without -v, stderr shows the warnings only.
    assert row_lines(ran.stderr) == [line for line in ROW_LINES if "WARNING" in line]


def test_verbose_puts_the_row_lines_on_stderr(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """-v: the same lines on stderr, and the batch's start and end at INFO."""
    file = logged_batch(sandbox, popbatch)

    ran = popbatch.run("capture", file, "--concurrency", "1", "-v")

    assert row_lines(ran.stderr) == ROW_LINES
    assert "INFO batch=1 sending rows=4" in ran.log_lines
    assert any(
        line.startswith("INFO batch=1 done exit=3 sent=5 ") for line in ran.log_lines
    )


def test_log_file_row_lines_name_the_batch_and_the_amount(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """--log-file: each row line says its batch and amount; a full refund shows '-'."""
    seeded(sandbox, "L-1", "L-2", amount=5000)
    captures = popbatch.captures("capture.csv", ["L-1", "L-2"], amount=5000)
    refunds = popbatch.write("refunds.csv", "order_id,amount\nL-1,1200\nL-2,\n")
    log = popbatch.root / "refunds.log"

    captured = popbatch.run("capture", captures, "--quiet")
    ran = popbatch.run("cancel", refunds, "--concurrency", "1", "--log-file", str(log))

    assert (captured.exit_code, ran.exit_code) == (0, 0)
    text = log.read_text("utf-8")
    assert row_lines(text) == [
        "INFO batch=2 row=2 order_id=L-1 op=cancel amount=1200 outcome=succeeded "
        "code=R002 attempt=1 ms=N reason=succeeded",
        "INFO batch=2 row=3 order_id=L-2 op=cancel amount=- outcome=succeeded "
        "code=R002 attempt=1 ms=N reason=succeeded",
    ]
    assert TEST_KEY not in text


def test_setting_up_logging_again_closes_the_previous_log_file(tmp_path: Path) -> None:
    """Regression (issue 5): a second command in one process leaked the log file."""
    setup_logging(0, False, tmp_path / "first.log")
    (first,) = [
        handler
        for handler in logging.getLogger("popbatch").handlers
        if isinstance(handler, logging.FileHandler)
    ]

    setup_logging(0, False, tmp_path / "second.log")

    assert first.stream is None or first.stream.closed
    setup_logging(0, False, None)
