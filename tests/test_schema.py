"""Tests for popbatch.schema: columns, file refusals, field rules, typed values."""

from __future__ import annotations

import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from popbatch.errors import ExitCode, InputRefusedError
from popbatch.io.readers import InputTable, read_input
from popbatch.operations import OPERATIONS
from popbatch.rows import Change, Problem
from popbatch.schema import Validation, _failures, validate


def table_of(tmp_path: Path, text: str, name: str = "orders.csv") -> InputTable:
    """Read CSV text written to a temporary file."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_input(path)


def run(
    tmp_path: Path, text: str, operation: str = "capture", *, live: bool = False
) -> Validation:
    """Validate CSV text for an operation."""
    return validate(table_of(tmp_path, text), OPERATIONS[operation], live=live)


def problems(validation: Validation) -> dict[int, list[tuple[str, str]]]:
    """Spreadsheet row -> (reason, message) of each problem."""
    return {
        row: [(problem.reason, problem.message) for problem in found]
        for row, found in validation.rejected_rows()
    }


# --- columns ---------------------------------------------------------------------------


def test_japanese_headers_are_read_as_their_fields(tmp_path: Path) -> None:
    """注文番号 and 金額 are order_id and amount; other columns are carried."""
    validation = run(tmp_path, '注文番号,金額,備考\nA-1,"1,000",メモ\n')

    assert validation.columns == {"order_id": 0, "amount": 1}
    assert list(validation.iter_requests()) == [
        (0, {"order_id": "A-1", "amount": 1000})
    ]
    assert validation.table.cells[2].tolist() == ["メモ"]
    assert list(validation.valid.columns) == ["order_id", "amount"]


def test_two_aliases_of_one_field_refuse_the_file(tmp_path: Path) -> None:
    """amount and 金額 both present: popbatch cannot know which is meant."""
    with pytest.raises(InputRefusedError) as caught:
        run(tmp_path, "order_id,amount,金額\nA-1,1,2\n")

    assert caught.value.message == (
        'orders.csv: columns "amount", "金額" all mean amount (columns B and C); '
        "remove or rename all but one"
    )
    assert (
        caught.value.hint
        == "popbatch cannot know which column was meant, so it sends nothing."
    )
    assert caught.value.exit_code is ExitCode.INPUT_REFUSED


@pytest.mark.parametrize(
    ("operation", "header", "message", "hint"),
    [
        (
            "capture",
            "order_id,memo",
            'orders.csv has no "amount" column for capture (row 1, the header, has '
            '"order_id", "memo")',
            "Name the column amount (or 金額, 決済金額, 請求金額, 売上金額, 取引金額, "
            "返金額, 返金金額, 取消金額).",
        ),
        (
            "reauthorize",
            "order_id,amount",
            'orders.csv has no "original_order_id" column for reauthorize (row 1, the '
            'header, has "order_id", "amount")',
            "Name the column original_order_id (or 元注文番号, 元注文ID, 元オーダーID, "
            "元取引ID).",
        ),
        (
            "authorize",
            "amount",
            'orders.csv has no "order_id" and "paynow_account_id" columns for '
            'authorize (row 1, the header, has "amount")',
            "Name the columns order_id (or 注文番号, 注文ID, オーダーID, 取引ID, 受注番号) "
            "and paynow_account_id (or 会員ID, PayNow会員ID).",
        ),
        (
            "capture",
            "order_id;amount",
            'orders.csv has no "order_id" and "amount" columns for capture (row 1, '
            'the header, has "order_id;amount")',
            "The header seems to use ';' between columns; save the file as CSV with commas.",
        ),
    ],
)
def test_a_missing_required_column_refuses_the_file(
    tmp_path: Path, operation: str, header: str, message: str, hint: str
) -> None:
    """The message names the missing columns and the header found."""
    with pytest.raises(InputRefusedError) as caught:
        run(tmp_path, f"{header}\nx\n", operation)

    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_cancel_without_amounts_refunds_in_full_and_says_so(tmp_path: Path) -> None:
    """A blank cancel amount is NA, left out, and announced as a full refund."""
    validation = run(tmp_path, "order_id,amount\nA-1,\nA-2,500\nA-3,\n", "cancel")

    assert validation.valid["amount"].tolist() == [pd.NA, 500, pd.NA]
    assert validation.request_fields(0) == {"order_id": "A-1"}
    assert type(validation.request_fields(1)["amount"]) is int
    assert validation.defaults(0) == {"amount": "full"}
    assert validation.notices == (
        "2 rows have no amount: each cancels or refunds the FULL amount of its "
        "order (rows 2, 4)",
    )


def test_cancel_file_without_amount_column_is_accepted(tmp_path: Path) -> None:
    """The amount column is optional for cancel."""
    validation = run(tmp_path, "order_id\nA-1\n", "cancel")

    assert validation.request_fields(0) == {"order_id": "A-1"}


def test_a_column_of_another_operation_is_carried_and_noted(tmp_path: Path) -> None:
    """capture has no capture field: the column is carried, with a notice."""
    validation = run(tmp_path, "order_id,amount,capture\nA-1,1,false\n")

    assert validation.request_fields(0) == {"order_id": "A-1", "amount": 1}
    assert validation.notices == (
        'column "capture" (C) is the capture field, which capture does not send; '
        "it is carried through unchanged",
    )


# --- dummy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "live"), [("true", False), ("TRUE", False), ("0", True)]
)
def test_a_dummy_column_that_agrees_with_the_run_is_accepted(
    tmp_path: Path, value: str, live: bool
) -> None:
    """true in test mode, false with --live (blanks say nothing)."""
    validation = run(
        tmp_path, f"order_id,amount,dummy\nA-1,1,{value}\nA-2,2,\n", live=live
    )

    assert len(validation.valid) == 2
    assert validation.notices == (
        'column "dummy" agrees with this run; the run\'s setting is what is sent',
    )


def test_a_dummy_column_that_disagrees_refuses_the_file(tmp_path: Path) -> None:
    """A live run with dummy true rows is refused, naming the rows."""
    with pytest.raises(InputRefusedError) as caught:
        run(
            tmp_path,
            "order_id,amount,dummy\nA-1,1,false\nA-2,2,true\nA-3,3,TRUE\n",
            live=True,
        )

    assert caught.value.message == (
        'orders.csv: column "dummy" says true on 2 rows (rows 3, 4), but this is '
        "a live run (--live)"
    )
    assert (
        caught.value.hint
        == "Remove the dummy column: --live decides whether requests are real."
    )


def test_an_unreadable_dummy_value_refuses_the_file(tmp_path: Path) -> None:
    """A dummy cell that is no boolean is not guessed."""
    with pytest.raises(InputRefusedError) as caught:
        run(tmp_path, "order_id,amount,dummy\nA-1,1,yes\n")

    assert caught.value.message == (
        "orders.csv: column \"dummy\" has 'yes' on row 2; it must be true/false or "
        "1/0 and agree with the run"
    )


# --- card numbers -------------------------------------------------------------------------


def test_card_numbers_in_an_uninterpreted_column_refuse_the_file(
    tmp_path: Path,
) -> None:
    """The column and rows are named; the numbers are never echoed."""
    text = "order_id,amount,memo\nA-1,1,ok\nA-2,2,card 4111 1111 1111 1111\nA-3,3,5555555555554444\n"

    with pytest.raises(InputRefusedError) as caught:
        run(tmp_path, text)

    assert caught.value.message == (
        'orders.csv: column "memo" (C) holds what look like card numbers in 2 '
        "cells (rows 3, 4); popbatch refuses files that hold card numbers"
    )
    assert "1111" not in str(caught.value)
    assert "4444" not in str(caught.value)
    assert caught.value.exit_code is ExitCode.INPUT_REFUSED


def test_order_ids_that_look_like_card_numbers_are_not_refused(tmp_path: Path) -> None:
    """The rule is for columns popbatch does not read."""
    validation = run(tmp_path, "order_id,amount\n4111111111111111,1\n")

    assert validation.request_fields(0) == {"order_id": "4111111111111111", "amount": 1}


def test_a_card_number_typed_as_an_excel_number_is_refused(tmp_path: Path) -> None:
    """Excel kept 15 of its 16 digits: prefix and length are enough to refuse."""
    book = openpyxl.Workbook()
    book.active.append(["order_id", "amount", "note"])
    book.active.append(["A-1", 1, 4111111111111111])
    book.save(tmp_path / "cards.xlsx")

    with pytest.raises(
        InputRefusedError, match=r"column \"note\" \(C\) holds what look like card"
    ):
        validate(read_input(tmp_path / "cards.xlsx"), OPERATIONS["capture"], live=False)


# --- ids -------------------------------------------------------------------------------------


def test_fullwidth_ids_are_folded_and_the_change_recorded(tmp_path: Path) -> None:
    """ＷＳ－００７ is sent as WS-007, and the results can show it."""
    validation = run(tmp_path, "order_id,amount\nＷＳ－００７,1\n")

    assert validation.request_fields(0) == {"order_id": "WS-007", "amount": 1}
    assert validation.changes == {0: (Change("order_id", "ＷＳ－００７", "WS-007"),)}


@pytest.mark.parametrize(
    ("order_id", "reason", "message"),
    [
        (
            "WS-①",
            "order_id_invalid_characters",
            "order_id 'WS-①' has characters outside A-Z a-z 0-9 - _: '①' U+2460",
        ),
        (
            "WS−007",
            "order_id_invalid_characters",
            "order_id 'WS−007' has characters outside A-Z a-z 0-9 - _: '−' U+2212",
        ),
        (
            "A" * 101,
            "order_id_too_long",
            "order_id is 101 characters long; at most 100 are allowed (got '"
            + "A" * 59
            + "…')",
        ),
        ("", "order_id_required", "order_id is required"),
        ("   ", "order_id_required", "order_id is required"),
    ],
)
def test_order_id_rules(
    tmp_path: Path, order_id: str, reason: str, message: str
) -> None:
    """1-100 of A-Z a-z 0-9 - _, after trimming and full-width folding only."""
    validation = run(tmp_path, f"order_id,amount\n{order_id},1\n")

    assert problems(validation) == {2: [(reason, message)]}


def test_invisible_characters_are_escaped_in_the_value(tmp_path: Path) -> None:
    """An NBSP inside an id shows as \\xa0 in the problem's value."""
    validation = run(tmp_path, "order_id,amount\nA\xa0B,1\n")

    assert validation.rejected[0] == (
        Problem(
            reason="order_id_invalid_characters",
            message="order_id 'A\\xa0B' has characters outside A-Z a-z 0-9 - _: '\\xa0' U+00A0",
            column="order_id",
            value="A\\xa0B",
        ),
    )


