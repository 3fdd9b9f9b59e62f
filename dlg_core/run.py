"""One attack, end to end, from an ``AttackConfig``: victim, shared update, attack, metrics, verdict.

This is the only place that holds both sides: it builds the client's update from the private photo, hands
the attacker only ``AttackerKnowledge`` (model, update, shape), and compares what comes back with the photo.
It seeds everything, restarts from the best point when the optimisation blows up (NaN/Inf or an exploding
distance), honours a stop request and a wall-time budget, and judges success by PSNR, never by the
gradient distance alone (a small distance can still be a wrong picture).

When L-BFGS ends by itself, the run tells a match from a stall with the attacker's own signal only (how far
the gradient distance fell from where it started: ``MATCH_RATIO``) and, after a stall, makes new starts while
its steps and time last (``AttackConfig.fresh_starts``), keeping the best picture by that same distance. DLG's
first stall goes on from its best point with the label it learnt held fixed (``_Tally.fixed_labels``), and so do
its later new starts. The message says what
happened; ``diagnosis.py`` says, with the truth in hand, why a failed run failed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from . import attack_registry, limits, metrics
from .attacks import ATTACKS, AttackerKnowledge, AttackSettings, Progress, server_model
from .attacks.prior import smoothed
from .client import ClientReport, client_photos, federated_round
from .config import AttackConfig
from .defences import client_seed, client_update, parse_defences
from .diagnosis import diagnose
from .errors import BadInputError
from .images import public_pool
from .matching import matched_metrics
from .models import build_model
from .training import photos_in_training_set, train_victim

MAX_RESTARTS = 3
MAX_VICTIM_REDRAWS = 20
EXPLODED = 1e6  # a distance this many times the first one means the optimiser has left the rails
# Pixels live in [0, 1]. An attacker that wanders this far out has saturated every sigmoid; its gradient
# then vanishes and L-BFGS "converges" on a meaningless picture, so we call that a divergence too.
OUT_OF_BOX = 100.0
STALL_STEPS = 5  # L-BFGS steps in a row that needed at most one evaluation: the optimiser has ended
# When L-BFGS ends, the attacker (who never sees the photo) tells a match from a stall by the gradient
# distance alone: a match takes it this far below where the run started. Measured on the tune photos: LeNet
# runs that ran to L-BFGS's end (at float32's floor) ended 1e-8 to 3e-8 of their start, at 40 dB and more;
# the stalls short of the photo (the CNN victim, 22-29 dB) ended 1e-3 to 6e-2 of it.
MATCH_RATIO = 1e-6
# A fresh start is worth its cost only if it starts elsewhere: from a grey start with other faint noise, or from
# the stall's own point perturbed (noise 0.05) or held to the [0, 1] box, CNN runs fell back into the very
# same minimum (measured, tune photos); later starts are therefore uniform noise (as Inverting Gradients').
FRESH_INIT = "uniform"
FRESH_SEED_STRIDE = 7919
# A new start from the best picture blurred by this many pixels (attacks/prior.py's ``smoothed``), after a stall
# on pixel noise: DLG's label-fixed leg (seed-paper setting) and, with ``stall_start="smoothed"``, the CNN's iDLG.
# From a CNN stall (hubble, 22.1 dB) a fresh L-BFGS memory, float64 or the squared distance did not move in 300
# steps; the same point blurred by 0.7 to 1.5 pixels reached 53-55 dB within 50 steps (README).
SMOOTH_SIGMA = 0.8
ATTACKER_STREAM = 1  # the attacker's spawn key under the run's seed (numpy SeedSequence)
_thread_cap: int | None = None  # set by cap_threads(): no run in this process may use more torch threads


def cap_threads(threads: int) -> None:
    """Use at most ``threads`` torch threads in this process, whatever a run's config asks for.

    A server that runs many attacks at once calls this once: torch.set_num_threads is process-wide (new
    threads start from its value), so one run's config must not raise it for everybody else.
    """
    global _thread_cap
    _thread_cap = max(1, int(threads))
    torch.set_num_threads(_thread_cap)
    threadpool_limits(_thread_cap, user_api="blas")


def use_threads(threads: int) -> None:
    """A run's torch threads, within the process's cap (the float sums of a convolution's backward depend on them).

    numpy's BLAS too (the layer-by-layer attack's scipy solvers): it starts one thread per core otherwise, which
    made those runs 4-7x slower on a loaded 2-core machine (measured; no difference on a quiet one).
    """
    threads = threads if _thread_cap is None else min(threads, _thread_cap)
    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")


@dataclass(frozen=True)
class TrailFrame:
    """A point inside a step (``AttackRun(trail=True)``): the picture and its PSNR, for a finer animation."""

    evals: int
    image: torch.Tensor  # 1 x 3 x H x W on the CPU, clamped to [0, 1]
    gradient_distance: float
    mse_255: float
    psnr: float


@dataclass(frozen=True)
class Snapshot:
    """The attack's state at one step, with metrics against the truth (which the attacker never saw)."""

    step: int
    seconds: float
    evals: int
    image: torch.Tensor  # B x 3 x H x W on the CPU, clamped to [0, 1]
    label_guess: tuple[int, ...]
    label_probs: torch.Tensor  # B x classes
    gradient_distance: float
    mse: float
    mse_255: float
    psnr: float
    truth: torch.Tensor  # the private photos (the demo's side), for ``ssim``
    restarts: int = 0
    per_image: tuple = ()  # matching.ImageScore per original, for a batch
    trail: tuple[TrailFrame, ...] = ()  # with AttackRun(trail=True), one photo: the step's improving points

    @cached_property
    def ssim(self) -> float:
        """Mean SSIM over the photos, computed when first read: the live view and the JSON read it, a benchmark
        that stops at 30 dB never does (scikit-image's SSIM at every step was 3% of a LeNet run, profiled)."""
        if self.per_image:
            return sum(score.ssim for score in self.per_image) / len(self.per_image)
        return metrics.ssim(self.image, self.truth)


