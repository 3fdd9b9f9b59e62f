"""One run's downloads: the reconstruction as an animated GIF, the metric history as CSV, the config as JSON.

Everything is built in memory and returned as bytes or text, never written to disk: in the app the photo
may be a student's own upload, and its reconstruction goes straight to their browser and nowhere else.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import AttackConfig
from .csv_cells import cell
from .images import tensor_to_numpy

# The CSV's columns, in order: every scalar a Snapshot carries (its image and probabilities are left out).
HISTORY_COLUMNS = ("step", "seconds", "evals", "gradient_distance", "mse", "mse_255", "psnr", "ssim",
                   "label_guess", "restarts")


def _as_uint8(frame: torch.Tensor | np.ndarray) -> np.ndarray:
    """A frame as HxWx3 uint8: tensors are 1x3xHxW or 3xHxW in [0, 1]; arrays HxWx3, uint8 or floats in [0, 1]."""
    if isinstance(frame, torch.Tensor):
        return tensor_to_numpy(frame)
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 array, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.round(np.clip(np.nan_to_num(array.astype(np.float64), nan=0.0), 0, 1) * 255).astype(np.uint8)
    return array


def frames_to_gif(frames: Sequence[torch.Tensor | np.ndarray], ms_per_frame: int = 80, scale: int = 4,
                  hold_last_ms: int = 1500) -> bytes:
    """An endlessly looping GIF of the frames, each enlarged ``scale`` times with crisp (nearest) pixels.

    The last frame stays ``hold_last_ms`` on screen, so that a viewer sees where the attack ended up.
    """
    if len(frames) == 0:
        raise ValueError("no frames to animate")
    if scale < 1 or ms_per_frame < 1:
        raise ValueError("scale and ms_per_frame must be at least 1")
    pictures = []
    for frame in frames:
        array = _as_uint8(frame)
        if scale > 1:
            array = np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)
        pictures.append(Image.fromarray(array))
    if any(p.size != pictures[0].size for p in pictures):
        raise ValueError("all frames must have the same size")
    durations = [ms_per_frame] * len(pictures)
    durations[-1] = max(ms_per_frame, hold_last_ms)
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=durations,
                     loop=0, optimize=False)
    return buffer.getvalue()


def _cell(name: str, value: Any) -> Any:
    """``csv_cells``' convention (a batch's label guesses: [0, 1, 1]); one photo's label is a number, as in the
    run's JSON."""
    if name == "label_guess" and isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return cell(value)


def history_to_csv(rows: Iterable[Any]) -> str:
    """The metric history, one row per snapshot: ``rows`` are Snapshots or mappings with the same names.

    Mappings may carry further scalar columns; they follow the standard ones, in the first row's order.
    """
    rows = list(rows)
    records = []
    for row in rows:
        if dataclasses.is_dataclass(row) and not isinstance(row, type):
            records.append({name: getattr(row, name) for name in HISTORY_COLUMNS})
        elif isinstance(row, Mapping):
            records.append(dict(row))
        else:
            raise TypeError(f"a history row must be a Snapshot or a mapping, not {type(row).__name__}")
    extra = [k for k in (records[0] if records else {}) if k not in HISTORY_COLUMNS]
    columns = list(HISTORY_COLUMNS) + extra
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _cell(k, record.get(k, "")) for k in columns})
    return out.getvalue()


def config_to_json(config: AttackConfig) -> str:
    """The run's full config; ``AttackConfig.from_json`` reads it back."""
    return config.to_json() + "\n"