def test_every_problem_of_every_row_is_reported_at_once(tmp_path: Path) -> None:
    """Lazy validation: both bad cells of a row, and the other rows too."""
    text = "order_id,original_order_id,amount,capture\nA 1,O-1,abc,yes\nA-2,O-2,5,\nA-3,A-3,1,0\n"
    validation = run(tmp_path, text, "reauthorize")

    assert problems(validation) == {
        2: [
            (
                "order_id_invalid_characters",
                "order_id 'A 1' has characters outside A-Z a-z 0-9 - _: ' '",
            ),
            ("amount_not_a_number", "amount 'abc' is not a number"),
            ("capture_not_boolean", "capture must be true/false or 1/0 (got 'yes')"),
        ],
        4: [
            (
                "order_id_same_as_original",
                "order_id 'A-3' is the same as original_order_id; a reauthorization "
                "needs a new order id",
            )
        ],
    }
    assert sorted([*validation.valid.index, *validation.rejected]) == [0, 1, 2]


def test_original_order_ids_may_repeat(tmp_path: Path) -> None:
    """Two re-charges of one earlier order are two orders."""
    validation = run(
        tmp_path,
        "order_id,original_order_id,amount\nB-1,O-1,1\nB-2,O-1,1\n",
        "reauthorize",
    )

    assert validation.rejected == {}


