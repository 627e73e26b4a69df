"""The flow of one run: read, validate, plan, send, record, report.

This is the one place where the journal, the worker pool, the rate limiter,
the client and the retry policy meet. It never prints or exits: it returns
values, raises PopbatchError, and reports progress through hooks.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from popbatch import __version__
from popbatch.batches import batch_exit_code
from popbatch.config import ReadOptions, RunOptions, ServerKey, current_user
from popbatch.errors import (
    ExitCode,
    InputRefusedError,
    OutputError,
    UsageError,
)
from popbatch.io.layout import changes_text
from popbatch.io.readers import read_input
from popbatch.io.writers import (
    CsvOut,
    check_results_folder,
    results_folder_name,
    write_results,
)
from popbatch.journal import Journal, JournalLock, RowUpdate, batch_key
from popbatch.operations import OPERATIONS, Operation
from popbatch.plan import check_control_totals, judge_row, plan_rows
from popbatch.report import (
    Report,
    build_report,
    journal_option,
    name_rows,
    reporting_run,
    rows_phrase,
    summary_lines,
)
from popbatch.rows import (
    BatchRecord,
    Outcome,
    Problem,
    RowRecord,
    RowState,
    RunRecord,
)
from popbatch.schema import Validation, validate
from popbatch.sender import Sender, StopSignal

logger = logging.getLogger(__name__)

__all__ = [
    "Confirmation",
    "RunHooks",
    "RunResult",
    "StopSignal",
    "operation_named",
    "read_and_validate",
    "refuse_invalid",
    "run_batch",
]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What a person approves before a live run: rows, total, full refunds."""

    operation: str
    rows: int
    total: int
    full_refunds: tuple[int, ...]  # spreadsheet rows of cancels without amount
    endpoint: str
    yes: bool
    new_journal: str | None = None  # the notice, when the journal holds no batches


@dataclass(slots=True)
class RunHooks:
    """Callbacks through which the CLI follows and steers a run."""

    confirm: Callable[[Confirmation], bool] | None = None
    notice: Callable[[str], None] | None = None
    confirm_resend: Callable[[int], bool] | None = None
    started: Callable[[int], None] | None = None
    row_done: Callable[[RowRecord, Outcome | None], None] | None = None


@dataclass(slots=True)
class RunResult:
    """What a run produced: the batch, its report and where the results are."""

    batch: BatchRecord
    report: Report
    results_folder: Path
    exit_code: ExitCode
    sent: int = 0
    lines: list[str] = field(default_factory=list)


