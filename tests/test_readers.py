"""Tests for popbatch.io.readers (with csvfile and xlsx): files into InputTables.

Workbooks are built here, either with openpyxl or, for what openpyxl
cannot write (cached formula results, furigana runs, strict namespaces),
from raw OOXML parts by ``write_workbook``.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from popbatch.errors import ExitCode, InputUnreadableError, UsageError
from popbatch.io import csvfile, numfmt
from popbatch.io.readers import CellProblem, InputTable, read_input

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT = "http://purl.oclc.org/ooxml/spreadsheetml/main"


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """Write CSV text as bytes, line ends as given."""
    path.write_bytes(text.encode(encoding))
    return path


def cells_of(table: InputTable) -> list[list[str]]:
    """Return the table's cells as lists of text, row by row."""
    return [list(row) for row in table.cells.itertuples(index=False)]


def write_workbook(
    path: Path,
    sheets: dict[str, str],
    *,
    shared: list[str] | None = None,
    num_fmts: str = "",
    cell_xfs: str = '<xf numFmtId="0"/>',
    hidden_sheets: frozenset[str] = frozenset(),
    date1904: bool = False,
    namespace: str = MAIN,
) -> Path:
    """Write a minimal workbook; each sheet is its XML after <worksheet>."""
    entries = []
    rels = []
    parts = {}
    for number, (name, body) in enumerate(sheets.items(), start=1):
        state = ' state="hidden"' if name in hidden_sheets else ""
        entries.append(
            f'<sheet name="{name}" sheetId="{number}"{state} r:id="rId{number}"/>'
        )
        rels.append(
            f'<Relationship Id="rId{number}" Type="http://schemas.openxmlformats.org/'
            f'officeDocument/2006/relationships/worksheet" '
            f'Target="worksheets/sheet{number}.xml"/>'
        )
        parts[f"xl/worksheets/sheet{number}.xml"] = (
            f'<worksheet xmlns="{namespace}">{body}</worksheet>'
        )
    rels.append(
        '<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/styles" Target="styles.xml"/>'
    )
    if shared is not None:
        rels.append(
            '<Relationship Id="rIdT" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
        )
        parts["xl/sharedStrings.xml"] = (
            f'<sst xmlns="{namespace}">{"".join(shared)}</sst>'
        )
    properties = '<workbookPr date1904="1"/>' if date1904 else ""
    parts["xl/workbook.xml"] = (
        f'<workbook xmlns="{namespace}" xmlns:r="http://schemas.openxmlformats.org/'
        f'officeDocument/2006/relationships">{properties}<sheets>{"".join(entries)}'
        "</sheets></workbook>"
    )
    parts["xl/_rels/workbook.xml.rels"] = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'relationships">{"".join(rels)}</Relationships>'
    )
    parts["xl/styles.xml"] = (
        f'<styleSheet xmlns="{namespace}"><numFmts>{num_fmts}</numFmts>'
        f"<cellXfs>{cell_xfs}</cellXfs></styleSheet>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in parts.items():
            archive.writestr(name, text)

    return path


def rows_xml(*rows: str) -> str:
    """Wrap <row> elements in <sheetData>."""
    return f"<sheetData>{''.join(rows)}</sheetData>"


def inline(ref: str, text: str) -> str:
    """An inline string cell."""
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER = f'<row r="1">{inline("A1", "order_id")}{inline("B1", "amount")}</row>'


# --- CSV: encodings ------------------------------------------------------------------


def test_utf8_csv_reads_as_text_with_row_numbers(tmp_path: Path) -> None:
    """A plain UTF-8 file keeps ids as written; the header is row 1."""
    path = write_csv(
        tmp_path / "orders.csv", "order_id,amount\r\n000123,1000\r\nＡ-1,2000\r\n"
    )

    table = read_input(path)

    assert (table.kind, table.encoding, table.delimiter) == ("csv", "utf-8", ",")
    assert table.headers == ("order_id", "amount")
    assert cells_of(table) == [["000123", "1000"], ["Ａ-1", "2000"]]
    assert table.row_numbers.tolist() == [2, 3]
    assert table.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert table.notes == ("encoding: utf-8", "delimiter: comma")
    assert table.problems == ()
    assert table.cells.index.tolist() == [0, 1]


def test_utf8_bom_is_detected_and_kept_out_of_the_header(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a BOM; the first header does not carry it."""
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + "order_id,amount\n髙-1,1\n".encode())

    table = read_input(path)

    assert table.encoding == "utf-8-sig"
    assert table.headers == ("order_id", "amount")
    assert cells_of(table) == [["髙-1", "1"]]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_unicode_text_is_tab_separated(tmp_path: Path, codec: str) -> None:
    """Excel's "Unicode text" is UTF-16 with a BOM and tabs between cells."""
    bom = codecs.BOM_UTF16_LE if codec == "utf-16-le" else codecs.BOM_UTF16_BE
    path = tmp_path / "unicode.txt"
    path.write_bytes(
        bom + "order_id\tamount\tmemo\r\nA-1\t1,000\t﨑浜, 店\r\n".encode(codec)
    )

    table = read_input(path)

    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert cells_of(table) == [["A-1", "1,000", "﨑浜, 店"]]


def test_cp932_is_found_from_the_whole_file(tmp_path: Path) -> None:
    """A CP932 byte far past the first 4 KB still makes the file CP932."""
    lines = ["order_id,amount,memo"] + [f"A-{n},{n},batch" for n in range(1, 400)]
    path = write_csv(
        tmp_path / "late.csv", "\r\n".join(lines) + "\r\nA-400,400,髙①\r\n", "cp932"
    )

    table = read_input(path)

    assert table.encoding == "cp932"
    assert table.cells.iat[399, 2] == "髙①"
    assert "encoding: cp932" in table.notes


@pytest.mark.parametrize(
    "given", ["Shift_JIS", "shift-jis", "sjis", "SJIS", "ms932", "windows-31j", "cp932"]
)
def test_shift_jis_given_by_the_user_is_read_as_cp932(
    tmp_path: Path, given: str
) -> None:
    """What Windows calls Shift_JIS is CP932: 髙, 﨑 and ① decode."""
    path = write_csv(tmp_path / "sjis.csv", "order_id,memo\r\nA-1,髙﨑①\r\n", "cp932")

    table = read_input(path, encoding=given)

    assert table.encoding == "cp932"
    assert cells_of(table) == [["A-1", "髙﨑①"]]


def test_a_given_encoding_that_does_not_fit_names_the_line(tmp_path: Path) -> None:
    """--encoding utf-8 on a CP932 file is a file-level error naming the line."""
    path = write_csv(
        tmp_path / "orders.csv", "order_id,memo\r\nA-1,ok\r\nA-2,髙\r\n", "cp932"
    )

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path, encoding="utf-8")

    assert caught.value.message == (
        "orders.csv is not valid utf-8: line 3 has bytes that utf-8 cannot decode"
    )
    assert caught.value.hint == (
        "Name the file's real encoding with --encoding (utf-8, utf-16 or cp932), "
        "or leave it out to detect it."
    )
    assert caught.value.exit_code is ExitCode.INPUT_UNREADABLE


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"order_id,memo\nA-1,\x81 x\n",
            "odd.csv is neither UTF-8 (line 2 has byte 0x81) nor CP932 (line 2); "
            "the encodings tried were utf-8 and cp932",
        ),
        (
            b"order_id,memo\nA-1,price\xa0100\n",
            "odd.csv is neither UTF-8 (line 2 has byte 0xa0) nor CP932 (line 2); "
            "the encodings tried were utf-8 and cp932",
        ),
    ],
)
def test_a_file_in_no_known_encoding_names_the_encodings_tried(
    tmp_path: Path, data: bytes, message: str
) -> None:
    """Neither UTF-8 nor CP932 (nor latin-1 mojibake read as CP932): refused."""
    path = tmp_path / "odd.csv"
    path.write_bytes(data)

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path)

    assert caught.value.message == message
    assert caught.value.hint == (
        'Save it from Excel as "CSV UTF-8", or name its encoding with --encoding.'
    )


