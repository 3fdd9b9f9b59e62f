"""The grid: ``Job`` (one run: its photos, labels and setting, and the key a results file knows it by) and
``Grid`` (the axes crossed into jobs)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .. import attack_registry, limits
from .. import config as cfg
from ..defences import parse_defences, specs_text
from ..errors import BadInputError
from .photos import SAMPLE_NAMES, GridPhoto, resolve_images

ATTACKERS = ("naive", "adaptive")  # the adaptive attacker knows the prescribed defence (attacks/adaptive.py)
# Settings added after results files existed, with the value every run had before: left out of a row's key at that
# value, so that the rows made before keep their keys and a re-run resumes them (``stall_start`` came without this,
# and the rows made since carry it, so it stays in).
KEYLESS_WHEN = {"adaptive": False, "precondition": "none", "soft_relu": 0.0}


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
            for name, before in KEYLESS_WHEN.items():
                if setting[name] == before:
                    del setting[name]
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


def _label(photo: GridPhoto, index: int, classes: int) -> int:
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
        defence_lists = tuple(dict.fromkeys(specs_text(parse_defences(d)) for d in self.defenses))
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
                                        for defences, attacker in _defended(defence_lists, self.attackers):
                                            job = Job(
                                                images=tuple(photos[i].name for i in chosen),
                                                labels=tuple(_label(photos[i], i, classes) for i in chosen),
                                                attack=attack, model=model, size=size, classes=classes,
                                                seed=seed, defenses=defences, fedavg_steps=k, clients=clients,
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
