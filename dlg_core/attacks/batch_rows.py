"""A batch, layer by layer: the fully-connected layer's rows span the photos' features (issue 12, item 4).

For a batch of B photos the first fully-connected layer z = W h + b has the weight gradient

    G = (1/B) sum_n d_n h_n^T        d_n = dL/dz for photo n (the output layer: softmax(z_n) - y_n)

so G has rank B and its rows lie in the span of the B feature vectors h_n: no row is any one photo's
features (``layerwise.py`` refuses a batch for that reason), but the span is. The attack:

1. **The span**, from G's SVD: h_n = c_n V^T, with V the top B right singular vectors. What is left to find
   is the B x B mixing matrix C (rows c_n): B^2 unknowns, however many features there are.
2. **The mixing matrix**, by nonlinear least squares (scipy's Levenberg-Marquardt). For candidate features
   C V^T and the batch's labels (``labels.py``: the label counts, or the known labels), the layers from W
   up to the output are replayed on the B-dimensional coordinates (W V in place of W) and their gradients
   are compared with the shared ones, W's projected on V: for the wide CNN's single output layer that is
   K x B equations for the weight and K for the bias (K classes). The start puts photo n on the weight row
   of its label (that row is dominated by -(1 - p) h_n when the classes are distinct; repeated labels get
   a small random nudge so their photos can part). The system can have more than one root: one that fits as
   well but puts features outside the activation's range (sigmoid features lie in [0, 1]) is wrong, so more
   starts from random nudges follow until a fit is both exact (float32's floor) and in range.
3. **Each photo on its own**, through each convolution's forward equations: conv(x_n) = act^-1(h_n) - bias,
   solved by ``conv_solve.ConvEquations`` as the single-photo walk does. A layer's weight gradient is a sum
   over the batch, so it cannot be split between the photos; the walk needs convolutions whose outputs hold
   at least twice their inputs' numbers (``layerwise.needs_gradient_rows``): the wide CNN's, not LeNet's or
   the CNN's, which are refused. Where a solve fails (no convergence, or an answer outside the activation's
   range: tanh victims), that photo is fitted to the layer's output instead (L-BFGS, forward passes only).

What mattered (measured on the tune photos, then the report photos): more classes than photos (below, the
span misses photos); the label multiset (the fit gives each photo the label of its row, so a wrong count
leaves no exact solution). The label-row start is not needed with distinct labels (a random start reached
the same solution in 16 of 16 batches); repeated labels are the hard case: two photos of one label differ
only by their softmax outputs, so the system is ill-conditioned and float32's rounding of the update mixes
their features a little, and the system gains a wrong root that the features' range tells apart.

**When it cannot work.** The output layer's rows d_n = p_n - y_n sum to zero over the classes, so a victim
whose first fully-connected layer is its output layer gives G a rank of at most K - 1: a batch needs more
classes than photos (10 classes for a batch of up to 9). Deeper heads (the MLP's, the CNN's) give rank up
to their width. Below that the photos' features are not all in the span, and the attack refuses the run.

``evals`` counts full gradient evaluations (the start's and the end's); the fit in step 2 evaluates only the
small replayed head (B numbers per photo), thousands of times cheaper.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import least_squares
from torch import nn

from ..client import soft_cross_entropy
from ..errors import BadInputError
from ..rank import Chain, ConvLayer, layer_chain
from .analytic import update_distance
from .base import AttackerKnowledge, AttackSettings, Progress, candidate_gradients, gradient_of, initial_image
from .conv_solve import ConvEquations
from .labels import infer_batch_labels
from .layerwise import layerwise, needs_gradient_rows, plausible, undo_activation

STARTS = 6  # the label-row start, then random nudges of it while no fit is both exact and in range
FIT_FLOOR = 1e-12  # relative squared residual of the head's gradients: float32 rounding of the shared update
NUDGE = 0.05  # relative size of the random nudge of a start
# Features further than this outside the activation's range come from a wrong root (measured: a batch of 8 in label
# pairs had one at -0.099 to 1.096 with a residual of 2e-13, and the true one, in range, at 1e-15).
RANGE_TOLERANCE = 1e-3
MAX_FIT_STEPS = 500  # L-BFGS iterations of a photo fit, where a convolution's solve failed


def layer_by_layer(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    """``layerwise`` for one photo, the batch walk of this module for several. Refuses at once what it cannot do."""
    if knowledge.input_shape[0] == 1:
        return layerwise(knowledge, settings)
    chain = check_batch(knowledge)
    return _walk_batch(knowledge, settings, chain)


def _head(model: nn.Module, chain: Chain) -> list[nn.Module]:
    """The layers from the first fully-connected one up to the output."""
    leaves = [m for m in model.modules() if not list(m.children())]
    start = next(i for i, m in enumerate(leaves) if m is chain.linear)
    return leaves[start:]


def span_limit(model: nn.Module, chain: Chain) -> int:
    """How many photos' features the first fully-connected layer's gradient can span (see the docstring)."""
    only_layer = len(_head(model, chain)) == 1
    return chain.linear.out_features - 1 if only_layer else chain.linear.out_features


def check_batch(knowledge: AttackerKnowledge) -> Chain:
    """The chain, or BadInputError before any work: a victim, or a batch, the batch walk cannot take."""
    chain = layer_chain(knowledge.model, knowledge.input_shape)
    batch = knowledge.input_shape[0]
    limit = span_limit(knowledge.model, chain)
    if batch > limit:
        raise BadInputError(f"The layer-by-layer attack reads a batch of {batch} photos off the fully-connected "
                            f"layer's gradient only when it has more than {batch} classes (here it spans at most "
                            f"{limit}): pick at least {batch + 1} classes, or fewer photos.")
    for layer in chain.convs:
        if needs_gradient_rows(layer):
            raise BadInputError(f"With a batch, the layer-by-layer attack needs every convolution's output to hold "
                                f"twice its input's numbers (the wide CNN's do; this victim's {layer.name} does "
                                f"not): attack one photo, or use another attack.")
    return chain


def _double(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


class _HeadFit:
    """The head replayed on the features' B coordinates in the span, and its gradients against the shared ones."""

    def __init__(self, knowledge: AttackerKnowledge, chain: Chain, labels: tuple[int, ...]):
        model, gradients = knowledge.model, knowledge.shared_update.gradients
        self.batch = len(labels)
        head = _head(model, chain)
        weight_grad = _double(gradient_of(model, gradients, chain.linear.weight))
        _, _, vh = torch.linalg.svd(weight_grad, full_matrices=False)
        self.basis = vh[:self.batch]  # B x D: the features' span
        self.weight = _double(chain.linear.weight)
        first = nn.Linear(self.batch, chain.linear.out_features).double()
        with torch.no_grad():
            first.weight.copy_(self.weight @ self.basis.T)
            first.bias.copy_(_double(chain.linear.bias))
        rest = [_double_copy(m) for m in head[1:]]
        self.head = nn.Sequential(first, *rest)
        self.params = list(self.head.parameters())
        shared = [weight_grad @ self.basis.T] + [_double(gradient_of(model, gradients, p))
                                                for m in head for p in m.parameters() if p is not chain.linear.weight]
        self.shared = [s.reshape(-1) for s in shared]
        self.scales = [1 / float(s.norm().clamp_min(1e-30)) for s in self.shared]
        self.label_probs = F.one_hot(torch.tensor(labels), knowledge.num_classes).double()
        self.rows = self.shared[0].reshape(-1, self.batch)  # the projected weight gradient, out x B

    def residual(self, coords: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(coords).reshape(self.batch, self.batch)
        grads = candidate_gradients(self.head, self.params, c, self.label_probs)
        return torch.cat([(g.detach().reshape(-1) - s) * k
                          for g, s, k in zip(grads, self.shared, self.scales, strict=True)]).numpy()

    def start(self, labels: tuple[int, ...]) -> torch.Tensor:
        """Photo n on its label's weight row (single output layer), else on the rows' mean: B x B coordinates."""
        if self.rows.shape[0] == self.label_probs.shape[1]:
            return -self.batch * self.rows[list(labels)]
        return self.rows.mean(dim=0).expand(self.batch, -1).clone()

    def solve(self, labels: tuple[int, ...], seed: int, made_by: str) -> tuple[torch.Tensor, float, int]:
        """(features B x D, relative squared residual, fits tried): the first of up to STARTS starts whose fit
        reaches FIT_FLOOR with features the activation can output (``made_by``: a wrong root of the system can
        fit as well but leave its range); failing that, the fit that leaves the range least, then fits best."""
        generator = torch.Generator().manual_seed(seed)
        base = self.start(labels)
        best, best_key, tries = base @ self.basis, (float("inf"), float("inf")), 0
        for attempt in range(STARTS):
            nudge = torch.randn(base.shape, generator=generator, dtype=base.dtype) * NUDGE * base.norm() / self.batch
            start = base + nudge if attempt or len(set(labels)) < len(labels) else base
            fit = least_squares(self.residual, start.reshape(-1).numpy(), method="lm", xtol=1e-15, ftol=1e-15)
            tries += 1
            features = torch.from_numpy(fit.x).reshape(self.batch, self.batch) @ self.basis
            cost = 2 * float(fit.cost) / len(self.shared)
            key = (outside_range(features, made_by) if cost < FIT_FLOOR else float("inf"), cost)
            if key < best_key:
                best, best_key = features, key
            if best_key[0] <= RANGE_TOLERANCE:
                break
        return best, best_key[1], tries

    def feature_gradients(self, features: torch.Tensor) -> torch.Tensor:
        """dL/dh for each photo (B x D), through the whole head (W, not W V: dL/dh leaves the span)."""
        h = features.clone().requires_grad_(True)
        first = nn.Linear(h.shape[1], self.head[0].out_features).double()
        with torch.no_grad():
            first.weight.copy_(self.weight)
            first.bias.copy_(self.head[0].bias)
        loss = soft_cross_entropy(nn.Sequential(first, *self.head[1:])(h), self.label_probs)
        return torch.autograd.grad(loss, h)[0]


def outside_range(features: torch.Tensor, made_by: str) -> float:
    """How far the features go outside what ``made_by`` outputs (sigmoid and a photo: [0, 1]; tanh: [-1, 1])."""
    low = -1.0 if made_by == "tanh" else 0.0
    return float(torch.maximum(low - features, features - 1).max().clamp_min(0))


def _double_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).double()


