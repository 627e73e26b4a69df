"""Tests for popbatch.journal: the SQLite journal, its lock and its rules."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from popbatch.config import RunOptions, ServerKey, current_user
from popbatch.errors import ExitCode, JournalBusyError, OutputError, UsageError
from popbatch.journal import (
    INTERRUPTED_OUTCOME,
    HistoryEntry,
    Journal,
    JournalLock,
    RowUpdate,
    batch_key,
    database,
    schema_version,
)
from popbatch.rows import (
    BatchRecord,
    Change,
    Outcome,
    OutcomeKind,
    Problem,
    Resolution,
    RowRecord,
    RowState,
    RunRecord,
)

ROOT = Path(__file__).resolve().parents[1]
JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 1, 31, 9, 0, tzinfo=JST)
ENDPOINT = "http://127.0.0.1:8080/pop/v1"
SHA = "ab" * 32


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """Where the tests' journal lives: in folders that do not exist yet."""
    return tmp_path / "state" / "popbatch" / "journal.sqlite3"


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    """An open journal whose clock always says T0."""
    opened = Journal.open(journal_path, clock=lambda: T0)
    yield opened
    opened.close()


def make_batch(
    journal: Journal,
    *,
    operation: str = "capture",
    sha256: str = SHA,
    live: bool = False,
    endpoint: str = ENDPOINT,
) -> BatchRecord:
    """A batch of a CSV file with order_id and amount columns."""
    return journal.create_batch(
        key=batch_key(operation, sha256, live, endpoint),
        operation=operation,
        input_path="/data/orders.csv",
        input_sha256=sha256,
        input_kind="csv",
        encoding="utf-8",
        delimiter=",",
        sheet=None,
        headers=("order_id", "amount"),
        columns={"order_id": 0, "amount": 1},
        live=live,
        endpoint=endpoint,
        options={"rate": 5.0},
    )


def planned(row: int, order_id: str, amount: int = 1000) -> RowRecord:
    """A valid row, planned and not sent."""
    return RowRecord(
        row=row,
        cells=(order_id, str(amount)),
        state=RowState.PLANNED,
        order_id=order_id,
        request=json.dumps(
            {"order_id": order_id, "amount": str(amount), "dummy": True}
        ),
        amount=amount,
    )


def success(order_id: str) -> Outcome:
    """The outcome of a capture that POP accepted."""
    return Outcome(
        kind=OutcomeKind.SUCCEEDED,
        reason="succeeded",
        detail="captured",
        result_code="R001",
        response={"order_id": order_id, "status": "success", "result_code": "R001"},
        http_status=200,
        content_type="application/json",
        sent_at=T0,
        received_at=T0 + timedelta(milliseconds=84),
        elapsed_ms=84,
    )


def read_timeout() -> Outcome:
    """The outcome of a request whose answer never came."""
    return Outcome(
        kind=OutcomeKind.UNKNOWN,
        reason="read_timeout",
        detail="no answer within 30 s",
        sent_at=T0,
    )


def send(journal: Journal, row: RowRecord, outcome: Outcome, state: RowState) -> None:
    """Record a row's intent, then its outcome, as the pipeline does."""
    assert row.id is not None
    journal.apply([RowUpdate(row.id, RowState.IN_FLIGHT, attempts=1, first_sent_at=T0)])
    journal.apply([RowUpdate(row.id, state, outcome=outcome, finished_at=T0)])


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a snippet in a fresh interpreter that imports this checkout."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Opening: files, settings, checks, migrations


def test_open_creates_private_folders_and_files(
    tmp_path: Path, journal_path: Path
) -> None:
    """Folders it creates are 0700; the journal, -wal and -shm are 0600."""
    journal = Journal.open(journal_path)

    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in (
            journal_path.parent,
            journal_path.parent.parent,
            journal_path,
            journal_path.with_name("journal.sqlite3-wal"),
            journal_path.with_name("journal.sqlite3-shm"),
        )
    }
    journal.close()

    assert modes == {
        "popbatch": 0o700,
        "state": 0o700,
        "journal.sqlite3": 0o600,
        "journal.sqlite3-wal": 0o600,
        "journal.sqlite3-shm": 0o600,
    }


def test_open_uses_wal_with_full_sync_and_foreign_keys(journal: Journal) -> None:
    """The connection runs in WAL mode, synchronous=FULL, foreign keys on."""
    conn = journal._db._conn
    assert conn is not None

    settings = [
        conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    ]

    assert settings == ["wal", 2, 1, 5000]


def test_open_migrates_an_empty_version_0_file(tmp_path: Path) -> None:
    """A hand-made SQLite file at version 0 becomes a journal at the current one."""
    path = tmp_path / "journal.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.close()

    with Journal.open(path) as journal:
        batch = make_batch(journal)

    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    }
    conn.close()
    assert version == schema_version()
    assert tables == {"batches", "runs", "rows", "row_events"}
    assert batch.id == 1


