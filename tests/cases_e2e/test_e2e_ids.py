"""Cases 03 and 10 end to end: ids sent exactly as typed, or rejected before sending.

Leading zeros survive from CSV to the request body; a number cell that
only shows zeros through its format, and a cell Excel turned into a date
(or a time), are Rejected rows that are never sent. Variants: a UTF-8 CSV
with a byte-order mark, a time-only cell, a 20-digit number cell.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import openpyxl
from harness import CASES, Popbatch

from popbatch.io.readers import read_input


def test_case_03_csv_ids_are_sent_exactly_as_written(popbatch: Popbatch) -> None:
    """The request bodies carry '000123', '004200' and the 20-digit id as text."""
    ids = ("000123", "004200", "00000000000000000007")
    for order_id in ids:
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run(
        "capture",
        CASES / "03-leading-zeros-ids" / "leading_zeros.csv",
        "--skip-invalid",
    )

    assert run.exit_code == 0, run.stderr
    sent = [body["order_id"] for body in popbatch.sent("card-capture").values()]
    assert sorted(sent) == sorted(ids)
    assert all(type(order_id) is str for order_id in sent)
    assert [(row["row"], row["order_id"]) for row in run.sheet("Succeeded")] == [
        (2, "000123"),
        (3, "004200"),
        (4, "00000000000000000007"),
    ]


def test_case_03_number_shown_with_zeros_is_rejected_and_not_sent(
    popbatch: Popbatch,
) -> None:
    """Row 3 (123 shown as 000123) is Rejected with the format message."""
    for order_id in ("000456", "123", "000123", "789"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run(
        "capture",
        CASES / "03-leading-zeros-ids" / "leading_zeros.xlsx",
        "--skip-invalid",
    )

    assert run.exit_code == 1, run.stderr
    assert sorted(popbatch.sent("card-capture")) == ["000456", "789"]
    rejected = run.sheet("Rejected")
    assert [(row["row"], row["order_id"]) for row in rejected] == [(3, "123")]
    assert rejected[0]["reasons"] == (
        "order_id: order_id is a number cell (123) displayed with format 000000; "
        "the stored value has no leading zeros. Format the column as Text and "
        "re-enter the id."
    )
    assert run.counts()["rejected"] == 1


def test_variant_utf8_bom_csv_keeps_leading_zeros(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Excel's "CSV UTF-8" (with a BOM before the header): ids are sent as written."""
    path = tmp_path / "bom_ids.csv"
    path.write_bytes(
        "order_id,amount\r\n0001,100\r\n000000000000000000000099,200\r\n"
        "0A-007,300\r\n".encode("utf-8-sig")
    )
    for order_id in ("0001", "000000000000000000000099", "0A-007"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    assert {k: v["amount"] for k, v in popbatch.sent("card-capture").items()} == {
        "0001": 100,
        "000000000000000000000099": 200,
        "0A-007": 300,
    }
    assert run.summary()["input"]["encoding"] == "utf-8-sig"
    assert list(run.twin("succeeded.csv")["order_id"]) == [
        "0001",
        "000000000000000000000099",
        "0A-007",
    ]


def test_variant_20_digit_number_cell_is_rejected_not_rounded(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """An id typed as a number lost its last digits in Excel: never sent."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount"])
    sheet.append([12345678901234567890, 1000])
    sheet.append(["LONG-2", 2000])
    path = tmp_path / "long_number.xlsx"
    book.save(path)
    popbatch.sandbox.add_order("LONG-2", 5000)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert list(popbatch.sent("card-capture")) == ["LONG-2"]
    rejected = run.sheet("Rejected")
    assert [(row["row"], row["order_id"]) for row in rejected] == [
        (2, "12345678901234600000")
    ]
    assert rejected[0]["reasons"] == (
        "order_id: order_id is a number cell with more than 15 digits "
        "(12345678901234600000); Excel keeps only 15, so the id has already been "
        "changed. Format the column as Text and re-enter the id."
    )


def test_case_10_date_cells_are_rejected_and_text_ids_sent_exactly(
    popbatch: Popbatch,
) -> None:
    """Rows 2 and 3 hold dates: Rejected; '3-12' and '2024-03-01' go out as text."""
    for order_id in ("3-12", "2024-03-01", "2026-03-12"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run(
        "capture", CASES / "10-excel-date-ids" / "date_ids.xlsx", "--skip-invalid"
    )

    assert run.exit_code == 1, run.stderr
    assert popbatch.sent("card-capture") == {
        "3-12": {"order_id": "3-12", "amount": 3000, "dummy": True},
        "2024-03-01": {"order_id": "2024-03-01", "amount": 4000, "dummy": True},
    }
    rejected = run.sheet("Rejected")
    assert [(row["row"], row["reasons"]) for row in rejected] == [
        (
            row,
            f"order_id: order_id cell holds a date ({date}), so Excel converted "
            "what was typed; the original id cannot be recovered. Format column A "
            "as Text and re-enter it.",
        )
        for row, date in ((2, "2024-03-01"), (3, "2026-03-12"))
    ]
    assert [row["order_id"] for row in run.sheet("Succeeded")] == ["3-12", "2024-03-01"]


def test_variant_time_only_cells_are_rejected_as_times(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """An id typed 12:30 and an amount typed 10:00 became times: never sent."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount"])
    sheet.append([datetime.time(12, 30), 1000])
    sheet.append(["TM-3", datetime.time(10, 0)])
    sheet.append(["TM-4", 4000])
    path = tmp_path / "times.xlsx"
    book.save(path)
    popbatch.sandbox.add_order("TM-4", 5000)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert list(popbatch.sent("card-capture")) == ["TM-4"]
    assert [(row["row"], row["reasons"]) for row in run.sheet("Rejected")] == [
        (
            2,
            "order_id: order_id cell holds a time (12:30:00), so Excel converted "
            "what was typed; the original id cannot be recovered. Format column A "
            "as Text and re-enter it.",
        ),
        (
            3,
            "amount: amount cell holds a time (10:00:00), so Excel converted what "
            "was typed; the original value cannot be recovered. Format column B as "
            "Text and re-enter it.",
        ),
    ]


