"""Helpers for end-to-end runs against the sandbox: input files, runs, results.

A run goes through the command line (click's CliRunner), or through
``pipeline.run_batch`` when a test needs a setting the command line does
not offer (a backoff of milliseconds, so that retried rows do not wait).
Either way the requests are real HTTP to the sandbox on 127.0.0.1 and the
journal is a real SQLite file in the test's tmp_path; the results folder is
read back the way a user would open it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from popbatch.cli import main
from popbatch.config import RetrySettings, RunOptions, ServerKey, Timeouts
from popbatch.pipeline import RunHooks, StopSignal, run_batch
from popbatch.sandbox import SandboxServer

TEST_KEY = "Test-POP-Server-Key"

# Log lines start with a time stamp; progress lines with "done/total rows".
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
_PROGRESS_LINE = re.compile(r"^(sending [0-9,]+ rows?$|[0-9,]+/[0-9,]+ rows? \()")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a small UTF-8 input file and return its path."""
    lines = [",".join(header)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def captures(path: Path, order_ids: Sequence[str], amount: int = 1000) -> Path:
    """A capture file with one row per order id, each for ``amount`` yen."""
    return write_csv(path, ["order_id", "amount"], [[oid, amount] for oid in order_ids])


@dataclass
class Ran:
    """What a run left: exit code, terminal text and the results folder."""

    exit_code: int
    stderr: str
    stdout: str = ""
    folder: Path | None = None
    sent: int | None = None
    result_lines: list[str] = field(default_factory=list)

    @property
    def said(self) -> list[str]:
        """The lines a person reads on stderr: no log lines, no progress lines."""
        return [
            line
            for line in self.stderr.splitlines()
            if not _LOG_LINE.match(line) and not _PROGRESS_LINE.match(line)
        ]

    @property
    def log_lines(self) -> list[str]:
        """The log lines on stderr, without their time stamps."""
        return [
            _LOG_LINE.sub(lambda m: m.group(0).split()[-1] + " ", line)
            for line in self.stderr.splitlines()
            if _LOG_LINE.match(line)
        ]

    def group(self, name: str) -> list[dict[str, str]]:
        """The rows of one result group, as its CSV file holds them."""
        assert self.folder is not None, "the run wrote no results"
        return read_group(self.folder, name)

    def order_ids(self, name: str) -> list[str]:
        """The order ids in one result group, in row order."""
        return [row["order_id"] for row in self.group(name)]

    def counts(self) -> dict[str, int]:
        """Rows per group, from summary.json (groups in lower case)."""
        assert self.folder is not None, "the run wrote no results"
        summary = json.loads((self.folder / "summary.json").read_text("utf-8"))
        return {name: tally["rows"] for name, tally in summary["groups"].items()}


def read_group(folder: Path, name: str) -> list[dict[str, str]]:
    """The rows of ``<name>.csv`` in a results folder (``review``, ``failed``...)."""
    with (folder / f"{name}.csv").open(encoding="utf-8-sig", newline="") as file:
        return list(csv.DictReader(file))


def run_cli(
    tmp_path: Path,
    endpoint: str,
    input_file: Path,
    *options: str,
    operation: str = "capture",
    key: str = TEST_KEY,
) -> Ran:
    """Run ``popbatch OPERATION FILE`` in-process, with no rate limit by default.

    The journal and the results live in ``tmp_path``, so a second call with
    the same arguments resumes the same batch, as a user re-running the
    command would.
    """
    args = [
        operation,
        str(input_file),
        "--endpoint",
        endpoint,
        "--journal",
        str(tmp_path / "journal.sqlite3"),
        "--out",
        str(tmp_path / "results"),
    ]
    if "--rate" not in options:
        args += ["--rate", "0"]
    result = CliRunner().invoke(
        main, [*args, *options], env={"POP_SERVER_KEY": key, "POP_ENDPOINT": None}
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    folder = None
    for line in result.stderr.splitlines():
        if line.startswith("Results: "):
            folder = Path(line.removeprefix("Results: "))
    return Ran(result.exit_code, result.stderr, result.stdout, folder)


FAST_RETRY = RetrySettings(backoff_base=0.001, backoff_cap=0.005)
"""Retry settings whose backoff waits are a few milliseconds."""


def run_pipeline(
    tmp_path: Path,
    endpoint: str,
    input_file: Path,
    *,
    operation: str = "capture",
    key: str = TEST_KEY,
    concurrency: int = 4,
    retry: RetrySettings = FAST_RETRY,
    read_timeout: float = 5.0,
) -> Ran:
    """Run a batch through ``pipeline.run_batch``, as the CLI does, with fast retries.

    ``result_lines`` and ``said`` are the lines the command line prints
    after a run (the CLI echoes them as they are).
    """
    options = RunOptions(
        operation=operation,
        input_path=input_file,
        endpoint=endpoint,
        out_dir=tmp_path / "results",
        journal_path=tmp_path / "journal.sqlite3",
        rate=0,
        concurrency=concurrency,
        timeouts=Timeouts(connect=2.0, read=read_timeout),
        retry=retry,
    )
    stop = StopSignal()
    result = run_batch(options, ServerKey(key), RunHooks(), stop)
    text = "\n".join(result.lines)
    return Ran(
        int(result.exit_code),
        text,
        folder=result.results_folder,
        sent=result.sent,
        result_lines=list(result.lines),
    )


def assert_applied_at_most_once(
    sandbox: SandboxServer, order_ids: Iterable[str]
) -> None:
    """No order was applied twice by the sandbox's ledger or script."""
    applied = {order_id: sandbox.applied(order_id) for order_id in order_ids}
    assert {oid: n for oid, n in applied.items() if n > 1} == {}


def bodies(sandbox: SandboxServer, order_id: str) -> list[bytes]:
    """The exact bodies the sandbox received for one order, oldest first."""
    return [request.body for request in sandbox.requests(order_id)]


def assert_one_body(sandbox: SandboxServer, order_id: str, times: int) -> bytes:
    """The order was received ``times`` times, each with the same bytes."""
    received = bodies(sandbox, order_id)
    assert len(received) == times
    assert len(set(received)) == 1, received
    return received[0]
