"""Regression tests for the reading faults an adversarial review found.

Each test names the fault it guards. They check the read + validate level
(``read_input`` and ``validate``), and, where money would have moved, the
command line against the sandbox: what reached POP, by the sandbox's own
record.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import xlsxwriter
from click.testing import CliRunner, Result

from popbatch.cli import main
from popbatch.errors import ExitCode, InputRefusedError, InputUnreadableError
from popbatch.io import normalise as norm
from popbatch.io.readers import read_input
from popbatch.operations import OPERATIONS
from popbatch.sandbox import SandboxServer
from popbatch.schema import Validation, validate

TEST_KEY = "Test-POP-Server-Key"

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def write(path: Path, text: str) -> Path:
    """Write a UTF-8 input file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path, operation: str = "capture") -> Validation:
    """Read and validate a file as a test run."""
    return validate(read_input(path), OPERATIONS[operation], live=False)


def requests(validation: Validation) -> list[dict[str, object]]:
    """The request fields of every valid row, in file order."""
    return [fields for _, fields in validation.iter_requests()]


def refusal(path: Path, operation: str) -> tuple[str, str | None]:
    """The message and hint of the InputRefusedError a file gets."""
    with pytest.raises(InputRefusedError) as caught:
        check(path, operation)

    return caught.value.message, caught.value.hint


def text(ref: str, value: str) -> str:
    """The XML of an inline text cell."""
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def workbook(
    path: Path, rows: list[str], *, calc: str = "", formats: tuple[str, ...] = ()
) -> Path:
    """Write a one-sheet workbook from the XML of its cells, a row per string.

    ``calc`` is the workbook's calcPr element; ``formats`` are the number
    formats of cell styles 1, 2, ...
    """
    sheet_rows = "".join(
        f'<row r="{number}">{cells}</row>' for number, cells in enumerate(rows, 1)
    )
    codes = "".join(
        f'<numFmt numFmtId="{164 + n}" formatCode="{code}"/>'
        for n, code in enumerate(formats)
    )
    styles = '<xf numFmtId="0"/>' + "".join(
        f'<xf numFmtId="{164 + n}"/>' for n in range(len(formats))
    )
    parts = {
        "_rels/.rels": f'<Relationships xmlns="{_RELS}"><Relationship Id="r1" '
        f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
        f'<sheet name="orders" sheetId="1" r:id="r1"/></sheets>{calc}</workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{_RELS}">'
        f'<Relationship Id="r1" Type="{_DOC}/worksheet" Target="sheet1.xml"/>'
        f'<Relationship Id="r2" Type="{_DOC}/styles" Target="styles.xml"/>'
        "</Relationships>",
        "xl/styles.xml": f'<styleSheet xmlns="{_MAIN}"><numFmts>{codes}</numFmts>'
        f"<cellXfs>{styles}</cellXfs></styleSheet>",
        "xl/sheet1.xml": f'<worksheet xmlns="{_MAIN}"><sheetData>{sheet_rows}'
        "</sheetData></worksheet>",
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)

    return path


def problems(validation: Validation) -> dict[int, list[tuple[str, str, str]]]:
    """Spreadsheet row -> (reason, column, message) of each problem."""
    return {
        row: [(p.reason, p.column or "", p.message) for p in found]
        for row, found in validation.rejected_rows()
    }


def run(
    tmp_path: Path, sandbox: SandboxServer, operation: str, path: Path, *options: str
) -> Result:
    """Run ``popbatch OPERATION FILE`` in process against the sandbox."""
    argv = [
        operation,
        str(path),
        "--endpoint",
        sandbox.base_url,
        "--journal",
        str(tmp_path / "journal.sqlite3"),
        "--out",
        str(tmp_path / "results"),
        "--rate",
        "0",
        *options,
    ]
    env = {"POP_SERVER_KEY": TEST_KEY, "POP_ENDPOINT": None, "POPBATCH_JOURNAL": None}

    return CliRunner().invoke(main, argv, env=env)


