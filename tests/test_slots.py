"""Run slots: at most N runs at once, first come first served, and every exit frees the slot."""

import threading
import time

import pytest

from dlg_core.slots import LeftQueue, RunSlots


def test_positions_are_first_come_first_served():
    slots = RunSlots(2)
    tickets = [slots.join() for _ in range(5)]
    assert [slots.position(t) for t in tickets] == [0, 0, 1, 2, 3]
    slots.release(tickets[1])
    assert [slots.position(t) for t in tickets] == [0, -1, 0, 1, 2]
    slots.release(tickets[3])  # a waiting ticket leaves the queue
    assert [slots.position(t) for t in (tickets[0], tickets[2], tickets[4])] == [0, 0, 1]


def test_never_more_runs_than_slots_and_all_finish():
    slots = RunSlots(2)
    busy, peak, finished = [0], [0], []
    guard = threading.Lock()

    def worker(i):
        with slots.hold():
            with guard:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.05)
            with guard:
                busy[0] -= 1
        finished.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(finished) == list(range(8))
    assert peak[0] == 2
    assert slots.running == 0 and slots.waiting == 0


def test_a_cancelled_waiter_leaves_the_queue_and_an_exception_frees_the_slot():
    slots = RunSlots(1)
    holder = slots.join()
    seen = []
    with pytest.raises(LeftQueue):
        with slots.hold(keep_waiting=lambda position: seen.append(position) or len(seen) < 3, poll_seconds=0.01):
            pass
    assert seen[0] == 1 and slots.waiting == 0
    slots.release(holder)
    with pytest.raises(RuntimeError):
        with slots.hold():
            raise RuntimeError("the run crashed")
    assert slots.running == 0
