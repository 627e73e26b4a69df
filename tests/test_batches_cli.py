"""popbatch status, report and resolve: every message, with its exit code.

Batches are made by running the real command line against the sandbox;
the three commands then read (and, for resolve, settle) the same journal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from harness import Popbatch, wait_until
from run_output import Run

from popbatch import __version__
from popbatch.config import current_user
from popbatch.journal import Journal, JournalLock, lock_path
from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

ORDERS = ("A-1", "A-2", "A-3", "A-4")
BAD_GATEWAY = {"status": 502, "body": "<html>Bad gateway</html>"}


@pytest.fixture
def popbatch(popbatch: Popbatch) -> Popbatch:
    """The command line for this test, with ORDERS authorised in the sandbox."""
    for order_id in ORDERS:
        popbatch.sandbox.add_order(order_id, 5000)
    return popbatch


@pytest.fixture
def with_review(popbatch: Popbatch, sandbox: SandboxServer) -> Run:
    """Batch 1: A-1 and A-4 captured, A-2 declined, A-3 in Review (an HTML 502)."""
    sandbox.add_order("A-2", 5000, decline=True)
    sandbox.script_order("A-3", BAD_GATEWAY)
    path = popbatch.write_csv("february.csv", [(order, 1000) for order in ORDERS])
    run = popbatch.run("capture", path)
    assert run.exit_code == 3
    return run


def iso(moment: datetime | None) -> str:
    """A journal time as status shows it."""
    assert moment is not None
    return moment.isoformat(timespec="seconds")


# --- status -------------------------------------------------------------------------


def test_status_lists_every_batch_with_its_rows_per_result_group(
    popbatch: Popbatch, with_review: Run, sandbox: SandboxServer
) -> None:
    """One line per batch: when, operation, mode, file, how it ended, its counts."""
    sandbox.add_order("B-1", 5000)
    popbatch.run("capture", popbatch.write_csv("march.csv", [("B-1", 500)]))

    status = popbatch.command("status")

    first, second = popbatch.batch(1), popbatch.batch(2)
    assert status.exit_code == 0
    assert status.stdout.splitlines() == [
        f"batch 1  {iso(first.created_at)}  capture test  february.csv  finished "
        "exit 3  (Succeeded 2, Failed 1, Review 1)",
        f"batch 2  {iso(second.created_at)}  capture test  march.csv  finished "
        "exit 0  (Succeeded 1)",
    ]


def test_status_counts_a_resolved_row_in_the_group_the_person_chose(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Resolved as failed is Failed, as the results say; Skipped and Rejected too."""
    popbatch.command("resolve", "1", "A-3", "--failed", "--note", "not in portal")
    later = popbatch.write_csv("february-2.csv", [("A-1", 1000), ("A 9", 1000)])
    popbatch.run("capture", later, "--skip-invalid")

    status = popbatch.command("status")

    lines = status.stdout.splitlines()
    assert status.exit_code == 0
    assert lines[0].endswith("finished exit 3  (Succeeded 2, Failed 2)")
    assert lines[1].endswith("february-2.csv  finished exit 1  (Rejected 1, Skipped 1)")


def test_status_of_one_batch_names_its_runs_and_its_review_rows(
    popbatch: Popbatch, with_review: Run
) -> None:
    """The detail: endpoint, input and hash, counts, each run, each Review row."""
    status = popbatch.command("status", "1")

    batch = popbatch.batch(1)
    run = Journal.open(popbatch.journal).runs(1)[0]
    review = popbatch.rows(1)[2]
    assert review.outcome is not None
    assert status.exit_code == 0
    assert status.stdout.splitlines() == [
        f"batch 1: capture, test, {popbatch.sandbox.base_url}",
        f"input: {popbatch.root / 'february.csv'} (sha256 {batch.input_sha256})",
        "rows: Succeeded 2, Failed 1, Review 1",
        f"run 1: {iso(run.started_at)} to {iso(run.finished_at)} by "
        f"{current_user()}@{socket.gethostname()}, popbatch {__version__}, exit 3",
        f"Review: row 4 order_id A-3: {review.outcome.detail}",
    ]


