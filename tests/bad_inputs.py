"""The bad-input corpus: every file, config and link a crowd of students may throw at the demo, made by code.

Nothing here is a committed binary: each case builds its bytes in memory when asked (the tests write them to
pytest's tmp_path for the command line). A case lists the words its message must contain, so that the UI
test, the CLI test and the report all read the same table:

- ``IMAGE_CASES``: uploads. Refused ones get a BadInputError message; accepted odd ones are decoded and say
  what was done to them (a note under the photo).
- ``CONFIG_CASES``: config JSON files for ``python -m dlg_core run --config FILE``.
- ``LINK_CASES``: a shared link's query parameters with the same faults.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dlg_core import limits

RED, BLUE = (255, 0, 0), (0, 0, 255)


@dataclass(frozen=True)
class ImageCase:
    name: str
    filename: str  # as a student's phone or laptop names it
    make: Callable[[], bytes]
    words: tuple[str, ...]  # in the refusal, or in the note of an accepted photo
    accepted: bool = False  # a real photo in an odd form: decoded, with a note saying what was done
    shown_size: tuple[int, int] | None = None  # accepted: width x height of the photo as the app shows it

    def data(self) -> bytes:
        return self.make()


@dataclass(frozen=True)
class TextCase:
    name: str
    text: str | bytes | dict  # a dict is written as JSON
    words: tuple[str, ...]

    def data(self) -> bytes:
        if isinstance(self.text, dict):
            return json.dumps(self.text).encode()
        return self.text if isinstance(self.text, bytes) else self.text.encode()


# ------------------------------------------------------------------------------------------------ image bytes


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    """Noise does not compress, so cutting its file in half really cuts into the pixel data."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def blank_png(w: int, h: int) -> bytes:
    """A valid black 1-bit PNG of any size, built row by row: a 20000x20000 one is a few kilobytes."""
    z = zlib.compressobj(9)
    row = bytes(1 + (w + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def halves(mode: str, left, right, size=(64, 48)) -> Image.Image:
    img = Image.new(mode, size, left)
    img.paste(Image.new(mode, (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return img


def _truncated(fmt: str, **kwargs) -> bytes:
    data = encode(noise(64, 64), fmt, **kwargs)
    return data[: len(data) * 6 // 10]


def _rgba() -> bytes:
    return encode(halves("RGBA", (0, 0, 255, 0), (0, 0, 255, 255)), "PNG")


def _palette_with_transparency() -> bytes:
    img = Image.new("P", (64, 48), 0)
    img.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)  # index 0 green (transparent), 1 red
    img.paste(1, (32, 0, 64, 48))
    return encode(img, "PNG", transparency=0)


def _png16() -> bytes:
    arr = np.full((48, 64), 65535, dtype=np.uint16)
    arr[:, 32:] = 32768
    return encode(Image.fromarray(arr), "PNG")


def _animated_gif() -> bytes:
    red, blue = Image.new("RGB", (64, 48), RED), Image.new("RGB", (64, 48), BLUE)
    return encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": a phone held upright
    return encode(halves("RGB", RED, BLUE, size=(64, 48)), "JPEG", exif=exif, quality=95)


def _over_upload_limit() -> bytes:
    head = encode(noise(64, 64), "JPEG")
    return head + bytes(limits.MAX_FILE_BYTES + 1 - len(head))


def _fake_heic() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)


def _damaged_avif() -> bytes:
    return _truncated("AVIF")


IMAGE_CASES: tuple[ImageCase, ...] = (
    ImageCase("zero_bytes", "empty.jpg", lambda: b"", ("empty",)),
    ImageCase("random_bytes", "random.png", lambda: random.Random(0).randbytes(4096),
              ("could not be read as an image",)),
    ImageCase("truncated_png", "cut.png", lambda: _truncated("PNG"), ("PNG", "damaged or incomplete")),
    ImageCase("truncated_jpeg", "cut.jpg", lambda: _truncated("JPEG", quality=95), ("JPEG", "damaged or incomplete")),
    ImageCase("text_file", "notes.txt", lambda: ("Dear diary, I uploaded a text file.\n" * 20).encode(),
              ("could not be read as an image",)),
    ImageCase("svg", "drawing.svg",
              lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>',
              ("SVG", "export it as a PNG or JPEG")),
    ImageCase("pdf", "scan.pdf", lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
              ("PDF", "export the picture as a JPEG or PNG")),
    ImageCase("heic", "IMG_0042.heic", _fake_heic, ("HEIC", "export it as JPEG")),
    ImageCase("avif_undecodable", "photo.avif", _damaged_avif, ("AVIF", "could not be decoded", "export it as JPEG")),
    ImageCase("one_pixel", "dot.png", lambda: encode(Image.new("RGB", (1, 1), RED), "PNG"),
              ("1x1", f"at least {limits.MIN_SIDE} pixels")),
    ImageCase("decompression_bomb", "bomb.png", lambda: blank_png(20000, 20000),
              ("megapixels", "shrink it first")),
    ImageCase("wide_strip", "strip.png", lambda: encode(Image.new("RGB", (10000, 10), RED), "PNG"),
              ("10000x10", "too long and thin")),
    ImageCase("over_upload_limit", "huge.jpg", _over_upload_limit, ("too big", f"{limits.MAX_UPLOAD_MB} MB")),
    # Real photos in odd forms: taken, with a note.
    ImageCase("rgba_transparency", "sticker.png", _rgba, ("Transparency was flattened onto white",),
              accepted=True, shown_size=(64, 48)),
    ImageCase("palette_transparency", "icon.png", _palette_with_transparency,
              ("Transparency was flattened onto white",), accepted=True, shown_size=(64, 48)),
    ImageCase("cmyk_jpeg", "print.jpg", lambda: encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG"),
              ("CMYK converted to RGB",), accepted=True, shown_size=(64, 48)),
    ImageCase("png_16_bit", "scan16.png", _png16, ("16-bit image reduced to 8 bits",), accepted=True,
              shown_size=(64, 48)),
    ImageCase("grayscale", "grey.jpg", lambda: encode(Image.linear_gradient("L").resize((64, 48)), "JPEG"),
              ("Black-and-white photo",), accepted=True, shown_size=(64, 48)),
    ImageCase("animated_gif", "cat.gif", _animated_gif, ("Animated image: only the first frame is used",),
              accepted=True, shown_size=(64, 48)),
    ImageCase("exif_rotated", "portrait.jpg", _exif_rotated, ("Rotated upright from its EXIF orientation",),
              accepted=True, shown_size=(48, 64)),
)
REFUSED = tuple(c for c in IMAGE_CASES if not c.accepted)
ACCEPTED = tuple(c for c in IMAGE_CASES if c.accepted)


def good_jpeg(seed: int = 0) -> bytes:
    return encode(noise(64, 48, seed), "JPEG")


# ------------------------------------------------------------------------------------------------ configs

CONFIG_CASES: tuple[TextCase, ...] = (
    TextCase("not_json", '{size: 16, "steps": 5', ("not valid JSON",)),
    TextCase("empty_file", "", ("not valid JSON",)),
    TextCase("not_utf8", b"\xff\xfe\x00\xd8garbage", ("not valid JSON",)),
    TextCase("deeply_nested", "[" * 5000 + "]" * 5000, ("not valid JSON",)),
    TextCase("json_list", "[16, 5]", ("must be a JSON object",)),
    TextCase("wrong_type_steps", {"steps": "many"}, ("'steps' must be a whole number", "'many'")),
    TextCase("wrong_type_lr", {"lr": "fast"}, ("'lr' must be a finite number",)),
    TextCase("wrong_type_bool", {"redraw_weak_victim": "yes"}, ("must be true or false",)),
    TextCase("wrong_type_text", {"attack": 3}, ("'attack' must be text",)),
    TextCase("float_for_int", {"size": 16.5}, ("'size' must be a whole number",)),
    TextCase("nan", '{"lr": NaN}', ("finite number",)),
    TextCase("unknown_key", {"colour": "red"}, ("Unknown setting(s) 'colour'", "known are")),
    TextCase("many_unknown_keys", {f"k{i}": i for i in range(200)}, ("Unknown setting(s)", "and 197 more")),
    TextCase("steps_1e9", {"steps": 10**9}, ("'steps' must be between 1 and 5000", "1000000000")),
    TextCase("size_4096", {"size": 4096}, ("'size' must be between 16 and 128", "4096")),
    TextCase("batch_1000", {"batch": 1000}, ("'batch' is not a setting", f"at most {limits.MAX_BATCH}")),
    TextCase("classes_1e6", {"classes": 10**6}, ("'classes' must be between 2 and 1000",)),
    TextCase("lr_1e300", {"lr": 1e300}, ("'lr' must be between",)),
    TextCase("max_seconds_1e9", {"max_seconds": 1e9}, ("'max_seconds' must be between 0.1 and 300",)),
    TextCase("negative_seed", {"seed": -1}, ("'seed' must be between 0",)),
    TextCase("number_400_digits", '{"steps": 1' + "0" * 400 + "}", ("'steps' must be between 1 and 5000",)),
    TextCase("unknown_attack", {"attack": "magic\nsecond line"}, ("Unknown attack", "choose one of")),
    TextCase("too_long", {"attack": "idlg", "padding": "x" * (limits.MAX_CONFIG_BYTES + 1)}, ("too long",)),
)

# ------------------------------------------------------------------------------------------------ links

LINK_CASES: tuple[TextCase, ...] = (
    TextCase("wrong_type_steps", {"steps": "many"}, ("'steps' has an unreadable value 'many'",)),
    TextCase("wrong_type_lr", {"lr": "fast"}, ("'lr' has an unreadable value",)),
    TextCase("wrong_type_bool", {"redraw_weak_victim": "maybe"}, ("'redraw_weak_victim' has an unreadable value",)),
    TextCase("float_for_int", {"seed": "1.5"}, ("'seed' has an unreadable value",)),
    TextCase("empty_value", {"steps": ""}, ("'steps' has an unreadable value",)),
    TextCase("nan", {"lr": "nan"}, ("'lr' must be a finite number",)),
    TextCase("infinity", {"max_seconds": "inf"}, ("'max_seconds' must be a finite number",)),
    TextCase("unknown_key", {"colour": "red"}, ("Unknown setting(s) 'colour'",)),
    TextCase("batch_1000", {"batch": "1000"}, ("link's batch", "from 1 to 64")),
    TextCase("steps_1e9", {"steps": "1000000000"}, ("'steps' must be between 1 and 5000", "1000000000")),
    TextCase("size_4096", {"size": "4096"}, ("'size' must be between 16 and 128", "4096")),
    TextCase("classes_1e6", {"classes": "1000000"}, ("'classes' must be between 2 and 1000",)),
    TextCase("lr_1e300", {"lr": "1e300"}, ("'lr' must be between",)),
    TextCase("max_seconds_1e9", {"max_seconds": "1e9"}, ("'max_seconds' must be between 0.1 and 300",)),
    TextCase("negative_seed", {"seed": "-1"}, ("'seed' must be between 0",)),
    TextCase("unknown_attack", {"attack": "magic"}, ("Unknown attack 'magic'",)),
    TextCase("control_characters", {"model": "lenet\n<script>"}, ("Unknown model",)),
    TextCase("unknown_sample", {"sample": "cat_unknown"}, ("Unknown sample 'cat_unknown'",)),
    TextCase("path_as_sample", {"sample": "../../../etc/passwd"}, ("Unknown sample",)),
    TextCase("label_not_a_number", {"sample": "cat_chelsea", "label": "cat"}, ("label 'cat' is not a whole number",)),
    TextCase("label_out_of_range", {"sample": "cat_chelsea", "label": "7"}, ("label must be between 0 and 1",)),
    TextCase("too_long", {"sample": "cat_chelsea", "padding": "x" * (limits.MAX_CONFIG_BYTES + 1)}, ("too long",)),
)
