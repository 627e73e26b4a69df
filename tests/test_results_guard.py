"""The results folder guard: a run or a report never replaces another batch's results.

Batch numbers count per journal, so a cron job and a person with journals of
their own, writing under the same --out, both have a batch 1 of the same
file. Every test runs the real command line against the sandbox over HTTP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from harness import Popbatch
from run_output import EXIT_OK, expected_summary

from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

ORDERS = ("A-1", "A-2", "A-3")

# A 429 that asks for no wait: the row is not processed and retried at once.
BUSY = {"status": 429, "headers": {"Retry-After": "0"}, "body": "busy"}

HINT = "Use another --out, or move that folder away."


@pytest.fixture
def popbatch(popbatch: Popbatch) -> Popbatch:
    """The command line for this test, with its orders authorised."""
    for order_id in ORDERS:
        popbatch.sandbox.add_order(order_id, 5000)
    return popbatch


@pytest.fixture
def february(popbatch: Popbatch) -> Path:
    """A capture file of ORDERS, 1,000 yen each."""
    return popbatch.captures("february.csv", ORDERS)


def real(path: Path) -> str:
    """A journal's path as summary.json records it: absolute, symlinks followed."""
    return os.path.realpath(path)


def test_a_run_with_another_journal_leaves_the_first_runs_results_alone(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path
) -> None:
    """The cron journal's batch 1 is refused (73) before sending; results.xlsx stays."""
    first = popbatch.run("capture", february)
    workbook = (first.folder / "results.xlsx").read_bytes()
    cron = popbatch.root / "cron.sqlite3"

    second = popbatch.run("capture", february, "--journal", str(cron))

    assert first.exit_code == 0
    assert second.exit_code == 73
    assert second.lines == [
        f"Warning: the journal {real(cron)} holds no earlier batches: nothing can "
        "be recognised as already done",
        f"Error: the results folder {str(first.folder)!r} holds batch 1 of another "
        f"journal ({real(popbatch.journal)!r}); nothing was sent",
        HINT,
    ]
    assert (first.folder / "results.xlsx").read_bytes() == workbook
    assert sandbox.received() == len(ORDERS)


def test_the_refused_batch_goes_out_with_another_out(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path
) -> None:
    """The other journal planned its batch: the same command with --out sends it."""
    popbatch.run("capture", february)
    cron = popbatch.root / "cron.sqlite3"
    popbatch.run("capture", february, "--journal", str(cron))
    elsewhere = popbatch.root / "cron-out"

    moved = popbatch.run(
        "capture", february, "--journal", str(cron), "--out", str(elsewhere)
    )

    assert moved.folder == elsewhere / "february-capture-batch1"
    assert moved.summary()["owner"]["journal"] == real(cron)
    assert sandbox.received() == 2 * len(ORDERS)
    assert sorted(path.name for path in popbatch.out.iterdir()) == [
        "february-capture-batch1"
    ]


def test_summary_json_names_the_journal_and_the_batch(
    popbatch: Popbatch, february: Path
) -> None:
    """The journal's real path; the batch's id, operation, mode, input, plan time."""
    run = popbatch.run("capture", february)

    batch = popbatch.batch(1)
    assert run.summary()["owner"] == {
        "journal": real(popbatch.journal),
        "batch_id": 1,
        "operation": "capture",
        "live": False,
        "input_sha256": batch.input_sha256,
        "planned_at": batch.created_at.isoformat(),
    }


def test_resuming_the_same_batch_replaces_its_own_folder(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path
) -> None:
    """A stopped batch's folder is rewritten whole by the run that finishes it."""
    sandbox.script_order("A-2", BUSY, BUSY)
    stopped = popbatch.run(
        "capture", february, "--concurrency", "1", "--stop-after", "2"
    )
    (stopped.folder / "notes.txt").write_text("from the first run", encoding="utf-8")

    resumed = popbatch.run("capture", february, "--concurrency", "1")

    assert stopped.exit_code == 75
    assert resumed.exit_code == 0
    assert resumed.folder == stopped.folder
    assert resumed.lines == [
        "sending 2 rows",
        *expected_summary(1, resumed.folder, EXIT_OK, succeeded=(3, 3000)),
    ]
    assert not (resumed.folder / "notes.txt").exists()
    assert resumed.counts()["succeeded"] == 3


