"""``experiment --workers N`` / ``--address ADDR``: a grid's runs spread over Ray workers (https://docs.ray.io).

The driver (this process) alone reads and writes the CSV: it skips the rows already there (resume), hands each
remaining job to a Ray task with everything it needs by value (the job's settings and its photos' pixels as
arrays, never a path, so a worker may be on another machine), and appends each row as its task finishes, in
whatever order they finish. A task whose worker process dies (killed, out of memory, its machine gone) is
retried once by Ray (``max_retries=1``); if it dies again the job becomes an ``error`` row saying so. A row is
written only by the driver and only once, so none is lost or doubled. At most one task per worker is in flight:
the driver holds neither a queue of every job's task nor the finished rows (they are in the CSV).

Without ``--address`` the command starts a local Ray instance with N workers (default: one per core) and stops it
afterwards; each run uses one torch thread, as in a serial run, so the rows are the same as a serial run's.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import experiment
from .errors import BadInputError

INSTALL = "pip install -r requirements-scale.txt"
PACKAGE_DIR = Path(__file__).resolve().parent
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2  # photos are a few KB each; Ray's default (30% of RAM) is for big data


def add_arguments(parser) -> None:
    parser.add_argument("--workers", type=int, nargs="?", const=os.cpu_count() or 1, metavar="N",
                        help=f"run N runs at once on Ray workers (a local Ray instance unless --address; --workers "
                             f"alone: one per core, here {os.cpu_count()}); needs Ray: {INSTALL}")
    parser.add_argument("--address", metavar="ADDR",
                        help="join this running Ray cluster (host:port of `ray start --head`, or 'auto') and use its "
                             "workers (all its cores, or at most --workers N at once)")


def runner(args) -> Callable | None:
    """The grid runner that ``args`` ask for: Ray's with ``--workers`` or ``--address``, None for the serial one."""
    if args.workers is None and not args.address:
        return None
    if args.workers is not None and args.workers < 1:
        raise BadInputError(f"--workers must be at least 1, not {args.workers}.")
    return functools.partial(run_grid_ray, workers=args.workers, address=args.address)


def import_ray():
    try:
        import ray
    except ImportError:
        raise BadInputError(f"--workers and --address need Ray, which is not installed: {INSTALL}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in a moment, not after Ray's long connection retries, when nothing listens at host:port."""
    if address == "auto" or "://" in address:
        return  # 'auto' finds a local cluster itself; ray:// (Ray Client) is checked by ray.init
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except ValueError:
        raise BadInputError(f"--address {address!r}: give host:port, e.g. 10.0.0.5:6379.") from None
    except OSError as err:
        raise BadInputError(f"cannot reach the Ray cluster at {address}: {err.strerror or err}.") from None


@contextmanager
def ray_session(workers: int | None, address: str | None) -> Iterator[Any]:
    """Ray, connected: to ``address``, or to a local instance started here with ``workers`` CPUs and stopped at
    the end. A caller that already holds a connection (the tests share one) keeps it."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        _check_reachable(address)
    # The workers import dlg_core from a copy Ray ships to every node, not from a path that exists only here.
    options: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                                   runtime_env={"py_modules": [str(PACKAGE_DIR)]})
    if not address:
        options |= dict(num_cpus=workers or os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        ray.init(address=address or "local", **options)  # "local": never an unrelated `ray start` cluster here
    except Exception as err:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or ValueError here
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        hint = (" (a cluster started by `ray start` wants RAY_AUTH_MODE=token and its token here, see the README)"
                if address and "RAY_AUTH_MODE" not in os.environ else "")
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise BadInputError(f"could not start or join {where}: {first}{hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@functools.cache
def _warm_worker() -> None:
    from .run import warm_up_torch

    torch.set_num_threads(1)  # each run asks for one thread too; this covers the warm-up
    warm_up_torch()


def warm_worker(seconds: float = 0.0) -> None:
    """A Ray task that pays a worker's one-off imports now (``seconds``: then holds the worker that long)."""
    _warm_worker()
    time.sleep(seconds)


def run_in_worker(job: experiment.Job, *pixels: np.ndarray, run: Callable = experiment.run_job) -> dict[str, Any]:
    """What a Ray task does: one job's row from its photos' pixels (one 1x3xHxW array per photo)."""
    _warm_worker()
    return run(job, images=torch.cat([torch.from_numpy(np.array(p)) for p in pixels]))


def failed_row(job: experiment.Job, err: Exception, ray) -> dict[str, Any]:
    """The row of a job whose task failed: its worker died twice (tried, then retried once), or it raised."""
    if isinstance(err, ray.exceptions.RayTaskError):  # not retried: the same code would raise again
        return job.identity() | {"status": "error", "message": f"{err.cause!r}"[:500]}
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else ''
    message = f"{type(err).__name__}: the run's worker died twice (tried, then retried once): {first}"
    return job.identity() | {"status": "error", "message": message[:500]}


def run_grid_ray(jobs: Sequence[experiment.Job], out: str | Path, progress: bool = True,
                 on_row: Callable[[dict[str, Any]], None] | None = None, workers: int | None = None,
                 address: str | None = None, run: Callable = experiment.run_job) -> list[dict[str, Any]]:
    """``experiment.run_grid`` on Ray: the jobs not yet in ``out`` run on Ray workers, each row appended as it
    comes back; every job's row (read back from ``out``). ``run`` is what a worker does with a job (the tests
    give one that crashes its worker)."""
    from tqdm import tqdm

    with ray_session(workers, address) as ray:
        _, todo = experiment.jobs_to_run(jobs, out, progress)
        slots = int(ray.cluster_resources().get("CPU", 1))
        slots = max(1, min(slots, workers) if workers else slots)
        task = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(run_in_worker)
        photos: dict[tuple[str, int], Any] = {}  # one copy of each photo's pixels in Ray's object store

        def submit(job: experiment.Job):
            for name in job.images:
                if (name, job.size) not in photos:
                    photos[(name, job.size)] = ray.put(experiment.load_photo(name, job.size).numpy())
            return task.remote(job, *(photos[(name, job.size)] for name in job.images), run=run)

        queue, in_flight = iter(todo), {}
        with tqdm(total=len(todo), disable=not progress, unit="run", file=sys.stderr) as bar:
            while True:
                while len(in_flight) < slots and (job := next(queue, None)) is not None:
                    in_flight[submit(job)] = job
                if not in_flight:
                    break
                [ready], _ = ray.wait(list(in_flight), num_returns=1)
                job = in_flight.pop(ready)
                try:
                    row = ray.get(ready)
                except ray.exceptions.RayError as err:
                    row = failed_row(job, err, ray)
                experiment.record_row(row, out, on_row, bar)
    by_key = {row["key"]: row for row in experiment.read_rows(out)}
    return [by_key[job.key] for job in jobs]