def test_open_upgrades_an_older_journal_keeping_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal opened by a popbatch that knows one more version is migrated."""
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        batch = make_batch(journal)
        journal.add_rows(batch.id, [planned(2, "A-1")])

    def add_operator_column(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE batches ADD COLUMN operator TEXT")

    known = schema_version()
    monkeypatch.setattr(
        database, "MIGRATIONS", (*database.MIGRATIONS, add_operator_column)
    )
    with Journal.open(path) as journal:
        rows = journal.rows(batch.id)

    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    columns = [row[1] for row in conn.execute("PRAGMA table_info(batches)")]
    conn.close()
    assert version == known + 1
    assert columns[-1] == "operator"
    assert [(row.row, row.order_id) for row in rows] == [(2, "A-1")]


def test_failed_migration_leaves_the_journal_at_its_older_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails half-way is rolled back as a whole."""
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE batches ADD COLUMN operator TEXT")
        raise RuntimeError("disk pulled out")

    known = schema_version()
    monkeypatch.setattr(database, "MIGRATIONS", (*database.MIGRATIONS, half_done))
    with pytest.raises(RuntimeError, match="disk pulled out"):
        Journal.open(path)

    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    columns = [row[1] for row in conn.execute("PRAGMA table_info(batches)")]
    conn.close()
    assert version == known
    assert "operator" not in columns


def test_open_refuses_a_journal_written_by_a_newer_popbatch(tmp_path: Path) -> None:
    """A journal at a schema version this popbatch does not know is left alone."""
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 7")
    conn.close()

    with pytest.raises(OutputError) as caught:
        Journal.open(path)

    assert caught.value.message == (
        f"the journal {str(path)!r} was written by a newer popbatch "
        f"(schema version 7; this popbatch knows up to {schema_version()})"
    )
    assert (
        caught.value.hint
        == "Upgrade popbatch, or give another journal with --journal PATH."
    )
    assert caught.value.exit_code is ExitCode.CANNOT_WRITE


def test_open_refuses_an_sqlite_file_that_is_not_a_journal(tmp_path: Path) -> None:
    """Another program's SQLite file never gets the journal's tables."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (name TEXT)")
    conn.close()

    with pytest.raises(OutputError) as caught:
        Journal.open(path)

    assert (
        caught.value.message
        == f"{str(path)!r} is an SQLite file but not a popbatch journal"
    )
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 1
    conn.close()


def test_open_reports_a_file_that_is_not_sqlite_as_damaged(tmp_path: Path) -> None:
    """A journal overwritten with other bytes is named, with the way out."""
    path = tmp_path / "my journal.sqlite3"
    path.write_bytes(b"order_id,amount\n" * 400)

    with pytest.raises(OutputError) as caught:
        Journal.open(path)

    assert caught.value.message == (
        f"the journal {str(path)!r} is damaged (file is not a database)"
    )
    assert caught.value.hint == (
        f"Restore it from a backup, or move it aside (mv '{path}' '{path}.damaged') "
        "to start a new journal; popbatch then no longer knows the batches "
        "recorded in it, so check their results before running them again."
    )


def test_open_reports_damaged_pages_found_by_the_quick_check(tmp_path: Path) -> None:
    """A journal with a page overwritten fails the integrity check on open."""
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        batch = make_batch(journal)
        journal.add_rows(batch.id, [planned(n, f"A-{n}") for n in range(2, 400)])
    with path.open("r+b") as file:
        file.seek(4096 * 3)
        file.write(b"\xff" * 4096)

    with pytest.raises(OutputError) as caught:
        Journal.open(path)

    assert caught.value.message.startswith(f"the journal {str(path)!r} is damaged (")
    assert "\n" not in caught.value.message
    assert caught.value.message != f"the journal {str(path)!r} is damaged ()"


# The lock

HOLD_LOCK = """
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from popbatch.journal import JournalLock

