"""Validation of an input table against one operation: valid rows and rejected rows.

``validate`` takes an InputTable and an Operation and returns a Validation:
the rows that may be sent, as typed values, and every problem of every
other row at once, each with the column as the input names it, the value
as read and a stable reason. The steps:

1. map the headers to the operation's fields (aliases included) and
   refuse the file for a field that appears twice or is missing, card
   numbers in a column popbatch does not read, a column that looks like
   a field but is not read, or a ``dummy`` column that disagrees with
   the run;
2. normalise each field's text (``popbatch.io.normalise``), recording
   every change;
3. check the normalised text with the operation's pandera schema, lazily,
   with every column kept as text (no coercion of what people typed);
4. add the Excel cell facts (dates, errors, merges...) of the columns read;
5. convert the valid rows' text to the values sent (int amounts, booleans).

Annotations stay real objects here (no ``from __future__ import
annotations``): pandera reads them at run time.
"""

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
from pandera.errors import SchemaErrors

from popbatch.io import normalise as norm
from popbatch.io.columns import (
    ROWS_SHOWN,
    ColumnMap,
    cell_problems,
    check_dummy,
    map_columns,
    refuse_card_numbers,
    refuse_lookalike_columns,
    rows_text,
)
from popbatch.io.csvfile import SPARE_COLUMNS, TEXT
from popbatch.io.readers import InputTable
from popbatch.operations import (
    AMOUNT_MAX,
    ORDER_ID_MAX,
    Field,
    FieldKind,
    Operation,
)
from popbatch.rows import Change, Problem

logger = logging.getLogger(__name__)


