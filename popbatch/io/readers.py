"""Reading an input file into an InputTable: every cell as text, with row numbers.

``read_input`` is the one entry point. It picks the reader from the file's
name and checks the bytes agree (a CSV saved as .xlsx, a legacy .xls),
then finds the header row, the data rows and the blank rows between them,
the same way for CSV and Excel:

- the header is the first row with any text (an Excel title row merged
  across columns above it is skipped, and noted);
- columns run to the header's last named column, and on to the last
  column with data if that is at most ``SPARE_COLUMNS`` farther. Text
  farther right is kept per row, sparsely, never as columns: one value
  typed in column XFD would widen every row to 16,384 cells. Text past
  the last named column rejects a CSV row (``unnamed_text``: an unquoted
  1,000 split in two); a workbook's stray text is noted
  (``text_past_header``);
- data rows run to the last row with any text: blank or formatting-only
  rows after it are ignored, however many the sheet claims;
- a blank row between data rows is listed in ``blank_rows``: it is not an
  order, and validation reports it as a notice.

Row numbers are those a person sees in Excel (the header is usually row 1).
Nothing here decides which column is which: typed-cell facts of Excel are
recorded for every column as CellProblems, and ``popbatch.schema`` keeps
those of the columns it reads.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from popbatch.errors import InputUnreadableError, UsageError
from popbatch.io.csvfile import (
    INVISIBLE,
    MAX_COLUMNS,
    SPARE_COLUMNS,
    TEXT,
    has_text,
    named_width,
    read_csv_records,
)
from popbatch.io.normalise import column_letter, display_header, quote
from popbatch.io.numfmt import WHY_SHOWN
from popbatch.io.xlsx import CellNote, Merge, SheetContent, read_workbook

logger = logging.getLogger(__name__)

_WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xltx", ".xltm"})


@dataclass(frozen=True, slots=True)
class CellProblem:
    """What an Excel cell's type says against reading it as text.

    Args:
        row: spreadsheet row number (the header is row 1).
        column: 0-based position in the header row.
        reason: snake_case: ``date_cell``, ``error_cell``,
            ``formula_without_value``, ``number_format_hides_digits``,
            ``number_format_changes_value``, ``number_too_long``,
            ``boolean_cell``, ``boolean_cell_invalid``,
            ``merged_cells``; ``unnamed_text`` for CSV text past the last
            named column, ``text_past_header`` for a workbook's.
        message: a full sentence naming the header text and the value.
        value: the cell's text, for a cell too far right to be a column of
            ``InputTable.cells``; None for the others.
    """

    row: int
    column: int
    reason: str
    message: str
    value: str | None = None


@dataclass(frozen=True)
class InputTable:
    """An input file as read: header, cells as text, row numbers, cell facts.

    Args:
        sha256: hex digest of the file's bytes.
        encoding: CSV only: the codec used ("utf-8", "utf-8-sig", "utf-16",
            "cp932").
        delimiter: CSV only: "," or "\\t".
        sheet: Excel only: the sheet read.
        sheets: Excel only: every sheet's name, in the workbook's order.
        headers: the header cells exactly as read (not trimmed).
        cells: one row per data row, columns 0..n-1 by position, every cell
            text ("" when empty), RangeIndex.
        row_numbers: int64, the spreadsheet row of each row of ``cells``.
        problems: typed-cell problems of every column (Excel); in CSV, the
            first cell with text past the last named column of each row
            that has one (``unnamed_text``); in a workbook, the first cell
            with text too far right to be a column of ``cells``
            (``text_past_header``).
        blank_rows: blank rows between data rows: reported, not orders.
        notes: facts to log, such as "sheet 'orders' (first of 2)" or
            "encoding: cp932".
        hidden_rows: data rows that Excel hides (filtered or hidden); they
            are read like any other row.
        header_row: the spreadsheet row of the header.
        sheet_given: Excel only: the sheet was named with --sheet, not
            chosen as the first.
    """

    path: Path
    kind: Literal["csv", "xlsx"]
    sha256: str
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    sheets: tuple[str, ...]
    headers: tuple[str, ...]
    cells: pd.DataFrame
    row_numbers: np.ndarray
    problems: tuple[CellProblem, ...]
    blank_rows: tuple[int, ...]
    notes: tuple[str, ...] = ()
    hidden_rows: tuple[int, ...] = ()
    header_row: int = 1
    sheet_given: bool = False

    def header_label(self, column: int) -> str:
        """Return how messages name a column: its trimmed header, or its letter."""
        header = (
            display_header(self.headers[column]) if column < len(self.headers) else ""
        )
        return header or f"column {column_letter(column)}"

    def row_number(self, index: int) -> int:
        """Return the spreadsheet row of the ``cells`` row at ``index``."""
        return int(self.row_numbers[index])


def read_input(
    path: Path, *, sheet: str | None = None, encoding: str | None = None
) -> InputTable:
    """Read a CSV or Excel file into an InputTable.

    Args:
        sheet: Excel only: the sheet to read (default: the first visible).
        encoding: CSV only: the encoding to use instead of detecting it.

    Raises:
        InputUnreadableError: the file is missing, cannot be decoded, is a
            legacy .xls, is CSV under an Excel name, or has no such sheet.
        UsageError: ``sheet`` given for a CSV file, ``encoding`` for a
            workbook, or an encoding Python does not know.
    """
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()

    if suffix in _WORKBOOK_SUFFIXES or (
        suffix == ".xls" and data.startswith(b"PK\x03\x04")
    ):
        if encoding is not None:
            raise UsageError(
                f"--encoding applies to CSV files; {path.name} is an Excel workbook"
            )
        return _read_xlsx(path, data, digest, sheet)
    if suffix in (".xls", ".xlsb", ".ods"):
        raise _refuse_other_workbook(path.name, suffix, data)
    if sheet is not None:
        raise UsageError(
            f"--sheet applies to Excel workbooks; {path.name} is read as CSV"
        )

    return _read_csv(path, data, digest, encoding)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputUnreadableError(
            f"{path} does not exist", hint="Check the file's name and folder."
        ) from None
    except IsADirectoryError:
        raise InputUnreadableError(f"{path} is a folder, not a file") from None
    except PermissionError:
        raise InputUnreadableError(
            f"{path} cannot be read: permission denied"
        ) from None
    except OSError as error:
        raise InputUnreadableError(f"{path} cannot be read: {error.strerror}") from None
    if not data:
        raise InputUnreadableError(f"{path.name} is empty")

    return data


def _refuse_other_workbook(name: str, suffix: str, data: bytes) -> InputUnreadableError:
    if suffix == ".xlsb":
        return InputUnreadableError(
            f"{name}: Excel binary workbooks (.xlsb) are not supported; open it in "
            "Excel and save as .xlsx (or CSV UTF-8)"
        )
    if suffix == ".ods":
        return InputUnreadableError(
            f"{name}: OpenDocument spreadsheets (.ods) are not supported; save it "
            "as .xlsx (or CSV UTF-8)"
        )

    return refuse_not_a_workbook(data, name)


def refuse_not_a_workbook(data: bytes, name: str) -> InputUnreadableError:
    """Return the one-line error for bytes under an Excel name that are no .xlsx."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        if "EncryptedPackage".encode("utf-16-le") in data:
            return InputUnreadableError(
                f"{name} is password-protected; remove the password in Excel "
                "(File > Info > Protect Workbook) and save it again"
            )
        return InputUnreadableError(
            f"{name}: legacy Excel 97-2003 .xls is not supported; open it in "
            "Excel and save as .xlsx (or CSV UTF-8)"
        )
    head = data[:4096].lstrip()
    if head[:1] == b"<" and (b"<html" in head.lower() or b"<table" in head.lower()):
        return InputUnreadableError(
            f"{name}: this .{suffix} file is a web page (HTML), not an Excel "
            "workbook; open it in Excel and save as .xlsx (or CSV UTF-8)"
        )
    if _looks_like_text(data[:4096]):
        return InputUnreadableError(
            f"{name}: this .{suffix} file is not an Excel workbook (it looks like "
            "CSV text); rename it to .csv or save it again from Excel"
        )

    return InputUnreadableError(
        f"{name}: this .{suffix} file is not an Excel workbook (it is not a zip "
        "archive); save it again from Excel as .xlsx"
    )


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    for codec in ("utf-8", "cp932"):
        try:
            head.decode(codec)
        except UnicodeDecodeError as error:
            # A character cut at the end of the sample is still text.
            if error.start >= len(head) - 3:
                return True
            continue
        return True

    return False


