"""What a file reveals about its edits: JPEG or WebP quality, JPEG subsampling, size, software.

:func:`detect` reads the header (pixels only for a lossy WebP's quality): the format, for JPEG
the quality estimated from the quantization tables (exact for files saved by Pillow or any
libjpeg at a 1..100 quality), the chroma subsampling and progressive mode, lossless or lossy
WebP and a lossy WebP's quality (estimated from its VP8 quantizers and a re-encoding of its
pixels, :mod:`ronan.edits.webp`), the size relative to the model's resolution, EXIF
orientation, and the ``Software`` / ``ProcessingSoftware`` hints of EXIF and PNG text.
:func:`suggested_edit` turns that into the edit to assume, e.g. ``resize:0.75+jpeg:75``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import ImageError
from .ghost import GHOST_LOWEST, earlier_jpeg_quality
from .jpeg import estimate_quality
from .spec import Edit, parse_edit
from .webp import estimate_quality as estimate_webp_quality
from .webp import lossless as webp_lossless

_SAMPLINGS = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (4, 1): "4:1:1", (1, 2): "4:4:0"}
_MODELLED = ("4:4:4", "4:2:2", "4:2:0")
_EXIF_SOFTWARE = {0x0131: "Software", 0x000B: "ProcessingSoftware"}
_LOSSLESS = {"PNG", "BMP", "PPM", "TGA", "QOI", "ICO"}


@dataclass
class Detection:
    """What :func:`detect` found (JSON-ready with :meth:`to_dict`).

    Attributes:
        format (str | None): Pillow's format name (``"JPEG"``, ``"PNG"``, ``"WEBP"``...);
            None for an image made in memory.
        width, height (int): pixels, after EXIF orientation (what the model sees).
        model_size (int), model_channels (int): the model the image is checked against.
        lossy (bool | None): lossy compression; None when unknown.
        jpeg_quality (int | None): best-matching libjpeg quality 1..100.
        jpeg_table_error (float | None): mean absolute difference per entry between the
            file's tables and libjpeg's at ``jpeg_quality``; 0.0 = exactly libjpeg's.
        jpeg_subsampling (str | None): ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``, ``"4:1:1"``,
            ``"4:4:0"`` or ``"other"``; None for grayscale JPEG and other formats.
        progressive (bool | None): progressive JPEG.
        webp_quality (int | None): the libwebp quality 0..100 a lossy WebP was most likely saved at
            (:func:`ronan.edits.webp.estimate_quality`: an estimate, within 2 of the true one for 94%
            of Pillow's files, up to ~20 off on images of few 16x16 blocks); None for other files, or
            where the header gives no quantizers.
        webp_qualities (list[int] | None): every quality the header allows (the true one is among
            them for a file of libwebp's defaults); the verdict's bounds span them
            (:func:`ronan.edits.stand_in.judged`).
        webp_index_error (int | None): how far the file's quantizer indices are from libwebp's
            defaults at ``webp_quality`` (0: consistent; more: another encoder or other settings).
        grayscale (bool): the file holds one channel (Pillow modes 1, L, LA, I, I;16, F) while the
            model makes colour images: its colour was removed, an edit no spec models.
        grey_levels (int | None): for a palette image (GIF, palette PNG...) checked against a
            grayscale model: how many grey levels it holds (:func:`grey_levels`: those of 99% of its
            pixels), 1..256 (a palette keeps an 8-bit grey image exactly only where it kept each of
            its levels; a web palette keeps 6); None for other files and for colour models.
        bits_per_pixel (float | None): for an AVIF or JPEG 2000 file (codecs whose quality a file
            does not reveal): its size in bits over its pixels; None for other files.
        jpeg_ghost_quality (int | None): for a lossless file, or a JPEG, whose pixels carry an earlier
            JPEG compression (a PNG made from a JPEG; a JPEG saved again at a higher quality): its
            quality, 20..98, found by re-compressing them (:mod:`ronan.edits.ghost`; within 1 at 75 and
            above, 3 at 50); None where none is found.
        software (list[str]): ``"Software: ..."`` hints from EXIF and PNG text.
        notes (list[str]): what the suggestion cannot model, or approximates.
        suggested (str): canonical spec of the edit to assume (:func:`suggested_edit`).
    """

    format: str | None
    width: int
    height: int
    model_size: int
    model_channels: int
    lossy: bool | None = None
    jpeg_quality: int | None = None
    jpeg_table_error: float | None = None
    jpeg_subsampling: str | None = None
    progressive: bool | None = None
    webp_quality: int | None = None
    webp_qualities: list[int] | None = None
    webp_index_error: int | None = None
    grayscale: bool = False
    grey_levels: int | None = None
    bits_per_pixel: float | None = None
    jpeg_ghost_quality: int | None = None
    software: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    suggested: str = "none"

    @property
    def scale(self) -> float:
        """Short side / model resolution (the model's preprocessing crops the centre square)."""
        return min(self.width, self.height) / self.model_size

    @property
    def square(self) -> bool:
        return self.width == self.height

    @property
    def resized(self) -> str:
        """``"no"``, ``"down"`` or ``"up"``: the short side against the model's resolution."""
        side = min(self.width, self.height)
        return "no" if side == self.model_size else ("down" if side < self.model_size else "up")

    def describe(self) -> str:
        """One sentence, e.g. ``"JPEG quality 75 (4:2:0), 48x48 = 0.75x the model's 64x64: assuming
        resize:0.75+jpeg:75"``."""
        if self.format == "JPEG":
            what = f"JPEG quality {self.jpeg_quality}"
            extra = [self.jpeg_subsampling] if self.jpeg_subsampling else []
            if self.progressive:
                extra.append("progressive")
            if self.jpeg_ghost_quality is not None:
                extra.append(f"an earlier JPEG about quality {self.jpeg_ghost_quality} in its pixels")
            if self.jpeg_table_error:
                extra.append(f"tables not libjpeg's, nearest quality, mean difference {self.jpeg_table_error:.2g}")
            what += f" ({', '.join(extra)})" if extra else ""
        elif self.format == "WEBP" and self.webp_quality is not None:
            span = self.webp_qualities or [self.webp_quality]
            what = f"lossy WebP, quality about {self.webp_quality} (from its quantizers"
            what += f"; {span[0]}-{span[-1]} possible" if span[0] != span[-1] else ""
            what += f", not libwebp's defaults: nearest, {self.webp_index_error} off)" if self.webp_index_error else ")"
        elif self.format is None:
            what = "in-memory image"
        else:
            kind = {True: " (lossy)", False: " (lossless)", None: ""}[self.lossy]
            if self.jpeg_ghost_quality is not None:
                kind = f" (lossless; an earlier JPEG about quality {self.jpeg_ghost_quality} in its pixels)"
            what = f"{'WebP' if self.format == 'WEBP' else self.format}{kind}"
        m = self.model_size
        size = f"{self.width}x{self.height}"
        if not self.square:
            side = min(self.width, self.height)
            size += f", not square: the model uses the centre {side}x{side}"
        if self.resized == "no":
            size += f" = the model's {m}x{m}"
        else:
            size += f" = {self.scale:.4g}x the model's {m}x{m}"
        return f"{what}, {size}: assuming {self.suggested}"

    def to_dict(self) -> dict:
        """Every field plus ``scale``, ``square``, ``resized`` and ``description``."""
        d = asdict(self)
        d.update(scale=self.scale, square=self.square, resized=self.resized, description=self.describe())
        return d


def detect(
    data: bytes | str | Path | Image.Image,
    model_size: int,
    model_channels: int,
    pixels: Image.Image | None = None,
    file_bytes: int | None = None,
) -> Detection:
    """Read what the file reveals about its edits; suggest the edit to assume.

    Args:
        data: the file's bytes (best: WebP lossiness needs them), a path, or an opened PIL
            image (``Image.open``; an image made in memory has no format and says so).
        model_size (int): the model's resolution (side of its square images).
        model_channels (int): 1 or 3; subsampling is left out of the suggestion for 1.
        pixels (PIL.Image.Image | None): the file's decoded image (8-bit L or RGB, after EXIF
            orientation), for a lossy WebP's quality, and for its size where ``data`` is only the
            start of a WebP (Pillow opens none cut off); None: decoded from ``data``.
        file_bytes (int | None): the whole file's size where ``data`` is only its start (an AVIF's
            or JPEG 2000's bits per pixel); None: the size of ``data``.

    Returns:
        Detection; ``detection.suggested`` is the canonical spec of :func:`suggested_edit`.

    Raises:
        ImageError: the bytes are not an image Pillow can read.
    """
    raw = None
    if isinstance(data, Image.Image):
        img = data
    else:
        raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else bytes(data)
        try:
            img = Image.open(io.BytesIO(raw))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            if pixels is None or signature(raw) is None:
                raise ImageError(f"not a readable image ({e})") from None
            img = pixels  # Pillow opens no WebP or AVIF cut off (a loaded image's head): its pixels stand in
    fmt = signature(raw) if img is pixels and raw is not None else img.format
    w, h = img.size
    det = Detection(fmt, w, h, model_size, model_channels)
    exif: Mapping[int, Any]
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF must not stop detection
        exif = {}
    if exif.get(0x0112) in (5, 6, 7, 8):
        det.width, det.height = h, w
        det.notes.append("EXIF orientation turns the image by 90 degrees")
    det.software = [f"{name}: {str(exif[tag]).strip()}" for tag, name in _EXIF_SOFTWARE.items() if exif.get(tag)]
    if isinstance(img.info.get("Software"), str) and fmt != "JPEG":
        det.software.append(f"Software: {img.info['Software'].strip()}")

    if model_channels == 3 and img.mode in ("1", "L", "LA", "I", "I;16", "F"):
        det.grayscale = True
        det.notes.append("grayscale file for a colour model: its colour was removed (not modelled)")
    if fmt == "JPEG":
        det.lossy = True
        tables = getattr(img, "quantization", None) or {}
        if tables:
            det.jpeg_quality, det.jpeg_table_error = estimate_quality(tables)
        layers = getattr(img, "layer", [])
        if len(layers) == 3:
            (_, h0, v0, _), *rest = layers
            chroma_1x1 = all(lh == 1 and lv == 1 for _, lh, lv, _ in rest)
            det.jpeg_subsampling = _SAMPLINGS.get((h0, v0), "other") if chroma_1x1 else "other"
        elif len(layers) == 4:
            det.notes.append("CMYK JPEG")
        det.progressive = bool(img.info.get("progressive") or img.info.get("progression"))
        if det.jpeg_quality is not None and det.jpeg_quality - 2 > GHOST_LOWEST:  # an earlier, lower one
            det.jpeg_ghost_quality = _ghost(_decoded(img, pixels), below=det.jpeg_quality - 2)
    elif fmt == "WEBP":
        lossless = webp_lossless(raw) if raw is not None else None
        det.lossy = None if lossless is None else not lossless
        if det.lossy and raw is not None:
            _webp_quality(det, raw, img if pixels is None else pixels)
    elif fmt in ("AVIF", "JPEG2000"):
        size = file_bytes if file_bytes is not None else len(raw) if raw is not None else None
        det.bits_per_pixel = None if size is None else round(8 * size / max(w * h, 1), 3)
        det.notes.append(f"{'AVIF' if fmt == 'AVIF' else 'JPEG 2000'}: its quality is not read (not modelled)")
    elif fmt == "TIFF":
        det.lossy = "jpeg" in str(img.info.get("compression", "")).lower()
    elif fmt == "GIF":
        det.lossy = True
        det.notes.append("GIF: colours reduced to a 256-colour palette (not modelled)")
    elif fmt in _LOSSLESS and img.mode in ("P", "PA") and model_channels == 3:
        det.lossy = True
        det.notes.append("palette image: colours reduced to at most 256 (not modelled)")
    elif fmt in _LOSSLESS:
        det.lossy = False
    if det.lossy is False and img.mode not in ("P", "PA"):
        det.jpeg_ghost_quality = _ghost(_decoded(img, pixels))
    if model_channels == 1 and (fmt == "GIF" or (fmt in _LOSSLESS and img.mode in ("P", "PA"))):
        det.grey_levels = grey_levels(_decoded(img, pixels))
        if det.grey_levels is not None:
            det.notes.append(f"palette image of {det.grey_levels} grey levels (fewer levels: not modelled)")
    det.suggested = _suggest(det).spec
    return det


def _decoded(img: Image.Image, pixels: Image.Image | None) -> Image.Image | None:
    """The decoded pixels: ``pixels`` where given, else the opened file ``img`` where it is small
    (:data:`DECODE_PIXELS`; a huge declared size is not decoded here), else None."""
    return pixels if pixels is not None else img if img.width * img.height <= DECODE_PIXELS else None


def _ghost(image: Image.Image | None, below: int = 99) -> int | None:
    """:func:`ronan.edits.ghost.earlier_jpeg_quality` of ``image`` (under ``below``); None for none, or
    where its pixels cannot be decoded (a file cut off)."""
    if image is None:
        return None
    try:
        return earlier_jpeg_quality(image, below)
    except (OSError, ValueError):
        return None


def signature(raw: bytes) -> str | None:
    """The format of a file Pillow may not open from its start alone, read from its first bytes:
    ``"WEBP"``, ``"AVIF"`` (an ISO media file of brand ``avif`` or ``avis``), ``"JPEG2000"`` (a JP2 box
    or a bare codestream); None for others."""
    if webp_lossless(raw) is not None:
        return "WEBP"
    if raw[4:8] == b"ftyp" and raw[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if raw.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "JPEG2000"
    return None


DECODE_PIXELS = 1024 * 1024
"""Largest file (pixels) :func:`detect` decodes itself for a palette's grey levels or an earlier JPEG,
where it is not given the decoded pixels (a loaded image reduced on load, or bytes alone); a larger one
gets neither looked for."""


def grey_levels(image: Image.Image | None, share: float = 0.99) -> int | None:
    """How many grey levels ``image`` holds once converted to 8-bit grey, as a grayscale model sees
    it: the fewest levels that hold ``share`` (default 99%) of its pixels (1..256; the few stray pixels
    a dithered palette puts on other colours do not count as levels). None for no image, or where its
    pixels cannot be decoded (a file cut off)."""
    if image is None:
        return None
    try:
        counts = sorted((count for count, _ in image.convert("L").getcolors(256) or []), reverse=True)
    except (OSError, ValueError):
        return None
    held, need = 0, share * sum(counts)
    for levels, count in enumerate(counts, 1):
        held += count
        if held >= need:
            return levels
    return len(counts) or None


WEBP_REENCODE_PIXELS = 1024 * 1024
"""Largest image (pixels) whose lossy WebP quality is chosen among the candidates by re-encoding it
(up to ~15 encodings, ~0.15 s each at this size); a larger one gets the middle candidate (the verdict's
bounds span them all), or no quality where its header has one segment."""


def _webp_quality(det: Detection, raw: bytes, img: Image.Image) -> None:
    """Set ``det.webp_quality``, ``det.webp_qualities`` and ``det.webp_index_error`` from the file
    (unset where its header gives no quantizers; the middle candidate where its pixels cannot be
    decoded or exceed :data:`WEBP_REENCODE_PIXELS`)."""
    pixels: Image.Image | None = None  # a head cut off before the pixels end, or too many to re-encode
    if img.width * img.height <= WEBP_REENCODE_PIXELS:
        try:
            img.load()
            pixels = img if img.mode in ("L", "RGB") else img.convert("RGB")
        except (OSError, ValueError):
            pass
    found = estimate_webp_quality(raw, pixels)
    if found is not None:
        det.webp_quality, det.webp_index_error, det.webp_qualities = found
        if det.webp_index_error:
            det.notes.append(f"WebP quantizers are not libwebp's defaults; quality {det.webp_quality} is the nearest")


def _suggest(det: Detection) -> Edit:
    """The edit to assume for ``det``; appends to ``det.notes`` what it cannot model."""
    steps = []
    if not det.square:
        det.notes.append("not square: the model's preprocessing keeps the centre square; a crop is not modelled")
    if det.resized != "no":
        steps.append(f"resize:{_snapped_scale(det):.6g}")
    if det.format == "JPEG" and det.jpeg_quality is not None:
        ss = det.jpeg_subsampling
        if det.model_channels == 3 and ss in _MODELLED and ss != "4:2:0":
            steps.append(f"jpeg:{det.jpeg_quality}:{ss.replace(':', '')}")
        else:
            if det.model_channels == 3 and ss not in _MODELLED and ss is not None:
                det.notes.append(f"subsampling {ss} is not modelled; assuming 4:2:0")
            steps.append(f"jpeg:{det.jpeg_quality}")
        if det.jpeg_ghost_quality is not None:
            steps.insert(len(steps) - 1, f"jpeg:{det.jpeg_ghost_quality}")
            det.notes.append(
                f"its pixels carry an earlier JPEG compression, quality about {det.jpeg_ghost_quality} "
                "(from re-compressing them: a JPEG ghost)"
            )
        if det.jpeg_table_error:
            det.notes.append(f"quantization tables are not libjpeg's; quality {det.jpeg_quality} is the nearest")
    elif det.jpeg_ghost_quality is not None:
        steps.append(f"jpeg:{det.jpeg_ghost_quality}")
        det.notes.append(
            f"its pixels carry an earlier JPEG compression, quality about {det.jpeg_ghost_quality} "
            "(from re-compressing them: a JPEG ghost)"
        )
    elif det.lossy and det.format == "WEBP" and det.webp_quality is not None:
        steps.append(f"webp:{det.webp_quality}")
    elif det.lossy and det.format == "WEBP":
        det.notes.append("lossy WebP of unknown quality (no quantizers in its header): not modelled")
    elif det.lossy and det.format == "TIFF":
        det.notes.append("JPEG-compressed TIFF: quality unknown, not modelled")
    return parse_edit("+".join(steps) or "none")


UPSCALE_GRID = (1.5, 2.0, 3.0, 4.0)
"""Enlargements are modelled at the nearest of these factors (in log scale): the model's own
preprocessing shrinks the image back, so the exact factor matters little, and a few factors keep the
number of edit-aware belonging distributions (one build each) small."""


def _snapped_scale(det: Detection) -> float:
    """The resize factor to model: a reduction to 2 decimals when that gives the file's pixel size
    (else exact), an enlargement at the nearest :data:`UPSCALE_GRID` factor."""
    import math

    scale, side = det.scale, min(det.width, det.height)
    if scale < 1:
        snapped = round(scale, 2)
        return snapped if snapped > 0 and math.floor(det.model_size * snapped + 0.5) == side else scale
    snapped = min(UPSCALE_GRID, key=lambda f: abs(math.log(f / scale)))
    if not math.isclose(snapped, scale, rel_tol=1e-6):
        det.notes.append(f"enlarged {scale:.3g}x; modelled as resize:{snapped:g}")
    return snapped


def suggested_edit(detection: Detection) -> Edit:
    """The edit to assume for a file: resize to its size (if it differs), then its JPEG or lossy WebP.

    E.g. a 48x48 JPEG of quality 75 for a 64x64 model gives ``resize:0.75+jpeg:75``; a PNG
    at the model's size gives ``none``. What cannot be modelled is listed in
    ``detection.notes``.
    """
    return parse_edit(detection.suggested)
