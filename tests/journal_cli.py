"""Running popbatch against the sandbox as a user does, for the journal tests.

``Popbatch`` drives the real command line in process (click's CliRunner)
with a journal and an output folder under the test's ``tmp_path``, sending
over HTTP to the session sandbox. ``Run`` is what the user got back: the
exit code, stdout, and the lines on stderr.

``Run.lines`` leaves out only what cannot be compared as text: log records
(they start with a time) and the progress lines, which carry a rate per
second. Everything else a user reads on stderr is in it, in order, so that
tests compare whole messages.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner

from popbatch.cli import main
from popbatch.journal import Journal
from popbatch.rows import BatchRecord, RowRecord
from popbatch.sandbox import SandboxServer

TEST_KEY = "Test-POP-Server-Key"
LIVE_KEY = "Live-POP-Server-Key"

GROUPS = ("Succeeded", "Failed", "Rejected", "Review", "Skipped", "Pending")

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
_PROGRESS_LINE = re.compile(r"^[\d,]+/[\d,]+ rows \(\d+%\)")


@dataclass
class Run:
    """One finished popbatch command: what the user saw."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The lines of stderr a user reads, without log records and progress."""
        return [
            line
            for line in self.stderr.splitlines()
            if not _LOG_LINE.match(line) and not _PROGRESS_LINE.match(line)
        ]

    @property
    def folder(self) -> Path:
        """The results folder the run named on its ``Results:`` line."""
        found = re.findall(r"^Results: (.+)$", self.stderr, flags=re.MULTILINE)
        assert len(found) == 1, f"no single Results line in:\n{self.stderr}"
        return Path(found[0])

    def group_of(self) -> dict[str, str]:
        """order_id -> the group whose CSV lists it (each must list it once)."""
        return groups_in(self.folder)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` s.

    The timeout only guards against a hang: no test depends on how long
    anything takes.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def groups_in(folder: Path) -> dict[str, str]:
    """order_id -> group, read from a results folder's group CSV files.

    Fails when an order id is listed twice, in one group or in two.
    """
    found: dict[str, str] = {}
    for group in GROUPS:
        with (folder / f"{group.lower()}.csv").open(encoding="utf-8-sig") as handle:
            for record in csv.DictReader(handle):
                order_id = record["order_id"]
                assert order_id not in found, (
                    f"{order_id} is in {found[order_id]} and in {group}"
                )
                found[order_id] = group
    return found


@dataclass
class Popbatch:
    """The popbatch command line for one test, pointed at a sandbox.

    Args:
        env: environment for every command; the server key is the
            sandbox's test key unless a test gives another.
    """

    sandbox: SandboxServer
    tmp_path: Path
    env: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            "POP_SERVER_KEY": TEST_KEY,
            "POP_ENDPOINT": None,
            "POPBATCH_JOURNAL": None,
            **self.env,
        }

    @property
    def journal_path(self) -> Path:
        """The journal every command of this test uses."""
        return self.tmp_path / "journal.sqlite3"

    @property
    def out(self) -> Path:
        """The output folder of the runs."""
        return self.tmp_path / "out"

    def write_csv(
        self,
        name: str,
        rows: Iterable[Sequence[object]],
        header: str = "order_id,amount",
    ) -> Path:
        """Write an input CSV file (UTF-8) with ``header`` and ``rows``."""
        path = self.tmp_path / name
        lines = [header, *(",".join(str(cell) for cell in row) for row in rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def run(
        self,
        operation: str,
        path: Path,
        *options: str,
        endpoint: str | None = None,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> Run:
        """``popbatch OPERATION FILE`` against the sandbox, with no rate limit."""
        argv = [
            operation,
            str(path),
            "--endpoint",
            endpoint or self.sandbox.base_url,
            "--journal",
            str(self.journal_path),
            "--out",
            str(self.out),
            "--rate",
            "0",
            *options,
        ]
        return self.invoke(argv, env=env, input=input)

    def command(self, *argv: str, journal: bool = True) -> Run:
        """Another command (status, report, resolve), on this test's journal."""
        extra = ["--journal", str(self.journal_path)] if journal else []
        return self.invoke([*argv, *extra])

    def invoke(
        self,
        argv: list[str],
        *,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> Run:
        """Run the command line in process and return what the user saw."""
        result = CliRunner().invoke(
            main, argv, env={**self.env, **(env or {})}, input=input
        )
        if result.exception is not None and not isinstance(
            result.exception, SystemExit
        ):
            raise result.exception
        return Run(argv, result.exit_code, result.stdout, result.stderr)

    def start(
        self,
        operation: str,
        path: Path,
        *options: str,
        endpoint: str | None = None,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``python -m popbatch OPERATION FILE`` as a process of its own.

        Its stderr goes to ``log`` (default: ``process.log`` in tmp_path).
        """
        argv = [
            sys.executable,
            "-m",
            "popbatch",
            operation,
            str(path),
            "--endpoint",
            endpoint or self.sandbox.base_url,
            "--journal",
            str(self.journal_path),
            "--out",
            str(self.out),
            "--rate",
            "0",
            *options,
        ]
        env = {**os.environ, **self.env}
        with (log or self.tmp_path / "process.log").open("wb") as stderr:
            return subprocess.Popen(
                argv,
                env={name: value for name, value in env.items() if value is not None},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def batch(self, batch_id: int) -> BatchRecord:
        """A batch as the journal holds it."""
        with Journal.open(self.journal_path) as journal:
            return journal.get_batch(batch_id)

    def finished_text(self, batch_id: int) -> str:
        """The line a run of a finished batch prints first."""
        finished = self.batch(batch_id).finished_at
        assert finished is not None, f"batch {batch_id} is not finished"
        return (
            f"batch {batch_id} already finished on "
            f"{finished.isoformat(timespec='seconds')}: nothing sent"
        )

    def rows(self, batch_id: int) -> list[RowRecord]:
        """A batch's rows as the journal holds them."""
        with Journal.open(self.journal_path) as journal:
            return journal.rows(batch_id)

    def states(self, batch_id: int) -> dict[str, str]:
        """order_id -> the row's state in the journal."""
        return {str(row.order_id): str(row.state) for row in self.rows(batch_id)}

    def received(self, order_ids: Iterable[str]) -> dict[str, int]:
        """order_id -> how many requests the sandbox received for it."""
        return {order_id: self.sandbox.received(order_id) for order_id in order_ids}


def summary(
    batch_id: int,
    folder: Path,
    exit_line: str,
    *,
    operation: str = "capture",
    succeeded: tuple[int, int] = (0, 0),
    failed: tuple[int, int] = (0, 0),
    rejected: tuple[int, int] = (0, 0),
    review: tuple[int, int] = (0, 0),
    skipped: tuple[int, int] = (0, 0),
    pending: tuple[int, int] = (0, 0),
    live: bool = False,
) -> list[str]:
    """The summary lines a run prints at its end, for (rows, yen) per group."""
    groups = [succeeded, failed, rejected, review, skipped, pending]
    rows = sum(count for count, _ in groups)
    amount = sum(yen for _, yen in groups)
    mode = "LIVE: real money moved" if live else "test: dummy requests, no money moved"
    lines = [f"popbatch {operation}, batch {batch_id} ({mode})"]
    for name, (count, yen) in zip(GROUPS, groups, strict=True):
        lines.append(f"  {name:<9}  {_tally(count, yen)}")
    lines.append(f"  {'Total':<9}  {_tally(rows, amount)}")
    lines.append(
        f"  adds up: {rows:,} rows in the groups = {rows:,} rows in the input, "
        f"{amount:,} yen = {amount:,} yen"
    )
    if review[0]:
        lines.append(
            "Review rows may or may not have been processed: check them in the "
            "merchant portal before sending them again."
        )
    lines.append(f"Results: {folder}")
    lines.append(exit_line)
    return lines


def _tally(rows: int, amount: int) -> str:
    return f"{rows:>7,} row{'s' if rows != 1 else ' '}  {amount:>14,} yen"


EXIT_OK = "Exit 0: every row succeeded or was already done"
EXIT_FAILED = "Exit 1: some rows failed at POP, were rejected, or need a decision"
EXIT_REVIEW = "Exit 3: some outcomes are unknown: check the Review rows"
EXIT_LATER = "Exit 75: try again later: rows are still pending or the journal is busy"
