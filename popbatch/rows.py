"""What a row is as it moves through popbatch: states, groups, problems, outcomes.

These small value types are shared by the steps of the flow (schema, client,
journal, report) so that each step speaks of rows in DESIGN.md's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RowState(StrEnum):
    """A row's state in the journal (DESIGN.md, Journal)."""

    PLANNED = "planned"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    PENDING = "pending"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    RESOLVED = "resolved"


class Group(StrEnum):
    """The result groups every input row lands in exactly one of."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    REJECTED = "Rejected"
    REVIEW = "Review"
    SKIPPED = "Skipped"
    PENDING = "Pending"


GROUP_ORDER: tuple[Group, ...] = tuple(Group)


def group_of(state: RowState, resolution: RowState | None = None) -> Group:
    """Return the result group of a row in ``state``.

    A row still ``in_flight`` when results are written was possibly applied,
    so it is reviewed, never treated as pending. A resolved row lands where
    the person who settled it said it belongs.
    """
    if state is RowState.RESOLVED:
        return Group.SUCCEEDED if resolution is RowState.SUCCEEDED else Group.FAILED
    return _GROUP_OF_STATE[state]


_GROUP_OF_STATE = {
    RowState.PLANNED: Group.PENDING,
    RowState.PENDING: Group.PENDING,
    RowState.IN_FLIGHT: Group.REVIEW,
    RowState.UNKNOWN: Group.REVIEW,
    RowState.SUCCEEDED: Group.SUCCEEDED,
    RowState.FAILED: Group.FAILED,
    RowState.REJECTED: Group.REJECTED,
    RowState.SKIPPED: Group.SKIPPED,
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a row is rejected or skipped: one cell (or the row) and a reason.

    Args:
        reason: a stable snake_case code, e.g. ``amount_not_a_number``.
        message: a sentence for people; quotes the value with ``!r``.
        column: the column as the input names it, or the API field name.
        value: the cell as read, when there is one.
    """

    reason: str
    message: str
    column: str | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A normalisation popbatch made to a cell before validating it."""

    column: str
    before: str
    after: str


class OutcomeKind(StrEnum):
    """What one attempt to send a row came to (DESIGN.md, When to retry)."""

    SUCCEEDED = "succeeded"  # POP JSON with the operation's success code
    FAILED = "failed"  # a POP answer that is a failure: decline, bad value, bad key
    UNKNOWN = "unknown"  # possibly applied: goes to Review, never re-sent
    NOT_SENT = "not_sent"  # nothing left this machine: connect failure
    NOT_PROCESSED = "not_processed"  # POP said so: 429, 503 + Retry-After, RA01...


@dataclass(frozen=True, slots=True)
class Outcome:
    """One classified attempt: what was sent, what came back, and what it means.

    Args:
        reason: stable snake_case code, e.g. ``declined``, ``read_timeout``,
            ``not_pop_json``, ``connect_failed``, ``key_rejected``.
        detail: a sentence for the Failed or Review sheet.
        response: the POP JSON fields as received, when the body was POP JSON.
        body_text: the body as text when it was not POP JSON (capped).
        retry_after_s: the wait the server asked for, in seconds.
        stops_batch: every further row would fail the same way (RC17, RC44,
            HTTP 401/403).
    """

    kind: OutcomeKind
    reason: str
    detail: str
    result_code: str | None = None
    response: Mapping[str, Any] | None = None
    http_status: int | None = None
    content_type: str | None = None
    body_text: str | None = None
    retry_after_s: float | None = None
    stops_batch: bool = False
    sent_at: datetime | None = None
    received_at: datetime | None = None
    elapsed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a person settled a Review row after checking the merchant portal."""

    outcome: RowState  # SUCCEEDED or FAILED
    note: str
    by: str
    at: datetime


@dataclass(slots=True)
class RowRecord:
    """One input row as the journal holds it: enough to rebuild every result.

    Args:
        row: the spreadsheet row number (the header is row 1).
        cells: the input row as read, one text per input column.
        request: the exact JSON body sent (or to be sent), without the key.
        amount: the request's amount, or None when the row has none.
        problems: rejection or skip reasons; empty for sent rows.
        changes: normalisations made to the row's cells.
        defaults: API defaults that apply because a cell was blank,
            e.g. ``{"capture": "true"}``, shown in the results.
    """

    row: int
    cells: tuple[str, ...]
    state: RowState
    order_id: str | None = None
    request: str | None = None
    amount: int | None = None
    problems: tuple[Problem, ...] = ()
    changes: tuple[Change, ...] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0
    outcome: Outcome | None = None
    resolution: Resolution | None = None
    first_sent_at: datetime | None = None
    finished_at: datetime | None = None
    id: int | None = None

    @property
    def group(self) -> Group:
        """The result group this row belongs to now."""
        return group_of(
            self.state, self.resolution.outcome if self.resolution else None
        )


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One batch: an operation applied to one input file's content.

    Args:
        key: what identifies the batch: operation, the file's hash, test or
            live, endpoint. Re-running the same command finds it again.
        columns: API field name -> position of the input column holding it.
        headers: the input's header cells as read, in order.
        notices: facts about the input reported once (blank rows, sheet used).
    """

    id: int
    key: str
    operation: str
    input_path: str
    input_sha256: str
    input_kind: str  # "csv" or "xlsx"
    encoding: str | None
    delimiter: str | None
    sheet: str | None
    headers: tuple[str, ...]
    columns: Mapping[str, int]
    live: bool
    endpoint: str
    options: Mapping[str, Any]
    created_at: datetime
    notices: tuple[str, ...] = ()
    finished_at: datetime | None = None
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One invocation that worked on a batch (a resumed batch has several)."""

    batch_id: int
    started_at: datetime
    user: str
    host: str
    version: str
    options: Mapping[str, Any]
    finished_at: datetime | None = None
    exit_code: int | None = None
    id: int | None = None
