"""Tests for popbatch.retrypolicy: DESIGN.md's retry table, row by row.

Nothing here sleeps or draws real random numbers: ``random`` is a constant
and waits are only returned, never taken.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from popbatch.config import RetrySettings
from popbatch.errors import ExitCode
from popbatch.retrypolicy import (
    BatchStop,
    Decision,
    RetryBudget,
    StopCounter,
    backoff_delay,
    decide,
    parse_retry_after,
)
from popbatch.rows import Outcome, OutcomeKind, RowState

SETTINGS = (
    RetrySettings()
)  # 3 attempts, base 0.5 s, cap 30 s, ceiling 60 s, stop after 10
NOW = datetime(2026, 12, 3, 9, 30, 0, tzinfo=UTC)


def half() -> float:
    """A random source that always draws the middle of the range."""
    return 0.5


def outcome(
    kind: OutcomeKind,
    reason: str = "test",
    *,
    retry_after_s: float | None = None,
    stops_batch: bool = False,
) -> Outcome:
    """An outcome of ``kind`` with a readable detail."""
    return Outcome(
        kind=kind,
        reason=reason,
        detail=f"{reason} happened",
        retry_after_s=retry_after_s,
        stops_batch=stops_batch,
    )


NOT_SENT = outcome(OutcomeKind.NOT_SENT, "connect_failed")
RATE_LIMITED = outcome(OutcomeKind.NOT_PROCESSED, "rate_limited", retry_after_s=7.0)
DECLINED = outcome(OutcomeKind.FAILED, "declined")
SUCCEEDED = outcome(OutcomeKind.SUCCEEDED, "succeeded")
UNKNOWN = outcome(OutcomeKind.UNKNOWN, "read_timeout")


def decide_now(
    answer: Outcome, attempt: int = 1, budget: RetryBudget | None = None
) -> Decision:
    """Decide with the default settings, a roomy budget and middle-of-range jitter."""
    return decide(answer, attempt, SETTINGS, budget or RetryBudget(100), random=half)


# -- backoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 0.25), (2, 0.5), (3, 1.0), (7, 15.0), (8, 15.0)]
)
def test_backoff_doubles_per_attempt_up_to_the_cap(
    attempt: int, expected: float
) -> None:
    """Half of min(cap, base * 2**(attempt-1)) with a random draw of 0.5."""
    delay = backoff_delay(attempt, base=0.5, cap=30.0, random=half)

    assert delay == expected


def test_backoff_uses_the_full_jitter_range() -> None:
    """Full jitter: a draw of 0 waits nothing, a draw near 1 waits almost the cap."""
    low = backoff_delay(3, base=0.5, cap=30.0, random=lambda: 0.0)
    high = backoff_delay(3, base=0.5, cap=30.0, random=lambda: 0.999)

    assert low == 0.0
    assert high == pytest.approx(1.998)


def test_backoff_for_a_huge_attempt_number_is_the_cap() -> None:
    """No overflow, however many attempts."""
    delay = backoff_delay(5000, base=0.5, cap=30.0, random=lambda: 1.0)

    assert delay == 30.0


def test_backoff_counts_attempts_from_one() -> None:
    """Attempt 0 is a caller's mistake."""
    with pytest.raises(ValueError, match="attempts are counted from 1, got 0"):
        backoff_delay(0, base=0.5, cap=30.0, random=half)


# -- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Thu, 03 Dec 2026 09:31:30 GMT", 90.0),
        ("Thursday, 03-Dec-26 09:31:30 GMT", 90.0),
        ("Thu Dec  3 09:31:30 2026", 90.0),
        ("Thu, 03 Dec 2026 18:31:30 +0900", 90.0),
        ("Thu, 03 Dec 2026 09:00:00 GMT", 0.0),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str, expected: float) -> None:
    """All three HTTP date forms count from now; a past date means no wait."""
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "5 s", "Thu, 45 Dec 2026"])
def test_retry_after_that_cannot_be_read_is_none(value: str | None) -> None:
    """An unreadable header leaves the wait to the backoff."""
    assert parse_retry_after(value, NOW) is None


