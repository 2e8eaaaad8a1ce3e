"""A file's edit without its belonging distribution: what stands in for it, and when a rejection holds.

A shared server does not build belonging distributions (minutes each); it holds those committed
for the bundled models: the pristine one and a few edits (some JPEG qualities, resizes, the robust
family). A file that reveals another edit (a JPEG re-save at quality 85, an upscaled image) is then
tested against a *stand-in*: the distribution of an edit of the same kind that is here
(:func:`pick`: the same last step, e.g. another JPEG quality), the one that moves the model's own
images least among those that move them at least as far as the file's edit does; else the
pristine distribution.

A rejection by the stand-in holds only where the edit alone cannot explain it
(:func:`rejection_holds`): the file's edit moves the model's own images no further than the
stand-in's own samples lie, or the image lies twice as far from the model as the edit takes any of
the own images measured. Otherwise the edit alone can lift a generated image above the stand-in's
threshold, and a "not belonging" is no evidence: :func:`judged` makes it inconclusive with the
reason. The measure is the edit's *distortion* on the model's own images
(:func:`distortions`), which is the loss an own image edited this way has at its true input (an
upper bound of what its inversion reaches), compared with how far the stand-in's own samples lie
(the upper quartile of their losses, :func:`reach`).

An acceptance by the stand-in holds only where the image lies no further from the model than the
file's edit takes any of the own images measured (:func:`acceptance_holds`). Where the stand-in's
edit moves images further than the file's does, its threshold is lenient and its contrast set (real
pictures under the stand-in's edit) is no fair comparison: a real picture upscaled 2x passed
``dcgan-fmnist``'s resize 0.75 stand-in and its contrast check (3 of 25, benchmarks/RESULTS.md,
"Edited files without their distribution"). Otherwise :func:`judged` makes a "belonging"
inconclusive with the reason. With a distance other than MSE neither holds (the distortions are MSE).

A lossy WebP's quality is an estimate (:mod:`ronan.edits.webp`): its header allows a few qualities,
and each rule takes its bound at the one where it is hardest to pass (:func:`quality_span`): an
acceptance the highest quality's (the least an own image is moved), a rejection the lowest's.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from ..generation import generate_pil
from ..verdict import BELONGING, INCONCLUSIVE, NON_BELONGING, unmodelled_reason
from .policy import unmodelled
from .spec import Edit

DISTORTION_IMAGES = 32
"""Own images the distortion is measured on (one forward pass of the generator; their largest
distortion stands for the edit's upper tail)."""

DISTORTION_SEED = 0
"""Seed of those images (:func:`ronan.generation.generate_pil`)."""


def own_errors(model, edits: Sequence[Edit], n: int = DISTORTION_IMAGES, seed: int = DISTORTION_SEED) -> list:
    """How far each of ``edits`` alone moves the model's own images: for each edit, the MSE on
    [0, 1] between each of ``n`` of the model's 8-bit images (``seed``) and the same image after the
    edit (Pillow, :meth:`Edit.apply` with seed 0) and the model's preprocessing — the loss that own
    image, so edited, has at its true input.

    Args:
        model (Generator): the inspected model.
        edits (list[Edit]): the edits (a file's, candidates').
        n (int): images, >= 1 (default 32). seed (int): their seed (default 0).

    Returns:
        list of ``np.ndarray[n]`` (float, >= 0; zeros for ``none``), in the order of ``edits``.
    """
    return _moved(model, [None if e.is_none else functools.partial(e.apply, seed=0) for e in edits], n, seed)


def _moved(model, changes: Sequence[Callable | None], n: int, seed: int) -> list:
    """For each of ``changes`` (PIL image -> PIL image; None: unchanged), the MSE on [0, 1] after the
    model's preprocessing between each of ``n`` of the model's 8-bit images (``seed``) and the same
    image so changed: a list of ``np.ndarray[n]``."""
    images = generate_pil(model, n, seed)
    own = [model.preprocess(image) for image in images]
    return [
        np.array([float(torch.mean((model.preprocess(change(im)) - x) ** 2)) for im, x in zip(images, own)])
        if change is not None
        else np.zeros(len(images))
        for change in changes
    ]


def distortions(model, edits: Sequence[Edit], n: int = DISTORTION_IMAGES, seed: int = DISTORTION_SEED) -> list[float]:
    """The *distortion* of each of ``edits``: the median of :func:`own_errors` (float >= 0)."""
    return [float(np.median(e)) for e in own_errors(model, edits, n, seed)]


STRONGEST_ENCODINGS: dict[str, tuple[str, dict, bool]] = {
    "a lossy WebP": ("WEBP", {"quality": 0}, False),
    "a JPEG-compressed TIFF": ("JPEG", {"quality": 1}, False),
    "a GIF (at most 256 colours)": ("GIF", {}, False),
    "a palette image (at most 256 colours)": ("GIF", {}, False),
    "a grayscale file of a colour model": ("PNG", {}, True),
}
"""Each change no edit models (:func:`ronan.edits.policy.unmodelled`) in its strongest form with
Pillow (format, save options, whether the image first loses its colour): the most it can move an
image, whatever quality the file was saved at."""


GREY_PALETTE = re.compile(r"a (?:GIF|palette image) of (\d+) grey levels")
"""A grayscale model's palette image (:func:`ronan.edits.policy.unmodelled`): its strongest forms
are the reductions to that many levels (:func:`_grey_levels`)."""


def _strongest(what: str, image: Image.Image) -> Image.Image:
    """``image`` saved and reloaded in the strongest form of ``what`` (:data:`STRONGEST_ENCODINGS`)."""
    fmt, options, grey = STRONGEST_ENCODINGS[what]
    return _saved(image.convert("L") if grey else image, fmt, **options)[0].convert(image.mode)


def _grey_levels(levels: int, form: str, image: Image.Image) -> Image.Image:
    """``image`` in grey reduced to ``levels`` (1..256) grey levels, by ``form``: ``"adaptive"``
    (Pillow's median-cut palette), ``"even"`` (evenly spaced levels, as a web palette's 6, each pixel to
    the nearest) or ``"dithered"`` (the even levels with Floyd-Steinberg dithering, as Pillow converts
    a colour image to the web palette)."""
    grey = image.convert("L")
    if form == "adaptive":
        return grey.quantize(levels).convert("L")
    steps = max(levels, 2) - 1
    values = [round(i * 255 / steps) for i in range(steps + 1)]
    if form == "even":
        return grey.point([values[round(v * steps / 255)] for v in range(256)])
    palette = Image.new("P", (1, 1))
    palette.putpalette([v for value in values for v in (value, value, value)])
    return grey.convert("RGB").quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).convert("L")


