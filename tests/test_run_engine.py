"""ui.run_engine, the one live-run engine of every page: check-ins end a computation mid-step, redraws are paced
and results never skipped, a queued run shows its place and gives its ticket back however it leaves, and Stop
or an interruption keeps what a run reached (and says which of the two happened)."""

from __future__ import annotations

import pytest
import torch
from streamlit.testing.v1 import AppTest

from dlg_core.config import DEFAULT
from dlg_core.images import load_sample
from dlg_core.run import AttackRun
from dlg_core.slots import RunSlots
from ui import run_engine


class Asked(Exception):
    """Stands in for Streamlit's rerun exception, which a check-in raises once Stop was pressed."""


def test_a_check_in_ends_a_run_inside_its_step():
    """The check-ins sit inside the gradient computations: the exception leaves the attack mid-run, unchanged."""
    run = AttackRun(DEFAULT.replace(size=16, steps=50, threads=1), load_sample("cat_chelsea", 16), (0,))
    calls = []

    def check_in() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Asked

    with pytest.raises(Asked), run_engine.interruptible(every=0.0, check_in=check_in):
        for _ in run:
            pass
    assert len(calls) == 3
    assert run.result is None  # it never reached its end


def test_no_check_in_outside_the_block():
    """The hooks are gone after the block: a later computation runs without them."""
    calls = []
    with run_engine.interruptible(every=0.0, check_in=lambda: calls.append(1)):
        x = torch.ones(3, requires_grad=True)
        (x * x).sum().backward()
    inside = len(calls)
    y = torch.ones(3, requires_grad=True)
    (y * y).sum().backward()
    assert inside > 0 and len(calls) == inside


def test_redraws_are_paced_and_results_never_skipped(monkeypatch):
    """30 results 1/32 s apart (a fake clock): all stored, pictures redrawn every 0.1 s, charts every 1/3 s."""
    clock = [100.0]
    monkeypatch.setattr(run_engine.time, "perf_counter", lambda: clock[0])

    def steps():
        for i in range(30):
            clock[0] += 1 / 32
            yield i

    stored, draws, charts = [], [], []
    run_engine.follow(steps(), stored.append, lambda: draws.append(clock[0]), lambda: charts.append(clock[0]))
    assert stored == list(range(30))
    assert len(draws) == 8 and len(charts) == 3  # items 1, 5, 9, ... 29; and 1, 12, 23
    assert min(b - a for a, b in zip(draws, draws[1:], strict=False)) >= 1 / run_engine.REDRAW_HZ


class QueueSlot:
    """A placeholder that records what the queue says, and lets the runs ahead finish as it is drawn."""

    def __init__(self, on_info):
        self.said: list[str] = []
        self.on_info = on_info
        self.emptied = False

    def info(self, text, icon=None):
        self.said.append(text)
        self.on_info(len(self.said))

    def empty(self):
        self.emptied = True


def test_a_queued_run_sees_its_place_then_runs_and_gives_its_slot_back():
    slots = RunSlots(1)
    ahead = [slots.join(), slots.join()]  # one running, one waiting: ours is second in the queue
    queue = QueueSlot(lambda n: slots.release(ahead[n - 1]) if n <= 2 else None)
    ran = False
    with run_engine.LiveRun("test_run", ("go", "halt")).turn(queue, slots):
        ran = slots.running == 1 and slots.waiting == 0
    assert ran and queue.emptied
    assert "**number 2**" in queue.said[0] and "**number 1**" in queue.said[1]
    assert slots.running == 0 and slots.waiting == 0


def test_stop_while_queued_leaves_the_queue():
    """Stop (Streamlit's exception at the queue's redraw) takes the run out of the queue and runs nothing."""
    slots = RunSlots(1)
    busy = slots.join()

    def stop(_):
        raise Asked

    with pytest.raises(Asked), run_engine.LiveRun("test_run", ("go", "halt")).turn(QueueSlot(stop), slots):
        pytest.fail("the run must not start")
    assert slots.waiting == 0 and slots.running == 1
    slots.release(busy)


def test_in_turns_takes_one_step_of_each_and_says_when_one_ends():
    assert list(run_engine.in_turns([[1, 2], [3]])) == [(0, 1), (1, 3), (0, 2), (1, None), (0, None)]


PAGE = """
import streamlit as st
from ui import run_engine

class Job:
    def __init__(self, run_id):
        self.run_id, self.status, self.message = run_id, "running", None

    @property
    def running(self):
        return self.status == "running"

    def stop(self, message="stopped on request"):
        if self.running:
            self.status, self.message = "stopped", message

st.session_state.setdefault("after_stop", 0)

def after_stop():
    st.session_state["after_stop"] += 1

LIVE = run_engine.LiveRun("job", ("go", "halt"), interrupted="cut off by another click", after_stop=after_stop)
LIVE.settle_interrupted()
start, pressed = LIVE.controls("Go", True, run_help="run", stop_help="stop")
if start:
    LIVE.begin(Job)  # and the script run ends here, as one cut off by a click does, the job still "running"
"""


def test_an_interrupted_run_is_settled_with_its_own_words():
    at = AppTest.from_string(PAGE, default_timeout=30).run()
    assert "job" not in at.session_state
    at.button(key="go").click().run()
    job = at.session_state["job"]
    assert job.run_id == 1 and job.running
    at.run()  # another click: the page starts with the job still "running"
    assert job.status == "stopped" and job.message == "cut off by another click"
    assert at.session_state["after_stop"] == 1
    at.run()  # settled once: a stopped run is left alone
    assert at.session_state["after_stop"] == 1
    at.button(key="go").click().run()
    assert at.session_state["job"].run_id == 2  # every run its own number


def test_stop_keeps_the_run_with_stops_words():
    at = AppTest.from_string(PAGE, default_timeout=30).run()
    at.button(key="go").click().run()
    job = at.session_state["job"]
    at.button(key="halt").click().run()  # Stop's callback runs before the rerun settles anything
    assert job.status == "stopped" and job.message == "stopped on request"
    assert at.session_state["after_stop"] == 1
