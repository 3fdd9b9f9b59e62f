"""Victim networks by name, for square images of any size from 16 to 128 px.

- ``lenet``: the victim of DLG (Zhu et al. 2019) and iDLG (Zhao et al. 2020): three 5x5 convolutions with
  12 channels and sigmoids, one linear layer, every weight and bias drawn from U(-0.5, 0.5). Sigmoid is
  twice differentiable, which gradient matching needs (a ReLU net's second derivative is zero almost everywhere).
- ``cnn``: the seed paper's kind of victim (Mu 2023): a few convolutions, then fully-connected layers,
  with twice-differentiable activations (sigmoid by default). Drawn from U(-0.5, 0.5) like DLG's LeNet:
  at PyTorch's default scale its sigmoids sit near 0.5 whatever the input, so the gradient barely depends
  on the photo (measured: a normalised gradient distance of 5e-7 between a grey image and the photo).
  With ``activation="relu"`` it is drawn at PyTorch's default scale instead (see ``build_model``).
- ``wide_cnn``: the app's default victim, a small CNN whose gradient holds more numbers than the photo has
  pixels at every size: two sigmoid convolutions (24 channels 5x5 with stride 2, then 48 channels 3x3), drawn
  from U(-0.5, 0.5) like DLG's LeNet, and one linear layer at PyTorch's default scale (see ``build_model``).
  A linear layer's weight gradient is its input scaled, row by row (dL/dW_i = dL/db_i * h), so it hands the
  attacker h: here 48 x (s/2)^2 numbers, four times the 3 x s^2 pixels. LeNet's linear input is a quarter
  of the pixels, and at 64 px its whole gradient holds about 11.3k informative numbers for 12,288 pixels:
  too few to pin every pixel down (the earlier default attack rebuilt 0 of 6 photos on it), while this
  victim gave up all 30 (6 photos x 5 seeds) to the default attack at 64 px, in a median of 23 gradient
  evaluations (measured).
- ``mlp``: a fully-connected net; its first layer's input is the image itself, which is what the
  closed-form attack on fully-connected layers exploits.
- ``resnet``: a deeper victim, the kind Inverting Gradients (Geiping et al. 2020) attacks: a small ResNet
  (He et al. 2016) of four torchvision ``BasicBlock``s, widths 16-32-64-128, a 3x3 stride-1 stem and no
  max-pool (the CIFAR-style stem: a 7x7 stride-2 stem and a max-pool would shrink a 32 px photo to 8 px
  before the first block). Always ReLU, whatever ``activation`` says: that is the block's design.

The ResNet keeps torchvision's BatchNorm, used in evaluation mode with its running statistics, which is how
Inverting Gradients attacks ResNets: every image is then normalised by the same fixed statistics, so the
victim's gradient of one image does not depend on the rest of its batch, and the attacker (who holds the
same model, in the same mode) computes exactly the same function. In training mode, BatchNorm would
normalise each image by its batch's statistics, which the attacker would have to guess as well. A fresh
victim's running statistics are (mean 0, variance 1), so its BatchNorm layers do nothing; a victim trained
by ``training.py`` has learnt real ones. (GroupNorm, which normalises each image by itself, was measured
too: the gradient then jumped with tiny changes of the image, 30 times more than here, and Inverting
Gradients ended about 5 dB lower.)

Initialisation is seeded: the same (name, size, classes, seed) gives the same victim.
"""

from __future__ import annotations

import torch
from torch import nn

from . import limits
from .errors import BadInputError

MODEL_NAMES = ("lenet", "cnn", "wide_cnn", "mlp", "resnet")

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


def _wide_cnn(size: int, classes: int, act: type[nn.Module]) -> nn.Sequential:
    convs = nn.Sequential(
        nn.Conv2d(3, 24, 5, padding=2, stride=2), act(),
        nn.Conv2d(24, 48, 3, padding=1), act(),
        nn.Flatten(),
    )
    return nn.Sequential(*convs, nn.Linear(_features(convs, size), classes))


def _mlp(size: int, classes: int, act: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 256), act(), nn.Linear(256, classes))


RESNET_WIDTHS = (16, 32, 64, 128)  # a quarter of ResNet-18's: IG evaluates the net thousands of times on a CPU


