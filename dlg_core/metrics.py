"""How well a reconstruction matches the private photo: MSE, PSNR, SSIM, label accuracy.

MSE is reported on [0, 1] and on the 0-255 scale: the seed paper's "MSE about 5" is on 0-255, which is
about 41 dB of PSNR (PSNR = 10 log10(255^2 / MSE_255)). SSIM comes from scikit-image, not our own code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

SUCCESS_PSNR = 30.0  # dB: the benchmark's and the tests' line for "the photo leaked"
PSNR_CAP = 99.0  # dB: an exact copy has an infinite PSNR; charts, tables and summaries show it as this


@dataclass(frozen=True)
class ImageMetrics:
    mse: float  # on [0, 1]
    mse_255: float  # on 0-255
    psnr: float  # dB, against a peak of 1 (equivalently 255 on the 0-255 scale)


def image_metrics(reconstruction: torch.Tensor, original: torch.Tensor) -> ImageMetrics:
    """Metrics of one image or a batch (averaged). The reconstruction is clamped to the valid box first."""
    recon = torch.nan_to_num(reconstruction.detach().float().cpu(), nan=0.5).clamp(0, 1)
    mse = float(((recon - original.detach().float().cpu()) ** 2).mean())
    return ImageMetrics(mse=mse, mse_255=mse * 255**2, psnr=psnr_from_mse(mse))


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def ssim(reconstruction: torch.Tensor, original: torch.Tensor) -> float:
    """Mean structural similarity over the batch (scikit-image, colour channels, data range 1)."""
    return float(np.mean(ssim_per_image(reconstruction, original)))


def ssim_per_image(reconstruction: torch.Tensor, original: torch.Tensor) -> list[float]:
    """Structural similarity of each image of a batch with its original, in batch order."""
    from skimage.metrics import structural_similarity  # imported lazily: scipy is slow to import

    recon = torch.nan_to_num(reconstruction.detach().float().cpu(), nan=0.5).clamp(0, 1).numpy()
    orig = original.detach().float().cpu().numpy()
    return [float(structural_similarity(orig[i], recon[i], channel_axis=0, data_range=1.0))
            for i in range(orig.shape[0])]


def label_accuracy(guess: tuple[int, ...] | list[int], truth: tuple[int, ...] | list[int]) -> float:
    """Share of labels guessed right (compared as multisets, so the order of a batch does not matter)."""
    remaining = list(truth)
    hits = 0
    for g in guess:
        if g in remaining:
            remaining.remove(g)
            hits += 1
    return hits / max(len(truth), 1)
