"""Tests for popbatch.io.writers: the results folder as a finance team opens it."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from records import T0, batch_record, run_record
from xlsxwriter.exceptions import FileCreateError

from popbatch.errors import OutputError, UsageError
from popbatch.io import writers
from popbatch.io.csvout import FORMULA_STARTS
from popbatch.io.summarysheet import option_label, visible_options
from popbatch.io.writers import (
    WorkbookLimits,
    check_csv_encoding,
    results_folder_name,
    write_results,
)
from popbatch.io.xlsxout import ResultWorkbook
from popbatch.report import Report, build_report
from popbatch.rows import (
    BatchRecord,
    Change,
    Outcome,
    OutcomeKind,
    Problem,
    RowRecord,
    RowState,
    RunRecord,
)

HYPERLINK = '=HYPERLINK("http://example.invalid/?q=1","open")'
# How a CSV line holds it: quoted, inner quotes doubled, after the apostrophe.
# xlsxwriter copies a text shaped <r>...</r> into the file as rich-text XML,
# unescaped: this one would close its cell and add a formula cell.
RICH_TEXT_INJECTION = (
    '<r><t>a</t></r></is></c><c r="B1"><f>HYPERLINK("http://example.invalid","open")'
    '</f></c><c r="C1" t="inlineStr"><is><r><t>b</t></r>'
)
HYPERLINK_IN_CSV = '"\'=HYPERLINK(""http://example.invalid/?q=1"",""open"")"'
SHEETS = ["Summary", "Succeeded", "Failed", "Rejected", "Review", "Skipped", "Pending"]
SENT_COLUMNS = [
    "result_code",
    "meaning",
    "status",
    "message",
    "m_status",
    "v_result_code",
    "merr_msg",
]
TIMES = ["attempts", "sent_at", "received_at", "elapsed_ms"]
CSV_FILES = [
    "failed-RC3A.csv",
    "failed-RM03.csv",
    "failed.csv",
    "pending.csv",
    "rejected.csv",
    "results.xlsx",
    "retry.csv",
    "review.csv",
    "skipped.csv",
    "succeeded.csv",
    "summary.json",
]


# Every test runs in Tokyo's time zone, as the finance team does.
pytestmark = pytest.mark.usefixtures("tokyo")


# --- a small factory of journal records ------------------------------------


OPTIONS = {"rate": 5.0, "server_key_file": "/home/alice/.pop-key"}


def make_batch(**changes: Any) -> BatchRecord:
    """Case 16's capture batch: a cp932 CSV with order_id, amount and memo."""
    return batch_record(
        **{
            "input_path": "/data/capture_injection.csv",
            "options": dict(OPTIONS),
            **changes,
        }
    )


def make_run() -> RunRecord:
    """This run, by alice on box1, 65 seconds long."""
    return run_record(options=dict(OPTIONS), finished_at=T0 + timedelta(seconds=65))


def answered(
    row: int,
    cells: tuple[str, ...],
    order_id: str,
    amount: int | None,
    *,
    code: str = "R001",
    merr_msg: str = "処理が成功しました。",
    **fields: Any,
) -> RowRecord:
    """A row POP answered: R001 succeeds, another code fails."""
    succeeded = code == "R001"
    sent = T0 + timedelta(seconds=row, milliseconds=123)
    body: dict[str, Any] = {"order_id": order_id, "amount": amount, "dummy": True}
    response = {
        "order_id": order_id,
        "status": "success" if succeeded else "failure",
        "result_code": code,
        "message": "Payment Captured Successfully" if succeeded else "Gateway error",
        "m_status": "success" if succeeded else "failure",
        "v_result_code": "A001000000000000" if succeeded else "AG48000000000000",
        "merr_msg": merr_msg,
    }
    return RowRecord(
        row=row,
        cells=cells,
        state=RowState.SUCCEEDED if succeeded else RowState.FAILED,
        order_id=order_id,
        request=json.dumps(body),
        amount=amount,
        attempts=1,
        outcome=Outcome(
            OutcomeKind.SUCCEEDED if succeeded else OutcomeKind.FAILED,
            "succeeded" if succeeded else "declined",
            "captured" if succeeded else "POP declined the capture",
            result_code=code,
            response=response,
            http_status=200,
            content_type="application/json",
            sent_at=sent,
            received_at=sent + timedelta(milliseconds=84),
            elapsed_ms=84,
        ),
        **fields,
    )


def refused(row: int, cells: tuple[str, ...], column: str, message: str) -> RowRecord:
    """A row validation rejected, with one problem."""
    return RowRecord(
        row=row,
        cells=cells,
        state=RowState.REJECTED,
        problems=(Problem("bad_value", message, column),),
    )


