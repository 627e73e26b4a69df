"""The journal: what popbatch planned, sent and learnt, in one SQLite file.

A batch is an operation applied to one input file's content (``batch_key``);
its rows are written before anything is sent, each row is committed as
``in_flight`` before its request leaves and its outcome as soon as it
returns, so a run that dies resumes without sending a row twice or losing
one, and every result file can be rebuilt from the journal alone.

The parts:

- ``JournalLock``: one run at a time per journal file, however its path is
  spelled (an flock that dies with its holder).
- ``Journal``: batches, runs, rows, the cross-batch history the plan step
  needs, and the settling of Review rows.
- ``database``: file creation (0700 folders, 0600 files), WAL with
  ``synchronous=FULL``, the integrity check and schema migrations.

Thread rules: a ``Journal`` has one SQLite connection guarded by its own
lock, so any thread may call it, one call at a time; the pipeline keeps all
writes on its writer thread and groups them with ``apply``. Never share a
Journal or a held JournalLock with a forked process.

The server key never reaches the journal: no field takes it, and batch
options must be plain JSON data.
"""

from popbatch.journal.database import schema_version
from popbatch.journal.lock import JournalLock, lock_path, real_journal_path
from popbatch.journal.model import (
    ALLOWED_FROM,
    HISTORY_STATES,
    INTERRUPTED_OUTCOME,
    REVIEW_STATES,
    HistoryEntry,
    RowEvent,
    RowUpdate,
    batch_key,
    canonical_endpoint,
)
from popbatch.journal.store import Journal

__all__ = [
    "ALLOWED_FROM",
    "HISTORY_STATES",
    "INTERRUPTED_OUTCOME",
    "REVIEW_STATES",
    "HistoryEntry",
    "Journal",
    "JournalLock",
    "RowEvent",
    "RowUpdate",
    "batch_key",
    "canonical_endpoint",
    "lock_path",
    "real_journal_path",
    "schema_version",
]
