"""Tests for popbatch.ratelimit: starts per one-second window and the long-run rate.

Time is fake. Single-thread tests use a clock that the fake sleep advances.
Multi-thread tests use :class:`FakeTime`, which moves the clock only when
every worker is asleep (in the limiter or in a simulated request), so
threads interleave as they would in real time, but exactly and at once.
One short test uses real threads and real time, with no timing assertions.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence

import pytest

from popbatch.ratelimit import RateLimiter, sleep_or_stop

EPSILON = 1e-9  # float rounding of the fake clock, far below any real effect


class SteppingClock:
    """A clock moved only by its own sleep, for one thread."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float, stop: threading.Event | None) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeTime:
    """A shared fake clock for ``workers`` threads.

    A thread that sleeps registers its wake-up time; when no thread is
    running, the clock jumps to the earliest wake-up and those sleepers run.
    """

    def __init__(self, workers: int, *, start: float = 0.0) -> None:
        self.now = start
        self._running = workers
        self._wakeups: list[float] = []
        self._cond = threading.Condition()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> None:
        if seconds <= 0:
            return
        with self._cond:
            wake = self.now + seconds
            heapq.heappush(self._wakeups, wake)
            self._running -= 1
            self._advance()
            while self.now < wake:
                self._cond.wait()

    def done(self) -> None:
        """A worker has finished for good."""
        with self._cond:
            self._running -= 1
            self._advance()

    def _advance(self) -> None:
        if self._running or not self._wakeups:
            return
        self.now = self._wakeups[0]
        while self._wakeups and self._wakeups[0] <= self.now:
            heapq.heappop(self._wakeups)
            self._running += 1
        self._cond.notify_all()


def most_in_one_second(starts: Sequence[float]) -> int:
    """The largest number of starts inside any half-open one-second window."""
    ordered = sorted(starts)
    best = 0
    first = 0
    for last, time in enumerate(ordered):
        while ordered[first] <= time - 1.0 + EPSILON:
            first += 1
        best = max(best, last - first + 1)
    return best


def achieved_rate(starts: Sequence[float]) -> float:
    """Starts per second between the first and the last start."""
    return (len(starts) - 1) / (max(starts) - min(starts))


def run_workers(
    limiter_for: Callable[[FakeTime], RateLimiter],
    *,
    workers: int,
    starts: int,
    latency: float,
) -> list[float]:
    """Run ``workers`` threads through one limiter until ``starts`` requests
    started, each request taking ``latency`` fake seconds; return start times."""
    fake = FakeTime(workers)
    limiter = limiter_for(fake)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            while True:
                with lock:
                    if len(times) >= starts:
                        return
                assert limiter.acquire()
                with lock:
                    times.append(fake.clock())
                fake.sleep(latency)
        finally:
            fake.done()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    return times


# -- one thread -----------------------------------------------------------------------------


def test_starts_are_one_interval_apart() -> None:
    """At 5 per second, starts come every 0.2 s, the first at once."""
    clock = SteppingClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)

    starts = []
    for _ in range(6):
        assert limiter.acquire()
        starts.append(clock())

    assert [round(t - 1000.0, 9) for t in starts] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert most_in_one_second(starts) == 5


def test_idle_time_is_not_saved_up() -> None:
    """After a long pause, the next two starts are still an interval apart."""
    clock = SteppingClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 10.0

    limiter.acquire()
    after_idle = clock()
    limiter.acquire()

    assert after_idle == 1010.0
    assert clock() == 1010.25


def test_a_caller_slower_than_the_rate_never_waits() -> None:
    """When each request takes longer than the interval, the limiter adds nothing."""
    clock = SteppingClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)

    for _ in range(10):
        limiter.acquire()
        clock.now += 0.3

    assert clock.sleeps == []


def test_burst_lets_that_many_go_at_once_after_idle() -> None:
    """burst=3: three starts at once, then one interval apart."""
    clock = SteppingClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep, burst=3)

    starts = []
    for _ in range(5):
        limiter.acquire()
        starts.append(clock() - 1000.0)

    assert starts == [0.0, 0.0, 0.0, 0.5, 1.0]


def test_rate_zero_never_waits() -> None:
    """--rate 0 means no limit: acquire returns at once, every time."""
    clock = SteppingClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)

    granted = [limiter.acquire() for _ in range(1000)]

    assert all(granted)
    assert clock.sleeps == []


def test_acquire_returns_false_at_once_when_stopped() -> None:
    """A set stop event starts nothing and waits for nothing."""
    clock = SteppingClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    stop = threading.Event()
    stop.set()

    granted = limiter.acquire(stop)

    assert granted is False
    assert clock.sleeps == []


def test_acquire_returns_false_when_stopped_while_waiting() -> None:
    """A stop during the wait ends it: the caller starts nothing."""
    clock = SteppingClock()
    stop = threading.Event()

    def sleep(seconds: float, event: threading.Event | None) -> None:
        clock.sleep(seconds / 2, event)
        stop.set()

    limiter = RateLimiter(1, clock=clock, sleep=sleep)
    limiter.acquire(stop)

    granted = limiter.acquire(stop)

    assert granted is False
    assert clock() == 1000.5


def test_pause_holds_every_start_until_it_ends() -> None:
    """After pause(3) nothing starts for 3 s; then starts are spaced again."""
    clock = SteppingClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)
    limiter.acquire()

    limiter.pause(3.0)
    starts = []
    for _ in range(3):
        limiter.acquire()
        starts.append(round(clock() - 1000.0, 9))

    assert starts == [3.0, 3.2, 3.4]


