"""Running popbatch as a user does, and reading back what it wrote.

``Popbatch`` drives the real command line (click's CliRunner, in process)
against the session sandbox over HTTP on 127.0.0.1, with a journal and an
output folder of the test's own. ``Run`` is what the user gets back: the
exit code, stdout, stderr, and the results folder the run names on its
last lines, read with openpyxl (every sheet) and pandas (the CSV twins).

Nothing here imports the code under test beyond ``popbatch.cli.main``:
results are read from the files, requests from the sandbox's log.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
from click.testing import CliRunner

from popbatch.cli import main
from popbatch.sandbox import SandboxServer

CASES = Path(__file__).parent.parent / "data" / "cases"

# The result groups, as sheets of results.xlsx and as CSV twins.
GROUPS = ("Succeeded", "Failed", "Rejected", "Review", "Skipped", "Pending")


@dataclass
class Run:
    """One finished popbatch command: what the user saw and what it wrote."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def folder(self) -> Path:
        """The results folder the run named on its ``Results:`` line."""
        found = re.findall(r"^Results: (.+)$", self.stderr, flags=re.MULTILINE)
        assert len(found) == 1, f"no single Results line in:\n{self.stderr}"
        return Path(found[0])

    @property
    def wrote_results(self) -> bool:
        """Whether the run named a results folder at all."""
        return "Results: " in self.stderr

    def problem_table(self) -> list[str]:
        """The lines of the invalid-rows table, spaces collapsed.

        ``3 amount 'abc' amount 'abc' is not a number``: row, column, value
        as read, problem; wherever and however wide the command prints it.
        """
        lines = (self.stdout + self.stderr).splitlines()
        return [" ".join(line.split()) for line in lines if re.match(r" +\d+  ", line)]

    def workbook(self) -> openpyxl.Workbook:
        """results.xlsx as openpyxl reads it by default (formulas not evaluated)."""
        return openpyxl.load_workbook(self.folder / "results.xlsx")

    def sheet(self, name: str) -> list[dict[str, Any]]:
        """The rows of one result sheet, as header -> value."""
        return sheet_rows(self.workbook()[name])

    def column(self, sheet: str, header: str) -> dict[Any, Any]:
        """order_id -> the value in column ``header`` of a result sheet."""
        return {row["order_id"]: row[header] for row in self.sheet(sheet)}

    def twin(self, name: str) -> pd.DataFrame:
        """A CSV file of the results folder, every cell as text ("" when empty)."""
        return read_text_csv(self.folder / name)

    def summary(self) -> dict[str, Any]:
        """summary.json."""
        data: dict[str, Any] = json.loads(
            (self.folder / "summary.json").read_text("utf-8")
        )
        return data

    def group_rows(self) -> dict[str, int]:
        """Rows per group, as summary.json counts them."""
        return {
            group: self.summary()["groups"][group.lower()]["rows"] for group in GROUPS
        }


def sheet_rows(sheet: Any) -> list[dict[str, Any]]:
    """The rows below a sheet's header row, as header -> value."""
    rows = sheet.iter_rows(values_only=True)
    headers = next(rows)
    return [dict(zip(headers, values, strict=True)) for values in rows]


def read_text_csv(path: Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Read a CSV with pandas, every cell as text and nothing as NaN."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)


def formula_cells(path: Path) -> list[str]:
    """Every cell of every sheet that openpyxl reads as a formula."""
    book = openpyxl.load_workbook(path)
    return [
        f"{sheet.title}!{cell.coordinate}"
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.data_type == "f"
    ]


def formula_elements(path: Path) -> list[str]:
    """The sheet parts of a workbook whose XML holds an ``<f>`` element."""
    with zipfile.ZipFile(path) as archive:
        return [
            name
            for name in archive.namelist()
            if name.startswith("xl/worksheets/")
            and re.search(rb"<(\w+:)?f[ >/]", archive.read(name))
        ]


@contextmanager
def _logger_kept() -> Iterator[None]:
    """Give popbatch's logger back as it was: the CLI points it at its streams."""
    logger = logging.getLogger("popbatch")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        yield
    finally:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


class Popbatch:
    """The popbatch command line, pointed at the sandbox, in a test's folder.

    Every operation run gets ``--endpoint`` (the sandbox), ``--journal``
    and ``--out`` (under ``tmp_path``) and ``--rate 0``, unless the test
    gives its own; the server key comes from the environment, as it must.
    """

    def __init__(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.home = tmp_path
        self.journal = tmp_path / "journal.sqlite3"
        self.out = tmp_path / "results"
        self.env = {"POP_SERVER_KEY": sandbox.test_key or ""}

    def argv(
        self, operation: str, path: Path, *options: str, endpoint: str | None = None
    ) -> list[str]:
        """The command line of ``popbatch OPERATION FILE`` for this test."""
        return [
            operation,
            str(path),
            "--endpoint",
            endpoint or self.sandbox.base_url,
            "--journal",
            str(self.journal),
            "--out",
            str(self.out),
            "--rate",
            "0",
            *options,
        ]

    def run(
        self, operation: str, path: Path, *options: str, endpoint: str | None = None
    ) -> Run:
        """``popbatch OPERATION FILE --endpoint ... OPTIONS``, in process."""
        return self.invoke(self.argv(operation, path, *options, endpoint=endpoint))

    def validate(self, operation: str, path: Path, *options: str) -> Run:
        """``popbatch validate OPERATION FILE OPTIONS``."""
        argv = ["validate", operation, str(path), "--out", str(self.out), *options]
        return self.invoke(argv)

    def invoke(self, argv: Sequence[str]) -> Run:
        """Run any popbatch command line in process."""
        with _logger_kept():
            result = CliRunner().invoke(main, list(argv), env=self.env)
        if result.exception is not None and not isinstance(
            result.exception, SystemExit
        ):
            raise result.exception
        return Run(list(argv), result.exit_code, result.stdout, result.stderr)

    def subprocess(self, argv: Sequence[str]) -> Run:
        """Run popbatch as its own process (``python -m popbatch``)."""
        done = subprocess.run(
            [sys.executable, "-m", "popbatch", *argv],
            capture_output=True,
            text=True,
            env={"POP_SERVER_KEY": self.env["POP_SERVER_KEY"], "PATH": ""},
            cwd=self.home,
            timeout=60,
            check=False,
        )
        return Run(list(argv), done.returncode, done.stdout, done.stderr)

    def bodies(self, endpoint: str | None = None) -> dict[str, list[bytes]]:
        """order_id -> the exact bodies the sandbox received, oldest first."""
        found: dict[str, list[bytes]] = {}
        for request in self.sandbox.requests(endpoint=endpoint):
            found.setdefault(request.order_id or "", []).append(request.body)
        return found

    def sent(self, endpoint: str | None = None) -> dict[str, dict[str, Any]]:
        """order_id -> the JSON body of its one request (fails on a second one)."""
        found: dict[str, dict[str, Any]] = {}
        for order_id, bodies in self.bodies(endpoint).items():
            assert len(bodies) == 1, f"{order_id} was sent {len(bodies)} times"
            found[order_id] = json.loads(bodies[0])
        return found


# --- workbooks written by hand ----------------------------------------------------
#
# openpyxl cannot write what some producers do (a formula with its cached
# result, as LibreOffice and Excel save it), so variants that need exact
# cell XML build the few parts a workbook needs themselves.

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