def test_status_names_held_rows_and_resolved_rows_with_who_when_and_why(
    popbatch: Popbatch, with_review: Run
) -> None:
    """A held row says which batch it waits for; a resolved row who settled it."""
    later = popbatch.write_csv("february-2.csv", [("A-3", 1000)])
    popbatch.run("capture", later)
    popbatch.command("resolve", "1", "A-3", "--succeeded", "--note", "seen in portal")

    held = popbatch.command("status", "2")
    resolved = popbatch.command("status", "1")

    settled = popbatch.rows(1)[2].resolution
    assert settled is not None
    assert held.stdout.splitlines()[-1] == (
        "Held: row 2 order_id A-3: order A-3 is in Review in batch 1 (row 4); it is "
        "not sent until that is settled with 'popbatch resolve 1 A-3 "
        "--succeeded|--failed'"
    )
    assert resolved.stdout.splitlines()[-1] == (
        f"Resolved: row 4 order_id A-3: succeeded by {current_user()} at "
        f"{iso(settled.at)}: seen in portal"
    )


def test_status_of_one_batch_names_twenty_review_rows_and_counts_the_rest(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """A long outage must not flood the terminal: 20 rows, then how many more."""
    orders = [f"R-{n:02d}" for n in range(23)]
    for order_id in orders:
        sandbox.add_order(order_id, 5000)
        sandbox.script_order(order_id, BAD_GATEWAY)
    path = popbatch.write_csv("outage.csv", [(order, 1000) for order in orders])
    assert popbatch.run("capture", path, "--stop-after", "100").exit_code == 3

    status = popbatch.command("status", "1")

    lines = status.stdout.splitlines()
    assert status.exit_code == 0
    assert [line.split(":")[0] for line in lines[4:]] == ["Review"] * 21
    assert lines[4].startswith("Review: row 2 order_id R-00: ")
    assert lines[23].startswith("Review: row 21 order_id R-19: ")
    assert lines[24] == (
        "Review: 3 more (popbatch report 1 writes them all to the results)"
    )


def test_status_of_a_journal_without_batches_says_so(popbatch: Popbatch) -> None:
    """An empty journal is not an error."""
    Journal.open(popbatch.journal).close()

    status = popbatch.command("status")

    assert status.exit_code == 0
    assert status.stdout == f"no batches in {popbatch.journal}\n"


def test_status_of_a_batch_that_is_not_there_is_bad_usage(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Exit 2, naming the journal, and how to list the batches."""
    status = popbatch.command("status", "9")

    assert status.exit_code == 2
    assert status.lines == [
        f"Error: there is no batch 9 in the journal {str(popbatch.journal)!r}",
        "popbatch status lists the batches.",
    ]


def test_status_shows_a_row_in_flight_of_a_killed_run(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Before any run resumes it, a row in flight is named as such."""
    sandbox.script_order("A-2", {"action": "hang"})
    path = popbatch.write_csv("february.csv", [(order, 1000) for order in ORDERS])
    process = popbatch.start("capture", path, "--concurrency", "1", "--timeout", "600")
    try:
        wait_until(lambda: sandbox.received("A-2") == 1, "A-2 to be in flight")
    finally:
        process.kill()

    status = popbatch.command("status", "1")

    run = Journal.open(popbatch.journal).runs(1)[0]
    assert status.exit_code == 0
    lines = status.stdout.splitlines()
    assert lines[2] == "rows: Succeeded 1, Review 1, Pending 2"
    assert lines[3] == (
        f"run 1: {iso(run.started_at)} to - by {current_user()}@"
        f"{socket.gethostname()}, popbatch {__version__}, exit -"
    )
    assert lines[4:] == [
        "Review: row 3 order_id A-2: in flight, no answer recorded (a run is "
        "sending it, or stopped while it was out)"
    ]


# --- report -------------------------------------------------------------------------


def sheets(path: Path) -> dict[str, list[list[object]]]:
    """Every sheet of a workbook as rows of cell values."""
    workbook = openpyxl.load_workbook(path)
    return {
        sheet.title: [[cell.value for cell in row] for row in sheet.iter_rows()]
        for sheet in workbook.worksheets
    }


def test_report_rebuilds_the_same_results_from_the_journal_alone(
    popbatch: Popbatch, sandbox: SandboxServer, with_review: Run
) -> None:
    """Every sheet cell and CSV byte equal; summary.json differs only in its folder."""
    original = with_review.folder

    rebuilt = popbatch.command("report", "1", "--out", str(popbatch.root / "again"))

    folder = popbatch.root / "again" / original.name
    assert rebuilt.exit_code == 0
    assert rebuilt.stdout == f"{folder}\n"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        path.name for path in original.iterdir()
    )
    assert sheets(folder / "results.xlsx") == sheets(original / "results.xlsx")
    for path in original.glob("*.csv"):
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name
    before = json.loads((original / "summary.json").read_text("utf-8"))
    after = json.loads((folder / "summary.json").read_text("utf-8"))
    assert after.pop("results_folder") == str(folder)
    assert before.pop("results_folder") == str(original)
    assert after == before
    assert sandbox.received() == 4


def test_report_into_the_same_folder_replaces_it_with_the_same_content(
    popbatch: Popbatch, with_review: Run
) -> None:
    """The default --out rewrites the run's own folder, and nothing changes."""
    original = with_review.folder
    before = {path.name: path.read_bytes() for path in original.glob("*.csv")}
    cells = sheets(original / "results.xlsx")

    rebuilt = popbatch.command("report", "1", "--out", str(popbatch.out))

    assert rebuilt.exit_code == 0
    assert {path.name: path.read_bytes() for path in original.glob("*.csv")} == before
    assert sheets(original / "results.xlsx") == cells
    assert sorted(path.name for path in popbatch.out.iterdir()) == [original.name]


def test_report_of_a_batch_whose_last_run_was_killed_exits_as_its_rows_say(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Regression (issue 6): a killed run has no exit code, and report said 75.

    The rows were all done or in flight, so the rebuilt summary must say 3
    (Review), as the next run would.
    """
    sandbox.script_order("A-4", {"action": "hang"})
    path = popbatch.write_csv("february.csv", [(order, 1000) for order in ORDERS])
    process = popbatch.start("capture", path, "--concurrency", "1", "--timeout", "600")
    try:
        wait_until(lambda: sandbox.received("A-4") == 1, "A-4 to be in flight")
    finally:
        process.kill()

    rebuilt = popbatch.command("report", "1", "--out", str(popbatch.out))

    folder = Path(rebuilt.stdout.strip())
    summary = json.loads((folder / "summary.json").read_text("utf-8"))
    assert rebuilt.exit_code == 0
    assert (summary["exit_code"], summary["exit_meaning"]) == (
        3,
        "some outcomes are unknown: check the Review rows",
    )
    assert summary["groups"]["review"]["rows"] == 1


def test_report_of_a_batch_that_is_not_there_is_bad_usage(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Exit 2 and the same message as status."""
    rebuilt = popbatch.command("report", "7", "--out", str(popbatch.out))

    assert rebuilt.exit_code == 2
    assert rebuilt.lines == [
        f"Error: there is no batch 7 in the journal {str(popbatch.journal)!r}",
        "popbatch status lists the batches.",
    ]


def test_report_of_a_batch_that_never_ran_says_there_are_no_results(
    popbatch: Popbatch,
) -> None:
    """A batch planned by a run that died before it started has nothing to show."""
    with Journal.open(popbatch.journal) as journal:
        journal.create_batch(
            key="k",
            operation="capture",
            input_path="february.csv",
            input_sha256="0" * 64,
            input_kind="csv",
            encoding="utf-8",
            delimiter=",",
            sheet=None,
            headers=("order_id", "amount"),
            columns={"order_id": 0, "amount": 1},
            live=False,
            endpoint=popbatch.sandbox.base_url,
            options={},
        )

    rebuilt = popbatch.command("report", "1", "--out", str(popbatch.out))

    assert rebuilt.exit_code == 2
    assert rebuilt.lines == ["Error: batch 1 has never run: there are no results"]


def run_with_file_size_limit(
    popbatch: Popbatch, limit: int, *argv: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m popbatch ARGV`` in a process that may not write big files.

    RLIMIT_FSIZE makes the kernel refuse any write past ``limit`` bytes
    (EFBIG): a real failure to write, the way a full disk fails, that
    even root cannot get round.
    """
    launcher = (
        "import os, resource, sys\n"
        "limit = int(sys.argv[1])\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'popbatch', *sys.argv[2:]])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", launcher, str(limit), *argv],
        env=popbatch.process_environment(),
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_failed_rewrite_leaves_the_previous_results_folder_as_it_was(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """The results folder is replaced only once its successor is complete."""
    orders = [f"F-{n:04d}" for n in range(400)]
    for order_id in orders:
        sandbox.add_order(order_id, 5000)
    path = popbatch.write_csv("big.csv", [(order_id, 1000) for order_id in orders])
    folder = popbatch.run("capture", path).folder
    before = {item.name: item.read_bytes() for item in folder.iterdir()}

    failed = run_with_file_size_limit(
        popbatch,
        40_000,
        "report",
        "1",
        "--out",
        str(popbatch.out),
        "--journal",
        str(popbatch.journal),
    )

    assert failed.returncode == 73
    assert failed.stderr.splitlines() == [
        f"Error: cannot write the results to {str(folder)!r}: File too large",
        "Check the output folder (its permissions and free space), or choose "
        "another with --out.",
    ]
    assert {item.name: item.read_bytes() for item in folder.iterdir()} == before
    assert [item.name for item in popbatch.out.iterdir()] == [folder.name]


def test_a_journal_that_cannot_be_written_is_not_called_damaged(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Regression (issue 6): a disk I/O error on opening was reported as damage.

    The hint then said to move the journal aside and start a new one, which
    would make popbatch forget every batch it sent.
    """
    failed = run_with_file_size_limit(
        popbatch, 2_000, "status", "--journal", str(popbatch.journal)
    )

    assert failed.returncode == 73
    assert failed.stderr.splitlines() == [
        f"Error: cannot use the journal {str(popbatch.journal)!r}: disk I/O error",
        "Check the disk (space, permissions) and run the same command again: what "
        "the journal recorded is kept.",
    ]


# --- resolve ------------------------------------------------------------------------


def test_resolve_settles_a_review_row_keeping_who_when_and_why(
    popbatch: Popbatch, with_review: Run
) -> None:
    """The row is Succeeded from then on; the journal keeps the person and the note."""
    resolved = popbatch.command(
        "resolve", "1", "A-3", "--succeeded", "--note", "captured 11/30 10:02"
    )
    again = popbatch.run("capture", popbatch.root / "february.csv")

    row = popbatch.rows(1)[2]
    events = Journal.open(popbatch.journal).events(1)
    assert resolved.exit_code == 0
    assert resolved.stdout == (
        f"batch 1 row 4 order_id A-3: resolved as succeeded by {current_user()}\n"
    )
    assert row.resolution is not None
    assert (row.state, row.resolution.outcome) == ("resolved", "succeeded")
    assert (row.resolution.by, row.resolution.note) == (
        current_user(),
        "captured 11/30 10:02",
    )
    assert [(event.kind, event.by, event.note) for event in events] == [
        ("resolved", current_user(), "captured 11/30 10:02")
    ]
    assert again.exit_code == 1
    assert again.group_of()["A-3"] == "Succeeded"
    assert popbatch.sandbox.received("A-3") == 1


def test_resolve_as_failed_keeps_the_resolution_when_the_row_is_sent_again(
    popbatch: Popbatch, with_review: Run
) -> None:
    """The next run sends the row; the journal keeps who resolved it and why."""
    popbatch.command("resolve", "1", "A-3", "--failed", "--note", "not in portal")

    again = popbatch.run("capture", popbatch.root / "february.csv")

    events = Journal.open(popbatch.journal).events(1)
    assert again.exit_code == 1
    assert again.group_of()["A-3"] == "Succeeded"
    assert [(event.kind, event.to_state, event.by) for event in events] == [
        ("resolved", "resolved", current_user()),
        ("replanned", "planned", current_user()),
    ]
    assert events[1].note is not None
    assert events[1].note.startswith("resolved as failed at ")
    assert events[1].note.endswith(": not in portal")
    assert popbatch.sandbox.received("A-3") == 2


def test_resolving_a_row_that_is_not_in_review_is_a_clear_error(
    popbatch: Popbatch, with_review: Run
) -> None:
    """A succeeded row cannot be resolved: exit 2, naming its row and state."""
    refused = popbatch.command(
        "resolve", "1", "A-1", "--failed", "--note", "not in portal"
    )

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: order_id 'A-1' in batch 1 (row 2) is in Succeeded, not in "
        "Review; only Review rows can be resolved"
    ]
    assert popbatch.states(1)["A-1"] == "succeeded"


def test_a_resolution_can_be_corrected_until_a_run_acts_on_it(
    popbatch: Popbatch, sandbox: SandboxServer, with_review: Run
) -> None:
    """Resolved as succeeded by mistake: resolved again as failed, it is sent.

    Once the run has sent it, the row is no longer in Review.
    """
    popbatch.command("resolve", "1", "A-3", "--succeeded", "--note", "seen")
    before = sandbox.received("A-3")

    corrected = popbatch.command(
        "resolve", "1", "A-3", "--failed", "--note", "misread: not in portal"
    )
    rerun = popbatch.run("capture", popbatch.root / "february.csv")
    after = popbatch.command("resolve", "1", "A-3", "--failed", "--note", "again")

    assert corrected.exit_code == 0
    assert corrected.stdout.splitlines() == [
        f"batch 1 row 4 order_id A-3: resolved as failed by {current_user()}; "
        "running the same command on february.csv again sends it"
    ]
    assert sandbox.received("A-3") == before + 1
    assert rerun.group_of()["A-3"] == "Succeeded"
    assert after.exit_code == 2
    assert after.lines == [
        "Error: order_id 'A-3' in batch 1 (row 4) is in Succeeded, not in Review; "
        "only Review rows can be resolved"
    ]


def test_resolving_an_order_id_the_batch_does_not_have_is_an_error(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Exit 2 with a hint to list the batch's Review rows."""
    refused = popbatch.command("resolve", "1", "Z-9", "--failed", "--note", "gone")

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: batch 1 has no row with order_id 'Z-9'",
        "popbatch status 1 lists its Review rows.",
    ]


def test_resolving_in_a_batch_that_is_not_there_is_an_error(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Exit 2, as for status."""
    refused = popbatch.command("resolve", "4", "A-3", "--failed", "--note", "gone")

    assert refused.exit_code == 2
    assert refused.lines == [
        f"Error: there is no batch 4 in the journal {str(popbatch.journal)!r}",
        "popbatch status lists the batches.",
    ]


def test_resolve_without_outcome_or_note_is_bad_usage(
    popbatch: Popbatch, with_review: Run
) -> None:
    """ORDER_ID needs --succeeded or --failed and --note."""
    refused = popbatch.command("resolve", "1", "A-3", "--failed")

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: give ORDER_ID with --succeeded or --failed and --note, or --file",
        "Example: popbatch resolve 12 ORD-0042 --failed --note 'not in portal'",
    ]
    assert popbatch.states(1)["A-3"] == "unknown"


def test_resolve_with_both_succeeded_and_failed_is_bad_usage(
    popbatch: Popbatch, with_review: Run
) -> None:
    """Regression (issue 6): both flags settled the row as the last one given."""
    refused = popbatch.command(
        "resolve", "1", "A-3", "--succeeded", "--failed", "--note", "unsure"
    )

    assert refused.exit_code == 2
    assert refused.lines == ["Error: give --succeeded or --failed, not both"]
    assert popbatch.states(1)["A-3"] == "unknown"


def test_resolve_with_a_blank_note_is_refused(
    popbatch: Popbatch, with_review: Run
) -> None:
    """A note of spaces says nothing: exit 2."""
    refused = popbatch.command("resolve", "1", "A-3", "--failed", "--note", "   ")

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: resolving a row needs a note saying what the merchant portal showed",
        "Add --note TEXT.",
    ]


@pytest.fixture
def two_in_review(popbatch: Popbatch, sandbox: SandboxServer) -> None:
    """Batch 1 with A-2 and A-3 in Review, A-1 and A-4 captured."""
    sandbox.script_order("A-2", BAD_GATEWAY)
    sandbox.script_order("A-3", BAD_GATEWAY)
    path = popbatch.write_csv("february.csv", [(order, 1000) for order in ORDERS])
    assert popbatch.run("capture", path).exit_code == 3


def resolutions(popbatch: Popbatch, text: str) -> Path:
    """A resolutions file (CSV, UTF-8) with ``text``."""
    path = popbatch.root / "settled.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_resolve_file_settles_every_row_it_lists(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """One line per row settled, in the file's order."""
    path = resolutions(
        popbatch,
        "order_id,outcome,note\nA-3,failed,not in portal\nA-2,Succeeded, seen \n",
    )

    resolved = popbatch.command("resolve", "1", "--file", str(path))

    user = current_user()
    assert resolved.exit_code == 0
    assert resolved.stdout.splitlines() == [
        f"batch 1 row 4 order_id A-3: resolved as failed by {user}; running the "
        "same command on february.csv again sends it",
        f"batch 1 row 3 order_id A-2: resolved as succeeded by {user}",
    ]
    assert [row.resolution.note for row in popbatch.rows(1)[1:3] if row.resolution] == [
        "seen",
        "not in portal",
    ]


def test_resolve_file_in_cp932_with_japanese_headers_and_outcomes(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """Saved by Japanese Excel: 注文番号, 結果 (成功/失敗), 備考, in CP932."""
    path = popbatch.root / "確認結果.csv"
    text = "注文番号,結果,備考\r\nA-3,失敗,ポータルに無し\r\nA-2,成功,髙橋が確認\r\n"
    path.write_bytes(text.encode("cp932"))

    resolved = popbatch.command("resolve", "1", "--file", str(path))

    user = current_user()
    assert resolved.exit_code == 0
    assert resolved.stdout.splitlines() == [
        f"batch 1 row 4 order_id A-3: resolved as failed by {user}; running the "
        "same command on february.csv again sends it",
        f"batch 1 row 3 order_id A-2: resolved as succeeded by {user}",
    ]
    assert [row.resolution.note for row in popbatch.rows(1)[1:3] if row.resolution] == [
        "髙橋が確認",
        "ポータルに無し",
    ]


def test_resolve_file_with_a_row_that_cannot_be_settled_settles_none(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """Regression (issue 6): rows before the bad one were settled, silently.

    The error named the bad row, and the user never saw that the others had
    been recorded; now it is all or nothing.
    """
    path = resolutions(
        popbatch,
        "order_id,outcome,note\nA-3,failed,not in portal\nA-1,failed,typo\n",
    )

    refused = popbatch.command("resolve", "1", "--file", str(path))

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: settled.csv row 3: order_id 'A-1' in batch 1 (row 2) is in "
        "Succeeded, not in Review; only Review rows can be resolved; nothing was "
        "resolved"
    ]
    assert popbatch.states(1) == {
        "A-1": "succeeded",
        "A-2": "unknown",
        "A-3": "unknown",
        "A-4": "succeeded",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "order_id,outcome\nA-3,failed\n",
            "settled.csv needs the columns order_id, outcome and note (missing: note)",
        ),
        (
            "order_id,outcome,note\nA-3,done,seen\n",
            "settled.csv row 2: outcome must be succeeded or failed (成功 or 失敗), "
            "got 'done'",
        ),
        (
            "order_id,outcome,note\nA-3,failed,\n",
            "settled.csv row 2: a note is required",
        ),
        ("order_id,outcome,note\n", "settled.csv has no rows to resolve"),
    ],
    ids=["missing-column", "bad-outcome", "no-note", "no-rows"],
)
def test_resolve_file_that_cannot_be_used_is_bad_usage(
    popbatch: Popbatch, two_in_review: None, text: str, message: str
) -> None:
    """Each problem of the file is named, and nothing is settled."""
    path = resolutions(popbatch, text)

    refused = popbatch.command("resolve", "1", "--file", str(path))

    assert refused.exit_code == 2
    assert refused.lines == [f"Error: {message}"]
    assert popbatch.states(1)["A-3"] == "unknown"


def test_resolve_file_that_is_missing_cannot_be_read(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """Exit 66, as for a missing input file."""
    missing = popbatch.root / "nowhere.csv"

    refused = popbatch.command("resolve", "1", "--file", str(missing))

    assert refused.exit_code == 66
    assert refused.lines == [
        f"Error: cannot read {str(missing)!r}: No such file or directory"
    ]


def test_resolve_file_that_is_neither_utf8_nor_cp932_cannot_be_read(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """Exit 66 and how to save the file (UTF-16 here, Excel's "Unicode text")."""
    path = popbatch.root / "settled.csv"
    path.write_bytes(
        "order_id,outcome,note\nA-3,failed,見当たらない\n".encode("utf-16")
    )

    refused = popbatch.command("resolve", "1", "--file", str(path))

    assert refused.exit_code == 66
    assert refused.lines == [
        f"Error: cannot read {str(path)!r}: it is neither UTF-8 nor CP932 text",
        "Save it as CSV UTF-8 with the columns order_id, outcome and note.",
    ]


def test_resolve_file_with_an_order_id_as_well_is_bad_usage(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """One way at a time: a file, or one row on the command line."""
    path = resolutions(popbatch, "order_id,outcome,note\nA-3,failed,no\n")

    refused = popbatch.command(
        "resolve", "1", "A-2", "--failed", "--note", "no", "--file", str(path)
    )

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: give ORDER_ID with --succeeded or --failed and --note, or --file, "
        "not both"
    ]
    assert popbatch.states(1)["A-2"] == "unknown"


@pytest.fixture
def held_lock(popbatch: Popbatch) -> Iterator[JournalLock]:
    """The journal's lock, held as a run in progress would hold it."""
    Journal.open(popbatch.journal).close()
    with JournalLock(popbatch.journal) as lock:
        yield lock


def test_resolve_while_a_run_holds_the_journal_exits_75(
    popbatch: Popbatch, two_in_review: None, held_lock: JournalLock
) -> None:
    """A run may still be sending the row: resolve waits for nothing, exit 75."""
    refused = popbatch.command("resolve", "1", "A-3", "--failed", "--note", "no")

    held = json.loads(lock_path(popbatch.journal).read_text())
    assert refused.exit_code == 75
    assert refused.lines == [
        f"Error: another popbatch run is using the journal "
        f"{str(popbatch.journal)!r} (pid {os.getpid()}, started at "
        f"{held['started_at']})",
        "Wait for it to finish and run the same command again; it resumes where "
        "the batch stands.",
    ]
    assert popbatch.states(1)["A-3"] == "unknown"


def test_resolve_file_naming_an_order_twice_resolves_nothing(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """Two lines for one order (a paste error): the later must not win silently."""
    path = resolutions(
        popbatch,
        "order_id,outcome,note\nA-3,succeeded,refund seen\nA-2,failed,no\n"
        "A-3,failed,pasted twice\n",
    )

    refused = popbatch.command("resolve", "1", "--file", str(path))

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: settled.csv names order_id 'A-3' on rows 2, 4; each order is "
        "resolved once, so nothing was resolved",
        "Keep the line that says what the merchant portal shows.",
    ]
    assert popbatch.states(1)["A-3"] == "unknown"
    assert popbatch.states(1)["A-2"] == "unknown"


def test_resolve_file_with_two_outcome_columns_resolves_nothing(
    popbatch: Popbatch, two_in_review: None
) -> None:
    """結果 and outcome both map to the outcome: which one was meant is not guessed."""
    path = resolutions(popbatch, "order_id,結果,outcome,note\nA-3,成功,failed,seen\n")

    refused = popbatch.command("resolve", "1", "--file", str(path))

    assert refused.exit_code == 2
    assert refused.lines == [
        "Error: settled.csv has 2 columns for outcome (結果, outcome); nothing was "
        "resolved",
        "Keep one of them.",
    ]
    assert popbatch.states(1)["A-3"] == "unknown"


def test_a_resolution_stays_open_while_a_stopped_run_has_not_sent_the_row(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """A-3 resolved as failed; the next run stops on a wrong key before sending
    it; the person corrects the resolution to succeeded, and A-3 is never sent
    again."""
    busy = {"status": 429, "headers": {"Retry-After": "0"}, "body": "busy"}
    sandbox.script_order("A-2", busy, busy, busy)
    sandbox.script_order("A-3", BAD_GATEWAY)
    path = popbatch.write_csv("february.csv", [("A-2", 1000), ("A-3", 1000)])
    first = popbatch.run("capture", path, "--concurrency", "1")
    popbatch.command("resolve", "1", "A-3", "--failed", "--note", "not seen")

    stopped = popbatch.run("capture", path, key="Wrong-Key")
    corrected = popbatch.command(
        "resolve", "1", "A-3", "--succeeded", "--note", "found it after all"
    )
    finished = popbatch.run("capture", path)

    assert (first.exit_code, stopped.exit_code) == (75, 78)
    assert corrected.exit_code == 0
    assert corrected.stdout.splitlines() == [
        f"batch 1 row 3 order_id A-3: resolved as succeeded by {current_user()}"
    ]
    assert finished.exit_code == 0
    assert finished.group_of() == {"A-2": "Succeeded", "A-3": "Succeeded"}
    assert sandbox.received("A-3") == 1
