"""The columns of each result group, shared by the workbook and the CSV twins.

Every group starts with the input's row number and the input's own columns,
in the input's order and under the input's header text. In Rejected those
cells are exactly as read (they were never validated); elsewhere the columns
popbatch interprets show the normalised values that were sent: the order id
as text, the amount as a number. What POP answered and what popbatch made
of the row follow.

A row's values are plain Python: ``str`` for text, ``int`` for numbers,
``None`` for an empty cell. Making them safe for Excel or for CSV is the
writers' job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from popbatch.io.normalise import escape_invisible, quote
from popbatch.operations import describe_code
from popbatch.report import (
    SENT_AGAIN_REASON,
    Report,
    is_full_refund,
    iso_time,
    result_code,
    shown_reason,
)
from popbatch.rows import Group, RowRecord

Cell = str | int | None


class Kind(Enum):
    """How a column is shown in the workbook."""

    TEXT = "text"  # one line of text
    WRAP = "wrap"  # text of several lines, wrapped
    LONG = "long"  # long text (request and response bodies): not wrapped
    NUMBER = "number"  # a whole number shown as is (row, attempts, ms)
    AMOUNT = "amount"  # yen, with a thousands separator


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a result sheet and CSV."""

    header: str
    kind: Kind = Kind.TEXT


@dataclass(frozen=True, slots=True)
class Layout:
    """The columns of one group and the function that fills them for a row."""

    group: Group
    columns: tuple[Column, ...]
    values: Callable[[RowRecord], list[Cell]]

    @property
    def headers(self) -> list[str]:
        """The header row."""
        return [column.header for column in self.columns]


# What POP answers for every operation (API text, "Capture Response").
COMMON_RESPONSE_FIELDS = (
    "status",
    "message",
    "m_status",
    "v_result_code",
    "merr_msg",
)

# The extra answer fields of each operation, in the API text's order.
EXTRA_RESPONSE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "capture": (),
    "cancel": (),
    "reauthorize": (
        "acquirer_code",
        "auth_code",
        "masked_card_number",
        "transaction_datetime",
        "center_error_code",
    ),
    "authorize": (
        "acquirer_code",
        "auth_code",
        "masked_card_number",
        "card_expire",
        "transaction_datetime",
        "center_error_code",
        "paynow_status",
        "paynow_account_id",
        "paynow_card_id",
        "paynow_message",
        "paynow_default_card",
    ),
}

SENT_GROUPS = frozenset({Group.SUCCEEDED, Group.FAILED, Group.REVIEW, Group.PENDING})
FULL_REFUND_TEXT = "FULL amount (no amount given)"


def _distinct(
    columns: list[Column], *, inputs: int, response: set[str]
) -> list[Column]:
    """Rename popbatch's columns whose header an input column already uses.

    An authorize file has a paynow_card_id column, and so has POP's answer:
    the answer's becomes ``paynow_card_id (POP)``, and a column of popbatch's
    own (``row``, ``reason``, ``changes``) that the input also has gets
    ``(popbatch)``, then a number if that is taken too, so that every header
    popbatch adds names one column. Columns 1 to ``inputs - 1`` are the
    input's and keep their names.
    """
    taken = {column.header.strip().lower() for column in columns[1:inputs]}
    renamed: list[Column] = []
    for position, column in enumerate(columns):
        if 1 <= position < inputs:
            renamed.append(column)
            continue
        header = column.header
        if header.lower() in taken:
            mark = "POP" if header in response else "popbatch"
            header = f"{column.header} ({mark})"
            number = 2
            while header.lower() in taken:
                header = f"{column.header} ({mark} {number})"
                number += 1
        taken.add(header.lower())
        renamed.append(Column(header, column.kind))
    return renamed


def input_headers(headers: Sequence[str]) -> list[str]:
    """The input's header texts, naming a blank header by its position."""
    return [
        text if text.strip() else f"(column {n})" for n, text in enumerate(headers, 1)
    ]