def test_an_unknown_encoding_name_is_bad_usage(tmp_path: Path) -> None:
    """A misspelt --encoding is a usage error, not a file error."""
    path = write_csv(tmp_path / "a.csv", "order_id\nA\n")

    with pytest.raises(UsageError, match="unknown encoding 'utf-9' for --encoding"):
        read_input(path, encoding="utf-9")


def test_nul_bytes_refuse_the_file(tmp_path: Path) -> None:
    """UTF-16 without a BOM decodes as UTF-8 full of NULs: refused, not guessed."""
    path = tmp_path / "nobom.csv"
    path.write_bytes("order_id\nA-1\n".encode("utf-16-le"))

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path)

    assert caught.value.message == (
        "nobom.csv contains NUL bytes, so it is not CSV text (it may be UTF-16 "
        "without a byte-order mark, or a binary file)"
    )


def test_a_workbook_named_csv_is_refused(tmp_path: Path) -> None:
    """A zip archive under a .csv name is not parsed as text."""
    book = openpyxl.Workbook()
    book.save(tmp_path / "orders.csv")

    with pytest.raises(InputUnreadableError) as caught:
        read_input(tmp_path / "orders.csv")

    assert caught.value.message == (
        "orders.csv is a zip archive (as .xlsx workbooks are), not CSV text; "
        "if it is a workbook, give it the .xlsx extension"
    )


