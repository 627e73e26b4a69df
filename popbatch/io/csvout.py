"""CSV files of the results: formula-safe values in a chosen encoding.

A value that starts with ``= + - @``, tab or carriage return, or with the
full-width ``＝ ＋ － ＠``, gets a leading apostrophe, so that a spreadsheet
never runs it as a formula; popbatch's CSV reader removes that apostrophe
again, so retry.csv feeds back unchanged. Everything else is written as it
is, control characters included (pandas and popbatch read them back).

Characters the encoding cannot hold (cp932 has no emoji, nor many rare
kanji) are replaced visibly: by U+FFFD where the encoding has it, else by
〓 (geta, U+3013, the mark Japanese print uses for a missing character),
else by "?". The file records which spreadsheet rows had a replacement.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from popbatch.io.layout import Cell
from popbatch.io.xlsxout import joined_texts

# A value starting with one of these would be a formula in a spreadsheet.
FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠")
_FORMULA_AFTER_LINE_FEED = re.compile("\n[=+\\-@\t\r＝＋－＠]")

# Rows encoded per write: large enough to be quick, small enough to find
# the rows an encoding cannot hold without encoding everything twice.
_CSV_CHUNK = 2048


def create_private(path: Path) -> BinaryIO:
    """A new file only its owner can read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(descriptor, "wb")


class CsvOut:
    """One CSV file being written: formula-safe values, in one encoding.

    Args:
        encoding: e.g. ``utf-8-sig`` (a BOM, for Excel), ``cp932``,
            ``utf-16`` (a BOM, then little-endian).
    """

    def __init__(self, path: Path, encoding: str, delimiter: str = ",") -> None:
        self.path = path
        self.replaced_rows: list[int] = []
        self._codec, bom = _codec_and_bom(encoding)
        self._file = create_private(path)
        self._file.write(bom)
        self._buffer = io.StringIO()
        self._writer = csv.writer(
            self._buffer, delimiter=delimiter, lineterminator="\r\n"
        )
        self._chunk: list[tuple[int | None, Sequence[Cell]]] = []

    def __enter__(self) -> CsvOut:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(
        self, values: Sequence[Cell], row: int | None, texts: str | None = None
    ) -> None:
        """Add one line.

        Args:
            row: the spreadsheet row it comes from (None for the header).
            texts: the row's texts joined by line feeds, when the caller
                has them already (``joined_texts``).
        """
        if texts is None:
            texts = joined_texts(values)
        # Only a row where some text starts like a formula needs the rule
        # applied cell by cell; each text starts the joined string or a line.
        if texts[:1] in FORMULA_STARTS or _FORMULA_AFTER_LINE_FEED.search(texts):
            values = [
                f"'{value}"
                if isinstance(value, str) and value[:1] in FORMULA_STARTS
                else value
                for value in values
            ]
        self._chunk.append((row, values))
        if len(self._chunk) >= _CSV_CHUNK:
            self._flush()

    def close(self) -> None:
        """Write what is left and close the file."""
        if self._file.closed:
            return
        try:
            self._flush()
        finally:
            self._file.close()

    def _flush(self) -> None:
        if not self._chunk:
            return
        self._writer.writerows(values for _, values in self._chunk)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        try:
            data = text.encode(self._codec)
        except UnicodeEncodeError:
            data = self._encode_replacing()
        self._file.write(data)
        self._chunk.clear()

    def _encode_replacing(self) -> bytes:
        # Only a chunk with something the encoding lacks comes here: encode
        # its rows one at a time to learn which rows had a character replaced.
        parts = []
        for row, values in self._chunk:
            self._writer.writerow(values)
            text = self._buffer.getvalue()
            self._buffer.seek(0)
            self._buffer.truncate()
            try:
                parts.append(text.encode(self._codec))
            except UnicodeEncodeError:
                parts.append(text.encode(self._codec, errors=_REPLACE))
                if row is not None:
                    self.replaced_rows.append(row)
        return b"".join(parts)


def _codec_and_bom(encoding: str) -> tuple[str, bytes]:
    # Chunks are encoded one by one, so the byte-order mark is written once
    # by hand rather than by a codec that would repeat it per chunk.
    name = codecs.lookup(encoding).name
    if name == "utf-8-sig":
        return "utf-8", codecs.BOM_UTF8
    if name == "utf-16":
        return "utf-16-le", codecs.BOM_UTF16_LE
    if name == "utf-32":
        return "utf-32-le", codecs.BOM_UTF32_LE
    return name, b""


_REPLACE = "popbatch.visible"


def replacement_mark(encoding: str) -> str:
    """U+FFFD where the encoding has it (UTF-*), else 〓, else "?"."""
    for mark in ("\ufffd", "〓", "?"):
        try:
            mark.encode(encoding)
        except UnicodeEncodeError:
            continue
        return mark
    return "?"


def _replace_visibly(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return replacement_mark(error.encoding) * (error.end - error.start), error.end


codecs.register_error(_REPLACE, _replace_visibly)