# --- CSV ---------------------------------------------------------------------


def _read_csv(path: Path, data: bytes, digest: str, encoding: str | None) -> InputTable:
    parsed = read_csv_records(data, path.name, encoding)
    records = parsed.records
    numbers = np.arange(1, len(records) + 1, dtype=np.int64)
    layout = _Layout.of(
        records, numbers, path.name, skip=frozenset(), beyond=parsed.beyond
    )
    problems = _unnamed_text(layout)
    delimiter = "tab" if parsed.delimiter == "\t" else "comma"
    logger.info(
        "read %s: encoding=%s delimiter=%s rows=%d",
        path.name,
        parsed.encoding,
        delimiter,
        len(layout.cells),
    )

    return InputTable(
        path=path,
        kind="csv",
        sha256=digest,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        sheet=None,
        sheets=(),
        headers=layout.headers,
        cells=layout.cells,
        row_numbers=layout.row_numbers,
        problems=tuple(problems),
        blank_rows=layout.blank_rows,
        notes=(f"encoding: {parsed.encoding}", f"delimiter: {delimiter}"),
        header_row=layout.header_row,
    )


def _unnamed_text(layout: _Layout) -> list[CellProblem]:
    """Name the first text past the last named column of each CSV row.

    That is how an amount typed 1,000 without quotes reads: "1" under
    amount and "000" in a column with no header. Sending 1 would move the
    wrong sum, so such a row is a problem whatever its other cells say.
    Empty cells there (a trailing comma) are harmless.
    """
    headers = layout.headers
    named = [position for position, text in enumerate(headers) if display_header(text)]
    last = named[-1] if named else -1
    cells = layout.cells
    first = np.full(len(cells), -1, dtype=np.int64)
    for column in range(len(cells.columns) - 1, last, -1):
        first[_has_text(cells[cells.columns[column]])] = column
    found: dict[int, tuple[int, str | None]] = {
        index: (int(first[index]), None)
        for index in np.flatnonzero(first >= 0).tolist()
    }
    for index, cut_off in layout.beyond.items():
        found.setdefault(index, cut_off)

    problems = []
    for index, (column, value) in sorted(found.items()):
        message = (
            f"this row has text in column {column_letter(column)}, which has no "
            f"header (the last named column is {column_letter(last)}): a value with "
            "a comma and no quotes, such as 1,000, is split across cells. Quote it "
            '("1,000") or remove the comma, or give the column a header.'
        )
        row = int(layout.row_numbers[index])
        problems.append(CellProblem(row, column, "unnamed_text", message, value))

    return problems


