"""Layer by layer, from the fully-connected layer back to the photo (R-GAP: Zhu & Blaschko, ICLR 2021).

The seed paper (Mu 2023) describes its attack as one that "gradually extends from the fully-connected layer
to the convolution layer". This is that path, with R-GAP's equations:

1. **The label**, read off the last layer as iDLG does.
2. **The fully-connected layer's input, in closed form.** For z = W h + b, row i of the weight gradient is
   dL/dW_i = dL/db_i * h, so h is the least-squares fit of the rows by the bias gradient (exact for one
   photo; ``analytic.recover_inputs``). Its gradient dL/dh = W^T dL/db comes with it.
3. **Back through each convolution.** The layer's output h is known, and so its pre-activation
   z = act^-1(h) (sigmoid: the logit, clamped away from 0 and 1) and the gradient there,
   dL/dz = dL/dh * act'(z), which a sigmoid's or tanh's output gives without z. Both of R-GAP's
   constraints are then *linear* in the layer's input x:
   - forward: conv(x) = z - b (one equation per output number);
   - gradient: the layer's weight gradient, sum over positions of dL/dz (position) x (x's patch there), must
     equal the shared one (one equation per weight).
   Where the two together have at least as many equations as x has numbers (``rank.py`` counts them), x is
   their least-squares solution (``conv_solve``: conjugate gradients where the forward rows alone suffice,
   LSQR otherwise), on the operator and its adjoint, both from torch (a convolution and its transpose or
   vector-Jacobian product), never a dense matrix (at 128 px one layer's would have 10^10 entries). Then
   dL/dx follows by the chain rule, and the next layer down is the same problem.
4. **Where a layer has fewer equations than unknowns** (the seed paper's CNN, 16 -> 32 channels with stride
   2), its input cannot be solved for alone. Below it the true unknowns are the photo's pixels, far fewer, so
   the photo is fitted instead: L-BFGS on the photo alone, matching the sub-network's output at that layer to
   the recovered one and that layer's weight gradient to the shared one (R-GAP's two constraints again, now
   through the layers below). It needs first derivatives only, where gradient matching of the whole network
   differentiates a gradient.

The frames: step 0 is the grey start (with its true gradient distance); then one frame per layer, whose
``features`` are what that layer gave away (the photo itself comes last); then, for an under-determined
layer, one frame per L-BFGS step. ``evals`` counts full gradient evaluations (the start's and the end's)
plus the sub-network fits' forward-backward passes.

**What it cannot do.** ReLU throws away every negative pre-activation, so z cannot be read back from h; a
ResNet adds BatchNorm (the running statistics mix every unit's scale into the next), skip connections (two
unknown inputs add up), strides and pooling that average positions away: it is refused. **One photo only**:
with a batch, each row of the fully-connected gradient is sum_n dL/db_in h_n / sum_n dL/db_in, a mixture of
the photos' features weighted by each photo's bias gradient, so there is no single layer output to walk
back from; ``batch_rows.py`` walks a batch from the span of those rows instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError
from ..rank import Chain, ConvLayer, determined, equation_counts, layer_chain
from .analytic import recover_inputs, update_distance
from .base import AttackerKnowledge, AttackSettings, Progress, gradient_of, infer_labels_from_last_layer, initial_image
from .conv_solve import ConvEquations
from .labels import output_layer
from .lbfgs import CompactLBFGS

BATCH = ("The layer-by-layer attack rebuilds one photo: with a batch, each row of the fully-connected layer's "
         "gradient is a mixture of the photos' features, weighted by each photo's bias gradient, not any one "
         "of them.")
RANGE_SLACK, OUTSIDE_SHARE = 0.05, 0.005  # a solution with over 0.5% of its numbers this far out of range is wrong
ACT_EDGE = 1e-6  # a sigmoid output this close to 0 or 1 is clamped before its logit (float64: z within +-14)
FIT_TOLERANCE = 1e-12  # the photo fit stops when its relative residual is below this,
STALL_STEPS, STALL_GAIN = 5, 0.05  # or when it fell by less than 5% in the last 5 steps (float32 noise floor)


def check_applies(model: nn.Module, input_shape: tuple[int, ...]) -> Chain:
    """The chain, or BadInputError (victim or batch) before any work is done."""
    chain = layer_chain(model, input_shape)
    if input_shape[0] != 1:
        raise BadInputError(BATCH)
    return chain


def undo_activation(h: torch.Tensor, activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pre-activation z, act'(z)) from the output h, both computed from h alone."""
    if activation == "sigmoid":
        h = h.clamp(ACT_EDGE, 1 - ACT_EDGE)
        return torch.logit(h), h * (1 - h)
    h = h.clamp(-1 + ACT_EDGE, 1 - ACT_EDGE)
    return torch.atanh(h), 1 - h * h