@dataclass
class RunResult:
    config: AttackConfig
    status: str  # ok | diverged | stopped | timeout
    message: str | None
    steps_run: int
    evals: int
    seconds: float
    seconds_to_30db: float | None
    evals_to_30db: int | None
    label_true: tuple[int, ...]
    final: Snapshot | None
    victim_seed: int
    gradient_norm: float
    gradient_numel: int
    restarts: int
    warning: str | None = None
    diagnosis: str | None = None  # why the run failed, in one sentence (None when the photo leaked)

    @property
    def label_guess(self) -> tuple[int, ...]:
        return self.final.label_guess if self.final else ()

    def to_json_dict(self) -> dict[str, Any]:
        """The CLI's JSON contract; keep these fields stable (add, never rename)."""
        c, f = self.config, self.final
        single = len(self.label_true) == 1
        return {
            "attack": c.attack,
            "model": c.model,
            "size": c.size,
            "classes": c.classes,
            "seed": c.seed,
            "status": self.status,
            "steps_run": self.steps_run,
            "evals": self.evals,
            "seconds": round(self.seconds, 4),
            "seconds_to_30db": None if self.seconds_to_30db is None else round(self.seconds_to_30db, 4),
            "label_true": self.label_true[0] if single else list(self.label_true),
            "label_guess": (self.label_guess[0] if single else list(self.label_guess)) if f else None,
            "label_correct": bool(f) and metrics.label_accuracy(self.label_guess, self.label_true) == 1.0,
            "final_mse": _finite_or_none(f.mse) if f else None,
            "final_mse_255": _finite_or_none(f.mse_255) if f else None,
            "final_psnr": _finite_or_none(f.psnr) if f else None,
            "final_ssim": _finite_or_none(f.ssim) if f else None,
            "evals_to_30db": self.evals_to_30db,
            "message": self.message,
            "warning": self.warning,
            "victim_seed": self.victim_seed,
            "gradient_norm": self.gradient_norm,
            "restarts": self.restarts,
            "diagnosis": self.diagnosis,
            "config": c.to_dict(),
            "per_image": [{name: _finite_or_none(value) for name, value in dataclasses.asdict(score).items()}
                          for score in f.per_image] if f and f.per_image else None,  # an exact copy: psnr null
            "defenses": [d.spec for d in parse_defences(c.defenses)],  # applied in this order before sharing
            "clients": c.clients,  # whose updates the server saw only as their aggregate
        }


