"""Regressions of the adversarial review of the client's classification.

POP has no idempotency key, so an answer that may mean the request was
applied must never be called safe to retry. Each test names the break it
guards. The first half judges answers directly (``answers.judge_answer``
is pure: status, headers and body in, a verdict out); the second half runs
whole batches against the sandbox over real HTTP and checks what a user
sees (group, reason, detail, exit code, the lines printed) and what the
sandbox counted: nothing received or applied twice.
"""

from __future__ import annotations

import base64
import json
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from harness import FAST_RETRY, Popbatch
from requests.structures import CaseInsensitiveDict
from run_output import EXIT_FAILED, EXIT_REVIEW, Run, expected_summary

from popbatch.client.answers import (
    GATEWAY_FIELDS,
    USED_CARD_FIELDS,
    Verdict,
    judge_answer,
)
from popbatch.client.bodies import Body
from popbatch.operations import AUTHORIZE, CANCEL, CAPTURE, Operation
from popbatch.rows import OutcomeKind
from popbatch.sandbox import SandboxServer

URL = "https://pop.example.test/pop/v1/card-capture"
NOW = datetime(2026, 12, 3, 9, 30, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json; charset=utf-8"}
UNSURE = (
    "the request may or may not have been processed. "
    "Check this order's status before re-running."
)
RA01 = "Application Error - an unknown error has occurred on VeriTrans side"

# A key of 24 characters: a multiple of 3, so that its base64 is also the
# start of the Authorization header's base64 (key + ":").
CANARY = "Canary-Key-5e8b2d7a1c4f9"
assert len(CANARY) % 3 == 0


# -- judging answers directly --------------------------------------------------------


def judge(
    status: int,
    body: bytes | str | Mapping[str, Any],
    headers: Mapping[str, str] = JSON,
    *,
    operation: Operation = CAPTURE,
    scrub: Any = None,
) -> tuple[Verdict, dict[str, Any]]:
    """Judge one answer for order A-1, as the client does after reading it."""
    if isinstance(body, Mapping):
        content = json.dumps(body, ensure_ascii=False).encode()
    else:
        content = body.encode() if isinstance(body, str) else body
    return judge_answer(
        operation,
        status,
        CaseInsensitiveDict(headers),
        URL,
        Body(content),
        order_id="A-1",
        original_order_id=None,
        received_at=NOW,
        read_timeout=30.0,
        scrub=scrub or (lambda text: text),
    )


def before_gateway(code: str = "RA01", **fields: Any) -> dict[str, Any]:
    """A POP failure from before the gateway: no m_status, no gateway field."""
    return {
        "order_id": "A-1",
        "status": "failure",
        "result_code": code,
        "message": "error",
        **fields,
    }


SUCCESS = {
    "order_id": "A-1",
    "status": "success",
    "result_code": "R001",
    "message": "Payment Captured Successfully",
    "m_status": "success",
    "v_result_code": "A001000000000000",
    "merr_msg": "処理が成功しました。",
}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("code", ["RA01", "RD01", "RM01"])
def test_not_processed_code_under_a_5xx_is_unknown(status: int, code: str) -> None:
    """Break 1 (a 500 carrying RA01 was sent twice): any other 5xx is unknown.

    A 503 without Retry-After is "any other 5xx" too.
    """
    verdict, evidence = judge(status, before_gateway(code))

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.reason == "server_error"
    assert verdict.detail.startswith(
        f"HTTP {status} (a server error) although POP's answer says {code} ("
    )
    assert verdict.detail.endswith(f"); {UNSURE}")
    assert evidence["result_code"] == code


def test_pop_json_under_a_3xx_is_unknown() -> None:
    """Break 1: only a 2xx or 4xx answer is judged by its fields."""
    verdict, _ = judge(302, before_gateway())

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.detail == (
        f"HTTP 302 (not a status POP answers with) although POP's answer says "
        f"RA01 ({RA01}); {UNSURE}"
    )


@pytest.mark.parametrize("status", [200, 400, 422])
def test_not_processed_code_under_2xx_or_4xx_is_still_retried(status: int) -> None:
    """Break 1: RA01 without m_status in a 2xx or 4xx answer stays "not processed"."""
    verdict, _ = judge(status, before_gateway())

    assert verdict.kind is OutcomeKind.NOT_PROCESSED
    assert verdict.reason == "pop_error_before_gateway"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            SUCCESS,
            "status 'success', the success code R001, m_status 'success', "
            "the gateway's v_result_code, the gateway's merr_msg",
        ),
        (
            before_gateway("RM01", m_status="failure"),
            "m_status 'failure'",
        ),
        (
            before_gateway("RM01", v_result_code="AC38000000000000"),
            "the gateway's v_result_code",
        ),
        (before_gateway("RM01", merr_msg="金額超過"), "the gateway's merr_msg"),
        (
            before_gateway("R002"),
            "the success code R002",
        ),
        ({"status": "success"}, "status 'success'"),
    ],
    ids=[
        "success",
        "m_status",
        "v_result_code",
        "merr_msg",
        "other-success-code",
        "bare",
    ],
)
@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, {}),
        (429, {"Retry-After": "0"}),
        (503, {"Retry-After": "0"}),
        (401, {}),
        (403, {}),
    ],
    ids=["429", "429-retry-after", "503-retry-after", "401", "403"],
)
def test_status_saying_nothing_was_done_under_a_body_saying_handled_is_unknown(
    status: int, headers: dict[str, str], body: dict[str, Any], said: str
) -> None:
    """Break 2 (applied twice): the status and the body disagree, so a person checks."""
    verdict, _ = judge(status, body, {**JSON, **headers})

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.reason == "contradictory_answer"
    assert verdict.retry_after_s is None
    assert verdict.stops_batch is False
    assert verdict.detail == (
        f"POP's answer contradicts itself (HTTP {status} says nothing was "
        f"processed, but the body has {said}); {UNSURE}"
    )


