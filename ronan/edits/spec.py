"""Edit specs: parsing, exact application with Pillow, and the differentiable twin.

Grammar (case-insensitive, steps joined by ``+`` and applied left to right)::

    none                 no edit
    jpeg:Q[:SS]          JPEG save and reload at quality Q (integer 1..100), chroma
                         subsampling SS = 420 (Pillow's default at every quality, used when
                         SS is omitted), 422 or 444; grayscale images have no chroma
    webp:Q               lossy WebP save and reload at quality Q (integer 0..100), Pillow's
                         libwebp with its default settings (4:2:0 chroma)
    resize:F             resize by F in (0, 4] (each side to floor(side * F + 0.5), at
                         least 1 px; Pillow bicubic, antialiased when reducing); the model's
                         own preprocessing later brings the image back to its size
    crop:F               centre crop keeping the fraction F in (0.3, 1] of each side
    noise:S              additive Gaussian noise, sigma S in [0, 0.5] on the [0, 1] scale,
                         then clipping and 8-bit rounding; seeded (stream
                         ``edit-noise:<step index>`` of the seed, see ronan.seeding)
    filter:NAME          one of FILTERS (below)

``resize:1``, ``crop:1`` and ``noise:0`` change nothing and are dropped from the canonical
spec, so ``Edit.spec`` (and ``to_dict()``, used in cache keys) is the same for every
spelling of one edit. Numbers are kept to 6 significant digits.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter

from ..errors import EditError
from ..images import to_pil
from ..seeding import rng
from .jpeg import jpeg_roundtrip
from .resample import fit_resize, pil_resize, ste_floor, ste_round
from .webp import roundtrip as webp_save_load
from .webp import webp_roundtrip

EDITS_VERSION = 1
"""Bump when an edit's definition changes: it is part of ``Edit.to_dict()`` (cache keys)."""

FILTERS = {
    "contrast": "brightness x1.1 then contrast x1.2 around the mean gray level "
    "(PIL.ImageEnhance.Brightness(1.1), then ImageEnhance.Contrast(1.2))",
    "warm": "colour balance: red x1.1, green x1.0, blue x0.9, rounded half up and clipped "
    "(grayscale images: converted to RGB, balanced, converted back to L)",
    "blur": "Gaussian blur, radius (standard deviation) 0.5 px (PIL.ImageFilter.GaussianBlur(0.5): "
    "three extended box blurs per axis)",
    "sharpen": "PIL.ImageFilter.SHARPEN: 3x3 kernel [-2 x8, 32 centre] / 16; border pixels unchanged",
}
"""The Instagram-style filters of ``filter:NAME`` and their exact definitions."""

GRAMMAR = (
    "none, jpeg:Q[:420|422|444] (Q 1..100), webp:Q (Q 0..100), resize:F (0<F<=4), crop:F (0.3<F<=1), "
    "noise:S (0<=S<=0.5), filter:" + "|".join(FILTERS) + ", or a chain such as resize:0.5+jpeg:75"
)

ROBUST_FAMILY = ("jpeg:90", "jpeg:75", "noise:0.01", "filter:contrast", "filter:blur")
"""Edits of the robust mode: a query is tested against each one's belonging distribution
(:meth:`ronan.edits.policy.EditAssumption.members`)."""

_SUBSAMPLING = {"420": "4:2:0", "422": "4:2:2", "444": "4:4:4"}
_PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _num(x: float) -> str:
    return format(x, ".6g")


def _luma(v: torch.Tensor, quantize: bool) -> torch.Tensor:
    """Pillow's RGB -> L on levels ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` (ITU-R 601-2, 16-bit fixed point)."""
    w = torch.tensor([19595.0, 38470.0, 7471.0], dtype=v.dtype, device=v.device) / 65536.0
    return ste_round((v * w[None, :, None, None]).sum(1, keepdim=True), quantize)


# ------------------------------------------------------------------------------ steps
class Step:
    """One operation of an :class:`Edit` (subclasses per kind)."""

    op: str = ""

    @property
    def spec(self) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def apply(self, image: Image.Image, seed: int, index: int) -> Image.Image:
        """Exact, as the world does it, on an 8-bit ``L`` or ``RGB`` image."""
        raise NotImplementedError

    def levels(self, v: torch.Tensor, quantize: bool) -> torch.Tensor:
        """Differentiable version on levels ``Tensor[B, C, H, W]`` in [0, 255]."""
        raise NotImplementedError


