"""The send step: a pool of workers, one rate limiter, intents before requests.

Each worker owns a PopClient (one requests.Session) and takes rows from a
shared queue. For every attempt it takes a slot from the rate limiter, has
the journal commit the row as ``in_flight`` (the intent), sends, and hands
the outcome back to the journal. The retry policy decides what follows.

The intent is committed after the slot is taken and just before the
request leaves, so that a process killed at any moment leaves in Review
only rows whose request may really have left. A slow disk can delay some
intents past their slots; a last check of the starts of the past second
then holds a request back rather than let a delayed group leave together
above the rate.

The first row goes alone, before the pool starts: when the key is rejected
or the endpoint is wrong, the batch stops after one request rather than one
per worker. A retry passes the limiter like any request, and a Retry-After
holds every worker, not only the one that was told.

All journal writes go through one recorder thread that commits them in
groups: the outcome of one row and the intent of the next usually share a
commit, so a durable journal costs about one flush per row, and less when
several workers are busy. An intent is always committed before its request
leaves; an outcome is committed before the same worker's next intent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from popbatch.client import PopClient
from popbatch.config import RunOptions, ServerKey
from popbatch.errors import ExitCode, OutputError
from popbatch.journal import Journal, RowUpdate
from popbatch.operations import Operation
from popbatch.ratelimit import RateLimiter, Sleep, sleep_or_stop
from popbatch.retrypolicy import BatchStop, Decision, RetryBudget, StopCounter, decide
from popbatch.rows import Outcome, RowRecord, RowState

logger = logging.getLogger(__name__)

_FINAL = frozenset({RowState.SUCCEEDED, RowState.FAILED, RowState.UNKNOWN})


class StopSignal:
    """Tells the workers to start no more rows; the first reason given wins.

    The CLI sets it from SIGINT and SIGTERM; a worker sets it when the retry
    policy stops the batch (a rejected key, a Retry-After beyond the ceiling,
    too many consecutive answers that say "not sent").
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self.exit_code: ExitCode | None = None
        self.message: str | None = None

    def request(self, exit_code: ExitCode, message: str) -> bool:
        """Ask the run to stop, with the exit code and the reason to report.

        Returns True when this is the first request, whose reason is kept.
        """
        with self._lock:
            first = self.exit_code is None
            if first:
                self.exit_code = exit_code
                self.message = message
        self.event.set()
        return first

    @property
    def requested(self) -> bool:
        """Whether the run was asked to stop."""
        return self.event.is_set()


class Recorder:
    """Commits row updates from every worker on one thread, in groups.

    ``commit`` waits until the update is durable (used for intents);
    ``post`` does not wait (used for outcomes: the same worker's next
    intent, queued behind it, cannot be committed before it).
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._queue: queue.SimpleQueue[tuple[RowUpdate, threading.Event | None] | None]
        self._queue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="popbatch-journal")
        self._thread.start()

    def commit(self, update: RowUpdate) -> None:
        """Record ``update`` and return once it is committed."""
        self._raise_if_failed()
        done = threading.Event()
        self._queue.put((update, done))
        done.wait()
        self._raise_if_failed()

    def post(self, update: RowUpdate) -> None:
        """Record ``update`` soon; a later commit() includes it."""
        self._raise_if_failed()
        self._queue.put((update, None))

    def close(self) -> None:
        """Commit what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, OutputError):
                raise self._error
            raise OutputError(
                f"the journal cannot be written: {self._error}"
            ) from self._error

    def _loop(self) -> None:
        closing = False
        while not closing:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            closing = None in items
            entries = [item for item in items if item is not None]
            if self._error is None and entries:
                try:
                    self._journal.apply([update for update, _ in entries])
                except BaseException as error:
                    self._error = error
            for _, done in entries:
                if done is not None:
                    done.set()


@dataclass(frozen=True, slots=True)
class _Job:
    row: RowRecord
    body: bytes
    original_order_id: str | None


