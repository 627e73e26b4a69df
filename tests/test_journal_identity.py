"""Regression tests of the journal's identity rules (the review of journal identity).

One journal file is one lock however its path is spelled, and a lock file
removed while it is held lets no second run in; one endpoint is one
endpoint however its URL is spelled, also in journals written before the
rule; and a key given where its file belongs is never shown.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from popbatch.cli import main
from popbatch.config import load_server_key
from popbatch.errors import ConfigurationError, ExitCode, JournalBusyError
from popbatch.journal import (
    Journal,
    JournalLock,
    batch_key,
    canonical_endpoint,
    lock_path,
    schema_version,
)
from popbatch.journal import lock as lock_module
from popbatch.rows import RowRecord, RowState
from popbatch.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "Test-POP-Server-Key"
SHA = "ab" * 32
BUSY_HINT = (
    "Wait for it to finish and run the same command again; "
    "it resumes where the batch stands."
)

# A process that holds a journal's lock until its stdin closes.
HOLD_LOCK = """
import sys
from pathlib import Path
from popbatch.journal import JournalLock

lock = JournalLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""


# --- helpers -------------------------------------------------------------------


def write_csv(path: Path, header: str, lines: Sequence[str]) -> Path:
    """A CSV file with ``header`` and ``lines``, UTF-8."""
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def environment(tmp_path: Path, **changes: str | None) -> dict[str, str | None]:
    """The environment of a run: the test key, and the default journal under tmp_path."""
    env: dict[str, str | None] = {
        "POP_SERVER_KEY": TEST_KEY,
        "POP_ENDPOINT": None,
        "POPBATCH_JOURNAL": None,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    env.update(changes)
    return env


def invoke(argv: Sequence[str], env: Mapping[str, str | None]) -> Result:
    """``popbatch ARGV`` in this process; the logger is given back as it was."""
    logger = logging.getLogger("popbatch")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        return CliRunner().invoke(main, list(argv), env=dict(env))
    finally:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def cancel_args(
    path: Path, endpoint: str, *, out: Path, journal: Path | None = None
) -> list[str]:
    """``popbatch cancel PATH`` against ``endpoint``, results under ``out``."""
    argv = ["cancel", str(path), "--endpoint", endpoint, "--out", str(out)]
    argv += ["--rate", "0"]
    if journal is not None:
        argv += ["--journal", str(journal)]
    return argv


def wait_for_first_request(
    sandbox: SandboxServer, order_id: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Wait until ``order_id`` reached the sandbox (a guard against hangs only)."""
    deadline = time.monotonic() + 60
    while sandbox.received(order_id) < 1:
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"{order_id} never reached the sandbox; the run said:\n"
                + log.read_text(encoding="utf-8", errors="replace")
            )
        time.sleep(0.02)


@contextmanager
def lock_held_elsewhere(journal: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of ``journal`` for the block."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(journal)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "held\n"
        yield process
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@contextmanager
def run_in_background(
    argv: Sequence[str], env: Mapping[str, str | None], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m popbatch ARGV`` running for the block, then killed."""
    full = dict(os.environ)
    for name, value in env.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "popbatch", *argv],
            cwd=ROOT,
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def holder_text(journal: Path) -> str:
    """`` (pid N, started at T)`` as the lock file of ``journal`` records it."""
    held = json.loads(lock_path(journal).read_text(encoding="utf-8"))
    return f" (pid {held['pid']}, started at {held['started_at']})"


# --- 1. one lock per journal file ----------------------------------------------


@pytest.mark.parametrize("holder_uses_link", [False, True])
def test_a_symlink_to_the_journal_meets_the_lock_another_process_holds(
    tmp_path: Path, holder_uses_link: bool
) -> None:
    """issue journal-identity: the lock is the real file's, whichever path holds it."""
    journal = tmp_path / "journal.sqlite3"
    link = tmp_path / "link.sqlite3"
    link.symlink_to(journal.name)
    held, taken = (link, journal) if holder_uses_link else (journal, link)

    with lock_held_elsewhere(held) as holder:
        second = JournalLock(taken)
        with pytest.raises(JournalBusyError) as caught:
            second.acquire()
        who = holder_text(journal)

    assert caught.value.message == (
        f"another popbatch run is using the journal {str(taken)!r}{who}"
    )
    assert f"(pid {holder.pid}," in who
    assert not second.held
    assert lock_path(link) == lock_path(journal) == tmp_path / "journal.sqlite3.lock"


@pytest.mark.sandbox
@pytest.mark.parametrize("way_in", ["through a symlink", "after its lock file went"])
def test_a_second_run_sends_nothing_while_a_run_holds_the_journal(
    sandbox: SandboxServer, tmp_path: Path, way_in: str
) -> None:
    """issue journal-identity: 178-211 of 300 refunds went twice through a symlink."""
    orders = ["SY-1", "SY-2", "SY-3"]
    for order_id in orders:
        sandbox.add_order(order_id, 10_000, state="captured")
    sandbox.script_order("SY-1", {"action": "hang"})
    first = write_csv(
        tmp_path / "a.csv", "order_id,amount", [f"{o},100" for o in orders]
    )
    second = write_csv(
        tmp_path / "b.csv", "order_id,amount,memo", [f"{o},100,x" for o in orders]
    )
    journal = tmp_path / "journal.sqlite3"
    link = tmp_path / "link.sqlite3"
    link.symlink_to(journal.name)
    env = environment(tmp_path)
    argv = cancel_args(first, sandbox.base_url, out=tmp_path / "ra", journal=journal)
    argv += ["--concurrency", "1", "--timeout", "600"]

    log = tmp_path / "a.log"
    with run_in_background(argv, env, log) as holder:
        wait_for_first_request(sandbox, "SY-1", holder, log)
        if way_in == "through a symlink":
            who, given = holder_text(journal), link
        else:
            lock_path(journal).unlink()
            who, given = "", journal
        run = invoke(
            cancel_args(second, sandbox.base_url, out=tmp_path / "rb", journal=given),
            env,
        )

    assert run.exit_code == ExitCode.TRY_AGAIN_LATER
    assert run.stderr == (
        f"Error: another popbatch run is using the journal {str(given)!r}{who}\n"
        f"{BUSY_HINT}\n"
    )
    assert {order_id: sandbox.received(order_id) for order_id in orders} == {
        "SY-1": 1,
        "SY-2": 0,
        "SY-3": 0,
    }


def test_deleting_the_lock_file_while_another_process_holds_it_lets_no_one_in(
    tmp_path: Path,
) -> None:
    """issue journal-identity: a clean-up of *.lock files used to free the journal."""
    journal = tmp_path / "journal.sqlite3"

    with lock_held_elsewhere(journal):
        lock_path(journal).unlink()
        second = JournalLock(journal)
        with pytest.raises(JournalBusyError) as caught:
            second.acquire()

    assert caught.value.message == (
        f"another popbatch run is using the journal {str(journal)!r}"
    )
    assert caught.value.hint == BUSY_HINT
    assert not second.held


def test_deleting_the_lock_file_while_held_here_lets_no_second_lock_in(
    tmp_path: Path,
) -> None:
    """issue journal-identity: the reviewer's reproduction, in one process."""
    journal = tmp_path / "journal.sqlite3"

    with JournalLock(journal):
        lock_path(journal).unlink()
        second = JournalLock(journal)
        with pytest.raises(JournalBusyError):
            second.acquire()
    third = JournalLock(journal).acquire()
    third.release()

    assert not second.held


def test_a_lock_file_replaced_while_it_is_taken_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flock must be on the file at the path, not on one a clean-up removed."""
    journal = tmp_path / "journal.sqlite3"
    monkeypatch.setattr(lock_module, "_GUARDED", False)  # the lock file alone
    real_flock = fcntl.flock
    calls: list[int] = []

    def flock_after_a_replacement(fd: int, operation: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            lock_path(journal).unlink()
            lock_path(journal).touch()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_replacement)
    first = JournalLock(journal).acquire()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    try:
        with pytest.raises(JournalBusyError):
            JournalLock(journal).acquire()
    finally:
        first.release()

    assert len(calls) == 2


def test_a_lock_file_that_keeps_being_replaced_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After five replacements in a row popbatch gives up with exit 75."""
    journal = tmp_path / "journal.sqlite3"

    def flock_after_a_removal(fd: int, operation: int) -> None:
        lock_path(journal).unlink()

    monkeypatch.setattr(fcntl, "flock", flock_after_a_removal)
    lock = JournalLock(journal)
    with pytest.raises(JournalBusyError) as caught:
        lock.acquire()

    assert caught.value.message == (
        f"the journal lock {str(lock_path(journal))!r} was replaced 5 times "
        "while popbatch was taking it"
    )
    assert caught.value.exit_code is ExitCode.TRY_AGAIN_LATER
    assert not lock.held


def test_the_journal_is_opened_by_the_real_path_that_is_locked(tmp_path: Path) -> None:
    """A symlink's journal and lock are the real file's."""
    journal = tmp_path / "data" / "journal.sqlite3"
    journal.parent.mkdir()
    link = tmp_path / "link.sqlite3"
    link.symlink_to(journal)

    with JournalLock(link) as lock:
        opened = Journal.open(link)
        opened.close()

    assert (lock.real_path, lock.path) == (
        journal,
        journal.with_name("journal.sqlite3.lock"),
    )
    assert opened.path == journal
    assert link.is_symlink()


# --- 2. one endpoint, however spelled ------------------------------------------


@pytest.mark.parametrize(
    "spelled",
    [
        "http://127.0.0.1/pop/v1",
        "http://127.0.0.1:80/pop/v1",
        "HTTP://127.0.0.1:80/pop/v1/",
        "http://127.0.0.1.:80/pop/v1",
        "http://127.0.0.1//pop//v1",
        "http://127.0.0.1/pop/./v1",
        "http://127.0.0.1/pop/x/../v1/",
        " http://127.0.0.1:080/pop/v1 ",
    ],
)
def test_spellings_of_one_endpoint_are_one_endpoint(spelled: str) -> None:
    """issue journal-identity: ':80' once made a second batch of a refund file."""
    assert canonical_endpoint(spelled) == "http://127.0.0.1/pop/v1"


def test_https_default_port_host_case_and_final_dot_are_dropped() -> None:
    """POP's own endpoint, spelled with its port, capitals and a rooted host name."""
    assert canonical_endpoint("HTTPS://Pay3.Veritrans.co.jp.:443/pop/v1/") == (
        "https://pay3.veritrans.co.jp/pop/v1"
    )


@pytest.mark.parametrize(
    "other",
    [
        "https://127.0.0.1/pop/v1",
        "http://127.0.0.1:443/pop/v1",
        "http://127.0.0.1:8080/pop/v1",
        "http://127.0.0.1/POP/v1",
        "http://127.0.0.2/pop/v1",
        "http://127.0.0.1/pop/v2",
    ],
)
def test_other_endpoints_stay_apart(other: str) -> None:
    """Scheme, port, path case and host tell endpoints apart."""
    assert canonical_endpoint(other) != canonical_endpoint("http://127.0.0.1/pop/v1")


def test_ipv6_hosts_keep_their_brackets() -> None:
    """An IPv6 literal loses its default port, not its brackets."""
    assert canonical_endpoint("http://[::1]:80/pop/v1") == "http://[::1]/pop/v1"
    assert canonical_endpoint("http://[::1]:8080/pop/v1") == "http://[::1]:8080/pop/v1"


@pytest.mark.sandbox
def test_the_default_port_spelled_out_finds_the_same_batch(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """issue journal-identity: the reviewer's reproduction, on port 80."""
    try:
        server = make_sandbox(port=80)
    except OSError as error:
        pytest.skip(f"cannot listen on port 80 here: {error}")
    server.add_order("EP-1", 10_000, state="captured")
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["EP-1,1000"])
    env = environment(tmp_path)
    out = tmp_path / "out"

    first = invoke(cancel_args(path, "http://127.0.0.1/pop/v1", out=out), env)
    again = invoke(cancel_args(path, "http://127.0.0.1:80/pop/v1", out=out), env)

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stderr.startswith("batch 1 already finished on ")
    assert server.applied("EP-1") == 1


@pytest.mark.sandbox
def test_another_spelling_of_the_sandbox_url_finds_the_same_batch(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Capitals, a dot segment and a final slash: still batch 1, nothing sent."""
    sandbox.add_order("EP-2", 10_000, state="captured")
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["EP-2,1000"])
    env = environment(tmp_path)
    out = tmp_path / "out"
    spelled = sandbox.base_url.replace("http://", "HTTP://").replace(
        "/pop/v1", "/pop/x/../v1/"
    )

    first = invoke(cancel_args(path, sandbox.base_url, out=out), env)
    again = invoke(cancel_args(path, spelled, out=out), env)

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert again.stderr.startswith("batch 1 already finished on ")
    assert sandbox.applied("EP-2") == 1


def old_canonical_endpoint(endpoint: str) -> str:
    """The canonical form journals of schema version 1 hold: host case, final slash."""
    scheme, _, rest = endpoint.strip().partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def make_version_1(path: Path, spelled: dict[int, str]) -> None:
    """Turn a journal into one written before endpoints were canonical as now.

    ``spelled`` maps batch ids to the endpoint their command gave; each
    batch's endpoint and key take the form the version 1 rule made of it.
    The tables of version 1 are those of today, so the data says it all.
    """
    conn = sqlite3.connect(path)
    for batch_id, endpoint in spelled.items():
        key, stored = conn.execute(
            "SELECT key, endpoint FROM batches WHERE id = ?", (batch_id,)
        ).fetchone()
        old = old_canonical_endpoint(endpoint)
        conn.execute(
            "UPDATE batches SET key = ?, endpoint = ? WHERE id = ?",
            (key.replace(stored, old, 1), old, batch_id),
        )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


@pytest.mark.sandbox
def test_a_batch_of_a_version_1_journal_is_found_by_the_command_that_made_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """issue journal-identity: keys made by the old rule are migrated, not orphaned."""
    sandbox.add_order("MG-1", 10_000, state="captured")
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["MG-1,1000"])
    other = write_csv(tmp_path / "more.csv", "order_id,amount,memo", ["MG-1,1000,x"])
    journal = tmp_path / "journal.sqlite3"
    env = environment(tmp_path)
    spelled = sandbox.base_url.replace("/pop/v1", "/pop/./v1")
    out = tmp_path / "out"
    first = invoke(cancel_args(path, spelled, out=out, journal=journal), env)
    make_version_1(journal, {1: spelled})

    same = invoke(cancel_args(path, spelled, out=out, journal=journal), env)
    plain = invoke(cancel_args(path, sandbox.base_url, out=out, journal=journal), env)
    repeat = invoke(cancel_args(other, sandbox.base_url, out=out, journal=journal), env)

    assert (first.exit_code, same.exit_code, plain.exit_code) == (0, 0, 0)
    assert same.stderr.startswith("batch 1 already finished on ")
    assert plain.stderr.startswith("batch 1 already finished on ")
    assert repeat.exit_code == ExitCode.ROWS_FAILED
    assert "would repeat a refund that already succeeded" in repeat.stderr
    assert sandbox.applied("MG-1") == 1
    with Journal.open(journal) as opened:
        batches = opened.list_batches()
    assert [batch.endpoint for batch in batches] == [sandbox.base_url] * 2
    assert batches[0].key.endswith(f":{sandbox.base_url}:|utf-8")


def test_migration_gives_a_key_spelled_twice_to_one_batch_and_keeps_both_in_history(
    tmp_path: Path,
) -> None:
    """Two version 1 batches of one file, with and without ':80', become one endpoint."""
    path = tmp_path / "journal.sqlite3"
    with Journal.open(path) as journal:
        for endpoint, order_id in (
            ("http://127.0.0.1:80/pop/v1", "A-1"),
            ("http://127.0.0.1/pop/v1/", "A-2"),
        ):
            batch = journal.create_batch(
                key=f"capture:test:{SHA}:{old_canonical_endpoint(endpoint)}",
                operation="capture",
                input_path="february.csv",
                input_sha256=SHA,
                input_kind="csv",
                encoding="utf-8",
                delimiter=",",
                sheet=None,
                headers=("order_id", "amount"),
                columns={"order_id": 0, "amount": 1},
                live=False,
                endpoint=endpoint,
                options={},
            )
            journal.add_rows(
                batch.id,
                [
                    RowRecord(
                        row=2,
                        cells=(order_id, "1000"),
                        state=RowState.SUCCEEDED,
                        order_id=order_id,
                        amount=1000,
                    )
                ],
            )
    make_version_1(
        path, {1: "http://127.0.0.1:80/pop/v1", 2: "http://127.0.0.1/pop/v1/"}
    )

    with Journal.open(path) as journal:
        batches = journal.list_batches()
        found = journal.find_batch(
            batch_key("capture", SHA, False, "http://127.0.0.1:80/pop/v1")
        )
        history = journal.history(
            ["A-1", "A-2"], live=False, endpoint="http://127.0.0.1:80/pop/v1/"
        )
    conn = sqlite3.connect(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()

    assert version == schema_version()
    assert [(batch.key, batch.endpoint) for batch in batches] == [
        (f"capture:test:{SHA}:http://127.0.0.1:80/pop/v1", "http://127.0.0.1/pop/v1"),
        (f"capture:test:{SHA}:http://127.0.0.1/pop/v1", "http://127.0.0.1/pop/v1"),
    ]
    assert found is not None
    assert found.id == 2
    assert {
        order_id: [e.batch_id for e in entries] for order_id, entries in history.items()
    } == {
        "A-1": [1],
        "A-2": [2],
    }


# --- 3. the key file's path may be the key ---------------------------------------


@pytest.mark.sandbox
def test_a_key_given_as_the_key_file_is_never_shown(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """issue journal-identity: --server-key-file "$POP_SERVER_KEY" printed the key."""
    key = "Live-Secret-Key-0042"
    path = write_csv(tmp_path / "refunds.csv", "order_id,amount", ["KF-1,1000"])
    log = tmp_path / "popbatch.log"
    argv = cancel_args(path, sandbox.base_url, out=tmp_path / "out")
    argv += ["--server-key-file", key, "-vv", "--log-file", str(log), "--debug"]

    run = invoke(argv, environment(tmp_path, POP_SERVER_KEY=key))

    assert run.exit_code == ExitCode.CONFIGURATION
    assert run.stderr.endswith(
        "Error: the file given with --server-key-file cannot be read: no such "
        "file or directory\n"
        "Give the path of the file that holds the key (it is not shown here, in "
        "case the key itself was given).\n"
    )
    written = log.read_text(encoding="utf-8") if log.exists() else ""
    assert key not in run.output + run.stderr + written
    assert sandbox.received() == 0


def test_a_key_file_that_is_a_folder_is_not_named(tmp_path: Path) -> None:
    """What went wrong is said; the value given is not."""
    with pytest.raises(ConfigurationError) as caught:
        load_server_key(tmp_path, {})

    assert caught.value.message == (
        "the file given with --server-key-file cannot be read: is a directory"
    )
    assert str(tmp_path) not in caught.value.message + str(caught.value.hint)


def test_a_key_file_that_is_not_text_is_named_but_not_shown(tmp_path: Path) -> None:
    """A file that exists may be named: its bytes are not."""
    path = tmp_path / "pop.key"
    path.write_bytes(b"\xff\xfeK\x00E\x00Y\x00")
    path.chmod(0o600)

    with pytest.raises(ConfigurationError) as caught:
        load_server_key(path, {})

    assert caught.value.message == f"the key file {str(path)!r} is not UTF-8 text"
