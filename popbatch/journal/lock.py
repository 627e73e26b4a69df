"""One run at a time per journal: an flock on ``<journal>.lock``.

The lock is the flock alone, so it dies with the process that holds it:
after a ``kill -9`` the next run takes it without any clean-up. The pid and
start time written into the file only serve the message a second run shows.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from popbatch.errors import JournalBusyError, OutputError
from popbatch.journal.codec import local_now
from popbatch.journal.database import make_private_dirs


def lock_path(journal_path: Path) -> Path:
    """Where the lock of the journal at ``journal_path`` lives."""
    return journal_path.with_name(journal_path.name + ".lock")


class JournalLock:
    """The exclusive right to run batches on one journal.

    Take it before opening the journal for a run and hold it until the run
    has written its results; ``with JournalLock(path):`` does both.

    The flock belongs to the open file: a child process created with
    ``fork`` (not ``exec``) while the lock is held shares it and keeps it
    alive after the parent dies. popbatch runs its workers as threads.
    """

    def __init__(
        self, journal_path: Path, *, clock: Callable[[], datetime] = local_now
    ) -> None:
        self.journal_path = journal_path
        self.path = lock_path(journal_path)
        self._clock = clock
        self._fd: int | None = None

    def __repr__(self) -> str:
        state = "held" if self.held else "free"
        return f"JournalLock({str(self.journal_path)!r}, {state})"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> JournalLock:
        """Take the lock at once or fail; never waits.

        Raises:
            JournalBusyError: another process (or another JournalLock in this
                one) holds it.
            OutputError: the lock file cannot be created.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is already held")

        try:
            make_private_dirs(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(
                f"cannot create the journal lock {str(self.path)!r}: {exc.strerror}",
                hint="Give another place with --journal PATH or POPBATCH_JOURNAL.",
            ) from None

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise self._busy(holder) from None
        except BaseException:
            os.close(fd)
            raise

        self._fd = fd
        self._write_holder(fd)
        return self

    def release(self) -> None:
        """Let the lock go (closing the file drops the flock); safe to repeat."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.close(fd)

    def __enter__(self) -> JournalLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _write_holder(self, fd: int) -> None:
        started = self._clock().isoformat(timespec="seconds")
        text = json.dumps({"pid": os.getpid(), "started_at": started})
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode() + b"\n", 0)

    def _busy(self, holder: dict[str, object]) -> JournalBusyError:
        who = ""
        if "pid" in holder and "started_at" in holder:
            who = f" (pid {holder['pid']}, started at {holder['started_at']})"
        return JournalBusyError(
            f"another popbatch run is using the journal {str(self.journal_path)!r}{who}",
            hint="Wait for it to finish and run the same command again; "
            "it resumes where the batch stands.",
        )


def _read_holder(fd: int) -> dict[str, object]:
    # The holder may not have written yet, or a crash left half a line:
    # the message then goes without the details.
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
