"""The four operation commands end to end: file in, HTTP to the sandbox, results out.

Every test runs ``popbatch OPERATION FILE`` through the command line against
the session sandbox over real HTTP on 127.0.0.1, with a real journal in
tmp_path, and checks three things a user relies on: the exact JSON body POP
received for each row (field names, JSON types, dummy), the group every row
landed in (results.xlsx read back with openpyxl, and the CSV twins), and the
exit code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from harness import LIVE_KEY, SAMPLE_DATA
from openpyxl import Workbook, load_workbook
from run_output import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REVIEW,
    GROUPS,
    Results,
    expected_summary,
)

pytestmark = pytest.mark.sandbox

GROUP_SHEETS = list(GROUPS)


def column(rows: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    """One column of rows read from a sheet or a CSV file."""
    return [row[name] for row in rows]


def group_rows(results: Results) -> dict[str, list[int]]:
    """The input row numbers in each group's sheet of results.xlsx."""
    return {name: column(results.sheet(name), "row") for name in GROUP_SHEETS}


def csv_group_rows(results: Results) -> dict[str, list[int]]:
    """The input row numbers in each group's CSV twin."""
    return {
        name: [int(row) for row in column(results.group(name.lower()), "row")]
        for name in GROUP_SHEETS
    }


# --- capture -----------------------------------------------------------------


def test_capture_sends_integer_amounts_with_dummy_true_and_groups_every_row(ws):
    """A test run: exact bodies, one group per row, exit 1 for a decline."""
    ws.sandbox.add_order("CAP-1", 1000)
    ws.sandbox.add_order("CAP-2", 2500, decline=True)
    path = ws.write(
        "captures.csv",
        'order_id,amount,memo\nCAP-1,1000,first\nCAP-2,"2,500",declined\n'
        "CAP-3,abc,typo\n",
    )

    result = ws.run("capture", str(path), "--skip-invalid")

    assert result.exit_code == 1
    assert ws.bodies("card-capture") == [
        b'{"order_id": "CAP-1", "amount": 1000, "dummy": true}',
        b'{"order_id": "CAP-2", "amount": 2500, "dummy": true}',
    ]
    results = ws.results()
    assert results.folder.name == "captures-capture-batch1"
    assert results.sheet_names() == ["Summary", *GROUP_SHEETS]
    expected = {"Succeeded": [2], "Failed": [3], "Rejected": [4]}
    expected |= {"Review": [], "Skipped": [], "Pending": []}
    assert group_rows(results) == expected
    assert csv_group_rows(results) == expected
    failed = results.sheet("Failed")[0]
    assert (failed["order_id"], failed["amount"], failed["result_code"]) == (
        "CAP-2",
        2500,
        "RM01",
    )
    assert column(results.csv("failed-RM01.csv"), "order_id") == ["CAP-2"]
    assert results.sheet("Rejected")[0]["amount"] == "abc"
    assert results.summary()["exit_code"] == 1


def test_capture_prints_progress_and_the_summary_on_stderr_only(ws):
    """Without a terminal: a start line, a line per 10%, then the summary."""
    ws.sandbox.add_order("CAP-1", 1000)
    ws.sandbox.add_order("CAP-2", 2500, decline=True)
    path = ws.write("captures.csv", "order_id,amount\nCAP-1,1000\nCAP-2,2500\n")

    result = ws.run("capture", str(path))

    assert (result.exit_code, result.stdout) == (1, "")
    assert ws.mask(result.stderr) == (
        "sending 2 rows\n"
        "1/2 rows (50%), N/s, 0 failed, 0 in Review\n"
        "2/2 rows (100%), N/s, 1 failed, 0 in Review\n"
        "popbatch capture, batch 1 (test: dummy requests, no money moved)\n"
        "  Succeeded        1 row            1,000 yen\n"
        "  Failed           1 row            2,500 yen\n"
        "  Rejected         0 rows               0 yen\n"
        "  Review           0 rows               0 yen\n"
        "  Skipped          0 rows               0 yen\n"
        "  Pending          0 rows               0 yen\n"
        "  Total            2 rows           3,500 yen\n"
        "  adds up: 2 rows in the groups = 2 rows in the input, "
        "3,500 yen = 3,500 yen\n"
        "Results: WORK/out/captures-capture-batch1\n"
        "Exit 1: some rows failed at POP, were rejected, or need a decision\n"
    )


