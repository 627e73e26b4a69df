"""Workbooks written by hand, cell XML and all, for the end-to-end field cases.

openpyxl cannot write what some producers do (a formula with its cached
result, as LibreOffice and Excel save it), so the variants that need exact
cell XML build the few parts a workbook needs here.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def text_cell(ref: str, text: str) -> str:
    """An inline text cell."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escaped}</t></is></c>'
    )


def number_cell(ref: str, value: str, style: int = 0) -> str:
    """A number cell with the style (number format) of index ``style``."""
    return f'<c r="{ref}" s="{style}"><v>{value}</v></c>'


def formula_cell(ref: str, formula: str, cached: str, kind: str = "n") -> str:
    """A formula with its cached result (``kind`` b: boolean, str: text)."""
    return f'<c r="{ref}" t="{kind}"><f>{formula}</f><v>{cached}</v></c>'


def error_cell(ref: str, error: str) -> str:
    """A cell holding an Excel error such as #VALUE!."""
    return f'<c r="{ref}" t="e"><v>{error}</v></c>'


def write_workbook(
    path: Path,
    rows: Sequence[Sequence[str]],
    *,
    sheet: str = "orders",
    merges: Sequence[str] = (),
    number_formats: Sequence[str] = (),
) -> Path:
    """Write an .xlsx of one sheet from cell XML, row by row (row 1 first).

    ``number_formats`` become styles 1, 2, ...; a row given as ``()`` is
    left out of the sheet (a blank row).
    """
    sheet_rows = "".join(
        f'<row r="{number}">{"".join(cells)}</row>'
        for number, cells in enumerate(rows, 1)
        if cells
    )
    merged = "".join(f'<mergeCell ref="{ref}"/>' for ref in merges)
    merge_part = (
        f'<mergeCells count="{len(merges)}">{merged}</mergeCells>' if merges else ""
    )
    formats = "".join(
        f'<numFmt numFmtId="{164 + n}" formatCode="{code.replace(chr(34), "&quot;")}"/>'
        for n, code in enumerate(number_formats)
    )
    xfs = '<xf numFmtId="0"/>' + "".join(
        f'<xf numFmtId="{164 + n}" applyNumberFormat="1"/>'
        for n in range(len(number_formats))
    )
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
            f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
            f'<sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{_RELS}">'
            f'<Relationship Id="rId1" Type="{_DOC}/worksheet" '
            'Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_DOC}/styles" Target="styles.xml"/>'
            "</Relationships>"
        ),
        "xl/styles.xml": (
            f'<styleSheet xmlns="{_MAIN}"><numFmts count="{len(number_formats)}">'
            f'{formats}</numFmts><cellXfs count="{len(number_formats) + 1}">{xfs}'
            "</cellXfs></styleSheet>"
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{_MAIN}"><sheetData>{sheet_rows}</sheetData>'
            f"{merge_part}</worksheet>"
        ),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(
                name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + xml
            )
    return path
