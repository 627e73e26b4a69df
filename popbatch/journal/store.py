"""The journal: batches, runs and rows, recorded before and after each request.

``Journal`` is the one object that reads and writes the journal file. Every
method that changes something commits before it returns (or, inside
``transaction()``, when the outermost block ends), and SQLite runs with
``synchronous=FULL``: a change that was returned is on disk.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from itertools import compress
from pathlib import Path
from typing import Any

from popbatch.config import current_user
from popbatch.errors import UsageError
from popbatch.journal import codec, review
from popbatch.journal.access import Access
from popbatch.journal.codec import (
    BATCH_COLUMNS,
    ROW_COLUMNS,
    ROW_FIELDS,
    RUN_COLUMNS,
    STATE_OF,
    dump_json,
    local_now,
    outcome_text,
    parse_batch,
    parse_row,
    parse_run,
    parse_time,
    problems_text,
    time_text,
)
from popbatch.journal.database import connect
from popbatch.journal.lock import real_journal_path
from popbatch.journal.model import (
    ALLOWED_FROM,
    HISTORY_STATES,
    HistoryEntry,
    RowEvent,
    RowUpdate,
    canonical_endpoint,
    first_refusal,
)
from popbatch.rows import (
    BatchRecord,
    Resolution,
    RowRecord,
    RowState,
    RunRecord,
)

logger = logging.getLogger(__name__)


class _Refused(Exception):
    """apply() changed fewer rows than asked: roll back, then explain."""


# The states each target state may come from, as "|a|b|" for instr(): one
# prepared statement serves every update, and the check is in its WHERE
# clause, so a refused update changes nothing and shows in the count.
_FROM_TEXT = {
    to: "|" + "|".join(sorted(src.value for src in sources)) + "|"
    for to, sources in ALLOWED_FROM.items()
}

_APPLY_SQL = """
UPDATE rows SET
    state = ?1,
    attempts = coalesce(?2, attempts),
    outcome = coalesce(?3, outcome),
    first_sent_at = coalesce(first_sent_at, ?4),
    finished_at = coalesce(?5, finished_at),
    problems = coalesce(?6, problems)
WHERE id = ?7 AND instr(?8, '|' || state || '|') > 0
"""


@functools.lru_cache(maxsize=64)
def _insert_row_sql(filled: tuple[bool, ...]) -> str:
    """The INSERT of a row that fills the columns marked in ``filled``."""
    names = ["id", *compress(ROW_FIELDS, filled)]
    return (
        f"INSERT INTO rows ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    )


_INSERT_BATCH_SQL = (
    f"INSERT INTO batches ({BATCH_COLUMNS.removeprefix('id, ')}) "
    f"VALUES ({', '.join('?' * 17)})"
)

_HISTORY_SQL = """
SELECT r.order_id, r.batch_id, r.id, r.row, b.operation, r.state,
       r.resolution_outcome, r.amount, r.request, r.finished_at
FROM json_each(?) AS wanted
JOIN rows AS r ON r.order_id = wanted.value
JOIN batches AS b ON b.id = r.batch_id
WHERE b.live = ? AND b.endpoint = ? AND b.id IS NOT ?
  AND r.state IN (SELECT value FROM json_each(?))