# --- CSV: records -------------------------------------------------------------------


def test_quoted_line_breaks_stay_in_one_row(tmp_path: Path) -> None:
    """A cell with line breaks is one spreadsheet row; the last line has no newline."""
    text = 'order_id,memo\r\nA-1,"two\r\nlines"\r\nA-2,"a ""quote"""\r\nA-3,last'
    path = write_csv(tmp_path / "multi.csv", text)

    table = read_input(path)

    assert cells_of(table) == [
        ["A-1", "two\r\nlines"],
        ["A-2", 'a "quote"'],
        ["A-3", "last"],
    ]
    assert table.row_numbers.tolist() == [2, 3, 4]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_any_line_ending_reads_the_same(tmp_path: Path, ending: str) -> None:
    """LF, CRLF and old Mac CR files give the same rows."""
    path = write_csv(
        tmp_path / "e.csv", ending.join(["order_id,amount", "A-1,1", "A-2,2"])
    )

    assert cells_of(read_input(path)) == [["A-1", "1"], ["A-2", "2"]]


def test_tab_delimiter_is_sniffed_from_the_header(tmp_path: Path) -> None:
    """A header with more tabs than commas (outside quotes) means tabs."""
    path = write_csv(tmp_path / "t.tsv", 'order_id\t"amount, yen"\nA-1\t1,000\n')

    table = read_input(path)

    assert table.delimiter == "\t"
    assert table.headers == ("order_id", "amount, yen")
    assert table.notes[1] == "delimiter: tab"


def test_ragged_rows_are_padded_and_extra_cells_kept(tmp_path: Path) -> None:
    """Short records get "" cells; a longer one adds a column with no header."""
    path = write_csv(tmp_path / "r.csv", "order_id,amount\nA-1\nA-2,2,extra\n")

    table = read_input(path)

    assert table.headers == ("order_id", "amount", "")
    assert cells_of(table) == [["A-1", "", ""], ["A-2", "2", "extra"]]


def test_blank_rows_between_data_are_listed_and_trailing_ones_ignored(
    tmp_path: Path,
) -> None:
    """Blank and space-only rows between data are listed; those after are not."""
    text = "order_id,amount\n\nA-1,1\n , \nA-2,2\n,\n \n\n"
    path = write_csv(tmp_path / "b.csv", text)

    table = read_input(path)

    assert cells_of(table) == [["A-1", "1"], ["A-2", "2"]]
    assert table.row_numbers.tolist() == [3, 5]
    assert table.blank_rows == (2, 4)


def test_leading_blank_lines_come_before_the_header(tmp_path: Path) -> None:
    """The header is the first row with text; rows keep their own numbers."""
    path = write_csv(tmp_path / "l.csv", ",\n\norder_id,amount\nA-1,1\n")

    table = read_input(path)

    assert (table.header_row, table.headers) == (3, ("order_id", "amount"))
    assert table.row_numbers.tolist() == [4]


