"""Regression tests for the reading faults the end-to-end cases turned up.

Each was found by a variant in this folder and fixed in the reading and
validation modules; these pin the fix at the read + validate level.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import openpyxl
import pytest

from popbatch.errors import ExitCode, InputUnreadableError
from popbatch.io.readers import read_input
from popbatch.operations import OPERATIONS
from popbatch.schema import Validation, validate

SPLIT = (
    "this row has text in column {column}, which has no header (the last named "
    "column is {last}): a value with a comma and no quotes, such as 1,000, is "
    'split across cells. Quote it ("1,000") or remove the comma, or give the '
    "column a header."
)


def check(path: Path, operation: str = "capture") -> Validation:
    """Read and validate a file as a test run."""
    return validate(read_input(path), OPERATIONS[operation], live=False)


def rejected(validation: Validation) -> dict[int, list[tuple[str, str, str]]]:
    """Spreadsheet row -> (reason, column, message) of each problem."""
    return {
        row: [(p.reason, p.column or "", p.message) for p in problems]
        for row, problems in validation.rejected_rows()
    }


def test_unquoted_thousands_comma_rejects_the_row(tmp_path: Path) -> None:
    """1,000 without quotes is "1" and "000": the row is rejected, not sent as 1."""
    path = tmp_path / "split.csv"
    path.write_text("order_id,amount\nSP-1,1,000\nSP-2,2000\n", encoding="utf-8")

    validation = check(path)

    assert [fields for _, fields in validation.iter_requests()] == [
        {"order_id": "SP-2", "amount": 2000}
    ]
    assert rejected(validation) == {
        2: [("unnamed_text", "column C", SPLIT.format(column="C", last="B"))]
    }
    assert validation.rejected_rows()[0][1][0].value == "000"


def test_unnamed_text_names_the_first_cell_with_text(tmp_path: Path) -> None:
    """Text two cells past a tab header is found; the value shown is that text."""
    path = tmp_path / "split.tsv"
    path.write_text(
        "order_id\tamount\tmemo\nSP-1\t1000\tnote\t\tstray\n", encoding="utf-8"
    )

    validation = check(path)

    assert rejected(validation) == {
        2: [("unnamed_text", "column E", SPLIT.format(column="E", last="C"))]
    }
    assert validation.rejected_rows()[0][1][0].value == "stray"


def test_a_blank_header_past_the_last_name_does_not_make_it_safe(
    tmp_path: Path,
) -> None:
    """A header ending in a comma (as a retry file of a split row has): still rejected."""
    path = tmp_path / "retry.csv"
    path.write_text("order_id,amount,memo,\nSP-1,1,000,x\n", encoding="utf-8")

    validation = check(path)

    assert rejected(validation) == {
        2: [("unnamed_text", "column D", SPLIT.format(column="D", last="C"))]
    }


def test_a_column_without_header_between_named_ones_is_carried(
    tmp_path: Path,
) -> None:
    """Notes in an unnamed middle column are the merchant's own: not a split."""
    path = tmp_path / "notes.csv"
    path.write_text("order_id,,amount\nNT-1,call first,1000\n", encoding="utf-8")

    validation = check(path)

    assert validation.rejected == {}
    assert [fields for _, fields in validation.iter_requests()] == [
        {"order_id": "NT-1", "amount": 1000}
    ]


@pytest.mark.parametrize(
    "text",
    [
        "order_id,amount\nOK-1,1000,\nOK-2,2000,,\n",
        "order_id,amount\nOK-1,1000, \nOK-2,2000\n",
        "order_id,amount,,\nOK-1,1000,,\nOK-2,2000,,\n",
        "\norder_id,amount\nOK-1,1000\nOK-2,2000,\n",
    ],
)
def test_empty_cells_past_the_header_are_harmless(tmp_path: Path, text: str) -> None:
    """Trailing commas (or a blank first line) reject nothing."""
    path = tmp_path / "trailing.csv"
    path.write_text(text, encoding="utf-8")

    validation = check(path)

    assert validation.rejected == {}
    assert [fields["amount"] for _, fields in validation.iter_requests()] == [
        1000,
        2000,
    ]


def test_unnamed_text_rejects_the_row_for_every_operation(tmp_path: Path) -> None:
    """A refund typed 1,500 without quotes would refund 1 yen: rejected too."""
    path = tmp_path / "refunds.csv"
    path.write_text("order_id,amount\nRF-1,1,500\nRF-2,\n", encoding="utf-8")

    validation = check(path, "cancel")

    assert rejected(validation) == {
        2: [("unnamed_text", "column C", SPLIT.format(column="C", last="B"))]
    }
    assert [fields for _, fields in validation.iter_requests()] == [
        {"order_id": "RF-2"}
    ]