def case_16_rows() -> list[RowRecord]:
    """Case 16's rows, plus one row of every other group."""
    text_amount = Change("amount", "１０，０００", "10000")
    return [
        answered(2, ("INJ-001", "1000", "plain"), "INJ-001", 1000),
        refused(
            3,
            (HYPERLINK, "1000", "id-formula"),
            "order_id",
            "has characters outside A-Z a-z 0-9 - _",
        ),
        refused(
            4,
            ("@SUM(1+1)", "1000", "id-at"),
            "order_id",
            "has characters outside A-Z a-z 0-9 - _",
        ),
        answered(5, ("-INJ-004", "1000", "id-minus"), "-INJ-004", 1000),
        refused(
            6,
            ("+81300000000", "1000", "id-plus"),
            "order_id",
            "has characters outside A-Z a-z 0-9 - _",
        ),
        refused(
            7, ("INJ-006", "=1+1", "amount-formula"), "amount", "'=1+1' is not a number"
        ),
        answered(8, ("INJ-007", "1000", "=1+1"), "INJ-007", 1000),
        answered(
            9,
            ("000123", "１０，０００", "月末締め　請求分"),
            "000123",
            10000,
            changes=(text_amount,),
        ),
        answered(
            10,
            ("INJ-010", "2000", "カード不良"),
            "INJ-010",
            2000,
            code="RM03",
            merr_msg="無効カードです。",
        ),
        answered(
            11, ("INJ-011", "3000", ""), "INJ-011", 3000, code="RC3A", merr_msg=""
        ),
        RowRecord(
            row=12,
            cells=("INJ-012", "500", ""),
            state=RowState.UNKNOWN,
            order_id="INJ-012",
            request='{"order_id": "INJ-012", "amount": 500, "dummy": true}',
            amount=500,
            attempts=1,
            outcome=Outcome(
                OutcomeKind.UNKNOWN,
                "not_pop_json",
                "HTTP 502, response is not POP JSON (text/html); the request may or may "
                "not have been processed. Check this order's status before re-running.",
                http_status=502,
                content_type="text/html",
                body_text="<html><body>502 Bad Gateway</body></html>",
                sent_at=T0 + timedelta(seconds=12),
                received_at=T0 + timedelta(seconds=42),
                elapsed_ms=30000,
            ),
        ),
        RowRecord(
            row=13,
            cells=("INJ-013", "700", ""),
            state=RowState.SKIPPED,
            order_id="INJ-013",
            amount=700,
            problems=(Problem("already_done", "already done in batch 3"),),
        ),
        RowRecord(
            row=14,
            cells=("INJ-014", "800", ""),
            state=RowState.PENDING,
            order_id="INJ-014",
            request='{"order_id": "INJ-014", "amount": 800, "dummy": true}',
            amount=800,
            attempts=3,
            outcome=Outcome(
                OutcomeKind.NOT_SENT, "connect_failed", "could not connect"
            ),
        ),
    ]


def make_report(rows: list[RowRecord] | None = None, **batch_changes: Any) -> Report:
    """The report of case 16's batch (or of ``rows``)."""
    return build_report(
        make_batch(**batch_changes),
        make_run(),
        case_16_rows() if rows is None else rows,
        exit_code=1,
    )


def values(sheet: Worksheet) -> list[tuple[Any, ...]]:
    """Every row of a sheet as plain values."""
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def summary_value(sheet: Worksheet, label: str) -> Any:
    """The value beside ``label`` in column A of the Summary."""
    for row in sheet.iter_rows(min_col=1, max_col=2, values_only=True):
        if row[0] == label:
            return row[1]
    raise KeyError(label)


def read_csv(path: Path, encoding: str = "utf-8-sig") -> list[dict[str, str]]:
    """A CSV as the merchant's scripts read it: every value text."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    return list(frame.to_dict("records"))


def without_apostrophe(value: str) -> str:
    """What popbatch's CSV reader makes of a value: the formula apostrophe dropped."""
    if value.startswith("'") and value[1:2] in FORMULA_STARTS:
        return value[1:]
    return value


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """Case 16's results folder."""
    return write_results(
        make_report(), tmp_path / "out" / "capture_injection-capture-batch12"
    )


# --- results.xlsx ------------------------------------------------------------


def test_results_folder_holds_the_workbook_csvs_retry_file_and_summary(
    written: Path,
) -> None:
    """One CSV per group and per failing result code, the retry file, summary.json."""
    assert sorted(path.name for path in written.iterdir()) == CSV_FILES
    assert written.name == "capture_injection-capture-batch12"


def test_workbook_has_the_summary_first_then_every_group_even_when_empty(
    written: Path,
) -> None:
    """Seven sheets in the documented order."""
    book = openpyxl.load_workbook(written / "results.xlsx")

    assert book.sheetnames == SHEETS


def test_each_sheet_starts_with_the_row_and_the_inputs_own_columns(
    written: Path,
) -> None:
    """Input row number, input columns in input order, then what POP and popbatch said."""
    book = openpyxl.load_workbook(written / "results.xlsx")

    headers = {name: values(book[name])[0] for name in SHEETS[1:]}

    head = ("row", "order_id", "amount", "memo")
    assert headers["Succeeded"] == (*head, *SENT_COLUMNS, *TIMES, "changes", "defaults")
    assert headers["Failed"] == (
        *head,
        *SENT_COLUMNS,
        "reason",
        "detail",
        *TIMES,
        "changes",
        "defaults",
    )
    assert headers["Rejected"] == (*head, "reasons", "changes")
    assert headers["Review"] == (
        *head,
        *SENT_COLUMNS,
        "reason",
        "detail",
        "http_status",
        "content_type",
        "request sent",
        "response received",
        *TIMES,
        "changes",
        "defaults",
    )
    assert headers["Skipped"] == (*head, "reason", "changes", "defaults")
    assert headers["Pending"] == headers["Failed"]


