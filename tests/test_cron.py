"""popbatch under cron: no terminal, --quiet, --yes, and the control totals.

Cron mails whatever a job prints, so a run that succeeds with --quiet
prints nothing at all, and any run that needs a person prints a short
summary and exits with its code. Where the terminal matters the runs are
real processes (``python -m popbatch``) with stdin from /dev/null, as cron
starts them; the others go through CliRunner, whose stdin is no terminal
either. All of them talk to the session sandbox over real HTTP on 127.0.0.1.

The control totals (--expect-rows, --expect-total, --max-total) refuse a
file that is not what was approved, with exit 65, before anything is sent.
"""

from __future__ import annotations

import json

import pytest
from harness import LIVE_KEY, Popbatch
from run_output import Results

from popbatch.cli import output

pytestmark = pytest.mark.sandbox


@pytest.fixture
def ws(ws: Popbatch) -> Popbatch:
    """A workspace with three authorised orders and a file capturing them."""
    ws.sandbox.add_order("C-1", 1000)
    ws.sandbox.add_order("C-2", 2000)
    ws.sandbox.add_order("C-3", 3000)
    ws.write("captures.csv", "order_id,amount\nC-1,1000\nC-2,2000\nC-3,3000\n")
    return ws


def summary_text(*, succeeded: str, failed: str, review: str = "") -> str:
    """The summary block of a three-row capture batch 1, as printed."""
    review = review or "  Review           0 rows               0 yen\n"
    return (
        "popbatch capture, batch 1 (test: dummy requests, no money moved)\n"
        f"{succeeded}{failed}"
        "  Rejected         0 rows               0 yen\n"
        f"{review}"
        "  Skipped          0 rows               0 yen\n"
        "  Pending          0 rows               0 yen\n"
        "  Total            3 rows           6,000 yen\n"
        "  adds up: 3 rows in the groups = 3 rows in the input, "
        "6,000 yen = 6,000 yen\n"
    )


# --- --quiet ---------------------------------------------------------------------


def test_a_quiet_run_that_succeeds_prints_nothing_at_all(ws):
    """Exit 0, stdout and stderr empty: cron sends no mail."""
    result = ws.subprocess(*ws.argv("capture", "captures.csv", "--quiet"))

    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert ws.sandbox.applied(endpoint="card-capture") == 3


def test_a_quiet_run_with_a_failed_row_prints_the_summary_and_exits_1(ws):
    """A decline needs a person: the short summary, the results, the code."""
    ws.sandbox.add_order("C-2", 2000, decline=True)

    result = ws.run("capture", "captures.csv", "--quiet")

    assert (result.exit_code, result.stdout) == (1, "")
    assert ws.mask(result.stderr) == (
        summary_text(
            succeeded="  Succeeded        2 rows           4,000 yen\n",
            failed="  Failed           1 row            2,000 yen\n",
        )
        + "Results: WORK/out/captures-capture-batch1\n"
        "Exit 1: some rows failed at POP, were rejected, or need a decision\n"
    )


def test_a_quiet_run_with_a_review_row_prints_the_summary_and_exits_3(ws):
    """A dropped connection after the request: Review, never re-sent, exit 3."""
    ws.sandbox.script_order("C-3", {"action": "close_after_read"})

    result = ws.run("capture", "captures.csv", "--quiet")

    assert (result.exit_code, result.stdout) == (3, "")
    assert ws.mask(result.stderr) == (
        summary_text(
            succeeded="  Succeeded        2 rows           3,000 yen\n",
            failed="  Failed           0 rows               0 yen\n",
            review="  Review           1 row            3,000 yen\n",
        )
        + "Review rows may or may not have been processed (order_id C-3): check "
        "them in the merchant portal before sending them again.\n"
        "Then record what the portal shows with 'popbatch resolve 1 --journal "
        "WORK/journal.sqlite3 ORDER_ID --succeeded|--failed --note TEXT' (or "
        "'popbatch resolve 1 --journal WORK/journal.sqlite3 --file CSV' for many) "
        "and run this command again; if the portal shows none of them, this "
        "command with --resend-unknown sends them all again.\n"
        "Results: WORK/out/captures-capture-batch1\n"
        "Exit 3: some outcomes are unknown: check the Review rows\n"
    )
    assert ws.sandbox.received("C-3") == 1


