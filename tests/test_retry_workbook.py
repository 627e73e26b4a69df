"""retry.xlsx keeps the input's cell types: amounts numbers, ids text.

A finance team sums the amount column of the retry file and fixes ids that
start with zeros; both must survive the trip through popbatch and back. The
runs go to the sandbox over HTTP; the workbooks are read back with openpyxl.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from harness import Popbatch

pytestmark = pytest.mark.sandbox


def orders_workbook(path: Path, rows: list[list[object]]) -> Path:
    """An Orders sheet with order_id, amount and memo columns, as Excel saves it."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Orders"
    sheet.append(["order_id", "amount", "memo"])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def cells(path: Path) -> list[list[tuple[object, str]]]:
    """Every cell of the first sheet as (value, openpyxl data type)."""
    sheet = openpyxl.load_workbook(path).active
    return [[(cell.value, cell.data_type) for cell in row] for row in sheet.iter_rows()]


def test_declined_rows_keep_number_amounts_and_text_ids_and_validate_again(
    popbatch: Popbatch,
) -> None:
    """5000 stays a number, '000456' stays text, and the file validates as it came."""
    popbatch.sandbox.add_order("000456", 5000, decline=True)
    popbatch.sandbox.add_order("TY-2", 5000)
    popbatch.sandbox.add_order("0789", 5000, decline=True)
    path = orders_workbook(
        popbatch.root / "march.xlsx",
        [["000456", 5000, "first"], ["TY-2", 3000, "second"], ["0789", 1200, "=x"]],
    )
    run = popbatch.run("capture", path)
    retry = run.folder / "retry.xlsx"

    again = popbatch.validate("capture", retry)

    assert run.exit_code == 1
    assert cells(retry) == [
        [("order_id", "s"), ("amount", "s"), ("memo", "s")],
        [("000456", "s"), (5000, "n"), ("first", "s")],
        [("0789", "s"), (1200, "n"), ("=x", "s")],
    ]
    assert again.exit_code == 0
    assert again.said == ["retry.xlsx: 2 rows, all valid (sheet 'Orders')"]


def test_rejected_amounts_go_back_as_they_were_typed(popbatch: Popbatch) -> None:
    """A fraction stays a number; text amounts ('1,000', '05000') stay text."""
    popbatch.sandbox.add_order("TY-1", 5000)
    path = orders_workbook(
        popbatch.root / "april.xlsx",
        [
            ["TY-1", 1000, "sent"],
            ["TY-2", 2500.5, "a fraction"],
            ["TY-3", "1,0000", "text with a comma"],
            ["TY-4", "05000", "text with a zero"],
            ["TY-5", -20, "below one yen"],
        ],
    )

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 1
    assert cells(run.folder / "retry.xlsx")[1:] == [
        [("TY-2", "s"), (2500.5, "n"), ("a fraction", "s")],
        [("TY-3", "s"), ("1,0000", "s"), ("text with a comma", "s")],
        [("TY-4", "s"), ("05000", "s"), ("text with a zero", "s")],
        [("TY-5", "s"), (-20, "n"), ("below one yen", "s")],
    ]
