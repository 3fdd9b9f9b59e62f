"""Batches on the report photos (issue 12, item 4): the layer-by-layer batch walk against the default attack.

    nice -n 10 .venv/bin/python scripts/measure_batches.py [--baseline-seconds 120] [--out results.jsonl]
    .venv/bin/python scripts/measure_batches.py --walk-classes --baseline-classes 2 4 --batches 4

By default: batches of 4 (four photo groups) and 8 (two groups, and distinct crops), distinct labels, seeds 0
and 1, wide_cnn at 32 px: the layer-by-layer batch walk with 10 and 100 classes, and the default attack (the
baseline) with 10 classes on the same batches (batch 8: seed 0 only). Each run's CPU seconds are this
process's (one torch thread), so the figure holds however busy the machine is. Prints one line per run and the
medians of the per-image PSNRs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's dlg_core, run from anywhere

from dlg_core import photo_sets  # noqa: E402
from dlg_core.config import DEFAULT  # noqa: E402
from dlg_core.images import to_tensor  # noqa: E402
from dlg_core.run import run_to_end, use_threads  # noqa: E402


def batches(size: int) -> list[tuple[str, torch.Tensor]]:
    report = photo_sets.photos("report")
    names = list(report)
    groups = [names[0:4], names[4:8], names[8:12], names[10:14], names[0:8], names[6:14]]
    out = [("+".join(g), torch.cat([to_tensor(report[n], size) for n in g])) for g in groups]
    for seed in (0, 1):
        crops = photo_sets.distinct_crops(8, size, seed=seed)
        out.append((f"crops8-seed{seed}", torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255))
    return out


def measure(attack: str, classes: int, photos: torch.Tensor, seed: int, seconds: float, pairs: bool) -> dict:
    config = DEFAULT.replace(attack=attack, classes=classes, seed=seed, threads=1, max_seconds=seconds)
    count = photos.shape[0]
    labels = tuple((n // 2 if pairs else n) % classes for n in range(count))  # distinct, or two photos a label
    start = time.process_time()
    result = run_to_end(config, photos, labels)
    cpu = time.process_time() - start
    psnrs = [score.psnr for score in result.final.per_image]
    return {"attack": attack, "classes": classes, "batch": photos.shape[0], "seed": seed, "cpu_s": round(cpu, 2),
            "psnr": [round(p, 1) for p in psnrs], "labels_right": result.label_guess == labels,
            "status": result.status}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-seconds", type=float, default=120.0)
    parser.add_argument("--out", default="batches.jsonl")
    parser.add_argument("--walk-classes", type=int, nargs="*", default=[10, 100], help="the batch walk's classes")
    parser.add_argument("--baseline-classes", type=int, nargs="*", default=[10], help="the default attack's")
    parser.add_argument("--labels", choices=("distinct", "pairs"), default="distinct")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()
    use_threads(1)
    rows = []
    for name, photos in batches(32):
        if photos.shape[0] not in args.batches:
            continue
        for seed in (0, 1):
            plans = [("layerwise", classes) for classes in args.walk_classes]
            if not name.startswith("crops") and (photos.shape[0] == 4 or seed == 0):
                # the baseline: today's default attack on the same batch
                plans += [(DEFAULT.attack, classes) for classes in args.baseline_classes]
            for attack, classes in plans:
                row = {"photos": name, **measure(attack, classes, photos, seed, args.baseline_seconds,
                                                 args.labels == "pairs")}
                print(json.dumps(row), flush=True)
                rows.append(row)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    for attack, classes in sorted({(r["attack"], r["classes"]) for r in rows}):
        for batch in (4, 8):
            picked = [r for r in rows if (r["attack"], r["classes"], r["batch"]) == (attack, classes, batch)]
            if picked:
                every = [p for r in picked for p in r["psnr"]]
                print(f"{attack} {classes} classes batch {batch}: {len(picked)} runs, median per-image PSNR "
                      f"{statistics.median(every):.1f} dB, {sum(p >= 30 for p in every)}/{len(every)} photos >= 30 dB, "
                      f"median CPU {statistics.median(r['cpu_s'] for r in picked):.2f} s, "
                      f"max CPU {max(r['cpu_s'] for r in picked):.2f} s")


if __name__ == "__main__":
    main()
