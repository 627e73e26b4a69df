"""Looking after batches in the journal: status, rebuilt results, settled rows.

``popbatch status`` lists batches and their rows per result group, ``popbatch
report`` rebuilds a results folder from the journal alone, and ``popbatch
resolve`` settles a Review row once a person has checked it in the
merchant portal (the journal keeps who, when and why).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from popbatch.config import current_user
from popbatch.errors import (
    ExitCode,
    InputUnreadableError,
    UsageError,
    combine_exit_codes,
)
from popbatch.io.writers import results_folder_name, write_results
from popbatch.journal import Journal, JournalLock
from popbatch.report import build_report, reporting_run
from popbatch.rows import GROUP_ORDER, BatchRecord, Group, RowRecord, RowState, group_of

# Skipped rows that need a person: a refund refused as a repeat, as more
# than popbatch captured or after a full cancel, and a row that asks for
# something else than what an earlier batch did. "Already done" needs nobody.
NEEDS_A_PERSON = frozenset(
    {
        "repeat_refund",
        "refund_exceeds_capture",
        "already_done_differs",
        "nothing_left_to_refund",
    }
)


def batch_exit_code(rows: Iterable[RowRecord], stopped: ExitCode | None) -> ExitCode:
    """DESIGN.md's exit code for a batch: the first of 130/143, 78, 75, 3, 1.

    Besides Failed and Rejected rows, a Skipped row refused by a rule that
    needs a person's decision counts as failed (exit 1), so that cron,
    which hears only of runs that do not exit 0, reports it.
    """
    codes = [stopped] if stopped is not None else []
    groups = set()
    refused = False
    for row in rows:
        group = row.group
        groups.add(group)
        if group is Group.SKIPPED and not refused:
            refused = any(problem.reason in NEEDS_A_PERSON for problem in row.problems)
    if Group.PENDING in groups:
        codes.append(ExitCode.TRY_AGAIN_LATER)
    if Group.REVIEW in groups:
        codes.append(ExitCode.REVIEW)
    if Group.FAILED in groups or Group.REJECTED in groups or refused:
        codes.append(ExitCode.ROWS_FAILED)

    return combine_exit_codes(codes)


def _require_journal(path: Path) -> None:
    if not path.exists():
        raise UsageError(
            f"there is no journal at {str(path)!r}",
            hint="Give the one the runs used with --journal or POPBATCH_JOURNAL.",
        )


def _open_existing(path: Path) -> Journal:
    _require_journal(path)
    return Journal.open(path)


def status_lines(journal_path: Path, batch_id: int | None) -> list[str]:
    """Lines describing every batch, or one batch in detail."""
    journal = _open_existing(journal_path)
    try:
        if batch_id is None:
            batches = journal.list_batches()
            if not batches:
                return [f"no batches in {journal_path}"]
            return [
                _batch_line(batch, _group_counts(journal, batch)) for batch in batches
            ]
        return _batch_detail(journal, journal.get_batch(batch_id))
    finally:
        journal.close()


def _group_counts(journal: Journal, batch: BatchRecord) -> dict[Group, int]:
    """How many rows of the batch are in each result group, as the results say.

    A state maps to its group as the report maps it (``rows.group_of``); a
    resolved row lands where the person put it, so those few are read.
    """
    counts = dict.fromkeys(GROUP_ORDER, 0)
    for state, count in journal.counts(batch.id).items():
        if state is not RowState.RESOLVED:
            counts[group_of(state)] += count
    for row in journal.rows(batch.id, states=(RowState.RESOLVED,)):
        counts[row.group] += 1
    return counts


def _counts_text(counts: dict[Group, int]) -> str:
    parts = [f"{group} {counts[group]:,}" for group in GROUP_ORDER if counts[group]]
    return ", ".join(parts) or "no rows"


def _batch_line(batch: BatchRecord, counts: dict[Group, int]) -> str:
    mode = "LIVE" if batch.live else "test"
    if batch.finished_at is not None:
        done = f"finished exit {batch.exit_code}"
    else:
        done = "open"
    return (
        f"batch {batch.id}  {batch.created_at.isoformat(timespec='seconds')}  "
        f"{batch.operation} {mode}  {Path(batch.input_path).name}  {done}  "
        f"({_counts_text(counts)})"
    )


def _batch_detail(journal: Journal, batch: BatchRecord) -> list[str]:
    counts = _group_counts(journal, batch)
    lines = [
        f"batch {batch.id}: {batch.operation}, {'LIVE' if batch.live else 'test'}, "
        f"{batch.endpoint}",
        f"input: {batch.input_path} (sha256 {batch.input_sha256})",
        f"rows: {_counts_text(counts)}",
    ]
    for run in journal.runs(batch.id):
        finished = (
            run.finished_at.isoformat(timespec="seconds") if run.finished_at else "-"
        )
        exit_code = "-" if run.exit_code is None else str(run.exit_code)
        lines.append(
            f"run {run.id}: {run.started_at.isoformat(timespec='seconds')} to {finished} "
            f"by {run.user}@{run.host}, popbatch {run.version}, exit {exit_code}"
        )
    listed: dict[str, list[str]] = {}
    for row in journal.rows(batch.id, states=_LISTED):
        if row.state is RowState.PENDING and not row.problems:
            continue  # not sent yet: the counts say how many
        kind, text = _row_line(row)
        listed.setdefault(kind, []).append(text)
    for kind in ("Review", "Held", "Resolved"):
        texts = listed.get(kind, [])
        lines += texts[:ROWS_LISTED]
        if len(texts) > ROWS_LISTED:
            lines.append(
                f"{kind}: {len(texts) - ROWS_LISTED:,} more (popbatch report "
                f"{batch.id} writes them all to the results)"
            )

    return lines


# How many rows of each kind ``popbatch status BATCH`` names one by one.
ROWS_LISTED = 20


# The rows ``popbatch status BATCH`` names one by one: those a person may
# have to act on, and those a person settled.
_LISTED = (
    RowState.UNKNOWN,
    RowState.IN_FLIGHT,
    RowState.PENDING,
    RowState.RESOLVED,
)


def _row_line(row: RowRecord) -> tuple[str, str]:
    """The kind of a listed row (Review, Held, Resolved) and its line."""
    where = f"row {row.row} order_id {row.order_id}"
    if row.state is RowState.RESOLVED and row.resolution is not None:
        settled = row.resolution
        return "Resolved", (
            f"Resolved: {where}: {settled.outcome} by {settled.by} at "
            f"{settled.at.isoformat(timespec='seconds')}: {settled.note}"
        )
    if row.state is RowState.PENDING:
        return "Held", f"Held: {where}: {row.problems[0].message}"
    if row.state is RowState.IN_FLIGHT:
        return "Review", (
            f"Review: {where}: in flight, no answer recorded (a run is sending it, "
            "or stopped while it was out)"
        )
    detail = row.outcome.detail if row.outcome else "no answer recorded"
    return "Review", f"Review: {where}: {detail}"


def rebuild_results(
    journal_path: Path, batch_id: int, out_dir: Path, *, csv_encoding: str
) -> Path:
    """Write the results folder of a batch again, from the journal alone."""
    journal = _open_existing(journal_path)
    try:
        batch = journal.get_batch(batch_id)
        runs = journal.runs(batch_id)
        if not runs:
            raise UsageError(f"batch {batch_id} has never run: there are no results")
        rows = journal.rows(batch_id)
        events = journal.events(batch_id)
    finally:
        journal.close()

    # A run killed before its end recorded no exit code: the batch's rows
    # say what it would have been.
    last = runs[-1]
    exit_code = (
        ExitCode(last.exit_code)
        if last.exit_code is not None
        else batch_exit_code(rows, None)
    )
    report = build_report(
        batch, reporting_run(runs, rows), rows, exit_code=exit_code, events=events
    )
    return write_results(
        report,
        out_dir / results_folder_name(batch),
        csv_encoding=csv_encoding,
        journal=journal_path,
    )


def resolve_rows(
    journal_path: Path,
    batch_id: int,
    *,
    order_id: str | None,
    outcome: str | None,
    note: str | None,
    from_file: Path | None,
) -> list[str]:
    """Settle Review rows: one given on the command line, or a file of them.

    The file is CSV with the columns order_id, outcome (succeeded or failed)
    and note. Every row is settled, or none: one that cannot be (not in
    Review, say) stops the command before anything is recorded.
    """
    if from_file is not None and (order_id or outcome or note):
        raise UsageError(
            "give ORDER_ID with --succeeded or --failed and --note, or --file, not both"
        )
    if from_file is not None:
        entries = _resolutions_from_file(from_file)
    elif order_id is not None and outcome is not None and note is not None:
        entries = [Entry(None, order_id, outcome, note)]
    else:
        raise UsageError(
            "give ORDER_ID with --succeeded or --failed and --note, or --file"
        )

    who = current_user()
    _require_journal(journal_path)
    with JournalLock(journal_path):
        journal = Journal.open(journal_path)
        try:
            batch = journal.get_batch(batch_id)
            with journal.transaction():
                return [
                    _resolve_one(journal, batch, entry, who, from_file)
                    for entry in entries
                ]
        finally:
            journal.close()


@dataclass(frozen=True, slots=True)
class Entry:
    """One resolution asked for: from the command line, or a line of a file."""

    line: int | None  # the line of the resolutions file, if from one
    order_id: str
    outcome: str  # "succeeded" or "failed"
    note: str


def _resolve_one(
    journal: Journal, batch: BatchRecord, entry: Entry, who: str, source: Path | None
) -> str:
    state = RowState.SUCCEEDED if entry.outcome == "succeeded" else RowState.FAILED
    try:
        row = journal.resolve(
            batch.id,
            entry.order_id,
            outcome=state,
            note=entry.note,
            by=who,
            at=datetime.now().astimezone(),
        )
    except UsageError as error:
        if source is None or entry.line is None:
            raise
        raise UsageError(
            f"{source.name} row {entry.line}: {error.message}; nothing was resolved",
            hint=error.hint,
        ) from None

    settled = f"batch {batch.id} row {row.row} order_id {entry.order_id}: resolved as"
    if state is RowState.SUCCEEDED:
        return f"{settled} succeeded by {who}"
    return (
        f"{settled} failed by {who}; running the same command on "
        f"{Path(batch.input_path).name} again sends it"
    )


def _header_key(cell: str) -> str:
    """A header cell as looked up: trimmed (BOM, NBSP, U+3000), lower case."""
    return unicodedata.normalize("NFKC", cell).strip(" \ufeff").lower()


# A resolutions file's headers, and the outcomes it may give, in the words
# a back office uses.
_RESOLUTION_HEADERS = {
    "order_id": "order_id",
    "order id": "order_id",
    "注文番号": "order_id",
    "注文id": "order_id",
    "オーダーid": "order_id",
    "取引id": "order_id",
    "outcome": "outcome",
    "result": "outcome",
    "結果": "outcome",
    "note": "note",
    "notes": "note",
    "memo": "note",
    "備考": "note",
    "メモ": "note",
}
_OUTCOME_WORDS = {
    "succeeded": "succeeded",
    "success": "succeeded",
    "成功": "succeeded",
    "failed": "failed",
    "failure": "failed",
    "失敗": "failed",
}


def _resolutions_from_file(path: Path) -> list[Entry]:
    """Read a resolutions file: UTF-8 (with or without BOM) or CP932.

    Headers may be written as ``order_id``, ``outcome`` and ``note`` or as
    their Japanese names (注文番号, 結果, 備考 ...), and an outcome as
    succeeded/failed or 成功/失敗.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputUnreadableError(
            f"cannot read {str(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp932")
        except UnicodeDecodeError:
            raise InputUnreadableError(
                f"cannot read {str(path)!r}: it is neither UTF-8 nor CP932 text",
                hint="Save it as CSV UTF-8 with the columns order_id, outcome and "
                "note.",
            ) from None

    entries: list[Entry] = []
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    names = [_RESOLUTION_HEADERS.get(_header_key(cell), "") for cell in header]
    for name in ("order_id", "outcome", "note"):
        headed = [
            cell.strip()
            for cell, found in zip(header, names, strict=True)
            if found == name
        ]
        if len(headed) > 1:
            raise UsageError(
                f"{path.name} has {len(headed)} columns for {name} "
                f"({', '.join(headed)}); nothing was resolved",
                hint="Keep one of them.",
            )
    missing = {"order_id", "outcome", "note"} - set(names)
    if missing:
        raise UsageError(
            f"{path.name} needs the columns order_id, outcome and note "
            f"(missing: {', '.join(sorted(missing))})"
        )
    where = {name: names.index(name) for name in ("order_id", "outcome", "note")}
    for line, cells in enumerate(rows, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        record = {
            name: cells[at] if at < len(cells) else "" for name, at in where.items()
        }
        given = record["outcome"].strip()
        result = _OUTCOME_WORDS.get(given.lower())
        if result is None:
            raise UsageError(
                f"{path.name} row {line}: outcome must be succeeded or failed "
                f"(成功 or 失敗), got {given!r}"
            )
        note = record["note"].strip()
        if not note:
            raise UsageError(f"{path.name} row {line}: a note is required")
        entries.append(Entry(line, record["order_id"].strip(), result, note))

    if not entries:
        raise UsageError(f"{path.name} has no rows to resolve")
    lines: dict[str, list[int]] = {}
    for entry in entries:
        lines.setdefault(entry.order_id, []).append(entry.line or 0)
    twice = {order_id: at for order_id, at in lines.items() if len(at) > 1}
    if twice:
        order_id, at = next(iter(twice.items()))
        raise UsageError(
            f"{path.name} names order_id {order_id!r} on rows "
            f"{', '.join(str(row) for row in at)}; each order is resolved once, "
            "so nothing was resolved",
            hint="Keep the line that says what the merchant portal shows.",
        )
    return entries