def test_workbook_cells_without_header_are_carried(tmp_path: Path) -> None:
    """In .xlsx a cell is a cell: notes under no header are no split value."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount"])
    sheet.append(["WB-1", 1000, "note"])
    path = tmp_path / "notes.xlsx"
    book.save(path)

    validation = check(path)

    assert validation.rejected == {}


def test_time_only_cells_are_called_times(tmp_path: Path) -> None:
    """12:30 in an id cell is a time; a date with a time is still a date."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount"])
    sheet.append([datetime.time(12, 30), 1000])
    sheet.append([datetime.datetime(2024, 3, 1, 9, 15), 2000])
    path = tmp_path / "times.xlsx"
    book.save(path)

    validation = check(path)

    assert rejected(validation) == {
        2: [
            (
                "date_cell",
                "order_id",
                "order_id cell holds a time (12:30:00), so Excel converted what "
                "was typed; the original id cannot be recovered. Format column A "
                "as Text and re-enter it.",
            )
        ],
        3: [
            (
                "date_cell",
                "order_id",
                "order_id cell holds a date (2024-03-01T09:15:00), so Excel "
                "converted what was typed; the original id cannot be recovered. "
                "Format column A as Text and re-enter it.",
            )
        ],
    }


def test_rows_of_invisible_characters_are_blank(tmp_path: Path) -> None:
    """Zero-width spaces and stray BOMs show nothing: such rows are blank rows."""
    path = tmp_path / "pasted.csv"
    path.write_text(
        "order_id,amount\nZW-1,1000\n\u200b,\nZW-2,2000\n\u200b,\u200b \n\ufeff,\n",
        encoding="utf-8",
    )

    validation = check(path)

    assert validation.rejected == {}
    assert validation.notices == ("row 3 is blank (between data rows)",)
    assert validation.table.row_numbers.tolist() == [2, 4]


def test_text_beside_an_invisible_character_is_text(tmp_path: Path) -> None:
    """A cell with a zero-width space and a letter is not blank."""
    path = tmp_path / "pasted.csv"
    path.write_text("order_id,amount\nZW-1,1000\n\u200bx,\n", encoding="utf-8")

    validation = check(path)

    assert [row for row, _ in validation.rejected_rows()] == [3]


def mixed_file(path: Path, utf8_rows: int, cp932_rows: int) -> Path:
    """A CSV of UTF-8 rows, then CP932 rows, each with a Japanese memo."""
    lines = [b"order_id,amount,memo"]
    lines += [f"U8-{n},1000,返金".encode() for n in range(utf8_rows)]
    lines += [f"SJ-{n},1000,返金".encode("cp932") for n in range(cp932_rows)]
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return path


def test_a_file_of_utf8_and_cp932_rows_is_refused(tmp_path: Path) -> None:
    """Read as CP932 it would turn 返金 into 霑秘≡ without an error: refused (66)."""
    path = mixed_file(tmp_path / "appended.csv", utf8_rows=2, cp932_rows=2)

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path)

    assert caught.value.message == (
        "appended.csv mixes encodings: line 2 is UTF-8 and line 4 is not; read as "
        "either one, some lines would be garbled"
    )
    assert caught.value.hint == (
        'Save the whole file again in one encoding (Excel: "CSV UTF-8"); if it '
        "really is all CP932, say so with --encoding cp932."
    )
    assert caught.value.exit_code is ExitCode.INPUT_UNREADABLE


def test_a_mixed_file_named_cp932_is_read_as_told(tmp_path: Path) -> None:
    """--encoding cp932 is the user's word: no refusal."""
    path = mixed_file(tmp_path / "appended.csv", utf8_rows=2, cp932_rows=2)

    table = read_input(path, encoding="cp932")

    assert table.cells[2].tolist()[2:] == ["返金", "返金"]


def test_one_utf8_line_among_many_cp932_lines_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Below a tenth of the lines, the file is read as CP932 and the line named."""
    path = mixed_file(tmp_path / "appended.csv", utf8_rows=1, cp932_rows=20)

    with caplog.at_level(logging.WARNING, logger="popbatch.io.csvfile"):
        table = read_input(path)

    assert table.encoding == "cp932"
    assert [record.getMessage() for record in caplog.records] == [
        "appended.csv is read as CP932, but line 2 is valid UTF-8 (U8-0,1000,返金): "
        "if that row's text looks garbled in the results, the file mixes encodings"
    ]


@pytest.mark.parametrize(
    "name",
    ["orders_cp932.csv", "orders_cp932_late_kanji.csv"],
)
def test_cp932_files_with_rare_kanji_are_not_taken_for_mixed(name: str) -> None:
    """髙, 﨑, ① and the rest of case 01 read as CP932 without a word."""
    table = read_input(
        Path(__file__).parent.parent / "data" / "cases" / "01-cp932-excel-csv" / name
    )

    assert table.encoding == "cp932"
