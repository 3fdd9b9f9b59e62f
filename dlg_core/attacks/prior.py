"""The image prior the attacks share: total variation, which prefers a photo to noise (Rudin et al. 1992)."""

from __future__ import annotations

import torch


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between horizontally and vertically neighbouring pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


def smoothed(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The images Gaussian-blurred (5x5 kernel) and held to the [0, 1] box: a picture's fine-grained noise gone,
    its shapes kept (a new start for a run stalled on noise the victim barely sees: run.py)."""
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(images, kernel_size=5, sigma=sigma).clamp(0, 1)
