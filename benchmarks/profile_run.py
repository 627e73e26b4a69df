"""Where one ``popbatch capture`` run spends its time, thread by thread.

Runs the real command line in this process against a sandbox that is
already listening (run.py starts one), in one of two modes:

- ``phases``: the main steps of a run (read, validate, plan, send, report,
  write) and of each row (rate limiter, intent commit, HTTP exchange,
  classification, retry decision, outcome, log line, progress) are wrapped
  with a clock. The wrappers cost about a microsecond a call, so the shares
  are those of a normal run. Nested steps leave a remainder, named "other".
- ``cprofile``: every thread (main, workers, journal recorder) runs under
  its own ``cProfile.Profile``, and the functions with the most own time are
  listed for each kind of thread. cProfile
  slows pure-Python code far more than waits, so its shares are only a
  guide to which functions matter; the phases give the shares.

Both print a summary and, with ``--json``, write the figures for run.py.

    .venv/bin/python benchmarks/profile_run.py phases captures.csv \\
        --endpoint http://127.0.0.1:8080/pop/v1 --journal /var/tmp/j.sqlite3
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import pstats
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()

# Each phase: (dotted owner, attribute, name shown, parent phase or None).
# The parent of a phase is the phase that always encloses it, so that the
# remainder ("other") of each parent can be computed.
PHASES: tuple[tuple[str, str, str, str | None], ...] = (
    ("popbatch.pipeline", "read_input", "read the input file", None),
    ("popbatch.pipeline", "validate", "validate the rows", None),
    (
        "popbatch.pipeline",
        "_find_or_plan_batch",
        "plan the batch into the journal",
        None,
    ),
    ("popbatch.sender.Sender", "send", "send (worker pool)", None),
    ("popbatch.pipeline", "build_report", "build the report", None),
    ("popbatch.pipeline", "write_results", "write the results folder", None),
    ("popbatch.sender.Sender", "_send_row", "per row, on the workers", None),
    (
        "popbatch.ratelimit.RateLimiter",
        "acquire",
        "rate limiter",
        "per row, on the workers",
    ),
    (
        "popbatch.sender.Recorder",
        "commit",
        "wait for the intent's commit",
        "per row, on the workers",
    ),
    ("popbatch.client.PopClient", "send", "PopClient.send", "per row, on the workers"),
    (
        "popbatch.client.PopClient",
        "_exchange",
        "HTTP exchange (requests + server)",
        "PopClient.send",
    ),
    ("popbatch.sender", "decide", "retry decision", "per row, on the workers"),
    (
        "popbatch.sender.Recorder",
        "post",
        "queue the outcome",
        "per row, on the workers",
    ),
    ("popbatch.sender", "_log_outcome", "outcome log line", "per row, on the workers"),
    ("popbatch.sender.Sender", "_report", "progress hook", "per row, on the workers"),
    ("popbatch.journal.Journal", "apply", "journal commits (recorder thread)", None),
)


class Clock:
    """Total seconds and calls per phase, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, phase: str, seconds: float) -> None:
        """Count one call of ``phase`` that took ``seconds``."""
        with self._lock:
            self.seconds[phase] += seconds
            self.calls[phase] += 1


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            owner: Any = __import__(module_name, fromlist=["_"])
        except ImportError:
            continue
        for name in parts[cut:]:
            owner = getattr(owner, name)
        return owner
    raise ImportError(dotted)


