"""Running a grid's jobs: ``run_job`` (one run, one flat row, never raising for a run that fails) and
``run_grid`` (the jobs not yet in the results file, each row appended as it finishes)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import metrics
from ..csv_cells import cell, number
from ..defences import learning_cost
from ..errors import BadInputError
from .grid import Job
from .photos import load_photo
from .store import append_row, read_rows


def run_job(job: Job, stop_event: threading.Event | None = None, images: torch.Tensor | None = None) -> dict[str, Any]:
    """Run one job; the row it gives. Never raises for a failed run: a crash is status "error" with its message,
    an impossible combination (refused by the config, or by the attack as it starts) status "skipped".
    ``images``: the job's photos, when the caller has them already."""
    from ..run import AttackRun  # the attack stack imports in a moment; keep `import experiment` light
    from ..utility import utility

    row: dict[str, Any] = job.identity()
    try:
        config = job.config()
    except BadInputError as err:
        return row | {"status": "skipped", "message": str(err)}
    started = time.perf_counter()
    try:
        images = torch.cat([load_photo(name, job.size) for name in job.images]) if images is None else images
        # The run gets its own stop event: reaching the threshold must not set the caller's, which may stop a
        # whole grid (the app's Stop button).
        run = AttackRun(config, images, job.labels, stop_event=threading.Event())
        asked = reached = False
        for snap in run:
            if stop_event is not None and stop_event.is_set():
                asked = True
                run.stop()
            elif job.stop_at_psnr is not None and snap.psnr >= job.stop_at_psnr:
                reached = True
                run.stop()
        result = run.result.to_json_dict()
        if reached and not asked and result["status"] == "stopped":
            result["status"], result["message"] = "ok", f"Stopped at {job.stop_at_psnr:g} dB (success)."
        report = run.victim.report
        cost = learning_cost(run.victim.model, run.images, job.labels, report.true_update, report.update)
        learning = utility(job.defenses)
    except BadInputError as err:  # the attack refused the run's photos (e.g. a batch it cannot take): not a crash
        return row | {"status": "skipped", "message": str(err)}
    except Exception as err:  # noqa: BLE001 - a crashed run must be a row, never a lost one
        return row | {"status": "error", "message": f"{type(err).__name__}: {err}"[:500],
                      "seconds": round(time.perf_counter() - started, 4)}
    for name, value in result.items():
        if name not in ("defenses",) + tuple(row):  # the job's own columns say it already
            row[name] = cell(value)
    guess = run.result.label_guess
    row["label_accuracy"] = metrics.label_accuracy(guess, job.labels) if guess else None
    row |= {"update_cosine": cost.cosine, "update_relative_error": cost.relative_error,
            "loss_before": cost.loss_before, "loss_after_true": cost.loss_after_true,
            "loss_after_defended": cost.loss_after_defended}
    row |= {"utility_accuracy": learning.accuracy, "utility_accuracy_undefended": learning.undefended_accuracy,
            "utility_rounds": learning.setting.rounds, "utility_clients": learning.setting.clients}
    return row


def run_grid(jobs: Sequence[Job], out: str | Path | None, progress: bool = True,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the jobs not yet in ``out`` (appending a row as each finishes); every job's row, old and new."""
    from tqdm import tqdm

    from ..run import warm_up_torch

    done, todo = jobs_to_run(jobs, out, progress)
    warm_up_torch()
    fresh: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(todo), disable=not progress, unit="run", file=sys.stderr) as bar:
        for job in todo:
            fresh[job.key] = record_row(run_job(job), out, on_row, bar)
    return [fresh.get(job.key) or done[job.key] for job in jobs]


def jobs_to_run(jobs: Sequence[Job], out: str | Path | None, progress: bool) -> tuple[dict[str, dict], list[Job]]:
    """The rows already in ``out`` by key, and the jobs still to run (said on stderr with ``progress``)."""
    done = {row["key"]: row for row in read_rows(out)} if out else {}
    todo = [job for job in jobs if job.key not in done]
    if progress:
        print(f"{len(jobs)} runs, {len(jobs) - len(todo)} already in {out}; {len(todo)} to go, at most "
              f"{_duration(sum(job.max_seconds for job in todo))} by their time budgets (the bar's estimate is "
              "better after a few)", file=sys.stderr)
    return done, todo


def record_row(row: dict[str, Any], out: str | Path | None, on_row: Callable | None, bar) -> dict[str, Any]:
    """A finished run's row appended to ``out``, handed to ``on_row`` and counted on the progress bar."""
    if out:
        append_row(out, row)
    if on_row:
        on_row(row)
    psnr = number(row.get("final_psnr"))
    bar.set_postfix_str(f"{row['status']} {'-' if psnr is None else f'{psnr:.1f} dB'}", refresh=False)
    bar.update(1)
    return row


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