started = datetime(2026, 1, 31, 9, 0, tzinfo=timezone(timedelta(hours=9)))
lock = JournalLock(Path(sys.argv[1]), clock=lambda: started).acquire()
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(journal_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the journal's lock until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(journal_path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "held\n"
    yield process
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def test_second_run_gets_busy_at_once_naming_the_holder(
    journal_path: Path, holder: subprocess.Popen[str]
) -> None:
    """A lock held by another process fails at once with its pid and start."""
    lock = JournalLock(journal_path)

    with pytest.raises(JournalBusyError) as caught:
        lock.acquire()

    assert caught.value.message == (
        f"another popbatch run is using the journal {str(journal_path)!r} "
        f"(pid {holder.pid}, started at 2026-01-31T09:00:00+09:00)"
    )
    assert caught.value.exit_code is ExitCode.TRY_AGAIN_LATER
    assert not lock.held


def test_lock_of_a_killed_holder_is_taken_without_cleanup(
    journal_path: Path, holder: subprocess.Popen[str]
) -> None:
    """After kill -9 of the holder, the next run takes the lock as it is."""
    holder.send_signal(signal.SIGKILL)
    holder.wait()

    with JournalLock(journal_path) as lock:
        held = lock.held
        recorded = json.loads(lock.path.read_text())

    assert held
    assert recorded["pid"] == os.getpid()


def test_lock_file_is_private_and_one_holder_per_journal(journal_path: Path) -> None:
    """The lock file is 0600; a second lock in the same process is refused too."""
    first = JournalLock(journal_path).acquire()

    with pytest.raises(JournalBusyError):
        JournalLock(journal_path).acquire()
    mode = stat.S_IMODE(first.path.stat().st_mode)
    first.release()
    again = JournalLock(journal_path).acquire()
    again.release()

    assert first.path == journal_path.with_name("journal.sqlite3.lock")
    assert mode == 0o600
    assert stat.S_IMODE(journal_path.parent.stat().st_mode) == 0o700


# Batches and runs


def test_batch_key_names_operation_mode_hash_and_endpoint() -> None:
    """The key is readable, and each part of it makes another batch."""
    key = batch_key("capture", SHA.upper(), False, ENDPOINT)

    others = {
        batch_key("cancel", SHA, False, ENDPOINT),
        batch_key("capture", "cd" * 32, False, ENDPOINT),
        batch_key("capture", SHA, True, ENDPOINT),
        batch_key("capture", SHA, False, "https://pay3.veritrans.co.jp/pop/v1"),
    }

    assert key == f"capture:test:{SHA}:{ENDPOINT}"
    assert key not in others
    assert len(others) == 4


def test_batch_key_tells_sheets_and_encodings_of_one_file_apart() -> None:
    """The same bytes read another way hold other rows, so they are another batch."""
    february = batch_key("capture", SHA, False, ENDPOINT, read=("Feb", ""))

    march = batch_key("capture", SHA, False, ENDPOINT, read=("Mar", ""))

    assert february == f"capture:test:{SHA}:{ENDPOINT}:Feb|"
    assert march != february
    assert batch_key("capture", SHA, False, ENDPOINT, read=("", "")) == (
        f"capture:test:{SHA}:{ENDPOINT}"
    )


def test_batch_key_ignores_a_trailing_slash_and_host_case() -> None:
    """Two spellings of one endpoint identify the same batch."""
    spelled = batch_key("capture", SHA, True, "HTTPS://Pay3.Veritrans.co.jp/pop/v1/")

    assert spelled == batch_key(
        "capture", SHA, True, "https://pay3.veritrans.co.jp/pop/v1"
    )


def test_created_batch_is_found_by_its_key_with_every_field(journal: Journal) -> None:
    """create_batch, find_batch, get_batch and list_batches agree."""
    batch = make_batch(journal, endpoint=ENDPOINT + "/")

    found = journal.find_batch(batch_key("capture", SHA, False, ENDPOINT))

    assert found == batch
    assert journal.get_batch(batch.id) == batch
    assert journal.list_batches() == [batch]
    assert batch == BatchRecord(
        id=1,
        key=f"capture:test:{SHA}:{ENDPOINT}",
        operation="capture",
        input_path="/data/orders.csv",
        input_sha256=SHA,
        input_kind="csv",
        encoding="utf-8",
        delimiter=",",
        sheet=None,
        headers=("order_id", "amount"),
        columns={"order_id": 0, "amount": 1},
        live=False,
        endpoint=ENDPOINT,
        options={"rate": 5.0},
        created_at=T0,
    )
    assert journal.find_batch(batch_key("cancel", SHA, False, ENDPOINT)) is None


def test_creating_the_same_batch_twice_is_refused(journal: Journal) -> None:
    """A second batch with one key would split the rows of one file."""
    make_batch(journal)

    with pytest.raises(ValueError, match="exists: resume it"):
        make_batch(journal)

    assert len(journal.list_batches()) == 1


def test_a_resumed_batch_may_finish_again(journal: Journal) -> None:
    """finish_batch records the latest ending of the batch."""
    batch = make_batch(journal)

    journal.finish_batch(batch.id, ExitCode.TRY_AGAIN_LATER, T0)
    journal.finish_batch(batch.id, ExitCode.OK, T0 + timedelta(hours=1))

    finished = journal.get_batch(batch.id)
    assert (finished.exit_code, finished.finished_at) == (0, T0 + timedelta(hours=1))


def test_unknown_batch_is_a_usage_error_naming_the_journal(journal: Journal) -> None:
    """Asking for a batch the journal does not have says where it looked."""
    with pytest.raises(UsageError) as caught:
        journal.get_batch(42)

    assert caught.value.message == (
        f"there is no batch 42 in the journal {str(journal.path)!r}"
    )
    assert caught.value.hint == "popbatch status lists the batches."


def test_runs_are_recorded_and_listed_per_batch(journal: Journal) -> None:
    """Each run of a batch keeps who ran it, where, with what, and how it ended."""
    batch = make_batch(journal)
    first = journal.start_run(
        RunRecord(batch.id, T0, "akiko", "ops-1", "0.1.0", {"rate": 5.0})
    )
    journal.finish_run(first.id or 0, ExitCode.TERMINATED, T0 + timedelta(minutes=5))

    second = journal.start_run(
        RunRecord(batch.id, T0 + timedelta(hours=1), "akiko", "ops-1", "0.1.0", {})
    )

    assert journal.runs(batch.id) == [
        RunRecord(
            batch.id,
            T0,
            "akiko",
            "ops-1",
            "0.1.0",
            {"rate": 5.0},
            finished_at=T0 + timedelta(minutes=5),
            exit_code=143,
            id=1,
        ),
        second,
    ]
    assert second.id == 2


def test_batch_options_must_be_plain_json(journal: Journal) -> None:
    """An object that is not JSON data is refused, not written as its str."""
    with pytest.raises(TypeError):
        journal.create_batch(
            key=batch_key("capture", SHA, False, ENDPOINT),
            operation="capture",
            input_path="/data/orders.csv",
            input_sha256=SHA,
            input_kind="csv",
            encoding="utf-8",
            delimiter=",",
            sheet=None,
            headers=("order_id", "amount"),
            columns={"order_id": 0, "amount": 1},
            live=False,
            endpoint=ENDPOINT,
            options={"input": Path("/data/orders.csv")},
        )

    assert journal.list_batches() == []


# Rows


def test_rows_keep_every_field_as_stored(journal: Journal) -> None:
    """Each RowRecord field comes back equal, times with their offsets."""
    batch = make_batch(journal)
    utc_later = datetime(2026, 1, 31, 0, 5, tzinfo=UTC)
    full = RowRecord(
        row=7,
        cells=("ＷＳ－００７", "１０，０００", "", "=1+1"),
        state=RowState.RESOLVED,
        order_id="WS-007",
        request='{"order_id":"WS-007","amount":"10000","dummy":true}',
        amount=10000,
        problems=(
            Problem(
                "amount_too_large", "amount '10000' is too large", "amount", "10000"
            ),
        ),
        changes=(
            Change("order_id", "ＷＳ－００７", "WS-007"),
            Change("amount", "１０，０００", "10000"),
        ),
        defaults={"capture": "true"},
        attempts=2,
        outcome=Outcome(
            kind=OutcomeKind.UNKNOWN,
            reason="not_pop_json",
            detail="HTML error page",
            result_code=None,
            response={"nested": {"list": [1, 2.5, None, True]}, "名前": "山田"},
            http_status=502,
            content_type="text/html",
            body_text="<html>Bad gateway</html>",
            retry_after_s=1.5,
            stops_batch=True,
            sent_at=T0,
            received_at=utc_later,
            elapsed_ms=300000,
        ),
        resolution=Resolution(
            RowState.SUCCEEDED, "portal shows captured", "akiko", utc_later
        ),
        first_sent_at=T0,
        finished_at=utc_later,
    )
    bare = RowRecord(row=3, cells=("",), state=RowState.REJECTED)

    journal.add_rows(batch.id, [full, bare])
    stored = journal.rows(batch.id)

    assert stored == [bare, full]
    assert stored[1].finished_at is not None
    assert stored[1].finished_at.isoformat() == "2026-01-31T00:05:00+00:00"
    assert stored[1].first_sent_at is not None
    assert stored[1].first_sent_at.isoformat() == "2026-01-31T09:00:00+09:00"


def test_add_rows_sets_ids_and_rows_come_back_in_row_order(journal: Journal) -> None:
    """Ids are set on the records given; rows() sorts by spreadsheet row."""
    first_batch = make_batch(journal)
    second_batch = make_batch(journal, sha256="cd" * 32)
    journal.add_rows(first_batch.id, [planned(2, "A-1")])
    records = [planned(5, "B-5"), planned(3, "B-3"), planned(4, "B-4")]

    journal.add_rows(second_batch.id, iter(records))

    assert [record.id for record in records] == [2, 3, 4]
    assert [(row.row, row.id) for row in journal.rows(second_batch.id)] == [
        (3, 3),
        (4, 4),
        (5, 2),
    ]


def test_add_rows_with_a_repeated_row_number_inserts_nothing(journal: Journal) -> None:
    """One transaction: a bad row leaves the batch as it was."""
    batch = make_batch(journal)
    journal.add_rows(batch.id, [planned(2, "A-1")])
    records = [planned(3, "A-2"), planned(2, "A-3")]

    with pytest.raises(ValueError, match="a row number is repeated or already there"):
        journal.add_rows(batch.id, records)

    assert [row.order_id for row in journal.rows(batch.id)] == ["A-1"]
    assert [record.id for record in records] == [None, None]


def test_rows_filter_by_state_and_counts_list_every_state(journal: Journal) -> None:
    """rows(states=...) keeps those states; counts() has a zero for the others."""
    batch = make_batch(journal)
    rejected = RowRecord(row=4, cells=("", "x"), state=RowState.REJECTED)
    journal.add_rows(batch.id, [planned(2, "A-1"), planned(3, "A-2"), rejected])

    chosen = journal.rows(batch.id, states={RowState.PLANNED, RowState.PENDING})

    assert [row.row for row in chosen] == [2, 3]
    assert journal.rows(batch.id, states=()) == []
    assert journal.counts(batch.id) == {
        RowState.PLANNED: 2,
        RowState.IN_FLIGHT: 0,
        RowState.SUCCEEDED: 0,
        RowState.FAILED: 0,
        RowState.UNKNOWN: 0,
        RowState.PENDING: 0,
        RowState.REJECTED: 1,
        RowState.SKIPPED: 0,
        RowState.RESOLVED: 0,
    }


def test_transaction_commits_a_batch_with_its_rows_or_neither(journal: Journal) -> None:
    """A plan interrupted between the batch and its rows leaves no batch."""

    def plan_with_a_repeated_row() -> None:
        with journal.transaction():
            batch = make_batch(journal)
            journal.add_rows(batch.id, [planned(2, "A-1"), planned(2, "A-2")])

    with pytest.raises(ValueError, match="a row number is repeated"):
        plan_with_a_repeated_row()
    with journal.transaction():
        kept = make_batch(journal)
        journal.add_rows(kept.id, [planned(2, "A-1")])

    assert journal.list_batches() == [kept]
    assert [row.order_id for row in journal.rows(kept.id)] == ["A-1"]


def test_inner_transaction_that_fails_undoes_only_its_own_part(
    journal: Journal,
) -> None:
    """Nested blocks are savepoints: the outer block keeps what it did."""
    batch = make_batch(journal)

    with journal.transaction():
        journal.add_rows(batch.id, [planned(2, "A-1")])
        with pytest.raises(ValueError, match="a row number is repeated"):
            journal.add_rows(batch.id, [planned(3, "A-2"), planned(2, "A-3")])
        journal.add_rows(batch.id, [planned(4, "A-4")])

    assert [row.order_id for row in journal.rows(batch.id)] == ["A-1", "A-4"]


def test_calls_from_several_threads_are_serialised(journal: Journal) -> None:
    """Threads may share a journal: each call runs whole, one at a time."""
    batch = make_batch(journal)
    rows = [planned(n, f"A-{n}") for n in range(2, 202)]
    journal.add_rows(batch.id, rows)
    ids = [row.id or 0 for row in rows]

    def mark(chunk: list[int]) -> None:
        for row_id in chunk:
            journal.apply([RowUpdate(row_id, RowState.IN_FLIGHT, attempts=1)])

    threads = [threading.Thread(target=mark, args=(ids[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert journal.counts(batch.id)[RowState.IN_FLIGHT] == 200


def test_a_full_disk_is_an_output_error_and_changes_nothing(journal: Journal) -> None:
    """SQLITE_FULL becomes OutputError (73) naming the journal; the batch is intact."""
    batch = make_batch(journal)
    conn = journal._db._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    rows = [planned(n, f"A-{n}" + "x" * 100) for n in range(2, 2000)]

    with pytest.raises(OutputError) as caught:
        journal.add_rows(batch.id, rows)

    assert caught.value.message == (
        f"cannot write the journal {str(journal.path)!r}: database or disk is full"
    )
    assert caught.value.exit_code is ExitCode.CANNOT_WRITE
    assert journal.rows(batch.id) == []


# Applying outcomes


def test_apply_records_an_outcome_and_the_next_intent_in_one_call(
    journal: Journal,
) -> None:
    """The writer's usual group: one row's outcome, the next row's intent."""
    batch = make_batch(journal)
    first, second = planned(2, "A-1"), planned(3, "A-2")
    journal.add_rows(batch.id, [first, second])
    assert first.id is not None
    assert second.id is not None
    journal.apply(
        [RowUpdate(first.id, RowState.IN_FLIGHT, attempts=1, first_sent_at=T0)]
    )

    journal.apply(
        [
            RowUpdate(
                first.id, RowState.SUCCEEDED, outcome=success("A-1"), finished_at=T0
            ),
            RowUpdate(second.id, RowState.IN_FLIGHT, attempts=1, first_sent_at=T0),
        ]
    )

    stored = journal.rows(batch.id)
    assert [(row.state, row.attempts, row.first_sent_at) for row in stored] == [
        (RowState.SUCCEEDED, 1, T0),
        (RowState.IN_FLIGHT, 1, T0),
    ]
    assert stored[0].outcome == success("A-1")
    assert stored[0].finished_at == T0
    assert stored[1].outcome is None


def test_evidence_no_json_text_can_hold_is_stored_as_text(journal: Journal) -> None:
    """No answer makes a row unrecordable: NaN, infinity, lone surrogates."""
    batch = make_batch(journal)
    row = planned(2, "A-1")
    journal.add_rows(batch.id, [row])
    assert row.id is not None
    odd = Outcome(
        OutcomeKind.UNKNOWN,
        "not_pop_json",
        "half \ud800",
        response={"fee": float("inf"), "k\udc00": [float("nan"), -float("inf")]},
        body_text="bad \udfff",
        content_type="text/plain",
    )

    journal.apply(
        [
            RowUpdate(row.id, RowState.IN_FLIGHT, attempts=1, first_sent_at=T0),
            RowUpdate(row.id, RowState.UNKNOWN, outcome=odd, finished_at=T0),
        ]
    )

    [stored] = journal.rows(batch.id)
    assert stored.state is RowState.UNKNOWN
    assert stored.outcome == dataclasses.replace(
        odd,
        detail="half \\ud800",
        response={"fee": "inf", "k\\udc00": ["nan", "-inf"]},
        body_text="bad \\udfff",
    )


def test_apply_keeps_the_first_sent_time_and_fields_left_out(journal: Journal) -> None:
    """A retry's intent does not move first_sent_at; None fields stay as they were."""
    batch = make_batch(journal)
    row = planned(2, "A-1")
    journal.add_rows(batch.id, [row])
    assert row.id is not None
    busy = Outcome(
        OutcomeKind.NOT_PROCESSED, "rate_limited", "HTTP 429", http_status=429
    )
    later = T0 + timedelta(seconds=2)

    journal.apply(
        [
            RowUpdate(row.id, RowState.IN_FLIGHT, attempts=1, first_sent_at=T0),
            RowUpdate(row.id, RowState.PENDING, outcome=busy),
            RowUpdate(row.id, RowState.IN_FLIGHT, attempts=2, first_sent_at=later),
        ]
    )

    [stored] = journal.rows(batch.id)
    assert (stored.state, stored.attempts, stored.first_sent_at) == (
        RowState.IN_FLIGHT,
        2,
        T0,
    )
    assert stored.outcome == busy
    assert stored.problems == ()


def test_apply_can_set_and_clear_problems(journal: Journal) -> None:
    """problems=() clears them; a skipped row may carry its reason."""
    batch = make_batch(journal)
    row = planned(2, "A-1")
    journal.add_rows(batch.id, [row])
    assert row.id is not None
    done_elsewhere = Problem(
        "already_done", "already done in batch 3", "order_id", "A-1"
    )

    journal.apply([RowUpdate(row.id, RowState.SKIPPED, problems=(done_elsewhere,))])
    skipped = journal.rows(batch.id)[0].problems
    journal.apply([RowUpdate(row.id, RowState.PLANNED, problems=())])

    assert skipped == (done_elsewhere,)
    assert journal.rows(batch.id)[0].problems == ()


def test_apply_never_makes_a_succeeded_row_sendable_and_applies_nothing(
    journal: Journal,
) -> None:
    """A refused change rolls the whole group back, with a clear reason."""
    batch = make_batch(journal)
    done, waiting = planned(2, "A-1"), planned(3, "A-2")
    journal.add_rows(batch.id, [done, waiting])
    assert done.id is not None
    assert waiting.id is not None
    send(journal, done, success("A-1"), RowState.SUCCEEDED)

    with pytest.raises(ValueError, match="cannot go from") as caught:
        journal.apply(
            [
                RowUpdate(waiting.id, RowState.IN_FLIGHT, attempts=1),
                RowUpdate(done.id, RowState.IN_FLIGHT, attempts=2),
            ]
        )

    assert str(caught.value) == (
        f"row id {done.id} cannot go from succeeded to in_flight; nothing was applied"
    )
    assert [row.state for row in journal.rows(batch.id)] == [
        RowState.SUCCEEDED,
        RowState.PLANNED,
    ]


def test_apply_refuses_a_row_id_the_journal_does_not_have(journal: Journal) -> None:
    """An update to no row is an error, not a silent no-op."""
    make_batch(journal)

    with pytest.raises(ValueError, match="not in the journal") as caught:
        journal.apply([RowUpdate(99, RowState.IN_FLIGHT)])

    assert str(caught.value) == "row id 99 is not in the journal; nothing was applied"


def test_row_update_refuses_pending_after_a_possibly_applied_outcome() -> None:
    """A row that may have reached POP can never be queued again by apply()."""
    with pytest.raises(ValueError, match="cannot go back") as caught:
        RowUpdate(5, RowState.PENDING, outcome=read_timeout())

    assert str(caught.value) == (
        "row id 5 has a unknown outcome, so it cannot go back to pending"
    )
    with pytest.raises(ValueError, match="apply\\(\\) cannot move a row to resolved"):
        RowUpdate(5, RowState.RESOLVED)


# Review rows


def test_mark_interrupted_moves_in_flight_rows_to_review(journal: Journal) -> None:
    """Rows in flight when a run died become unknown; their history is kept."""
    batch = make_batch(journal)
    other = make_batch(journal, sha256="cd" * 32)
    rows = [planned(2, "A-1"), planned(3, "A-2"), planned(4, "A-3")]
    journal.add_rows(batch.id, rows)
    elsewhere = planned(2, "B-1")
    journal.add_rows(other.id, [elsewhere])
    busy = Outcome(
        OutcomeKind.NOT_PROCESSED, "rate_limited", "HTTP 429", http_status=429
    )
    ids = [row.id or 0 for row in (*rows, elsewhere)]
    journal.apply(
        [
            RowUpdate(ids[0], RowState.IN_FLIGHT, attempts=1),
            RowUpdate(ids[0], RowState.IN_FLIGHT, attempts=2, outcome=busy),
            RowUpdate(ids[1], RowState.IN_FLIGHT, attempts=1),
            RowUpdate(ids[3], RowState.IN_FLIGHT, attempts=1),
        ]
    )

    count = journal.mark_interrupted(batch.id)

    stored = journal.rows(batch.id)
    assert count == 2
    assert [row.state for row in stored] == [
        RowState.UNKNOWN,
        RowState.UNKNOWN,
        RowState.PLANNED,
    ]
    assert stored[0].outcome == INTERRUPTED_OUTCOME
    assert stored[0].finished_at == T0
    assert INTERRUPTED_OUTCOME.reason == "interrupted_in_flight"
    assert [
        (e.row, e.kind, e.from_state, e.outcome) for e in journal.events(batch.id)
    ] == [
        (2, "interrupted", RowState.IN_FLIGHT, busy),
        (3, "interrupted", RowState.IN_FLIGHT, None),
    ]
    assert journal.rows(other.id)[0].state is RowState.IN_FLIGHT


def test_requeue_unknown_plans_review_rows_again_keeping_the_evidence(
    journal: Journal,
) -> None:
    """--resend-unknown clears the outcome, after copying it into an event."""
    batch = make_batch(journal)
    lost, kept, done = planned(2, "A-1"), planned(3, "A-2"), planned(4, "A-3")
    journal.add_rows(batch.id, [lost, kept, done])
    send(journal, lost, read_timeout(), RowState.UNKNOWN)
    send(journal, kept, read_timeout(), RowState.UNKNOWN)
    send(journal, done, success("A-3"), RowState.SUCCEEDED)

    count = journal.requeue_unknown(batch.id, by="akiko", order_ids=["A-1"], at=T0)

    stored = journal.rows(batch.id)
    assert count == 1
    assert [(row.state, row.outcome) for row in stored] == [
        (RowState.PLANNED, None),
        (RowState.UNKNOWN, read_timeout()),
        (RowState.SUCCEEDED, success("A-3")),
    ]
    [event] = journal.events(batch.id)
    assert (event.kind, event.from_state, event.to_state, event.attempts) == (
        "resend_requested",
        RowState.UNKNOWN,
        RowState.PLANNED,
        1,
    )
    assert (event.outcome, event.by, event.note, event.at) == (
        read_timeout(),
        "akiko",
        "sent again on request (--resend-unknown)",
        T0,
    )
    assert journal.requeue_unknown(batch.id) == 1
    assert journal.events(batch.id)[-1].by == current_user()


def test_resolve_settles_a_review_row_with_who_when_and_why(journal: Journal) -> None:
    """The row becomes resolved; its outcome and its earlier state are kept."""
    batch = make_batch(journal)
    row = planned(2, "A-1")
    journal.add_rows(batch.id, [row])
    send(journal, row, read_timeout(), RowState.UNKNOWN)
    at = T0 + timedelta(days=1)

    resolved = journal.resolve(
        batch.id,
        "A-1",
        outcome=RowState.SUCCEEDED,
        note="captured in portal",
        by="akiko",
        at=at,
    )

    assert resolved == journal.rows(batch.id)[0]
    assert resolved.state is RowState.RESOLVED
    assert resolved.resolution == Resolution(
        RowState.SUCCEEDED, "captured in portal", "akiko", at
    )
    assert resolved.outcome == read_timeout()
    [event] = journal.events(batch.id)
    assert (event.kind, event.from_state, event.to_state, event.by, event.at) == (
        "resolved",
        RowState.UNKNOWN,
        RowState.RESOLVED,
        "akiko",
        at,
    )


def test_resolve_explains_what_cannot_be_resolved(journal: Journal) -> None:
    """No such batch or order id, a row not in Review, a missing note or outcome."""
    batch = make_batch(journal)
    row = planned(5, "A-1")
    journal.add_rows(batch.id, [row])
    send(journal, row, success("A-1"), RowState.SUCCEEDED)
    path = str(journal.path)

    def message(batch_id: int, order_id: str, outcome: RowState, note: str) -> str:
        with pytest.raises(UsageError) as caught:
            journal.resolve(
                batch_id, order_id, outcome=outcome, note=note, by="akiko", at=T0
            )
        return caught.value.message

    assert message(9, "A-1", RowState.FAILED, "declined") == (
        f"there is no batch 9 in the journal {path!r}"
    )
    assert message(batch.id, "A-9", RowState.FAILED, "declined") == (
        "batch 1 has no row with order_id 'A-9'"
    )
    assert message(batch.id, "A-1", RowState.FAILED, "declined") == (
        "order_id 'A-1' in batch 1 (row 5) is in Succeeded, not in "
        "Review; only Review rows can be resolved"
    )
    assert message(batch.id, "A-1", RowState.FAILED, "  ") == (
        "resolving a row needs a note saying what the merchant portal showed"
    )
    assert message(batch.id, "A-1", RowState.PENDING, "declined") == (
        "a Review row is resolved as succeeded or failed, not pending"
    )
    assert journal.events(batch.id) == []


# Cross-batch history


def test_history_lists_rows_of_other_batches_in_the_same_mode_and_endpoint(
    journal: Journal,
) -> None:
    """Only test-mode rows at this endpoint, outside the excluded batch."""
    captures = make_batch(journal, sha256="01" * 32)
    refunds = make_batch(journal, operation="cancel", sha256="02" * 32)
    live = make_batch(journal, sha256="03" * 32, live=True)
    elsewhere = make_batch(
        journal, sha256="04" * 32, endpoint="http://127.0.0.1:9/pop/v1"
    )
    current = make_batch(journal, sha256="05" * 32)
    captured = planned(2, "A-1", 5000)
    refund = planned(2, "A-1", 1200)
    journal.add_rows(captures.id, [captured, planned(3, "A-2")])
    journal.add_rows(refunds.id, [refund])
    journal.add_rows(live.id, [planned(2, "A-1")])
    journal.add_rows(elsewhere.id, [planned(2, "A-1")])
    journal.add_rows(current.id, [planned(2, "A-1"), planned(3, "A-3")])
    send(journal, captured, success("A-1"), RowState.SUCCEEDED)
    send(journal, refund, read_timeout(), RowState.UNKNOWN)

    history = journal.history(
        ["A-1", "A-3", "A-1"],
        live=False,
        endpoint=ENDPOINT + "/",
        exclude_batch=current.id,
    )

    assert history == {
        "A-1": [
            HistoryEntry(
                batch_id=captures.id,
                row_id=captured.id or 0,
                row=2,
                order_id="A-1",
                operation="capture",
                state=RowState.SUCCEEDED,
                resolution=None,
                amount=5000,
                request=captured.request,
                finished_at=T0,
            ),
            HistoryEntry(
                batch_id=refunds.id,
                row_id=refund.id or 0,
                row=2,
                order_id="A-1",
                operation="cancel",
                state=RowState.UNKNOWN,
                resolution=None,
                amount=1200,
                request=refund.request,
                finished_at=T0,
            ),
        ]
    }
    assert [entry.in_review for entry in history["A-1"]] == [False, True]
    assert journal.history([], live=False, endpoint=ENDPOINT) == {}


def test_history_counts_a_resolved_row_as_its_resolution(journal: Journal) -> None:
    """A settled Review row is no longer in review and counts as what a person said."""
    batch = make_batch(journal)
    row = planned(2, "A-1")
    journal.add_rows(batch.id, [row])
    send(journal, row, read_timeout(), RowState.UNKNOWN)
    journal.resolve(
        batch.id,
        "A-1",
        outcome=RowState.FAILED,
        note="not in portal",
        by="akiko",
        at=T0,
    )

    [entry] = journal.history(["A-1"], live=False, endpoint=ENDPOINT)["A-1"]

    assert (entry.state, entry.resolution, entry.settled, entry.in_review) == (
        RowState.RESOLVED,
        RowState.FAILED,
        RowState.FAILED,
        False,
    )


def test_history_leaves_out_rejected_and_skipped_rows(journal: Journal) -> None:
    """Rows that were never sent say nothing about an order, unless asked for."""
    batch = make_batch(journal)
    rejected = RowRecord(
        row=2, cells=("A-1", "x"), state=RowState.REJECTED, order_id="A-1"
    )
    skipped = RowRecord(
        row=3, cells=("A-2", "1"), state=RowState.SKIPPED, order_id="A-2"
    )
    journal.add_rows(batch.id, [rejected, skipped, planned(4, "A-3")])

    default = journal.history(["A-1", "A-2", "A-3"], live=False, endpoint=ENDPOINT)
    everything = journal.history(
        ["A-1", "A-2"], live=False, endpoint=ENDPOINT, states=set(RowState)
    )

    assert sorted(default) == ["A-3"]
    assert sorted(everything) == ["A-1", "A-2"]


def test_history_answers_for_thousands_of_order_ids_in_one_call(
    journal: Journal,
) -> None:
    """Many order ids go in one query, with each one's rows in order."""
    first = make_batch(journal, sha256="01" * 32)
    second = make_batch(journal, sha256="02" * 32)
    journal.add_rows(first.id, [planned(n, f"O-{n:05d}") for n in range(2, 5_002)])
    journal.add_rows(second.id, [planned(n, f"O-{n:05d}") for n in range(2, 5_002, 2)])
    wanted = [f"O-{n:05d}" for n in range(5_001, 1, -1)] + ["missing"]

    history = journal.history(wanted, live=False, endpoint=ENDPOINT)

    assert len(history) == 5_000
    assert [entry.batch_id for entry in history["O-00002"]] == [first.id, second.id]
    assert [entry.batch_id for entry in history["O-00003"]] == [first.id]


# Durability and secrecy

APPLY_THEN_DIE = """
import os, signal, sys
from pathlib import Path
from popbatch.journal import Journal, RowUpdate
from popbatch.rows import RowState

journal = Journal.open(Path(sys.argv[1]))
journal.apply([RowUpdate(int(sys.argv[2]), RowState.IN_FLIGHT, attempts=1)])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_in_flight_row_survives_a_process_killed_right_after_apply(
    journal_path: Path,
) -> None:
    """apply() has committed when it returns: SIGKILL right after loses nothing."""
    with Journal.open(journal_path) as journal:
        batch = make_batch(journal)
        row = planned(2, "A-1")
        journal.add_rows(batch.id, [row])

    died = run_python(APPLY_THEN_DIE, str(journal_path), str(row.id))

    assert died.returncode == -signal.SIGKILL, died.stderr
    assert journal_path.with_name("journal.sqlite3-wal").stat().st_size > 0
    with Journal.open(journal_path) as journal:
        [stored] = journal.rows(batch.id)
    assert (stored.state, stored.attempts) == (RowState.IN_FLIGHT, 1)


def test_server_key_never_reaches_the_journal_files(journal_path: Path) -> None:
    """A whole batch recorded around a canary key leaves no trace of it on disk."""
    canary = "SK-canary-5f0c1e27b9d84a36"
    key = ServerKey(canary)
    options = RunOptions(operation="capture", input_path=Path("/data/orders.csv"))
    journal = Journal.open(journal_path)
    batch = make_batch(journal)
    journal.start_run(
        RunRecord(batch.id, T0, "akiko", "ops-1", "0.1.0", options.request_options())
    )
    rows = [planned(n, f"K-{n}") for n in range(2, 12)]
    journal.add_rows(batch.id, rows)
    for row in rows:
        # The client sends the body as recorded and the key in a header only;
        # the journal has no field for headers, so the outcome is all it gets.
        send(journal, row, success(row.order_id or ""), RowState.SUCCEEDED)
    disk = b"".join(path.read_bytes() for path in sorted(journal_path.parent.iterdir()))
    journal.close()
    disk += journal_path.read_bytes()

    forms = [
        canary.encode(),
        base64.b64encode(canary.encode()),
        base64.b64encode(f"{canary}:".encode()),
        key.authorization().encode(),
    ]

    assert b"K-11" in disk
    assert [form for form in forms if form in disk] == []
