"""DESIGN.md's "When to retry" table as small functions: an outcome in, a decision out.

The client classifies one attempt into an :class:`~popbatch.rows.Outcome`;
this module says what happens next. Only two kinds of outcome may ever be
sent again, because only they prove that nothing was applied:

- ``not_sent``: the connection was never made (refused, DNS, connect timeout);
- ``not_processed``: POP or its front said so (HTTP 429, HTTP 503 with
  ``Retry-After``, RA01/RD01/RM01 without ``m_status`` in a 2xx or 4xx
  answer, a refused key, a 404 or 405 page from a URL that is not POP's).

Everything else is final for this run. Retries are limited three ways: per
row (``RetrySettings.max_attempts``), per run (a :class:`RetryBudget`), and
by a :class:`StopCounter` that stops the batch after a run of consecutive
"not sent" or "not processed" answers (and, when the caller asks, of
unknown outcomes: a gateway that times out on every request would otherwise
fill Review). A ``Retry-After`` longer than the ceiling stops the batch too,
leaving the rest pending; so does an answer that says the key, the merchant
or the endpoint is wrong (exit 78).

Nothing here sleeps or draws from the global random generator: the caller
passes ``random`` and does the waiting, as tenacity takes ``sleep``.
"""

from __future__ import annotations

import math
import random as _random_module
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from popbatch.config import RetrySettings
from popbatch.errors import ExitCode
from popbatch.rows import Outcome, OutcomeKind, RowState

Random = Callable[[], float]
"""A source of floats in [0, 1), such as ``random.Random(seed).random``."""

# One generator of our own, seeded by the OS: jitter must differ between
# runs and machines, and tests pass their own ``random`` instead.
_SYSTEM_RANDOM: Random = _random_module.SystemRandom().random

RETRYABLE_KINDS = frozenset({OutcomeKind.NOT_SENT, OutcomeKind.NOT_PROCESSED})
"""The outcomes that prove nothing was applied, so that sending again is safe."""

_FINAL_STATES = {
    OutcomeKind.SUCCEEDED: RowState.SUCCEEDED,
    OutcomeKind.FAILED: RowState.FAILED,
    OutcomeKind.UNKNOWN: RowState.UNKNOWN,
    OutcomeKind.NOT_SENT: RowState.PENDING,
    OutcomeKind.NOT_PROCESSED: RowState.PENDING,
}

