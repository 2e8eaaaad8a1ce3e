"""RGB training data of the 64x64 colour tier, built from Debian packages (offline).

* **Clip-art tier data** (the generators' training set): every colour emoji glyph of
  ``fonts-noto-color-emoji`` (the PNG bitmaps of the font's CBDT table, ~3,700 glyphs, SIL OFL)
  and every clip-art stamp of ``tuxpaint-stamps-default`` (~800 PNGs, GPL), composited over
  white and fitted into 64x64 (aspect kept, centred, Lanczos). Each picture is assigned to the
  ``train`` or ``test`` split by the SHA-256 of its name (10% test), so the held-out test images
  are pictures no model ever saw.
* **Photo crops** (the reference model's data, disjoint from the above): random RGB crops of the
  wallpaper photos of ``mate-backgrounds``, ``ukui-wallpapers``, ``gnome-backgrounds`` and
  ``plasma-workspace-wallpapers`` at several scales.

Only the training scripts read these packages; the library and the tests use the committed
samples in ``assets/samples/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

EMOJI_FONT = Path(os.environ.get("RONAN_EMOJI_FONT", "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"))
STAMP_DIR = Path(os.environ.get("RONAN_STAMP_DIR", "/usr/share/tuxpaint/stamps"))
WALLPAPER_DIRS = [Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers")]
TEST_FRACTION = 0.1
SIZE = 64


def split_of(name: str) -> str:
    """``"test"`` for ~10% of picture names (by SHA-256), else ``"train"``; stable forever."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    return "test" if h % 1000 < TEST_FRACTION * 1000 else "train"


def _fit(im: Image.Image, size: int = SIZE, fill: float = 0.9) -> Image.Image:
    """Composite ``im`` over white and fit it, centred, into ``size`` x ``size`` (``fill`` of the side)."""
    im = im.convert("RGBA")
    box = im.getbbox()
    if box:
        im = im.crop(box)
    side = max(im.size)
    canvas = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    inner = max(1, round(size * fill))
    canvas = canvas.resize((inner, inner), Image.Resampling.LANCZOS)
    out = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    out.alpha_composite(canvas, ((size - inner) // 2, (size - inner) // 2))
    return out.convert("RGB")


def emoji_pictures() -> list[tuple[str, Image.Image]]:
    """``(name, RGBA image)`` of every colour bitmap in the emoji font (CBDT table)."""
    from fontTools import ttLib

    if not EMOJI_FONT.exists():
        sys.exit(f"{EMOJI_FONT} not found: run `apt-get install -y fonts-noto-color-emoji`")
    font = ttLib.TTFont(str(EMOJI_FONT))
    out: list[tuple[str, Image.Image]] = []
    for strike in font["CBDT"].strikeData:
        for glyph, bitmap in sorted(strike.items()):
            data = getattr(bitmap, "imageData", None)
            if not data or not data.startswith(b"\x89PNG"):
                continue
            im = Image.open(io.BytesIO(data))
            im.load()
            if im.getbbox() is None:
                continue
            out.append((f"emoji/{glyph}", im))
        break  # one strike (the font has one size)
    return out


def stamp_pictures() -> list[tuple[str, Image.Image]]:
    """``(name, image)`` of every Tux Paint clip-art stamp (PNG)."""
    files = sorted(STAMP_DIR.rglob("*.png")) if STAMP_DIR.exists() else []
    if not files:
        sys.exit(f"no stamps in {STAMP_DIR}: run `apt-get install -y tuxpaint-stamps-default`")
    out = []
    for f in files:
        if f.name.endswith("_mirror.png") or f.stem.endswith("_back"):
            continue
        with Image.open(f) as im:
            im.load()
            out.append((f"stamps/{f.relative_to(STAMP_DIR)}", im.copy()))
    return out


def clipart_dataset(split: str = "train", size: int = SIZE) -> tuple[torch.Tensor, list[str]]:
    """Emoji + clip-art pictures of ``split`` as ``Tensor[N, 3, size, size]`` in [0, 1] and their names."""
    names, arrays = [], []
    for name, im in emoji_pictures() + stamp_pictures():
        if split_of(name) != split:
            continue
        names.append(name)
        arrays.append(np.asarray(_fit(im, size)))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
    return x, names


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and small shifts (up to 4 px, white fill) of a batch in [0, 1]."""
    b = x.shape[0]
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    pad = 4
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=1.0)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    s = x.shape[-1]
    return torch.stack([padded[i, :, dy[i] : dy[i] + s, dx[i] : dx[i] + s] for i in range(b)])


def wallpaper_files() -> list[Path]:
    """Sorted wallpaper photos (JPEG/PNG) of the Debian background packages."""
    files = sorted(
        p
        for d in WALLPAPER_DIRS
        if d.exists()
        for p in d.rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file()
    )
    if not files:
        sys.exit(
            "no wallpapers found: run `apt-get install -y mate-backgrounds ukui-wallpapers gnome-backgrounds "
            "plasma-workspace-wallpapers`"
        )
    return files


def photo_crops_rgb(n: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """``n`` random RGB crops ``Tensor[n, 3, size, size]`` in [0, 1] of the wallpaper photos.

    Each photo is reduced to short sides 96-768 px (4 scales); crops are taken at random
    positions and flipped at random.
    """
    rng = np.random.default_rng(seed)
    pyramids, seen = [], set()
    for path in wallpaper_files():
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
        except OSError:
            continue
        digest = hashlib.sha256(rgb.resize((16, 16)).tobytes()).hexdigest()
        if digest in seen:  # the same picture at several resolutions
            continue
        seen.add(digest)
        for short in (96, 192, 384, 768):
            scale = short / min(rgb.size)
            w, h = max(size, round(rgb.width * scale)), max(size, round(rgb.height * scale))
            pyramids.append(np.asarray(rgb.resize((w, h), Image.Resampling.LANCZOS)))
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        arr = pyramids[rng.integers(len(pyramids))]
        y = rng.integers(arr.shape[0] - size + 1)
        x = rng.integers(arr.shape[1] - size + 1)
        crop = arr[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = crop
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0
