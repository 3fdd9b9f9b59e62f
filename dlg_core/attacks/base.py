"""The attacker's side of the story: what it knows, what it reports, how gradients are compared.

An attack receives an ``AttackerKnowledge`` (the model, the shared update, the input shape, the number of
classes: exactly what an honest-but-curious server holds) and yields ``Progress`` reports. It never sees
the private images or labels; ``run.py`` compares its reconstructions with the truth afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..client import SharedUpdate, local_training_update, soft_cross_entropy

INITS = ("normal", "grey", "uniform")


@dataclass(frozen=True)
class AttackerKnowledge:
    model: nn.Module
    shared_update: SharedUpdate
    input_shape: tuple[int, int, int, int]  # batch, channels, height, width
    num_classes: int
    # Only under a threat model where the server knows the batch's labels (``labels_known``); None otherwise.
    known_labels: tuple[int, ...] | None = None
    # The defence the protocol prescribes, as comma-separated specs ("" for none): a real server knows it, as it
    # knows the model. Never the client's noise or its MixUp partner: those come from the client's own seed.
    defences: str = ""
    # The public photos MixUp mixes with (the bundled samples), given only when the protocol prescribes MixUp.
    public_photos: torch.Tensor | None = None


@dataclass(frozen=True)
class AttackSettings:
    steps: int = 300  # optimiser steps (one L-BFGS step may evaluate the gradient several times)
    lr: float = 1.0
    distance: str = "l2"
    init: str = "normal"
    seed: int = 0
    max_iter: int = 20  # L-BFGS evaluations per step at most (PyTorch's default)
    history_size: int = 100
    line_search: str | None = None  # None (textbook) or "strong_wolfe"
    lbfgs: str = "pytorch"  # "pytorch" (torch.optim.LBFGS, the papers') or "compact" (ours: long history, cheap)
    precondition: str = "none"  # "spectral": L-BFGS holds the picture's frequencies, fine ones scaled down
    dtype: torch.dtype = torch.float32
    start_image: torch.Tensor | None = None  # restart from here instead of `init` (after a divergence)
    start_label_logits: torch.Tensor | None = None
    # DLG after a stall: the label it learnt, now held fixed as a one-hot (run.py); None: learn it
    fixed_labels: tuple[int, ...] | None = None
    # Inverting Gradients (attacks/inverting.py). Geiping et al. step by 0.1 on images normalised to unit
    # variance, about 0.03 of our [0, 1] range; 0.03 and the TV weight were also the best measured here.
    adam_lr: float = 0.03  # Adam's step on the signed gradient: each pixel moves by about this at first
    tv_weight: float = 1e-2  # weight of the total-variation prior against the cosine distance (0 to 2)
    restarts: int = 1  # independent starts; `steps` is shared among them and the best is kept
    polish_steps: int = 0  # the last steps of `steps` as L-BFGS on the cosine distance alone (inverting.py)
    soft_relu: float = 0.0  # > 0: softplus sharpness of a stand-in for the ReLUs, most of a restart (surrogate.py)
    lr_decay: bool = True  # step-wise: the learning rate is divided by 10 at 3/8, 5/8 and 7/8 of a restart
    adaptive: bool = False  # adapt to the known defence (attacks/adaptive.py) instead of ignoring it
    # Keep a copy of each point inside a step that improved on the step's best distance so far (an L-BFGS
    # step of 5 iterations is one frame: too coarse to watch a 17-step run). Off for the CLI and benchmark.
    trail: bool = False


@dataclass(frozen=True)
class TrailPoint:
    """A point the optimiser evaluated inside a step, better than every earlier one of that step."""

    evals: int  # gradient evaluations so far, this one included
    reconstruction: torch.Tensor  # CPU copy, B x 3 x H x W, not clamped
    gradient_distance: float


@dataclass(frozen=True)
class Progress:
    step: int
    evals: int  # gradient evaluations so far (each is a forward, a backward and a double-backward)
    reconstruction: torch.Tensor  # CPU copy, B x 3 x H x W, as the attacker holds it (not clamped)
    label_guess: tuple[int, ...]
    label_probs: torch.Tensor  # B x classes, CPU
    gradient_distance: float
    label_logits: torch.Tensor | None = None  # DLG's current dummy label, to restart from
    restart: int = 0  # which of an attack's restarts the reconstruction comes from (Inverting Gradients)
    stage: str | None = None  # the layer a layer-by-layer attack has just recovered (attacks/layerwise.py)
    features: torch.Tensor | None = None  # that layer's recovered input, CPU: C x H x W, or a flat vector
    trail: tuple[TrailPoint, ...] = ()  # with AttackSettings.trail: the improving points before this one
    # Its gradient_distance is a smooth stand-in's for the victim (attacks/surrogate.py), not comparable with the
    # victim's own: shown, never kept as the run's best point
    stand_in: bool = False


def candidate_gradients(model: nn.Module, params: list[torch.Tensor], images: torch.Tensor,
                        label_probs: torch.Tensor, local_steps: int = 1,
                        local_lr: float = 0.0) -> tuple[torch.Tensor, ...]:
    """The update the victim would share for these images and (soft) labels, kept differentiable.

    With ``local_steps`` > 1 (FedAvg), the client's local SGD steps are replayed on the candidate batch
    (Geiping et al. 2020), each costing a forward and a backward pass; ``params`` must then be the
    model's own trainable parameters, which is what every attack here passes.
    """
    if local_steps > 1:
        return local_training_update(model, images, label_probs, local_steps, local_lr, create_graph=True)
    loss = soft_cross_entropy(model(images), label_probs)
    return torch.autograd.grad(loss, params, create_graph=True)


def initial_image(shape: tuple[int, ...], init: str, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    if init == "normal":  # DLG's start: N(0, 1) noise, far outside the valid [0, 1] box
        return torch.randn(shape, generator=generator, dtype=dtype)
    if init == "uniform":
        return torch.rand(shape, generator=generator, dtype=dtype)
    if init == "grey":  # mid-grey with faint noise: inside the box, and near every photo's mean
        return 0.5 + 0.01 * torch.randn(shape, generator=generator, dtype=dtype)
    raise ValueError(f"unknown initialisation {init!r}")


def infer_labels_from_last_layer(update: SharedUpdate, num_classes: int) -> tuple[int]:
    """iDLG (Zhao et al. 2020): read one image's label off the last layer's weight gradient (batches: labels.py).

    For cross-entropy, row i of dL/dW is (p_i - y_i) * h, where h is the last layer's input. With
    non-negative h (after a sigmoid or ReLU) only the true label's row has a negative sum.
    """
    weight_grad = last_layer_weight_gradient(update, num_classes)
    row_sums = weight_grad.sum(dim=1)
    return (int(row_sums.argmin()),)


def gradient_of(model: nn.Module, gradients: Sequence[torch.Tensor], parameter: torch.Tensor) -> torch.Tensor:
    """The shared update's entry for one of the model's parameters (the update is in parameter order)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return gradients[next(i for i, p in enumerate(params) if p is parameter)]


def last_layer_weight_gradient(update: SharedUpdate, num_classes: int) -> torch.Tensor:
    for grad in reversed(update.gradients):
        if grad.dim() == 2 and grad.shape[0] == num_classes:
            return grad
    raise ValueError("the shared update has no fully-connected output layer to read labels from")
