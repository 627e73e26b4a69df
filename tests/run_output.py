"""What a run of popbatch left for its user: what it printed and what it wrote.

``Run`` is one finished command: its exit code, stdout and stderr, with the
lines a person reads picked out, and the results folder it named on its
``Results:`` line. ``Results`` reads a results folder as a person opens it:
the sheets of results.xlsx (openpyxl, formulas not evaluated), the CSV twins
(as text, with the csv module, or with pandas as a merchant's script would)
and summary.json; a ``Run`` reads its own folder the same way, and
``Results(folder)`` reads one found otherwise (a run with ``--quiet`` names
none, ``popbatch report`` prints one on stdout). ``expected_summary``
builds the lines a run prints at its end, so that tests compare whole
messages.

Nothing here imports popbatch: what a run left is read from its output and
its files alone.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd

# The result groups, in their order: sheets of results.xlsx, and CSV twins
# named in lower case (succeeded.csv, ...).
GROUPS = ("Succeeded", "Failed", "Rejected", "Review", "Skipped", "Pending")

EXIT_OK = "Exit 0: every row succeeded or was already done"
EXIT_FAILED = "Exit 1: some rows failed at POP, were rejected, or need a decision"
EXIT_REVIEW = "Exit 3: some outcomes are unknown: check the Review rows"
EXIT_LATER = "Exit 75: try again later: rows are still pending or the journal is busy"

# Log records start with a time stamp; progress lines carry a rate per
# second, and the start line says how many rows are about to be sent.
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
_PROGRESS_LINE = re.compile(r"^[\d,]+/[\d,]+ rows \(\d+%\)")
_START_LINE = re.compile(r"^sending [\d,]+ rows?$")


class Results:
    """One results folder: its workbook, its CSV files and its summary.json."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    @property
    def folder(self) -> Path:
        """The results folder."""
        return self._folder

    def workbook(self) -> openpyxl.Workbook:
        """results.xlsx as openpyxl reads it by default (formulas not evaluated)."""
        return openpyxl.load_workbook(self.folder / "results.xlsx")

    def sheet_names(self) -> list[str]:
        """The sheets of results.xlsx, in order."""
        book = openpyxl.load_workbook(self.folder / "results.xlsx", read_only=True)
        try:
            return list(book.sheetnames)
        finally:
            book.close()

    def sheet(self, name: str) -> list[dict[str, Any]]:
        """The rows of one sheet of results.xlsx, as header -> value."""
        book = openpyxl.load_workbook(self.folder / "results.xlsx", read_only=True)
        try:
            return sheet_rows(book[name])
        finally:
            book.close()

    def column(self, sheet: str, header: str) -> dict[Any, Any]:
        """order_id -> the value in column ``header`` of a result sheet."""
        return {row["order_id"]: row[header] for row in self.sheet(sheet)}

    def csv(self, name: str, encoding: str = "utf-8-sig") -> list[dict[str, str]]:
        """The rows of a CSV file of the folder (``failed-RM01.csv``), as header -> text."""
        with (self.folder / name).open(encoding=encoding, newline="") as handle:
            return list(csv.DictReader(handle))

    def twin(self, name: str) -> pd.DataFrame:
        """A CSV file of the folder read with pandas, every cell text ("" when empty)."""
        return read_text_csv(self.folder / name)

    def group(self, name: str) -> list[dict[str, str]]:
        """The rows of one result group (``review``, ...) as its CSV twin holds them."""
        return self.csv(f"{name}.csv")

    def order_ids(self, group: str) -> list[str]:
        """The order ids in one result group (``succeeded``, ...), in row order."""
        return [row["order_id"] for row in self.group(group)]

    def group_of(self) -> dict[str, str]:
        """order_id -> the group whose CSV twin lists it.

        Fails when an order id is listed twice, in one group or in two.
        """
        found: dict[str, str] = {}
        for group in GROUPS:
            for record in self.group(group.lower()):
                order_id = record["order_id"]
                assert order_id not in found, (
                    f"{order_id} is in {found[order_id]} and in {group}"
                )
                found[order_id] = group
        return found

    def summary(self) -> dict[str, Any]:
        """summary.json."""
        data: dict[str, Any] = json.loads(
            (self.folder / "summary.json").read_text("utf-8")
        )
        return data

    def counts(self) -> dict[str, int]:
        """Rows per group, as summary.json counts them (groups in lower case)."""
        return {name: tally["rows"] for name, tally in self.summary()["groups"].items()}


