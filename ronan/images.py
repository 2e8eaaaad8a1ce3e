"""Loading user images safely and converting them to a model's domain.

Every image that enters RONAN goes through :func:`load_image`, which enforces the limits
below and normalises odd modes, so that the rest of the code only sees 8-bit ``L`` or
``RGB`` PIL images:

* palette, ``1``, ``LA``/``PA``/``RGBA`` (transparent areas composited over **black**, the
  background of the bundled Fashion-MNIST models), ``CMYK``/``YCbCr``/``LAB``/``HSV``
  (converted to RGB), 16-bit and 32-bit integer or float images (rescaled to 8 bits);
* EXIF orientation is applied; animated images use their first frame (noted);
* the declared size is checked from the header before decoding; images larger than
  :data:`MAX_SIDE` are reduced while decoded (noted), and at most ``RONAN_DECODE_MEGAPIXELS``
  are decoded at once in the process (:mod:`ronan.limits`), so memory stays bounded whatever
  the uploads and their concurrency;
* SVG, PDF and anything Pillow cannot decode are refused with a readable message.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import limits
from .digests import sha256_bytes, sha256_file  # noqa: F401 (sha256_file: re-exported)
from .limits import PixelBudget

if TYPE_CHECKING:
    import torch

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Largest accepted file (bytes) by default: 50 MiB (``RONAN_MAX_FILE_MB``, :mod:`ronan.limits`)."""
MAX_PIXELS = 64_000_000
"""Largest accepted image (declared width x height) by default: 64 megapixels
(``RONAN_MAX_IMAGE_MEGAPIXELS``)."""
MAX_SIDE = 2048
"""Default longest side kept on load (``RONAN_MAX_SIDE``): larger images are reduced while they are
decoded (JPEG: at the DCT scale, others by box reduction). Four times the largest model resolution
(512), so no model sees a difference."""
MIN_SIDE = 8
"""Smallest accepted width or height, in pixels."""
HEAD_BYTES = 256 * 1024
"""Bytes of a file's start kept with a loaded image for edit detection (headers, not pixels)."""
IMAGE_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".webp",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".ppm",
        ".pgm",
        ".pbm",
        ".tga",
        ".ico",
        ".jp2",
        ".avif",
        ".heic",
    }
)
"""File suffixes taken as images where files are chosen by name (zip archives, evaluation folders);
loading decides in the end (SVG, a vector format, is refused and not listed)."""


@dataclass
class LoadedImage:
    """A user image after loading and mode normalisation.

    Attributes:
        image (PIL.Image.Image): 8-bit ``"L"`` or ``"RGB"`` image.
        name (str): display name (file name, or ``"image"``).
        sha256 (str): SHA-256 of the original file bytes (of the pixels for in-memory images).
        original_mode (str): Pillow mode before conversion, e.g. ``"RGBA"``.
        original_size (tuple[int, int]): (width, height) of the file, before any reduction.
        notes (list[str]): conversions applied that a reader should know about (e.g. that an
            image larger than ``RONAN_MAX_SIDE`` was reduced on load).
        original_format (str | None): Pillow's format name of the file (``"JPEG"``, ``"PNG"``...);
            None for an image made in memory.
        head (bytes | None): the first :data:`HEAD_BYTES` of the file (its headers: JPEG
            quantization tables, EXIF, WebP chunks), for :func:`ronan.edits.detect`; None for
            an image made in memory.
        file_bytes (int | None): the file's size in bytes (an AVIF's or JPEG 2000's bits per
            pixel bound what its compression did); None for an image made in memory.
    """

    image: Image.Image
    name: str
    sha256: str
    original_mode: str
    original_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    original_format: str | None = None
    head: bytes | None = field(default=None, repr=False)
    file_bytes: int | None = None


