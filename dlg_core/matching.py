"""Which reconstruction is which photo: pairing a rebuilt batch with the private batch before scoring it.

A gradient is a sum over the batch, so it says nothing about the order of the images: an attack rebuilds
the batch as a set, and its third reconstruction may be the client's first photo. Comparing them index by
index would punish a perfect attack for an order it could never know. So, as breaching's report does
(Geiping et al.; it pairs by LPIPS, a learnt perceptual distance we have no weights for), we first find the
pairing that makes the total error smallest, an optimal assignment on the pairwise MSE (the Hungarian
method, via SciPy), then score each pair. This uses the originals, so it belongs to the demo's analysis,
never to the attacker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import metrics


@dataclass(frozen=True)
class ImageScore:
    mse: float  # on [0, 1]
    mse_255: float  # on 0-255
    psnr: float  # dB
    ssim: float


@dataclass(frozen=True)
class BatchMatch:
    """The reconstructions paired with the originals, and how well each pair matches."""

    order: tuple[int, ...]  # order[i]: the index of the reconstruction paired with original i
    per_image: tuple[ImageScore, ...]  # in the originals' order
    batch: metrics.ImageMetrics  # MSE/PSNR of the whole reordered batch, as metrics.image_metrics computes it
    ssim: float  # mean over the pairs

    @property
    def mean_psnr(self) -> float:
        return sum(s.psnr for s in self.per_image) / len(self.per_image)


def _clean(images: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(images.detach().float().cpu(), nan=0.5).clamp(0, 1)


def pairwise_mse(reconstructions: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    """cost[i, j]: MSE between original i and reconstruction j (reconstructions clamped to [0, 1])."""
    recon = _clean(reconstructions).flatten(1)
    orig = originals.detach().float().cpu().flatten(1)
    return ((orig[:, None, :] - recon[None, :, :]) ** 2).mean(dim=2)


def match_reconstructions(reconstructions: torch.Tensor, originals: torch.Tensor) -> tuple[int, ...]:
    """The pairing with the least total MSE: ``reconstructions[list(order)]`` lines up with ``originals``."""
    from scipy.optimize import linear_sum_assignment  # imported lazily: scipy is slow to import

    if reconstructions.shape != originals.shape:
        raise ValueError(f"cannot pair {tuple(reconstructions.shape)} reconstructions with "
                         f"{tuple(originals.shape)} originals")
    cost = pairwise_mse(reconstructions, originals).double().numpy()
    rows, cols = linear_sum_assignment(cost)
    order = [0] * len(rows)
    for r, c in zip(rows, cols, strict=True):
        order[r] = int(c)
    return tuple(order)


def matched_metrics(reconstructions: torch.Tensor, originals: torch.Tensor) -> BatchMatch:
    """Pair the reconstructions with the originals, then score each pair and the whole batch."""
    order = match_reconstructions(reconstructions, originals)
    aligned = _clean(reconstructions)[list(order)]
    ssims = metrics.ssim_per_image(aligned, originals)
    per_image = []
    for i, ssim in enumerate(ssims):
        m = metrics.image_metrics(aligned[i:i + 1], originals[i:i + 1])
        per_image.append(ImageScore(mse=m.mse, mse_255=m.mse_255, psnr=m.psnr, ssim=ssim))
    return BatchMatch(order=order, per_image=tuple(per_image), batch=metrics.image_metrics(aligned, originals),
                      ssim=sum(ssims) / len(ssims))


def reorder_labels(labels: tuple[int, ...], order: tuple[int, ...]) -> tuple[int, ...]:
    """The attack's per-reconstruction labels, put in the originals' order (as the images were)."""
    return tuple(labels[j] for j in order)
