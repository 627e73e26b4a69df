"""The table on the terminal and BENCHMARKS.md, from the figures of a run."""

from __future__ import annotations

from typing import Any

from core import Bench, Figure, Sizes

# What each scenario measured and how; printed above its notes.
METHODS = {
    "a": (
        "Scenario a: the same CSV (order_id, amount, a memo) captured by `popbatch "
        "capture --rate 0 --concurrency 1` with a fresh journal on a disk, by "
        "`benchmarks/plain_loop.py` (pandas reads the file, one requests.Session "
        "posts row by row, the result codes go to a CSV), and by popbatch with its "
        "journal on a tmpfs (for f). Each run is a whole process, start-up "
        "included, timed from the outside; the sandbox answers at once. The "
        "ratio is taken in each round, then the median of the rounds."
    ),
    "b": (
        "Scenario b: the sandbox answers every request after 20 ms. popbatch "
        "`--concurrency 8 --rate 0` and `benchmarks/plain_pool.py` (8 threads, a "
        "Session each) capture the same rows, timed end to end. The plain loop's "
        "rate is steady after its first rows, so it runs on fewer rows and its "
        "throughput is its rate while sending (from the sandbox's arrival times, "
        "its start-up left out): this favours the loop, so the ratio is, if "
        "anything, low."
    ),
    "c": (
        "Scenario c: request starts are the arrival times the sandbox records "
        "(its `/_sandbox/requests`), so the client's own clock plays no part. "
        "The achieved rate is (requests - 1) / (last arrival - first arrival). "
        "The two settings run one after the other. To explain the figures, "
        "popbatch's own clock is read from each run's journal: when the rate "
        "limiter let each row go (`first_sent_at`) and when its request left "
        "(the outcome's `sent_at`); the intent's commit lies between."
    ),
    "d": (
        "Scenario d: `popbatch validate capture FILE` on generated files with one "
        "row in 200 invalid (an order id holding `!`); exit 65 and the counts in "
        "its message are checked. Peak memory is the child's own maximum "
        "resident set, from `os.wait4`."
    ),
    "e": (
        "Scenario e: `benchmarks/results_ratio.py` takes the journal records of "
        "a 100,000-row batch and the raw writer from `benchmarks/results_write.py` "
        "(the results engineer's) and times, alternating in one process, "
        "popbatch's `write_results` (workbook, CSV twins, retry file, "
        "summary.json) and xlsxwriter alone writing the same cells to the same "
        "sheets with the same formats. write_results pauses the garbage "
        "collector while it writes, so xlsxwriter alone runs with it paused "
        "too (like for like; with `--full`, also with it on). A write of 300 "
        "rows warms each up first."
    ),
    "f": (
        "Scenario f, two ways. First, scenario a's runs include a third side, "
        "popbatch with its journal on a tmpfs, where a commit costs no fsync: "
        "the difference to the journal on disk is what durability costs. "
        "Second, the profile of scenario a times how long the worker waits for "
        "each intent's commit, which is the journal's cost on the critical "
        "path (commits of outcomes run on the recorder thread meanwhile)."
    ),
}

# For the biggest costs of the profile: whose cost it is, and what to do.
FINDINGS = {
    "HTTP exchange (requests + server)": (
        "Shared with the plain loop: the sandbox's work, loopback, and "
        "requests/urllib3 building and parsing HTTP. PopClient already sends "
        "through the adapter with headers prepared once per endpoint; nothing "
        "of popbatch's own to take out here."
    ),
    "wait for the intent's commit": (
        "popbatch's own, and the price of the journal's promise that an "
        "intent is durable (an fsync) before its request leaves. The sender "
        "already folds a row's outcome into the next intent's commit, so it "
        "is one fsync a row at concurrency 1; at concurrency 8 an intent that "
        "arrives during a commit waits for that one and then its own (see b). "
        "Proposed (sender.py): commit a worker's next intent while its current "
        "request is in flight, so that the fsync overlaps the exchange instead "
        "of following it; the cost is that a crash can leave one never-sent "
        "row per worker in Review. Not proposed: synchronous=NORMAL, which "
        "loses the last intents on power loss, the double charge the journal "
        "exists to prevent."
    ),
    "start-up and imports": (
        "Imports: pandas (the plain loop imports it too), pandera, requests, "
        "xlsxwriter and popbatch's own modules; a fixed cost of every run, "
        "not a cost a row. pandera is needed by every run that validates, so "
        "importing it lazily would save nothing there."
    ),
    "interpreter start and exit": (
        "Python starting, and tearing down the modules above at exit; the "
        "plain loop pays most of it too."
    ),
    "write the results folder": (
        "results.xlsx through xlsxwriter, plus the CSV twins and summary.json: "
        "the plain loop writes a 3-column CSV instead. Scenario e compares it "
        "with xlsxwriter alone; the workbook is the feature, so no change is "
        "proposed here."
    ),
    "validate the rows": "pandera's lazy validation and the reading rules (issue 4).",
    "PopClient.send: other": (
        "popbatch's own: building the request, classifying the answer and "
        "keeping its evidence. Done: the popbatch logger's level is the lowest "
        "level among its handlers (popbatch/cli/output.py), so the debug lines "
        "of popbatch/client/ are no longer built when no handler prints them."
    ),
    "outcome log line": (
        "popbatch's own: one INFO record a row; built only when -v or "
        "--log-file asks for it, for the same reason."
    ),
    "queue the outcome": (
        "popbatch's own: handing each outcome to the recorder thread wakes it, "
        "then the next intent wakes it again. Proposed (sender.py): keep the "
        "outcome in the worker and hand it over with the next intent (or at "
        "the end), one hand-over and one wake-up a row."
    ),
}


