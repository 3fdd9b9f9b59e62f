"""What each layer gives away: R-GAP's count of equations against unknowns (Zhu & Blaschko, ICLR 2021).

Walking back from the fully-connected layer (``attacks/layerwise.py``), each convolution's input x is the
unknown, and the shared gradient gives two kinds of linear equations on it once the layer's output is known:

- forward: conv(x) = act^-1(output) - bias, one per number of the layer's output;
- gradient: the layer's weight gradient is a sum over positions of dL/dz times x's patch there, one per weight.

A layer is *determined* when the two together are at least as many as x has numbers (R-GAP's count; the
zero padding is known and adds no unknowns). The count is necessary, not sufficient: equations can be
dependent or ill-conditioned, which the attack finds out when its least-squares solve does not converge.
The first fully-connected layer hands its input over whole (each weight-gradient row is the input scaled by
its bias gradient), so it is determined whenever one bias gradient is non-zero.

A victim the walk cannot undo raises ``BadInputError`` with the reason: ReLUs (the negative pre-activations
are gone), BatchNorm, skip connections, pooling (the ResNet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .errors import BadInputError

RESNET = ("The layer-by-layer attack does not apply to the ResNet: its ReLUs throw away every negative "
          "pre-activation (the layer's output no longer gives its input), its BatchNorm rescales every unit by "
          "statistics that mix into the next layer, and its skip connections add two unknown inputs together. "
          "Use Inverting Gradients there.")
RELU = ("The layer-by-layer attack needs activations it can undo (sigmoid or tanh): a ReLU sets every "
        "negative pre-activation to 0, so a layer's output no longer gives its input. Pick the sigmoid "
        "activation, or another attack.")
LAYOUT = ("The layer-by-layer attack needs a victim of convolutions with activations, then fully-connected "
          "layers (wide CNN, CNN, LeNet, MLP).")


@dataclass(frozen=True)
class ConvLayer:
    """A convolution followed by the activation that the attack undoes."""

    name: str
    conv: nn.Conv2d
    activation: str  # "sigmoid" | "tanh"
    input_shape: tuple[int, int, int]  # channels, height, width of the layer's input
    output_shape: tuple[int, int, int]


@dataclass(frozen=True)
class Chain:
    """The layers the attack walks: the convolutions (input first), then the first fully-connected layer."""

    convs: tuple[ConvLayer, ...]
    linear: nn.Linear


def _activation_name(module: nn.Module) -> str:
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.ReLU):
        raise BadInputError(RELU)
    raise BadInputError(LAYOUT)


def layer_chain(model: nn.Module, input_shape: tuple[int, ...]) -> Chain:
    """The convolutions and the first linear layer, in order; BadInputError for a victim the attack cannot walk."""
    if any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in model.modules()):
        raise BadInputError(RESNET)
    leaves = [m for m in model.modules() if not list(m.children())]
    convs: list[ConvLayer] = []
    shape = tuple(input_shape[1:])
    i = 0
    while i < len(leaves) and isinstance(leaves[i], nn.Conv2d):
        if i + 1 >= len(leaves):
            raise BadInputError(LAYOUT)
        conv = leaves[i]
        with torch.no_grad():
            out = tuple(conv(torch.zeros(1, *shape, dtype=conv.weight.dtype, device=conv.weight.device)).shape[1:])
        convs.append(ConvLayer(f"conv{len(convs) + 1}", conv, _activation_name(leaves[i + 1]), shape, out))
        shape, i = out, i + 2
    while i < len(leaves) and isinstance(leaves[i], (nn.Flatten, nn.Identity)):
        i += 1
    if i >= len(leaves) or not isinstance(leaves[i], nn.Linear) or leaves[i].bias is None:
        raise BadInputError(LAYOUT)
    return Chain(tuple(convs), leaves[i])


def equation_counts(layer: ConvLayer) -> tuple[int, int, int]:
    """(unknowns, forward equations, gradient equations) of one convolution: R-GAP's count."""
    return (math.prod(layer.input_shape), math.prod(layer.output_shape), layer.conv.weight.numel())


def determined(layer: ConvLayer) -> bool:
    unknowns, forward, gradient = equation_counts(layer)
    return forward + gradient >= unknowns


@dataclass(frozen=True)
class LayerCount:
    """One row of the table: a layer's unknowns (its input's numbers) and the equations the update gives."""

    layer: str  # "conv1", ..., "fully connected"
    unknowns: int
    forward: int  # from the layer's recovered output (none for the fully-connected layer: its input comes whole)
    gradient: int  # from its weight gradient
    determined: bool

    @property
    def equations(self) -> int:
        return self.forward + self.gradient


def layer_counts(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerCount]:
    """The table, in the network's order (the photo's layer first); BadInputError for a victim it cannot walk."""
    chain = layer_chain(model, input_shape)
    rows = []
    for layer in chain.convs:
        unknowns, forward, gradient = equation_counts(layer)
        rows.append(LayerCount(layer.name, unknowns, forward, gradient, determined(layer)))
    linear = chain.linear
    rows.append(LayerCount("fully connected", linear.in_features, 0, linear.weight.numel(), True))
    return rows


def summary(rows: list[LayerCount]) -> str:
    """One line under the chart: what the table means for the layer-by-layer attack."""
    short = [r for r in rows if not r.determined]
    leaning = [r for r in rows[:-1] if r.determined and r.forward < r.unknowns]
    head = f"The fully-connected layer hands over its input whole ({rows[-1].unknowns:,} numbers)"
    if len(rows) == 1:
        return head + ": that input is the photo itself."
    if not short and leaning:
        names = " and ".join(r.layer for r in leaning)
        return (head + f"; every convolution below has enough equations by the count, but {names} only with its "
                "weight gradient's, which can be dependent: the count is necessary, not sufficient.")
    if not short:
        return head + "; every convolution below has at least as many equations as unknowns, so each can be solved."
    r = short[-1]
    return (f"{head}; {r.layer} has {r.equations:,} equations for {r.unknowns:,} unknowns (under-determined), "
            f"so below it the photo's {rows[0].unknowns:,} pixels are fitted to what the layers above gave away.")


def outlook(config) -> tuple[list[LayerCount], str | None]:
    """The table for a run's victim and size, and a warning when a layer is under-determined or the walk cannot
    start (ResNet, ReLU): for a page to show before the run. ``config`` is an ``AttackConfig``."""
    from .models import build_model  # the architecture only; its weights do not change the count

    model = build_model(config.model, config.size, config.classes, config.seed, config.activation)
    try:
        rows = layer_counts(model, (1, 3, config.size, config.size))
    except BadInputError as err:
        return [], str(err)
    short = [r for r in rows if not r.determined]
    if not short:
        return rows, None
    names = ", ".join(f"{r.layer} ({r.equations:,} equations for {r.unknowns:,} unknowns)" for r in short)
    return rows, (f"Under-determined at {config.size} px: {names}. The layer-by-layer attack cannot solve "
                  "for that layer's input and fits the photo below it instead, which is slower and less exact.")
