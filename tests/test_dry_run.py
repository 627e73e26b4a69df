"""--dry-run: read, validate, apply the journal's rules and the control totals; send nothing.

A dry run needs no key and no terminal (also with --live). It writes
preview.csv with the exact request body each row would be sent with, and
exits 0, or 65 when a real run would be refused. The sandbox's counters
prove that nothing reached POP.
"""

from __future__ import annotations

import openpyxl
import pytest
from harness import Popbatch
from run_output import Results

pytestmark = pytest.mark.sandbox


@pytest.fixture
def ws(ws: Popbatch) -> Popbatch:
    """A workspace with two captured orders and a refund file for them."""
    ws.sandbox.add_order("R-1", 5000, state="captured")
    ws.sandbox.add_order("R-2", 3000, state="captured")
    ws.write("refunds.csv", 'order_id,amount,memo\nR-1,"1,000",part\nR-2,,all\n')
    return ws


def preview(ws: Popbatch, name: str = "refunds-cancel-dry-run") -> list[dict[str, str]]:
    """The rows of the dry run's preview.csv."""
    return Results(ws.out / name).csv("preview.csv")


def test_a_dry_run_needs_no_key_and_sends_nothing(ws):
    """No POP_SERVER_KEY: exit 0, the summary on stderr, POP's counters at zero.

    Without a journal the preview says that it knows no earlier batches, and
    creates none.
    """
    ws.fresh_journal = True
    result = ws.run("cancel", "refunds.csv", "--dry-run", key=None)

    assert (result.exit_code, result.stdout) == (0, "")
    assert ws.mask(result.stderr) == (
        "Note: 1 row has no amount: each cancels or refunds the FULL amount of its "
        "order (row 3)\n"
        "Warning: no journal at WORK/journal.sqlite3: the preview knows no earlier "
        "batches, so nothing can be recognised as already done\n"
        "dry run (test, dummy true): 2 rows would be sent, total 1,000 yen; "
        "nothing was sent\n"
        "FULL REFUND: 1 row without an amount would refund the full amount of the "
        "order (rows 3)\n"
        "preview of the exact requests: WORK/out/refunds-cancel-dry-run/preview.csv\n"
    )
    assert ws.sandbox.counters()["received"] == 0
    assert not ws.journal.exists()


def test_the_preview_holds_the_exact_request_bodies(ws):
    """The bodies a real run would send, byte for byte, dummy true."""
    ws.run("cancel", "refunds.csv", "--dry-run", key=None)

    assert preview(ws) == [
        {
            "row": "2",
            "order_id": "R-1",
            "would be": "sent",
            "request": '{"order_id": "R-1", "amount": 1000, "dummy": true}',
            "why not sent": "",
            "changes": "amount: '1,000' → 1000",
        },
        {
            "row": "3",
            "order_id": "R-2",
            "would be": "sent",
            "request": '{"order_id": "R-2", "dummy": true}',
            "why not sent": "",
            "changes": "",
        },
    ]


def test_a_live_dry_run_needs_no_terminal_and_previews_dummy_false(ws):
    """--live --dry-run without --yes from a real process: no question, exit 0."""
    result = ws.subprocess(
        *ws.argv("cancel", "refunds.csv", "--live", "--dry-run"), key=None
    )

    assert result.exit_code == 0
    assert ws.mask(result.stderr).splitlines()[1] == (
        "dry run (LIVE, dummy false): 2 rows would be sent, total 1,000 yen; "
        "nothing was sent"
    )
    assert [row["request"] for row in preview(ws)] == [
        '{"order_id": "R-1", "amount": 1000, "dummy": false}',
        '{"order_id": "R-2", "dummy": false}',
    ]
    assert ws.sandbox.counters()["received"] == 0


def test_a_quiet_dry_run_of_a_good_file_prints_nothing(ws):
    """-q: exit 0 and silence, like a run that succeeded."""
    result = ws.run("cancel", "refunds.csv", "--dry-run", "--quiet", key=None)

    assert (result.exit_code, result.output) == (0, "")
    assert (ws.out / "refunds-cancel-dry-run" / "preview.csv").exists()


def test_a_dry_run_of_a_file_with_invalid_rows_exits_65_with_the_table(ws):
    """The same refusal a real run gives, with nothing sent."""
    ws.write("bad.csv", "order_id,amount\nR-1,1000\nR 2,10\n")

    result = ws.run("cancel", "bad.csv", "--dry-run", key=None)

    assert result.exit_code == 65
    assert ws.mask(result.stderr) == (
        "    row  column             value                problem\n"
        "      3  order_id           'R 2'                order_id 'R 2' has "
        "characters outside A-Z a-z 0-9 - _: ' '\n"
        "Rejected rows: WORK/out/bad-cancel-validate/rejected.csv\n"
        "Error: bad.csv: 1 of 2 rows are invalid; nothing was sent\n"
        "Fix them (see the table above), or send the valid rows with "
        "--skip-invalid.\n"
    )
    assert ws.sandbox.counters()["received"] == 0


