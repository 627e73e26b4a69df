"""The journal's SQLite file: private creation, settings, checks and migrations.

``connect`` turns a path into a ready connection or an ``OutputError`` that
names the file and the way out. The schema is versioned with
``PRAGMA user_version``; each entry of ``MIGRATIONS`` moves a file one version
up, inside one transaction, so a crash during an upgrade leaves the old
version intact.
"""

from __future__ import annotations

import logging
import os
import shlex
import sqlite3
from collections.abc import Callable
from pathlib import Path

from popbatch.errors import OutputError
from popbatch.journal.model import canonical_endpoint
from popbatch.rows import RowState

logger = logging.getLogger(__name__)

# "popb": marks the file as a popbatch journal, so that popbatch never adds
# its tables to some other SQLite file given by mistake.
APPLICATION_ID = 0x706F7062

# A run holds the flock, so the only waits are short ones behind a reader
# such as `popbatch status`.
BUSY_TIMEOUT_MS = 5000

Migration = Callable[[sqlite3.Connection], None]


def _one_of(column: str, values: tuple[str, ...]) -> str:
    # An OR chain, not IN (...): SQLite builds an IN list's lookup table
    # again for every row an executemany inserts, which tripled the cost of
    # adding 100,000 rows.
    return " OR ".join(f"{column} = '{value}'" for value in values)


_STATES = tuple(state.value for state in RowState)

_SCHEMA_1 = (
    """
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        operation TEXT NOT NULL,
        input_path TEXT NOT NULL,
        input_sha256 TEXT NOT NULL,
        input_kind TEXT NOT NULL,
        encoding TEXT,
        delimiter TEXT,
        sheet TEXT,
        headers TEXT NOT NULL,
        columns TEXT NOT NULL,
        live INTEGER NOT NULL CHECK (live IN (0, 1)),
        endpoint TEXT NOT NULL,
        options TEXT NOT NULL,
        notices TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        exit_code INTEGER
    ) STRICT
    """,
    "CREATE INDEX batches_scope ON batches (live, endpoint, operation)",
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches (id),
        started_at TEXT NOT NULL,
        finished_at TEXT,
        exit_code INTEGER,
        user TEXT NOT NULL,
        host TEXT NOT NULL,
        version TEXT NOT NULL,
        options TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX runs_batch ON runs (batch_id)",
    f"""
    CREATE TABLE rows (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES batches (id),
        row INTEGER NOT NULL,
        order_id TEXT,
        state TEXT NOT NULL CHECK ({_one_of("state", _STATES)}),
        cells TEXT NOT NULL,
        request TEXT,
        amount INTEGER,
        problems TEXT,
        changes TEXT,
        defaults TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        outcome TEXT,
        resolution_outcome TEXT
            CHECK ({_one_of("resolution_outcome", ("succeeded", "failed"))}),
        resolution_note TEXT,
        resolution_by TEXT,
        resolution_at TEXT,
        first_sent_at TEXT,
        finished_at TEXT,
        UNIQUE (batch_id, row)
    ) STRICT
    """,
    # The plan step looks every order id of a file up across batches.
    "CREATE INDEX rows_order_id ON rows (order_id, batch_id)",
    # Review rows keep their history: what they held before a person or a
    # resumed run changed them.
    f"""
    CREATE TABLE row_events (
        id INTEGER PRIMARY KEY,
        row_id INTEGER NOT NULL REFERENCES rows (id),
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT NOT NULL CHECK ({_one_of("from_state", _STATES)}),
        to_state TEXT NOT NULL CHECK ({_one_of("to_state", _STATES)}),
        outcome TEXT,
        attempts INTEGER NOT NULL,
        note TEXT,
        actor TEXT
    ) STRICT
    """,
    "CREATE INDEX row_events_row ON row_events (row_id)",
)


def _create_schema_1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_1:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _recanonicalise_endpoints_2(conn: sqlite3.Connection) -> None:
    """Store every batch's endpoint, and the key made of it, in today's canonical form.

    Version 1 kept ``:80``, ``:443``, dot segments, repeated slashes and a
    host's final dot, so one endpoint could hold two batches of one file.
    A batch is found by its key and its history by its endpoint, so both
    move to the form ``canonical_endpoint`` gives now: the command that made
    a batch finds it again, whichever spelling it uses.

    Where two batches become one key (the same file sent under two
    spellings), the one already in that form, or else the oldest, takes it;
    the other keeps its old key, and its rows still count in every later
    batch's cross-batch rules, since its endpoint is the same.
    """
    found = conn.execute(
        "SELECT id, key, operation, live, input_sha256, endpoint FROM batches "
        "ORDER BY id"
    ).fetchall()
    claims: dict[str, list[tuple[int, str]]] = {}
    for batch_id, key, operation, live, sha256, endpoint in found:
        new_key = _rekeyed(key, operation, live, sha256, endpoint)
        claims.setdefault(new_key, []).append((batch_id, key))
        conn.execute(
            "UPDATE batches SET endpoint = ? WHERE id = ?",
            (canonical_endpoint(endpoint), batch_id),
        )

    for new_key, batches in claims.items():
        keeper = next(
            (batch_id for batch_id, key in batches if key == new_key), batches[0][0]
        )
        conn.execute("UPDATE batches SET key = ? WHERE id = ?", (new_key, keeper))
        others = [batch_id for batch_id, _ in batches if batch_id != keeper]
        if others:
            logger.warning(
                "batches %s were made for batch %d's file and endpoint, spelled "
                "another way; batch %d is the one its command resumes",
                ", ".join(str(batch_id) for batch_id in others),
                keeper,
                keeper,
            )


