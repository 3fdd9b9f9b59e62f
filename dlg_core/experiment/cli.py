"""``python -m dlg_core experiment``: its options, the grid they describe, and the command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import config as cfg
from .. import metrics
from ..errors import BadInputError
from .grid import ATTACKERS, Grid
from .presets import PRESETS
from .runner import run_grid
from .summary import format_summary, summarise


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
    p.add_argument("--defenses", "--defences", dest="defenses", nargs="+", metavar="SPEC_LIST",
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
