"""The plan step: rows become journal records with their exact request bodies.

Planning decides, before anything is sent, what each row will do: a valid
row gets the JSON body it will be sent with (built once, so that every retry
and every resumed run sends the same bytes); an invalid row is rejected; and
the rules across batches (DESIGN.md, plan) skip rows that an earlier batch
already did, hold rows whose order is still in Review, and refuse refunds that
repeat or exceed what popbatch itself recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from popbatch.config import ControlTotals
from popbatch.errors import InputRefusedError
from popbatch.journal import HistoryEntry
from popbatch.operations import CANCEL, FieldKind, Operation
from popbatch.report import rows_phrase
from popbatch.rows import Problem, RowRecord, RowState
from popbatch.schema import Validation


def build_request(
    operation: Operation, values: Mapping[str, Any], *, live: bool
) -> tuple[str, int | None, dict[str, str]]:
    """Return the JSON body for one row, its amount, and the API defaults used.

    Fields come in the API text's order with ``dummy`` last, as its examples
    show. A blank optional cell is left out so that POP's default applies;
    the defaults returned say which, for the results.
    """
    body: dict[str, Any] = {}
    defaults: dict[str, str] = {}
    amount: int | None = None
    for field in operation.fields:
        value = values.get(field.name)
        if value is None or value is pd.NA:
            if field.api_default is not None:
                defaults[field.name] = field.api_default
            continue
        if field.kind is FieldKind.AMOUNT:
            amount = int(value)
            body[field.name] = amount
        elif field.kind is FieldKind.BOOLEAN:
            body[field.name] = bool(value)
        else:
            body[field.name] = str(value)
    # Test mode is the default: only --live sends dummy false (DESIGN.md, Safety).
    body["dummy"] = not live

    return json.dumps(body, ensure_ascii=False), amount, defaults


def plan_rows(validation: Validation, *, live: bool) -> list[RowRecord]:
    """Turn a validated input into one journal record per order row."""
    operation = validation.operation
    table = validation.table
    cells = [
        tuple(str(cell) for cell in row)
        for row in table.cells.itertuples(index=False, name=None)
    ]
    row_numbers = table.row_numbers.tolist()
    records: list[RowRecord | None] = [None] * len(cells)

    for index, values in validation.iter_requests():
        body, amount, defaults = build_request(operation, values, live=live)
        records[index] = RowRecord(
            row=row_numbers[index],
            cells=cells[index],
            state=RowState.PLANNED,
            order_id=str(values["order_id"]),
            request=body,
            amount=amount,
            changes=tuple(validation.changes.get(index, ())),
            defaults=defaults,
        )

    order_column = validation.columns.get("order_id")
    for index, problems in validation.rejected.items():
        raw_id = cells[index][order_column].strip() if order_column is not None else ""
        records[index] = RowRecord(
            row=row_numbers[index],
            cells=cells[index],
            state=RowState.REJECTED,
            order_id=raw_id or None,
            problems=tuple(problems),
            changes=tuple(validation.changes.get(index, ())),
        )

    missing = [row_numbers[i] for i, record in enumerate(records) if record is None]
    if missing:
        # Validation promises that every row is valid or rejected.
        raise RuntimeError(f"rows neither valid nor rejected: {missing[:5]}")
    return [record for record in records if record is not None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the cross-batch rules say of one row: send it, skip it, or hold it."""

    state: RowState  # PLANNED (send), SKIPPED (final) or PENDING (held)
    problems: tuple[Problem, ...] = ()


SEND = Verdict(RowState.PLANNED)


def _succeeded(entry: HistoryEntry) -> bool:
    return entry.settled is RowState.SUCCEEDED


def _captures(entry: HistoryEntry) -> bool:
    """Whether the row captured its order: a capture, or a charge with capture.

    reauthorize and authorize capture at once unless ``capture`` is false
    (the API's default is true, so a blank cell captures too).
    """
    if entry.operation == "capture":
        return True
    if entry.operation not in ("reauthorize", "authorize") or entry.request is None:
        return False
    return json.loads(entry.request).get("capture", True) is not False


