"""The Summary sheet of results.xlsx: what ran, the counts, the check, the chart.

It comes first in the workbook and is what a finance team reads before any
row: test or live, full refunds, whether the groups add up to the input,
who ran what and when, rows and yen per group and per result code with the
API text's meanings, a bar chart of rows per result code, and last the
notices found while reading and writing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xlsxwriter.format import Format

from popbatch.io.layout import Cell
from popbatch.io.xlsxout import ResultWorkbook, excel_text
from popbatch.report import (
    Report,
    describe_duration,
    full_refund_sentence,
    iso_time,
    live_money_phrase,
)
from popbatch.rows import GROUP_ORDER

# Words that mark an option as secret-like: never shown, whatever its value.
_SECRET_WORDS = ("key", "secret", "token", "password", "auth")


class SummarySheet:
    """The Summary sheet: what ran, the counts, the check, the chart, the notices."""

    def __init__(self, book: ResultWorkbook) -> None:
        self._book = book
        sheet = self._sheet = book.summary_sheet
        self._row = 0
        self.bold = book.add_format({"bold": True})
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.loud = book.add_format({"bold": True, "font_color": "#C00000"})
        self.good = book.add_format({"bold": True, "font_color": "#006100"})
        self.header = book.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "bottom": 1}
        )
        self.amount = book.add_format({"num_format": "#,##0"})
        self.total = book.add_format({"bold": True, "num_format": "#,##0", "top": 1})
        self.total_label = book.add_format({"bold": True, "top": 1})
        self.text = book.add_format({"valign": "top"})
        for first, last, width in ((0, 0, 30), (1, 1, 16), (2, 2, 48), (3, 5, 16)):
            sheet.set_column(first, last, width)

    def line(self, *cells: Cell, formats: Sequence[Format | None] = ()) -> int:
        """Write one row of cells (text, numbers or blanks) and return its index."""
        row = self._row
        for col, value in enumerate(cells):
            cell_format = formats[col] if col < len(formats) else None
            if value is None or value == "":
                continue
            if isinstance(value, int):
                self._sheet.write_number(row, col, value, cell_format or self.amount)
            else:
                text = excel_text(value, self._book.notes)
                if text.startswith("<r>") and text.endswith("</r>"):
                    self._book.write_rich_safe(
                        self._sheet, row, col, text, cell_format or self.text
                    )
                else:
                    self._sheet.write_string(row, col, text, cell_format)
        self._row += 1
        return row

    def gap(self) -> None:
        """Leave an empty row."""
        self._row += 1

    def write_head(self, report: Report, folder_name: str) -> None:
        """Everything but the notices: the run, the groups, the codes, the chart."""
        self._write_banner(report)
        self._write_about(report, folder_name)
        self._write_groups(report)
        self._write_codes(report)

    def _write_banner(self, report: Report) -> None:
        operation = report.operation
        self.line(
            f"popbatch results: {operation.name}, batch {report.batch.id}",
            formats=[self.title],
        )
        if report.live:
            self.line(f"LIVE: {live_money_phrase(report)}.", formats=[self.loud])
        else:
            self.line(
                "TEST: every request carried dummy: true; no money moved.",
                formats=[self.good],
            )
        refunds = full_refund_sentence(report)
        if refunds:
            self.line(refunds, formats=[self.loud])
        check = report.check
        self.line(
            f"Check: {check.sentence()}", formats=[self.good if check.ok else self.loud]
        )
        self.gap()

    def _write_about(self, report: Report, folder_name: str) -> None:
        batch = report.batch
        run = report.run
        timings = report.timings
        pairs: list[tuple[str, Cell]] = [
            ("Batch", batch.id),
            ("Operation", f"{report.operation.name} ({report.operation.endpoint})"),
            ("Mode", "live" if report.live else "test (dummy: true)"),
            ("Input file", batch.input_path),
            ("Input sha256", batch.input_sha256),
            ("Input read as", _read_as(report)),
            ("Columns used", _columns_used(report)),
            ("Started", iso_time(timings.started_at)),
            ("Finished", iso_time(timings.finished_at) or "not finished"),
            ("Duration", describe_duration(timings.duration_s)),
        ]
        if timings.batch_created_at < timings.started_at:
            pairs.append(("Batch first planned", iso_time(timings.batch_created_at)))
        pairs += [
            ("Requests", _requests_text(report)),
            ("Run by", f"{run.user}@{run.host}"),
            ("popbatch version", run.version),
            ("Endpoint", batch.endpoint),
        ]
        pairs += [
            (f"Option {option_label(name)}", value)
            for name, value in visible_options(run.options)
        ]
        pairs += [
            ("Exit code", f"{int(report.exit_code)}: {report.exit_code.meaning}"),
            ("Results folder", folder_name),
        ]

        self.line("About this run", formats=[self.header, self.header])
        for label, value in pairs:
            self.line(label, value, formats=[self.bold, self.text])
        self.gap()

    def _write_groups(self, report: Report) -> None:
        self.line(
            "Group",
            "Rows",
            "Amount (yen)",
            "Full-amount refunds",
            formats=[self.header] * 4,
        )
        for group in GROUP_ORDER:
            tally = report.tallies[group]
            self.line(group.value, tally.rows, tally.amount, tally.full_amount_rows)

        check = report.check
        total = report.total
        self.line(
            "All groups",
            total.rows,
            total.amount,
            total.full_amount_rows,
            formats=[self.total_label, self.total, self.total, self.total],
        )
        self.line(
            "Input rows",
            check.rows_read,
            check.input.amount,
            check.input.full_amount_rows,
            formats=[self.bold],
        )
        self.line(
            "Check",
            "adds up" if check.ok else "DOES NOT ADD UP",
            formats=[self.bold, self.good if check.ok else self.loud],
        )
        self.gap()

    def _write_codes(self, report: Report) -> None:
        self.line(
            "Group",
            "Result code",
            "Meaning (API text, or the gateway's merr_msg)",
            "Rows",
            "Amount (yen)",
            "Full-amount refunds",
            formats=[self.header] * 6,
        )
        first = self._row
        for line in report.codes:
            self.line(
                line.group.value,
                line.label,
                line.meaning,
                line.tally.rows,
                line.tally.amount,
                line.tally.full_amount_rows,
            )
        last = self._row - 1
        if last >= first:
            self._add_chart(first, last)
        self.gap()

    def _add_chart(self, first: int, last: int) -> None:
        chart = self._book.add_chart({"type": "bar"})
        chart.add_series(
            {
                "name": "Rows",
                "categories": ["Summary", first, 1, last, 1],
                "values": ["Summary", first, 3, last, 3],
                "data_labels": {"value": True},
                "fill": {"color": "#4472C4"},
            }
        )
        chart.set_title({"name": "Rows per result code"})
        chart.set_legend({"none": True})
        # Bar charts draw the first category at the bottom; read top-down.
        chart.set_y_axis({"reverse": True})
        height = max(288, 28 * (last - first + 1) + 96)
        self._sheet.insert_chart(1, 7, chart, {"x_scale": 1.4, "y_scale": height / 288})

    def write_notices(self, notices: Sequence[str]) -> None:
        """The notices section, last on the sheet: facts found while reading and writing."""
        self.line("Notices", formats=[self.header])
        if not notices:
            self.line("none")
        for notice in notices:
            self.line(notice)


def visible_options(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's options as ``name, value`` texts, leaving out anything key-like.

    Values read as a person types them: ``yes`` or ``no``, ``100`` rather
    than ``100.0``, ``not set`` for an option not given.
    """
    shown = []
    for name in sorted(options):
        lowered = name.lower()
        if any(word in lowered for word in _SECRET_WORDS):
            continue
        value = options[name]
        if isinstance(value, dict):
            text = ", ".join(
                f"{inner}={option_text(value[inner])}" for inner in sorted(value)
            )
        else:
            text = option_text(value)
        shown.append((name, text))
    return shown


