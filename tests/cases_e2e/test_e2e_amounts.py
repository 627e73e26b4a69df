"""Cases 05 and 12 end to end: amounts as people type them, and one bad cell.

What reaches the sandbox is checked byte for byte: every accepted amount is
a JSON integer (not 1500.0, not "1500"), and a rejected row is never sent.
Variants: more spellings in CSV, amounts in an Excel workbook (floats,
currency formats, formulas, error cells), and an amount typed 1,000
without quotes, which splits into two CSV cells.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness import CASES, Popbatch
from workbooks import error_cell, formula_cell, number_cell, text_cell, write_workbook

CASE_05 = CASES / "05-amount-notations"
CASE_12 = CASES / "12-row-level-errors"


def sent_amounts(popbatch: Popbatch) -> dict[str, int]:
    """order_id -> the amount of its one request, checked to be a JSON integer."""
    found = {}
    for order_id, bodies in popbatch.bodies_by_order().items():
        assert len(bodies) == 1, f"{order_id} was sent {len(bodies)} times"
        # The raw bytes: 1500.0 and "1500" both decode to something else.
        assert re.search(rb'"amount": [1-9][0-9]*[,}]', bodies[0]), bodies[0]
        amount = json.loads(bodies[0])["amount"]
        assert type(amount) is int
        found[order_id] = amount
    return found


def test_case_05_accepted_notations_send_json_integers(popbatch: Popbatch) -> None:
    """The 11 readable amounts go out as ints; the 9 others are never sent."""
    for n in (*range(1, 20), 23):
        popbatch.sandbox.add_order(f"AMT-{n:02d}", 99_999_999)

    run = popbatch.run("capture", CASE_05 / "amounts_utf8.csv", "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert sent_amounts(popbatch) == {
        "AMT-01": 10000,
        "AMT-02": 10000,
        "AMT-03": 10000,
        "AMT-04": 10000,
        "AMT-05": 1000,
        "AMT-06": 10000,
        "AMT-07": 5000,
        "AMT-15": 99999999,
        "AMT-16": 1,
        "AMT-18": 1234,
        "AMT-23": 10000,
    }
    for n in (8, 9, 10, 11, 12, 13, 14, 17, 19):
        assert popbatch.sandbox.received(f"AMT-{n:02d}") == 0
    assert [row["row"] for row in run.sheet("Rejected")] == [
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        18,
        20,
    ]
    assert run.column("Rejected", "amount")["AMT-09"] == "1,0000"
    assert run.column("Succeeded", "changes")["AMT-03"] == (
        "amount: '１０，０００' → 10000"
    )


def test_case_05_cp932_amounts_all_send(popbatch: Popbatch) -> None:
    """\\1,000 (byte 0x5C), ￥2,000 and ３，０００円 go out as 1000, 2000 and 3000."""
    for order_id in ("AMT-20", "AMT-21", "AMT-22"):
        popbatch.sandbox.add_order(order_id, 5000)

    run = popbatch.run("capture", CASE_05 / "amounts_cp932.csv")

    assert run.exit_code == 0, run.stderr
    assert sent_amounts(popbatch) == {"AMT-20": 1000, "AMT-21": 2000, "AMT-22": 3000}


def test_variant_more_spellings_in_csv(popbatch: Popbatch, tmp_path: Path) -> None:
    """More ways of typing an amount: each read the one way it can be, or rejected."""
    spellings = {
        "SP-01": ('"1,000.0"', 1000),
        "SP-02": ("¥ 1000", 1000),
        "SP-03": ("１，０００円", 1000),
        "SP-04": ('"1,000,000"', 1000000),
        "SP-05": ("１０００\u3000", 1000),
        "SP-06": ("\\2000", 2000),
        "SP-07": ('"９９，９９９，９９９"', 99999999),
        "SP-08": ("+1000", "a sign is not read"),
        "SP-09": ("1 000", "only digits, commas, a yen sign and 円 are read"),
        "SP-10": ("(500)", "a negative amount (amounts are 1 or more)"),
        "SP-11": ("▲500", "a negative amount (amounts are 1 or more)"),
        "SP-12": ("1000.00", "decimals are not read (only a single trailing .0 is)"),
        "SP-13": ('"10,00"', "commas must group three digits (10,000)"),
        "SP-14": ('"¥1,000円"', "it has both a yen sign and 円"),
        "SP-15": ("1000\u00a0", 1000),
    }
    lines = ["order_id,amount"] + [f"{k},{text}" for k, (text, _) in spellings.items()]
    path = tmp_path / "spellings.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for order_id in spellings:
        popbatch.sandbox.add_order(order_id, 99_999_999)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert sent_amounts(popbatch) == {
        k: v for k, (_, v) in spellings.items() if isinstance(v, int)
    }
    reasons = run.column("Rejected", "reasons")
    assert reasons == {
        k: f"amount: amount '{text.strip(chr(34))}' is not a valid number: {why}"
        for k, (text, why) in spellings.items()
        if isinstance(why, str)
    }


def test_variant_amount_with_an_unquoted_comma_is_never_sent_as_1(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """A row typed SC-1,1,000 has one cell too many: Rejected, not sent as 1 yen."""
    path = tmp_path / "unquoted.csv"
    path.write_text(
        "order_id,amount,memo\nSC-1,1,000,first\nSC-2,2000,second\nSC-3,3000,\n",
        encoding="utf-8",
    )
    for order_id in ("SC-1", "SC-2", "SC-3"):
        popbatch.sandbox.add_order(order_id, 5000)

    refused = popbatch.run("capture", path)
    run = popbatch.run("capture", path, "--skip-invalid")

    assert refused.exit_code == 65
    assert "Error: unquoted.csv: 1 of 3 rows are invalid; nothing was sent" in (
        refused.stderr
    )
    assert run.exit_code == 1, run.stderr
    assert sent_amounts(popbatch) == {"SC-2": 2000, "SC-3": 3000}
    rejected = run.sheet("Rejected")
    assert [(row["row"], row["order_id"], row["amount"]) for row in rejected] == [
        (2, "SC-1", "1")
    ]
    assert rejected[0]["reasons"] == (
        "column D: this row has text in column D, which has no header (the last "
        "named column is C): a value with a comma and no quotes, such as 1,000, is "
        'split across cells. Quote it ("1,000") or remove the comma, or give the '
        "column a header."
    )


def test_variant_retry_file_of_a_split_amount_is_rejected_again(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Run unchanged, the retry.csv of SC-1,1,000 still sends nothing for SC-1."""
    path = tmp_path / "unquoted.csv"
    path.write_text("order_id,amount\nSC-1,1,000\nSC-2,2000\n", encoding="utf-8")
    for order_id in ("SC-1", "SC-2"):
        popbatch.sandbox.add_order(order_id, 5000)

    first = popbatch.run("capture", path, "--skip-invalid")
    retry = tmp_path / "retry.csv"
    retry.write_bytes((first.folder / "retry.csv").read_bytes())
    again = popbatch.run("capture", retry, "--skip-invalid")

    assert retry.read_bytes() == b"order_id,amount,\r\nSC-1,1,000\r\n"
    assert (first.exit_code, again.exit_code) == (1, 1)
    assert popbatch.sandbox.received("SC-1") == 0
    assert [row["order_id"] for row in again.sheet("Rejected")] == ["SC-1"]