def _rekeyed(key: str, operation: str, live: int, sha256: str, endpoint: str) -> str:
    """``key`` with its endpoint part in canonical form (see ``batch_key``).

    A key that was not made by ``batch_key`` from the batch's own fields is
    kept as it is.
    """
    mode = "live" if live else "test"
    head = f"{operation}:{mode}:{sha256.lower()}:{endpoint}"
    if key != head and not key.startswith(head + ":"):
        return key
    return head.removesuffix(endpoint) + canonical_endpoint(endpoint) + key[len(head) :]


# MIGRATIONS[n] moves a journal from version n to n + 1; the schema version
# this popbatch writes is len(MIGRATIONS). Version 0 is an empty file.
MIGRATIONS: tuple[Migration, ...] = (_create_schema_1, _recanonicalise_endpoints_2)


def schema_version() -> int:
    """The schema version this popbatch writes."""
    return len(MIGRATIONS)


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each readable by the owner alone.

    Folders that already exist are left as they are.
    """
    missing: list[Path] = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)

    for candidate in reversed(missing):
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            continue
        # mkdir's mode passes through the umask, which may be looser or odder.
        candidate.chmod(0o700)


def connect(path: Path) -> sqlite3.Connection:
    """Open the journal at ``path``, creating and upgrading it as needed.

    The connection is in autocommit mode (transactions are explicit), WAL,
    ``synchronous=FULL``, with foreign keys on; it may be used from another
    thread than the one that opened it, one call at a time.

    Raises:
        OutputError: the file cannot be created or opened, is damaged, is
            not a popbatch journal, or was written by a newer popbatch.
    """
    # An empty file is new too: the run's lock creates the journal's file
    # (see JournalLock) before SQLite first opens it.
    created = create_private_file(path) or _is_empty(path)
    try:
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise _cannot_open(path, str(exc)) from None

    try:
        _configure(conn, path)
        _check_integrity(conn, path)
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_damage(exc):
            raise damaged_journal(path, str(exc)) from None
        raise _cannot_use(path, str(exc)) from None
    except BaseException:
        conn.close()
        raise

    _make_side_files_private(path)
    if created:
        logger.info("journal created at %s", path)
    return conn


def damaged_journal(path: Path, detail: str) -> OutputError:
    """The error for a journal SQLite cannot read: where it is and what to do."""
    return OutputError(
        f"the journal {str(path)!r} is damaged ({detail})",
        hint=(
            "Restore it from a backup, or move it aside "
            f"(mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.damaged')}) "
            "to start a new journal; popbatch then no longer knows the batches "
            "recorded in it, so check their results before running them again."
        ),
    )


# SQLite's primary result codes that say the file itself is unsound. Any
# other failure (an I/O error, a full disk, a read-only folder) is about
# where the file lives: the journal is kept, and moving it aside would make
# popbatch forget what it sent.
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES


def _cannot_use(path: Path, detail: str) -> OutputError:
    return OutputError(
        f"cannot use the journal {str(path)!r}: {detail}",
        hint="Check the disk (space, permissions) and run the same command "
        "again: what the journal recorded is kept.",
    )


def _cannot_open(path: Path, detail: str) -> OutputError:
    return OutputError(
        f"cannot open the journal {str(path)!r}: {detail}",
        hint="Give another place with --journal PATH or POPBATCH_JOURNAL.",
    )


def create_private_file(path: Path) -> bool:
    """Create an empty ``path`` readable by the owner alone; False if it exists.

    Missing folders are made private too (``make_private_dirs``).

    Raises:
        OutputError: the file cannot be created.
    """
    # Creating the file ourselves fixes its mode; SQLite gives the -wal and
    # -shm files the mode of the database file.
    try:
        make_private_dirs(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _cannot_open(path, exc.strerror or str(exc)) from None

    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise _cannot_open(path, f"SQLite cannot use WAL mode there (got {mode!r})")

    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    findings = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if findings != ["ok"]:
        # Findings may span lines and start with a "*** in database main ***"
        # banner; the message stays one line.
        lines = [
            line.strip()
            for finding in findings[:3]
            for line in finding.splitlines()
            if line.strip() and not line.startswith("***")
        ]
        raise damaged_journal(path, "; ".join(lines))


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    target = schema_version()
    version = _check_identity(conn, path, target)
    while version < target:
        # Re-read inside the write transaction: another process (a status
        # command, say) may have upgraded the file meanwhile.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < target:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        logger.info("journal %s is at schema version %d", path, version)


def _check_identity(conn: sqlite3.Connection, path: Path, target: int) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    has_tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] > 0

    if application_id not in (0, APPLICATION_ID) or (version == 0 and has_tables):
        raise OutputError(
            f"{str(path)!r} is an SQLite file but not a popbatch journal",
            hint="Give the journal's own path with --journal PATH or POPBATCH_JOURNAL.",
        )
    if version > target:
        raise OutputError(
            f"the journal {str(path)!r} was written by a newer popbatch "
            f"(schema version {version}; this popbatch knows up to {target})",
            hint="Upgrade popbatch, or give another journal with --journal PATH.",
        )
    return version


def _make_side_files_private(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        try:
            side.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:
            # Another user's file beside ours: SQLite would refuse it anyway.
            logger.warning("cannot make %s private", side)
