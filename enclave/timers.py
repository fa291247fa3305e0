"""One timer thread for every session deadline and retention period.

A ``threading.Timer`` per session costs a thread per live session (and one per
retained record): 64 sessions were 64 sleeping threads. ``Scheduler`` keeps
every pending call in one heap, served by one daemon thread started on first
use. Cancelling marks the entry; the thread skips it when it comes due.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

THREAD_NAME = "tcme-timers"


class Timer:
    """A handle to one scheduled call; ``cancel`` before it runs and it never runs."""

    __slots__ = ("_cancelled", "action", "when")

    def __init__(self, when: float, action: Callable[[], None]) -> None:
        self.when = when
        self.action = action
        self._cancelled = False

    def cancel(self) -> None:
        """Drop the call (no effect once it ran)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` was called."""
        return self._cancelled


class Scheduler:
    """Runs callables at monotonic times, in due order, on one thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, seconds: float, action: Callable[[], None]) -> Timer:
        """Run ``action`` after ``seconds`` (on the scheduler thread); returns its handle."""
        timer = Timer(self._clock() + max(0.0, seconds), action)
        with self._wake:
            if self._closed:
                timer.cancel()
                return timer
            heapq.heappush(self._heap, (timer.when, next(self._order), timer))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._wake.notify()
        return timer

    def pending(self) -> int:
        """Scheduled calls not yet run or cancelled."""
        with self._wake:
            return sum(1 for _, _, t in self._heap if not t.cancelled)

    def close(self) -> None:
        """Stop the thread; pending calls never run."""
        with self._wake:
            self._closed = True
            for _, _, timer in self._heap:
                timer.cancel()
            self._heap.clear()
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._wake.wait()
                        continue
                    delay = self._heap[0][0] - self._clock()
                    if delay <= 0:
                        break
                    self._wake.wait(delay)
                if self._closed:
                    return
                _, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            try:
                timer.action()
            except Exception as err:  # a failed action must not stop every other timer
                log.error("scheduled action failed: %s", type(err).__name__)
