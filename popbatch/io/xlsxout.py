"""results.xlsx: the workbook and each result group's sheets, formula-safe.

(The Summary sheet, always the first, is filled by ``io.summarysheet``.)

Formula safety (case 16): every text goes through ``write_string`` in a
workbook whose ``strings_to_formulas``, ``strings_to_numbers`` and
``strings_to_urls`` options are off, so no cell is ever a formula, a number
guessed from text or a link. Text is stored as it is: no apostrophe prefix,
which would change an id such as ``-INJ-004``.

What Excel cannot hold is changed visibly and counted in the Summary:

- control characters (C0 other than tab, line feed and carriage return),
  lone surrogates and the non-characters U+FFFE and U+FFFF become U+FFFD
  (the replacement character); the CSV files keep them unchanged;
- a value longer than Excel's 32,767 characters (UTF-16 units) is cut and
  ends with a marker saying how long it was;
- a group longer than a sheet continues on "Succeeded (2)" and so on.

xlsxwriter takes a text that starts with ``<r>`` and ends with ``</r>`` for
rich-text XML and copies it into the file unescaped, whatever its options: a
crafted value could close its cell and add a formula cell (in constant-memory
mode) or corrupt the file. Such a value is written through
``write_rich_string`` instead, which escapes its characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from popbatch.io.layout import Cell, Kind, Layout
from popbatch.io.numfmt import number_text

EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_TEXT = 32_767
REPLACEMENT = "\ufffd"

# Characters an xlsx cannot carry as text: C0 controls but tab, LF and CR,
# UTF-16 surrogates (they cannot be encoded) and two non-characters.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# Values sampled per column to estimate its width.
WIDTH_SAMPLE = 200
_MAX_WIDTH = {
    Kind.TEXT: 50,
    Kind.WRAP: 60,
    Kind.LONG: 60,
    Kind.NUMBER: 14,
    Kind.AMOUNT: 16,
}


@dataclass(frozen=True, slots=True)
class WorkbookLimits:
    """Sizes at which the workbook changes how it is written.

    Args:
        max_rows: rows in a sheet, header included (Excel's limit; tests
            pass a small one to see a group continue on a second sheet).
        constant_memory_cells: above this many cells, xlsxwriter streams
            each row to disk instead of holding the workbook in memory:
            slower (about 1.8x here) but flat in memory.
    """

    max_rows: int = EXCEL_MAX_ROWS
    constant_memory_cells: int = 2_000_000


@dataclass(slots=True)
class WritingNotes:
    """What the workbook had to change, for the Summary's notices."""

    replaced_cells: int = 0
    cut_cells: int = 0
    continued: list[tuple[str, str]] = field(default_factory=list)

    def sentences(self) -> list[str]:
        """The notes as sentences for the Summary."""
        found = []
        if self.replaced_cells:
            cells = _plural(self.replaced_cells, "cell held", "cells held")
            found.append(
                f"{cells} characters Excel cannot store (control characters): "
                "results.xlsx shows each as \ufffd; the CSV files hold them unchanged."
            )
        if self.cut_cells:
            one = self.cut_cells == 1
            found.append(
                f"{_plural(self.cut_cells, 'value was', 'values were')} longer than "
                f"Excel's 32,767 characters and {'is' if one else 'are'} cut in "
                f"results.xlsx; the CSV files hold {'it' if one else 'them'} whole."
            )
        for first, more in self.continued:
            found.append(
                f"{first} has more rows than a sheet holds: it continues on '{more}'."
            )
        return found


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def joined_texts(values: Sequence[Cell]) -> str:
    """A row's text values joined by line feeds, to search them all at once."""
    return "\n".join([value for value in values if value.__class__ is str])


def excel_text(text: str, notes: WritingNotes) -> str:
    """``text`` as Excel can store it: see the module docstring."""
    if _UNSTORABLE.search(text):
        text = _UNSTORABLE.sub(REPLACEMENT, text)
        notes.replaced_cells += 1

    # A string under half the limit cannot pass it in UTF-16 units.
    if len(text) > EXCEL_MAX_TEXT // 2:
        units = text.encode("utf-16-le")
        if len(units) // 2 > EXCEL_MAX_TEXT:
            marker = f" … [cut: {len(text):,} characters in all]"
            keep = (EXCEL_MAX_TEXT - len(marker)) * 2
            text = units[:keep].decode("utf-16-le", errors="ignore") + marker
            notes.cut_cells += 1
    return text


