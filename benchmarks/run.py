"""``make bench``: every scenario of issue 8, one table, and BENCHMARKS.md.

Runs the scenarios against the sandbox on loopback (always in a process of
its own), prints one table of figures against their targets, and writes the
same table to BENCHMARKS.md with the machine's description, the date, the
git commit, how each figure was measured, and the profile of scenario a.

The default sizes keep the whole run under 10 minutes on a 2-core machine;
``--full`` uses the sizes of issue 8 exactly (20,000 rows in scenario a,
30-second rate runs, the plain loop on all 3,000 rows of scenario b), which
takes about half an hour; ``--smoke`` uses tiny sizes, to check that the
scripts run. ``--only a,c`` or ``--smoke`` write no file unless
``--output`` is given.

    .venv/bin/python benchmarks/run.py [--full] [--only a,b,c,d,e,sandbox]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import files
import sending
import tables
from core import FULL, QUICK, SMOKE, Bench, BenchError, Figure
from helpers import ROOT, filesystem_of, load, machine

SCENARIOS: dict[str, tuple[str, Callable[[Bench], None]]] = {
    "sandbox": ("sandbox", sending.sandbox_throughput),
    "a": ("a. per-row cost", sending.per_row_cost),
    "b": ("b. latency hiding", sending.latency_hiding),
    "c": ("c. rate accuracy", sending.rate_accuracy),
    "d": ("d. large input", files.large_input),
    "e": ("e. results", files.results_writing),
}


def main() -> int:
    """Run the chosen scenarios, print the table, write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="issue 8's exact sizes")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: check the scripts run"
    )
    parser.add_argument("--only", help="comma-separated: sandbox,a,b,c,d,e")
    parser.add_argument("--output", type=Path, help="where to write the markdown")
    parser.add_argument(
        "--disk", type=Path, default=Path("/var/tmp"), help="scratch folder on a disk"
    )
    parser.add_argument(
        "--tmpfs", type=Path, default=Path("/dev/shm"), help="scratch folder in memory"
    )
    options = parser.parse_args()

    chosen = list(SCENARIOS) if not options.only else options.only.split(",")
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario {', '.join(unknown)}; use {', '.join(SCENARIOS)}"
        )
    output = options.output
    if output is None and not options.only and not options.smoke:
        output = ROOT / "BENCHMARKS.md"

    bench = Bench(
        sizes=SMOKE if options.smoke else FULL if options.full else QUICK,
        disk=options.disk,
        tmpfs=options.tmpfs if filesystem_of(options.tmpfs) == "tmpfs" else None,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    )
    context = {
        "started": datetime.now().astimezone(),
        "machine": machine(),
        "disk": f"{options.disk} ({filesystem_of(options.disk)})",
        "tmpfs": f"{options.tmpfs} ({filesystem_of(options.tmpfs)})",
        "full": options.full,
        "command": " ".join(["benchmarks/run.py", *sys.argv[1:]]),
        "loads": [],
    }
    if filesystem_of(options.disk) == "tmpfs":
        bench.say(
            f"bench: warning: {options.disk} is a tmpfs; the journal is not on a disk"
        )

    began = time.perf_counter()
    for name in chosen:
        title, scenario = SCENARIOS[name]
        bench.say(f"bench: {title} (load {load()}) ...")
        started = time.perf_counter()
        try:
            scenario(bench)
        except BenchError as error:
            bench.figures.append(not_measured(title, str(error)))
        except Exception as error:
            # A bug in the benchmark itself: show it, and go on with the rest.
            traceback.print_exc()
            bench.figures.append(
                not_measured(title, f"the benchmark failed: {error!r}")
            )
        took = time.perf_counter() - started
        context["loads"].append((title, load(), took))
        bench.say(f"bench: {title} took {took:.0f} s (load {load()})")
    context["seconds"] = time.perf_counter() - began
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    context["cpu_seconds"] = used.ru_utime + used.ru_stime

    print(tables.text_table(bench.figures))
    print(f"\n{len(chosen)} scenarios in {context['seconds'] / 60:.1f} minutes")
    if output is not None:
        output.write_text(tables.markdown(bench, context), encoding="utf-8")
        print(f"written: {output}")
    return 1 if any(not figure.measured for figure in bench.figures) else 0


def not_measured(scenario: str, why: str) -> Figure:
    """The line of a scenario that produced no figure, and why."""
    return Figure(scenario, "not measured", "-", "-", None, limit=why, measured=False)


if __name__ == "__main__":
    sys.exit(main())
