"""Tests for popbatch.report: result groups, counts, the adding-up check, the summary."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from records import T0, batch_record, run_record

from popbatch.errors import ExitCode
from popbatch.journal import RowEvent
from popbatch.report import (
    AddingUp,
    CodeTally,
    Tally,
    build_report,
    iso_time,
    journal_option,
    summary_dict,
    summary_lines,
)
from popbatch.rows import (
    BatchRecord,
    Group,
    Outcome,
    OutcomeKind,
    Problem,
    Resolution,
    RowRecord,
    RowState,
    RunRecord,
)

JST = timezone(timedelta(hours=9))


# Every test runs in Tokyo's time zone, as the finance team does.
pytestmark = pytest.mark.usefixtures("tokyo")


def make_batch(operation: str = "capture", **changes: Any) -> BatchRecord:
    """A batch read from a CSV with order_id, amount and memo columns."""
    return batch_record(operation=operation, **changes)


def make_run(**changes: Any) -> RunRecord:
    """This run: an hour and five seconds long, by alice on box1."""
    return run_record(**changes)


def answered(
    row: int,
    order_id: str,
    amount: int | None,
    *,
    code: str = "R001",
    state: RowState = RowState.SUCCEEDED,
    ms: int = 80,
) -> RowRecord:
    """A row that POP answered with ``code``."""
    kind = OutcomeKind.SUCCEEDED if state is RowState.SUCCEEDED else OutcomeKind.FAILED
    body = {"order_id": order_id, "dummy": True}
    if amount is not None:
        body["amount"] = amount
    return RowRecord(
        row=row,
        cells=(order_id, "" if amount is None else str(amount), ""),
        state=state,
        order_id=order_id,
        request=json.dumps(body),
        amount=amount,
        attempts=1,
        outcome=Outcome(
            kind,
            "succeeded" if kind is OutcomeKind.SUCCEEDED else "declined",
            "answered",
            result_code=code,
            response={"result_code": code, "status": "success"},
            sent_at=T0 + timedelta(seconds=row),
            received_at=T0 + timedelta(seconds=row, milliseconds=ms),
            elapsed_ms=ms,
        ),
    )


def unknown(row: int, order_id: str, amount: int | None) -> RowRecord:
    """A row whose answer was not POP JSON: Review."""
    return RowRecord(
        row=row,
        cells=(order_id, "" if amount is None else str(amount), ""),
        state=RowState.UNKNOWN,
        order_id=order_id,
        request=json.dumps({"order_id": order_id}),
        amount=amount,
        attempts=1,
        outcome=Outcome(
            OutcomeKind.UNKNOWN, "not_pop_json", "HTTP 502", http_status=502
        ),
    )


def rejected(row: int, cells: tuple[str, ...]) -> RowRecord:
    """A row that validation refused."""
    return RowRecord(
        row=row,
        cells=cells,
        state=RowState.REJECTED,
        problems=(Problem("order_id_charset", "bad", "order_id"),),
    )


def mixed_rows() -> list[RowRecord]:
    """Two successes, three failures of two codes, a rejection, a Review row."""
    return [
        answered(6, "A-6", 3000, code="RM03", state=RowState.FAILED),
        answered(2, "A-2", 10000),
        answered(4, "A-4", 2000, code="RC3A", state=RowState.FAILED),
        answered(3, "A-3", 20000),
        answered(5, "A-5", 1000, code="RM03", state=RowState.FAILED),
        rejected(7, ("A 7", "1,000", "")),
        unknown(8, "A-8", 500),
    ]


def test_every_row_lands_in_exactly_one_group_in_result_order() -> None:
    """Failed is sorted by result code, then row; the others by row."""
    report = build_report(make_batch(), make_run(), mixed_rows(), exit_code=3)

    numbers = {
        group: [row.row for row in rows] for group, rows in report.groups.items()
    }

    assert numbers == {
        Group.SUCCEEDED: [2, 3],
        Group.FAILED: [4, 5, 6],
        Group.REJECTED: [7],
        Group.REVIEW: [8],
        Group.SKIPPED: [],
        Group.PENDING: [],
    }


def test_groups_and_result_codes_are_counted_with_their_meanings() -> None:
    """Each code carries the API text's meaning; rows without one name their reason."""
    report = build_report(make_batch(), make_run(), mixed_rows(), exit_code=3)

    tallies = dict(report.tallies)
    codes = report.codes

    assert tallies[Group.SUCCEEDED] == Tally(2, 30000, 0)
    assert tallies[Group.FAILED] == Tally(3, 6000, 0)
    assert tallies[Group.REJECTED] == Tally(1, 0, 0)
    assert tallies[Group.REVIEW] == Tally(1, 500, 0)
    assert report.total == Tally(7, 36500, 0)
    assert codes == (
        CodeTally(
            Group.SUCCEEDED,
            "R001",
            "R001",
            "Payment Captured Successfully",
            Tally(2, 30000),
        ),
        CodeTally(Group.FAILED, "RC3A", "RC3A", 'Invalid "Amount"', Tally(1, 2000)),
        CodeTally(
            Group.FAILED,
            "RM03",
            "RM03",
            "MDK Error - an error returned by the Payment Gateway",
            Tally(2, 4000),
        ),
        CodeTally(
            Group.REJECTED,
            None,
            "(rejected)",
            "never sent: the row did not pass validation",
            Tally(1, 0),
        ),
        CodeTally(
            Group.REVIEW,
            None,
            "(not_pop_json)",
            "outcome unknown, no POP result code",
            Tally(1, 500),
        ),
    )


