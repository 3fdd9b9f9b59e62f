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

Labels come from the output layer's gradient (``labels.py``), so a batch is rebuilt jointly, one candidate
image per inferred label. A FedAvg update is matched by replaying the client's local steps (section 6).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .adaptive import adaptation, view
from .base import AttackerKnowledge, AttackSettings, Progress, candidate_gradients, initial_image
from .distance import gradient_distance
from .labels import infer_batch_labels
from .prior import total_variation

LR_MILESTONES = (3 / 8, 5 / 8, 7 / 8)  # Geiping et al.'s schedule, as fractions of one restart's steps


def _steps_per_restart(steps: int, restarts: int) -> list[int]:
    # `steps` is the whole run's budget, so that adding restarts doesn't make a run longer.
    share, extra = divmod(steps, restarts)
    return [share + (1 if r < extra else 0) for r in range(restarts)]


def ig(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    """Yields a Progress per Adam step (step 0 is the start), showing the best restart so far."""
    dtype = settings.dtype
    device = knowledge.shared_update.gradients[0].device
    model = knowledge.model.to(device=device, dtype=dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    target = [g.to(dtype) for g in knowledge.shared_update.gradients]
    local_steps, local_lr = knowledge.shared_update.local_steps, knowledge.shared_update.local_lr
    generator = torch.Generator().manual_seed(settings.seed)
    adapt = adaptation(knowledge, settings)

    label_guess = knowledge.known_labels or infer_batch_labels(knowledge)
    label_probs = F.one_hot(torch.tensor(label_guess, device=device), knowledge.num_classes).to(dtype)
    restarts = max(1, settings.restarts)
    evals = step = 0
    best_image: torch.Tensor | None = None  # the best finished restart's final image, on the CPU
    best_distance = math.inf
    best_restart = 0

    def evaluate(image: torch.Tensor) -> float:
        """One gradient evaluation: fills image.grad with the signed gradient of the loss."""
        nonlocal evals
        evals += 1
        image.grad = None
        candidate = candidate_gradients(model, params, image, label_probs, local_steps, local_lr)
        distance = gradient_distance(*view(adapt, candidate, target), "cosine")
        (distance + settings.tv_weight * total_variation(image)).backward()
        image.grad.sign_()
        return float(distance.detach())

    def report(image: torch.Tensor, distance: float, restart: int) -> Progress:
        if distance < best_distance or best_image is None:
            shown, shown_distance, shown_restart = image.detach().to("cpu", torch.float32, copy=True), distance, restart
        else:
            shown, shown_distance, shown_restart = best_image, best_distance, best_restart
        return Progress(step=step, evals=evals, reconstruction=shown, label_guess=label_guess,
                        label_probs=label_probs.to("cpu", torch.float32, copy=True),
                        gradient_distance=shown_distance, restart=shown_restart)

    for restart, restart_steps in enumerate(_steps_per_restart(settings.steps, restarts)):
        if restart == 0 and settings.start_image is not None:
            start = settings.start_image
        else:
            # A restart is only worth its cost if it starts elsewhere: later ones start from uniform noise,
            # whatever `init` is (a grey start differs from the next grey start by faint noise only).
            start = initial_image(knowledge.input_shape, settings.init if restart == 0 else "uniform", generator,
                                  dtype)
        image = start.detach().to(device=device, dtype=dtype).clamp(0, 1).requires_grad_(True)
        optimizer = torch.optim.Adam([image], lr=settings.adam_lr)
        milestones = sorted({max(1, round(f * restart_steps)) for f in LR_MILESTONES}) if settings.lr_decay else []
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
        for i in range(restart_steps + 1):  # the last evaluation only scores the restart's final image
            distance = evaluate(image)
            if not math.isfinite(distance):
                yield report(image, distance, restart)  # let the run loop see the NaN and react
                return
            if i > 0 or restart == 0:  # a later restart's start is not a new step
                yield report(image, distance, restart)
            if i == restart_steps:
                break
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                image.clamp_(0, 1)  # the valid box: pixels live in [0, 1]
            step += 1
        if distance < best_distance:
            best_image = image.detach().to("cpu", torch.float32, copy=True)
            best_distance, best_restart = distance, restart