def test_capture_live_sends_dummy_false_with_the_live_key(ws):
    """--live --yes with the live merchant's key: dummy false, exit 0."""
    ws.sandbox.add_order("LIVE-1", 1200)
    path = ws.write("live.csv", "order_id,amount\nLIVE-1,1200\n")

    result = ws.run("capture", str(path), "--live", "--yes", key=LIVE_KEY)

    assert result.exit_code == 0
    assert ws.bodies("card-capture") == [
        b'{"order_id": "LIVE-1", "amount": 1200, "dummy": false}'
    ]
    assert ws.sandbox.order("LIVE-1").captured == 1200
    assert ws.results().summary()["live"] is True


BAD_GATEWAY = {"status": 502, "body": "<html>Bad gateway</html>"}


@pytest.mark.parametrize(
    ("declined", "unanswered", "groups", "banner"),
    [
        (
            (),
            (),
            {"succeeded": (2, 3000)},
            "LIVE: real money moved for 2 rows (Succeeded).",
        ),
        (
            ("LV-1", "LV-2"),
            (),
            {"failed": (2, 3000)},
            "LIVE: no money moved.",
        ),
        (
            (),
            ("LV-2",),
            {"succeeded": (1, 1000), "review": (1, 2000)},
            "LIVE: real money moved for 1 row (Succeeded) and may have for 1 more "
            "(Review).",
        ),
        (
            (),
            ("LV-1", "LV-2"),
            {"review": (2, 3000)},
            "LIVE: money may have moved for 2 rows (Review).",
        ),
    ],
    ids=["succeeded", "declined", "succeeded-and-review", "review"],
)
def test_a_live_run_says_whether_real_money_moved(
    ws,
    declined: tuple[str, ...],
    unanswered: tuple[str, ...],
    groups: dict[str, tuple[int, int]],
    banner: str,
):
    """The summary's first line and the Summary sheet follow the outcome, not --live."""
    for order_id, amount in (("LV-1", 1000), ("LV-2", 2000)):
        ws.sandbox.add_order(order_id, amount, decline=order_id in declined)
        if order_id in unanswered:
            ws.sandbox.script_order(order_id, BAD_GATEWAY)
    path = ws.write("live.csv", "order_id,amount\nLV-1,1000\nLV-2,2000\n")
    exit_line = EXIT_REVIEW if unanswered else EXIT_FAILED if declined else EXIT_OK

    result = ws.run("capture", str(path), "--live", "--yes", key=LIVE_KEY)

    expected = expected_summary(
        1,
        result.folder,
        exit_line,
        review_orders=unanswered,
        journal=ws.journal,
        live=True,
        **groups,
    )
    assert result.said[-len(expected) :] == expected
    summary = load_workbook(result.folder / "results.xlsx")["Summary"]
    assert summary["A2"].value == banner
    assert [json.loads(body)["dummy"] for body in ws.bodies("card-capture")] == [
        False,
        False,
    ]


