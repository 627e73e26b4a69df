"""CSV text: encoding detection, delimiter, and records read as text only.

The whole file is decoded before anything is parsed, so a CP932 file whose
first non-ASCII byte sits far down is still recognised (case 01). Decoding
is strict: never the ``shift_jis`` codec (what Windows calls Shift_JIS is
CP932), never ``errors="replace"``, never a latin-1 guess.

Records are parsed by pyarrow when the file is rectangular (every record
has as many fields as the header), and by the csv module otherwise; both
give the same text for the same file (tests/test_readers.py checks this).
Every record is one spreadsheet row, as Excel shows the file, so a quoted
cell holding line breaks does not shift the row numbers after it.

Records are kept no wider than ``SPARE_COLUMNS`` past the header's last
named column: one value typed in column XFD would otherwise widen every row
to 16,384 cells. Text cut off is remembered per record, sparsely, for the
reader to reject.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pyarrow as pa
import pyarrow.csv as pacsv

from popbatch.errors import InputUnreadableError, UsageError

logger = logging.getLogger(__name__)

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Python's shift_jis codec fails on 髙, 﨑, ① and the other characters
# Windows adds; every file a user calls Shift_JIS is read as CP932.
_SHIFT_JIS_FAMILY = frozenset({"shift_jis", "cp932"})

# A CSV cell that popbatch wrote starts with an apostrophe when its text
# starts with one of these (the formula-injection guard of its CSV output).
APOSTROPHE_GUARDED = "=+-@\t\r＝＋－＠"
_APOSTROPHE_PATTERN = "'[=+\\-@\t\r＝＋－＠]"

# Records the csv module parses before they become Arrow columns.
_CHUNK_RECORDS = 100_000

# The widest header popbatch reads: 1,024 columns (A to AMJ). A header cell
# past it is a stray value, and a table that wide a waste of memory.
MAX_COLUMNS = 1024

# Columns kept past the header's last named column. An amount typed 1,000
# without quotes spills into the next cell, and 1,000,000 into two: such
# text stays in its column, so that the results and the retry file show the
# row as it was written. Text farther right is a stray value, kept sparsely.
SPARE_COLUMNS = 16

# Characters that show nothing but are no whitespace to str.isspace: the
# zero-width space and the BOM, which text pasted from web pages carries.
INVISIBLE = "\u200b\ufeff"
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE)


def has_text(text: str) -> bool:
    """Tell whether a cell holds more than spaces and invisible characters."""
    return bool(text.translate(_DROP_INVISIBLE).strip())


def named_width(cells: list[str]) -> int:
    """Return how many cells run up to the last one with text (0: none has)."""
    for position in range(len(cells) - 1, -1, -1):
        if has_text(cells[position]):
            return position + 1

    return 0


@dataclass(frozen=True, slots=True)
class CsvRecords:
    """Every record of a CSV file as text, before the header is looked for.

    Args:
        records: one row per record, columns 0..n-1, text ("" when empty);
            no wider than the header's last named column, give or take
            a few blank header cells after it.
        beyond: record index -> (column, text) of the first cell with text
            past ``records``' columns, for the records that had one.
    """

    encoding: str
    delimiter: str
    records: pd.DataFrame
    beyond: dict[int, tuple[int, str]] = field(default_factory=dict)


def read_csv_records(data: bytes, name: str, encoding: str | None) -> CsvRecords:
    """Decode and parse a CSV file's bytes into text records.

    Raises:
        InputUnreadableError: the bytes are not text in a supported
            encoding, or a quoted cell is never closed.
        UsageError: ``encoding`` is not an encoding Python knows.
    """
    _refuse_binary(data, name)
    codec, utf8 = decode(data, name, encoding)
    delimiter = sniff_delimiter(utf8, prefer_tab=codec.startswith("utf-16"))

    width, named = _header_widths(utf8, delimiter)
    records = None
    if width - named > SPARE_COLUMNS and b'"' not in utf8:
        utf8 = _drop_trailing_delimiters(utf8, delimiter)
    elif 0 < named <= MAX_COLUMNS and width - named <= SPARE_COLUMNS:
        records = parse_fast(utf8, delimiter)
    if records is not None:
        beyond: dict[int, tuple[int, str]] = {}
        last = records.iloc[-1].tolist() if len(records) else []
    else:
        logger.debug("%s is not rectangular; parsing it with the csv module", name)
        records, beyond, last = _parse_to_header(utf8, delimiter)
    _refuse_unclosed_quote(last, utf8, name)

    return CsvRecords(codec, delimiter, drop_guard_apostrophes(records), beyond)


def _refuse_binary(data: bytes, name: str) -> None:
    if data.startswith(b"PK\x03\x04"):
        raise InputUnreadableError(
            f"{name} is a zip archive (as .xlsx workbooks are), not CSV text; "
            "if it is a workbook, give it the .xlsx extension"
        )
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputUnreadableError(
            f"{name} is an Excel 97-2003 workbook, not CSV text; open it in Excel "
            "and save as .xlsx (or CSV UTF-8)"
        )


# --- encodings -------------------------------------------------------------


def resolve_encoding(encoding: str) -> str:
    """Return the codec for an encoding a user named; Shift_JIS means CP932.

    Raises:
        UsageError: Python knows no such encoding.
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        if encoding.strip().casefold() in {"windows-31j", "x-sjis", "sjis-win"}:
            return "cp932"
        raise UsageError(
            f"unknown encoding {encoding!r} for --encoding",
            hint="Use utf-8, utf-16 or cp932 (Shift_JIS files are cp932).",
        ) from None

    return "cp932" if codec in _SHIFT_JIS_FAMILY else codec


