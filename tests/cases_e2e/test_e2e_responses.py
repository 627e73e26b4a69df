"""Cases 18 and 19 end to end: unclear answers go to Review, once, and are never replayed.

An HTML page (on a 502 or a 200), a connection closed after the request,
and a read timeout each leave the row in Review with what was sent and
what came back; exactly one request per order reaches the sandbox, also
on a later run of the same command. Nothing listening is different:
nothing was sent, so the rows stay pending (exit 75) and a later run sends
them once. Variants: other answers that are not POP JSON, an answer for
another order, a huge error page, and a 429 that is safely retried.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import CASES, Popbatch, free_port

from popbatch.sandbox import SandboxServer

CASE_18 = CASES / "18-html-error-page"
CASE_19 = CASES / "19-connection-drop-no-blind-retry"
UNSURE = "the request may or may not have been processed. Check this order's status before re-running."
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")


def received_per_order(popbatch: Popbatch) -> dict[str, int]:
    """order_id -> requests the sandbox received for it."""
    return {k: len(v) for k, v in popbatch.bodies_by_order().items()}


def test_case_18_html_answers_go_to_review_and_the_batch_goes_on(
    popbatch: Popbatch,
) -> None:
    """2 Succeeded, 2 Review with their messages, exit 3, one request per order."""
    popbatch.sandbox.set_script(CASE_18 / "stub.json")

    run = popbatch.run("capture", CASE_18 / "capture.csv")

    assert run.exit_code == 3, run.stderr
    assert "Traceback" not in run.stderr
    assert run.counts() == {
        "succeeded": 2,
        "failed": 0,
        "rejected": 0,
        "review": 2,
        "skipped": 0,
        "pending": 0,
    }
    assert run.column("Succeeded", "result_code") == {
        "HE-001": "R001",
        "HE-003": "R001",
    }
    assert run.column("Review", "detail") == {
        "HE-002": f"HTTP 502, response is not POP JSON (text/html); {UNSURE}",
        "HE-004": f"HTTP 200 but the body is not POP JSON (text/html); {UNSURE}",
    }
    assert received_per_order(popbatch) == {
        "HE-001": 1,
        "HE-002": 1,
        "HE-003": 1,
        "HE-004": 1,
    }


def test_case_18_review_rows_record_the_request_and_the_answer(
    popbatch: Popbatch,
) -> None:
    """What was sent, the HTTP status, the content type, the body and the times."""
    popbatch.sandbox.set_script(CASE_18 / "stub.json")
    script = (CASE_18 / "stub.json").read_text("utf-8")

    run = popbatch.run("capture", CASE_18 / "capture.csv")

    review = {row["order_id"]: row for row in run.sheet("Review")}
    bodies = popbatch.bodies_by_order()
    for order_id, status in (("HE-002", 502), ("HE-004", 200)):
        row = review[order_id]
        assert row["request sent"] == bodies[order_id][0].decode()
        assert row["http_status"] == status
        assert row["content_type"] == "text/html; charset=utf-8"
        assert row["response received"].startswith("<!DOCTYPE html>")
        assert row["response received"].replace('"', '\\"') in script
        assert ISO_TIME.fullmatch(row["sent_at"])
        assert ISO_TIME.fullmatch(row["received_at"])
        assert row["attempts"] == 1
    assert "メンテナンスのお知らせ" in review["HE-004"]["response received"]
    twin = run.twin("review.csv")
    assert twin["response received"].tolist() == [
        review["HE-002"]["response received"],
        review["HE-004"]["response received"],
    ]


NOT_POP_JSON: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "NJ-01",
        {
            "status": 503,
            "headers": {"Content-Type": "text/html"},
            "body": "<p>down</p>",
        },
        "not_pop_json",
        f"HTTP 503, response is not POP JSON (text/html); {UNSURE}",
    ),
    (
        "NJ-02",
        {"status": 504, "headers": {"Content-Type": "text/plain"}, "body": "timeout"},
        "not_pop_json",
        f"HTTP 504, response is not POP JSON (text/plain); {UNSURE}",
    ),
    (
        "NJ-03",
        {"status": 200, "headers": {"Content-Type": "application/json"}, "body": ""},
        "not_pop_json",
        f"HTTP 200 but the body is not POP JSON (empty body); {UNSURE}",
    ),
    (
        "NJ-04",
        {
            "status": 200,
            "headers": {"Content-Type": "application/json"},
            "body": '{"order_id": "NJ-04", "status": "succ',
        },
        "not_pop_json",
        f"HTTP 200 but the body is not POP JSON (application/json); {UNSURE}",
    ),
    (
        "NJ-05",
        {"status": 200, "json": {"ok": True}},
        "not_pop_json",
        f"HTTP 200 but the body is not POP JSON (application/json); {UNSURE}",
    ),
    (
        "NJ-06",
        {
            "status": 200,
            "json": {
                "order_id": "SOMEONE-ELSE",
                "status": "success",
                "result_code": "R001",
                "message": "stub",
                "m_status": "success",
                "v_result_code": "A001000000000000",
                "merr_msg": "stub",
            },
        },
        "order_id_mismatch",
        f"POP answered for order 'SOMEONE-ELSE', but 'NJ-06' was sent; {UNSURE}",
    ),
]


def test_variant_other_unclear_answers_each_go_to_review_once(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A 503 page, a 504 text, empty, cut-off or foreign JSON: Review, one request each."""
    path = tmp_path / "capture.csv"
    path.write_text(
        "order_id,amount\n" + "".join(f"{o},1000\n" for o, *_ in NOT_POP_JSON),
        encoding="utf-8",
    )
    for order_id, answer, _, _ in NOT_POP_JSON:
        popbatch.sandbox.script_order(order_id, answer)

    run = popbatch.run("capture", path)

    assert run.exit_code == 3, run.stderr
    review = {row["order_id"]: row for row in run.sheet("Review")}
    assert {k: (v["reason"], v["detail"]) for k, v in review.items()} == {
        order_id: (reason, detail) for order_id, _, reason, detail in NOT_POP_JSON
    }
    assert received_per_order(popbatch) == {o: 1 for o, *_ in NOT_POP_JSON}


