"""Loading user images safely and converting them to a model's domain.

Every image that enters RONAN goes through :func:`load_image`, which enforces the limits
below and normalises odd modes, so that the rest of the code only sees 8-bit ``L`` or
``RGB`` PIL images:

* palette, ``1``, ``LA``/``PA``/``RGBA`` (transparent areas composited over **black**, the
  background of the bundled Fashion-MNIST models), ``CMYK``/``YCbCr``/``LAB``/``HSV``
  (converted to RGB), 16-bit and 32-bit integer or float images (rescaled to 8 bits);
* EXIF orientation is applied; animated images use their first frame (noted);
* SVG, PDF and anything Pillow cannot decode are refused with a readable message.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_FILE_BYTES = 50 * 1024 * 1024
"""Largest accepted file (bytes): 50 MiB."""
MAX_PIXELS = 64_000_000
"""Largest accepted image (width x height): 64 megapixels."""
MIN_SIDE = 8
"""Smallest accepted width or height, in pixels."""
HEAD_BYTES = 256 * 1024
"""Bytes of a file's start kept with a loaded image for edit detection (headers, not pixels)."""


@dataclass
class LoadedImage:
    """A user image after loading and mode normalisation.

    Attributes:
        image (PIL.Image.Image): 8-bit ``"L"`` or ``"RGB"`` image.
        name (str): display name (file name, or ``"image"``).
        sha256 (str): SHA-256 of the original file bytes (of the pixels for in-memory images).
        original_mode (str): Pillow mode before conversion, e.g. ``"RGBA"``.
        original_size (tuple[int, int]): (width, height).
        notes (list[str]): conversions applied that a reader should know about.
        original_format (str | None): Pillow's format name of the file (``"JPEG"``, ``"PNG"``...);
            None for an image made in memory.
        head (bytes | None): the first :data:`HEAD_BYTES` of the file (its headers: JPEG
            quantization tables, EXIF, WebP chunks), for :func:`ronan.edits.detect`; None for
            an image made in memory.
    """

    image: Image.Image
    name: str
    sha256: str
    original_mode: str
    original_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    original_format: str | None = None
    head: bytes | None = field(default=None, repr=False)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at ``path``, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_image(source: str | Path | bytes | Image.Image, name: str | None = None) -> LoadedImage:
    """Load an image from a path, raw bytes or a PIL image, within the limits above.

    Args:
        source: file path, encoded file bytes, or an already opened PIL image.
        name (str | None): display name; defaults to the file name.

    Returns:
        LoadedImage with an 8-bit ``L`` or ``RGB`` image.

    Raises:
        ImageError: unreadable, empty, too large or too small, unsupported format.
    """
    from .errors import ImageError

    if isinstance(source, Image.Image):
        label = name or "image"
        return _normalise(source, label, sha256_bytes(source.tobytes()))

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
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{label}: file is {size / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageError(f"{label}: cannot read file ({e.strerror or e})") from None
    else:
        data = bytes(source)
        label = name or "image"

    if len(data) == 0:
        raise ImageError(f"{label}: file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{label}: file is {len(data) / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES // 2**20} MiB")
    head = data[:512].lstrip().lower()
    if head.startswith(b"<?xml") or head.startswith(b"<svg") or b"<svg" in head:
        raise ImageError(f"{label}: SVG (vector) images are not supported; export it as PNG first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{label}: image is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{label}: not a readable image (unknown format, or a damaged or oversized file)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{label}: image data is damaged or truncated ({e})") from None
    loaded = _normalise(img, label, sha256_bytes(data))
    loaded.original_format = img.format
    loaded.head = data[:HEAD_BYTES]
    return loaded


def _normalise(img: Image.Image, label: str, digest: str) -> LoadedImage:
    from .errors import ImageError

    notes: list[str] = []
    mode, size = img.mode, img.size
    w, h = size
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageError(f"{label}: image is {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label}: image is {w}x{h} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels")
    frames = getattr(img, "n_frames", 1) or 1
    if frames > 1:
        img.seek(0)
        notes.append(f"animated image with {frames} frames: the first frame was used")
    try:
        transposed = ImageOps.exif_transpose(img)
        if transposed is not None and transposed.size != img.size:
            notes.append("EXIF orientation applied")
        img = transposed if transposed is not None else img
    except Exception:  # noqa: BLE001 - broken EXIF must not stop the analysis
        notes.append("EXIF orientation could not be read and was ignored")

    try:
        out = _to_8bit(img, notes)
    except (OSError, ValueError) as e:
        raise ImageError(f"{label}: cannot convert image mode {mode} ({e})") from None
    return LoadedImage(out, label, digest, mode, size, notes)


def _to_8bit(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("L", "RGB"):
        return img.copy()
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        return _to_8bit(img, notes)
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
        arr = np.asarray(img, dtype=np.float64)
        if arr.ndim == 3:
            arr = arr[..., :3]
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif lo >= 0.0 and hi <= 255.0 and mode != "I;16" and not mode.startswith("I;16"):
            scaled = arr
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        notes.append(f"{mode} image rescaled to 8 bits")
        scaled = np.nan_to_num(scaled, nan=0.0)
        out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return Image.fromarray(out, "RGB" if out.ndim == 3 else "L")
    notes.append(f"{mode} converted to RGB")
    return img.convert("RGB")


def to_model_tensor(image: Image.Image, size: int, channels: int) -> torch.Tensor:
    """Centre-crop ``image`` to a square, resize to ``size`` and return ``Tensor[C, size, size]``.

    Args:
        image (PIL.Image.Image): ``L`` or ``RGB`` image (see :func:`load_image`).
        size (int): output side in pixels.
        channels (int): 1 converts to grayscale (ITU-R 601-2 luma), 3 to RGB.

    Returns:
        float32 tensor with values in [0, 1].
    """
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