def display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: East Asian wide characters count two."""
    widest = 0
    for line in text.split("\n"):
        if line.isascii():
            width = len(line)
        else:
            width = sum(
                2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line
            )
        widest = max(widest, width)
    return widest


def column_widths(layout: Layout, sample: Sequence[Sequence[Cell]]) -> list[int]:
    """Column widths from the header and a sample of rows, within sensible bounds."""
    widths = []
    for position, column in enumerate(layout.columns):
        widest = display_width(column.header) + 2
        for values in sample:
            value = values[position]
            if isinstance(value, str):
                widest = max(widest, display_width(value[:200]))
            elif isinstance(value, int):
                widest = max(widest, len(f"{value:,}"))
        widths.append(min(max(widest + 1, 6), _MAX_WIDTH[column.kind]))
    return widths


class ResultWorkbook:
    """results.xlsx while it is written: Summary first, then each group's sheets.

    Sheets are filled row by row, in order, which is what xlsxwriter's
    constant-memory mode requires.
    """

    def __init__(
        self, path: Path, *, cells: int, limits: WorkbookLimits, tmpdir: Path
    ) -> None:
        self.notes = WritingNotes()
        self._limits = limits
        self._book = xlsxwriter.Workbook(
            str(path),
            {
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
                "constant_memory": cells > limits.constant_memory_cells,
                "use_zip64": cells > 10 * limits.constant_memory_cells,
                "tmpdir": str(tmpdir),
            },
        )
        book = self._book
        self.formats = {
            Kind.TEXT: book.add_format({"valign": "top"}),
            Kind.WRAP: book.add_format({"valign": "top", "text_wrap": True}),
            Kind.LONG: book.add_format({"valign": "top"}),
            Kind.NUMBER: book.add_format({"valign": "top"}),
            Kind.AMOUNT: book.add_format({"valign": "top", "num_format": "#,##0"}),
        }
        self.header = book.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "bottom": 1, "valign": "top"}
        )
        # A neutral run for the rich-text path: same font as every other cell.
        self._plain_run = book.add_format()
        # Added first, so that it is the first sheet; filled by SummarySheet.
        self.summary_sheet = book.add_worksheet("Summary")

    def add_format(self, properties: dict[str, Any]) -> Format:
        """A cell format of this workbook."""
        return self._book.add_format(properties)

    def add_chart(self, options: dict[str, Any]) -> Any:
        """A chart of this workbook, to insert into a sheet."""
        return self._book.add_chart(options)

    def group_sheets(
        self, layout: Layout, rows: int, sample: Sequence[Sequence[Cell]]
    ) -> GroupSheets:
        """Start the sheet(s) of one group, which will hold ``rows`` rows."""
        return GroupSheets(self, layout, rows, column_widths(layout, sample))

    def add_sheet(self, name: str) -> Worksheet:
        """A new sheet after the ones written so far."""
        return self._book.add_worksheet(name)

    @property
    def max_rows(self) -> int:
        """Rows a sheet may hold, header included."""
        return self._limits.max_rows

    def write_rich_safe(
        self, sheet: Worksheet, row: int, col: int, text: str, cell_format: Format
    ) -> None:
        """Write text that xlsxwriter would take for rich-text XML, escaped."""
        sheet.write_rich_string(
            row, col, text[:1], self._plain_run, text[1:], cell_format
        )

    def close(self) -> None:
        """Finish the file; xlsxwriter raises its own errors for a failed write."""
        self._book.close()


class GroupSheets:
    """The sheet (or sheets, past Excel's row limit) of one result group."""

    def __init__(
        self, book: ResultWorkbook, layout: Layout, rows: int, widths: list[int]
    ) -> None:
        self._book = book
        self._layout = layout
        self._widths = widths
        self._left = rows
        self._formats = [book.formats[column.kind] for column in layout.columns]
        self._per_sheet = book.max_rows - 1
        self._count = 0
        self._start_sheet()

    def _start_sheet(self) -> None:
        self._count += 1
        name = self._layout.group.value
        if self._count > 1:
            name = f"{name} ({self._count})"
            self._book.notes.continued.append((self._layout.group.value, name))

        sheet = self._book.add_sheet(name)
        headers = self._layout.headers
        for position, (header, width) in enumerate(
            zip(headers, self._widths, strict=True)
        ):
            sheet.set_column(position, position, width)
            sheet.write_string(
                0, position, excel_text(header, self._book.notes), self._book.header
            )
        on_sheet = min(self._left, self._per_sheet)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, on_sheet, len(headers) - 1)
        self._sheet = sheet
        self._row = 1

    def add(self, values: Sequence[Cell], texts: str) -> None:
        """Write one result row.

        Args:
            texts: the row's text values joined by line feeds (see
                ``joined_texts``), searched once for anything that needs care.
        """
        if self._row > self._per_sheet:
            self._start_sheet()
        row = self._row
        sheet = self._sheet
        formats = self._formats

        # A row of short, clean texts (nearly all of them) goes straight on;
        # the rare one with something Excel cannot take is written carefully.
        if (
            len(texts) > EXCEL_MAX_TEXT // 2
            or "<r>" in texts
            or _UNSTORABLE.search(texts)
        ):
            self._add_carefully(row, values)
        else:
            for col, value in enumerate(values):
                if value is None or value == "":
                    continue
                if value.__class__ is int:
                    sheet.write_number(row, col, value, formats[col])
                else:
                    sheet.write_string(row, col, value, formats[col])

        self._row = row + 1
        self._left -= 1

    def _add_carefully(self, row: int, values: Sequence[Cell]) -> None:
        sheet = self._sheet
        for col, value in enumerate(values):
            if value is None or value == "":
                continue
            cell_format = self._formats[col]
            if isinstance(value, int):
                sheet.write_number(row, col, value, cell_format)
                continue

            text = excel_text(value, self._book.notes)
            if text.startswith("<r>") and text.endswith("</r>"):
                self._book.write_rich_safe(sheet, row, col, text, cell_format)
            else:
                sheet.write_string(row, col, text, cell_format)