@pytest.mark.parametrize("status", [404, 405])
def test_404_or_405_json_that_is_not_pop_but_says_success_is_unknown(
    status: int,
) -> None:
    """Break 2: a wrong-endpoint page is pending only when it claims nothing."""
    verdict, _ = judge(status, {"status": "success", "id": 7})

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.detail == (
        f"POP's answer contradicts itself (HTTP {status} says nothing was "
        f"processed, but the body has status 'success'); {UNSURE}"
    )


def test_a_repeated_status_key_saying_success_is_not_retried_under_429() -> None:
    """Breaks 2 and 5: every value of a repeated key counts against a retry."""
    body = (
        '{"order_id": "A-1", "status": "failure", "result_code": "RA01", '
        '"status": "success"}'
    )

    verdict, _ = judge(429, body)

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.reason == "contradictory_answer"


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (429, "<html>Too Many Requests</html>", {"Content-Type": "text/html"}),
        (429, "", {}),
        (429, json.dumps(before_gateway()), JSON),
        (503, "<html>busy</html>", {"Content-Type": "text/html"}),
        (503, "", {}),
        (503, json.dumps(before_gateway("RM01", m_status=None)), JSON),
    ],
    ids=["429-html", "429-empty", "429-ra01", "503-html", "503-empty", "503-rm01"],
)
def test_429_or_503_with_a_body_that_says_nothing_handled_is_still_retried(
    status: int, body: str, headers: dict[str, str]
) -> None:
    """Break 2: an HTML, empty or before-gateway body does not block the retry."""
    verdict, _ = judge(status, body, {**headers, "Retry-After": "3"})

    assert verdict.kind is OutcomeKind.NOT_PROCESSED
    assert verdict.retry_after_s == 3.0


@pytest.mark.parametrize("field", GATEWAY_FIELDS)
@pytest.mark.parametrize("code", ["RA01", "RD01", "RM01"])
def test_not_processed_code_with_a_gateway_field_is_unknown(
    code: str, field: str
) -> None:
    """Break 3 (received twice): a field only the gateway returns means it was reached."""
    verdict, _ = judge(200, before_gateway(code, **{field: "X"}))

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.reason == "contradictory_answer"
    assert verdict.detail == (
        f"POP's answer contradicts itself ({code} without m_status, but with the "
        f"gateway's {field}); {UNSURE}"
    )


@pytest.mark.parametrize(
    ("fields", "carries"),
    [
        ({"m_status": "failure"}, "m_status 'failure'"),
        ({"v_result_code": "AC45000000000000"}, "v_result_code"),
    ],
)
def test_rejected_key_with_a_sign_of_the_gateway_is_unknown(
    fields: dict[str, str], carries: str
) -> None:
    """Break 3: RC17 is not believed "not processed" when the gateway answered too."""
    verdict, _ = judge(200, before_gateway("RC17", **fields))

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.detail == (
        f"POP's answer contradicts itself (RC17, an error before the gateway, "
        f"with {carries}); {UNSURE}"
    )


def test_null_gateway_fields_do_not_count_as_reaching_the_gateway() -> None:
    """Break 3: a field sent as null carries nothing; RA01 stays "not processed"."""
    verdict, _ = judge(200, before_gateway(v_result_code=None, merr_msg=None))

    assert verdict.kind is OutcomeKind.NOT_PROCESSED