def test_trailing_columns_without_header_or_data_are_dropped(tmp_path: Path) -> None:
    """Excel's trailing commas make no columns."""
    path = write_csv(tmp_path / "c.csv", "order_id,amount,,\nA-1,1,,\n")

    table = read_input(path)

    assert table.headers == ("order_id", "amount")
    assert cells_of(table) == [["A-1", "1"]]


@pytest.mark.parametrize(
    ("cell", "read"),
    [
        ("'=1+1", "=1+1"),
        ("'-INJ-004", "-INJ-004"),
        ("'+81", "+81"),
        ("'@SUM(1)", "@SUM(1)"),
        ('"\'\tx"', "\tx"),
        ("'＝１", "＝１"),
        ("'－5", "－5"),
        ("'abc", "'abc"),
        ("''=x", "''=x"),
        ("'", "'"),
    ],
)
def test_apostrophe_before_guarded_characters_is_dropped(
    tmp_path: Path, cell: str, read: str
) -> None:
    """popbatch's own CSV guard (an apostrophe) reads back as the original text."""
    path = write_csv(tmp_path / "a.csv", f"order_id,memo\nA-1,{cell}\n")

    assert read_input(path).cells.iat[0, 1] == read


def test_an_unclosed_quote_refuses_the_file(tmp_path: Path) -> None:
    """A quote never closed would swallow every later row into one cell."""
    path = write_csv(
        tmp_path / "q.csv", 'order_id,memo\nA-1,ok\nA-2,"27 inch\nA-3,x\nA-4,y\n'
    )

    with pytest.raises(InputUnreadableError) as caught:
        read_input(path)

    assert caught.value.message == (
        "q.csv: a quoted cell that opens on line 3 is never closed, so everything "
        "after it would be read as one cell"
    )


