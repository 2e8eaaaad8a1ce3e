import io

import numpy as np
import pytest
from PIL import Image

from ronan.errors import ImageError
from ronan.images import MIN_SIDE, load_image, to_model_tensor


def _png(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgba_is_composited_over_black():
    img = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    img.paste((255, 255, 255, 255), (8, 8, 24, 24))
    li = load_image(_png(img), name="a.png")
    assert li.image.mode == "RGB" and li.original_mode == "RGBA"
    arr = np.asarray(li.image)
    assert arr[0, 0].tolist() == [0, 0, 0] and arr[16, 16].tolist() == [255, 255, 255]
    assert any("transparent" in n for n in li.notes)


@pytest.mark.parametrize("mode", ["CMYK", "P", "1", "LA", "YCbCr"])
def test_odd_modes_become_8bit(mode):
    img = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else "PNG"
    li = load_image(_png(img, fmt), name=f"x.{fmt.lower()}")
    assert li.image.mode in ("L", "RGB")
    t = to_model_tensor(li.image, 28, 1)
    assert t.shape == (1, 28, 28) and 0.0 <= t.min() and t.max() <= 1.0


def test_16bit_grayscale_is_rescaled():
    arr = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    li = load_image(_png(Image.fromarray(arr)), name="deep.png")
    out = np.asarray(li.image)
    assert li.image.mode == "L" and out.min() == 0 and out.max() == 255


def test_float_tiff_is_rescaled():
    arr = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    li = load_image(_png(Image.fromarray(arr, "F"), "TIFF"), name="f.tif")
    assert li.image.mode == "L" and np.asarray(li.image).max() == 255


def test_animated_gif_uses_first_frame():
    frames = [Image.new("L", (20, 20), v) for v in (10, 200, 90)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    li = load_image(buf.getvalue(), name="anim.gif")
    assert any("first frame" in n for n in li.notes)
    assert abs(int(np.asarray(li.image.convert("L")).mean()) - 10) <= 2


@pytest.mark.parametrize("data,fragment", [
    (b"", "empty"),
    (b"not an image at all", "not a readable image"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
])
def test_bad_bytes_give_clear_errors(data, fragment):
    with pytest.raises(ImageError, match=fragment):
        load_image(data, name="bad")


def test_truncated_png():
    data = _png(Image.new("RGB", (64, 64), (1, 2, 3)))
    with pytest.raises(ImageError, match="bad.png"):
        load_image(data[: len(data) // 2], name="bad.png")


DAMAGE_FORMATS = [("PNG", "RGBA"), ("JPEG", "RGB"), ("GIF", "P"), ("TIFF", "F"), ("TIFF", "RGB"), ("WEBP", "RGB"),
                  ("BMP", "RGB"), ("QOI", "RGB"), ("QOI", "RGBA"), ("TGA", "RGB"), ("SGI", "RGB"), ("PCX", "RGB")]


@pytest.mark.parametrize("fmt,mode", DAMAGE_FORMATS, ids=[f"{f}-{m}" for f, m in DAMAGE_FORMATS])
def test_damaged_files_of_every_format_are_one_line(fmt, mode):
    """Truncated or bit-flipped files of each format Pillow writes: either a loaded 8-bit image or an
    ImageError naming the file, never another exception (Pillow's QOI decoder raised IndexError on a
    truncated file, its TIFF plugin TypeError on a damaged header)."""
    arr = np.random.default_rng(0).integers(0, 256, (48, 40, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    noise = Image.fromarray(arr, "RGBA" if mode == "RGBA" else "RGB")
    flips = np.random.default_rng(1)
    damaged = []
    for img in (noise, Image.new(noise.mode, (64, 64))):  # busy and flat pictures are coded differently
        img = img.convert("L").convert("F") if mode == "F" else img.convert(mode)
        data = _png(img, fmt)
        damaged += [data[:k] for k in (len(data) // 2, len(data) - 7, 40)]
        for _ in range(12):
            b = bytearray(data)
            for i in flips.integers(0, len(b), 1 + len(b) // 100):
                b[i] ^= int(flips.integers(1, 256))
            damaged.append(bytes(b))
    for d in damaged:
        try:
            li = load_image(d, name=f"bad.{fmt.lower()}")
        except ImageError as e:
            assert f"bad.{fmt.lower()}" in str(e) and "\n" not in str(e)
        else:
            assert li.image.mode in ("L", "RGB")


def test_tiny_and_huge_images():
    with pytest.raises(ImageError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        load_image(_png(Image.new("L", (3, 3))), name="tiny.png")
    big = _png(Image.new("L", (9000, 8000)))  # 72 MP: over the limit, small file
    with pytest.raises(ImageError, match="megapixels"):
        load_image(big, name="big.png")


def test_paths(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    p = tmp_path / "ok.png"
    Image.new("L", (28, 28), 7).save(p)
    li = load_image(p)
    assert li.name == "ok.png" and len(li.sha256) == 64


def test_non_square_is_centre_cropped():
    img = Image.new("L", (90, 30), 0)
    img.paste(255, (30, 0, 60, 30))  # white centre square
    t = to_model_tensor(img, 28, 1)
    assert t.mean() > 0.95