def test_succeeded_shows_normalised_values_and_the_answer(written: Path) -> None:
    """Ids as text (leading zeros kept), amounts as numbers, Japanese intact, changes listed."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Succeeded"]

    rows = values(sheet)[1:]

    answer = (
        "R001",
        "Payment Captured Successfully",
        "success",
        "Payment Captured Successfully",
        "success",
        "A001000000000000",
        "処理が成功しました。",
        1,
    )
    assert [row[:4] for row in rows] == [
        (2, "INJ-001", 1000, "plain"),
        (5, "-INJ-004", 1000, "id-minus"),
        (8, "INJ-007", 1000, "=1+1"),
        (9, "000123", 10000, "月末締め　請求分"),
    ]
    assert rows[3][4:12] == answer
    assert rows[3][12:] == (
        "2026-01-31T23:00:09.123+09:00",
        "2026-01-31T23:00:09.207+09:00",
        84,
        "amount: '１０，０００' → 10000",
        None,
    )


def test_no_cell_is_a_formula_and_every_echoed_text_is_a_string(written: Path) -> None:
    """Case 16: formulas stay text, in every sheet, without an apostrophe."""
    book = openpyxl.load_workbook(written / "results.xlsx")

    kinds = {
        cell.data_type for sheet in book for row in sheet.iter_rows() for cell in row
    }
    rejected = book["Rejected"]
    succeeded = book["Succeeded"]

    assert "f" not in kinds
    assert [(cell.value, cell.data_type) for cell in rejected["B"][1:]] == [
        (HYPERLINK, "s"),
        ("@SUM(1+1)", "s"),
        ("+81300000000", "s"),
        ("INJ-006", "s"),
    ]
    assert (rejected["C5"].value, rejected["C5"].data_type) == ("=1+1", "s")
    assert (succeeded["B3"].value, succeeded["B3"].data_type) == ("-INJ-004", "s")
    assert (succeeded["D4"].value, succeeded["D4"].data_type) == ("=1+1", "s")
    assert (succeeded["B5"].value, succeeded["B5"].data_type) == ("000123", "s")


def test_no_sheet_xml_has_a_formula_element(written: Path) -> None:
    """Case 16: the file itself holds no <f> element anywhere."""
    with zipfile.ZipFile(written / "results.xlsx") as archive:
        sheets = [
            name for name in archive.namelist() if name.startswith("xl/worksheets/")
        ]
        texts = [archive.read(name).decode("utf-8") for name in sheets]

    assert len([name for name in sheets if name.endswith(".xml")]) == 7
    assert not any("<f>" in text or "<f " in text for text in texts)


def test_amounts_are_numbers_with_a_thousands_format(written: Path) -> None:
    """Amounts are numeric cells formatted #,##0 in the sheets that were validated."""
    book = openpyxl.load_workbook(written / "results.xlsx")

    amounts = [
        (sheet.title, cell.value, cell.data_type, cell.number_format)
        for sheet in book.worksheets[1:]
        if sheet.title != "Rejected"
        for cell in sheet["C"][1:]
    ]

    assert amounts == [
        ("Succeeded", 1000, "n", "#,##0"),
        ("Succeeded", 1000, "n", "#,##0"),
        ("Succeeded", 1000, "n", "#,##0"),
        ("Succeeded", 10000, "n", "#,##0"),
        ("Failed", 3000, "n", "#,##0"),
        ("Failed", 2000, "n", "#,##0"),
        ("Review", 500, "n", "#,##0"),
        ("Skipped", 700, "n", "#,##0"),
        ("Pending", 800, "n", "#,##0"),
    ]


def test_failed_is_sorted_by_result_code_with_reason_and_detail(written: Path) -> None:
    """RC3A before RM03; each with the API text's meaning and popbatch's reason."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Failed"]

    rows = values(sheet)[1:]

    assert [(row[0], row[4], row[5]) for row in rows] == [
        (11, "RC3A", 'Invalid "Amount"'),
        (10, "RM03", "MDK Error - an error returned by the Payment Gateway"),
    ]
    assert rows[1][10:13] == (
        "無効カードです。",
        "refused by the payment gateway",
        "POP declined the capture",
    )


def test_rejected_shows_the_cells_as_read_and_a_reason_per_cell(written: Path) -> None:
    """Never validated, so every cell is the input's text; reasons name the column."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Rejected"]

    assert values(sheet)[1:] == [
        (
            3,
            HYPERLINK,
            "1000",
            "id-formula",
            "order_id: has characters outside A-Z a-z 0-9 - _",
            None,
        ),
        (
            4,
            "@SUM(1+1)",
            "1000",
            "id-at",
            "order_id: has characters outside A-Z a-z 0-9 - _",
            None,
        ),
        (
            6,
            "+81300000000",
            "1000",
            "id-plus",
            "order_id: has characters outside A-Z a-z 0-9 - _",
            None,
        ),
        (
            7,
            "INJ-006",
            "=1+1",
            "amount-formula",
            "amount: '=1+1' is not a number",
            None,
        ),
    ]


def test_review_shows_what_was_sent_and_what_came_back(written: Path) -> None:
    """Case 18: the request, the HTTP status, the content type, the body, when."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Review"]

    row = values(sheet)[1]

    assert row[:5] == (12, "INJ-012", 500, None, None)
    assert row[11:] == (
        "not_pop_json",
        "HTTP 502, response is not POP JSON (text/html); the request may or may not "
        "have been processed. Check this order's status before re-running.",
        502,
        "text/html",
        '{"order_id": "INJ-012", "amount": 500, "dummy": true}',
        "<html><body>502 Bad Gateway</body></html>",
        1,
        "2026-01-31T23:00:12.000+09:00",
        "2026-01-31T23:00:42.000+09:00",
        30000,
        None,
        None,
    )


def test_skipped_and_pending_say_why(written: Path) -> None:
    """Skipped names the earlier batch; Pending the last attempt's reason."""
    book = openpyxl.load_workbook(written / "results.xlsx")

    assert values(book["Skipped"])[1] == (
        13,
        "INJ-013",
        700,
        None,
        "already done in batch 3",
        None,
        None,
    )
    assert values(book["Pending"])[1][11:15] == (
        "connect_failed",
        "could not connect",
        3,
        None,
    )