def option_label(name: str) -> str:
    """An option as typed on the command line: ``skip_invalid`` is ``--skip-invalid``."""
    return _OPTION_LABELS.get(name, f"--{name.replace('_', '-')}")


_OPTION_LABELS = {"timeouts": "--connect-timeout, --timeout"}


def option_text(value: Any) -> str:
    """One option's value as a person types it: ``yes``, ``no``, ``100``, ``2.5``."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def _read_as(report: Report) -> str:
    batch = report.batch
    if batch.input_kind == "xlsx":
        return f"Excel workbook, sheet {batch.sheet!r}"
    delimiter = "tab" if batch.delimiter == "\t" else repr(batch.delimiter or ",")
    return f"CSV, encoding {batch.encoding or 'utf-8'}, delimiter {delimiter}"


def _columns_used(report: Report) -> str:
    headers = report.batch.headers
    parts = []
    for name, position in report.batch.columns.items():
        header = headers[position] if position < len(headers) else "?"
        parts.append(f"{name} <- {header!r} (column {position + 1})")
    return "; ".join(parts)


def _requests_text(report: Report) -> str:
    timings = report.timings
    text = f"{timings.requests:,} requests"
    if timings.median_ms is not None:
        text += (
            f"; answers took {timings.median_ms:,} ms (median), "
            f"{timings.slowest_ms:,} ms at most"
        )
    return text
