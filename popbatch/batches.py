"""Looking after batches in the journal: status, rebuilt results, settled rows.

``popbatch status`` lists batches and their rows per state, ``popbatch
report`` rebuilds a results folder from the journal alone, and ``popbatch
resolve`` settles a Review row once a person has checked it in the
merchant portal (the journal keeps who, when and why).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from popbatch.config import current_user
from popbatch.errors import ExitCode, InputUnreadableError, UsageError
from popbatch.io.writers import results_folder_name, write_results
from popbatch.journal import Journal, JournalLock
from popbatch.report import build_report
from popbatch.rows import BatchRecord, RowState

_STATE_ORDER = (
    RowState.SUCCEEDED,
    RowState.FAILED,
    RowState.UNKNOWN,
    RowState.IN_FLIGHT,
    RowState.RESOLVED,
    RowState.PLANNED,
    RowState.PENDING,
    RowState.SKIPPED,
    RowState.REJECTED,
)


def _open_existing(path: Path) -> Journal:
    if not path.exists():
        raise UsageError(
            f"there is no journal at {str(path)!r}",
            hint="Give the one the runs used with --journal or POPBATCH_JOURNAL.",
        )
    return Journal.open(path)


def status_lines(journal_path: Path, batch_id: int | None) -> list[str]:
    """Lines describing every batch, or one batch in detail."""
    journal = _open_existing(journal_path)
    try:
        if batch_id is None:
            batches = journal.list_batches()
            if not batches:
                return [f"no batches in {journal_path}"]
            return [_batch_line(batch, journal.counts(batch.id)) for batch in batches]
        return _batch_detail(journal, journal.get_batch(batch_id))
    finally:
        journal.close()


def _counts_text(counts: dict[RowState, int]) -> str:
    parts = [
        f"{state.value} {counts[state]:,}"
        for state in _STATE_ORDER
        if counts.get(state)
    ]
    return ", ".join(parts) or "no rows"


def _batch_line(batch: BatchRecord, counts: dict[RowState, int]) -> str:
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
    counts = journal.counts(batch.id)
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
    review = journal.rows(batch.id, states=(RowState.UNKNOWN, RowState.IN_FLIGHT))
    for row in review:
        detail = row.outcome.detail if row.outcome else "no answer recorded"
        lines.append(f"Review: row {row.row} order_id {row.order_id}: {detail}")

    return lines


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
    finally:
        journal.close()

    run = runs[-1]
    exit_code = (
        ExitCode(run.exit_code)
        if run.exit_code is not None
        else ExitCode.TRY_AGAIN_LATER
    )
    report = build_report(batch, run, rows, exit_code=exit_code)
    return write_results(
        report, out_dir / results_folder_name(batch), csv_encoding=csv_encoding
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
    and note.
    """
    entries = _resolutions_from_file(from_file) if from_file else []
    if order_id is not None and outcome is not None and note:
        entries.append((order_id, outcome, note))

    who = current_user()
    lines = []
    with JournalLock(journal_path):
        journal = _open_existing(journal_path)
        try:
            for order, result, why in entries:
                state = RowState.SUCCEEDED if result == "succeeded" else RowState.FAILED
                row = journal.resolve(
                    batch_id,
                    order,
                    outcome=state,
                    note=why,
                    by=who,
                    at=datetime.now().astimezone(),
                )
                lines.append(
                    f"batch {batch_id} row {row.row} order_id {order}: resolved as "
                    f"{result} by {who}"
                )
        finally:
            journal.close()

    return lines


def _resolutions_from_file(path: Path) -> list[tuple[str, str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputUnreadableError(f"cannot read {str(path)!r}: {exc}") from None

    entries = []
    reader = csv.DictReader(io.StringIO(text))
    missing = {"order_id", "outcome", "note"} - set(reader.fieldnames or ())
    if missing:
        raise UsageError(
            f"{path.name} needs the columns order_id, outcome and note "
            f"(missing: {', '.join(sorted(missing))})"
        )
    for line, record in enumerate(reader, start=2):
        result = (record["outcome"] or "").strip().lower()
        if result not in ("succeeded", "failed"):
            raise UsageError(
                f"{path.name} row {line}: outcome must be succeeded or failed, "
                f"got {record['outcome']!r}"
            )
        note = (record["note"] or "").strip()
        if not note:
            raise UsageError(f"{path.name} row {line}: a note is required")
        entries.append(((record["order_id"] or "").strip(), result, note))

    return entries