def test_the_groups_add_up_to_the_input() -> None:
    """The check compares the groups with the input's distinct rows."""
    report = build_report(
        make_batch(), make_run(), mixed_rows(), exit_code=3, rows_read=7
    )

    check = report.check

    assert check.ok
    assert check.sentence() == (
        "adds up: 7 rows in the groups = 7 rows in the input, 36,500 yen = 36,500 yen"
    )


def test_a_row_claimed_twice_does_not_add_up() -> None:
    """Two records for spreadsheet row 3 are counted once as input, twice as groups."""
    rows = [
        *mixed_rows(),
        answered(3, "A-3", 20000, code="RM03", state=RowState.FAILED),
    ]

    check = build_report(make_batch(), make_run(), rows, exit_code=1).check

    assert not check.ok
    assert check.sentence() == (
        "DOES NOT ADD UP: rows in more than one record: 3; groups hold 8 rows and "
        "56,500 yen, the input 7 rows and 36,500 yen"
    )


def test_rows_missing_from_the_journal_do_not_add_up() -> None:
    """The reader found 9 order rows; the journal holds 7."""
    check = build_report(
        make_batch(), make_run(), mixed_rows(), exit_code=1, rows_read=9
    ).check

    assert check == AddingUp(Tally(7, 36500), Tally(7, 36500), 9)
    assert (
        check.sentence() == "DOES NOT ADD UP: 9 rows were read but the journal holds 7"
    )


def test_cancel_rows_without_an_amount_are_full_refunds_counted_apart() -> None:
    """A blank amount refunds the whole order: not in the yen, but counted and named."""
    rows = [
        answered(2, "C-2", 500, code="R002"),
        answered(3, "C-3", None, code="R002"),
        unknown(4, "C-4", None),
        rejected(5, ("C 5", "", "")),
    ]

    report = build_report(make_batch("cancel"), make_run(), rows, exit_code=3)

    assert report.tallies[Group.SUCCEEDED] == Tally(2, 500, 1)
    assert report.tallies[Group.REVIEW] == Tally(1, 0, 1)
    assert report.tallies[Group.REJECTED] == Tally(1, 0, 0)
    assert dict(report.full_refunds) == {
        Group.SUCCEEDED: (3,),
        Group.FAILED: (),
        Group.REJECTED: (),
        Group.REVIEW: (4,),
        Group.SKIPPED: (),
        Group.PENDING: (),
    }
    assert summary_lines(report)[9] == (
        "FULL REFUNDS: 2 cancel rows have no amount, so POP cancels or refunds the "
        "FULL amount of the order: 1 Succeeded (row 3); 1 Review (row 4)"
    )


