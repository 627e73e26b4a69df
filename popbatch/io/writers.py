"""Writing the results folder: results.xlsx, CSV twins, the retry file, summary.json.

Everything is written into a hidden sibling folder first; only when every
file is complete (and synced) does it take the results folder's name. A
resumed batch rewrites its own folder: the previous one is moved aside, the
new one renamed into place, and the previous one removed. A crash leaves the
previous complete folder, or, between those two renames, none under the
name (the previous one is then the hidden ``.NAME.old-*`` beside it, which
a later write removes once it is an hour old; the journal can always rebuild
the results). Files are
the owner's alone (0600, folder 0700).

The CSV files (``io.csvout``) put an apostrophe before a formula-like
value, and write characters their encoding cannot hold as 〓 in cp932 (the
run goes on: the money has moved, its record must be written); the Summary
names the rows, and results.xlsx (``io.xlsxout``) keeps them intact.

The retry file holds the Failed rows and the Rejected rows, in input order
and exactly as read, in the input's own columns and format, so that the
merchant fixes them in one place and runs the same command on it. Rows
rejected for how Excel stored a cell (a date, a number shown with leading
zeros, merged cells) are left out and named in the Summary: their text as
read is not what was typed, so written back it would be sent unchanged. Review
rows are left out on purpose (they may have been processed: sending them
again could charge or refund twice), and so are Pending rows (running the
original command again resumes them) and Skipped rows (already done). So
are two kinds of Failed rows: those POP refused when they were sent again
after Review (the first request may have been applied, and the refusal
says so: named in the Summary and at the end of the run), and those a
person resolved as failed (the original command sends them again).

Batch numbers count per journal, so two journals (a cron job's and a
person's) writing under the same output folder can each have a batch 3 of
the same file. summary.json therefore records which journal (its real path)
and which batch (id, operation, test or live, the input's SHA-256 and when
the batch was planned) the folder holds, and a folder is replaced only when
it holds the same batch: another journal's or another batch's results, or a
folder that does not say whose it is, are never replaced (OutputError,
exit 73). An empty folder has nothing to lose and is replaced.
"""

from __future__ import annotations

import codecs
import gc
import glob
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xlsxwriter.exceptions import XlsxWriterException

from popbatch.errors import OutputError, UsageError
from popbatch.io.columns import EXCEL_CELL_REASONS
from popbatch.io.csvout import CsvOut, create_private, replacement_mark
from popbatch.io.layout import Cell, Layout, group_layout
from popbatch.io.summarysheet import SummarySheet
from popbatch.io.xlsxout import (
    WIDTH_SAMPLE,
    ResultWorkbook,
    WorkbookLimits,
    WritingNotes,
    joined_texts,
    write_text_workbook,
)
from popbatch.report import (
    Report,
    name_rows,
    refused_again_sentence,
    result_code,
    summary_dict,
)
from popbatch.rows import GROUP_ORDER, BatchRecord, Group, RowRecord, RowState

logger = logging.getLogger(__name__)

__all__ = [
    "RETRY_GROUPS",
    "CsvOut",
    "FolderOwner",
    "WorkbookLimits",
    "check_csv_encoding",
    "check_results_folder",
    "results_folder_name",
    "write_results",
]

# Groups whose rows go into the retry file (see the module docstring).
RETRY_GROUPS = (Group.FAILED, Group.REJECTED)

# A results folder name stays well under the 255 bytes most file systems
# allow, leaving room for the temporary suffixes.
_NAME_BYTES = 180

# Leftovers of a crashed write older than this are removed (seconds).
_LEFTOVER_AGE_S = 3600
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def results_folder_name(batch: BatchRecord) -> str:
    """The results folder's name: ``<input stem>-<operation>-batch<id>``."""
    stem = _UNSAFE_NAME.sub("_", Path(batch.input_path).stem).lstrip(".") or "input"
    suffix = f"-{batch.operation}-batch{batch.id}"
    budget = _NAME_BYTES - len(suffix.encode())
    while len(stem.encode()) > budget:
        stem = stem[:-1]
    return stem + suffix


