"""The file scenarios: d (large input through validate) and e (writing results)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import data
from core import HERE, Bench, BenchError, Figure, alternate, fmt_runs
from helpers import (
    PYTHON,
    Timed,
    load,
    median,
    popbatch_env,
    run_timed,
    scratch_folder,
)

# -- d: large input ---------------------------------------------------------------


def large_input(bench: Bench) -> None:
    """Scenario d: ``popbatch validate`` on a large CSV and xlsx, 0.5% invalid."""
    sizes = bench.sizes
    numbers = itertools.count()
    with scratch_folder(bench.disk, "popbatch-bench-d-") as folder:
        csv = data.write_csv(
            folder / "large.csv", "L", sizes.csv_rows, invalid_every=200
        )
        xlsx = data.write_xlsx(
            folder / "large.xlsx", "L", sizes.xlsx_rows, invalid_every=200
        )

        def validate(path: Path, rows: int) -> Callable[[], Timed]:
            def side() -> Timed:
                out = folder / f"out-{next(numbers)}"
                command = [PYTHON, "-m", "popbatch", "validate", "capture", str(path)]
                timed = run_timed(
                    [*command, "--out", str(out), "-q"], env=popbatch_env(), cwd=folder
                )
                bad = rows // 200
                expected = f"{rows:,} rows, {rows - bad:,} valid, {bad:,} rejected"
                if timed.exit_code != 65 or expected not in timed.stderr:
                    raise BenchError(
                        f"validate {path.name}: exit {timed.exit_code}, expected 65 "
                        f"and {expected!r}; stderr: {timed.stderr.strip()[-400:]}"
                    )
                return timed

            return side

        runs = alternate(
            {
                "csv": validate(csv, sizes.csv_rows),
                "xlsx": validate(xlsx, sizes.xlsx_rows),
            },
            sizes.repeat,
        )

    for kind, rows, limit_s in (
        ("csv", sizes.csv_rows, 10.0),
        ("xlsx", sizes.xlsx_rows, 15.0),
    ):
        got = runs[kind]
        seconds = median([t.seconds for t in got])
        peak = max(t.peak_rss_mib for t in got)
        bench.figures.append(
            Figure(
                "d. large input",
                f"popbatch validate, {rows:,}-row {kind}, 0.5% invalid: time",
                f"{seconds:.2f} s",
                f"< {limit_s:g} s",
                seconds < limit_s,
                fmt_runs([t.seconds for t in got], "{:.2f} s"),
            )
        )
        bench.figures.append(
            Figure(
                "d. large input",
                f"popbatch validate, {rows:,}-row {kind}: peak memory (largest run)",
                f"{peak:.0f} MiB",
                "< 1 GB" if kind == "csv" else "report",
                peak < 1000 if kind == "csv" else None,
                fmt_runs([t.peak_rss_mib for t in got], "{:.0f} MiB"),
            )
        )


# -- e: results --------------------------------------------------------------------


def results_writing(bench: Bench) -> None:
    """Scenario e: results_ratio.py, on results_write.py's records and raw writer."""
    rows = bench.sizes.results_rows
    command = [PYTHON, str(HERE / "results_ratio.py"), "--rows", str(rows)]
    command += ["--repeat", str(bench.sizes.repeat)]
    if bench.sizes.results_unpaused:
        command.append("--unpaused")
    timed = run_timed(command, cwd=HERE)
    try:
        runs = json.loads(timed.stdout)["runs"]
        ours, paused = runs["ours"], runs["raw_paused"]
    except (ValueError, KeyError):
        runs = None
    if timed.exit_code != 0 or not runs:
        raise BenchError(
            f"results_ratio.py: exit {timed.exit_code}; output: "
            f"{(timed.stdout + timed.stderr).strip()[-400:]}"
        )

    walls = [wall for wall, _ in ours]
    ratios = [o[0] / r[0] for o, r in zip(ours, paused, strict=True)]
    cpu_ratios = [o[1] / r[1] for o, r in zip(ours, paused, strict=True)]
    seconds, ratio = median(walls), median(ratios)
    bench.figures.append(
        Figure(
            "e. results",
            f"write the results of {rows:,} rows (xlsx, CSV twins, retry file, "
            "summary.json)",
            f"{seconds:.1f} s",
            "< 30 s",
            seconds < 30,
            fmt_runs(walls, "{:.1f} s"),
            f"Its CPU time is {median([cpu for _, cpu in ours]):.1f} s (median); "
            f"the rest of the wall time was spent waiting for a CPU on a shared "
            f"machine (load average {load()} at the end).",
        )
    )
    bench.figures.append(
        Figure(
            "e. results",
            "writing the results / xlsxwriter alone writing the same cells "
            "(garbage collector paused in both)",
            f"{ratio:.2f}x",
            "≤ 1.3x",
            ratio <= 1.3,
            fmt_runs(ratios, "{:.2f}x"),
            f"In CPU time the ratio is {median(cpu_ratios):.2f}x. The rest is "
            "popbatch's own layout of the cells, the CSV twins, the retry file, "
            "summary.json and the fsyncs of a durable results folder.",
        )
    )
    names = {
        "ours": "write_results",
        "raw_paused": "xlsxwriter alone, garbage collector paused",
        "raw": "xlsxwriter alone, garbage collector on",
    }
    for key, got in runs.items():
        bench.note(
            "e",
            f"{names[key]}: median {median([w for w, _ in got]):.1f} s wall, "
            f"{median([c for _, c in got]):.1f} s CPU; runs "
            f"{fmt_runs([w for w, _ in got], '{:.1f} s')}.",
        )
    bench.note("e", f"CPU-time ratio, run by run: {fmt_runs(cpu_ratios, '{:.2f}x')}.")
