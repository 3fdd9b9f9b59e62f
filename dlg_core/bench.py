"""``python -m dlg_core bench``: the app's default attack against the papers' textbook one, in one process.

Both configurations run interleaved on the same photos and seeds, so that the machine's noise hits them
alike; the ratios printed are from the same run. A run counts as a success when it reaches 30 dB PSNR
within its step and time budget; it is stopped there, since the benchmark measures time to 30 dB.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from . import config as cfg
from . import metrics, photo_sets
from .attacks.analytic import analytic
from .attacks.base import AttackerKnowledge, AttackSettings
from .attacks.imprint import imprint
from .client import compute_shared_update
from .experiment import load_photo, resolve_images
from .images import SAMPLES, decode_image, load_sample, sample_path
from .matching import matched_metrics
from .metrics import SUCCESS_PSNR
from .models import build_model
from .run import AttackRun, warm_up_torch

CLOSED_FORM_SIZE = 224  # ImageNet's resolution: beyond the app's limit, which is why only the benchmark goes there

CONFIGS = {"textbook": cfg.TEXTBOOK, "default": cfg.DEFAULT}


@dataclass
class Tally:
    runs: int = 0
    seconds_to_30db: list[float] = field(default_factory=list)
    evals_to_30db: list[int] = field(default_factory=list)
    seconds: float = 0.0
    evals: int = 0
    timeouts: int = 0  # runs cut by the time budget rather than the step budget (a loaded machine shows here)

    def summary(self) -> dict[str, Any]:
        hits = len(self.seconds_to_30db)
        return {
            "runs": self.runs,
            "successes": hits,
            "success_rate": hits / self.runs if self.runs else None,
            "median_seconds_to_30db": statistics.median(self.seconds_to_30db) if hits else None,
            "median_evals_to_30db": statistics.median(self.evals_to_30db) if hits else None,
            "seconds_per_eval": self.seconds / self.evals if self.evals else None,
            "timeouts": self.timeouts,
        }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_run(config: cfg.AttackConfig, images: torch.Tensor, labels: list[int]):
    """One run (a photo, or a batch of them), stopped once it reaches 30 dB; its result."""
    run = AttackRun(config, images, labels)
    for snap in run:
        if snap.psnr >= SUCCESS_PSNR:
            run.stop()
    return run.result


def first_frame_seconds(size: int = 32) -> float:
    """What the app's user waits for after Run: building the victim's update and the attack's first frame."""
    image = load_sample(SAMPLES[0].name, size)
    started = time.perf_counter()
    run = AttackRun(cfg.DEFAULT.replace(size=size), image, [SAMPLES[0].label])
    next(iter(run))
    return time.perf_counter() - started


def closed_form_timing(size: int = CLOSED_FORM_SIZE, name: str | None = None) -> dict[str, Any]:
    """The closed-form attack on one photo at ``size`` px against the mlp victim: no optimisation, one pass.

    Times the attack only (reading the image off the first layer's gradient and the one evaluation that
    reports its distance), not building the victim or its update, which the client pays.
    """
    sample = next(s for s in SAMPLES if s.name == name) if name else SAMPLES[0]
    # images.to_tensor stops at the app's size limit; PIL's fit is the same centre-crop and Lanczos resize.
    photo = ImageOps.fit(decode_image(sample_path(sample.name)).image, (size, size), Image.Resampling.LANCZOS)
    image = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
    model = build_model("mlp", size, 2, seed=0, max_size=size)
    report = compute_shared_update(model, image, torch.tensor([sample.label]))
    knowledge = AttackerKnowledge(model, report.update, tuple(image.shape), 2)
    started = time.perf_counter()
    progress = next(iter(analytic(knowledge, AttackSettings(distance=cfg.DEFAULT.distance))))
    seconds = time.perf_counter() - started
    psnr = metrics.image_metrics(progress.reconstruction.clamp(0, 1), image).psnr
    return {"size": size, "image": sample.name, "model": "mlp", "seconds": round(seconds, 4),
            "psnr": round(psnr, 2) if math.isfinite(psnr) else None}  # inf: an exact copy (JSON has no inf)