def _diverged(progress: Progress, first_distance: float | None) -> bool:
    distance = progress.gradient_distance
    if not math.isfinite(distance) or not bool(torch.isfinite(progress.reconstruction).all()):
        return True
    if first_distance is not None and distance > EXPLODED * max(first_distance, 1e-12):
        return True
    return float(progress.reconstruction.abs().max()) > OUT_OF_BOX


@dataclass
class _Tally:
    """What a run has spent, found and decided so far, across its (re)starts."""

    started: float
    lr: float
    steps: int = 0
    evals: int = 0
    restarts: int = 0  # every restart, after a divergence or a stall (the JSON's "restarts")
    divergences: int = 0
    fresh_starts: int = 0
    smoothed_at: float | None = None  # the best distance that the last blurred new start began from
    fixed_labels: tuple[int, ...] | None = None  # DLG's learnt label, held fixed after a stall
    outcome: str = "done"  # how the last leg ended (see AttackRun._leg)
    best: Progress | None = None  # the lowest gradient distance of all legs: the attacker's own measure
    last: Snapshot | None = None
    first_distance: float | None = None
    hit_seconds: float | None = None
    hit_evals: int | None = None
    status: str = "ok"
    message: str | None = None
    events: list[str] = field(default_factory=list)  # what the run did, for the message

    def keep_best(self, progress: Progress) -> None:
        if progress.stand_in:
            return
        if self.best is None or progress.gradient_distance <= self.best.gradient_distance:
            self.best = progress

    def show(self, snap: Snapshot) -> None:
        self.last = snap
        if self.hit_seconds is None and snap.psnr >= metrics.SUCCESS_PSNR:
            self.hit_seconds, self.hit_evals = snap.seconds, snap.evals


def _judge_end(distance: float, leg_first: float, run_first: float) -> str:
    """L-BFGS has ended: a match, a stall short of one, or (still where it started) a saturated divergence."""
    if distance >= leg_first:
        return "diverged"
    return "matched" if distance <= MATCH_RATIO * run_first else "stalled"


def _ratio(tally: _Tally) -> float:
    return tally.best.gradient_distance / max(tally.first_distance or 1.0, 1e-30)