def operation_named(name: str) -> Operation:
    """Return the operation called ``name``; UsageError when there is none."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise UsageError(
            f"unknown operation {name!r}",
            hint=f"Use one of: {', '.join(OPERATIONS)}.",
        ) from None


def read_and_validate(
    operation: Operation, path: Path, read: ReadOptions, *, live: bool
) -> Validation:
    """Read the input file and validate every row (nothing is sent)."""
    table = read_input(path, sheet=read.sheet, encoding=read.encoding)
    for note in table.notes:
        logger.info("input=%s %s", path.name, note)
    return validate(table, operation, live=live)


def refuse_invalid(validation: Validation) -> None:
    """Raise InputRefusedError when any row is invalid (exit 65)."""
    rejected = len(validation.rejected)
    if not rejected:
        return
    total = len(validation.table.cells)
    raise InputRefusedError(
        f"{validation.table.path.name}: {rejected:,} of {total:,} rows are invalid; "
        "nothing was sent",
        hint="Fix them (see the table above), or send the valid rows with "
        "--skip-invalid.",
    )


def run_batch(
    options: RunOptions,
    key: ServerKey,
    hooks: RunHooks,
    stop: StopSignal,
    *,
    validation: Validation | None = None,
) -> RunResult:
    """Run or resume the batch for ``options``, then write its results."""
    operation = operation_named(options.operation)
    if validation is None:
        validation = read_and_validate(
            operation, options.input_path, options.read, live=options.live
        )
    if not options.skip_invalid:
        refuse_invalid(validation)
    if options.journal_path is None:
        raise UsageError("a run needs a journal (--journal or POPBATCH_JOURNAL)")
    check_output_folder(options.out_dir)

    with _locked_journal(options.journal_path) as journal:
        new_journal = _announce_new_journal(journal, hooks)
        batch, created = _find_or_plan_batch(journal, operation, validation, options)
        folder = options.out_dir / results_folder_name(batch)
        check_results_folder(
            folder, batch, journal=journal.path, outcome="nothing was sent"
        )
        return _send_and_report(
            journal,
            batch,
            created,
            operation,
            options,
            key,
            hooks,
            stop,
            new_journal=new_journal,
        )


# Log records with this extra go to the --log-file alone: the terminal gets
# the same words as a line of their own (see cli.output).
FILE_ONLY = {"file_only": True}


def _announce_new_journal(journal: Journal, hooks: RunHooks) -> str | None:
    """Say so when the journal holds no batches: nothing is known as done.

    A typo in --journal, another user or another HOME (cron, sudo) lands on
    a journal of its own, where nothing is recognised as already done, so a
    file refunded before would be refunded again. Keyed on the journal's
    content, not on this run creating it: a first run that was refused
    (control totals, bad input) leaves the file, still without a batch, and
    the next run must hear it too. Returns the notice.
    """
    if journal.list_batches():
        return None
    text = (
        f"the journal {journal.path} holds no earlier batches: nothing can be "
        "recognised as already done"
    )
    logger.warning("%s", text, extra=FILE_ONLY)
    if hooks.notice is not None:
        hooks.notice(text)
    return text


def check_output_folder(out_dir: Path) -> None:
    """Make sure the results can be written before anything is sent (exit 73).

    The folder is created when missing (readable by the owner alone).
    Finding out only after the batch was sent would leave the results to be
    rebuilt with ``popbatch report``.
    """
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir, prefix=".popbatch-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError):
            reason = "it is a file, not a folder"
        raise OutputError(
            f"cannot write the results under {str(out_dir)!r}: {reason}; "
            "nothing was sent",
            hint="Check the folder and its permissions, or choose another with --out.",
        ) from None


@contextmanager
def _locked_journal(path: Path) -> Iterator[Journal]:
    with JournalLock(path) as lock:
        journal = Journal.open(lock.real_path)
        try:
            yield journal
        finally:
            journal.close()


def _key_of(operation: Operation, validation: Validation, options: RunOptions) -> str:
    table = validation.table
    return batch_key(
        operation.name,
        table.sha256,
        options.live,
        options.endpoint,
        read=(table.sheet or "", table.encoding or ""),
    )


def _find_or_plan_batch(
    journal: Journal, operation: Operation, validation: Validation, options: RunOptions
) -> tuple[BatchRecord, bool]:
    """Find the batch of this file and options, or plan a new one.

    Planning is one transaction: a crash leaves either the whole batch with
    every row, or nothing.
    """
    key = _key_of(operation, validation, options)
    batch = journal.find_batch(key)
    if batch is not None:
        logger.info("batch=%d resumed", batch.id)
        return batch, False

    rows = plan_rows(validation, live=options.live)
    _judge(journal, operation, options, rows, exclude_batch=None)
    check_control_totals(rows, options.totals)
    table = validation.table
    with journal.transaction():
        batch = journal.create_batch(
            key=key,
            operation=operation.name,
            input_path=str(table.path),
            input_sha256=table.sha256,
            input_kind=table.kind,
            encoding=table.encoding,
            delimiter=table.delimiter,
            sheet=table.sheet,
            headers=table.headers,
            columns=dict(validation.columns),
            live=options.live,
            endpoint=options.endpoint,
            options=options.request_options(),
            notices=tuple(table.notes) + tuple(validation.notices),
        )
        journal.add_rows(batch.id, rows)
    logger.info("batch=%d planned rows=%d", batch.id, len(rows))
    return batch, True


# The states of rows that the cross-batch rules decide at every run.
_JUDGED = (RowState.PLANNED, RowState.PENDING, RowState.SKIPPED)


def _judge(
    journal: Journal,
    operation: Operation,
    options: RunOptions,
    rows: list[RowRecord],
    *,
    exclude_batch: int | None,
) -> list[RowUpdate]:
    """Apply the rules across batches to the rows about to be sent.

    Skipped rows are judged again too: the rules may say otherwise now (an
    ``--allow-repeat`` given on this run, say). The rows are updated in
    place; the updates returned say which changed, for a batch already in
    the journal.
    """
    waiting = [row for row in rows if row.state in _JUDGED and row.order_id]
    history = journal.history(
        [row.order_id for row in waiting if row.order_id],
        live=options.live,
        endpoint=options.endpoint,
        exclude_batch=exclude_batch,
    )

    updates = []
    for row in waiting:
        assert row.order_id is not None
        verdict = judge_row(
            row,
            operation,
            history.get(row.order_id, []),
            allow_repeat=options.allow_repeat,
        )
        if verdict.state is row.state and verdict.problems == row.problems:
            continue
        row.state = verdict.state
        row.problems = verdict.problems
        if row.id is not None:
            updates.append(RowUpdate(row.id, verdict.state, problems=verdict.problems))

    return updates


def _send_and_report(
    journal: Journal,
    batch: BatchRecord,
    created: bool,
    operation: Operation,
    options: RunOptions,
    key: ServerKey,
    hooks: RunHooks,
    stop: StopSignal,
    *,
    new_journal: str | None = None,
) -> RunResult:
    lines: list[str] = []
    if not created:
        lines += _review_interrupted(journal, batch)
    # One transaction up to the live question: a live run that is not
    # confirmed leaves the journal as it was (Review rows that
    # --resend-unknown would plan again stay in Review) and records no run.
    with journal.transaction():
        if not created:
            lines += _prepare_resume(journal, batch, operation, options, hooks)
        rows = journal.rows(batch.id)
        to_send = [row for row in rows if row.state is RowState.PLANNED]
        if to_send and not created:
            # Checked at every run that sends: an earlier run may have planned
            # the batch and stopped before sending (not confirmed, refused),
            # and this run's figures may not be the first run's.
            check_control_totals(rows, options.totals)
        if to_send and options.live and hooks.confirm is not None:
            _confirm(hooks.confirm, operation, options, to_send, new_journal)
    if not created and not to_send and batch.finished_at is not None:
        lines.append(
            f"batch {batch.id} already finished on "
            f"{batch.finished_at.isoformat(timespec='seconds')}: nothing sent"
        )

    run = journal.start_run(
        RunRecord(
            batch_id=batch.id,
            started_at=datetime.now().astimezone(),
            user=current_user(),
            host=socket.gethostname(),
            version=__version__,
            options=options.request_options(),
        )
    )
    sender = Sender(
        journal,
        operation,
        options,
        key,
        stop,
        batch_id=batch.id,
        row_done=hooks.row_done,
    )
    if to_send:
        if hooks.started is not None:
            hooks.started(len(to_send))
        logger.info("batch=%d sending rows=%d", batch.id, len(to_send))
        sender.send(to_send)
    if stop.message:
        lines.append(stop.message)
    pending_note = sender.pending_note()
    if pending_note:
        lines.append(pending_note)

    final_rows = journal.rows(batch.id)
    exit_code = batch_exit_code(final_rows, stop.exit_code)
    finished = datetime.now().astimezone()
    if run.id is not None:
        journal.finish_run(run.id, exit_code=int(exit_code), finished_at=finished)
    open_rows = any(
        row.state in (RowState.PLANNED, RowState.PENDING) for row in final_rows
    )
    if not open_rows:
        # A run that sends nothing leaves the finish time as it was, so that
        # "already finished on" keeps naming when the rows were done.
        when = batch.finished_at if batch.finished_at and not sender.sent else finished
        journal.finish_batch(batch.id, exit_code=int(exit_code), finished_at=when)
    batch = journal.get_batch(batch.id)
    run = reporting_run(journal.runs(batch.id), final_rows)

    report = build_report(
        batch, run, final_rows, exit_code=exit_code, events=journal.events(batch.id)
    )
    folder = options.out_dir / results_folder_name(batch)
    write_results(
        report, folder, csv_encoding=options.csv_encoding, journal=journal.path
    )
    logger.info(
        "batch=%d done exit=%d sent=%d results=%s",
        batch.id,
        exit_code,
        sender.sent,
        folder,
    )
    lines += _rule_lines(journal, batch, final_rows)
    lines += summary_lines(report, folder=folder, journal=journal.path)
    return RunResult(batch, report, folder, exit_code, sent=sender.sent, lines=lines)


def _rule_lines(
    journal: Journal, batch: BatchRecord, rows: list[RowRecord]
) -> list[str]:
    """What the cross-batch rules decided, for the end of a run.

    The Skipped and Pending sheets give each row's reason; these lines make
    sure that a person sees, without opening them, the rows that were not
    sent because of an earlier batch, and what to do about them.
    """
    reasons: dict[str, list[RowRecord]] = {}
    for row in rows:
        if row.state in (RowState.SKIPPED, RowState.PENDING) and row.problems:
            reasons.setdefault(row.problems[0].reason, []).append(row)

    lines = []
    done = reasons.get("already_done", []) + reasons.get("already_cancelled", [])
    if done:
        lines.append(
            f"{_count(len(done), 'row')} {_were(len(done))} already done in an "
            "earlier batch: skipped, not sent again"
        )
    for reason, text in _SKIP_TEXTS.items():
        found = reasons.get(reason, [])
        if found:
            one = len(found) == 1
            lines.append(
                text.format(
                    count=_count(len(found), "row"),
                    rows=f"row{'' if one else 's'} {name_rows([r.row for r in found])}",
                    differ="differs" if one else "differ",
                    were=_were(len(found)),
                    them=_them(len(found)),
                    they="it" if one else "they",
                    are=_are(len(found)),
                )
            )
    cancelled = reasons.get("nothing_left_to_refund", [])
    if cancelled:
        lines.append(_cancelled_line(journal, batch, cancelled))
    held = reasons.get("order_in_review", [])
    if held:
        lines.append(_held_line(journal, batch, held))

    return lines


_SKIP_TEXTS = {
    "already_done_differs": (
        "{count} {differ} from what an earlier batch already did and {were} not "
        "sent ({rows}): see Skipped, and check which is right"
    ),
    "repeat_refund": (
        "{count} would repeat a refund that already succeeded (same order, same "
        "amount) and {were} not sent ({rows}): if this file was re-run or "
        "corrected, {they} {are} already done and there is nothing to do; only for "
        "a second, separate refund of the same amount, --allow-repeat sends {them}"
    ),
    "refund_exceeds_capture": (
        "{count} would refund more than popbatch captured for the order and "
        "{were} not sent ({rows}): see Skipped"
    ),
}


def _cancelled_line(journal: Journal, batch: BatchRecord, rows: list[RowRecord]) -> str:
    """The refunds not sent because an earlier batch fully cancelled the order."""
    history = journal.history(
        sorted({str(row.order_id) for row in rows}),
        live=batch.live,
        endpoint=batch.endpoint,
        exclude_batch=batch.id,
    )
    cancels = sorted(
        {
            entry.batch_id
            for entries in history.values()
            for entry in entries
            if entry.operation == "cancel"
            and entry.amount is None
            and entry.settled is RowState.SUCCEEDED
        }
    )
    one = len(rows) == 1
    where = ", ".join(str(number) for number in cancels)
    return (
        f"{_count(len(rows), 'refund')} {_were(len(rows))} not sent "
        f"(row{'' if one else 's'} {name_rows([row.row for row in rows])}): "
        f"{'the order was' if one else 'their orders were'} fully cancelled in "
        f"batch{'es' if len(cancels) > 1 else ''} {where}, so nothing is left to "
        "refund: see Skipped"
    )


def _held_line(journal: Journal, batch: BatchRecord, held: list[RowRecord]) -> str:
    """Which rows wait for which batch's Review rows, and what settles them."""
    order_ids = sorted({str(row.order_id) for row in held})
    history = journal.history(
        order_ids, live=batch.live, endpoint=batch.endpoint, exclude_batch=batch.id
    )
    waited = sorted(
        {
            entry.batch_id
            for entries in history.values()
            for entry in entries
            if entry.in_review
        }
    )
    listed = ", ".join(order_ids[:10]) + (
        f" and {len(order_ids) - 10:,} more" if len(order_ids) > 10 else ""
    )
    batches = ", ".join(str(number) for number in waited)
    return (
        f"{_count(len(held), 'row')} {_are(len(held))} held (Pending) while the "
        f"same order is in Review in batch{'es' if len(waited) > 1 else ''} "
        f"{batches} ({listed}): check {_them(len(held))} in the merchant portal, "
        f"settle with 'popbatch resolve BATCH{journal_option(journal.path)} "
        "ORDER_ID --succeeded|--failed --note TEXT', then run this command again"
    )


