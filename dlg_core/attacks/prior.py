"""The image prior the attacks share: total variation, which prefers a photo to noise (Rudin et al. 1992)."""

from __future__ import annotations

import torch


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between horizontally and vertically neighbouring pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy


def smoothed(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The images blurred by a Gaussian of ``sigma`` pixels (5x5 kernel, edges reflected), channel by channel:
    what is left of a picture once its pixel-to-pixel noise is removed."""
    radius = torch.arange(-2, 3, dtype=images.dtype, device=images.device)
    line = torch.exp(-radius**2 / (2 * sigma**2))
    line = line / line.sum()
    channels = images.shape[1]
    kernel = (line[:, None] * line[None, :]).expand(channels, 1, 5, 5)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect")
    return torch.nn.functional.conv2d(padded, kernel, groups=channels)