CELL_TEXT = st.text(
    alphabet=st.sampled_from(list("ab,\"\r\n \t'=髙1")), min_size=0, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(
    grid=st.integers(1, 4).flatmap(
        lambda width: st.lists(
            st.lists(CELL_TEXT, min_size=width, max_size=width), min_size=1, max_size=6
        )
    )
)
def test_pyarrow_and_csv_module_read_rectangular_files_alike(
    grid: list[list[str]],
) -> None:
    """The fast parser gives exactly what the csv module gives, quotes and all."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(grid)
    text = buffer.getvalue()

    fast = csvfile.parse_fast(text.encode(), ",")
    exact = csvfile.parse_exact(text.encode(), ",")

    assert exact.values.tolist() == grid
    if fast is not None:
        assert fast.values.tolist() == grid


# --- files that are not what their name says ----------------------------------------


CASES = Path(__file__).parent / "data" / "cases"


def test_missing_empty_and_folder_paths_are_unreadable(tmp_path: Path) -> None:
    """Each names the path and exits 66."""
    (tmp_path / "empty.csv").write_bytes(b"")

    with pytest.raises(InputUnreadableError) as missing:
        read_input(tmp_path / "nope.csv")
    with pytest.raises(InputUnreadableError) as empty:
        read_input(tmp_path / "empty.csv")
    with pytest.raises(InputUnreadableError) as folder:
        read_input(tmp_path)

    assert missing.value.message == f"{tmp_path / 'nope.csv'} does not exist"
    assert empty.value.message == "empty.csv is empty"
    assert folder.value.message == f"{tmp_path} is a folder, not a file"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "export.xls",
            b"<html><body><table><tr><td>order_id</td></tr></table></body></html>",
            "export.xls: this .xls file is a web page (HTML), not an Excel workbook; "
            "open it in Excel and save as .xlsx (or CSV UTF-8)",
        ),
        (
            "export.xls",
            b"order_id\tamount\nA-1\t1\n",
            "export.xls: this .xls file is not an Excel workbook (it looks like CSV "
            "text); rename it to .csv or save it again from Excel",
        ),
        (
            "locked.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
            + "EncryptedPackage".encode("utf-16-le"),
            "locked.xlsx is password-protected; remove the password in Excel "
            "(File > Info > Protect Workbook) and save it again",
        ),
        (
            "binary.xlsx",
            bytes(range(256)) * 4,
            "binary.xlsx: this .xlsx file is not an Excel workbook (it is not a zip "
            "archive); save it again from Excel as .xlsx",
        ),
        (
            "book.xlsb",
            b"PK\x03\x04",
            "book.xlsb: Excel binary workbooks (.xlsb) are not supported; open it in "
            "Excel and save as .xlsx (or CSV UTF-8)",
        ),
    ],
)
def test_files_under_workbook_names_that_are_no_xlsx_are_refused(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    """Each gets a one-line fix and exit 66, never a zip error."""
    (tmp_path / name).write_bytes(data)

    with pytest.raises(InputUnreadableError) as caught:
        read_input(tmp_path / name)

    assert caught.value.message == message
    assert caught.value.exit_code is ExitCode.INPUT_UNREADABLE


def test_a_zip_that_is_no_workbook_is_refused(tmp_path: Path) -> None:
    """An OpenDocument file renamed .xlsx says what it is."""
    with zipfile.ZipFile(tmp_path / "calc.xlsx", "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")

    with pytest.raises(InputUnreadableError) as caught:
        read_input(tmp_path / "calc.xlsx")

    assert caught.value.message == (
        "calc.xlsx is an OpenDocument spreadsheet (.ods), not an Excel workbook; "
        "save it as .xlsx (or CSV UTF-8)"
    )


def test_a_damaged_sheet_is_unreadable(tmp_path: Path) -> None:
    """Broken XML is reported as a damaged workbook, not a traceback."""
    path = write_workbook(tmp_path / "bad.xlsx", {"orders": "<sheetData><row r='1'>"})

    with pytest.raises(
        InputUnreadableError, match=r"^bad\.xlsx: the workbook is damaged"
    ):
        read_input(path)


def test_files_without_any_text_have_no_header(tmp_path: Path) -> None:
    """A CSV of blank lines and an empty sheet are unreadable, not empty batches."""
    blank = write_csv(tmp_path / "blank.csv", ",,\n\n , \n")
    book = write_workbook(tmp_path / "empty.xlsx", {"orders": rows_xml()})

    with pytest.raises(InputUnreadableError) as csv_error:
        read_input(blank)
    with pytest.raises(InputUnreadableError) as sheet_error:
        read_input(book)

    assert csv_error.value.message == "blank.csv has no header row: it holds no text"
    assert sheet_error.value.message == (
        "sheet 'orders' of empty.xlsx has no header row: it holds no text"
    )


def test_an_xlsx_saved_under_xls_is_read_as_a_workbook(tmp_path: Path) -> None:
    """The bytes decide when the name says .xls but the file is a zip workbook."""
    path = write_workbook(tmp_path / "orders.xls", {"orders": rows_xml(HEADER)})

    assert read_input(path).headers == ("order_id", "amount")


def test_options_of_the_other_format_are_bad_usage(tmp_path: Path) -> None:
    """--sheet with a CSV, --encoding with a workbook: usage errors."""
    csv_path = write_csv(tmp_path / "a.csv", "order_id\nA\n")
    book = write_workbook(tmp_path / "a.xlsx", {"orders": rows_xml(HEADER)})

    with pytest.raises(UsageError, match="--sheet applies to Excel workbooks"):
        read_input(csv_path, sheet="orders")
    with pytest.raises(UsageError, match="--encoding applies to CSV files"):
        read_input(book, encoding="utf-8")


# --- Excel: sheets --------------------------------------------------------------------


def test_the_first_sheet_is_read_by_default_and_noted(tmp_path: Path) -> None:
    """With two sheets, the first is read and the note says so."""
    path = write_workbook(
        tmp_path / "book.xlsx", {"orders": rows_xml(HEADER), "Feb": rows_xml()}
    )

    table = read_input(path)

    assert (table.sheet, table.sheets) == ("orders", ("orders", "Feb"))
    assert table.notes == ("sheet 'orders' (first of 2)",)


def test_a_hidden_first_sheet_is_passed_over(tmp_path: Path) -> None:
    """The default is the first sheet a person can see."""
    path = write_workbook(
        tmp_path / "book.xlsx",
        {"config": rows_xml(), "orders": rows_xml(HEADER)},
        hidden_sheets=frozenset({"config"}),
    )

    table = read_input(path)

    assert table.sheet == "orders"
    assert table.notes == ("sheet 'orders' (first visible of 2)",)


def test_a_sheet_is_chosen_by_name_and_a_missing_one_lists_the_others(
    tmp_path: Path,
) -> None:
    """--sheet reads that sheet; a name not there lists the names there are."""
    path = write_workbook(
        tmp_path / "orders.xlsx", {"Sheet1": rows_xml(), "Feb": rows_xml(HEADER)}
    )

    table = read_input(path, sheet="Feb")
    with pytest.raises(InputUnreadableError) as caught:
        read_input(path, sheet="Orders")

    assert table.notes == ("sheet 'Feb' (given by --sheet)",)
    assert (
        caught.value.message
        == "orders.xlsx has no sheet 'Orders' (found 'Sheet1', 'Feb')"
    )
    assert caught.value.hint == "Try --sheet with one of those names."


# --- Excel: cells ------------------------------------------------------------------------


def test_shared_strings_keep_runs_and_drop_furigana(tmp_path: Path) -> None:
    """Rich-text runs join; phonetic runs (rPh) are not part of the text."""
    shared = [
        "<si><t>order_id</t></si>",
        "<si><t>memo</t></si>",
        "<si><r><t>髙山</t></r><r><t>店</t></r><rPh sb='0' eb='2'><t>タカヤマ</t></rPh></si>",
        "<si><t>line_x000D_break_x005F_x0041_</t></si>",
    ]
    body = rows_xml(
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>',
        '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>',
    )
    path = write_workbook(tmp_path / "s.xlsx", {"orders": body}, shared=shared)

    table = read_input(path)

    assert cells_of(table) == [["髙山店", "line\rbreak_x0041_"]]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1000", "1000"),
        ("10000.0", "10000"),
        ("1500.5", "1500.5"),
        ("0.30000000000000004", "0.3"),
        ("-5", "-5"),
    ],
)
def test_number_cells_read_as_excel_shows_them(
    tmp_path: Path, value: str, text: str
) -> None:
    """Whole numbers lose their .0; others show 15 significant digits."""
    body = rows_xml(
        HEADER, f'<row r="2">{inline("A2", "A-1")}<c r="B2"><v>{value}</v></c></row>'
    )
    path = write_workbook(tmp_path / "n.xlsx", {"orders": body})

    table = read_input(path)

    assert cells_of(table) == [["A-1", text]]
    assert table.problems == ()


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        (
            "000000",
            "order_id is a number cell (123) displayed with format 000000; the stored value has no leading zeros. Format the column as Text and re-enter the id.",
        ),
        (
            "0.00",
            "order_id is a number cell (123) displayed with format 0.00, which shows it differently from the stored number. Format the column as Text and re-enter the id.",
        ),
        (
            '"A-"000',
            'order_id is a number cell (123) displayed with format "A-"000, which shows it differently from the stored number. Format the column as Text and re-enter the id.',
        ),
        ("#,##0", None),
        ("000", None),
        ("@", None),
        ("General", None),
        ("[Red]0;[Blue]-0", None),
    ],
)
def test_number_formats_that_show_other_digits_are_noted(
    tmp_path: Path, code: str, problem: str | None
) -> None:
    """123 shown as 000123 is noted; formats that show 123 itself are not."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount"])
    sheet.append([123, 1000])
    sheet["A2"].number_format = code
    book.save(tmp_path / "f.xlsx")

    table = read_input(tmp_path / "f.xlsx")

    assert cells_of(table) == [["123", "1000"]]
    expected = (
        ()
        if problem is None
        else (CellProblem(2, 0, "number_format_hides_digits", problem),)
    )
    assert table.problems == expected