def _prepare_resume(
    journal: Journal,
    batch: BatchRecord,
    operation: Operation,
    options: RunOptions,
    hooks: RunHooks,
) -> list[str]:
    """Settle what a resumed batch left: resolved rows, Review rows, rules.

    Rows a person resolved as failed are planned again; Review rows are
    planned again only with ``--resend-unknown`` and a yes; then every row
    still to do is judged again by the cross-batch rules.
    """
    lines = []
    replanned = journal.replan_resolved(batch.id)
    if replanned:
        lines.append(
            f"{_count(replanned, 'Review row')} resolved as failed (not applied at "
            f"POP) {_goes(replanned)} out again, unless another batch has done "
            f"{_them(replanned)} since"
        )

    lines += _resend_unknown(journal, batch, options, hooks)

    rows = journal.rows(batch.id, states=_JUDGED)
    updates = _judge(journal, operation, options, rows, exclude_batch=batch.id)
    if updates:
        journal.apply(updates)
    return lines


def _review_interrupted(journal: Journal, batch: BatchRecord) -> list[str]:
    """Move the rows in flight when an earlier run stopped to Review.

    Committed at once, whatever this run does next: such a row may have
    been applied, and must never be sent again without a person's word.
    """
    interrupted = journal.mark_interrupted(batch.id)
    if not interrupted:
        return []
    logger.warning("batch=%d in_flight_to_review=%d", batch.id, interrupted)
    return [
        f"{_count(interrupted, 'row')} {_were(interrupted)} in flight when an "
        f"earlier run stopped: {_they(interrupted)} may have been applied, so "
        f"{_they(interrupted)} {_are(interrupted)} in Review and not sent again"
    ]


