"""Scripted answers per order id, in the field cases' stub.json format."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from popbatch.sandbox import SandboxError, Script, load_script_file

pytestmark = pytest.mark.sandbox

STUBS = Path(__file__).parent.parent / "data" / "stubs"
HTML_ERROR_PAGE = STUBS / "18-html-error-page.json"
CONNECTION_DROP = STUBS / "19-connection-drop-no-blind-retry.json"


def capture(order_id: str) -> dict[str, object]:
    """A capture body for ``order_id``."""
    return {"order_id": order_id, "amount": 1000, "dummy": True}


def cancel(order_id: str) -> dict[str, object]:
    """A partial refund body for ``order_id``."""
    return {"order_id": order_id, "amount": 500, "dummy": True}


def test_case_18_serves_a_502_page_a_200_maintenance_page_and_defaults(pop, sandbox):
    """HE-002 gets the gateway page, HE-004 the maintenance page, others success."""
    sandbox.set_script(HTML_ERROR_PAGE)

    answers = {
        order: pop.post("card-capture", capture(order))
        for order in ["HE-001", "HE-002", "HE-003", "HE-004"]
    }

    assert answers["HE-001"].json() == {
        "order_id": "HE-001",
        "status": "success",
        "result_code": "R001",
        "message": "stub: processed",
        "m_status": "success",
        "v_result_code": "A001000000000000",
        "merr_msg": "stub: ok",
    }
    assert (
        answers["HE-002"].status_code,
        answers["HE-002"].headers["Content-Type"],
    ) == (502, "text/html; charset=utf-8")
    assert "<h1>Bad Gateway</h1>" in answers["HE-002"].text
    assert answers["HE-004"].status_code == 200
    assert "ただいまメンテナンス中です。" in answers["HE-004"].text
    assert answers["HE-003"].json()["result_code"] == "R001"
    assert {order: sandbox.received(order) for order in answers} == dict.fromkeys(
        answers, 1
    )


def test_case_18_counts_only_json_successes_as_applied(pop, sandbox):
    """A scripted HTML page is not applied; a scripted success is."""
    sandbox.set_script(HTML_ERROR_PAGE)

    for order in ["HE-001", "HE-002", "HE-004"]:
        pop.post("card-capture", capture(order))

    assert [sandbox.applied(order) for order in ["HE-001", "HE-002", "HE-004"]] == [
        1,
        0,
        0,
    ]


def test_case_19_closes_after_reading_then_answers_a_second_refund(pop, sandbox):
    """CR-002: the first request gets no answer, a retry would get a success."""
    sandbox.set_script(CONNECTION_DROP)

    with pytest.raises(requests.ConnectionError):
        pop.post("card-cancel", cancel("CR-002"))
    (received_once, applied_once) = (
        sandbox.received("CR-002"),
        sandbox.applied("CR-002"),
    )
    second = pop.post("card-cancel", cancel("CR-002"))

    assert (received_once, applied_once) == (1, 0)
    assert second.json()["message"] == "stub: SECOND refund of this order"
    assert second.json()["result_code"] == "R002"


def test_case_19_answers_late_so_that_a_short_read_timeout_fires(pop, sandbox):
    """CR-004 answers after 20 s: a 0.3 s read timeout fires first."""
    sandbox.set_script(CONNECTION_DROP)

    with pytest.raises(requests.ReadTimeout):
        pop.post("card-cancel", cancel("CR-004"), timeout=0.3)

    assert sandbox.received("CR-004") == 1


def test_case_19_default_answers_with_the_endpoints_success_code(pop, sandbox):
    """{success_code} becomes R002 on card-cancel."""
    sandbox.set_script(CONNECTION_DROP)

    answer = pop.result("card-cancel", cancel("CR-001"))

    assert (answer["order_id"], answer["result_code"]) == ("CR-001", "R002")


def test_after_its_list_an_order_falls_back_to_the_default(pop, sandbox):
    """Answers are used once each, in order; then the default answers."""
    sandbox.set_script(
        {
            "default": {
                "json": {
                    "order_id": "{order_id}",
                    "status": "failure",
                    "result_code": "RA01",
                    "message": "default",
                }
            },
            "orders": {
                "S-1": [
                    {"status": 503, "body": "first"},
                    {"status": 502, "body": "second"},
                ]
            },
        }
    )

    statuses = [pop.post("card-capture", capture("S-1")).status_code for _ in range(4)]

    assert statuses == [503, 502, 200, 200]


def test_without_a_default_a_used_up_order_gets_the_real_sandbox(pop, sandbox):
    """No default: once scripted answers are used up, the ledger answers."""
    sandbox.script_order("ORDER-0001", {"status": 502, "body": "<html>down</html>"})

    first = pop.post("card-capture", capture("ORDER-0001") | {"amount": 10000})
    second = pop.post("card-capture", capture("ORDER-0001") | {"amount": 10000})

    assert first.status_code == 502
    assert second.json()["result_code"] == "R001"
    assert sandbox.order("ORDER-0001").state == "captured"


def test_pass_lets_the_sandbox_answer_and_hang_never_answers(pop, sandbox):
    """The pass and hang actions are scripted like the others."""
    sandbox.script_order("ORDER-0001", {"action": "hang"}, {"action": "pass"})

    with pytest.raises(requests.ReadTimeout):
        pop.post("card-capture", capture("ORDER-0001") | {"amount": 10000}, timeout=0.3)
    passed = pop.result("card-capture", capture("ORDER-0001") | {"amount": 10000})

    assert passed["result_code"] == "R001"
    assert sandbox.applied("ORDER-0001") == 1


def test_placeholders_are_filled_in_json_body_and_headers(pop, sandbox):
    """{order_id}, {original_order_id} and {success_code} are replaced everywhere."""
    sandbox.script_order(
        "NEW-1",
        {
            "headers": {"X-Order": "{order_id}"},
            "json": {
                "order_id": "{original_order_id}",
                "status": "success",
                "result_code": "{success_code}",
                "list": ["{order_id}"],
            },
        },
    )
    body = {
        "order_id": "NEW-1",
        "original_order_id": "ORDER-0001",
        "amount": 100,
        "dummy": True,
    }

    answer = pop.post("card-reauthorize", body)

    assert answer.headers["X-Order"] == "NEW-1"
    assert answer.json() == {
        "order_id": "ORDER-0001",
        "status": "success",
        "result_code": "R003",
        "list": ["NEW-1"],
    }


def test_a_scripted_answer_still_needs_a_valid_request(pop, sandbox):
    """Scripts replace the gateway step only: validation comes first."""
    sandbox.set_script(HTML_ERROR_PAGE)

    answer = pop.post("card-capture", capture("HE-002") | {"dummy": False})

    assert answer.json()["result_code"] == "RC44"
    assert sandbox.received("HE-002") == 1


def test_a_scripted_success_does_not_change_the_ledger(pop, sandbox):
    """The ledger only moves on real processing."""
    sandbox.script_order(
        "ORDER-0001", {"json": {"status": "success", "result_code": "R001"}}
    )

    pop.post("card-capture", capture("ORDER-0001"))

    assert sandbox.order("ORDER-0001").state == "authorised"
    assert sandbox.applied("ORDER-0001") == 1


def test_reset_restarts_the_configured_script_from_its_first_answer(make_sandbox):
    """A script given at start is replayed from its first answer after reset."""
    server = make_sandbox(script=load_script_file(CONNECTION_DROP))
    headers = {
        "Authorization": server.authorization(),
        "Content-Type": "application/json",
    }

    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.post(
                server.url("card-cancel"), json=cancel("CR-002"), headers=headers
            )
        server.reset()
        with pytest.raises(requests.ConnectionError):
            session.post(
                server.url("card-cancel"), json=cancel("CR-002"), headers=headers
            )

    assert server.received("CR-002") == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"orders": {"A": [{"status": 99}]}},
            "script: orders['A'][0]: status must be an HTTP status from 200 to 599 (not 204 or 304)",
        ),
        (
            {"orders": {"A": [{"action": "explode"}]}},
            "script: orders['A'][0]: action must be one of close_after_read, hang, pass",
        ),
        (
            {"orders": {"A": [{"json": {}, "body": ""}]}},
            "script: orders['A'][0]: give json or body, not both",
        ),
        (
            {"default": {"headers": {"Content-Length": "5"}}},
            "script: default: header 'Content-Length' is set by the sandbox itself",
        ),
        (
            {"default": {"headers": {"X-A": "line\r\nInjected: yes"}}},
            "script: default: header 'X-A' must be Latin-1 text on one line",
        ),
        (
            {"default": {"delay": 1}},
            "script: default: unknown key 'delay' (allowed: action, body, delay_s, headers, json, status)",
        ),
        ({"orders": []}, "script: orders must be an object of order id to answers"),
    ],
    ids=[
        "status",
        "action",
        "json-and-body",
        "framing-header",
        "header-injection",
        "typo",
        "orders-list",
    ],
)
def test_a_script_that_breaks_the_format_is_refused(data, message):
    """Script mistakes are found when the script is loaded, not mid-run."""
    with pytest.raises(SandboxError) as caught:
        Script.from_mapping(data)

    assert str(caught.value) == message
