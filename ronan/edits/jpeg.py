"""JPEG: the IJG quantization tables, quality estimation, and a differentiable codec.

The codec follows what Pillow's libjpeg(-turbo) does when it saves and reloads an 8-bit
image, step by step, in float arithmetic:

* grayscale (``L``) images are one luma component; RGB goes to JFIF YCbCr (rounded to
  integers, as libjpeg does);
* chroma subsampling 4:2:0 / 4:2:2 by averaging 2x2 / 2x1 blocks with libjpeg's
  alternating rounding bias; components padded to whole MCUs by repeating the last
  row and column (libjpeg's edge expansion);
* 8x8 DCT of the level-shifted samples, division by the quantization table, rounding,
  multiplication back, inverse DCT, rounding and clipping to 0..255;
* "fancy" (triangle) chroma upsampling, which is bilinear interpolation with edge
  replication, then YCbCr -> RGB.

Every rounding is a straight-through estimator: the forward pass is JPEG's (up to libjpeg's
integer DCT, a coefficient near a rounding boundary now and then), the backward pass treats
rounding as the identity. This replaces kornia's ``jpeg_codec_differentiable``, which
always subsamples 4:2:0, takes RGB only, and uses polynomial rounding whose forward pass is
not JPEG's (see the module tests for the measured difference).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .resample import ste_round

# IJG (ITU-T T.81 Annex K) base tables, natural (row-major) order, as Pillow's
# ``Image.quantization`` lists them.
LUMA_BASE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64)
CHROMA_BASE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=np.int64)

SUBSAMPLING = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}
"""Luma sampling factors (horizontal, vertical) per subsampling mode; chroma is 1x1."""


def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Luma and chroma tables (64 ints, natural order) libjpeg's ``jpeg_set_quality`` makes.

    ``scale = 5000 / Q`` below 50, else ``200 - 2Q``; ``q = (base * scale + 50) // 100``
    clipped to 1..255 (baseline), exactly as libjpeg and therefore Pillow.

    Args:
        quality (int): 1..100.
    """
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(np.clip((base * scale + 50) // 100, 1, 255) for base in (LUMA_BASE, CHROMA_BASE))


def estimate_quality(tables: dict[int, list[int]]) -> tuple[int, float]:
    """Best-matching IJG quality for a file's quantization tables.

    Args:
        tables (dict[int, list[int]]): Pillow's ``Image.quantization`` (table id -> 64
            values, natural order); table 0 is luma, the others chroma.

    Returns:
        (quality 1..100, mean absolute difference per table entry at that quality; 0.0
        means the file's tables are exactly libjpeg's for that quality).
    """
    ids = sorted(tables)
    file_tabs = [np.asarray(tables[i], dtype=np.int64) for i in ids]
    best_q, best_err = 0, math.inf
    for q in range(1, 101):
        luma, chroma = ijg_tables(q)
        err = float(np.mean([np.abs(t - (luma if i == ids[0] else chroma)).mean() for i, t in zip(ids, file_tabs)]))
        if err < best_err:
            best_q, best_err = q, err
    return best_q, best_err


# ------------------------------------------------------------------ differentiable codec
def _dct_matrix(dtype, device) -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * 0.5
    m[0] = math.sqrt(1 / 8)
    return m.to(dtype=dtype, device=device)


def _pad_to(v: torch.Tensor, mh: int, mw: int) -> torch.Tensor:
    h, w = v.shape[-2:]
    ph, pw = -h % mh, -w % mw
    if ph or pw:
        v = F.pad(v, (0, pw, 0, ph), mode="replicate")
    return v


def _code_plane(v: torch.Tensor, table: np.ndarray, quantize: bool) -> torch.Tensor:
    """DCT, quantize, dequantize, inverse DCT of one plane ``[B, H, W]`` (multiples of 8)."""
    b, h, w = v.shape
    d = _dct_matrix(v.dtype, v.device)
    q = torch.as_tensor(table.reshape(8, 8), dtype=v.dtype, device=v.device)
    blocks = (v - 128.0).reshape(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
    coef = d @ blocks @ d.T
    # libjpeg rounds coef / q half away from zero
    scaled = coef / q
    rounded = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)
    coef = (scaled + (rounded - scaled).detach()) * q  # the lossy step: always rounded
    out = d.T @ coef @ d
    out = out.permute(0, 1, 3, 2, 4).reshape(b, h, w) + 128.0
    return ste_round(out, quantize).clamp(0.0, 255.0)


def _downsample(c: torch.Tensor, fh: int, fv: int, quantize: bool) -> torch.Tensor:
    """libjpeg's h2v2/h2v1 box downsampling, with its alternating rounding bias."""
    if (fh, fv) == (1, 1):
        return c
    b, h, w = c.shape
    s = c.reshape(b, h // fv, fv, w // fh, fh).sum(dim=(2, 4))
    n = fh * fv
    # libjpeg: bias 1,2,1,2... for 2x2 (>> 2), 0,1,0,1... for 2x1 (>> 1), per output column
    bias = torch.tensor([1.0, 2.0] if n == 4 else [0.0, 1.0], dtype=c.dtype, device=c.device)
    bias = bias.repeat((w // fh + 1) // 2)[: w // fh]
    if not quantize:
        return s / n
    avg = s / n
    return avg + (torch.floor((s + bias) / n) - avg).detach()


def _upsample(c: torch.Tensor, fh: int, fv: int, width: int, height: int, quantize: bool) -> torch.Tensor:
    """libjpeg-turbo's fancy (triangle) upsampling = bilinear, half-pixel centres, edges repeated."""
    if (fh, fv) == (1, 1):
        return c[:, :height, :width]
    cw, ch = -(-width // fh), -(-height // fv)  # the decoder upsamples ceil(W / f) samples
    c = c[:, :ch, :cw]
    up = F.interpolate(c[:, None], size=(ch * fv, cw * fh), mode="bilinear", align_corners=False)[:, 0]
    return ste_round(up, quantize)[:, :height, :width]


def jpeg_roundtrip(v: torch.Tensor, quality: int, subsampling: str = "4:2:0", quantize: bool = True,
                   tables: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """Differentiable JPEG save-and-reload of 8-bit levels, as Pillow does it.

    Args:
        v (Tensor[B, C, H, W]): levels in [0, 255]; C = 1 (grayscale JPEG: the luma table
            only, no colour conversion) or 3 (RGB through YCbCr).
        quality (int): 1..100 (IJG tables, :func:`ijg_tables`).
        subsampling (str): ``"4:2:0"`` (Pillow's default at every quality), ``"4:2:2"`` or
            ``"4:4:4"``; ignored for C = 1.
        quantize (bool): True rounds wherever libjpeg does (straight-through gradients);
            False rounds only the DCT coefficients (the lossy step itself).
        tables (tuple | None): (luma, chroma) 64-value tables in natural order, replacing
            the IJG ones (e.g. tables read from a file).

    Returns:
        Tensor[B, C, H, W] of levels in [0, 255].
    """
    luma_t, chroma_t = ijg_tables(quality) if tables is None else tables
    b, c, h, w = v.shape
    if c == 1:
        return _code_plane(_pad_to(v[:, 0], 8, 8), np.asarray(luma_t), quantize)[:, None, :h, :w]
    if c != 3:
        raise ValueError(f"JPEG needs 1 or 3 channels, got {c}")
    fh, fv = SUBSAMPLING[subsampling]
    r, g, bl = v[:, 0], v[:, 1], v[:, 2]
    y = ste_round(0.299 * r + 0.587 * g + 0.114 * bl, quantize)
    # libjpeg rounds the chroma halves down (ONE_HALF - 1), e.g. B odd with R = G = 0
    cb = ste_round(-0.168735892 * r - 0.331264108 * g + 0.5 * bl + (128.0 - 1e-6), quantize)
    cr = ste_round(0.5 * r - 0.418687589 * g - 0.081312411 * bl + (128.0 - 1e-6), quantize)
    mh, mv = 8 * fh, 8 * fv  # MCU size
    y = _code_plane(_pad_to(y, mv, mh), np.asarray(luma_t), quantize)[:, :h, :w]
    chroma = []
    for plane in (cb, cr):
        small = _downsample(_pad_to(plane, mv, mh), fh, fv, quantize)
        chroma.append(_upsample(_code_plane(small, np.asarray(chroma_t), quantize), fh, fv, w, h, quantize))
    cb, cr = chroma[0] - 128.0, chroma[1] - 128.0
    rgb = torch.stack((y + 1.402 * cr, y - 0.344136286 * cb - 0.714136286 * cr, y + 1.772 * cb), dim=1)
    return ste_round(rgb, quantize).clamp(0.0, 255.0)