def text_table(figures: list[Figure]) -> str:
    """The figures as a plain-text table for the terminal."""
    header = ("scenario", "measured", "target", "", "what")
    rows = [
        (
            f.scenario,
            f.text,
            f.target,
            f.status.upper() if f.met is False or not f.measured else f.status,
            f.measure,
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]))

    return "\n".join(lines)


def markdown(bench: Bench, context: dict[str, Any]) -> str:
    """BENCHMARKS.md: machine, sizes, the table, methods, profile, misses."""
    about = context["machine"]
    started = context["started"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`{context['command']}`) on "
        f"{started:%Y-%m-%d %H:%M %Z}, at commit `{about['commit']}` "
        f"(popbatch/ {about['tree']}). The whole run took "
        f"{context['seconds'] / 60:.1f} minutes, in which its processes (the "
        f"sandboxes included) used {context['cpu_seconds'] / 60:.1f} minutes of CPU.",
        "",
        "Each figure is the median of the runs listed beside it; ratios are "
        "taken within a round in which the sides ran one after the other, the "
        "first side changing every round. The machine was shared with other "
        "work (its load average is below), so treat the figures as ratios and "
        "orders of magnitude, not promises.",
        "",
        "## Machine",
        "",
        f"- CPU: {about['cpu']}, {about['cores']} cores; RAM {about['ram']}",
        f"- OS: {about['os']}",
        f"- Python {about['python']}; {about['libraries']}",
        f"- journals and outputs on {context['disk']}; scenario f's in-memory "
        f"journal on {context['tmpfs']}",
        "- load average (1 min) after each scenario: "
        + "; ".join(
            f"{title} {value} ({took:.0f} s)" for title, value, took in context["loads"]
        ),
        "",
        "## Sizes",
        "",
        *_sizes(bench.sizes, context["full"]),
        "",
        "## Figures",
        "",
        "| scenario | what | measured | target | | runs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in bench.figures:
        status = f.status if f.met is not False and f.measured else f"**{f.status}**"
        lines.append(
            f"| {f.scenario} | {f.measure} | {f.text} | {f.target} | {status} | {f.runs} |"
        )
    lines += ["", "## Targets missed, and what limits them", ""]
    missed = [f for f in bench.figures if f.met is False]
    if not missed:
        lines.append("None: every target measured was met.")
    for f in missed:
        lines.append(
            f"- **{f.scenario}**, {f.measure}: {f.text} (target {f.target}). {f.limit}"
        )
    absent = [f for f in bench.figures if not f.measured]
    if absent:
        lines += ["", "## Not measured", ""]
        lines += [f"- **{f.scenario}**: {f.limit}" for f in absent]
    lines += ["", "## How each figure was measured", ""]
    for key in ("a", "b", "c", "d", "e", "f"):
        lines += [METHODS[key], ""]
        lines += [
            f"- {line}" if not line.startswith("```") else line
            for line in bench.notes.get(key, [])
        ]
        if bench.notes.get(key):
            lines.append("")
    lines += _profile(bench)

    return "\n".join(lines).rstrip() + "\n"


def _sizes(sizes: Sizes, full: bool) -> list[str]:
    chosen = (
        "These are issue 8's sizes (`--full`)."
        if full
        else "`make bench` must finish within 10 minutes on this 2-core machine, so "
        "three sizes are smaller than issue 8's: scenario a captures "
        f"{sizes.capture_rows:,} rows instead of 20,000 (start-up weighs more on "
        "fewer rows, which counts against popbatch); the rate runs of c last "
        f"{sizes.rate_seconds:g} s instead of 30; the plain loop of b sends "
        f"{sizes.latency_loop_rows:,} rows (its sending rate is what is compared). "
        "`benchmarks/run.py --full` uses issue 8's sizes (about half an hour)."
    )
    return [
        chosen,
        "",
        f"a: {sizes.capture_rows:,} rows; b: {sizes.latency_rows:,} rows "
        f"(plain loop {sizes.latency_loop_rows:,}); c: {sizes.rate_seconds:g} s a "
        f"run; d: {sizes.csv_rows:,}-row CSV, {sizes.xlsx_rows:,}-row xlsx; e: "
        f"{sizes.results_rows:,} rows; profile: {sizes.profile_rows:,} rows "
        f"(cProfile {sizes.cprofile_rows:,}); "
        f"{sizes.repeat} runs of everything.",
    ]


