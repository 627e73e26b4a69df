"""Measure how long writing a 100,000-row batch's results takes, against raw xlsxwriter.

Builds synthetic journal records for a capture batch (most rows succeeded,
some failed, rejected, in Review or pending; a Japanese memo column), then
times, interleaved and repeated:

- ``write_results``: results.xlsx, the CSV twins, the retry file and
  summary.json, into a fresh folder;
- raw xlsxwriter writing the very same cells to the same sheets, with the
  same formats and workbook options, and nothing else; once as anyone would
  call it, and once with the garbage collector paused as write_results
  pauses it (the like-for-like figure).

It prints the median of each and their ratio (the goal: under 30 s, and at
most 1.3 times raw xlsxwriter), in wall-clock time and in this process's CPU
time; on a shared machine the CPU figures move much less. Nothing here
asserts a time.

    .venv/bin/python benchmarks/results_write.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import xlsxwriter

from popbatch.io.layout import Cell, Kind, group_layout
from popbatch.io.writers import results_folder_name, write_results
from popbatch.io.xlsxout import WorkbookLimits
from popbatch.report import Report, build_report
from popbatch.rows import (
    GROUP_ORDER,
    BatchRecord,
    Outcome,
    OutcomeKind,
    Problem,
    RowRecord,
    RowState,
    RunRecord,
)

OURS = "write_results (xlsx, CSVs, retry, json)"
RAW = "raw xlsxwriter"
RAW_PAUSED = "raw xlsxwriter, GC paused"
CONTENDERS = [OURS, RAW, RAW_PAUSED]

JST = timezone(timedelta(hours=9))
START = datetime(2026, 1, 31, 23, 0, tzinfo=JST)
MEMOS = ("1月分 定期購入", "送料込み", "返品なし", "株式会社サンプル 経理部", "")


def make_batch() -> BatchRecord:
    """A capture batch read from a CSV with order_id, amount and memo."""
    return BatchRecord(
        id=1,
        key="bench",
        operation="capture",
        input_path="/data/month-end.csv",
        input_sha256="0" * 64,
        input_kind="csv",
        encoding="utf-8-sig",
        delimiter=",",
        sheet=None,
        headers=("order_id", "amount", "memo"),
        columns={"order_id": 0, "amount": 1},
        live=False,
        endpoint="http://127.0.0.1:8080/pop/v1",
        options={"rate": 50, "concurrency": 8},
        created_at=START,
    )


def make_row(index: int) -> RowRecord:
    """Row ``index``: 96% succeeded, 2% failed, 1% rejected, 0.5% Review and pending."""
    number = index + 2
    order_id = f"ME-2026-01-{index:07d}"
    amount = 1_000 + (index % 997) * 10
    cells = (order_id, f"{amount:,}", MEMOS[index % len(MEMOS)])
    request = json.dumps({"order_id": order_id, "amount": amount, "dummy": True})
    sent = START + timedelta(milliseconds=20 * index)
    kind = index % 200
    if kind in (0, 1):
        return RowRecord(
            row=number,
            cells=(f"ME-{index}!", cells[1], cells[2]),
            state=RowState.REJECTED,
            problems=(Problem("order_id_charset", "has '!'", "order_id", "!"),),
        )
    if kind == 2:
        return RowRecord(
            row=number,
            cells=cells,
            state=RowState.PENDING,
            order_id=order_id,
            amount=amount,
            request=request,
        )
    if kind in (3, 4, 5, 6):
        response = {
            "order_id": order_id,
            "status": "failure",
            "result_code": "RM03",
            "message": "MDK Error",
            "m_status": "failure",
            "v_result_code": "AG48000000000000",
            "merr_msg": "無効カードです。",
        }
        outcome = Outcome(
            OutcomeKind.FAILED,
            "declined",
            "declined by the card company",
            "RM03",
            response,
            200,
            "application/json",
            sent_at=sent,
            received_at=sent + timedelta(milliseconds=84),
            elapsed_ms=84,
        )
        state = RowState.FAILED
    elif kind == 7:
        outcome = Outcome(
            OutcomeKind.UNKNOWN,
            "not_pop_json",
            "HTTP 502, response is not POP JSON",
            http_status=502,
            content_type="text/html",
            body_text="<html><body>502 Bad Gateway</body></html>",
            sent_at=sent,
            received_at=sent + timedelta(milliseconds=30_000),
            elapsed_ms=30_000,
        )
        state = RowState.UNKNOWN
    else:
        response = {
            "order_id": order_id,
            "status": "success",
            "result_code": "R001",
            "message": "Payment Captured Successfully",
            "m_status": "success",
            "v_result_code": "A001000000000000",
            "merr_msg": "処理が成功しました。",
        }
        outcome = Outcome(
            OutcomeKind.SUCCEEDED,
            "succeeded",
            "captured",
            "R001",
            response,
            200,
            "application/json",
            sent_at=sent,
            received_at=sent + timedelta(milliseconds=84),
            elapsed_ms=84,
        )
        state = RowState.SUCCEEDED
    return RowRecord(
        row=number,
        cells=cells,
        state=state,
        order_id=order_id,
        amount=amount,
        request=request,
        attempts=1,
        outcome=outcome,
    )


def write_raw(report: Report, path: Path, cells: list[list[list[Cell]]]) -> None:
    """The same cells, sheets, formats and options, written by xlsxwriter alone."""
    limits = WorkbookLimits()
    total = sum(len(rows) * len(rows[0]) for rows in cells if rows)
    book = xlsxwriter.Workbook(
        str(path),
        {
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "constant_memory": total > limits.constant_memory_cells,
            "tmpdir": str(path.parent),
        },
    )
    header = book.add_format({"bold": True, "bg_color": "#DDEBF7", "bottom": 1})
    formats = {
        Kind.TEXT: book.add_format({"valign": "top"}),
        Kind.WRAP: book.add_format({"valign": "top", "text_wrap": True}),
        Kind.LONG: book.add_format({"valign": "top"}),
        Kind.NUMBER: book.add_format({"valign": "top"}),
        Kind.AMOUNT: book.add_format({"valign": "top", "num_format": "#,##0"}),
    }
    book.add_worksheet("Summary")
    for group, rows in zip(GROUP_ORDER, cells, strict=True):
        layout = group_layout(report, group)
        column_formats = [formats[column.kind] for column in layout.columns]
        sheet = book.add_worksheet(group.value)
        for col, text in enumerate(layout.headers):
            sheet.write_string(0, col, text, header)
        for row, values in enumerate(rows, 1):
            for col, value in enumerate(values):
                if value is None or value == "":
                    continue
                if isinstance(value, int):
                    sheet.write_number(row, col, value, column_formats[col])
                else:
                    sheet.write_string(row, col, str(value), column_formats[col])
    book.close()


def main() -> int:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()

    batch = make_batch()
    rows = [make_row(index) for index in range(options.rows)]
    run = RunRecord(
        batch_id=1,
        started_at=START,
        user="bench",
        host="localhost",
        version="bench",
        options=batch.options,
        finished_at=START + timedelta(hours=1),
    )
    report = build_report(batch, run, rows, exit_code=3)
    layouts = [group_layout(report, group) for group in GROUP_ORDER]
    cells = [
        [layout.values(row) for row in report.groups[layout.group]]
        for layout in layouts
    ]
    count = sum(len(rows) * len(rows[0]) for rows in cells if rows)

    wall: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpu: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)

        def run_once(name: str, label: str) -> tuple[float, float]:
            target = base / label
            target.mkdir()
            paused = name == RAW_PAUSED
            if paused:
                gc.disable()
            began, began_cpu = time.perf_counter(), time.process_time()
            if name == OURS:
                write_results(report, target / results_folder_name(batch))
            else:
                write_raw(report, target / "results.xlsx", cells)
            spent = time.perf_counter() - began, time.process_time() - began_cpu
            if paused:
                gc.enable()
            return spent

        # One untimed round first: imports, codecs and caches warm up once.
        for name in CONTENDERS:
            run_once(name, f"warm-{CONTENDERS.index(name)}")

        # Rotate which goes first, so that none always follows another.
        for attempt in range(options.repeat):
            order = CONTENDERS[attempt % 3 :] + CONTENDERS[: attempt % 3]
            for name in order:
                spent = run_once(name, f"{attempt}-{CONTENDERS.index(name)}")
                wall[name].append(spent[0])
                cpu[name].append(spent[1])
            print(
                f"run {attempt + 1}: "
                + ", ".join(
                    f"{name} {wall[name][-1]:.2f} s (CPU {cpu[name][-1]:.2f} s)"
                    for name in CONTENDERS
                )
            )

    print(f"rows: {options.rows:,}; cells in the group sheets: {count:,}")
    print(f"{'medians':<42}{'wall':>9}{'CPU':>9}")
    for name in CONTENDERS:
        print(
            f"{name:<42}{statistics.median(wall[name]):>8.2f}s"
            f"{statistics.median(cpu[name]):>8.2f}s"
        )
    for name in (RAW, RAW_PAUSED):
        print(
            f"{'ratio to ' + name:<42}"
            f"{statistics.median(wall[OURS]) / statistics.median(wall[name]):>9.2f}"
            f"{statistics.median(cpu[OURS]) / statistics.median(cpu[name]):>9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