def test_a_quiet_run_that_cannot_reach_pop_exits_75_with_rows_pending(ws):
    """Connection refused: nothing was sent, the rows wait for the next run."""
    result = ws.run(
        "capture",
        "captures.csv",
        "--stop-after",
        "1",
        "--quiet",
        endpoint="http://127.0.0.1:9/pop/v1",
    )

    assert (result.exit_code, result.stdout) == (75, "")
    lines = ws.mask(result.stderr).splitlines()
    assert "  Pending          3 rows           6,000 yen" in lines
    assert lines[-1] == (
        "Exit 75: try again later: rows are still pending or the journal is busy"
    )
    assert "Traceback" not in result.stderr


def test_running_the_same_file_again_sends_nothing_and_stays_quiet(ws):
    """Cron retried a job that had finished: exit 0, silence, no request."""
    first = ws.run("capture", "captures.csv", "--quiet")

    again = ws.run("capture", "captures.csv", "--quiet")

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert (again.stdout, again.stderr) == ("", "")
    assert ws.sandbox.received(endpoint="card-capture") == 3


# --- live runs without a terminal -------------------------------------------------


def test_a_live_run_without_a_terminal_or_yes_is_refused_before_the_key_or_file(ws):
    """Exit 2 even with no key and no file: nothing else is looked at."""
    result = ws.subprocess(
        *ws.argv("capture", "not-there.csv", "--live", "--quiet"), key=None
    )

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: a live run needs a terminal to confirm it, or --yes\n"
        "From cron, add --yes (check the file first with --dry-run).\n"
    )
    assert ws.sandbox.received() == 0


def test_a_live_cron_run_with_yes_and_quiet_prints_nothing(ws):
    """--live --yes --quiet with the live key: dummy false, silence, exit 0."""
    result = ws.subprocess(
        *ws.argv("capture", "captures.csv", "--live", "--yes", "--quiet"),
        key=LIVE_KEY,
    )

    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert [json.loads(body)["dummy"] for body in ws.bodies("card-capture")] == [
        False,
        False,
        False,
    ]


def test_a_live_run_with_yes_but_not_quiet_shows_what_it_sends(ws):
    """Without --quiet, --yes still prints the row count and total first."""
    result = ws.run("capture", "captures.csv", "--live", "--yes", key=LIVE_KEY)

    assert result.exit_code == 0
    assert ws.mask(result.stderr).splitlines()[:2] == [
        "LIVE capture: 3 rows, 6,000 yen in total, to SANDBOX",
        "sending 3 rows",
    ]


# --- control totals ----------------------------------------------------------------


def test_expect_rows_refuses_a_file_with_another_count_before_sending(ws):
    """--expect-rows 4 for a 3-row file: exit 65, nothing sent, nothing planned."""
    result = ws.run("capture", "captures.csv", "--expect-rows", "4", "--quiet")

    assert result.exit_code == 65
    assert result.stderr == (
        "Error: --expect-rows 4, but this batch sends 3 rows; nothing was sent\n"
        "Check the file against what was approved.\n"
    )
    assert ws.sandbox.received() == 0
    assert list(ws.out.iterdir()) == []


def test_expect_total_refuses_a_file_with_another_total(ws):
    """--expect-total 6,001 for a file totalling 6,000."""
    result = ws.run("capture", "captures.csv", "--expect-total", "6,001")

    assert result.exit_code == 65
    assert result.stderr == (
        "Error: --expect-total 6,001, but this batch sends 6,000 yen in 3 rows; "
        "nothing was sent\n"
        "Check the file against what was approved.\n"
    )
    assert ws.sandbox.received() == 0


def test_max_total_refuses_a_file_above_it(ws):
    """--max-total 5,999 for a file totalling 6,000."""
    result = ws.run("capture", "captures.csv", "--max-total", "5999")

    assert result.exit_code == 65
    assert result.stderr == (
        "Error: this batch sends 6,000 yen in 3 rows, above --max-total 5,999; "
        "nothing was sent\n"
    )
    assert ws.sandbox.received() == 0


def test_matching_control_totals_let_the_run_go(ws):
    """The approved count and total, under the ceiling: the run goes, silently."""
    result = ws.run(
        "capture",
        "captures.csv",
        "--expect-rows",
        "3",
        "--expect-total",
        "6000",
        "--max-total",
        "6000",
        "--quiet",
    )

    assert (result.exit_code, result.output) == (0, "")
    assert ws.sandbox.applied(endpoint="card-capture") == 3


