"""Case 16 end to end: input text never becomes a formula in the results.

results.xlsx holds every echoed value as a string cell equal to the input
(no formula in any sheet, no apostrophe added); the CSV twins put an
apostrophe before a value that a spreadsheet would run; retry.csv feeds
back to popbatch unchanged, apostrophes and all. Variants: full-width
formula signs in a Japanese memo, tab and carriage-return starts, and an
Excel input whose retry file is a workbook.
"""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
from harness import CASES, Popbatch
from run_output import formula_cells, formula_elements, read_text_csv, sheet_rows

from popbatch.io.readers import read_input

CASE = CASES / "16-formula-injection-in-results"
HYPERLINK = '=HYPERLINK("http://example.invalid/?q=1","open")'
VALID = ("INJ-001", "-INJ-004", "INJ-007")


def decline(popbatch: Popbatch, order_id: str) -> None:
    """Script a gateway decline (m_status failure) for the order's next request."""
    popbatch.sandbox.script_order(
        order_id,
        {
            "status": 200,
            "json": {
                "order_id": "{order_id}",
                "status": "failure",
                "result_code": "RM03",
                "message": "stub: declined",
                "m_status": "failure",
                "v_result_code": "G12000000000000",
                "merr_msg": "stub: card declined",
            },
        },
    )


def test_case_16_results_workbook_holds_no_formula(popbatch: Popbatch) -> None:
    """No cell of any sheet is a formula, and no sheet XML has an <f> element."""
    for order_id in VALID:
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE / "capture_injection.csv", "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert formula_cells(run.folder / "results.xlsx") == []
    assert formula_elements(run.folder / "results.xlsx") == []


def test_case_16_echoed_values_are_the_input_text_as_string_cells(
    popbatch: Popbatch,
) -> None:
    """Ids, the =1+1 memo and the =1+1 amount read back exactly, as 's' cells."""
    for order_id in VALID:
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE / "capture_injection.csv", "--skip-invalid")

    book = run.workbook()
    succeeded = {row[1].value: row for row in book["Succeeded"].iter_rows(min_row=2)}
    assert sorted(succeeded) == sorted(VALID)
    for cells in succeeded.values():
        assert cells[1].data_type == "s"
        assert (cells[2].data_type, cells[2].value) == ("n", 1000)
    assert (succeeded["INJ-007"][3].data_type, succeeded["INJ-007"][3].value) == (
        "s",
        "=1+1",
    )
    rejected = [
        [(cell.data_type, cell.value) for cell in row[1:4]]
        for row in book["Rejected"].iter_rows(min_row=2)
    ]
    assert rejected == [
        [("s", HYPERLINK), ("s", "1000"), ("s", "id-formula")],
        [("s", "@SUM(1+1)"), ("s", "1000"), ("s", "id-at")],
        [("s", "+81300000000"), ("s", "1000"), ("s", "id-plus")],
        [("s", "INJ-006"), ("s", "=1+1"), ("s", "amount-formula")],
    ]
    assert popbatch.sent("card-capture")["-INJ-004"]["order_id"] == "-INJ-004"


def test_case_16_csv_twins_quote_what_would_run(popbatch: Popbatch) -> None:
    """Rows 3 to 7 and INJ-007's memo carry the apostrophe; nothing else does."""
    for order_id in VALID:
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE / "capture_injection.csv", "--skip-invalid")

    succeeded = run.twin("succeeded.csv")
    assert succeeded[["row", "order_id", "amount", "memo"]].values.tolist() == [
        ["2", "INJ-001", "1000", "plain"],
        ["5", "'-INJ-004", "1000", "id-minus"],
        ["8", "INJ-007", "1000", "'=1+1"],
    ]
    rejected = run.twin("rejected.csv")
    assert rejected[["row", "order_id", "amount", "memo"]].values.tolist() == [
        ["3", f"'{HYPERLINK}", "1000", "id-formula"],
        ["4", "'@SUM(1+1)", "1000", "id-at"],
        ["6", "'+81300000000", "1000", "id-plus"],
        ["7", "INJ-006", "'=1+1", "amount-formula"],
    ]