# A number as popbatch's reader writes an Excel number cell: no sign but a
# minus, no leading zero, no separators, no exponent, at most 15 digits.
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")


def number_of(text: str) -> int | float | None:
    """The number whose cell popbatch's reader reads as ``text``; None for other text.

    ``text`` must be exactly that reading (``1000``, not ``1000.0`` or
    ``01000``), so that the number, read back, gives the same text.
    """
    if not _NUMBER_TEXT.fullmatch(text):
        return None
    if "." not in text:
        whole = int(text)
        return whole if str(whole) == text else None  # not "-0"
    number = float(text)
    shown, whole, too_long = number_text(text)
    if whole or too_long or shown != text:
        return None

    return number


def write_text_workbook(
    path: Path,
    sheet_name: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    tmpdir: Path,
    notes: WritingNotes,
    number_columns: frozenset[int] = frozenset(),
) -> None:
    """A plain workbook (retry.xlsx): a header row, then the rows.

    The cells as read are all text (a reader's text of an Excel number is
    its digits), so each is written as a string, keeping ids such as
    ``000123`` whole, except in ``number_columns``: there a text that is a
    number as popbatch's reader writes one (``5000``, ``-20``, ``1000.5``;
    not ``05000``, ``1,000`` or ``5000.0``) is written as a number, so that
    an amount column stays numbers that Excel can sum. Either reads back as
    the same text.

    Args:
        number_columns: 0-based positions of the columns whose numbers are
            written as numbers (the amount column).
    """
    book = xlsxwriter.Workbook(
        str(path),
        {
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "tmpdir": str(tmpdir),
        },
    )
    plain = book.add_format()
    sheet = book.add_worksheet(sheet_name[:31])
    for row, values in enumerate([headers, *rows]):
        for col, value in enumerate(values):
            if value is None or value == "":
                continue
            number = number_of(str(value)) if row and col in number_columns else None
            if number is not None:
                sheet.write_number(row, col, number)
                continue
            text = excel_text(str(value), notes)
            if text.startswith("<r>") and text.endswith("</r>"):
                sheet.write_rich_string(row, col, text[:1], plain, text[1:])
            else:
                sheet.write_string(row, col, text)
    book.close()