def test_summary_lines_are_plain_text_for_stderr() -> None:
    """Counts per group, the total and check, Review advice, the folder, the exit code."""
    report = build_report(make_batch(), make_run(), mixed_rows(), exit_code=3)

    lines = summary_lines(report, folder=Path("/out/月末-capture-batch12"))

    assert lines == [
        "popbatch capture, batch 12 (test: dummy requests, no money moved)",
        "  Succeeded        2 rows          30,000 yen",
        "  Failed           3 rows           6,000 yen",
        "  Rejected         1 row                0 yen",
        "  Review           1 row              500 yen",
        "  Skipped          0 rows               0 yen",
        "  Pending          0 rows               0 yen",
        "  Total            7 rows          36,500 yen",
        "  adds up: 7 rows in the groups = 7 rows in the input, 36,500 yen = 36,500 yen",
        "Review rows may or may not have been processed (order_id A-8): check them "
        "in the merchant portal before sending them again.",
        "Then record what the portal shows with 'popbatch resolve 12 ORDER_ID "
        "--succeeded|--failed --note TEXT' (or 'popbatch resolve 12 --file CSV' for "
        "many) and run this command again; if the portal shows none of them, this "
        "command with --resend-unknown sends them all again.",
        "Results: /out/月末-capture-batch12",
        "Exit 3: some outcomes are unknown: check the Review rows",
    ]


def test_review_advice_names_ten_order_ids_and_counts_the_rest() -> None:
    """Twelve Review rows: the first ten order ids in row order, then "and 2 more"."""
    rows = [unknown(row, f"R-{row:02d}", 100) for row in range(2, 14)]

    report = build_report(make_batch(), make_run(), rows, exit_code=3)

    assert summary_lines(report)[9] == (
        "Review rows may or may not have been processed (order_id R-02, R-03, R-04, "
        "R-05, R-06, R-07, R-08, R-09, R-10, R-11 and 2 more): check them in the "
        "merchant portal before sending them again."
    )


def test_a_run_without_review_rows_gives_no_review_advice() -> None:
    """Only the exit line follows the check when nothing is in Review."""
    rows = [answered(2, "A-2", 1000)]

    lines = summary_lines(build_report(make_batch(), make_run(), rows, exit_code=0))

    assert lines[9:] == ["Exit 0: every row succeeded or was already done"]


@pytest.mark.parametrize(
    ("rows", "mode"),
    [
        ([], "LIVE: no money moved"),
        (
            [answered(2, "A-2", 1000, code="RM03", state=RowState.FAILED)],
            "LIVE: no money moved",
        ),
        (
            [answered(2, "A-2", 1000), answered(3, "A-3", 500)],
            "LIVE: real money moved for 2 rows (Succeeded)",
        ),
        (
            [unknown(2, "A-2", 1000)],
            "LIVE: money may have moved for 1 row (Review)",
        ),
        (
            [answered(2, "A-2", 1000), unknown(3, "A-3", 500), unknown(4, "A-4", 9)],
            "LIVE: real money moved for 1 row (Succeeded) and may have for 2 more "
            "(Review)",
        ),
    ],
    ids=["no-rows", "all-failed", "succeeded", "review", "succeeded-and-review"],
)
def test_a_live_run_says_first_whether_money_moved(
    rows: list[RowRecord], mode: str
) -> None:
    """The first line of a live run says for how many rows real money moved."""
    report = build_report(make_batch(live=True), make_run(), rows, exit_code=0)

    assert summary_lines(report)[0] == f"popbatch capture, batch 12 ({mode})"


def test_a_test_run_says_no_money_moved_whatever_succeeded() -> None:
    """Dummy requests move no money, however many succeeded."""
    rows = [answered(2, "A-2", 1000), unknown(3, "A-3", 500)]

    report = build_report(make_batch(), make_run(), rows, exit_code=3)

    assert summary_lines(report)[0] == (
        "popbatch capture, batch 12 (test: dummy requests, no money moved)"
    )


def test_summary_dict_holds_what_monitoring_reads() -> None:
    """Counts, amounts, times with their offset, the exit code and its meaning."""
    report = build_report(make_batch(), make_run(), mixed_rows(), exit_code=3)

    found = summary_dict(report, folder=Path("/out/月末-capture-batch12"))

    assert found["batch_id"] == 12
    assert found["operation"] == "capture"
    assert found["mode"] == "test"
    assert found["live"] is False
    assert found["input"] == {
        "path": "/data/2026-01/月末.csv",
        "sha256": "ab" * 32,
        "kind": "csv",
        "encoding": "cp932",
        "sheet": None,
    }
    assert found["started_at"] == "2026-01-31T23:00:00+09:00"
    assert found["finished_at"] == "2026-02-01T00:00:05+09:00"
    assert found["duration_s"] == 3605.0
    assert found["exit_code"] == 3
    assert found["exit_meaning"] == "some outcomes are unknown: check the Review rows"
    assert found["rows"] == 7
    assert found["groups"]["failed"] == {
        "rows": 3,
        "amount": 6000,
        "full_amount_rows": 0,
    }
    assert found["total"] == {"rows": 7, "amount": 36500, "full_amount_rows": 0}
    assert found["adds_up"] is True
    assert found["result_codes"][1] == {
        "group": "failed",
        "code": "RC3A",
        "v_result_code": None,
        "label": "RC3A",
        "meaning": 'Invalid "Amount"',
        "rows": 1,
        "amount": 2000,
        "full_amount_rows": 0,
    }
    assert found["run_by"] == "alice@box1"
    assert found["results_folder"] == "/out/月末-capture-batch12"
    json.dumps(found)


