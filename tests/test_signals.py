"""SIGINT and SIGTERM in the middle of a batch: stop cleanly, resume once.

Each test starts ``python -m popbatch capture`` in a process of its own
against the sandbox, which answers slowly, and signals it once requests are
in flight. A first SIGINT or SIGTERM lets the requests in flight finish,
records them, writes the results and exits 130 or 143; a second SIGINT
aborts at once. Running the same command again (in process) resumes the
batch; the sandbox's counters show that no order was applied twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batchrun import TEST_KEY, captures, run_cli

from popbatch.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

DEADLINE_S = 60.0


class Run:
    """``popbatch capture`` running in a child process, with the helpers' paths."""

    def __init__(
        self, tmp_path: Path, endpoint: str, file: Path, *options: str
    ) -> None:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("POP_ENDPOINT", "POPBATCH_JOURNAL")
        }
        env["POP_SERVER_KEY"] = TEST_KEY
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "popbatch",
                "capture",
                str(file),
                "--endpoint",
                endpoint,
                "--journal",
                str(tmp_path / "journal.sqlite3"),
                "--out",
                str(tmp_path / "results"),
                "--rate",
                "0",
                *options,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: list[str] = []

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the child."""
        self.process.send_signal(signum)

    def wait_for_line(self, start: str) -> None:
        """Read stderr until a line starting with ``start`` (the child says it)."""
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.seen.append(line.rstrip("\n"))
            if line.startswith(start):
                return
        raise AssertionError(f"the child never said {start!r}: {self.seen}")

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the child to exit; its exit status and every stderr line."""
        _, rest = self.process.communicate(timeout=DEADLINE_S)
        return self.process.returncode, self.seen + rest.splitlines()


@pytest.fixture
def children() -> Iterator[list[Run]]:
    """Kill any child a failing test leaves behind."""
    started: list[Run] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.communicate()


def wait_until_received(sandbox: SandboxServer, count: int) -> None:
    """Poll the sandbox until ``count`` requests arrived (the child is sending)."""
    deadline = time.monotonic() + DEADLINE_S
    while sandbox.received() < count:
        assert time.monotonic() < deadline, "the child sent nothing"
        time.sleep(0.02)


def start(
    children: list[Run],
    tmp_path: Path,
    sandbox: SandboxServer,
    file: Path,
    *options: str,
) -> Run:
    """Start the child and remember it for clean-up."""
    run = Run(tmp_path, sandbox.base_url, file, *options)
    children.append(run)
    return run


def orders_of(sandbox: SandboxServer, count: int, prefix: str) -> list[str]:
    """Seed ``count`` authorised orders and return their ids."""
    ids = [f"{prefix}-{n:02d}" for n in range(1, count + 1)]
    for order_id in ids:
        sandbox.add_order(order_id, 1000)
    return ids


def test_sigint_finishes_the_requests_in_flight_and_the_same_command_resumes(
    sandbox: SandboxServer, tmp_path: Path, children: list[Run]
) -> None:
    """Stop starting rows, record the ones in flight, write results, exit 130."""
    orders = orders_of(sandbox, 8, "G")
    file = captures(tmp_path / "capture.csv", orders)
    sandbox.set_faults(latency_s=0.3)
    run = start(children, tmp_path, sandbox, file, "--concurrency", "2")
    wait_until_received(sandbox, 3)

    run.signal(signal.SIGINT)
    status, lines = run.finish()

    assert status == 130
    assert (
        "SIGINT: finishing the requests in flight, then writing the results "
        "(press Ctrl-C again to abort at once)"
    ) in lines
    assert "stopped by SIGINT; the same command resumes" in lines
    assert lines[-1] == "Exit 130: stopped by SIGINT; the same command resumes"
    assert not any("Traceback" in line for line in lines)
    # Every request that left was answered and recorded: none is in Review.
    answered = sandbox.received()
    assert f"  Succeeded  {answered:>7,} rows  {answered * 1000:>14,} yen" in lines
    assert "  Review           0 rows               0 yen" in lines
    assert answered < len(orders)

    sandbox.set_faults()
    again = run_cli(tmp_path, sandbox.base_url, file, "--concurrency", "2")

    assert again.exit_code == 0
    assert again.order_ids("succeeded") == orders
    assert {oid: sandbox.applied(oid) for oid in orders} == dict.fromkeys(orders, 1)
    assert {oid: sandbox.received(oid) for oid in orders} == dict.fromkeys(orders, 1)


def test_sigterm_waits_for_a_request_no_longer_than_the_read_timeout(
    sandbox: SandboxServer, tmp_path: Path, children: list[Run]
) -> None:
    """A request that never answers holds SIGTERM for --timeout at most: Review, 143."""
    orders = orders_of(sandbox, 3, "T")
    file = captures(tmp_path / "capture.csv", orders)
    sandbox.set_faults(hang=1.0)
    run = start(children, tmp_path, sandbox, file, "--timeout", "1")
    wait_until_received(sandbox, 1)

    run.signal(signal.SIGTERM)
    status, lines = run.finish()

    assert status == 143
    assert "  Review           1 row            1,000 yen" in lines
    assert "  Pending          2 rows           2,000 yen" in lines
    assert lines[-1] == "Exit 143: stopped by SIGTERM; the same command resumes"
    assert not any("Traceback" in line for line in lines)
    assert sandbox.received() == 1

    sandbox.set_faults()
    again = run_cli(tmp_path, sandbox.base_url, file)

    assert again.exit_code == 3
    assert again.order_ids("review") == ["T-01"]
    assert again.order_ids("succeeded") == ["T-02", "T-03"]
    assert {oid: sandbox.received(oid) for oid in orders} == dict.fromkeys(orders, 1)


def test_second_sigint_aborts_at_once_and_the_journal_stays_consistent(
    sandbox: SandboxServer, tmp_path: Path, children: list[Run]
) -> None:
    """Ctrl-C twice: exit 130 at once; the next run reviews the rows in flight."""
    orders = orders_of(sandbox, 6, "A")
    file = captures(tmp_path / "capture.csv", orders)
    sandbox.set_faults(latency_s=1.0)
    run = start(children, tmp_path, sandbox, file, "--concurrency", "2")
    wait_until_received(sandbox, 3)
    in_flight = [str(request.order_id) for request in sandbox.requests()[1:3]]

    run.signal(signal.SIGINT)
    run.wait_for_line("SIGINT: finishing the requests in flight")
    run.signal(signal.SIGINT)
    status, lines = run.finish()

    assert status == 130
    assert lines[-1] == (
        "SIGINT again: stopped at once. Rows in flight go to Review when the same "
        "command runs again."
    )
    assert not any("Traceback" in line for line in lines)

    sandbox.set_faults()
    again = run_cli(tmp_path, sandbox.base_url, file)

    assert again.exit_code == 3
    assert again.said[0] == (
        "2 rows were in flight when an earlier run stopped: they may have been "
        "applied, so they are in Review and not sent again"
    )
    assert sorted(again.order_ids("review")) == sorted(in_flight)
    assert {row["reason"] for row in again.group("review")} == {"interrupted_in_flight"}
    assert sorted(again.order_ids("succeeded")) == sorted(set(orders) - set(in_flight))
    assert {oid: sandbox.received(oid) for oid in orders} == dict.fromkeys(orders, 1)
    assert all(sandbox.applied(oid) <= 1 for oid in orders)
