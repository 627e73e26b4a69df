"""Case 14 end to end: .xlsm is read, .xls and a CSV named .xlsx are refused cleanly.

The refusals run as a real process, so that stderr is exactly what a user
sees: one error line, no traceback, exit 66, and no request. Variants: a
workbook saved with a .xls name, an HTML "Excel" export, a workbook named
.csv, an OpenDocument file, and a capitalised extension.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from harness import CASES, Popbatch

CASE = CASES / "14-xlsm-xls-renamed-files"


def test_case_14_xlsm_sends_its_two_rows(popbatch: Popbatch) -> None:
    """A macro-enabled workbook is read like .xlsx: XM-001 and XM-002 go out."""
    popbatch.sandbox.add_order("XM-001", 5000)
    popbatch.sandbox.add_order("XM-002", 5000)

    run = popbatch.run("capture", CASE / "orders.xlsm", "--skip-invalid")

    assert run.exit_code == 0, run.stderr
    assert {k: v["amount"] for k, v in popbatch.sent("card-capture").items()} == {
        "XM-001": 1000,
        "XM-002": 2000,
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "orders_legacy.xls",
            "orders_legacy.xls: legacy Excel 97-2003 .xls is not supported; open it "
            "in Excel and save as .xlsx (or CSV UTF-8)",
        ),
        (
            "csv_saved_as.xlsx",
            "csv_saved_as.xlsx: this .xlsx file is not an Excel workbook (it looks "
            "like CSV text); rename it to .csv or save it again from Excel",
        ),
    ],
)
def test_case_14_refused_files_exit_66_with_one_error_line(
    popbatch: Popbatch, name: str, message: str
) -> None:
    """run --skip-invalid and validate: one error line, exit 66, zero calls."""
    for order_id in ("XL-001", "XL-002", "RN-001", "RN-002"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE / name, "--skip-invalid")
    checked = popbatch.validate("capture", CASE / name)

    assert (run.exit_code, checked.exit_code) == (66, 66)
    assert run.stderr == checked.stderr == f"Error: {message}\n"
    assert popbatch.sandbox.received() == 0
    assert not popbatch.out.exists()


def test_case_14_legacy_xls_in_a_real_process_prints_no_traceback(
    popbatch: Popbatch,
) -> None:
    """As its own process: stderr is the one error line, exit 66, nothing sent."""
    popbatch.sandbox.add_order("XL-001", 5000)

    run = popbatch.subprocess(
        *popbatch.argv("capture", CASE / "orders_legacy.xls", "--skip-invalid")
    )

    assert run.exit_code == 66
    assert run.stderr == (
        "Error: orders_legacy.xls: legacy Excel 97-2003 .xls is not supported; "
        "open it in Excel and save as .xlsx (or CSV UTF-8)\n"
    )
    assert run.stdout == ""
    assert popbatch.sandbox.received() == 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "report.xls",
            b"<html><body><table><tr><td>order_id</td><td>amount</td></tr>"
            b"<tr><td>HX-1</td><td>1000</td></tr></table></body></html>",
            "report.xls: this .xls file is a web page (HTML), not an Excel "
            "workbook; open it in Excel and save as .xlsx (or CSV UTF-8)",
        ),
        (
            "orders.ods",
            b"PK\x03\x04",
            "orders.ods: OpenDocument spreadsheets (.ods) are not supported; save "
            "it as .xlsx (or CSV UTF-8)",
        ),
        (
            "orders.csv",
            None,
            "orders.csv is a zip archive (as .xlsx workbooks are), not CSV text; "
            "if it is a workbook, give it the .xlsx extension",
        ),
    ],
)
def test_variant_other_mislabelled_files_are_refused(
    popbatch: Popbatch, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    """An HTML export named .xls, an .ods, a workbook named .csv: exit 66, nothing sent."""
    path = tmp_path / name
    if content is None:
        shutil.copy(CASE / "orders.xlsm", path)
    else:
        path.write_bytes(content)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 66
    assert run.stderr == f"Error: {message}\n"
    assert popbatch.sandbox.received() == 0


@pytest.mark.parametrize("name", ["saved_as.xls", "ORDERS.XLSM", "Orders.Xlsx"])
def test_variant_a_real_workbook_under_another_excel_name_is_read(
    popbatch: Popbatch, tmp_path: Path, name: str
) -> None:
    """A zip workbook named .xls, or with a capitalised extension, sends its rows."""
    path = tmp_path / name
    shutil.copy(CASE / "orders.xlsm", path)
    popbatch.sandbox.add_order("XM-001", 5000)
    popbatch.sandbox.add_order("XM-002", 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert sorted(popbatch.sent("card-capture")) == ["XM-001", "XM-002"]