# --- 1. headers that look like a field but were carried unread -----------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("返金額（円）", "amount"),
        ("Amount (JPY)", "amount"),
        ("amount [yen]", "amount"),
        ("金額（円）（税込）", "amount"),
        ("決済金額【税込】", "amount"),
        ("※金額", "amount"),
        ("【必須】注文番号", "order_id"),
        ("注文番号*", "order_id"),
        ("Capture?", "capture"),
        ("売上確定：", "capture"),
        ("(memo)", None),
        ("備考（社内用）", None),
    ],
)
def test_a_bracketed_unit_or_note_and_marks_around_a_header_are_not_part_of_it(
    header: str, field: str | None
) -> None:
    """Unread headers: （円）, (JPY), [yen], (税込), 【必須】, ※ and ? hid the field."""
    assert norm.field_for_header(header) == field


@pytest.mark.parametrize("header", ["返金額（円）", "Amount (JPY)"])
def test_cancel_amounts_under_a_header_with_a_unit_are_sent(
    tmp_path: Path, header: str
) -> None:
    """Unread headers: a refund file's amounts under 返金額（円） were full refunds."""
    path = write(tmp_path / "refunds.csv", f"order_id,{header}\nRU-1,500\nRU-2,300\n")

    validation = check(path, "cancel")

    assert requests(validation) == [
        {"order_id": "RU-1", "amount": 500},
        {"order_id": "RU-2", "amount": 300},
    ]
    assert validation.notices == ()


def test_an_amount_column_and_the_same_name_with_a_unit_are_one_field_twice(
    tmp_path: Path,
) -> None:
    """Unread headers: amount beside Amount (JPY) is two amount columns, refused."""
    path = write(tmp_path / "orders.csv", "order_id,amount,Amount (JPY)\nA-1,1,2\n")

    assert refusal(path, "capture") == (
        'orders.csv: columns "amount", "Amount (JPY)" all mean amount (columns B '
        "and C); remove or rename all but one",
        "popbatch cannot know which column was meant, so it sends nothing.",
    )


def test_a_cancel_file_with_an_amount_lookalike_and_no_amount_column_is_refused(
    tmp_path: Path,
) -> None:
    """Unread headers: refund_amount was carried and every row refunded in full."""
    path = write(tmp_path / "refunds.csv", "order_id,refund_amount\nRU-1,500\n")

    assert refusal(path, "cancel") == (
        'refunds.csv: column "refund_amount" (B) looks like amount (its header '
        'holds "amount") but is not a name popbatch reads, and the file has no '
        "amount column: every row would cancel or refund the FULL amount of its "
        "order",
        'Name it "amount" (or 金額, 決済金額, 請求金額, 売上金額, 取引金額, 返金額, '
        "返金金額, 取消金額) if it holds the amounts to send; popbatch does not "
        'guess. To carry it through unread, give it a header without "amount" '
        '(README "Headers" lists the words that read as money).',
    )


@pytest.mark.parametrize(
    ("header", "word"), [("返金する額", "額"), ("Refund total", "total")]
)
def test_an_amount_word_in_a_cancel_file_without_amounts_is_refused(
    tmp_path: Path, header: str, word: str
) -> None:
    """Unread headers: a word of amount (not an accepted name) is enough there."""
    path = write(tmp_path / "refunds.csv", f"order_id,memo,{header}\nRU-1,x,500\n")

    message, _ = refusal(path, "cancel")

    assert message.startswith(
        f'refunds.csv: column "{header}" (C) looks like amount (its header holds '
        f'"{word}")'
    )


def test_a_reauthorize_file_with_a_capture_lookalike_is_refused(
    tmp_path: Path,
) -> None:
    """Unread headers: "capture flag" FALSE was ignored and the API default captured."""
    path = write(
        tmp_path / "reauth.csv",
        "order_id,original_order_id,amount,capture flag\nRA-1,OLD-1,1000,FALSE\n",
    )

    assert refusal(path, "reauthorize") == (
        'reauth.csv: column "capture flag" (D) looks like capture (its header '
        'holds "capture") but is not a name popbatch reads, and the file has no '
        "capture column: every row would be captured at once (the API default)",
        'Name it "capture" if it holds the values to send as capture; to carry it '
        "through unread, give it a header with none of: capture, 売上, 確定, 計上.",
    )