# --- Excel -------------------------------------------------------------------


def _read_xlsx(path: Path, data: bytes, digest: str, sheet: str | None) -> InputTable:
    try:
        content = read_workbook(data, path.name, sheet)
    except zipfile.BadZipFile:
        raise refuse_not_a_workbook(data, path.name) from None
    numbers = np.asarray(content.row_numbers, dtype=np.int64)
    titles = _title_rows(content)
    rows, beyond = _rows_to_header(content, frozenset(titles))
    frame = _frame_of_rows(rows)
    where = f"sheet {content.sheet!r} of {path.name}"
    layout = _Layout.of(frame, numbers, where, skip=frozenset(titles), beyond=beyond)

    data_rows = set(layout.row_numbers.tolist())
    labels = [_label(layout.headers, i) for i in range(len(layout.headers))]
    problems = [
        _cell_problem(note, labels)
        for note in content.notes
        if note.row in data_rows and note.column < len(labels)
    ]
    problems += _merge_problems(content.merges, layout.header_row, data_rows, labels)
    problems += _text_past_header(layout)
    problems.sort(key=lambda problem: (problem.row, problem.column))

    notes = [content.note]
    notes += [
        f"row {number} skipped as a title (merged {ref})"
        for number, ref in titles.items()
    ]
    hidden = tuple(number for number in content.hidden_rows if number in data_rows)
    logger.info("read %s: %s rows=%d", path.name, content.note, len(layout.cells))

    return InputTable(
        path=path,
        kind="xlsx",
        sha256=digest,
        encoding=None,
        delimiter=None,
        sheet=content.sheet,
        sheets=content.sheets,
        headers=layout.headers,
        cells=layout.cells,
        row_numbers=layout.row_numbers,
        problems=tuple(problems),
        blank_rows=layout.blank_rows,
        notes=tuple(notes),
        hidden_rows=hidden,
        header_row=layout.header_row,
        sheet_given=sheet is not None,
    )