def load_image(
    source: str | Path | bytes | Image.Image, name: str | None = None, *, budget: PixelBudget | None = None
) -> LoadedImage:
    """Load an image from a path, raw bytes or a PIL image, within the limits of :mod:`ronan.limits`.

    The declared size is checked from the file's header before any pixel is decoded; an image
    whose longest side exceeds ``max_side`` (default 2048) is reduced while it is decoded, so
    that a small file declaring a huge image costs little memory (see :func:`decode`).

    Args:
        source: file path, encoded file bytes, or an already opened PIL image.
        name (str | None): display name; defaults to the file name.
        budget (PixelBudget | None): the request's decoded-pixel budget, charged with this
            image's declared pixels (None: no per-request bound, only the per-image ones).

    Returns:
        LoadedImage with an 8-bit ``L`` or ``RGB`` image.

    Raises:
        ImageError: unreadable, empty, too large or too small, unsupported format.
        LimitExceeded: the request's pixel budget is spent.
    """
    from .errors import ImageError

    lim = limits.current()
    if isinstance(source, Image.Image):
        label = name or "image"
        _check_size(source.size, label, lim)
        if budget is not None:
            budget.charge(source.width * source.height, label)
        digest = sha256_bytes(source.tobytes())
        with _decoding(label):
            img, notes = decode(source, lim.max_side, draft=False)
        return _normalise(img, label, digest, notes, source.mode, source.size)

    max_bytes = lim.max_file_mb * 2**20
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = name or path.name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageError(f"{label}: file not found") from None
        except OSError as e:
            raise ImageError(f"{label}: cannot read file ({e.strerror or e})") from None
        if path.is_dir():
            raise ImageError(f"{label}: is a folder, not an image file")
        if size > max_bytes:
            raise ImageError(f"{label}: file is {size / 2**20:.1f} MiB; the limit is {lim.max_file_mb} MiB")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"{label}: cannot read file ({e.strerror or e})") from None
    else:
        data = bytes(source)
        label = name or "image"

    if len(data) == 0:
        raise ImageError(f"{label}: file is empty")
    if len(data) > max_bytes:
        raise ImageError(f"{label}: file is {len(data) / 2**20:.1f} MiB; the limit is {lim.max_file_mb} MiB")
    head = data[:512].lstrip().lower()
    if head.startswith(b"<?xml") or head.startswith(b"<svg") or b"<svg" in head:
        raise ImageError(f"{label}: SVG (vector) images are not supported; export it as PNG first")
    img, notes, (fmt, mode, size) = _open_and_decode(data, label, lim, budget)
    loaded = _normalise(img, label, sha256_bytes(data), notes, mode, size, fmt, data[:HEAD_BYTES])
    loaded.file_bytes = len(data)
    return loaded


def _check_size(size: tuple[int, int], label: str, lim: limits.Limits) -> None:
    """Refuse an image by its declared size (before decoding): too small, or too many pixels."""
    from .errors import ImageError

    w, h = size
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageError(f"{label}: image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if w * h > lim.max_image_megapixels * 1_000_000:
        raise ImageError(f"{label}: image is {w}x{h} pixels; the limit is {lim.max_image_megapixels} megapixels")


def _open_and_decode(
    data: bytes, label: str, lim: limits.Limits, budget: PixelBudget | None
) -> tuple[Image.Image, list[str], tuple]:
    """Open ``data``, check the header's size, decode (reduced past ``max_side``) under the
    process-wide decode budget; returns the image, the notes of what was done and the file's
    ``(format, mode, size)``."""
    with _decoding(label), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size was checked just below
        img = Image.open(io.BytesIO(data))
        _check_size(img.size, label, lim)
        if budget is not None:
            budget.charge(img.width * img.height, label)
        original = (img.format, img.mode, img.size)
        with limits.decode_slot(img.width * img.height):
            return (*decode(img, lim.max_side), original)
    raise AssertionError("unreachable")  # for mypy: _decoding re-raises every exception


@contextlib.contextmanager
def _decoding(label: str):
    """Turn any failure of Pillow's opening or decoding into one :class:`ImageError` line.

    A format plugin's decoder may raise anything on damaged data: OSError, SyntaxError,
    ValueError, EOFError, struct.error, MemoryError, and (Pillow 12) IndexError from a truncated
    QOI file or TypeError from a TIFF without dimensions. ImageError and LimitExceeded pass as
    they are (already one line).
    """
    from .errors import ImageError, RonanError, first_line

    try:
        yield
    except RonanError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageError(f"{label}: not a readable image (unknown format, or a damaged or oversized file)") from None
    except Exception as e:
        raise ImageError(f"{label}: image data is damaged or truncated ({first_line(e)})") from None


REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "RGBa", "La", "I", "F", "CMYK", "YCbCr"}
"""Modes :meth:`PIL.Image.Image.reduce` handles; others are converted first (16-bit to ``I``,
palette and 1-bit to their 8-bit equivalent)."""


