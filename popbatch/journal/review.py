"""The statements behind Review rows: interrupted, sent again, resolved.

A Review row's history is never lost: each change made here first copies
the row's state, outcome and attempts into ``row_events``, with who asked
and why. These functions run inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

from popbatch.errors import UsageError
from popbatch.journal.codec import (
    ROW_COLUMNS,
    STATE_OF,
    dump_json,
    outcome_text,
    parse_outcome,
    parse_row,
    time_text,
)
from popbatch.journal.model import INTERRUPTED_OUTCOME, REVIEW_STATES, RowEvent
from popbatch.rows import Resolution, RowRecord, RowState

# Copies the rows a WHERE clause (appended) selects into row_events.
_EVENT_SQL = """
INSERT INTO row_events
    (row_id, at, kind, from_state, to_state, outcome, attempts, note, actor)
SELECT id, ?, ?, state, ?, outcome, attempts, ?, ? FROM rows
"""

_REVIEW_WHERE = "WHERE batch_id = ? AND state IN ('unknown', 'in_flight')"


def interrupt_in_flight(conn: sqlite3.Connection, batch_id: int, at: datetime) -> int:
    """Move the batch's in_flight rows to unknown; returns how many."""
    moment = time_text(at)
    where = "WHERE batch_id = ? AND state = 'in_flight'"
    conn.execute(
        _EVENT_SQL + where,
        (moment, "interrupted", RowState.UNKNOWN.value, None, None, batch_id),
    )
    count: int = conn.execute(
        f"UPDATE rows SET state = 'unknown', outcome = ?, finished_at = ? {where}",
        (outcome_text(INTERRUPTED_OUTCOME), moment, batch_id),
    ).rowcount
    return count


def requeue(
    conn: sqlite3.Connection,
    batch_id: int,
    *,
    by: str,
    note: str,
    at: datetime,
    order_ids: Collection[str] | None,
) -> int:
    """Make the batch's Review rows planned again; returns how many."""
    where = _REVIEW_WHERE
    params: list[Any] = [batch_id]
    if order_ids is not None:
        where += " AND order_id IN (SELECT value FROM json_each(?))"
        params.append(dump_json(sorted(order_ids)))

    conn.execute(
        _EVENT_SQL + where,
        (time_text(at), "resend_requested", RowState.PLANNED.value, note, by, *params),
    )
    count: int = conn.execute(
        f"UPDATE rows SET state = 'planned', outcome = NULL, finished_at = NULL {where}",
        params,
    ).rowcount
    return count


def replan_resolved_failed(
    conn: sqlite3.Connection, batch_id: int, at: datetime
) -> int:
    """Make the batch's rows resolved as failed planned again; returns how many.

    A person who resolved a Review row as failed found that POP did not
    apply it, so the batch still owes that request. The resolution (who,
    why) moves into a ``replanned`` event, and the row is cleared of it and
    of its outcome, so that it is sent and reported like any planned row.
    """
    where = (
        "WHERE batch_id = ? AND state = 'resolved' AND resolution_outcome = 'failed'"
    )
    conn.execute(
        "INSERT INTO row_events "
        "(row_id, at, kind, from_state, to_state, outcome, attempts, note, actor) "
        "SELECT id, ?, 'replanned', state, 'planned', outcome, attempts, "
        "'resolved as failed at ' || resolution_at || ': ' || resolution_note, "
        f"resolution_by FROM rows {where}",
        (time_text(at), batch_id),
    )
    count: int = conn.execute(
        "UPDATE rows SET state = 'planned', outcome = NULL, finished_at = NULL, "
        "resolution_outcome = NULL, resolution_note = NULL, resolution_by = NULL, "
        f"resolution_at = NULL {where}",
        (batch_id,),
    ).rowcount
    return count


def find_review_row(
    conn: sqlite3.Connection, batch_id: int, order_id: str
) -> RowRecord:
    """The one Review row of the batch with ``order_id``.

    A row already resolved counts as one until it is sent again, so that a
    person can correct a resolution made by mistake.

    Raises:
        UsageError: the batch has no such order id, its row is not in Review,
            or several of its rows are.
    """
    records = [
        parse_row(values)
        for values in conn.execute(
            f"SELECT {ROW_COLUMNS} FROM rows WHERE batch_id = ? AND order_id = ? "
            "ORDER BY row",
            (batch_id, order_id),
        )
    ]
    # A resolved row may be resolved again until it is sent: a resolution
    # as failed is replanned (and so cleared) by the next run, which may
    # stop before sending it.
    review = [
        record
        for record in records
        if record.state in REVIEW_STATES
        or record.state is RowState.RESOLVED
        or _replanned_not_sent(conn, record)
    ]

    if not records:
        raise UsageError(
            f"batch {batch_id} has no row with order_id {order_id!r}",
            hint=f"popbatch status {batch_id} lists its Review rows.",
        )
    if not review:
        first = records[0]
        raise UsageError(
            f"order_id {order_id!r} in batch {batch_id} (row {first.row}) is in "
            f"{first.group.value}, not in Review; only Review rows can be resolved"
        )
    if len(review) > 1:
        rows = ", ".join(str(record.row) for record in review)
        raise UsageError(
            f"order_id {order_id!r} is in Review on several rows of batch "
            f"{batch_id} (rows {rows}); only one row per order id can be resolved"
        )
    return review[0]


def _replanned_not_sent(conn: sqlite3.Connection, record: RowRecord) -> bool:
    """Whether a run replanned the row after it was resolved as failed, and no
    attempt was made since (the run stopped first)."""
    if record.state not in (RowState.PLANNED, RowState.PENDING):
        return False
    last = conn.execute(
        "SELECT kind, attempts FROM row_events WHERE row_id = ? "
        "ORDER BY id DESC LIMIT 1",
        (record.id,),
    ).fetchone()
    return last is not None and last[0] == "replanned" and last[1] == record.attempts


def settle(conn: sqlite3.Connection, row_id: int, resolution: Resolution) -> None:
    """Record a person's resolution of the Review row ``row_id``."""
    at = time_text(resolution.at)
    conn.execute(
        _EVENT_SQL + "WHERE id = ?",
        (
            at,
            "resolved",
            RowState.RESOLVED.value,
            resolution.note,
            resolution.by,
            row_id,
        ),
    )
    conn.execute(
        "UPDATE rows SET state = 'resolved', resolution_outcome = ?, "
        "resolution_note = ?, resolution_by = ?, resolution_at = ? WHERE id = ?",
        (resolution.outcome.value, resolution.note, resolution.by, at, row_id),
    )


def read_events(conn: sqlite3.Connection, batch_id: int) -> list[RowEvent]:
    """The events of the batch's rows, oldest first."""
    found = conn.execute(
        "SELECT e.row_id, r.row, r.order_id, e.kind, e.from_state, e.to_state, "
        "e.at, e.outcome, e.attempts, e.note, e.actor "
        "FROM row_events AS e JOIN rows AS r ON r.id = e.row_id "
        "WHERE r.batch_id = ? ORDER BY e.id",
        (batch_id,),
    )
    return [
        RowEvent(
            row_id=values[0],
            row=values[1],
            order_id=values[2],
            kind=values[3],
            from_state=STATE_OF[values[4]],
            to_state=STATE_OF[values[5]],
            at=datetime.fromisoformat(values[6]),
            outcome=parse_outcome(values[7]),
            attempts=values[8],
            note=values[9],
            by=values[10],
        )
        for values in found
    ]