def _rows_to_header(
    content: SheetContent, titles: frozenset[int]
) -> tuple[list[list[str]], dict[int, tuple[int, str]]]:
    """Cut every row after the header's last named column.

    Returns the rows, and row index -> (column, text) of the first text cut
    off each row that had some (the header's own far cells included).
    """
    rows = content.rows
    far = {
        index: found[0]
        for index, cells in content.far.items()
        if (found := [(column, text) for column, text in cells if has_text(text)])
    }
    header = next(
        (
            index
            for index, (number, values) in enumerate(
                zip(content.row_numbers, rows, strict=True)
            )
            if number not in titles and (named_width(values) or index in far)
        ),
        len(rows),
    )
    named = named_width(rows[header]) if header < len(rows) else MAX_COLUMNS
    width = named + SPARE_COLUMNS
    beyond: dict[int, tuple[int, str]] = {}
    cut = list(rows)
    for index, values in enumerate(rows):
        if len(values) <= width:
            continue
        cut[index] = values[:width]
        found = [
            (c, values[c]) for c in range(width, len(values)) if has_text(values[c])
        ]
        if found and index >= header:
            beyond[index] = found[0]
    for index, first in far.items():
        if index >= header:
            beyond.setdefault(index, first)

    return cut, beyond


def _text_past_header(layout: _Layout) -> list[CellProblem]:
    """Note a workbook's text too far right to be carried, row by row.

    Unlike CSV, a cell of a workbook is one value: it cannot be half of a
    split amount. Cells without a header near the others are carried like
    any column; farther right, they are not read, and not carried into the
    results.
    """
    problems = []
    for index, (column, text) in sorted(layout.beyond.items()):
        message = (
            f"this row has text in column {column_letter(column)}, more than "
            f"{SPARE_COLUMNS} columns past the last one with a header; it is not "
            "read or carried into the results."
        )
        row = int(layout.row_numbers[index])
        problems.append(CellProblem(row, column, "text_past_header", message, text))

    return problems


def _frame_of_rows(rows: list[list[str]]) -> pd.DataFrame:
    width = max((len(values) for values in rows), default=1)
    columns = itertools.zip_longest(*rows, fillvalue="") if rows else [()] * width

    return pd.DataFrame(
        {i: pd.Series(list(cells), dtype=TEXT) for i, cells in enumerate(columns)}
    )


def _title_rows(content: SheetContent) -> dict[int, str]:
    """Find title rows above the header: one text, in a merge across columns."""
    anchors = {
        (merge.first_row, merge.first_column): merge.ref
        for merge in content.merges
        if merge.last_column > merge.first_column
    }
    titles: dict[int, str] = {}
    for number, values in zip(content.row_numbers, content.rows, strict=True):
        filled = [column for column, text in enumerate(values) if text.strip()]
        if not filled:
            continue
        if len(filled) != 1 or (number, filled[0]) not in anchors:
            break
        titles[number] = anchors[(number, filled[0])]

    return titles


def _label(headers: tuple[str, ...], column: int) -> str:
    return display_header(headers[column]) or f"column {column_letter(column)}"


# How a date cell with no day reads (``numfmt.serial_to_iso``): 12:30:00.
_TIME_ONLY = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")


def date_cell_message(label: str, value: str, column: int, *, noun: str) -> str:
    """Say that a cell holds a date or a time; ``noun``: what was typed ("id")."""
    # A time alone (an id typed 12:30) is no date: saying so would send the
    # merchant looking for a calendar date in the cell.
    what = "a time" if _TIME_ONLY.fullmatch(value) else "a date"
    return (
        f"{label} cell holds {what} ({value}), so Excel converted what was typed; "
        f"the original {noun} cannot be recovered. Format column "
        f"{column_letter(column)} as Text and re-enter it."
    )


