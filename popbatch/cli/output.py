"""What the commands show a person: errors, questions, tables and progress.

Everything here writes to stderr (the problem table of ``validate`` goes to
stdout, where the user asked for it) or reads an answer from stdin. Library
code returns lines and raises errors; this is where they are shown. The
signal handlers that turn SIGINT and SIGTERM into a clean stop live here
too, since they print what they do.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click

from popbatch.cli.options import DEBUG
from popbatch.errors import ExitCode, OutputError, UsageError


def echo_error(ctx: click.Context, message: str, hint: str | None = None) -> None:
    """Print an error on stderr: the traceback (with --debug), the line, the hint."""
    if ctx.meta.get(DEBUG):
        traceback.print_exc()
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(hint, err=True)


def stdin_is_terminal() -> bool:
    """Whether a person can answer a question (stdin is a terminal)."""
    return sys.stdin.isatty()


def setup_logging(verbose: int, quiet: bool, log_file: Path | None) -> None:
    """Send popbatch's log records to stderr and, when asked, to a file."""
    root = logging.getLogger("popbatch")
    # A second command in the same process (tests) must not leak the
    # previous log file's handle; closing a stderr handler leaves stderr open.
    for previous in root.handlers:
        previous.close()
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")

    console = logging.StreamHandler(sys.stderr)
    if verbose >= 2:
        console.setLevel(logging.DEBUG)
    elif verbose == 1:
        console.setLevel(logging.INFO)
    else:
        console.setLevel(logging.ERROR if quiet else logging.WARNING)
    console.setFormatter(formatter)
    # Records meant for the log file alone: the terminal has had the same
    # words as a line of their own (a new journal, say).
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    root.addHandler(console)

    if log_file is not None:
        handler = _owner_only_file_handler(log_file)
        handler.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
        handler.setFormatter(formatter)
        root.addHandler(handler)

    # The logger passes on only what some handler shows: a record nobody
    # prints is then never built (a debug line per request costs real time
    # on a month-end batch).
    root.setLevel(min(handler.level for handler in root.handlers))


def _owner_only_file_handler(path: Path) -> logging.FileHandler:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise OutputError(
            f"cannot open the log file {str(path)!r}: {exc.strerror}",
            hint="Check the folder, or give another --log-file.",
        ) from None


def row_count(count: int) -> str:
    """``1 row``, ``1,200 rows``."""
    return f"{count:,} row{'' if count == 1 else 's'}"


def confirm_live(confirmation: Any, quiet: bool) -> bool:
    """Before a live run: rows, total and, loudly, any full refunds; then ask.

    A journal this run created is named just before the question: nothing
    in it can be recognised as already done. With --yes nothing is asked,
    and with --quiet as well nothing is shown.
    """
    if confirmation.yes and quiet:
        return True
    click.echo(
        f"LIVE {confirmation.operation}: {row_count(confirmation.rows)}, "
        f"{confirmation.total:,} yen in total, to {confirmation.endpoint}",
        err=True,
    )
    if confirmation.new_journal and not confirmation.yes:
        # Shown with the question (Notices kept it back for this).
        click.echo(f"WARNING: {confirmation.new_journal}", err=True)
    full = confirmation.full_refunds
    if full:
        listed = ", ".join(str(row) for row in full[:20])
        more = f" and {len(full) - 20:,} more" if len(full) > 20 else ""
        click.echo(
            f"WARNING: {row_count(len(full))} without an amount will refund the FULL "
            f"amount of the order (rows {listed}{more})",
            err=True,
        )
    if confirmation.yes:
        return True
    try:
        return click.confirm(
            "Send these requests with real money?", default=False, err=True
        )
    except click.Abort:
        # Ctrl-C or end of input at the question: the answer is no.
        click.echo(err=True)
        return False


def confirm_resend(count: int) -> bool:
    """Before Review rows are sent again: they may have been applied already."""
    they, are, it = ("it", "is", "it") if count == 1 else ("they", "are", "them")
    click.echo(
        f"{row_count(count)} of this batch {are} in Review: {they} may already have "
        f"been applied at POP. Sending {it} again can charge or refund twice.",
        err=True,
    )
    if not stdin_is_terminal():
        raise UsageError(
            "--resend-unknown needs a terminal to confirm it, or --yes",
            hint="Check the Review rows in the merchant portal first.",
        )
    try:
        return click.confirm(f"Send {it} again?", default=False, err=True)
    except click.Abort:
        click.echo(err=True)
        return False


class Notices:
    """Warnings a run gives while it goes (a new journal): each shown once.

    Shown at once, unless ``deferred`` or --quiet. With ``deferred`` (a live
    run that will ask) they wait for the question, which shows them itself
    (``taken``). With --quiet they wait for the end of the run, and are
    shown only when it did not exit 0: cron mails them only then.
    """

    def __init__(self, *, quiet: bool, deferred: bool = False) -> None:
        self._quiet = quiet
        self._deferred = deferred
        self._waiting: list[str] = []

    def add(self, text: str) -> None:
        """A notice: shown now, or kept for the question or the end."""
        if self._deferred or self._quiet:
            self._waiting.append(text)
        else:
            click.echo(f"Warning: {text}", err=True)

    def taken(self) -> None:
        """The question is about to show the notices kept for it."""
        self._waiting.clear()

    def flush(self, *, failed: bool) -> None:
        """At the end of the run: show the notices kept and not shown yet.

        With --quiet only when the run ``failed`` (an error, or an exit
        code other than 0).
        """
        waiting, self._waiting = self._waiting, []
        if failed or not self._quiet:
            for text in waiting:
                click.echo(f"Warning: {text}", err=True)