def test_expect_rows_counts_only_the_rows_that_would_be_sent(ws):
    """Rejected rows (--skip-invalid) and rows done earlier are not counted."""
    ws.write("first.csv", "order_id,amount\nC-1,1000\n")
    ws.run("capture", "first.csv", "--quiet")
    ws.write("fixed.csv", "order_id,amount\nC-1,1000\nC-2,2000\nC-3,x\n")

    result = ws.run(
        "capture",
        "fixed.csv",
        "--skip-invalid",
        "--expect-rows",
        "1",
        "--expect-total",
        "2000",
        "--quiet",
    )

    assert result.exit_code == 1
    assert [json.loads(b)["order_id"] for b in ws.bodies("card-capture")] == [
        "C-1",
        "C-2",
    ]


def test_a_full_refund_row_makes_any_amount_check_fail_naming_the_rows(ws):
    """A cancel without amount refunds an amount popbatch cannot know."""
    ws.write("refunds.csv", "order_id,amount\nC-1,500\nC-2,\nC-3,\n")

    result = ws.run("cancel", "refunds.csv", "--max-total", "100000")

    assert result.exit_code == 65
    assert result.stderr == (
        "Note: 2 rows have no amount: each cancels or refunds the FULL amount of "
        "its order (rows 3, 4)\n"
        "Error: an amount check was asked, but rows 3, 4 have no amount (a full "
        "refund, whose amount is not known here); nothing was sent\n"
        "Give those rows an amount, or drop --expect-total/--max-total.\n"
    )
    assert ws.sandbox.received() == 0


def test_a_row_count_check_alone_accepts_full_refunds(ws):
    """--expect-rows does not need amounts: the full refunds go."""
    ws.write("refunds.csv", "order_id,amount\nC-1,500\nC-2,\n")

    result = ws.run("cancel", "refunds.csv", "--expect-rows", "2", "--quiet")

    assert (result.exit_code, result.output) == (0, "")
    assert ws.bodies("card-cancel")[1] == b'{"order_id": "C-2", "dummy": true}'


# --- control totals at every run that sends ----------------------------------------


def test_a_live_run_answered_no_is_still_checked_when_cron_runs_it(ws, monkeypatch):
    """Regression: the checks ran only when the batch was first planned.

    Answered "n" at the question, the batch was recorded; the same file
    with --yes and figures that match nothing then sent every row, exit 0.
    """
    monkeypatch.setattr(output, "stdin_is_terminal", lambda: True)
    ws.run("capture", "captures.csv", "--live", key=LIVE_KEY, input="n\n")

    result = ws.run(
        "capture",
        "captures.csv",
        "--live",
        "--yes",
        "--quiet",
        "--expect-rows",
        "999",
        "--max-total",
        "1",
        key=LIVE_KEY,
    )

    assert result.exit_code == 65
    assert result.stderr == (
        "Error: --expect-rows 999, but this batch sends 3 rows; nothing was sent\n"
        "Check the file against what was approved.\n"
    )
    assert ws.sandbox.received() == 0


def test_a_batch_refused_by_the_results_folder_is_checked_when_it_runs_again(ws):
    """First run: exit 73 after planning; the next run's --max-total still refuses."""
    taken = ws.out / "captures-capture-batch1"
    taken.mkdir(parents=True)
    (taken / "notes.txt").write_text("someone else's", "utf-8")
    refused = ws.run("capture", "captures.csv", "--quiet")
    (taken / "notes.txt").unlink()

    result = ws.run("capture", "captures.csv", "--max-total", "5999", "--quiet")
    matching = ws.run("capture", "captures.csv", "--max-total", "6000", "--quiet")

    assert (refused.exit_code, result.exit_code, matching.exit_code) == (73, 65, 0)
    assert result.stderr == (
        "Error: this batch sends 6,000 yen in 3 rows, above --max-total 5,999; "
        "nothing was sent\n"
    )
    assert ws.sandbox.applied(endpoint="card-capture") == 3


def half_sent(ws) -> None:
    """Batch 1 of captures.csv with C-1 and C-2 done and C-3 Pending (exit 75)."""
    busy = {"status": 429, "headers": {"Retry-After": "0"}}
    ws.sandbox.script_order("C-3", busy, busy, busy)
    first = ws.run("capture", "captures.csv", "--quiet")
    assert first.exit_code == 75


def test_a_resumed_half_sent_batch_matches_the_approved_figures(ws):
    """The rows sent by the batch still count: the approved 3 rows, 6,000 yen."""
    half_sent(ws)

    result = ws.run(
        "capture",
        "captures.csv",
        "--expect-rows",
        "3",
        "--expect-total",
        "6000",
        "--max-total",
        "6000",
        "--quiet",
    )

    assert (result.exit_code, result.output) == (0, "")
    assert ws.sandbox.applied(endpoint="card-capture") == 3


