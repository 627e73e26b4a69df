"""The send step: a pool of workers, one rate limiter, intents before requests.

Each worker owns a PopClient (one requests.Session) and takes rows from a
shared queue. For every attempt it waits for the limiter, has the journal
commit the row as ``in_flight`` (the intent), sends, and hands the outcome
back to the journal. The retry policy decides what follows.

All journal writes go through one recorder thread that commits them in
groups: the outcome of one row and the intent of the next usually share a
commit, so a durable journal costs about one fsync per row, and less when
several workers are busy. An intent is always committed before its request
leaves; an outcome is committed before the worker's next intent.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from popbatch.client import PopClient
from popbatch.config import RunOptions, ServerKey
from popbatch.errors import ExitCode, OutputError
from popbatch.journal import Journal, RowUpdate
from popbatch.operations import Operation
from popbatch.ratelimit import RateLimiter, Sleep, sleep_or_stop
from popbatch.retrypolicy import RetryBudget, StopCounter, decide
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

    def request(self, exit_code: ExitCode, message: str) -> None:
        """Ask the run to stop, with the exit code and the reason to report."""
        with self._lock:
            if self.exit_code is None:
                self.exit_code = exit_code
                self.message = message
        self.event.set()

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

    Args:
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
        row_done: Callable[[RowRecord, Outcome | None], None] | None = None,
        sleep: Sleep = sleep_or_stop,
    ) -> None:
        self._journal = journal
        self._operation = operation
        self._options = options
        self._key = key
        self._stop = stop
        self._row_done = row_done
        self._sleep = sleep
        self._limiter = RateLimiter(options.rate)
        self._counter = StopCounter(options.retry.stop_after_consecutive)
        self._budget = RetryBudget(0)
        self._jobs: deque[_Job] = deque()
        self._sent = 0
        self._sent_lock = threading.Lock()
        self._errors: list[BaseException] = []

    @property
    def sent(self) -> int:
        """How many requests left this machine during the run."""
        return self._sent

    def send(self, rows: Sequence[RowRecord]) -> None:
        """Send every row (until stopped); outcomes go to the journal."""
        self._budget = RetryBudget.for_requests(len(rows))
        for row in rows:
            self._jobs.append(_job(row))

        recorder = Recorder(self._journal)
        workers = [
            threading.Thread(
                target=self._work, args=(recorder,), name=f"popbatch-worker-{n}"
            )
            for n in range(min(self._options.concurrency, len(rows)))
        ]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        finally:
            recorder.close()
        if self._errors:
            raise self._errors[0]

    def _work(self, recorder: Recorder) -> None:
        client = PopClient(
            endpoint=self._options.endpoint,
            key=self._key,
            timeouts=self._options.timeouts,
        )
        try:
            while not self._stop.requested:
                try:
                    job = self._jobs.popleft()
                except IndexError:
                    return
                self._send_row(client, recorder, job)
        except BaseException as error:
            self._errors.append(error)
            self._stop.request(ExitCode.CANNOT_WRITE, str(error))
        finally:
            client.close()

    def _send_row(self, client: PopClient, recorder: Recorder, job: _Job) -> None:
        row = job.row
        assert row.id is not None
        assert row.order_id is not None
        attempts = row.attempts
        first_sent_at = row.first_sent_at
        for attempt in range(1, self._options.retry.max_attempts + 1):
            if not self._limiter.acquire(self._stop.event):
                return
            attempts += 1
            first_sent_at = first_sent_at or datetime.now().astimezone()
            recorder.commit(
                RowUpdate(
                    row.id,
                    RowState.IN_FLIGHT,
                    attempts=attempts,
                    first_sent_at=first_sent_at,
                )
            )
            with self._sent_lock:
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
            final = decision.state in _FINAL
            recorder.post(
                RowUpdate(
                    row.id,
                    decision.state,
                    attempts=attempts,
                    outcome=outcome,
                    finished_at=outcome.received_at if final else None,
                )
            )
            _log_outcome(row, self._operation, outcome, decision.state, attempts)
            if decision.stop is not None:
                self._stop.request(decision.stop.exit_code, decision.stop.message)
            if not decision.retry or self._stop.requested:
                self._report(row, decision.state, attempts, outcome)
                return

            logger.warning(
                "row=%d order_id=%s retry_in=%.2fs reason=%s attempt=%d",
                row.row,
                row.order_id,
                decision.wait_s,
                decision.reason,
                attempt,
            )
            if outcome.retry_after_s is not None:
                # POP asked everyone to wait, not only this row.
                self._limiter.pause(outcome.retry_after_s)
            self._sleep(decision.wait_s, self._stop.event)

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


def _log_outcome(
    row: RowRecord,
    operation: Operation,
    outcome: Outcome,
    state: RowState,
    attempt: int,
) -> None:
    logger.info(
        "row=%d order_id=%s op=%s outcome=%s code=%s reason=%s attempt=%d ms=%s",
        row.row,
        row.order_id,
        operation.name,
        state,
        outcome.result_code or "-",
        outcome.reason,
        attempt,
        outcome.elapsed_ms if outcome.elapsed_ms is not None else "-",
    )
