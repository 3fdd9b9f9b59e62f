"""Inverting Gradients (Geiping, Bauermeister, Dröge & Moeller, NeurIPS 2020).

DLG's recipe (L-BFGS on the squared distance between gradients) breaks down on the victims people train in
practice: a ReLU net's matching loss is only piecewise smooth (each ReLU that switches on or off makes the
gradient jump), which misleads L-BFGS's curvature model, and the squared distance is dominated by the
gradient's overall size, which mostly says how wrong the victim is, not what the image looks like.
Geiping et al. changed four things, all kept here:

- Cosine distance between the candidate's gradient and the shared one: only the gradient's *direction*
  must match, which is what carries the image.
- A total-variation prior (the mean absolute difference between neighbouring pixels): among the images
  whose gradients point the same way, prefer the one that looks like a photo, not like noise.
- Adam on the *sign* of the image's gradient, with a learning rate divided by 10 at 3/8, 5/8 and 7/8 of the
  run: signed steps move every pixel equally however tiny its gradient, and the decay then settles them.
  After each step the image is put back into its valid box, [0, 1] here (no dataset normalisation).
- Several restarts from different random images, keeping the one whose gradient matches best.

Two additions of ours. ``soft_relu``: against a ReLU victim, the first 3/4 of each restart match the gradients of a
copy whose ReLUs are softplus (``surrogate.py``), whose second derivative, unlike ReLU's, tells the loss how units
near their switch depend on the image; the rest match the victim's own. And ``polish_steps``: the last steps of the
budget are L-BFGS steps on the cosine distance alone, from the best restart's image (``lbfgs_matching.py``, iDLG's
engine). Adam on the sign ends near the photo but not on it (the TV prior pulls the optimum off the photo, and
signed steps stop resolving detail once the rate has decayed); where the victim is smooth (sigmoids), L-BFGS then
closes the gap in a few hundred evaluations (measured: attack_registry.py's IG line, README). On the sigmoid CNN it
often stalled short of the photo (21-26 dB, the line search failing); the error left there is mostly pixel noise,
so after such a stall the polish starts again from its best point blurred (``prior.smoothed``), while that keeps
finding a better point.

Labels come from the output layer's gradient (``labels.py``), so a batch is rebuilt jointly, one candidate
image per inferred label. A FedAvg update is matched by replaying the client's local steps (section 6).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Generator, Iterator

import torch
import torch.nn.functional as F

from .adaptive import adaptation, view
from .base import AttackerKnowledge, AttackSettings, Progress, candidate_gradients, initial_image
from .distance import gradient_distance
from .labels import infer_batch_labels
from .lbfgs_matching import match_gradients
from .prior import smoothed, total_variation
from .surrogate import sharpness, smooth_relus

LR_MILESTONES = (3 / 8, 5 / 8, 7 / 8)  # Geiping et al.'s schedule, as fractions of one restart's steps
POLISH_STALL_STEPS = 5  # L-BFGS steps in a row with at most one evaluation each: the polish has stalled
POLISH_MATCH_RATIO = 1e-6  # a stall this far below the polish's first distance is a match (as run.py's)
POLISH_SMOOTH_SIGMA = 1.0  # the blur (pixels) of a new start after a stall


def _steps_per_restart(steps: int, restarts: int) -> list[int]:
    # `steps` is the whole run's budget, so that adding restarts doesn't make a run longer.
    share, extra = divmod(steps, restarts)
    return [share + (1 if r < extra else 0) for r in range(restarts)]


def ig(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    """Yields a Progress per Adam step (step 0 is the start), showing the best restart so far."""
    run = _Inversion(knowledge, settings)
    polish_steps = min(settings.polish_steps, settings.steps - 1)  # Adam keeps at least one step
    for restart, restart_steps in enumerate(_steps_per_restart(settings.steps - polish_steps,
                                                               max(1, settings.restarts))):
        finite = yield from run.restart(restart, restart_steps)
        if not finite:
            return
    if polish_steps > 0 and run.best_image is not None:
        yield from _polish(knowledge, settings, polish_steps, run)


def _polish(knowledge: AttackerKnowledge, settings: AttackSettings, steps: int, run: _Inversion) -> Iterator[Progress]:
    """L-BFGS on the cosine distance alone (no prior) from Adam's best image, counting on from its step and
    evaluations; each Progress shows the best point so far. When L-BFGS stalls short of a match, it starts
    again from its best point blurred, while such a start keeps finding a better one (``_polish_legs``)."""
    best: Progress | None = None
    step, evals = run.step, run.evals
    for progress in _polish_legs(knowledge, settings, steps, run):
        if best is None or progress.gradient_distance <= best.gradient_distance:
            best = progress
        step, evals = progress.step, progress.evals
        yield dataclasses.replace(best, step=step, evals=evals)
    for later in range(step + 1, run.step + steps + 1) if best is not None else ():
        yield dataclasses.replace(best, step=later, evals=evals)  # ended early: still a frame per step


def _polish_legs(knowledge: AttackerKnowledge, settings: AttackSettings, steps: int,
                 run: _Inversion) -> Iterator[Progress]:
    start, done, evals = run.best_image, 0, run.evals
    first = best = math.inf
    while done < steps:
        leg = dataclasses.replace(settings, steps=steps - done, distance="cosine", start_image=start,
                                  start_label_logits=None)
        quiet, last_evals, leg_best, leg_image = 0, 0, math.inf, start
        for progress in match_gradients(knowledge, leg, known_labels=run.label_guess):
            if first == math.inf:
                first = progress.gradient_distance
            if progress.gradient_distance < leg_best:
                leg_best, leg_image = progress.gradient_distance, progress.reconstruction
            if progress.step == 0:  # the leg's start: Adam's best image (shown already) or a blurred one
                last_evals = progress.evals
                continue
            done += 1
            quiet = quiet + 1 if progress.evals - last_evals <= 1 else 0
            last_evals = progress.evals
            yield dataclasses.replace(progress, step=run.step + done, evals=evals + progress.evals)
            if quiet >= POLISH_STALL_STEPS:
                break
        evals += last_evals
        # A match (float32's floor on the sigmoid LeNet) or a blurred start that found nothing better: done.
        if leg_best <= POLISH_MATCH_RATIO * first or leg_best >= best:
            return
        best, start = leg_best, smoothed(leg_image, POLISH_SMOOTH_SIGMA)


class _Inversion:
    """One run's state: the victim in the attack's precision, the inferred labels, the counters and the best
    finished restart."""

    def __init__(self, knowledge: AttackerKnowledge, settings: AttackSettings):
        self.knowledge, self.settings = knowledge, settings
        dtype = settings.dtype
        self.device = knowledge.shared_update.gradients[0].device
        model = copy.deepcopy(knowledge.model) if settings.soft_relu > 0 else knowledge.model  # the polish's: ReLU
        self.model = model.to(device=self.device, dtype=dtype)
        self.smooth = smooth_relus(self.model) if settings.soft_relu > 0 else []
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.target = [g.to(dtype) for g in knowledge.shared_update.gradients]
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.adapt = adaptation(knowledge, settings)
        self.label_guess = knowledge.known_labels or infer_batch_labels(knowledge)
        self.label_probs = F.one_hot(torch.tensor(self.label_guess, device=self.device),
                                     knowledge.num_classes).to(dtype)
        self.evals = self.step = 0
        self.best_image: torch.Tensor | None = None  # the best finished restart's final image, on the CPU
        self.best_distance = math.inf
        self.best_restart = 0

    def evaluate(self, image: torch.Tensor) -> float:
        """One gradient evaluation: fills image.grad with the signed gradient of the loss."""
        self.evals += 1
        image.grad = None
        update = self.knowledge.shared_update
        candidate = candidate_gradients(self.model, self.params, image, self.label_probs, update.local_steps,
                                        update.local_lr)
        distance = gradient_distance(*view(self.adapt, candidate, self.target), "cosine")
        (distance + self.settings.tv_weight * total_variation(image)).backward()
        image.grad.sign_()
        return float(distance.detach())

    def report(self, image: torch.Tensor, distance: float, restart: int) -> Progress:
        stand_in = any(unit.beta is not None for unit in self.smooth)  # the distance is the stand-in's
        if self.best_image is None or (distance < self.best_distance and not stand_in):
            shown, shown_distance, shown_restart = image.detach().to("cpu", torch.float32, copy=True), distance, restart
        else:
            shown, shown_distance, shown_restart = self.best_image, self.best_distance, self.best_restart
            stand_in = False
        return Progress(step=self.step, evals=self.evals, reconstruction=shown, label_guess=self.label_guess,
                        label_probs=self.label_probs.to("cpu", torch.float32, copy=True),
                        gradient_distance=shown_distance, restart=shown_restart, stand_in=stand_in)

    def start(self, restart: int) -> torch.Tensor:
        settings = self.settings
        if restart == 0 and settings.start_image is not None:
            start = settings.start_image
        else:
            # A restart is only worth its cost if it starts elsewhere: later ones start from uniform noise,
            # whatever `init` is (a grey start differs from the next grey start by faint noise only).
            start = initial_image(self.knowledge.input_shape, settings.init if restart == 0 else "uniform",
                                  self.generator, settings.dtype)
        return start.detach().to(device=self.device, dtype=settings.dtype).clamp(0, 1).requires_grad_(True)

    def restart(self, restart: int, restart_steps: int) -> Generator[Progress, None, bool]:
        """One restart's Adam steps; returns False when the distance stopped being finite (the run then ends)."""
        image = self.start(restart)
        optimizer = torch.optim.Adam([image], lr=self.settings.adam_lr)
        milestones = sorted({max(1, round(f * restart_steps)) for f in LR_MILESTONES}) \
            if self.settings.lr_decay else []
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        for i in range(restart_steps + 1):  # the last evaluation only scores the restart's final image
            for unit in self.smooth:  # a smooth stand-in for the ReLUs first, the victim's own at the end
                unit.beta = sharpness(i / max(1, restart_steps), self.settings.soft_relu)
            distance = self.evaluate(image)
            if not math.isfinite(distance):
                yield self.report(image, distance, restart)  # let the run loop see the NaN and react
                return False
            if i > 0 or restart == 0:  # a later restart's start is not a new step
                yield self.report(image, distance, restart)
            if i == restart_steps:
                break
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                image.clamp_(0, 1)  # the valid box: pixels live in [0, 1]
            self.step += 1
        if distance < self.best_distance:
            self.best_image = image.detach().to("cpu", torch.float32, copy=True)
            self.best_distance, self.best_restart = distance, restart
        return True
