"""Command line: ``python -m dlg_core run ...`` runs one attack headless, with a progress bar and a JSON result.

Exit codes: 0 for a finished run whatever its quality, 2 for bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from . import bench, experiment, grid_ray, limits, photo_sets, scaling
from . import config as cfg
from .config import AttackConfig
from .errors import BadInputError
from .images import decode_image, to_tensor


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise BadInputError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dlg_core", description="Deep leakage from gradients, headless.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_run(commands.add_parser("run", help="attack one photo's shared gradient and report how much leaked"))
    bench.add_parser(commands)
    experiment.add_parser(commands)
    grid_ray.add_arguments(commands.choices["experiment"])
    scaling.add_parser(commands)
    photos = commands.add_parser("photos", help="write a photo set (tune: to tune on; report: to report on) as PNGs")
    photos.add_argument("--set", dest="photo_set", choices=tuple(photo_sets.SETS), default="report")
    photos.add_argument("--out", type=Path, required=True, help="the folder to write (made if missing)")
    photos.add_argument("--side", type=int, default=128, help="side of each square PNG in pixels")
    return parser


def _add_run(run: argparse.ArgumentParser) -> None:
    """The run command's options: the photos, where to start from, and a flag per setting (config.SETTINGS)."""
    run.add_argument("--image", action="append", type=Path, help="photo path (repeat for a batch)")
    run.add_argument("--crops", type=int, metavar="N",
                     help="instead of --image: N distinct crops of the report photo set (a large batch), seeded by "
                          f"--seed; at most {limits.MAX_BATCH}, or {limits.MAX_IMPRINT_BATCH} for --attack imprint")
    run.add_argument("--label", type=int, action="append",
                     help="true label per image (default: image i gets i modulo the number of classes)")
    run.add_argument("--textbook", action="store_true",
                     help="start from the DLG paper's settings (N(0,1) start, 100 classes) instead of the app's")
    run.add_argument("--config", type=Path,
                     help=f"start from the settings in this JSON file (an AttackConfig, as the app's 'Config (JSON)' "
                          f"download; at most {limits.MAX_CONFIG_BYTES // 1024} KB); options given here override it")
    # Without defaults: only the settings named on the command line land in the namespace and override the start.
    for name, declared in cfg.SETTINGS.items():
        if declared.flag:
            run.add_argument("--" + name.replace("_", "-"), **cfg.cli_argument(name, default=argparse.SUPPRESS))
    run.add_argument("--defense", "--defence", dest="defence", action="append", metavar="SPEC",
                     default=argparse.SUPPRESS,
                     help=cfg.SETTINGS["defenses"].help + " Repeatable.")
    run.add_argument("--json", type=Path, help="write the result JSON here")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def read_config_file(path: Path) -> AttackConfig:
    """A config JSON file, read as data only: size-capped before reading, then validated field by field."""
    try:
        if not path.is_file():
            raise BadInputError(f"Config file not found (or not a plain file): {path}")
        if path.stat().st_size > limits.MAX_CONFIG_BYTES:
            raise BadInputError(f"{path}: the config is too long: at most {limits.MAX_CONFIG_BYTES // 1024} KB.")
        with path.open("rb") as file:
            text = file.read(limits.MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise BadInputError(f"Could not read the config file {path}: {err.strerror}.") from None
    try:
        return AttackConfig.from_json(text)
    except BadInputError as err:
        raise BadInputError(f"{path}: {err}") from None


def config_from_args(args: argparse.Namespace) -> AttackConfig:
    config_file = getattr(args, "config", None)
    if config_file is not None and args.textbook:
        raise BadInputError("Give --config or --textbook, not both.")
    if config_file is not None:
        base = read_config_file(config_file)
    else:  # the app's settings for this attack and victim (config.TUNED: DLG's own distance, say)
        base = cfg.TEXTBOOK if args.textbook else cfg.default_for(getattr(args, "attack", cfg.DEFAULT.attack),
                                                                 getattr(args, "model", cfg.DEFAULT.model))
    explicit = {name: getattr(args, name) for name in cfg.SETTINGS if hasattr(args, name)}  # only those given
    if hasattr(args, "defence"):
        explicit["defenses"] = ",".join(args.defence)
    return base.replace(**explicit)


def read_photos(args: argparse.Namespace, config: AttackConfig) -> torch.Tensor:
    """The run's photos: the --image files, or --crops N distinct crops of the report set."""
    if (args.image is None) == (args.crops is None):
        raise BadInputError("Give the photos as --image FILE (repeatable) or as --crops N, one of the two.")
    problem = limits.batch_problem(config.attack, len(args.image) if args.image else args.crops)
    if problem:
        raise BadInputError(problem)
    if args.crops:
        crops = photo_sets.distinct_crops(args.crops, config.size, seed=config.seed)
        return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    photos = []
    for path in args.image:
        decoded = decode_image(path)
        for note in decoded.notes:  # e.g. "Animated image: only the first frame is used."
            print(f"note: {path}: {note}", file=sys.stderr)
        photos.append(to_tensor(decoded.image, config.size))
    return torch.cat(photos)


def _at_50db(per_image: list[dict]) -> int:
    return sum(p["psnr"] is None or p["psnr"] >= 50 for p in per_image)  # None: an exact copy (infinite PSNR)


def command_run(args: argparse.Namespace) -> int:
    from .run import AttackRun, warm_up_torch  # after argument checks: importing the attack stack takes a moment

    config = config_from_args(args)
    images = read_photos(args, config)
    labels = args.label or [i % config.classes for i in range(len(images))]
    if len(labels) != len(images):
        raise BadInputError("Give one --label per photo, or none.")
    warm_up_torch()
    run = AttackRun(config, images, labels)
    if run.victim.warning:
        print(f"warning: {run.victim.warning}", file=sys.stderr)
    with tqdm(total=config.steps, disable=args.quiet, unit="step", file=sys.stderr, leave=False) as bar:
        for snap in run:
            bar.update(snap.step - bar.n)
            bar.set_postfix(psnr=f"{snap.psnr:.1f}dB", label=snap.label_guess[0], refresh=False)
    result = run.result
    out = result.to_json_dict()
    print(
        f"{out['status']}: {out['attack']} on {out['model']} at {out['size']}px, "
        + (f"defences {', '.join(out['defenses'])}, " if out["defenses"] else "")
        + ("PSNR inf (an exact copy in the batch), " if out["final_psnr"] is None and out["final_mse"] is not None
           else f"PSNR {out['final_psnr'] or 0:.1f} dB, ")
        + f"MSE(0-255) {out['final_mse_255'] or 0:.2f}, "
        f"SSIM {out['final_ssim'] or 0:.3f}, label {'right' if out['label_correct'] else 'wrong'}, "
        f"{out['steps_run']} steps / {out['evals']} evals in {out['seconds']:.2f} s"
        + (f", {_at_50db(out['per_image'])} of {len(out['per_image'])} photos at 50 dB" if out["per_image"] else "")
        + (", 30 dB never reached" if out["seconds_to_30db"] is None else f", 30 dB at {out['seconds_to_30db']:.2f} s")
    )
    if args.json:
        try:
            args.json.write_text(json.dumps(out, indent=2) + "\n")
        except OSError as err:
            raise BadInputError(f"Could not write {args.json}: {err.strerror}.") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "bench":
            return bench.command_bench(args)
        if args.command == "experiment":
            return experiment.command_experiment(args, run=grid_ray.runner(args) or experiment.run_grid)
        if args.command == "scaling":
            return scaling.command_scaling(args)
        if args.command == "photos":
            written = photo_sets.write_set(args.photo_set, args.out, args.side)
            print(f"wrote {len(written)} photos and SOURCES.md to {args.out}")
            return 0
        return command_run(args)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
