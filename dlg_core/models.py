"""Victim networks by name, for square images of any size from 16 to 128 px.

- ``lenet``: the victim of DLG (Zhu et al. 2019) and iDLG (Zhao et al. 2020): three 5x5 convolutions with
  12 channels and sigmoids, one linear layer, every weight and bias drawn from U(-0.5, 0.5). Sigmoid is
  twice differentiable, which gradient matching needs (a ReLU net's second derivative is zero almost everywhere).
- ``cnn``: the seed paper's kind of victim (Mu 2023): a few convolutions, then fully-connected layers,
  with twice-differentiable activations (sigmoid by default).
- ``mlp``: a fully-connected net; its first layer's input is the image itself, which is what the
  closed-form attack on fully-connected layers exploits.

Initialisation is seeded: the same (name, size, classes, seed) gives the same victim.
"""

from __future__ import annotations

import torch
from torch import nn

from . import limits
from .errors import BadInputError

MODEL_NAMES = ("lenet", "cnn", "mlp")

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def _lenet(size: int, classes: int, act: type[nn.Module]) -> nn.Sequential:
    convs = nn.Sequential(
        nn.Conv2d(3, 12, 5, padding=2, stride=2), act(),
        nn.Conv2d(12, 12, 5, padding=2, stride=2), act(),
        nn.Conv2d(12, 12, 5, padding=2, stride=1), act(),
        nn.Flatten(),
    )
    return nn.Sequential(*convs, nn.Linear(_features(convs, size), classes))


def _cnn(size: int, classes: int, act: type[nn.Module]) -> nn.Sequential:
    convs = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), act(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), act(),
        nn.Conv2d(32, 32, 3, padding=1, stride=2), act(),
        nn.Flatten(),
    )
    return nn.Sequential(*convs, nn.Linear(_features(convs, size), 128), act(), nn.Linear(128, classes))


def _mlp(size: int, classes: int, act: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 256), act(), nn.Linear(256, classes))


_BUILDERS = {"lenet": _lenet, "cnn": _cnn, "mlp": _mlp}


def _features(convs: nn.Module, size: int) -> int:
    with torch.no_grad():
        return convs(torch.zeros(1, 3, size, size)).shape[1]


def build_model(name: str, size: int, classes: int = 2, seed: int = 0, activation: str = "sigmoid") -> nn.Module:
    """The victim network, freshly initialised from ``seed``; in eval mode (no dropout or batch statistics)."""
    if name not in _BUILDERS:
        raise BadInputError(f"Unknown model '{name}': choose one of {', '.join(MODEL_NAMES)}.")
    if not (limits.MIN_SIZE <= size <= limits.MAX_SIZE):
        raise BadInputError(f"Image size must be between {limits.MIN_SIZE} and {limits.MAX_SIZE} px, not {size}.")
    if not (2 <= classes <= limits.MAX_CLASSES):
        raise BadInputError(f"The number of classes must be between 2 and {limits.MAX_CLASSES}, not {classes}.")
    if activation not in ACTIVATIONS:
        raise BadInputError(f"Unknown activation '{activation}': choose one of {', '.join(ACTIVATIONS)}.")
    generator = torch.Generator().manual_seed(seed)
    model = _BUILDERS[name](size, classes, ACTIVATIONS[activation])
    with torch.no_grad():
        for layer in model.modules():
            if not isinstance(layer, (nn.Conv2d, nn.Linear)):
                continue
            # DLG's own initialisation is U(-0.5, 0.5) for every weight and bias; the other victims get
            # PyTorch's default scale U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from our seeded generator.
            bound = 0.5 if name in ("lenet", "cnn") else 1.0 / layer.weight[0].numel() ** 0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    return model.eval()