@dataclass
class Validation:
    """The outcome of validating an input table for one operation.

    Args:
        columns: API field name -> position of the input column holding it.
        valid: the rows that may be sent, indexed like ``table.cells``; one
            column per operation field: required ids as text (str dtype),
            optional ids (paynow_card_id) as text or None, amount as Int64
            (NA when blank, cancel only), booleans as True/False/None.
            None and NA mean blank: left out of the request, so that the
            API default applies.
        rejected: ``table.cells`` index -> the row's problems (one or more).
        changes: ``table.cells`` index -> normalisations made to its cells.
        notices: facts about the file to show once, such as
            "row 3 is blank (between data rows)".
    """

    operation: Operation
    table: InputTable
    columns: dict[str, int]
    valid: pd.DataFrame
    rejected: dict[int, tuple[Problem, ...]]
    changes: dict[int, tuple[Change, ...]]
    notices: tuple[str, ...]

    def row_number(self, index: int) -> int:
        """Return the spreadsheet row of the ``table.cells`` row at ``index``."""
        return self.table.row_number(index)

    def rejected_rows(self) -> list[tuple[int, tuple[Problem, ...]]]:
        """Return (spreadsheet row, problems) of every rejected row, in file order."""
        return [(self.row_number(i), self.rejected[i]) for i in sorted(self.rejected)]

    def defaults(self, index: int) -> dict[str, str]:
        """Return the API defaults that apply to a valid row, for the results.

        A blank optional cell is left out of the request; the API then uses
        its default (``capture``: true; cancel ``amount``: the full amount).
        """
        row = self.valid.loc[index]
        found: dict[str, str] = {}
        for field in self.operation.fields:
            if field.api_default is not None and _is_blank(row[field.name]):
                found[field.name] = field.api_default

        return found

    def request_fields(self, index: int) -> dict[str, Any]:
        """Return the row fields of a valid row's request body (without dummy).

        Blank optional fields are left out; amounts are ints, booleans bools.
        """
        row = self.valid.loc[index]
        fields: dict[str, Any] = {}
        for field in self.operation.fields:
            value = row[field.name]
            if _is_blank(value):
                continue
            if field.kind is FieldKind.AMOUNT:
                value = int(value)
            fields[field.name] = value

        return fields

    def iter_requests(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (index, request fields) of every valid row, in file order.

        The same fields as ``request_fields``, a column at a time: about
        3 s for a million rows, where ``DataFrame.to_dict`` takes far longer.
        """
        columns = [(name, self.valid[name].tolist()) for name in self.valid.columns]
        na = pd.NA
        for position, index in enumerate(self.valid.index.tolist()):
            yield (
                index,
                {
                    name: values[position]
                    for name, values in columns
                    if values[position] is not None and values[position] is not na
                },
            )


def _is_blank(value: Any) -> bool:
    return value is None or value is pd.NA


def validate(table: InputTable, operation: Operation, *, live: bool) -> Validation:
    """Validate an input table for ``operation``: valid rows, rejected rows, notices.

    Args:
        live: the run sends real requests (``--live``); a ``dummy`` column
            must then say false, and true otherwise.

    Raises:
        InputRefusedError: a field's column appears twice or a required
            one is missing, an uninterpreted column holds card numbers or
            looks like a field, or a ``dummy`` column disagrees with the run.
    """
    mapping = map_columns(table, operation)
    refuse_card_numbers(table, mapping.uninterpreted)
    refuse_lookalike_columns(table, operation, mapping)
    if mapping.dummy is not None:
        check_dummy(table, mapping.dummy, live=live)

    work, changes = norm.normalise_fields(table, operation, mapping.columns)
    typed_cells = cell_problems(table, operation, mapping.columns)
    _set_aside(work, mapping.columns, typed_cells)
    problems = _schema_problems(table, operation, mapping.columns, work)
    problems.update(typed_cells)
    rejected = _by_row(problems)

    keep = np.ones(len(table.cells), dtype=bool)
    keep[list(rejected)] = False
    valid_index = np.flatnonzero(keep)
    valid = _typed(work, operation, valid_index)
    notices = _notices(table, operation, mapping, valid)
    logger.info(
        "validated %s for %s: valid=%d rejected=%d",
        table.path.name,
        operation.name,
        len(valid),
        len(rejected),
    )

    return Validation(
        operation=operation,
        table=table,
        columns=dict(mapping.columns),
        valid=valid,
        rejected=rejected,
        changes=changes,
        notices=notices,
    )


# --- the schema -----------------------------------------------------------------------

Vector = Callable[[pd.Series], pd.Series]


def _present(series: pd.Series) -> pd.Series:
    return series != ""


def _order_id_characters(series: pd.Series) -> pd.Series:
    return (series == "") | series.str.fullmatch(norm.ORDER_ID_PATTERN)


def _at_most(limit: int) -> Vector:
    def check(series: pd.Series) -> pd.Series:
        return series.str.len() <= limit

    return check


def _once(series: pd.Series) -> pd.Series:
    codes, _ = pd.factorize(series)
    counts = np.bincount(codes[codes >= 0]) if len(codes) else np.array([], dtype=int)
    repeated = np.zeros(len(series), dtype=bool)
    if len(counts):
        repeated = counts[codes] > 1
    return pd.Series(~repeated | (series == "").to_numpy(), index=series.index)


def _amount_number(series: pd.Series) -> pd.Series:
    return (series == "") | series.str.fullmatch(r"[0-9]+")


def _amount_range(series: pd.Series) -> pd.Series:
    # Normalised amounts have no leading zeros, so the length bounds them.
    # Text that is no number also fails here when long; only the "number"
    # failure of such a cell is reported.
    return (series != "0") & (series.str.len() <= len(str(AMOUNT_MAX)))


def _boolean(series: pd.Series) -> pd.Series:
    return series.isin(("true", "false", ""))


def _visible(series: pd.Series) -> pd.Series:
    return ~series.str.contains(r"[\x00-\x1f\x7f]", regex=True)


def _different_ids(frame: pd.DataFrame) -> pd.Series:
    return (frame["order_id"] == "") | (frame["order_id"] != frame["original_order_id"])


def _default_card_with_card(frame: pd.DataFrame) -> pd.Series:
    return (frame["paynow_default_card"] == "") | (frame["paynow_card_id"] != "")


# Wide checks: check name -> (function, the field whose cell is at fault).
_WIDE: dict[str, tuple[Callable[[pd.DataFrame], pd.Series], str, tuple[str, ...]]] = {
    "order_id/same_as_original": (
        _different_ids,
        "order_id",
        ("order_id", "original_order_id"),
    ),
    "paynow_default_card/without_card_id": (
        _default_card_with_card,
        "paynow_default_card",
        ("paynow_default_card", "paynow_card_id"),
    ),
}


def _field_checks(field: Field) -> list[tuple[str, Vector]]:
    """Return a field's checks, most telling first: one problem per cell."""
    checks: list[tuple[str, Vector]] = []
    if field.required:
        checks.append(("required", _present))
    if field.kind is FieldKind.ORDER_ID:
        checks.append(("characters", _order_id_characters))
        checks.append(("length", _at_most(field.max_length or ORDER_ID_MAX)))
        if field.name == "order_id":
            checks.append(("duplicate", _once))
    elif field.kind is FieldKind.AMOUNT:
        checks.append(("number", _amount_number))
        checks.append(("range", _amount_range))
    elif field.kind is FieldKind.BOOLEAN:
        checks.append(("boolean", _boolean))
    else:
        checks.append(("length", _at_most(field.max_length or ORDER_ID_MAX)))
        checks.append(("invisible", _visible))

    return checks


@functools.cache
def build_schema(operation: Operation) -> pa.DataFrameSchema:
    """Return the pandera schema of an operation's normalised text columns.

    Every column is text; each check is a vectorised regex or comparison,
    named ``field/what`` so that a failure maps back to one cell's reason.
    """
    columns = {
        field.name: pa.Column(
            TEXT,
            checks=[
                pa.Check(function, name=f"{field.name}/{what}")
                for what, function in _field_checks(field)
            ],
            nullable=False,
        )
        for field in operation.fields
    }
    wide = [
        pa.Check(function, name=name)
        for name, (function, _, needs) in _WIDE.items()
        if set(needs) <= set(operation.field_names)
    ]

    return pa.DataFrameSchema(columns, checks=wide, name=f"popbatch {operation.name}")


def _failures(operation: Operation, work: pd.DataFrame) -> list[tuple[int, str]]:
    """Run the schema lazily; return (index, check name) of every failure."""
    try:
        build_schema(operation).validate(work, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return []

    if cases["index"].isna().any() or not cases["check"].str.contains("/").all():
        # A check that raised, or a dtype failure: popbatch built this
        # frame itself, so either is a bug, never a bad row.
        raise RuntimeError(
            f"validation of {operation.name} failed inside a check:\n"
            f"{cases[cases['index'].isna()].to_string()}"
        )

    pairs = zip(
        cases["index"].astype("int64").tolist(), cases["check"].tolist(), strict=True
    )
    return sorted(set(pairs))


def _schema_problems(
    table: InputTable,
    operation: Operation,
    columns: dict[str, int],
    work: pd.DataFrame,
) -> dict[tuple[int, int], Problem]:
    """Return one Problem per failing cell, keyed by (index, column position)."""
    order = {
        f"{field.name}/{what}": rank
        for field in operation.fields
        for rank, (what, _) in enumerate(_field_checks(field))
    }
    order.update({name: len(order) for name in _WIDE})
    first: dict[tuple[int, str], str] = {}
    for index, check in _failures(operation, work):
        field = _WIDE[check][1] if check in _WIDE else check.split("/")[0]
        key = (index, field)
        if key not in first or order[check] < order[first[key]]:
            first[key] = check

    by_field: dict[str, list[tuple[int, str]]] = {}
    for (index, field), check in first.items():
        by_field.setdefault(field, []).append((index, check))

    # Cells are fetched a field at a time: one lookup per cell in an
    # Arrow-backed column costs more than describing the cell.
    describe = _Describer(table, columns, work)
    problems: dict[tuple[int, int], Problem] = {}
    for field, failed in by_field.items():
        indexes = [index for index, _ in failed]
        position = columns.get(field)
        originals = (
            table.cells[position].iloc[indexes].tolist()
            if position is not None
            else [""] * len(indexes)
        )
        canonicals = work[field].iloc[indexes].tolist()
        for (index, check), original, canonical in zip(
            failed, originals, canonicals, strict=True
        ):
            cell = (index, -1 if position is None else position)
            problems[cell] = describe(field, check, original, canonical)

    return problems


class _Describer:
    """Turns a failed check of one cell into a Problem a person can act on."""

    def __init__(
        self, table: InputTable, columns: dict[str, int], work: pd.DataFrame
    ) -> None:
        self.table = table
        self.columns = columns
        self.work = work
        self._duplicates: dict[str, list[int]] | None = None

    def __call__(
        self, field: str, check: str, original: str, canonical: str
    ) -> Problem:
        position = self.columns.get(field)
        label = self.table.header_label(position) if position is not None else field
        reason, message = self._describe(check, field, label, original, canonical)

        return Problem(
            reason=reason,
            message=message,
            column=label,
            value=norm.escape_invisible(original),
        )

    def _describe(
        self, check: str, field: str, label: str, original: str, canonical: str
    ) -> tuple[str, str]:
        what = check.split("/", 1)[1]
        shown = norm.quote(original)
        if what == "required":
            return f"{field}_required", f"{label} is required"
        if what == "characters":
            return (
                f"{field}_invalid_characters",
                f"{label} {shown} has characters outside A-Z a-z 0-9 - _: "
                f"{norm.offending_characters(canonical)}",
            )
        if what == "length":
            return (
                f"{field}_too_long",
                f"{label} is {len(canonical)} characters long; at most 100 are "
                f"allowed (got {shown})",
            )
        if what == "duplicate":
            rows = ", ".join(str(row) for row in self._rows_of(canonical)[:ROWS_SHOWN])
            return (
                f"{field}_duplicate",
                f"{label} {canonical} appears more than once in this file "
                f"(rows {rows}); nothing was sent for it",
            )
        if what == "number":
            reason, why = norm.explain_amount(original)
            if not why:
                return reason, f"{label} {shown} is not a number"
            return reason, f"{label} {shown} is not a valid number: {why}"
        if what == "range":
            if canonical == "0":
                return (
                    "amount_below_minimum",
                    f"{label} {shown} is below the minimum of 1",
                )
            return (
                "amount_above_maximum",
                f"{label} {shown} is above the maximum of {AMOUNT_MAX:,}",
            )
        if what == "boolean":
            return (
                f"{field}_not_boolean",
                f"{label} must be {norm.BOOLEAN_SPELLINGS} (got {shown})",
            )
        if what == "invisible":
            return (
                f"{field}_control_characters",
                f"{label} {shown} holds control characters (line breaks, tabs)",
            )
        if what == "same_as_original":
            return (
                "order_id_same_as_original",
                f"{label} {shown} is the same as original_order_id; a "
                "reauthorization needs a new order id",
            )
        if what == "without_card_id":
            return (
                "paynow_default_card_without_card_id",
                f"{label} is set but paynow_card_id is blank; leave {label} empty "
                "or give the card id",
            )

        raise RuntimeError(f"no description for check {check!r}")

    def _rows_of(self, order_id: str) -> list[int]:
        if self._duplicates is None:
            ids = self.work["order_id"]
            repeated = ~_once(ids)
            groups: dict[str, list[int]] = {}
            for index in np.flatnonzero(repeated.to_numpy()).tolist():
                groups.setdefault(ids.iat[index], []).append(
                    self.table.row_number(index)
                )
            self._duplicates = groups

        return self._duplicates.get(order_id, [])


def _set_aside(
    work: pd.DataFrame,
    field_columns: dict[str, int],
    typed_cells: dict[tuple[int, int], Problem],
) -> None:
    """Blank the cells an Excel fact rejects, so no other check counts them.

    A date cell's ISO text is not the id that was typed: it must not make
    a real ``2024-03-01`` text id look duplicated (case 10).
    """
    field_at = {position: field for field, position in field_columns.items()}
    by_field: dict[str, list[int]] = {}
    for index, position in typed_cells:
        if position in field_at:  # unnamed text sits in no field's column
            by_field.setdefault(field_at[position], []).append(index)
    for field, indexes in by_field.items():
        work.loc[indexes, field] = ""


def _by_row(problems: dict[tuple[int, int], Problem]) -> dict[int, tuple[Problem, ...]]:
    rows: dict[int, list[tuple[int, Problem]]] = {}
    for (index, position), problem in problems.items():
        rows.setdefault(index, []).append((position, problem))

    return {
        index: tuple(problem for _, problem in sorted(found, key=lambda item: item[0]))
        for index, found in sorted(rows.items())
    }


# --- typed values -----------------------------------------------------------------------


def _typed(
    work: pd.DataFrame, operation: Operation, index: npt.NDArray[np.int64]
) -> pd.DataFrame:
    """Convert the valid rows' normalised text into the values sent."""
    rows = work.iloc[index]
    columns: dict[str, Any] = {}
    for field in operation.fields:
        text = rows[field.name]
        if field.kind is FieldKind.AMOUNT:
            columns[field.name] = _amounts(text)
        elif field.kind is FieldKind.BOOLEAN:
            values = np.full(len(text), None, dtype=object)
            flags = text.to_numpy(dtype=object)
            values[flags == "true"] = True
            values[flags == "false"] = False
            columns[field.name] = pd.Series(values, index=text.index, dtype=object)
        elif not field.required:
            ids = text.to_numpy(dtype=object)
            ids[ids == ""] = None
            columns[field.name] = pd.Series(ids, index=text.index, dtype=object)
        else:
            columns[field.name] = text

    return pd.DataFrame(columns, index=rows.index)


def _amounts(text: pd.Series) -> pd.Series:
    strings = pa_arrow.array(text.array, type=pa_arrow.large_string())
    blank = pc.equal(strings, "")
    numbers = pc.cast(
        pc.if_else(blank, pa_arrow.scalar(None, pa_arrow.large_string()), strings),
        pa_arrow.int64(),
    )
    values = numbers.to_pandas(types_mapper={pa_arrow.int64(): pd.Int64Dtype()}.get)

    return pd.Series(values.array, index=text.index, dtype="Int64")


# --- notices ------------------------------------------------------------------------------


def _notices(
    table: InputTable,
    operation: Operation,
    mapping: ColumnMap,
    valid: pd.DataFrame,
) -> tuple[str, ...]:
    notices = []
    if len(table.sheets) > 1 and not table.sheet_given:
        names = ", ".join(repr(name) for name in table.sheets)
        notices.append(
            f"{table.path.name} has {len(table.sheets)} sheets ({names}); this "
            f"reads sheet {table.sheet!r}: --sheet NAME reads another"
        )
    notices += [_blank_notice(run) for run in _runs(table.blank_rows)]
    if table.hidden_rows:
        rows = list(table.hidden_rows)
        notices.append(
            f"{rows_text(rows).capitalize()} {'is' if len(rows) == 1 else 'are'} "
            "hidden in Excel (a filter or hidden rows); popbatch reads them like "
            "any other row"
        )
    past = [p for p in table.problems if p.reason == "text_past_header"]
    if past:
        rows = [p.row for p in past]
        named = [i for i, text in enumerate(table.headers) if norm.display_header(text)]
        notices.append(
            f"{rows_text(rows).capitalize()} {'has' if len(rows) == 1 else 'have'} "
            f"text more than {SPARE_COLUMNS} columns past column "
            f"{norm.column_letter(named[-1])}, the last with a header (first in "
            f"{norm.column_letter(past[0].column)}{past[0].row}); popbatch does "
            "not read it or carry it into the results: move it under a header to "
            "keep it"
        )
    for position, field in mapping.unused_fields.items():
        notices.append(
            f'column "{table.header_label(position)}" '
            f"({norm.column_letter(position)}) is the {field} field, which "
            f"{operation.name} does not send; it is carried through unchanged"
        )
    if mapping.dummy is not None:
        notices.append(
            f'column "{table.header_label(mapping.dummy)}" agrees with this run; '
            "the run's setting is what is sent"
        )
    if "amount" in valid.columns and not operation.field("amount").required:
        blank = valid.index[valid["amount"].isna().to_numpy()].tolist()
        if blank:
            rows = [table.row_number(i) for i in blank]
            notices.append(
                f"{len(rows)} {'row has' if len(rows) == 1 else 'rows have'} no "
                f"amount: each cancels or refunds the FULL amount of its order "
                f"({rows_text(rows)})"
            )
    if table.cells.empty:
        notices.append("the file has no data rows")

    return tuple(notices)


def _runs(rows: tuple[int, ...]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))

    return runs


def _blank_notice(run: tuple[int, int]) -> str:
    first, last = run
    if first == last:
        return f"row {first} is blank (between data rows)"

    return f"rows {first}-{last} are blank (between data rows)"