_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class BatchStop:
    """Why the whole batch stops: no further row is started.

    Args:
        reason: stable snake_case code, e.g. ``key_rejected`` or
            ``retry_after_too_long``.
        message: what happened and what to do next, for the terminal.
        exit_code: 78 when the configuration must be fixed, 75 when the
            same command should simply be run again later.
    """

    reason: str
    message: str
    exit_code: ExitCode


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after one attempt at a row.

    Args:
        retry: send the same body again after ``wait_s`` seconds.
        wait_s: seconds to wait before the retry; 0 when not retrying.
        state: the row's journal state now: ``succeeded``, ``failed`` or
            ``unknown`` when the answer is final, ``pending`` when the row
            is retried or left for the next run.
        reason: why, as a stable snake_case code: ``answered``,
            ``retry_backoff``, ``retry_after``, ``attempts_used_up``,
            ``budget_used_up``, ``retry_after_too_long``, ``batch_stopping``.
        stop: set when the batch must stop starting rows.
    """

    retry: bool
    wait_s: float
    state: RowState
    reason: str
    stop: BatchStop | None = None

    @property
    def pending(self) -> bool:
        """The row is not retried now and stays pending for the next run."""
        return not self.retry and self.state is RowState.PENDING


class RetryBudget:
    """The run-wide number of retries, shared by every worker (thread-safe).

    A fault that hits every row must not multiply the requests a run makes:
    once the budget is spent, rows that could be retried stay pending.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"a retry budget cannot be negative, got {limit}")
        self._limit = limit
        self._spent = 0
        self._lock = threading.Lock()

    @classmethod
    def for_requests(cls, requests: int) -> RetryBudget:
        """The budget DESIGN.md gives a run of ``requests`` rows: the larger
        of 3 and a tenth of them."""
        return cls(max(3, requests // 10))

    @property
    def limit(self) -> int:
        """How many retries the run may make in all."""
        return self._limit

    @property
    def spent(self) -> int:
        """How many retries were taken so far."""
        return self._spent

    @property
    def remaining(self) -> int:
        """How many retries are left."""
        return self._limit - self._spent

    def try_spend(self) -> bool:
        """Take one retry; False when none is left."""
        with self._lock:
            if self._spent >= self._limit:
                return False
            self._spent += 1
            return True

    def __repr__(self) -> str:
        return f"RetryBudget(limit={self._limit}, spent={self._spent})"


class StopCounter:
    """Stops the batch after ``threshold`` consecutive not-sent or
    not-processed answers (thread-safe).

    Any other answer (a success, a decline, an unknown outcome) resets the
    run, so declines never stop a batch. Once reached, the stop is latched:
    every later call returns it, whatever the answer.

    Args:
        threshold: consecutive answers that stop the batch
            (``RetrySettings.stop_after_consecutive``).
        unknown_threshold: optionally also stop after this many consecutive
            ``unknown`` outcomes; off (None) unless the caller asks for it.
    """

    def __init__(self, threshold: int, *, unknown_threshold: int | None = None) -> None:
        if threshold < 1:
            raise ValueError(f"the stop threshold must be at least 1, got {threshold}")
        if unknown_threshold is not None and unknown_threshold < 1:
            raise ValueError(
                f"the unknown-outcome threshold must be at least 1, got {unknown_threshold}"
            )
        self._threshold = threshold
        self._unknown_threshold = unknown_threshold
        self._not_processed = 0
        self._unknown = 0
        self._stop: BatchStop | None = None
        self._lock = threading.Lock()

    @property
    def stop(self) -> BatchStop | None:
        """The stop, once reached."""
        return self._stop

    def record(self, outcome: Outcome) -> BatchStop | None:
        """Count one answer; return the stop when the batch must stop."""
        with self._lock:
            if self._stop is not None:
                return self._stop

            if outcome.kind in RETRYABLE_KINDS:
                self._not_processed += 1
                self._unknown = 0
            elif outcome.kind is OutcomeKind.UNKNOWN:
                self._not_processed = 0
                self._unknown += 1
            else:
                self._not_processed = 0
                self._unknown = 0

            if self._not_processed >= self._threshold:
                self._stop = _stop_unreachable(self._threshold, outcome)
            elif self._unknown_threshold and self._unknown >= self._unknown_threshold:
                self._stop = _stop_unknowns(self._unknown_threshold, outcome)
            return self._stop


def is_retryable(outcome: Outcome) -> bool:
    """Whether the outcome proves that nothing was applied."""
    return outcome.kind in RETRYABLE_KINDS


def backoff_delay(attempt: int, *, base: float, cap: float, random: Random) -> float:
    """Capped exponential backoff with full jitter, in seconds.

    The wait after attempt ``n`` is drawn uniformly from
    ``[0, min(cap, base * 2 ** (n - 1)))``: spreading retries over the whole
    interval keeps workers that failed together from retrying together.
    """
    if attempt < 1:
        raise ValueError(f"attempts are counted from 1, got {attempt}")

    # Past 2**60 the product only overflows; the cap has long applied.
    ceiling = cap if attempt > 60 else min(cap, base * 2.0 ** (attempt - 1))
    return random() * ceiling


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Read a ``Retry-After`` header: seconds, or an HTTP date (RFC 9110).

    Returns the seconds to wait from ``now`` (0 for a date in the past), or
    None when the header is absent or unreadable. Decimal seconds are
    accepted too, although the RFC asks for whole ones.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None

    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # HTTP dates are always GMT; the asctime form carries no zone at all.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    return max(0.0, (when - now).total_seconds())


def decide(
    outcome: Outcome,
    attempt: int,
    settings: RetrySettings,
    budget: RetryBudget,
    *,
    random: Random = _SYSTEM_RANDOM,
    counter: StopCounter | None = None,
) -> Decision:
    """Decide what follows attempt number ``attempt`` (from 1) of a row.

    Call it exactly once per attempt, with that attempt's outcome: the
    ``counter``, when given, counts every answer. A retry takes one unit of
    ``budget``; nothing else changes state.
    """
    stop = counter.record(outcome) if counter is not None else None
    final_state = _FINAL_STATES[outcome.kind]

    # RC17, RC44, HTTP 401/403: every further row would fail the same way.
    if outcome.stops_batch:
        return Decision(
            False, 0.0, final_state, "answered", _stop_configuration(outcome)
        )

    if not is_retryable(outcome):
        return Decision(False, 0.0, final_state, "answered", stop)

    if stop is not None:
        return Decision(False, 0.0, RowState.PENDING, "batch_stopping", stop)

    wait = outcome.retry_after_s
    if wait is not None and wait > settings.retry_after_ceiling:
        return Decision(
            False,
            0.0,
            RowState.PENDING,
            "retry_after_too_long",
            _stop_retry_after(wait, settings.retry_after_ceiling),
        )

    if attempt >= settings.max_attempts:
        return Decision(False, 0.0, RowState.PENDING, "attempts_used_up")
    if not budget.try_spend():
        return Decision(False, 0.0, RowState.PENDING, "budget_used_up")

    if wait is not None:
        return Decision(True, wait, RowState.PENDING, "retry_after")

    delay = backoff_delay(
        attempt, base=settings.backoff_base, cap=settings.backoff_cap, random=random
    )
    return Decision(True, delay, RowState.PENDING, "retry_backoff")


_CONFIGURATION_MESSAGES = {
    "key_rejected": (
        "POP rejected the server key (RC17). Check POP_SERVER_KEY or "
        "--server-key-file; the remaining rows stay pending."
    ),
    "test_merchant_needs_dummy": (
        "POP answered RC44: this server key belongs to a test merchant, which "
        "takes test requests only. Run without --live, or use the live server "
        "key; the remaining rows stay pending."
    ),
    "http_unauthorized": (
        "POP answered HTTP 401: the server key was not accepted. Check "
        "POP_SERVER_KEY or --server-key-file; the remaining rows stay pending."
    ),
    "http_forbidden": (
        "POP answered HTTP 403: access was refused (the server key, or this "
        "machine's address, is not allowed). Check the key and the merchant's "
        "settings; the remaining rows stay pending."
    ),
}


def _stop_configuration(outcome: Outcome) -> BatchStop:
    if outcome.reason == "wrong_endpoint":
        status = outcome.http_status or "404 or 405"
        message = (
            f"The endpoint answered HTTP {status} with a page that is not POP "
            "JSON, so the URL is not a POP endpoint. Check --endpoint (or "
            "POP_ENDPOINT); the row sent was not processed and stays pending "
            "with the remaining rows."
        )
    elif outcome.reason == "host_not_found":
        message = (
            f"{outcome.detail.removesuffix('; nothing was sent.')}. Check "
            "--endpoint (or POP_ENDPOINT) and this machine's DNS; nothing was "
            "sent, and the rows stay pending."
        )
    else:
        message = _CONFIGURATION_MESSAGES.get(
            outcome.reason,
            f"{outcome.detail} The batch stops; the remaining rows stay pending.",
        )
    return BatchStop(outcome.reason, message, ExitCode.CONFIGURATION)


def _stop_retry_after(wait: float, ceiling: float) -> BatchStop:
    return BatchStop(
        "retry_after_too_long",
        f"POP asked to wait {wait:g} s before sending more, longer than the "
        f"{ceiling:g} s ceiling; the remaining rows stay pending. Run the same "
        "command again later.",
        ExitCode.TRY_AGAIN_LATER,
    )


def _stop_unreachable(threshold: int, last: Outcome) -> BatchStop:
    return BatchStop(
        "too_many_not_processed",
        f"{threshold} requests in a row were not sent or not processed (last: "
        f"{last.detail.rstrip('.')}); the remaining rows stay pending. Run the "
        "same command again later.",
        ExitCode.TRY_AGAIN_LATER,
    )


def _stop_unknowns(threshold: int, last: Outcome) -> BatchStop:
    return BatchStop(
        "too_many_unknown",
        f"{threshold} requests in a row had an unknown outcome (last: "
        f"{last.detail.rstrip('.')}); the remaining rows stay pending. Check the "
        "Review rows, then run the same command again.",
        ExitCode.TRY_AGAIN_LATER,
    )
