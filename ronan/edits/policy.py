"""Which edit to assume for a query: detected from the file, declared by the user, or the robust family.

``assume`` (the ``--assume-edit`` option, the app's Advanced panel, the API's ``edit=``) is:

* ``"auto"`` (default): what the file reveals (:func:`ronan.edits.detect`: JPEG quality and
  subsampling, size against the model's resolution); a PNG at the model's size is ``none``;
* ``"none"``: the image is assumed pristine (the paper's setting);
* ``"robust"``: an unknown pipeline (filters, mild noise...): the query is tested against the
  belonging distribution of *each* edit of :data:`ronan.edits.ROBUST_FAMILY` (the same
  distributions a declared edit uses) and decided by the one it fits best
  (:func:`ronan.verdict.pick`); the result names that edit. Never wider than one edit's own
  distribution (a single distribution of samples cycling through the family was measured 5-100x
  wider: its threshold admitted every real picture);
* an edit spec (``"jpeg:75"``, ``"resize:0.5+jpeg:90"``...): declared by the user.

The assumption is part of every result and of the belonging distribution's cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ImageError
from .detect import Detection, detect
from .spec import EDITS_VERSION, ROBUST_FAMILY, Edit, parse_edit

ASSUME_CHOICES = ("auto", "none", "robust")
EDIT_MODES = ("samples", "through")
"""How an edit enters the method: ``"samples"`` — the belonging samples pass through the edit
before inversion; ``"through"`` — that, and every inversion (queries and samples) compares the
*edited* reconstruction ``edit(M(i))`` with the image (the differentiable twin of the edit)."""


@dataclass(frozen=True)
class EditAssumption:
    """The edit assumed for one query.

    Attributes:
        edit (Edit | None): the edit; None for the robust family.
        source (str): ``"detected"``, ``"declared"``, ``"robust"`` or ``"none"`` (nothing
            detected or assumed).
        description (str): one sentence for humans.
        detection (dict | None): :meth:`Detection.to_dict` of the file, when it was read.
    """

    edit: Edit | None
    source: str
    description: str
    detection: dict | None = None

    @property
    def spec(self) -> str:
        """``"robust"`` or the edit's canonical spec (``"none"`` for a pristine image)."""
        return "robust" if self.edit is None else self.edit.spec

    @property
    def is_none(self) -> bool:
        return self.edit is not None and self.edit.is_none

    @property
    def is_robust(self) -> bool:
        return self.edit is None

    def key(self, mode: str) -> dict | None:
        """The part of a belonging distribution's key: None for ``none``, else spec, version, mode
        (and ``family: None``, kept so that existing keys stay valid).

        Raises:
            ValueError: for the robust assumption, which has no distribution of its own (see
                :meth:`members`).
        """
        if self.is_none:
            return None
        if self.is_robust:
            raise ValueError("the robust assumption has no belonging distribution of its own: use members()")
        return {"spec": self.spec, "version": EDITS_VERSION, "mode": mode, "family": None}

    def members(self) -> list[EditAssumption]:
        """The assumptions whose distributions decide: each edit of the family for ``robust``, else itself."""
        if not self.is_robust:
            return [self]
        return [
            EditAssumption(parse_edit(spec), "robust", f"unknown edits assumed; tested as {spec} (one of the family)")
            for spec in ROBUST_FAMILY
        ]


LOSSY_OPS = ("jpeg", "webp")
"""Edit steps that model a lossy encoding: under an edit with one, the file's encoding is modelled."""

NONE = EditAssumption(parse_edit("none"), "none", "no edit assumed")


def validate_assume(assume: str) -> str:
    """``assume`` if valid (``auto``, ``none``, ``robust`` or an edit spec); raises EditError."""
    if assume in ASSUME_CHOICES:
        return assume
    parse_edit(assume)
    return assume


def resolve_edit(loaded, model_size: int, model_channels: int, assume: str = "auto") -> EditAssumption:
    """The edit to assume for ``loaded`` (a :class:`ronan.images.LoadedImage`) checked against a
    model of ``model_size`` and ``model_channels``.

    Raises:
        EditError: ``assume`` is neither a choice of ``ASSUME_CHOICES`` nor a valid spec.
    """
    if assume == "none":
        return NONE
    if assume == "robust":
        return EditAssumption(
            None,
            "robust",
            f"unknown edits assumed: tested against the belonging samples of each of {', '.join(ROBUST_FAMILY)}; "
            f"the closest fit decides",
        )
    if assume != "auto":
        edit = parse_edit(assume)
        return EditAssumption(edit, "declared" if not edit.is_none else "none", f"declared edit: {edit.spec}")
    det = _detect(loaded, model_size, model_channels)
    if det is None:
        return NONE
    edit = parse_edit(det.suggested)
    if edit.is_none:
        return EditAssumption(edit, "none", f"nothing detected ({det.describe()})", det.to_dict())
    return EditAssumption(edit, "detected", f"detected: {det.describe()}", det.to_dict())


def _detect(loaded, model_size: int, model_channels: int) -> Detection | None:
    head = getattr(loaded, "head", None)
    if head is None:
        return None
    image = getattr(loaded, "image", None)
    pixels = image if image is not None and image.size == tuple(getattr(loaded, "original_size", ())) else None
    try:
        return detect(head, model_size, model_channels, pixels, getattr(loaded, "file_bytes", None))
    except ImageError:
        return None


RATE_CODECS = {"AVIF": "an AVIF file", "JPEG2000": "a JPEG 2000 file"}
"""Codecs read but not modelled whose quality a file does not reveal: judged by their bits per pixel
(:func:`ronan.edits.stand_in.encoding_most`), lossless or not."""


def unmodelled(assumption: EditAssumption) -> str | None:
    """What the file reveals that the assumed edit does not model: a colour model's image saved in
    grayscale, or a lossy encoding (a lossy WebP of unknown quality, a JPEG-compressed TIFF, a colour
    image reduced to a 256-colour palette: GIF or palette PNG) under an edit with no lossy step
    (:data:`LOSSY_OPS`), as ``"a lossy WebP"``; for a grayscale model, any palette image (GIF or
    palette PNG), as ``"a palette image of 6 grey levels"``: a palette holds an 8-bit grey image
    exactly only where it kept every level, which the file cannot show, and the bound of a rejection
    is what a reduction to that many levels does to the model's own images
    (:func:`ronan.edits.stand_in.encoding_most`); any AVIF or JPEG 2000 file (:data:`RATE_CODECS`),
    as ``"an AVIF file of 1.2 bits per pixel"``, bounded by what that many bits per pixel do to the
    model's own images. None otherwise (a lossless file, or no detection: a declared edit is the
    user's model of the file)."""
    det = assumption.detection
    if not det:
        return None
    if det.get("grayscale"):
        return "a grayscale file of a colour model"
    if assumption.edit is not None and any(s.op in LOSSY_OPS for s in assumption.edit.steps):
        return None
    fmt = str(det.get("format"))
    if det.get("grey_levels") is not None:
        return f"{'a GIF' if fmt == 'GIF' else 'a palette image'} of {det['grey_levels']} grey levels"
    if fmt in RATE_CODECS:
        bpp = det.get("bits_per_pixel")
        return RATE_CODECS[fmt] + (f" of {bpp:.3g} bits per pixel" if bpp else "")
    if not det.get("lossy"):
        return None
    names = {"WEBP": "a lossy WebP", "TIFF": "a JPEG-compressed TIFF", "GIF": "a GIF (at most 256 colours)"}
    return names.get(fmt, "a palette image (at most 256 colours)")
