"""A fixed number of attack runs at once per server process, first come first served.

Thirty students pressing Run on one small host must not make thirty attacks fight over two cores: each
run waits for a slot, sees its place in the queue, and gives the slot back the moment it ends, is
stopped, or its session goes away (the caller's ``finally`` releases it; ``keep_waiting`` lets a waiting
run leave the queue when its user presses Stop). Plain threading: no Streamlit here.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import limits


class LeftQueue(Exception):
    """The waiting run was cancelled (Stop pressed, session gone) before it got a slot."""


class RunSlots:
    def __init__(self, slots: int | None = None):
        self.slots = max(1, slots or limits.RUN_SLOTS)
        self._lock = threading.Condition()
        self._waiting: deque[int] = deque()
        self._running: set[int] = set()
        self._numbers = itertools.count()

    def position(self, ticket: int) -> int:
        """0 when the ticket holds a slot, n when it is n-th in the queue, -1 once released."""
        with self._lock:
            if ticket in self._running:
                return 0
            return self._waiting.index(ticket) + 1 if ticket in self._waiting else -1

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _promote(self) -> None:
        while self._waiting and len(self._running) < self.slots:
            self._running.add(self._waiting.popleft())
        self._lock.notify_all()

    def join(self) -> int:
        with self._lock:
            ticket = next(self._numbers)
            self._waiting.append(ticket)
            self._promote()
            return ticket

    def wait(self, ticket: int, timeout: float) -> bool:
        """Block until the ticket holds a slot (True) or the timeout passes (False)."""
        with self._lock:
            return self._lock.wait_for(lambda: ticket in self._running, timeout)

    def release(self, ticket: int) -> None:
        with self._lock:
            self._running.discard(ticket)
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._promote()

    @contextmanager
    def hold(self, keep_waiting: Callable[[int], bool] = lambda position: True,
             poll_seconds: float = 0.25) -> Iterator[int]:
        """Wait for a slot, calling ``keep_waiting(position)`` while queued; the slot is freed on exit."""
        ticket = self.join()
        try:
            while not self.wait(ticket, poll_seconds):
                if not keep_waiting(self.position(ticket)):
                    raise LeftQueue
            yield ticket
        finally:
            self.release(ticket)