def test_case_03_declined_ids_keep_their_zeros_in_the_retry_files(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """retry.csv and retry.xlsx give back '004200' and '000456', not 4200 and 456."""
    for order_id in ("000123", "00000000000000000007", "789"):
        popbatch.sandbox.add_order(order_id, 5000)
    popbatch.sandbox.add_order("004200", 5000, decline=True)
    popbatch.sandbox.add_order("000456", 5000, decline=True)
    case = CASES / "03-leading-zeros-ids"

    from_csv = popbatch.run("capture", case / "leading_zeros.csv")
    from_xlsx = popbatch.run("capture", case / "leading_zeros.xlsx", "--skip-invalid")

    assert (from_csv.exit_code, from_xlsx.exit_code) == (1, 1)
    assert (from_csv.folder / "retry.csv").read_bytes().splitlines()[1:] == [
        b"004200,2000"
    ]
    assert read_input(from_csv.folder / "retry.csv").cells[0].tolist() == ["004200"]
    retry = openpyxl.load_workbook(from_xlsx.folder / "retry.xlsx").active
    # Row 3 (123 shown as 000123) was rejected for its cell: fixed in the
    # original workbook, never written back as the text "123".
    assert [(c.value, c.data_type) for c in retry["A"]] == [
        ("order_id", "s"),
        ("000456", "s"),
    ]
    assert read_input(from_xlsx.folder / "retry.xlsx").cells[0].tolist() == ["000456"]


def test_case_03_10_ids_rejected_for_their_cell_stay_out_of_the_retry_workbook(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """123 shown as 000123, a date, a 20-digit number: never written back as text."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount"])
    sheet.append([123, 1000])
    sheet["A2"].number_format = "000000"
    sheet.append([datetime.date(2026, 3, 12), 2000])
    sheet["A3"].number_format = 'm"月"d"日"'
    sheet.append([12345678901234567890, 3000])
    sheet.append(["TY-4", 4000])
    sheet.append(["TY-5", "1,0000"])
    path = tmp_path / "typed_ids.xlsx"
    book.save(path)
    for order_id in ("123", "2026-03-12", "12345678901234600000", "TY-4"):
        popbatch.sandbox.add_order(order_id, 5000)

    first = popbatch.run("capture", path, "--skip-invalid")
    retry = openpyxl.load_workbook(first.folder / "retry.xlsx")

    assert first.counts()["rejected"] == 4
    assert [[cell.value for cell in row] for row in retry.active.iter_rows()] == [
        ["order_id", "amount"],
        ["TY-5", "1,0000"],
    ]
    assert list(popbatch.sent("card-capture")) == ["TY-4"]
