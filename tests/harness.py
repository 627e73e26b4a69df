"""Running popbatch against the sandbox as a user does, and reading what it did.

``Popbatch`` is the command line for one test: a folder of its own (``root``)
holding the journal (``journal.sqlite3``), the output folder (``out``) and
the input files the test writes, pointed at a sandbox over real HTTP on
127.0.0.1. A run goes through

- ``run``: ``popbatch OPERATION FILE`` in process (click's CliRunner), with
  ``--endpoint``, ``--journal``, ``--out`` and ``--rate 0`` added (and
  ``--concurrency`` when the Popbatch was given one). The test's options
  come after these, so that one it repeats wins: click keeps the last value;
- ``invoke``, ``command`` and ``validate``: any other command line, in process;
- ``subprocess`` and ``start``: ``python -m popbatch`` as a process of its
  own, to the end or in the background (``Child``), stdin not a terminal;
- ``run_batch``: ``pipeline.run_batch`` itself, for a setting the command
  line does not offer (a backoff of milliseconds, so that retried rows do
  not wait).

The environment is cleaned of what a developer's shell might set
(POP_ENDPOINT, POPBATCH_JOURNAL, a key) and the default journal folder
(XDG_STATE_HOME) is the test's own, so each test says exactly what the user
gave; the server key is the sandbox's test key unless the test gives another.

Each returns a ``run_output.Run``: what the user got back, and the results
folder the run wrote, read as a person opens it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from run_output import Results, Run

from popbatch.cli import main
from popbatch.config import RetrySettings, RunOptions, ServerKey, Timeouts
from popbatch.journal import Journal
from popbatch.rows import BatchRecord, RowRecord
from popbatch.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
CASES = Path(__file__).resolve().parent / "data" / "cases"

# The session sandbox's keys (tests/conftest.py): a test merchant, which must
# send dummy true, and a live one.
TEST_KEY = "Test-POP-Server-Key"
LIVE_KEY = "Live-POP-Server-Key"


def empty_journal_notice(journal: Path) -> str:
    """The warning of a run on a journal that holds no batches (after "Warning: ")."""
    return (
        f"the journal {journal.resolve()} holds no earlier batches: nothing can be "
        "recognised as already done"
    )


# Variables a developer's shell might hold; each test sets what it needs.
CLEARED = ("POP_SERVER_KEY", "POP_ENDPOINT", "POPBATCH_JOURNAL")

FAST_RETRY = RetrySettings(backoff_base=0.001, backoff_cap=0.005)
"""Retry settings whose backoff waits are a few milliseconds."""

DEADLINE_S = 60.0
"""How long a wait may last before a test gives up: a guard against hangs only."""


class Child:
    """popbatch running in a process of its own, its stderr going to a log file."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path
    ) -> None:
        self.log = log
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "popbatch", *argv],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process."""
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the process, wherever it is, and wait for it to end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def lines(self) -> list[str]:
        """The lines the process wrote on stderr so far."""
        return self.log.read_text("utf-8").splitlines()

    def wait_for_line(self, start: str) -> None:
        """Wait until the process says a line starting with ``start``."""
        wait_until(
            lambda: any(line.startswith(start) for line in self.lines()),
            f"a line starting {start!r} (so far: {self.lines()})",
        )

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the process to exit: its exit status and every stderr line."""
        status = self.process.wait(timeout=DEADLINE_S)
        return status, self.lines()


