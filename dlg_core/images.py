"""Photos in, tensors out: the bundled sample photos, and safe decoding of photos a student uploads.

Every upload is untrusted: anything we refuse raises BadInputError with a sentence a student can act on,
never a Pillow traceback. Photos are private, so nothing here writes to disk or logs.
"""

from __future__ import annotations

import functools
import io
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from . import limits
from .errors import BadInputError

CLASS_NAMES = ("cat", "dog")
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "samples"


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str
    animal: str
    title: str
    credit: str
    needs_credit: bool = False

    @property
    def label(self) -> int:
        return CLASS_NAMES.index(self.animal)


# Provenance and licences of each photo are in assets/samples/SOURCES.md.
SAMPLES: tuple[Sample, ...] = (
    Sample("cat_chelsea", "cat_chelsea.jpg", "cat", "Chelsea the tabby",
           "CC0, Stéfan van der Walt (scikit-image)"),
    Sample("cat_grey_longhair", "cat_grey_longhair.jpg", "cat", "Grey long-haired cat",
           "CC0, a Pexels contributor (via Debian puzzle-jigsaw)"),
    Sample("cat_kitten_yarn", "cat_kitten_yarn.jpg", "cat", "Kitten with yarn",
           "Public domain, Loliloli (Wikimedia Commons)"),
    Sample("cat_ginger_kitten", "cat_ginger_kitten.jpg", "cat", "Ginger kitten",
           "Ginger kitten: photo by GalgenTX, CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/), "
           "cropped and colour-adjusted by the GCompris team, resized.",
           needs_credit=True),
    Sample("dog_german_shepherd", "dog_german_shepherd.jpg", "dog", "German shepherd",
           "Public domain, Hans Kemperman (Wikimedia Commons)"),
    Sample("dog_pekingese", "dog_pekingese.jpg", "dog", "Pekingese-type dog",
           "Apache-2.0 AND BSD-3-Clause, OpenCV contributors"),
)


def sample(name: str) -> Sample:
    for s in SAMPLES:
        if s.name == name:
            return s
    raise BadInputError(f"Unknown sample {name!r}: choose one of {', '.join(s.name for s in SAMPLES)}.")


def sample_path(name: str) -> Path:
    return ASSETS_DIR / sample(name).filename


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image
    notes: tuple[str, ...] = ()


# Only decoders for photo formats: Pillow's others (EPS runs Ghostscript, for one) are needless attack surface.
_PHOTO_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"mif2", b"msf1", b"avif", b"avis")


def _unreadable_message(data: bytes) -> str:
    # Name the format when we can recognise it, so the student knows what to export instead.
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<svg", b"<?xml")):
        return "SVG drawings are not supported here: export it as a PNG or JPEG photo."
    if data.startswith(b"%PDF"):
        return "PDF documents are not supported here: export the picture as a JPEG or PNG."
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        if data[8:12] in (b"avif", b"avis") and "AVIF" in Image.OPEN:
            return ("This AVIF photo could not be decoded here (damaged, or a kind of AVIF this server cannot "
                    "read): export it as JPEG.")
        return ("HEIC/HEIF photos (an iPhone's usual format) cannot be read here: export it as JPEG, or set the "
                "iPhone's Camera > Formats to Most Compatible.")
    return "This file could not be read as an image: is it a JPEG/PNG/WebP/GIF/BMP photo?"


_TOO_BIG = "The file is too big: the limit is {}, so shrink or compress the photo first."


def _mb(n: float) -> str:
    return f"{n / 2**20:.3g} MB"


