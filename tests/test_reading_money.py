"""Regression tests for two reading faults: refund headers and number formats.

A cancel file whose refund column was headed 返金（円）, Refund or 払戻 was
read as having no amount column, so every row refunded in full. An Excel
cell whose number format shows another number (5000000 as 5,000, 50 as
5000%, 0 as TRUE, or nothing at all) sent the stored number. Both are
checked through the command line, as a merchant meets them.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from harness import Popbatch

from popbatch.errors import ExitCode
from popbatch.io.numfmt import format_changes_value

AMOUNT_NAMES = (
    "金額, 決済金額, 請求金額, 売上金額, 取引金額, 返金額, 返金金額, 取消金額"
)


def refused_as_money(name: str, header: str, letter: str, word: str) -> list[str]:
    """The two lines (Error and hint) that refuse a cancel file without amounts."""
    return [
        f'Error: {name}: column "{header}" ({letter}) looks like amount (its header '
        f'holds "{word}") but is not a name popbatch reads, and the file has no '
        "amount column: every row would cancel or refund the FULL amount of its "
        "order",
        f'Name it "amount" (or {AMOUNT_NAMES}) if it holds the amounts to send; '
        f"popbatch does not guess. To carry it through unread, give it a header "
        f'without "{word}" (README "Headers" lists the words that read as money).',
    ]


@pytest.mark.parametrize(
    ("header", "word"),
    [
        ("返金（円）", "円"),
        ("返金(円)", "円"),
        ("Refund", "refund"),
        ("refund", "refund"),
        ("返金", "返金"),
        ("払戻", "払戻"),
        ("払い戻し", "払い戻し"),
        ("refund (JPY)", "jpy"),
        ("Refund [yen]", "yen"),
        ("返品", "返品"),
        ("キャンセル", "キャンセル"),
        ("cancel", "cancel"),
        ("取消", "取消"),
        ("請求", "請求"),
        ("Price", "price"),
        ("total", "total"),
        ("返金理由（円）", "円"),
        ("備考 (¥)", "¥"),
        ("返還", "返還"),
        ("返戻金", "返戻"),
        ("返金済", "返金"),
        ("キャンセル済み", "キャンセル"),
        ("入金", "入金"),
        ("売上", "売上"),
        ("支払い", "支払"),
        ("決済額", "額"),
        ("手数料", "手数料"),
        ("chargeback", "chargeback"),
        ("Credit", "credit"),
        ("sum", "sum"),
        ("Payment", "payment"),
        ("paid", "paid"),
        ("Charges", "charges"),
        ("refund_fee", "refund"),
        ("fee", "fee"),
        ("Surcharge", "surcharge"),
    ],
)
def test_a_cancel_file_with_a_money_column_but_no_amount_is_refused(
    popbatch: Popbatch, header: str, word: str
) -> None:
    """A header that reads as money, unit and all, refuses a file with no amount."""
    path = popbatch.write("refunds.csv", f"order_id,{header},備考\nRF-1,1000,x\n")

    checked = popbatch.validate("cancel", path)

    assert checked.exit_code == ExitCode.INPUT_REFUSED
    assert checked.said == refused_as_money("refunds.csv", header, "B", word)


@pytest.mark.parametrize(("header", "word"), [("返金済", "返金"), ("手数料", "手数料")])
def test_a_refunded_flag_or_a_fee_column_refunds_nothing_in_full(
    popbatch: Popbatch, header: str, word: str
) -> None:
    """返金済 (a flag, or the sum refunded) and 手数料 are not ignored: exit 65 (e2e)."""
    popbatch.sandbox.add_order("RF-001", 5000, state="captured")
    path = popbatch.write("refunds.csv", f"order_id,{header}\nRF-001,1000\n")

    run = popbatch.run("cancel", path, "--skip-invalid")

    assert run.exit_code == ExitCode.INPUT_REFUSED
    assert run.said == refused_as_money("refunds.csv", header, "B", word)
    assert popbatch.sandbox.received() == 0
    assert popbatch.sandbox.order("RF-001").state == "captured"


def test_a_cp932_refund_file_headed_with_a_unit_sends_nothing(
    popbatch: Popbatch,
) -> None:
    """返金（円） was read as no amount and refunded 5,000 in full; now exit 65 (e2e)."""
    popbatch.sandbox.add_order("RF-001", 5000, state="captured")
    popbatch.sandbox.add_order("RF-002", 3000, state="captured")
    path = popbatch.write(
        "refunds_cp932.csv",
        "order_id,返金（円）,備考\r\nRF-001,1000,一部返品\r\nRF-002,500,一部返品\r\n",
        encoding="cp932",
    )

    run = popbatch.run("cancel", path, "--skip-invalid")
    checked = popbatch.validate("cancel", path)

    expected = refused_as_money("refunds_cp932.csv", "返金（円）", "B", "円")
    assert (run.exit_code, checked.exit_code) == (65, 65)
    assert run.said == checked.said == expected
    assert popbatch.sandbox.received() == 0
    assert [popbatch.sandbox.order(o).state for o in ("RF-001", "RF-002")] == [
        "captured",
        "captured",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        "返金理由,備考,memo",
        "refund_reason,Refund date,refundId",
        "返金日,取消日,キャンセル理由,返品数",
        "請求書番号,請求先,返金ステータス,RefundStatus",
        "返金理由,返金日,備考,memo,請求書番号",
        "返金済フラグ,返還理由,入金日,売上日,売上件数,支払方法,手数料区分",
        "summary,feedback,Credit card,paid_at,payment_id,paymentMethod,feeType",
    ],
)
def test_reason_date_and_id_columns_of_a_refund_are_carried(
    popbatch: Popbatch, headers: str
) -> None:
    """A refund word beside a reason, date, state or id word is text, not money."""
    cells = ",".join("x" for _ in headers.split(","))
    path = popbatch.write("refunds.csv", f"order_id,{headers}\nRF-1,{cells}\n")

    checked = popbatch.validate("cancel", path)

    assert checked.exit_code == 0, checked.stderr
    assert checked.said[-1] == (
        "refunds.csv: 1 row, all valid (encoding utf-8, comma-separated)"
    )


@pytest.mark.parametrize(
    ("operation", "text", "columns", "lookalike"),
    [
        (
            "capture",
            "order_id,返金（円）\nA-1,1000\n",
            '"order_id", "返金（円）"',
            ("返金（円）", "B", "円"),
        ),
        (
            "reauthorize",
            "order_id,original_order_id,Refund\nA-1,OLD-1,1000\n",
            '"order_id", "original_order_id", "Refund"',
            ("Refund", "C", "refund"),
        ),
    ],
)
def test_a_missing_amount_column_names_the_money_lookalike(
    popbatch: Popbatch,
    operation: str,
    text: str,
    columns: str,
    lookalike: tuple[str, str, str],
) -> None:
    """Where amount is required, the missing-column refusal names the look-alike."""
    path = popbatch.write("orders.csv", text)
    header, letter, word = lookalike

    checked = popbatch.validate(operation, path)

    assert checked.exit_code == ExitCode.INPUT_REFUSED
    assert checked.said == [
        f'Error: orders.csv has no "amount" column for {operation} (row 1, the '
        f"header, has {columns})",
        f'Name the column amount (or {AMOUNT_NAMES}). Column "{header}" '
        f'({letter}) looks like amount (its header holds "{word}"): if it holds '
        "the values to send as amount, rename it; popbatch does not guess.",
    ]


# --- number formats -------------------------------------------------------------


def formatted_workbook(
    path: Path, rows: list[tuple[object, ...]], formats: dict[str, str]
) -> Path:
    """Write a reauthorize workbook; ``formats`` maps a cell (C2) to its format."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "orders"
    sheet.append(["order_id", "original_order_id", "amount", "capture"])
    for row in rows:
        sheet.append(row)
    for ref, code in formats.items():
        sheet[ref].number_format = code
    book.save(path)

    return path


