"""A file's edit without its belonging distribution: what stands in for it, and when a rejection holds.

A shared server does not build belonging distributions (minutes each); it holds those committed
for the bundled models: the pristine one and a few edits (some JPEG qualities, resizes, the robust
family). A file that reveals another edit (a JPEG re-save at quality 85, an upscaled image) is then
tested against a *stand-in*: the distribution of an edit of the same kind that is here
(:func:`pick`: the same last step, e.g. another JPEG quality), the one that moves the model's own
images least among those that move them at least as far as the file's edit does; else the
pristine distribution.

A rejection by the stand-in holds only where the file's edit moves the model's own images no
further than the stand-in's own samples lie. Otherwise the edit alone can lift a generated image
above the stand-in's threshold, and a "not belonging" is no evidence: :func:`judged` makes it
inconclusive with the reason. The measure is the edit's *distortion* on the model's own images
(:func:`distortion`), which is the loss an own image edited this way has at its true input (an
upper bound of what its inversion reaches), compared with how far the stand-in's own samples lie
(the upper quartile of their losses, :func:`reach`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from ..generation import generate_pil
from ..verdict import INCONCLUSIVE, NON_BELONGING
from .spec import Edit

DISTORTION_IMAGES = 8
"""Own images the distortion is measured on (one forward pass of the generator)."""

DISTORTION_SEED = 0
"""Seed of those images (:func:`ronan.generation.generate_pil`)."""


def distortions(model, edits: Sequence[Edit], n: int = DISTORTION_IMAGES, seed: int = DISTORTION_SEED) -> list[float]:
    """How far each of ``edits`` alone moves the model's own images: the median, over ``n`` of its
    8-bit images (``seed``), of the MSE on [0, 1] between each image and the same image after the
    edit (Pillow, :meth:`Edit.apply` with seed 0) and the model's preprocessing.

    Args:
        model (Generator): the inspected model.
        edits (list[Edit]): the edits (a file's, candidates').
        n (int): images, >= 1 (default 8). seed (int): their seed (default 0).

    Returns:
        list[float], each >= 0 (0 for ``none``), in the order of ``edits``.
    """
    images = generate_pil(model, n, seed)
    own = [model.preprocess(image) for image in images]
    out = []
    for edit in edits:
        errors = [float(torch.mean((model.preprocess(edit.apply(im, seed=0)) - x) ** 2)) for im, x in zip(images, own)]
        out.append(0.0 if edit.is_none else float(np.median(errors)))
    return out


def distortion(model, edit: Edit, n: int = DISTORTION_IMAGES, seed: int = DISTORTION_SEED) -> float:
    """:func:`distortions` of one edit."""
    return distortions(model, [edit], n, seed)[0]


def kind(edit: Edit) -> str:
    """What kind of file an edit leaves: the operation of its last step (``"jpeg"`` for
    ``resize:4+jpeg:85``), ``"none"`` for no edit."""
    return edit.steps[-1].op if edit.steps else "none"


def pick(model, edit: Edit, candidates: Sequence[Edit]) -> Edit | None:
    """The stand-in for ``edit`` among ``candidates`` (edits whose distributions are here): of the
    same :func:`kind`, the one that moves the model's own images least among those that move them at
    least as far as ``edit`` (:func:`distortion`); where none does, the one that moves them furthest
    (its rejections then rarely hold, see :func:`judged`). None when no candidate is of that kind."""
    same = [c for c in candidates if kind(c) == kind(edit) and not c.is_none]
    if not same:
        return None
    moved, *theirs = distortions(model, [edit, *same])
    by = sorted(zip(theirs, same), key=lambda t: (t[0], t[1].spec))
    return next((c for d, c in by if d >= moved), by[-1][1])


REACH_QUANTILE = 0.75
"""Which quantile of a stand-in's belonging losses an edit's distortion is compared with."""


def reach(distributions: Sequence, quantile: float = REACH_QUANTILE) -> float:
    """How far the stand-in's own samples lie: the largest ``quantile`` (default the upper quartile)
    of the raw belonging losses (on the inspected model) among ``distributions``
    (:class:`ronan.calibration.BelongingDistribution`, one per edit the stand-in tests against)."""
    return max(float(np.quantile(d.losses, quantile)) for d in distributions)


def rejection_holds(edit_distortion: float, stand_in_reach: float) -> bool:
    """Whether a "not belonging" against the stand-in holds for an image edited with distortion
    ``edit_distortion`` (:func:`distortion`): an own image edited this way would lie no further from
    the model than a quarter of the stand-in's own samples do (``stand_in_reach``, :func:`reach`),
    so the test that rejected the image would have accepted such an own image."""
    return edit_distortion <= stand_in_reach


def unheld_reason(edit: Edit, edit_distortion: float, stand_in: str, stand_in_reach: float) -> str:
    """The reason of an inconclusive outcome where a rejection does not hold (one clause)."""
    return (
        f"the file's edit ({edit.spec}) has no belonging distribution here, and it moves the model's own "
        f"images further (MSE {edit_distortion:.3g}) than the samples it was tested against ({stand_in}) "
        f"lie (upper quartile of their losses {stand_in_reach:.3g}): the edit alone can make a generated "
        f"image look not belonging"
    )


def judged(result, model, revealed, stand_in, distributions: Sequence):
    """``result`` (an :class:`ronan.attribution.Attribution` decided against ``stand_in``) as a
    stand-in's result: ``edit_source`` ``"stand-in"``, the file's detection and a note with both
    distortions; where it says "not belonging" and the rejection does not hold
    (:func:`rejection_holds`), inconclusive with the reason.

    Args:
        model (Generator): the inspected model.
        revealed (EditAssumption): the edit the file revealed (detected).
        stand_in (EditAssumption): what decided instead (an edit of the same kind, or none).
        distributions: the stand-in's belonging distribution(s).
    """
    edit = revealed.edit
    (moved, theirs), far = distortions(model, [edit, stand_in.edit]), reach(distributions)
    notes = [
        *result.notes,
        f"stand-in for the file's edit {edit.spec}: {stand_in.spec} (the edit moves {DISTORTION_IMAGES} of the "
        f"model's own images by median MSE {moved:.3g}, the stand-in by {theirs:.3g}; "
        f"upper quartile of the stand-in's belonging losses {far:.3g})",
    ]
    fields = dict(
        notes=notes,
        edit_source="stand-in",
        edit_description=f"{revealed.description}; its distribution is not built here: tested as {stand_in.spec}",
        detection=revealed.detection,
    )
    if result.verdict != NON_BELONGING or rejection_holds(moved, far):
        return replace(result, **fields)
    reason = unheld_reason(edit, moved, stand_in.spec, far)
    return replace(result, verdict=INCONCLUSIVE, reasons=[*result.reasons, reason], **fields)