def test_case_16_declined_minus_id_round_trips_through_retry_csv(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """-INJ-004 declined lands in retry.csv, reads back as -INJ-004, and is resent so."""
    for order_id in VALID:
        popbatch.sandbox.add_order(order_id, 5000)
    decline(popbatch, "-INJ-004")

    run = popbatch.run("capture", CASE / "capture_injection.csv", "--skip-invalid")
    retry = run.folder / "retry.csv"
    table = read_input(retry)
    fixed = tmp_path / "retry.csv"
    fixed.write_bytes(retry.read_bytes())
    again = popbatch.run("capture", fixed, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert run.column("Failed", "result_code") == {"-INJ-004": "RM03"}
    assert "'-INJ-004,1000,id-minus" in retry.read_text("utf-8")
    assert table.cells[0].tolist() == [
        HYPERLINK,
        "@SUM(1+1)",
        "-INJ-004",
        "+81300000000",
        "INJ-006",
    ]
    assert table.cells[1].tolist()[4] == "=1+1"
    assert again.exit_code == 1, again.stderr
    sent = [
        json.loads(body)["order_id"] for body in popbatch.bodies_by_order()["-INJ-004"]
    ]
    assert sent == ["-INJ-004", "-INJ-004"]
    assert again.column("Succeeded", "order_id") == {"-INJ-004": "-INJ-004"}


FULL_WIDTH = (
    "order_id,amount,memo\n"
    "FW-1,1000,＝SUM(A1:A3)\n"
    "FW-2,1000,＠担当者\n"
    "FW-3,1000,－500円引き\n"
    "FW-4,1000,＋81 電話\n"
    'FW-5,1000,"\tタブ"\n'
    'FW-6,1000,"\r改行"\n'
    "FW-7,1000,普通のメモ ＝ 式ではない\n"
)


def test_variant_full_width_formula_signs_in_a_japanese_memo(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """＝ ＠ － ＋ (and tab, CR) starts: string cells in xlsx, apostrophe in CSV."""
    path = tmp_path / "memos.csv"
    path.write_text(FULL_WIDTH, encoding="utf-8", newline="")
    for n in range(1, 8):
        popbatch.sandbox.add_order(f"FW-{n}", 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 0, run.stderr
    memos = {
        "FW-1": "＝SUM(A1:A3)",
        "FW-2": "＠担当者",
        "FW-3": "－500円引き",
        "FW-4": "＋81 電話",
        "FW-5": "\tタブ",
        "FW-6": "\r改行",
        "FW-7": "普通のメモ ＝ 式ではない",
    }
    shown = run.column("Succeeded", "memo")
    # Excel stores a carriage return as _x000D_; openpyxl leaves the escape.
    assert {k: v.replace("_x000D_", "\r") for k, v in shown.items()} == memos
    assert formula_cells(run.folder / "results.xlsx") == []
    twin = run.twin("succeeded.csv")
    assert dict(zip(twin["order_id"], twin["memo"], strict=True)) == {
        order_id: memo if order_id == "FW-7" else f"'{memo}"
        for order_id, memo in memos.items()
    }


def test_variant_full_width_memo_round_trips_through_retry_csv(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A declined row's ＝ memo is quoted in retry.csv and reads back without it."""
    path = tmp_path / "memos.csv"
    path.write_text(FULL_WIDTH, encoding="utf-8", newline="")
    for n in range(1, 8):
        popbatch.sandbox.add_order(f"FW-{n}", 5000, decline=n in (1, 3))

    run = popbatch.run("capture", path)

    assert run.exit_code == 1, run.stderr
    retry = run.folder / "retry.csv"
    assert read_text_csv(retry, "utf-8")["memo"].tolist() == [
        "'＝SUM(A1:A3)",
        "'－500円引き",
    ]
    assert read_input(retry).cells.values.tolist() == [
        ["FW-1", "1000", "＝SUM(A1:A3)"],
        ["FW-3", "1000", "－500円引き"],
    ]


def test_variant_workbook_input_gives_a_retry_workbook_without_formulas(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """An .xlsx with =, @ and - texts: retry.xlsx holds them as text, read back the same.

    The amounts were numbers in the input, and are numbers in retry.xlsx.
    """
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "orders"
    sheet.append(["order_id", "amount", "memo"])
    for order_id, memo in (("-X-1", "=1+1"), ("X-2", "@SUM(A1)"), ("X-3", "plain")):
        sheet.append([order_id, 1000, memo])
        sheet.cell(sheet.max_row, 3).data_type = "s"
    path = tmp_path / "orders.xlsx"
    book.save(path)
    popbatch.sandbox.add_order("-X-1", 5000, decline=True)
    popbatch.sandbox.add_order("X-2", 5000, decline=True)
    popbatch.sandbox.add_order("X-3", 5000)

    run = popbatch.run("capture", path)

    assert run.exit_code == 1, run.stderr
    retry = run.folder / "retry.xlsx"
    assert formula_cells(retry) == []
    assert formula_elements(retry) == []
    assert sheet_rows(openpyxl.load_workbook(retry)["orders"]) == [
        {"order_id": "-X-1", "amount": 1000, "memo": "=1+1"},
        {"order_id": "X-2", "amount": 1000, "memo": "@SUM(A1)"},
    ]
    assert read_input(retry).cells.values.tolist() == [
        ["-X-1", "1000", "=1+1"],
        ["X-2", "1000", "@SUM(A1)"],
    ]