def test_a_resumed_half_sent_batch_that_differs_is_refused_naming_the_sent_rows(ws):
    """Another count: exit 65, and the message says which rows were sent already."""
    half_sent(ws)

    result = ws.run("capture", "captures.csv", "--expect-rows", "1", "--quiet")

    assert result.exit_code == 65
    assert result.stderr == (
        "Error: --expect-rows 1, but this batch sends 3 rows (2 of them already "
        "sent by an earlier run); nothing was sent\n"
        "Check the file against what was approved.\n"
    )
    assert ws.sandbox.applied(endpoint="card-capture") == 2


def test_the_refusal_names_the_rows_skipped_and_rejected(ws):
    """Rows done in an earlier batch and invalid rows are named, not counted."""
    ws.write("first.csv", "order_id,amount\nC-1,1000\nC-2,2000\n")
    ws.run("capture", "first.csv", "--quiet")
    ws.write("fixed.csv", "order_id,amount\nC-1,1000\nC-2,2000\nC-3,3000\nC-4,x\n")

    result = ws.run(
        "capture", "fixed.csv", "--skip-invalid", "--expect-rows", "3", "--quiet"
    )

    assert result.exit_code == 65
    assert result.stderr.splitlines()[-2:] == [
        "Error: --expect-rows 3, but this batch sends 1 row (2 more are skipped: "
        "already done in an earlier batch; 1 more is rejected as invalid); nothing "
        "was sent",
        "Check the file against what was approved.",
    ]
    assert ws.sandbox.received("C-3") == 0


def test_a_resumed_full_refund_still_fails_an_amount_check(ws, monkeypatch):
    """A cancel without amount, planned at a run answered no, has no known amount."""
    monkeypatch.setattr(output, "stdin_is_terminal", lambda: True)
    ws.sandbox.add_order("C-1", 1000, state="captured")
    ws.write("refunds.csv", "order_id,amount\nC-1,\n")
    ws.run("cancel", "refunds.csv", "--live", key=LIVE_KEY, input="n\n")

    result = ws.run(
        "cancel", "refunds.csv", "--live", "--yes", "--max-total", "1", key=LIVE_KEY
    )

    assert result.exit_code == 65
    assert result.stderr.splitlines()[-2:] == [
        "Error: an amount check was asked, but rows 2 have no amount (a full refund, "
        "whose amount is not known here); nothing was sent",
        "Give those rows an amount, or drop --expect-total/--max-total.",
    ]
    assert ws.sandbox.received() == 0


# --- a new journal ---------------------------------------------------------------------

NEW_JOURNAL = (
    "the journal {} holds no earlier batches: nothing can be recognised as already done"
)


def test_a_run_that_creates_the_journal_says_so_once(ws):
    """A typo in --journal: the warning names the new file; the next run is silent."""
    typo = ws.root / "jounral.sqlite3"

    first = ws.run("capture", "captures.csv", "--journal", str(typo))
    again = ws.run("capture", "captures.csv", "--journal", str(typo))

    assert first.exit_code == 0
    assert first.lines[0] == "Warning: " + NEW_JOURNAL.format(typo)
    assert sum("no earlier batches" in line for line in first.lines) == 1
    assert not any("no earlier batches" in line for line in again.lines)


def test_a_run_after_a_refused_first_run_still_warns_of_the_empty_journal(ws):
    """The refused run left the file without a batch: the next run warns again."""
    ws.fresh_journal = True

    refused = ws.run("capture", "captures.csv", "--expect-rows", "4")
    sent = ws.run("capture", "captures.csv", "--expect-rows", "3")
    again = ws.run("capture", "captures.csv", "--expect-rows", "3")

    assert ws.journal.exists()
    assert (refused.exit_code, sent.exit_code, again.exit_code) == (65, 0, 0)
    assert refused.lines[0] == "Warning: " + NEW_JOURNAL.format(ws.journal)
    assert sent.lines[0] == "Warning: " + NEW_JOURNAL.format(ws.journal)
    assert sum("no earlier batches" in line for line in sent.lines) == 1
    assert not any("no earlier batches" in line for line in again.lines)
    assert ws.sandbox.applied(endpoint="card-capture") == 3


