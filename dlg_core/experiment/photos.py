"""The grid's photos: bundled sample names, image files and folders of them, each decoded once per size."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BadInputError
from ..images import ASSETS_DIR, SAMPLES, load_image, load_sample

SAMPLE_NAMES = tuple(s.name for s in SAMPLES)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class GridPhoto:
    name: str  # a bundled sample's name, or the path as given
    sample_label: int | None  # cat 0 / dog 1 for a bundled sample


def resolve_images(items: Iterable[str]) -> tuple[GridPhoto, ...]:
    """Bundled sample names, image files and folders of them -> the photos, in order, each once."""
    by_file = {(ASSETS_DIR / s.filename).resolve(): s for s in SAMPLES}
    photos: list[GridPhoto] = []
    for item in items:
        item = str(item)
        if item in SAMPLE_NAMES:
            paths = [ASSETS_DIR / next(s.filename for s in SAMPLES if s.name == item)]
        elif Path(item).is_dir():
            paths = sorted(p for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not paths:
                raise BadInputError(f"{item}: the folder holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        elif Path(item).is_file():
            paths = [Path(item)]
        else:
            raise BadInputError(f"{item}: not a bundled sample ({', '.join(SAMPLE_NAMES)}), an image file or a "
                                "folder of them.")
        for path in paths:
            sample = by_file.get(path.resolve())
            photo = GridPhoto(sample.name, sample.label) if sample else GridPhoto(str(path), None)
            if photo not in photos:
                photos.append(photo)
    if not photos:
        raise BadInputError("Give at least one photo: a bundled sample name, an image file or a folder.")
    return tuple(photos)


@functools.lru_cache(maxsize=64)
def _load(name: str, size: int) -> torch.Tensor:
    return load_sample(name, size) if name in SAMPLE_NAMES else load_image(name, size)


def load_photo(name: str, size: int) -> torch.Tensor:
    """A photo at the job's size; decoded once per process and size (the grid reuses each photo many times)."""
    return _load(name, size).clone()