def test_sheets_have_a_bold_frozen_filtered_header_and_fitted_widths(
    written: Path,
) -> None:
    """Header bold and frozen, an autofilter over the data, wide Japanese counted double."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Succeeded"]

    assert sheet["A1"].font.b is True
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:Q5"
    # "月末締め　請求分": 8 wide characters take 16 columns, plus a margin.
    assert int(sheet.column_dimensions["D"].width) == 17
    # "order_id" and a margin outgrow the ids "INJ-001".
    assert int(sheet.column_dimensions["B"].width) == 11


def test_summary_says_what_ran_who_ran_it_and_when(written: Path) -> None:
    """The run's facts, times in ISO 8601 with the offset, no key anywhere."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Summary"]

    assert values(sheet)[0][0] == "popbatch results: capture, batch 12"
    assert (
        values(sheet)[1][0]
        == "TEST: every request carried dummy: true; no money moved."
    )
    assert summary_value(sheet, "Batch") == 12
    assert summary_value(sheet, "Operation") == "capture (card-capture)"
    assert summary_value(sheet, "Input file") == "/data/capture_injection.csv"
    assert summary_value(sheet, "Input sha256") == "ab" * 32
    assert summary_value(sheet, "Input read as") == "CSV, encoding cp932, delimiter ','"
    assert summary_value(sheet, "Started") == "2026-01-31T23:00:00+09:00"
    assert summary_value(sheet, "Finished") == "2026-01-31T23:01:05+09:00"
    assert summary_value(sheet, "Duration") == "1 min 05 s"
    assert summary_value(sheet, "Run by") == "alice@box1"
    assert summary_value(sheet, "popbatch version") == "0.1.0"
    assert summary_value(sheet, "Endpoint") == "http://127.0.0.1:8080/pop/v1"
    assert summary_value(sheet, "Option --rate") == "5"
    assert (
        summary_value(sheet, "Exit code")
        == "1: some rows failed at POP, were rejected, or need a decision"
    )
    assert not any("key" in str(row[0]).lower() for row in values(sheet))


@pytest.mark.parametrize(
    ("kept", "banner"),
    [
        (
            (2, 5, 8, 9, 10, 12),
            "LIVE: real money moved for 4 rows (Succeeded) and may have for 1 more "
            "(Review).",
        ),
        ((2, 5, 10), "LIVE: real money moved for 2 rows (Succeeded)."),
        ((10, 12, 13), "LIVE: money may have moved for 1 row (Review)."),
        ((3, 10, 11, 13, 14), "LIVE: no money moved."),
    ],
    ids=["succeeded-and-review", "succeeded", "review", "nothing"],
)
def test_a_live_summary_says_whether_money_moved(
    tmp_path: Path, kept: tuple[int, ...], banner: str
) -> None:
    """The live banner counts Succeeded rows, and Review rows as possibly moved."""
    rows = [row for row in case_16_rows() if row.row in kept]
    folder = tmp_path / "out" / "capture_injection-capture-batch12"

    write_results(make_report(rows, live=True), folder)

    sheet = openpyxl.load_workbook(folder / "results.xlsx")["Summary"]
    assert values(sheet)[1][0] == banner
    assert summary_value(sheet, "Mode") == "live"


def test_summary_counts_groups_and_codes_and_shows_they_add_up(written: Path) -> None:
    """Rows and yen per group and per result code, with meanings, and the check."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Summary"]
    rows = values(sheet)

    start = rows.index(
        ("Group", "Rows", "Amount (yen)", "Full-amount refunds", None, None)
    )
    codes = rows.index(
        (
            "Group",
            "Result code",
            "Meaning (API text, or the gateway's merr_msg)",
            "Rows",
            "Amount (yen)",
            "Full-amount refunds",
        )
    )

    assert rows[2][0] == (
        "Check: adds up: 13 rows in the groups = 13 rows in the input, "
        "20,000 yen = 20,000 yen"
    )
    assert [row[:4] for row in rows[start + 1 : start + 10]] == [
        ("Succeeded", 4, 13000, 0),
        ("Failed", 2, 5000, 0),
        ("Rejected", 4, 0, 0),
        ("Review", 1, 500, 0),
        ("Skipped", 1, 700, 0),
        ("Pending", 1, 800, 0),
        ("All groups", 13, 20000, 0),
        ("Input rows", 13, 20000, 0),
        ("Check", "adds up", None, None),
    ]
    assert rows[codes + 1 : codes + 8] == [
        ("Succeeded", "R001", "Payment Captured Successfully", 4, 13000, 0),
        ("Failed", "RC3A", 'Invalid "Amount"', 1, 3000, 0),
        ("Failed", "RM03 / AG48", "無効カードです。", 1, 2000, 0),
        (
            "Rejected",
            "(rejected)",
            "never sent: the row did not pass validation",
            4,
            0,
            0,
        ),
        ("Review", "(not_pop_json)", "outcome unknown, no POP result code", 1, 500, 0),
        (
            "Skipped",
            "(skipped)",
            "never sent: already done in an earlier batch",
            1,
            700,
            0,
        ),
        (
            "Pending",
            "(connect_failed)",
            "not processed yet: the same command sends it again",
            1,
            800,
            0,
        ),
    ]
    assert sheet.cell(start + 2, 3).number_format == "#,##0"


def test_summary_has_a_bar_chart_of_rows_per_result_code(written: Path) -> None:
    """One bar chart on the Summary, drawn from the result-code table."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Summary"]

    charts = sheet._charts

    assert len(charts) == 1
    assert charts[0].tagname == "barChart"
    assert charts[0].barDir == "bar"
    reference = charts[0].series[0].val.numRef.f
    assert reference.startswith("Summary!$D$")