def test_timings_measure_the_run_and_the_answers() -> None:
    """Duration from this run's start and end; answer times from the last attempts."""
    rows = [
        answered(2, "A-2", 1, ms=40),
        answered(3, "A-3", 1, ms=100),
        answered(4, "A-4", 1, ms=60),
    ]

    timings = build_report(make_batch(), make_run(), rows, exit_code=0).timings

    assert timings.duration_s == 3605.0
    assert timings.requests == 3
    assert timings.median_ms == 60
    assert timings.slowest_ms == 100
    assert timings.first_sent_at == T0 + timedelta(seconds=2)
    assert timings.last_received_at == T0 + timedelta(seconds=4, milliseconds=60)


def test_an_unfinished_run_takes_the_finish_time_given() -> None:
    """The pipeline may write results before the run record is closed."""
    run = make_run(finished_at=None)

    report = build_report(
        make_batch(), run, [], exit_code=0, finished_at=T0 + timedelta(seconds=90)
    )

    assert report.timings.duration_s == 90.0
    assert summary_dict(report)["finished_at"] == "2026-01-31T23:01:30+09:00"


def test_a_row_settled_by_hand_counts_where_the_person_put_it() -> None:
    """A resolved Review row lands in Succeeded, labelled as settled by hand."""
    row = unknown(2, "A-2", 700)
    row.state = RowState.RESOLVED
    row.resolution = Resolution(RowState.SUCCEEDED, "seen in the portal", "bob", T0)

    report = build_report(make_batch(), make_run(), [row], exit_code=0)

    assert report.codes == (
        CodeTally(
            Group.SUCCEEDED,
            None,
            "(settled by hand)",
            "settled as succeeded by a person after checking",
            Tally(1, 700),
        ),
    )


def test_a_batch_of_an_unknown_operation_is_refused() -> None:
    """The report cannot describe codes of an operation popbatch does not have."""
    with pytest.raises(ValueError, match="batch operation 'refund' is not one of"):
        build_report(make_batch("refund"), make_run(), [], exit_code=0)


def test_exit_code_is_kept_with_its_meaning() -> None:
    """An int exit code becomes the ExitCode whose meaning the summary prints."""
    report = build_report(make_batch(), make_run(), [], exit_code=75)

    assert report.exit_code is ExitCode.TRY_AGAIN_LATER


def test_times_are_shown_in_local_time_with_their_offset() -> None:
    """UTC, other offsets and naive times all come out in Tokyo time."""
    aware = datetime(2026, 1, 31, 14, 0, 1, 234567, tzinfo=UTC)
    naive = datetime(2026, 2, 1, 8, 30)

    assert iso_time(aware) == "2026-01-31T23:00:01+09:00"
    assert iso_time(aware, milliseconds=True) == "2026-01-31T23:00:01.234+09:00"
    assert (
        iso_time(aware.astimezone(JST), milliseconds=True)
        == "2026-01-31T23:00:01.234+09:00"
    )
    assert iso_time(naive) == "2026-02-01T08:30:00+09:00"
    assert iso_time(None) == ""