def plausible(x: torch.Tensor, made_by: str) -> bool:
    """Whether a solved input could be what the layer below (or the photo) outputs. A solver can meet its
    tolerance on a system that is rank-deficient in fact, with a null-space component in the answer: on the
    CNN at 32 px (conv3, determined by the count) 2.7% of the numbers came out beyond the sigmoid's range by
    over 0.05, against none on the layers that were solved right (wide CNN, LeNet; measured)."""
    low = -1.0 if made_by == "tanh" else 0.0
    outside = (x < low - RANGE_SLACK) | (x > 1 + RANGE_SLACK)
    return float(outside.double().mean()) <= OUTSIDE_SHARE


def needs_gradient_rows(layer: ConvLayer) -> bool:
    """Whether the forward equations alone are too few. Where they are twice the unknowns (both of wide_cnn's
    layers), the weight-gradient rows are left out: they made each LSQR iteration about 2.5x as long for no
    gain (measured at 32 px: 0.077 s against 0.19 s, both above 66 dB). A square forward system (LeNet's
    stride-1 convolution) is ill-conditioned alone: LSQR left its input 10% off."""
    unknowns, forward, _ = equation_counts(layer)
    return forward < 2 * unknowns


def label_of_one_photo(knowledge: AttackerKnowledge) -> tuple[int]:
    """iDLG's idea, from the output layer's bias gradient p - y: only the true class's entry is negative. Exact
    for one photo whatever the activation (iDLG's weight-row sums assume features >= 0, which tanh breaks)."""
    layer = output_layer(knowledge.model, knowledge.num_classes)
    if layer.bias is None:
        return infer_labels_from_last_layer(knowledge.shared_update, knowledge.num_classes)
    return (int(gradient_of(knowledge.model, knowledge.shared_update.gradients, layer.bias).argmin()),)


def _activate(z: torch.Tensor, activation: str) -> torch.Tensor:
    return torch.sigmoid(z) if activation == "sigmoid" else torch.tanh(z)