def decode(data: bytes, name: str, encoding: str | None) -> tuple[str, bytes]:
    """Find the file's encoding and return it with the text as UTF-8 bytes.

    A byte-order mark decides first; then the whole file must be UTF-8, or
    else CP932. With ``encoding`` given, only that is tried.
    """
    if encoding is not None:
        codec = resolve_encoding(encoding)
        if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
            codec = "utf-8-sig"
        return codec, _decode_as(data, codec, name, given=True)

    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, _decode_as(data, codec, name, given=False)

    utf8_error = _utf8_error(data)
    if utf8_error is None:
        _refuse_nul(data, name)
        return "utf-8", data

    try:
        text = data.decode("cp932")
        cp932_line = _line_of_stray(text)
    except UnicodeDecodeError as cp932_error:
        cp932_line = _line_of(data, cp932_error.start)
    not_utf8 = _line_of(data, utf8_error.start)
    wide, utf8 = _utf8_japanese_lines(data)
    if utf8 and (cp932_line or len(utf8) * 10 >= wide):
        raise _mixed_encodings(name, utf8[0], not_utf8)
    if cp932_line:
        raise InputUnreadableError(
            f"{name} is neither UTF-8 (line {not_utf8} "
            f"has byte 0x{data[utf8_error.start]:02x}) nor CP932 "
            f"(line {cp932_line}); the encodings tried were utf-8 and cp932",
            hint='Save it from Excel as "CSV UTF-8", or name its encoding '
            "with --encoding.",
        ) from None
    if utf8:
        logger.warning(
            "%s is read as CP932, but line %d is valid UTF-8 (%s): if that row's "
            "text looks garbled in the results, the file mixes encodings",
            name,
            utf8[0],
            _line_text(data, utf8[0])[:60],
        )

    return "cp932", _checked_text(text, name).encode("utf-8")


# A UTF-8 kana, CJK or full-width character: three bytes, E3-E9 or EF first.
_UTF8_JAPANESE_BYTES = re.compile(rb"[\xe3-\xe9\xef][\x80-\xbf][\x80-\xbf]")
_JAPANESE = re.compile("[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")


