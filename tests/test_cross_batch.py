"""The rules across batches: what an earlier batch did decides what a later one sends.

Batches of the same mode (test or live) and endpoint see each other: an
order already done for the same operation is skipped, an order in Review
elsewhere is held until a person settles it, and refunds may not repeat or
exceed what popbatch recorded. Every test runs the real command line
against the sandbox and counts requests with the sandbox's counters.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import LIVE_KEY, Popbatch
from run_output import EXIT_FAILED, EXIT_LATER, EXIT_OK, expected_summary

from popbatch.config import current_user
from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

CASE_15 = Path(__file__).parent / "data" / "cases" / "15-duplicate-refund-rows"


def captured(sandbox: SandboxServer, *order_ids: str, amount: int = 5000) -> None:
    """Seed orders that were captured outside popbatch (refunds may follow)."""
    for order_id in order_ids:
        sandbox.add_order(order_id, amount, state="captured", captured=amount)


def refunded(sandbox: SandboxServer, order_id: str) -> int:
    """How much of an order the sandbox's ledger has refunded."""
    order = sandbox.order(order_id)
    assert order is not None
    return order.refunded


def reasons(popbatch: Popbatch, batch_id: int) -> dict[str, str]:
    """order_id -> the first problem of the batch's skipped or held rows."""
    return {
        str(row.order_id): row.problems[0].message
        for row in popbatch.rows(batch_id)
        if row.problems
    }


# --- done already ------------------------------------------------------------------


