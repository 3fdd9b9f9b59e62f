"""``python -m dlg_core scaling``: how a run's cost grows with resolution, batch and victim, and how an experiment
grid's throughput grows with Ray workers.

For the app's default attack and the textbook one (``bench.CONFIGS``), each point changes one axis from the base
(32 px, one photo, the configuration's own victim): the resolution (16-128 px), the batch (1-8 photos) or the
victim. Every run attacks photos of the ``report`` set (``photo_sets``: never tuned on), stops at 30 dB or at its
step or time budget, and gives: ms per gradient evaluation (the run's seconds over its evaluations), evaluations
to 30 dB, and the peak resident memory during the run (Linux's VmHWM, reset before each run by writing 5 to
/proc/self/clear_refs), also as the growth over the memory before it. Growth along resolution and batch is a power
law fitted on log-log axes (``numpy.polyfit``): "ms per evaluation grows as pixels^a".

Each point is measured in a forked copy of the process, so that every one starts from the same memory.

Then one grid (iDLG on LeNet at 32 px, report photos) runs serially in this process and on a local Ray instance
with 1, 2, ... workers: runs per minute from the first run handed out to the last row once the workers have
imported the attack stack (and, apart, counting Ray's start and those imports), and each worker's peak memory.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import bench, experiment, grid_ray, metrics, photo_sets
from .errors import BadInputError
from .images import to_tensor

BASE_SIZE = 32
PLOT_FILE = Path("docs/scaling.html")


@dataclass(frozen=True)
class Point:
    config: str  # a key of bench.CONFIGS
    axis: str  # which axis this point varies: "size", "batch" or "model"
    size: int
    batch: int
    model: str


def plan(sizes: list[int], batches: list[int], models: list[str]) -> list[Point]:
    points = []
    for key, base in bench.CONFIGS.items():
        points += [Point(key, "size", s, 1, base.model) for s in sizes]
        points += [Point(key, "batch", BASE_SIZE, b, base.model) for b in batches]
        points += [Point(key, "model", BASE_SIZE, 1, m) for m in models]
    return points


# ------------------------------------------------------------------------------------------------------ memory

def _status_mb(field: str, pid: int | str = "self") -> float | None:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in MB; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Start this process's peak-memory mark afresh (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def ray_worker_peaks_mb() -> list[float]:
    """The peak memory of each Ray worker process under this one (its local Ray instance's), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    mine, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in mine} - mine
        mine |= more
        grew = bool(more)
    peaks = []
    for pid in mine:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and not title.endswith("Agent") and (peak := _status_mb("VmHWM", pid)):
            peaks.append(round(peak, 1))
    return sorted(peaks)


# ------------------------------------------------------------------------------------------------ one point

@cache
def _report_photos() -> tuple[Any, ...]:
    return tuple(photo_sets.photos("report", side=128).values())


def _batch(start: int, batch: int, size: int) -> torch.Tensor:
    photos = _report_photos()
    return torch.cat([to_tensor(photos[(start + i) % len(photos)], size) for i in range(batch)])


def measure(point: Point, photos: int, seeds: list[int], max_seconds: float) -> dict[str, Any]:
    """Every (photo, seed) run of one point, summed up: ms per evaluation, evaluations to 30 dB, peak memory."""
    seconds = evals = 0.0
    to_30db, peaks, growths = [], [], []
    exact = True
    for start in range(photos):
        images = _batch(start * point.batch, point.batch, point.size)
        for seed in seeds:
            base = bench.CONFIGS[point.config]
            config = base.replace(size=point.size, model=point.model, seed=seed, threads=1, max_seconds=max_seconds)
            before, exact = _status_mb("VmRSS"), reset_peak() and exact
            result = bench.bench_run(config, images, [i % config.classes for i in range(point.batch)])
            peak = _status_mb("VmHWM") or bench.peak_rss_mb()
            seconds, evals = seconds + result.seconds, evals + result.evals
            peaks.append(peak)
            growths.append(peak - before if before is not None else math.nan)
            if result.evals_to_30db is not None:
                to_30db.append(result.evals_to_30db)
    runs = photos * len(seeds)
    return asdict(point) | {
        "runs": runs, "reached_30db": len(to_30db), "ms_per_eval": 1000 * seconds / evals if evals else None,
        "median_evals_to_30db": statistics.median(to_30db) if to_30db else None, "evals_run": int(evals),
        "peak_rss_mb": round(max(peaks), 1), "peak_growth_mb": round(max(growths), 1),
        "peak_exact": exact,  # False: the process's peak so far (no /proc/self/clear_refs here), an upper bound
    }


def in_child(function, *args):
    """``function(*args)`` in a forked copy of this process, so that every point starts from the same memory
    (a freed tensor's pages stay with the allocator: measured in one process, each point would hide in the
    last one's leftovers); in this process where there is no fork."""
    if not hasattr(os, "fork"):
        return function(*args)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, send, leave without running the parent's exit handlers
        code = 0
        try:
            with os.fdopen(write, "w") as out:  # JSON, not pickle: nothing that arrives here is ever unpickled
                json.dump(function(*args), out)
        except BaseException:  # noqa: BLE001 - the parent reports a child that sent nothing
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    if not data or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the measuring child process failed (exit {os.waitstatus_to_exitcode(status)})")
    return json.loads(data)


def fit_exponent(xs: list[float], ys: list[float | None]) -> float | None:
    """a in y = c * x^a, fitted on log-log axes; None with fewer than two usable points."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and y > 0 and x > 0]
    if len(pairs) < 2:
        return None
    return float(np.polyfit(np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs]), 1)[0])


def growth(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """The fitted exponents per configuration: ms/eval, evals to 30 dB and peak growth against pixels and batch."""
    fits: dict[str, dict[str, float | None]] = {}
    for key in bench.CONFIGS:
        by_size = [r for r in rows if r["config"] == key and r["axis"] == "size"]
        by_batch = [r for r in rows if r["config"] == key and r["axis"] == "batch"]
        pixels = [r["size"] ** 2 for r in by_size]
        fits[key] = {
            "ms_per_eval_vs_pixels": fit_exponent(pixels, [r["ms_per_eval"] for r in by_size]),
            "evals_to_30db_vs_pixels": fit_exponent(pixels, [r["median_evals_to_30db"] for r in by_size]),
            "peak_growth_vs_pixels": fit_exponent(pixels, [r["peak_growth_mb"] for r in by_size]),
            "ms_per_eval_vs_batch": fit_exponent([r["batch"] for r in by_batch], [r["ms_per_eval"] for r in by_batch]),
        }
    return fits


# ----------------------------------------------------------------------------------------------- throughput

def throughput_jobs(runs: int, max_seconds: float) -> list[experiment.Job]:
    folder = Path(tempfile.mkdtemp(prefix="dlg-scaling-"))
    photo_sets.write_set("report", folder)
    return experiment.Grid(images=(str(folder),), attacks=("idlg",), models=("lenet",), sizes=(BASE_SIZE,),
                           seeds=tuple(range(math.ceil(runs / len(photo_sets.REPORT)))), steps=300,
                           max_seconds=max_seconds, stop_at_psnr=metrics.SUCCESS_PSNR).jobs()[:runs]


def throughput(worker_counts: list[int], runs: int, max_seconds: float) -> list[dict[str, Any]]:
    """The same grid serially in this process, then on a local Ray instance with each number of workers."""
    jobs = throughput_jobs(runs, max_seconds)
    started = time.perf_counter()
    experiment.run_grid(jobs, None, progress=False)
    serial = time.perf_counter() - started
    lines = [{"workers": 0, "runs": len(jobs), "grid_seconds": round(serial, 2), "ray_start_seconds": None,
              "workers_warm_seconds": None, "runs_per_min": round(60 * len(jobs) / serial, 2), "speedup": 1.0,
              "runs_per_min_cold": None, "worker_peak_rss_mb": []}]
    for count in worker_counts:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            with grid_ray.ray_session(count, None) as ray:
                ray_start = time.perf_counter() - started
                warm = ray.remote(num_cpus=1)(grid_ray.warm_worker)
                ray.get([warm.remote(seconds=1.0) for _ in range(count)])  # at once: one on each worker
                warmed = time.perf_counter() - started
                grid_ray.run_grid_ray(jobs, Path(folder) / "grid.csv", progress=False, workers=count)
                seconds = time.perf_counter() - started - warmed
                peaks = ray_worker_peaks_mb()
        lines.append({"workers": count, "runs": len(jobs), "grid_seconds": round(seconds, 2),
                      "ray_start_seconds": round(ray_start, 2), "workers_warm_seconds": round(warmed - ray_start, 2),
                      "runs_per_min": round(60 * len(jobs) / seconds, 2), "speedup": round(serial / seconds, 2),
                      "runs_per_min_cold": round(60 * len(jobs) / (seconds + warmed), 2),
                      "worker_peak_rss_mb": peaks})
    return lines


# ------------------------------------------------------------------------------------------- report and plot

def _f(x: Any, spec: str, width: int) -> str:
    return ("-" if x is None else format(x, spec)).rjust(width)


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{'config':<9} {'axis':<5} {'size':>4} {'batch':>5} {'victim':<8} {'ms/eval':>8} {'≥30dB':>6} "
             f"{'med evals':>9} {'evals run':>9} {'peak MB':>8} {'+MB':>6}"]
    for r in report["points"]:
        lines.append(f"{r['config']:<9} {r['axis']:<5} {r['size']:>4} {r['batch']:>5} {r['model']:<8} "
                     f"{_f(r['ms_per_eval'], '.2f', 8)} {r['reached_30db']:>3}/{r['runs']:<2} "
                     f"{_f(r['median_evals_to_30db'], '.0f', 9)} {r['evals_run']:>9} {r['peak_rss_mb']:>8.0f} "
                     f"{r['peak_growth_mb']:>6.1f}")
    for key, fit in report["growth"].items():
        said = [f"{what.replace('_vs_', ' grows as ').replace('pixels', 'pixels^').replace('batch', 'batch^')}"
                f"{_f(a, '.2f', 0)}" for what, a in fit.items()]
        lines.append(f"{key}: " + "; ".join(said))
    for t in report["throughput"]:
        who = "serial (no Ray)" if t["workers"] == 0 else f"{t['workers']} Ray worker(s)"
        lines.append(f"grid of {t['runs']} runs, {who}: {t['runs_per_min']:.1f} runs/min ({t['grid_seconds']:.1f} s), "
                     f"x{t['speedup']:.2f} the serial throughput"
                     + ("" if t["ray_start_seconds"] is None else
                        f"; {t['runs_per_min_cold']:.1f} runs/min counting Ray's start ({t['ray_start_seconds']:.1f} s)"
                        f" and the workers' imports ({t['workers_warm_seconds']:.1f} s)")
                     + (f"; worker peak MB {t['worker_peak_rss_mb']}" if t["worker_peak_rss_mb"] else ""))
    lines.append(f"the whole measurement took {report['seconds'] / 60:.1f} min; threads per run: 1")
    return "\n".join(lines)


def save_plot(report: dict[str, Any], path: Path) -> None:
    """Time per evaluation, evaluations to 30 dB and peak memory growth against each axis, and the grid's
    throughput against workers, as one plotly HTML page (plotly.js from its CDN: a small file)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("ms per evaluation vs pixels", "ms per evaluation vs batch", "ms per evaluation by victim",
              "evaluations to 30 dB vs pixels", "peak memory growth (MB) vs pixels", "grid runs/min vs workers")
    fig = make_subplots(rows=2, cols=3, subplot_titles=titles)
    points = report["points"]
    for key, colour in zip(bench.CONFIGS, ("#d62728", "#1f77b4"), strict=True):
        mine = {axis: [r for r in points if r["config"] == key and r["axis"] == axis] for axis in ("size", "batch",
                                                                                                   "model")}
        px = [r["size"] ** 2 for r in mine["size"]]
        common = dict(name=key, legendgroup=key, marker_color=colour)
        fig.add_trace(go.Scatter(x=px, y=[r["ms_per_eval"] for r in mine["size"]], **common), 1, 1)
        fig.add_trace(go.Scatter(x=[r["batch"] for r in mine["batch"]], y=[r["ms_per_eval"] for r in mine["batch"]],
                                 showlegend=False, **common), 1, 2)
        fig.add_trace(go.Bar(x=[r["model"] for r in mine["model"]], y=[r["ms_per_eval"] for r in mine["model"]],
                             showlegend=False, **common), 1, 3)
        fig.add_trace(go.Scatter(x=px, y=[r["median_evals_to_30db"] for r in mine["size"]], showlegend=False,
                                 **common), 2, 1)
        fig.add_trace(go.Scatter(x=px, y=[r["peak_growth_mb"] for r in mine["size"]], showlegend=False, **common),
                      2, 2)
    grid = report["throughput"]
    who = [f"{t['workers']} worker{'s' * (t['workers'] > 1)}" if t["workers"] else "serial" for t in grid]
    fig.add_trace(go.Bar(x=who, y=[t["runs_per_min"] for t in grid], name="grid, warm", marker_color="#2ca02c"), 2, 3)
    fig.add_trace(go.Bar(x=who, y=[t["runs_per_min_cold"] for t in grid], name="grid, with Ray's start",
                         marker_color="#98df8a"), 2, 3)
    for row, col in ((1, 1), (2, 1), (2, 2)):
        fig.update_xaxes(type="log", title_text="pixels", row=row, col=col)
    for row, col in ((1, 1), (1, 2), (1, 3), (2, 1)):
        fig.update_yaxes(type="log", row=row, col=col)
    fig.update_layout(title="How a run's cost grows (python -m dlg_core scaling)", height=750, barmode="group")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn")


# ---------------------------------------------------------------------------------------------------- CLI

def add_parser(commands) -> None:
    p = commands.add_parser("scaling", help="how a run's cost grows with resolution, batch, victim and Ray workers")
    p.add_argument("--sizes", nargs="+", type=int, default=[16, 32, 64, 128])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--models", nargs="+", default=["lenet", "cnn", "wide_cnn", "mlp", "resnet"],
                   help="victims at 32 px")
    p.add_argument("--photos", type=int, default=2, help="report photos (or batches of them) per point")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--max-seconds", type=float, default=15.0,
                   help="time budget of a run (the textbook attack rarely reaches 30 dB above 32 px)")
    p.add_argument("--workers", nargs="*", type=int, default=[1, 2],
                   help="Ray worker counts for the grid's throughput (none: skip it)")
    p.add_argument("--grid-runs", type=int, default=14, help="runs in the throughput grid")
    p.add_argument("--plot", type=Path, default=PLOT_FILE, help="the plotly HTML page to write")
    p.add_argument("--json", type=Path, help="write the full report here")


def command_scaling(args) -> int:
    from .config import MODEL_NAMES

    unknown = sorted(set(args.models) - set(MODEL_NAMES))
    if unknown:
        raise BadInputError(f"Unknown victim {unknown[0]!r}: choose from {', '.join(MODEL_NAMES)}.")
    if args.workers:
        grid_ray.import_ray()  # a missing Ray is said now, not after the long part
    started = time.perf_counter()
    torch.set_num_threads(1)
    bench.warm_up_torch()
    measured: dict[tuple, dict[str, Any]] = {}  # the base point is on every axis: measured once
    rows = []
    for point in plan(args.sizes, args.batches, args.models):
        key = (point.config, point.size, point.batch, point.model)
        if key not in measured:
            print(f"measuring {point.config} at {point.size} px, batch {point.batch}, {point.model}", file=sys.stderr)
            measured[key] = in_child(measure, point, args.photos, args.seeds, args.max_seconds)
        rows.append(measured[key] | {"axis": point.axis})
    report = {"points": rows, "growth": growth(rows),
              "throughput": throughput(args.workers, args.grid_runs, args.max_seconds) if args.workers else []}
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(format_report(report))
    save_plot(report, args.plot)
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