def test_an_authorize_file_with_a_card_lookalike_is_refused(tmp_path: Path) -> None:
    """Unread headers: a card id under another name would charge the standard card."""
    path = write(
        tmp_path / "paynow.csv",
        "order_id,amount,paynow_account_id,PayNow card\nPA-1,1000,ACC-1,C-1\n",
    )

    message, _ = refusal(path, "authorize")

    assert message == (
        'paynow.csv: column "PayNow card" (D) looks like paynow_card_id (its header '
        'holds "card") but is not a name popbatch reads, and the file has no '
        "paynow_card_id column: every row would charge the member's standard card"
    )


def test_a_lookalike_beside_the_column_that_is_read_is_refused(tmp_path: Path) -> None:
    """Unread headers: amount beside 合計金額 leaves popbatch guessing which is meant."""
    path = write(tmp_path / "orders.csv", "order_id,amount,合計金額\nA-1,1000,1100\n")

    assert refusal(path, "capture") == (
        'orders.csv: column "合計金額" (C) looks like amount (its header holds '
        '"金額") but is not a name popbatch reads; amount is read from column '
        '"amount" (B), and popbatch cannot tell which one you meant',
        'Remove or rename one of them; a header without "金額" is carried through '
        "unread.",
    )


@pytest.mark.parametrize(
    ("operation", "text"),
    [
        (
            "cancel",
            "order_id,備考,memo,customer,店舗,顧客名,返金理由,決済日,注文日時\n"
            "RU-1,a,b,c,d,e,f,g,h\n",
        ),
        (
            "capture",
            "order_id,amount,備考,memo,消費税額,決済方法,売上日\nA-1,1000,a,b,c,d,e\n",
        ),
        (
            "reauthorize",
            "order_id,original_order_id,amount,メモ,注文者\nA-1,OLD-1,1000,a,b\n",
        ),
        ("capture", "order_id,amount,元注文番号2,capture?\nA-1,1000,a,b\n"),
    ],
)
def test_ordinary_columns_are_carried_through(
    tmp_path: Path, operation: str, text: str
) -> None:
    """Unread headers: memo-like columns, and words of fields the file has, pass."""
    path = write(tmp_path / "orders.csv", text)

    validation = check(path, operation)

    assert validation.rejected == {}
    assert len(requests(validation)) == 1


@pytest.mark.sandbox
def test_a_refund_file_with_an_unread_amount_column_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Unread headers: refund_amount refunded in full, even with --skip-invalid (e2e)."""
    sandbox.add_order("RU-1", 10_000, state="captured")
    path = write(tmp_path / "refunds.csv", "order_id,refund_amount\nRU-1,500\n")

    result = run(tmp_path, sandbox, "cancel", path, "--skip-invalid")

    assert result.exit_code == ExitCode.INPUT_REFUSED
    assert result.stderr.splitlines()[-2:] == [
        'Error: refunds.csv: column "refund_amount" (B) looks like amount (its '
        'header holds "amount") but is not a name popbatch reads, and the file has '
        "no amount column: every row would cancel or refund the FULL amount of its "
        "order",
        'Name it "amount" (or 金額, 決済金額, 請求金額, 売上金額, 取引金額, 返金額, '
        "返金金額, 取消金額) if it holds the amounts to send; popbatch does not "
        'guess. To carry it through unread, give it a header without "amount" '
        '(README "Headers" lists the words that read as money).',
    ]
    assert sandbox.received() == 0


@pytest.mark.sandbox
def test_refund_amounts_under_a_header_with_a_unit_are_refunded_in_part(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Unread headers: 返金額（円） 500 and 300 refund 500 and 300, not everything (e2e)."""
    for order_id in ("RU-1", "RU-2"):
        sandbox.add_order(order_id, 10_000, state="captured")
    path = write(
        tmp_path / "refunds.csv", "order_id,返金額（円）\nRU-1,500\nRU-2,300\n"
    )

    result = run(tmp_path, sandbox, "cancel", path)

    assert result.exit_code == 0, result.stderr
    assert [request.json for request in sandbox.requests()] == [
        {"order_id": "RU-1", "amount": 500, "dummy": True},
        {"order_id": "RU-2", "amount": 300, "dummy": True},
    ]
    orders = [sandbox.order(order_id) for order_id in ("RU-1", "RU-2")]
    assert [order.refunded if order else None for order in orders] == [500, 300]