def _read(source: bytes | str | os.PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(os.fspath(source))
        if not path.is_file():
            raise BadInputError(f"File not found: {path}")
        try:
            if path.stat().st_size > limits.MAX_FILE_BYTES:  # refuse a huge file before reading it into memory
                raise BadInputError(_TOO_BIG.format(_mb(limits.MAX_FILE_BYTES)))
            data = path.read_bytes()
        except OSError:
            raise BadInputError(f"Could not read the file {path}: check that you may open it.") from None
    if not data:
        raise BadInputError("The file is empty: pick a photo.")
    if len(data) > limits.MAX_FILE_BYTES:
        raise BadInputError(_TOO_BIG.format(_mb(limits.MAX_FILE_BYTES)))
    return data


def _check_size(w: int, h: int) -> None:
    if w * h > limits.MAX_PIXELS:
        raise BadInputError(f"The image is {w}x{h} pixels, more than the {limits.MAX_PIXELS / 1e6:g} megapixels "
                            "accepted: shrink it first.")
    if min(w, h) < limits.MIN_SIDE:
        raise BadInputError(f"The image is {w}x{h} pixels: each side must be at least {limits.MIN_SIDE} pixels.")
    if max(w, h) > limits.MAX_ASPECT * min(w, h):
        raise BadInputError(f"The image is {w}x{h} pixels, too long and thin: the long side may be at most "
                            f"{limits.MAX_ASPECT} times the short side.")


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow's own convert() clips these to 0..255, which turns most 16-bit photos white.
        a = np.asarray(img).astype(np.float64)
        if img.mode == "F":
            a = np.nan_to_num(a)
            lo, hi = (0.0, 1.0) if a.min() >= 0 and a.max() <= 1 else (a.min(), a.max())
            a = (a - lo) / max(hi - lo, 1e-12) * 255
            notes.append("Floating-point image scaled to 8 bits.")
        else:
            a = np.clip(a, 0, 65535) / 257  # 65535 -> 255, 32768 -> ~127.5: the full 16-bit range
            notes.append("16-bit image reduced to 8 bits.")
        return Image.fromarray(np.round(a).astype(np.uint8)).convert("RGB")
    if img.mode == "CMYK":
        notes.append("CMYK converted to RGB.")
    if img.mode in ("1", "L", "LA", "La"):
        notes.append("Black-and-white photo: its grey is copied into red, green and blue.")
    if "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info:
        rgba = img.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            # The victim model sees RGB only; white is what a viewer shows behind a transparent sticker.
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            notes.append("Transparency was flattened onto white.")
            return Image.alpha_composite(white, rgba).convert("RGB")
        return rgba.convert("RGB")
    return img.convert("RGB")


def decode_image(source: bytes | str | os.PathLike) -> DecodedImage:
    """Read a photo (bytes or a path) into an upright RGB image, refusing anything unsafe or unreadable."""
    data = _read(source)
    notes: list[str] = []
    img = None
    Image.init()
    formats = [f for f in _PHOTO_FORMATS if f in Image.OPEN]
    try:
        # Locally, so Pillow's "maybe a bomb" warning becomes a refusal without touching global filters;
        # its other warnings (odd EXIF, palettes) are about the file, not for the server's log.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=formats)
            _check_size(*img.size)  # before load(): refuse a bomb from its header, not after decoding it
            if getattr(img, "is_animated", False):  # not n_frames: that walks every frame of a long GIF
                notes.append("Animated image: only the first frame is used.")
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a damaged EXIF block should not cost the student the photo
                orientation = 1
            img.load()  # decoding happens here, so truncated files fail inside this try
            if orientation in range(2, 9):
                img = ImageOps.exif_transpose(img)
                notes.append("Rotated upright from its EXIF orientation.")
            rgb = _to_rgb(img, notes)
            # Only the pixels go on: EXIF (a phone's GPS position, its serial number), text chunks and colour
            # profiles stay behind, so nothing else of the file can reach a screen, a download or a log.
            rgb.info = {}
    except BadInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInputError(f"The image has far more than the {limits.MAX_PIXELS / 1e6:g} megapixels accepted: "
                            "shrink it first.") from None
    except Image.UnidentifiedImageError:
        raise BadInputError(_unreadable_message(data)) from None
    except Exception:  # noqa: BLE001 - Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error...
        if img is None:  # not even the header could be parsed
            raise BadInputError(_unreadable_message(data)) from None
        what = f"This {img.format} file" if img.format else "This file"
        raise BadInputError(f"{what} is damaged or incomplete (cut short?) and could not be read as an image: "
                            "try exporting or downloading it again.") from None
    return DecodedImage(rgb, tuple(notes))


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Centre-crop to a square and resize to size x size: a float32 1x3xHxW tensor in [0, 1]."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) \
            or not limits.MIN_SIZE <= size <= limits.MAX_SIZE:
        raise BadInputError(f"The size must be a whole number from {limits.MIN_SIZE} to {limits.MAX_SIZE} "
                            f"pixels, not {size!r}.")
    size = int(size)
    if image.mode != "RGB":
        image = _to_rgb(image, [])
    # Lanczos avoids aliasing when a big photo shrinks to 32 px; reducing_gap keeps huge photos fast.
    w, h = image.size
    side = min(w, h)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    small = image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    array = np.asarray(small, dtype=np.float32) / 255.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).unsqueeze(0)


def load_image(source: bytes | str | os.PathLike, size: int) -> torch.Tensor:
    return to_tensor(decode_image(source).image, size)


def load_sample(name: str, size: int) -> torch.Tensor:
    return load_image(sample_path(name), size)


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """A 1x3xHxW or 3xHxW tensor in [0, 1] (clamped) as an HxWx3 uint8 array."""
    t = t.detach().to("cpu", torch.float32)
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a 1x3xHxW or 3xHxW tensor, got shape {tuple(t.shape)}")
    t = torch.nan_to_num(t, nan=0.0).clamp(0, 1)
    return (t * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray(tensor_to_numpy(t))


@functools.lru_cache(maxsize=8)
def _pool(size: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    return torch.cat([load_sample(s.name, size) for s in SAMPLES]), tuple(s.label for s in SAMPLES)


def public_pool(size: int, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The photos a MixUp client mixes its own with (``defences.mix_inputs``): the bundled samples, public (every
    server has them too), with their cat/dog labels as probability vectors over ``classes``."""
    images, labels = _pool(size)
    return images.clone(), torch.nn.functional.one_hot(torch.tensor(labels), classes).float()