def judge_row(
    row: RowRecord,
    operation: Operation,
    history: Sequence[HistoryEntry],
    *,
    allow_repeat: bool,
) -> Verdict:
    """Apply DESIGN.md's rules across batches to one row about to be sent.

    ``history`` holds the rows of other batches (same mode and endpoint) for
    this row's order id, in any operation.
    """
    in_review = [entry for entry in history if entry.in_review]
    if in_review:
        first = in_review[0]
        return Verdict(
            RowState.PENDING,
            (
                Problem(
                    "order_in_review",
                    f"order {row.order_id} is in Review in batch {first.batch_id} "
                    f"(row {first.row}); it is not sent until that is settled with "
                    f"'popbatch resolve {first.batch_id} {row.order_id} "
                    "--succeeded|--failed'",
                    column="order_id",
                    value=row.order_id,
                ),
            ),
        )

    done = [e for e in history if e.operation == operation.name and _succeeded(e)]
    if operation is CANCEL:
        return _judge_refund(row, history, done, allow_repeat=allow_repeat)
    if not done:
        return SEND

    earlier = done[0]
    differences = request_differences(earlier.request, row.request)
    if differences:
        there = " and ".join(f"{name} {_shown(old)}" for name, old, _ in differences)
        here = " and ".join(f"{name} {_shown(new)}" for name, _, new in differences)
        name, _, value = differences[0]
        return Verdict(
            RowState.SKIPPED,
            (
                Problem(
                    "already_done_differs",
                    f"already done in batch {earlier.batch_id} (row {earlier.row}) with "
                    f"{there}; this row asks {here}, so it was not sent: check "
                    "which is right",
                    column=name,
                    value=None if value is None else _shown(value),
                ),
            ),
        )
    return Verdict(
        RowState.SKIPPED,
        (
            Problem(
                "already_done",
                f"already done in batch {earlier.batch_id} (row {earlier.row})",
                column="order_id",
                value=row.order_id,
            ),
        ),
    )


def request_differences(
    earlier: str | None, request: str | None
) -> list[tuple[str, Any, Any]]:
    """The fields whose values differ between two request bodies.

    Returns (field, earlier value, this value) in the order of this body's
    fields, then those only the earlier one has; a field left out is None.
    ``dummy`` is not compared: batches only meet within one mode.
    """
    if earlier is None or request is None:
        return []
    before: dict[str, Any] = json.loads(earlier)
    now: dict[str, Any] = json.loads(request)
    names = [name for name in now if name != "dummy"]
    names += [name for name in before if name not in now and name != "dummy"]
    return [
        (name, before.get(name), now.get(name))
        for name in names
        if before.get(name) != now.get(name)
    ]


def _shown(value: Any) -> str:
    """A request value as a sentence shows it: 1,000, true, or "not set"."""
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _judge_refund(
    row: RowRecord,
    history: Sequence[HistoryEntry],
    done: Sequence[HistoryEntry],
    *,
    allow_repeat: bool,
) -> Verdict:
    """The cancel rules: full cancels, repeated refunds, refunds above capture."""
    full = [entry for entry in done if entry.amount is None]
    if full and row.amount is None:
        # The same full cancel again: it is done, there is nothing to decide.
        return Verdict(
            RowState.SKIPPED,
            (
                Problem(
                    "already_cancelled",
                    f"already fully cancelled in batch {full[0].batch_id} "
                    f"(row {full[0].row})",
                    column="order_id",
                    value=row.order_id,
                ),
            ),
        )
    if full:
        # A partial refund is another request than the full cancel: it was
        # never done, and cannot be, so a person must hear of it (exit 1).
        assert row.amount is not None
        return Verdict(
            RowState.SKIPPED,
            (
                Problem(
                    "nothing_left_to_refund",
                    f"the order was fully cancelled in batch {full[0].batch_id} "
                    f"(row {full[0].row}): nothing is left to refund, so this "
                    f"refund of {row.amount:,} was not sent",
                    column="amount",
                    value=str(row.amount),
                ),
            ),
        )
    if row.amount is None:
        return SEND

    repeats = [entry for entry in done if entry.amount == row.amount]
    if repeats and not allow_repeat:
        return Verdict(
            RowState.SKIPPED,
            (
                Problem(
                    "repeat_refund",
                    f"a refund of {row.amount:,} for this order already succeeded in "
                    f"batch {repeats[0].batch_id} (row {repeats[0].row}), so this one "
                    "was not sent: if this file was re-run or corrected, it is already "
                    "done; only for a second, separate refund of the same amount, "
                    "--allow-repeat sends it",
                    column="amount",
                    value=str(row.amount),
                ),
            ),
        )

    captured = [e for e in history if _succeeded(e) and _captures(e)]
    if captured and captured[0].amount is not None:
        limit = captured[0].amount
        refunded = sum(entry.amount or 0 for entry in done)
        if refunded + row.amount > limit:
            return Verdict(
                RowState.SKIPPED,
                (
                    Problem(
                        "refund_exceeds_capture",
                        f"popbatch captured {limit:,} for this order in batch "
                        f"{captured[0].batch_id} and has refunded {refunded:,}; a "
                        f"refund of {row.amount:,} would exceed the capture: not sent",
                        column="amount",
                        value=str(row.amount),
                    ),
                ),
            )
    return SEND


