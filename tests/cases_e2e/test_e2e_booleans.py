"""Cases 11 and 21 end to end: booleans reach POP as JSON booleans, or not at all.

A blank capture is left out of the request (the API default, true, is
shown in the results); a value popbatch does not read is rejected, never
turned into true or false; a merged cell in a column that is read rejects
every row it covers. Variants: LibreOffice's =TRUE() cells in
paynow_default_card, a boolean formula saved without its result, merges
outside the read columns (harmless) and across one row.
"""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl
from harness import CASES, Popbatch
from workbooks import formula_cell, number_cell, text_cell, write_workbook

CASE_11 = CASES / "11-booleans-libreoffice"
CASE_21 = CASES / "21-merged-cells"


def seed_originals(popbatch: Popbatch, *order_ids: str) -> None:
    """Earlier orders that reauthorize may charge again."""
    for order_id in order_ids:
        popbatch.sandbox.add_order(order_id, 10_000, state="captured")


def capture_bytes(popbatch: Popbatch) -> dict[str, bytes | None]:
    """order_id -> the raw ``"capture": ...`` of its one request, or None."""
    found: dict[str, bytes | None] = {}
    for order_id, bodies in popbatch.bodies_by_order().items():
        assert len(bodies) == 1, f"{order_id} was sent {len(bodies)} times"
        match = re.search(rb'"capture": [^,}]*', bodies[0])
        found[order_id] = match.group() if match else None
    return found


def test_case_11_libreoffice_boolean_formulas_send_json_booleans(
    popbatch: Popbatch,
) -> None:
    """=TRUE() and =FALSE() cells send true and false, never the formula text."""
    seed_originals(popbatch, "OLD-101", "OLD-102")

    run = popbatch.run("reauthorize", CASE_11 / "libreoffice_saved.xlsx")

    assert run.exit_code == 0, run.stderr
    assert capture_bytes(popbatch) == {
        "BO-101": b'"capture": true',
        "BO-102": b'"capture": false',
    }
    assert run.column("Succeeded", "capture") == {"BO-101": "true", "BO-102": "false"}


def test_case_11_csv_booleans_blank_left_out_and_unknown_rejected(
    popbatch: Popbatch,
) -> None:
    """Eight rows send JSON booleans or no capture key; yes and はい are never sent."""
    seed_originals(popbatch, *(f"OLD-{n:03d}" for n in range(1, 11)))

    run = popbatch.run("reauthorize", CASE_11 / "booleans.csv", "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert capture_bytes(popbatch) == {
        "BO-001": b'"capture": true',
        "BO-002": b'"capture": false',
        "BO-003": b'"capture": true',
        "BO-004": b'"capture": false',
        "BO-005": b'"capture": true',
        "BO-006": b'"capture": false',
        "BO-009": b'"capture": true',
        "BO-010": None,
    }
    assert popbatch.sent()["BO-010"] == {
        "order_id": "BO-010",
        "original_order_id": "OLD-010",
        "amount": 1000,
        "dummy": True,
    }
    defaults = run.column("Succeeded", "defaults")
    assert defaults["BO-010"] == "capture: not set (API default true)"
    assert [k for k, v in defaults.items() if v] == ["BO-010"]
    assert run.column("Succeeded", "changes")["BO-009"] == (
        "capture: 'ＴＲＵＥ' → true"
    )
    assert [(row["row"], row["reasons"]) for row in run.sheet("Rejected")] == [
        (8, "capture: capture must be true/false or 1/0 (got 'yes')"),
        (9, "capture: capture must be true/false or 1/0 (got 'はい')"),
    ]


def test_case_11_validate_refuses_the_csv_listing_rows_8_and_9(
    popbatch: Popbatch,
) -> None:
    """validate reauthorize: exit 65, the two rows in the table."""
    run = popbatch.validate("reauthorize", CASE_11 / "booleans.csv")

    assert run.exit_code == 65
    assert run.problem_table() == [
        "8 capture 'yes' capture must be true/false or 1/0 (got 'yes')",
        "9 capture 'はい' capture must be true/false or 1/0 (got 'はい')",
    ]
    assert (
        "booleans.csv: 10 rows, 8 valid, 2 rejected (encoding utf-8, comma-separated)\n"
        in run.stderr
    )