def test_variant_amounts_in_a_workbook(popbatch: Popbatch, tmp_path: Path) -> None:
    """Floats, yen formats and formula results send ints; errors and 1500.5 do not."""
    path = write_workbook(
        tmp_path / "amounts.xlsx",
        [
            (text_cell("A1", "order_id"), text_cell("B1", "amount")),
            (text_cell("A2", "WB-1"), number_cell("B2", "10000.0")),
            (text_cell("A3", "WB-2"), number_cell("B3", "1000", style=1)),
            (text_cell("A4", "WB-3"), formula_cell("B4", "1000*2", "2000")),
            (text_cell("A5", "WB-4"), text_cell("B5", "３，０００円")),
            (text_cell("A6", "WB-5"), number_cell("B6", "1500.5")),
            (text_cell("A7", "WB-6"), error_cell("B7", "#VALUE!")),
            (text_cell("A8", "WB-7"), formula_cell("B8", "B2-B2", "0")),
        ],
        number_formats=['"¥"#,##0'],
    )
    for n in range(1, 8):
        popbatch.sandbox.add_order(f"WB-{n}", 99_999)

    run = popbatch.run("capture", path, "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert sent_amounts(popbatch) == {
        "WB-1": 10000,
        "WB-2": 1000,
        "WB-3": 2000,
        "WB-4": 3000,
    }
    assert run.column("Rejected", "reasons") == {
        "WB-5": "amount: amount '1500.5' is not a valid number: not a whole number "
        "of yen",
        "WB-6": "amount: amount cell holds the Excel error #VALUE!, not a value; fix "
        "the cell in column B and save the file again.",
        "WB-7": "amount: amount '0' is below the minimum of 1",
    }
    assert run.column("Succeeded", "amount") == {
        "WB-1": 10000,
        "WB-2": 1000,
        "WB-3": 2000,
        "WB-4": 3000,
    }


def test_case_12_invalid_rows_without_skip_send_nothing(popbatch: Popbatch) -> None:
    """Exit 65, the two bad rows listed with their row numbers, zero requests."""
    run = popbatch.run("capture", CASE_12 / "capture_rows.csv")

    assert run.exit_code == 65
    assert run.problem_table() == [
        "3 amount '' amount is required",
        "4 amount 'abc' amount 'abc' is not a number",
    ]
    assert run.stderr.endswith(
        "Error: capture_rows.csv: 2 of 5 rows are invalid; nothing was sent\n"
        "Fix them (see the table above), or send the valid rows with "
        "--skip-invalid.\n"
    )
    assert popbatch.sandbox.received() == 0


def test_case_12_skip_invalid_sends_three_int_amounts(popbatch: Popbatch) -> None:
    """Three requests with 1500, 2500 and 3000 as JSON integers; one reason per bad row."""
    for n in range(1, 6):
        popbatch.sandbox.add_order(f"RL-00{n}", 5000)

    run = popbatch.run("capture", CASE_12 / "capture_rows.csv", "--skip-invalid")

    assert run.exit_code == 1, run.stderr
    assert sent_amounts(popbatch) == {"RL-001": 1500, "RL-004": 2500, "RL-005": 3000}
    assert [(row["row"], row["reasons"]) for row in run.sheet("Rejected")] == [
        (3, "amount: amount is required"),
        (4, "amount: amount 'abc' is not a number"),
    ]
    assert run.column("Succeeded", "amount") == {
        "RL-001": 1500,
        "RL-004": 2500,
        "RL-005": 3000,
    }