ORDER BY r.batch_id, r.row
"""


class Journal:
    """The SQLite journal of batches, runs and rows.

    Open it with ``Journal.open(path)`` while holding the ``JournalLock`` for
    a run; read-only commands (status, report) may open it without the lock.

    Threads: the journal has one connection, and every call takes the
    journal's lock, so calls from several threads are safe but run one at a
    time. The pipeline writes from one writer thread. A ``transaction()``
    block holds the lock until it ends: keep such blocks short.
    """

    def __init__(
        self, conn: sqlite3.Connection, path: Path, clock: Callable[[], datetime]
    ) -> None:
        self.path = path
        self._db = Access(conn, path)
        self._clock = clock

    @classmethod
    def open(
        cls, path: str | Path, *, clock: Callable[[], datetime] = local_now
    ) -> Journal:
        """Open (creating, checking and upgrading as needed) the journal at ``path``.

        The journal is opened by its real path (symlinks followed), which
        ``path`` then holds: the file the ``JournalLock`` of ``path`` locks.

        Args:
            clock: the time of batches' ``created_at`` and of events when no
                time is given.

        Raises:
            OutputError: the journal cannot be created, is damaged, is not a
                journal, or was written by a newer popbatch.
        """
        real = real_journal_path(Path(path))
        return cls(connect(real), real, clock)

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def close(self) -> None:
        """Close the connection; later calls fail. Safe to repeat."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several calls into one commit: all of them or none.

        The plan step uses it so that a batch is never found without its
        rows::

            with journal.transaction():
                batch = journal.create_batch(...)
                journal.add_rows(batch.id, rows)

        Blocks nest (an inner block that raises undoes only its own part).
        """
        with self._db.write():
            yield

    # Batches and runs

    def find_batch(self, key: str) -> BatchRecord | None:
        """The batch with ``key`` (see ``batch_key``), or None."""
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE key = ?", (key,)
            ).fetchone()
        return None if found is None else parse_batch(found)

    def get_batch(self, batch_id: int) -> BatchRecord:
        """The batch with ``batch_id``.

        Raises:
            UsageError: there is no such batch.
        """
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
        if found is None:
            raise self._no_batch(batch_id)
        return parse_batch(found)

    def list_batches(self) -> list[BatchRecord]:
        """Every batch, oldest first."""
        with self._db.read() as conn:
            found = conn.execute(f"SELECT {BATCH_COLUMNS} FROM batches ORDER BY id")
            return [parse_batch(values) for values in found]

    def create_batch(
        self,
        *,
        key: str,
        operation: str,
        input_path: str | Path,
        input_sha256: str,
        input_kind: str,
        encoding: str | None,
        delimiter: str | None,
        sheet: str | None,
        headers: Sequence[str],
        columns: Mapping[str, int],
        live: bool,
        endpoint: str,
        options: Mapping[str, Any],
        notices: Sequence[str] = (),
    ) -> BatchRecord:
        """Record a new batch under ``key``, the ``batch_key`` it is found by.

        Create the batch and add its rows in one ``transaction()``: a batch
        found without its rows would resume as a batch with nothing to send.

        The endpoint is stored in its canonical form. ``options`` must be
        plain JSON data: anything else raises TypeError and writes nothing.

        Raises:
            ValueError: a batch with the same key exists (resume it instead).
        """
        record = BatchRecord(
            id=0,
            key=key,
            operation=operation,
            input_path=str(input_path),
            input_sha256=input_sha256,
            input_kind=input_kind,
            encoding=encoding,
            delimiter=delimiter,
            sheet=sheet,
            headers=tuple(headers),
            columns=dict(columns),
            live=live,
            endpoint=canonical_endpoint(endpoint),
            options=dict(options),
            notices=tuple(notices),
            created_at=self._clock(),
        )
        params = codec.batch_params(record)

        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM batches WHERE key = ?", (key,)).fetchone():
                raise ValueError(f"a batch with key {key!r} exists: resume it")
            batch_id = conn.execute(_INSERT_BATCH_SQL, params).lastrowid
        assert batch_id is not None

        return replace(record, id=batch_id)

    def finish_batch(
        self, batch_id: int, exit_code: int, finished_at: datetime
    ) -> None:
        """Record how the batch ended; a resumed batch may finish again."""
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE batches SET exit_code = ?, finished_at = ? WHERE id = ?",
                (int(exit_code), time_text(finished_at), batch_id),
            ).rowcount
            if changed == 0:
                raise self._no_batch(batch_id)

    def start_run(self, run: RunRecord) -> RunRecord:
        """Record that a run started working on a batch; returns it with its id."""
        params = codec.run_params(run)
        with self._db.write() as conn:
            self._require_batch(conn, run.batch_id)
            run_id = conn.execute(
                f"INSERT INTO runs ({RUN_COLUMNS.removeprefix('id, ')}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            ).lastrowid

        return replace(run, id=run_id)

    def finish_run(self, run_id: int, exit_code: int, finished_at: datetime) -> None:
        """Record how a run ended."""
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE runs SET exit_code = ?, finished_at = ? WHERE id = ?",
                (int(exit_code), time_text(finished_at), run_id),
            ).rowcount
            if changed == 0:
                raise ValueError(f"there is no run {run_id} in {self!r}")

    def runs(self, batch_id: int) -> list[RunRecord]:
        """The runs that worked on a batch, oldest first."""
        with self._db.read() as conn:
            found = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE batch_id = ? ORDER BY id",
                (batch_id,),
            )
            return [parse_run(values) for values in found]

    # Rows

    def add_rows(self, batch_id: int, rows: Iterable[RowRecord]) -> None:
        """Insert rows into a batch in one transaction and set their ``id``.

        Every field of each RowRecord is stored. Row numbers are unique per
        batch. Inside a ``transaction()`` that later rolls back, the ids set
        here name no row.

        Raises:
            ValueError: a row number is already in the batch (nothing is
                inserted).
            UsageError: there is no such batch.
        """
        records = list(rows)
        if not records:
            return
        # Encoding is most of the cost: do it before taking the lock. Rows
        # are grouped by the columns they fill, because binding a None costs
        # the sqlite3 module more than binding a value, and a fresh row
        # leaves most columns empty.
        groups: dict[tuple[bool, ...], list[tuple[int, tuple[Any, ...]]]] = {}
        for index, record in enumerate(records):
            values = codec.row_params(batch_id, record)
            filled = tuple([value is not None for value in values])
            groups.setdefault(filled, []).append(
                (index, tuple(compress(values, filled)))
            )

        with self._db.write() as conn:
            self._require_batch(conn, batch_id)
            # Ids are given here rather than by SQLite, so that they are known
            # without reading them back; nobody else writes during this
            # IMMEDIATE transaction.
            first = conn.execute(
                "SELECT coalesce(max(id), 0) + 1 FROM rows"
            ).fetchone()[0]
            try:
                for filled, group in groups.items():
                    conn.executemany(
                        _insert_row_sql(filled),
                        ((first + index, *values) for index, values in group),
                    )
            except sqlite3.IntegrityError as exc:
                raise ValueError(
                    f"batch {batch_id} cannot take these rows: {exc} "
                    "(a row number is repeated or already there)"
                ) from None

        for index, record in enumerate(records):
            record.id = first + index

    def rows(
        self, batch_id: int, states: Collection[RowState] | None = None
    ) -> list[RowRecord]:
        """The rows of a batch, by row number; only those in ``states`` if given."""
        sql = f"SELECT {ROW_COLUMNS} FROM rows WHERE batch_id = ?"
        params: list[Any] = [batch_id]
        if states is not None:
            sql += " AND state IN (SELECT value FROM json_each(?))"
            params.append(dump_json([state.value for state in states]))
        sql += " ORDER BY row"

        with self._db.read() as conn:
            found = conn.execute(sql, params).fetchall()
        return [parse_row(values) for values in found]

    def counts(self, batch_id: int) -> dict[RowState, int]:
        """How many rows of the batch are in each state (every state listed)."""
        counts = dict.fromkeys(RowState, 0)
        with self._db.read() as conn:
            for state, count in conn.execute(
                "SELECT state, count(*) FROM rows WHERE batch_id = ? GROUP BY state",
                (batch_id,),
            ):
                counts[STATE_OF[state]] = count
        return counts

    def apply(self, updates: Sequence[RowUpdate]) -> None:
        """Apply a group of row changes in one transaction and one commit.

        Updates apply in order, so one group may carry the outcome of one
        row and the intent of the next. Each state change must be allowed by
        ``ALLOWED_FROM``.

        Raises:
            ValueError: a row id is unknown or a change is not allowed; then
                nothing of the group is applied.
        """
        if not updates:
            return
        params = [
            (
                update.state.value,
                update.attempts,
                outcome_text(update.outcome),
                time_text(update.first_sent_at),
                time_text(update.finished_at),
                None
                if update.problems is None
                else problems_text(update.problems) or "[]",
                update.row_id,
                _FROM_TEXT[update.state],
            )
            for update in updates
        ]

        try:
            with self._db.write() as conn:
                changed = conn.executemany(_APPLY_SQL, params).rowcount
                if changed != len(params):
                    raise _Refused
        except _Refused:
            raise ValueError(self._explain_refusal(updates)) from None

    def mark_interrupted(self, batch_id: int, *, at: datetime | None = None) -> int:
        """Move the batch's in_flight rows to unknown (Review); returns how many.

        Call it when a batch resumes, holding the lock: a row still in_flight
        then belongs to a run that stopped while its request was out, so it
        may have been applied and must not be sent again automatically. Its
        outcome becomes ``INTERRUPTED_OUTCOME``; the earlier one, if any, is
        kept in an ``interrupted`` event.
        """
        with self._db.write() as conn:
            count = review.interrupt_in_flight(conn, batch_id, at or self._clock())

        if count:
            logger.warning(
                "batch=%d rows_interrupted=%d moved to Review", batch_id, count
            )
        return count

    def requeue_unknown(
        self,
        batch_id: int,
        *,
        by: str | None = None,
        note: str = "sent again on request (--resend-unknown)",
        at: datetime | None = None,
        order_ids: Collection[str] | None = None,
    ) -> int:
        """Make the batch's Review rows planned again; returns how many.

        This is ``--resend-unknown``, asked by ``by`` (default: the user
        running popbatch). Each row's state, outcome and attempts are kept in
        a ``resend_requested`` event with the note, then its outcome is
        cleared; in_flight rows count as Review rows too. Only rows of this
        batch, and only those with ``order_ids`` when given.
        """
        by = by or current_user()
        with self._db.write() as conn:
            self._require_batch(conn, batch_id)
            count = review.requeue(
                conn,
                batch_id,
                by=by,
                note=note,
                at=at or self._clock(),
                order_ids=order_ids,
            )

        logger.info("batch=%d rows_requeued=%d by=%s", batch_id, count, by)
        return count

    def replan_resolved(self, batch_id: int, *, at: datetime | None = None) -> int:
        """Make the batch's rows resolved as failed planned again; returns how many.

        Call it when a batch resumes, holding the lock: a person who resolved
        a Review row as failed checked that POP did not apply it, so the next
        run of its batch sends it (after the cross-batch rules). Who resolved
        it, when and why is kept in a ``replanned`` event; rows resolved as
        succeeded stay done.
        """
        with self._db.write() as conn:
            self._require_batch(conn, batch_id)
            count = review.replan_resolved_failed(conn, batch_id, at or self._clock())

        if count:
            logger.info("batch=%d rows_replanned_after_resolution=%d", batch_id, count)
        return count

    def history(
        self,
        order_ids: Collection[str],
        *,
        live: bool,
        endpoint: str,
        exclude_batch: int | None = None,
        states: Collection[RowState] = HISTORY_STATES,
    ) -> dict[str, list[HistoryEntry]]:
        """What batches of the same mode and endpoint did with these order ids.

        Returns, per order id found, its rows of every operation, in batch
        and row order; the plan step applies the cross-batch rules to them.
        Rejected and skipped rows are left out unless ``states`` says so.
        """
        wanted = sorted(set(order_ids))
        if not wanted:
            return {}
        params = (
            dump_json(wanted),
            int(live),
            canonical_endpoint(endpoint),
            exclude_batch,
            dump_json([state.value for state in states]),
        )

        with self._db.read() as conn:
            found = conn.execute(_HISTORY_SQL, params).fetchall()

        history: dict[str, list[HistoryEntry]] = {}
        for values in found:
            order_id, resolved = values[0], values[6]
            history.setdefault(order_id, []).append(
                HistoryEntry(
                    batch_id=values[1],
                    row_id=values[2],
                    row=values[3],
                    order_id=order_id,
                    operation=values[4],
                    state=STATE_OF[values[5]],
                    resolution=None if resolved is None else STATE_OF[resolved],
                    amount=values[7],
                    request=values[8],
                    finished_at=parse_time(values[9]),
                )
            )
        return history

    def resolve(
        self,
        batch_id: int,
        order_id: str,
        *,
        outcome: RowState,
        note: str,
        by: str,
        at: datetime,
    ) -> RowRecord:
        """Settle a Review row after a person checked it in the merchant portal.

        The row becomes ``resolved`` with who, when and why; its outcome is
        kept, and a ``resolved`` event records the state it came from. Hold
        the JournalLock: a run in progress may still be sending the row.

        Raises:
            UsageError: no such batch, no such order id in it, the row is not
                in Review, ``outcome`` is not succeeded or failed, or the note
                is empty.
        """
        if outcome not in (RowState.SUCCEEDED, RowState.FAILED):
            raise UsageError(
                f"a Review row is resolved as succeeded or failed, not {outcome}"
            )
        if not note.strip():
            raise UsageError(
                "resolving a row needs a note saying what the merchant portal showed",
                hint="Add --note TEXT.",
            )
        resolution = Resolution(outcome=outcome, note=note, by=by, at=at)

        with self._db.write() as conn:
            self._require_batch(conn, batch_id)
            record = review.find_review_row(conn, batch_id, order_id)
            assert record.id is not None
            review.settle(conn, record.id, resolution)

        logger.info(
            "batch=%d order_id=%s resolved=%s by=%s", batch_id, order_id, outcome, by
        )
        record.state = RowState.RESOLVED
        record.resolution = resolution
        return record

    def events(self, batch_id: int) -> list[RowEvent]:
        """The history of the batch's Review rows, oldest first."""
        with self._db.read() as conn:
            return review.read_events(conn, batch_id)

    # Internals

    def _require_batch(self, conn: sqlite3.Connection, batch_id: int) -> None:
        if (
            conn.execute("SELECT 1 FROM batches WHERE id = ?", (batch_id,)).fetchone()
            is None
        ):
            raise self._no_batch(batch_id)

    def _no_batch(self, batch_id: int) -> UsageError:
        return UsageError(
            f"there is no batch {batch_id} in the journal {str(self.path)!r}",
            hint="popbatch status lists the batches.",
        )

    def _explain_refusal(self, updates: Sequence[RowUpdate]) -> str:
        # Replays the group on the states read back after the rollback, so
        # the message names the first update that could not apply.
        ids = sorted({update.row_id for update in updates})
        with self._db.read() as conn:
            current: dict[int, RowState] = {
                row_id: STATE_OF[state]
                for row_id, state in conn.execute(
                    "SELECT id, state FROM rows WHERE id IN (SELECT value FROM json_each(?))",
                    (dump_json(ids),),
                )
            }

        return first_refusal(updates, current)
