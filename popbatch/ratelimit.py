"""One rate limiter shared by every worker: request starts, evenly spaced.

The contract (issue 5): in any one-second window no more requests start
than the rate allows (a burst allowance of at most one), and over a long
run the achieved rate is the configured one when the server is fast.

The design hands out start times from a schedule (a GCRA, the "generic cell
rate algorithm" of ATM networks): the n-th start of a busy stretch is due at
``origin + n / rate``. Each caller reserves the next due time under a lock,
then sleeps outside it until that time. Because due times are computed
from the origin rather than by adding intervals, they do not drift, and
because a busy schedule does not care how late a sleeper wakes up, the long
run rate stays exact: a late wake-up delays that one start, not the rest of
the run. No start is ever earlier than its due time; a late one may come
closer than an interval to the next, which is the one start of allowance.
When no one has asked for a while the schedule restarts at the next caller,
so idle time is never saved up beyond ``burst``.

The clock and the sleep are parameters, so tests run on a fake clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic clock."""

Sleep = Callable[[float, threading.Event | None], None]
"""Wait ``seconds``, or less when the event gets set (it may be None)."""


def sleep_or_stop(seconds: float, stop: threading.Event | None) -> None:
    """Sleep for ``seconds`` of real time, waking early when ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


class RateLimiter:
    """Spaces request starts at ``rate`` per second across threads.

    Args:
        rate: starts per second; 0 means no limit (for a local sandbox).
        clock: a monotonic clock in seconds.
        sleep: how to wait; see :data:`Sleep`.
        burst: how many starts may go at once after an idle spell; 1 keeps
            every start an interval apart.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = sleep_or_stop,
        burst: int = 1,
    ) -> None:
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"the rate must be 0 (no limit) or more, got {rate!r}")
        if burst < 1:
            raise ValueError(f"the burst must be at least 1, got {burst!r}")

        self._rate = float(rate)
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The schedule: start number ``count`` of this busy stretch is due at
        # ``origin + count / rate``; ``tolerance`` lets ``burst - 1`` go early.
        self._origin = -math.inf
        self._count = 0
        self._tolerance = (burst - 1) / rate if rate else 0.0
        self._paused_until = -math.inf
        # The starts of the past second, for admit(): at most the rate (and
        # the burst allowance) may fall in any one second.
        self._window_cap = int(rate) + burst if rate else 0
        self._starts: deque[float] = deque()

    @property
    def rate(self) -> float:
        """Starts per second; 0 means no limit."""
        return self._rate

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self._rate:g}, burst={self._burst})"

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until this caller may start a request.

        Returns False as soon as ``stop`` is set (at once when it already
        is): the caller then starts nothing. A start that is granted is
        counted even if the caller does not use it.
        """
        while True:
            if stop is not None and stop.is_set():
                return False
            with self._lock:
                due = self._reserve(self._clock())

            while True:
                remaining = due - self._clock()
                if remaining <= 0:
                    break
                self._sleep(remaining, stop)
                if stop is not None and stop.is_set():
                    return False

            # A pause that began while this caller slept moves its start
            # behind the pause; its reserved time is given up.
            if due >= self._paused_until:
                return True

    def admit(self, stop: threading.Event | None = None) -> bool:
        """Confirm a start just before it happens, holding it back if need be.

        ``acquire`` spaces the slots; between a slot and its request the
        caller may be delayed (a slow disk under the journal), and delayed
        starts could then leave together. This last check counts the real
        starts of the past second and waits while one more would pass the
        rate plus the burst allowance. Returns False as soon as ``stop`` is
        set: the caller then starts nothing.
        """
        if not self._rate:
            return True
        while True:
            if stop is not None and stop.is_set():
                return False
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= 1.0:
                    self._starts.popleft()
                if len(self._starts) < self._window_cap:
                    self._starts.append(now)
                    return True
                wait = 1.0 - (now - self._starts[0])
            self._sleep(wait, stop)

    def pause(self, seconds: float) -> None:
        """Start nothing for ``seconds`` from now (e.g. POP's Retry-After).

        Callers already waiting whose time falls inside the pause take a new
        time after it, still an interval apart.
        """
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            self._paused_until = max(self._paused_until, until)

    def _reserve(self, now: float) -> float:
        """Hand out the next start time; the caller holds the lock."""
        start = max(now, self._paused_until)
        if not self._rate:
            return start

        scheduled = self._origin + self._count / self._rate
        if scheduled >= start:
            # Busy: the schedule runs ahead of the clock; take its next slot.
            self._count += 1
            return max(start, scheduled - self._tolerance)

        # Idle: nobody took the slots that have passed, and they are not
        # saved up; the schedule restarts here. (With a burst, the next
        # ``burst - 1`` callers then find it ahead and go at once.)
        self._origin = start
        self._count = 1
        return start