def test_capture_of_the_month_end_sample_workbook(ws):
    """sample_data/month_end_captures.xlsx: 1,200 rows, the seed's declines fail."""
    ws.sandbox.load_seed(SAMPLE_DATA / "sandbox_seed.json")
    path = SAMPLE_DATA / "month_end_captures.xlsx"

    result = ws.run("capture", str(path), "--concurrency", "4", "--quiet")

    assert result.exit_code == 1
    sent = [json.loads(body) for body in ws.bodies("card-capture")]
    assert len(sent) == 1200
    assert all(type(body["amount"]) is int and body["dummy"] is True for body in sent)
    assert all(list(body) == ["order_id", "amount", "dummy"] for body in sent)
    results = ws.results()
    groups = group_rows(results)
    assert {name: len(rows) for name, rows in groups.items()} == {
        "Succeeded": 1159,
        "Failed": 41,
        "Rejected": 0,
        "Review": 0,
        "Skipped": 0,
        "Pending": 0,
    }
    assert sorted(groups["Succeeded"] + groups["Failed"]) == list(range(2, 1202))
    assert csv_group_rows(results) == groups
    assert {row["result_code"] for row in results.sheet("Failed")} == {"RM01"}
    assert results.sheet("Succeeded")[0]["顧客名"] == "佐藤 様"


# --- cancel ------------------------------------------------------------------


def test_cancel_sends_a_partial_refund_amount_and_leaves_it_out_for_a_full_one(ws):
    """A blank amount is left out of the body: POP refunds the full amount."""
    ws.sandbox.add_order("RF-1", 5000, state="captured")
    ws.sandbox.add_order("RF-2", 3000, state="captured")
    path = ws.write("refunds.csv", "order_id,amount\nRF-1,1000\nRF-2,\n")

    result = ws.run("cancel", str(path), "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    assert ws.bodies("card-cancel") == [
        b'{"order_id": "RF-1", "amount": 1000, "dummy": true}',
        b'{"order_id": "RF-2", "dummy": true}',
    ]
    assert (ws.sandbox.order("RF-1").refunded, ws.sandbox.order("RF-1").balance) == (
        1000,
        4000,
    )
    assert ws.sandbox.order("RF-2").balance == 0
    succeeded = ws.results().sheet("Succeeded")
    assert column(succeeded, "amount") == [1000, None]
    assert column(succeeded, "full refund") == [None, "FULL amount (no amount given)"]