def test_key_spelled_with_json_escapes_is_masked_in_every_string() -> None:
    """Break 4: the key is masked after JSON decoding, in keys and nested values."""
    escaped = "\\u0043" + CANARY[1:]
    body = (
        '{"order_id": "A-1", "status": "failure", "result_code": "RM01", '
        '"m_status": "failure", "v_result_code": "AG48000000000000", '
        f'"merr_msg": "key {escaped} refused", "{escaped}": "x", '
        f'"echo": [["{escaped}"], {{"deep": "{escaped}"}}]}}'
    )

    verdict, evidence = judge(200, body, scrub=lambda t: t.replace(CANARY, "***"))

    assert verdict.detail == (
        "the payment gateway refused it: key *** refused (RM01, gateway code "
        "AG48000000000000)"
    )
    assert evidence["response"]["merr_msg"] == "key *** refused"
    assert evidence["response"]["***"] == "x"
    assert evidence["response"]["echo"] == [["***"], {"deep": "***"}]
    assert CANARY not in repr(evidence)


def test_key_spelled_by_an_escaping_charset_is_masked_in_the_body_text() -> None:
    """Break 4: a body decoded with its charset is scrubbed after decoding."""
    page = "<p>key \\u0043" + CANARY[1:] + "</p>"
    headers = {"Content-Type": "text/html; charset=unicode_escape"}

    verdict, evidence = judge(
        502, page, headers, scrub=lambda t: t.replace(CANARY, "***")
    )

    assert verdict.reason == "not_pop_json"
    assert evidence["body_text"] == "<p>key ***</p>"


@pytest.mark.parametrize("status", [200, 404, 429])
def test_json_with_a_key_given_twice_is_not_pop_json(status: int) -> None:
    """Break 5: a repeated key is never settled by "last wins"."""
    body = (
        '{"order_id": "A-1", "status": "failure", "result_code": "RM03", '
        '"message": "x", "status": "success"}'
    )

    verdict, evidence = judge(status, body)

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert "response" not in evidence
    assert evidence["body_text"] == body
    if status == 200:
        assert verdict.detail == (
            "HTTP 200 but the body is not POP JSON (application/json, the key "
            f"'status' appears twice); {UNSURE}"
        )


def test_json_with_a_key_given_twice_deep_inside_is_not_pop_json() -> None:
    """Break 5: a repeated key anywhere makes the whole answer ambiguous."""
    body = '{"status": "failure", "result_code": "RM03", "x": {"a": 1, "a": 2}}'

    verdict, _ = judge(200, body)

    assert verdict.reason == "not_pop_json"
    assert "the key 'a' appears twice" in verdict.detail


def test_json_nested_deeper_than_any_pop_answer_is_not_pop_json() -> None:
    """An answer nested 500 levels deep could not be stored: Review, text kept."""
    body = (
        '{"status": "failure", "result_code": "RM03", "x": '
        + "[" * 500
        + "]" * 500
        + "}"
    )

    verdict, evidence = judge(200, body)

    assert verdict.reason == "not_pop_json"
    assert "nested more than 16 levels deep" in verdict.detail
    assert evidence["body_text"] == body


def test_m_status_of_another_json_type_is_a_contradiction_not_a_crash() -> None:
    """An m_status that is a list or an object is no m_status the API text lists."""
    verdict, _ = judge(200, before_gateway("RM01", m_status=["failure"]))

    assert verdict.reason == "contradictory_answer"
    assert verdict.detail == (
        "POP's answer contradicts itself (m_status ['failure'] is not one the API "
        f"text lists); {UNSURE}"
    )


@pytest.mark.parametrize(
    "charset", ["idna", "undefined", "no-such-charset", "rot13", "punycode", "zlib"]
)
def test_charset_python_cannot_decode_with_falls_back_to_utf8(charset: str) -> None:
    """Break 6 (exit 70): evidence never crashes; the charset is named in a note."""
    page = "<p>エラー \x00</p>".encode()

    verdict, evidence = judge(
        502, page, {"Content-Type": f"text/html; charset={charset}"}
    )

    assert verdict.reason == "not_pop_json"
    assert verdict.detail == (
        f"HTTP 502, response is not POP JSON (text/html); {UNSURE}"
    )
    assert evidence["body_text"] == (
        "<p>エラー \x00</p>\n"
        f"[popbatch: the charset {charset!r} that Content-Type names could not "
        "be used; the body is shown as UTF-8]"
    )


