"""What every scenario of issue 8 uses: sizes, figures, runs checked against the sandbox.

Every sending scenario starts its own sandbox process (the latency it
needs, seeded with the orders of its own input file), puts the ledger back
to the seed before each run, and checks afterwards that the sandbox received
and applied exactly one request per row: a run that did less is an error,
never a figure. Sides of a comparison alternate, the first side rotating
from one round to the next, and each ratio is taken within a round, so that
a busy spell on the machine weighs on both sides alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from helpers import PYTHON, Sandbox, journal_times, popbatch_env, run_timed

HERE = Path(__file__).resolve().parent
T = TypeVar("T")


class BenchError(Exception):
    """A run did not do what it should; the scenario has no figure."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is; ``QUICK`` fits ``make bench`` in 10 minutes."""

    capture_rows: int  # a, f: rows captured at concurrency 1
    latency_rows: int  # b: rows for popbatch and the plain pool
    latency_loop_rows: int  # b: rows for the plain loop (its rate is steady)
    rate_seconds: float  # c: length of each rate run
    csv_rows: int  # d
    xlsx_rows: int  # d
    results_rows: int  # e
    results_unpaused: bool  # e: also xlsxwriter with the garbage collector on
    profile_rows: int  # profiles of scenarios a and b: phase clocks
    cprofile_rows: int  # profile of scenario a: cProfile (slower)
    throughput_seconds: float  # sandbox throughput, per run
    repeat: int


QUICK = Sizes(
    capture_rows=2_000,
    latency_rows=3_000,
    latency_loop_rows=200,
    rate_seconds=8,
    csv_rows=1_000_000,
    xlsx_rows=100_000,
    results_rows=100_000,
    results_unpaused=False,
    profile_rows=1_000,
    cprofile_rows=500,
    throughput_seconds=2,
    repeat=3,
)
FULL = Sizes(
    capture_rows=20_000,
    latency_rows=3_000,
    latency_loop_rows=3_000,
    rate_seconds=30,
    csv_rows=1_000_000,
    xlsx_rows=100_000,
    results_rows=100_000,
    results_unpaused=True,
    profile_rows=20_000,
    cprofile_rows=5_000,
    throughput_seconds=5,
    repeat=3,
)


# Tiny sizes to check that the benchmarks run at all; their figures mean nothing.
SMOKE = Sizes(
    capture_rows=200,
    latency_rows=200,
    latency_loop_rows=50,
    rate_seconds=3,
    csv_rows=10_000,
    xlsx_rows=2_000,
    results_rows=2_000,
    results_unpaused=True,
    profile_rows=200,
    cprofile_rows=100,
    throughput_seconds=1,
    repeat=3,
)


@dataclass(slots=True)
class Figure:
    """One line of the table: what was measured, against which target."""

    scenario: str
    measure: str
    text: str
    target: str
    met: bool | None  # None: a figure to report, with no target
    runs: str = ""
    limit: str = ""  # for a missed target: what limits it; or why not measured
    measured: bool = True

    @property
    def status(self) -> str:
        """``met``, ``missed``, ``report`` (no target) or ``not measured``."""
        if not self.measured:
            return "not measured"
        return {True: "met", False: "missed", None: "report"}[self.met]


@dataclass(slots=True)
class Bench:
    """What the scenarios share: sizes, scratch places, and what they found."""

    sizes: Sizes
    disk: Path  # scratch folder on a disk (journals, outputs)
    tmpfs: Path | None  # scratch folder in memory, for scenario f
    say: Callable[[str], None]
    figures: list[Figure] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    def note(self, scenario: str, line: str) -> None:
        """Add a line to the scenario's section of BENCHMARKS.md."""
        self.notes.setdefault(scenario, []).append(line)


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run: wall time, rows, and the send phase seen by the sandbox."""

    seconds: float
    rows: int
    arrivals: tuple[float, ...]
    # Per row, by popbatch's own clock: (limiter released it, request left).
    journal: tuple[tuple[float, float], ...] = ()

    @property
    def send_rate(self) -> float:
        """Requests per second between the first and the last arrival."""
        span = self.arrivals[-1] - self.arrivals[0]
        return (len(self.arrivals) - 1) / span if span > 0 else math.inf

    @property
    def send_seconds(self) -> float:
        """Seconds from the first arrival to the last."""
        return self.arrivals[-1] - self.arrivals[0]


def alternate(sides: Mapping[str, Callable[[], T]], repeat: int) -> dict[str, list[T]]:
    """Run each side ``repeat`` times, the first side rotating every round."""
    names = list(sides)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_ in range(repeat):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(sides[name]())

    return results


def capture_command(
    csv: Path, endpoint: str, *, journal: Path, out: Path, rate: float, concurrency: int
) -> list[str]:
    """``popbatch capture`` as a user runs it, quiet, with its own journal."""
    command = [PYTHON, "-m", "popbatch", "capture", str(csv), "--endpoint", endpoint]
    command += ["--rate", f"{rate:g}", "--concurrency", str(concurrency), "--yes", "-q"]
    return [*command, "--journal", str(journal), "--out", str(out)]


def plain_command(script: str, csv: Path, endpoint: str, out: Path) -> list[str]:
    """One of the plain scripts beside the benchmarks."""
    return [
        PYTHON,
        str(HERE / script),
        str(csv),
        "--endpoint",
        endpoint,
        "--out",
        str(out),
    ]


def checked_run(
    sandbox: Sandbox,
    name: str,
    command: list[str],
    rows: int,
    cwd: Path,
    *,
    journal: Path | None = None,
) -> Run:
    """Reset the sandbox, run ``command``, and check one applied request per row.

    With ``journal``, the run also carries popbatch's own times from it.
    """
    sandbox.reset()
    timed = run_timed(command, env=popbatch_env(), cwd=cwd)
    counts = sandbox.counters()
    if timed.exit_code != 0 or counts["received"] != rows or counts["applied"] != rows:
        raise BenchError(
            f"{name}: exit {timed.exit_code}; the sandbox received "
            f"{counts['received']} and applied {counts['applied']} of {rows} rows; "
            f"stderr: {timed.stderr.strip()[-400:]}"
        )
    times = tuple(journal_times(journal)) if journal is not None else ()
    return Run(timed.seconds, rows, tuple(sandbox.arrival_times()), times)


def fmt_runs(values: list[float], pattern: str = "{:.2f}") -> str:
    """The runs' figures, comma-separated, for the table's last column."""
    return ", ".join(pattern.format(value) for value in values)