class Sender:
    """Sends the planned rows of one batch with a pool of workers.

    Every worker owns one PopClient (one requests.Session); all of them
    share one rate limiter, which every attempt passes, retries included.
    A run of consecutive answers that say "not sent" or "not processed",
    or of unknown outcomes, stops the batch after
    ``RetrySettings.stop_after_consecutive`` of them.

    Args:
        batch_id: the journal's number of the batch, for the log lines.
        row_done: called from worker threads with each row's outcome once
            the row is done for this run (for progress display).
        sleep: how workers wait between retries (tests pass a fake).
    """

    def __init__(
        self,
        journal: Journal,
        operation: Operation,
        options: RunOptions,
        key: ServerKey,
        stop: StopSignal,
        *,
        batch_id: int | None = None,
        row_done: Callable[[RowRecord, Outcome | None], None] | None = None,
        sleep: Sleep = sleep_or_stop,
    ) -> None:
        self._journal = journal
        self._batch_id = batch_id
        self._operation = operation
        self._options = options
        self._key = key
        self._stop = stop
        self._row_done = row_done
        self._sleep = sleep
        self._limiter = RateLimiter(options.rate)
        threshold = options.retry.stop_after_consecutive
        self._counter = StopCounter(threshold, unknown_threshold=threshold)
        self._budget = RetryBudget(0)
        self._jobs: deque[_Job] = deque()
        self._sent = 0
        self._lock = threading.Lock()
        self._left_pending: Counter[str] = Counter()
        self._last_pending: Outcome | None = None
        self._errors: list[BaseException] = []

    @property
    def sent(self) -> int:
        """How many requests left this machine during the run."""
        return self._sent

    def send(self, rows: Sequence[RowRecord]) -> None:
        """Send every row (until stopped); outcomes go to the journal.

        Raises:
            ConfigurationError: the endpoint cannot be used (before any row).
            OutputError: the journal cannot be written.
        """
        self._budget = RetryBudget.for_requests(len(rows))
        for row in rows:
            self._jobs.append(_job(row))

        # Clients are made here, so that an unusable endpoint fails the run
        # before any intent is recorded; each is then used by one thread at
        # a time, and closed here once every thread is done.
        clients: list[PopClient] = []
        recorder: Recorder | None = None
        try:
            for _ in range(min(self._options.concurrency, len(rows))):
                clients.append(self._new_client())
            recorder = Recorder(self._journal)
            self._send_first(clients[0], recorder)
            self._run_workers(clients, recorder)
        finally:
            try:
                if recorder is not None:
                    recorder.close()
            finally:
                for client in clients:
                    client.close()
        if self._errors:
            raise self._errors[0]

    def _send_first(self, client: PopClient, recorder: Recorder) -> None:
        """Send the first row alone, before the pool starts.

        A rejected key or a wrong endpoint then stops the batch after one
        request, rather than after one request per worker (which, for a
        wrong endpoint, would put a row per worker in Review).
        """
        job = self._take()
        if job is not None:
            self._send_row(client, recorder, job)

    def _run_workers(self, clients: list[PopClient], recorder: Recorder) -> None:
        workers = [
            threading.Thread(
                target=self._work,
                args=(client, recorder),
                name=f"popbatch-worker-{n}",
            )
            for n, client in enumerate(clients)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def pending_note(self) -> str | None:
        """A line on the rows this run left pending after their retries, or None.

        Rows left pending because the batch stopped are explained by the
        stop's own message instead.
        """
        count = sum(self._left_pending.values())
        last = self._last_pending
        if not count or last is None:
            return None

        attempts = self._options.retry.max_attempts
        used_up = self._left_pending["attempts_used_up"]
        no_budget = self._left_pending["budget_used_up"]
        retries = f"this run's {self._budget.limit} retries were used up"
        if not no_budget:
            each = " each" if count > 1 else ""
            why = f" after {attempts} attempts{each}"
        elif not used_up:
            why = f": {retries}"
        else:
            why = (
                f": {used_up:,} after {attempts} attempts, {no_budget:,} because "
                f"{retries}"
            )
        rows = "1 row stays" if count == 1 else f"{count:,} rows stay"
        return (
            f"{rows} pending{why} (last answer: {last.detail.rstrip('.')}). Run the "
            f"same command again later to send {'it' if count == 1 else 'them'}."
        )

    def _new_client(self) -> PopClient:
        return PopClient(
            endpoint=self._options.endpoint,
            key=self._key,
            timeouts=self._options.timeouts,
        )

    def _work(self, client: PopClient, recorder: Recorder) -> None:
        try:
            job = self._take()
            while job is not None:
                self._send_row(client, recorder, job)
                job = self._take()
        except BaseException as error:
            self._errors.append(error)
            self._stop.request(ExitCode.CANNOT_WRITE, str(error))

    def _take(self) -> _Job | None:
        """The next row from the queue, unless the run was asked to stop."""
        if self._stop.requested:
            return None
        try:
            return self._jobs.popleft()
        except IndexError:
            return None

    def _send_row(self, client: PopClient, recorder: Recorder, job: _Job) -> None:
        """Send one row, retrying only what the retry policy allows."""
        row = job.row
        assert row.id is not None
        assert row.order_id is not None
        attempts = row.attempts
        for attempt in range(1, self._options.retry.max_attempts + 1):
            if not self._limiter.acquire(self._stop.event):
                return
            attempts += 1
            # The intent is durable before the request leaves: a crash from
            # here on leaves the row in_flight, which a resumed run reviews.
            recorder.commit(RowUpdate(row.id, RowState.IN_FLIGHT, attempts=attempts))
            if not self._limiter.admit(self._stop.event):
                # Stopped while held back: the request never left.
                recorder.post(
                    RowUpdate(row.id, RowState.PENDING, attempts=attempts - 1)
                )
                return
            with self._lock:
                self._sent += 1
            outcome = client.send(
                self._operation,
                job.body,
                order_id=row.order_id,
                original_order_id=job.original_order_id,
            )
            decision = decide(
                outcome,
                attempt,
                self._options.retry,
                self._budget,
                counter=self._counter,
            )
            self._record(recorder, row, attempts, outcome, decision)

            if decision.retry and not self._stop.requested:
                self._wait_to_retry(row, outcome, decision, attempts)
                continue
            self._finish(row, outcome, decision, attempts)
            return

    def _record(
        self,
        recorder: Recorder,
        row: RowRecord,
        attempts: int,
        outcome: Outcome,
        decision: Decision,
    ) -> None:
        """Hand one attempt's outcome to the journal; stop the batch if told to."""
        assert row.id is not None
        final = decision.state in _FINAL
        recorder.post(
            RowUpdate(
                row.id,
                decision.state,
                attempts=attempts,
                outcome=outcome,
                first_sent_at=outcome.sent_at,
                finished_at=outcome.received_at if final else None,
            )
        )
        if decision.stop is not None:
            self._request_stop(decision.stop)

    def _finish(
        self, row: RowRecord, outcome: Outcome, decision: Decision, attempts: int
    ) -> None:
        """Log a row that is done for this run, and count why it stays pending."""
        _log_outcome(
            self._batch_id, row, self._operation, outcome, decision.state, attempts
        )
        if decision.reason in ("attempts_used_up", "budget_used_up"):
            with self._lock:
                self._left_pending[decision.reason] += 1
                self._last_pending = outcome
        self._report(row, decision.state, attempts, outcome)

    def _wait_to_retry(
        self, row: RowRecord, outcome: Outcome, decision: Decision, attempts: int
    ) -> None:
        """Log the retry, hold everyone on a Retry-After, and wait this row's turn."""
        logger.warning(
            "%s retry_in=%.2fs wait=%s",
            _row_fields(self._batch_id, row, self._operation, outcome, attempts),
            decision.wait_s,
            decision.reason,
        )
        if outcome.retry_after_s is not None:
            # POP asked everyone to wait, not only this row.
            self._limiter.pause(outcome.retry_after_s)
        self._sleep(decision.wait_s, self._stop.event)

    def _request_stop(self, stop: BatchStop) -> None:
        if self._stop.request(stop.exit_code, stop.message):
            # INFO, not WARNING: the command line prints the message itself
            # at the end, and a second copy on stderr says nothing new.
            logger.info(
                "batch stops reason=%s exit=%d: %s",
                stop.reason,
                stop.exit_code,
                stop.message,
            )

    def _report(
        self, row: RowRecord, state: RowState, attempts: int, outcome: Outcome
    ) -> None:
        if self._row_done is None:
            return
        row.state = state
        row.attempts = attempts
        row.outcome = outcome
        self._row_done(row, outcome)


def _job(row: RowRecord) -> _Job:
    assert row.request is not None
    original = None
    if '"original_order_id"' in row.request:
        original = json.loads(row.request).get("original_order_id")
    return _Job(row, row.request.encode("utf-8"), original)


def _ms(outcome: Outcome) -> str:
    return "-" if outcome.elapsed_ms is None else str(outcome.elapsed_ms)


def _log_outcome(
    batch_id: int | None,
    row: RowRecord,
    operation: Operation,
    outcome: Outcome,
    state: RowState,
    attempt: int,
) -> None:
    """STYLE.md's one key=value line per row outcome, at INFO."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "%s", _row_fields(batch_id, row, operation, outcome, attempt, state)
        )


def _row_fields(
    batch_id: int | None,
    row: RowRecord,
    operation: Operation,
    outcome: Outcome,
    attempt: int,
    state: RowState | None = None,
) -> str:
    """One attempt of a row as key=value pairs, for the outcome and retry lines.

    ``amount`` is the request's, ``-`` when it has none (a full refund);
    ``outcome`` is the row's state when it is done, else the attempt's kind.
    """
    return (
        f"batch={'-' if batch_id is None else batch_id} row={row.row} "
        f"order_id={row.order_id} op={operation.name} "
        f"amount={'-' if row.amount is None else row.amount} "
        f"outcome={outcome.kind if state is None else state} "
        f"code={outcome.result_code or '-'} attempt={attempt} ms={_ms(outcome)} "
        f"reason={outcome.reason}"
    )