def _utf8_japanese_lines(data: bytes) -> tuple[int, list[int]]:
    """Count the non-ASCII lines, and list those that are UTF-8 with Japanese.

    Rows appended from another export make a file partly UTF-8, partly
    CP932. Read as CP932 as a whole, its UTF-8 lines turn into mojibake
    (返金 into 霑秘≡) without any error. A CP932 line is valid UTF-8 with
    Japanese in it only by rare chance, so the caller refuses the file when
    such lines are a tenth or more of its non-ASCII lines, and names fewer
    in a warning.
    """
    if not _UTF8_JAPANESE_BYTES.search(data):
        return 0, []
    lines = data.split(b"\n")
    wide = [number for number, line in enumerate(lines, 1) if not line.isascii()]
    utf8 = [
        number
        for number in wide
        if _UTF8_JAPANESE_BYTES.search(lines[number - 1])
        and _is_utf8_japanese(lines[number - 1])
    ]

    return len(wide), utf8


def _line_text(data: bytes, number: int) -> str:
    return data.split(b"\n", number)[number - 1].decode("utf-8").strip()


def _mixed_encodings(
    name: str, utf8_line: int, other_line: int
) -> InputUnreadableError:
    return InputUnreadableError(
        f"{name} mixes encodings: line {utf8_line} is UTF-8 and line "
        f"{other_line} is not; read as either one, some lines would be garbled",
        hint='Save the whole file again in one encoding (Excel: "CSV UTF-8"); '
        "if it really is all CP932, say so with --encoding cp932.",
    )


def _is_utf8_japanese(line: bytes) -> bool:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False

    return _JAPANESE.search(text) is not None


# Bytes CP932 decodes on their own to a C1 control or to U+F8F0..U+F8F3:
# Japanese Windows never writes them as text, latin-1 files do (0x80, the
# NBSP 0xA0, 0xFD-0xFF), so such a "CP932" reading is mojibake.
_STRAY_CP932 = re.compile("[\x80\uf8f0-\uf8f3]")


def _line_of_stray(text: str) -> int:
    match = _STRAY_CP932.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _decode_as(data: bytes, codec: str, name: str, *, given: bool) -> bytes:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as error:
        line = _line_of_decoded(data, error.start, codec)
        how = "is not" if given else "starts with a byte-order mark but is not"
        raise InputUnreadableError(
            f"{name} {how} valid {codec}: line {line} has bytes that {codec} "
            "cannot decode",
            hint="Name the file's real encoding with --encoding "
            "(utf-8, utf-16 or cp932), or leave it out to detect it.",
        ) from None

    return _checked_text(text.removeprefix("\ufeff"), name).encode("utf-8")


