"""Which input column holds which field, and the refusals about columns.

A file is refused as a whole (exit 65, even with ``--skip-invalid``) when
popbatch cannot tell which column to read: a field's column appears twice
(after trimming, case and aliases) or a required one is missing. It is
also refused when a column popbatch does not read holds card numbers, or
when a ``dummy`` column disagrees with the run. The Excel cell facts of
the reader (dates, errors, merges...) are kept here for the columns that
are read, and only for the kinds of field they matter to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from popbatch.errors import InputRefusedError
from popbatch.io import normalise as norm
from popbatch.io.readers import CellProblem, InputTable, date_cell_message
from popbatch.operations import FieldKind, Operation
from popbatch.rows import Problem

# How many row numbers a message lists before it says "and N more".
ROWS_SHOWN = 50


def where(table: InputTable) -> str:
    """Name the input in a message: the file, and the sheet of a workbook."""
    if table.sheet is not None:
        return f"{table.path.name} (sheet {table.sheet!r})"
    return table.path.name


def rows_text(rows: list[int]) -> str:
    """Return "row 3" or "rows 3, 5 and 2 more" for a message."""
    shown = ", ".join(str(row) for row in rows[:ROWS_SHOWN])
    more = len(rows) - ROWS_SHOWN
    word = "row" if len(rows) == 1 else "rows"

    return f"{word} {shown}" + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class ColumnMap:
    """Where each field's column is, and which columns are not read.

    Args:
        columns: API field name -> position of its column.
        dummy: position of a ``dummy`` column, if there is one.
        uninterpreted: positions of every column popbatch does not read.
        unused_fields: position -> field, for columns that name a field of
            another operation (carried through, with a notice).
    """

    columns: dict[str, int]
    dummy: int | None
    uninterpreted: list[int]
    unused_fields: dict[int, str]  # position -> a field of another operation


def map_columns(table: InputTable, operation: Operation) -> ColumnMap:
    """Map the headers to the operation's fields.

    Raises:
        InputRefusedError: a field's column appears twice, or a required
            one is missing.
    """
    positions: dict[str, list[int]] = {}
    for position, header in enumerate(table.headers):
        field = norm.field_for_header(header)
        if field is not None:
            positions.setdefault(field, []).append(position)

    read = set(operation.field_names) | {"dummy"}
    for field, found in positions.items():
        if field in read and len(found) > 1:
            raise _duplicate_column(table, field, found)
    missing = [
        field.name
        for field in operation.fields
        if field.required and field.name not in positions
    ]
    if missing:
        named = {p for found in positions.values() for p in found}
        raise _missing_column(table, operation, missing, named)

    columns = {
        field: found[0]
        for field, found in positions.items()
        if field in operation.field_names
    }
    dummy = positions["dummy"][0] if "dummy" in positions else None
    unused = {
        found[0]: field for field, found in positions.items() if field not in read
    }
    interpreted = set(columns.values()) | ({dummy} if dummy is not None else set())
    uninterpreted = [p for p in range(len(table.headers)) if p not in interpreted]

    return ColumnMap(columns, dummy, uninterpreted, unused)


def _duplicate_column(
    table: InputTable, field: str, found: list[int]
) -> InputRefusedError:
    letters = [norm.column_letter(position) for position in found]
    listed = ", ".join(letters[:-1]) + f" and {letters[-1]}"
    spellings = {norm.header_key(table.headers[position]) for position in found}
    if len(spellings) == 1:
        message = (
            f'{where(table)}: column "{field}" appears more than once '
            f"(columns {listed}); remove or rename one"
        )
    else:
        named = ", ".join(f'"{table.header_label(position)}"' for position in found)
        message = (
            f"{where(table)}: columns {named} all mean {field} "
            f"(columns {listed}); remove or rename all but one"
        )

    return InputRefusedError(
        message,
        hint="popbatch cannot know which column was meant, so it sends nothing.",
    )


def _missing_column(
    table: InputTable, operation: Operation, missing: list[str], named: set[int]
) -> InputRefusedError:
    headers = [table.header_label(p) for p in range(len(table.headers))]
    found = ", ".join(f'"{header}"' for header in headers[:10])
    if len(headers) > 10:
        found += f" and {len(headers) - 10} more"
    names = " and ".join(f'"{name}"' for name in missing)
    noun = "column" if len(missing) == 1 else "columns"
    message = (
        f"{where(table)} has no {names} {noun} for {operation.name} "
        f"(row {table.header_row}, the header, has {found})"
    )
    accepted = " and ".join(
        f"{name} (or {', '.join(norm.FIELD_ALIASES[name][1:])})" for name in missing
    )
    hint = f"Name the {noun} {accepted}."
    for field in missing:
        lookalike = _first_lookalike(table, field, named)
        if lookalike is not None:
            position, word = lookalike
            hint += (
                f' Column "{table.header_label(position)}" '
                f"({norm.column_letter(position)}) looks like {field} (its header "
                f'holds "{word}"): if it holds the values to send as {field}, '
                "rename it; popbatch does not guess."
            )
    if len(headers) == 1 and ";" in table.headers[0]:
        hint = "The header seems to use ';' between columns; save the file as CSV with commas."

    return InputRefusedError(message, hint=hint)


# What leaving an optional field out of every request does (API defaults).
_LEFT_OUT = {
    "amount": "every row would cancel or refund the FULL amount of its order",
    "capture": "every row would be captured at once (the API default)",
    "paynow_card_id": "every row would charge the member's standard card",
    "paynow_default_card": "every card given would become the member's "
    "standard card (the API default)",
    "dummy": "the run alone would decide whether requests are real",
}


def _first_lookalike(
    table: InputTable, field: str, named: set[int]
) -> tuple[int, str] | None:
    """Return (position, word) of the first column not named that looks like a field."""
    for position, header in enumerate(table.headers):
        if position in named:
            continue
        inside = norm.name_inside(header)
        if inside is not None and inside[0] == field:
            return position, inside[1]
        word = norm.lookalike_word(header, field)
        if word is not None:
            return position, word

    return None


def refuse_lookalike_columns(
    table: InputTable, operation: Operation, mapping: ColumnMap
) -> None:
    """Refuse a file with a column that looks like a field but is not read.

    Such a column would be carried through unread: a refund file whose
    amounts sit under ``refund_amount`` would refund every order in full,
    and ``capture?`` FALSE would be captured by the API default. A column
    looks like a field the operation reads (or ``dummy``) when its header
    holds one of the field's accepted names (``合計金額``, ``order_id_old``),
    or, when the file has no column for the field, one of its
    ``LOOKALIKE_WORDS``.

    Raises:
        InputRefusedError: naming the first such column.
    """
    read = {*operation.field_names, "dummy"}
    found = dict(mapping.columns)
    if mapping.dummy is not None:
        found["dummy"] = mapping.dummy
    for position in mapping.uninterpreted:
        if position in mapping.unused_fields:
            continue
        header = table.headers[position]
        inside = norm.name_inside(header)
        if inside is not None and inside[0] in read:
            field, word = inside
        else:
            missing = [f for f in norm.LOOKALIKE_WORDS if f in read and f not in found]
            words = [(f, norm.lookalike_word(header, f)) for f in missing]
            field, word = next(((f, w) for f, w in words if w), ("", ""))
            if not field:
                continue
        raise _lookalike_column(table, position, field, word, found.get(field))


def _lookalike_column(
    table: InputTable, position: int, field: str, word: str, read_at: int | None
) -> InputRefusedError:
    column = (
        f'{where(table)}: column "{table.header_label(position)}" '
        f"({norm.column_letter(position)}) looks like {field} (its header holds "
        f'"{word}") but is not a name popbatch reads'
    )
    if read_at is not None:
        return InputRefusedError(
            f'{column}; {field} is read from column "{table.header_label(read_at)}" '
            f"({norm.column_letter(read_at)}), and popbatch cannot tell which one "
            "you meant",
            hint=f'Remove or rename one of them; a header without "{word}" is '
            "carried through unread.",
        )

    message = f"{column}, and the file has no {field} column: {_LEFT_OUT[field]}"
    if field == "amount":
        names = ", ".join(norm.FIELD_ALIASES["amount"][1:])
        return InputRefusedError(
            message,
            hint=f'Name it "amount" (or {names}) if it holds the amounts to '
            "send; popbatch does not guess. To carry it through unread, give it "
            f'a header without "{word}" (README "Headers" lists the words that '
            "read as money).",
        )

    words = ", ".join(norm.LOOKALIKE_WORDS[field])
    return InputRefusedError(
        message,
        hint=f'Name it "{field}" if it holds the values to send as {field}; to '
        f"carry it through unread, give it a header with none of: {words}.",
    )


def refuse_card_numbers(table: InputTable, positions: list[int]) -> None:
    """Refuse a file with card numbers in a column popbatch does not read.

    The numbers are never echoed: the message names the column and rows.
    A number cell of more than 15 digits has already lost its last digits
    in Excel, so there a brand prefix and length are enough. Text past the
    header is in no column, but it is the merchant's all the same: a card
    number there refuses the file too.
    """
    found: dict[int, list[int]] = {}
    for problem in table.problems:
        if problem.reason == "number_too_long" and problem.column in positions:
            index = int(np.searchsorted(table.row_numbers, problem.row))
            digits = table.cells[problem.column].iat[index].lstrip("-")
            if 13 <= len(digits) <= 19 and norm.has_card_prefix(digits):
                found.setdefault(problem.column, []).append(problem.row)
        elif (
            problem.reason in _PAST_HEADER
            and problem.value is not None
            and norm.holds_card_number(problem.value)
        ):
            found.setdefault(problem.column, []).append(problem.row)

    for position in [*positions, *sorted(set(found) - set(positions))]:
        rows = found.get(position, [])
        if position < len(table.cells.columns):
            cards = norm.find_card_numbers(table.cells[position])
            rows += table.row_numbers[cards].tolist()
        if rows:
            rows = sorted(set(rows))
            cells = "cell" if len(rows) == 1 else "cells"
            raise InputRefusedError(
                f'{where(table)}: column "{table.header_label(position)}" '
                f"({norm.column_letter(position)}) holds what look like card "
                f"numbers in {len(rows)} {cells} ({rows_text(rows)}); popbatch "
                "refuses files that hold card numbers",
                hint="Delete those numbers (or the column) and save the file again.",
            )


def check_dummy(table: InputTable, position: int, *, live: bool) -> None:
    """Accept a ``dummy`` column only when every value agrees with the run."""
    expected = "false" if live else "true"
    texts = table.cells[position]
    canonical = [norm.canonical_boolean(text) for text in texts.tolist()]
    unreadable = [i for i, value in enumerate(canonical) if value is None]
    disagree = [
        i for i, value in enumerate(canonical) if value not in ("", expected, None)
    ]
    label = table.header_label(position)
    if unreadable:
        first = unreadable[0]
        raise InputRefusedError(
            f'{where(table)}: column "{label}" has {norm.quote(texts.iat[first])} '
            f"on row {table.row_number(first)}; it must be "
            f"{norm.BOOLEAN_SPELLINGS} and agree with the run",
            hint="Remove the dummy column: --live decides whether requests are real.",
        )
    if disagree:
        rows = [table.row_number(i) for i in disagree]
        run = "live run (--live)" if live else "test run (dummy true)"
        value = "true" if live else "false"
        raise InputRefusedError(
            f'{where(table)}: column "{label}" says {value} on {len(rows)} '
            f"{'row' if len(rows) == 1 else 'rows'} ({rows_text(rows)}), "
            f"but this is a {run}",
            hint="Remove the dummy column: --live decides whether requests are real.",
        )


# Rejections about how Excel stored a cell, not what it says: the text read
# from such a cell is not what the merchant typed, so it must never be
# written back as if it were (the retry file leaves these rows out).
EXCEL_CELL_REASONS = frozenset(
    {
        "merged_cells",
        "formula_without_value",
        "error_cell",
        "date_cell",
        "number_too_long",
        "number_format_hides_digits",
        "number_format_changes_value",
        "boolean_cell",
        "boolean_cell_invalid",
    }
)

# Which typed-cell facts reject a row, by the kind of field the column holds.
_ALWAYS = frozenset(
    {
        "merged_cells",
        "formula_without_value",
        "error_cell",
        "date_cell",
        "boolean_cell_invalid",
        # 5000000 formatted #,##0, shows 5,000; 0 formatted "TRUE" shows TRUE.
        "number_format_changes_value",
    }
)
_CELL_REASONS = {
    FieldKind.ORDER_ID: _ALWAYS
    | {"number_format_hides_digits", "number_too_long", "boolean_cell"},
    FieldKind.PAYNOW_ID: _ALWAYS
    | {"number_format_hides_digits", "number_too_long", "boolean_cell"},
    FieldKind.AMOUNT: _ALWAYS,
    FieldKind.BOOLEAN: _ALWAYS,
}
# Facts that reject a row whichever column they are in: CSV text past the
# last named column is what a value split by an unquoted comma looks like.
_ROW_REASONS = frozenset({"unnamed_text"})
# Text past the header's last named column (CSV, workbook): in no column.
_PAST_HEADER = frozenset({"unnamed_text", "text_past_header"})
_CELL_PRIORITY = (
    "unnamed_text",
    "merged_cells",
    "formula_without_value",
    "error_cell",
    "date_cell",
    "boolean_cell_invalid",
    "number_too_long",
    "number_format_changes_value",
    "number_format_hides_digits",
    "boolean_cell",
)


def cell_problems(
    table: InputTable, operation: Operation, columns: dict[str, int]
) -> dict[tuple[int, int], Problem]:
    """Return the cell facts that reject a row: one per cell read, and unnamed text."""
    kind_at = {columns[f.name]: f.kind for f in operation.fields if f.name in columns}
    chosen: dict[tuple[int, int], CellProblem] = {}
    for problem in table.problems:
        kind = kind_at.get(problem.column)
        if problem.reason not in _ROW_REASONS and (
            kind is None or problem.reason not in _CELL_REASONS[kind]
        ):
            continue
        index = int(np.searchsorted(table.row_numbers, problem.row))
        key = (index, problem.column)
        held = chosen.get(key)
        if held is None or _CELL_PRIORITY.index(problem.reason) < _CELL_PRIORITY.index(
            held.reason
        ):
            chosen[key] = problem

    result: dict[tuple[int, int], Problem] = {}
    for (index, position), problem in chosen.items():
        value = (
            problem.value
            if problem.value is not None
            else table.cells[position].iat[index]
        )
        message = problem.message
        if problem.reason == "date_cell" and kind_at[position] in (
            FieldKind.ORDER_ID,
            FieldKind.PAYNOW_ID,
        ):
            label = table.header_label(position)
            message = date_cell_message(label, value, position, noun="id")
        result[(index, position)] = Problem(
            reason=problem.reason,
            message=message,
            column=table.header_label(position),
            value=norm.escape_invisible(value),
        )

    return result