def test_a_quiet_run_after_a_refused_first_run_logs_the_warning(ws):
    """Under --quiet the second run exits 0: the log file alone has the warning."""
    ws.fresh_journal = True
    log = ws.root / "popbatch.log"
    ws.run("capture", "captures.csv", "--expect-rows", "4", "--quiet")

    result = ws.run("capture", "captures.csv", "--quiet", "--log-file", str(log))

    assert (result.exit_code, result.output) == (0, "")
    warnings = [
        line for line in log.read_text("utf-8").splitlines() if " WARNING " in line
    ]
    assert [line.split(" WARNING ", 1)[1] for line in warnings] == [
        NEW_JOURNAL.format(ws.journal)
    ]


def test_a_quiet_run_on_a_new_journal_logs_the_warning_in_the_log_file_only(ws):
    """Cron hears of it only when the run needs a person; the log file always has it."""
    ws.fresh_journal = True
    log = ws.root / "popbatch.log"

    result = ws.run("capture", "captures.csv", "--quiet", "--log-file", str(log))

    assert (result.exit_code, result.output) == (0, "")
    warnings = [
        line for line in log.read_text("utf-8").splitlines() if " WARNING " in line
    ]
    assert [line.split(" WARNING ", 1)[1] for line in warnings] == [
        NEW_JOURNAL.format(ws.journal)
    ]


def test_a_quiet_run_on_a_new_journal_that_fails_prints_the_warning(ws):
    """A refused run prints what cron mails: the warning, then the error."""
    ws.fresh_journal = True

    result = ws.run("capture", "captures.csv", "--expect-rows", "4", "--quiet")

    assert result.exit_code == 65
    assert result.stderr.splitlines() == [
        "Warning: " + NEW_JOURNAL.format(ws.journal),
        "Error: --expect-rows 4, but this batch sends 3 rows; nothing was sent",
        "Check the file against what was approved.",
    ]


def test_a_quiet_run_on_a_new_journal_with_a_failed_row_prints_the_warning(ws):
    """Exit 1 under --quiet: the warning comes before the summary cron mails."""
    ws.fresh_journal = True
    ws.sandbox.add_order("C-2", 2000, decline=True)

    result = ws.run("capture", "captures.csv", "--quiet")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[:2] == [
        "Warning: " + NEW_JOURNAL.format(ws.journal),
        "popbatch capture, batch 1 (test: dummy requests, no money moved)",
    ]


def test_a_dry_run_checks_a_batch_whose_rows_left_were_resolved_as_failed(ws):
    """The resolved rows go out again: the dry run refuses as the real run does."""
    ws.sandbox.script_order("C-3", {"status": 502, "body": "<html>bad gateway</html>"})
    first = ws.run("capture", "captures.csv", "--quiet")
    ws.command("resolve", "1", "C-3", "--failed", "--note", "not in portal")

    dry = ws.run("capture", "captures.csv", "--dry-run", "--expect-rows", "5")
    real = ws.run("capture", "captures.csv", "--expect-rows", "5")
    matching = ws.run("capture", "captures.csv", "--dry-run", "--expect-rows", "3")

    assert (first.exit_code, dry.exit_code, real.exit_code) == (3, 65, 65)
    refusal = (
        "Error: --expect-rows 5, but this batch sends 3 rows (2 of them already "
        "sent by an earlier run); nothing was sent"
    )
    assert dry.lines[-2] == real.lines[-2] == refusal
    assert matching.exit_code == 0
    assert matching.lines == [
        "dry run (test, dummy true): 1 row would be sent, total 3,000 yen; "
        "nothing was sent",
        "2 rows were already sent by this batch: not sent again",
        f"preview of the exact requests: {ws.out / 'captures-capture-dry-run'}"
        "/preview.csv",
    ]
    rows = Results(ws.out / "captures-capture-dry-run").csv("preview.csv")
    assert [(row["row"], row["would be"], row["why not sent"]) for row in rows] == [
        ("2", "skipped", "already done by this batch (Succeeded)"),
        ("3", "skipped", "already done by this batch (Succeeded)"),
        ("4", "sent", ""),
    ]
    assert ws.sandbox.received("C-3") == 1


def test_a_dry_run_of_a_half_sent_batch_checks_the_batchs_own_figures(ws):
    """--dry-run counts the rows the batch sent, as its next run does."""
    half_sent(ws)

    matching = ws.run("capture", "captures.csv", "--dry-run", "--expect-rows", "3")
    other = ws.run("capture", "captures.csv", "--dry-run", "--expect-rows", "1")

    assert (matching.exit_code, other.exit_code) == (0, 65)
    assert other.stderr.splitlines()[-2] == (
        "Error: --expect-rows 1, but this batch sends 3 rows (2 of them already "
        "sent by an earlier run); nothing was sent"
    )
    assert ws.sandbox.applied(endpoint="card-capture") == 2