def test_an_order_done_for_another_operation_is_not_skipped(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """A capture done in batch 1 does not stop a refund of the order in batch 2."""
    sandbox.add_order("A-1", 5000)
    popbatch.run("capture", popbatch.write_csv("captures.csv", [("A-1", 5000)]))

    refund = popbatch.run("cancel", popbatch.write_csv("refunds.csv", [("A-1", 500)]))

    assert refund.exit_code == 0
    assert refund.group_of() == {"A-1": "Succeeded"}
    assert sandbox.received("A-1", "card-cancel") == 1


def test_a_reauthorize_row_that_differs_in_any_field_is_flagged(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Not only the amount: another original order or capture flag is flagged too."""
    sandbox.add_order("ORIG-1", 5000)
    header = "order_id,original_order_id,amount,capture"
    first = popbatch.write_csv("again.csv", [("NEW-1", "ORIG-1", 800, "true")], header)
    popbatch.run("reauthorize", first)
    changed = popbatch.write_csv(
        "again-fixed.csv", [("NEW-1", "ORIG-1", 800, "false")], header
    )

    second = popbatch.run("reauthorize", changed)

    assert second.exit_code == 1
    assert reasons(popbatch, 2) == {
        "NEW-1": "already done in batch 1 (row 2) with capture true; this row asks "
        "capture false, so it was not sent: check which is right"
    }
    assert sandbox.received("NEW-1") == 1


# --- in Review elsewhere -----------------------------------------------------------


@pytest.fixture
def review_in_batch_1(popbatch: Popbatch, sandbox: SandboxServer) -> Path:
    """Batch 1 captured A-1 and A-2, and A-3 went to Review (HTTP 502 page).

    Returns the file of batch 2: the same orders, reordered, plus A-4.
    """
    for order_id in ("A-1", "A-2", "A-3", "A-4"):
        sandbox.add_order(order_id, 5000)
    sandbox.script_order("A-3", {"status": 502, "body": "<html>Bad gateway</html>"})
    rows = [("A-1", 1000), ("A-2", 1000), ("A-3", 1000)]
    first = popbatch.run("capture", popbatch.write_csv("february.csv", rows))
    assert first.exit_code == 3
    return popbatch.write_csv("february-fixed.csv", [*reversed(rows), ("A-4", 1000)])


def held_line(journal: Path) -> str:
    """The line about A-3, held while it is in Review in batch 1 of ``journal``."""
    return (
        "1 row is held (Pending) while the same order is in Review in batch 1 "
        "(A-3): check it in the merchant portal, settle with 'popbatch resolve "
        f"BATCH --journal {journal} ORDER_ID --succeeded|--failed --note TEXT', "
        "then run this command again"
    )


def test_an_order_in_review_in_an_earlier_batch_is_held_until_settled(
    popbatch: Popbatch, sandbox: SandboxServer, review_in_batch_1: Path
) -> None:
    """Held in Pending, exit 75, and held again at every run until resolved."""
    held = popbatch.run("capture", review_in_batch_1)
    again = popbatch.run("capture", review_in_batch_1)

    assert held.exit_code == 75
    assert held.lines == [
        "sending 1 row",
        "2 rows were already done in an earlier batch: skipped, not sent again",
        held_line(popbatch.journal),
        *expected_summary(
            2,
            held.folder,
            EXIT_LATER,
            succeeded=(1, 1000),
            skipped=(2, 2000),
            pending=(1, 1000),
        ),
    ]
    assert reasons(popbatch, 2)["A-3"] == (
        "order A-3 is in Review in batch 1 (row 4); it is not sent until that is "
        "settled with 'popbatch resolve 1 A-3 --succeeded|--failed'"
    )
    assert again.exit_code == 75
    assert again.lines == [
        "2 rows were already done in an earlier batch: skipped, not sent again",
        held_line(popbatch.journal),
        *expected_summary(
            2,
            again.folder,
            EXIT_LATER,
            succeeded=(1, 1000),
            skipped=(2, 2000),
            pending=(1, 1000),
        ),
    ]
    assert popbatch.received(["A-1", "A-2", "A-3", "A-4"]) == dict.fromkeys(
        ["A-1", "A-2", "A-3", "A-4"], 1
    )


def test_a_held_row_resolved_as_succeeded_elsewhere_is_skipped_next_run(
    popbatch: Popbatch, sandbox: SandboxServer, review_in_batch_1: Path
) -> None:
    """The settled outcome counts: succeeded means already done in batch 1."""
    popbatch.run("capture", review_in_batch_1)
    popbatch.command(
        "resolve", "1", "A-3", "--succeeded", "--note", "captured in the portal"
    )

    second = popbatch.run("capture", review_in_batch_1)
    first = popbatch.run("capture", popbatch.root / "february.csv")

    assert second.exit_code == 0
    assert reasons(popbatch, 2)["A-3"] == "already done in batch 1 (row 4)"
    assert second.group_of()["A-3"] == "Skipped"
    assert first.exit_code == 0
    assert first.group_of()["A-3"] == "Succeeded"
    assert sandbox.received("A-3") == 1


def test_a_held_row_resolved_as_failed_elsewhere_is_sent_once(
    popbatch: Popbatch, sandbox: SandboxServer, review_in_batch_1: Path
) -> None:
    """Failed means not applied: the held row is sent, and batch 1 then skips it."""
    popbatch.run("capture", review_in_batch_1)
    popbatch.command("resolve", "1", "A-3", "--failed", "--note", "not in the portal")

    second = popbatch.run("capture", review_in_batch_1)
    first = popbatch.run("capture", popbatch.root / "february.csv")

    assert second.exit_code == 0
    assert second.group_of()["A-3"] == "Succeeded"
    assert first.exit_code == 0
    assert first.lines[:3] == [
        "1 Review row resolved as failed (not applied at POP) goes out again, "
        "unless another batch has done it since",
        popbatch.finished_text(1),
        "1 row was already done in an earlier batch: skipped, not sent again",
    ]
    assert first.group_of()["A-3"] == "Skipped"
    assert reasons(popbatch, 1)["A-3"] == "already done in batch 2 (row 2)"
    assert sandbox.received("A-3") == 2
    assert sandbox.applied("A-3") == 1


def test_a_review_row_resolved_as_failed_is_sent_by_the_next_run_of_its_batch(
    popbatch: Popbatch, sandbox: SandboxServer, review_in_batch_1: Path
) -> None:
    """Regression (issue 6): resolved as failed, the row stayed Failed for good.

    The README says the next run of its batch sends it: the person checked
    that POP did not apply it, so the batch still owes the request.
    """
    resolved = popbatch.command(
        "resolve", "1", "A-3", "--failed", "--note", "not in the portal"
    )

    again = popbatch.run("capture", popbatch.root / "february.csv")
    once_more = popbatch.run("capture", popbatch.root / "february.csv")

    assert resolved.stdout.splitlines() == [
        f"batch 1 row 4 order_id A-3: resolved as failed by {current_user()}; "
        "running the same command on february.csv again sends it"
    ]
    assert again.exit_code == 0
    assert again.lines == [
        "sending 1 row",
        "1 Review row resolved as failed (not applied at POP) goes out again, "
        "unless another batch has done it since",
        *expected_summary(1, again.folder, EXIT_OK, succeeded=(3, 3000)),
    ]
    assert once_more.exit_code == 0
    assert sandbox.received("A-3") == 2
    assert sandbox.applied("A-3") == 1


# --- refunds ------------------------------------------------------------------------


def test_a_full_cancel_that_succeeded_skips_a_later_full_cancel_as_done(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """The same full cancel again is already done: Skipped, exit 0."""
    captured(sandbox, "C-1", "C-2")
    popbatch.run("cancel", popbatch.write_csv("cancel.csv", [("C-1", "")]))
    again = [("C-1", ""), ("C-2", "")]

    full = popbatch.run("cancel", popbatch.write_csv("cancel-2.csv", again))

    assert full.exit_code == 0
    assert full.said[:3] == [
        "Note: 2 rows have no amount: each cancels or refunds the FULL amount of "
        "its order (rows 2, 3)",
        "1 row was already done in an earlier batch: skipped, not sent again",
        "popbatch cancel, batch 2 (test: dummy requests, no money moved)",
    ]
    assert full.said[-1] == EXIT_OK
    assert reasons(popbatch, 2) == {"C-1": "already fully cancelled in batch 1 (row 2)"}
    assert sandbox.received("C-1") == 1


def test_a_partial_refund_after_a_full_cancel_is_refused_with_exit_1(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Regression: it was "already done" with exit 0, yet that refund never happened.

    A partial refund is another request than the full cancel: nothing is
    left to refund, so it is Skipped as refused and cron brings it to a
    person; the full cancel of the same file still counts as done.
    """
    captured(sandbox, "C-1", "C-2", "C-3")
    popbatch.run("cancel", popbatch.write_csv("cancel.csv", [("C-1", ""), ("C-3", "")]))
    rows = [("C-1", 500), ("C-2", 700), ("C-3", "")]

    part = popbatch.run("cancel", popbatch.write_csv("refund.csv", rows))

    assert part.exit_code == 1
    assert part.said[:4] == [
        "Note: 1 row has no amount: each cancels or refunds the FULL amount of its "
        "order (row 4)",
        "1 row was already done in an earlier batch: skipped, not sent again",
        "1 refund was not sent (row 2): the order was fully cancelled in batch 1, "
        "so nothing is left to refund: see Skipped",
        "popbatch cancel, batch 2 (test: dummy requests, no money moved)",
    ]
    assert part.said[-1] == EXIT_FAILED
    assert reasons(popbatch, 2) == {
        "C-1": "the order was fully cancelled in batch 1 (row 2): nothing is left "
        "to refund, so this refund of 500 was not sent",
        "C-3": "already fully cancelled in batch 1 (row 3)",
    }
    assert popbatch.received(["C-1", "C-2", "C-3"]) == {"C-1": 1, "C-2": 1, "C-3": 1}


def test_a_partial_refund_repeating_an_earlier_one_is_refused_unless_allowed(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Same order, same amount: skipped; --allow-repeat sends it; another amount goes."""
    captured(sandbox, "R-1", "R-2")
    popbatch.run(
        "cancel", popbatch.write_csv("march.csv", [("R-1", 500), ("R-2", 500)])
    )
    repeat = popbatch.write_csv("march-2.csv", [("R-1", 500), ("R-2", 300)])

    refused = popbatch.run("cancel", repeat)

    assert refused.exit_code == 1
    assert refused.lines == [
        "sending 1 row",
        "1 row would repeat a refund that already succeeded (same order, same "
        "amount) and was not sent (row 2): if this file was re-run or corrected, it "
        "is already done and there is nothing to do; only for a second, separate "
        "refund of the same amount, --allow-repeat sends it",
        *expected_summary(
            2,
            refused.folder,
            EXIT_FAILED,
            operation="cancel",
            succeeded=(1, 300),
            skipped=(1, 500),
        ),
    ]
    assert reasons(popbatch, 2) == {
        "R-1": "a refund of 500 for this order already succeeded in batch 1 (row 2), "
        "so this one was not sent: if this file was re-run or corrected, it is "
        "already done; only for a second, separate refund of the same amount, "
        "--allow-repeat sends it"
    }
    assert popbatch.received(["R-1", "R-2"]) == {"R-1": 1, "R-2": 2}


def test_allow_repeat_on_a_run_of_the_same_file_sends_the_refused_refund(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Regression (issue 6): the hint said --allow-repeat sends it, but it did not.

    The batch had finished with the row skipped, and a resumed batch never
    looked at skipped rows again: the same command with --allow-repeat
    said "already finished: nothing sent".
    """
    captured(sandbox, "R-1", "R-2")
    popbatch.run("cancel", popbatch.write_csv("march.csv", [("R-1", 500)]))
    repeat = popbatch.write_csv("march-2.csv", [("R-1", 500), ("R-2", 300)])
    popbatch.run("cancel", repeat)

    allowed = popbatch.run("cancel", repeat, "--allow-repeat")

    assert allowed.exit_code == 0
    assert allowed.lines == [
        "sending 1 row",
        *expected_summary(
            2, allowed.folder, EXIT_OK, operation="cancel", succeeded=(2, 800)
        ),
    ]
    assert sandbox.received("R-1") == 2
    assert refunded(sandbox, "R-1") == 1000


def test_refunds_of_an_order_popbatch_captured_may_not_exceed_the_capture(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Captured 1,000 by popbatch: 600 then 500 is refused, 600 then 400 is sent."""
    sandbox.add_order("P-1", 5000)
    popbatch.run("capture", popbatch.write_csv("capture.csv", [("P-1", 1000)]))
    popbatch.run("cancel", popbatch.write_csv("refund-1.csv", [("P-1", 600)]))

    over = popbatch.run("cancel", popbatch.write_csv("refund-2.csv", [("P-1", 500)]))
    rest = popbatch.run("cancel", popbatch.write_csv("refund-3.csv", [("P-1", 400)]))

    assert over.exit_code == 1
    assert over.lines[0] == (
        "1 row would refund more than popbatch captured for the order and was "
        "not sent (row 2): see Skipped"
    )
    assert reasons(popbatch, 3) == {
        "P-1": "popbatch captured 1,000 for this order in batch 1 and has refunded "
        "600; a refund of 500 would exceed the capture: not sent"
    }
    assert rest.group_of() == {"P-1": "Succeeded"}
    assert sandbox.received("P-1", "card-cancel") == 2
    assert refunded(sandbox, "P-1") == 1000


@pytest.mark.parametrize(
    ("capture", "refused"),
    [("", True), ("true", True), ("false", False)],
    ids=["capture-blank", "capture-true", "capture-false"],
)
def test_an_order_popbatch_charged_with_capture_limits_its_refunds_too(
    popbatch: Popbatch, sandbox: SandboxServer, capture: str, refused: bool
) -> None:
    """Regression (issue 6): only the capture command counted as popbatch capturing.

    A reauthorize (or authorize) with capture true, or blank (the API's
    default is true), captures the new order at once: its refunds may not
    exceed that amount either. With capture false nothing was captured.
    """
    sandbox.add_order("ORIG-7", 9000, state="captured", captured=9000)
    header = "order_id,original_order_id,amount,capture"
    charge = popbatch.write_csv(
        "charge.csv", [("NEW-7", "ORIG-7", 1000, capture)], header
    )
    popbatch.run("reauthorize", charge)
    popbatch.run("cancel", popbatch.write_csv("refund-1.csv", [("NEW-7", 800)]))

    second = popbatch.run(
        "cancel", popbatch.write_csv("refund-2.csv", [("NEW-7", 300)])
    )

    if refused:
        assert reasons(popbatch, 3) == {
            "NEW-7": "popbatch captured 1,000 for this order in batch 1 and has "
            "refunded 800; a refund of 300 would exceed the capture: not sent"
        }
        assert sandbox.received("NEW-7", "card-cancel") == 1
    else:
        # Sent, and POP itself refuses it: 800 of the 1,000 authorised is void.
        assert reasons(popbatch, 3) == {}
        assert second.group_of() == {"NEW-7": "Failed"}
        assert sandbox.received("NEW-7", "card-cancel") == 2


def test_a_fixed_refund_file_run_twice_makes_one_call_per_order(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Case 15, related part: after the duplicates are fixed, two runs, one call each."""
    captured(sandbox, "RF-001", "RF-002", "RF-003")
    fixed = popbatch.write_csv(
        "refunds.csv", [("RF-001", 1000), ("RF-002", 500), ("RF-003", 300)]
    )

    first = popbatch.run("cancel", fixed)
    second = popbatch.run("cancel", fixed)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert second.lines[0] == popbatch.finished_text(1)
    assert popbatch.received(["RF-001", "RF-002", "RF-003"]) == {
        "RF-001": 1,
        "RF-002": 1,
        "RF-003": 1,
    }


def test_case_15_the_duplicates_skipped_then_the_fixed_file_twice(
    popbatch: Popbatch, sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Case 15 end to end: --skip-invalid sends RF-002, the fix sends the rest, once."""
    captured(sandbox, "RF-001", "RF-002", "RF-003")
    pasted = tmp_path / "refunds.csv"
    shutil.copy(CASE_15 / "refunds.csv", pasted)
    skipped = popbatch.run("cancel", pasted, "--skip-invalid")
    fixed = popbatch.write_csv(
        "refunds.csv", [("RF-001", 1000), ("RF-002", 500), ("RF-003", 300)]
    )

    first = popbatch.run("cancel", fixed)
    second = popbatch.run("cancel", fixed)

    assert skipped.exit_code == 1
    assert first.exit_code == 1
    assert first.group_of() == {
        "RF-001": "Succeeded",
        "RF-002": "Skipped",
        "RF-003": "Succeeded",
    }
    assert second.exit_code == 1
    assert popbatch.received(["RF-001", "RF-002", "RF-003"]) == {
        "RF-001": 1,
        "RF-002": 1,
        "RF-003": 1,
    }


# --- what batches see of each other ---------------------------------------------------


def test_test_mode_and_live_mode_batches_do_not_see_each_other(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """A dummy capture does not make the live capture of the order "already done"."""
    sandbox.add_order("L-1", 5000)
    path = popbatch.write_csv("captures.csv", [("L-1", 1000)])
    test_run = popbatch.run("capture", path)

    live = popbatch.run(
        "capture", path, "--live", "--yes", env={"POP_SERVER_KEY": LIVE_KEY}
    )

    assert test_run.exit_code == 0
    assert live.folder.name == "captures-capture-batch2"
    assert live.group_of()["L-1"] != "Skipped"
    assert [request.json["dummy"] for request in sandbox.requests("L-1")] == [
        True,
        False,
    ]


def test_batches_on_different_endpoints_do_not_see_each_other(
    popbatch: Popbatch,
    sandbox: SandboxServer,
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    """Another POP is another history; the same POP spelt otherwise is not."""
    other = make_sandbox()
    for server in (sandbox, other):
        server.add_order("E-1", 5000)
    path = popbatch.write_csv("captures.csv", [("E-1", 1000)])
    popbatch.run("capture", path)
    respelt = sandbox.base_url.replace("http://", "HTTP://") + "/"

    elsewhere = popbatch.run("capture", path, endpoint=other.base_url)
    same = popbatch.run("capture", path, endpoint=respelt)

    assert elsewhere.group_of() == {"E-1": "Succeeded"}
    assert other.received("E-1") == 1
    assert same.lines[0] == popbatch.finished_text(1)
    assert sandbox.received("E-1") == 1


def test_a_review_row_in_test_mode_does_not_hold_a_live_batch(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Holding follows the same separation: test Review rows hold test batches only."""
    sandbox.add_order("L-2", 5000)
    sandbox.script_order("L-2", {"status": 502, "body": "<html>Bad gateway</html>"})
    path = popbatch.write_csv("captures.csv", [("L-2", 1000)])
    test_run = popbatch.run("capture", path)

    live = popbatch.run(
        "capture", path, "--live", "--yes", env={"POP_SERVER_KEY": LIVE_KEY}
    )

    assert test_run.exit_code == 3
    assert live.exit_code == 0
    assert live.group_of() == {"L-2": "Succeeded"}
    assert sandbox.received("L-2") == 2


def test_every_review_row_of_an_earlier_batch_is_named_with_its_batch(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Held rows from two batches: the line names both batches and every order."""
    for order_id in ("H-1", "H-2"):
        sandbox.add_order(order_id, 5000)
        sandbox.script_order(order_id, {"status": 502, "body": "<html>down</html>"})
    popbatch.run("capture", popbatch.write_csv("one.csv", [("H-1", 1000)]))
    popbatch.run("capture", popbatch.write_csv("two.csv", [("H-2", 1000)]))

    held = popbatch.run(
        "capture", popbatch.write_csv("both.csv", [("H-1", 1000), ("H-2", 1000)])
    )

    assert held.exit_code == 75
    assert held.lines[0] == (
        "2 rows are held (Pending) while the same order is in Review in batches "
        "1, 2 (H-1, H-2): check them in the merchant portal, settle with "
        f"'popbatch resolve BATCH --journal {popbatch.journal} ORDER_ID "
        "--succeeded|--failed --note TEXT', then run this command again"
    )
    assert popbatch.received(["H-1", "H-2"]) == {"H-1": 1, "H-2": 1}