def _cell_problem(note: CellNote, labels: list[str]) -> CellProblem:
    label = labels[note.column]
    letter = column_letter(note.column)
    reason = note.reason
    if reason == "date_cell":
        message = date_cell_message(label, note.value, note.column, noun="value")
    elif reason == "error_cell":
        message = (
            f"{label} cell holds the Excel error {note.value}, not a value; fix the "
            f"cell in column {letter} and save the file again."
        )
    elif reason == "formula_without_value":
        message = _formula_message(label, note)
    elif reason == "boolean_cell_invalid":
        stored = f"stores {note.value!r}" if note.value else "stores nothing"
        message = (
            f"{label} is a TRUE/FALSE cell that {stored}, which is neither TRUE "
            "nor FALSE; set the cell to TRUE or FALSE in Excel and save the "
            "file again."
        )
    elif reason == "boolean_cell":
        message = (
            f"{label} cell holds {note.value} (a TRUE/FALSE cell), not text. "
            f"Format column {letter} as Text and re-enter it."
        )
    elif reason == "number_too_long":
        message = (
            f"{label} is a number cell with more than 15 digits ({note.value}); "
            "Excel keeps only 15, so the id has already been changed. Format the "
            "column as Text and re-enter the id."
        )
    elif reason == "number_format_changes_value":
        message = _format_message(label, letter, note)
    elif note.detail == "leading_zeros":
        message = (
            f"{label} is a number cell ({note.value}) displayed with format "
            f"{note.number_format}; the stored value has no leading zeros. Format "
            "the column as Text and re-enter the id."
        )
    else:
        message = (
            f"{label} is a number cell ({note.value}) displayed with format "
            f"{note.number_format}, which shows it differently from the stored "
            "number. Format the column as Text and re-enter the id."
        )

    return CellProblem(note.row, note.column, reason, message)


def _format_message(label: str, letter: str, note: CellNote) -> str:
    """Say that a number cell's format shows another number than it stores."""
    if note.shown is None:
        shown = "shows it differently in Excel"
    elif not note.shown.strip():
        shown = "shows nothing in Excel"
    else:
        shown = f"shows it as {note.shown.strip()} in Excel"

    return (
        f"{label} cell {letter}{note.row} stores the number {note.value}, but its "
        f"number format {note.number_format} {shown} ({WHY_SHOWN[note.detail]}); "
        f"popbatch reads the stored {note.value}, not what Excel shows. Format "
        f"column {letter} as General (or #,##0) and check the value."
    )


def _formula_message(label: str, note: CellNote) -> str:
    if note.detail == "stale":
        return (
            f"{label} cell holds a formula ({note.value}) whose saved result is not "
            "up to date: the workbook asks to be calculated when opened (a script "
            "wrote it) or was saved without calculating. Open it in Excel, let it "
            "calculate, and save it again."
        )
    if note.detail == "empty":
        return (
            f"{label} cell holds a formula ({note.value}) whose result is empty; "
            "a formula is not read as a blank cell. Type the value, or clear the "
            "cell."
        )

    return (
        f"{label} cell holds a formula ({note.value}) with no saved result; "
        "open the file in Excel, let it calculate, and save it again."
    )


def _merge_problems(
    merges: list[Merge], header_row: int, data_rows: set[int], labels: list[str]
) -> list[CellProblem]:
    """Name the merged range in every data-row cell it covers.

    A merge shows one value for several rows; only its first cell holds
    it, so the others read as blank. Merges in the header row or above it
    do not touch orders and are left alone.
    """
    problems: list[CellProblem] = []
    for merge in merges:
        if merge.last_row <= header_row:
            continue
        rows = range(max(merge.first_row, header_row + 1), merge.last_row + 1)
        covered = sorted(data_rows.intersection(rows))
        for column in range(
            merge.first_column, min(merge.last_column + 1, len(labels))
        ):
            message = (
                f"{labels[column]} is in merged cells {merge.ref}; "
                "unmerge and fill each row"
            )
            problems.extend(
                CellProblem(row, column, "merged_cells", message) for row in covered
            )

    return problems


