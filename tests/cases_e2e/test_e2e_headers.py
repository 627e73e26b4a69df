"""Case 07 end to end: a field's column twice refuses the whole file, even with --skip-invalid.

Nothing is sent and no results are written (a refused file gets an error,
not a results folder listing every row as failed). Variants: a duplicate
through a Japanese alias, through width and spelling, in a workbook, and a
repeated column popbatch does not read (which is no reason to refuse).
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from harness import CASES, Popbatch

HINT = "popbatch cannot know which column was meant, so it sends nothing.\n"


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("dup_amount.csv", "B and D"),
        ("dup_amount_trailing_space.csv", "B and C"),
        ("dup_amount_letter_case.csv", "B and C"),
    ],
)
def test_case_07_duplicate_amount_refuses_the_file_before_any_request(
    popbatch: Popbatch, name: str, columns: str
) -> None:
    """Exit 65 naming the column and both positions; zero requests; no results."""
    popbatch.sandbox.add_order("DH-001", 5000)

    run = popbatch.run(
        "capture", CASES / "07-duplicate-headers" / name, "--skip-invalid"
    )

    assert run.exit_code == 65
    assert run.stderr == (
        f'Error: {name}: column "amount" appears more than once (columns '
        f"{columns}); remove or rename one\n" + HINT
    )
    assert popbatch.sandbox.received() == 0
    assert not run.wrote_results
    assert not popbatch.out.exists()


def test_case_07_validate_refuses_it_the_same_way(popbatch: Popbatch) -> None:
    """popbatch validate gives the same one error and exit 65."""
    run = popbatch.validate(
        "capture", CASES / "07-duplicate-headers" / "dup_amount.csv"
    )

    assert run.exit_code == 65
    assert run.stderr == (
        'Error: dup_amount.csv: column "amount" appears more than once (columns '
        "B and D); remove or rename one\n" + HINT
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "order_id,amount,金額",
            'columns "amount", "金額" all mean amount (columns B and C); '
            "remove or rename all but one",
        ),
        (
            "注文番号,amount,order_id",
            'columns "注文番号", "order_id" all mean order_id (columns A and C); '
            "remove or rename all but one",
        ),
        (
            "order_id,amount,ＡＭＯＵＮＴ",
            'column "amount" appears more than once (columns B and C); remove or '
            "rename one",
        ),
        (
            "Order ID,amount,order-id",
            'column "order_id" appears more than once (columns A and C); remove or '
            "rename one",
        ),
    ],
)
def test_variant_duplicate_through_an_alias_refuses_the_file(
    popbatch: Popbatch, tmp_path: Path, header: str, message: str
) -> None:
    """金額 is amount, 注文番号 is order_id, ＡＭＯＵＮＴ is amount: one field twice."""
    path = tmp_path / "alias.csv"
    path.write_text(f"{header}\nDH-001,1000,1500\n", encoding="utf-8")
    popbatch.sandbox.add_order("DH-001", 5000)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 65
    assert run.stderr == f"Error: alias.csv: {message}\n" + HINT
    assert popbatch.sandbox.received() == 0
    assert not popbatch.out.exists()


def test_variant_duplicate_in_a_workbook_names_the_sheet(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """The same refusal for an .xlsx, naming the sheet."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "返金"
    sheet.append(["order_id", "返金額", "memo", "Amount "])
    sheet.append(["DH-001", 1000, "corrected", 1500])
    path = tmp_path / "dup.xlsx"
    book.save(path)

    run = popbatch.run("cancel", path, "--skip-invalid")

    assert run.exit_code == 65
    assert run.stderr == (
        'Error: dup.xlsx (sheet \'返金\'): columns "返金額", "Amount" all mean '
        "amount (columns B and D); remove or rename all but one\n" + HINT
    )
    assert popbatch.sandbox.received() == 0


def test_variant_a_repeated_column_popbatch_does_not_read_is_carried(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Two memo columns are the merchant's business: the rows are sent."""
    path = tmp_path / "two_memos.csv"
    path.write_text(
        "order_id,amount,memo,memo\nDM-1,1000,first,second\n", encoding="utf-8"
    )
    popbatch.sandbox.add_order("DM-1", 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert popbatch.sent("card-capture") == {
        "DM-1": {"order_id": "DM-1", "amount": 1000, "dummy": True}
    }
    succeeded = run.workbook()["Succeeded"]
    assert [cell.value for cell in succeeded[1]][:5] == [
        "row",
        "order_id",
        "amount",
        "memo",
        "memo",
    ]
    assert [cell.value for cell in succeeded[2]][:5] == [
        2,
        "DM-1",
        1000,
        "first",
        "second",
    ]
