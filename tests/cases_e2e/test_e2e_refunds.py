"""Case 15 end to end: an order twice in a refund file, and a refund file run twice.

Every copy of a repeated order id is Rejected before the first call, so
only RF-002 reaches the sandbox. The journal keeps a fixed file from
refunding again when it is run a second time, or re-saved and run again.
Variants: a repeat hidden by full-width letters, and one copy without an
amount (which would refund the full amount).
"""

from __future__ import annotations

from pathlib import Path

from harness import CASES, Popbatch

CASE = CASES / "15-duplicate-refund-rows"
FIXED = "order_id,amount\r\nRF-001,1000\r\nRF-002,500\r\nRF-003,300\r\n"


def seed_captured(popbatch: Popbatch, *order_ids: str) -> None:
    """Captured orders, so that each refund answers R002."""
    for order_id in order_ids:
        popbatch.sandbox.add_order(order_id, 5000, state="captured")


def repeated(order_id: str, rows: str) -> str:
    """The rejection of a repeated order id, as the Rejected sheet shows it."""
    return (
        f"order_id: order_id {order_id} appears more than once in this file "
        f"(rows {rows}); nothing was sent for it"
    )


def test_case_15_only_rf_002_is_refunded(popbatch: Popbatch) -> None:
    """One API call, for RF-002; the four copies are Rejected with both rows."""
    seed_captured(popbatch, "RF-001", "RF-002", "RF-003")

    run = popbatch.run("cancel", CASE / "refunds.csv", "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert popbatch.sandbox.received() == 1
    assert popbatch.sent("card-cancel") == {
        "RF-002": {"order_id": "RF-002", "amount": 500, "dummy": True}
    }
    assert run.column("Succeeded", "result_code") == {"RF-002": "R002"}
    assert [
        (row["row"], row["order_id"], row["reasons"]) for row in run.sheet("Rejected")
    ] == [
        (2, "RF-001", repeated("RF-001", "2, 4")),
        (4, "RF-001", repeated("RF-001", "2, 4")),
        (5, "RF-003", repeated("RF-003", "5, 6")),
        (6, "RF-003 ", repeated("RF-003", "5, 6")),
    ]


def test_case_15_without_skip_invalid_nothing_is_refunded(popbatch: Popbatch) -> None:
    """Exit 65, rows 2, 4, 5 and 6 named, no call at all."""
    seed_captured(popbatch, "RF-001", "RF-002", "RF-003")

    run = popbatch.run("cancel", CASE / "refunds.csv")
    checked = popbatch.validate("cancel", CASE / "refunds.csv")

    assert (run.exit_code, checked.exit_code) == (65, 65)
    table = [
        "2 order_id 'RF-001' order_id RF-001 appears more than once in this file "
        "(rows 2, 4); nothing was sent for it",
        "4 order_id 'RF-001' order_id RF-001 appears more than once in this file "
        "(rows 2, 4); nothing was sent for it",
        "5 order_id 'RF-003' order_id RF-003 appears more than once in this file "
        "(rows 5, 6); nothing was sent for it",
        "6 order_id 'RF-003 ' order_id RF-003 appears more than once in this file "
        "(rows 5, 6); nothing was sent for it",
    ]
    assert run.problem_table() == checked.problem_table() == table
    assert popbatch.sandbox.received() == 0


def test_case_15_a_fixed_file_run_twice_refunds_each_order_once(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """The second run finds the finished batch in the journal and sends nothing."""
    path = tmp_path / "refunds.csv"
    path.write_text(FIXED, encoding="utf-8", newline="")
    seed_captured(popbatch, "RF-001", "RF-002", "RF-003")

    first = popbatch.run("cancel", path)
    second = popbatch.run("cancel", path)

    assert (first.exit_code, second.exit_code) == (0, 0), second.stderr
    assert {k: len(v) for k, v in popbatch.bodies_by_order().items()} == {
        "RF-001": 1,
        "RF-002": 1,
        "RF-003": 1,
    }
    assert "already finished" in second.stderr
    assert second.folder == first.folder
    assert second.counts()["succeeded"] == 3


def test_case_15_the_same_refunds_re_saved_are_skipped_not_sent(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A copy with other line ends is a new batch; each refund is Skipped."""
    path = tmp_path / "refunds.csv"
    path.write_text(FIXED, encoding="utf-8", newline="")
    again = tmp_path / "refunds_again.csv"
    again.write_text(FIXED.replace("\r\n", "\n"), encoding="utf-8", newline="")
    seed_captured(popbatch, "RF-001", "RF-002", "RF-003")

    popbatch.run("cancel", path)
    run = popbatch.run("cancel", again)

    assert run.exit_code == 1, run.stderr
    assert popbatch.sandbox.received() == 3
    assert run.said[0] == (
        "3 rows would repeat a refund that already succeeded (same order, same "
        "amount) and were not sent (rows 2, 3, 4): if this file was re-run or "
        "corrected, they are already done and there is nothing to do; only for a "
        "second, separate refund of the same amount, --allow-repeat sends them"
    )
    skipped = run.column("Skipped", "reason")
    assert skipped == {
        order_id: f"a refund of {amount} for this order already succeeded in batch "
        f"1 (row {row}), so this one was not sent: if this file was re-run or "
        "corrected, it is already done; only for a second, separate refund of the "
        "same amount, --allow-repeat sends it"
        for order_id, amount, row in (
            ("RF-001", "1,000", 2),
            ("RF-002", "500", 3),
            ("RF-003", "300", 4),
        )
    }


def test_variant_full_width_copy_of_an_order_is_a_repeat(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """ＲＦ－００１ is RF-001 once folded: both copies are Rejected, neither sent."""
    path = tmp_path / "refunds.csv"
    path.write_text(
        "order_id,amount\nRF-001,1000\nRF-002,500\nＲＦ－００１,1000\n",
        encoding="utf-8",
    )
    seed_captured(popbatch, "RF-001", "RF-002")

    run = popbatch.run("cancel", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert list(popbatch.sent("card-cancel")) == ["RF-002"]
    assert run.column("Rejected", "reasons") == {
        "RF-001": repeated("RF-001", "2, 4"),
        "ＲＦ－００１": repeated("RF-001", "2, 4"),
    }


def test_variant_a_repeat_without_amount_is_not_a_full_refund(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A blank-amount copy (a FULL refund) of a partial refund: neither is sent."""
    path = tmp_path / "refunds.csv"
    path.write_text(
        "order_id,amount\nRF-001,1000\nRF-002,500\nRF-001,\n", encoding="utf-8"
    )
    seed_captured(popbatch, "RF-001", "RF-002")

    run = popbatch.run("cancel", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert list(popbatch.sent("card-cancel")) == ["RF-002"]
    assert [row["row"] for row in run.sheet("Rejected")] == [2, 4]
    assert "FULL" not in run.stderr


def test_case_15_note_a_blank_refund_amount_is_announced_loudly(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A cancel row without an amount is sent without one, and said so twice."""
    path = tmp_path / "refunds.csv"
    path.write_text("order_id,amount\nFR-1,1000\nFR-2,\n", encoding="utf-8")
    seed_captured(popbatch, "FR-1", "FR-2")

    run = popbatch.run("cancel", path)

    assert run.exit_code == 0, run.stderr
    assert popbatch.sent("card-cancel")["FR-2"] == {"order_id": "FR-2", "dummy": True}
    assert run.stderr.startswith(
        "Note: 1 row has no amount: each cancels or refunds the FULL amount of its "
        "order (row 3)\n"
    )
    assert (
        "FULL REFUNDS: 1 cancel row has no amount, so POP cancels or refunds the "
        "FULL amount of the order: 1 Succeeded (row 3)\n"
    ) in run.stderr
    assert run.column("Succeeded", "full refund") == {
        "FR-1": None,
        "FR-2": "FULL amount (no amount given)",
    }
