"""Closed-form recovery of a fully-connected first layer's input (Phong et al. 2017; Fowl et al. 2022).

No optimisation at all. For a first layer y = W x + b, the chain rule gives, for every output unit i,

    dL/dW_i = dL/db_i * x          (row i of the weight gradient is the input, scaled)

so one image is read off any row with a non-zero bias gradient. We use all rows at once, as the least-
squares fit of the weight gradient by (bias gradient) x (image), which is exact for one image and immune to
rows whose bias gradient is tiny. The image comes back to float precision, at any resolution, in the time a
matrix-vector product takes: that is why a victim whose first layer is fully connected (our ``mlp``) is
defenceless, and why the attack does not apply to convolutional victims (their first layer's weight gradient
sums over image patches and mixes positions).

A batch is harder, and this attack does not solve it. The gradient is a sum over the batch, so row i gives
sum_n d_ni x_n / sum_n d_ni: a weighted average of the batch's images, with weights d_ni = dL/db_i for image
n. A row is one clean image only when a single image drives that unit (after a ReLU, a unit that every other
image leaves switched off); Fowl et al.'s "Robbing the Fed" makes that happen on purpose by a malicious
server. Here we keep the rows' averages that look like images (inside the [0, 1] box), prefer those that
several rows agree on exactly (every unit driven by the same single image gives that image; blends differ
from row to row), and fill up with the averages that differ most from those already chosen. On a ReLU
``mlp`` this finds each photo of a small batch exactly, as long as each one has a unit to itself; on the
sigmoid ``mlp`` every unit sees every photo and all we get are blends. Which label goes with which picture
is not recovered either.

The same holds for a FedAvg update on one image: every local step's weight gradient is (bias gradient) x
(the same image), so their sum is too, and the closed form stays exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..client import local_training_update
from ..errors import BadInputError
from .base import AttackerKnowledge, AttackSettings, Progress, gradient_of
from .distance import distance_by_layer
from .labels import infer_batch_labels

NEEDS_MLP = ("The closed-form attack needs a victim whose first layer is fully connected (mlp): "
             "its weight gradient is then the image itself, scaled. Pick the mlp victim, or an optimisation "
             "attack (DLG, iDLG, Inverting Gradients) for convolutional victims.")
BOX_TOLERANCE = 1e-3  # a row's average counts as an image if no pixel is further than this outside [0, 1]
SAME_IMAGE_MSE = 1e-8  # two rows give the same image if they differ by less (80 dB; float32 noise is ~1e-14)


def first_linear_layer(model: nn.Module, input_shape: tuple[int, ...]) -> nn.Linear:
    """The first layer, if it is fully connected and sees the raw (flattened) image; BadInputError otherwise."""
    for module in model.modules():
        if list(module.children()):
            continue  # a container: its layers come next, in order
        if isinstance(module, (nn.Flatten, nn.Identity)):
            continue  # reshapes the image without changing it
        pixels = input_shape[1] * input_shape[2] * input_shape[3]
        if isinstance(module, nn.Linear) and module.bias is not None and module.in_features == pixels:
            return module
        break
    raise BadInputError(NEEDS_MLP)


def row_averages(weight_grad: torch.Tensor, bias_grad: torch.Tensor) -> torch.Tensor:
    """Each usable row's weighted average of the batch's images: dL/dW_i / dL/db_i (rows x pixels)."""
    usable = bias_grad.abs() > 1e-6 * bias_grad.abs().max()  # a near-zero bias gradient only amplifies noise
    return weight_grad[usable] / bias_grad[usable, None]


def _agreed_images(candidates: torch.Tensor, count: int) -> list[int]:
    """Candidates that several rows give identically: a unit only one image switches on gives that image, and
    every such unit gives the same one, while blends differ from row to row. Most-agreed first."""
    distances = torch.cdist(candidates.double(), candidates.double()) ** 2 / candidates.shape[1]
    same = distances < SAME_IMAGE_MSE
    support = same.sum(dim=1)
    chosen: list[int] = []
    for i in support.argsort(descending=True, stable=True).tolist():
        if len(chosen) == count or support[i] < 2:
            break
        if not any(same[i, j] for j in chosen):
            chosen.append(i)
    return chosen


def _most_distinct(candidates: torch.Tensor, count: int, chosen: list[int]) -> torch.Tensor:
    """Add farthest points to ``chosen`` until there are ``count`` (starting, if none is chosen, from the
    candidate farthest from their mean). Blends lie between the images they blend, so extremes come first."""
    chosen = list(chosen) or [int(((candidates - candidates.mean(dim=0)) ** 2).sum(dim=1).argmax())]
    nearest = torch.stack([((candidates - candidates[c]) ** 2).sum(dim=1) for c in chosen]).amin(dim=0)
    while len(chosen) < min(count, len(candidates)):
        pick = int(nearest.argmax())
        chosen.append(pick)
        nearest = torch.minimum(nearest, ((candidates - candidates[pick]) ** 2).sum(dim=1))
    picked = candidates[chosen]
    if len(chosen) < count:  # fewer usable rows than images: repeat what we have
        picked = picked[torch.arange(count) % len(chosen)]
    return picked


def recover_inputs(weight_grad: torch.Tensor, bias_grad: torch.Tensor, batch: int) -> torch.Tensor:
    """The first layer's input(s), flattened: exact for one image, images or blends for a batch."""
    if batch == 1:
        # Least squares over all rows: x = sum_i b_i W_i / sum_i b_i^2.
        return (bias_grad @ weight_grad / (bias_grad @ bias_grad).clamp_min(1e-30))[None]
    candidates = row_averages(weight_grad, bias_grad)
    if len(candidates) == 0:
        return torch.full((batch, weight_grad.shape[1]), 0.5, dtype=weight_grad.dtype)
    outside = (F.relu(candidates - 1) + F.relu(-candidates)).amax(dim=1)
    in_box = candidates[outside <= BOX_TOLERANCE]
    pool = in_box if len(in_box) >= batch else candidates[outside.argsort()[:batch]]
    return _most_distinct(pool, batch, _agreed_images(pool, batch))