def _profile(bench: Bench) -> list[str]:
    phases = bench.profile.get("phases")
    if not phases:
        return []
    rows = phases["rows"]
    leaves = critical_path(phases)
    whole = sum(seconds for _, seconds in leaves)
    lines = [
        "## Profile of scenario a",
        "",
        f"One `popbatch capture` of {rows:,} rows at concurrency 1, journal on "
        "disk, run in `benchmarks/profile_run.py` with a clock around each step "
        f"of a run and of a row. It took {phases['wall_s']:.2f} s as a process. "
        "The steps below add up to it; per-row steps run on the worker thread, "
        "whose wall time is the send phase.",
        "",
        "| step | seconds | share | a row |",
        "| --- | --- | --- | --- |",
    ]
    for name, seconds in sorted(leaves, key=lambda leaf: -leaf[1]):
        lines.append(
            f"| {name} | {seconds:.2f} | {seconds / whole:.1%} | "
            f"{seconds / rows * 1000:.3f} ms |"
        )
    if phases.get("missing"):
        lines += [
            "",
            "Steps not found in this popbatch (read as zero): "
            + "; ".join(phases["missing"])
            + ".",
        ]
    lines += ["", "### The five biggest costs", ""]
    for number, (name, seconds) in enumerate(
        sorted(leaves, key=lambda leaf: -leaf[1])[:5], 1
    ):
        finding = FINDINGS.get(name, "popbatch's own; no change proposed at this size.")
        lines.append(f"{number}. **{name}**, {seconds / whole:.0%}: {finding}")
    biggest = {name for name, _ in sorted(leaves, key=lambda leaf: -leaf[1])[:5]}
    smaller = [
        (name, seconds)
        for name, seconds in leaves
        if name not in biggest and name in FINDINGS and seconds > 0
    ]
    if smaller:
        lines += ["", "Smaller costs with a finding:", ""]
        lines += [
            f"- **{name}**, {seconds / rows * 1000:.3f} ms a row "
            f"({seconds / whole:.1%}): {FINDINGS[name]}"
            for name, seconds in sorted(smaller, key=lambda leaf: -leaf[1])
        ]
    journal = {row["phase"]: row for row in phases["phases"]}.get(
        "journal commits (recorder thread)"
    )
    if journal:
        lines += [
            "",
            f"Meanwhile the recorder thread made {journal['calls']:,} commits in "
            f"{journal['seconds']:.2f} s.",
        ]
    detail = bench.profile.get("cprofile")
    if detail:
        lines += [
            "",
            "### Functions with the most own time (cProfile)",
            "",
            f"A second run of {detail['rows']:,} rows, each thread under its own "
            "`cProfile.Profile`, merged per kind of thread. "
            "cProfile slows Python code more than waits, so these say which "
            "functions matter, not their shares. Waits show up as "
            "`acquire` (a lock: the main thread joining the workers, a worker "
            "waiting for its commit) and `get` (the recorder waiting for work).",
            "",
        ]
        for key, title in (
            ("main", "main thread"),
            ("popbatch-worker", "worker thread"),
            ("popbatch-journal", "journal recorder thread"),
        ):
            lines += [
                f"{title}:",
                "",
                "| own s | cumulative s | calls | function |",
                "| --- | --- | --- | --- |",
            ]
            for entry in detail.get(key, [])[:8]:
                lines.append(
                    f"| {entry['own_s']:.2f} | {entry['cumulative_s']:.2f} | "
                    f"{entry['calls']:,} | `{entry['function']}` |"
                )
            lines.append("")

    return lines


def critical_path(phases: dict[str, Any]) -> list[tuple[str, float]]:
    """The profile's steps that add up to the run: leaves, and each remainder."""
    seconds = {row["phase"]: row["seconds"] for row in phases["phases"]}
    main_steps = [
        "read the input file",
        "validate the rows",
        "plan the batch into the journal",
        "build the report",
        "write the results folder",
    ]
    row_steps = [
        "rate limiter",
        "wait for the intent's commit",
        "HTTP exchange (requests + server)",
        "PopClient.send: other",
        "retry decision",
        "queue the outcome",
        "outcome log line",
        "progress hook",
        "per row, on the workers: other",
    ]
    send = seconds.get("send (worker pool)", 0.0)
    per_row = seconds.get("per row, on the workers", 0.0)
    leaves = [("start-up and imports", phases["import_s"])]
    leaves += [(name, seconds.get(name, 0.0)) for name in main_steps + row_steps]
    leaves.append(("worker pool: start, join, last commit", send - per_row))
    main_other = (
        phases["run_s"] - send - sum(seconds.get(name, 0.0) for name in main_steps)
    )
    leaves.append(("main thread: other (journal reads, summary)", main_other))
    leaves.append(
        (
            "interpreter start and exit",
            phases["wall_s"] - phases["run_s"] - phases["import_s"],
        )
    )

    return leaves