def test_summary_lists_notices_last(written: Path) -> None:
    """The retry file is explained where the merchant looks."""
    sheet = openpyxl.load_workbook(written / "results.xlsx")["Summary"]
    rows = values(sheet)

    notices = [
        row[0]
        for row in rows[rows.index(("Notices", None, None, None, None, None)) + 1 :]
    ]

    assert notices == [
        "retry.csv holds the 2 Failed and 4 Rejected rows as read, in the input's "
        "columns and format: fix them and run the same command on it. Review rows "
        "are not in it: check them in the merchant portal first."
    ]


def test_a_group_past_the_sheet_limit_continues_on_another_sheet(
    tmp_path: Path,
) -> None:
    """With room for two rows a sheet, four Succeeded rows take two sheets."""
    limits = WorkbookLimits(max_rows=3)

    folder = write_results(make_report(), tmp_path / "res", limits=limits)

    book = openpyxl.load_workbook(folder / "results.xlsx")
    assert book.sheetnames == [
        "Summary",
        "Succeeded",
        "Succeeded (2)",
        "Failed",
        "Rejected",
        "Rejected (2)",
        "Review",
        "Skipped",
        "Pending",
    ]
    assert [row[:2] for row in values(book["Succeeded"])] == [
        ("row", "order_id"),
        (2, "INJ-001"),
        (5, "-INJ-004"),
    ]
    assert [row[:2] for row in values(book["Succeeded (2)"])] == [
        ("row", "order_id"),
        (8, "INJ-007"),
        (9, "000123"),
    ]
    assert book["Succeeded (2)"].auto_filter.ref == "A1:Q3"
    notices = [row[0] for row in values(book["Summary"])[-3:]]
    assert notices[:2] == [
        "Succeeded has more rows than a sheet holds: it continues on 'Succeeded (2)'.",
        "Rejected has more rows than a sheet holds: it continues on 'Rejected (2)'.",
    ]
    assert len(read_csv(folder / "succeeded.csv")) == 4


def control_and_long_rows() -> list[RowRecord]:
    """A memo with control characters, one xlsxwriter takes for XML, a huge body."""
    review = case_16_rows()[10]
    assert review.outcome is not None
    huge = replace(review.outcome, body_text="x" * 40_000)
    return [
        answered(2, ("C-2", "100", "a\x01b\x1fc\x7f"), "C-2", 100),
        answered(3, ("C-3", "100", RICH_TEXT_INJECTION), "C-3", 100),
        replace(review, outcome=huge),
    ]


@pytest.mark.parametrize("cells", [2_000_000, 0], ids=["in-memory", "constant-memory"])
def test_control_characters_and_long_values_are_changed_visibly(
    tmp_path: Path, cells: int
) -> None:
    """Excel gets U+FFFD and a cut with a marker, XML-like text stays text; CSVs keep all."""
    limits = WorkbookLimits(constant_memory_cells=cells)

    folder = write_results(
        make_report(control_and_long_rows()), tmp_path / "res", limits=limits
    )

    book = openpyxl.load_workbook(folder / "results.xlsx")
    assert book["Succeeded"]["D2"].value == "a\ufffdb\ufffdc\x7f"
    assert book["Succeeded"]["D3"].value == RICH_TEXT_INJECTION
    body = book["Review"]["Q2"].value
    assert len(body) == 32_767
    assert body.endswith("x … [cut: 40,000 characters in all]")
    notices = [row[0] for row in values(book["Summary"])[-2:]]
    assert notices == [
        "1 cell held characters Excel cannot store (control characters): results.xlsx "
        "shows each as \ufffd; the CSV files hold them unchanged.",
        "1 value was longer than Excel's 32,767 characters and is cut in results.xlsx; "
        "the CSV files hold it whole.",
    ]
    assert read_csv(folder / "succeeded.csv")[0]["memo"] == "a\x01b\x1fc\x7f"
    assert read_csv(folder / "review.csv")[0]["response received"] == "x" * 40_000
    with zipfile.ZipFile(folder / "results.xlsx") as archive:
        assert not any(
            "<f>" in archive.read(name).decode()
            for name in archive.namelist()
            if name.startswith("xl/worksheets/")
        )


def test_a_constant_memory_workbook_reads_the_same(tmp_path: Path) -> None:
    """The streaming mode for big batches writes the same sheets and values."""
    limits = WorkbookLimits(constant_memory_cells=0)

    folder = write_results(make_report(), tmp_path / "res", limits=limits)

    book = openpyxl.load_workbook(folder / "results.xlsx")
    assert book.sheetnames == SHEETS
    assert values(book["Rejected"])[1][1] == HYPERLINK
    assert values(book["Succeeded"])[4][:4] == (9, "000123", 10000, "月末締め　請求分")
    assert len(book["Summary"]._charts) == 1


