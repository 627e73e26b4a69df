"""The field cases about reading and validating, each with its case.md's outcome.

Every test reads a file copied from the case folder into tests/data/cases
and checks, at the read + validate level, what the case says popbatch must
give: valid rows and the values they send, rejected rows with their
spreadsheet row numbers and messages, and file-level errors with their
message and exit code. Sending to the sandbox is tested elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from popbatch.errors import ExitCode, InputRefusedError, InputUnreadableError
from popbatch.io.readers import read_input
from popbatch.operations import OPERATIONS
from popbatch.schema import Validation, validate

CASES = Path(__file__).parent / "data" / "cases"


def check(case: str, name: str, operation: str, **options: Any) -> Validation:
    """Read and validate one case file as a test run."""
    table = read_input(CASES / case / name, **options)
    return validate(table, OPERATIONS[operation], live=False)


def sent(validation: Validation) -> dict[int, dict[str, Any]]:
    """Spreadsheet row -> request fields of every valid row."""
    return {
        validation.row_number(index): fields
        for index, fields in validation.iter_requests()
    }


def messages(validation: Validation) -> dict[int, list[str]]:
    """Spreadsheet row -> "row N: message" of every problem of rejected rows."""
    return {
        row: [f"row {row}: {problem.message}" for problem in problems]
        for row, problems in validation.rejected_rows()
    }


def test_case_01_cp932_excel_csv_reads_every_row_and_carries_the_memo() -> None:
    """CP932 with 髙, 﨑 and ① decodes; the full-width amount is the int 1500."""
    validation = check("01-cp932-excel-csv", "orders_cp932.csv", "capture")

    assert validation.table.encoding == "cp932"
    assert "encoding: cp932" in validation.table.notes
    assert sent(validation) == {
        2: {"order_id": "ORD-CP-001", "amount": 1000},
        3: {"order_id": "ORD-CP-002", "amount": 1500},
        4: {"order_id": "ORD-CP-003", "amount": 2500},
    }
    assert validation.table.cells[2].tolist() == [
        "髙山テスト店",
        "﨑浜サンプル商会",
        "①回目の再送",
    ]
    assert validation.rejected == {}


def test_case_01_cp932_found_after_the_first_4_kb() -> None:
    """161 rows, the first non-ASCII byte at offset 4,252: all valid."""
    validation = check("01-cp932-excel-csv", "orders_cp932_late_kanji.csv", "capture")

    assert sent(validation) == {
        n + 1: {"order_id": f"ORD-CP-{1000 + n}", "amount": 100 * n}
        for n in range(1, 162)
    }
    assert validation.table.cells[2].iat[-1] == "髙山テスト店"
    assert validation.rejected == {}


@pytest.mark.parametrize("name", ["orders_cp932.csv", "orders_cp932_late_kanji.csv"])
def test_case_01_negative_control_utf8_given_names_the_line(name: str) -> None:
    """With --encoding utf-8, the file is unreadable (66), naming the line."""
    with pytest.raises(InputUnreadableError) as caught:
        read_input(CASES / "01-cp932-excel-csv" / name, encoding="utf-8")

    line = 2 if name == "orders_cp932.csv" else 162
    assert caught.value.message == (
        f"{name} is not valid utf-8: line {line} has bytes that utf-8 cannot decode"
    )
    assert caught.value.exit_code is ExitCode.INPUT_UNREADABLE


def test_case_03_csv_ids_keep_their_leading_zeros() -> None:
    """Ids are sent exactly as written, compared as strings."""
    validation = check("03-leading-zeros-ids", "leading_zeros.csv", "capture")

    assert [fields["order_id"] for fields in sent(validation).values()] == [
        "000123",
        "004200",
        "00000000000000000007",
    ]
    assert validation.rejected == {}


def test_case_03_xlsx_number_shown_with_zeros_is_rejected() -> None:
    """A text 000456 and a General 789 are valid; 123 shown as 000123 is not."""
    validation = check("03-leading-zeros-ids", "leading_zeros.xlsx", "capture")

    assert sent(validation) == {
        2: {"order_id": "000456", "amount": 1000},
        4: {"order_id": "789", "amount": 3000},
    }
    assert messages(validation) == {
        3: [
            "row 3: order_id is a number cell (123) displayed with format 000000; "
            "the stored value has no leading zeros. Format the column as Text and "
            "re-enter the id."
        ]
    }
    assert validation.rejected_rows()[0][1][0].reason == "number_format_hides_digits"


def test_case_05_amount_notations_read_or_rejected_quoting_the_text() -> None:
    """Unambiguous notations are read; the rest are rejected, never guessed."""
    validation = check("05-amount-notations", "amounts_utf8.csv", "capture")

    assert {row: fields["amount"] for row, fields in sent(validation).items()} == {
        2: 10000,
        3: 10000,
        4: 10000,
        5: 10000,
        6: 1000,
        7: 10000,
        8: 5000,
        16: 99999999,
        17: 1,
        19: 1234,
        21: 10000,
    }
    assert messages(validation) == {
        9: ["row 9: amount '1 ,' is not a valid number: a stray comma"],
        10: [
            "row 10: amount '1,0000' is not a valid number: commas must group "
            "three digits (10,000)"
        ],
        11: [
            "row 11: amount '1.000' is not a valid number: a decimal point (it "
            "could mean 1 or 1000)"
        ],
        12: [
            "row 12: amount '1500.5' is not a valid number: not a whole number of yen"
        ],
        13: [
            "row 13: amount '１万' is not a valid number: unit characters such as "
            "万 are not read"
        ],
        14: ["row 14: amount '0' is below the minimum of 1"],
        15: ["row 15: amount '100000000' is above the maximum of 99,999,999"],
        18: [
            "row 18: amount '-500' is not a valid number: a negative amount "
            "(amounts are 1 or more)"
        ],
        20: [
            "row 20: amount '1e4' is not a valid number: exponent notation is not read"
        ],
    }


def test_case_05_amount_changes_are_recorded() -> None:
    """Each normalised amount shows what it was and what is sent."""
    validation = check("05-amount-notations", "amounts_utf8.csv", "capture")

    shown = {
        validation.row_number(index): (change.before, change.after)
        for index, changes in validation.changes.items()
        for change in changes
    }
    assert shown == {
        3: ("10,000", "10000"),
        4: ("１０，０００", "10000"),
        5: ("￥10,000", "10000"),
        6: ("¥1,000", "1000"),
        7: ("10000円", "10000"),
        8: (" 5000 ", "5000"),
        19: ("１２３４", "1234"),
        21: ("10000.0", "10000"),
    }


def test_case_05_cp932_yen_backslash_and_fullwidth_amounts() -> None:
    """Byte 0x5C before 1,000, ￥2,000 and ３，０００円 are all read."""
    validation = check("05-amount-notations", "amounts_cp932.csv", "capture")

    assert sent(validation) == {
        2: {"order_id": "AMT-20", "amount": 1000},
        3: {"order_id": "AMT-21", "amount": 2000},
        4: {"order_id": "AMT-22", "amount": 3000},
    }
    assert validation.rejected == {}


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("dup_amount.csv", "B and D"),
        ("dup_amount_trailing_space.csv", "B and C"),
        ("dup_amount_letter_case.csv", "B and C"),
    ],
)
def test_case_07_duplicate_headers_refuse_the_file(name: str, columns: str) -> None:
    """Two columns landing on amount refuse the whole file, exit 65."""
    table = read_input(CASES / "07-duplicate-headers" / name)

    with pytest.raises(InputRefusedError) as caught:
        validate(table, OPERATIONS["capture"], live=False)

    assert caught.value.message == (
        f'{name}: column "amount" appears more than once (columns {columns}); '
        "remove or rename one"
    )
    assert caught.value.exit_code is ExitCode.INPUT_REFUSED


def test_case_08_formatting_only_rows_after_the_data_are_ignored() -> None:
    """Borders and a fill down to row 1,048,576 add no row and no notice."""
    validation = check(
        "08-trailing-blank-formatted-rows", "formatted_tail.xlsx", "capture"
    )

    assert sent(validation) == {
        2: {"order_id": "BL-001", "amount": 1000},
        3: {"order_id": "BL-002", "amount": 2000},
        4: {"order_id": "BL-003", "amount": 3000},
    }
    assert validation.rejected == {}
    assert validation.notices == ()
    assert len(validation.table.cells) == 3


def test_case_08_csv_blank_row_between_data_is_a_notice_only() -> None:
    """Row 3 is reported, not an order; the trailing blank lines are silent."""
    validation = check(
        "08-trailing-blank-formatted-rows", "trailing_commas.csv", "capture"
    )

    assert sent(validation) == {
        2: {"order_id": "BL-101", "amount": 1000},
        4: {"order_id": "BL-102", "amount": 2000},
        5: {"order_id": "BL-103", "amount": 3000},
    }
    assert validation.rejected == {}
    assert validation.notices == ("row 3 is blank (between data rows)",)


def test_case_10_ids_excel_turned_into_dates_are_rejected() -> None:
    """Date cells are rejected naming the date; text ids are valid."""
    validation = check("10-excel-date-ids", "date_ids.xlsx", "capture")

    assert sent(validation) == {
        4: {"order_id": "3-12", "amount": 3000},
        5: {"order_id": "2024-03-01", "amount": 4000},
    }
    assert messages(validation) == {
        row: [
            f"row {row}: order_id cell holds a date ({date}), so Excel converted "
            "what was typed; the original id cannot be recovered. Format column A "
            "as Text and re-enter it."
        ]
        for row, date in ((2, "2024-03-01"), (3, "2026-03-12"))
    }


def test_case_11_libreoffice_boolean_formulas_are_booleans() -> None:
    """=TRUE() and =FALSE() with cached booleans send true and false."""
    validation = check(
        "11-booleans-libreoffice", "libreoffice_saved.xlsx", "reauthorize"
    )

    assert sent(validation) == {
        2: {
            "order_id": "BO-101",
            "original_order_id": "OLD-101",
            "amount": 1000,
            "capture": True,
        },
        3: {
            "order_id": "BO-102",
            "original_order_id": "OLD-102",
            "amount": 2000,
            "capture": False,
        },
    }
    assert validation.rejected == {}


def test_case_11_csv_booleans_and_a_blank_left_to_the_api_default() -> None:
    """Accepted spellings are read, yes and はい rejected, a blank not sent."""
    validation = check("11-booleans-libreoffice", "booleans.csv", "reauthorize")

    captures = {
        row: fields.get("capture", "not set")
        for row, fields in sent(validation).items()
    }
    assert captures == {
        2: True,
        3: False,
        4: True,
        5: False,
        6: True,
        7: False,
        10: True,
        11: "not set",
    }
    assert messages(validation) == {
        8: ["row 8: capture must be true/false or 1/0 (got 'yes')"],
        9: ["row 9: capture must be true/false or 1/0 (got 'はい')"],
    }
    blank = validation.table.cells.index[-1]
    assert validation.defaults(blank) == {"capture": "true"}
    assert validation.valid.loc[blank, "capture"] is None
    folded = validation.changes[validation.table.cells.index[8]]
    assert [(c.column, c.before, c.after) for c in folded] == [
        ("capture", "ＴＲＵＥ", "true")
    ]


def test_case_12_one_bad_cell_fails_one_row_with_one_reason() -> None:
    """Blank and abc amounts reject their rows only; amounts stay ints."""
    validation = check("12-row-level-errors", "capture_rows.csv", "capture")

    assert sent(validation) == {
        2: {"order_id": "RL-001", "amount": 1500},
        5: {"order_id": "RL-004", "amount": 2500},
        6: {"order_id": "RL-005", "amount": 3000},
    }
    assert all(type(fields["amount"]) is int for fields in sent(validation).values())
    assert messages(validation) == {
        3: ["row 3: amount is required"],
        4: ["row 4: amount 'abc' is not a number"],
    }
    assert str(validation.valid["amount"].dtype) == "Int64"


def test_case_14_xlsm_reads_like_xlsx() -> None:
    """A macro-enabled workbook gives its two rows."""
    validation = check("14-xlsm-xls-renamed-files", "orders.xlsm", "capture")

    assert sent(validation) == {
        2: {"order_id": "XM-001", "amount": 1000},
        3: {"order_id": "XM-002", "amount": 2000},
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
def test_case_14_legacy_xls_and_csv_named_xlsx_are_unreadable(
    name: str, message: str
) -> None:
    """Each is refused with its one-line fix and exit 66."""
    with pytest.raises(InputUnreadableError) as caught:
        read_input(CASES / "14-xlsm-xls-renamed-files" / name)

    assert caught.value.message == message
    assert caught.value.exit_code is ExitCode.INPUT_UNREADABLE


def test_case_15_an_order_twice_in_one_refund_file_rejects_every_copy() -> None:
    """RF-001 and RF-003 (one with a trailing space) are rejected; RF-002 is sent."""
    validation = check("15-duplicate-refund-rows", "refunds.csv", "cancel")

    assert sent(validation) == {3: {"order_id": "RF-002", "amount": 500}}
    first = (
        "order_id RF-001 appears more than once in this file (rows 2, 4); "
        "nothing was sent for it"
    )
    second = (
        "order_id RF-003 appears more than once in this file (rows 5, 6); "
        "nothing was sent for it"
    )
    assert messages(validation) == {
        2: [f"row 2: {first}"],
        4: [f"row 4: {first}"],
        5: [f"row 5: {second}"],
        6: [f"row 6: {second}"],
    }


def test_case_16_formula_like_ids_and_amounts_are_rejected_as_text() -> None:
    """=, @ and + are outside the id charset; -INJ-004 is valid; =1+1 is text."""
    validation = check(
        "16-formula-injection-in-results", "capture_injection.csv", "capture"
    )

    assert sent(validation) == {
        2: {"order_id": "INJ-001", "amount": 1000},
        5: {"order_id": "-INJ-004", "amount": 1000},
        8: {"order_id": "INJ-007", "amount": 1000},
    }
    assert {
        row: [p.reason for p in problems]
        for row, problems in validation.rejected_rows()
    } == {
        3: ["order_id_invalid_characters"],
        4: ["order_id_invalid_characters"],
        6: ["order_id_invalid_characters"],
        7: ["amount_not_a_number"],
    }
    assert messages(validation)[4] == [
        "row 4: order_id '@SUM(1+1)' has characters outside A-Z a-z 0-9 - _: "
        "'@', '(', '+', ')'"
    ]
    assert messages(validation)[7] == ["row 7: amount '=1+1' is not a number"]
    assert validation.table.cells[2].iat[6] == "=1+1"


def test_case_21_rows_touching_merged_cells_are_rejected_naming_the_range() -> None:
    """Anchors and covered rows of D2:D4 and C5:C6 are rejected; MG-006 is sent."""
    validation = check("21-merged-cells", "merged.xlsx", "reauthorize")

    assert sent(validation) == {
        7: {
            "order_id": "MG-006",
            "original_order_id": "OLD-006",
            "amount": 4000,
            "capture": False,
        }
    }
    capture = "capture is in merged cells D2:D4; unmerge and fill each row"
    amount = "amount is in merged cells C5:C6; unmerge and fill each row"
    assert messages(validation) == {
        2: [f"row 2: {capture}"],
        3: [f"row 3: {capture}"],
        4: [f"row 4: {capture}"],
        5: [f"row 5: {amount}"],
        6: [f"row 6: {amount}"],
    }
