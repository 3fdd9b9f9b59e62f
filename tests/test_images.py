"""Tests for dlg_core.images: every bad input is generated here, in memory or in tmp_path, never committed."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from dlg_core import images, limits
from dlg_core.errors import BadInputError
from dlg_core.images import (
    CLASS_NAMES,
    SAMPLES,
    decode_image,
    load_image,
    load_sample,
    sample,
    sample_path,
    tensor_to_numpy,
    tensor_to_pil,
    to_tensor,
)

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise(w: int, h: int) -> Image.Image:
    # Noise does not compress, so cutting the file in half really cuts into the pixel data.
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def blank_png(w: int, h: int) -> bytes:
    """A valid all-black 1-bit PNG of any size, built row by row so a 20000x20000 one costs kilobytes of memory."""
    z = zlib.compressobj(9)
    row = bytes(1 + (w + 7) // 8)  # filter byte 0, then packed bits
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def refused(source, *words: str) -> str:
    with pytest.raises(BadInputError) as info:
        decode_image(source)
    message = str(info.value)
    for word in words:
        assert word.lower() in message.lower(), message
    assert "PIL" not in message and "Traceback" not in message
    return message


def rgb_at(t: torch.Tensor, y: int, x: int) -> np.ndarray:
    return t[0, :, y, x].numpy()


# ---------------------------------------------------------------- refusals

def test_empty_bytes_and_empty_file(tmp_path):
    refused(b"", "empty")
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    refused(path, "empty")


def test_random_bytes():
    refused(random.Random(0).randbytes(4096), "could not be read as an image", "JPEG/PNG")


def test_plain_text(tmp_path):
    path = tmp_path / "notes.jpg"  # a misleading extension must not matter
    path.write_text("Dear diary, today I uploaded a text file.\n" * 20)
    refused(path, "could not be read as an image")
    refused(str(path), "could not be read as an image")


@pytest.mark.parametrize("svg", [
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
])
def test_svg(svg):
    refused(svg, "SVG", "PNG")


def test_pdf():
    refused(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n", "PDF")


def test_fake_heic():
    refused(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200), "HEIC", "export it as JPEG")


def test_truncated_png():
    data = encode(noise(64, 64), "PNG")
    refused(data[: len(data) // 2], "damaged", "PNG")


def test_truncated_jpeg():
    data = encode(noise(64, 64), "JPEG", quality=95)
    refused(data[: len(data) * 6 // 10], "damaged", "JPEG")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # refusing relies on Pillow's default


def test_tiny_image():
    refused(encode(Image.new("RGB", (1, 1), RED), "PNG"), "1x1", "at least")


def test_long_strip():
    refused(encode(Image.new("RGB", (10000, 10), RED), "PNG"), "10000x10", "long and thin")


@pytest.mark.filterwarnings("error")  # no DecompressionBombWarning may escape either
@pytest.mark.parametrize("w,h", [
    (8000, 6000),  # over our MAX_PIXELS, under Pillow's guard: our own check refuses it
    (10000, 10000),  # Pillow's DecompressionBombWarning, turned into a refusal
    (20000, 20000),  # Pillow's DecompressionBombError, turned into a refusal
])
def test_too_many_pixels(w, h, monkeypatch):
    data = blank_png(w, h)
    assert len(data) < 100_000  # a bomb: tiny on disk, gigantic once decoded
    filters_before = list(warnings.filters)

    def no_decoding(self):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    refused(data, "megapixels")
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard stays on


def test_file_over_size_limit(tmp_path, monkeypatch):
    data = encode(noise(64, 64), "PNG")
    decode_image(data)  # fine at the real limit
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", len(data) - 1)
    refused(data, "too big", "limit")
    path = tmp_path / "big.png"
    path.write_bytes(data)
    refused(path, "too big", "limit")


def test_missing_path(tmp_path):
    refused(tmp_path / "no_such_photo.jpg", "File not found", "no_such_photo.jpg")


def test_bad_size_refused():
    img = Image.new("RGB", (32, 32), RED)
    for size in (limits.MIN_SIZE - 1, limits.MAX_SIZE + 1, 0, -32, 32.0, "32", None, True):
        with pytest.raises(BadInputError, match="whole number"):
            to_tensor(img, size)
    assert to_tensor(img, np.int64(limits.MIN_SIZE)).shape == (1, 3, limits.MIN_SIZE, limits.MIN_SIZE)
    assert to_tensor(img, limits.MAX_SIZE).shape == (1, 3, limits.MAX_SIZE, limits.MAX_SIZE)


# ---------------------------------------------------------------- conversions

def check_tensor(t: torch.Tensor, size: int) -> None:
    assert t.shape == (1, 3, size, size) and t.dtype == torch.float32
    assert 0.0 <= t.min().item() and t.max().item() <= 1.0


def halves(mode: str, left, right, size=(32, 32), **info) -> Image.Image:
    img = Image.new(mode, size, left)
    img.paste(Image.new(mode, (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    img.info.update(info)
    return img


def test_rgba_transparency_becomes_white():
    img = halves("RGBA", (0, 0, 255, 0), (0, 0, 255, 255))
    img.paste((0, 0, 0, 128), (0, 0, 32, 4))  # a half-transparent black strip
    decoded = decode_image(encode(img, "PNG"))
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((2, 16)) == WHITE
    assert decoded.image.getpixel((30, 16)) == BLUE
    assert all(abs(c - 127) <= 1 for c in decoded.image.getpixel((2, 2)))
    assert any("Transparency" in note for note in decoded.notes)
    t = load_image(encode(img, "PNG"), 16)
    check_tensor(t, 16)
    np.testing.assert_allclose(rgb_at(t, 12, 1), [1, 1, 1], atol=0.02)
    np.testing.assert_allclose(rgb_at(t, 12, 14), [0, 0, 1], atol=0.02)


def test_opaque_rgba_has_no_transparency_note():
    decoded = decode_image(encode(Image.new("RGBA", (16, 16), (1, 2, 3, 255)), "PNG"))
    assert decoded.image.getpixel((0, 0)) == (1, 2, 3) and decoded.notes == ()


def test_palette_with_transparency():
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)  # index 0 green (transparent), 1 red
    img.paste(1, (16, 0, 32, 32))
    data = encode(img, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    decoded = decode_image(data)
    assert decoded.image.getpixel((2, 16)) == WHITE
    assert decoded.image.getpixel((30, 16)) == RED
    check_tensor(load_image(data, 16), 16)


def test_cmyk_jpeg():
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    decoded = decode_image(data)
    r, g, b = decoded.image.getpixel((16, 16))
    assert r > 240 and g < 15 and b < 15
    assert any("CMYK" in note for note in decoded.notes)
    t = load_image(data, 16)
    check_tensor(t, 16)
    np.testing.assert_allclose(rgb_at(t, 8, 8), [1, 0, 0], atol=0.06)


def test_16bit_png_is_scaled_not_clipped():
    arr = np.full((32, 32), 65535, dtype=np.uint16)
    arr[:, 16:] = 32768
    data = encode(Image.fromarray(arr), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    decoded = decode_image(data)
    assert decoded.image.getpixel((2, 16)) == WHITE
    assert decoded.image.getpixel((30, 16)) == (128, 128, 128)
    assert any("16-bit" in note for note in decoded.notes)
    t = load_image(data, 16)
    check_tensor(t, 16)
    np.testing.assert_allclose(rgb_at(t, 8, 1), [1, 1, 1], atol=0.02)
    np.testing.assert_allclose(rgb_at(t, 8, 14), [0.5, 0.5, 0.5], atol=0.02)


def test_grayscale_is_gray():
    img = Image.linear_gradient("L").resize((64, 48))
    t = load_image(encode(img, "PNG"), 32)
    check_tensor(t, 32)
    assert torch.equal(t[0, 0], t[0, 1]) and torch.equal(t[0, 1], t[0, 2])
    assert t[0, 0, -1].mean() > t[0, 0, 0].mean() + 0.5  # the gradient survives: dark top, light bottom


def test_animated_gif_uses_first_frame():
    red, blue = Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)
    data = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    decoded = decode_image(data)
    assert decoded.image.getpixel((16, 16)) == RED
    assert any("first frame" in note for note in decoded.notes)
    np.testing.assert_allclose(rgb_at(load_image(data, 16), 8, 8), [1, 0, 0], atol=0.02)


@pytest.mark.parametrize("orientation,top,bottom", [(6, RED, BLUE), (8, BLUE, RED)])
def test_exif_rotation(orientation, top, bottom):
    img = halves("RGB", RED, BLUE, size=(64, 32))  # landscape: left red, right blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(img, "JPEG", exif=exif, quality=95)
    decoded = decode_image(data)
    assert decoded.image.size == (32, 64)  # turned portrait
    for y, colour in ((4, top), (60, bottom)):  # JPEG blurs colours a little
        got = decoded.image.getpixel((16, y))
        assert np.abs(np.subtract(got, colour)).max() <= 12, (y, got)
    assert any("EXIF" in note for note in decoded.notes)
    t = load_image(data, 16)  # the centre square keeps the top colour above the bottom one
    np.testing.assert_allclose(rgb_at(t, 1, 8), np.array(top) / 255, atol=0.06)
    np.testing.assert_allclose(rgb_at(t, 14, 8), np.array(bottom) / 255, atol=0.06)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr",
                                  "I;16", "I;16B", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    img = Image.new(mode, (40, 24))
    t = to_tensor(img, 16)
    check_tensor(t, 16)


def test_plain_jpeg_has_no_notes_and_is_rgb():
    decoded = decode_image(bytearray(encode(Image.new("RGB", (40, 30), RED), "JPEG")))
    assert decoded.image.mode == "RGB" and decoded.image.size == (40, 30) and decoded.notes == ()


# ---------------------------------------------------------------- samples

def test_sample_catalogue():
    assert len(SAMPLES) == 6 and CLASS_NAMES == ("cat", "dog")
    assert sum(s.animal == "cat" for s in SAMPLES) == 4
    assert sum(s.animal == "dog" for s in SAMPLES) == 2
    assert len({s.name for s in SAMPLES}) == 6
    for s in SAMPLES:
        assert sample_path(s.name).is_file() and sample_path(s.name).parent == images.ASSETS_DIR
        assert s.label == CLASS_NAMES.index(s.animal) and s.title and s.credit
        assert sample(s.name) is s
    kitten = sample("cat_ginger_kitten")
    assert kitten.needs_credit and "CC BY 2.0" in kitten.credit and "GalgenTX" in kitten.credit
    assert kitten.credit in (images.ASSETS_DIR / "SOURCES.md").read_text().replace("\n", " ")
    assert [s.name for s in SAMPLES if s.needs_credit] == ["cat_ginger_kitten"]
    assert (images.ASSETS_DIR / "licenses").is_dir()


def test_unknown_sample():
    with pytest.raises(BadInputError, match="cat_chelsea"):
        sample("cat_garfield")


@pytest.mark.parametrize("name", [s.name for s in SAMPLES])
@pytest.mark.parametrize("size", [32, 64])
def test_samples_load(name, size):
    t = load_sample(name, size)
    check_tensor(t, size)
    assert t.std() > 0.05  # a real photo, not a blank
    array = tensor_to_numpy(t)
    assert array.shape == (size, size, 3) and array.dtype == np.uint8
    np.testing.assert_array_equal(array, tensor_to_numpy(t[0]))
    assert np.abs(array.astype(np.float32) / 255 - t[0].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6


def test_tensor_to_numpy_clamps_and_rounds():
    t = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 0.2]).view(1, 3, 1, 2)
    array = tensor_to_numpy(t)
    assert array.shape == (1, 2, 3) and array.dtype == np.uint8
    assert array[0, :, 0].tolist() == [0, 0] and array[0, :, 1].tolist() == [128, 255]
    assert array[0, :, 2].tolist() == [255, 51]
    pil = tensor_to_pil(t)
    assert pil.mode == "RGB" and pil.size == (2, 1)
    with pytest.raises(ValueError):
        tensor_to_numpy(torch.zeros(2, 3, 4, 4))
