"""A smooth stand-in for a ReLU victim, used for most of the run (Inverting Gradients' ``soft_relu``).

The gradient-matching loss differentiates the victim's gradient with respect to the image, and so goes through
each activation's second derivative. ReLU's is zero (where it is not undefined): the loss's gradient then
ignores how the units that are nearly on or off would switch, which is most of how the victim's gradient depends
on the image, and Adam on its sign wanders among the pieces of a piecewise-smooth loss. The attacker's copy of the
victim may compute softplus instead, ``log(1 + exp(beta x)) / beta``: within about 1/beta of ReLU everywhere,
with a second derivative that feels the units near their switch. The first ``SHARP_AT`` of each restart match
the stand-in's gradients; the rest, and the restart's final score, the victim's own ReLU (the attack only ever
compares gradients, and its last ones are exact). The stand-in's distances are flagged (``Progress.stand_in``):
the run loop never keeps one as its best point. Measured on the random ResNet at 32 px (README): beta 50 took 4
tune photos from a median of 16.5 dB to 21.0 dB at 1000 steps; a beta that started low and grew was worse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHARP_AT = 0.75  # fraction of a restart's steps after which the victim's own ReLU is used
CUTOFF = 40.0  # softplus is held at its value for beta x = -CUTOFF below that


class SmoothReLU(nn.Module):
    """ReLU while ``beta`` is None, else softplus of sharpness ``beta``."""

    def __init__(self) -> None:
        super().__init__()
        self.beta: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.beta is None:
            return F.relu(x)
        # Below the cutoff softplus is within exp(-CUTOFF) / beta of 0; left to run, its exp() and the gradients
        # through it go subnormal, which the CPU computes many times slower (measured: the run 1.7x slower).
        return F.softplus(x.clamp_min(-CUTOFF / self.beta), beta=self.beta)


def smooth_relus(model: nn.Module) -> list[SmoothReLU]:
    """Replace every ``nn.ReLU`` module of ``model`` (in place) by a ``SmoothReLU``; returns them."""
    swapped = []
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                smooth = SmoothReLU()
                setattr(module, name, smooth)
                swapped.append(smooth)
    return swapped


def sharpness(fraction: float, beta: float) -> float | None:
    """The softplus sharpness at this fraction of a restart's steps: ``beta`` before SHARP_AT, None (the victim's
    ReLU) from there on, or always when ``beta`` is 0 (no stand-in)."""
    return beta if beta > 0 and fraction < SHARP_AT else None