def test_the_same_journal_through_a_symlink_is_the_same_journal(
    popbatch: Popbatch, february: Path
) -> None:
    """A journal named by another path to the same file rewrites its folder."""
    popbatch.run("capture", february)
    link = popbatch.root / "link.sqlite3"
    link.symlink_to(popbatch.journal)

    again = popbatch.run("capture", february, "--journal", str(link))

    assert again.exit_code == 0
    assert again.lines[0] == popbatch.finished_text(1)


def test_report_from_another_journal_is_refused_and_leaves_the_folder(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path
) -> None:
    """popbatch report applies the guard: another journal's batch 1 writes nothing."""
    first = popbatch.run("capture", february)
    cron = popbatch.root / "cron.sqlite3"
    popbatch.run(
        "capture", february, "--journal", str(cron), "--out", str(popbatch.root / "c")
    )
    before = {path.name: path.read_bytes() for path in first.folder.iterdir()}

    report = popbatch.invoke(
        "report", "1", "--journal", str(cron), "--out", str(popbatch.out)
    )

    assert report.exit_code == 73
    assert report.lines[0] == (
        f"Error: the results folder {str(first.folder)!r} holds batch 1 of another "
        f"journal ({real(popbatch.journal)!r}); nothing was written"
    )
    assert report.lines[1:] == [
        "Use another --out (popbatch report 1 --out DIR writes this batch's results "
        "from its journal), or move that folder away."
    ]
    assert {path.name: path.read_bytes() for path in first.folder.iterdir()} == before


def test_report_from_the_same_journal_rewrites_its_folder(
    popbatch: Popbatch, february: Path
) -> None:
    """The batch's own journal rewrites the folder, which keeps naming that journal."""
    first = popbatch.run("capture", february)

    report = popbatch.command("report", "1", "--out", str(popbatch.out))

    assert report.exit_code == 0
    assert report.stdout == f"{first.folder}\n"
    assert first.summary()["owner"]["journal"] == real(popbatch.journal)


def test_a_folder_without_summary_json_is_not_replaced(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path
) -> None:
    """Files popbatch cannot attribute are kept: exit 73, nothing sent."""
    folder = popbatch.out / "february-capture-batch1"
    folder.mkdir(parents=True)
    (folder / "results.xlsx").write_bytes(b"someone's workbook")

    run = popbatch.run("capture", february)

    assert run.exit_code == 73
    assert run.lines == [
        f"Error: the results folder {str(folder)!r} holds files but no summary.json "
        "saying which batch they belong to; nothing was sent",
        HINT,
    ]
    assert (folder / "results.xlsx").read_bytes() == b"someone's workbook"
    assert sandbox.received() == 0


def test_a_summary_json_that_names_no_owner_is_not_replaced(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path
) -> None:
    """An older popbatch's folder (summary.json without its journal) is kept."""
    folder = popbatch.out / "february-capture-batch1"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(
        json.dumps({"batch_id": 1, "operation": "capture"}), encoding="utf-8"
    )

    run = popbatch.run("capture", february)

    assert run.exit_code == 73
    assert run.lines == [
        f"Error: the results folder {str(folder)!r} has no summary.json naming its "
        "journal and batch (an older popbatch, or something else, wrote it); "
        "nothing was sent",
        HINT,
    ]
    assert sandbox.received() == 0


def test_an_empty_folder_of_that_name_is_replaced(
    popbatch: Popbatch, february: Path
) -> None:
    """An empty folder holds nothing to lose: the run writes its results there."""
    folder = popbatch.out / "february-capture-batch1"
    folder.mkdir(parents=True)

    run = popbatch.run("capture", february)

    assert run.exit_code == 0
    assert run.folder == folder
    assert run.counts()["succeeded"] == 3


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_file_or_link_with_the_folders_name_is_refused_before_sending(
    popbatch: Popbatch, sandbox: SandboxServer, february: Path, kind: str
) -> None:
    """Found before the first request, not after the batch was sent: exit 73."""
    folder = popbatch.out / "february-capture-batch1"
    popbatch.out.mkdir(parents=True, exist_ok=True)
    elsewhere = popbatch.root / "elsewhere"
    elsewhere.mkdir()
    if kind == "symlink":
        folder.symlink_to(elsewhere)
    else:
        folder.write_text("notes", encoding="utf-8")

    run = popbatch.run("capture", february)

    assert run.exit_code == 73
    assert run.lines == [
        f"Error: cannot write the results folder {str(folder)!r}: something other "
        "than a results folder has that name; nothing was sent",
        "Move it away, or choose another output folder with --out.",
    ]
    assert sandbox.received() == 0
    assert list(elsewhere.iterdir()) == []