# --- layout ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the header, the data rows and the blank rows between them are."""

    headers: tuple[str, ...]
    header_row: int
    cells: pd.DataFrame
    row_numbers: np.ndarray
    blank_rows: tuple[int, ...]
    beyond: dict[int, tuple[int, str]]  # cells index -> first text cut off

    @classmethod
    def of(
        cls,
        frame: pd.DataFrame,
        numbers: np.ndarray,
        name: str,
        *,
        skip: frozenset[int],
        beyond: dict[int, tuple[int, str]],
    ) -> _Layout:
        """Lay out records (``numbers`` their rows; missing rows are blank).

        ``beyond`` holds, by position in ``frame``, the first text of each
        record past the columns ``frame`` kept.

        Raises:
            InputUnreadableError: no row has any text, or the header has
                text past column ``MAX_COLUMNS``.
        """
        filled = _filled_rows(frame)
        filled[list(beyond)] = True
        positions = np.flatnonzero(filled)
        candidates = [p for p in positions[: len(skip) + 1] if numbers[p] not in skip]
        if not candidates:
            raise InputUnreadableError(f"{name} has no header row: it holds no text")

        header = int(candidates[0])
        if header in beyond:
            raise _too_wide(name, int(numbers[header]), *beyond[header])
        data = positions[positions > header]
        width = _width(frame, header, data)
        headers = tuple(frame.iloc[header, :width].tolist())
        cells = _take(frame, data, width)
        row_numbers = numbers[data].astype(np.int64)
        header_row = int(numbers[header])
        if len(data):
            span = np.arange(header_row + 1, int(row_numbers[-1]) + 1, dtype=np.int64)
            blank = np.setdiff1d(span, row_numbers, assume_unique=True)
        else:
            blank = np.array([], dtype=np.int64)

        return cls(
            headers,
            header_row,
            cells,
            row_numbers,
            tuple(blank.tolist()),
            _by_index(beyond, data),
        )


def _too_wide(name: str, row: int, column: int, text: str) -> InputUnreadableError:
    return InputUnreadableError(
        f"{name}: header cell {column_letter(column)}{row} holds {quote(text)}, "
        f"past column {column_letter(MAX_COLUMNS - 1)}, the last column popbatch "
        "reads",
        hint="Delete it (a value typed far to the right by mistake?) and save "
        "the file again.",
    )


_INVISIBLE = f"[{INVISIBLE}]"


def _has_text(series: pd.Series) -> npt.NDArray[np.bool_]:
    """Tell which cells hold more than spaces (and invisible characters)."""
    has_text = series.str.len().gt(0) & ~series.str.isspace()
    result: npt.NDArray[np.bool_] = np.array(
        has_text.to_numpy(dtype=bool, na_value=False)
    )
    # Only text outside ASCII can hold them: look there alone (ids are ASCII).
    wide = np.flatnonzero(
        result & ~series.str.isascii().to_numpy(dtype=bool, na_value=True)
    )
    if not len(wide):
        return result
    invisible = series.iloc[wide].str.contains(_INVISIBLE, regex=True)
    marked = wide[invisible.to_numpy(dtype=bool, na_value=False)]
    if len(marked):
        rest = series.iloc[marked].str.replace(_INVISIBLE, "", regex=True)
        result[marked] = ~rest.str.isspace().to_numpy(dtype=bool, na_value=False) & (
            rest.str.len().to_numpy(dtype=np.int64, na_value=0) > 0
        )
    return result


def _filled_rows(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Tell which rows hold any text; later columns are read for the rest only."""
    filled = np.zeros(len(frame), dtype=bool)
    for column in frame.columns:
        rest = np.flatnonzero(~filled)
        if not len(rest):
            break
        series = frame[column] if len(rest) == len(frame) else frame[column].iloc[rest]
        filled[rest] = _has_text(series)

    return filled


def _by_index(
    beyond: dict[int, tuple[int, str]], data: npt.NDArray[np.intp]
) -> dict[int, tuple[int, str]]:
    """Key the text cut off data rows by the rows' index in ``cells``."""
    found: dict[int, tuple[int, str]] = {}
    for position, first in beyond.items():
        index = int(np.searchsorted(data, position))
        if index < len(data) and data[index] == position:
            found[index] = first

    return found


def _width(frame: pd.DataFrame, header: int, data: npt.NDArray[np.intp]) -> int:
    """Drop trailing columns that have neither a header nor any data."""
    width = len(frame.columns)
    while width > 1:
        column = frame[frame.columns[width - 1]]
        if _has_text(column.iloc[[header]]).any() or _has_text(column.iloc[data]).any():
            break
        width -= 1

    return width


def _take(frame: pd.DataFrame, data: np.ndarray, width: int) -> pd.DataFrame:
    if len(data) and data[-1] - data[0] + 1 == len(data):
        cells = frame.iloc[int(data[0]) : int(data[-1]) + 1, :width]
    else:
        cells = frame.iloc[data, :width]

    return cells.reset_index(drop=True)
