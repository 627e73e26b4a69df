"""What the sandbox received and applied, in Python and over its admin endpoints."""

from __future__ import annotations

import json

import pytest
import requests

pytestmark = pytest.mark.sandbox

CAPTURE = {"order_id": "ORDER-0001", "amount": 10000, "dummy": True}


def test_counters_tell_received_from_applied_per_order_and_endpoint(pop, sandbox):
    """Two captures and a refund of one order: three received, two applied."""
    pop.post("card-capture", CAPTURE)
    pop.post("card-capture", CAPTURE)
    pop.post("card-cancel", {"order_id": "ORDER-0001", "amount": 10, "dummy": True})

    assert (sandbox.received("ORDER-0001"), sandbox.applied("ORDER-0001")) == (3, 2)
    assert (
        sandbox.received("ORDER-0001", "card-capture"),
        sandbox.applied("ORDER-0001", "card-capture"),
    ) == (2, 1)
    assert (
        sandbox.received(endpoint="card-cancel"),
        sandbox.applied(endpoint="card-cancel"),
    ) == (1, 1)
    assert (sandbox.received(), sandbox.applied()) == (3, 2)
    assert sandbox.received("NEVER") == 0


def test_the_counters_endpoint_returns_the_same_figures_as_json(pop, sandbox):
    """GET /_sandbox/counters is outside the POP path and needs no key."""
    pop.post("card-capture", CAPTURE)
    pop.post("card-capture", {"amount": 1})

    counters = pop.session.get(f"{sandbox.admin_url}/counters").json()

    assert counters == {
        "received": 2,
        "applied": 1,
        "endpoints": {"card-capture": {"received": 2, "applied": 1}},
        "orders": {
            "ORDER-0001": {
                "received": 1,
                "applied": 1,
                "endpoints": {"card-capture": {"received": 1, "applied": 1}},
            }
        },
        "without_order_id": {"received": 1},
        "requests_kept": 2,
    }
    assert counters == sandbox.counters()


def test_the_exact_body_and_headers_are_kept_without_the_key(pop, sandbox):
    """Tests can compare bytes, JSON types and headers; Authorization is never kept."""
    raw = b'{"order_id":"ORDER-0001","amount":10000,"dummy":true}'

    pop.post("card-capture", raw=raw, headers={"X-Run": "batch-7"})

    [kept] = sandbox.requests("ORDER-0001")
    assert kept.body == raw
    assert kept.json == {"order_id": "ORDER-0001", "amount": 10000, "dummy": True}
    assert (kept.endpoint, kept.method, kept.header("x-run")) == (
        "card-capture",
        "POST",
        "batch-7",
    )
    assert kept.header("Authorization") is None
    assert all(name.lower() != "authorization" for name, _ in kept.headers)


def test_a_kept_body_that_is_not_json_has_no_json(pop, sandbox):
    """Bodies are kept as bytes whatever they are."""
    pop.post("card-capture", raw=b"\xff not json")

    [kept] = sandbox.requests()

    assert (kept.body, kept.json, kept.order_id) == (b"\xff not json", None, None)


def test_the_requests_endpoint_lists_kept_requests_for_one_order(pop, sandbox):
    """GET /_sandbox/requests?order_id=... shows bodies as text, without the key."""
    pop.post("card-capture", CAPTURE)
    pop.post("card-cancel", {"order_id": "SANDBOX-AUTH-0001", "dummy": True})

    listed = pop.session.get(
        f"{sandbox.admin_url}/requests", params={"order_id": "ORDER-0001"}
    ).json()

    [entry] = listed["requests"]
    assert json.loads(entry["body"]) == CAPTURE
    assert entry["endpoint"] == "card-capture"
    assert sandbox.test_key not in json.dumps(listed)
    assert "authorization" not in {name.lower() for name, _ in entry["headers"]}


def test_requests_past_the_keep_limit_are_counted_but_not_kept(make_sandbox):
    """A long benchmark cannot fill memory; the counts stay exact."""
    server = make_sandbox(keep_requests=2)
    headers = {
        "Authorization": server.authorization(),
        "Content-Type": "application/json",
    }

    with requests.Session() as session:
        for _ in range(3):
            session.post(server.url("card-capture"), json=CAPTURE, headers=headers)

    assert server.received("ORDER-0001") == 3
    assert len(server.requests()) == 2
    assert server.counters()["requests_kept"] == 2


def test_the_admin_endpoints_set_faults_script_and_seed(pop, sandbox):
    """Another process can drive the sandbox over HTTP."""
    admin = sandbox.admin_url

    seeded = pop.session.post(
        f"{admin}/seed", json={"orders": [{"order_id": "ADM-1", "amount": 700}]}
    )
    scripted = pop.session.post(
        f"{admin}/script", json={"orders": {"ADM-2": [{"status": 502, "body": "x"}]}}
    )
    faulted = pop.session.post(
        f"{admin}/faults", json={"too_many_requests": 1.0, "retry_after_s": 3}
    )
    overloaded = pop.post(
        "card-capture", {"order_id": "ADM-1", "amount": 700, "dummy": True}
    )
    pop.session.post(f"{admin}/faults", json={})
    captured = pop.result(
        "card-capture", {"order_id": "ADM-1", "amount": 700, "dummy": True}
    )
    gateway = pop.post(
        "card-capture", {"order_id": "ADM-2", "amount": 700, "dummy": True}
    )

    assert [seeded.json(), scripted.json(), faulted.json()] == [{"ok": True}] * 3
    assert (overloaded.status_code, overloaded.headers["Retry-After"]) == (429, "3")
    assert captured["result_code"] == "R001"
    assert gateway.status_code == 502


def test_the_orders_endpoint_shows_one_orders_state_and_history(pop, sandbox):
    """GET /_sandbox/orders/ID is the ledger's view, 404 for an unknown id."""
    pop.post("card-capture", CAPTURE)

    known = pop.session.get(f"{sandbox.admin_url}/orders/ORDER-0001")
    unknown = pop.session.get(f"{sandbox.admin_url}/orders/NOPE")

    assert known.json()["state"] == "captured"
    assert known.json()["history"][0]["operation"] == "capture"
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "no order 'NOPE' in the ledger"},
    )


def test_the_reset_endpoint_forgets_counts_and_restores_the_seed(pop, sandbox):
    """POST /_sandbox/reset is reset() over HTTP."""
    pop.post("card-capture", CAPTURE)

    pop.session.post(f"{sandbox.admin_url}/reset")

    assert sandbox.received() == 0
    assert sandbox.order("ORDER-0001").state == "authorised"


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("faults", b'{"hang": 2}', 400, "hang must be a rate from 0 to 1, got 2"),
        (
            "seed",
            b"{not json",
            400,
            "the body is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        ("nothing", b"{}", 404, "no admin endpoint 'nothing'"),
    ],
    ids=["bad-fault", "bad-json", "unknown"],
)
def test_bad_admin_requests_get_an_error_line(pop, sandbox, path, body, status, error):
    """Admin mistakes are answered with a status and one line, never a crash."""
    answer = pop.session.post(f"{sandbox.admin_url}/{path}", data=body)

    assert (answer.status_code, answer.json()) == (status, {"error": error})
