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
from .spectral import SpectralCoordinates


def match_gradients(knowledge: AttackerKnowledge, settings: AttackSettings,
                    known_labels: tuple[int, ...] | None) -> Iterator[Progress]:
    """Yields one Progress per L-BFGS step. With ``known_labels`` the label is fixed (iDLG), else learnt (DLG)."""
    matcher = _Matcher(knowledge, settings, known_labels)
    # Step 0: the starting point, so that a viewer sees a first frame after one evaluation.
    matcher.closure()
    yield matcher.report(0)
    for step in range(1, settings.steps + 1):
        matcher.optimizer.step(matcher.closure)
        yield matcher.report(step)


class _Matcher:
    """One matching run's state: the dummy image (and DLG's dummy label), its optimiser and its counters."""

    def __init__(self, knowledge: AttackerKnowledge, settings: AttackSettings, known_labels: tuple[int, ...] | None):
        dtype = settings.dtype
        device = knowledge.shared_update.gradients[0].device
        self.knowledge, self.settings, self.known_labels = knowledge, settings, known_labels
        self.model = knowledge.model.to(device=device, dtype=dtype)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.target = [g.to(dtype) for g in knowledge.shared_update.gradients]
        generator = torch.Generator().manual_seed(settings.seed)
        batch, classes = knowledge.input_shape[0], knowledge.num_classes
        self.adapt = adaptation(knowledge, settings)

        start = settings.start_image
        if start is None:
            start = initial_image(knowledge.input_shape, settings.init, generator, dtype)
        start = start.detach().to(device=device, dtype=dtype)
        # What L-BFGS holds: the pixels, or the picture's spectral coordinates (spectral.py)
        self.spectral = None
        if settings.precondition == "spectral":
            self.spectral = SpectralCoordinates(*start.shape[-2:], dtype=dtype, device=device)
            start = self.spectral.coords(start)
        self.held = start.clone().requires_grad_(True)
        self.variables = [self.held]
        self.label_logits: torch.Tensor | None = None
        if known_labels is None:
            start_logits = settings.start_label_logits
            if start_logits is None:
                start_logits = torch.randn((batch, classes), generator=generator, dtype=dtype)
            self.label_logits = start_logits.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
            self.variables.append(self.label_logits)
        else:
            self.fixed = torch.nn.functional.one_hot(torch.tensor(known_labels, device=device), classes).to(dtype)

        optimizer_class = CompactLBFGS if settings.lbfgs == "compact" else torch.optim.LBFGS
        self.optimizer = optimizer_class(self.variables, lr=settings.lr, max_iter=settings.max_iter,
                                         history_size=settings.history_size, line_search_fn=settings.line_search)
        self.evals = 0
        self.last_distance = float("nan")
        self.trail: list[tuple[int, torch.Tensor, float]] = []  # this step's improving points (settings.trail)
        self.trail_best = float("inf")  # the distance to beat: where the step started, then its best point so far

    def label_probs(self) -> torch.Tensor:
        return self.label_logits.softmax(dim=-1) if self.known_labels is None else self.fixed

    def picture(self) -> torch.Tensor:
        """The candidate photo (differentiable in what L-BFGS holds)."""
        return self.held if self.spectral is None else self.spectral.picture(self.held)

    @torch.no_grad()
    def _picture_now(self) -> torch.Tensor:
        return self.picture().detach()

    def closure(self) -> torch.Tensor:
        self.evals += 1
        for v in self.variables:
            v.grad = None
        update = self.knowledge.shared_update
        image = self.picture()
        candidate = candidate_gradients(self.model, self.params, image, self.label_probs(),
                                        update.local_steps, update.local_lr)
        distance = gradient_distance(*view(self.adapt, candidate, self.target), self.settings.distance)
        if self.adapt is not None and self.adapt.prior_weight:
            # a known noise scale: prefer a photo among near matches
            distance = distance + self.adapt.prior_weight * total_variation(image)
        distance.backward()
        self.last_distance = float(distance.detach())
        if self.settings.trail and self.last_distance < self.trail_best:
            # a copy on the device (a few KB): moved to the CPU once per step, in report()
            self.trail_best = self.last_distance
            self.trail.append((self.evals, image.detach().clone(), self.last_distance))
        return distance

    def report(self, step: int) -> Progress:
        probs = self.label_probs().detach()
        # The step's last evaluation is (nearly always) at the point it ends on: that one is the Progress itself.
        points = tuple(TrailPoint(e, x.to("cpu", torch.float32), d) for e, x, d in self.trail if e < self.evals)
        self.trail.clear()
        distance = getattr(self.optimizer, "current_loss", None) or self.last_distance
        self.trail_best = distance
        return Progress(
            step=step,
            evals=self.evals,
            reconstruction=self._picture_now().to("cpu", torch.float32, copy=True),
            label_guess=tuple(int(i) for i in probs.argmax(dim=-1)),
            label_probs=probs.to("cpu", torch.float32, copy=True),
            # at the current point when the optimiser knows it, else at the last point evaluated
            gradient_distance=distance,
            label_logits=self.label_logits.detach().to("cpu", copy=True) if self.known_labels is None else None,
            trail=points,
        )