def decode(img: Image.Image, max_side: int = MAX_SIDE, draft: bool = True) -> tuple[Image.Image, list[str]]:
    """Decode an opened image's first frame with its longest side at most ``max_side``.

    A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) still at least ``max_side``
    (``Image.draft``: the full-size pixels never exist); any other format is decoded, then box-
    reduced by an integer factor (``Image.reduce``) at once. EXIF orientation is read before
    the reduction and applied after it. ``draft=False`` leaves ``img`` itself unchanged (an image
    the caller owns: only the reduction's copy is new).

    Returns:
        ``(image, notes)``: the decoded image (mode unchanged except for the conversion a
        reduction may need) and the notes (first frame of an animation, reduction, orientation).
    """
    size = img.size
    notes: list[str] = []
    frames = getattr(img, "n_frames", 1) or 1
    if frames > 1:
        img.seek(0)
        notes.append(f"animated image with {frames} frames: the first frame was used")
    orientation = _orientation(img, notes)
    if draft and max(size) > max_side and img.format == "JPEG":
        scale = max_side / max(size)
        img.draft(img.mode, (math.ceil(size[0] * scale), math.ceil(size[1] * scale)))
    img.load()
    if max(img.size) > max_side:
        if img.mode not in REDUCIBLE_MODES:
            img = img.convert(
                "I"
                if img.mode.startswith("I;16")
                else "RGBA"
                if img.mode == "P" and "transparency" in img.info
                else "RGB"
                if img.mode == "P"
                else "L"
                if img.mode == "1"
                else "RGB"
            )
        img = img.reduce(math.ceil(max(img.size) / max_side))
    if img.size != size:
        notes.append(
            f"image of {size[0]}x{size[1]} reduced to {img.size[0]}x{img.size[1]} on load (larger than "
            f"{max_side} pixels, the most kept: RONAN_MAX_SIDE)"
        )
    return _orient(img, orientation, notes), notes


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(img: Image.Image, notes: list[str]) -> int:
    """The EXIF orientation tag (1 when absent or unreadable)."""
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not stop the analysis
        notes.append("EXIF orientation could not be read and was ignored")
        return 1


def _orient(img: Image.Image, orientation: int, notes: list[str]) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    if method is None:
        return img
    notes.append("EXIF orientation applied")
    return img.transpose(method)


def _normalise(
    img: Image.Image,
    label: str,
    digest: str,
    notes: list[str],
    mode: str,
    size: tuple[int, int],
    fmt: str | None = None,
    head: bytes | None = None,
) -> LoadedImage:
    """The :class:`LoadedImage` of a decoded image: converted to 8-bit ``L``/``RGB``; ``mode``,
    ``size`` and ``fmt`` are the file's (before any reduction or conversion)."""
    from .errors import ImageError

    try:
        out = _to_8bit(img, notes, mode)
    except (OSError, ValueError) as e:
        raise ImageError(f"{label}: cannot convert image mode {mode} ({e})") from None
    return LoadedImage(out, label, digest, mode, (size[0], size[1]), notes, fmt, head)


def _to_8bit(img: Image.Image, notes: list[str], file_mode: str | None = None) -> Image.Image:
    mode = img.mode
    if mode in ("L", "RGB"):
        return img.copy()
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        return _to_8bit(img, notes, file_mode)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 255:
            notes.append("transparent areas were composited over black")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        flat = Image.alpha_composite(background, rgba)
        return flat.convert("L" if mode in ("LA", "La") else "RGB")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        notes.append(f"{mode} converted to RGB")
        return img.convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _rescale(img, notes, file_mode or mode)
    notes.append(f"{mode} converted to RGB")
    return img.convert("RGB")


def _rescale(img: Image.Image, notes: list[str], file_mode: str) -> Image.Image:
    """A 16/32-bit integer or float image rescaled to 8 bits (``file_mode``: the mode in the file,
    which says whether it was 16-bit). Pixels that are not finite numbers (float images) are set
    to the darkest (NaN, -inf) or brightest (+inf) value, with a note; numpy never warns."""
    mode = img.mode
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[..., :3]
    finite = np.isfinite(arr)
    bad = int(arr.size - np.count_nonzero(finite))
    lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if bad < arr.size else (0.0, 0.0)
    if bad:
        notes.append(
            f"{bad} pixel value{'s' if bad != 1 else ''} not finite (NaN or infinite): NaN and -inf set "
            f"to the darkest value, +inf to the brightest"
        )
        with np.errstate(invalid="ignore"):
            arr = np.where(np.isnan(arr), lo, np.clip(arr, lo, hi))
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = arr * 255.0
    elif lo >= 0.0 and hi <= 255.0 and not file_mode.startswith("I;16"):
        scaled = arr
    elif lo >= 0.0 and hi <= 65535.0:
        scaled = arr / 257.0
    else:
        scaled = (arr - lo) / max(hi - lo, 1e-12) * 255.0
    notes.append(f"{file_mode} image rescaled to 8 bits")
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB" if out.ndim == 3 else "L")


def to_model_tensor(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """Centre-crop ``image`` to a square, resize to ``size`` and return ``Tensor[C, size, size]``.

    Args:
        image (PIL.Image.Image): ``L`` or ``RGB`` image (see :func:`load_image`).
        size (int): output side in pixels.
        channels (int): 1 converts to grayscale (ITU-R 601-2 luma), 3 to RGB.

    Returns:
        float32 tensor with values in [0, 1].
    """
    import torch  # here: reading images (and `ronan models`) needs no torch

    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (size, size):
        image = ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)
    arr = np.asarray(image, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if channels == 1 else t.permute(2, 0, 1).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    """Convert ``Tensor[C, H, W]`` in [0, 1] to an 8-bit PIL image (``L`` or ``RGB``)."""
    arr = (image.detach().float().clamp(0, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0], "L")
    return Image.fromarray(arr.transpose(1, 2, 0), "RGB")