def test_times_follow_a_change_of_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-second cache of local times is dropped when the zone changes."""
    moment = datetime(2026, 1, 31, 14, 0, 1, 5000, tzinfo=UTC)
    assert iso_time(moment, milliseconds=True) == "2026-01-31T23:00:01.005+09:00"

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()

    assert iso_time(moment, milliseconds=True) == "2026-01-31T14:00:01.005+00:00"


def test_the_commands_shown_name_a_journal_unless_it_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default journal needs no --journal; any other is named, quoted."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    default = tmp_path / "popbatch" / "journal.sqlite3"
    other = tmp_path / "cron jobs" / "journal.sqlite3"

    assert journal_option(None) == ""
    assert journal_option(default) == ""
    assert journal_option(other) == f" --journal '{other}'"


def refused(
    row: int, order_id: str, amount: int, v_code: str, message: str
) -> RowRecord:
    """A Failed row that the payment gateway refused with ``v_code`` (RM01)."""
    record = answered(row, order_id, amount, code="RM01", state=RowState.FAILED)
    assert record.outcome is not None
    response = {
        "order_id": order_id,
        "status": "failure",
        "result_code": "RM01",
        "message": "Gateway error",
        "m_status": "failure",
        "v_result_code": v_code,
        "merr_msg": message,
    }
    record.outcome = replace(record.outcome, response=response)
    return record


def test_gateway_refusals_are_counted_per_gateway_code_with_pops_message() -> None:
    """RM01 splits into card declines and amounts above the authorisation."""
    rows = [
        refused(2, "D-1", 1000, "AG48000000000000", "無効カードです。"),
        refused(
            3,
            "O-1",
            5000,
            "AC38000000000000",
            "パラメータで指定した金額は超過しています。",
        ),
        refused(4, "D-2", 2000, "AG48000000000000", "無効カードです。"),
        refused(
            5,
            "P-1",
            700,
            "AC22XH0900000000",
            "カード番号パラメータが設定していません。",
        ),
    ]

    report = build_report(make_batch(), make_run(), rows, exit_code=1)

    assert [
        (line.label, line.meaning, line.v_result_code, line.tally)
        for line in report.codes
    ] == [
        (
            "RM01 / AC22XH0900000000",
            "カード番号パラメータが設定していません。",
            "AC22XH0900000000",
            Tally(1, 700),
        ),
        (
            "RM01 / AC38",
            "パラメータで指定した金額は超過しています。",
            "AC38000000000000",
            Tally(1, 5000),
        ),
        ("RM01 / AG48", "無効カードです。", "AG48000000000000", Tally(2, 3000)),
    ]
    assert [row.order_id for row in report.groups[Group.FAILED]] == [
        "P-1",
        "O-1",
        "D-1",
        "D-2",
    ]


def test_one_gateway_code_worded_two_ways_shows_both_messages() -> None:
    """AG48 with two merr_msg texts: one line, both wordings, neither dropped."""
    rows = [
        refused(2, "D-1", 1000, "AG48000000000000", "無効カードです。"),
        refused(3, "D-2", 2000, "AG48000000000000", "カードが無効です。"),
        refused(4, "D-3", 3000, "AG48000000000000", "無効カードです。"),
    ]

    report = build_report(make_batch(), make_run(), rows, exit_code=1)

    assert [(line.label, line.meaning, line.tally) for line in report.codes] == [
        ("RM01 / AG48", "無効カードです。 / カードが無効です。", Tally(3, 6000))
    ]


def test_a_row_refused_after_it_was_sent_again_is_named_at_the_end() -> None:
    """Only Failed rows with a resend event count; the last lines name them."""
    again = refused(2, "A-1", 1000, "AC47000000000000", "既に売上済みの取引です。")
    again.id = 41
    plain = refused(3, "A-2", 1000, "AG48000000000000", "無効カードです。")
    plain.id = 42
    events = [
        RowEvent(
            row_id=row_id,
            row=row,
            order_id=order_id,
            kind=kind,
            from_state=RowState.UNKNOWN,
            to_state=RowState.PLANNED,
            at=T0,
            outcome=None,
            attempts=1,
            note=None,
            by=None,
        )
        for row_id, row, order_id, kind in (
            (41, 2, "A-1", "replanned"),
            (42, 3, "A-2", "interrupted"),
        )
    ]

    report = build_report(
        make_batch(), make_run(), [again, plain], exit_code=1, events=events
    )

    assert report.refused_again == (again,)
    assert summary_lines(report)[-2] == (
        "SENT AGAIN AFTER REVIEW AND REFUSED: 1 row was sent again after an unknown "
        "outcome, and POP refused it (order_id A-1). If the first request was "
        "applied, that is why: check the order in the merchant portal before "
        "sending it again. It is in Failed but not in the retry file."
    )
    assert summary_dict(report)["refused_after_resend"] == [
        {"row": 2, "order_id": "A-1"}
    ]