# -- the table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "state"),
    [
        (SUCCEEDED, RowState.SUCCEEDED),
        (DECLINED, RowState.FAILED),
        (outcome(OutcomeKind.FAILED, "invalid_request"), RowState.FAILED),
        (UNKNOWN, RowState.UNKNOWN),
        (outcome(OutcomeKind.UNKNOWN, "connection_dropped"), RowState.UNKNOWN),
        (outcome(OutcomeKind.UNKNOWN, "not_pop_json"), RowState.UNKNOWN),
        (outcome(OutcomeKind.UNKNOWN, "gateway_pending"), RowState.UNKNOWN),
    ],
)
def test_answers_and_unknown_outcomes_are_never_retried(
    answer: Outcome, state: RowState
) -> None:
    """Only not-sent and not-processed outcomes may be sent again."""
    budget = RetryBudget(100)

    decision = decide_now(answer, budget=budget)

    assert decision == Decision(False, 0.0, state, "answered")
    assert budget.spent == 0


@pytest.mark.parametrize(
    "answer",
    [
        NOT_SENT,
        outcome(OutcomeKind.NOT_SENT, "dns_failed"),
        outcome(OutcomeKind.NOT_SENT, "connect_timeout"),
        outcome(OutcomeKind.NOT_PROCESSED, "rate_limited"),
        outcome(OutcomeKind.NOT_PROCESSED, "pop_error_before_gateway"),
    ],
)
def test_not_sent_and_not_processed_are_retried_with_backoff(answer: Outcome) -> None:
    """Without Retry-After the wait is the jittered backoff; the row stays pending."""
    budget = RetryBudget(100)

    decision = decide_now(answer, attempt=2, budget=budget)

    assert decision == Decision(True, 0.5, RowState.PENDING, "retry_backoff")
    assert budget.spent == 1


def test_retry_after_is_the_wait() -> None:
    """POP's Retry-After is honoured as given."""
    decision = decide_now(RATE_LIMITED)

    assert decision == Decision(True, 7.0, RowState.PENDING, "retry_after")


def test_retry_after_at_the_ceiling_is_still_waited() -> None:
    """A wait equal to the ceiling is not beyond it."""
    answer = outcome(OutcomeKind.NOT_PROCESSED, retry_after_s=60.0)

    decision = decide_now(answer)

    assert decision.retry is True
    assert decision.wait_s == 60.0


def test_retry_after_beyond_the_ceiling_stops_the_batch() -> None:
    """Issue 5: a wait beyond the ceiling stops the batch, rest pending, exit 75."""
    answer = outcome(OutcomeKind.NOT_PROCESSED, "rate_limited", retry_after_s=120.0)

    decision = decide_now(answer)

    assert decision.retry is False
    assert decision.pending is True
    assert decision.reason == "retry_after_too_long"
    assert decision.stop == BatchStop(
        "retry_after_too_long",
        "POP asked to wait 120 s before sending more, longer than the 60 s "
        "ceiling; the remaining rows stay pending. Run the same command again later.",
        ExitCode.TRY_AGAIN_LATER,
    )


def test_row_stays_pending_after_its_last_attempt() -> None:
    """Three attempts per row; the third failure leaves the row for the next run."""
    budget = RetryBudget(100)

    decision = decide_now(NOT_SENT, attempt=3, budget=budget)

    assert decision == Decision(False, 0.0, RowState.PENDING, "attempts_used_up")
    assert decision.pending is True
    assert budget.spent == 0