def test_variant_a_huge_error_page_is_cut_with_a_marker(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A 50,000-character page fits Excel's 32,767 with a marker; the CSV has all."""
    path = tmp_path / "capture.csv"
    path.write_text("order_id,amount\nBIG-1,1000\n", encoding="utf-8")
    page = "<html>" + "x" * 50_000 + "</html>"
    popbatch.sandbox.script_order(
        "BIG-1", {"status": 502, "headers": {"Content-Type": "text/html"}, "body": page}
    )

    run = popbatch.run("capture", path)

    assert run.exit_code == 3, run.stderr
    shown = run.column("Review", "response received")["BIG-1"]
    assert len(shown) == 32_767
    assert shown.endswith("[popbatch: cut here; the body had 50,013 characters]")
    assert page.startswith(shown.rsplit("\n", 1)[0])
    assert popbatch.sandbox.received("BIG-1") == 1


def test_variant_a_429_page_is_not_processed_and_is_retried_once(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """429 means not processed: the same bytes go again and the row succeeds."""
    path = tmp_path / "capture.csv"
    path.write_text("order_id,amount\nRL-1,1000\n", encoding="utf-8")
    popbatch.sandbox.add_order("RL-1", 5000)
    popbatch.sandbox.script_order(
        "RL-1",
        {
            "status": 429,
            "headers": {"Content-Type": "text/html", "Retry-After": "0"},
            "body": "<html>slow down</html>",
        },
        {"action": "pass"},
    )

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    bodies = popbatch.bodies_by_order()["RL-1"]
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert run.column("Succeeded", "attempts") == {"RL-1": 2}


def run_case_19(popbatch: Popbatch) -> Any:
    """The case's run: partial refunds with a 2 s read timeout, scripted answers."""
    popbatch.sandbox.set_script(CASE_19 / "stub.json")
    return popbatch.run("cancel", CASE_19 / "partial_refunds.csv", "--timeout", "2")


def test_case_19_dropped_and_timed_out_refunds_are_sent_once_ever(
    popbatch: Popbatch,
) -> None:
    """CR-002 and CR-004 go to Review after one request each (exit 3), also rerun."""
    run = run_case_19(popbatch)
    review = {row["order_id"]: row for row in run.sheet("Review")}
    failed = run.sheet("Failed")
    again = popbatch.run("cancel", CASE_19 / "partial_refunds.csv", "--timeout", "2")

    assert (run.exit_code, again.exit_code) == (3, 3), run.stderr
    assert received_per_order(popbatch) == {
        "CR-001": 1,
        "CR-002": 1,
        "CR-003": 1,
        "CR-004": 1,
    }
    assert run.column("Succeeded", "result_code") == {
        "CR-001": "R002",
        "CR-003": "R002",
    }
    assert {k: (v["reason"], v["detail"]) for k, v in review.items()} == {
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
    assert failed == []
    assert (
        review["CR-004"]["request sent"]
        == popbatch.bodies_by_order()["CR-004"][0].decode()
    )
    assert sorted(again.column("Review", "reason")) == ["CR-002", "CR-004"]


def run_with_an_order_in_review(popbatch: Popbatch, tmp_path: Path) -> Any:
    """HR-1 goes to Review in batch 1; a second file with HR-1 and HR-3 runs next."""
    first = tmp_path / "first.csv"
    first.write_text("order_id,amount\nHR-1,1000\nHR-2,1000\n", encoding="utf-8")
    second = tmp_path / "second.csv"
    second.write_text("order_id,amount\nHR-1,1000\nHR-3,1000\n", encoding="utf-8")
    for order_id in ("HR-1", "HR-2", "HR-3"):
        popbatch.sandbox.add_order(order_id, 5000)
    popbatch.sandbox.script_order(
        "HR-1", {"status": 502, "headers": {"Content-Type": "text/html"}, "body": "<p>"}
    )
    popbatch.run("capture", first)
    return popbatch.run("capture", second)


HELD = (
    "order HR-1 is in Review in batch 1 (row 2); it is not sent until that is "
    "settled with 'popbatch resolve 1 HR-1 --succeeded|--failed'"
)


def test_variant_an_order_in_review_is_held_in_another_file(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """HR-1 in a second file waits in Pending (exit 75); HR-3 is sent."""
    run = run_with_an_order_in_review(popbatch, tmp_path)

    assert run.exit_code == 75, run.stderr
    assert received_per_order(popbatch) == {"HR-1": 1, "HR-2": 1, "HR-3": 1}
    assert [row["order_id"] for row in run.sheet("Pending")] == ["HR-1"]
    assert run.column("Succeeded", "result_code") == {"HR-3": "R001"}


def test_variant_a_held_row_says_why_in_the_pending_sheet(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """The Pending sheet and pending.csv name the Review row that holds HR-1."""
    run = run_with_an_order_in_review(popbatch, tmp_path)

    assert run.column("Pending", "reason") == {"HR-1": "order_in_review"}
    assert run.column("Pending", "detail") == {"HR-1": HELD}
    assert run.twin("pending.csv")["detail"].tolist() == [HELD]


def test_variant_a_held_row_is_not_summarised_as_a_stopped_run(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """summary.json counts HR-1 under its hold, not under a run that stopped."""
    run = run_with_an_order_in_review(popbatch, tmp_path)

    pending = [c for c in run.summary()["result_codes"] if c["group"] == "pending"]
    assert [(c["label"], c["rows"]) for c in pending] == [("(order_in_review)", 1)]
    assert "stopped" not in pending[0]["meaning"]


def test_case_19_nothing_listening_leaves_rows_pending_then_sends_once(
    popbatch: Popbatch, make_sandbox: Callable[..., SandboxServer]
) -> None:
    """Connection refused: exit 75, all pending, no Review; once POP is up, one each."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/pop/v1"
    refused = (
        f"could not connect to 127.0.0.1:{port} (connection refused); nothing was sent."
    )

    down = popbatch.run("cancel", CASE_19 / "partial_refunds.csv", endpoint=endpoint)
    pending = {
        row["order_id"]: (row["reason"], row["detail"]) for row in down.sheet("Pending")
    }
    down_groups = down.counts()
    back = make_sandbox(port=port)
    for order_id in ("CR-001", "CR-002", "CR-003", "CR-004"):
        back.add_order(order_id, 5000, state="captured")
    up = popbatch.run("cancel", CASE_19 / "partial_refunds.csv", endpoint=endpoint)

    assert down.exit_code == 75, down.stderr
    assert f"could not connect to 127.0.0.1:{port} (connection refused)" in (
        down.stderr
    )
    assert (down_groups["review"], down_groups["pending"]) == (0, 4)
    assert pending == {
        order_id: ("connect_failed", refused)
        for order_id in ("CR-001", "CR-002", "CR-003", "CR-004")
    }
    assert up.exit_code == 0, up.stderr
    assert up.folder == down.folder
    assert {o: back.received(o) for o in ("CR-001", "CR-002", "CR-003", "CR-004")} == {
        "CR-001": 1,
        "CR-002": 1,
        "CR-003": 1,
        "CR-004": 1,
    }
    assert popbatch.sandbox.received() == 0


@pytest.mark.parametrize("action", ["hang", "close_after_read"])
def test_variant_capture_hanging_or_dropped_is_not_replayed(
    popbatch: Popbatch, tmp_path: Path, action: str
) -> None:
    """A capture that hangs or is dropped after the request: Review, one request."""
    path = tmp_path / "capture.csv"
    path.write_text("order_id,amount\nHG-1,1000\nHG-2,1000\n", encoding="utf-8")
    popbatch.sandbox.add_order("HG-1", 5000)
    popbatch.sandbox.add_order("HG-2", 5000)
    popbatch.sandbox.script_order("HG-1", {"action": action})

    run = popbatch.run("capture", path, "--timeout", "1")

    assert run.exit_code == 3, run.stderr
    assert received_per_order(popbatch) == {"HG-1": 1, "HG-2": 1}
    assert list(run.column("Review", "reason")) == ["HG-1"]
    assert run.column("Succeeded", "result_code") == {"HG-2": "R001"}
