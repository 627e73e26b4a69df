"""Case 08 end to end: phantom rows are neither sent nor reported, row numbers hold.

A workbook formatted down to row 1,048,576 sends its three orders; a CSV
blank line between orders is a notice, not a row; trailing ``,,`` lines
vanish. Variants: a workbook with a blank row between orders and a fill
at its last row, and a CSV whose quoted cell holds line breaks (each
record is one spreadsheet row, as Excel shows the file).
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
from harness import CASES, Popbatch
from openpyxl.styles import Border, PatternFill, Side

CASE = CASES / "08-trailing-blank-formatted-rows"


def test_case_08_workbook_formatted_to_the_last_row_sends_three(
    popbatch: Popbatch,
) -> None:
    """BL-001..003 are sent; the summary counts 3 rows, no notice, no Rejected."""
    for order_id in ("BL-001", "BL-002", "BL-003"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE / "formatted_tail.xlsx")

    assert run.exit_code == 0, run.stderr
    assert {k: v["amount"] for k, v in popbatch.sent("card-capture").items()} == {
        "BL-001": 1000,
        "BL-002": 2000,
        "BL-003": 3000,
    }
    assert run.summary()["rows"] == 3
    assert run.counts()["rejected"] == 0
    assert "Note:" not in run.stderr


def test_case_08_csv_blank_line_is_a_notice_and_rows_keep_their_numbers(
    popbatch: Popbatch,
) -> None:
    """Row 3 is noted once; the orders are rows 2, 4 and 5; the tail is silent."""
    for order_id in ("BL-101", "BL-102", "BL-103"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE / "trailing_commas.csv")

    assert run.exit_code == 0, run.stderr
    assert run.stderr.startswith("Note: row 3 is blank (between data rows)\n")
    assert run.stderr.count("Note:") == 1
    assert [(row["row"], row["order_id"]) for row in run.sheet("Succeeded")] == [
        (2, "BL-101"),
        (4, "BL-102"),
        (5, "BL-103"),
    ]
    assert run.summary()["rows"] == 3
    notices = [row[0] for row in run.workbook()["Summary"].values]
    assert "row 3 is blank (between data rows)" in notices


def test_case_08_validate_passes_both_files_with_the_one_notice(
    popbatch: Popbatch,
) -> None:
    """validate: exit 0 each; only the CSV's row 3 is mentioned."""
    xlsx = popbatch.validate("capture", CASE / "formatted_tail.xlsx")
    csv = popbatch.validate("capture", CASE / "trailing_commas.csv")

    assert (xlsx.exit_code, csv.exit_code) == (0, 0)
    assert xlsx.stderr == ("formatted_tail.xlsx: 3 rows, all valid (sheet 'orders')\n")
    assert csv.stderr == (
        "Note: row 3 is blank (between data rows)\n"
        "trailing_commas.csv: 3 rows, all valid (encoding utf-8, comma-separated)\n"
    )


def test_variant_workbook_with_a_gap_and_formatting_to_the_last_row(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A blank row 4 between orders is noted; borders and a fill below are not."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount", "memo"])
    sheet.append(["GAP-1", 1000, "a"])
    sheet.append(["GAP-2", 2000, "b"])
    sheet.append([])
    sheet.append(["GAP-3", 3000, "c"])
    thin = Side(style="thin")
    sheet["A4"].border = Border(top=thin)
    sheet["B9"].border = Border(left=thin)
    sheet["A1048576"].fill = PatternFill("solid", fgColor="FFFF00")
    path = tmp_path / "gap.xlsx"
    book.save(path)
    for order_id in ("GAP-1", "GAP-2", "GAP-3"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert sorted(popbatch.sent("card-capture")) == ["GAP-1", "GAP-2", "GAP-3"]
    assert run.stderr.startswith("Note: row 4 is blank (between data rows)\n")
    assert run.stderr.count("Note:") == 1
    assert [(row["row"], row["order_id"]) for row in run.sheet("Succeeded")] == [
        (2, "GAP-1"),
        (3, "GAP-2"),
        (5, "GAP-3"),
    ]
    assert run.summary()["rows"] == 3


def test_variant_csv_cell_with_line_breaks_keeps_later_row_numbers(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A memo over two lines is one row: the rows after it keep Excel's numbers."""
    path = tmp_path / "multiline.csv"
    path.write_bytes(
        b"order_id,amount,memo\r\n"
        b'ML-1,1000,"line one\nline two"\r\n'
        b"ML-2,abc,x\r\n"
        b'ML-3,3000,"a\r\nb\r\nc"\r\n'
        b"ML-4,,y\r\n"
    )
    for order_id in ("ML-1", "ML-2", "ML-3", "ML-4"):
        popbatch.sandbox.add_order(order_id, 5000)

    refused = popbatch.run("capture", path)
    run = popbatch.run("capture", path, "--skip-invalid")

    assert refused.exit_code == 65
    assert refused.problem_table() == [
        "3 amount 'abc' amount 'abc' is not a number",
        "5 amount '' amount is required",
    ]
    assert run.exit_code == 1, run.stderr
    assert sorted(popbatch.sent("card-capture")) == ["ML-1", "ML-3"]
    assert [(row["row"], row["order_id"]) for row in run.sheet("Rejected")] == [
        (3, "ML-2"),
        (5, "ML-4"),
    ]
    # A carriage return is stored as _x000D_ in the sheet XML; Excel shows it
    # as the character, openpyxl leaves the escape.
    memos = run.column("Succeeded", "memo")
    assert {k: v.replace("_x000D_", "\r") for k, v in memos.items()} == {
        "ML-1": "line one\nline two",
        "ML-3": "a\r\nb\r\nc",
    }
    twin = run.twin("succeeded.csv")
    assert dict(zip(twin["row"], twin["memo"], strict=True)) == {
        "2": "line one\nline two",
        "4": "a\r\nb\r\nc",
    }


def test_variant_lines_that_only_look_blank_are_not_orders(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Lines of zero-width spaces (pasted from a web page) block nothing."""
    path = tmp_path / "pasted.csv"
    path.write_text(
        "order_id,amount\nZW-1,1000\n\u200b,\u200b\nZW-2,2000\n\u200b,\n\ufeff,\n",
        encoding="utf-8",
    )
    popbatch.sandbox.add_order("ZW-1", 5000)
    popbatch.sandbox.add_order("ZW-2", 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert run.stderr.startswith("Note: row 3 is blank (between data rows)\n")
    assert sorted(popbatch.sent("card-capture")) == ["ZW-1", "ZW-2"]
    assert run.summary()["rows"] == 2


def test_variant_blank_lines_above_the_header_shift_every_row_number(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """The header on line 3: orders are rows 4 and 6, as Excel shows them."""
    path = tmp_path / "late_header.csv"
    path.write_text(",,\n\norder_id,amount\nLH-1,1000\n,\nLH-2,abc\n", encoding="utf-8")
    popbatch.sandbox.add_order("LH-1", 5000)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert run.stderr.startswith("Note: row 5 is blank (between data rows)\n")
    assert [(row["row"], row["order_id"]) for row in run.sheet("Succeeded")] == [
        (4, "LH-1")
    ]
    assert [(row["row"], row["reasons"]) for row in run.sheet("Rejected")] == [
        (6, "amount: amount 'abc' is not a number")
    ]