def test_pop_json_is_judged_whatever_charset_its_content_type_names() -> None:
    """Break 6: classification reads JSON by its own rules, not by the charset."""
    verdict, _ = judge(200, SUCCESS, {"Content-Type": "application/json; charset=idna"})

    assert verdict.kind is OutcomeKind.SUCCEEDED


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"v_result_code": "AC38000000000000", "merr_msg": "金額超過"},
            "the payment gateway refused it: 金額超過 (RM01, gateway code "
            "AC38000000000000)",
        ),
        (
            {"v_result_code": "AC45000000000000"},
            "the payment gateway refused it (RM01, gateway code AC45000000000000)",
        ),
        ({}, "the payment gateway refused it (RM01)"),
    ],
)
def test_gateway_failure_is_worded_as_a_refusal_not_a_card_decline(
    fields: dict[str, str], detail: str
) -> None:
    """Break 8: AC38 or AC45 is no card decline; the reason code stays "declined"."""
    verdict, _ = judge(
        200, before_gateway("RM01", m_status="failure", **fields), operation=CANCEL
    )

    assert verdict.kind is OutcomeKind.FAILED
    assert verdict.reason == "declined"
    assert verdict.detail == detail


# -- whole batches against the sandbox -----------------------------------------------


def captured(sandbox: SandboxServer, *order_ids: str) -> list[str]:
    """Captured orders of 10,000 yen in the sandbox's ledger, to refund."""
    for order_id in order_ids:
        sandbox.add_order(order_id, 10_000, state="captured")
    return list(order_ids)


def reason_and_detail(ran: Run, group: str) -> dict[str, tuple[str, str]]:
    """order_id -> (reason, detail) for the rows of one group."""
    return {row["order_id"]: (row["reason"], row["detail"]) for row in ran.group(group)}


def refunds(popbatch: Popbatch, *order_ids: str) -> Path:
    """A refund file of 1,000 yen per order."""
    return popbatch.write_csv("refunds.csv", [(oid, 1000) for oid in order_ids])


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("status", "headers"),
    [(500, {}), (502, {}), (503, {})],
    ids=["500", "502", "503-without-retry-after"],
)
def test_refund_answered_ra01_under_a_5xx_is_review_and_sent_once(
    sandbox: SandboxServer, popbatch: Popbatch, status: int, headers: dict[str, str]
) -> None:
    """Break 1: a 5xx carrying RA01 was retried and the refund sent twice."""
    orders = captured(sandbox, "H5-1")
    answer = before_gateway("RA01", order_id="{order_id}")
    sandbox.script_order("H5-1", {"status": status, "headers": headers, "json": answer})

    ran = popbatch.run_batch("cancel", refunds(popbatch, *orders), retry=FAST_RETRY)

    assert ran.exit_code == 3
    assert ran.counts()["review"] == 1
    assert reason_and_detail(ran, "review") == {
        "H5-1": (
            "server_error",
            f"HTTP {status} (a server error) although POP's answer says RA01 "
            f"({RA01}); {UNSURE}",
        )
    }
    assert sandbox.received("H5-1") == 1


@pytest.mark.sandbox
@pytest.mark.parametrize(
    "answer",
    [
        {
            "status": "success",
            "result_code": "{success_code}",
            "message": "Payment Cancelled Successfully",
            "m_status": "success",
        },
        {
            "status": "failure",
            "result_code": "RM01",
            "message": "Gateway error",
            "v_result_code": "AC38000000000000",
            "merr_msg": "パラメータで指定した金額は超過しています。",
        },
    ],
    ids=["success", "gateway-fields"],
)
@pytest.mark.parametrize("status", [429, 503])
def test_429_or_503_whose_body_says_handled_is_review_and_never_resent(
    sandbox: SandboxServer, popbatch: Popbatch, status: int, answer: dict[str, str]
) -> None:
    """Break 2: a retry status over a "handled" body was retried: applied twice."""
    orders = captured(sandbox, "RS-1")
    sandbox.script_order(
        "RS-1",
        {
            "status": status,
            "headers": {"Retry-After": "0"},
            "json": {"order_id": "{order_id}", **answer},
        },
    )
    file = refunds(popbatch, *orders)

    ran = popbatch.run("cancel", file)
    again = popbatch.run("cancel", file)

    assert ran.exit_code == 3
    assert ran.said == expected_summary(
        1,
        ran.folder,
        EXIT_REVIEW,
        operation="cancel",
        review=(1, 1000),
        review_orders=["RS-1"],
        journal=popbatch.journal,
    )
    ((reason, detail),) = reason_and_detail(ran, "review").values()
    assert reason == "contradictory_answer"
    assert detail.startswith(
        f"POP's answer contradicts itself (HTTP {status} says nothing was "
        "processed, but the body has "
    )
    assert again.said[0] == popbatch.finished_text(1)
    assert sandbox.received("RS-1") == 1
    assert sandbox.applied("RS-1") <= 1