def group_layout(report: Report, group: Group) -> Layout:
    """The columns of ``group``'s sheet and CSV, and how a row fills them."""
    batch = report.batch
    operation = report.operation
    width = len(batch.headers)
    amount_at = batch.columns.get("amount")
    cancel = operation.name == "cancel"
    rejected = group is Group.REJECTED
    sent = group in SENT_GROUPS
    explained = group in (Group.FAILED, Group.REVIEW, Group.PENDING)
    review = group is Group.REVIEW
    skipped = group is Group.SKIPPED
    full_refunds = cancel and not rejected
    resolved = group in (Group.SUCCEEDED, Group.FAILED) and any(
        row.resolution is not None for row in report.groups[group]
    )
    response_fields = COMMON_RESPONSE_FIELDS + EXTRA_RESPONSE_FIELDS[operation.name]

    columns = [Column("row", Kind.NUMBER)]
    for position, header in enumerate(input_headers(batch.headers)):
        kind = Kind.AMOUNT if position == amount_at and not rejected else Kind.TEXT
        columns.append(Column(header, kind))
    if full_refunds:
        columns.append(Column("full refund"))
    if sent:
        columns += [Column("result_code"), Column("meaning")]
        columns += [Column(name) for name in response_fields]
    if explained:
        reason = (
            Kind.WRAP if report.refused_again and group is Group.FAILED else Kind.TEXT
        )
        columns += [Column("reason", reason), Column("detail", Kind.WRAP)]
    if review:
        columns += [
            Column("http_status", Kind.NUMBER),
            Column("content_type"),
            Column("request sent", Kind.LONG),
            Column("response received", Kind.LONG),
        ]
    if sent:
        columns += [
            Column("attempts", Kind.NUMBER),
            Column("sent_at"),
            Column("received_at"),
            Column("elapsed_ms", Kind.NUMBER),
        ]
    if rejected:
        columns.append(Column("reasons", Kind.WRAP))
    if skipped:
        columns.append(Column("reason", Kind.WRAP))
    if resolved:
        columns.append(Column("resolution", Kind.WRAP))
    columns.append(Column("changes", Kind.WRAP))
    if not rejected:
        columns.append(Column("defaults", Kind.WRAP))

    columns = _distinct(
        columns, inputs=width + 1, response={"result_code", *response_fields}
    )
    cells = _cells_as_read(width) if rejected else _interpreted_cells(report)

    def values(row: RowRecord) -> list[Cell]:
        out: list[Cell] = [row.row]
        out += cells(row)
        if full_refunds:
            out.append(FULL_REFUND_TEXT if is_full_refund(row, operation) else None)
        outcome = row.outcome
        if sent:
            code = result_code(row)
            response = outcome.response if outcome is not None else None
            out.append(code)
            out.append(describe_code(code) if code is not None else None)
            if response:
                # Nearly every answer field is text already; convert the rest.
                out += [
                    value if value.__class__ is str else _text(value)
                    for value in map(response.get, response_fields)
                ]
            else:
                out += [None] * len(response_fields)
        if explained:
            out += _explanation(row, report)
        if review:
            out += _evidence(row)
        if sent:
            out.append(row.attempts)
            if outcome is not None:
                out.append(iso_time(outcome.sent_at, milliseconds=True) or None)
                out.append(iso_time(outcome.received_at, milliseconds=True) or None)
                out.append(outcome.elapsed_ms)
            else:
                out += [None, None, None]
        if rejected:
            out.append(problems_text(row))
        if skipped:
            out.append(
                "\n".join(problem.message for problem in row.problems)
                or "already done in an earlier batch"
            )
        if resolved:
            out.append(resolution_text(row))
        out.append(changes_text(row))
        if not rejected:
            out.append(defaults_text(row))
        return out

    return Layout(group, tuple(columns), values)