@pytest.mark.sandbox
def test_capture_false_under_a_header_with_a_question_mark_is_sent_false(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Unread headers: "Capture?" FALSE was ignored and the API default captured (e2e)."""
    sandbox.add_order("OLD-1", 1000)
    path = write(
        tmp_path / "reauth.csv",
        "order_id,original_order_id,amount,Capture?\nRA-1,OLD-1,1000,FALSE\n",
    )

    result = run(tmp_path, sandbox, "reauthorize", path)

    assert result.exit_code == 0, result.stderr
    assert [request.json for request in sandbox.requests("RA-1")] == [
        {
            "order_id": "RA-1",
            "original_order_id": "OLD-1",
            "amount": 1000,
            "capture": False,
            "dummy": True,
        }
    ]


# --- 2. formula results a workbook never calculated --------------------------------

STALE = (
    "{label} cell holds a formula ({formula}) whose saved result is not up to "
    "date: the workbook asks to be calculated when opened (a script wrote it) or "
    "was saved without calculating. Open it in Excel, let it calculate, and save "
    "it again."
)
REAUTH_HEADER = (
    text("A1", "order_id")
    + text("B1", "original_order_id")
    + text("C1", "amount")
    + text("D1", "capture")
)


def xlsxwriter_reauthorizations(path: Path) -> Path:
    """The reviewer's workbook: XlsxWriter saves 0 as every formula's result."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("orders")
    sheet.write_row(0, 0, ["order_id", "original_order_id", "amount", "capture"])
    sheet.write_row(1, 0, ["RF-1", "OLD-1", 1000])
    sheet.write_formula(1, 3, "=C2<5000")  # Excel shows TRUE
    sheet.write_formula(2, 0, '="RF-"&ROW()')  # Excel shows RF-3
    sheet.write_row(2, 1, ["OLD-3", 1000, True])
    book.close()

    return path


def test_formula_placeholders_of_a_workbook_never_calculated_are_rejected(
    tmp_path: Path,
) -> None:
    """Never-calculated formulas: =C2<5000 was sent as false and ="RF-"&ROW() as "0"."""
    path = xlsxwriter_reauthorizations(tmp_path / "reauth.xlsx")

    validation = check(path, "reauthorize")

    assert requests(validation) == []
    assert problems(validation) == {
        2: [
            (
                "formula_without_value",
                "capture",
                STALE.format(label="capture", formula="=C2<5000"),
            )
        ],
        3: [
            (
                "formula_without_value",
                "order_id",
                STALE.format(label="order_id", formula='="RF-"&ROW()'),
            )
        ],
    }


def test_formulas_of_a_workbook_saved_uncalculated_in_manual_mode_are_rejected(
    tmp_path: Path,
) -> None:
    """Never-calculated formulas: manual calculation, not calculated on saving."""
    path = workbook(
        tmp_path / "manual.xlsx",
        [
            text("A1", "order_id") + text("B1", "amount"),
            text("A2", "MC-1") + '<c r="B2"><f>500*2</f><v>900</v></c>',
        ],
        calc='<calcPr calcId="191029" calcMode="manual" calcOnSave="0"/>',
    )

    validation = check(path)

    assert problems(validation) == {
        2: [
            (
                "formula_without_value",
                "amount",
                STALE.format(label="amount", formula="=500*2"),
            )
        ]
    }


@pytest.mark.parametrize(
    "calc",
    [
        "",
        '<calcPr calcId="191029"/>',
        '<calcPr calcId="191029" calcMode="manual"/>',
        '<calcPr iterateCount="100" refMode="A1" iterate="false"/>',
    ],
)
def test_saved_results_of_a_calculated_workbook_are_read(
    tmp_path: Path, calc: str
) -> None:
    """Never-calculated formulas: Excel's and LibreOffice's saved results still count."""
    path = workbook(
        tmp_path / "calculated.xlsx",
        [
            REAUTH_HEADER,
            text("A2", "CW-1")
            + text("B2", "OLD-1")
            + '<c r="C2"><f>500*2</f><v>1000</v></c>'
            + '<c r="D2" t="b"><f>C2&lt;5000</f><v>1</v></c>',
            text("A3", "CW-2")
            + text("B3", "OLD-2")
            + '<c r="C3"><v>2000</v></c>'
            + '<c r="D3" t="b"><f aca="false">FALSE()</f><v>0</v></c>',
        ],
        calc=calc,
    )

    validation = check(path, "reauthorize")

    assert requests(validation) == [
        {
            "order_id": "CW-1",
            "original_order_id": "OLD-1",
            "amount": 1000,
            "capture": True,
        },
        {
            "order_id": "CW-2",
            "original_order_id": "OLD-2",
            "amount": 2000,
            "capture": False,
        },
    ]


def test_the_libreoffice_case_still_sends_its_booleans() -> None:
    """Never-calculated formulas: case 11's =TRUE() and =FALSE() keep their results."""
    path = Path(__file__).parent / "data/cases/11-booleans-libreoffice"

    validation = check(path / "libreoffice_saved.xlsx", "reauthorize")

    assert [fields["capture"] for fields in requests(validation)] == [True, False]


@pytest.mark.parametrize("result", ["", " "])
def test_an_empty_formula_result_in_a_read_column_is_not_a_blank_cell(
    tmp_path: Path, result: str
) -> None:
    """Never-calculated formulas: =IF(..,"",..) in a refund amount refunded in full."""
    formula = '<f>IF(C2="","",C2)</f>'
    path = workbook(
        tmp_path / "refunds.xlsx",
        [
            text("A1", "order_id") + text("B1", "amount") + text("C1", "memo"),
            text("A2", "EF-1") + f'<c r="B2" t="str">{formula}<v>{result}</v></c>',
            text("A3", "EF-2")
            + '<c r="B3"><v>500</v></c>'
            + f'<c r="C3" t="str">{formula}<v>{result}</v></c>',
        ],
        calc='<calcPr calcId="191029"/>',
    )

    validation = check(path, "cancel")

    assert problems(validation) == {
        2: [
            (
                "formula_without_value",
                "amount",
                'amount cell holds a formula (=IF(C2="","",C2)) whose result is '
                "empty; a formula is not read as a blank cell. Type the value, or "
                "clear the cell.",
            )
        ]
    }
    assert requests(validation) == [{"order_id": "EF-2", "amount": 500}]


@pytest.mark.sandbox
def test_a_never_calculated_workbook_sends_no_placeholder(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Never-calculated formulas: no capture false, no order id "0" (e2e)."""
    sandbox.add_order("OLD-1", 1000)
    sandbox.add_order("OLD-3", 1000)
    path = xlsxwriter_reauthorizations(tmp_path / "reauth.xlsx")

    result = run(tmp_path, sandbox, "reauthorize", path, "--skip-invalid")

    assert result.exit_code == 1
    assert "  Rejected         2 rows               0 yen" in result.stderr
    assert sandbox.received() == 0


# --- 3. TRUE/FALSE cells holding neither ---------------------------------------------


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ('<c r="D2" t="b"><v>TRUE</v></c>', "stores 'TRUE'"),
        ('<c r="D2" t="b"><v>2</v></c>', "stores '2'"),
        ('<c r="D2" t="b"><v>-1</v></c>', "stores '-1'"),
        ('<c r="D2" t="b"><v/></c>', "stores nothing"),
    ],
)
def test_a_boolean_cell_holding_neither_true_nor_false_is_rejected(
    tmp_path: Path, cell: str, stored: str
) -> None:
    """Odd TRUE/FALSE cells: <v>TRUE</v>, <v>2</v> and <v/> were sent as false."""
    path = workbook(
        tmp_path / "reauth.xlsx",
        [
            REAUTH_HEADER,
            text("A2", "BC-1")
            + text("B2", "OLD-1")
            + '<c r="C2"><v>1000</v></c>'
            + cell,
        ],
    )

    validation = check(path, "reauthorize")

    assert problems(validation) == {
        2: [
            (
                "boolean_cell_invalid",
                "capture",
                f"capture is a TRUE/FALSE cell that {stored}, which is neither TRUE "
                "nor FALSE; set the cell to TRUE or FALSE in Excel and save the file "
                "again.",
            )
        ]
    }


@pytest.mark.parametrize(
    ("stored", "sent"), [("1", True), ("true", True), ("0", False), ("false", False)]
)
def test_boolean_cells_holding_one_zero_true_or_false_are_read(
    tmp_path: Path, stored: str, sent: bool
) -> None:
    """Odd TRUE/FALSE cells: the values the format allows are still booleans."""
    path = workbook(
        tmp_path / "reauth.xlsx",
        [
            REAUTH_HEADER,
            text("A2", "BC-1")
            + text("B2", "OLD-1")
            + '<c r="C2"><v>1000</v></c>'
            + f'<c r="D2" t="b"><v>{stored}</v></c>',
        ],
    )

    validation = check(path, "reauthorize")

    assert [fields["capture"] for fields in requests(validation)] == [sent]


def test_an_odd_boolean_cell_in_a_memo_column_is_carried(tmp_path: Path) -> None:
    """Odd TRUE/FALSE cells: a column popbatch does not read keeps the stored text."""
    path = workbook(
        tmp_path / "orders.xlsx",
        [
            text("A1", "order_id") + text("B1", "amount") + text("C1", "memo"),
            text("A2", "BM-1")
            + '<c r="B2"><v>1000</v></c><c r="C2" t="b"><v>2</v></c>',
        ],
    )

    validation = check(path)

    assert validation.rejected == {}
    assert validation.table.cells[2].tolist() == ["2"]


@pytest.mark.sandbox
def test_an_odd_boolean_cell_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Odd TRUE/FALSE cells: exit 65 and no request for <v>2</v> (e2e)."""
    sandbox.add_order("OLD-1", 1000)
    path = workbook(
        tmp_path / "reauth.xlsx",
        [
            REAUTH_HEADER,
            text("A2", "BC-1")
            + text("B2", "OLD-1")
            + '<c r="C2"><v>1000</v></c>'
            + '<c r="D2" t="b"><v>2</v></c>',
        ],
    )

    result = run(tmp_path, sandbox, "reauthorize", path)

    assert result.exit_code == 65
    assert sandbox.received() == 0


# --- 4. card numbers in full-width digits or with other separators ------------------


@pytest.mark.parametrize(
    "memo",
    [
        "カード ４１１１１１１１１１１１１１１１",
        "４１１１\u3000１１１１\u3000１１１１\u3000１１１１",
        "4111\u00a01111\u00a01111\u00a01111",
        "4111\u20101111\u20101111\u20101111",
        "4111－1111－1111－1111",
        "5555ー5555ー5555ー4444",
        "4111 - 1111 - 1111 - 1111",
        "4111\u200b1111\u200b1111\u200b1111",
    ],
)
def test_card_numbers_in_other_widths_and_separators_refuse_the_file(
    tmp_path: Path, memo: str
) -> None:
    """Hidden card numbers: full-width digits, NBSP, U+3000, ‐ and － passed."""
    path = write(tmp_path / "orders.csv", f"order_id,amount,memo\nCC-1,1000,{memo}\n")

    message, hint = refusal(path, "capture")

    assert (message, hint) == (
        'orders.csv: column "memo" (C) holds what look like card numbers in 1 cell '
        "(row 2); popbatch refuses files that hold card numbers",
        "Delete those numbers (or the column) and save the file again.",
    )


@pytest.mark.parametrize(
    "memo",
    [
        "４１１１１１１１１１１１１１１２",  # fails the Luhn check
        "４９１２３４５６７８９０４",  # a 13-digit JAN code
        "電話 ０３－１２３４－５６７８ ／ ０９０－１２３４－５６７８",
        "4111    1111 1111 1111",  # four spaces: no longer one number
    ],
)
def test_long_numbers_that_are_no_card_numbers_are_carried(
    tmp_path: Path, memo: str
) -> None:
    """Hidden card numbers: the wider scan still needs a brand, a length and Luhn."""
    path = write(tmp_path / "orders.csv", f"order_id,amount,memo\nCC-1,1000,{memo}\n")

    validation = check(path)

    assert validation.table.cells[2].tolist() == [memo]
    assert validation.rejected == {}


@pytest.mark.sandbox
def test_a_full_width_card_number_is_never_sent_nor_written(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Hidden card numbers: exit 65, nothing sent, no digits in the output (e2e)."""
    sandbox.add_order("CC-1", 1000)
    path = write(
        tmp_path / "orders.csv",
        "order_id,amount,memo\nCC-1,1000,４１１１\u3000１１１１\u3000１１１１\u3000１１１１\n",
    )

    result = run(tmp_path, sandbox, "capture", path, "--skip-invalid")

    assert result.exit_code == 65
    assert result.stderr == (
        'Error: orders.csv: column "memo" (C) holds what look like card numbers in '
        "1 cell (row 2); popbatch refuses files that hold card numbers\n"
        "Delete those numbers (or the column) and save the file again.\n"
    )
    assert sandbox.received() == 0
    assert [written.name for written in tmp_path.iterdir()] == ["orders.csv"]


# --- 5. one stray value far to the right --------------------------------------------

SPLIT_XFD = (
    "this row has text in column XFD, which has no header (the last named column "
    "is B): a value with a comma and no quotes, such as 1,000, is split across "
    'cells. Quote it ("1,000") or remove the comma, or give the column a header.'
)


def test_a_stray_csv_value_in_column_xfd_adds_no_column(tmp_path: Path) -> None:
    """Far-right stray: 16,384 columns on every row took minutes and gigabytes."""
    lines = ["order_id,amount"] + [f"W-{n},1000" for n in range(2, 5_002)]
    lines[5] = "W-6,1000" + "," * 16_382 + "stray"
    path = write(tmp_path / "wide.csv", "\n".join(lines) + "\n")

    validation = check(path)

    assert validation.table.headers == ("order_id", "amount")
    assert validation.table.cells.shape == (5_000, 2)
    assert problems(validation) == {6: [("unnamed_text", "column XFD", SPLIT_XFD)]}
    assert validation.rejected_rows()[0][1][0].value == "stray"
    assert len(requests(validation)) == 4_999


@pytest.mark.parametrize("quote", ["", '"'])
def test_csv_rows_padded_far_past_the_header_keep_the_header_width(
    tmp_path: Path, quote: str
) -> None:
    """Far-right stray: every row padded with empty cells (as Excel pads) stays narrow."""
    pad = "," * 3_000
    lines = [f"order_id,amount{pad}"] + [
        f"{quote}P-{n}{quote},1000{pad}" for n in range(2, 1_002)
    ]
    lines[7] = f"P-8,1000{pad[:-1]}stray"
    path = write(tmp_path / "padded.csv", "\n".join(lines) + "\n")

    validation = check(path)

    assert validation.table.cells.shape == (1_000, 2)
    assert [
        (row, [p.reason for p in found]) for row, found in validation.rejected_rows()
    ] == [(8, ["unnamed_text"])]
    assert validation.rejected_rows()[0][1][0].column == "column DKK"


def test_a_row_with_text_only_far_right_is_a_row(tmp_path: Path) -> None:
    """Far-right stray: a row holding nothing but the stray is not taken for blank."""
    text = "order_id,amount\nW-1,1000\n" + "," * 16_383 + "stray\nW-3,1000\n"
    path = write(tmp_path / "wide.csv", text)

    validation = check(path)

    assert validation.table.blank_rows == ()
    assert [p.reason for p in validation.rejected[1]] == [
        "order_id_required",
        "amount_required",
        "unnamed_text",
    ]


def test_a_stray_value_far_right_in_the_header_is_refused(tmp_path: Path) -> None:
    """Far-right stray: a header cell in XFD would make every row 16,384 wide."""
    text = "order_id,amount" + "," * 16_382 + "x\nW-1,1000\n"
    path = write(tmp_path / "wide.csv", text)

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path)

    assert (caught.value.message, caught.value.hint) == (
        "wide.csv: header cell XFD1 holds 'x', past column AMJ, the last column "
        "popbatch reads",
        "Delete it (a value typed far to the right by mistake?) and save the file "
        "again.",
    )
    assert caught.value.exit_code is ExitCode.INPUT_UNREADABLE


def far_right_workbook(path: Path, *, stray: str, header_stray: bool = False) -> Path:
    """3,000 capture rows; row 6 (or the header) has ``stray`` in column XFD."""
    rows = [text("A1", "order_id") + text("B1", "amount")]
    rows += [
        text(f"A{n}", f"X-{n}") + f'<c r="B{n}"><v>1000</v></c>'
        for n in range(2, 3_002)
    ]
    at = 0 if header_stray else 5
    rows[at] += text(f"XFD{at + 1}", stray)

    return workbook(path, rows)


def test_a_stray_workbook_value_in_column_xfd_adds_no_column(tmp_path: Path) -> None:
    """Far-right stray: the workbook keeps its header's width and says what it left."""
    path = far_right_workbook(tmp_path / "wide.xlsx", stray="stray")

    validation = check(path)

    assert validation.table.cells.shape == (3_000, 2)
    assert [
        (p.row, p.column, p.reason, p.value) for p in validation.table.problems
    ] == [(6, 16_383, "text_past_header", "stray")]
    assert validation.rejected == {}
    assert validation.notices == (
        "Row 6 has text more than 16 columns past column B, the last with a header "
        "(first in XFD6); popbatch does not read it or carry it into the results: "
        "move it under a header to keep it",
    )


def test_a_stray_workbook_header_far_right_is_refused(tmp_path: Path) -> None:
    """Far-right stray: a header cell in XFD of a workbook is refused too."""
    path = far_right_workbook(tmp_path / "wide.xlsx", stray="x", header_stray=True)

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path)

    assert caught.value.message == (
        "sheet 'orders' of wide.xlsx: header cell XFD1 holds 'x', past column AMJ, "
        "the last column popbatch reads"
    )


@pytest.mark.parametrize("name", ["wide.csv", "wide.xlsx"])
def test_a_card_number_far_right_refuses_the_file(tmp_path: Path, name: str) -> None:
    """Far-right stray: text in no column is still checked for card numbers."""
    card = "4111 1111 1111 1111"
    if name.endswith(".csv"):
        path = write(
            tmp_path / name,
            "order_id,amount\nW-1,1000\nW-2,1000" + "," * 16_382 + card + "\n",
        )
    else:
        path = far_right_workbook(tmp_path / name, stray=card)
    row = 3 if name.endswith(".csv") else 6

    message, _ = refusal(path, "capture")

    assert message.endswith(
        f'column "column XFD" (XFD) holds what look like card numbers in 1 cell '
        f"(row {row}); popbatch refuses files that hold card numbers"
    )
    assert "1111" not in message


def test_validate_of_a_csv_with_a_far_right_stray_names_the_row(tmp_path: Path) -> None:
    """Far-right stray: the reviewer's 20,000-row file is refused at once (CLI)."""
    lines = ["order_id,amount"] + [f"W-{n},1000" for n in range(2, 20_002)]
    lines[5] = "W-6,1000" + "," * 16_382 + "stray"
    path = write(tmp_path / "wide.csv", "\n".join(lines) + "\n")

    result = CliRunner().invoke(
        main,
        ["validate", "capture", str(path), "--out", str(tmp_path / "out")],
        env={"POP_SERVER_KEY": None, "POP_ENDPOINT": None, "POPBATCH_JOURNAL": None},
    )

    assert result.exit_code == 65
    assert result.stderr == (
        "wide.csv: 20,000 rows, 19,999 valid, 1 rejected (encoding utf-8, "
        "comma-separated)\n"
        f"Rejected rows: {tmp_path}/out/wide-capture-validate/rejected.csv\n"
    )