@dataclass(frozen=True)
class Jpeg(Step):
    """``jpeg:Q[:SS]``: Pillow JPEG save and reload in memory."""

    quality: int
    subsampling: str = "4:2:0"
    op = "jpeg"

    @property
    def spec(self) -> str:
        ss = "" if self.subsampling == "4:2:0" else ":" + self.subsampling.replace(":", "")
        return f"jpeg:{self.quality}{ss}"

    def to_dict(self) -> dict:
        return {"op": "jpeg", "quality": self.quality, "subsampling": self.subsampling}

    def apply(self, image, seed, index):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=self.quality, subsampling=_PIL_SUBSAMPLING[self.subsampling])
        out = Image.open(io.BytesIO(buf.getvalue()))
        out.load()
        return out.convert(image.mode)

    def levels(self, v, quantize):
        return jpeg_roundtrip(v, self.quality, self.subsampling, quantize)


@dataclass(frozen=True)
class Webp(Step):
    """``webp:Q``: Pillow lossy WebP save and reload in memory. Its differentiable twin is exact in
    the forward pass and the identity in the backward pass (:func:`ronan.edits.webp.webp_roundtrip`)."""

    quality: int
    op = "webp"

    @property
    def spec(self) -> str:
        return f"webp:{self.quality}"

    def to_dict(self) -> dict:
        return {"op": "webp", "quality": self.quality, "encoder": "libwebp defaults (Pillow)"}

    def apply(self, image, seed, index):
        return webp_save_load(image, self.quality)

    def levels(self, v, quantize):
        return webp_roundtrip(v, self.quality)


def _scaled(size: tuple[int, int], factor: float) -> tuple[int, int]:
    w, h = (max(1, math.floor(s * factor + 0.5)) for s in size)
    return w, h


class _OneNumber(Step):
    """A step with one number: spec ``op:number``, ``to_dict`` ``{"op", param: number, **details}``."""

    param = ""
    details: dict = {}

    @property
    def spec(self) -> str:
        return f"{self.op}:{_num(getattr(self, self.param))}"

    def to_dict(self) -> dict:
        return {"op": self.op, self.param: getattr(self, self.param), **self.details}


@dataclass(frozen=True)
class Resize(_OneNumber):
    """``resize:F``: Pillow bicubic resize by F (antialiased when reducing)."""

    factor: float
    op, param, details = "resize", "factor", {"filter": "bicubic"}

    def apply(self, image, seed, index):
        return image.resize(_scaled(image.size, self.factor), Image.Resampling.BICUBIC)

    def levels(self, v, quantize):
        h, w = v.shape[-2:]
        return pil_resize(v, _scaled((w, h), self.factor), "bicubic", quantize=quantize)


def crop_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    """Integer centre box (left, top, right, bottom) keeping ``fraction`` of each side."""
    cw, ch = _scaled((width, height), fraction)
    left, top = (width - cw) // 2, (height - ch) // 2
    return left, top, left + cw, top + ch


@dataclass(frozen=True)
class Crop(_OneNumber):
    """``crop:F``: centre crop keeping the fraction F of each side."""

    fraction: float
    op, param = "crop", "fraction"

    def apply(self, image, seed, index):
        return image.crop(crop_box(*image.size, self.fraction))

    def levels(self, v, quantize):
        left, top, right, bottom = crop_box(v.shape[-1], v.shape[-2], self.fraction)
        return v[..., top:bottom, left:right]


