"""Benchmark input files: capture orders as CSV or xlsx, and the sandbox seed.

Everything is a pure function of the row index, so every run of every
machine measures the same bytes. Order ids are ``BENCH-<tag>-<index>``; the
amounts are whole yen between 1,000 and 10,960. A file may carry invalid rows
(an order id with ``!`` in it, which no POP id may hold) at a fixed share,
as scenario d asks for 0.5%.

    .venv/bin/python benchmarks/data.py captures.csv --rows 20000 --seed seed.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import xlsxwriter

HEADERS = ("order_id", "amount", "memo")
MEMOS = ("定期便 1月分", "送料込み", "ギフトセット", "予約商品", "")


def order_id(tag: str, index: int) -> str:
    """The order id of row ``index`` of the files tagged ``tag``."""
    return f"BENCH-{tag}-{index:07d}"


def amount(index: int) -> int:
    """The amount of row ``index``, authorised and captured alike."""
    return 1_000 + (index % 997) * 10


def rows(
    tag: str, count: int, *, invalid_every: int | None = None
) -> Iterator[tuple[str, int, str]]:
    """(order_id, amount, memo) for each row; every ``invalid_every``-th id is bad."""
    for index in range(count):
        identifier = order_id(tag, index)
        if invalid_every and index % invalid_every == invalid_every // 2:
            identifier += "!"
        yield identifier, amount(index), MEMOS[index % len(MEMOS)]


def write_csv(
    path: Path, tag: str, count: int, *, invalid_every: int | None = None
) -> Path:
    """A UTF-8 CSV of ``count`` capture rows with a memo column carried along."""
    lines = [",".join(HEADERS)]
    lines += [
        f"{identifier},{value},{memo}"
        for identifier, value, memo in rows(tag, count, invalid_every=invalid_every)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_xlsx(
    path: Path, tag: str, count: int, *, invalid_every: int | None = None
) -> Path:
    """An xlsx of ``count`` capture rows: ids as text, amounts as number cells."""
    book = xlsxwriter.Workbook(
        str(path),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    sheet = book.add_worksheet("orders")
    yen = book.add_format({"num_format": "#,##0"})
    sheet.write_row(0, 0, HEADERS)
    for number, (identifier, value, memo) in enumerate(
        rows(tag, count, invalid_every=invalid_every), start=1
    ):
        sheet.write_string(number, 0, identifier)
        sheet.write_number(number, 1, value, yen)
        if memo:
            sheet.write_string(number, 2, memo)
    book.close()
    return path


def write_seed(path: Path, tag: str, count: int) -> Path:
    """The sandbox seed: every order of the files tagged ``tag``, authorised."""
    orders = [
        {
            "order_id": order_id(tag, index),
            "amount": amount(index),
            "state": "authorized",
        }
        for index in range(count)
    ]
    path.write_text(json.dumps({"orders": orders}), encoding="utf-8")
    return path


def main() -> int:
    """Write one input file (and optionally its seed) from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a .csv or .xlsx file to write")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--tag", default="A", help="part of every order id")
    parser.add_argument(
        "--invalid-every", type=int, help="make one row in this many invalid"
    )
    parser.add_argument("--seed", type=Path, help="also write the sandbox seed here")
    options = parser.parse_args()

    writer = write_xlsx if options.path.suffix == ".xlsx" else write_csv
    writer(options.path, options.tag, options.rows, invalid_every=options.invalid_every)
    if options.seed is not None:
        write_seed(options.seed, options.tag, options.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