# --- CSV twins ---------------------------------------------------------------


def test_csv_twins_round_trip_through_pandas_with_apostrophes(written: Path) -> None:
    """Formula-like values get a leading apostrophe; dropping it gives the value back."""
    succeeded = read_csv(written / "succeeded.csv")
    rejected = read_csv(written / "rejected.csv")

    assert [(row["order_id"], row["amount"], row["memo"]) for row in succeeded] == [
        ("INJ-001", "1000", "plain"),
        ("'-INJ-004", "1000", "id-minus"),
        ("INJ-007", "1000", "'=1+1"),
        ("000123", "10000", "月末締め　請求分"),
    ]
    assert [(row["order_id"], row["amount"]) for row in rejected] == [
        (f"'{HYPERLINK}", "1000"),
        ("'@SUM(1+1)", "1000"),
        ("'+81300000000", "1000"),
        ("INJ-006", "'=1+1"),
    ]
    restored = [without_apostrophe(row["order_id"]) for row in rejected]
    assert restored == [HYPERLINK, "@SUM(1+1)", "+81300000000", "INJ-006"]
    assert succeeded[3]["sent_at"] == "2026-01-31T23:00:09.123+09:00"
    assert succeeded[3]["changes"] == "amount: '１０，０００' → 10000"


def test_csv_twins_are_utf8_with_a_bom_and_crlf(written: Path) -> None:
    """Excel in Japan opens a UTF-8 CSV right only with a BOM."""
    data = (written / "failed.csv").read_bytes()

    assert data.startswith(b"\xef\xbb\xbfrow,order_id,amount,memo,result_code,")
    assert data.count(b"\r\n") == 3


def test_one_csv_per_failing_result_code(written: Path) -> None:
    """failed-RM03.csv holds exactly the RM03 rows."""
    rm03 = read_csv(written / "failed-RM03.csv")
    rc3a = read_csv(written / "failed-RC3A.csv")

    assert [(row["row"], row["order_id"], row["merr_msg"]) for row in rm03] == [
        ("10", "INJ-010", "無効カードです。")
    ]
    assert [row["row"] for row in rc3a] == ["11"]


def test_csv_in_cp932_replaces_what_cp932_cannot_hold_and_says_where(
    tmp_path: Path,
) -> None:
    """𠮷 and an emoji become 〓 in the CSVs; results.xlsx keeps them; Summary names the row."""
    rows = case_16_rows()
    rows[0] = answered(2, ("INJ-001", "1000", "𠮷野家 😀"), "INJ-001", 1000)

    folder = write_results(make_report(rows), tmp_path / "res", csv_encoding="cp932")

    assert read_csv(folder / "succeeded.csv", "cp932")[0]["memo"] == "〓野家 〓"
    assert (
        read_csv(folder / "failed-RM03.csv", "cp932")[0]["merr_msg"]
        == "無効カードです。"
    )
    book = openpyxl.load_workbook(folder / "results.xlsx")
    assert book["Succeeded"]["D2"].value == "𠮷野家 😀"
    assert values(book["Summary"])[-2][0] == (
        "succeeded.csv is in cp932, which cannot hold some characters of row 2: "
        "they are written as 〓 there; results.xlsx has them intact."
    )


def test_an_unknown_csv_encoding_is_a_usage_error() -> None:
    """--csv-encoding with a name Python does not know."""
    with pytest.raises(UsageError) as caught:
        check_csv_encoding("shift-jis-2004x")

    assert (
        str(caught.value)
        == "--csv-encoding 'shift-jis-2004x' is not an encoding Python knows"
    )
    assert caught.value.hint == "Use utf-8-sig (the default, for Excel) or cp932."


# --- the retry file ----------------------------------------------------------


def test_retry_csv_holds_failed_and_rejected_rows_as_read_in_the_inputs_encoding(
    written: Path,
) -> None:
    """cp932 input, cp932 retry: input columns and order, apostrophes before formulas."""
    data = (written / "retry.csv").read_bytes()

    assert data.decode("cp932").split("\r\n") == [
        "order_id,amount,memo",
        f"{HYPERLINK_IN_CSV},1000,id-formula",
        "'@SUM(1+1),1000,id-at",
        "'+81300000000,1000,id-plus",
        "INJ-006,'=1+1,amount-formula",
        "INJ-010,2000,カード不良",
        "INJ-011,3000,",
        "",
    ]
    restored = [
        [without_apostrophe(value) for value in row.values()]
        for row in read_csv(written / "retry.csv", "cp932")
    ]
    assert restored[0] == [HYPERLINK, "1000", "id-formula"]


def test_retry_csv_keeps_a_tab_delimiter_and_utf16(tmp_path: Path) -> None:
    """A tab-separated UTF-16 input gets a tab-separated UTF-16 retry file."""
    report = make_report(encoding="utf-16", delimiter="\t")

    folder = write_results(report, tmp_path / "res")

    text = (folder / "retry.csv").read_bytes()
    assert text.startswith(b"\xff\xfe")
    assert text.decode("utf-16").splitlines()[:2] == [
        "order_id\tamount\tmemo",
        f"{HYPERLINK_IN_CSV}\t1000\tid-formula",
    ]