@dataclass(frozen=True)
class Noise(_OneNumber):
    """``noise:S``: Gaussian noise of sigma S (on [0, 1]), clipped, rounded to 8 bits; seeded.

    The differentiable version is the identity: a noise draw cannot be inverted, and adding
    another draw to the reconstruction would only add variance.
    """

    sigma: float
    op, param = "noise", "sigma"

    def apply(self, image, seed, index):
        arr = np.asarray(image, dtype=np.float64) / 255.0
        noise = torch.randn(arr.shape, generator=rng(seed, f"edit-noise:{index}"), dtype=torch.float64).numpy()
        out = np.floor(np.clip(arr + self.sigma * noise, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(out)

    def levels(self, v, quantize):
        return v


def _blur_kernel(radius: float, dtype, device) -> torch.Tensor:
    """1-D kernel of one of Pillow's extended box blurs for a Gaussian of ``radius`` (3 passes)."""
    sigma2 = radius * radius / 3.0
    big = math.sqrt(12.0 * sigma2 + 1.0)
    whole = math.floor((big - 1.0) / 2.0)
    frac = (2 * whole + 1) * (whole * (whole + 1) - 3 * sigma2) / (6 * (sigma2 - (whole + 1) ** 2))
    box = whole + frac
    # Pillow's 24-bit fixed-point weights (BoxBlur.c): inner ww each, the two ends fw each
    ww = math.floor(2**24 / (2 * box + 1))
    fw = (2**24 - (2 * whole + 1) * ww) // 2
    k = torch.full((2 * whole + 3,), ww / 2**24, dtype=dtype, device=device)
    k[0] = k[-1] = fw / 2**24
    return k


def _conv_axis(v: torch.Tensor, k: torch.Tensor, axis: int) -> torch.Tensor:
    b, c, h, w = v.shape
    r = k.numel() // 2
    if axis == 3:
        x = F.pad(v.reshape(b * c, 1, h, w), (r, r, 0, 0), mode="replicate")
        return F.conv2d(x, k.view(1, 1, 1, -1)).reshape(b, c, h, w)
    x = F.pad(v.reshape(b * c, 1, h, w), (0, 0, r, r), mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1)).reshape(b, c, h, w)


def _blend(v: torch.Tensor, base: torch.Tensor | float, factor: float, quantize: bool) -> torch.Tensor:
    """``Image.blend(base, image, factor)`` for factor > 1: float32 arithmetic, clipped, truncated."""
    base = base if isinstance(base, float) else base.float()
    out = (base + factor * (v.float() - base)).to(v.dtype)
    return ste_floor(out.clamp(0.0, 255.0), quantize)


def _filter_contrast(v, quantize):
    v = _blend(v, 0.0, 1.1, quantize)  # ImageEnhance.Brightness: blend with black
    gray = v if v.shape[1] == 1 else _luma(v, quantize)
    mean = ste_floor(gray.mean(dim=(1, 2, 3), keepdim=True) + 0.5, quantize)  # ImageEnhance.Contrast
    return _blend(v, mean, 1.2, quantize)


_WARM = (1.1, 1.0, 0.9)


def _filter_warm(v, quantize):
    gains = torch.tensor(_WARM, dtype=v.dtype, device=v.device)[None, :, None, None]
    rgb = v.expand(-1, 3, -1, -1) if v.shape[1] == 1 else v
    out = ste_round(rgb * gains, quantize).clamp(0.0, 255.0)
    return _luma(out, quantize) if v.shape[1] == 1 else out


def _filter_blur(v, quantize):
    k = _blur_kernel(0.5, v.dtype, v.device)
    for axis in (3, 2):  # Pillow: three horizontal passes, then three vertical ones, each rounded
        for _ in range(3):
            v = ste_round(_conv_axis(v, k, axis), quantize)
    return v


def _filter_sharpen(v, quantize):
    b, c, h, w = v.shape
    if h < 3 or w < 3:
        return v
    k = torch.full((3, 3), -2.0 / 16, dtype=v.dtype, device=v.device)
    k[1, 1] = 32.0 / 16
    inner = F.conv2d(v.reshape(b * c, 1, h, w), k.view(1, 1, 3, 3)).reshape(b, c, h - 2, w - 2)
    inner = ste_round(inner, quantize).clamp(0.0, 255.0)
    return torch.cat(
        [v[..., :1, :], torch.cat([v[..., 1:-1, :1], inner, v[..., 1:-1, -1:]], dim=-1), v[..., -1:, :]], dim=-2
    )


def _pil_warm(image: Image.Image) -> Image.Image:
    rgb = image.convert("RGB")
    bands = [band.point([min(255, math.floor(i * g + 0.5)) for i in range(256)]) for band, g in zip(rgb.split(), _WARM)]
    out = Image.merge("RGB", bands)
    return out.convert("L") if image.mode == "L" else out


_PIL_FILTERS = {
    "contrast": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.1)).enhance(1.2),
    "warm": _pil_warm,
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(0.5)),
    "sharpen": lambda im: im.filter(ImageFilter.SHARPEN),
}
_TORCH_FILTERS = {"contrast": _filter_contrast, "warm": _filter_warm, "blur": _filter_blur, "sharpen": _filter_sharpen}


