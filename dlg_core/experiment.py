"""``python -m dlg_core experiment``: a grid of attack runs, one CSV row each, and a summary table to put beside
the papers'.

A grid crosses photos, attacks, victims, sizes, classes, seeds, defence lists, batch sizes and FedAvg local
steps. Each cell is a ``Job``; ``run_job`` runs it with ``run.AttackRun`` and returns a flat row (the run
JSON's scalar fields, lists as JSON text, plus what the defence cost the learning), never raising for a
run that fails: a crash is a row with status "error". Rows are appended to the CSV as they finish and
carry a ``key``, so a re-run with the same file skips what is done (resume, no duplicates).

Named presets reproduce the papers' tables (see each one's description): ``seed-paper`` (Mu 2023),
``idlg-labels`` (Zhao et al. 2020), ``dlg-defenses`` (Zhu et al. 2019, section 5), ``beyond`` (the other
attacks and victims of this project).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import math
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from . import attack_registry, limits, metrics
from . import config as cfg
from .defenses import learning_cost, parse_defenses, specs_text
from .errors import BadInputError
from .images import ASSETS_DIR, SAMPLES, load_image, load_sample

SAMPLE_NAMES = tuple(s.name for s in SAMPLES)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Who did not run: an impossible combination (e.g. the closed-form attack on a convolutional victim) and a crash.
NOT_RUN = ("skipped", "error")
ATTACKERS = ("naive", "adaptive")  # the adaptive attacker knows the prescribed defence (attacks/adaptive.py)
_KEY_END = re.compile(r"#[0-9a-f]{12}$")  # a key ends with its hash: a row cut short has no valid key

JOB_COLUMNS = ("image", "attack", "model", "size", "classes", "seed", "defenses", "batch", "fedavg_steps", "clients",
               "attacker")
RESULT_COLUMNS = (
    "status", "steps_run", "evals", "seconds", "seconds_to_30db", "evals_to_30db", "label_true", "label_guess",
    "label_correct", "label_accuracy", "final_mse", "final_mse_255", "final_psnr", "final_ssim", "message", "diagnosis",
    "warning",
    "victim_seed", "gradient_norm", "restarts", "update_cosine", "update_relative_error", "loss_before",
    "loss_after_true", "loss_after_defended", "per_image", "config",
    # What the defence costs a small federated model (dlg_core/utility.py): test accuracy after the rounds.
    "utility_accuracy", "utility_accuracy_undefended", "utility_rounds", "utility_clients",
)
COLUMNS = (*JOB_COLUMNS, *RESULT_COLUMNS, "key")  # the key last: a row cut short mid-write never looks complete


# ---------------------------------------------------------------------------------------------------- photos

@dataclass(frozen=True)
class Photo:
    name: str  # a bundled sample's name, or the path as given
    sample_label: int | None  # cat 0 / dog 1 for a bundled sample


def resolve_images(items: Iterable[str]) -> tuple[Photo, ...]:
    """Bundled sample names, image files and folders of them -> the photos, in order, each once."""
    by_file = {(ASSETS_DIR / s.filename).resolve(): s for s in SAMPLES}
    photos: list[Photo] = []
    for item in items:
        item = str(item)
        if item in SAMPLE_NAMES:
            paths = [ASSETS_DIR / next(s.filename for s in SAMPLES if s.name == item)]
        elif Path(item).is_dir():
            paths = sorted(p for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not paths:
                raise BadInputError(f"{item}: the folder holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        elif Path(item).is_file():
            paths = [Path(item)]
        else:
            raise BadInputError(f"{item}: not a bundled sample ({', '.join(SAMPLE_NAMES)}), an image file or a "
                                "folder of them.")
        for path in paths:
            sample = by_file.get(path.resolve())
            photo = Photo(sample.name, sample.label) if sample else Photo(str(path), None)
            if photo not in photos:
                photos.append(photo)
    if not photos:
        raise BadInputError("Give at least one photo: a bundled sample name, an image file or a folder.")
    return tuple(photos)


@functools.lru_cache(maxsize=64)
def _load(name: str, size: int) -> torch.Tensor:
    return load_sample(name, size) if name in SAMPLE_NAMES else load_image(name, size)


def load_photo(name: str, size: int) -> torch.Tensor:
    """A photo at the job's size; decoded once per process and size (the grid reuses each photo many times)."""
    return _load(name, size).clone()