def test_row_stays_pending_when_the_run_budget_is_spent() -> None:
    """The run-wide budget caps retries across all rows."""
    budget = RetryBudget(1)

    first = decide_now(NOT_SENT, budget=budget)
    second = decide_now(NOT_SENT, budget=budget)

    assert first.retry is True
    assert second == Decision(False, 0.0, RowState.PENDING, "budget_used_up")
    assert second.stop is None


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            "key_rejected",
            "POP rejected the server key (RC17). Check POP_SERVER_KEY or "
            "--server-key-file; the remaining rows stay pending.",
        ),
        (
            "test_merchant_needs_dummy",
            "POP answered RC44: this server key belongs to a test merchant, which "
            "takes test requests only. Run without --live, or use the live server "
            "key; the remaining rows stay pending.",
        ),
        (
            "http_unauthorized",
            "POP answered HTTP 401: the server key was not accepted. Check "
            "POP_SERVER_KEY or --server-key-file; the remaining rows stay pending.",
        ),
        (
            "http_forbidden",
            "POP answered HTTP 403: access was refused (the server key, or this "
            "machine's address, is not allowed). Check the key and the merchant's "
            "settings; the remaining rows stay pending.",
        ),
    ],
)
def test_configuration_failures_stop_the_batch_with_78(
    reason: str, message: str
) -> None:
    """RC17, RC44, 401 and 403: the row fails and the batch stops, saying what to fix."""
    answer = outcome(OutcomeKind.FAILED, reason, stops_batch=True)

    decision = decide_now(answer)

    assert decision.retry is False
    assert decision.state is RowState.FAILED
    assert decision.stop == BatchStop(reason, message, ExitCode.CONFIGURATION)


def test_wrong_endpoint_leaves_the_row_pending_and_stops_with_78() -> None:
    """Breaks review: a 404/405 page never reached POP, so the row stays pending."""
    answer = Outcome(
        kind=OutcomeKind.NOT_PROCESSED,
        reason="wrong_endpoint",
        detail="HTTP 404 from http://x/pop/v1/card-capture ...",
        http_status=404,
        stops_batch=True,
    )

    decision = decide_now(answer)

    assert decision.retry is False
    assert decision.state is RowState.PENDING
    assert decision.stop == BatchStop(
        "wrong_endpoint",
        "The endpoint answered HTTP 404 with a page that is not POP JSON, so the URL "
        "is not a POP endpoint. Check --endpoint (or POP_ENDPOINT); the row sent was "
        "not processed and stays pending with the remaining rows.",
        ExitCode.CONFIGURATION,
    )


def test_decision_never_mentions_the_key() -> None:
    """Stop messages name the setting to fix, never its value."""
    answer = outcome(OutcomeKind.FAILED, "key_rejected", stops_batch=True)

    decision = decide_now(answer)

    assert decision.stop is not None
    assert "POP_SERVER_KEY" in decision.stop.message


# -- the run-wide budget ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "limit"),
    [(0, 3), (1, 3), (39, 3), (40, 4), (1234, 123), (100_000, 10_000)],
)
def test_budget_is_the_larger_of_3_and_a_tenth_of_the_requests(
    requests: int, limit: int
) -> None:
    """DESIGN.md: per run, the larger of 3 and a tenth of the requests."""
    budget = RetryBudget.for_requests(requests)

    assert budget.limit == limit
    assert budget.remaining == limit