@dataclass(frozen=True)
class Filter(Step):
    """``filter:NAME``: one of :data:`FILTERS`, with Pillow."""

    name: str
    op = "filter"

    @property
    def spec(self) -> str:
        return f"filter:{self.name}"

    def to_dict(self) -> dict:
        return {"op": "filter", "name": self.name, "definition": FILTERS[self.name]}

    def apply(self, image, seed, index):
        return _PIL_FILTERS[self.name](image)

    def levels(self, v, quantize):
        return _TORCH_FILTERS[self.name](v, quantize)


# ------------------------------------------------------------------------------- edit
@dataclass(frozen=True)
class Edit:
    """A chain of edits, applied left to right (empty: ``none``). Build with :func:`parse_edit`.

    Attributes:
        steps (tuple[Step, ...]): the operations, in order.
    """

    steps: tuple[Step, ...] = ()

    @property
    def spec(self) -> str:
        """Canonical spec string, e.g. ``"resize:0.75+jpeg:75"`` or ``"none"``."""
        return "+".join(s.spec for s in self.steps) or "none"

    def __str__(self) -> str:
        return self.spec

    @property
    def is_none(self) -> bool:
        """True when the edit changes nothing."""
        return not self.steps

    @property
    def fully_differentiable(self) -> bool:
        """False when :meth:`differentiable` leaves a step out or passes gradients around it (noise
        is the identity there; WebP is exact forward, the identity backward)."""
        return not any(isinstance(s, (Noise, Webp)) for s in self.steps)

    def to_dict(self) -> dict:
        """Stable JSON description (cache keys): spec, definitions version, each step's parameters."""
        return {"spec": self.spec, "version": EDITS_VERSION, "steps": [s.to_dict() for s in self.steps]}

    def apply(self, image: Image.Image, seed: int = 0) -> Image.Image:
        """Apply the edit exactly as the world does, with Pillow.

        Args:
            image (PIL.Image.Image): 8-bit ``L`` or ``RGB`` image (other modes are converted
                to RGB first).
            seed (int): seed of the random steps (noise); the same seed gives the same image.

        Returns:
            A new 8-bit image of the same mode; its size changes with ``resize`` and ``crop``.
        """
        out = image if image.mode in ("L", "RGB") else image.convert("RGB")
        for i, step in enumerate(self.steps):
            out = step.apply(out, seed, i)
        return out.copy() if out is image else out

    def to_file(self, image: Image.Image, seed: int = 0) -> tuple[bytes, str]:
        """The file this edit leaves behind: ``(bytes, extension)``.

        An edit that ends with ``jpeg:Q`` (``webp:Q``) gives that JPEG (lossy WebP) file itself (the
        steps before it are applied, then Pillow saves at quality Q: decoding it gives exactly
        :meth:`apply`'s pixels, and :func:`ronan.edits.detect` finds the quality in it); any other
        edit gives a PNG of :meth:`apply`'s pixels.
        """
        buf = io.BytesIO()
        if self.steps and isinstance(self.steps[-1], (Jpeg, Webp)):
            last = self.steps[-1]
            before = Edit(self.steps[:-1]).apply(image, seed)
            if isinstance(last, Webp):
                before.save(buf, "WEBP", quality=last.quality)
                return buf.getvalue(), ".webp"
            before.save(buf, "JPEG", quality=last.quality, subsampling=_PIL_SUBSAMPLING[last.subsampling])
            return buf.getvalue(), ".jpg"
        self.apply(image, seed).save(buf, "PNG")
        return buf.getvalue(), ".png"

    def differentiable(self, x: torch.Tensor, out_size: int, quantize: bool = True) -> torch.Tensor:
        """Differentiable twin of ``model.preprocess(edit.apply(to_pil(x)))`` for a batch.

        Runs 8-bit quantization, each step, then the default model preprocessing
        (:func:`ronan.images.to_model_tensor`: centre square, Lanczos to ``out_size``) with
        the same formulas as Pillow, in float64 (float32 cannot reproduce Pillow's integer
        rounding: a blur is then off by one level on ~10% of pixels). Rounding is
        straight-through: the forward pass follows the exact path (see the measured differences
        in ``tests/test_edits.py``), gradients pass rounding unchanged and stop only where a
        value is clipped. Noise is the identity (it cannot be inverted); WebP is Pillow's exact
        round trip forward and the identity backward (see :attr:`fully_differentiable`).

        Args:
            x (Tensor[B, C, H, W]): images in [0, 1], C = 1 or 3 (the model's channels).
            out_size (int): side of the output (the model's resolution).
            quantize (bool): default True; False skips the 8-bit roundings of pixels (a
                smooth forward pass, off by up to half a level per rounding) but keeps
                JPEG's coefficient rounding.

        Returns:
            Tensor[B, C, out_size, out_size] in [0, 1].
        """
        v = ste_round(x.clamp(0.0, 1.0) * 255.0, quantize).double()
        for step in self.steps:
            v = step.levels(v, quantize)
        return (fit_resize(v, out_size, quantize) / 255.0).to(x.dtype)