def echo_notices(notices: Sequence[str], quiet: bool) -> None:
    """Print the notices about the input (blank rows, ...), unless --quiet."""
    if quiet:
        return
    for notice in notices:
        click.echo(f"Note: {notice}", err=True)


_TABLE_LIMIT = 50


def echo_problem_table(validation: Any, *, err: bool) -> None:
    """Print the invalid rows as a short table: row, column, value, problem."""
    from popbatch.pipeline import problem_rows

    lines = problem_rows(validation)
    click.echo(f"{'row':>7}  {_fit('column', 18)} {_fit('value', 20)} problem", err=err)
    for row, column, value, message in lines[:_TABLE_LIMIT]:
        click.echo(f"{row:>7}  {_fit(column, 18)} {_fit(value, 20)} {message}", err=err)
    if len(lines) > _TABLE_LIMIT:
        click.echo(
            f"... and {len(lines) - _TABLE_LIMIT:,} more problems (see the rejected "
            "rows file)",
            err=err,
        )


def _fit(text: str, width: int) -> str:
    """``text`` cut and padded to ``width`` terminal columns.

    Full-width characters (Japanese ids, memo text) take two columns, so
    counting characters would push the rest of the line out of its column.
    """
    columns = [2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text]
    if sum(columns) > width:
        kept, used = [], 0
        for ch, size in zip(text, columns, strict=True):
            if used + size > width - 1:
                break
            kept.append(ch)
            used += size
        return "".join(kept) + "…" + " " * (width - 1 - used)
    return text + " " * (width - sum(columns))


class Progress:
    """Progress on stderr: a bar on a terminal, else a line every 10% or minute.

    Nothing is shown with --quiet: the final summary says what a person
    must know.
    """

    def __init__(
        self,
        *,
        quiet: bool,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quiet = quiet
        self._tty = sys.stderr.isatty() if terminal is None else terminal
        self._clock = clock
        self._bar: Any = None
        self._lock = threading.Lock()
        self._total = 0
        self._done = 0
        self._failed = 0
        self._review = 0
        self._tenths = 0
        self._started = self._last_line = clock()

    def start(self, total: int) -> None:
        """A run is about to send ``total`` rows."""
        self._total = total
        self._started = self._last_line = self._clock()
        if self._quiet:
            return
        if self._tty:
            from tqdm import tqdm

            # A terminal that reports no width (a fresh pty) would get an
            # empty bar from tqdm: assume 80 columns there.
            sized = _terminal_width() > 0
            self._bar = tqdm(
                total=total,
                unit="row",
                file=sys.stderr,
                dynamic_ncols=sized,
                ncols=None if sized else 80,
            )
        else:
            click.echo(f"sending {row_count(total)}", err=True)

    def row_done(self, row: Any, outcome: Any) -> None:
        """One row is done for this run (called from worker threads)."""
        with self._lock:
            self._done += 1
            if row.state.value == "failed":
                self._failed += 1
            elif row.state.value == "unknown":
                self._review += 1
            if self._quiet:
                return
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(
                    failed=self._failed, review=self._review, refresh=False
                )
                return
            self._log_line()

    def _log_line(self) -> None:
        # Whole tenths in integers: 12 of 40 is 30%, not 29.999...%.
        tenths = self._done * 10 // self._total if self._total else 10
        now = self._clock()
        if tenths <= self._tenths and now - self._last_line < 60:
            return
        self._tenths = max(tenths, self._tenths)
        self._last_line = now
        share = self._done * 100 // self._total if self._total else 100
        rate = self._done / max(now - self._started, 1e-9)
        # A slow run (a low --rate, a slow gateway) reads better per minute.
        speed = f"{rate:.1f}/s" if rate >= 1 else f"{rate * 60:.1f}/min"
        click.echo(
            f"{self._done:,}/{self._total:,} rows ({share}%), {speed}, "
            f"{self._failed:,} failed, {self._review:,} in Review",
            err=True,
        )

    def close(self) -> None:
        """Finish the bar, if one was shown."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _terminal_width() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


@contextmanager
def stop_on_signals(stop: Any) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run cleanly; a second SIGINT aborts at once."""
    seen: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if seen and signum == signal.SIGINT:
            # The journal is consistent at every commit; an aborted
            # transaction is rolled back when the file is next opened. A raw
            # write: the interrupted code may hold stderr's buffer.
            os.write(
                2,
                b"SIGINT again: stopped at once, without results. Rows in flight "
                b"go to Review when the same command runs again; popbatch status "
                b"shows the batch.\n",
            )
            os._exit(int(ExitCode.INTERRUPTED))
        seen.append(signum)
        code = ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED
        stop.request(
            code, f"stopped by {signal.Signals(signum).name}; the same command resumes"
        )
        again = (
            " (press Ctrl-C again to abort at once)" if signum == signal.SIGINT else ""
        )
        click.echo(
            f"{signal.Signals(signum).name}: finishing the requests in flight, then "
            f"writing the results{again}",
            err=True,
        )

    previous = {
        sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