def test_a_dry_run_with_skip_invalid_previews_the_valid_rows(ws):
    """--skip-invalid: the invalid row is listed as rejected in the preview."""
    ws.write("bad.csv", "order_id,amount\nR-1,1000\nR 2,10\n")

    result = ws.run("cancel", "bad.csv", "--dry-run", "--skip-invalid", key=None)

    assert result.exit_code == 0
    assert [
        (row["row"], row["would be"]) for row in preview(ws, "bad-cancel-dry-run")
    ] == [
        ("2", "sent"),
        ("3", "rejected"),
    ]
    assert ws.mask(result.stderr).splitlines()[-2] == "1 row would be rejected"


def test_a_dry_run_checks_the_control_totals(ws):
    """--expect-rows that does not match: exit 65, as a real run would."""
    result = ws.run(
        "cancel", "refunds.csv", "--dry-run", "--expect-rows", "3", key=None
    )

    assert result.exit_code == 65
    assert result.stderr.splitlines()[-2:] == [
        "Error: --expect-rows 3, but this batch sends 2 rows; nothing was sent",
        "Check the file against what was approved.",
    ]


def test_a_dry_run_applies_the_journals_rules_across_batches(ws):
    """After a real run refunded R-1 fully, a new file's R-1 would be skipped."""
    ws.write("first.csv", "order_id,amount\nR-1,\n")
    first = ws.run("cancel", "first.csv", "--quiet")
    ws.write("again.csv", "order_id,amount\nR-1,\nR-2,500\n")

    result = ws.run("cancel", "again.csv", "--dry-run", key=None)

    assert first.exit_code == 0
    assert result.exit_code == 0
    rows = preview(ws, "again-cancel-dry-run")
    assert [(row["row"], row["would be"]) for row in rows] == [
        ("2", "skipped"),
        ("3", "sent"),
    ]
    assert rows[0]["why not sent"].startswith("already fully cancelled in batch 1")
    assert ws.sandbox.received(endpoint="card-cancel") == 1


def test_the_preview_names_each_cell_that_reading_changed_in_a_csv(ws):
    """Spaces, full-width forms, a yen sign, commas, 1 for true: cell → value sent."""
    ws.write(
        "typed.csv",
        "order_id,original_order_id,amount,capture\n"
        "\u3000Ｎ－３ ,R-1,￥１，２００,1\n"
        'N-4,R-2," 1,500円 ",\n'
        "N-5,R-3,700,TRUE\n",
    )

    result = ws.run("reauthorize", "typed.csv", "--dry-run", key=None)

    assert result.exit_code == 0
    rows = preview(ws, "typed-reauthorize-dry-run")
    assert [(row["order_id"], row["changes"]) for row in rows] == [
        (
            "N-3",
            "order_id: '\\u3000Ｎ－３ ' → N-3\n"
            "amount: '￥１，２００' → 1200\n"
            "capture: '1' → true",
        ),
        ("N-4", "amount: ' 1,500円 ' → 1500"),
        ("N-5", ""),
    ]
    assert rows[0]["request"] == (
        '{"order_id": "N-3", "original_order_id": "R-1", "amount": 1200, '
        '"capture": true, "dummy": true}'
    )


def test_the_preview_names_each_cell_that_reading_changed_in_a_workbook(ws):
    """Text cells that reading changed are listed; a whole-number id cell is not."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for cells in (
        ("注文番号", "金額（円）", "memo"),
        ("Ａ－１", "¥3,000", "typed"),
        (12345, 2000, "numbers"),
        (" A-3 ", "2,500 円", "spaces"),
    ):
        sheet.append(cells)
    book.save(ws.root / "orders.xlsx")

    result = ws.run("capture", ws.root / "orders.xlsx", "--dry-run", key=None)

    assert result.exit_code == 0
    rows = preview(ws, "orders-capture-dry-run")
    assert [(row["row"], row["request"], row["changes"]) for row in rows] == [
        (
            "2",
            '{"order_id": "A-1", "amount": 3000, "dummy": true}',
            "注文番号: 'Ａ－１' → A-1\n金額（円）: '¥3,000' → 3000",
        ),
        ("3", '{"order_id": "12345", "amount": 2000, "dummy": true}', ""),
        (
            "4",
            '{"order_id": "A-3", "amount": 2500, "dummy": true}',
            "注文番号: ' A-3 ' → A-3\n金額（円）: '2,500 円' → 2500",
        ),
    ]