def test_variant_libreoffice_booleans_in_paynow_default_card(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """authorize: =TRUE()/=FALSE() in capture and paynow_default_card are booleans."""
    header = ("order_id", "amount", "capture", "paynow_account_id", "paynow_card_id")
    path = write_workbook(
        tmp_path / "paynow.xlsx",
        [
            (
                *(text_cell(f"{c}1", h) for c, h in zip("ABCDE", header, strict=True)),
                text_cell("F1", "paynow_default_card"),
            ),
            (
                text_cell("A2", "LB-1"),
                number_cell("B2", "1000"),
                formula_cell("C2", "FALSE()", "0", kind="b"),
                text_cell("D2", "ACC-1"),
                text_cell("E2", "C1"),
                formula_cell("F2", "TRUE()", "1", kind="b"),
            ),
            (
                text_cell("A3", "LB-2"),
                number_cell("B3", "2000"),
                formula_cell("C3", "TRUE()", "1", kind="b"),
                text_cell("D3", "ACC-1"),
                text_cell("E3", "C2"),
                formula_cell("F3", "FALSE()", "0", kind="b"),
            ),
            (
                text_cell("A4", "LB-3"),
                number_cell("B4", "3000"),
                text_cell("D4", "ACC-1"),
            ),
        ],
    )
    popbatch.sandbox.add_account(
        "ACC-1", [{"card_id": "C1"}, {"card_id": "C2"}], default_card="C1"
    )

    run = popbatch.run("authorize", path)

    assert run.exit_code == 0, run.stderr
    bodies = {
        k: {f: v for f, v in b.items() if f != "dummy"}
        for k, b in popbatch.sent().items()
    }
    assert bodies == {
        "LB-1": {
            "order_id": "LB-1",
            "amount": 1000,
            "capture": False,
            "paynow_account_id": "ACC-1",
            "paynow_card_id": "C1",
            "paynow_default_card": True,
        },
        "LB-2": {
            "order_id": "LB-2",
            "amount": 2000,
            "capture": True,
            "paynow_account_id": "ACC-1",
            "paynow_card_id": "C2",
            "paynow_default_card": False,
        },
        "LB-3": {"order_id": "LB-3", "amount": 3000, "paynow_account_id": "ACC-1"},
    }
    assert run.column("Succeeded", "defaults")["LB-3"] == (
        "capture: not set (API default true)\n"
        "paynow_default_card: not set (API default true)"
    )


def test_variant_boolean_formula_without_a_saved_result_is_not_guessed(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """=FALSE() saved without its value is Rejected, not sent as blank (true)."""
    path = write_workbook(
        tmp_path / "uncalculated.xlsx",
        [
            tuple(
                text_cell(f"{c}1", h)
                for c, h in zip(
                    "ABCD",
                    ("order_id", "original_order_id", "amount", "capture"),
                    strict=True,
                )
            ),
            (
                text_cell("A2", "NC-1"),
                text_cell("B2", "OLD-1"),
                number_cell("C2", "1000"),
                '<c r="D2" t="b"><f>FALSE()</f></c>',
            ),
            (
                text_cell("A3", "NC-2"),
                text_cell("B3", "OLD-2"),
                number_cell("C3", "2000"),
                formula_cell("D3", "FALSE()", "0", kind="b"),
            ),
        ],
    )
    seed_originals(popbatch, "OLD-1", "OLD-2")

    run = popbatch.run("reauthorize", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert capture_bytes(popbatch) == {"NC-2": b'"capture": false'}
    assert run.column("Rejected", "reasons") == {
        "NC-1": "capture: capture cell holds a formula (=FALSE()) with no saved "
        "result; open the file in Excel, let it calculate, and save it again."
    }


def test_case_21_validate_rejects_five_rows_naming_the_ranges(
    popbatch: Popbatch,
) -> None:
    """validate reauthorize: exit 65, rows 2-6 rejected with D2:D4 and C5:C6."""
    run = popbatch.validate("reauthorize", CASE_21 / "merged.xlsx")

    capture = "capture is in merged cells D2:D4; unmerge and fill each row"
    amount = "amount is in merged cells C5:C6; unmerge and fill each row"
    assert run.exit_code == 65
    assert run.problem_table() == [
        f"2 capture 'FALSE' {capture}",
        f"3 capture '' {capture}",
        f"4 capture '' {capture}",
        f"5 amount '3000' {amount}",
        f"6 amount '' {amount}",
    ]
    assert "merged.xlsx: 6 rows, 1 valid, 5 rejected (sheet 'orders')\n" in run.stderr


def test_case_21_skip_invalid_sends_only_mg_006(popbatch: Popbatch) -> None:
    """Only MG-006 goes out, with capture false; the five others are Rejected."""
    seed_originals(popbatch, *(f"OLD-00{n}" for n in range(1, 7)))

    run = popbatch.run("reauthorize", CASE_21 / "merged.xlsx", "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert popbatch.sent() == {
        "MG-006": {
            "order_id": "MG-006",
            "original_order_id": "OLD-006",
            "amount": 4000,
            "capture": False,
            "dummy": True,
        }
    }
    assert [row["row"] for row in run.sheet("Rejected")] == [2, 3, 4, 5, 6]


def test_variant_merges_outside_the_read_columns_do_not_reject(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A merged title, a merged header and a merged memo over two orders: all sent."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["再オーソリ 3月分"])
    sheet.merge_cells("A1:F1")
    sheet.append(["order_id", "original_order_id", "amount", "capture", "memo", None])
    sheet.merge_cells("E2:F2")
    sheet.append(["MM-1", "OLD-1", 1000, False, "same customer"])
    sheet.append(["MM-2", "OLD-2", 2000, False, None])
    sheet.append(["MM-3", "OLD-3", 3000, True, "other"])
    sheet.merge_cells("E3:E4")
    path = tmp_path / "merged_memo.xlsx"
    book.save(path)
    seed_originals(popbatch, "OLD-1", "OLD-2", "OLD-3")

    run = popbatch.run("reauthorize", path)

    assert run.exit_code == 0, run.stderr
    assert capture_bytes(popbatch) == {
        "MM-1": b'"capture": false',
        "MM-2": b'"capture": false',
        "MM-3": b'"capture": true',
    }
    assert [row["row"] for row in run.sheet("Succeeded")] == [3, 4, 5]


def test_variant_merge_across_one_row_rejects_it(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """amount and capture merged in one row (C3:D3): capture would read blank."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "original_order_id", "amount", "capture"])
    sheet.append(["MR-1", "OLD-1", 1000, False])
    sheet.append(["MR-2", "OLD-2", 2000, None])
    sheet.merge_cells("C3:D3")
    path = tmp_path / "merged_row.xlsx"
    book.save(path)
    seed_originals(popbatch, "OLD-1", "OLD-2")

    run = popbatch.run("reauthorize", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert capture_bytes(popbatch) == {"MR-1": b'"capture": false'}
    assert run.column("Rejected", "reasons") == {
        "MR-2": "amount: amount is in merged cells C3:D3; unmerge and fill each row\n"
        "capture: capture is in merged cells C3:D3; unmerge and fill each row"
    }


def test_case_21_rows_rejected_for_merges_stay_out_of_the_retry_workbook(
    popbatch: Popbatch,
) -> None:
    """Unmerged, MG-002 would read as 'capture not set' (true): never written back."""
    seed_originals(popbatch, *(f"OLD-00{n}" for n in range(1, 7)))

    first = popbatch.run("reauthorize", CASE_21 / "merged.xlsx", "--skip-invalid")

    assert not (first.folder / "retry.xlsx").exists()
    assert first.summary()["retry_file"] is None
    assert any(
        notice.startswith(
            "Rows 2, 3, 4, 5, 6 were rejected for how Excel stored a cell"
        )
        for notice in first.summary()["notices"]
    ), first.summary()["notices"]
    assert list(popbatch.sent()) == ["MG-006"]