def changed(label: str, ref: str, stored: str, code: str, shown: str, why: str) -> str:
    """The rejection of a cell whose format shows another number."""
    return (
        f"{label} cell {ref} stores the number {stored}, but its number format "
        f"{code} {shown} ({why}); popbatch reads the stored {stored}, not what "
        f"Excel shows. Format column {ref[0]} as General (or #,##0) and check the "
        "value."
    )


FORMAT_ROWS: list[tuple[object, ...]] = [
    ("NF-001", "ORDER-0001", 5000000, True),
    ("NF-002", "ORDER-0001", 5, True),
    ("NF-003", "ORDER-0001", 50, True),
    ("NF-004", "ORDER-0001", 3000, True),
    ("NF-005", "ORDER-0001", 1000, 0),
]
FORMATS = {
    "C2": "#,##0,",
    "C3": '0"000"',
    "C4": "0%",
    "C5": ";;;",
    "D6": '"TRUE";"TRUE";"TRUE"',
}
FORMAT_PROBLEMS = [
    changed(
        "amount",
        "C2",
        "5000000",
        "#,##0,",
        "shows it as 5,000 in Excel",
        "a comma at the end of the format divides it by 1,000",
    ),
    changed(
        "amount",
        "C3",
        "5",
        '0"000"',
        "shows it as 5000 in Excel",
        "the format adds digits of its own",
    ),
    changed(
        "amount",
        "C4",
        "50",
        "0%",
        "shows it as 5000% in Excel",
        "% multiplies it by 100",
    ),
    changed(
        "amount",
        "C5",
        "3000",
        ";;;",
        "shows nothing in Excel",
        "the format hides the value",
    ),
    changed(
        "capture",
        "D6",
        "0",
        '"TRUE";"TRUE";"TRUE"',
        "shows it as TRUE in Excel",
        "the format shows text in place of the number",
    ),
]