# --- authorize ----------------------------------------------------------------------------------


def test_authorize_rows_send_paynow_fields_and_leave_blanks_out(tmp_path: Path) -> None:
    """A blank card id and default flag are left to the API."""
    text = (
        "order_id,amount,capture,paynow_account_id,paynow_card_id,paynow_default_card\n"
        "P-1,100,false,ACC-1,CARD-9,1\nP-2,200,,ACC-1,,\n"
    )
    validation = run(tmp_path, text, "authorize")

    assert list(validation.iter_requests()) == [
        (
            0,
            {
                "order_id": "P-1",
                "amount": 100,
                "capture": False,
                "paynow_account_id": "ACC-1",
                "paynow_card_id": "CARD-9",
                "paynow_default_card": True,
            },
        ),
        (1, {"order_id": "P-2", "amount": 200, "paynow_account_id": "ACC-1"}),
    ]
    assert validation.defaults(1) == {"capture": "true", "paynow_default_card": "true"}
    assert validation.valid["paynow_card_id"].tolist() == ["CARD-9", None]


def test_authorize_paynow_rules(tmp_path: Path) -> None:
    """Account id required and at most 100; default card only with a card id."""
    long = "X" * 101
    text = (
        "order_id,amount,paynow_account_id,paynow_card_id,paynow_default_card\n"
        f'P-1,1,,,\nP-2,1,{long},,\nP-3,1,ACC,,true\nP-4,1,"AC\nC",,\n'
    )
    validation = run(tmp_path, text, "authorize")

    assert problems(validation) == {
        2: [("paynow_account_id_required", "paynow_account_id is required")],
        3: [
            (
                "paynow_account_id_too_long",
                "paynow_account_id is 101 characters long; at most 100 are allowed "
                f"(got '{'X' * 59}…')",
            )
        ],
        4: [
            (
                "paynow_default_card_without_card_id",
                "paynow_default_card is set but paynow_card_id is blank; leave "
                "paynow_default_card empty or give the card id",
            )
        ],
        5: [
            (
                "paynow_account_id_control_characters",
                "paynow_account_id 'AC\\nC' holds control characters (line breaks, tabs)",
            )
        ],
    }