def test_retry_xlsx_holds_text_and_number_amounts_on_the_inputs_sheet(
    tmp_path: Path,
) -> None:
    """An Excel input gets retry.xlsx: its sheet name, its headers, text but amounts."""
    report = make_report(input_kind="xlsx", encoding=None, delimiter=None, sheet="注文")

    folder = write_results(report, tmp_path / "res")

    book = openpyxl.load_workbook(folder / "retry.xlsx")
    assert book.sheetnames == ["注文"]
    sheet = book["注文"]
    assert values(sheet) == [
        ("order_id", "amount", "memo"),
        (HYPERLINK, 1000, "id-formula"),
        ("@SUM(1+1)", 1000, "id-at"),
        ("+81300000000", 1000, "id-plus"),
        ("INJ-006", "=1+1", "amount-formula"),
        ("INJ-010", 2000, "カード不良"),
        ("INJ-011", 3000, None),
    ]
    assert {
        (cell.column_letter, cell.data_type)
        for row in sheet.iter_rows(min_row=2)
        for cell in row
        if cell.value
    } == {("A", "s"), ("B", "n"), ("B", "s"), ("C", "s")}
    assert sheet["B5"].data_type == "s"
    assert not (folder / "retry.csv").exists()


def test_no_retry_file_when_nothing_failed_or_was_rejected(tmp_path: Path) -> None:
    """A clean batch has nothing to fix."""
    rows = [row for row in case_16_rows() if row.state is RowState.SUCCEEDED]

    folder = write_results(make_report(rows), tmp_path / "res")

    assert not (folder / "retry.csv").exists()
    assert not (folder / "retry.xlsx").exists()
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["retry_file"] is None


# --- the folder --------------------------------------------------------------


def test_summary_json_is_what_monitoring_reads(written: Path) -> None:
    """Counts, amounts, exit code, meaning and the folder itself."""
    found = json.loads((written / "summary.json").read_text(encoding="utf-8"))

    assert found["batch_id"] == 12
    assert found["exit_code"] == 1
    assert (
        found["exit_meaning"]
        == "some rows failed at POP, were rejected, or need a decision"
    )
    assert found["groups"]["succeeded"] == {
        "rows": 4,
        "amount": 13000,
        "full_amount_rows": 0,
    }
    assert found["groups"]["rejected"]["rows"] == 4
    assert found["adds_up"] is True
    assert found["started_at"] == "2026-01-31T23:00:00+09:00"
    assert found["results_folder"] == str(written)
    assert found["retry_file"] == "retry.csv"
    assert found["notices"] == [
        "retry.csv holds the 2 Failed and 4 Rejected rows as read, in the input's "
        "columns and format: fix them and run the same command on it. Review rows "
        "are not in it: check them in the merchant portal first."
    ]


def test_results_are_the_owners_alone(written: Path) -> None:
    """Folder 0700, files 0600."""
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written.iterdir()}

    assert stat.S_IMODE(written.stat().st_mode) == 0o700
    assert set(modes.values()) == {0o600}


def test_a_resumed_batch_replaces_its_folder_whole(written: Path) -> None:
    """The second write leaves no file of the first and nothing hidden beside it."""
    (written / "stale.txt").write_text("from an earlier write", encoding="utf-8")

    again = write_results(make_report(), written)

    assert again == written
    assert sorted(path.name for path in written.iterdir()) == CSV_FILES
    assert [path.name for path in written.parent.iterdir()] == [written.name]


def test_leftovers_of_a_crashed_write_are_removed_once_an_hour_old(
    tmp_path: Path,
) -> None:
    """An old staging folder goes; a young one may be another write's and stays."""
    out = tmp_path / "out"
    old = out / ".res.tmp-dead0001"
    young = out / ".res.old-live0002"
    for leftover in (old, young):
        leftover.mkdir(parents=True)
        (leftover / "results.xlsx").write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))

    write_results(make_report(), out / "res")

    assert sorted(path.name for path in out.iterdir()) == [".res.old-live0002", "res"]


