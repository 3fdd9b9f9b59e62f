"""A smooth stand-in for a ReLU victim, sharpened back to ReLU during the run (Inverting Gradients, ``soft_relu``).

A ReLU net's gradient-matching loss is only piecewise smooth: which units are on is a step function of the
image, so the loss's gradient says nothing about the units that would switch on or off a little further, and
Adam on its sign wanders among the pieces. The attacker's copy of the victim may compute softplus instead,
``log(1 + exp(beta x)) / beta``, which is smooth and tends to ReLU as beta grows: the run starts with a soft
beta, where every unit's switching is felt, multiplies it up geometrically, and matches with the victim's own
ReLU from ``SHARP_AT`` of the run on (the attack only ever compares gradients; the last ones are exact).
Measured on the random ResNet at 32 px (README): a median of 16.5 dB -> 19.9 dB at 1000 steps on tune photos.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHARP_AT = 0.5  # fraction of a restart's steps after which the victim's own ReLU is used
SHARPEST = 50.0  # beta reached just before that (a softplus this sharp is within 0.014 of ReLU)


class SmoothReLU(nn.Module):
    """ReLU while ``beta`` is None, else softplus of sharpness ``beta``."""

    def __init__(self) -> None:
        super().__init__()
        self.beta: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.beta is None else F.softplus(x, beta=self.beta)


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


def sharpness(fraction: float, start: float) -> float | None:
    """The softplus beta at this fraction of a restart's steps: ``start`` at 0, growing geometrically towards
    SHARPEST, None (ReLU) from SHARP_AT on or when ``start`` is 0 (no smoothing)."""
    if start <= 0 or fraction >= SHARP_AT:
        return None
    return start * (SHARPEST / start) ** (fraction / SHARP_AT)