def batch_labels(knowledge: AttackerKnowledge) -> tuple[int, ...]:
    """The batch's labels as a sorted multiset: the known ones under that threat model, else the label counts."""
    if knowledge.known_labels is not None:
        return tuple(sorted(knowledge.known_labels))
    return infer_batch_labels(knowledge)


def _photo(chain: Chain, h: torch.Tensor, grad_h: torch.Tensor, gradients: tuple[torch.Tensor, ...],
           model: nn.Module, steps: int) -> torch.Tensor:
    """One photo from its features, through each convolution's forward equations; where a solve fails (no
    convergence, or an answer out of the activation's range), the photo is fitted to that layer's output."""
    for index in range(len(chain.convs) - 1, -1, -1):
        layer = chain.convs[index]
        h, grad_h = h.reshape(layer.output_shape), grad_h.reshape(layer.output_shape)
        z, slope = undo_activation(h, layer.activation)
        output_grad = (grad_h * slope)[None]
        weight, bias = _double(layer.conv.weight), _double(layer.conv.bias)[:, None, None]
        shared = _double(gradient_of(model, gradients, layer.conv.weight))  # a batch's sum: scales only
        x = ConvEquations(layer, weight, output_grad, (z - bias)[None], shared, False).solve()
        if x is None or not plausible(x, chain.convs[index - 1].activation if index > 0 else "photo"):
            return fit_photo(chain.convs[:index + 1], h, steps)
        grad_x = torch.nn.grad.conv2d_input(x.shape, weight, output_grad, layer.conv.stride, layer.conv.padding)
        h, grad_h = x[0], grad_x[0]
    return h