RATE_FILE = re.compile(r"(an AVIF file|a JPEG 2000 file)(?: of ([0-9.]+(?:e[+-]?[0-9]+)?) bits per pixel)?")
"""An AVIF or JPEG 2000 file (:data:`ronan.edits.policy.RATE_CODECS`), with its bits per pixel where
known: its strongest forms are what those bits per pixel allow (:func:`_at_rate`)."""

STRONGEST_BITS_PER_PIXEL = 0.1
"""Bits per pixel of an AVIF or JPEG 2000 file of unknown size: a strong compression (an AVIF at
quality 0 of a 64x64 model image takes about 0.8)."""


def _saved(image: Image.Image, fmt: str, **options) -> tuple[Image.Image, int]:
    """``image`` saved as ``fmt`` and reloaded (in its own mode), with the file's size in bytes."""
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return Image.open(io.BytesIO(buf.getvalue())).convert(image.mode), buf.tell()


def _at_rate(codec: str, bits_per_pixel: float, variant: bool, image: Image.Image) -> Image.Image:
    """``image`` saved at about ``bits_per_pixel`` and reloaded. AVIF: the highest quality (0..100,
    by bisection) whose file fits the size, else quality 0; JPEG 2000: Pillow's rate mode at that
    compression ratio (the reversible wavelet, or the irreversible one with ``variant``), lossless
    where the ratio is at most 1."""
    budget = bits_per_pixel * image.width * image.height / 8
    if codec == "an AVIF file":
        low, high, fits = 0, 100, None  # the highest quality known to fit is ``low`` (its image: ``fits``)
        while low < high:
            mid = (low + high + 1) // 2
            out, size = _saved(image, "AVIF", quality=mid)
            low, high, fits = (mid, high, out) if size <= budget else (low, mid - 1, fits)
        return fits if fits is not None else _saved(image, "AVIF", quality=0)[0]
    ratio = len(image.getbands()) * image.width * image.height / max(budget, 1.0)
    if ratio <= 1:
        return _saved(image, "JPEG2000")[0]
    return _saved(image, "JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=variant)[0]


@functools.lru_cache(maxsize=32)
def encoding_most(model, what: str, n: int = DISTORTION_IMAGES, seed: int = DISTORTION_SEED) -> float:
    """The largest MSE (on [0, 1], after the model's preprocessing) that the strongest form of the
    encoding ``what`` (:data:`STRONGEST_ENCODINGS`; for a grayscale model's palette image of k grey
    levels, :data:`GREY_PALETTE`, the largest of an adaptive, an evenly spaced and a dithered
    reduction to k levels, :func:`_grey_levels`; for an AVIF or JPEG 2000 file, :data:`RATE_FILE`,
    the same codec at the file's bits per pixel, :func:`_at_rate`) gives ``n`` of the model's own 8-bit images
    (``seed``): the most that encoding alone can lift an own image's loss. Cached per model."""
    if match := GREY_PALETTE.fullmatch(what):
        forms = [functools.partial(_grey_levels, int(match[1]), form) for form in ("adaptive", "even", "dithered")]
    elif match := RATE_FILE.fullmatch(what):
        bits = float(match[2]) if match[2] else STRONGEST_BITS_PER_PIXEL
        variants = (False,) if match[1] == "an AVIF file" else (False, True)  # JPEG 2000: both wavelets
        forms = [functools.partial(_at_rate, match[1], bits, variant) for variant in variants]
    else:
        forms = [functools.partial(_strongest, what)]
    return float(max(moved.max() for moved in _moved(model, forms, n, seed)))


def unmodelled_rejection_holds(model, what: str, loss: float | None) -> bool:
    """Whether a "not belonging" of a file that is ``what`` (an encoding no edit models) holds: its
    MSE on the model (``loss``; None for another distance: never) lies :data:`EDIT_MARGIN` (2) times
    beyond what the encoding's strongest form does to any of the own images measured
    (:func:`encoding_most`), so the encoding cannot explain it."""
    return loss is not None and loss > EDIT_MARGIN * encoding_most(model, what)


def quality_span(assumption) -> tuple[Edit, Edit]:
    """The assumed edit (an :class:`ronan.edits.policy.EditAssumption`'s) at the lowest and at the
    highest quality the file allows: for a detected lossy WebP, whose quality is an estimate, its
    last ``webp`` step at the first and the last of the detection's ``webp_qualities``; else the
    edit itself, twice."""
    edit, det = assumption.edit, assumption.detection or {}
    qualities = det.get("webp_qualities")
    if edit is None or not edit.steps or edit.steps[-1].op != "webp" or not qualities:
        return edit, edit
    low, high = (Edit((*edit.steps[:-1], replace(edit.steps[-1], quality=q))) for q in (min(qualities), max(qualities)))
    return low, high


def kind(edit: Edit) -> str:
    """What kind of file an edit leaves: the operation of its last step (``"jpeg"`` for
    ``resize:4+jpeg:85``), ``"none"`` for no edit."""
    return edit.steps[-1].op if edit.steps else "none"


def pick(model, edit: Edit, candidates: Sequence[Edit]) -> Edit | None:
    """The stand-in for ``edit`` among ``candidates`` (edits whose distributions are here): of the
    same :func:`kind`, the one that moves the model's own images least among those that move them at
    least as far as ``edit`` (:func:`distortions`); where none does, the one that moves them furthest
    (its rejections then rarely hold, see :func:`judged`). None when no candidate is of that kind."""
    same = [c for c in candidates if kind(c) == kind(edit) and not c.is_none]
    if not same:
        return None
    moved, *theirs = distortions(model, [edit, *same])
    by = sorted(zip(theirs, same), key=lambda t: (t[0], t[1].spec))
    return next((c for d, c in by if d >= moved), by[-1][1])


EDIT_MARGIN = 2.0
"""How far beyond the largest of :func:`own_errors` an image's loss must lie for the edit not to
explain it: the largest of 32 stands for the edit's upper tail only roughly, and an inversion can
end above its true input's loss (own images of vae-fmnist re-saved at q85 reached 1.6x the largest
of 32; real pictures re-saved at q85 lay 5-136x beyond it; benchmarks/RESULTS.md, "Edited files
without their distribution")."""

REACH_QUANTILE = 0.75
"""Which quantile of a stand-in's belonging losses an edit's distortion is compared with."""


def reach(distributions: Sequence, quantile: float = REACH_QUANTILE) -> float:
    """How far the stand-in's own samples lie: the largest ``quantile`` (default the upper quartile)
    of the raw belonging losses (on the inspected model) among ``distributions``
    (:class:`ronan.calibration.BelongingDistribution`, one per edit the stand-in tests against)."""
    return max(float(np.quantile(d.losses, quantile)) for d in distributions)


def rejection_holds(
    edit_distortion: float, stand_in_reach: float, loss: float | None = None, edit_most: float | None = None
) -> bool:
    """Whether a "not belonging" against the stand-in holds for an image edited with distortion
    ``edit_distortion`` (:func:`distortions`). Either: an own image edited this way would lie no
    further from the model than a quarter of the stand-in's own samples do (``stand_in_reach``,
    :func:`reach`), so the test that rejected the image would have accepted it; or the image's own
    MSE on the model (``loss``) lies :data:`EDIT_MARGIN` (2) times beyond what the edit alone gives
    any of the own images measured (``edit_most``: the largest of :func:`own_errors`), so the edit
    cannot explain it."""
    beyond = loss is not None and edit_most is not None and loss > EDIT_MARGIN * edit_most
    return edit_distortion <= stand_in_reach or beyond


def acceptance_holds(loss: float | None, edit_most: float | None) -> bool:
    """Whether a "belonging" against the stand-in holds: the image's own MSE on the model (``loss``)
    is at most what the file's edit alone gives any of the own images measured (``edit_most``: the
    largest of :func:`own_errors`), the loss an own image so edited has at its true input, which its
    inversion does not exceed once it converges. ``loss`` None (a distance other than MSE): never."""
    return loss is not None and edit_most is not None and loss <= edit_most


def unaccepted_reason(
    edit: Edit, stand_in: str, edit_distortion: float, stand_in_distortion: float, loss: float | None, edit_most: float
) -> str:
    """The reason of an inconclusive outcome where an acceptance does not hold (one clause); ``loss``
    None: a distance other than MSE."""
    start = f"the file's edit ({edit.spec}) has no belonging distribution here"
    if loss is None:
        return (
            f"{start}, and with a distance other than MSE it cannot tell whether the image fits the model "
            f"or only the stand-in ({stand_in})"
        )
    return (
        f"{start}; this image's loss ({loss:.3g}) lies beyond what the edit does to the model's own images (up to "
        f"{edit_most:.3g}), and the samples it was tested against ({stand_in}, median MSE {stand_in_distortion:.3g} "
        f"against the file's edit's {edit_distortion:.3g}) cannot show that it belongs: a picture the model did not "
        f"make can pass that test"
    )


def unheld_reason(
    edit: Edit, edit_distortion: float, stand_in: str, stand_in_reach: float, loss: float | None, edit_most: float
) -> str:
    """The reason of an inconclusive outcome where a rejection does not hold (one clause); ``loss``
    None: a distance other than MSE, which the distortions cannot be compared with."""
    start = f"the file's edit ({edit.spec}) has no belonging distribution here"
    if loss is None:
        return f"{start}, and with a distance other than MSE it cannot tell whether the edit alone explains a rejection"
    return (
        f"{start}; it moves the model's own images further (median MSE {edit_distortion:.3g}) than the samples "
        f"it was tested against ({stand_in}) lie (upper quartile of their losses {stand_in_reach:.3g}), and this "
        f"image's loss ({loss:.3g}) is within {EDIT_MARGIN:g}x what it does to them (up to {edit_most:.3g}): "
        f"the edit alone can make a generated image look not belonging"
    )


def judged(result, model, revealed, stand_in, distributions: Sequence):
    """``result`` (an :class:`ronan.attribution.Attribution` decided against ``stand_in``) as a
    stand-in's result: ``edit_source`` ``"stand-in"``, the file's detection and a note with both
    distortions; where it says "not belonging" and the rejection does not hold
    (:func:`rejection_holds`), or "belonging" and the acceptance does not hold
    (:func:`acceptance_holds`), inconclusive with the reason.

    Args:
        model (Generator): the inspected model.
        revealed (EditAssumption): the edit the file revealed (detected).
        stand_in (EditAssumption): what decided instead (an edit of the same kind, or none).
        distributions: the stand-in's belonging distribution(s).
    """
    edit = revealed.edit
    weakest, strongest = quality_span(revealed)
    errors, theirs, *span = own_errors(model, [edit, stand_in.edit, *{weakest, strongest} - {edit}])
    moved, most, their_moved = float(np.median(errors)), float(errors.max()), float(np.median(theirs))
    # where the file's quality is uncertain (a WebP's), each rule takes the bound that holds at every
    # quality its header allows: an acceptance the strictest, a rejection the most lenient
    accept_most = min([most, *(float(e.max()) for e in span)])
    reject_moved = max([moved, *(float(np.median(e)) for e in span)])
    reject_most = max([most, *(float(e.max()) for e in span)])
    far = reach(distributions)
    mse = result.distance == "mse"  # distortions are MSE: another distance has no comparison, nothing holds
    notes = [
        *result.notes,
        f"stand-in for the file's edit {edit.spec}: {stand_in.spec} (the edit moves {len(errors)} of the model's "
        f"own images by median MSE {moved:.3g}, at most {most:.3g}; the stand-in by {their_moved:.3g}; "
        f"upper quartile of the stand-in's belonging losses {far:.3g})",
    ]
    fields = dict(
        notes=notes,
        edit_source="stand-in",
        edit_description=f"{revealed.description}; its distribution is not built here: tested as {stand_in.spec}",
        detection=revealed.detection,
    )
    loss = result.loss if mse else None
    if result.verdict == BELONGING and not acceptance_holds(loss, accept_most):
        reason = unaccepted_reason(edit, stand_in.spec, moved, their_moved, loss, accept_most)
    elif (
        result.verdict == NON_BELONGING
        and (lossy := unmodelled(revealed))
        and not unmodelled_rejection_holds(model, lossy, loss)
    ):
        reason = unmodelled_reason(lossy)
    elif result.verdict == NON_BELONGING and not (mse and rejection_holds(reject_moved, far, result.loss, reject_most)):
        reason = unheld_reason(edit, reject_moved, stand_in.spec, far, loss, reject_most)
    else:
        return replace(result, **fields)
    return replace(result, verdict=INCONCLUSIVE, reasons=[*result.reasons, reason], **fields)