# ------------------------------------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Job:
    """One run of a grid: which photos (the batch) with which labels, and the setting."""

    images: tuple[str, ...]  # sample names or file paths, one per photo of the batch
    labels: tuple[int, ...]
    attack: str = "idlg"
    model: str = "lenet"
    size: int = 32
    classes: int = 2
    seed: int = 0
    defenses: str = ""  # canonical comma-separated specs, "" for none
    fedavg_steps: int = 1
    clients: int = 1  # the photos are dealt among this many clients; the server sees their aggregate
    steps: int = 300
    max_seconds: float = 60.0
    stop_at_psnr: float | None = None  # stop a run once it is this good (measures success, saves time)
    base: str = "default"  # the settings a run starts from: "default" (the app's) or "textbook" (DLG's)
    distance: str = ""  # the gradient distance, when it must not follow the base (a paper's, e.g. "l2")
    attacker: str = "naive"  # or "adaptive": knows the prescribed defence

    @property
    def batch(self) -> int:
        """Photos per client."""
        return len(self.images) // self.clients

    def config(self) -> cfg.AttackConfig:
        """The run's settings; BadInputError for an impossible combination (e.g. analytic on a CNN)."""
        base = cfg.TEXTBOOK if self.base == "textbook" else cfg.default_for(self.attack, self.model)
        return base.replace(attack=self.attack, model=self.model, size=self.size, classes=self.classes,
                            seed=self.seed, defenses=self.defenses, fedavg_steps=self.fedavg_steps,
                            clients=self.clients, steps=self.steps, max_seconds=self.max_seconds, threads=1,
                            adaptive=self.attacker == "adaptive",
                            **({"distance": self.distance} if self.distance else {}))

    @property
    def key(self) -> str:
        """Readable, then a hash of everything that shapes the result: the photos, labels, stopping rule and the
        run's whole config (so a changed setting, or a changed default, is a new row)."""
        try:
            setting: dict[str, Any] = self.config().to_dict()
            if not setting["adaptive"]:
                del setting["adaptive"]  # the naive attacker's keys stay those of the rows made before it existed
        except BadInputError:  # an impossible combination: its own fields say what it was
            setting = {f.name: getattr(self, f.name) for f in fields(self)}
        text = json.dumps({"images": self.images, "labels": self.labels, "stop_at_psnr": self.stop_at_psnr,
                           "config": setting}, sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        return (f"{'+'.join(Path(name).name for name in self.images)}|{self.attack}|{self.model}|{self.size}px"
                f"|c{self.classes}|s{self.seed}|{self.defenses or 'none'}|b{self.batch}|k{self.fedavg_steps}"
                + (f"|n{self.clients}" if self.clients > 1 else "")
                + f"{'|adaptive' if self.attacker == 'adaptive' else ''}#{digest}")

    def identity(self) -> dict[str, Any]:
        """The row's job columns."""
        return {"image": "+".join(self.images), "attack": self.attack, "model": self.model, "size": self.size,
                "classes": self.classes, "seed": self.seed, "defenses": self.defenses or "none",
                "batch": self.batch, "fedavg_steps": self.fedavg_steps, "clients": self.clients,
                "attacker": self.attacker, "key": self.key}


def _label(photo: Photo, index: int, classes: int) -> int:
    # The bundled samples are cats and dogs: with two classes they get their own label.
    return photo.sample_label if classes == 2 and photo.sample_label is not None else index % classes


@dataclass(frozen=True)
class Grid:
    """Axes to cross. A batch of n takes n distinct photos, starting at each photo in turn and wrapping round.

    With ``photo_per_seed`` a seed does not cross the photos: seed s attacks photo s (mod their number) alone,
    or the batch starting there, so that a large grid still sees several photos at a fraction of the cost.
    """

    images: tuple[str, ...] = SAMPLE_NAMES
    attacks: tuple[str, ...] = ("idlg",)
    models: tuple[str, ...] = ("lenet",)
    sizes: tuple[int, ...] = (32,)
    classes: tuple[int, ...] = (2,)
    seeds: tuple[int, ...] = (0,)
    defenses: tuple[str, ...] = ("",)  # each item a whole defence list
    batches: tuple[int, ...] = (1,)
    fedavg_steps: tuple[int, ...] = (1,)
    clients: tuple[int, ...] = (1,)  # each client holds `batch` photos; the server sees their aggregate
    steps: int = 300
    max_seconds: float = 60.0
    stop_at_psnr: float | None = None
    base: str = "default"
    distance: str = ""  # "" follows the base
    steps_by_attack: tuple[tuple[str, int], ...] = ()  # e.g. (("ig", 1000),): Adam needs more steps
    omit_impossible: bool = False  # leave out combinations a run would refuse, instead of "skipped" rows
    photo_per_seed: bool = False  # seed s attacks photo s only, instead of every photo
    attackers: tuple[str, ...] = ("naive",)  # "adaptive" adds a run by an attacker who knows the defence

    def check(self) -> None:
        """Each axis value alone must be a valid setting (BadInputError otherwise); only combinations that no
        run can do (the closed-form attack on a convolutional victim) are left to ``run_job`` to skip."""
        if self.base not in ("default", "textbook"):
            raise BadInputError(f"Unknown base {self.base!r}: default or textbook.")
        if self.distance and self.distance not in cfg.DISTANCE_NAMES:
            raise BadInputError(f"Unknown distance {self.distance!r}: choose one of {', '.join(cfg.DISTANCE_NAMES)}.")
        axes = {"attack": self.attacks, "model": self.models, "size": self.sizes, "classes": self.classes,
                "seed": self.seeds, "fedavg_steps": self.fedavg_steps, "clients": self.clients}
        for setting, values in axes.items():
            for value in values:  # an attack is checked on a victim it applies to (the closed form: the mlp)
                victims = attack_registry.get(value).victims if setting == "attack" else None
                cfg.DEFAULT.replace(**{setting: value}, **({"model": victims[0]} if victims else {}))
        for steps in (self.steps, *dict(self.steps_by_attack).values()):
            cfg.DEFAULT.replace(steps=steps, max_seconds=self.max_seconds)
        if not self.attacks or not self.models or not self.seeds or not self.defenses or not self.attackers:
            raise BadInputError("Every axis of the grid needs at least one value.")
        for attacker in self.attackers:
            if attacker not in ATTACKERS:
                raise BadInputError(f"Unknown attacker {attacker!r}: choose {' or '.join(ATTACKERS)}.")

    def jobs(self) -> list[Job]:
        self.check()
        photos = resolve_images(self.images)
        defence_lists = tuple(dict.fromkeys(specs_text(parse_defenses(d)) for d in self.defenses))
        most = max(limits.max_batch(attack) for attack in self.attacks)
        for n, k in itertools.product(self.batches, self.clients):
            if not 1 <= n * k <= min(len(photos), most):
                raise BadInputError(f"{k} client(s) with a batch of {n} need {n * k} distinct photos (at most "
                                    f"{most}); the grid has {len(photos)}.")
        steps = dict(self.steps_by_attack)
        jobs = []
        for seed in self.seeds:
            starts = [seed % len(photos)] if self.photo_per_seed else range(len(photos))
            for start in starts:
                for size in self.sizes:
                    for model in self.models:
                        for classes in self.classes:
                            for attack in self.attacks:
                                for n, clients in itertools.product(self.batches, self.clients):
                                    chosen = [(start + t) % len(photos) for t in range(n * clients)]
                                    for k in self.fedavg_steps:
                                        for defenses, attacker in _defended(defence_lists, self.attackers):
                                            job = Job(
                                                images=tuple(photos[i].name for i in chosen),
                                                labels=tuple(_label(photos[i], i, classes) for i in chosen),
                                                attack=attack, model=model, size=size, classes=classes,
                                                seed=seed, defenses=defenses, fedavg_steps=k, clients=clients,
                                                steps=steps.get(attack, self.steps), max_seconds=self.max_seconds,
                                                stop_at_psnr=self.stop_at_psnr, base=self.base,
                                                distance=self.distance, attacker=attacker)
                                            if self.omit_impossible and _impossible(job):
                                                continue
                                            jobs.append(job)
        return jobs


def _defended(defence_lists: Sequence[str], attackers: Sequence[str]) -> list[tuple[str, str]]:
    """Each defence list with each attacker, but no adaptive attacker without a defence (it would be the naive)."""
    return [(d, a) for d in defence_lists for a in attackers if d or a == "naive" or "naive" not in attackers]


def _impossible(job: Job) -> bool:
    try:
        job.config()
    except BadInputError:
        return True
    return False


# ------------------------------------------------------------------------------------------------------- runs

def _cell(value: Any) -> Any:
    """A CSV cell: scalars as they are, lists and dicts as JSON text."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def run_job(job: Job, stop_event: threading.Event | None = None, images: torch.Tensor | None = None) -> dict[str, Any]:
    """Run one job; the row it gives. Never raises for a failed run: a crash is status "error" with its message,
    an impossible combination status "skipped". ``images``: the job's photos, when the caller has them already."""
    from .run import AttackRun  # the attack stack imports in a moment; keep `import experiment` light
    from .utility import utility

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
    except Exception as err:  # noqa: BLE001 - a crashed run must be a row, never a lost one
        return row | {"status": "error", "message": f"{type(err).__name__}: {err}"[:500],
                      "seconds": round(time.perf_counter() - started, 4)}
    for name, value in result.items():
        if name not in ("defenses",) + tuple(row):  # the job's own columns say it already
            row[name] = _cell(value)
    guess = run.result.label_guess
    row["label_accuracy"] = metrics.label_accuracy(guess, job.labels) if guess else None
    row |= {"update_cosine": cost.cosine, "update_relative_error": cost.relative_error,
            "loss_before": cost.loss_before, "loss_after_true": cost.loss_after_true,
            "loss_after_defended": cost.loss_after_defended}
    row |= {"utility_accuracy": learning.accuracy, "utility_accuracy_undefended": learning.undefended_accuracy,
            "utility_rounds": learning.setting.rounds, "utility_clients": learning.setting.clients}
    return row


# -------------------------------------------------------------------------------------------------------- CSV

def _complete(row: dict[str, Any]) -> bool:
    return None not in row and None not in row.values() and bool(_KEY_END.search(row.get("key") or ""))


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The complete rows of a results CSV (a row cut short by a crash mid-write is left out); [] if none."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [row for row in csv.DictReader(file) if _complete(row)]


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row (writing the header first for a new file), in one write, flushed."""
    path = Path(path)
    header = COLUMNS
    prefix = ""
    if path.exists() and path.stat().st_size:
        with path.open(newline="") as file:
            header = tuple(next(csv.reader(file), COLUMNS))
        if not _ends_with_newline(path):
            prefix = "\n"  # a line cut short by a crash: start afresh on the next line
        if "key" not in header:
            raise BadInputError(f"{path} is not a results file of this tool (it has no 'key' column).")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore")
    if header is COLUMNS:
        writer.writeheader()
    writer.writerow({name: "" if row.get(name) is None else row[name] for name in header})
    with path.open("a", newline="") as file:
        file.write(prefix + buffer.getvalue())
        file.flush()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, 2)
        return file.read(1) in (b"\n", b"\r")


def run_grid(jobs: Sequence[Job], out: str | Path | None, progress: bool = True,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the jobs not yet in ``out`` (appending a row as each finishes); every job's row, old and new."""
    from tqdm import tqdm

    from .run import warm_up

    done, todo = jobs_to_run(jobs, out, progress)
    warm_up()
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
    psnr = _number(row.get("final_psnr"))
    bar.set_postfix_str(f"{row['status']} {'-' if psnr is None else f'{psnr:.1f} dB'}", refresh=False)
    bar.update(1)
    return row


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


# -------------------------------------------------------------------------------------------------- summary

def _number(value: Any) -> float | None:
    """A cell as a number (CSV cells are text, booleans True/False), None when empty or not finite."""
    if isinstance(value, bool) or value in ("True", "False"):
        return float(value in (True, "True"))
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _psnr(row: dict[str, Any]) -> float | None:
    """The run's PSNR; a batch with an exact copy in it has none in its JSON (the mean over its pairs is
    infinite): its whole batch's MSE says how good it is then."""
    psnr = _number(row.get("final_psnr"))
    mse = _number(row.get("final_mse"))
    return psnr if psnr is not None or mse is None else min(metrics.psnr_from_mse(mse), metrics.PSNR_CAP)


def summarise(rows: Sequence[dict[str, Any]], by: Sequence[str]) -> list[dict[str, Any]]:
    """One line per group of ``by`` values (in first-seen order): success rate (PSNR >= 30 dB), MSE on 0-255 and
    [0,1] (median and mean), median PSNR and SSIM, label accuracy, median seconds, and the federated model's
    accuracy with the group's defence (``utility.py``). Crashed and skipped runs are
    counted but left out of every statistic; a run that stopped without an image counts as a failure."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(name, "")) for name in by), []).append(row)
    lines = []
    for values, group in groups.items():
        ran = [r for r in group if r.get("status") not in NOT_RUN]

        def column(name: str, rows_: list[dict[str, Any]] = ran) -> list[float]:
            return [x for x in (_number(r.get(name)) for r in rows_) if x is not None]

        psnrs = [_psnr(r) for r in ran if _psnr(r) is not None]
        lines.append(dict(zip(by, values, strict=True)) | {
            "runs": len(group),
            "errors": sum(r.get("status") == "error" for r in group),
            "skipped": sum(r.get("status") == "skipped" for r in group),
            "success_rate": (sum(p >= metrics.SUCCESS_PSNR for p in psnrs) / len(ran)) if ran else None,
            "median_mse_255": _median(column("final_mse_255")),
            "mean_mse_255": _mean(column("final_mse_255")),
            "median_mse": _median(column("final_mse")),
            "mean_mse": _mean(column("final_mse")),
            "median_psnr": _median(psnrs),
            "median_ssim": _median(column("final_ssim")),
            "label_accuracy": _mean(column("label_accuracy")),
            "median_seconds": _median(column("seconds")),
            "utility_accuracy": _median(column("utility_accuracy")),
        })
    return lines


_SHOWN = (("runs", "runs", "d"), ("errors", "err", "d"), ("success_rate", "≥30dB", ".0%"),
          ("median_mse_255", "medMSE255", ".2f"), ("mean_mse_255", "meanMSE255", ".2f"),
          ("median_mse", "medMSE", ".5f"), ("mean_mse", "meanMSE", ".5f"), ("median_psnr", "medPSNR", ".1f"),
          ("median_ssim", "medSSIM", ".3f"), ("label_accuracy", "labels", ".0%"), ("median_seconds", "med s", ".1f"),
          ("utility_accuracy", "FL acc", ".0%"))


def format_summary(lines: Sequence[dict[str, Any]], by: Sequence[str]) -> str:
    """The summary as a plain-text table."""
    headers = [*by, *(title for _, title, _ in _SHOWN)]
    table = [[str(line[name]) for name in by]
             + ["-" if line[name] is None else format(line[name], spec) for name, _, spec in _SHOWN]
             for line in lines]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:  # the grouping columns left-aligned, the figures right-aligned
        return " ".join(c.ljust(widths[i]) if i < len(by) else c.rjust(widths[i]) for i, c in enumerate(cells))

    return "\n".join(line(cells) for cells in [headers, *table])


# -------------------------------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class Preset:
    name: str
    description: str  # one paragraph for the UI: the setting, what the paper reported, what we chose
    grid: Grid
    quick_grid: Grid  # a handful of jobs that finish in under a minute on one core (the app's)
    by: tuple[str, ...]  # how its summary is grouped

    def jobs(self, quick: bool = False) -> list[Job]:
        return (self.quick_grid if quick else self.grid).jobs()


DLG_DEFENCES = ("", "gaussian:0.0001", "gaussian:0.001", "gaussian:0.01", "gaussian:0.1", "prune:0.01", "prune:0.1",
                "prune:0.2", "prune:0.3", "prune:0.5", "prune:0.7", "fp16", "int8")

# The papers' presets pin DLG's squared L2 distance: the app's default may change, a paper's setting may not.
_seed_paper = Grid(attacks=("dlg", "layerwise"), models=("cnn",), sizes=(32,), classes=(2,), seeds=(0, 1, 2, 3, 4),
                   steps=300, max_seconds=60, distance="l2")
_idlg = Grid(attacks=("dlg", "idlg"), models=("lenet", "cnn", "mlp"), classes=(2, 10, 100), seeds=(0, 1, 2, 3, 4),
             steps=10, max_seconds=20, base="textbook")
# Beyond DLG's: sign compression, input mixing and Soteria (issue 15), each also against the adaptive attacker.
NEW_DEFENCES = ("sign", "mixup:0.25", "mixup:0.5", "soteria:0.5", "soteria:0.9")
_defences = Grid(attacks=("dlg",), models=("lenet",), classes=(100,), seeds=(0, 1, 2, 3, 4),
                 defenses=DLG_DEFENCES + NEW_DEFENCES, attackers=ATTACKERS,
                 steps=100, max_seconds=30, stop_at_psnr=metrics.SUCCESS_PSNR, distance="l2")
_beyond = Grid(attacks=("dlg", "idlg", "ig", "analytic"), models=("lenet", "cnn", "wide_cnn", "mlp", "resnet"),
               sizes=(32,),
               seeds=(0, 1, 2), batches=(1, 4), fedavg_steps=(1, 4), steps=300, steps_by_attack=(("ig", 1000),),
               max_seconds=60, omit_impossible=True, photo_per_seed=True)

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "seed-paper",
        "The seed paper's setting (Mu 2023, arXiv:2301.02621): DLG against a small sigmoid CNN with two classes, "
        "on the six bundled cat and dog photos (label: cat or dog), at 32x32 px, 300 L-BFGS steps, five seeds. "
        "The paper reports a mean MSE of about 5 on the 0-255 scale (about 41 dB) and most images completely "
        "restored. We count a photo as completely restored when its PSNR is at least 30 dB (MSE at most 65 on "
        "0-255), the line this project uses everywhere; the table's mean MSE (0-255) is the paper's figure. "
        "DLG's squared L2 gradient distance, with the app's optimiser (mid-grey start, strong-Wolfe L-BFGS), not "
        "DLG's N(0,1) start. Beside it, the paper's own description of its method, \"gradually extending from "
        "the fully-connected layer to the convolution layer\": the layer-by-layer attack (R-GAP, Zhu & Blaschko "
        "2021), which reads the fully-connected layer's input in closed form and walks back through the "
        "convolutions.",
        # The quick version stays DLG's two runs: the layer-by-layer rows take a second each in the full grid.
        _seed_paper, replace(_seed_paper, attacks=("dlg",), images=SAMPLE_NAMES[::3], seeds=(0,), steps=100),
        by=("attack", "model", "size"),
    ),
    Preset(
        "idlg-labels",
        "Label accuracy of DLG against iDLG (Zhao et al. 2020), with DLG's own optimiser (N(0,1) start, PyTorch "
        "L-BFGS, lr 1), over three victims (LeNet, the CNN, the fully-connected net), 2, 10 and 100 classes, the "
        "six bundled photos (labels: cat/dog for 2 classes, otherwise the photo's index) and five seeds. iDLG "
        "reads the label off the last layer before the first step; DLG learns it along with the image, mostly "
        "within its first few steps, so each run stops after 10 steps: the images are not finished, only the "
        "labels are judged. DLG's label can still change later (of the 17 of 270 DLG runs wrong after 10 steps, "
        "4 were right after 60), so its figure here is a slight underestimate. The iDLG paper reports 100% for "
        "iDLG and 79-89% for DLG.",
        _idlg, replace(_idlg, images=SAMPLE_NAMES[:1], seeds=(0,), classes=(2, 100), steps=5),
        by=("attack", "model", "classes"),
    ),
    Preset(
        "dlg-defenses",
        "DLG's defences (Zhu et al. 2019, section 5): Gaussian noise of scale 1e-4 to 1e-1 (variance 1e-8 to "
        "1e-2), pruning 1% to 70% of each layer's smallest entries, half precision and 8-bit integers, with no "
        "defence as the reference. DLG's setting as far as it is sensible here: the DLG attack (label learnt), "
        "LeNet with sigmoids and 100 classes at 32x32 px, the squared L2 gradient distance, on the six bundled "
        "photos with five seeds; the app's optimiser (mid-grey start, strong-Wolfe L-BFGS) instead of DLG's "
        "N(0,1) start, which fails on some seeds even undefended. A run stops once it reaches 30 dB (a success, "
        "so its MSE is near that line) or after 100 steps. DLG reports that noise of variance 1e-2 (scale 0.1) "
        "and pruning more than 20% stop the attack, and that half precision does not. Added here: sign "
        "compression (signSGD), input mixing (MixUp) and Soteria, and beside every defended run one by an "
        "adaptive attacker who knows the defence (it matches only the entries kept, compares signs, weighs by "
        "the noise, unmixes the photo); the column FL acc is a small federated model's test accuracy after "
        "30 rounds with that defence (dlg_core/utility.py).",
        _defences, replace(_defences, images=SAMPLE_NAMES[:1], seeds=(0,), steps=80,
                           defenses=("", "gaussian:0.01", "prune:0.7", "mixup:0.5", "soteria:0.9")),
        by=("defenses", "attacker"),
    ),
    Preset(
        "beyond",
        "The other attacks and victims (issue 4): DLG, iDLG, Inverting Gradients and the closed-form attack, "
        "against LeNet, the CNN, the app's wide CNN, the fully-connected net and the small ResNet at 32x32 px, one "
        "photo or four at once, FedSGD or 4 local FedAvg steps, seeds 0-2, with two classes and the app's default "
        "settings otherwise. Seed s attacks bundled photo s (a batch of four: photos s to s+3), not every photo: "
        "the full cross would be six times as long. The closed-form attack runs only against the fully-connected "
        "net (the one victim it applies to); the other combinations are left out. L-BFGS attacks get 300 steps, "
        "Inverting Gradients 1000 (Adam); every run at most 60 s.",
        _beyond, replace(_beyond, images=SAMPLE_NAMES[:1], seeds=(0,), batches=(1,), fedavg_steps=(1,),
                         models=("lenet", "mlp"), steps=30, steps_by_attack=(("ig", 60),)),
        by=("attack", "model", "batch", "fedavg_steps"),
    ),
)}


# ------------------------------------------------------------------------------------------------------- CLI

def add_parser(commands) -> None:
    p = commands.add_parser("experiment", help="run a grid of attacks (or a paper's preset) into a CSV, with a summary")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="start from a paper's grid; options given here override it")
    p.add_argument("--quick", action="store_true", help="the preset's quick version (a handful of runs)")
    p.add_argument("--images", nargs="+", metavar="DIR_OR_FILE",
                   help="bundled sample names, image files or folders (default: the six bundled photos)")
    # The axes that are settings take their type, choices and help from the setting's declaration (config.py).
    for flag, setting in (("--attacks", "attack"), ("--models", "model"), ("--sizes", "size"), ("--classes", "classes"),
                          ("--seeds", "seed")):
        p.add_argument(flag, nargs="+", **cfg.cli_argument(setting))
    p.add_argument("--defenses", nargs="+", metavar="SPEC_LIST",
                   help='each a whole defence list: "none", "prune:0.5", "dp:1:0.1,fp16"')
    p.add_argument("--batch", nargs="+", type=int, help="photos per run (n distinct photos, wrapping round)")
    p.add_argument("--fedavg-steps", nargs="+", **cfg.cli_argument("fedavg_steps"))
    p.add_argument("--clients", nargs="+", **cfg.cli_argument(
        "clients", help="clients per run, each with --batch photos; the server sees only their aggregate"))
    p.add_argument("--steps", type=int, help="step budget of every run")
    p.add_argument("--max-seconds", type=float, help="time budget of every run")
    p.add_argument("--stop-at-psnr", type=float, help="stop a run once it reaches this PSNR (dB)")
    p.add_argument("--textbook", action="store_true", help="start every run from DLG's settings, not the app's")
    p.add_argument("--photo-per-seed", action="store_true", default=None,
                   help="seed s attacks photo s only (a batch: the photos from there), instead of every photo")
    p.add_argument("--distance", **cfg.cli_argument("distance", help="gradient distance of every run"))
    p.add_argument("--attackers", nargs="+", choices=ATTACKERS,
                   help="naive (ignores the defence) and/or adaptive (knows it); adaptive runs only with a defence")
    p.add_argument("--out", type=Path, required=True, help="results CSV (appended to; rows already there are skipped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


_AXES = {"images": "images", "attacks": "attacks", "models": "models", "sizes": "sizes", "classes": "classes",
         "seeds": "seeds", "defenses": "defenses", "batch": "batches", "fedavg_steps": "fedavg_steps",
         "clients": "clients", "attackers": "attackers"}
_BY = {"images": "image", "attacks": "attack", "models": "model", "sizes": "size", "classes": "classes",
       "seeds": "seed", "defenses": "defenses", "batches": "batch", "fedavg_steps": "fedavg_steps",
       "clients": "clients", "attackers": "attacker"}


def grid_from_args(args) -> tuple[Grid, tuple[str, ...]]:
    """The grid (a preset's, overridden by the options given) and how its summary is grouped."""
    preset = PRESETS[args.preset] if args.preset else None
    grid = (preset.quick_grid if args.quick else preset.grid) if preset else Grid()
    changes: dict[str, Any] = {axis: tuple(getattr(args, option)) for option, axis in _AXES.items()
                               if getattr(args, option) is not None}
    for option in ("steps", "max_seconds", "stop_at_psnr", "distance", "photo_per_seed"):
        if getattr(args, option) is not None:
            changes[option] = getattr(args, option)
    if args.textbook:
        changes["base"] = "textbook"
    grid = replace(grid, **changes)
    if preset:
        by = preset.by
    else:  # group by what varies (the seeds and photos are the repeats)
        by = tuple(_BY[axis] for axis in ("attacks", "models", "sizes", "classes", "defenses", "batches",
                                          "fedavg_steps", "clients", "attackers")
                   if len(getattr(grid, axis)) > 1) or ("attack", "model")
    return grid, by


def command_experiment(args, run: Callable = run_grid) -> int:
    """``run``: the runner, ``run_grid`` in this process or ``grid_ray.run_grid_ray`` on Ray's workers."""
    grid, by = grid_from_args(args)
    jobs = grid.jobs()  # BadInputError (exit 2) for a bad photo, setting, defence or batch before anything runs
    if args.out.exists() and not args.out.is_file():
        raise BadInputError(f"{args.out} is not a file.")
    rows = run(jobs, args.out, progress=not args.quiet)
    print(format_summary(summarise(rows, by), by))
    errors = sum(row.get("status") == "error" for row in rows)
    print(f"{len(rows)} runs in {args.out}" + (f", {errors} crashed (see their 'message')" if errors else "")
          + f"; success = PSNR >= {metrics.SUCCESS_PSNR:g} dB")
    return 0
