"""The live-run engine every page uses: start a run, wait for a slot in the queue, run it with check-ins,
Stop it, keep what an interrupted run reached, and redraw at a pace people can follow.

One mechanism for all four pages (Attack lab, Compare, Defences, Experiments), no threads: the run goes
on inside the page's own script run. Each step's result is stored in session state as it arrives and the
screen is redrawn at most ``REDRAW_HZ`` times a second (redraws are skipped, results never). Pressing Stop
makes Streamlit rerun the page; that interrupts the running loop at its next call into Streamlit, and
``interruptible`` makes such a call (a check-in) at least every ``CHECK_IN_SECONDS`` from inside the
gradient computations, so even a long L-BFGS step ends at once. The new script run calls the Stop button's
callback (``LiveRun.stop_clicked``) or, for any other click, a reload or another page,
``LiveRun.settle_interrupted``: the run still marked "running" is marked stopped and keeps everything it
reached. At most one run per CPU core goes at a time in a server process (``dlg_core.slots``); a run
beyond that waits in a queue with its place shown (``LiveRun.turn``), and every way out gives the slot
back.

Why not a worker thread (the Experiments page had one, with a stop event the attack reads after each step)?
Measured with ``scripts/measure_run_engine.py`` (DLG on the MLP victim, one torch thread, the report photo
astronaut_face; Stop asked at 4-5 moments of a run, on a busy 2-core host): from Stop to the computation's
end, a worker thread with a stop event took 4.3-6.1 s at 128 px (median 4.9 s) and up to 0.34 s at 64 px,
because it can only stop between L-BFGS steps; check-ins in the run's own thread took 0.04-0.16 s at 128 px
(median 0.12 s) and 0.04-0.10 s at 64 px. With a thread, the run slot is either held that long after Stop or
given back while the core is still busy. The check-ins cost no measurable speed (gradient evaluations per
second, alternating runs in one process: 10.2 without against 11.2 with at 64 px, 1.0 against 0.9 at 128 px,
within the noise). The longest gap between two check-in chances was the same with the saved-tensor hooks alone
as with the model's forward pre-hook added (198 ms at 64 px, 699 ms at 128 px), so the engine needs no handle
on the model. A thread bought nothing else: redraws and check-ins happen in the script run either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import streamlit as st
import torch

from dlg_core import attack_registry
from dlg_core.config import DEFAULT
from dlg_core.images import SAMPLES
from dlg_core.run import AttackRun
from dlg_core.slots import RunSlots

from .photo import sample_tensor

REDRAW_HZ = 10  # live image redraws per second at most
CHART_HZ = 3  # live chart redraws per second at most (charts are dearer to build and to render)
CHECK_IN_SECONDS = 0.1  # during a long step, how often a run looks for Stop, a reload or a closed tab
KEY_CHECK_IN = "run_engine_check_in"  # never set: reading it is the check-in
STATUS_TEXT = {
    "running": "Running",
    "ok": "Finished",
    "stopped": "Stopped",
    "timeout": "Out of time",
    "diverged": "Diverged",
}
T = TypeVar("T")


class Stoppable(Protocol):
    """What a page keeps in session state for its run (a RunHistory, a comparison, a grid)."""

    @property
    def running(self) -> bool: ...

    def stop(self, message: str | None = None) -> None: ...


@st.cache_resource(show_spinner="Warming up the attacker (once per server)...")
def warm_up() -> bool:
    """Pay PyTorch's one-off costs (first L-BFGS step, SSIM's imports: about 1 s; first Adam step and learning-rate
    schedule, for Inverting Gradients: about 2 s) before anyone presses Run, or times an attack."""
    first = SAMPLES[0]
    for attack in (DEFAULT.attack, attack_registry.first(optimiser="adam").name):
        config = DEFAULT.replace(attack=attack, steps=1, size=16)
        for _ in AttackRun(config, sample_tensor(first.name, 16), (first.label % config.classes,)):
            pass
    return True


@st.cache_resource(show_spinner=False)
def run_slots() -> RunSlots:
    """One queue per server process, shared by every visitor: a classroom must not oversubscribe the CPUs."""
    return RunSlots()


def queue_message(position: int, slots: int) -> str:
    busy = f"All {slots} attack slots on this server are busy" if slots > 1 else "This server's attack slot is busy"
    return (f"{busy}: yours is **number {position}** in the queue and starts by itself. Press Stop to leave "
            "the queue.")


def _check_in() -> None:
    st.session_state.get(KEY_CHECK_IN)


@contextmanager
def interruptible(every: float = CHECK_IN_SECONDS, check_in: Callable[[], Any] = _check_in) -> Iterator[None]:
    """Let Stop, a reload or a closed tab end the computation inside within about ``every`` seconds, even mid-step.

    Streamlit can only end a script run where the script calls into Streamlit, and one L-BFGS step may take
    seconds (up to 100 gradient evaluations; one evaluation of the MLP at 128 px takes up to a second on a
    busy host), the whole time holding a run slot. So the run checks in with Streamlit at most every
    ``every`` seconds from inside the gradient computations, in autograd's saved-tensor hooks (this thread's
    only), which run all through every forward pass that records a graph and all through the backward and
    double-backward passes. Reading session state is such a check-in and sends nothing to the browser. If a
    stop or rerun is pending, Streamlit's own exception (a BaseException) leaves the computation from
    wherever it is, and every ``finally`` on the way out (the slot's) runs. Autograd hands it on unchanged.
    """
    last = time.perf_counter()

    def on_tensor(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every:
            last = now
            check_in()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(on_tensor, on_tensor):
        yield


def follow(steps: Iterable[T], store: Callable[[T], Any], draw: Callable[[], Any] | None = None,
           draw_charts: Callable[[], Any] | None = None) -> None:
    """Run ``steps`` to their end inside this script run, handing each to ``store`` as it arrives.

    ``draw`` is called at most ``REDRAW_HZ`` times a second (pictures, progress line), ``draw_charts`` at most
    ``CHART_HZ``; ``store`` is never skipped, only redraws. Stop, a reload or a closed tab ends it within
    ``CHECK_IN_SECONDS`` (``interruptible``). Hold a run slot around it (``LiveRun.turn``).
    """
    paced = [(1 / REDRAW_HZ, draw), (1 / CHART_HZ, draw_charts)]
    last = [0.0, 0.0]
    with interruptible():
        for item in steps:
            store(item)
            now = time.perf_counter()
            for i, (period, redraw) in enumerate(paced):
                if redraw is not None and now - last[i] >= period:
                    last[i] = now
                    redraw()


@dataclass(frozen=True)
class LiveRun:
    """One page's live run: where it lives in session state, its buttons, and what Stop and an interruption do.

    The page's run object (``Stoppable``) is stored in session state under ``key``, and its runs are numbered
    under ``key + "_count"`` (a new run's widgets and stage get fresh keys). ``interrupted`` is what a run cut
    off by another click says (None: the same as Stop); ``after_stop`` runs after either (the Attack lab's
    stage stops its playback).
    """

    key: str
    buttons: tuple[str, str]  # the Run and Stop buttons' widget keys
    interrupted: str | None = None
    after_stop: Callable[[], Any] | None = None

    def current(self) -> Any:
        return st.session_state.get(self.key)

    def begin(self, make: Callable[[int], Stoppable]) -> Stoppable:
        """Number a new run, build it with ``make(run_id)`` and keep it in session state."""
        counter = f"{self.key}_count"
        run_id = st.session_state[counter] = st.session_state.get(counter, 0) + 1
        state = st.session_state[self.key] = make(run_id)
        return state

    def _stop(self, message: str | None) -> None:
        state = self.current()
        if state is not None and state.running:
            if message:
                state.stop(message)
            else:
                state.stop()
        if state is not None and self.after_stop is not None:
            self.after_stop()

    def settle_interrupted(self) -> None:
        """A run still "running" when the page starts was interrupted (Stop, another click): keep what it reached.
        Call it first thing on the page."""
        state = self.current()
        if state is not None and state.running:
            self._stop(self.interrupted)

    def stop_clicked(self) -> None:
        """Stop's callback: it runs before the page reruns, the rerun having interrupted the loop."""
        self._stop(None)

    def controls(self, label: str, ready: bool, run_help: str, stop_help: str,
                 autorun: bool = False) -> tuple[bool, bool]:
        """Run, and beside it Stop (live only while a run starts in this script run). Returns (start, pressed)."""
        with st.container(horizontal=True, vertical_alignment="center", gap="small", key=f"runbar_{self.buttons[0]}"):
            pressed = st.button(label, key=self.buttons[0], type="primary", icon=":material/play_arrow:",
                                disabled=not ready, help=run_help)
            start = ready and (pressed or autorun)
            st.button("Stop", key=self.buttons[1], icon=":material/stop:", disabled=not start,
                      on_click=self.stop_clicked, help=stop_help)
        return start, pressed

    @contextmanager
    def turn(self, queue_slot, slots: RunSlots | None = None) -> Iterator[None]:
        """Hold one of the server's run slots (``slots``: the process's own by default) for the block, waiting in
        the queue first with its place shown in ``queue_slot``. The slot is given back however the block ends:
        finished, stopped, reloaded, tab closed, or an error."""
        slots = slots or run_slots()

        def keep_waiting(position: int) -> bool:
            # Drawing here is also where a Stop press (or a closed tab) takes a waiting run out of the queue.
            queue_slot.info(queue_message(position, slots.slots), icon=":material/hourglass_top:")
            return True

        with slots.hold(keep_waiting):
            queue_slot.empty()
            yield


def in_turns(iterables: list[Iterable[T]]) -> Iterator[tuple[int, T | None]]:
    """One item from each iterable in turn, as (index, item); (index, None) once when one ends."""
    iterators = {i: iter(it) for i, it in enumerate(iterables)}
    while iterators:
        for i in list(iterators):
            try:
                yield i, next(iterators[i])
            except StopIteration:
                del iterators[i]
                yield i, None