def test_pause_moves_a_caller_that_was_already_waiting() -> None:
    """A caller asleep until its time when the pause began waits for the pause."""
    clock = SteppingClock()
    paused: list[bool] = []

    def sleep(seconds: float, stop: threading.Event | None) -> None:
        if not paused:
            paused.append(True)
            limiter.pause(5.0)
        clock.sleep(seconds, stop)

    limiter = RateLimiter(5, clock=clock, sleep=sleep)
    limiter.acquire()

    limiter.acquire()

    assert clock() == 1005.0


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (-1.0, 1, "the rate must be 0 (no limit) or more, got -1.0"),
        (float("inf"), 1, "the rate must be 0 (no limit) or more, got inf"),
        (5.0, 0, "the burst must be at least 1, got 0"),
    ],
)
def test_impossible_settings_are_refused(rate: float, burst: int, message: str) -> None:
    """A negative or infinite rate, or a burst below 1, is a caller's mistake."""
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        RateLimiter(rate, burst=burst)


# -- many threads on fake time ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "workers", "latency"),
    [(5.0, 4, 0.001), (40.0, 8, 0.1), (200.0, 8, 0.0), (3.0, 1, 0.0), (7.5, 6, 0.5)],
)
def test_no_one_second_window_exceeds_the_rate(
    rate: float, workers: int, latency: float
) -> None:
    """Issue 5: over any one-second window, starts never exceed the rate."""
    times = run_workers(
        lambda fake: RateLimiter(rate, clock=fake.clock, sleep=fake.sleep),
        workers=workers,
        starts=int(rate * 30),
        latency=latency,
    )

    assert most_in_one_second(times) <= -(-rate // 1)  # the rate, rounded up
    assert achieved_rate(times) == pytest.approx(rate, rel=1e-6)


def test_late_wake_ups_keep_the_long_run_rate() -> None:
    """Every sleep overshooting by 3 ms costs no rate: the schedule does not drift."""
    rate = 50.0

    def limiter_for(fake: FakeTime) -> RateLimiter:
        def late_sleep(seconds: float, stop: threading.Event | None) -> None:
            fake.sleep(seconds + 0.003, stop)

        return RateLimiter(rate, clock=fake.clock, sleep=late_sleep)

    times = run_workers(limiter_for, workers=8, starts=1500, latency=0.02)

    assert achieved_rate(times) == pytest.approx(rate, rel=0.02)
    assert most_in_one_second(times) <= rate + 1


def test_slow_server_caps_the_rate_below_the_limit() -> None:
    """With 2 workers and 1 s requests, 10 per second cannot be reached: 2 is."""
    times = run_workers(
        lambda fake: RateLimiter(10, clock=fake.clock, sleep=fake.sleep),
        workers=2,
        starts=40,
        latency=1.0,
    )

    assert achieved_rate(times) == pytest.approx(2.0, rel=0.06)
    assert most_in_one_second(times) <= 10


# -- real threads, real time -----------------------------------------------------------------


def test_real_threads_all_get_their_starts() -> None:
    """Four real threads share a fast limiter; every acquire is granted."""
    limiter = RateLimiter(500)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            result = limiter.acquire()
            with lock:
                granted.append(result)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert granted == [True] * 40


def test_real_stop_wakes_a_waiting_thread() -> None:
    """A thread waiting for a slot 100 s away returns False when stop is set."""
    limiter = RateLimiter(0.01)
    stop = threading.Event()
    limiter.acquire(stop)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(limiter.acquire(stop)))
    waiter.start()

    stop.set()
    waiter.join(timeout=10)

    assert not waiter.is_alive()
    assert result == [False]


def test_default_sleep_returns_early_when_stopped() -> None:
    """sleep_or_stop waits on the event, not for the whole time."""
    stop = threading.Event()
    stop.set()

    sleep_or_stop(100.0, stop)

    assert stop.is_set()


# --- admit: the last check before a request leaves ------------------------------


def test_starts_delayed_past_their_slots_do_not_leave_together_above_the_rate() -> None:
    """Regression (issue 8): a slow journal write made delayed starts bunch up."""
    clock = SteppingClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)
    # Four slots taken on time, whose requests a disk stall holds back...
    for _ in range(4):
        limiter.acquire()
    starts = []
    for _ in range(4):
        assert limiter.admit()
        starts.append(clock.now)

    # ...while the next slots keep coming on schedule.
    for _ in range(5):
        limiter.acquire()
        assert limiter.admit()
        starts.append(clock.now)

    assert most_in_one_second(starts) <= 6


def test_admit_lets_a_start_through_at_once_when_the_past_second_is_quiet() -> None:
    """Starts already spaced by their slots are never held back."""
    clock = SteppingClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    starts = []

    for _ in range(40):
        limiter.acquire()
        waited = len(clock.sleeps)
        assert limiter.admit()
        assert len(clock.sleeps) == waited
        starts.append(clock.now)

    assert most_in_one_second(starts) <= 21


def test_admit_returns_false_when_stopped_while_holding_a_start_back() -> None:
    """A stop while held back means the request never leaves."""
    clock = SteppingClock()
    stop = threading.Event()

    def sleep(seconds: float, event: threading.Event | None) -> None:
        stop.set()
        clock.sleep(seconds, event)

    limiter = RateLimiter(1, clock=clock, sleep=sleep)
    assert limiter.admit(stop)
    assert limiter.admit(stop)

    assert limiter.admit(stop) is False


def test_admit_never_waits_without_a_rate() -> None:
    """--rate 0 means no limit, for a local sandbox."""
    clock = SteppingClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)

    assert all(limiter.admit() for _ in range(1000))
    assert clock.sleeps == []