@dataclass
class Run(Results):
    """One finished popbatch command: what the user saw, and what it wrote.

    ``output`` is stdout and stderr as a terminal interleaves them (for a
    process of its own: stdout, then stderr).
    """

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    output: str

    @property
    def lines(self) -> list[str]:
        """The lines of stderr a user reads, without log records and progress.

        The progress lines carry a rate and are left out; the line that
        starts the sending (``sending 4 rows``) stays.
        """
        return [
            line
            for line in self.stderr.splitlines()
            if not _LOG_LINE.match(line) and not _PROGRESS_LINE.match(line)
        ]

    @property
    def said(self) -> list[str]:
        """``lines`` without the line that starts the sending: the messages alone."""
        return [line for line in self.lines if not _START_LINE.match(line)]

    @property
    def log_lines(self) -> list[str]:
        """The log records on stderr, without their time stamps (``INFO batch=1 ...``)."""
        return [
            _LOG_LINE.sub(lambda m: m.group(0).split()[-1] + " ", line)
            for line in self.stderr.splitlines()
            if _LOG_LINE.match(line)
        ]

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


def sheet_rows(sheet: Any) -> list[dict[str, Any]]:
    """The rows below a worksheet's header row, as header -> value."""
    rows = sheet.iter_rows(values_only=True)
    headers = next(rows)
    return [dict(zip(headers, values, strict=True)) for values in rows]


def read_text_csv(path: Path, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Read a CSV with pandas, every cell as text and nothing as NaN."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)


def formula_cells(path: Path) -> list[str]:
    """Every cell of every sheet of a workbook that openpyxl reads as a formula."""
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


def expected_summary(
    batch_id: int,
    folder: Path,
    exit_line: str,
    *,
    operation: str = "capture",
    succeeded: tuple[int, int] = (0, 0),
    failed: tuple[int, int] = (0, 0),
    rejected: tuple[int, int] = (0, 0),
    review: tuple[int, int] = (0, 0),
    skipped: tuple[int, int] = (0, 0),
    pending: tuple[int, int] = (0, 0),
    review_orders: Sequence[str] = (),
    journal: Path | None = None,
    live: bool = False,
) -> list[str]:
    """The summary lines a run prints at its end, for (rows, yen) per group.

    ``review_orders`` are the order ids the Review advice names, in row order;
    ``journal`` is the test's journal, which the advice names since it is not
    the default one.
    """
    groups = [succeeded, failed, rejected, review, skipped, pending]
    rows = sum(count for count, _ in groups)
    amount = sum(yen for _, yen in groups)
    mode = (
        f"LIVE: {live_money(succeeded[0], review[0])}"
        if live
        else "test: dummy requests, no money moved"
    )
    lines = [f"popbatch {operation}, batch {batch_id} ({mode})"]
    for name, (count, yen) in zip(GROUPS, groups, strict=True):
        lines.append(f"  {name:<9}  {_tally(count, yen)}")
    lines.append(f"  {'Total':<9}  {_tally(rows, amount)}")
    counted = f"{rows:,} row{'' if rows == 1 else 's'}"
    lines.append(
        f"  adds up: {counted} in the groups = {counted} in the input, "
        f"{amount:,} yen = {amount:,} yen"
    )
    if review[0]:
        assert review_orders, "name the Review rows' order ids"
        lines += review_advice(batch_id, review_orders, journal)
    lines.append(f"Results: {folder}")
    lines.append(exit_line)
    return lines


def live_money(succeeded: int, review: int) -> str:
    """What the first line of a live run says about money, after ``LIVE: ``."""
    moved = f"{succeeded:,} row{'' if succeeded == 1 else 's'}"
    unsure = f"{review:,} row{'' if review == 1 else 's'}"
    if succeeded and review:
        return (
            f"real money moved for {moved} (Succeeded) and may have for "
            f"{review:,} more (Review)"
        )
    if succeeded:
        return f"real money moved for {moved} (Succeeded)"
    if review:
        return f"money may have moved for {unsure} (Review)"
    return "no money moved"


def review_advice(
    batch_id: int, order_ids: Sequence[str], journal: Path | None = None
) -> list[str]:
    """The two lines that name a run's Review orders and how to settle them.

    ``journal``, when given, is named with --journal in the commands.
    """
    batch = f"{batch_id}" if journal is None else f"{batch_id} --journal {journal}"
    named = ", ".join(order_ids[:10])
    if len(order_ids) > 10:
        named += f" and {len(order_ids) - 10:,} more"
    return [
        f"Review rows may or may not have been processed (order_id {named}): check "
        "them in the merchant portal before sending them again.",
        f"Then record what the portal shows with 'popbatch resolve {batch} "
        "ORDER_ID --succeeded|--failed --note TEXT' (or 'popbatch resolve "
        f"{batch} --file CSV' for many) and run this command again; if the "
        "portal shows none of them, this command with --resend-unknown sends them "
        "all again.",
    ]


def _tally(rows: int, amount: int) -> str:
    return f"{rows:>7,} row{'s' if rows != 1 else ' '}  {amount:>14,} yen"