def _utf8_error(data: bytes) -> UnicodeDecodeError | None:
    """Check that all of ``data`` is UTF-8, a chunk at a time (no big copy)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    view = memoryview(data)
    step = 1 << 20
    offset = 0
    try:
        for offset in range(0, len(data), step):
            decoder.decode(view[offset : offset + step])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        # The error's position is within the chunk; make it file-wide.
        return UnicodeDecodeError(
            "utf-8", data, offset + error.start, offset + error.end, error.reason
        )

    return None


def _line_of(data: bytes, position: int) -> int:
    return data.count(b"\n", 0, max(position, 0)) + 1


def _line_of_decoded(data: bytes, position: int, codec: str) -> int:
    # The bytes before the error decode cleanly; count lines in that text
    # (for UTF-16 a byte count of b"\n" would be wrong).
    try:
        return data[:position].decode(codec).count("\n") + 1
    except UnicodeDecodeError:
        return _line_of(data, position)


def _refuse_nul(data: bytes, name: str) -> None:
    if b"\x00" in data:
        raise InputUnreadableError(
            f"{name} contains NUL bytes, so it is not CSV text (it may be UTF-16 "
            "without a byte-order mark, or a binary file)",
            hint='Save it from Excel as "CSV UTF-8" or "Unicode Text".',
        )


def _checked_text(text: str, name: str) -> str:
    if "\x00" in text:
        _refuse_nul(b"\x00", name)

    return text


# --- parsing -----------------------------------------------------------------


def sniff_delimiter(utf8: bytes, *, prefer_tab: bool = False) -> str:
    """Choose comma or tab from the header line: whichever it has more of.

    Characters inside quotes do not count. A UTF-16 file (Excel's "Unicode
    text") is tab-separated when its header holds any tab.
    """
    head = utf8[: utf8.find(b"\n")] if b"\n" in utf8 else utf8
    commas = tabs = 0
    quoted = False
    for byte in head:
        if byte == 0x22:
            quoted = not quoted
        elif not quoted and byte == 0x2C:
            commas += 1
        elif not quoted and byte == 0x09:
            tabs += 1
    if tabs and (prefer_tab or tabs > commas):
        return "\t"

    return ","


def _drop_trailing_delimiters(utf8: bytes, delimiter: str) -> bytes:
    """Remove the delimiters at the end of every line: they add empty cells only.

    Excel pads the rows of a CSV file to the widest row of the sheet, so one
    value typed in column XFD puts 16,383 commas on every line. Without any
    quote in the file no cell holds a line break, so each line is a record
    and its trailing delimiters are empty cells.
    """
    run = re.escape(delimiter.encode())
    return re.sub(rb"(?<!%s)%s++(?=[\r\n]|\Z)" % (run, run), b"", utf8)


def _header_widths(utf8: bytes, delimiter: str) -> tuple[int, int]:
    """Return how many cells the first record has, and up to its last text."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    head = decoder.decode(utf8[: 1 << 16], final=len(utf8) <= 1 << 16)
    reader = csv.reader(io.StringIO(head, newline=""), delimiter=delimiter)
    first = next(reader, [""])

    return len(first), named_width(first)


def parse_fast(utf8: bytes, delimiter: str) -> pd.DataFrame | None:
    """Parse UTF-8 CSV bytes with pyarrow, every column as text.

    Returns None when the file is not rectangular (or pyarrow cannot read
    it otherwise): the caller then uses ``parse_exact``. Empty lines come
    back as records of empty cells, as the csv module gives them.
    """
    width = _header_widths(utf8, delimiter)[0]
    if width == 0:
        return None  # a blank first line: the csv module copes with it
    names = [f"f{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            pa.BufferReader(utf8),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
                true_values=[],
                false_values=[],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as error:
        logger.debug("pyarrow could not parse the file: %s", error)
        return None
    if table.num_columns != width:
        return None

    frame = table.to_pandas(types_mapper={pa.string(): TEXT}.get)
    frame.columns = pd.RangeIndex(width)

    return frame


def parse_exact(utf8: bytes, delimiter: str) -> pd.DataFrame:
    """Parse CSV text with the csv module; short records are padded with "".

    This reads any file the csv module can, ragged or not; it is the
    reference ``parse_fast`` is tested against. Records are turned into
    Arrow columns a chunk at a time, so a large ragged file never holds
    all its cells as Python strings at once.
    """
    lines = io.TextIOWrapper(io.BytesIO(utf8), encoding="utf-8", newline="")
    reader = csv.reader(lines, delimiter=delimiter)
    chunks: list[list[pa.Array]] = []
    lengths: list[int] = []
    while records := list(itertools.islice(reader, _CHUNK_RECORDS)):
        chunks.append(_arrow_columns(records))
        lengths.append(len(records))

    return _frame_of_chunks(chunks, lengths)


def _parse_to_header(
    utf8: bytes, delimiter: str
) -> tuple[pd.DataFrame, dict[int, tuple[int, str]], list[str]]:
    """Parse CSV text with the csv module, keeping the header's columns.

    Returns the records, the first text cut off each record that had some
    (record index -> (column, text)), and the last record, whole.
    """
    lines = io.TextIOWrapper(io.BytesIO(utf8), encoding="utf-8", newline="")
    reader = csv.reader(lines, delimiter=delimiter)
    cutter = _HeaderWidth()
    chunks: list[list[pa.Array]] = []
    lengths: list[int] = []
    while records := list(itertools.islice(map(cutter.cut, reader), _CHUNK_RECORDS)):
        chunks.append(_arrow_columns(records))
        lengths.append(len(records))

    return _frame_of_chunks(chunks, lengths), cutter.beyond, cutter.last


class _HeaderWidth:
    """Cuts each record ``SPARE_COLUMNS`` after the header's last named column.

    The header is the first record with text; records before it are blank,
    however many cells they have. A header named past ``MAX_COLUMNS`` is
    cut there, and its cut-off text kept like any other record's.
    """

    def __init__(self) -> None:
        self.width = 0
        self.index = -1
        self.beyond: dict[int, tuple[int, str]] = {}
        self.last: list[str] = []

    def cut(self, cells: list[str]) -> list[str]:
        """Return a record's cells up to the header's width."""
        self.index += 1
        self.last = cells
        width = self.width
        if not width:
            named = named_width(cells)
            if not named:
                return []
            width = MAX_COLUMNS if named > MAX_COLUMNS else named + SPARE_COLUMNS
            self.width = width
        if len(cells) <= width:
            return cells

        found = _first_text(cells, width)
        if found[1]:
            self.beyond[self.index] = found
        return cells[:width]


def _first_text(cells: list[str], start: int) -> tuple[int, str]:
    """Return (column, text) of the first cell with text from ``start`` on."""
    for column in range(start, len(cells)):
        if has_text(cells[column]):
            return column, cells[column]

    return start, ""


def _arrow_columns(records: list[list[str]]) -> list[pa.Array]:
    columns = itertools.zip_longest(*records, fillvalue="")
    return [pa.array(cells, type=pa.large_string()) for cells in columns]


def _frame_of_chunks(chunks: list[list[pa.Array]], lengths: list[int]) -> pd.DataFrame:
    width = max((len(chunk) for chunk in chunks), default=1)
    empty = pa.array([], type=pa.large_string())
    table = pa.table(
        {
            f"f{i}": pa.chunked_array(
                [
                    chunk[i]
                    if i < len(chunk)
                    else pa.array([""] * length, type=pa.large_string())
                    for chunk, length in zip(chunks, lengths, strict=True)
                ]
                or [empty],
                type=pa.large_string(),
            )
            for i in range(width)
        }
    )
    frame = table.to_pandas(types_mapper={pa.large_string(): TEXT}.get)
    frame.columns = pd.RangeIndex(width)

    return frame


def _refuse_unclosed_quote(last: list[str], utf8: bytes, name: str) -> None:
    """Refuse a file whose last quoted cell runs to the end of the file.

    An unclosed quote makes every later record part of one cell, so rows
    would vanish into it without an error. ``last`` is the last record.
    """
    cell = next((text for text in reversed(last) if text), "")
    if "\n" not in cell and "\r" not in cell:
        return
    tail = cell.encode("utf-8")
    start = len(utf8) - len(tail)
    if utf8.endswith(tail) and start > 0 and utf8[start - 1 : start] == b'"':
        raise InputUnreadableError(
            f"{name}: a quoted cell that opens on line {_line_of(utf8, start)} "
            "is never closed, so everything after it would be read as one cell",
            hint='Check the double quotes (") on that line.',
        )


def drop_guard_apostrophes(records: pd.DataFrame) -> pd.DataFrame:
    """Drop the apostrophe popbatch's CSV output puts before = + - @ TAB CR.

    Only an apostrophe followed by one of those characters (or their
    full-width forms) is dropped, so popbatch's own retry file reads back
    exactly; any other apostrophe is text and stays.
    """
    result = records
    for column in records.columns:
        series = records[column]
        quoted = np.flatnonzero(series.str.startswith("'").to_numpy(dtype=bool))
        if not len(quoted):
            continue
        guarded = np.zeros(len(series), dtype=bool)
        guarded[quoted] = (
            series.iloc[quoted]
            .str.match(_APOSTROPHE_PATTERN)
            .to_numpy(dtype=bool, na_value=False)
        )
        if guarded.any():
            if result is records:
                result = records.copy()
            fixed = series.copy()
            fixed[guarded] = series[guarded].str.slice(1)
            result[column] = fixed

    return result