def test_numbers_of_more_than_15_digits_are_noted_and_shown_as_excel_kept_them(
    tmp_path: Path,
) -> None:
    """A 19-digit id typed as a number has lost its last digits."""
    body = rows_xml(
        HEADER,
        '<row r="2"><c r="A2"><v>1234567890123456789</v></c><c r="B2"><v>1</v></c></row>',
    )
    path = write_workbook(tmp_path / "long.xlsx", {"orders": body})

    table = read_input(path)

    assert table.cells.iat[0, 0] == "1234567890123460000"
    assert table.problems == (
        CellProblem(
            2,
            0,
            "number_too_long",
            "order_id is a number cell with more than 15 digits (1234567890123460000); "
            "Excel keeps only 15, so the id has already been changed. Format the "
            "column as Text and re-enter the id.",
        ),
    )


def test_date_error_formula_and_boolean_cells_are_noted_in_every_column(
    tmp_path: Path,
) -> None:
    """Typed cells become text and a note, whichever column they are in."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["order_id", "amount", "memo"])
    sheet.append([datetime.datetime(2024, 3, 1), "#DIV/0!", "=B2*2"])
    sheet.append(["A-2", True, datetime.datetime(2024, 3, 1, 12, 30)])
    book.save(tmp_path / "typed.xlsx")

    table = read_input(tmp_path / "typed.xlsx")

    assert cells_of(table) == [
        ["2024-03-01", "#DIV/0!", "=B2*2"],
        ["A-2", "TRUE", "2024-03-01T12:30:00"],
    ]
    assert [(p.row, p.column, p.reason) for p in table.problems] == [
        (2, 0, "date_cell"),
        (2, 1, "error_cell"),
        (2, 2, "formula_without_value"),
        (3, 1, "boolean_cell"),
        (3, 2, "date_cell"),
    ]
    assert [p.message for p in table.problems[:3]] == [
        "order_id cell holds a date (2024-03-01), so Excel converted what was "
        "typed; the original value cannot be recovered. Format column A as Text "
        "and re-enter it.",
        "amount cell holds the Excel error #DIV/0!, not a value; fix the cell in "
        "column B and save the file again.",
        "memo cell holds a formula (=B2*2) with no saved result; open the file in "
        "Excel, let it calculate, and save it again.",
    ]


def test_formulas_give_their_cached_results(tmp_path: Path) -> None:
    """A saved result is the cell's value; an empty text result is blank."""
    body = rows_xml(
        HEADER,
        '<row r="2"><c r="A2" t="str"><f>"A-"&amp;1</f><v>A-1</v></c>'
        '<c r="B2"><f>500*2</f><v>1000</v></c><c r="C2" t="str"><f>""</f><v></v></c></row>',
    )
    path = write_workbook(tmp_path / "cached.xlsx", {"orders": body})

    table = read_input(path)

    assert cells_of(table) == [["A-1", "1000"]]
    assert table.problems == ()


