"""One run at a time per journal: an flock on ``<journal>.lock`` beside its real file.

The lock belongs to the journal's file, not to the path that reached it: a
symlink, a relative path or ``..`` all lead to the same real file and so to
the same lock. It is the flock alone, so it dies with the process that holds
it: after a ``kill -9`` the next run takes it without any clean-up. The pid
and start time written into the file only serve the message a second run
shows.

A lock file can be removed while it is held (a clean-up of stale-looking
``*.lock`` files, a person who reads that the journal is busy). The next run
would then create a new file and lock it at once, so on Linux the run also
holds a lock on one byte of the journal file itself, far past anything
SQLite locks, which no clean-up of lock files takes away.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import struct
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from popbatch.errors import JournalBusyError, OutputError
from popbatch.journal.codec import local_now
from popbatch.journal.database import create_private_file, make_private_dirs

logger = logging.getLogger(__name__)

# How often a lock file that was replaced between its opening and its flock
# is opened again before giving up.
_ATTEMPTS = 5

# Linux's open file description locks: owned by the open file, like an flock,
# so a second JournalLock in the same process is refused too, and on a byte
# range, so they never meet SQLite's own locks on the journal (bytes from
# 1 GiB on). struct flock of 64-bit Linux: type, whence, start, len, pid.
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_FLOCK = struct.Struct("@hhqqi4x")
_GUARD_BYTE = 1 << 62
_GUARDED = sys.platform == "linux" and _OFD_SETLK is not None and _FLOCK.size == 32


def real_journal_path(journal_path: Path) -> Path:
    """The journal's real file: absolute, with every symlink followed."""
    return Path(os.path.realpath(journal_path))


def lock_path(journal_path: Path) -> Path:
    """Where the lock of the journal at ``journal_path`` lives: beside its real file."""
    real = real_journal_path(journal_path)
    return real.with_name(real.name + ".lock")


class JournalLock:
    """The exclusive right to run batches on one journal.

    Take it before opening the journal for a run and hold it until the run
    has written its results; ``with JournalLock(path) as lock:`` does both,
    and ``Journal.open(lock.real_path)`` opens the very file that is locked.
    Close the Journal before the lock is released: the lock keeps the
    journal file open, and closing it drops the locks SQLite holds on that
    file in this process.

    The flock belongs to the open file: a child process created with
    ``fork`` (not ``exec``) while the lock is held shares it and keeps it
    alive after the parent dies. popbatch runs its workers as threads.
    """

    def __init__(
        self, journal_path: Path, *, clock: Callable[[], datetime] = local_now
    ) -> None:
        self.journal_path = journal_path
        self.real_path = real_journal_path(journal_path)
        self.path = lock_path(journal_path)
        self._clock = clock
        self._fd: int | None = None
        self._guard: int | None = None

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
            OutputError: the lock file or the journal file cannot be created.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self!r} is already held")

        # Resolved again now: a symlink may have changed since __init__.
        self.real_path = real_journal_path(self.journal_path)
        self.path = lock_path(self.real_path)
        fd = self._lock_file()
        try:
            guard = self._guard_journal()
        except BaseException:
            os.close(fd)
            raise

        self._fd, self._guard = fd, guard
        self._write_holder(fd)
        return self

    def release(self) -> None:
        """Let the lock go (closing the files drops the locks); safe to repeat."""
        if self._guard is not None:
            guard, self._guard = self._guard, None
            os.close(guard)
        if self._fd is not None:
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

    def _lock_file(self) -> int:
        """Open and flock the lock file now at ``self.path``; its descriptor."""
        for _ in range(_ATTEMPTS):
            fd = self._open(self.path, "cannot create the journal lock", os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise self._busy(holder) from None
            except BaseException:
                os.close(fd)
                raise

            # The file may have been removed or replaced between the open and
            # the flock (by a clean-up, say): a lock on a file that is no
            # longer at the path keeps nobody out, so try the one there now.
            if _is_at(fd, self.path):
                return fd
            os.close(fd)

        raise JournalBusyError(
            f"the journal lock {str(self.path)!r} was replaced {_ATTEMPTS} times "
            "while popbatch was taking it",
            hint="Check what removes files in that folder, then run the same "
            "command again.",
        )

    def _guard_journal(self) -> int | None:
        """Lock one byte of the journal file itself; None where that cannot be done."""
        setlk = _OFD_SETLK
        if not _GUARDED or setlk is None:
            return None
        create_private_file(self.real_path)
        fd = self._open(self.real_path, "cannot open the journal", 0)
        request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, _GUARD_BYTE, 1, 0)
        try:
            fcntl.fcntl(fd, setlk, request)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                # The lock file was removed while its holder ran: its pid is
                # no longer to be read anywhere.
                raise self._busy({}) from None
            # A file system without such locks (some network or FUSE
            # mounts): the lock file alone keeps runs apart.
            logger.debug("journal=%s no byte lock: %s", self.real_path, exc.strerror)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open(self, path: Path, failed: str, create: int) -> int:
        try:
            make_private_dirs(path.parent)
            return os.open(path, os.O_RDWR | create, 0o600)
        except OSError as exc:
            raise OutputError(
                f"{failed} {str(path)!r}: {exc.strerror}",
                hint="Give another place with --journal PATH or POPBATCH_JOURNAL.",
            ) from None

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


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file at ``path`` now."""
    try:
        there = os.stat(path)
    except OSError:
        return False
    here = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> dict[str, object]:
    # The holder may not have written yet, or a crash left half a line:
    # the message then goes without the details.
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
