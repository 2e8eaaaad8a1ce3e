"""An earlier JPEG compression in a file's pixels: the JPEG ghost (Farid 2009).

A JPEG decoded and saved again losslessly (a PNG made from a JPEG, a screenshot of one), or again as
a JPEG at a higher quality, keeps what the first quantization did: compressing its pixels again at
the quality they were compressed at changes them least, so the difference d(Q) between the pixels
and their re-compression at quality Q has a local minimum there and rises after it, while for pixels
never compressed d(Q) only falls as Q rises.
:func:`earlier_jpeg_quality` finds that minimum on the luma (chroma subsampling, re-applied at every
quality, would hide it), on a grid-aligned crop of at most :data:`GHOST_SIDE` pixels a side.

It finds an earlier JPEG only where the file's pixel grid is the JPEG's (no crop by other than
multiples of 8, no resize since). Measured on 240 held-out pictures (benchmarks/RESULTS.md, "A PNG
made from a JPEG"): grey images found at every quality 50-95, colour ones at 72-100% for qualities
50-90 and 25-58% at 95 (chroma subsampling and the colour conversion's rounding blur the minimum);
within 1 of the true quality mostly, up to 8 off at 50 (neighbouring qualities share most of their
tables); no false alarm among the 240 never compressed, the same upscaled 2x, or 480 single JPEGs.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .memo import Memo, pixels_key

GHOST_SIDE = 256
"""Largest side of the crop (from the top-left corner, on the JPEG grid) the ghost is computed on:
100 re-compressions of at most 256 x 256 pixels."""

GHOST_WINDOW = 15
"""How many qualities after a local minimum the curve is looked at for its rise."""

GHOST_RISE = 1.5
"""How far the curve must rise after a local minimum (the largest d over the window, over d at the
minimum) for the minimum to count as an earlier compression. Never-compressed pictures rise at most
1.30 (40 looked at), earlier JPEGs at quality 75-90 1.2-9.3 (the threshold was 2.0 at first)."""

GHOST_LOWEST = 20
"""The lowest quality looked at: under it the re-compression's own coarse steps make minima of their own
(a never-compressed `upgan64-clipart` image at about 8, an own `dcgan64-clipart` image upscaled 2x at 8),
and files saved that low are rare."""

GHOST_FLAT = 2.0
"""Pixels whose luma varies by less than this (standard deviation, on [0, 255]) are flat: JPEG changes
them only by rounding, their curve's minima (a uniform image's curve is 0, 1 and 4) are no evidence."""

_FOUND = Memo()
"""The last 64 crops' results (a request detects a file once per model)."""


def _luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("YCbCr").getchannel(0) if image.mode == "RGB" else image, dtype=np.float64)


def ghost_curve(image: Image.Image) -> np.ndarray:
    """d(Q) for Q = 1..100: the luma MSE (on [0, 255]) between ``image`` (8-bit L or RGB) and its
    JPEG re-compression at quality Q (Pillow's defaults)."""
    base = _luma(image)
    curve = np.empty(100)
    for q in range(1, 101):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=q)
        curve[q - 1] = float(((_luma(Image.open(io.BytesIO(buf.getvalue())).convert(image.mode)) - base) ** 2).mean())
    return curve


def ghost_minimum(
    curve: np.ndarray, window: int = GHOST_WINDOW, rise: float = GHOST_RISE, below: int = 99
) -> int | None:
    """The earlier quality in ``curve`` (:func:`ghost_curve`): among its local minima at qualities
    :data:`GHOST_LOWEST` (20)..``below`` - 1 (at most 98) after which it rises at least ``rise`` times within ``window``
    qualities, the one with the largest rise; None where there is none (pixels never compressed, or
    not found)."""
    best: tuple[int, float] | None = None
    for q in range(GHOST_LOWEST, min(below, 99)):
        i = q - 1
        after = curve[i + 1 : min(i + 1 + window, 98)]
        if curve[i] > curve[i - 1] or curve[i] > curve[i + 1] or len(after) == 0:
            continue
        up = float(after.max()) / max(float(curve[i]), 1e-12)
        if up >= rise and (best is None or up > best[1]):
            best = (q, up)
    return None if best is None else best[0]


def earlier_jpeg_quality(image: Image.Image, below: int = 99) -> int | None:
    """The quality (20..98, under ``below``) of an earlier JPEG compression of ``image``'s pixels
    (8-bit L or RGB, as decoded from a lossless file, or from a JPEG saved at quality ``below`` + 2 or
    more, whose own minimum is then left out), or None. Computed on the top-left crop of at most
    :data:`GHOST_SIDE` pixels a side (on the JPEG grid); cached per crop. None for flat pixels
    (:data:`GHOST_FLAT`)."""
    crop = image.crop((0, 0, min(image.width, GHOST_SIDE), min(image.height, GHOST_SIDE)))
    if crop.mode not in ("L", "RGB"):
        crop = crop.convert("RGB")
    if float(_luma(crop).std()) < GHOST_FLAT:
        return None
    return _FOUND.get((pixels_key(crop), below), lambda: ghost_minimum(ghost_curve(crop), below=below))