def imprint_timing(batch: int, size: int, seeds: list[int]) -> dict[str, Any]:
    """The malicious server's imprint attack on ``batch`` distinct crops of the report set, per seed.

    Times the attack alone (reading the batch off the imprint layer, its labels, and the one evaluation that
    reports its distance) apart from the client's update and from the demo's scoring; counts the photos
    matched at 50 dB or better.
    """
    rows = []
    for seed in seeds:
        images = torch.from_numpy(photo_sets.distinct_crops(batch, size, seed=seed)).permute(0, 3, 1, 2).float() / 255
        config = cfg.DEFAULT.replace(attack="imprint", size=size, seed=seed, threads=1)
        labels = tuple(i % config.classes for i in range(batch))
        started = time.perf_counter()
        run = AttackRun(config, images, labels)
        client = time.perf_counter() - started
        started = time.perf_counter()
        progress = next(iter(imprint(run.knowledge(), AttackSettings(distance=config.distance))))
        attack = time.perf_counter() - started
        scores = [s.psnr for s in matched_metrics(progress.reconstruction.clamp(0, 1), images).per_image]
        rows.append({"seed": seed, "client_seconds": round(client, 4), "attack_seconds": round(attack, 4),
                     "at_50db": sum(p >= 50 for p in scores), "min_psnr": round(min(scores), 1),
                     "median_psnr": round(statistics.median(scores), 1)})
    return {"batch": batch, "size": size, "photos": "report set, distinct_crops", "runs": rows}


def print_imprint(timing: dict[str, Any]) -> None:
    runs = timing["runs"]
    found = sum(r["at_50db"] for r in runs)
    print(f"imprint attack, batches of {timing['batch']} at {timing['size']} px ({timing['photos']}, seeds "
          f"{[r['seed'] for r in runs]}): {found}/{timing['batch'] * len(runs)} photos at >= 50 dB "
          f"(per batch {[r['at_50db'] for r in runs]}); attack {min(r['attack_seconds'] for r in runs):.2f}-"
          f"{max(r['attack_seconds'] for r in runs):.2f} s (median "
          f"{statistics.median(r['attack_seconds'] for r in runs):.2f}), client's update median "
          f"{statistics.median(r['client_seconds'] for r in runs):.2f} s, median PSNR "
          f"{statistics.median(r['median_psnr'] for r in runs):.0f} dB, "
          f"lowest {min(r['min_psnr'] for r in runs):.1f} dB")