def check_csv_encoding(name: str) -> str:
    """Return the codec name for ``--csv-encoding``; UsageError when unknown."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UsageError(
            f"--csv-encoding {name!r} is not an encoding Python knows",
            hint="Use utf-8-sig (the default, for Excel) or cp932.",
        ) from None


@dataclass(frozen=True, slots=True)
class FolderOwner:
    """The journal and batch a results folder belongs to (summary.json's ``owner``).

    Args:
        journal: the journal's real path (symlinks followed); None when the
            writer was not told which journal the batch came from.
        planned_at: when the journal planned the batch, ISO 8601: with the
            id, it tells apart the batches of two journals that share an
            input file.
    """

    journal: str | None
    batch_id: int
    operation: str
    live: bool
    input_sha256: str
    planned_at: str

    @classmethod
    def of(cls, batch: BatchRecord, journal: Path | None) -> FolderOwner:
        """The owner of ``batch``'s results, written from ``journal``."""
        return cls(
            journal=os.path.realpath(journal) if journal is not None else None,
            batch_id=batch.id,
            operation=batch.operation,
            live=batch.live,
            input_sha256=batch.input_sha256,
            planned_at=batch.created_at.isoformat(),
        )

    @classmethod
    def from_summary(cls, facts: Any) -> FolderOwner | None:
        """The owner that a summary.json's facts name; None when they name none."""
        owner = facts.get("owner") if isinstance(facts, dict) else None
        if not isinstance(owner, dict):
            return None
        try:
            found = cls(**owner)
        except TypeError:
            return None
        if found.journal is not None and not isinstance(found.journal, str):
            return None
        return found

    def as_dict(self) -> dict[str, Any]:
        """The owner as summary.json records it."""
        return {
            "journal": self.journal,
            "batch_id": self.batch_id,
            "operation": self.operation,
            "live": self.live,
            "input_sha256": self.input_sha256,
            "planned_at": self.planned_at,
        }

    def same_batch(self, other: FolderOwner) -> bool:
        """Whether ``other`` names this batch; journals count when both are known."""
        if self.journal and other.journal and self.journal != other.journal:
            return False
        return replace(self, journal=None) == replace(other, journal=None)


_FOLDER_HINT = "Use another --out, or move that folder away."


def check_results_folder(
    folder: Path,
    batch: BatchRecord,
    *,
    journal: Path | None,
    outcome: str = "nothing was written",
    hint: str = _FOLDER_HINT,
) -> FolderOwner | None:
    """Refuse to replace a results folder that holds another batch's results.

    Returns the owner that the folder's summary.json names (None when there
    is no folder, or an empty one).

    Args:
        journal: the journal ``batch`` comes from.
        outcome: what the refusal means, ending its message: "nothing was
            sent" before a run sends.

    Raises:
        OutputError: the folder belongs to another journal or batch, or does
            not say whose it is (exit 73).
    """
    ours = FolderOwner.of(batch, journal)
    where = f"the results folder {str(folder)!r}"
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(
            f"cannot write {where}: something other than a results folder has "
            f"that name; {outcome}",
            hint="Move it away, or choose another output folder with --out.",
        )
    if not folder.is_dir():
        return None
    summary = folder / "summary.json"
    try:
        facts = json.loads(summary.read_text("utf-8"))
    except FileNotFoundError:
        if not any(folder.iterdir()):
            return None
        raise OutputError(
            f"{where} holds files but no summary.json saying which batch they "
            f"belong to; {outcome}",
            hint=hint,
        ) from None
    except (OSError, ValueError):
        facts = None

    theirs = FolderOwner.from_summary(facts)
    if theirs is None:
        raise OutputError(
            f"{where} has no summary.json naming its journal and batch (an older "
            f"popbatch, or something else, wrote it); {outcome}",
            hint=hint,
        )
    if ours.same_batch(theirs):
        return theirs
    if theirs.journal and ours.journal and theirs.journal != ours.journal:
        raise OutputError(
            f"{where} holds batch {theirs.batch_id} of another journal "
            f"({theirs.journal!r}); {outcome}",
            hint=hint,
        )
    raise OutputError(
        f"{where} holds another batch {theirs.batch_id} ({theirs.operation}, "
        f"planned {theirs.planned_at}); {outcome}",
        hint=hint,
    )


def write_results(
    report: Report,
    folder: Path,
    *,
    csv_encoding: str = "utf-8-sig",
    limits: WorkbookLimits | None = None,
    journal: Path | None = None,
) -> Path:
    """Write the results of ``report`` into ``folder``, atomically, and return it.

    Args:
        folder: the results folder, normally
            ``out_dir / results_folder_name(report.batch)``; its parent (the
            output folder) is created when missing. An existing folder of
            that name (a resumed batch's) is replaced once the new one is
            complete.
        csv_encoding: the encoding of the group CSVs (retry.csv keeps the
            input's own).
        limits: sheet and memory limits (tests shrink them).
        journal: the journal the batch comes from, recorded in summary.json
            (see ``check_results_folder``).

    Raises:
        OutputError: a file or folder cannot be written, or the folder holds
            another batch's results; names the path.
        UsageError: ``csv_encoding`` is not an encoding.
    """
    check_csv_encoding(csv_encoding)
    batch = report.batch
    hint = (
        f"Use another --out (popbatch report {batch.id} --out DIR writes this "
        "batch's results from its journal), or move that folder away."
    )
    found = check_results_folder(folder, batch, journal=journal, hint=hint)
    owner = FolderOwner.of(batch, journal)
    if owner.journal is None and found is not None:
        owner = replace(owner, journal=found.journal)

    staging = _make_staging(folder)
    try:
        with _collector_paused():
            _write_files(
                report,
                staging,
                folder,
                csv_encoding,
                limits or WorkbookLimits(),
                owner,
            )
        _sync_folder(staging)
        # Checked again: another run may have written the folder meanwhile.
        check_results_folder(folder, batch, journal=journal, hint=hint)
        _put_in_place(staging, folder)
    except (OSError, XlsxWriterException) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _output_error(folder, staging, exc) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    logger.info("results written to %s", folder)
    return folder


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the results are written.

    xlsxwriter holds every cell in memory until it saves, and each full
    collection walks all of them again: about 15% of the CPU time of a
    100,000-row write went there. What is allocated while writing has no
    cycles, so reference counting frees it all the same.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _make_staging(final: Path) -> Path:
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise OutputError(
            f"cannot write the results to {str(final)!r}: something other than "
            "a results folder has that name",
            hint="Move it away, or choose another output folder with --out.",
        )
    try:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_leftovers(final.parent, final.name)
        staging = final.parent / f".{final.name}.tmp-{secrets.token_hex(4)}"
        staging.mkdir(mode=0o700)
    except OSError as exc:
        raise _output_error(final, None, exc) from exc
    return staging


def _remove_leftovers(folder: Path, name: str) -> None:
    # A staging or set-aside copy of this folder that is an hour old is what
    # a crashed earlier write left behind; a younger one may belong to a
    # write going on now (``popbatch report`` takes no journal lock).
    now = time.time()
    for leftover in folder.glob(f".{glob.escape(name)}.*-*"):
        if not leftover.name.startswith((f".{name}.tmp-", f".{name}.old-")):
            continue
        try:
            stale = now - leftover.stat().st_mtime > _LEFTOVER_AGE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(leftover, ignore_errors=True)


def _put_in_place(staging: Path, final: Path) -> None:
    if not final.exists():
        os.rename(staging, final)
        _sync_dir(final.parent)
        return

    # A directory cannot be renamed over a non-empty one: set the previous
    # folder aside, put the new one in its place, then remove the old one.
    aside = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
    os.rename(final, aside)
    try:
        os.rename(staging, final)
    except OSError:
        os.rename(aside, final)
        raise
    _sync_dir(final.parent)
    shutil.rmtree(aside, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        os.chmod(path, 0o600)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _output_error(
    final: Path, staging: Path | None, exc: OSError | XlsxWriterException
) -> OutputError:
    # Name the results folder the user knows, not the hidden staging folder.
    # xlsxwriter wraps the OSError of a failed save as its first argument.
    cause: BaseException = exc
    if (
        isinstance(exc, XlsxWriterException)
        and exc.args
        and isinstance(exc.args[0], OSError)
    ):
        cause = exc.args[0]
    if not isinstance(cause, OSError):
        return OutputError(
            f"cannot write the results to {str(final)!r}: {exc}", hint=_OUTPUT_HINT
        )

    where = str(final)
    if cause.filename:
        path = Path(os.fsdecode(cause.filename))
        where = str(final / path.name) if path.parent == staging else str(path)
    return OutputError(
        f"cannot write the results to {where!r}: {cause.strerror or cause}",
        hint=_OUTPUT_HINT,
    )


_OUTPUT_HINT = (
    "Check the output folder (its permissions and free space), "
    "or choose another with --out."
)


def _write_files(
    report: Report,
    staging: Path,
    final: Path,
    csv_encoding: str,
    limits: WorkbookLimits,
    owner: FolderOwner,
) -> None:
    notices = list(report.notices)
    layouts = {group: group_layout(report, group) for group in GROUP_ORDER}
    cells = sum(
        len(report.groups[group]) * len(layouts[group].columns) for group in GROUP_ORDER
    )
    book = ResultWorkbook(
        staging / "results.xlsx", cells=cells, limits=limits, tmpdir=staging
    )
    summary = SummarySheet(book)
    summary.write_head(report, final.name)

    replaced: dict[str, list[int]] = {}
    for group in GROUP_ORDER:
        found = _write_group(report, group, layouts[group], book, staging, csv_encoding)
        replaced.update(found)

    retry = _write_retry(report, staging, book.notes)
    refused = refused_again_sentence(report)
    if refused:
        notices.append(refused)
    notices += book.notes.sentences()
    notices += _encoding_notices(replaced, csv_encoding)
    if retry is not None:
        notices.append(retry[1])
    summary.write_notices(notices)
    book.close()

    # summary.json says what the Summary sheet says, for monitoring.
    facts = summary_dict(report, folder=final)
    facts["retry_file"] = (retry[0] or None) if retry is not None else None
    facts["notices"] = notices
    facts["owner"] = owner.as_dict()
    _write_summary_json(facts, staging / "summary.json")


def _write_group(
    report: Report,
    group: Group,
    layout: Layout,
    book: ResultWorkbook,
    staging: Path,
    csv_encoding: str,
) -> dict[str, list[int]]:
    """Write one group to its sheet(s) and CSV twin; Failed also per result code."""
    rows = report.groups[group]
    sample = [layout.values(row) for row in rows[:WIDTH_SAMPLE]]
    sheets = book.group_sheets(layout, len(rows), sample)
    name = f"{group.value.lower()}.csv"
    replaced: dict[str, list[int]] = {}

    with ExitStack() as stack:
        twin = stack.enter_context(CsvOut(staging / name, csv_encoding))
        twin.add(layout.headers, None)
        per_code = (
            _PerCode(staging, csv_encoding, layout.headers)
            if group is Group.FAILED
            else None
        )
        if per_code is not None:
            stack.callback(per_code.close)

        for row in rows:
            values = layout.values(row)
            texts = joined_texts(values)
            sheets.add(values, texts)
            twin.add(values, row.row, texts)
            if per_code is not None:
                per_code.add(row, values, texts)

        replaced[name] = twin.replaced_rows
        if per_code is not None:
            per_code.close()
            replaced.update(per_code.replaced)
    return replaced


class _PerCode:
    """failed-<CODE>.csv files, one per failing result code, opened in turn.

    Failed rows come sorted by result code, so one file is open at a time.
    """

    def __init__(self, staging: Path, encoding: str, headers: list[str]) -> None:
        self._staging = staging
        self._encoding = encoding
        self._headers = headers
        self._label: str | None = None
        self._out: CsvOut | None = None
        self.replaced: dict[str, list[int]] = {}

    def add(self, row: RowRecord, values: Sequence[Cell], texts: str) -> None:
        label = _file_label(result_code(row))
        if label != self._label:
            self.close()
            name = f"failed-{label}.csv"
            self._out = CsvOut(self._staging / name, self._encoding)
            self._out.add(self._headers, None)
            self._label = label
        assert self._out is not None
        self._out.add(values, row.row, texts)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self.replaced[self._out.path.name] = self._out.replaced_rows
            self._out = None


def _file_label(code: str | None) -> str:
    if code is None:
        return "no-result-code"
    return re.sub(r"[^A-Za-z0-9_-]", "_", code)


def _encoding_notices(replaced: dict[str, list[int]], encoding: str) -> list[str]:
    notices = []
    for name, rows in sorted(replaced.items()):
        if rows:
            where = f"row {rows[0]}" if len(rows) == 1 else f"rows {name_rows(rows)}"
            mark = replacement_mark(encoding)
            notices.append(
                f"{name} is in {encoding}, which cannot hold some characters of "
                f"{where}: they are written as {mark} there; results.xlsx has them intact."
            )
    return notices


def _write_retry(
    report: Report, staging: Path, notes: WritingNotes
) -> tuple[str, str] | None:
    """Write retry.csv or retry.xlsx; return its name and the Summary's notice."""
    batch = report.batch
    rows = sorted(
        (
            row
            for group in RETRY_GROUPS
            for row in report.groups[group]
            if _for_retry(report, row)
        ),
        key=lambda row: row.row,
    )
    # A cell rejected for how Excel stored it (a date, a number shown with
    # zeros, a merged range) reads back as plausible text: written to the
    # retry file, it would be sent unchanged next time. Such rows are fixed
    # in the original workbook instead.
    left_out = [row.row for row in rows if _excel_cell_rejection(row)]
    rows = [row for row in rows if not _excel_cell_rejection(row)]
    if not rows:
        return None if not left_out else ("", _left_out_notice(left_out))

    width = len(batch.headers)
    cells = [_padded(row.cells, width) for row in rows]
    if batch.input_kind == "xlsx":
        # An amount Excel held as a number goes back as one; ids stay text.
        amount = batch.columns.get("amount")
        name = "retry.xlsx"
        write_text_workbook(
            staging / name,
            batch.sheet or "Sheet1",
            batch.headers,
            cells,
            tmpdir=staging,
            notes=notes,
            number_columns=frozenset({amount}) if amount is not None else frozenset(),
        )
    else:
        name = "retry.csv"
        encoding = batch.encoding or "utf-8-sig"
        with CsvOut(staging / name, encoding, batch.delimiter or ",") as out:
            out.add(batch.headers, None)
            for row, values in zip(rows, cells, strict=True):
                out.add(values, row.row)

    written = Counter(row.group for row in rows)
    counts = " and ".join(
        f"{written[group]:,} {group.value}" for group in RETRY_GROUPS if written[group]
    )
    noun, them = ("row", "it") if len(rows) == 1 else ("rows", "them")
    notice = (
        f"{name} holds the {counts} {noun} as read, in the input's columns and "
        f"format: fix {them} and run the same command on it. Review rows are not "
        "in it: check them in the merchant portal first."
    )
    if any(row.state is RowState.RESOLVED for row in report.groups[Group.FAILED]):
        notice += " Nor are rows resolved as failed: the same command sends them again."
    if left_out:
        notice += " " + _left_out_notice(left_out)
    return name, notice


def _for_retry(report: Report, row: RowRecord) -> bool:
    """Whether a Failed or Rejected row goes into the retry file.

    Not a row that POP refused when it was sent again after Review (the
    first request may have been applied: sent under a new order id, it would
    charge or refund twice), nor one a person resolved as failed, which the
    same command sends again.
    """
    if report.refused_after_resend(row):
        return False
    return row.state is not RowState.RESOLVED


def _excel_cell_rejection(row: RowRecord) -> bool:
    return any(problem.reason in EXCEL_CELL_REASONS for problem in row.problems)


def _left_out_notice(rows: list[int]) -> str:
    return (
        f"{'Row' if len(rows) == 1 else 'Rows'} {name_rows(rows)} "
        f"{'was' if len(rows) == 1 else 'were'} rejected for how Excel stored a "
        "cell (a date, a number shown with leading zeros, merged cells...) and "
        "are not in the retry file: fix them in the original workbook and run it "
        "again."
    )


def _padded(cells: Sequence[str], width: int) -> list[Cell]:
    found: list[Cell] = list(cells[:width])
    return found + [""] * (width - len(found))


def _write_summary_json(facts: dict[str, Any], path: Path) -> None:
    text = json.dumps(facts, ensure_ascii=False, indent=2)
    with create_private(path) as out:
        out.write(text.encode("utf-8") + b"\n")