def test_date_cells_follow_formats_types_and_the_1904_calendar(tmp_path: Path) -> None:
    """Built-in and custom date formats and t="d" cells read as ISO dates."""
    body = rows_xml(
        HEADER,
        '<row r="2"><c r="A2" s="1"><v>45352</v></c><c r="B2" s="2"><v>46093</v></c></row>',
        '<row r="3"><c r="A3" t="d"><v>2024-03-01T00:00:00</v></c><c r="B3" s="3"><v>0.5</v></c></row>',
    )
    path = write_workbook(
        tmp_path / "dates.xlsx",
        {"orders": body},
        num_fmts='<numFmt numFmtId="164" formatCode="m&quot;月&quot;d&quot;日&quot;"/>',
        cell_xfs='<xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="21"/>',
    )
    path_1904 = write_workbook(
        tmp_path / "dates1904.xlsx",
        {
            "orders": rows_xml(
                HEADER, '<row r="2"><c r="A2" s="1"><v>43890</v></c></row>'
            )
        },
        cell_xfs='<xf numFmtId="0"/><xf numFmtId="14"/>',
        date1904=True,
    )

    assert cells_of(read_input(path)) == [
        ["2024-03-01", "2026-03-12"],
        ["2024-03-01", "12:00:00"],
    ]
    assert cells_of(read_input(path_1904)) == [["2024-03-01", ""]]


