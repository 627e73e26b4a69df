"""The question before a live run: what it shows, what the answers do.

A live run attached to a terminal shows the row count and the total (and,
loudly, any full refunds) and asks; --yes skips the question; without a
terminal and without --yes the run is refused (tests/test_cron.py). The
CliRunner tests declare stdin a terminal and type the answer; one test runs
popbatch on a real pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios

import pytest
from harness import LIVE_KEY, Popbatch

from popbatch.cli import output

pytestmark = pytest.mark.sandbox


@pytest.fixture
def ws(ws: Popbatch, monkeypatch: pytest.MonkeyPatch) -> Popbatch:
    """A workspace whose stdin counts as a terminal, with two orders to capture."""
    monkeypatch.setattr(output, "stdin_is_terminal", lambda: True)
    ws.sandbox.add_order("L-1", 1000)
    ws.sandbox.add_order("L-2", 2500)
    ws.write("captures.csv", "order_id,amount\nL-1,1000\nL-2,2500\n")
    return ws


def test_a_live_run_shows_the_rows_and_total_and_sends_on_yes(ws):
    """Answer y: the requests go with dummy false."""
    result = ws.run("capture", "captures.csv", "--live", key=LIVE_KEY, input="y\n")

    assert result.exit_code == 0
    assert ws.mask(result.stderr).splitlines()[:3] == [
        "LIVE capture: 2 rows, 3,500 yen in total, to SANDBOX",
        "Send these requests with real money? [y/N]: y",
        "sending 2 rows",
    ]
    assert ws.bodies("card-capture") == [
        b'{"order_id": "L-1", "amount": 1000, "dummy": false}',
        b'{"order_id": "L-2", "amount": 2500, "dummy": false}',
    ]


@pytest.mark.parametrize("answer", ["n\n", "\n", ""])
def test_a_live_run_answered_no_or_nothing_sends_nothing(ws, answer):
    """n, Enter (the default is no) or end of input: exit 2, nothing sent."""
    result = ws.run("capture", "captures.csv", "--live", key=LIVE_KEY, input=answer)

    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: the live run was not confirmed; nothing was sent\n"
    )
    assert ws.sandbox.received() == 0


def test_a_live_refund_names_the_full_refunds_loudly(ws):
    """Cancel rows without an amount are listed before the question."""
    ws.sandbox.add_order("L-1", 1000, state="captured")
    ws.sandbox.add_order("L-2", 2500, state="captured")
    ws.write("refunds.csv", "order_id,amount\nL-1,300\nL-2,\n")

    result = ws.run("cancel", "refunds.csv", "--live", key=LIVE_KEY, input="n\n")

    assert result.exit_code == 2
    assert ws.mask(result.stderr) == (
        "Note: 1 row has no amount: each cancels or refunds the FULL amount of its "
        "order (row 3)\n"
        "LIVE cancel: 2 rows, 300 yen in total, to SANDBOX\n"
        "WARNING: 1 row without an amount will refund the FULL amount of the order "
        "(rows 3)\n"
        "Send these requests with real money? [y/N]: n\n"
        "Error: the live run was not confirmed; nothing was sent\n"
    )


def test_yes_skips_the_question_on_a_terminal(ws):
    """--yes: the count and total are still shown, nothing is asked."""
    result = ws.run("capture", "captures.csv", "--live", "--yes", key=LIVE_KEY)

    assert result.exit_code == 0
    assert "Send these requests" not in result.output
    assert ws.mask(result.stderr).splitlines()[0] == (
        "LIVE capture: 2 rows, 3,500 yen in total, to SANDBOX"
    )
    assert ws.sandbox.applied(endpoint="card-capture") == 2


def test_a_test_run_asks_nothing(ws):
    """Without --live there is no question: dummy requests move no money."""
    result = ws.run("capture", "captures.csv", "--quiet")

    assert (result.exit_code, result.output) == (0, "")


def test_a_batch_already_done_asks_nothing(ws):
    """A live re-run with nothing left to send does not ask."""
    ws.run("capture", "captures.csv", "--live", "--yes", "-q", key=LIVE_KEY)

    again = ws.run("capture", "captures.csv", "--live", key=LIVE_KEY, input="")

    assert again.exit_code == 0
    assert "Send these requests" not in again.output
    assert ws.sandbox.received() == 2


def _read_all(fd: int) -> bytes:
    """Everything the child writes to the pseudo-terminal until it closes."""
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_question_on_a_real_terminal(ws):
    """A real pseudo-terminal: popbatch asks, reads y, and sends."""
    main_fd, child_fd = pty.openpty()
    # A new pseudo-terminal is 0 columns wide; a real one has a size.
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = ws.process_environment(key=LIVE_KEY)
    # The answer is typed ahead; the terminal keeps it until popbatch reads.
    os.write(main_fd, b"y\n")
    command = [sys.executable, "-m", "popbatch"]
    process = subprocess.Popen(
        [*command, *ws.argv("capture", "captures.csv", "--live")],
        cwd=ws.root,
        env=env,
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
    )
    os.close(child_fd)

    shown = _read_all(main_fd).decode("utf-8", "replace")
    code = process.wait(timeout=120)
    os.close(main_fd)

    assert code == 0
    assert "LIVE capture: 2 rows, 3,500 yen in total, to " in shown
    assert "Send these requests with real money? [y/N]: " in shown
    assert "2/2 [" in shown  # the progress bar of a terminal
    assert ws.sandbox.applied(endpoint="card-capture") == 2


# --- --resend-unknown ----------------------------------------------------------------


@pytest.fixture
def review(ws: Popbatch) -> Popbatch:
    """A finished batch whose row L-2 is in Review (the answer was dropped)."""
    ws.sandbox.script_order("L-2", {"action": "close_after_read"})
    first = ws.run("capture", "captures.csv", "--quiet")
    assert first.exit_code == 3
    return ws


def test_resend_unknown_without_a_terminal_is_refused(review, monkeypatch):
    """From cron, --resend-unknown needs --yes: exit 2, the row stays in Review."""
    monkeypatch.setattr(output, "stdin_is_terminal", lambda: False)

    result = review.run("capture", "captures.csv", "--resend-unknown")

    assert result.exit_code == 2
    assert result.stderr == (
        "1 row of this batch is in Review: it may already have been applied at "
        "POP. Sending it again can charge or refund twice.\n"
        "Error: --resend-unknown needs a terminal to confirm it, or --yes\n"
        "Check the Review rows in the merchant portal first.\n"
    )
    assert review.sandbox.received("L-2") == 1


def test_resend_unknown_asks_and_sends_again_on_yes(review):
    """On a terminal: the warning, the question, then the row is sent again."""
    result = review.run("capture", "captures.csv", "--resend-unknown", input="y\n")

    assert result.exit_code == 0
    assert result.stderr.splitlines()[:3] == [
        "1 row of this batch is in Review: it may already have been applied at "
        "POP. Sending it again can charge or refund twice.",
        "Send it again? [y/N]: y",
        "sending 1 row",
    ]
    assert review.sandbox.received("L-2") == 2


def test_resend_unknown_answered_no_leaves_the_row_in_review(review):
    """No: nothing is sent, the batch still exits 3."""
    result = review.run("capture", "captures.csv", "--resend-unknown", input="n\n")

    assert result.exit_code == 3
    assert review.sandbox.received("L-2") == 1


def test_resend_unknown_with_yes_does_not_ask(review, monkeypatch):
    """--yes answers the question for cron."""
    monkeypatch.setattr(output, "stdin_is_terminal", lambda: False)

    result = review.run("capture", "captures.csv", "--resend-unknown", "--yes", "-q")

    assert (result.exit_code, result.output) == (0, "")
    assert review.sandbox.received("L-2") == 2


def test_a_live_run_on_a_new_journal_says_so_in_the_question(ws):
    """Nothing can be recognised as already done: the question says it, once."""
    ws.fresh_journal = True

    result = ws.run("capture", "captures.csv", "--live", key=LIVE_KEY, input="n\n")

    assert result.exit_code == 2
    assert ws.mask(result.stderr) == (
        "LIVE capture: 2 rows, 3,500 yen in total, to SANDBOX\n"
        "WARNING: the journal WORK/journal.sqlite3 holds no earlier batches: "
        "nothing can be recognised as already done\n"
        "Send these requests with real money? [y/N]: n\n"
        "Error: the live run was not confirmed; nothing was sent\n"
    )