def _resend_unknown(
    journal: Journal, batch: BatchRecord, options: RunOptions, hooks: RunHooks
) -> list[str]:
    """``--resend-unknown``: plan the batch's Review rows again, once confirmed."""
    if not options.resend_unknown:
        return []
    review = journal.counts(batch.id).get(RowState.UNKNOWN, 0)
    if not review:
        return [f"batch {batch.id} has no Review rows to send again"]

    ask = hooks.confirm_resend
    if ask is not None and not ask(review):
        return [
            f"{_count(review, 'Review row')} {_are(review)} left in Review: "
            "not sent again"
        ]
    journal.requeue_unknown(batch.id)
    return [f"{_count(review, 'Review row')} {_are(review)} sent again, as asked"]


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _are(number: int) -> str:
    return "is" if number == 1 else "are"


def _goes(number: int) -> str:
    return "goes" if number == 1 else "go"


def _were(number: int) -> str:
    return "was" if number == 1 else "were"


def _they(number: int) -> str:
    return "it" if number == 1 else "they"


def _them(number: int) -> str:
    return "it" if number == 1 else "them"


def _confirm(
    confirm: Callable[[Confirmation], bool],
    operation: Operation,
    options: RunOptions,
    rows: list[RowRecord],
    new_journal: str | None,
) -> None:
    confirmation = Confirmation(
        operation=operation.name,
        rows=len(rows),
        total=sum(row.amount or 0 for row in rows),
        full_refunds=tuple(row.row for row in rows if row.amount is None),
        endpoint=options.endpoint,
        yes=options.yes,
        new_journal=new_journal,
    )
    if not confirm(confirmation):
        raise UsageError("the live run was not confirmed; nothing was sent")


