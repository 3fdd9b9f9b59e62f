"""How the two ways of stopping a live run compare (the reason for ui/run_engine.py's one mechanism).

    nice -n 10 .venv/bin/python scripts/measure_run_engine.py [--size 64] [--model mlp] [--attack dlg]

On one report photo, one torch thread, it measures:
1. Stop with a worker thread and a stop event (what the Experiments page did): after the event is set, how long
   the worker computes on (its CPU core busy) until the run ends.
2. Stop with check-ins inside the gradient computations in the run's own thread (``run_engine.interruptible``;
   Streamlit's rerun exception is stood in for by an exception the check-in raises once Stop was asked):
   how long until the computation has left.
3. The check-ins' cost: gradient evaluations per second with and without them, alternating, same process.
4. The longest gap between two check-in opportunities (saved-tensor hooks), against that gap when the model's
   forward pre-hook (the old Attack lab mechanism) is counted too.
Stops are asked at several moments after the run's start; every figure is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlg_core import photo_sets  # noqa: E402
from dlg_core.config import default_for  # noqa: E402
from dlg_core.images import to_tensor  # noqa: E402
from dlg_core.run import AttackRun  # noqa: E402
from ui.run_engine import interruptible  # noqa: E402


class Asked(Exception):
    """Stands in for Streamlit's RerunException."""


def make_run(args, stop_event=None) -> AttackRun:
    config = default_for(args.attack, args.model).replace(size=args.size, steps=5000, max_seconds=300, threads=1)
    entry = photo_sets.REPORT[0]
    images = to_tensor(photo_sets.photo(entry, 128), args.size)
    return AttackRun(config, images, (0,), stop_event=stop_event)


def thread_stop(args, after: float) -> float:
    stop = threading.Event()
    run = make_run(args, stop)
    worker = threading.Thread(target=lambda: [None for _ in run])
    worker.start()
    time.sleep(after)
    asked = time.perf_counter()
    stop.set()
    worker.join()
    return time.perf_counter() - asked


def check_in_stop(args, after: float) -> float:
    run = make_run(args)
    asked_at: list[float] = []
    threading.Timer(after, lambda: asked_at.append(time.perf_counter())).start()

    def check_in() -> None:
        if asked_at:
            raise Asked

    try:
        with interruptible(check_in=check_in):
            for _ in run:
                pass
    except Asked:
        return time.perf_counter() - asked_at[0]
    return float("nan")  # the run ended by itself first


def evals_per_second(args, seconds: float, hooked: bool) -> float:
    run = make_run(args)
    started = time.perf_counter()
    evals = 0
    with interruptible(check_in=lambda: None) if hooked else contextlib.nullcontext():
        for snap in run:
            evals = snap.evals
            if time.perf_counter() - started >= seconds:
                break
    return evals / (time.perf_counter() - started)


def check_in_gaps(args, seconds: float) -> tuple[float, float]:
    run = make_run(args)
    saved: list[float] = []
    both: list[float] = []

    def on_tensor(t):
        now = time.perf_counter()
        saved.append(now)
        both.append(now)
        return t

    handle = run.victim.model.register_forward_pre_hook(lambda *_: both.append(time.perf_counter()))
    started = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(on_tensor, on_tensor):
        for _ in run:
            if time.perf_counter() - started >= seconds:
                break
    handle.remove()

    def biggest(ts: list[float]) -> float:
        ts = sorted(ts)
        return max(b - a for a, b in zip(ts, ts[1:], strict=False))

    return biggest(saved), biggest(both)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--attack", default="dlg")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for _ in make_run(args):  # warm up PyTorch's one-off costs
        break
    print(f"{args.attack} on {args.model} at {args.size} px, one torch thread, photo {photo_sets.REPORT[0].name}")
    moments = [1.0, 1.7, 2.6, 3.3, 4.1][: max(args.repeats, 1) + 2]
    thread = [thread_stop(args, t) for t in moments]
    check = [check_in_stop(args, t) for t in moments]
    print("Stop -> computation ended, worker thread + stop event (s):", " ".join(f"{x:.3f}" for x in thread),
          f"| median {statistics.median(thread):.3f}, max {max(thread):.3f}")
    print("Stop -> computation ended, check-ins in the run's thread (s):", " ".join(f"{x:.3f}" for x in check),
          f"| median {statistics.median(check):.3f}, max {max(check):.3f}")
    plain, hooked = [], []
    for _ in range(args.repeats):
        plain.append(evals_per_second(args, 4.0, False))
        hooked.append(evals_per_second(args, 4.0, True))
    print("evaluations/s without check-ins:", " ".join(f"{x:.1f}" for x in plain),
          f"| median {statistics.median(plain):.1f}")
    print("evaluations/s with check-ins:   ", " ".join(f"{x:.1f}" for x in hooked),
          f"| median {statistics.median(hooked):.1f}")
    saved, both = check_in_gaps(args, 4.0)
    print(f"longest gap between check-in opportunities: saved-tensor hooks {1000 * saved:.1f} ms, "
          f"with the model's forward pre-hook too {1000 * both:.1f} ms")


if __name__ == "__main__":
    main()
