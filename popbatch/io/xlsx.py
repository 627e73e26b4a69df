"""A streaming reader of Excel workbooks (.xlsx, .xlsm) that keeps cell types.

popbatch reads the OOXML parts itself, with zipfile and ElementTree's
iterparse, because the readers at hand each lose something it needs:
pandas and calamine drop number formats and tell error cells from text
poorly; openpyxl's read-only mode takes many seconds for 100,000 rows and
cannot see merged cells. What is read: the workbook (sheet names and
parts), the shared strings (without the furigana runs Japanese Excel
stores beside them), the styles (number format of each cell style), the
sheet's cells with their types and cached formula results, and its merged
ranges.

This module only turns cells into text and notes what their types say
(a date, an error, a formula without a result...). Which of those facts
rejects a row depends on the column, which ``popbatch.schema`` decides.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from typing import IO
from xml.etree import ElementTree

from popbatch.errors import InputUnreadableError
from popbatch.io.csvfile import MAX_COLUMNS
from popbatch.io.numfmt import (
    BUILTIN_DATES,
    BUILTIN_FORMATS,
    SIGNIFICANT_DIGITS,
    classify_format,
    format_changes_value,
    format_hides_digits,
    is_date_format,
    number_text,
    serial_to_iso,
)

_MAIN_NAMESPACES = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",  # "Strict Open XML"
)
_RELATIONSHIP_ATTRIBUTES = (
    "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id",
    "{http://purl.oclc.org/ooxml/officeDocument/relationships}id",
)
_PACKAGE_RELATIONSHIP = "{http://schemas.openxmlformats.org/package/2006/relationships}"


@dataclass(frozen=True, slots=True)
class CellNote:
    """What a cell's type says, for the reader to turn into a CellProblem.

    Args:
        row: spreadsheet row number.
        column: 0-based column position.
        reason: ``date_cell``, ``error_cell``, ``formula_without_value``,
            ``boolean_cell``, ``boolean_cell_invalid``, ``number_too_long``,
            ``number_format_changes_value`` or ``number_format_hides_digits``.
        value: the cell as read (a date as ISO text, an error as #DIV/0!).
        detail: for ``number_format_hides_digits``, ``leading_zeros`` when
            the format pads the number with zeros, else ``other``; for
            ``number_format_changes_value``, a key of ``numfmt.WHY_SHOWN``; for
            ``formula_without_value``, ``stale`` when the workbook says its
            saved results are not up to date, ``empty`` for an empty result.
        number_format: the cell's number format code, where it matters.
        shown: for ``number_format_changes_value``, what Excel shows ("" for
            nothing), or None when popbatch cannot tell.
    """

    row: int
    column: int
    reason: str
    value: str
    detail: str = ""
    number_format: str = ""
    shown: str | None = None


@dataclass(frozen=True, slots=True)
class Merge:
    """A merged range: rows 1-based, columns 0-based, as written (D2:D4)."""

    ref: str
    first_row: int
    first_column: int
    last_row: int
    last_column: int


@dataclass(slots=True)
class SheetContent:
    """The cells of one sheet as text, with their notes, merges and hidden rows.

    Args:
        row_numbers: the spreadsheet row of each entry of ``rows``; rows
            without any cell text are not listed.
        rows: the cell texts of each row, by column position ("" between),
            up to column ``MAX_COLUMNS``.
        far: index in ``rows`` -> (column, text) of the cells with text past
            ``MAX_COLUMNS``, for the rows that have any: one stray value in
            column XFD must not widen its row to 16,384 cells.
    """

    sheet: str
    sheets: tuple[str, ...]
    note: str
    row_numbers: list[int] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[CellNote] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    hidden_rows: list[int] = field(default_factory=list)
    far: dict[int, list[tuple[int, str]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _SheetEntry:
    name: str
    part: str | None  # None: not a worksheet (a chart sheet, a dialog sheet)
    visible: bool


def read_workbook(data: bytes, name: str, sheet: str | None) -> SheetContent:
    """Read one sheet of a workbook's bytes: the first visible one by default.

    Raises:
        zipfile.BadZipFile: the bytes are no zip archive at all.
        InputUnreadableError: a zip that is no workbook, a damaged part,
            or no such sheet.
    """
    archive = zipfile.ZipFile(io.BytesIO(data))
    with archive:
        try:
            return _Workbook(archive, name).read(sheet)
        except ElementTree.ParseError as error:
            raise InputUnreadableError(
                f"{name}: the workbook is damaged (invalid XML: {error}); "
                "open it in Excel and save it again"
            ) from None
        except (
            zipfile.BadZipFile,
            EOFError,
            KeyError,
            IndexError,
            ValueError,
        ) as error:
            raise InputUnreadableError(
                f"{name}: the workbook is damaged ({error}); "
                "open it in Excel and save it again"
            ) from None


class _Workbook:
    """The parts of one open workbook, read as far as one sheet needs."""

    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self.archive = archive
        self.name = name
        self.members = set(archive.namelist())
        self.workbook_part = self._workbook_part()

    def _workbook_part(self) -> str:
        part = "xl/workbook.xml"
        if "_rels/.rels" in self.members:
            for kind, target in self._relationships("_rels/.rels", "").values():
                if kind.endswith("/officeDocument"):
                    part = target
        if part not in self.members:
            what = (
                "an OpenDocument spreadsheet (.ods)"
                if "mimetype" in self.members
                else "a zip archive"
            )
            raise InputUnreadableError(
                f"{self.name} is {what}, not an Excel workbook; save it as .xlsx "
                "(or CSV UTF-8)"
            )

        return part

    def _relationships(self, part: str, base: str) -> dict[str, tuple[str, str]]:
        """Map relationship id -> (type, target part) of a .rels part."""
        found: dict[str, tuple[str, str]] = {}
        with self.archive.open(part) as stream:
            for _, element in ElementTree.iterparse(stream):
                if element.tag == f"{_PACKAGE_RELATIONSHIP}Relationship":
                    target = element.get("Target", "")
                    if element.get("TargetMode") == "External":
                        continue
                    if target.startswith("/"):
                        target = target[1:]
                    else:
                        target = posixpath.normpath(posixpath.join(base, target))
                    found[element.get("Id", "")] = (element.get("Type", ""), target)

        return found

    def read(self, sheet: str | None) -> SheetContent:
        base = posixpath.dirname(self.workbook_part)
        rels_part = f"{base}/_rels/{posixpath.basename(self.workbook_part)}.rels"
        rels = self._relationships(rels_part, base) if rels_part in self.members else {}
        entries, namespace, date1904, stale = self._sheets(rels)
        chosen, note = self._choose(entries, sheet)
        if chosen.part is None or chosen.part not in self.members:
            raise InputUnreadableError(
                f"{self.name}: sheet {chosen.name!r} is not a sheet of cells "
                "(a chart or dialog sheet)",
                hint="Name a sheet of rows with --sheet.",
            )

        parts = {kind.rsplit("/", 1)[-1]: target for kind, target in rels.values()}
        tags = _Tags(namespace)
        shared = self._shared_strings(parts.get("sharedStrings"), tags)
        styles = self._styles(parts.get("styles"), tags)
        content = SheetContent(chosen.name, tuple(e.name for e in entries), note)
        with self.archive.open(chosen.part) as stream:
            reader = _SheetReader(content, tags, shared, styles, date1904)
            reader.stale_results = stale
            reader.read(stream)

        return content

    def _sheets(
        self, rels: dict[str, tuple[str, str]]
    ) -> tuple[list[_SheetEntry], str, bool, bool]:
        with self.archive.open(self.workbook_part) as stream:
            root = ElementTree.parse(stream).getroot()
        namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
        if namespace not in _MAIN_NAMESPACES:
            namespace = _MAIN_NAMESPACES[0]
        ns = f"{{{namespace}}}"
        properties = root.find(f"{ns}workbookPr")
        date1904 = properties is not None and properties.get("date1904") in (
            "1",
            "true",
        )
        stale = _results_are_stale(root.find(f"{ns}calcPr"))

        entries = []
        for element in root.iter(f"{ns}sheet"):
            rel_id = next(
                (element.get(a) for a in _RELATIONSHIP_ATTRIBUTES if element.get(a)),
                "",
            )
            kind, target = rels.get(rel_id or "", ("", ""))
            part = target if kind.endswith("/worksheet") else None
            visible = element.get("state", "visible") == "visible"
            entries.append(_SheetEntry(element.get("name", ""), part, visible))

        return entries, namespace, date1904, stale

    def _choose(
        self, entries: list[_SheetEntry], sheet: str | None
    ) -> tuple[_SheetEntry, str]:
        if not entries:
            raise InputUnreadableError(f"{self.name}: the workbook has no sheets")
        if sheet is not None:
            for entry in entries:
                if entry.name == sheet:
                    return entry, f"sheet {sheet!r} (given by --sheet)"
            found = ", ".join(repr(entry.name) for entry in entries)
            raise InputUnreadableError(
                f"{self.name} has no sheet {sheet!r} (found {found})",
                hint="Try --sheet with one of those names.",
            )

        sheets = [entry for entry in entries if entry.part is not None]
        visible = [entry for entry in sheets if entry.visible]
        if visible and visible[0] is not entries[0]:
            first = visible[0]
            return first, f"sheet {first.name!r} (first visible of {len(entries)})"
        first = (visible or sheets or entries)[0]

        return first, f"sheet {first.name!r} (first of {len(entries)})"

    def _shared_strings(self, part: str | None, tags: _Tags) -> list[str]:
        if part is None or part not in self.members:
            return []

        reader = _SharedStringsReader(tags)
        parser = ElementTree.XMLParser(target=reader)
        with self.archive.open(part) as stream:
            while chunk := stream.read(1 << 20):
                parser.feed(chunk)
        parser.close()

        return reader.strings

    def _styles(self, part: str | None, tags: _Tags) -> _Styles:
        if part is None or part not in self.members:
            return _Styles([])

        with self.archive.open(part) as stream:
            root = ElementTree.parse(stream).getroot()
        custom = {
            int(element.get("numFmtId", "0")): element.get("formatCode", "")
            for element in root.iter(tags.num_fmt)
        }
        codes = []
        cell_xfs = root.find(tags.cell_xfs)
        for xf in cell_xfs.iter(tags.xf) if cell_xfs is not None else ():
            format_id = int(xf.get("numFmtId", "0"))
            code = custom.get(format_id, BUILTIN_FORMATS.get(format_id))
            is_date = format_id in BUILTIN_DATES or (
                format_id in custom and is_date_format(custom[format_id])
            )
            codes.append((code if code is not None else f"#{format_id}", is_date))

        return _Styles(codes)


def _results_are_stale(calc: ElementTree.Element | None) -> bool:
    """Tell whether a workbook says its saved formula results are not to be trusted.

    XlsxWriter (pandas' default engine) saves 0 as every formula's result
    and sets ``fullCalcOnLoad``, so that Excel calculates them on opening:
    a workbook that no spreadsheet opened since holds only placeholders.
    Manual calculation with ``calcOnSave`` off saves results as they were
    last calculated, before any later edit. Excel and LibreOffice write
    neither on a workbook they calculated.
    """
    if calc is None:
        return False
    if calc.get("fullCalcOnLoad") in ("1", "true"):
        return True

    return calc.get("calcMode") == "manual" and calc.get("calcOnSave") in (
        "0",
        "false",
    )


class _Tags:
    """The qualified tag names of one namespace, computed once."""

    def __init__(self, namespace: str) -> None:
        ns = f"{{{namespace}}}"
        self.row = f"{ns}row"
        self.c = f"{ns}c"
        self.v = f"{ns}v"
        self.f = f"{ns}f"
        self.inline = f"{ns}is"
        self.t = f"{ns}t"
        self.r = f"{ns}r"
        self.si = f"{ns}si"
        self.merge = f"{ns}mergeCell"
        self.num_fmt = f"{ns}numFmt"
        self.cell_xfs = f"{ns}cellXfs"
        self.xf = f"{ns}xf"
        self.phonetic = f"{ns}rPh"


_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


class _SharedStringsReader:
    """XMLParser target for sharedStrings.xml: one text per <si>.

    Rich-text runs are joined; phonetic runs (<rPh>, the furigana Japanese
    Excel stores beside a name) are not part of the text.
    """

    def __init__(self, tags: _Tags) -> None:
        self.tags = tags
        self.strings: list[str] = []
        self.item: list[str] | None = None
        self.parts: list[str] | None = None
        self.phonetic = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag == self.tags.t and self.item is not None and not self.phonetic:
            self.parts = self.item
        elif tag == self.tags.si:
            self.item = []
        elif tag == self.tags.phonetic:
            self.phonetic = True

    def data(self, text: str) -> None:
        if self.parts is not None:
            self.parts.append(text)

    def end(self, tag: str) -> None:
        if tag == self.tags.t:
            self.parts = None
        elif tag == self.tags.si:
            self.strings.append(_unescape("".join(self.item or ())))
            self.item = None
        elif tag == self.tags.phonetic:
            self.phonetic = False

    def close(self) -> None:
        return None


def _unescape(text: str) -> str:
    """Decode the _xHHHH_ escapes OOXML writes for characters XML cannot hold."""
    if "_x" not in text:
        return text

    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), text)


# What a TRUE/FALSE cell (t="b") may store: 1 or 0 (ECMA-376), or the words
# some writers use. Anything else is no boolean; reading it as FALSE would
# change what the merchant sees.
_BOOLEAN_VALUES = {"1": "TRUE", "true": "TRUE", "0": "FALSE", "false": "FALSE"}


class _Styles:
    """Number format code and date-ness of each cell style index."""

    def __init__(self, codes: list[tuple[str, bool]]) -> None:
        self.codes = codes

    def code(self, style: int) -> str:
        return self.codes[style][0] if style < len(self.codes) else "General"

    def is_date(self, style: int) -> bool:
        return style < len(self.codes) and self.codes[style][1]


class _SheetReader:
    """One pass over a sheet's XML, filling a SheetContent.

    The reader is the target of an ElementTree XMLParser: expat calls it for
    each start tag, text and end tag, and no element is ever built. On a
    100,000-row sheet this takes half the time of iterparse, which builds
    and clears an Element for every cell and value.
    """

    def __init__(
        self,
        content: SheetContent,
        tags: _Tags,
        shared: list[str],
        styles: _Styles,
        date1904: bool,
    ) -> None:
        self.content = content
        self.tags = tags
        self.shared = shared
        self.styles = styles
        self.date1904 = date1904
        self.stale_results = False
        self.digits_shown: dict[tuple[int, int], str] = {}
        # (style, sign) -> whether its format shows another number than stored
        self.changes_value: dict[tuple[int, int], bool] = {}
        self.columns: dict[str, int] = {}

        self.row = 0
        self.values: list[str] = []
        self.far: list[tuple[int, str]] = []
        self.hidden = False
        self.column = -1
        self.kind: str | None = None
        self.style = 0
        self.value: str | None = None
        self.formula: str | None = None
        self.parts: list[str] | None = None  # text being collected
        self.inline: list[str] | None = None  # inside <is>
        self.phonetic = False  # inside <rPh>: furigana, not the cell's text

    def read(self, stream: IO[bytes]) -> None:
        """Parse the sheet part, a megabyte at a time."""
        parser = ElementTree.XMLParser(target=self)
        while chunk := stream.read(1 << 20):
            parser.feed(chunk)
        parser.close()

    # The XMLParser target interface: start, data, end, close.

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        tags = self.tags
        if tag == tags.c:
            ref = attrib.get("r")
            self.column = self._column_of(ref) if ref else self.column + 1
            self.kind = attrib.get("t")
            style = attrib.get("s")
            self.style = int(style) if style else 0
            self.value = self.formula = None
        elif tag == tags.v or tag == tags.f:
            self.parts = []
        elif tag == tags.row:
            number = attrib.get("r")
            self.row = int(number) if number else self.row + 1
            self.values = []
            self.far = []
            self.column = -1
            self.hidden = attrib.get("hidden") in ("1", "true")
        elif tag == tags.inline:
            self.inline = []
        elif tag == tags.t and self.inline is not None and not self.phonetic:
            self.parts = self.inline
        elif tag == tags.phonetic:
            self.phonetic = True
        elif tag == tags.merge:
            merge = parse_range(attrib.get("ref", ""))
            if merge is not None:
                self.content.merges.append(merge)

    def data(self, text: str) -> None:
        if self.parts is not None:
            self.parts.append(text)

    def end(self, tag: str) -> None:
        tags = self.tags
        if tag == tags.v:
            self.value = "".join(self.parts or ())
            self.parts = None
        elif tag == tags.c:
            text = self._cell_text()
            if text:
                values = self.values
                column = self.column
                if column >= MAX_COLUMNS:
                    self.far.append((column, text))
                    return
                if column >= len(values):
                    values.extend([""] * (column + 1 - len(values)))
                values[column] = text
        elif tag == tags.row:
            if self.values or self.far:
                content = self.content
                if self.far:
                    content.far[len(content.rows)] = self.far
                content.row_numbers.append(self.row)
                content.rows.append(self.values)
                if self.hidden:
                    content.hidden_rows.append(self.row)
            self.values = []
            self.far = []
        elif tag == tags.f:
            self.formula = "".join(self.parts or ())
            self.parts = None
        elif tag == tags.t:
            self.parts = None
        elif tag == tags.inline:
            self.value = _unescape("".join(self.inline or ()))
            self.inline = None
        elif tag == tags.phonetic:
            self.phonetic = False

    def close(self) -> None:
        return None

    def _column_of(self, ref: str) -> int:
        letters = ref.rstrip("0123456789")
        column = self.columns.get(letters)
        if column is None:
            column = self.columns[letters] = column_of(ref)

        return column

    def _cell_text(self) -> str:
        kind = self.kind
        value = self.value
        if kind == "s":
            return self.shared[int(value)] if value else ""

        # A formula's saved result is its value, unless the workbook says its
        # results are stale, or there is none: openpyxl and other writers
        # store <f>..</f><v/>, and only a text formula (t="str") can have ""
        # as its result.
        formula = self.formula
        if formula is not None and (
            self.stale_results
            or value is None
            or (not value and kind not in ("str", "inlineStr"))
        ):
            text = f"={formula}"
            detail = "stale" if self.stale_results and value else ""
            self._note("formula_without_value", text, detail)
            return text
        if value is None:
            return ""
        if kind is None or kind == "n":
            return self._number(value)
        if kind in ("str", "inlineStr"):
            if formula is not None and not value.strip():
                # =IF(..., "", ...) looks blank, but a blank cancel amount
                # refunds in full and a blank capture captures: a formula's
                # empty result is never read as an empty cell.
                self._note("formula_without_value", f"={formula}", "empty")
            return value
        if kind == "b":
            boolean = _BOOLEAN_VALUES.get(value)
            if boolean is None:
                self._note("boolean_cell_invalid", value)
                return value
            self._note("boolean_cell", boolean)
            return boolean
        if kind == "e":
            self._note("error_cell", value)
            return value
        if kind == "d":
            text = value.removesuffix("T00:00:00").removesuffix("Z")
            self._note("date_cell", text)
            return text

        return value

    def _number(self, value: str) -> str:
        style = self.style
        if style and self.styles.is_date(style):
            text = serial_to_iso(value, date1904=self.date1904)
            self._note("date_cell", text)
            return text
        if (
            value.isascii()
            and value.isdigit()
            and len(value) <= SIGNIFICANT_DIGITS
            and value[0] != "0"
        ):
            text, whole, too_long = value, True, False  # the common case
        elif not value.strip():
            return ""
        else:
            text, whole, too_long = number_text(value)

        if too_long:
            self._note("number_too_long", text)
        elif whole and style:
            self._check_format(style, text)

        return text

    def _check_format(self, style: int, text: str) -> None:
        """Note a whole number whose format shows another number, or other digits.

        A format that shows another number (5000000 as 5,000, 50 as 5000%,
        0 as TRUE) rejects the cell in every column popbatch reads; one that
        only shows other digits (123 as 000123, 123.00) matters for ids.
        """
        code = self.styles.code(style)
        sign = -1 if text[0] == "-" else int(text != "0")
        key = (style, sign)
        changes = self.changes_value.get(key)
        if changes is None:
            changes = self.changes_value[key] = bool(classify_format(code, sign))
        change = format_changes_value(code, int(text)) if changes else None
        if change is not None:
            why, shown = change
            note = CellNote(
                self.row,
                self.column,
                "number_format_changes_value",
                text,
                why,
                code,
                shown,
            )
            self.content.notes.append(note)
            return

        hides = self._digits_shown(style, len(text.lstrip("-")))
        if hides:
            self._note("number_format_hides_digits", text, hides, code)

    def _digits_shown(self, style: int, digits: int) -> str:
        """Return "" if the style shows a whole number's own digits, else why not."""
        key = (style, digits)
        if key not in self.digits_shown:
            self.digits_shown[key] = format_hides_digits(
                self.styles.code(style), digits
            )

        return self.digits_shown[key]

    def _note(
        self, reason: str, value: str, detail: str = "", number_format: str = ""
    ) -> None:
        self.content.notes.append(
            CellNote(self.row, self.column, reason, value, detail, number_format)
        )


# --- cell references -----------------------------------------------------------


@lru_cache(maxsize=4096)
def _letters_to_index(letters: str) -> int:
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - 64

    return index - 1


def column_of(ref: str) -> int:
    """Return the 0-based column of a cell reference such as ``AB12``."""
    return _letters_to_index(ref.rstrip("0123456789$").replace("$", ""))


def _row_of(ref: str) -> int:
    digits = ref[len(ref.rstrip("0123456789")) :]
    return int(digits) if digits else 0


def parse_range(ref: str) -> Merge | None:
    """Parse a merged range such as ``D2:D4``; None for one cell or nonsense."""
    if ":" not in ref:
        return None
    first, last = ref.replace("$", "").split(":", 1)
    if not re.fullmatch(r"[A-Za-z]+[0-9]+", first) or not re.fullmatch(
        r"[A-Za-z]+[0-9]+", last
    ):
        return None

    return Merge(
        ref,
        min(_row_of(first), _row_of(last)),
        min(column_of(first), column_of(last)),
        max(_row_of(first), _row_of(last)),
        max(column_of(first), column_of(last)),
    )