def fit_photo(layers: tuple[ConvLayer, ...], output: torch.Tensor, steps: int) -> torch.Tensor:
    """The photo whose output through these layers is closest to ``output``: L-BFGS from grey, first derivatives
    only (the layers' forward equations, now through the activations below; each photo on its own)."""
    image = torch.full((1, *layers[0].input_shape), 0.5, dtype=torch.float64, requires_grad=True)
    scale = 1 / float(output.pow(2).sum())
    optimizer = torch.optim.LBFGS([image], max_iter=min(steps, MAX_FIT_STEPS), tolerance_grad=1e-12,
                                  tolerance_change=1e-15, history_size=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        x = image
        for layer in layers:
            x = F.conv2d(x, _double(layer.conv.weight), _double(layer.conv.bias), layer.conv.stride,
                         layer.conv.padding)
            x = torch.sigmoid(x) if layer.activation == "sigmoid" else torch.tanh(x)
        loss = (x[0] - output).pow(2).sum() * scale
        loss.backward()
        return loss

    optimizer.step(closure)
    return image.detach()[0].clamp(0, 1)


def _walk_batch(knowledge: AttackerKnowledge, settings: AttackSettings, chain: Chain) -> Iterator[Progress]:
    shape, model, gradients = knowledge.input_shape, knowledge.model, knowledge.shared_update.gradients
    labels = batch_labels(knowledge)
    label_probs = F.one_hot(torch.tensor(labels), knowledge.num_classes).float()
    start = initial_image(shape, "grey", torch.Generator().manual_seed(settings.seed), torch.float64)

    def frame(step: int, image: torch.Tensor, evals: int, distance: float, stage: str | None) -> Progress:
        return Progress(step=step, evals=evals, reconstruction=image.to(torch.float32, copy=True), label_guess=labels,
                        label_probs=label_probs, gradient_distance=distance, stage=stage)

    start_distance = update_distance(knowledge, start.float(), label_probs, settings.distance)
    yield frame(0, start, 1, start_distance, None)
    fit = _HeadFit(knowledge, chain, labels)
    features, _, _ = fit.solve(labels, settings.seed, chain.convs[-1].activation if chain.convs else "photo")
    yield frame(1, start, 1, start_distance, "fully-connected inputs")
    feature_grads = fit.feature_gradients(features)
    photos = []
    for n in range(shape[0]):
        photos.append(_photo(chain, features[n], feature_grads[n], gradients, model, settings.steps).reshape(shape[1:]))
    image = torch.stack(photos).clamp(0, 1)
    yield frame(2, image, 2, update_distance(knowledge, image.float(), label_probs, settings.distance), "the photos")