def check_control_totals(rows: Iterable[RowRecord], totals: ControlTotals) -> None:
    """Refuse the run when the batch is not what was approved (exit 65).

    ``rows`` are all the batch's rows. The figure checked is the same at
    every run of the batch: its rows that are to be sent or were sent by it
    (every row but the Rejected and the Skipped ones), so a half-sent batch
    that resumes still matches the approved count and total. A cancel row
    without an amount refunds the full amount, which is not known here, so
    any amount check fails and names those rows.
    """
    if totals == ControlTotals():
        return

    rows = list(rows)
    counted = [row for row in rows if row.state not in _NOT_COUNTED]
    count = len(counted)
    details = _left_out(rows, counted)
    if totals.expect_rows is not None and count != totals.expect_rows:
        raise InputRefusedError(
            f"--expect-rows {totals.expect_rows:,}, but this batch sends "
            f"{rows_phrase(count)}{details}; nothing was sent",
            hint="Check the file against what was approved.",
        )
    if totals.expect_total is None and totals.max_total is None:
        return

    unknown = [row.row for row in counted if row.amount is None]
    if unknown:
        listed = ", ".join(str(number) for number in unknown[:10])
        more = f" and {len(unknown) - 10:,} more" if len(unknown) > 10 else ""
        raise InputRefusedError(
            f"an amount check was asked, but rows {listed}{more} have no amount "
            "(a full refund, whose amount is not known here); nothing was sent",
            hint="Give those rows an amount, or drop --expect-total/--max-total.",
        )
    total = sum(row.amount or 0 for row in counted)
    sends = f"this batch sends {total:,} yen in {rows_phrase(count)}{details}"
    if totals.expect_total is not None and total != totals.expect_total:
        raise InputRefusedError(
            f"--expect-total {totals.expect_total:,}, but {sends}; nothing was sent",
            hint="Check the file against what was approved.",
        )
    if totals.max_total is not None and total > totals.max_total:
        raise InputRefusedError(
            f"{sends}, above --max-total {totals.max_total:,}; nothing was sent",
        )


# Rows that the control totals leave out: never sent by this batch, for good.
_NOT_COUNTED = (RowState.REJECTED, RowState.SKIPPED)

# Rows that are still to be sent; any other counted row was sent by the batch.
_TO_SEND = (RowState.PLANNED, RowState.PENDING)

# Why Skipped rows were not sent, as the control totals' message says it.
_SKIPPED_WHY = {
    "already_done": "already done in an earlier batch",
    "already_cancelled": "already done in an earlier batch",
    "already_done_differs": "different from what an earlier batch did",
    "repeat_refund": "a refund repeating one that succeeded",
    "refund_exceeds_capture": "a refund above what popbatch captured",
    "nothing_left_to_refund": "a refund of an order fully cancelled earlier",
}


def _left_out(rows: Sequence[RowRecord], counted: Sequence[RowRecord]) -> str:
    """What the count leaves out or includes beyond the rows to send, in brackets.

    E.g. `` (2 more are skipped: already done in an earlier batch)``.
    """
    parts = []
    sent = sum(1 for row in counted if row.state not in _TO_SEND)
    if sent:
        parts.append(
            "already sent by an earlier run"
            if sent == len(counted) == 1
            else f"{sent:,} of them already sent by an earlier run"
        )
    skipped = [row for row in rows if row.state is RowState.SKIPPED]
    if skipped:
        why: dict[str, int] = {}
        for row in skipped:
            reason = row.problems[0].reason if row.problems else ""
            label = _SKIPPED_WHY.get(reason, "not to be sent")
            why[label] = why.get(label, 0) + 1
        if len(why) == 1:
            listed = next(iter(why))
        else:
            listed = ", ".join(f"{number:,} {label}" for label, number in why.items())
        parts.append(f"{len(skipped):,} more {_are(len(skipped))} skipped: {listed}")
    rejected = sum(1 for row in rows if row.state is RowState.REJECTED)
    if rejected:
        parts.append(f"{rejected:,} more {_are(rejected)} rejected as invalid")
    return f" ({'; '.join(parts)})" if parts else ""


def _are(count: int) -> str:
    return "is" if count == 1 else "are"