@pytest.mark.sandbox
def test_rm01_with_gateway_fields_but_no_m_status_is_review_and_sent_once(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Break 3: RM01 with v_result_code and merr_msg, no m_status, was received twice."""
    orders = captured(sandbox, "GW-1")
    sandbox.script_order(
        "GW-1",
        {
            "json": {
                "order_id": "{order_id}",
                "status": "failure",
                "result_code": "RM01",
                "message": "Gateway error",
                "v_result_code": "AC38000000000000",
                "merr_msg": "パラメータで指定した金額は超過しています。",
            }
        },
    )

    ran = popbatch.run_batch("cancel", refunds(popbatch, *orders))

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "review") == {
        "GW-1": (
            "contradictory_answer",
            "POP's answer contradicts itself (RM01 without m_status, but with the "
            f"gateway's v_result_code, merr_msg); {UNSURE}",
        )
    }
    assert sandbox.received("GW-1") == 1


def leaked_forms(key: str) -> dict[str, bytes]:
    """The forms a key could leak in, as bytes to search for."""
    return {
        "plain": key.encode(),
        "base64": base64.b64encode(key.encode()).rstrip(b"="),
        "authorization": base64.b64encode(f"{key}:".encode()),
        "url-encoded": quote(key, safe="").encode(),
    }


def left_behind(folder: Path) -> list[tuple[str, bytes]]:
    """Every file under ``folder`` as bytes, each member of a workbook too."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        found.append((str(path), path.read_bytes()))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                found += [(f"{path}!{n}", archive.read(n)) for n in archive.namelist()]
    return found


def escaped(text: str) -> str:
    """``text`` with its first character as a JSON \\u escape."""
    return f"\\u{ord(text[0]):04x}{text[1:]}"


@pytest.mark.sandbox
def test_key_escaped_in_an_answer_reaches_no_journal_result_or_output(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """Break 4: ``\\u0054est-POP-Server-Key`` in an answer decoded to the key and was stored."""
    server: SandboxServer = make_sandbox(test_keys=(CANARY,))
    server.add_order("KE-1", 1000)
    server.add_order("KE-2", 1000)
    token = base64.b64encode(f"{CANARY}:".encode()).decode()
    body = (
        '{"order_id": "KE-1", "status": "failure", "result_code": "RM01", '
        '"m_status": "failure", "v_result_code": "AG48000000000000", '
        f'"message": "merchant {escaped(CANARY)} refused", '
        f'"merr_msg": "Basic {escaped(token)}", "{escaped(CANARY)}": [1]}}'
    )
    server.script_order(
        "KE-1",
        {"status": 200, "headers": {"Content-Type": "application/json"}, "body": body},
    )
    server.script_order(
        "KE-2",
        {
            "status": 502,
            "headers": {"Content-Type": "text/plain; charset=unicode_escape"},
            "body": f"upstream said {escaped(CANARY)}",
        },
    )
    popbatch = Popbatch(tmp_path, server)
    file = popbatch.captures("capture.csv", ["KE-1", "KE-2"])
    log = tmp_path / "debug.log"

    ran = popbatch.run("capture", file, "-vv", "--log-file", str(log), key=CANARY)

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "failed") == {
        "KE-1": (
            "refused by the payment gateway",
            "the payment gateway refused it: Basic ******** (RM01, gateway code "
            "AG48000000000000)",
        )
    }
    (review,) = ran.group("review")
    assert review["response received"] == "upstream said ********"
    texts = [
        *left_behind(tmp_path),
        ("stdout", ran.stdout.encode()),
        ("stderr", ran.stderr.encode()),
    ]
    assert {Path(place.split("!")[0]).name for place, _ in texts} >= {
        "journal.sqlite3",
        "debug.log",
        "results.xlsx",
        "failed.csv",
        "review.csv",
    }
    forms = leaked_forms(CANARY)
    leaks = [
        f"{place}: {name}"
        for place, data in texts
        for name, form in forms.items()
        if form in data
    ]
    assert leaks == []


@pytest.mark.sandbox
def test_answer_with_a_key_given_twice_is_review_and_sent_once(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Break 5: repeated keys were read as "last wins", here a refund then RA01.

    Read that way, the body below is RA01 without m_status, and the refund
    it first reports would be sent again.
    """
    orders = captured(sandbox, "DK-1")
    body = (
        '{"order_id": "DK-1", "status": "success", "result_code": "R002", '
        '"m_status": "success", "message": "Payment Cancelled Successfully", '
        '"status": "failure", "result_code": "RA01", "m_status": null}'
    )
    sandbox.script_order(
        "DK-1", {"headers": {"Content-Type": "application/json"}, "body": body}
    )

    ran = popbatch.run_batch("cancel", refunds(popbatch, *orders))

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "review") == {
        "DK-1": (
            "not_pop_json",
            "HTTP 200 but the body is not POP JSON (application/json, the key "
            f"'status' appears twice); {UNSURE}",
        )
    }
    (row,) = ran.group("review")
    assert row["response received"] == body
    assert sandbox.received("DK-1") == 1


@pytest.mark.sandbox
def test_unusable_charset_is_review_with_a_note_not_a_crash(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Break 6: ``charset=idna`` crashed the worker (exit 70); now Review, exit 3."""
    orders = captured(sandbox, "CS-1", "CS-2", "CS-3")
    sandbox.script_order(
        "CS-1",
        {
            "status": 502,
            "headers": {"Content-Type": "text/html; charset=idna"},
            "body": "<h1>Bad Gateway</h1>",
        },
    )
    sandbox.script_order(
        "CS-2",
        {
            "status": 200,
            "headers": {"Content-Type": "text/html; charset=x-no-such-charset"},
            "body": "<p>メンテナンス中</p>",
        },
    )
    sandbox.script_order(
        "CS-3",
        {
            "headers": {"Content-Type": "application/json; charset=idna"},
            "json": {
                "order_id": "{order_id}",
                "status": "success",
                "result_code": "{success_code}",
                "message": "Payment Cancelled Successfully",
                "m_status": "success",
            },
        },
    )

    ran = popbatch.run("cancel", refunds(popbatch, *orders))

    assert ran.exit_code == 3
    assert ran.said == expected_summary(
        1,
        ran.folder,
        EXIT_REVIEW,
        operation="cancel",
        succeeded=(1, 1000),
        review=(2, 2000),
        review_orders=["CS-1", "CS-2"],
        journal=popbatch.journal,
    )
    review = {row["order_id"]: row for row in ran.group("review")}
    assert review["CS-1"]["detail"] == (
        f"HTTP 502, response is not POP JSON (text/html); {UNSURE}"
    )
    assert review["CS-1"]["response received"] == (
        "<h1>Bad Gateway</h1>\n[popbatch: the charset 'idna' that Content-Type "
        "names could not be used; the body is shown as UTF-8]"
    )
    assert review["CS-2"]["response received"] == (
        "<p>メンテナンス中</p>\n[popbatch: the charset 'x-no-such-charset' that "
        "Content-Type names could not be used; the body is shown as UTF-8]"
    )
    assert ran.order_ids("succeeded") == ["CS-3"]
    assert popbatch.received(orders) == dict.fromkeys(orders, 1)


@pytest.mark.sandbox
def test_capture_above_the_authorisation_is_worded_as_a_refusal(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Break 8: AC38 (amount above the authorisation) is no card decline."""
    sandbox.add_order("AM-1", 900)
    file = popbatch.captures("capture.csv", ["AM-1"], amount=1000)

    ran = popbatch.run("capture", file)

    assert ran.exit_code == 1
    assert ran.said == expected_summary(1, ran.folder, EXIT_FAILED, failed=(1, 1000))
    assert reason_and_detail(ran, "failed") == {
        "AM-1": (
            "refused by the payment gateway",
            "the payment gateway refused it: パラメータで指定した金額は超過しています。 "
            "(RM01, gateway code AC38000000000000)",
        )
    }
    assert sandbox.received("AM-1") == 1


# -- second review: numbers JSON cannot hold, fields of a card used --------------------


@pytest.mark.parametrize(
    ("number", "flaw"),
    [
        ("1e999", "the number 1e999 is out of range"),
        ("-1E400", "the number -1E400 is out of range"),
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
    ],
)
def test_json_with_a_number_json_does_not_allow_is_not_pop_json(
    number: str, flaw: str
) -> None:
    """Break 9 (the journal could not be written): NaN and 1e999 make no POP JSON."""
    body = json.dumps(SUCCESS)[:-1] + f', "fee": {number}}}'

    verdict, evidence = judge(200, body)

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.reason == "not_pop_json"
    assert verdict.detail == (
        f"HTTP 200 but the body is not POP JSON (application/json, {flaw}); {UNSURE}"
    )
    assert evidence["body_text"] == body
    assert "response" not in evidence


def test_json_string_with_a_lone_surrogate_is_not_pop_json() -> None:
    """Break 9: half a surrogate pair is no text SQLite or a workbook can store."""
    body = json.dumps(SUCCESS)[:-1] + ', "note": ["ok \\ud800"]}'

    verdict, evidence = judge(200, body)

    assert verdict.reason == "not_pop_json"
    assert verdict.detail == (
        "HTTP 200 but the body is not POP JSON (application/json, a string holds "
        f"a lone surrogate \\ud800); {UNSURE}"
    )
    assert evidence["body_text"] == body


def test_body_text_decoded_to_a_lone_surrogate_keeps_it_as_an_escape() -> None:
    """Break 9: a charset that decodes to half a surrogate pair is shown escaped."""
    headers = {"Content-Type": "text/plain; charset=unicode_escape"}

    _, evidence = judge(502, "bad \\ud800 gateway", headers)

    assert evidence["body_text"] == "bad \\ud800 gateway"
    evidence["body_text"].encode("utf-8")


def test_number_json_does_not_allow_under_429_is_still_retried() -> None:
    """Break 9: such a body that says nothing was handled does not block a retry."""
    body = '{"status": "failure", "result_code": "RA01", "fee": NaN}'

    verdict, _ = judge(429, body, {**JSON, "Retry-After": "2"})

    assert verdict.kind is OutcomeKind.NOT_PROCESSED
    assert verdict.retry_after_s == 2.0


@pytest.mark.parametrize("field", USED_CARD_FIELDS)
@pytest.mark.parametrize("code", ["RA01", "RD01", "RM01"])
def test_not_processed_code_with_a_field_of_a_card_used_is_unknown(
    code: str, field: str
) -> None:
    """Break 10 (authorize sent twice): card_expire or paynow_* says a card was used."""
    verdict, _ = judge(200, before_gateway(code, **{field: "X"}), operation=AUTHORIZE)

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.reason == "contradictory_answer"
    assert verdict.detail == (
        f"POP's answer contradicts itself ({code} without m_status, but with "
        f"{field}); {UNSURE}"
    )


def test_fields_of_the_gateway_and_of_a_card_used_are_both_named() -> None:
    """Break 10: the detail names every field that says the request was processed."""
    answer = before_gateway(
        "RM01", card_expire="12/34", paynow_status="success", v_result_code="X"
    )

    verdict, _ = judge(200, answer, operation=AUTHORIZE)

    assert verdict.detail == (
        "POP's answer contradicts itself (RM01 without m_status, but with the "
        f"gateway's v_result_code and card_expire, paynow_status); {UNSURE}"
    )


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        *(
            (status, before_gateway("RM01", paynow_status="success", card_expire="1"))
            for status in (429, 503, 401, 403)
        ),
        # Under 404 and 405 POP JSON is judged by its fields; JSON that is not
        # POP's says that the URL is wrong, unless it says the request was handled.
        (404, {"error": "not found", "paynow_status": "success", "card_expire": "1"}),
        (405, {"error": "not allowed", "paynow_status": "success", "card_expire": "1"}),
    ],
)
def test_status_saying_nothing_was_done_over_paynow_fields_is_unknown(
    status: int, answer: dict[str, str]
) -> None:
    """Break 10: paynow_status and card_expire count as "handled" under 429 and co."""
    verdict, _ = judge(
        status, answer, {**JSON, "Retry-After": "0"}, operation=AUTHORIZE
    )

    assert verdict.kind is OutcomeKind.UNKNOWN
    assert verdict.detail == (
        f"POP's answer contradicts itself (HTTP {status} says nothing was "
        f"processed, but the body has paynow_status, card_expire); {UNSURE}"
    )


def test_rejected_key_with_a_paynow_field_is_unknown() -> None:
    """Break 10: RC17 with paynow_card_id is not believed "not processed"."""
    verdict, _ = judge(200, before_gateway("RC17", paynow_card_id="C1"))

    assert verdict.detail == (
        "POP's answer contradicts itself (RC17, an error before the gateway, "
        f"with paynow_card_id); {UNSURE}"
    )


@pytest.mark.sandbox
@pytest.mark.parametrize(
    "odd",
    ['"fee": 1e999', '"fee": NaN', '"fee": -Infinity', '"note": "\\udc00"'],
    ids=["1e999", "NaN", "-Infinity", "lone-surrogate"],
)
def test_success_with_a_number_json_cannot_hold_is_review_and_the_batch_goes_on(
    sandbox: SandboxServer, tmp_path: Path, odd: str
) -> None:
    """Break 9: exit 73, no results and the run left open; now Review and exit 3."""
    for order_id in ("NB-1", "NB-2", "NB-3"):
        sandbox.add_order(order_id, 1000)
    body = (
        '{"order_id": "NB-2", "status": "success", "result_code": "R001", '
        '"message": "ok", "m_status": "success", "v_result_code": '
        f'"A001000000000000", "merr_msg": "ok", {odd}}}'
    )
    sandbox.script_order("NB-2", {"headers": JSON, "body": body})
    popbatch = Popbatch(tmp_path, sandbox, concurrency=1)
    file = popbatch.captures("capture.csv", ["NB-1", "NB-2", "NB-3"], amount=100)

    ran = popbatch.run("capture", file)
    again = popbatch.run("capture", file)

    assert ran.exit_code == 3
    assert ran.said == expected_summary(
        1,
        ran.folder,
        EXIT_REVIEW,
        succeeded=(2, 200),
        review=(1, 100),
        review_orders=["NB-2"],
        journal=popbatch.journal,
    )
    ((reason, detail),) = reason_and_detail(ran, "review").values()
    assert reason == "not_pop_json"
    assert detail.startswith(
        "HTTP 200 but the body is not POP JSON (application/json, "
    )
    (row,) = ran.group("review")
    assert row["response received"] == body
    assert ran.order_ids("succeeded") == ["NB-1", "NB-3"]
    assert popbatch.states(1) == {
        "NB-1": "succeeded",
        "NB-2": "unknown",
        "NB-3": "succeeded",
    }
    assert again.said[0] == popbatch.finished_text(1)
    assert popbatch.received(["NB-1", "NB-2", "NB-3"]) == {
        "NB-1": 1,
        "NB-2": 1,
        "NB-3": 1,
    }


@pytest.mark.sandbox
@pytest.mark.parametrize(
    "fields",
    [
        {"paynow_status": "success"},
        {"card_expire": "12/34"},
        {"paynow_message": "処理が成功しました。", "paynow_default_card": True},
        {
            "card_expire": "12/34",
            "paynow_status": "success",
            "paynow_account_id": "TEST-ACCOUNT-101",
            "paynow_card_id": "232QDFCPFBR93UBEAITN7EQHL",
            "paynow_message": "処理が成功しました。",
            "paynow_default_card": True,
        },
    ],
    ids=["paynow_status", "card_expire", "paynow_message", "all"],
)
@pytest.mark.parametrize("code", ["RM01", "RA01"])
def test_authorize_answered_before_gateway_with_paynow_fields_is_sent_once(
    sandbox: SandboxServer, popbatch: Popbatch, code: str, fields: dict[str, Any]
) -> None:
    """Break 10: RM01 with paynow_status: success was re-sent as "not processed"."""
    sandbox.script_order(
        "AZ-2",
        {"json": {**before_gateway(code, order_id="{order_id}"), **fields}},
    )
    file = popbatch.write_csv(
        "auth.csv",
        [("AZ-1", 100, "TEST-ACCOUNT-101"), ("AZ-2", 100, "TEST-ACCOUNT-101")],
        header="order_id,amount,paynow_account_id",
    )

    ran = popbatch.run_batch("authorize", file)

    assert ran.exit_code == 3
    ((reason, detail),) = reason_and_detail(ran, "review").values()
    assert reason == "contradictory_answer"
    assert detail == (
        f"POP's answer contradicts itself ({code} without m_status, but with "
        f"{', '.join(name for name in USED_CARD_FIELDS if name in fields)}); "
        f"{UNSURE}"
    )
    assert ran.order_ids("succeeded") == ["AZ-1"]
    assert sandbox.received("AZ-2") == 1


@pytest.mark.sandbox
def test_authorize_429_over_a_paynow_answer_is_review_and_never_resent(
    sandbox: SandboxServer, popbatch: Popbatch
) -> None:
    """Break 10: a 429 whose body carries paynow_status was retried."""
    answer = before_gateway("RM01", order_id="{order_id}", paynow_status="success")
    sandbox.script_order(
        "AZ-3", {"status": 429, "headers": {"Retry-After": "0"}, "json": answer}
    )
    file = popbatch.write_csv(
        "auth.csv",
        [("AZ-3", 100, "TEST-ACCOUNT-101")],
        header="order_id,amount,paynow_account_id",
    )

    ran = popbatch.run_batch("authorize", file)

    assert ran.exit_code == 3
    assert reason_and_detail(ran, "review") == {
        "AZ-3": (
            "contradictory_answer",
            "POP's answer contradicts itself (HTTP 429 says nothing was processed, "
            f"but the body has paynow_status); {UNSURE}",
        )
    }
    assert sandbox.received("AZ-3") == 1