# --- Excel cell facts --------------------------------------------------------------------------------


def test_cell_facts_reject_only_in_columns_that_are_read(tmp_path: Path) -> None:
    """A date or error in a memo is carried as text; in an id it rejects."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount", "memo", "shipped"])
    sheet.append(["A-1", 1000, datetime.datetime(2026, 1, 31), "#N/A"])
    sheet.append([True, 2000, "x", True])
    sheet.append(["A-3", 3000, "y", "=C2"])
    sheet["B2"].number_format = "#,##0"
    book.save(tmp_path / "typed.xlsx")

    validation = validate(
        read_input(tmp_path / "typed.xlsx"), OPERATIONS["capture"], live=False
    )

    assert validation.request_fields(0) == {"order_id": "A-1", "amount": 1000}
    assert validation.table.cells.iloc[0].tolist() == [
        "A-1",
        "1000",
        "2026-01-31",
        "#N/A",
    ]
    assert problems(validation) == {
        3: [
            (
                "boolean_cell",
                "order_id cell holds TRUE (a TRUE/FALSE cell), not text. Format "
                "column A as Text and re-enter it.",
            )
        ]
    }
    assert 2 in validation.valid.index


def test_a_formula_without_result_in_an_amount_rejects_the_row(tmp_path: Path) -> None:
    """A workbook saved by a script has no cached results to send."""
    book = openpyxl.Workbook()
    book.active.append(["order_id", "amount"])
    book.active.append(["A-1", "=500*2"])
    book.save(tmp_path / "script.xlsx")

    validation = validate(
        read_input(tmp_path / "script.xlsx"), OPERATIONS["capture"], live=False
    )

    assert problems(validation) == {
        2: [
            (
                "formula_without_value",
                "amount cell holds a formula (=500*2) with no saved result; open the "
                "file in Excel, let it calculate, and save it again.",
            )
        ]
    }


# --- notices and bugs ----------------------------------------------------------------------------------


def test_hidden_rows_and_an_empty_file_are_noticed(tmp_path: Path) -> None:
    """Rows a filter hides are read and said so; a header alone has no rows."""
    book = openpyxl.Workbook()
    book.active.append(["order_id", "amount"])
    book.active.append(["A-1", 1])
    book.active.row_dimensions[2].hidden = True
    book.save(tmp_path / "hidden.xlsx")

    hidden = validate(
        read_input(tmp_path / "hidden.xlsx"), OPERATIONS["capture"], live=False
    )
    empty = run(tmp_path, "order_id,amount\n")

    assert hidden.notices == (
        "Row 2 is hidden in Excel (a filter or hidden rows); popbatch reads them "
        "like any other row",
    )
    assert empty.notices == ("the file has no data rows",)
    assert list(empty.valid.columns) == ["order_id", "amount"]


def test_a_failure_without_a_row_is_a_bug_not_a_bad_row() -> None:
    """A schema failure with no index (a check that raised) fails loudly."""
    work = pd.DataFrame({"order_id": pd.Series(["A-1"], dtype="str")})

    with pytest.raises(
        RuntimeError, match="validation of capture failed inside a check"
    ):
        _failures(OPERATIONS["capture"], work)