def _resnet(size: int, classes: int, act: type[nn.Module]) -> nn.Sequential:
    # `act` is ignored: torchvision's BasicBlock is built around ReLU. `size` is free: the pooling is adaptive.
    # Imported here, not at the top: only this victim needs torchvision (a CUDA build, the only one available
    # here). Measured: it adds 175 MB to a bare `import torch`, but only about 14 MB to the app's peak, which
    # imports most of the same torch machinery anyway (torch._dynamo, with its first optimiser).
    from torchvision.models.resnet import BasicBlock, conv1x1, conv3x3

    layers: list[nn.Module] = [conv3x3(3, RESNET_WIDTHS[0]), nn.BatchNorm2d(RESNET_WIDTHS[0]), nn.ReLU()]
    channels = RESNET_WIDTHS[0]
    for i, width in enumerate(RESNET_WIDTHS):
        stride = 1 if i == 0 else 2
        shortcut = None
        if stride != 1 or channels != width:
            shortcut = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
        layers.append(BasicBlock(channels, width, stride, shortcut))
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes))


_BUILDERS = {"lenet": _lenet, "cnn": _cnn, "wide_cnn": _wide_cnn, "mlp": _mlp, "resnet": _resnet}


def _features(convs: nn.Module, size: int) -> int:
    with torch.no_grad():
        return convs(torch.zeros(1, 3, size, size)).shape[1]


def build_model(name: str, size: int, classes: int = 2, seed: int = 0, activation: str = "sigmoid",
                max_size: int | None = None) -> nn.Module:
    """The victim network, freshly initialised from ``seed``; in eval mode (no dropout or batch statistics).

    ``max_size`` raises the size limit for offline measurements only (the benchmark times the closed-form
    attack on 224 px photos); the app and the CLI never pass it, so ``limits.MAX_SIZE`` protects the host.
    """
    if name not in _BUILDERS:
        raise BadInputError(f"Unknown model '{name}': choose one of {', '.join(MODEL_NAMES)}.")
    largest = limits.MAX_SIZE if max_size is None else max_size
    if not (limits.MIN_SIZE <= size <= largest):
        raise BadInputError(f"Image size must be between {limits.MIN_SIZE} and {largest} px, not {size}.")
    if not (2 <= classes <= limits.MAX_CLASSES):
        raise BadInputError(f"The number of classes must be between 2 and {limits.MAX_CLASSES}, not {classes}.")
    if activation not in ACTIVATIONS:
        raise BadInputError(f"Unknown activation '{activation}': choose one of {', '.join(ACTIVATIONS)}.")
    generator = torch.Generator().manual_seed(seed)
    model = _BUILDERS[name](size, classes, ACTIVATIONS[activation])
    with torch.no_grad():
        if name == "resnet":
            _init_resnet(model, generator)
            return model.eval()
        for layer in model.modules():
            if not isinstance(layer, (nn.Conv2d, nn.Linear)):
                continue
            fan_in = layer.weight[0].numel()
            # DLG's own initialisation is U(-0.5, 0.5) for every weight and bias; the other victims get
            # PyTorch's default scale U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from our seeded generator.
            # A ReLU cnn gets PyTorch's scale too: U(-0.5, 0.5) suits sigmoids (it keeps them out of their
            # flat tails) but blows a ReLU net's activations up by ~sqrt(fan_in / 12) per layer until its
            # softmax saturates and the gradient vanishes. (He et al.'s larger scale was measured too: its
            # ReLUs switch on and off with tiny changes of the image, so the gradient jumps and Inverting
            # Gradients ended 3-5 dB lower.)
            uses_dlg_scale = name == "lenet" or (name in ("cnn", "wide_cnn") and activation != "relu")
            if name == "wide_cnn" and isinstance(layer, nn.Linear):
                # Its linear layer sees 12k-197k numbers: at U(-0.5, 0.5) its two logits differ by 19-43 (std
                # over photos and seeds, measured), so the victim is all but certain of any photo, and one SGD
                # step of its own takes its loss to exactly 0. At PyTorch's scale they differ by under 1,
                # p - y stays large, and the attack needed half (32 px) to a fifth (64 px) of the
                # evaluations (measured, 30 runs each).
                uses_dlg_scale = False
            bound = 0.5 if uses_dlg_scale else 1.0 / fan_in**0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
    return model.eval()


def _init_resnet(model: nn.Module, generator: torch.Generator) -> None:
    """torchvision's ResNet initialisation, drawn from our seeded generator."""
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            bound = 1.0 / layer.weight.shape[1] ** 0.5
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.uniform_(-bound, bound, generator=generator)