def benchmark(images: list[str], seeds: list[int], large_seeds: list[int], sizes: list[int], threads: int,
              steps: int | None, max_seconds: dict[str, float], progress: bool = True,
              closed_form_size: int | None = CLOSED_FORM_SIZE, default: cfg.AttackConfig = cfg.DEFAULT
              ) -> dict[str, Any]:
    """``images``: bundled sample names, image files or folders; ``default``: the app's attack and victim, or the
    app's attack on another victim (``bench --model lenet --classes 100``: the textbook's)."""
    bench_started = time.perf_counter()
    torch.set_num_threads(threads)
    warm_up_torch()
    configs = {"textbook": CONFIGS["textbook"], "default": default}
    photos = resolve_images(images)
    report: dict[str, Any] = {
        "images": [p.name for p in photos], "seeds": seeds, "large_seeds": large_seeds, "sizes": sizes,
        "threads": threads, "steps": steps, "max_seconds": max_seconds,
        "configs": {k: c.to_dict() for k, c in configs.items()}, "results": {},
    }
    jobs = [(size, index, seed) for size in sizes for index in range(len(photos))
            for seed in (seeds if size <= 32 else large_seeds)]
    tallies = {(size, key): Tally() for size in sizes for key in configs}
    peaks: dict[tuple[int, str], float] = {}
    bar = tqdm(total=len(jobs) * len(configs), disable=not progress, file=sys.stderr, unit="run")
    for size, index, seed in jobs:
        photo = photos[index]
        image = load_photo(photo.name, size)
        for key, base in configs.items():  # interleaved: textbook then default on the same photo and seed
            # a bundled photo keeps its cat/dog label (as before); another photo gets its index
            label = photo.sample_label if photo.sample_label is not None else index % base.classes
            budget = max_seconds["textbook" if key == "textbook" and size > 32 else "run"]
            config = base.replace(size=size, seed=seed, threads=threads, steps=steps or base.steps,
                                  max_seconds=budget)
            result = bench_run(config, image, [label])
            tally = tallies[(size, key)]
            tally.runs += 1
            tally.seconds += result.seconds
            tally.evals += result.evals
            tally.timeouts += result.status == "timeout"
            if result.seconds_to_30db is not None:
                tally.seconds_to_30db.append(result.seconds_to_30db)
                tally.evals_to_30db.append(result.evals_to_30db)
            peaks[(size, key)] = peak_rss_mb()
            bar.update(1)
    bar.close()
    for size in sizes:
        entry = {key: tallies[(size, key)].summary() | {"peak_rss_mb_so_far": round(peaks[(size, key)], 1)}
                 for key in configs}
        t, d = entry["textbook"], entry["default"]
        entry["ratio_default_over_textbook"] = {
            "median_seconds_to_30db": _ratio(d["median_seconds_to_30db"], t["median_seconds_to_30db"]),
            "median_evals_to_30db": _ratio(d["median_evals_to_30db"], t["median_evals_to_30db"]),
            "seconds_per_eval": _ratio(d["seconds_per_eval"], t["seconds_per_eval"]),
        }
        report["results"][str(size)] = entry
    report["app_first_frame_seconds"] = round(first_frame_seconds(), 4)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)  # before the closed form's 224 px victim (38M weights)
    if closed_form_size:
        report["closed_form"] = closed_form_timing(closed_form_size)
        report["peak_rss_mb_with_closed_form"] = round(peak_rss_mb(), 1)
    report["bench_seconds"] = round(time.perf_counter() - bench_started, 1)
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt(x: Any, spec: str) -> str:
    width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
    return "-".rjust(width) if x is None else format(x, spec)


def print_report(report: dict[str, Any]) -> None:
    steps = report["steps"] or "each configuration's own"
    print(f"threads={report['threads']} steps={steps} images={len(report['images'])} "
          f"seeds={report['seeds']} (sizes > 32: {report['large_seeds']})")
    print(f"{'size':>4} {'config':<9} {'success':>9} {'med s→30dB':>11} {'med evals':>10} {'ms/eval':>8} "
          f"{'peak MB':>8} {'timeouts':>8}")
    for size, entry in report["results"].items():
        for key in CONFIGS:
            e = entry[key]
            print(f"{size:>4} {key:<9} {e['successes']:>3}/{e['runs']:<3} {_fmt(e['success_rate'], '4.0%'):>4} "
                  f"{_fmt(e['median_seconds_to_30db'], '11.2f')} {_fmt(e['median_evals_to_30db'], '10.0f')} "
                  f"{_fmt(e['seconds_per_eval'] and e['seconds_per_eval'] * 1000, '8.2f')} "
                  f"{e['peak_rss_mb_so_far']:>8.0f} {e.get('timeouts', 0):>8}")
        r = entry["ratio_default_over_textbook"]
        speedup = r["median_seconds_to_30db"]
        if speedup is None:  # one of them never reached 30 dB: there is no time to compare
            print(f"{size:>4} default/textbook: no ratio of times to 30 dB (textbook {entry['textbook']['successes']}"
                  f"/{entry['textbook']['runs']}, default {entry['default']['successes']}/{entry['default']['runs']}"
                  f" reached it), s/eval x{_fmt(r['seconds_per_eval'], '.3f')}")
            continue
        print(f"{size:>4} default/textbook: time to 30 dB x{speedup:.3f}"
              f" ({1 / speedup:.1f}x faster), evals x{_fmt(r['median_evals_to_30db'], '.3f')},"
              f" s/eval x{_fmt(r['seconds_per_eval'], '.3f')}")
    print(f"app first frame (headless, warm process): {report['app_first_frame_seconds'] * 1000:.0f} ms; "
          f"peak RSS of this process: {report['peak_rss_mb']:.0f} MB")
    if cf := report.get("closed_form"):
        psnr = "exact (inf)" if cf["psnr"] is None else f"{cf['psnr']:.1f} dB"
        print(f"closed-form attack at {cf['size']}x{cf['size']} ({cf['model']} victim, {cf['image']}): "
              f"{cf['seconds'] * 1000:.0f} ms, PSNR {psnr}; "
              f"peak RSS then {report['peak_rss_mb_with_closed_form']:.0f} MB")
    budgets = report["max_seconds"]
    print(f"time budgets: {budgets['run']:g} s a run, {budgets['textbook']:g} s for textbook runs above 32 px; "
          f"the whole benchmark took {report['bench_seconds'] / 60:.1f} min")