def test_merged_ranges_are_noted_in_data_rows_only(tmp_path: Path) -> None:
    """A merged title above the header is skipped; header merges are fine."""
    body = (
        rows_xml(
            f'<row r="1">{inline("A1", "February refunds")}</row>',
            f'<row r="2">{inline("A2", "order_id")}{inline("B2", "amount")}</row>',
            f'<row r="3">{inline("A3", "A-1")}<c r="B3"><v>5</v></c></row>',
            f'<row r="4">{inline("A4", "A-2")}</row>',
        )
        + '<mergeCells><mergeCell ref="A1:C1"/><mergeCell ref="B2:C2"/><mergeCell ref="B3:B4"/></mergeCells>'
    )
    path = write_workbook(tmp_path / "m.xlsx", {"orders": body})

    table = read_input(path)

    assert (table.header_row, table.headers) == (2, ("order_id", "amount"))
    assert table.row_numbers.tolist() == [3, 4]
    assert table.notes == (
        "sheet 'orders' (first of 1)",
        "row 1 skipped as a title (merged A1:C1)",
    )
    assert table.problems == (
        CellProblem(
            3,
            1,
            "merged_cells",
            "amount is in merged cells B3:B4; unmerge and fill each row",
        ),
        CellProblem(
            4,
            1,
            "merged_cells",
            "amount is in merged cells B3:B4; unmerge and fill each row",
        ),
    )


def test_blank_and_hidden_rows_of_a_sheet(tmp_path: Path) -> None:
    """A row missing between data rows is blank; hidden rows are listed."""
    body = rows_xml(
        HEADER,
        f'<row r="2" hidden="1">{inline("A2", "A-1")}</row>',
        '<row r="3"><c r="A3" s="0"/></row>',
        f'<row r="5">{inline("A5", "A-2")}</row>',
        '<row r="1048576"><c r="A1048576" s="0"/></row>',
    )
    path = write_workbook(tmp_path / "b.xlsx", {"orders": body})

    table = read_input(path)

    assert table.row_numbers.tolist() == [2, 5]
    assert table.blank_rows == (3, 4)
    assert table.hidden_rows == (2,)


def test_cells_without_references_and_strict_namespace_are_read(tmp_path: Path) -> None:
    """Rows and cells may omit r=; Strict Open XML uses another namespace."""
    body = rows_xml(
        "<row><c t='inlineStr'><is><t>order_id</t></is></c><c t='inlineStr'><is><t>amount</t></is></c></row>",
        "<row><c t='inlineStr'><is><t>A-1</t></is></c><c><v>7</v></c></row>",
    )
    path = write_workbook(tmp_path / "strict.xlsx", {"orders": body}, namespace=STRICT)

    table = read_input(path)

    assert cells_of(table) == [["A-1", "7"]]
    assert table.row_numbers.tolist() == [2]


# --- Excel: number formats and dates, unit by unit ------------------------------------------


@pytest.mark.parametrize(
    ("code", "is_date"),
    [
        ("yyyy/m/d", True),
        ('m"月"d"日"', True),
        ('[$-411]ggge"年"m"月"d"日"', True),
        ("[h]:mm:ss", True),
        ("h:mm AM/PM", True),
        ("0.00E+00", False),
        ("General", False),
        ('"day"0', False),
        ("#,##0;[Red]-#,##0", False),
        ("0\\d", False),
    ],
)
def test_date_formats_are_told_from_number_formats(code: str, is_date: bool) -> None:
    """Date letters count outside quotes, escapes, colours and General only."""
    assert numfmt.is_date_format(code) is is_date


@pytest.mark.parametrize(
    ("serial", "iso"),
    [
        ("1", "1900-01-01"),
        ("59", "1900-02-28"),
        ("60", "1900-02-29"),
        ("61", "1900-03-01"),
        ("45352", "2024-03-01"),
        ("45352.5", "2024-03-01T12:00:00"),
        ("0.75", "18:00:00"),
    ],
)
def test_date_serials_follow_excel_1900_calendar(serial: str, iso: str) -> None:
    """Excel's 1900 calendar has its phantom 29 February."""
    assert numfmt.serial_to_iso(serial) == iso
