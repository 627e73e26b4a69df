"""The one error tree of popbatch, and the exit codes it maps to.

Only ``cli`` catches these, prints them and exits; everything else raises.
Each class carries the exit code of DESIGN.md's table::

    PopbatchError
    ├── UsageError                    2   bad option or argument
    ├── InputError
    │   ├── InputRefusedError        65   the file was read but is refused
    │   └── InputUnreadableError     66   missing, undecodable, not a workbook
    ├── OutputError                  73   results or journal cannot be written
    ├── TryAgainLaterError           75   come back later
    │   └── JournalBusyError         75   another run holds the journal
    ├── KeyFileExposedError          77   the key file is readable by others
    └── ConfigurationError           78   no key, key rejected, bad config

Row problems are never exceptions: they are data (Rejected or Review rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses, as DESIGN.md lists them."""

    OK = 0
    ROWS_FAILED = 1
    USAGE = 2
    REVIEW = 3
    INPUT_REFUSED = 65
    INPUT_UNREADABLE = 66
    INTERNAL_ERROR = 70
    CANNOT_WRITE = 73
    TRY_AGAIN_LATER = 75
    KEY_FILE_EXPOSED = 77
    CONFIGURATION = 78
    INTERRUPTED = 130
    TERMINATED = 143

    @property
    def meaning(self) -> str:
        """One line a person can read in a summary or a cron mail."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "every row succeeded or was already done",
    ExitCode.ROWS_FAILED: "some rows failed at POP, were rejected, or need a decision",
    ExitCode.USAGE: "bad usage",
    ExitCode.REVIEW: "some outcomes are unknown: check the Review rows",
    ExitCode.INPUT_REFUSED: "the input is refused and nothing was sent",
    ExitCode.INPUT_UNREADABLE: "the input file is missing or cannot be read",
    ExitCode.INTERNAL_ERROR: "an internal error in popbatch (a bug)",
    ExitCode.CANNOT_WRITE: "the results or the journal cannot be written",
    ExitCode.TRY_AGAIN_LATER: "try again later: rows are still pending or the journal is busy",
    ExitCode.KEY_FILE_EXPOSED: "the key file is readable by others",
    ExitCode.CONFIGURATION: "configuration: the key or the settings need fixing",
    ExitCode.INTERRUPTED: "stopped by SIGINT; the same command resumes",
    ExitCode.TERMINATED: "stopped by SIGTERM; the same command resumes",
}

# DESIGN.md: "Where several apply, the first of 130/143, 78, 75, 3, 1 wins."
_PRECEDENCE = (
    ExitCode.INTERRUPTED,
    ExitCode.TERMINATED,
    ExitCode.CONFIGURATION,
    ExitCode.TRY_AGAIN_LATER,
    ExitCode.REVIEW,
    ExitCode.ROWS_FAILED,
)


def combine_exit_codes(codes: Iterable[ExitCode]) -> ExitCode:
    """Pick the one exit code that wins when several apply to a batch."""
    present = set(codes)
    for code in _PRECEDENCE:
        if code in present:
            return code

    return ExitCode.OK


class PopbatchError(Exception):
    """Base of every error popbatch reports to the user.

    Args:
        message: one line saying what failed and where.
        hint: an optional second line saying what to do next.
    """

    exit_code: ExitCode = ExitCode.CONFIGURATION

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(PopbatchError):
    """An option or argument that cannot work as given."""

    exit_code = ExitCode.USAGE


class InputError(PopbatchError):
    """Something is wrong with the input file as a whole."""

    exit_code = ExitCode.INPUT_REFUSED


class InputRefusedError(InputError):
    """The file was read, but popbatch refuses to send any of it."""

    exit_code = ExitCode.INPUT_REFUSED


class InputUnreadableError(InputError):
    """The file is missing, cannot be decoded, or is not what its name says."""

    exit_code = ExitCode.INPUT_UNREADABLE


class OutputError(PopbatchError):
    """The results folder or the journal cannot be written."""

    exit_code = ExitCode.CANNOT_WRITE


class TryAgainLaterError(PopbatchError):
    """Nothing is wrong with the input, but the run cannot go on now."""

    exit_code = ExitCode.TRY_AGAIN_LATER


class JournalBusyError(TryAgainLaterError):
    """Another popbatch run holds the journal's lock."""


class KeyFileExposedError(PopbatchError):
    """The server key file can be read by other users."""

    exit_code = ExitCode.KEY_FILE_EXPOSED


class ConfigurationError(PopbatchError):
    """The key is missing or rejected, or a setting cannot be used."""

    exit_code = ExitCode.CONFIGURATION
