"""A victim that has learnt something: a few hundred steps of training on the six bundled photos.

The papers attack two kinds of victims. DLG and iDLG (Zhu et al. 2019; Zhao et al. 2020) attack freshly
drawn networks; Inverting Gradients (Geiping et al. 2020, section 5) shows that trained networks leak too,
but differently, and that is what a student should see side by side:

- A trained net is confident on photos like the ones it learnt from, and the output layer's gradient is
  (p - y): when the true label's probability p is near 1, every gradient shrinks with (1 - p). The update
  of a well-classified photo is small and dominated by float noise and by any defence's noise, so it
  leaks less; a photo the net gets wrong (or has never seen the like of) still produces a large gradient
  and leaks as much as ever. A random net, by contrast, is equally unsure of everything. (Measured with
  Inverting Gradients on the ReLU cnn, 2 classes, 32 px, two of the bundled photos: 25 and 22 dB from
  random victims, 14 and 7 dB from victims trained 300 steps on them, whose updates were 2 and 30 times
  smaller and flagged as weak by the client.)
- Training shapes the features. A random net's outputs are nearly the same for every input (which is why
  counting labels from dummy images works so well on it); a trained net's first layers respond to edges
  and colours and its last layers to what tells a cat from a dog, and its outputs depend on the photo.
  The gradient then describes the photo through those learnt features, not random ones: Geiping et al.
  still recover recognisable photos from trained ResNets, while label inference that assumes
  input-independent outputs gets less reliable (measured here: from 99-100% of labels right on
  random victims to 82-97% on trained ones).

Here the training set is tiny (six photos, cat 0 / dog 1), so the net memorises it within a few hundred
steps; random flips and crops keep it from memorising pixels alone. Everything is seeded and runs on one
CPU thread in a few seconds. The photos an attack targets are left out of the set (``training_set``): a real
victim is attacked on a photo of its next round, not on one it has learnt; only when the batch holds every
bundled photo is there nothing else to train on, and the run then warns that the victim saw the photo.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F
from torch import nn

from .images import SAMPLES, load_sample
from .metrics import SUCCESS_PSNR, psnr_from_mse

TRAIN_LR = 1e-3  # Adam's usual step: robust across the sigmoid LeNet, the ReLU nets and the ResNet


@functools.lru_cache(maxsize=8)
def bundled_photos(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The six bundled photos at ``size`` px and their labels (cat 0, dog 1). Read-only: do not modify."""
    photos = torch.cat([load_sample(s.name, size) for s in SAMPLES])
    labels = torch.tensor([s.label for s in SAMPLES])
    return photos, labels


def _attacked(photos: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
    """Which training photos are one of the attacked ones: within SUCCESS_PSNR of it (the same photo, however it
    was loaded and resized; two different photos are 10-20 dB apart)."""
    attacked = attacked.detach().float().cpu()
    closest = [float(((attacked - photo) ** 2).flatten(1).mean(dim=1).min()) for photo in photos]  # lowest MSE
    return torch.tensor([psnr_from_mse(mse) >= SUCCESS_PSNR for mse in closest], dtype=torch.bool)


def training_set(size: int, attacked: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled photos and labels, less the ``attacked`` ones (B x 3 x size x size); all of them when that
    would leave none (``photos_in_training_set`` then says so)."""
    photos, labels = bundled_photos(size)
    if attacked is None or attacked.shape[-2:] != photos.shape[-2:]:
        return photos, labels
    keep = ~_attacked(photos, attacked)
    return (photos[keep], labels[keep]) if keep.any() else (photos, labels)


def photos_in_training_set(attacked: torch.Tensor, size: int) -> bool:
    """Whether a victim trained for these attacked photos has one of them in its training set."""
    photos, _ = training_set(size, attacked)
    return bool(_attacked(photos, attacked).any())


def augment(photos: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and random crops (reflection-padded by 1/8 of the side), per photo."""
    n, _, h, w = photos.shape
    pad = max(1, h // 8)
    padded = F.pad(photos, (pad, pad, pad, pad), mode="reflect")
    out = torch.empty_like(photos)
    flips = torch.rand(n, generator=generator) < 0.5
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def train_victim(model: nn.Module, steps: int = 300, seed: int = 0, size: int = 32,
                 attacked: torch.Tensor | None = None) -> nn.Module:
    """A trained copy of ``model`` (the given one is left as it was), in eval mode.

    Adam on the cross-entropy of the augmented training photos (``training_set``: the bundled ones less the
    ``attacked`` ones) at every step. The photos' labels are 0 and 1, so a victim with more classes learns to
    put its mass on those two.
    """
    photos, labels = training_set(size, attacked)
    trained = copy.deepcopy(model).train()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(trained.parameters(), lr=TRAIN_LR)
    for _ in range(steps):
        loss = F.cross_entropy(trained(augment(photos, generator)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return trained.eval()


def training_loss(model: nn.Module, size: int = 32) -> float:
    """Mean cross-entropy of ``model`` on the six bundled photos, unaugmented."""
    photos, labels = bundled_photos(size)
    with torch.no_grad():
        return float(F.cross_entropy(model(photos), labels))
