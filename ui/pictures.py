"""Pictures for the screen: crisp enlargements of tiny images and the per-pixel error heat map.

Plain numpy (no matplotlib): a 32x32 reconstruction is shown as 256x256 blocks so that students see the
pixels the attacker actually recovers, not a blur the browser invented.
"""

from __future__ import annotations

import numpy as np

DISPLAY_PX = 256  # side of the enlarged images
ERROR_VMAX = 0.3  # mean absolute error (on [0, 1]) shown at full brightness in the heat map

# Anchors of matplotlib's "inferno" colour map (black -> purple -> orange -> pale yellow): readable on a
# projector, and dark where the reconstruction is right.
_INFERNO = np.array([
    (0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21), (250, 193, 39),
    (252, 255, 164),
], dtype=np.float64)
_LUT = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_INFERNO)), _INFERNO[:, c])
                 for c in range(3)], axis=1).round().astype(np.uint8)


def upscale(image: np.ndarray, target: int = DISPLAY_PX) -> np.ndarray:
    """Enlarge an HxWx3 image by a whole factor with nearest-neighbour pixels (about ``target`` px wide)."""
    factor = max(1, target // max(image.shape[0], image.shape[1]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def error_map(reconstruction: np.ndarray, original: np.ndarray, vmax: float = ERROR_VMAX) -> np.ndarray:
    """Per-pixel mean absolute error over the colour channels, as an HxWx3 uint8 colour image."""
    error = np.abs(reconstruction.astype(np.float32) - original.astype(np.float32)).mean(axis=2) / 255.0
    index = np.clip(error / vmax, 0, 1) * 255
    return _LUT[index.round().astype(np.intp)]