# --- validate and dry run ------------------------------------------------------


@dataclass(slots=True)
class Preview:
    """What a dry run found: the rows a real run would send, and where it says so."""

    validation: Validation
    rows: list[RowRecord]
    folder: Path | None
    exit_code: ExitCode
    lines: list[str] = field(default_factory=list)


def describe_input(validation: Validation) -> str:
    """How the file was read, e.g. ``encoding cp932, comma-separated``."""
    table = validation.table
    if table.kind == "xlsx":
        return f"sheet {table.sheet!r}"
    delimiter = "tab-separated" if table.delimiter == "\t" else "comma-separated"
    return f"encoding {table.encoding}, {delimiter}"


def problem_rows(validation: Validation) -> list[tuple[str, str, str, str]]:
    """The invalid rows as (row, column, value, problem) lines, in row order."""
    numbers = validation.table.row_numbers
    lines = []
    for index in sorted(validation.rejected):
        for problem in validation.rejected[index]:
            value = "" if problem.value is None else repr(problem.value)
            lines.append(
                (str(numbers[index]), problem.column or "", value, problem.message)
            )

    return lines


def write_rejected(validation: Validation, out_dir: Path) -> Path:
    """Write the invalid rows, as read, with their problems, to a CSV file."""
    table = validation.table
    folder = out_dir / f"{_stem(table.path)}-{validation.operation.name}-validate"
    path = folder / "rejected.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = folder / ".rejected.csv.tmp"
        with CsvOut(staging, "utf-8-sig") as out:
            out.add(["row", *table.headers, "problems"], None)
            for index in sorted(validation.rejected):
                row = int(table.row_numbers[index])
                problems = "\n".join(p.message for p in validation.rejected[index])
                cells = [str(cell) for cell in table.cells.iloc[index]]
                out.add([str(row), *cells, problems], row)
        staging.replace(path)
    except OSError as exc:
        raise OutputError(
            f"cannot write the rejected rows to {str(path)!r}: {exc.strerror}"
        ) from None

    return path