def test_cancel_of_the_cp932_mass_refunds_sample(ws):
    """sample_data/mass_refunds.csv (CP932): 30 partial and 10 full refunds."""
    ws.sandbox.load_seed(SAMPLE_DATA / "sandbox_seed.json")
    path = SAMPLE_DATA / "mass_refunds.csv"

    result = ws.run("cancel", str(path), "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    sent = [json.loads(body) for body in ws.bodies("card-cancel")]
    partial = [body for body in sent if "amount" in body]
    full = [body for body in sent if "amount" not in body]
    assert (len(partial), len(full)) == (30, 10)
    assert sum(body["amount"] for body in partial) == 18_400
    assert all(type(body["amount"]) is int for body in partial)
    assert all(body["dummy"] is True for body in sent)
    results = ws.results()
    assert len(results.sheet("Succeeded")) == 40
    reasons = column(results.csv("succeeded.csv"), "返金理由")
    assert reasons[:4] == ["一部返品（①点）"] * 3 + ["全額返金・髙島屋店受付"]
    assert results.summary()["groups"]["succeeded"] == {
        "rows": 40,
        "amount": 18_400,
        "full_amount_rows": 10,
    }


def test_cancel_above_the_captured_amount_fails_at_pop(ws):
    """The gateway refuses a refund above what is left: Failed, exit 1."""
    ws.sandbox.add_order("RF-9", 1000, state="captured")
    path = ws.write("refunds.csv", "order_id,amount\nRF-9,5000\n")

    result = ws.run("cancel", str(path), "--quiet")

    assert result.exit_code == 1
    assert group_rows(ws.results())["Failed"] == [2]
    assert ws.sandbox.order("RF-9").refunded == 0


# --- reauthorize -------------------------------------------------------------


def test_reauthorize_sends_capture_true_false_or_leaves_a_blank_one_out(ws):
    """capture true, false and blank; an unknown original order fails RC3C."""
    for original in ("OLD-1", "OLD-2", "OLD-3"):
        ws.sandbox.add_order(original, 980, state="captured")
    path = ws.write(
        "again.csv",
        "order_id,original_order_id,amount,capture\n"
        "NEW-1,OLD-1,1980,true\nNEW-2,OLD-2,980,FALSE\nNEW-3,OLD-3,980,\n"
        "NEW-4,OLD-404,980,true\n",
    )

    result = ws.run("reauthorize", str(path), "--quiet")

    assert result.exit_code == 1
    assert ws.bodies("card-reauthorize") == [
        b'{"order_id": "NEW-1", "original_order_id": "OLD-1", "amount": 1980, '
        b'"capture": true, "dummy": true}',
        b'{"order_id": "NEW-2", "original_order_id": "OLD-2", "amount": 980, '
        b'"capture": false, "dummy": true}',
        b'{"order_id": "NEW-3", "original_order_id": "OLD-3", "amount": 980, '
        b'"dummy": true}',
        b'{"order_id": "NEW-4", "original_order_id": "OLD-404", "amount": 980, '
        b'"capture": true, "dummy": true}',
    ]
    assert ws.sandbox.order("NEW-1").captured == 1980
    assert ws.sandbox.order("NEW-2").captured is None
    assert ws.sandbox.order("NEW-3").captured == 980
    results = ws.results()
    assert group_rows(results)["Succeeded"] == [2, 3, 4]
    assert [(row["row"], row["result_code"]) for row in results.sheet("Failed")] == [
        (5, "RC3C")
    ]


def test_reauthorize_of_the_sample_file(ws):
    """sample_data/reauthorize.csv: 30 re-charges, 6 of them not captured."""
    ws.sandbox.load_seed(SAMPLE_DATA / "sandbox_seed.json")
    path = SAMPLE_DATA / "reauthorize.csv"

    result = ws.run("reauthorize", str(path), "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    sent = [json.loads(body) for body in ws.bodies("card-reauthorize")]
    assert len(sent) == 30
    assert [body["order_id"] for body in sent if body["capture"] is False] == [
        f"SUB-202611-00{n:02d}" for n in (5, 10, 15, 20, 25, 30)
    ]
    assert all(type(body["capture"]) is bool for body in sent)
    assert group_rows(ws.results())["Succeeded"] == list(range(2, 32))


# --- authorize ---------------------------------------------------------------


def write_workbook(path: Path, rows: list[tuple[object, ...]]) -> Path:
    """Save ``rows`` (the first is the header) as the first sheet of a workbook."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path


def test_authorize_leaves_out_a_blank_card_id_and_blank_flags(ws):
    """paynow_card_id blank or given; paynow_default_card true, false or blank."""
    ws.sandbox.add_account(
        "ACC-1", [{"card_id": "C-A"}, {"card_id": "C-B"}], default_card="C-A"
    )
    path = write_workbook(
        ws.root / "stored.xlsx",
        [
            (
                "order_id",
                "amount",
                "capture",
                "paynow_account_id",
                "paynow_card_id",
                "paynow_default_card",
            ),
            ("PN-1", 1100, None, "ACC-1", None, None),
            ("PN-2", 2200, False, "ACC-1", "C-B", False),
            ("PN-3", 3300, True, "ACC-1", "C-B", None),
            ("PN-4", 4400, True, "ACC-1", "C-A", True),
        ],
    )

    result = ws.run("authorize", str(path), "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    assert ws.bodies("card-authorize") == [
        b'{"order_id": "PN-1", "amount": 1100, "paynow_account_id": "ACC-1", '
        b'"dummy": true}',
        b'{"order_id": "PN-2", "amount": 2200, "capture": false, '
        b'"paynow_account_id": "ACC-1", "paynow_card_id": "C-B", '
        b'"paynow_default_card": false, "dummy": true}',
        b'{"order_id": "PN-3", "amount": 3300, "capture": true, '
        b'"paynow_account_id": "ACC-1", "paynow_card_id": "C-B", "dummy": true}',
        b'{"order_id": "PN-4", "amount": 4400, "capture": true, '
        b'"paynow_account_id": "ACC-1", "paynow_card_id": "C-A", '
        b'"paynow_default_card": true, "dummy": true}',
    ]
    succeeded = ws.results().sheet("Succeeded")
    # The input's column as read, then POP's answer (the default card C-A
    # for PN-1), under a header of its own.
    assert column(succeeded, "paynow_card_id") == [None, "C-B", "C-B", "C-A"]
    assert column(succeeded, "paynow_card_id (POP)") == ["C-A", "C-B", "C-B", "C-A"]
    book = load_workbook(ws.results().folder / "results.xlsx", read_only=True)
    headers = next(book["Succeeded"].iter_rows(max_row=1, values_only=True))
    book.close()
    assert len(headers) == len(set(headers))


def test_authorize_rejects_a_default_flag_without_a_card_id(ws):
    """paynow_default_card needs paynow_card_id: Rejected, the others are sent."""
    ws.sandbox.add_account("ACC-1", [{"card_id": "C-A"}], default_card="C-A")
    path = ws.write(
        "stored.csv",
        "order_id,amount,paynow_account_id,paynow_card_id,paynow_default_card\n"
        "PN-1,1100,ACC-1,,true\nPN-2,1100,ACC-1,,\n",
    )

    result = ws.run("authorize", str(path), "--skip-invalid", "--quiet")

    assert result.exit_code == 1
    assert [json.loads(b)["order_id"] for b in ws.bodies("card-authorize")] == ["PN-2"]
    results = ws.results()
    assert group_rows(results)["Rejected"] == [2]
    assert results.sheet("Rejected")[0]["reasons"] == (
        "paynow_default_card: paynow_default_card is set but paynow_card_id is "
        "blank; leave paynow_default_card empty or give the card id"
    )


def test_authorize_of_an_unknown_account_fails(ws):
    """POP refuses an account it does not know: Failed, exit 1."""
    path = ws.write(
        "stored.csv", "order_id,amount,paynow_account_id\nPN-1,1100,NOBODY\n"
    )

    result = ws.run("authorize", str(path), "--quiet")

    assert result.exit_code == 1
    assert group_rows(ws.results())["Failed"] == [2]


def test_authorize_of_the_sample_workbook(ws):
    """sample_data/paynow_authorize.xlsx: Excel TRUE/FALSE cells become JSON booleans."""
    ws.sandbox.load_seed(SAMPLE_DATA / "sandbox_seed.json")
    path = SAMPLE_DATA / "paynow_authorize.xlsx"

    result = ws.run("authorize", str(path), "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    sent = [json.loads(body) for body in ws.bodies("card-authorize")]
    assert len(sent) == 20
    with_card = [body for body in sent if "paynow_card_id" in body]
    without = [body for body in sent if "paynow_card_id" not in body]
    assert len(with_card) == len(without) == 10
    assert all(body["paynow_default_card"] is False for body in with_card)
    assert all("paynow_default_card" not in body for body in without)
    assert all(type(body["capture"]) is bool for body in sent)
    assert len(ws.results().sheet("Succeeded")) == 20


# --- live, every operation ------------------------------------------------------


LIVE_FILES = {
    "capture": ("order_id,amount\nLV-1,700\n", "card-capture"),
    "cancel": ("order_id,amount\nLV-1,\n", "card-cancel"),
    "reauthorize": (
        "order_id,original_order_id,amount,capture\nLV-2,LV-1,700,false\n",
        "card-reauthorize",
    ),
    "authorize": (
        "order_id,amount,paynow_account_id\nLV-3,700,ACC-LIVE\n",
        "card-authorize",
    ),
}


@pytest.mark.parametrize("operation", list(LIVE_FILES))
def test_every_operation_sends_dummy_false_only_with_live(ws, operation):
    """--live --yes with the live key: the one body ends in dummy false."""
    state = "captured" if operation == "cancel" else "authorised"
    ws.sandbox.add_order("LV-1", 700, state=state)
    ws.sandbox.add_account("ACC-LIVE", [{"card_id": "C-1"}], default_card="C-1")
    text, endpoint = LIVE_FILES[operation]
    path = ws.write("live.csv", text)

    result = ws.run(operation, str(path), "--live", "--yes", "-q", key=LIVE_KEY)

    assert (result.exit_code, result.output) == (0, "")
    sent = ws.bodies(endpoint)
    assert len(sent) == 1
    assert sent[0].endswith(b', "dummy": false}')
    assert ws.results().summary()["mode"] == "live"


# --- Review, Skipped and Pending ------------------------------------------------


def test_a_dropped_answer_puts_the_row_in_review_and_exits_3(ws):
    """The request left, no answer came: Review in the workbook and review.csv."""
    ws.sandbox.add_order("RV-1", 1000)
    ws.sandbox.add_order("RV-2", 2000)
    ws.sandbox.script_order("RV-2", {"action": "close_after_read"})
    path = ws.write("captures.csv", "order_id,amount\nRV-1,1000\nRV-2,2000\n")

    result = ws.run("capture", str(path), "--quiet")

    assert result.exit_code == 3
    results = ws.results()
    expected = {name: [] for name in GROUP_SHEETS} | {"Succeeded": [2], "Review": [3]}
    assert group_rows(results) == expected
    assert csv_group_rows(results) == expected
    review = results.sheet("Review")[0]
    assert (
        review["request sent"] == '{"order_id": "RV-2", "amount": 2000, "dummy": true}'
    )
    assert ws.sandbox.received("RV-2") == 1


def test_a_row_done_in_an_earlier_batch_is_skipped(ws):
    """A fixed file run again: the row already captured is Skipped, not sent."""
    ws.sandbox.add_order("SK-1", 1000)
    ws.sandbox.add_order("SK-2", 2000)
    ws.run("capture", str(ws.write("first.csv", "order_id,amount\nSK-1,1000\n")), "-q")
    path = ws.write("second.csv", "order_id,amount\nSK-1,1000\nSK-2,2000\n")

    result = ws.run("capture", str(path), "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    results = Results(ws.out / "second-capture-batch2")
    expected = {name: [] for name in GROUP_SHEETS} | {"Succeeded": [3], "Skipped": [2]}
    assert group_rows(results) == expected
    assert csv_group_rows(results) == expected
    assert ws.sandbox.received("SK-1") == 1


def test_rows_not_sent_when_pop_is_unreachable_are_pending(ws):
    """Connection refused: every row Pending, exit 75, the same command resumes."""
    path = ws.write("captures.csv", "order_id,amount\nPD-1,1000\nPD-2,2000\n")
    result = ws.run(
        "capture",
        str(path),
        "--stop-after",
        "1",
        "--quiet",
        endpoint="http://127.0.0.1:9/pop/v1",
    )

    assert result.exit_code == 75
    results = ws.results()
    expected = {name: [] for name in GROUP_SHEETS} | {"Pending": [2, 3]}
    assert group_rows(results) == expected
    assert csv_group_rows(results) == expected


def test_input_columns_named_like_popbatchs_own_leave_every_header_distinct(ws):
    """An input with row, result_code and 'status (POP)' columns: nothing doubles."""
    ws.sandbox.add_order("HD-1", 1000)
    ws.write(
        "headers.csv",
        "order_id,amount,row,result_code,status,status (POP)\nHD-1,1000,7,x,open,y\n",
    )

    result = ws.run("capture", "headers.csv", "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    book = load_workbook(ws.results().folder / "results.xlsx", read_only=True)
    headers = next(book["Succeeded"].iter_rows(max_row=1, values_only=True))
    values = next(book["Succeeded"].iter_rows(min_row=2, max_row=2, values_only=True))
    book.close()
    assert len(headers) == len(set(headers))
    assert headers[:9] == (
        "row (popbatch)",
        "order_id",
        "amount",
        "row",
        "result_code",
        "status",
        "status (POP)",
        "result_code (POP)",
        "meaning",
    )
    assert values[:8] == (2, "HD-1", 1000, "7", "x", "open", "y", "R001")
    assert headers[9] == "status (POP 2)"