def test_a_failed_write_leaves_the_previous_folder_untouched(
    written: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the last file: OutputError naming it, old folder as it was."""
    (written / "stale.txt").write_text("from an earlier write", encoding="utf-8")

    def full_disk(facts: dict[str, Any], path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(writers, "_write_summary_json", full_disk)

    with pytest.raises(OutputError) as caught:
        write_results(make_report(), written)

    assert str(caught.value) == (
        f"cannot write the results to '{written}/summary.json': No space left on device"
    )
    assert caught.value.exit_code == 73
    assert (written / "stale.txt").exists()
    assert [path.name for path in written.parent.iterdir()] == [written.name]


def test_a_workbook_that_cannot_be_saved_is_an_output_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """xlsxwriter's own error for a failed save names results.xlsx, not the staging folder."""

    def cannot_save(self: object) -> None:
        path = next((tmp_path / "out").glob(".res.tmp-*")) / "results.xlsx"
        raise FileCreateError(
            OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        )

    monkeypatch.setattr(ResultWorkbook, "close", cannot_save)

    with pytest.raises(OutputError) as caught:
        write_results(make_report(), tmp_path / "out" / "res")

    assert str(caught.value) == (
        f"cannot write the results to '{tmp_path}/out/res/results.xlsx': Permission denied"
    )
    assert [path.name for path in (tmp_path / "out").iterdir()] == []


def test_an_unwritable_output_folder_is_an_output_error(tmp_path: Path) -> None:
    """The output folder's place is a file: exit 73, naming the path."""
    (tmp_path / "taken").write_text("a file, not a folder", encoding="utf-8")
    folder = tmp_path / "taken" / "out" / "res"

    with pytest.raises(OutputError) as caught:
        write_results(make_report(), folder)

    assert str(caught.value) == (
        f"cannot write the results to '{tmp_path}/taken/out': Not a directory"
    )
    assert caught.value.hint == (
        "Check the output folder (its permissions and free space), or choose "
        "another with --out."
    )


def test_folder_name_is_input_stem_operation_and_batch() -> None:
    """Unsafe characters become _, and a long name is cut to fit file systems."""
    assert results_folder_name(make_batch()) == "capture_injection-capture-batch12"
    assert results_folder_name(make_batch(input_path="/d/月末:請求?.csv", id=3)) == (
        "月末_請求_-capture-batch3"
    )
    long_name = results_folder_name(make_batch(input_path="/d/" + "請" * 200 + ".xlsx"))
    assert len(long_name.encode()) <= 180
    assert long_name.endswith("請-capture-batch12")


# --- other operations --------------------------------------------------------


def test_japanese_headers_and_values_are_kept_as_they_are(tmp_path: Path) -> None:
    """The input's own header text heads the columns, in the workbook and the CSV."""
    batch = make_batch(headers=("注文番号", "金額", "備考"))
    rows = [answered(2, ("Ｗ－１", "１，０００", "請求書　No.5"), "W-1", 1000)]

    folder = write_results(
        build_report(batch, make_run(), rows, exit_code=0), tmp_path / "r"
    )

    sheet = openpyxl.load_workbook(folder / "results.xlsx")["Succeeded"]
    assert values(sheet)[0][:4] == ("row", "注文番号", "金額", "備考")
    assert values(sheet)[1][:4] == (2, "W-1", 1000, "請求書　No.5")
    assert read_csv(folder / "succeeded.csv")[0]["備考"] == "請求書　No.5"


def test_cancel_rows_without_an_amount_are_marked_as_full_refunds(
    tmp_path: Path,
) -> None:
    """The full-refund column, the defaults column and the Summary's loud line."""
    rows = [
        replace(
            answered(2, ("C-2", "", ""), "C-2", None, code="R001"),
            defaults={"amount": "full"},
        )
    ]
    batch = make_batch(operation="cancel")

    folder = write_results(
        build_report(batch, make_run(), rows, exit_code=0), tmp_path / "r"
    )

    book = openpyxl.load_workbook(folder / "results.xlsx")
    row = values(book["Succeeded"])[1]
    assert values(book["Succeeded"])[0][4] == "full refund"
    assert row[2:5] == (None, None, "FULL amount (no amount given)")
    assert row[-1] == "amount: not set (API default: the FULL amount of the order)"
    assert values(book["Summary"])[2][0] == (
        "FULL REFUNDS: 1 cancel row has no amount, so POP cancels or refunds the "
        "FULL amount of the order: 1 Succeeded (row 2)"
    )


def test_authorize_shows_the_booleans_sent_and_the_paynow_answer(
    tmp_path: Path,
) -> None:
    """Fields other than id and amount come from the request body as sent."""
    batch = make_batch(
        operation="authorize",
        headers=("order_id", "amount", "capture", "paynow_account_id", ""),
        columns={"order_id": 0, "amount": 1, "capture": 2, "paynow_account_id": 3},
    )
    row = answered(2, ("A-1", "500", "", "ACC-1", "x"), "A-1", 500, code="R004")
    row.state = RowState.SUCCEEDED
    row.request = '{"order_id": "A-1", "amount": 500, "paynow_account_id": "ACC-1", "dummy": true}'
    row.defaults = {"capture": "true"}
    assert row.outcome is not None
    assert row.outcome.response is not None
    response = {
        **row.outcome.response,
        "result_code": "R004",
        "paynow_default_card": True,
    }
    row.outcome = replace(row.outcome, result_code="R004", response=response)

    folder = write_results(
        build_report(batch, make_run(), [row], exit_code=0), tmp_path / "r"
    )

    sheet = openpyxl.load_workbook(folder / "results.xlsx")["Succeeded"]
    header, first = values(sheet)[:2]
    found = dict(zip(header, first, strict=True))
    assert header[:6] == (
        "row",
        "order_id",
        "amount",
        "capture",
        "paynow_account_id",
        "(column 5)",
    )
    assert first[:6] == (2, "A-1", 500, None, "ACC-1", "x")
    assert found["meaning"] == "Payment Authorized Successfully"
    assert found["paynow_default_card"] == "true"
    assert found["defaults"] == "capture: not set (API default true)"


def test_summary_shows_options_as_a_person_types_them() -> None:
    """yes and no, whole numbers without .0, a rate of 2.5 as 2.5, not set."""
    options = {
        "live": False,
        "skip_invalid": True,
        "rate": 100.0,
        "concurrency": 4,
        "max_total": None,
        "timeouts": {"connect": 5.0, "read": 2.5},
        "server_key_file": "/home/alice/.pop-key",
    }

    shown = visible_options(options)

    assert shown == [
        ("concurrency", "4"),
        ("live", "no"),
        ("max_total", "not set"),
        ("rate", "100"),
        ("skip_invalid", "yes"),
        ("timeouts", "connect=5, read=2.5"),
    ]
    assert [option_label(name) for name, _ in shown] == [
        "--concurrency",
        "--live",
        "--max-total",
        "--rate",
        "--skip-invalid",
        "--connect-timeout, --timeout",
    ]