class Popbatch:
    """The popbatch command line for one test, in a folder of its own.

    Args:
        root: the test's folder: journal, output folder, input files.
        sandbox: the sandbox runs go to (``endpoint`` names another).
        concurrency: ``--concurrency`` for every run; None for popbatch's own.

    The journal exists (empty) before the first command that names it, and
    stands for an established user's journal, which holds earlier batches:
    the warning that a journal holds no batches (``empty_journal_notice``)
    is left out of what the commands on it print. Set ``fresh_journal`` to
    True before that command to leave the journal to popbatch and see the
    warning as a user does.
    """

    def __init__(
        self,
        root: Path,
        sandbox: SandboxServer | None = None,
        *,
        concurrency: int | None = None,
    ) -> None:
        self.root = root
        self._sandbox = sandbox
        self.concurrency = concurrency
        self.fresh_journal = False
        self._established = False
        self._children: list[Child] = []

    @property
    def sandbox(self) -> SandboxServer:
        """The sandbox the runs go to."""
        assert self._sandbox is not None, "this Popbatch has no sandbox"
        return self._sandbox

    @property
    def journal(self) -> Path:
        """The journal every command of this test uses."""
        return self.root / "journal.sqlite3"

    @property
    def out(self) -> Path:
        """The output folder of the runs (``--out``)."""
        return self.root / "out"

    # -- input files -----------------------------------------------------------

    def write(self, name: str, text: str, *, encoding: str = "utf-8") -> Path:
        """Write an input file into the test's folder and return its path."""
        path = self.root / name
        path.write_bytes(text.encode(encoding))
        return path

    def write_csv(
        self,
        name: str,
        rows: Iterable[Sequence[object]],
        header: str = "order_id,amount",
    ) -> Path:
        """Write an input CSV file (UTF-8) with ``header`` and ``rows``."""
        lines = [header, *(",".join(str(cell) for cell in row) for row in rows)]
        return self.write(name, "\n".join(lines) + "\n")

    def captures(self, name: str, order_ids: Iterable[str], amount: int = 1000) -> Path:
        """A capture file with one row per order id, each for ``amount`` yen."""
        return self.write_csv(name, [(order_id, amount) for order_id in order_ids])

    # -- running -----------------------------------------------------------------

    def argv(
        self,
        operation: str,
        path: Path | str,
        *options: str,
        endpoint: str | None = None,
    ) -> list[str]:
        """The command line of ``popbatch OPERATION FILE`` for this test."""
        self._establish_journal()
        argv = [operation, str(path), "--endpoint", endpoint or self._endpoint()]
        argv += ["--journal", str(self.journal), "--out", str(self.out), "--rate", "0"]
        if self.concurrency is not None:
            argv += ["--concurrency", str(self.concurrency)]
        return [*argv, *options]

    def run(
        self,
        operation: str,
        path: Path | str,
        *options: str,
        endpoint: str | None = None,
        key: str | None = TEST_KEY,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> Run:
        """``popbatch OPERATION FILE`` against the sandbox, with no rate limit."""
        argv = self.argv(operation, path, *options, endpoint=endpoint)
        return self.invoke(*argv, key=key, env=env, input=input)

    def validate(self, operation: str, path: Path | str, *options: str) -> Run:
        """``popbatch validate OPERATION FILE --out OUT OPTIONS``."""
        return self.invoke(
            "validate", operation, str(path), "--out", str(self.out), *options
        )

    def command(self, *argv: str, journal: bool = True) -> Run:
        """Another command (status, report, resolve), on this test's journal."""
        extra = ["--journal", str(self.journal)] if journal else []
        if journal:
            self._establish_journal()
        return self.invoke(*argv, *extra)

    def invoke(
        self,
        *argv: str,
        key: str | None = TEST_KEY,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
    ) -> Run:
        """Run any popbatch command line in process; what the user saw.

        ``key`` is POP_SERVER_KEY (None: no key); ``env`` sets or, with
        None, removes further variables.
        """
        with _logger_kept():
            result = CliRunner().invoke(
                main,
                list(argv),
                env=self.environment(key, env),
                input=input,
                catch_exceptions=False,
            )
        return self._seen(
            Run(
                list(argv),
                result.exit_code,
                result.stdout,
                result.stderr,
                result.output,
            )
        )

    def subprocess(
        self,
        *argv: str,
        key: str | None = TEST_KEY,
        env: Mapping[str, str | None] | None = None,
    ) -> Run:
        """Run ``python -m popbatch ARGV`` as a process of its own, to its end."""
        done = subprocess.run(
            [sys.executable, "-m", "popbatch", *argv],
            cwd=self.root,
            env=self.process_environment(key, env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = done.stdout + done.stderr
        return self._seen(
            Run(list(argv), done.returncode, done.stdout, done.stderr, output)
        )

    def start(
        self,
        operation: str,
        path: Path | str,
        *options: str,
        key: str | None = TEST_KEY,
    ) -> Child:
        """Start ``python -m popbatch OPERATION FILE`` in the background.

        Its stderr goes to ``process-N.log`` in the test's folder; ``close``
        kills it if the test left it running.
        """
        log = self.root / f"process-{len(self._children) + 1}.log"
        child = Child(
            self.argv(operation, path, *options),
            env=self.process_environment(key),
            cwd=self.root,
            log=log,
        )
        self._children.append(child)
        return child

    def run_batch(
        self,
        operation: str,
        path: Path,
        *,
        endpoint: str | None = None,
        key: str = TEST_KEY,
        concurrency: int = 4,
        retry: RetrySettings = FAST_RETRY,
        read_timeout: float = 5.0,
    ) -> Run:
        """Run a batch through ``pipeline.run_batch``, as the CLI does, with fast retries.

        stderr holds the lines the command line prints after a run (the CLI
        echoes them as they are).
        """
        # Imported here: pandas takes seconds to load, and most tests that
        # import the harness run popbatch through its command line.
        from popbatch.pipeline import RunHooks, StopSignal, run_batch

        self._establish_journal()
        options = RunOptions(
            operation=operation,
            input_path=path,
            endpoint=endpoint or self._endpoint(),
            out_dir=self.out,
            journal_path=self.journal,
            rate=0,
            concurrency=concurrency,
            timeouts=Timeouts(connect=2.0, read=read_timeout),
            retry=retry,
        )
        result = run_batch(options, ServerKey(key), RunHooks(), StopSignal())
        text = "\n".join(result.lines)
        return Run([operation, str(path)], int(result.exit_code), "", text, text)

    def _establish_journal(self) -> None:
        """Create the test's journal, empty, unless it exists or is left fresh."""
        if self.fresh_journal or self.journal.exists():
            return
        with Journal.open(self.journal):
            pass
        self._established = True

    def _as_established(self, text: str) -> str:
        """``text`` without the empty-journal warning of the test's journal.

        Only while the harness stands in for an established journal (see
        the class): the warning is then the harness's doing, not the test's.
        """
        if not self._established:
            return text
        notice = empty_journal_notice(self.journal)
        dropped = {f"Warning: {notice}", f"WARNING: {notice}"}
        return "".join(
            line
            for line in text.splitlines(keepends=True)
            if line.rstrip("\r\n") not in dropped
        )

    def _seen(self, run: Run) -> Run:
        """The run as the test sees it (see ``_as_established``)."""
        shown = self._as_established
        return Run(
            run.argv,
            run.exit_code,
            shown(run.stdout),
            shown(run.stderr),
            shown(run.output),
        )

    def close(self) -> None:
        """Kill any process a test started and left running."""
        for child in self._children:
            child.kill()

    def environment(
        self, key: str | None = TEST_KEY, extra: Mapping[str, str | None] | None = None
    ) -> dict[str, str | None]:
        """The changes to the environment of a command of this test.

        The key (or none), nothing else of ours, the default journal folder
        in the test's folder, then ``extra``; None removes a variable.
        """
        return environment(key, state=self.root / "state", extra=extra)

    def process_environment(
        self, key: str | None = TEST_KEY, extra: Mapping[str, str | None] | None = None
    ) -> dict[str, str]:
        """This process's environment with ``environment``'s changes, for a child."""
        return with_changes(os.environ, self.environment(key, extra))

    def _endpoint(self) -> str:
        return self.sandbox.base_url

    # -- what the sandbox received ---------------------------------------------------

    def bodies(self, endpoint: str | None = None) -> list[bytes]:
        """The exact request bodies the sandbox received, in order of arrival."""
        return [request.body for request in self.sandbox.requests(endpoint=endpoint)]

    def bodies_by_order(self, endpoint: str | None = None) -> dict[str, list[bytes]]:
        """order_id -> the exact bodies the sandbox received, oldest first."""
        found: dict[str, list[bytes]] = {}
        for request in self.sandbox.requests(endpoint=endpoint):
            found.setdefault(request.order_id or "", []).append(request.body)
        return found

    def sent(self, endpoint: str | None = None) -> dict[str, dict[str, Any]]:
        """order_id -> the JSON body of its one request (fails on a second one)."""
        found: dict[str, dict[str, Any]] = {}
        for order_id, bodies in self.bodies_by_order(endpoint).items():
            assert len(bodies) == 1, f"{order_id} was sent {len(bodies)} times"
            found[order_id] = json.loads(bodies[0])
        return found

    def received(self, order_ids: Iterable[str]) -> dict[str, int]:
        """order_id -> how many requests the sandbox received for it."""
        return {order_id: self.sandbox.received(order_id) for order_id in order_ids}

    # -- what the journal and the output folder hold -------------------------------

    def batch(self, batch_id: int) -> BatchRecord:
        """A batch as the journal holds it."""
        with Journal.open(self.journal) as journal:
            return journal.get_batch(batch_id)

    def rows(self, batch_id: int) -> list[RowRecord]:
        """A batch's rows as the journal holds them."""
        with Journal.open(self.journal) as journal:
            return journal.rows(batch_id)

    def states(self, batch_id: int) -> dict[str, str]:
        """order_id -> the row's state in the journal."""
        return {str(row.order_id): str(row.state) for row in self.rows(batch_id)}

    def finished_text(self, batch_id: int) -> str:
        """The line a run of a finished batch prints first."""
        finished = self.batch(batch_id).finished_at
        assert finished is not None, f"batch {batch_id} is not finished"
        return (
            f"batch {batch_id} already finished on "
            f"{finished.isoformat(timespec='seconds')}: nothing sent"
        )

    def results(self) -> Results:
        """The one results folder under ``out`` (with a journal, a run writes one)."""
        folders = sorted(path for path in self.out.iterdir() if path.is_dir())
        assert len(folders) == 1, folders
        return Results(folders[0])

    def mask(self, text: str) -> str:
        """Replace what changes between runs: the sandbox URL, folders, rates."""
        text = text.replace(self.sandbox.base_url, "SANDBOX")
        text = text.replace(str(self.root), "WORK")
        return re.sub(r"\d+\.\d/(s|min)", "N/s", text)


def environment(
    key: str | None = TEST_KEY,
    *,
    state: Path | None = None,
    extra: Mapping[str, str | None] | None = None,
) -> dict[str, str | None]:
    """Changes to an environment: the key (or none) and nothing else of ours.

    ``state`` becomes XDG_STATE_HOME, where the journal is by default;
    ``extra`` comes last. None removes a variable.
    """
    env: dict[str, str | None] = dict.fromkeys(CLEARED)
    if state is not None:
        env["XDG_STATE_HOME"] = str(state)
    if key is not None:
        env["POP_SERVER_KEY"] = key
    env.update(extra or {})
    return env


def with_changes(
    environ: Mapping[str, str], changes: Mapping[str, str | None]
) -> dict[str, str]:
    """``environ`` with ``changes`` made: a value sets a variable, None removes it."""
    env = dict(environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` s.

    The timeout only guards against a hang: no test depends on how long
    anything takes.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def assert_applied_at_most_once(
    sandbox: SandboxServer, order_ids: Iterable[str]
) -> None:
    """No order was applied twice by the sandbox's ledger or script."""
    applied = {order_id: sandbox.applied(order_id) for order_id in order_ids}
    assert {oid: n for oid, n in applied.items() if n > 1} == {}


def assert_one_body(sandbox: SandboxServer, order_id: str, times: int) -> bytes:
    """The order was received ``times`` times, each with the same bytes."""
    received = [request.body for request in sandbox.requests(order_id)]
    assert len(received) == times
    assert len(set(received)) == 1, received
    return received[0]


@contextmanager
def _logger_kept() -> Iterator[None]:
    """Give popbatch's logger back as it was: the CLI points it at its streams."""
    logger = logging.getLogger("popbatch")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