def install_phase_clocks(clock: Clock) -> list[str]:
    """Wrap every phase's function so that each call is timed.

    Returns the phases whose function was not found (popbatch changed since
    PHASES was written); they read as zero, and the summary names them.
    """
    missing = []
    for dotted, attribute, phase, _ in PHASES:
        try:
            owner = _resolve(dotted)
            original = getattr(owner, attribute)
        except (ImportError, AttributeError):
            missing.append(f"{phase} ({dotted}.{attribute})")
            continue

        def wrapper_for(function: Callable[..., Any], name: str) -> Callable[..., Any]:
            @functools.wraps(function)
            def timed(*args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    clock.add(name, time.perf_counter() - began)

            return timed

        setattr(owner, attribute, wrapper_for(original, phase))

    return missing


@contextmanager
def profile_threads(profiles: dict[str, cProfile.Profile]) -> Iterator[None]:
    """Profile the calling thread and every thread started meanwhile."""
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles[thread.name] = profile
        profile.enable()
        try:
            original_run(thread)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile()
    profiles["main"] = main
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.Thread.run = original_run  # type: ignore[method-assign]


def run_popbatch(arguments: list[str]) -> int:
    """Run popbatch's command line in this process; its exit code."""
    from popbatch.cli import main

    try:
        main.main(args=arguments, prog_name="popbatch")
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def phase_report(clock: Clock, run_s: float, import_s: float) -> dict[str, Any]:
    """The phases as rows of (name, seconds, calls), with each parent's remainder."""
    parents = {phase: parent for _, _, phase, parent in PHASES}
    rows = []
    for _, _, phase, parent in PHASES:
        seconds = clock.seconds.get(phase, 0.0)
        rows.append(
            {
                "phase": phase,
                "parent": parent,
                "seconds": seconds,
                "calls": clock.calls.get(phase, 0),
            }
        )
        children = [name for name, above in parents.items() if above == phase]
        if children:
            rest = seconds - sum(clock.seconds.get(name, 0.0) for name in children)
            rows.append(
                {
                    "phase": f"{phase}: other",
                    "parent": phase,
                    "seconds": rest,
                    "calls": clock.calls.get(phase, 0),
                }
            )

    return {"run_s": run_s, "import_s": import_s, "phases": rows}


THREADS = (
    ("main", "main thread: read, validate, plan, report, write"),
    ("popbatch-worker", "worker threads: send the rows"),
    ("popbatch-journal", "journal recorder thread"),
)


def cprofile_report(
    profiles: dict[str, cProfile.Profile], top: int, dump: Path | None
) -> dict[str, Any]:
    """The functions with the most own time, for each kind of thread."""
    report: dict[str, Any] = {}
    everything: pstats.Stats | None = None
    for prefix, _ in THREADS:
        chosen = [p for name, p in profiles.items() if name.startswith(prefix)]
        if not chosen:
            report[prefix] = []
            continue
        stats = pstats.Stats(chosen[0])
        for extra in chosen[1:]:
            stats.add(extra)
        if everything is None:
            everything = pstats.Stats(chosen[0])
            for extra in chosen[1:]:
                everything.add(extra)
        else:
            everything.add(stats)
        entries = [
            {
                "function": _short(path, line, name),
                "calls": calls,
                "own_s": own,
                "cumulative_s": cumulative,
            }
            for (path, line, name), (
                _,
                calls,
                own,
                cumulative,
                _,
            ) in stats.stats.items()  # type: ignore[attr-defined]
        ]
        entries.sort(key=lambda entry: entry["own_s"], reverse=True)
        report[prefix] = entries[:top]
    if dump is not None and everything is not None:
        everything.dump_stats(dump)

    return report


def _short(path: str, line: int, name: str) -> str:
    """``popbatch/sender.py:230(_send_row)`` rather than the whole path."""
    if path == "~":
        return name
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        root = str(Path(__file__).resolve().parent.parent) + os.sep
        path = path.removeprefix(root)
    return f"{path}:{line}({name})"


def main() -> int:
    """Run popbatch once under the chosen instrument and print what it found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["phases", "cprofile"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concurrency", default="1")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--pstats", type=Path, help="write the merged pstats here")
    parser.add_argument("--top", type=int, default=15)
    options = parser.parse_args()

    arguments = ["capture", str(options.file), "--endpoint", options.endpoint]
    arguments += ["--rate", "0", "--concurrency", options.concurrency, "--yes", "-q"]
    arguments += ["--journal", str(options.journal), "--out", str(options.out)]

    # popbatch's own modules are imported here, outside the measured run.
    import popbatch.cli
    import popbatch.pipeline  # noqa: F401  (imported lazily by the CLI)

    import_s = time.perf_counter() - STARTED
    clock = Clock()
    missing: list[str] = []
    profiles: dict[str, cProfile.Profile] = {}
    began = time.perf_counter()
    if options.mode == "phases":
        missing = install_phase_clocks(clock)
        code = run_popbatch(arguments)
    else:
        with profile_threads(profiles):
            code = run_popbatch(arguments)
    run_s = time.perf_counter() - began

    if options.mode == "phases":
        figures = phase_report(clock, run_s, import_s)
        figures["missing"] = missing
        for name in missing:
            print(f"not found, reads as zero: {name}")
        print(f"start-up and imports {import_s:7.2f} s")
        print(f"run (exit {code})       {run_s:7.2f} s")
        for row in figures["phases"]:
            indent = "  " if row["parent"] else ""
            print(
                f"{indent}{row['phase']:<50} {row['seconds']:7.2f} s {row['calls']:>8,} calls"
            )
    else:
        figures = cprofile_report(profiles, options.top, options.pstats)
        figures.update(run_s=run_s, import_s=import_s)
        for key, title in THREADS:
            print(f"{title} (own time, cumulative time, calls)")
            for entry in figures[key]:
                print(
                    f"  {entry['own_s']:7.2f} s {entry['cumulative_s']:7.2f} s "
                    f"{entry['calls']:>8,}  {entry['function']}"
                )
    figures["exit_code"] = code
    if options.json is not None:
        options.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
