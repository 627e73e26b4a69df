"""One SQLite connection, used one call at a time, with nestable transactions.

``Access.write()`` opens an IMMEDIATE transaction (the write lock is taken
at once, so the commit never fails on a reader) or, inside one, a savepoint;
it commits when the outermost block ends and rolls back when a block raises.
Storage failures (disk full, I/O error, a damaged file) become
``OutputError``; constraint and API misuse errors stay what they are: bugs.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from popbatch.errors import OutputError

logger = logging.getLogger(__name__)


class Access:
    """The journal's connection behind a re-entrant lock.

    Every ``read()`` and ``write()`` block holds the lock, so threads may
    share one Access and their calls run one after the other.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        """Close the connection; later blocks fail. Safe to repeat."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for statements that only read."""
        with self._lock:
            conn = self._connection()
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                if not _is_storage_failure(exc):
                    raise
                raise self._storage_error("read", exc) from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The connection inside a transaction: all of the block or none."""
        with self._lock:
            conn = self._connection()
            depth = self._depth
            savepoint = f"nested_{depth}"
            try:
                conn.execute(
                    "BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}"
                )
            except sqlite3.DatabaseError as exc:
                raise self._storage_error("write", exc) from exc

            self._depth = depth + 1
            try:
                yield conn
                self._depth = depth
                conn.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            except BaseException as exc:
                self._depth = depth
                self._undo(conn, depth, savepoint)
                if isinstance(exc, sqlite3.DatabaseError) and _is_storage_failure(exc):
                    raise self._storage_error("write", exc) from exc
                raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the journal {str(self.path)!r} is closed")
        return self._conn

    def _undo(self, conn: sqlite3.Connection, depth: int, savepoint: str) -> None:
        try:
            if depth > 0:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The error that got us here is the one to report.
            logger.debug("rollback failed on %s", self.path, exc_info=True)

    def _storage_error(self, verb: str, exc: sqlite3.DatabaseError) -> OutputError:
        return OutputError(
            f"cannot {verb} the journal {str(self.path)!r}: {exc}",
            hint="Check the disk (space, permissions) and run the same command "
            "again: what the journal recorded is kept.",
        )


def _is_storage_failure(exc: sqlite3.DatabaseError) -> bool:
    # Constraint and API misuse errors are bugs to see as such; the rest
    # (disk full, I/O error, locked, damaged) is about the file.
    return not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)
    )
