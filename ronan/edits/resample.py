"""Pillow's resampling, differentiable: the same filters and weights as ``Image.resize``.

Pillow resizes an 8-bit image in two separable passes (horizontal, then vertical), each a
matrix of filter weights computed by ``precompute_coeffs`` in Pillow's ``Resample.c``, each
rounded half up and clipped to 0..255. :func:`pil_resize` builds those matrices in float64
with Pillow's 22-bit fixed-point weights and applies them with ``einsum`` (exact in float64),
so the forward pass equals Pillow's, and gradients flow to every input pixel.
Rounding uses a straight-through estimator (see :func:`ste_round`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def ste_round(v: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``floor(v + 0.5)`` in the forward pass, identity in the backward pass (straight-through).

    Args:
        v (Tensor): any values (pixel levels 0..255, DCT coefficients...).
        enabled (bool): False returns ``v`` unchanged (a smooth forward pass).
    """
    if not enabled:
        return v
    return v + (torch.floor(v + 0.5) - v).detach()


def ste_floor(v: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``floor(v)`` forward, identity backward (Pillow's ``(UINT8)`` truncation of positive floats)."""
    if not enabled:
        return v
    return v + (torch.floor(v) - v).detach()


def _bicubic(x: float) -> float:
    a = -0.5  # Pillow's bicubic (torch's non-antialiased bicubic uses -0.75)
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


FILTERS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0), "lanczos": (_lanczos, 3.0)}
"""Pillow's separable filters by name: (kernel, support)."""


@lru_cache(maxsize=256)
def resample_matrix(
    in_size: int, out_size: int, filter: str, box0: float = 0.0, box1: float | None = None
) -> torch.Tensor:
    """Weights of one Pillow resampling pass as ``Tensor[out_size, in_size]`` (float64, 22-bit fixed point).

    Follows ``precompute_coeffs`` of Pillow's ``Resample.c`` line by line: ``scale =
    (box1 - box0) / out_size``, support widened by ``max(scale, 1)`` (antialiasing when
    reducing), window bounds rounded as Pillow rounds them, weights normalised per row.

    Args:
        in_size (int): input length in pixels, >= 1.
        out_size (int): output length, >= 1.
        filter (str): ``"bilinear"``, ``"bicubic"`` or ``"lanczos"``.
        box0, box1 (float): source interval (Pillow's ``box``); default the whole input.
    """
    kernel, support = FILTERS[filter]
    box1 = float(in_size) if box1 is None else box1
    scale = (box1 - box0) / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    ss = 1.0 / filterscale
    m = torch.zeros(out_size, in_size, dtype=torch.float64)
    for xx in range(out_size):
        center = box0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        w = [kernel((x - center + 0.5) * ss) for x in range(xmin, xmax)]
        total = sum(w)
        if total != 0.0:
            w = [v / total for v in w]
        m[xx, xmin:xmax] = torch.tensor(w, dtype=torch.float64)
    # Pillow's 8-bit path uses 22-bit fixed-point weights, rounded half away from zero
    return torch.sign(m) * torch.floor(m.abs() * 2**22 + 0.5) / 2**22


def pil_resize(
    v: torch.Tensor,
    size: tuple[int, int],
    filter: str,
    box: tuple[float, float, float, float] | None = None,
    quantize: bool = True,
) -> torch.Tensor:
    """Differentiable ``Image.resize(size, filter, box)`` on 8-bit levels.

    Args:
        v (Tensor[B, C, H, W]): pixel levels in [0, 255] (float).
        size (tuple[int, int]): output (width, height), as Pillow.
        filter (str): ``"bilinear"``, ``"bicubic"`` or ``"lanczos"``.
        box (tuple | None): source box (left, top, right, bottom), default the whole image.
        quantize (bool): round (straight-through) and clip after each pass as Pillow does;
            False keeps the clip but not the rounding.

    Returns:
        Tensor[B, C, height, width] of levels in [0, 255].
    """
    _, _, h_in, w_in = v.shape
    w_out, h_out = size
    if box is None:
        box = (0.0, 0.0, float(w_in), float(h_in))
    box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    if (w_out, h_out) == (w_in, h_in) and box == (0.0, 0.0, float(w_in), float(h_in)):
        return v  # Image.resize returns a copy
    # Pillow's ImagingResampleInner: a pass runs when its size or box differs from the input.
    need_h = w_out != w_in or box[0] != 0.0 or box[2] != w_out
    need_v = h_out != h_in or box[1] != 0.0 or box[3] != h_out
    if need_h:
        mh = resample_matrix(w_in, w_out, filter, box[0], box[2]).to(v)
        v = ste_round(torch.einsum("bchw,ow->bcho", v, mh), quantize).clamp(0.0, 255.0)
    if need_v:
        mv = resample_matrix(h_in, h_out, filter, box[1], box[3]).to(v)
        v = ste_round(torch.einsum("bchw,oh->bcow", v, mv), quantize).clamp(0.0, 255.0)
    return v


def fit_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The source box ``ImageOps.fit(image, (size, size))`` resizes from: the centred largest square."""
    if width == height:
        return (0.0, 0.0, float(width), float(height))
    if width > height:
        left = (width - height) * 0.5
        return (left, 0.0, left + height, float(height))
    top = (height - width) * 0.5
    return (0.0, top, float(width), top + width)


def fit_resize(v: torch.Tensor, size: int, quantize: bool = True) -> torch.Tensor:
    """Differentiable :func:`ronan.images.to_model_tensor` geometry: centre square, Lanczos to ``size``.

    Args:
        v (Tensor[B, C, H, W]): levels in [0, 255].
        size (int): output side.
        quantize (bool): as :func:`pil_resize`.
    """
    _, _, h, w = v.shape
    if (w, h) == (size, size):
        return v
    return pil_resize(v, (size, size), "lanczos", fit_box(w, h, size), quantize)
