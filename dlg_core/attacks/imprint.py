"""A malicious server's imprint attack (Fowl, Geiping, Czaja, Goldblum & Goldstein, ICLR 2022, "Robbing the Fed").

Every other attack here is an honest-but-curious server: it attacks the gradient of the model it was meant
to train. A malicious server changes the model first. It puts an *imprint block* in front of the victim:

    u_i = relu(w . x - t_i)    for i = 1..k        (one linear layer with k rows, then a ReLU)
    x'  = x + c * sum_i u_i                        (every unit added, equally, to every pixel)

Every row of the linear layer measures the same thing, w . x (here a random direction: photos differ more
along one than in brightness, and crops of the same photo differ little in brightness), against a ladder of
thresholds t_1 < ... < t_k. The victim then sees x' = x shifted by about 1e-3 and works as before. Fowl et
al.'s second layer is a linear one from the k units back to the image whose weights are all equal; the sum
above is that layer without parameters of its own.

Why it leaks a whole batch. For photo n, every unit it switches on (those with t_i < w . x_n) receives the
same gradient s_n = c * dL_n/dt (dt: a uniform shift of the victim's input), because the units reach the
victim through the same sum. So the layer's gradients are cumulative sums down the ladder,

    dL/dW_i = sum_{n: w.x_n > t_i} s_n x_n,       dL/db_i = sum_{n: w.x_n > t_i} s_n,

and the difference between consecutive rows keeps only the photos whose measurement falls between t_i and
t_{i+1}: (dL/dW_i - dL/dW_{i+1}) / (dL/db_i - dL/db_{i+1}) is that photo, exactly, whenever it is alone in
its bin. Two photos in one bin give their weighted average, a photo below t_1 gives nothing. The server
places the thresholds at the quantiles of the measurement's distribution over natural photos, here a
Gaussian of standard deviation 0.3 (a random unit direction's projection of a photo whose pixels spread by
0.2-0.3), so that each bin is about equally likely; with k bins and B photos a photo has its own bin with a
probability of about (1 - 1/k)^(B-1): k = 64 B bins give 98% of the batch (99.5% of 6 batches of 64
measured on the `tune` photos; the standard deviation 0.3 was the best of 0.2, 0.3 and 0.45 there).

Summing the updates of many clients (secure aggregation) does not help: the sum is the same kind of
cumulative sum over all their photos, and a photo alone in its bin still comes out exact.

Labels: with the photo known exactly, the attacker computes the s_n each label would give (the victim's
output moves along d logits / dt) and keeps the label whose s_n matches the measured bin's dL/db.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .. import limits
from ..client import local_training_update
from ..errors import BadInputError
from .base import AttackerKnowledge, AttackSettings, Progress, gradient_of
from .distance import distance_by_layer
from .labels import infer_batch_labels

BINS_PER_PHOTO = 64  # k = 64 B: each photo alone in its bin with probability ~(1 - 1/k)^(B - 1), 98% at any B
MIN_BINS = 4096  # a small batch gets as many: fewer pairs to collide, but each pair as likely to as in a large one
MEASUREMENT_STD = 0.3  # spread of w . x over photos, for a unit direction w with zero mean (see the docstring)
SHIFT = 1e-2  # c * k: the block moves the victim's input by about 1e-3 (units' values are ~0.1 on average)
EMPTY_BIN = 1e-6  # a bin whose bias-gradient difference is below this share of the largest holds no photo
NOT_IMPRINTED = ("The imprint attack needs the malicious server's model (an imprint block in front of the "
                 "victim); this model has none.")


class ImprintBlock(nn.Module):
    """The server's block: k ReLU units measuring w . x against a ladder, summed back into every pixel."""

    def __init__(self, pixels: int, bins: int, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        direction = torch.randn(pixels, generator=generator, dtype=torch.float64)
        direction = (direction - direction.mean()) / (direction - direction.mean()).norm()
        quantiles = torch.linspace(0, 1, bins + 2, dtype=torch.float64)[1:-1]
        thresholds = torch.distributions.Normal(0.0, MEASUREMENT_STD).icdf(quantiles)
        self.linear = nn.Linear(pixels, bins)
        with torch.no_grad():
            self.linear.weight.copy_(direction.expand(bins, pixels))
            self.linear.bias.copy_(-thresholds)
        self.scale = SHIFT / bins

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        units = F.relu(self.linear(images.flatten(1)))
        return images + self.scale * units.sum(dim=1).view(-1, *([1] * (images.dim() - 1)))


class ImprintedModel(nn.Module):
    """What the malicious server sends the clients: its imprint block, then the model they expect."""

    def __init__(self, imprint: ImprintBlock, victim: nn.Module):
        super().__init__()
        self.imprint = imprint
        self.victim = victim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.victim(self.imprint(images))


def bins_for(batch: int, pixels: int) -> int:
    """The server's choice of k: 64 per photo and at least MIN_BINS, within the host's limit for the block."""
    return max(2, min(max(BINS_PER_PHOTO * batch, MIN_BINS), limits.MAX_IMPRINT_WEIGHTS // pixels))


def malicious_model(victim: nn.Module, input_shape: tuple[int, ...], seed: int) -> ImprintedModel:
    """The server's modified model for clients whose batches hold ``input_shape[0]`` photos in all."""
    batch, channels, height, width = input_shape
    pixels = channels * height * width
    block = ImprintBlock(pixels, bins_for(batch, pixels), seed)
    parameter = next(victim.parameters())
    return ImprintedModel(block.to(device=parameter.device, dtype=parameter.dtype), victim).train(victim.training)


def recover_batch(weight_grad: torch.Tensor, bias_grad: torch.Tensor, thresholds: torch.Tensor,
                  batch: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The photos (batch x pixels, in ladder order), each bin's dL/db share, and how many bins held a photo.

    The bias gradients' differences up the ladder say which bins hold a photo; only those bins' weight rows
    are subtracted (a few rows of thousands). Fewer occupied bins than photos (two in one bin, or one below
    the ladder): the rest are mid-grey. More (noise on the update): the ``batch`` largest differences.
    """
    order = thresholds.argsort()
    biases = bias_grad[order].double()
    biases = biases - torch.cat([biases[1:], torch.zeros_like(biases[:1])])
    occupied = (biases.abs() > EMPTY_BIN * biases.abs().max()).nonzero().flatten()
    occupied = occupied[biases[occupied].abs().argsort(descending=True)[:batch]].sort().values
    below = weight_grad[order[occupied]].double()  # row i's photos: every one from bin i up
    above = torch.zeros_like(below)  # row i+1's (none above the top row)
    inner = occupied < len(order) - 1
    above[inner] = weight_grad[order[occupied[inner] + 1]].double()
    images = torch.full((batch, weight_grad.shape[1]), 0.5, dtype=torch.float64)
    shares = torch.zeros(batch, dtype=torch.float64)
    images[:len(occupied)] = (below - above) / biases[occupied, None]
    shares[:len(occupied)] = biases[occupied]
    return images, shares, len(occupied)


def find_block(model: nn.Module) -> ImprintedModel:
    if not isinstance(model, ImprintedModel):
        raise BadInputError(NOT_IMPRINTED)
    return model


def label_guesses(model: ImprintedModel, images: torch.Tensor, shares: torch.Tensor, found: int,
                  num_classes: int, fallback: tuple[int, ...]) -> tuple[int, ...]:
    """For each recovered photo, the label whose gradient share s_n = c dL_n/dt / B matches its bin's."""
    batch = images.shape[0]
    with torch.enable_grad():
        shift = torch.zeros(found, 1, 1, 1, dtype=images.dtype, device=images.device, requires_grad=True)
        logits = model.victim(images[:found] + shift)
        # d logits / dt for every class: one backward per class (2 for the app's victims).
        slopes = torch.stack([torch.autograd.grad(logits[:, c].sum(), shift, retain_graph=True)[0].flatten()
                              for c in range(num_classes)], dim=1)
    probs = logits.detach().softmax(dim=-1)
    scale = model.imprint.scale / batch
    # s_n(c) = scale * (p_n - e_c) . slopes_n  for every candidate label c
    expected = scale * ((probs * slopes).sum(dim=1, keepdim=True) - slopes)
    guesses = (expected.double() - shares[:found, None]).abs().argmin(dim=1).tolist()
    rest = list(fallback)
    for label in guesses:
        if label in rest:
            rest.remove(label)
    return tuple(guesses) + tuple((rest + [0] * batch)[:batch - found])


def imprint(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    """Yields one Progress (step 1): the batch read off the imprint layer. BadInputError at once without one."""
    return _read_off(knowledge, settings, find_block(knowledge.model))


def _read_off(knowledge: AttackerKnowledge, settings: AttackSettings, model: ImprintedModel) -> Iterator[Progress]:
    shape, gradients = knowledge.input_shape, knowledge.shared_update.gradients
    layer = model.imprint.linear
    weight_grad = gradient_of(model, gradients, layer.weight)
    bias_grad = gradient_of(model, gradients, layer.bias)
    flat, shares, found = recover_batch(weight_grad, bias_grad, -layer.bias.detach(), shape[0])
    parameter = next(model.parameters())
    images = flat.reshape(shape).clamp(0, 1).to(device=parameter.device, dtype=parameter.dtype)
    labels = label_guesses(model, images, shares, found, knowledge.num_classes, infer_batch_labels(knowledge))
    label_probs = F.one_hot(torch.tensor(labels), knowledge.num_classes).to(device=parameter.device,
                                                                             dtype=parameter.dtype)
    update = knowledge.shared_update
    candidate = local_training_update(model, images, label_probs, update.local_steps, update.local_lr)
    distance = distance_by_layer(candidate, gradients, settings.distance)
    yield Progress(step=1, evals=1, reconstruction=images.detach().to("cpu", torch.float32, copy=True),
                   label_guess=labels, label_probs=label_probs.cpu().float(), gradient_distance=distance)
