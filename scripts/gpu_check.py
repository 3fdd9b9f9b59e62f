"""The GPU path, checked: the same runs on the CPU and on CUDA, side by side.

    .venv/bin/python scripts/gpu_check.py [--sizes 32 128] [--batch 8] [--max-seconds 60] [--json gpu.json]

For the benchmark's two configurations (the app's default attack and the textbook one, ``bench.CONFIGS``), at each
size with one photo and at the first size with a batch, and for a few more attacks on the default victim, it runs
each setting once on the CPU (one thread) and once with ``--device cuda``, on the same report photos and seed,
stopped at 30 dB or at the budgets, and prints beside each other: ms per gradient evaluation, seconds to 30 dB,
the final PSNR (the same result to a tolerance: float rounding differs between the devices, so L-BFGS may take
another path), and which settings are faster on the GPU.

On a machine without CUDA it says so and exits 0 having run nothing; ``--device cpu`` compares the CPU with itself
(to check this script where there is no GPU).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's dlg_core, run from anywhere

from dlg_core import bench, photo_sets  # noqa: E402
from dlg_core.images import to_tensor  # noqa: E402

PSNR_TOLERANCE_DB = 1.0  # beyond 30 dB both are a success whatever the digits; below it the gap must stay small
VERDICT = {True: "same", False: "DIFFERENT", None: "not compared (a time budget cut a run)"}


def settings(sizes: list[int], batch: int, attacks: list[str]) -> list[tuple[str, dict]]:
    """(configuration, changes) pairs: both configurations at every size and with a batch, more attacks."""
    first = sizes[0]
    out = [(key, {"size": s, "batch": 1}) for s in sizes for key in bench.CONFIGS]
    out += [(key, {"size": first, "batch": batch}) for key in bench.CONFIGS if batch > 1]
    out += [("default", {"size": first, "batch": 1, "attack": a}) for a in attacks]
    return out


@functools.cache
def _photos() -> tuple:
    return tuple(photo_sets.photos("report", side=128).values())


def run_once(key: str, change: dict, device: str, max_seconds: float, steps: int | None) -> dict:
    photos = _photos()
    batch, size = change["batch"], change["size"]
    images = torch.cat([to_tensor(photos[i % len(photos)], size) for i in range(batch)])
    fields = {k: v for k, v in change.items() if k != "batch"}
    config = bench.CONFIGS[key].replace(**fields, device=device, seed=0, threads=1, max_seconds=max_seconds)
    config = config.replace(steps=steps) if steps else config
    result = bench.bench_run(config, images, [i % config.classes for i in range(batch)]).to_json_dict()
    return {"ms_per_eval": 1000 * result["seconds"] / max(result["evals"], 1), "psnr": result["final_psnr"]} | {
        k: result[k] for k in ("seconds_to_30db", "evals", "status")}


def same_result(cpu: dict, other: dict) -> bool | None:
    """None when a time budget cut either run: they stopped at different points, nothing to compare."""
    if "timeout" in (cpu["status"], other["status"]):
        return None
    a, b = cpu["psnr"], other["psnr"]
    if a is None or b is None:
        return a is b
    return (a >= 30 and b >= 30) or abs(a - b) <= PSNR_TOLERANCE_DB


def compare(args) -> list[dict]:
    rows = []
    for key, change in settings(args.sizes, args.batch, args.attacks):
        cpu, other = (run_once(key, change, d, args.max_seconds, args.steps) for d in ("cpu", args.device))
        rows.append({"config": key, **change, "device": args.device, "cpu": cpu, "other": other,
                     "same_result": same_result(cpu, other),
                     "faster_on_device": other["ms_per_eval"] < cpu["ms_per_eval"]})
        print(_line(rows[-1], args.device), flush=True)
    return rows


def _s(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _what(row: dict) -> str:
    return f"{row['config']} {row.get('attack', '')} {row['size']}px b{row['batch']}".replace("  ", " ")


def _line(row: dict, device: str) -> str:
    c, d = row["cpu"], row["other"]
    return (f"{_what(row):<28} ms/eval cpu {_s(c['ms_per_eval'], '.2f'):>8} {device} {_s(d['ms_per_eval'], '.2f'):>8} "
            f"(x{c['ms_per_eval'] / d['ms_per_eval']:.1f}) | s to 30 dB cpu {_s(c['seconds_to_30db'], '.2f'):>6} "
            f"{device} {_s(d['seconds_to_30db'], '.2f'):>6} | PSNR cpu {_s(c['psnr'], '.1f'):>5} {device} "
            f"{_s(d['psnr'], '.1f'):>5} {VERDICT[row['same_result']]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--batch", type=int, default=8, help="photos of the batched setting (at the first size)")
    parser.add_argument("--attacks", nargs="*", default=["idlg", "ig"], help="more attacks on the default victim")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time budget of a run")
    parser.add_argument("--steps", type=int, help="step budget of every run (default: each configuration's own)")
    parser.add_argument("--device", default="cuda", help="the device to set beside the CPU (cpu: check the script)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"No CUDA GPU here (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}): nothing "
              "was run. Run this script on a machine with an NVIDIA GPU to compare it with the CPU.")
        return 0
    if args.device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}; CPU runs use one thread")
    bench.warm_up_torch()
    rows = compare(args)
    faster = [_what(r) for r in rows if r["faster_on_device"]]
    print(f"faster on {args.device} (ms per evaluation): {', '.join(faster) or 'none'}")
    print(f"same result (PSNR within {PSNR_TOLERANCE_DB:g} dB, or both at 30 dB or more): "
          f"{sum(r['same_result'] is True for r in rows)}/{sum(r['same_result'] is not None for r in rows)} compared")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