def test_cells_whose_format_shows_another_number_are_rejected(
    popbatch: Popbatch,
) -> None:
    """5,000 / 5000 / 5000% / nothing / TRUE on screen: exit 65, each cell named."""
    path = formatted_workbook(popbatch.root / "formats.xlsx", FORMAT_ROWS, FORMATS)

    checked = popbatch.validate("reauthorize", path)
    run = popbatch.run("reauthorize", path)

    values = ["'5000000'", "'5'", "'50'", "'3000'", "'0'"]
    columns = ["amount"] * 4 + ["capture"]
    table = [
        f"{row} {column} {value} {' '.join(problem.split())}"
        for row, column, value, problem in zip(
            range(2, 7), columns, values, FORMAT_PROBLEMS, strict=True
        )
    ]
    assert (checked.exit_code, run.exit_code) == (65, 65)
    assert checked.problem_table() == run.problem_table() == table
    assert popbatch.sandbox.received() == 0


def test_plain_yen_formats_send_and_other_numbers_are_rejected(
    popbatch: Popbatch,
) -> None:
    """Grouping, ¥, 円 and decimals of zeros send the number; the others are Rejected."""
    plain = [
        "#,##0",
        '#,##0 "円"',
        "¥#,##0",
        "0",
        "General",
        "[$¥-411]#,##0",
        "#,##0_);(#,##0)",
        '"¥"#,##0;[Red]"¥"-#,##0',
        "#,##0.00",
        "#,##0;△#,##0",
    ]
    rows = FORMAT_ROWS + [
        (f"OK-{n}", "ORDER-0001", 1000 + n, True) for n in range(len(plain))
    ]
    formats = FORMATS | {f"C{7 + n}": code for n, code in enumerate(plain)}
    path = formatted_workbook(popbatch.root / "formats.xlsx", rows, formats)
    popbatch.sandbox.add_order("ORDER-0001", 9000)

    run = popbatch.run("reauthorize", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert {o: body["amount"] for o, body in popbatch.sent().items()} == {
        f"OK-{n}": 1000 + n for n in range(len(plain))
    }
    columns = ["amount"] * 4 + ["capture"]
    assert run.column("Rejected", "reasons") == {
        f"NF-00{n}": f"{column}: {problem}"
        for n, column, problem in zip(
            range(1, 6), columns, FORMAT_PROBLEMS, strict=True
        )
    }


def test_id_and_default_card_cells_whose_format_shows_another_value_are_rejected(
    popbatch: Popbatch,
) -> None:
    """An id hidden by ;;; and a default-card 0 shown as TRUE are rejected too."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(
        [
            "order_id",
            "amount",
            "paynow_account_id",
            "paynow_card_id",
            "paynow_default_card",
        ]
    )
    sheet.append([123, 1000, "ACC-1", "C-1", 1])
    sheet.append(["PA-2", 1000, "ACC-1", "C-1", 0])
    sheet["A2"].number_format = ";;;"
    sheet["E3"].number_format = '"TRUE";"TRUE";"TRUE"'
    book.save(popbatch.root / "paynow.xlsx")

    checked = popbatch.validate("authorize", popbatch.root / "paynow.xlsx")

    assert checked.exit_code == 65
    problems = [line.split(" ", 3) for line in checked.problem_table()]
    assert [(row, value, problem) for row, _, value, problem in problems] == [
        (
            "2",
            "'123'",
            changed(
                "order_id",
                "A2",
                "123",
                ";;;",
                "shows nothing in Excel",
                "the format hides the value",
            ),
        ),
        (
            "3",
            "'0'",
            changed(
                "paynow_default_card",
                "E3",
                "0",
                '"TRUE";"TRUE";"TRUE"',
                "shows it as TRUE in Excel",
                "the format shows text in place of the number",
            ),
        ),
    ]


@pytest.mark.parametrize(
    ("code", "value", "expected"),
    [
        ("#,##0,", 5000000, ("scaled", "5,000")),
        ("#,##0,,", 5000000, ("scaled", "5")),
        ('0"000"', 5, ("digits", "5000")),
        ("0\\0", 5, ("digits", "50")),
        ("0%", 50, ("percent", "5000%")),
        (";;;", 3000, ("hidden", "")),
        ("#", 0, ("hidden", "")),
        ('"TRUE";"TRUE";"TRUE"', 0, ("text", "TRUE")),
        ('#,##0;-#,##0;"-"', 0, ("text", "-")),
        ('#,##0"千円"', 5, ("unit", "5千円")),
        ('#,##0 "k"', 5, ("unit", "5 k")),
        ("0.00E+00", 5123, ("other", None)),
        ("[>100]0;0", 5, ("other", None)),
        ("[DBNum1]0", 5, ("other", None)),
        ('#,##0"."00', 150000, ("between", "1,500.00")),
        ("0\\.00", 1500, ("between", "15.00")),
        ('#,##0"."00', 5, ("between", "0.05")),
        ('0","000', 1234567, ("between", "1234,567")),
        ('0"-"000', 1234, ("between", "1-234")),
        ("0\\ 000", 1234, ("between", "1 234")),
        ("0 000", 1234, ("between", "1 234")),
        ('#"万"0000', 12345678, ("between", "1234万5678")),
        ("0_)000", 1234, ("between", "1 234")),
        ("[$¥-411]0[$¥-411]000", 1234, ("between", "¥1¥234")),
        ('#,##0;-0"."00', -150000, ("between", "-1500.00")),
        ('#,##0"."00;-#,##0', -150000, None),
        ("0.00.00", 5, ("between", "5.00.00")),
        ("#,##0", 5000, None),
        ('#,##0 "円"', 5000, None),
        ("¥#,##0", 5000, None),
        ("[$¥-411]#,##0", 5000, None),
        ("#,##0_);(#,##0)", 5000, None),
        ('_-[$¥-411]* #,##0_-;-[$¥-411]* #,##0_-;_-[$¥-411]* "-"_-;_-@_-', 5000, None),
        ("#,##0.00", 5000, None),
        ('"¥"#,##0;[Red]"¥"-#,##0', -5000, None),
        ("#,##0;△#,##0", -5000, None),
        ('_(* #,##0_);_(* (#,##0);_(* "-"_);_(@_)', 5000, None),
        ('_(* #,##0_);_(* (#,##0);_(* "-"_);_(@_)', -5000, None),
        ('_ ¥* #,##0_ ;_ ¥* -#,##0_ ;_ ¥* "-"_ ;_ @_ ', 5000, None),
        ("#,##0 ;(#,##0)", 5000, None),
        ("000000", 5, None),
        ("0", 0, None),
        ("@", 5, None),
        ("General", 5, None),
        ("[Red]0;[Blue]-0", 123, None),
    ],
)
def test_formats_that_show_another_number_are_told_apart(
    code: str, value: int, expected: tuple[str, str | None] | None
) -> None:
    """Scaling, percent, literal digits, hiding and text change the number; yen signs do not."""
    assert format_changes_value(code, value) == expected


def test_cells_with_text_between_their_digits_are_rejected(popbatch: Popbatch) -> None:
    """150000 shown as 1,500.00, 1500 as 15.00 and an id as 1-234: exit 65 (e2e)."""
    rows: list[tuple[object, ...]] = [
        ("LD-001", "ORDER-0001", 150000, True),
        ("LD-002", "ORDER-0001", 1500, True),
        (1234, "ORDER-0001", 1000, True),
        ("LD-004", "ORDER-0001", 1000, True),
    ]
    formats = {"C2": '#,##0"."00', "C3": "0\\.00", "A4": '0"-"000', "C5": "#,##0.00"}
    path = formatted_workbook(popbatch.root / "dots.xlsx", rows, formats)
    popbatch.sandbox.add_order("ORDER-0001", 9000)

    checked = popbatch.validate("reauthorize", path)
    run = popbatch.run("reauthorize", path, "--skip-invalid")

    between = "the format puts text between the digits"
    assert checked.exit_code == 65
    assert checked.problem_table() == [
        "2 amount '150000' amount cell C2 stores the number 150000, but its number "
        'format #,##0"."00 shows it as 1,500.00 in Excel (the format puts text '
        "between the digits); popbatch reads the stored 150000, not what Excel "
        "shows. Format column C as General (or #,##0) and check the value.",
        "3 amount '1500' amount cell C3 stores the number 1500, but its number "
        "format 0\\.00 shows it as 15.00 in Excel (the format puts text between "
        "the digits); popbatch reads the stored 1500, not what Excel shows. Format "
        "column C as General (or #,##0) and check the value.",
        "4 order_id '1234' "
        + changed(
            "order_id", "A4", "1234", '0"-"000', "shows it as 1-234 in Excel", between
        ),
    ]
    assert run.exit_code == 1, run.stderr
    assert {o: body["amount"] for o, body in popbatch.sent().items()} == {
        "LD-004": 1000
    }