def dry_run(options: RunOptions, hooks: RunHooks | None = None) -> Preview:
    """Plan the run without sending or recording anything.

    The journal is read when it exists, so the preview applies the same
    rules across batches as a real run, and the control totals are checked
    (on the batch's own rows when the file's batch is in the journal, as
    its next run checks them). Without a journal, ``hooks.notice`` hears
    that the preview knows no earlier batches.
    """
    operation = operation_named(options.operation)
    validation = read_and_validate(
        operation, options.input_path, options.read, live=options.live
    )
    if validation.rejected and not options.skip_invalid:
        return Preview(
            validation,
            [],
            None,
            ExitCode.INPUT_REFUSED,
            [
                f"{len(validation.rejected):,} rows are invalid: a run would send "
                "nothing (--skip-invalid sends the valid ones)"
            ],
        )

    rows = plan_rows(validation, live=options.live)
    checked: list[RowRecord] | None = rows
    if options.journal_path is not None and options.journal_path.exists():
        journal = Journal.open(options.journal_path)
        try:
            batch = journal.find_batch(_key_of(operation, validation, options))
            if batch is None:
                _judge(journal, operation, options, rows, exclude_batch=None)
            else:
                resumed = _resumed_rows(journal, batch, operation, options)
                checked = resumed if _would_send(resumed) else None
                rows = [_as_previewed(row) for row in resumed]
        finally:
            journal.close()
    else:
        _no_journal_notice(options, hooks)
    if checked is not None:
        check_control_totals(checked, options.totals)

    folder = options.out_dir / f"{_stem(options.input_path)}-{operation.name}-dry-run"
    path = _write_preview(rows, validation, folder)
    lines = _preview_lines(rows, path, live=options.live)
    return Preview(validation, rows, folder, ExitCode.OK, lines)


def _resumed_rows(
    journal: Journal, batch: BatchRecord, operation: Operation, options: RunOptions
) -> list[RowRecord]:
    """A batch's rows as its next run would find them (nothing is written).

    As ``_prepare_resume`` does it: rows in flight when a run stopped are in
    Review, rows resolved as failed are planned again, Review rows too with
    ``--resend-unknown`` (as if the question were answered yes), and the
    rows still to do are judged again by the cross-batch rules.
    """
    rows = journal.rows(batch.id)
    for row in rows:
        failed = row.resolution is not None and row.resolution.outcome is (
            RowState.FAILED
        )
        if row.state is RowState.IN_FLIGHT:
            row.state = RowState.UNKNOWN
        if (row.state is RowState.RESOLVED and failed) or (
            row.state is RowState.UNKNOWN and options.resend_unknown
        ):
            row.state = RowState.PLANNED
            row.outcome = None
            row.resolution = None
    _judge(journal, operation, options, rows, exclude_batch=batch.id)
    return rows


def _would_send(rows: list[RowRecord]) -> bool:
    """Whether a run would send any of the rows: only then are totals checked."""
    return any(row.state is RowState.PLANNED for row in rows)


