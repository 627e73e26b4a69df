"""The crash test (issue 6): kill a long batch again and again; nothing twice, nothing lost.

A batch of POPBATCH_CRASH_ROWS captures (default 2,000) is sent to the
sandbox at a high --rate with 8 workers; the popbatch process is stopped
POPBATCH_CRASH_KILLS times (default 10) at random points, from a seeded
random generator (POPBATCH_CRASH_SEED), and the same command is run again
each time until the batch completes. Then the sandbox's per-order counters
and the final results must show that:

- no order was applied (or even received) more than once;
- every row is in exactly one group of the final results, and the groups
  add up to the file;
- every row the sandbox applied is Succeeded or in Review, and every
  Succeeded row was applied: the rows applied but not recorded as done
  are Review rows. A Review row may also be one that was never applied:
  its intent was committed and the process died before the request
  reached POP. Such a row was never received, and the journal says it was
  interrupted in flight.

With SIGKILL the process dies at once, wherever it is (reading, planning,
between an intent and its request, writing results). With SIGTERM every
stop must be clean: exit 143 after the requests in flight are answered,
so no row is left in flight.

The sandbox adds 1-3 ms of latency and, for 1% of orders (seeded), applies
the capture and drops the connection, so some rows are in Review for a
reason of their own. Runs are forked from a process that has imported
popbatch already (tests/forked_runs.py), so a run starts in milliseconds
rather than two seconds; ``make bench`` runs a larger size.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import environment, with_changes
from run_output import Results

from popbatch.journal import Journal
from popbatch.rows import RowState
from popbatch.sandbox import SandboxServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ROWS = int(os.environ.get("POPBATCH_CRASH_ROWS", "2000"))
KILLS = int(os.environ.get("POPBATCH_CRASH_KILLS", "10"))
SEED = int(os.environ.get("POPBATCH_CRASH_SEED", "20261203"))


@dataclass(frozen=True)
class Outcome:
    """How one forked run ended."""

    exit: int
    signalled: bool
    outcomes_seen: int


class Runner:
    """Runs popbatch commands in children of one process that imported popbatch."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forked_runs.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=with_changes(os.environ, environment()),
            text=True,
        )

    def run(
        self,
        argv: list[str],
        log: Path,
        *,
        signum: int = 0,
        after_outcomes: int = 0,
        delay_s: float = 0.0,
    ) -> Outcome:
        """Run ``popbatch ARGV``; send ``signum`` at the moment asked for."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        command = {
            "argv": argv,
            "log": str(log),
            "signal": signum,
            "after_outcomes": after_outcomes,
            "delay_s": delay_s,
        }
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._process.stdout.readline())
        return Outcome(answer["exit"], answer["signalled"], answer["outcomes_seen"])

    def close(self) -> None:
        """Let the forking process end."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._process.stdout.close()


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """One forking process for the module's runs."""
    started = Runner()
    yield started
    started.close()


@dataclass
class CrashBatch:
    """The batch under test: its file, its command, and what each run did."""

    sandbox: SandboxServer
    tmp_path: Path
    orders: list[str]
    runs: list[tuple[str, Outcome]]

    @property
    def journal_path(self) -> Path:
        """The journal of every run."""
        return self.tmp_path / "journal.sqlite3"

    @property
    def argv(self) -> list[str]:
        """The same command, every time."""
        return [
            "capture",
            str(self.tmp_path / "month-end.csv"),
            "--endpoint",
            self.sandbox.base_url,
            "--journal",
            str(self.journal_path),
            "--out",
            str(self.tmp_path / "out"),
            "--rate",
            "5000",
            "--concurrency",
            "8",
            "-v",
        ]

    def left_to_send(self) -> int:
        """Rows not yet done (planned or pending); all of them before batch 1."""
        if not self.journal_path.exists():
            return len(self.orders)
        with Journal.open(self.journal_path) as journal:
            if not journal.list_batches():
                return len(self.orders)
            counts = journal.counts(1)
        return counts[RowState.PLANNED] + counts[RowState.PENDING]

    def log(self) -> Path:
        """A fresh log file for the next run."""
        return self.tmp_path / f"run-{len(self.runs) + 1:02d}.log"

    def history(self) -> str:
        """What each run was asked and did, for failure messages."""
        return "\n".join(f"{what}: {outcome}" for what, outcome in self.runs)


