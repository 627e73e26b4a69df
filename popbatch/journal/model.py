"""The journal's value types and rules: row updates, history, the allowed moves.

These are what the pipeline hands to the journal and gets back from it,
besides the shared row types of ``popbatch.rows``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import SplitResult, urlsplit, urlunsplit

from popbatch.rows import Outcome, OutcomeKind, Problem, RowState

_S = RowState

# Rows whose request may have been applied and whose outcome nobody knows.
REVIEW_STATES = frozenset({_S.UNKNOWN, _S.IN_FLIGHT})

# Rows the cross-batch rules look at: rejected and skipped rows never sent.
HISTORY_STATES = frozenset(RowState) - {_S.REJECTED, _S.SKIPPED}

# The states apply() may move a row to, and the states it may come from.
# Whatever is not here is refused: above all, a row that succeeded, failed or
# may have been applied never becomes sendable again through apply().
# UNKNOWN -> PLANNED happens only through requeue_unknown(), which keeps the
# evidence; RESOLVED only through resolve().
ALLOWED_FROM: Mapping[RowState, frozenset[RowState]] = {
    _S.PLANNED: frozenset({_S.PLANNED, _S.PENDING, _S.SKIPPED}),
    _S.PENDING: frozenset({_S.PLANNED, _S.PENDING, _S.IN_FLIGHT, _S.SKIPPED}),
    _S.IN_FLIGHT: frozenset({_S.PLANNED, _S.PENDING, _S.IN_FLIGHT}),
    _S.SUCCEEDED: frozenset({_S.IN_FLIGHT}),
    _S.FAILED: frozenset({_S.IN_FLIGHT}),
    _S.UNKNOWN: frozenset({_S.IN_FLIGHT}),
    _S.SKIPPED: frozenset({_S.PLANNED, _S.PENDING, _S.SKIPPED}),
    _S.REJECTED: frozenset({_S.PLANNED, _S.PENDING}),
}

# Outcomes that say the request reached POP (or may have): such a row can
# never go back to planned or pending.
_APPLIED_KINDS = frozenset(
    {OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.UNKNOWN}
)

INTERRUPTED_OUTCOME = Outcome(
    kind=OutcomeKind.UNKNOWN,
    reason="interrupted_in_flight",
    detail=(
        "the run stopped while this request was in flight, so it may have been "
        "applied: check the order in the merchant portal, then resolve the row "
        "or send it again with --resend-unknown"
    ),
)


# The port a scheme reaches when the URL names none.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_endpoint(endpoint: str) -> str:
    """The endpoint as batches are compared by: one text per place requests go.

    Scheme and host in lower case, the host without its final dot, no port
    when it is the scheme's default (80 for http, 443 for https), and a path
    without dot segments, repeated slashes or a final slash. Two spellings
    of one endpoint must never count as two, or a file sent under one would
    be sent again under the other.
    """
    parts = urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    return urlunsplit(
        (
            scheme,
            _canonical_netloc(parts, scheme),
            _canonical_path(parts.path),
            parts.query,
            "",
        )
    )


def _canonical_netloc(parts: SplitResult, scheme: str) -> str:
    """``user@host:port`` in lower case, without a final dot or a default port."""
    netloc = parts.netloc
    try:
        port = parts.port
    except ValueError:
        # Not a port number: such an endpoint is refused before anything is
        # sent, so the text only has to stay stable.
        return netloc.lower()
    host = (parts.hostname or "").removesuffix(".")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""

    text = f"{userinfo.lower()}@{host}" if userinfo else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        text += f":{port}"
    return text


def _canonical_path(path: str) -> str:
    """The path with ``.`` and ``..`` applied, single slashes and no final one."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "".join(f"/{segment}" for segment in segments)


def batch_key(
    operation: str, sha256: str, live: bool, endpoint: str, *, read: Sequence[str] = ()
) -> str:
    """What identifies a batch: operation, test or live, file hash, endpoint.

    The input's path is not part of it: the same file moved or renamed
    resumes the same batch, and a changed file is a new batch.

    Args:
        read: what else decides which rows the bytes hold, such as the sheet
            and the encoding: the same workbook read from another sheet is
            another batch.
    """
    mode = "live" if live else "test"
    key = f"{operation}:{mode}:{sha256.lower()}:{canonical_endpoint(endpoint)}"
    if any(read):
        key += ":" + "|".join(read)
    return key


@dataclass(frozen=True, slots=True)
class RowUpdate:
    """A change to one row, applied by ``Journal.apply``.

    Fields left as None keep the row's current value. ``first_sent_at`` is
    kept once set, so the intent of every attempt may carry the time.
    ``problems=()`` clears the row's problems.
    """

    row_id: int
    state: RowState
    attempts: int | None = None
    outcome: Outcome | None = None
    first_sent_at: datetime | None = None
    finished_at: datetime | None = None
    problems: tuple[Problem, ...] | None = None

    def __post_init__(self) -> None:
        if self.state not in ALLOWED_FROM:
            raise ValueError(f"apply() cannot move a row to {self.state}")
        if (
            self.state in (_S.PLANNED, _S.PENDING)
            and self.outcome is not None
            and self.outcome.kind in _APPLIED_KINDS
        ):
            raise ValueError(
                f"row id {self.row_id} has a {self.outcome.kind} outcome, "
                f"so it cannot go back to {self.state}"
            )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of an earlier batch with an order id the plan step asked about."""

    batch_id: int
    row_id: int
    row: int
    order_id: str
    operation: str
    state: RowState
    resolution: RowState | None
    amount: int | None
    request: str | None
    finished_at: datetime | None

    @property
    def settled(self) -> RowState:
        """The state that counts: a resolved row counts as what a person said."""
        if self.state is _S.RESOLVED and self.resolution is not None:
            return self.resolution
        return self.state

    @property
    def in_review(self) -> bool:
        """Whether the row may have been applied and nobody has settled it."""
        return self.state in REVIEW_STATES


@dataclass(frozen=True, slots=True)
class RowEvent:
    """A change to a Review row that the journal keeps as history.

    Args:
        kind: ``interrupted``, ``resend_requested``, ``resolved``, or
            ``replanned`` (resolved as failed, so sent again by its batch).
        outcome: the outcome the row held before the change.
    """

    row_id: int
    row: int
    order_id: str | None
    kind: str
    from_state: RowState
    to_state: RowState
    at: datetime
    outcome: Outcome | None
    attempts: int
    note: str | None
    by: str | None


def first_refusal(updates: Sequence[RowUpdate], states: Mapping[int, RowState]) -> str:
    """Why a group of updates cannot apply to rows in ``states`` (row id -> state).

    The updates are replayed in order, so a row moved twice in one group is
    judged from the state the group gave it.
    """
    current = dict(states)
    for update in updates:
        state = current.get(update.row_id)
        if state is None:
            return f"row id {update.row_id} is not in the journal; nothing was applied"
        if state not in ALLOWED_FROM[update.state]:
            return (
                f"row id {update.row_id} cannot go from {state} to {update.state}; "
                "nothing was applied"
            )
        current[update.row_id] = update.state

    return "the journal changed fewer rows than asked; nothing was applied"
