"""Photos the attacks were never tuned on, kept apart from the ones they are tuned on.

A figure measured on the photos an attack was tuned on says little about a stranger's photo, so the project
keeps two sets, both made by code from photos that scikit-image ships inside its wheel (no download):

- ``tune``: the six bundled cats and dogs of ``assets/samples`` plus three scikit-image pictures. Tune here.
- ``report``: fourteen other photos, none a cat or a dog (a face, objects, space, a retina, a cell, tissue,
  textures, a horse's silhouette, coins, a photographer). Report figures from these only.

Each entry names its source and licence (all CC0 or public domain, as scikit-image's own docstrings in
``skimage/data/_fetchers.py`` state). ``python -m dlg_core photos --set report --out DIR`` writes a set as
PNG files, for ``experiment --images DIR`` and ``bench --images DIR``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import BadInputError
from .images import SAMPLES, decode_image, sample_path


@dataclass(frozen=True)
class SetPhoto:
    name: str
    source: str  # scikit-image's loader, or "assets/samples/<file>"
    crop: tuple[float, float, float] | None  # (left, top, side) as fractions of the photo's short side; None: centre
    what: str
    licence: str


_SK = "scikit-image data"
REPORT: tuple[SetPhoto, ...] = (
    SetPhoto("astronaut_face", "astronaut", (0.30, 0.05, 0.45), "a face (Eileen Collins)",
             f"public domain, NASA ({_SK})"),
    SetPhoto("astronaut_flag", "astronaut", (0.0, 0.0, 0.5), "a flag and a helmet", f"public domain, NASA ({_SK})"),
    SetPhoto("coffee", "coffee", None, "a cup of coffee", f"CC0, Rachel Michetti ({_SK})"),
    SetPhoto("rocket", "rocket", None, "a rocket on its launch pad", f"public domain, SpaceX ({_SK})"),
    SetPhoto("hubble", "hubble_deep_field", None, "galaxies (Hubble deep field)", f"public domain, NASA ({_SK})"),
    SetPhoto("retina", "retina", None, "a human retina", f"CC0, Mikael Häggström ({_SK})"),
    SetPhoto("ihc", "immunohistochemistry", None, "stained tissue (microscope)",
             f"no known copyright restrictions ({_SK})"),
    SetPhoto("brick", "brick", None, "a brick wall (texture)", f"CC0, CC0Textures ({_SK})"),
    SetPhoto("grass", "grass", None, "grass (texture)", f"CC0, linolafett ({_SK})"),
    SetPhoto("gravel", "gravel", None, "gravel (texture)", f"CC0, CC0Textures ({_SK})"),
    SetPhoto("cell", "cell", None, "a living cell (microscope, black and white)", f"CC0 ({_SK})"),
    SetPhoto("camera", "camera", None, "a photographer (black and white)", f"CC0, Lav Varshney ({_SK})"),
    SetPhoto("coins", "coins", None, "old coins (black and white)", f"no known restrictions, Brooklyn Museum ({_SK})"),
    SetPhoto("horse", "horse", None, "a horse's silhouette (drawing)", f"CC0, Andreas Preuss ({_SK})"),
)
TUNE: tuple[SetPhoto, ...] = tuple(
    SetPhoto(s.name, f"assets/samples/{s.filename}", None, s.title, s.credit) for s in SAMPLES
) + (
    SetPhoto("logo", "logo", None, "scikit-image's logo (drawing)", f"BSD-3-Clause, scikit-image ({_SK})"),
    SetPhoto("text", "text", None, "printed text", f"public domain ({_SK})"),
    SetPhoto("astronaut_body", "astronaut", (0.5, 0.4, 0.5), "a spacesuit", f"public domain, NASA ({_SK})"),
)
SETS = {"report": REPORT, "tune": TUNE}


def _array(source: str) -> np.ndarray:
    if source.startswith("assets/"):
        name = Path(source).name
        return np.asarray(decode_image(sample_path(next(s.name for s in SAMPLES if s.filename == name))).image)
    from skimage import data  # lazily: only this module needs it

    array = getattr(data, source)()
    return array


def _rgb(array: np.ndarray) -> Image.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        array = np.clip(array * (255 if array.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3]).convert("RGB")


def photo(entry: SetPhoto, side: int = 128) -> Image.Image:
    """The photo as a square RGB image of ``side`` pixels (cropped as the entry says, else centred)."""
    image = _rgb(_array(entry.source))
    w, h = image.size
    short = min(w, h)
    if entry.crop is None:
        box = ((w - short) / 2, (h - short) / 2, (w + short) / 2, (h + short) / 2)
    else:
        left, top, frac = entry.crop
        box = (left * short, top * short, (left + frac) * short, (top + frac) * short)
    return image.resize((side, side), Image.Resampling.LANCZOS, box=box)


def photos(which: str = "report", side: int = 128) -> dict[str, Image.Image]:
    if which not in SETS:
        raise BadInputError(f"Unknown photo set {which!r}: choose one of {', '.join(SETS)}.")
    return {entry.name: photo(entry, side) for entry in SETS[which]}


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_set(which: str, folder: str | Path, side: int = 128) -> list[Path]:
    """Write a set as ``NAME.png`` files plus a SOURCES.md, for the CLI's ``--images FOLDER``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in photos(which, side).items():
        path = folder / f"{name}.png"
        path.write_bytes(png_bytes(image))
        written.append(path)
    lines = ["| photo | what | source | licence |", "|---|---|---|---|"]
    lines += [f"| {e.name} | {e.what} | {e.source} | {e.licence} |" for e in SETS[which]]
    (folder / "SOURCES.md").write_text("\n".join(lines) + "\n")
    return written


def distinct_crops(count: int, side: int, seed: int = 0, which: str = "report") -> np.ndarray:
    """``count`` distinct square crops (count x side x side x 3, uint8) cut at random from a set's photos.

    For large batches (a malicious server's whole batch): each crop is a different region at a random scale.
    """
    rng = np.random.default_rng(seed)
    sources = [_rgb(_array(e.source)) for e in SETS[which]]
    out = np.empty((count, side, side, 3), dtype=np.uint8)
    for i in range(count):
        image = sources[i % len(sources)]
        w, h = image.size
        crop = int(min(w, h) * rng.uniform(0.3, 0.9))
        left, top = int(rng.integers(0, w - crop + 1)), int(rng.integers(0, h - crop + 1))
        out[i] = np.asarray(image.resize((side, side), Image.Resampling.LANCZOS,
                                         box=(left, top, left + crop, top + crop)))
    return out