@pytest.fixture
def batch(sandbox: SandboxServer, tmp_path: Path) -> CrashBatch:
    """ROWS authorised orders, their capture file, and a slow, lossy sandbox."""
    orders = [f"MC-{n:06d}" for n in range(ROWS)]
    sandbox.load_seed(
        {"orders": [{"order_id": order_id, "amount": 9000} for order_id in orders]}
    )
    sandbox.set_faults(
        latency_s=0.001, latency_max_s=0.003, close_after_apply=0.01, seed=SEED
    )
    lines = ["order_id,amount"]
    lines += [f"{order_id},{1000 + n % 7000}" for n, order_id in enumerate(orders)]
    (tmp_path / "month-end.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CrashBatch(sandbox, tmp_path, orders, [])


def stop_repeatedly(
    runner: Runner, batch: CrashBatch, signum: int, rng: random.Random
) -> None:
    """Run the command, stopping it with ``signum``, until KILLS runs were stopped.

    Most stops come after a random number of row outcomes (plus up to 20 ms,
    to land anywhere between an intent and an outcome). With SIGKILL the
    first stop, and about one in six of the others, comes at a random time
    from the start instead: while the file is read, the batch planned or
    resumed, or rows sent. The number of outcomes is drawn below what is
    left, so every stop lands before the batch is done.
    """
    stopped = 0
    while stopped < KILLS:
        left = batch.left_to_send()
        assert left > 1, f"the batch ran out of rows before {KILLS} stops\n" + (
            batch.history()
        )
        share = max(1, left // (KILLS - stopped + 1))
        early = signum == signal.SIGKILL and (stopped == 0 or rng.random() < 1 / 6)
        after = 0 if early else rng.randint(1, min(2 * share, left - 1))
        delay = rng.uniform(0.0, 0.4) if early else rng.uniform(0.0, 0.02)

        if stop_once(runner, batch, signum, after, delay):
            stopped += 1


def stop_once(
    runner: Runner, batch: CrashBatch, signum: int, after: int, delay: float
) -> bool:
    """One run stopped at the moment given; True when the signal was sent."""
    outcome = runner.run(
        batch.argv, batch.log(), signum=signum, after_outcomes=after, delay_s=delay
    )
    batch.runs.append((f"stop after {after} outcomes + {delay:.3f}s", outcome))
    if outcome.signalled:
        expected = -signal.SIGKILL if signum == signal.SIGKILL else 143
        assert outcome.exit == expected, batch.history()
    return outcome.signalled


def check_final_results(batch: CrashBatch, final: Outcome) -> dict[str, str]:
    """The checks of the module docstring; returns order_id -> group."""
    sandbox = batch.sandbox
    folder = batch.tmp_path / "out" / "month-end-capture-batch1"
    results = Results(folder)
    groups = results.group_of()
    summary = results.summary()
    with Journal.open(batch.journal_path) as journal:
        rows = {str(row.order_id): row for row in journal.rows(1)}

    applied = {order_id: sandbox.applied(order_id) for order_id in batch.orders}
    received = {order_id: sandbox.received(order_id) for order_id in batch.orders}
    review = {order_id for order_id, group in groups.items() if group == "Review"}

    assert max(applied.values()) == 1, batch.history()
    assert max(received.values()) == 1, batch.history()
    assert sorted(groups) == batch.orders
    assert set(groups.values()) <= {"Succeeded", "Review"}
    assert (summary["rows"], summary["adds_up"]) == (ROWS, True)
    assert final.exit == (3 if review else 0)

    not_recorded = {
        order_id
        for order_id in batch.orders
        if applied[order_id] and groups[order_id] != "Succeeded"
    }
    assert not_recorded <= review
    for order_id in review - not_recorded:
        outcome = rows[order_id].outcome
        assert outcome is not None
        assert (received[order_id], outcome.reason) == (0, "interrupted_in_flight")
    for order_id, group in groups.items():
        if group == "Succeeded":
            assert applied[order_id] == 1, order_id

    return groups


def finish(runner: Runner, batch: CrashBatch) -> Outcome:
    """Run the same command to the end, and once more: that run sends nothing."""
    final = runner.run(batch.argv, batch.log())
    batch.runs.append(("to the end", final))
    received = batch.sandbox.received()

    again = runner.run(batch.argv, batch.log())
    batch.runs.append(("once more", again))

    assert again.exit == final.exit, batch.history()
    assert batch.sandbox.received() == received
    assert "already finished on" in (
        batch.tmp_path / f"run-{len(batch.runs):02d}.log"
    ).read_text("utf-8")
    return final


def test_kill_9_at_random_points_never_sends_a_row_twice_or_loses_one(
    runner: Runner, batch: CrashBatch
) -> None:
    """SIGKILL at KILLS random points, the same command each time, then to the end."""
    rng = random.Random(SEED)

    stop_repeatedly(runner, batch, signal.SIGKILL, rng)
    # Once more, after the last row's outcome: while the results are written.
    stop_once(
        runner, batch, signal.SIGKILL, batch.left_to_send(), rng.uniform(0.0, 0.5)
    )
    final = finish(runner, batch)

    groups = check_final_results(batch, final)
    interrupted = [
        order_id
        for order_id, row in _journal_rows(batch).items()
        if row.outcome is not None and row.outcome.reason == "interrupted_in_flight"
    ]
    assert set(interrupted) <= {o for o, g in groups.items() if g == "Review"}


def test_sigterm_at_random_points_stops_cleanly_and_resumes(
    runner: Runner, batch: CrashBatch
) -> None:
    """SIGTERM at KILLS random points: each run exits 143, none leaves a row in flight."""
    rng = random.Random(SEED + 1)

    stop_repeatedly(runner, batch, signal.SIGTERM, rng)
    final = finish(runner, batch)

    check_final_results(batch, final)
    for path in sorted(batch.tmp_path.glob("run-*.log")):
        text = path.read_text("utf-8")
        assert "were in flight when an earlier run stopped" not in text, path.name
        assert "was in flight when an earlier run stopped" not in text, path.name
    stopped_logs = [
        (batch.tmp_path / f"run-{n:02d}.log").read_text("utf-8")
        for n, (_, outcome) in enumerate(batch.runs, 1)
        if outcome.signalled
    ]
    assert len(stopped_logs) == KILLS
    for text in stopped_logs:
        assert (
            "SIGTERM: finishing the requests in flight, then writing the results\n"
        ) in text
        assert "stopped by SIGTERM; the same command resumes" in text
        assert "Exit 143: stopped by SIGTERM; the same command resumes" in text
    assert not [
        row
        for row in _journal_rows(batch).values()
        if row.outcome is not None and row.outcome.reason == "interrupted_in_flight"
    ]


def _journal_rows(batch: CrashBatch) -> dict[str, Any]:
    with Journal.open(batch.journal_path) as journal:
        return {str(row.order_id): row for row in journal.rows(1)}
