"""Resuming a batch: the same command on the same file finishes it, once.

Every test runs the real command line against the sandbox over HTTP, with
its own journal, and counts what reached POP with the sandbox's per-order
counters.
"""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from harness import LIVE_KEY, Popbatch, wait_until
from run_output import EXIT_FAILED, EXIT_OK, EXIT_REVIEW, expected_summary

from popbatch.journal import Journal, lock_path
from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

ORDERS = ("A-1", "A-2", "A-3", "A-4", "A-5")

# A 429 that asks for no wait: the row is not processed and retried at once.
BUSY = {"status": 429, "headers": {"Retry-After": "0"}, "body": "busy"}


@pytest.fixture
def popbatch(popbatch: Popbatch) -> Popbatch:
    """The command line for this test, with seven orders authorised."""
    for order_id in (*ORDERS, "A-6", "A-7"):
        popbatch.sandbox.add_order(order_id, 5000)
    return popbatch


def captures(popbatch: Popbatch, name: str, *rows: tuple[str, int]) -> Path:
    """A capture file of (order_id, amount) rows; all of ORDERS by default."""
    return popbatch.write_csv(name, rows or [(order, 1000) for order in ORDERS])


# --- the same file again -------------------------------------------------------


def test_a_finished_batch_run_again_sends_nothing_and_says_so(
    popbatch: Popbatch,
) -> None:
    """A second run of a finished file sends nothing and exits as the batch did."""
    path = captures(popbatch, "captures.csv")
    first = popbatch.run("capture", path)

    again = popbatch.run("capture", path)

    assert first.exit_code == 0
    assert again.exit_code == 0
    assert again.lines == [
        popbatch.finished_text(1),
        *expected_summary(1, again.folder, EXIT_OK, succeeded=(5, 5000)),
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


def test_a_finished_batch_exits_as_its_result_with_failed_rows(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """A finished batch with a declined row exits 1 again, sending nothing."""
    sandbox.add_order("A-3", 5000, decline=True)
    path = captures(popbatch, "captures.csv")
    first = popbatch.run("capture", path)

    again = popbatch.run("capture", path)

    assert (first.exit_code, again.exit_code) == (1, 1)
    assert again.lines == [
        popbatch.finished_text(1),
        *expected_summary(
            1, again.folder, EXIT_FAILED, succeeded=(4, 4000), failed=(1, 1000)
        ),
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


def test_a_run_that_sends_nothing_keeps_the_batch_finish_time(
    popbatch: Popbatch,
) -> None:
    """Regression (issue 6): a run of a finished batch moved its finish time.

    "already finished on" then named the previous run that did nothing,
    not the run that did the work.
    """
    path = captures(popbatch, "captures.csv")
    popbatch.run("capture", path)
    finished = popbatch.batch(1).finished_at

    popbatch.run("capture", path)
    third = popbatch.run("capture", path)

    assert popbatch.batch(1).finished_at == finished
    assert third.lines[0] == popbatch.finished_text(1)
    assert [run.exit_code for run in Journal.open(popbatch.journal).runs(1)] == [
        0,
        0,
        0,
    ]


def test_a_stopped_batch_sends_its_planned_and_pending_rows_and_no_done_row(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """Rows never sent and rows left pending go out once; done rows stay done."""
    sandbox.script_order("A-2", BUSY, BUSY)
    path = captures(popbatch, "captures.csv")
    stopped = popbatch.run("capture", path, "--concurrency", "1", "--stop-after", "2")
    states = popbatch.states(1)

    resumed = popbatch.run("capture", path, "--concurrency", "1")

    assert stopped.exit_code == 75
    assert states == {
        "A-1": "succeeded",
        "A-2": "pending",
        "A-3": "planned",
        "A-4": "planned",
        "A-5": "planned",
    }
    assert resumed.exit_code == 0
    assert resumed.lines == [
        "sending 4 rows",
        *expected_summary(1, resumed.folder, EXIT_OK, succeeded=(5, 5000)),
    ]
    assert popbatch.received(ORDERS) == {
        "A-1": 1,
        "A-2": 3,
        "A-3": 1,
        "A-4": 1,
        "A-5": 1,
    }
    assert sandbox.applied() == 5


# --- rows in flight when a run died ---------------------------------------------


def kill_while_in_flight(
    popbatch: Popbatch, sandbox: SandboxServer, hanging: tuple[str, ...]
) -> Path:
    """Run the captures in a process and SIGKILL it while ``hanging`` are in flight.

    Their requests hang in the sandbox, one worker each, so the rows before
    them are done and the rows after them never left. Returns the input file.
    """
    for order_id in hanging:
        sandbox.script_order(order_id, {"action": "hang"})
    path = captures(popbatch, "captures.csv")
    process = popbatch.start(
        "capture", path, "--concurrency", str(len(hanging)), "--timeout", "600"
    )
    try:
        wait_until(
            lambda: all(sandbox.received(order_id) == 1 for order_id in hanging),
            f"{', '.join(hanging)} to reach the sandbox",
        )
    finally:
        process.kill()
    return path


@pytest.fixture
def interrupted(popbatch: Popbatch, sandbox: SandboxServer) -> Path:
    """A batch killed while A-3 and A-4 were in flight, resumed once.

    A-1 and A-2 were done before the kill; A-5 is sent by the resumed run.
    """
    path = kill_while_in_flight(popbatch, sandbox, ("A-3", "A-4"))
    resumed = popbatch.run("capture", path)
    assert resumed.exit_code == 3
    return path


def test_a_row_in_flight_when_the_process_died_goes_to_review_and_is_not_resent(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """The rows done and the row in flight are not sent again; the rest are."""
    path = kill_while_in_flight(popbatch, sandbox, ("A-3",))
    states = popbatch.states(1)

    resumed = popbatch.run("capture", path)

    assert states == {
        "A-1": "succeeded",
        "A-2": "succeeded",
        "A-3": "in_flight",
        "A-4": "planned",
        "A-5": "planned",
    }
    assert resumed.exit_code == 3
    assert resumed.lines == [
        "sending 2 rows",
        "1 row was in flight when an earlier run stopped: it may have been "
        "applied, so it is in Review and not sent again",
        *expected_summary(
            1,
            resumed.folder,
            EXIT_REVIEW,
            succeeded=(4, 4000),
            review=(1, 1000),
            review_orders=["A-3"],
            journal=popbatch.journal,
        ),
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)
    assert resumed.group_of()["A-3"] == "Review"


def test_rows_in_flight_are_counted_in_review_and_the_rest_sent_once(
    popbatch: Popbatch, interrupted: Path
) -> None:
    """Two rows in flight at the kill: both in Review, the row never sent is sent."""
    states = popbatch.states(1)

    again = popbatch.run("capture", interrupted)

    assert states == {
        "A-1": "succeeded",
        "A-2": "succeeded",
        "A-3": "unknown",
        "A-4": "unknown",
        "A-5": "succeeded",
    }
    assert again.exit_code == 3
    assert again.lines == [
        popbatch.finished_text(1),
        *expected_summary(
            1,
            again.folder,
            EXIT_REVIEW,
            succeeded=(3, 3000),
            review=(2, 2000),
            review_orders=["A-3", "A-4"],
            journal=popbatch.journal,
        ),
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


@pytest.fixture
def in_review(popbatch: Popbatch, sandbox: SandboxServer) -> Path:
    """A finished batch whose A-3 and A-4 went to Review on a read timeout.

    Their requests hung in the sandbox; the run gave up waiting after 0.3 s.
    """
    for order_id in ("A-3", "A-4"):
        sandbox.script_order(order_id, {"action": "hang"})
    path = captures(popbatch, "captures.csv")
    first = popbatch.run("capture", path, "--timeout", "0.3")
    assert first.exit_code == 3
    return path


RESEND_WARNING = (
    "2 rows of this batch are in Review: they may already have been applied "
    "at POP. Sending them again can charge or refund twice."
)


def test_resend_unknown_without_a_terminal_or_yes_refuses_and_sends_nothing(
    popbatch: Popbatch, in_review: Path
) -> None:
    """--resend-unknown in cron (no terminal, no --yes) is bad usage, exit 2."""
    refused = popbatch.run("capture", in_review, "--resend-unknown")

    assert refused.exit_code == 2
    assert refused.lines == [
        RESEND_WARNING,
        "Error: --resend-unknown needs a terminal to confirm it, or --yes",
        "Check the Review rows in the merchant portal first.",
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)
    assert popbatch.states(1)["A-3"] == "unknown"


def test_resend_unknown_answered_no_at_the_prompt_sends_nothing(
    popbatch: Popbatch, in_review: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person who answers no keeps the rows in Review."""
    monkeypatch.setattr("popbatch.cli.output.stdin_is_terminal", lambda: True)

    declined = popbatch.run("capture", in_review, "--resend-unknown", input="n\n")

    assert declined.exit_code == 3
    assert declined.lines == [
        RESEND_WARNING,
        "Send them again? [y/N]: n",
        "2 Review rows are left in Review: not sent again",
        popbatch.finished_text(1),
        *expected_summary(
            1,
            declined.folder,
            EXIT_REVIEW,
            succeeded=(3, 3000),
            review=(2, 2000),
            review_orders=["A-3", "A-4"],
            journal=popbatch.journal,
        ),
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


def test_resend_unknown_answered_yes_at_the_prompt_sends_the_rows_once_more(
    popbatch: Popbatch, in_review: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person who checked the portal and says yes gets the Review rows sent."""
    monkeypatch.setattr("popbatch.cli.output.stdin_is_terminal", lambda: True)

    resent = popbatch.run("capture", in_review, "--resend-unknown", input="y\n")

    assert resent.exit_code == 0
    assert resent.lines == [
        RESEND_WARNING,
        "Send them again? [y/N]: y",
        "sending 2 rows",
        "2 Review rows are sent again, as asked",
        *expected_summary(1, resent.folder, EXIT_OK, succeeded=(5, 5000)),
    ]
    assert popbatch.received(ORDERS) == {
        **dict.fromkeys(ORDERS, 1),
        "A-3": 2,
        "A-4": 2,
    }


def test_resend_unknown_with_yes_sends_without_asking(
    popbatch: Popbatch, interrupted: Path
) -> None:
    """--yes answers the question for cron: the Review rows are sent again."""
    resent = popbatch.run("capture", interrupted, "--resend-unknown", "--yes")

    assert resent.exit_code == 0
    assert resent.lines[:2] == [
        "sending 2 rows",
        "2 Review rows are sent again, as asked",
    ]
    assert popbatch.received(ORDERS) == {
        **dict.fromkeys(ORDERS, 1),
        "A-3": 2,
        "A-4": 2,
    }


def test_a_live_run_declined_after_resend_was_confirmed_keeps_the_review_rows(
    popbatch: Popbatch, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (issue 6): yes to resend, no to the live question, and the
    Review rows had been planned again all the same.

    The next live run (from cron, with --yes, without --resend-unknown) then
    sent them without anyone asking. Now a declined live run changes nothing.
    """
    sandbox.script_order("A-3", {"status": 502, "body": "<html>down</html>"})
    path = captures(popbatch, "captures.csv")
    live = {"POP_SERVER_KEY": LIVE_KEY}
    first = popbatch.run("capture", path, "--live", "--yes", env=live)
    monkeypatch.setattr("popbatch.cli.output.stdin_is_terminal", lambda: True)

    declined = popbatch.run(
        "capture", path, "--live", "--resend-unknown", env=live, input="y\nn\n"
    )
    cron = popbatch.run("capture", path, "--live", "--yes", env=live)

    assert first.exit_code == 3
    assert declined.exit_code == 2
    assert declined.lines == [
        "1 row of this batch is in Review: it may already have been applied at "
        "POP. Sending it again can charge or refund twice.",
        "Send it again? [y/N]: y",
        f"LIVE capture: 1 row, 1,000 yen in total, to {sandbox.base_url}",
        "Send these requests with real money? [y/N]: n",
        "Error: the live run was not confirmed; nothing was sent",
    ]
    assert popbatch.states(1)["A-3"] == "unknown"
    assert cron.exit_code == 3
    assert cron.lines[0] == popbatch.finished_text(1)
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


def test_resend_unknown_on_a_batch_without_review_rows_says_so(
    popbatch: Popbatch,
) -> None:
    """Nothing to send again is said, not silently ignored."""
    path = captures(popbatch, "captures.csv")
    popbatch.run("capture", path)

    again = popbatch.run("capture", path, "--resend-unknown", "--yes")

    assert again.exit_code == 0
    assert again.lines[:2] == [
        "batch 1 has no Review rows to send again",
        popbatch.finished_text(1),
    ]
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


def test_a_review_row_after_a_read_timeout_is_not_sent_again(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """A hung answer is a read timeout: Review at once, never retried or resent."""
    sandbox.script_order("A-3", {"action": "hang"})
    path = captures(popbatch, "captures.csv")

    first = popbatch.run("capture", path, "--timeout", "0.5")
    again = popbatch.run("capture", path)

    assert (first.exit_code, again.exit_code) == (3, 3)
    assert first.group_of()["A-3"] == "Review"
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


# --- a changed file is a new batch ---------------------------------------------


def test_fixing_the_rejected_rows_and_running_again_sends_only_those(
    popbatch: Popbatch,
) -> None:
    """The fixed file is batch 2: rows batch 1 did are skipped, the fixed row sent."""
    rows = [("A-1", 1000), ("A-2", 1000), ("A-3", "abc")]
    broken = popbatch.write_csv("captures.csv", rows)
    first = popbatch.run("capture", broken, "--skip-invalid")
    fixed = popbatch.write_csv("captures.csv", [*rows[:2], ("A-3", 1000)])

    second = popbatch.run("capture", fixed)

    assert first.exit_code == 1
    assert second.exit_code == 0
    assert second.lines == [
        "sending 1 row",
        "2 rows were already done in an earlier batch: skipped, not sent again",
        *expected_summary(
            2, second.folder, EXIT_OK, succeeded=(1, 1000), skipped=(2, 2000)
        ),
    ]
    assert popbatch.received(["A-1", "A-2", "A-3"]) == {"A-1": 1, "A-2": 1, "A-3": 1}
    assert [row.problems[0].message for row in popbatch.rows(2)[:2]] == [
        "already done in batch 1 (row 2)",
        "already done in batch 1 (row 3)",
    ]


def test_rows_are_known_by_order_id_not_by_line_when_reordered_or_inserted(
    popbatch: Popbatch,
) -> None:
    """The same rows reordered, with one inserted: only the new row is sent."""
    popbatch.run("capture", captures(popbatch, "february.csv"))
    reordered = captures(
        popbatch,
        "february-again.csv",
        ("A-5", 1000),
        ("A-3", 1000),
        ("A-6", 1000),
        ("A-1", 1000),
        ("A-4", 1000),
        ("A-2", 1000),
    )

    second = popbatch.run("capture", reordered)

    assert second.exit_code == 0
    assert popbatch.received([*ORDERS, "A-6"]) == dict.fromkeys([*ORDERS, "A-6"], 1)
    assert {
        str(row.order_id): row.problems[0].message
        for row in popbatch.rows(2)
        if row.problems
    } == {
        "A-5": "already done in batch 1 (row 6)",
        "A-3": "already done in batch 1 (row 4)",
        "A-1": "already done in batch 1 (row 2)",
        "A-4": "already done in batch 1 (row 5)",
        "A-2": "already done in batch 1 (row 3)",
    }
    assert second.group_of()["A-6"] == "Succeeded"


def test_a_row_whose_amount_differs_from_what_was_done_is_flagged_in_skipped(
    popbatch: Popbatch,
) -> None:
    """A capture of another amount is not sent; Skipped says both amounts."""
    popbatch.run("capture", captures(popbatch, "february.csv"))
    changed = captures(popbatch, "february-fixed.csv", ("A-1", 1000), ("A-2", 1200))

    second = popbatch.run("capture", changed)

    assert second.exit_code == 1
    assert second.lines == [
        "1 row was already done in an earlier batch: skipped, not sent again",
        "1 row differs from what an earlier batch already did and was not sent "
        "(row 3): see Skipped, and check which is right",
        *expected_summary(2, second.folder, EXIT_FAILED, skipped=(2, 2200)),
    ]
    assert popbatch.rows(2)[1].problems[0].message == (
        "already done in batch 1 (row 3) with amount 1,000; this row asks amount "
        "1,200, so it was not sent: check which is right"
    )
    assert popbatch.received(["A-1", "A-2"]) == {"A-1": 1, "A-2": 1}


def test_another_sheet_of_the_same_workbook_is_another_batch(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """--sheet is part of the batch: each sheet is sent once, and resumes alone."""
    workbook = openpyxl.Workbook()
    february = workbook.active
    assert february is not None
    february.title = "February"
    march = workbook.create_sheet("March")
    for sheet, orders in ((february, ("A-1", "A-2")), (march, ("A-3", "A-4"))):
        sheet.append(["order_id", "amount"])
        for order_id in orders:
            sheet.append([order_id, 1000])
    path = tmp_path / "captures.xlsx"
    workbook.save(path)

    first = popbatch.run("capture", path, "--sheet", "February")
    second = popbatch.run("capture", path, "--sheet", "March")
    again = popbatch.run("capture", path, "--sheet", "February")

    assert (first.exit_code, second.exit_code, again.exit_code) == (0, 0, 0)
    assert first.folder.name == "captures-capture-batch1"
    assert second.folder.name == "captures-capture-batch2"
    assert again.lines[0] == popbatch.finished_text(1)
    assert popbatch.received(["A-1", "A-2", "A-3", "A-4"]) == dict.fromkeys(
        ["A-1", "A-2", "A-3", "A-4"], 1
    )


def test_the_same_bytes_read_with_another_encoding_are_another_batch(
    popbatch: Popbatch,
) -> None:
    """--encoding is part of the batch: its rows meet batch 1's rules, not its rows."""
    path = captures(popbatch, "captures.csv")
    popbatch.run("capture", path)

    cp932 = popbatch.run("capture", path, "--encoding", "cp932")

    assert cp932.exit_code == 0
    assert cp932.folder.name == "captures-capture-batch2"
    assert cp932.lines[0] == (
        "5 rows were already done in an earlier batch: skipped, not sent again"
    )
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


# --- where the journal is --------------------------------------------------------


def test_the_journal_defaults_to_the_xdg_state_home(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Without --journal, runs and status use $XDG_STATE_HOME/popbatch/journal.sqlite3."""
    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state), "HOME": str(tmp_path / "home")}
    path = captures(popbatch, "captures.csv", ("A-1", 1000))
    argv = ["capture", str(path), "--endpoint", popbatch.sandbox.base_url]
    argv += ["--out", str(popbatch.out)]

    first = popbatch.invoke(*argv, env=env)
    again = popbatch.invoke(*argv, env=env)
    status = popbatch.invoke("status", env=env)

    journal = state / "popbatch" / "journal.sqlite3"
    assert (first.exit_code, again.exit_code, status.exit_code) == (0, 0, 0)
    assert journal.is_file()
    assert again.lines[0].startswith("batch 1 already finished on ")
    assert status.stdout.startswith("batch 1  ")
    assert not popbatch.journal.exists()
    assert popbatch.received(["A-1"]) == {"A-1": 1}


def test_without_xdg_state_home_the_journal_is_under_the_home_folder(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """The XDG default: ~/.local/state/popbatch/journal.sqlite3."""
    home = tmp_path / "home"
    env = {"XDG_STATE_HOME": None, "HOME": str(home)}
    path = captures(popbatch, "captures.csv", ("A-1", 1000))
    argv = ["capture", str(path), "--endpoint", popbatch.sandbox.base_url]
    argv += ["--out", str(popbatch.out)]

    run = popbatch.invoke(*argv, env=env)
    status = popbatch.invoke("status", env=env)

    assert (run.exit_code, status.exit_code) == (0, 0)
    assert (home / ".local" / "state" / "popbatch" / "journal.sqlite3").is_file()
    assert status.stdout.startswith("batch 1  ")


def test_popbatch_journal_names_the_journal_for_runs_and_status(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """POPBATCH_JOURNAL beats the default; --journal beats POPBATCH_JOURNAL."""
    chosen = tmp_path / "chosen" / "journal.sqlite3"
    env = {"POPBATCH_JOURNAL": str(chosen), "XDG_STATE_HOME": str(tmp_path / "xdg")}
    path = captures(popbatch, "captures.csv", ("A-1", 1000))
    argv = ["capture", str(path), "--endpoint", popbatch.sandbox.base_url]
    argv += ["--out", str(popbatch.out)]

    run = popbatch.invoke(*argv, env=env)
    status = popbatch.invoke("status", "1", env=env)
    elsewhere = popbatch.invoke(
        "status", "--journal", str(tmp_path / "other.sqlite3"), env=env
    )

    assert (run.exit_code, status.exit_code) == (0, 0)
    assert chosen.is_file()
    assert not (tmp_path / "xdg").exists()
    assert status.stdout.splitlines()[0].startswith("batch 1: capture, test, ")
    assert elsewhere.exit_code == 2
    assert elsewhere.lines == [
        f"Error: there is no journal at {str(tmp_path / 'other.sqlite3')!r}",
        "Give the one the runs used with --journal or POPBATCH_JOURNAL.",
    ]


# --- one run at a time ------------------------------------------------------------


def test_a_second_run_while_one_holds_the_journal_exits_75_and_sends_nothing(
    popbatch: Popbatch, sandbox: SandboxServer
) -> None:
    """The lock: busy at once, nothing sent; after kill -9 the next run resumes.

    The holder's POP is slow, and never answers A-3: the holder is sure to
    hold the journal while the second run tries it.
    """
    sandbox.set_faults(latency_s=0.2)
    sandbox.script_order("A-3", {"action": "hang"})
    path = captures(popbatch, "captures.csv")
    other = popbatch.write_csv("other.csv", [("A-6", 1000), ("A-7", 1000)])
    holder = popbatch.start("capture", path, "--concurrency", "1", "--timeout", "600")
    try:
        wait_until(lambda: sandbox.received("A-3") == 1, "the holder to be sending")
        busy = popbatch.run("capture", other)
        held = json.loads(lock_path(popbatch.journal).read_text())
    finally:
        holder.kill()
    sandbox.set_faults()

    resumed = popbatch.run("capture", path)

    assert busy.exit_code == 75
    assert busy.lines == [
        f"Error: another popbatch run is using the journal "
        f"{str(popbatch.journal)!r} (pid {holder.pid}, started at "
        f"{held['started_at']})",
        "Wait for it to finish and run the same command again; it resumes where "
        "the batch stands.",
    ]
    assert popbatch.received(["A-6", "A-7"]) == {"A-6": 0, "A-7": 0}
    assert resumed.exit_code == 3
    assert resumed.group_of() == {
        "A-1": "Succeeded",
        "A-2": "Succeeded",
        "A-3": "Review",
        "A-4": "Succeeded",
        "A-5": "Succeeded",
    }
    assert popbatch.received(ORDERS) == dict.fromkeys(ORDERS, 1)


def test_a_workbook_of_several_sheets_names_the_one_read_when_none_is_given(
    popbatch: Popbatch, tmp_path: Path
) -> None:
    """Month-per-sheet workbooks: the first is read, and the run says so first."""
    workbook = openpyxl.Workbook()
    october = workbook.active
    assert october is not None
    october.title = "10月"
    november = workbook.create_sheet("11月")
    for sheet, order_id in ((october, "A-1"), (november, "A-2")):
        sheet.append(["order_id", "amount"])
        sheet.append([order_id, 1000])
    path = tmp_path / "captures.xlsx"
    workbook.save(path)

    ran = popbatch.run("capture", path)

    assert ran.exit_code == 0
    assert ran.lines[0] == (
        "Note: captures.xlsx has 2 sheets ('10月', '11月'); this reads sheet "
        "'10月': --sheet NAME reads another"
    )
    assert popbatch.received(["A-1", "A-2"]) == {"A-1": 1, "A-2": 0}