def _cells_as_read(width: int) -> Callable[[RowRecord], list[Cell]]:
    def cells(row: RowRecord) -> list[Cell]:
        found: list[Cell] = list(row.cells[:width])
        if len(found) < width:
            found += [""] * (width - len(found))
        return found

    return cells


def _interpreted_cells(report: Report) -> Callable[[RowRecord], list[Cell]]:
    # The order id and amount are fields of the record; the other fields an
    # operation takes (original_order_id, capture, paynow_*) are read back
    # from the exact request body, so the sheet shows what was sent.
    as_read = _cells_as_read(len(report.batch.headers))
    columns = report.batch.columns
    order_at = columns.get("order_id")
    amount_at = columns.get("amount")
    from_body = [
        (name, position)
        for name, position in columns.items()
        if name not in ("order_id", "amount") and position < len(report.batch.headers)
    ]

    def cells(row: RowRecord) -> list[Cell]:
        found = as_read(row)
        if order_at is not None and row.order_id is not None:
            found[order_at] = row.order_id
        if amount_at is not None and row.amount is not None:
            found[amount_at] = row.amount
        if from_body and row.request:
            body = _body(row.request)
            for name, position in from_body:
                found[position] = _text(body.get(name))
        return found

    return cells


def _body(request: str) -> Mapping[str, Any]:
    try:
        body = json.loads(request)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> Cell:
    """A response or request value as text: JSON booleans as ``true``/``false``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _evidence(row: RowRecord) -> list[Cell]:
    """What was sent and what came back, for a Review row."""
    outcome = row.outcome
    if outcome is None:
        return [None, None, row.request, None]

    if outcome.response is not None:
        received: str | None = json.dumps(dict(outcome.response), ensure_ascii=False)
    else:
        received = outcome.body_text
    return [outcome.http_status, outcome.content_type, row.request, received]


def problems_text(row: RowRecord) -> str:
    """A rejected row's reasons, one ``column: message`` a line."""
    return "\n".join(
        f"{problem.column}: {problem.message}" if problem.column else problem.message
        for problem in row.problems
    )


def changes_text(row: RowRecord) -> str | None:
    """Each cell that reading changed, one a line: ``amount: '¥1,000' → 1000``.

    The cell's text is quoted with invisible characters escaped, so that a
    trimmed NBSP or ideographic space shows; a cell read as blank leaves its
    field out of the request. The results and the dry run's preview say it
    the same way.
    """
    if not row.changes:
        return None
    return "\n".join(
        f"{change.column}: {quote(change.before, limit=200)} → "
        f"{escape_invisible(change.after) if change.after else '(blank: not sent)'}"
        for change in row.changes
    )


def defaults_text(row: RowRecord) -> str | None:
    """The API defaults that apply to a row: ``capture: not set (API default true)``."""
    if not row.defaults:
        return None
    return "\n".join(
        f"{name}: not set (API default: the FULL amount of the order)"
        if name == "amount" and value == "full"
        else f"{name}: not set (API default {value})"
        for name, value in row.defaults.items()
    )


def resolution_text(row: RowRecord) -> str | None:
    """How a person settled a Review row, when one did."""
    settled = row.resolution
    if settled is None:
        return None
    return (
        f"settled as {settled.outcome} by {settled.by} at {iso_time(settled.at)}: "
        f"{settled.note}"
    )


def _explanation(row: RowRecord, report: Report) -> list[Cell]:
    """Reason and detail: the last answer's, or why a row was held unsent.

    A row that POP refused when it was sent again after Review says so in
    its reason: the refusal may mean that the first request was applied.
    """
    if row.outcome is not None:
        if report.refused_after_resend(row):
            return [SENT_AGAIN_REASON, row.outcome.detail]
        return [shown_reason(row.outcome.reason), row.outcome.detail]
    if row.problems:
        return [
            row.problems[0].reason,
            "\n".join(problem.message for problem in row.problems),
        ]
    return [None, None]