def analytic(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    """Yields one Progress (step 1): the closed-form reconstruction.

    Raises BadInputError at once (not on the first ``next``) when the victim's first layer is not fully
    connected, so that a caller can refuse the run before it starts.
    """
    layer = first_linear_layer(knowledge.model, knowledge.input_shape)
    return _closed_form(knowledge, settings, layer)


def _closed_form(knowledge: AttackerKnowledge, settings: AttackSettings, layer: nn.Linear) -> Iterator[Progress]:
    model, shape = knowledge.model, knowledge.input_shape
    gradients = knowledge.shared_update.gradients
    weight_grad = gradient_of(model, gradients, layer.weight)
    bias_grad = gradient_of(model, gradients, layer.bias)
    images = recover_inputs(weight_grad, bias_grad.to(weight_grad.dtype), shape[0]).reshape(shape).clamp(0, 1)

    labels = infer_batch_labels(knowledge)
    label_probs = F.one_hot(torch.tensor(labels), knowledge.num_classes).float()
    distance = update_distance(knowledge, images, label_probs, settings.distance)
    yield Progress(step=1, evals=1, reconstruction=images.detach().to("cpu", torch.float32, copy=True),
                   label_guess=labels, label_probs=label_probs, gradient_distance=distance)


def update_distance(knowledge: AttackerKnowledge, images: torch.Tensor, label_probs: torch.Tensor,
                    kind: str) -> float:
    """One gradient evaluation (replaying FedAvg's local steps if any): how well these images explain the update."""
    model, update = knowledge.model, knowledge.shared_update
    parameter = next(model.parameters())
    candidate = local_training_update(model, images.to(device=parameter.device, dtype=parameter.dtype),
                                      label_probs.to(device=parameter.device, dtype=parameter.dtype),
                                      update.local_steps, update.local_lr)
    return distance_by_layer(candidate, update.gradients, kind)