def _double(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def layerwise(knowledge: AttackerKnowledge, settings: AttackSettings) -> Iterator[Progress]:
    """Yields the grey start, one frame per layer, and, below an under-determined layer, one per fitting step.

    Raises BadInputError at once (not on the first ``next``) for a victim or batch it cannot walk.
    """
    chain = check_applies(knowledge.model, knowledge.input_shape)
    return _walk(knowledge, settings, chain)


class _Frames:
    """Progress reports with the label and the evaluation count filled in."""

    def __init__(self, knowledge: AttackerKnowledge, settings: AttackSettings):
        self.knowledge, self.settings = knowledge, settings
        self.labels = label_of_one_photo(knowledge)
        self.label_probs = F.one_hot(torch.tensor(self.labels), knowledge.num_classes).float()
        self.evals = 0
        self.distance = float("nan")

    def measure(self, image: torch.Tensor) -> None:
        """The true gradient distance of this image (one gradient evaluation)."""
        self.evals += 1
        self.distance = update_distance(self.knowledge, image.float(), self.label_probs, self.settings.distance)

    def frame(self, step: int, image: torch.Tensor, stage: str | None = None,
              features: torch.Tensor | None = None) -> Progress:
        return Progress(step=step, evals=self.evals, reconstruction=image.detach().to("cpu", torch.float32, copy=True),
                        label_guess=self.labels, label_probs=self.label_probs, gradient_distance=self.distance,
                        stage=stage, features=None if features is None else features.to(torch.float32, copy=True))


def _walk(knowledge: AttackerKnowledge, settings: AttackSettings, chain: Chain) -> Iterator[Progress]:
    model, gradients = knowledge.model, knowledge.shared_update.gradients
    frames = _Frames(knowledge, settings)
    start = initial_image(knowledge.input_shape, "grey", torch.Generator().manual_seed(settings.seed), torch.float64)
    frames.measure(start)
    yield frames.frame(0, start)

    linear = chain.linear
    bias_grad = _double(gradient_of(model, gradients, linear.bias))
    h = recover_inputs(_double(gradient_of(model, gradients, linear.weight)), bias_grad, 1)[0]
    grad_h = _double(linear.weight).T @ bias_grad  # dL/dh = W^T dL/dz, and dL/dz = dL/db for one photo
    step = 1
    fc_shape = chain.convs[-1].output_shape if chain.convs else knowledge.input_shape[1:]
    yield frames.frame(step, start, "fully-connected input", h.reshape(fc_shape))
    for index in range(len(chain.convs) - 1, -1, -1):
        layer = chain.convs[index]
        h, grad_h = h.reshape(layer.output_shape), grad_h.reshape(layer.output_shape)
        z, slope = undo_activation(h, layer.activation)
        output_grad = (grad_h * slope)[None]
        weight, shared = _double(layer.conv.weight), _double(gradient_of(model, gradients, layer.conv.weight))
        bias = _double(layer.conv.bias)[:, None, None]
        x = None
        if determined(layer) and (index > 0 or not needs_gradient_rows(layer)):
            x = ConvEquations(layer, weight, output_grad, (z - bias)[None], shared, needs_gradient_rows(layer)).solve()
        below = chain.convs[index - 1].activation if index > 0 else "photo"
        if x is None or not plausible(x, below):
            yield from _fit_photo(chain.convs[:index + 1], h, output_grad, shared, frames, settings, step)
            return
        h = x[0]
        step += 1
        if index > 0:  # the photo needs no gradient
            grad_h = torch.nn.grad.conv2d_input(x.shape, weight, output_grad, layer.conv.stride, layer.conv.padding)[0]
            yield frames.frame(step, start, f"{layer.name} input", h)
    image = h.reshape(knowledge.input_shape).clamp(0, 1)
    frames.measure(image)
    yield frames.frame(step, image, "the photo", image[0])


def _sub_network(layers: tuple[ConvLayer, ...], image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the last layer's input, its output) for this image, through these layers' convolutions and activations."""
    x = image
    for i, layer in enumerate(layers):
        conv = layer.conv
        inputs = x
        x = _activate(F.conv2d(x, _double(conv.weight), _double(conv.bias), conv.stride, conv.padding),
                      layer.activation)
        if i == len(layers) - 1:
            return inputs, x
    raise ValueError("no layers")


def _fit_photo(layers: tuple[ConvLayer, ...], output: torch.Tensor, output_grad: torch.Tensor,
               shared: torch.Tensor, frames: _Frames, settings: AttackSettings, step: int) -> Iterator[Progress]:
    """Fit the photo to an under-determined layer's recovered output and its weight gradient (docstring, 4.)."""
    top = layers[-1].conv
    image = initial_image(frames.knowledge.input_shape, "grey", torch.Generator().manual_seed(settings.seed),
                          torch.float64).requires_grad_(True)
    output_norm, shared_norm = output.pow(2).sum(), shared.pow(2).sum()
    optimizer = CompactLBFGS([image], lr=1.0, max_iter=settings.max_iter, history_size=settings.history_size,
                             line_search_fn="strong_wolfe")
    fits = 0
    residual = float("inf")

    def closure() -> torch.Tensor:
        nonlocal fits, residual
        fits += 1
        image.grad = None
        inputs, out = _sub_network(layers, image)
        weight_grad = torch.nn.grad.conv2d_weight(inputs, top.weight.shape, output_grad, top.stride, top.padding)
        loss = (out[0] - output).pow(2).sum() / output_norm + (weight_grad - shared).pow(2).sum() / shared_norm
        loss.backward()
        residual = float(loss.detach())
        return loss

    residuals = []
    for fit_step in range(1, settings.steps + 1):
        optimizer.step(closure)
        frames.evals += fits
        fits = 0
        residuals.append(residual)
        stalled = len(residuals) > STALL_STEPS and residual > (1 - STALL_GAIN) * residuals[-1 - STALL_STEPS]
        done = residual < FIT_TOLERANCE or stalled or optimizer.stuck or fit_step == settings.steps
        picture = image.detach().clamp(0, 1)
        if done:
            frames.measure(picture)
        yield frames.frame(step + fit_step, picture, "the photo (fitted)" if done else None,
                           picture[0] if done else None)
        if done:
            return