def add_parser(commands) -> None:
    bench = commands.add_parser("bench", help="time the app's default attack against the textbook one")
    bench.add_argument("--images", nargs="+", default=[s.name for s in SAMPLES], metavar="NAME_FILE_OR_DIR",
                       help="bundled sample names, image files or folders (e.g. `photos --set report`'s)")
    bench.add_argument("--model", **cfg.cli_argument(
        "model", default=cfg.DEFAULT.model,
        help="the default configuration's victim (lenet with --classes 100: the textbook's victim)"))
    bench.add_argument("--classes", type=int, default=cfg.DEFAULT.classes,
                       help="the default configuration's number of classes")
    bench.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="seeds at 32 px and below")
    bench.add_argument("--large-seeds", nargs="+", type=int, default=[0], help="seeds above 32 px (slow)")
    bench.add_argument("--sizes", nargs="+", type=int, default=[32, 64])
    bench.add_argument("--threads", type=int, default=1)
    bench.add_argument("--steps", type=int, default=None,
                       help="step budget of every run (default: each configuration's own; textbook: 300)")
    bench.add_argument("--max-seconds", type=float, default=60.0,
                       help="time budget of every run (a textbook run at 32 px takes about 7 s on an idle core; "
                            "on a busy machine a tight budget would cut runs that were going to succeed)")
    bench.add_argument("--textbook-large-max-seconds", type=float, default=10.0,
                       help="time budget of textbook runs above 32 px (they fail: 0/60 measured)")
    bench.add_argument("--closed-form-size", type=int, default=CLOSED_FORM_SIZE,
                       help="time the closed-form attack on one photo at this size (0: skip)")
    bench.add_argument("--imprint-batch", type=int, default=64,
                       help="time the malicious server's imprint attack on batches of this many distinct crops "
                            "of the report set at 32 px, one per seed (0: skip)")
    bench.add_argument("--imprint-only", action="store_true", help="run only the imprint timing")
    bench.add_argument("--json", type=Path, help="write the full report here")


def command_bench(args) -> int:
    torch.set_num_threads(args.threads)
    if args.imprint_only:
        report = {"imprint": imprint_timing(args.imprint_batch, 32, args.seeds)}
        print_imprint(report["imprint"])
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    resolve_images(args.images)  # BadInputError for an unknown name or an empty folder before the long run
    default = cfg.default_for(cfg.DEFAULT.attack, args.model).replace(classes=args.classes)
    report = benchmark(args.images, args.seeds, args.large_seeds, args.sizes, args.threads, args.steps,
                       {"run": args.max_seconds, "textbook": args.textbook_large_max_seconds},
                       closed_form_size=args.closed_form_size or None, default=default)
    if args.imprint_batch:
        report["imprint"] = imprint_timing(args.imprint_batch, 32, args.seeds)
    print_report(report)
    if "imprint" in report:
        print_imprint(report["imprint"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
