"""Batch intake: many uploaded files and zip archives, read lazily and loaded chunk by chunk.

:func:`collect_batch` lists the images of the uploads without reading any pixel (zip members
stay in their archive until their turn), :func:`skipped_members` what it left out of the
archives (for an honest summary); :func:`iter_loaded` loads them a chunk at a time, so a
batch holds at most one chunk of decoded images, and charges every image to the request's
decoded-pixel budget (:class:`ronan.limits.PixelBudget`). Bad files become items with an
``error`` (one line), never an exception that ends the batch. Limits (:mod:`ronan.limits`):
``RONAN_MAX_IMAGES`` images per batch, ``RONAN_MAX_ZIP_MB`` uncompressed image bytes per
archive, ``RONAN_MAX_FILE_MB`` per file, ``RONAN_MAX_REQUEST_MEGAPIXELS`` decoded in all.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import limits
from .errors import ImageError, RonanError, first_line
from .images import IMAGE_SUFFIXES, LoadedImage, load_image


@dataclass
class BatchItem:
    """One entry of a batch.

    Attributes:
        name (str): file name, or the member's path inside its archive.
        label (str | None): the member's parent folder in the archive (ground truth), None for loose files.
        source (str | bytes | None): a file path or encoded bytes to load; None for a zip member (read
            from ``archive`` when loaded) or an error item.
        error (str | None): why this item has no result (one line).
        archive (str | None), member (str | None): the zip archive and member holding the image.
    """

    name: str
    label: str | None
    source: str | bytes | None = None
    error: str | None = None
    archive: str | None = None
    member: str | None = None

    def read(self) -> str | bytes:
        """What :func:`ronan.images.load_image` takes: the path, the bytes, or the member's bytes (read now).

        Raises:
            ImageError: the member cannot be extracted.
        """
        if self.archive is None or self.member is None:
            if self.source is None:
                raise ImageError(f"{self.name}: nothing to read")  # an error item: never loaded
            return self.source
        try:
            with zipfile.ZipFile(self.archive) as zf:
                return zf.read(self.member)
        except Exception as e:  # BadZipFile, OSError, zlib.error (damaged data), RuntimeError (encrypted),
            # NotImplementedError (compression), KeyError, EOFError...: one line
            raise ImageError(f"{self.name}: cannot be extracted ({first_line(e)})") from None


def collect_batch(paths: list[str | Path]) -> list[BatchItem]:
    """Expand uploaded files and zip archives into batch items, reading no pixels.

    The label of an image is the name of its parent folder inside a zip (e.g.
    ``real/001.png`` -> ``real``), None for loose files. Hidden files, ``__MACOSX`` and
    non-image members of archives are skipped.

    Raises:
        LimitExceeded: more than ``RONAN_MAX_IMAGES`` images.
    """
    items: list[BatchItem] = []
    for p in map(Path, paths):
        if _is_archive(p):
            items.extend(_zip_items(p))
        else:
            items.append(BatchItem(p.name, None, str(p)))
        limits.check_images(sum(it.error is None for it in items), "images in one batch")
    return items


def _is_archive(path: Path) -> bool:
    """A zip archive to open: named ``.zip``, or a zip file whose name is not an image's."""
    suffix = path.suffix.lower()
    return suffix == ".zip" or (path.is_file() and zipfile.is_zipfile(path) and suffix not in IMAGE_SUFFIXES)


def _member_kind(info: zipfile.ZipInfo) -> tuple[str, list[str]]:
    """What an archive member is — ``"dir"``, ``"hidden"`` (a hidden file or a ``__MACOSX`` entry),
    ``"image"`` or ``"other"`` — and its path parts."""
    parts = [s for s in info.filename.replace("\\", "/").split("/") if s]
    if info.is_dir() or not parts:
        return "dir", parts
    if any(s.startswith(".") or s == "__MACOSX" for s in parts):
        return "hidden", parts
    return ("image" if Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES else "other"), parts


def skipped_members(paths: list[str | Path]) -> list[str]:
    """Members of the zip archives among ``paths`` that a batch does not use: non-image files
    (``notes.txt``) by name; hidden files and ``__MACOSX`` entries as one count. Reads the archives'
    directories only (no data). For honest batch summaries (:func:`ronan.studio.batch_summary`)."""
    out, hidden = [], 0
    for p in map(Path, paths):
        if not _is_archive(p):
            continue
        try:
            with zipfile.ZipFile(p) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError):
            continue
        for info in infos:
            kind, _ = _member_kind(info)
            hidden += kind == "hidden"
            if kind == "other":
                out.append(info.filename)
    if hidden:
        out.append(f"{hidden} hidden or system file(s)")
    return out


def _zip_items(path: Path) -> list[BatchItem]:
    """The image members of one archive (unread), with error items for those over the limits."""
    lim = limits.current()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        return [BatchItem(path.name, None, error=f"{path.name}: not a readable zip archive ({e})")]
    items, total = [], 0
    with zf:
        for info in zf.infolist():
            member = info.filename
            kind, parts = _member_kind(info)
            if kind != "image":
                continue
            label = parts[-2] if len(parts) > 1 else None
            if info.file_size > lim.max_file_mb * 2**20:
                items.append(
                    BatchItem(
                        member,
                        label,
                        error=f"{member}: {info.file_size / 2**20:.1f} MiB uncompressed; "
                        f"the limit is {lim.max_file_mb} MiB",
                    )
                )
                continue
            total += info.file_size
            if total > lim.max_zip_mb * 2**20:
                items.append(
                    BatchItem(
                        member,
                        label,
                        error=f"{path.name}: archive exceeds {lim.max_zip_mb} MiB "
                        f"uncompressed (RONAN_MAX_ZIP_MB); rest skipped",
                    )
                )
                break
            items.append(BatchItem(member, label, archive=str(path), member=member))
    return items


def load_item(item: BatchItem, budget: limits.PixelBudget | None = None) -> LoadedImage | None:
    """Load one item; on failure record the one-line reason in ``item.error`` and return None."""
    if item.error is not None:
        return None
    try:
        return load_image(item.read(), name=item.name, budget=budget)
    except RonanError as e:
        item.error = str(e)
        return None


def iter_loaded(
    items: list[BatchItem], chunk: int = 32, budget: limits.PixelBudget | None = None
) -> Iterator[list[tuple[BatchItem, LoadedImage | None]]]:
    """Yield the items in chunks of ``chunk``, each item with its loaded image (None when it failed).

    Only one chunk of decoded images exists at a time (the caller drops it before asking for the
    next). ``budget`` defaults to a fresh :class:`~ronan.limits.PixelBudget` for these items.
    """
    budget = budget if budget is not None else limits.PixelBudget()
    for c in range(0, len(items), max(1, chunk)):
        yield [(it, load_item(it, budget)) for it in items[c : c + chunk]]


def load_batch(items: list[BatchItem]) -> list[tuple[BatchItem, LoadedImage | None]]:
    """Load every item at once (errors recorded on the items, never raised). Holds every decoded
    image: prefer :func:`iter_loaded` for large batches."""
    return [pair for part in iter_loaded(items, len(items) or 1) for pair in part]
