"""Scenario e for ``make bench``: results_write.py's contenders, in less time.

``benchmarks/results_write.py`` (the results engineer's) builds the journal
records of a large capture batch and writes their cells three ways:
popbatch's ``write_results``, xlsxwriter alone as anyone would call it, and
xlsxwriter alone with the garbage collector paused (as ``write_results``
pauses it). This script reuses its records and its raw writer, and differs
only in what ``make bench``'s time budget needs: the warm-up is a write of a
few hundred rows rather than a whole round, xlsxwriter with the garbage
collector on runs only with ``--unpaused``, and the figures are printed as
JSON for run.py (wall and CPU seconds of each run, keyed ``ours``,
``raw_paused`` and ``raw``).

    .venv/bin/python benchmarks/results_ratio.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from results_write import (
    CONTENDERS,
    OURS,
    RAW,
    RAW_PAUSED,
    START,
    make_batch,
    make_row,
    write_raw,
)

from popbatch.io.layout import Cell, group_layout
from popbatch.io.writers import results_folder_name, write_results
from popbatch.report import Report, build_report
from popbatch.rows import GROUP_ORDER, RunRecord


def build(rows: int) -> tuple[Report, list[list[list[Cell]]]]:
    """The report of a ``rows``-row batch, and the cells of each group sheet."""
    batch = make_batch()
    run = RunRecord(
        batch_id=batch.id or 1,
        started_at=START,
        user="bench",
        host="localhost",
        version="bench",
        options=batch.options,
        finished_at=START + timedelta(hours=1),
    )
    report = build_report(batch, run, [make_row(i) for i in range(rows)], exit_code=3)
    cells = []
    for group in GROUP_ORDER:
        layout = group_layout(report, group)
        cells.append([layout.values(row) for row in report.groups[group]])

    return report, cells


def write_once(
    name: str, report: Report, cells: list[list[list[Cell]]], folder: Path
) -> tuple[float, float]:
    """Write with contender ``name`` into ``folder``; (wall, CPU) seconds."""
    folder.mkdir()
    paused = name == RAW_PAUSED
    if paused:
        gc.disable()
    began, began_cpu = time.perf_counter(), time.process_time()
    try:
        if name == OURS:
            write_results(report, folder / results_folder_name(report.batch))
        else:
            write_raw(report, folder / "results.xlsx", cells)
    finally:
        spent = time.perf_counter() - began, time.process_time() - began_cpu
        if paused:
            gc.enable()

    return spent


def main() -> int:
    """Time the contenders, alternating, and print every run as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--unpaused", action="store_true", help="also time xlsxwriter with GC on"
    )
    options = parser.parse_args()

    contenders = [n for n in CONTENDERS if options.unpaused or n != RAW]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        small, small_cells = build(300)
        for number, name in enumerate(contenders):
            write_once(name, small, small_cells, base / f"warm-{number}")

        report, cells = build(options.rows)
        for attempt in range(options.repeat):
            shift = attempt % len(contenders)
            for name in contenders[shift:] + contenders[:shift]:
                folder = base / f"{attempt}-{contenders.index(name)}"
                runs[name].append(write_once(name, report, cells, folder))

    keys = {OURS: "ours", RAW: "raw", RAW_PAUSED: "raw_paused"}
    print(json.dumps({"rows": options.rows, "runs": {keys[n]: runs[n] for n in runs}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
