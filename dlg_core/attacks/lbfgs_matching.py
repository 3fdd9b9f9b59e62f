"""Gradient matching with L-BFGS, the engine shared by DLG and iDLG.

A dummy image (and, for DLG, a dummy soft label) is fed through the victim; the gradient it would
produce is compared with the shared one, and L-BFGS moves the dummy to close the gap (Zhu et al. 2019).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .adaptive import adaptation, view
from .base import (
    AttackerKnowledge,
    AttackSettings,
    Progress,
    TrailPoint,
    candidate_gradients,
    initial_image,
)
from .distance import gradient_distance
from .lbfgs import CompactLBFGS
from .prior import total_variation


def match_gradients(knowledge: AttackerKnowledge, settings: AttackSettings,
                    known_labels: tuple[int, ...] | None) -> Iterator[Progress]:
    """Yields one Progress per L-BFGS step. With ``known_labels`` the label is fixed (iDLG), else learnt (DLG)."""
    dtype = settings.dtype
    device = knowledge.shared_update.gradients[0].device
    model = knowledge.model.to(device=device, dtype=dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    target = [g.to(dtype) for g in knowledge.shared_update.gradients]
    generator = torch.Generator().manual_seed(settings.seed)
    batch, classes = knowledge.input_shape[0], knowledge.num_classes
    adapt = adaptation(knowledge, settings)

    start = settings.start_image
    if start is None:
        start = initial_image(knowledge.input_shape, settings.init, generator, dtype)
    image = start.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
    variables = [image]
    if known_labels is None:
        start_logits = settings.start_label_logits
        if start_logits is None:
            start_logits = torch.randn((batch, classes), generator=generator, dtype=dtype)
        label_logits = start_logits.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
        variables.append(label_logits)
    else:
        fixed = torch.nn.functional.one_hot(torch.tensor(known_labels, device=device), classes).to(dtype)

    def current_label_probs() -> torch.Tensor:
        return label_logits.softmax(dim=-1) if known_labels is None else fixed

    optimizer_class = CompactLBFGS if settings.lbfgs == "compact" else torch.optim.LBFGS
    optimizer = optimizer_class(variables, lr=settings.lr, max_iter=settings.max_iter,
                                history_size=settings.history_size, line_search_fn=settings.line_search)
    evals = 0
    last_distance = float("nan")
    trail: list[tuple[int, torch.Tensor, float]] = []  # this step's improving points (settings.trail)
    trail_best = float("inf")  # the distance to beat: where the step started, then its best point so far

    def closure() -> torch.Tensor:
        nonlocal evals, last_distance, trail_best
        evals += 1
        for v in variables:
            v.grad = None
        candidate = candidate_gradients(model, params, image, current_label_probs(),
                                        knowledge.shared_update.local_steps, knowledge.shared_update.local_lr)
        distance = gradient_distance(*view(adapt, candidate, target), settings.distance)
        if adapt is not None and adapt.prior_weight:  # a known noise scale: prefer a photo among near matches
            distance = distance + adapt.prior_weight * total_variation(image)
        distance.backward()
        last_distance = float(distance.detach())
        if settings.trail and last_distance < trail_best:
            # a copy on the device (a few KB): moved to the CPU once per step, in report()
            trail_best = last_distance
            trail.append((evals, image.detach().clone(), last_distance))
        return distance

    def report(step: int) -> Progress:
        nonlocal trail_best
        probs = current_label_probs().detach()
        # The step's last evaluation is (nearly always) at the point it ends on: that one is the Progress itself.
        points = tuple(TrailPoint(e, x.to("cpu", torch.float32), d) for e, x, d in trail if e < evals)
        trail.clear()
        distance = getattr(optimizer, "current_loss", None) or last_distance
        trail_best = distance
        return Progress(
            step=step,
            evals=evals,
            reconstruction=image.detach().to("cpu", torch.float32, copy=True),
            label_guess=tuple(int(i) for i in probs.argmax(dim=-1)),
            label_probs=probs.to("cpu", torch.float32, copy=True),
            # at the current point when the optimiser knows it, else at the last point evaluated
            gradient_distance=distance,
            label_logits=label_logits.detach().to("cpu", copy=True) if known_labels is None else None,
            trail=points,
        )

    # Step 0: the starting point, so that a viewer sees a first frame after one evaluation.
    closure()
    yield report(0)
    for step in range(1, settings.steps + 1):
        optimizer.step(closure)
        yield report(step)