def test_budget_is_exact_under_many_threads() -> None:
    """Eight threads racing for retries get exactly the budget, no more."""
    budget = RetryBudget(5000)
    granted: list[int] = []

    def worker() -> None:
        granted.append(sum(budget.try_spend() for _ in range(1000)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(granted) == 5000
    assert budget.remaining == 0
    assert repr(budget) == "RetryBudget(limit=5000, spent=5000)"


def test_budget_cannot_be_negative() -> None:
    """A negative budget is a caller's mistake."""
    with pytest.raises(ValueError, match="a retry budget cannot be negative, got -1"):
        RetryBudget(-1)


# -- consecutive not-sent and not-processed answers ---------------------------------------


def test_ten_consecutive_not_sent_answers_stop_the_batch() -> None:
    """A gateway that cannot be reached leaves the rows pending, exit 75."""
    counter = StopCounter(10)

    stops = [counter.record(NOT_SENT) for _ in range(10)]

    assert stops[:9] == [None] * 9
    assert stops[9] == BatchStop(
        "too_many_not_processed",
        "10 requests in a row were not sent or not processed (last: connect_failed "
        "happened); the remaining rows stay pending. Run the same command again later.",
        ExitCode.TRY_AGAIN_LATER,
    )


def test_stop_message_quotes_the_last_detail_without_a_second_full_stop() -> None:
    """The client's details end with a full stop; inside brackets it is dropped."""
    counter = StopCounter(2)
    refused = Outcome(
        kind=OutcomeKind.NOT_SENT,
        reason="connect_failed",
        detail="could not connect to pop:443 (connection refused); nothing was sent.",
    )

    counter.record(refused)
    stop = counter.record(refused)

    assert stop is not None
    assert stop.message == (
        "2 requests in a row were not sent or not processed (last: could not connect "
        "to pop:443 (connection refused); nothing was sent); the remaining rows stay "
        "pending. Run the same command again later."
    )


@pytest.mark.parametrize("reset", [SUCCEEDED, DECLINED, UNKNOWN])
def test_any_other_answer_resets_the_count(reset: Outcome) -> None:
    """Nine failures, one other answer, nine failures: no stop."""
    counter = StopCounter(10)

    stops = [counter.record(NOT_SENT) for _ in range(9)]
    stops.append(counter.record(reset))
    stops += [counter.record(RATE_LIMITED) for _ in range(9)]

    assert stops == [None] * 19
    assert counter.stop is None


def test_declines_never_stop_a_batch() -> None:
    """A thousand declines in a row are answers, not a failing gateway."""
    counter = StopCounter(10)

    stops = {counter.record(DECLINED) for _ in range(1000)}

    assert stops == {None}


def test_stop_is_latched_once_reached() -> None:
    """A success after the stop does not undo it."""
    counter = StopCounter(2)
    counter.record(NOT_SENT)
    first = counter.record(NOT_SENT)

    later = counter.record(SUCCEEDED)

    assert first is not None
    assert later is first


def test_consecutive_unknowns_can_stop_the_batch_when_asked() -> None:
    """Optional: a gateway that times out on every request would fill Review."""
    counter = StopCounter(10, unknown_threshold=3)

    stops = [counter.record(UNKNOWN) for _ in range(3)]

    assert stops[:2] == [None, None]
    assert stops[2] == BatchStop(
        "too_many_unknown",
        "3 requests in a row had an unknown outcome (last: read_timeout happened); "
        "the remaining rows stay pending. Check the Review rows, then run the same "
        "command again.",
        ExitCode.TRY_AGAIN_LATER,
    )


def test_unknowns_do_not_stop_the_batch_by_default() -> None:
    """DESIGN.md counts only not-sent and not-processed answers."""
    counter = StopCounter(10)

    stops = {counter.record(UNKNOWN) for _ in range(100)}

    assert stops == {None}


@pytest.mark.parametrize(
    ("threshold", "unknown_threshold", "message"),
    [
        (0, None, "the stop threshold must be at least 1, got 0"),
        (10, 0, "the unknown-outcome threshold must be at least 1, got 0"),
    ],
)
def test_thresholds_below_one_are_refused(
    threshold: int, unknown_threshold: int | None, message: str
) -> None:
    """A threshold of 0 would stop every batch at once."""
    with pytest.raises(ValueError, match=message):
        StopCounter(threshold, unknown_threshold=unknown_threshold)


def test_decide_with_a_counter_stops_instead_of_retrying() -> None:
    """The answer that reaches the threshold is not retried; its row stays pending."""
    counter = StopCounter(3)
    budget = RetryBudget(100)

    decisions = [
        decide(NOT_SENT, 1, SETTINGS, budget, random=half, counter=counter)
        for _ in range(3)
    ]

    assert [d.retry for d in decisions] == [True, True, False]
    last = decisions[2]
    assert last.reason == "batch_stopping"
    assert last.pending is True
    assert last.stop is not None
    assert last.stop.reason == "too_many_not_processed"
    assert budget.spent == 2


def test_decide_with_a_stopped_counter_still_records_final_answers() -> None:
    """An in-flight success after the stop is still a success."""
    counter = StopCounter(1)
    decide(NOT_SENT, 1, SETTINGS, RetryBudget(100), random=half, counter=counter)

    decision = decide(SUCCEEDED, 1, SETTINGS, RetryBudget(100), counter=counter)

    assert decision.state is RowState.SUCCEEDED
    assert decision.retry is False
    assert decision.stop is counter.stop