# ---------------------------------------------------------------------------- parsing
_INT = re.compile(r"^\d+$")


def _bad(spec: str, reason: str) -> EditError:
    return EditError(f"invalid edit {spec!r}: {reason}; expected {GRAMMAR}")


def _float(spec: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(spec, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _bad(spec, f"{what} {text!r} is not a finite number")
    return float(_num(value))


def _parse_step(spec: str, part: str) -> Step | None:
    op, _, rest = part.partition(":")
    args = rest.split(":") if rest else []
    if op == "none" and not args:
        return None
    if op == "jpeg":
        if len(args) not in (1, 2) or not _INT.match(args[0]) or not 1 <= int(args[0]) <= 100:
            raise _bad(spec, f"{part!r} needs an integer quality 1..100")
        if len(args) == 2 and args[1] not in _SUBSAMPLING:
            raise _bad(spec, f"subsampling {args[1]!r} is not 420, 422 or 444")
        return Jpeg(int(args[0]), _SUBSAMPLING[args[1]] if len(args) == 2 else "4:2:0")
    if op == "webp":
        if len(args) != 1 or not _INT.match(args[0]) or not 0 <= int(args[0]) <= 100:
            raise _bad(spec, f"{part!r} needs an integer quality 0..100")
        return Webp(int(args[0]))
    if op == "filter":
        if len(args) != 1 or args[0] not in FILTERS:
            raise _bad(spec, f"unknown filter in {part!r}")
        return Filter(args[0])
    limits = {
        "resize": ("factor", 0.0, 4.0, False),
        "crop": ("fraction", 0.3, 1.0, False),
        "noise": ("sigma", 0.0, 0.5, True),
    }
    if op not in limits:
        raise _bad(spec, f"unknown edit {op!r}")
    what, lo, hi, lo_closed = limits[op]
    if len(args) != 1:
        raise _bad(spec, f"{op} takes one number")
    value = _float(spec, args[0], what)
    if not (lo <= value if lo_closed else lo < value) or value > hi:
        raise _bad(spec, f"{what} {args[0]} is outside {'[' if lo_closed else '('}{lo:g}, {hi:g}]")
    if value == (0.0 if op == "noise" else 1.0):
        return None  # changes nothing
    return {"resize": Resize, "crop": Crop, "noise": Noise}[op](value)


def parse_edit(spec: str | Edit) -> Edit:
    """Parse an edit spec (see the module docstring for the grammar).

    Args:
        spec (str | Edit): e.g. ``"jpeg:75"``, ``"resize:0.5+jpeg:90:444"``, ``"none"``; an
            :class:`Edit` is returned unchanged.

    Returns:
        Edit; ``Edit.spec`` is the canonical spelling.

    Raises:
        EditError (a ValueError): with a one-line message naming the grammar.
    """
    if isinstance(spec, Edit):
        return spec
    if not isinstance(spec, str):
        raise _bad(str(spec), "not a string")
    text = spec.strip().lower().replace(" ", "")
    if not text:
        raise _bad(spec, "empty")
    steps = []
    for part in text.split("+"):
        if not part:
            raise _bad(spec, "empty step")
        step = _parse_step(spec, part)
        if step is not None:
            steps.append(step)
    return Edit(tuple(steps))


def apply_batch(images: torch.Tensor, edit: Edit | str, seed: int = 0) -> list[Image.Image]:
    """Quantize a batch to 8-bit PIL images (the world sees 8-bit files) and apply ``edit``.

    Image ``i`` uses seed ``seed + i``: ``apply_batch(x, e, s)[i] == e.apply(to_pil(x[i]), s + i)``.

    Args:
        images (Tensor[B, C, H, W]): values in [0, 1], C = 1 or 3.
        edit (Edit | str): the edit or its spec.
        seed (int): base seed of the random steps, default 0.

    Returns:
        list of B edited 8-bit PIL images (``L`` or ``RGB``); pass each to ``model.preprocess``.
    """
    edit = parse_edit(edit)
    return [edit.apply(to_pil(im), seed + i) for i, im in enumerate(images)]