# What a dry run says of a resumed batch's rows that it will not send again.
_DONE_REASON = "done_by_this_batch"
_DONE_BY_THIS_BATCH = {
    RowState.SUCCEEDED: "already done by this batch (Succeeded)",
    RowState.FAILED: "already sent by this batch (Failed): not sent again",
    RowState.UNKNOWN: (
        "in Review in this batch: not sent again (settle it with 'popbatch "
        "resolve', or send it again with --resend-unknown)"
    ),
}


def _as_previewed(row: RowRecord) -> RowRecord:
    """A resumed batch's row as the preview shows it.

    Rows the batch already sent are skipped by its next run: the preview
    says so of this batch, not of "an earlier batch".
    """
    if row.state in _PREVIEW_VERBS:
        return row
    state = row.state
    if state is RowState.RESOLVED:
        assert row.resolution is not None
        why = f"already done by this batch (resolved as {row.resolution.outcome.value})"
    else:
        why = _DONE_BY_THIS_BATCH[state]
    problem = Problem(_DONE_REASON, why, column="order_id", value=row.order_id)
    return replace(row, state=RowState.SKIPPED, problems=(problem,))


def _no_journal_notice(options: RunOptions, hooks: RunHooks | None) -> None:
    path = options.journal_path
    where = f"no journal at {path.absolute()}" if path else "no journal was given"
    text = (
        f"{where}: the preview knows no earlier batches, so nothing can be "
        "recognised as already done"
    )
    logger.warning("%s", text, extra=FILE_ONLY)
    if hooks is not None and hooks.notice is not None:
        hooks.notice(text)


def _write_preview(rows: list[RowRecord], validation: Validation, folder: Path) -> Path:
    path = folder / "preview.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = folder / ".preview.csv.tmp"
        with CsvOut(staging, "utf-8-sig") as out:
            out.add(_PREVIEW_HEADER, None)
            for row in rows:
                verb = _PREVIEW_VERBS[row.state]
                why = "\n".join(problem.message for problem in row.problems)
                cells = [str(row.row), row.order_id or "", verb, row.request or ""]
                out.add([*cells, why, changes_text(row) or ""], row.row)
        staging.replace(path)
    except OSError as exc:
        raise OutputError(
            f"cannot write the preview to {str(path)!r}: {exc.strerror}"
        ) from None

    return path


_PREVIEW_HEADER = ["row", "order_id", "would be", "request", "why not sent", "changes"]


_PREVIEW_VERBS = {
    RowState.PLANNED: "sent",
    RowState.PENDING: "held",
    RowState.SKIPPED: "skipped",
    RowState.REJECTED: "rejected",
}


def _preview_lines(rows: list[RowRecord], path: Path, *, live: bool) -> list[str]:
    sent = [row for row in rows if row.state is RowState.PLANNED]
    total = sum(row.amount or 0 for row in sent)
    full = [row.row for row in sent if row.amount is None]
    mode = "LIVE, dummy false" if live else "test, dummy true"
    lines = [
        f"dry run ({mode}): {rows_phrase(len(sent))} would be sent, total {total:,} yen; "
        "nothing was sent"
    ]
    if full:
        lines.append(
            f"FULL REFUND: {rows_phrase(len(full))} without an amount would refund the "
            f"full amount of the order (rows {', '.join(str(n) for n in full[:20])}"
            f"{' ...' if len(full) > 20 else ''})"
        )
    done = sum(1 for row in rows if _done_by_this_batch(row))
    for state in (RowState.PENDING, RowState.SKIPPED, RowState.REJECTED):
        count = sum(1 for row in rows if row.state is state)
        if state is RowState.SKIPPED:
            count -= done
        if count:
            lines.append(f"{rows_phrase(count)} would be {_PREVIEW_VERBS[state]}")
    if done:
        lines.append(
            f"{rows_phrase(done)} {_were(done)} already sent by this batch: "
            "not sent again"
        )
    lines.append(f"preview of the exact requests: {path}")

    return lines


def _done_by_this_batch(row: RowRecord) -> bool:
    return bool(row.problems) and row.problems[0].reason == _DONE_REASON


def _stem(path: Path) -> str:
    return path.stem or "input"