def _join(events: list[str]) -> str:
    text = "; ".join(events)
    return text[:1].upper() + text[1:] + "."


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def warm_up_torch() -> None:
    """Pay PyTorch's one-off lazy imports now rather than inside the first timed run.

    Creating the first optimiser in a process imports torch._dynamo (about 1 s measured here), and the first
    SSIM imports scikit-image and scipy (0.6-1.2 s, profiled: inside the first snapshot, otherwise).
    """
    torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])
    metrics.ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInputError("--device cuda was asked for, but no CUDA GPU is available here.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def attacker_seed(seed: int) -> int:
    """The attacker's own seed: a separate SeedSequence spawn of the run's seed, so that a run replays while the
    attacker holds nothing the client's randomness is drawn from (that comes from ``defences.client_seed``: the
    client's photos and the run's seed, which the spawn's hash does not give back)."""
    return int(np.random.SeedSequence(seed, spawn_key=(ATTACKER_STREAM,)).generate_state(1)[0])


TRAINED_ON_PHOTO = ("The victim was trained on the attacked photo itself (every bundled photo is in this batch, and "
                    "they are its whole training set): a real attacker rarely gets a victim that has seen the very "
                    "photo it attacks.")


@dataclass
class Victim:
    """The client's side: the model it trains and the update it shares (the demo also keeps the truth)."""

    model: torch.nn.Module
    report: ClientReport
    seed: int
    trained_on_photo: bool = False  # a trained victim that had the attacked photo in its training set

    @property
    def warning(self) -> str | None:
        """What the pages and the CLI warn of: a weak update, a victim trained on the attacked photo."""
        return " ".join(w for w in (self.report.warning, TRAINED_ON_PHOTO if self.trained_on_photo else None)
                        if w) or None


def prepare_victim(config: AttackConfig, images: torch.Tensor, labels: tuple[int, ...],
                   device: torch.device | None = None) -> Victim:
    """Build the victim and its shared update; re-draw the weights while the gradient carries no signal."""
    device = device or resolve_device(config.device)
    images, target = images.to(device), torch.tensor(labels, device=device)
    # A trained victim is confident on these photos by design: say so (the warning) rather than re-train.
    tries = MAX_VICTIM_REDRAWS if config.redraw_weak_victim and not config.trained_steps else 1
    specs = parse_defences(config.defenses)

    held_by = client_photos(images.shape[0], config.clients)
    pool = public_pool(config.size, config.classes) if any(d.on_input for d in specs) else None

    def defend(update, client: int):  # each client defends its own update (the weak check ignores defences)
        # The client's randomness comes from its photos too, never from the seed alone, which the attacker knows;
        # MixUp recomputes the update from the mixed photos, Soteria needs them (``defences.client_update``).
        held = held_by[client]
        label_probs = torch.nn.functional.one_hot(target[held], config.classes).to(images.dtype)
        return client_update(model, images[held], label_probs, specs, client_seed(images[held], config.seed + client),
                             config.fedavg_steps, config.fedavg_lr, pool=pool, true_update=update)

    for attempt in range(tries):
        seed = config.seed + attempt * 1_000_003  # far from the seeds a user steps through by hand
        model = build_model(config.model, config.size, config.classes, seed, config.activation)
        if config.trained_steps:  # on the bundled photos less the attacked ones (training.py)
            model = train_victim(model, config.trained_steps, seed, config.size, attacked=images)
        model = model.to(device)
        malicious = server_model(config.attack)
        if malicious is not None:  # a malicious server sends its own model instead
            model = malicious(model, tuple(images.shape), seed)
        sent = model
        if config.batchnorm_train:  # the client normalises by its batch's statistics and updates its running
            sent = copy.deepcopy(model).train()  # ones; the server keeps the model as it sent it, in the same mode
            model.train()
        report = federated_round(model, images, target, config.clients, config.fedavg_steps, config.fedavg_lr,
                                 defend if specs else None)
        if not report.weak:
            break
    trained_on_photo = bool(config.trained_steps) and photos_in_training_set(images, config.size)
    return Victim(sent, report, seed, trained_on_photo)


class AttackRun:
    """Iterate to get live snapshots; ``result`` is set when the iteration ends.

    >>> run = AttackRun(config, images, labels)
    >>> for snap in run: ...
    >>> run.result.to_json_dict()
    """

    def __init__(self, config: AttackConfig, images: torch.Tensor, labels: tuple[int, ...] | list[int],
                 stop_event: threading.Event | None = None, victim: Victim | None = None, trail: bool = False):
        labels = tuple(int(x) for x in labels)
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2:] != (config.size, config.size):
            raise BadInputError(f"Expected images of shape Bx3x{config.size}x{config.size}, got {tuple(images.shape)}.")
        if len(labels) != images.shape[0]:
            raise BadInputError("Give exactly one label per image.")
        problem = limits.batch_problem(config.attack, images.shape[0])
        if problem:
            raise BadInputError(problem)
        if config.clients > images.shape[0]:
            raise BadInputError(f"{config.clients} clients need at least {config.clients} photos, one each; "
                                f"the run has {images.shape[0]}.")
        if any(not (0 <= x < config.classes) for x in labels):
            raise BadInputError(f"Labels must be between 0 and {config.classes - 1} for {config.classes} classes.")
        self.config = config
        self.device = resolve_device(config.device)
        self.images = images.detach().to(self.device)
        self.labels = labels
        self.stop_event = stop_event or threading.Event()
        use_threads(config.threads)  # the client's update too: with other threads its last bits, and the run, differ
        self.victim = victim or prepare_victim(config, self.images, labels, self.device)
        # Bind the attack now: the registry imports its module on first use (scipy's, for some: 0.3-0.8 s
        # measured), which is no part of the run's seconds. ``_leg`` still looks it up (tests replace it).
        _ = ATTACKS[config.attack]
        # Record the improving points inside each L-BFGS step too (one photo only): a live view plays them
        # back when the attack is too quick to watch. The CLI and the benchmark leave it off.
        self.trail = trail and images.shape[0] == 1
        self.result: RunResult | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def knowledge(self) -> AttackerKnowledge:
        """Everything the attacker gets. Note what is absent: the images and the labels. The model and the update
        are the attacker's own copies (an attack may cast them; the client's, or another attack's, stay as sent)."""
        return AttackerKnowledge(
            model=copy.deepcopy(self.victim.model),
            shared_update=copy.deepcopy(self.victim.report.update),
            input_shape=tuple(self.images.shape),
            num_classes=self.config.classes,
            defences=self.config.defenses,  # the protocol's prescribed defence, which a server knows; not its noise
            public_photos=public_pool(self.config.size, 2)[0] if "mixup" in self.config.defenses else None,
            known_labels=self.labels if self.config.labels_known else None,
        )

    def _settings(self, steps: int, lr: float, start: Progress | None, fresh: int = 0,
                  fixed_labels: tuple[int, ...] | None = None) -> AttackSettings:
        """A leg's settings: from ``start`` (a Progress) if given, else from the config's start, or, for the
        ``fresh``-th new start after a stall, from another random one."""
        c = self.config
        return AttackSettings(
            steps=steps, lr=lr, distance=c.distance, init=FRESH_INIT if fresh else c.init,
            seed=attacker_seed(c.seed) + FRESH_SEED_STRIDE * fresh, max_iter=c.max_iter,
            history_size=c.history_size, line_search=None if c.line_search == "none" else c.line_search,
            lbfgs=c.lbfgs, precondition=c.precondition, adam_lr=lr * c.adam_lr / c.lr, tv_weight=c.tv_weight,
            restarts=c.restarts, polish_steps=c.polish_steps, soft_relu=c.soft_relu,
            adaptive=c.adaptive,
            dtype=torch.float64 if c.precision == "float64" else torch.float32,
            start_image=None if start is None else start.reconstruction,
            start_label_logits=None if start is None else start.label_logits, trail=self.trail,
            fixed_labels=fixed_labels,
        )

    def _snapshot(self, progress: Progress, step: int, evals: int, seconds: float, restarts: int) -> Snapshot:
        image = torch.nan_to_num(progress.reconstruction, nan=0.5).clamp(0, 1)
        guess, probs, per_image = progress.label_guess, progress.label_probs, ()
        if image.shape[0] > 1:
            # A batch comes back in any order: pair each reconstruction with its original first.
            match = matched_metrics(image, self.images)
            order = list(match.order)
            image, probs, per_image = image[order], probs[order], match.per_image
            guess = tuple(guess[i] for i in order) if len(guess) == len(order) else guess
            # the PSNR: the mean over the pairs
            m = dataclasses.replace(match.batch, psnr=sum(x.psnr for x in per_image) / len(per_image))
        else:
            m = metrics.image_metrics(image, self.images)
        return Snapshot(
            step=step, seconds=seconds, evals=evals, image=image, label_guess=guess, label_probs=probs,
            gradient_distance=progress.gradient_distance, mse=m.mse, mse_255=m.mse_255, psnr=m.psnr,
            truth=self.images, restarts=restarts, per_image=per_image,
            trail=self._trail_frames(progress, evals - progress.evals),
        )

    def _trail_frames(self, progress: Progress, base_evals: int) -> tuple[TrailFrame, ...]:
        frames = []
        for point in progress.trail if self.trail else ():
            image = torch.nan_to_num(point.reconstruction, nan=0.5).clamp(0, 1)
            m = metrics.image_metrics(image, self.images)  # MSE and PSNR only: SSIM would cost more than a copy
            frames.append(TrailFrame(base_evals + point.evals, image, point.gradient_distance, m.mse_255, m.psnr))
        return tuple(frames)

    def __iter__(self) -> Iterator[Snapshot]:
        c = self.config
        use_threads(c.threads)
        torch.manual_seed(attacker_seed(c.seed))  # from here on only the attacker draws
        tally = _Tally(started=time.perf_counter(), lr=c.lr)
        settings = self._settings(c.steps, c.lr, None)
        while settings is not None:
            tally.outcome = yield from self._leg(settings, tally)
            settings = self._next_leg(tally.outcome, tally)
        self.result = self._result(tally)
        if self.result.final is not None and self.result.final is not tally.last:
            yield self.result.final  # the best of several starts (or the point before a divergence) ends the show

    def _leg(self, settings: AttackSettings, tally: _Tally) -> Generator[Snapshot, None, str]:
        """One (re)start of the attack, until it ends; returns how: diverged, matched, stalled, stopped,
        timeout, or done (its steps ran out). Steps and evaluations go on counting from the last leg's."""
        c = self.config
        base_steps, base_evals, resumed = tally.steps, tally.evals, tally.restarts > 0
        quiet, leg_first = 0, None
        lbfgs = attack_registry.get(c.attack).optimiser == "lbfgs"  # it can end by itself (Adam runs all its steps)
        for progress in ATTACKS[c.attack](self.knowledge(), settings):
            step, evals = base_steps + progress.step, base_evals + progress.evals
            distance = progress.gradient_distance
            if tally.first_distance is None and math.isfinite(distance):
                tally.first_distance = distance
            leg_first = distance if leg_first is None else leg_first
            if _diverged(progress, tally.first_distance):
                return "diverged"
            # L-BFGS needing at most one evaluation a step has ended (Adam always needs one)
            quiet = quiet + 1 if lbfgs and progress.step > 0 and evals - tally.evals <= 1 else 0
            tally.steps, tally.evals = step, evals
            tally.keep_best(progress)
            if progress.step == 0 and resumed:
                continue  # the point it restarts from was shown already (or, a fresh start, is not a step)
            snap = self._snapshot(progress, step, evals, time.perf_counter() - tally.started, tally.restarts)
            tally.show(snap)
            yield snap
            ending = self._interrupted(tally, snap.seconds)
            if ending:
                return ending
            if quiet >= STALL_STEPS:
                return _judge_end(distance, leg_first, tally.first_distance)
        return "done"

    def _interrupted(self, tally: _Tally, seconds: float) -> str | None:
        """A stop request or the time budget: the run ends here, whatever the attack would do next."""
        if self.stop_event.is_set():
            tally.status, tally.message = "stopped", "Stopped on request."
            return "stopped"
        if seconds > self.config.max_seconds:
            tally.status, tally.message = "timeout", f"Stopped at the time budget of {self.config.max_seconds:g} s."
            return "timeout"
        return None

    def _next_leg(self, outcome: str, tally: _Tally) -> AttackSettings | None:
        """What to do after a leg ended: the next leg's settings, or None to end the run (tally says why)."""
        c = self.config
        steps_left = c.steps - tally.steps
        if outcome == "diverged":
            if tally.divergences >= MAX_RESTARTS:
                tally.status = "diverged"
                tally.message = (f"The optimisation diverged (NaN/Inf, an exploding distance, or pixels far outside "
                                 f"the valid range) and {tally.divergences} restarts with smaller steps did not "
                                 "help: try a smaller learning rate.")
                return None
            tally.divergences += 1
            tally.restarts += 1
            tally.lr /= 2  # restart from the best point so far (or the start) with a gentler step
            return (self._settings(steps_left, tally.lr, tally.best, fixed_labels=tally.fixed_labels)
                    if steps_left > 0 else None)
        if outcome == "matched":
            tally.message = _join(tally.events + [f"the optimiser converged: the gradients match (distance "
                                                  f"{tally.best.gradient_distance:.1e}, {_ratio(tally):.0e} of "
                                                  "where it started)"])
        if outcome == "done" and tally.events:
            tally.message = _join(tally.events + ["the steps ran out; the best picture of all the starts is kept"])
        if outcome != "stalled":
            return None
        seconds = time.perf_counter() - tally.started
        stall = self._describe_stall(tally)
        if steps_left <= STALL_STEPS or tally.fresh_starts >= c.fresh_starts or seconds >= c.max_seconds:
            tally.message = _join(tally.events + [f"{stall}; no budget left for a new start, the best picture "
                                                  "is kept"])
            return None
        tally.restarts += 1
        # DLG's first stall comes from learning the label along with the photo: a soft label near but not at the
        # one-hot one (e.g. 0.97) that the picture has to make up for. Holding the label it learnt fixed and going
        # on from the stall's best point took such runs from 26-28 dB to 40-53 dB (seed-paper setting, tune photos
        # and the report's horse), where new starts with the label fixed had needed a whole leg to get back there.
        learns_label = attack_registry.get(c.attack).label_source == "learnt"
        if learns_label and not c.labels_known and tally.fixed_labels is None:
            tally.fixed_labels = tally.best.label_guess
            tally.events.append(f"{stall}; went on from its best point with the label it learnt held fixed")
            return self._settings(steps_left, tally.lr, tally.best, fixed_labels=tally.fixed_labels)
        blurred = self._blurred_start(tally)
        if blurred:
            tally.smoothed_at = tally.best.gradient_distance
            start = dataclasses.replace(tally.best, reconstruction=smoothed(tally.best.reconstruction, SMOOTH_SIGMA))
            tally.events.append(f"{stall}; {blurred}")
            return self._settings(steps_left, tally.lr, start, fixed_labels=tally.fixed_labels)
        tally.fresh_starts += 1
        tally.events.append(f"{stall}; restarted from a new start")
        return self._settings(steps_left, tally.lr, None, fresh=tally.fresh_starts, fixed_labels=tally.fixed_labels)

    def _blurred_start(self, tally: _Tally) -> str | None:
        """Whether the next start is the best picture blurred (in the message's words), else None.

        DLG, once, after its label-fixed leg stalled too: the picture's error was fine-grained noise (74% of its
        energy above a quarter of the sampling rate, measured) that the strided convolutions barely see, and every
        start fell back to it; from the best point blurred, a tune photo stuck at 28.7 dB from grey, uniform and
        perturbed starts reached 71 dB (0.5 fell back). With ``stall_start="smoothed"`` (iDLG on the CNN: the
        same kind of stall), while such a start keeps finding a better picture; it counts as a new start.
        """
        if tally.fixed_labels is not None and tally.smoothed_at is None:
            return "went on from its best point blurred, the label still held fixed"
        if self.config.stall_start == "smoothed" and (
                tally.smoothed_at is None or tally.best.gradient_distance < tally.smoothed_at):
            tally.fresh_starts += 1
            return "restarted from the best picture so far, smoothed"
        return None

    def _describe_stall(self, tally: _Tally) -> str:
        """Where a leg stalled, in words; the PSNR is the demo's to say (the decision used the distance alone)."""
        last = tally.last
        psnr = f"at {last.psnr:.1f} dB " if last is not None and math.isfinite(last.psnr) else ""
        return f"stalled {psnr}with gradient distance {last.gradient_distance:.1e}"

    def _result(self, tally: _Tally) -> RunResult:
        final = tally.last
        best = tally.best
        if best is not None and (final is None or tally.status == "diverged"
                                 or best.gradient_distance < final.gradient_distance):
            # The best point of all the starts (by the attacker's own measure, the gradient distance)
            final = self._snapshot(best, tally.steps, tally.evals, time.perf_counter() - tally.started,
                                   tally.restarts)
        if tally.message is None and tally.events:
            tally.message = _join(tally.events)
        report = self.victim.report
        result = RunResult(
            config=self.config, status=tally.status, message=tally.message, steps_run=tally.steps,
            evals=tally.evals, seconds=time.perf_counter() - tally.started, seconds_to_30db=tally.hit_seconds,
            evals_to_30db=tally.hit_evals, label_true=self.labels, final=final, victim_seed=self.victim.seed,
            gradient_norm=report.update.norm, gradient_numel=report.update.numel, restarts=tally.restarts,
            warning=self.victim.warning,
        )
        result.diagnosis = diagnose(result, report, outcome=tally.outcome, fresh_starts=tally.fresh_starts)
        return result


def run_to_end(config: AttackConfig, images: torch.Tensor, labels: tuple[int, ...] | list[int],
               on_snapshot=None) -> RunResult:
    """Run without a UI; ``on_snapshot(snapshot)`` is called for each step (e.g. a progress bar)."""
    run = AttackRun(config, images, labels)
    for snap in run:
        if on_snapshot is not None:
            on_snapshot(snap)
    assert run.result is not None
    return run.result
