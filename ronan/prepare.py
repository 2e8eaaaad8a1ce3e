"""One preparation step for every entry point: the models M and M_r, the settings and the device.

The library (:func:`ronan.attribution.attribute_stream`), the command line, the app's services
(:mod:`ronan.studio`) and which-model all start here, so that a request is read the same way
everywhere and every check runs before any work:

1. the device is resolved (:func:`ronan.models.registry.resolve_device`) and the inversion
   settings are checked against the operator's limits (:mod:`ronan.limits`) before a model loads;
2. the inspected model M is loaded, and the reference M_r named by the *reference vocabulary*
   (:func:`reference_name`, the one place it is read);
3. a model is refused as its own reference (:func:`ronan.calibration.check_reference`), the
   settings are resolved for M (:func:`ronan.inversion.resolve_settings`: a preset whose
   refinement cannot apply falls back) and the distance is built once (fail fast, e.g. LPIPS
   without its weights).

The result, :class:`Prepared`, can be passed as the ``model`` of
:func:`~ronan.attribution.attribute_stream` (and of ``attribute_batch``, ``attribute``,
:func:`~ronan.evaluation.evaluate`), so that models are loaded and settings resolved once for
many calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import limits
from .calibration import check_reference
from .distances import get_distance
from .inversion import InversionSettings, resolve_settings
from .models.base import Generator
from .models.registry import default_reference, load_model, resolve_device
from .preset_names import DEFAULT_PRESET, preset_name

DEFAULT_REFERENCE = "default"
"""The reference vocabulary: this word names the model's own pairing (its card's ``reference``)."""
NO_REFERENCE = "none"
"""The reference vocabulary: this word (any case), like None, means no calibration (Eq. 2 skipped)."""
PREPARE_ARGS = ("reference", "distance", "preset", "steps", "restarts", "lr", "precision", "device")
"""Keyword arguments of :func:`prepare` (what a :class:`Prepared` already holds)."""


@dataclass(frozen=True)
class Prepared:
    """What one request has prepared: the models, the effective settings and the device.

    Attributes:
        model (Generator): the inspected model M, loaded and frozen.
        reference (Generator | None): the reference model M_r (None: no calibration).
        settings (InversionSettings): the effective inversion settings for M (after the preset's
            fallback and the overrides; they key the belonging distribution).
        device (torch.device): where the inversions run.
        distance (str): the loss L (``"mse"``, ``"mae"``, ``"ssim"`` or ``"lpips"``).
        preset (str): the preset that ran (before the fallback), as recorded in results: the one asked
            for, or the model's own (its card's ``preset``, else ``"fast"``) when none or ``"default"`` was.
    """

    model: Generator
    reference: Generator | None
    settings: InversionSettings
    device: torch.device
    distance: str = "mse"
    preset: str = DEFAULT_PRESET


def reference_name(
    model: str | Generator, reference: str | os.PathLike | Generator | None
) -> str | os.PathLike | Generator | None:
    """The reference model that ``reference`` names for ``model`` (the reference vocabulary).

    Args:
        model (str | Generator): the inspected model (a catalogue name or a loaded adapter).
        reference (str | os.PathLike | Generator | None): ``"default"`` (or ``""``): the model's
            pairing (:func:`ronan.models.registry.default_reference`, None when it has none);
            None or ``"none"`` (any case): no calibration; anything else (a name, a card path, an
            adapter) is that model.

    Returns:
        The reference to load (a name, a path or an adapter), or None for no calibration.
    """
    if reference is None or isinstance(reference, (Generator, os.PathLike)):
        return reference
    if reference in ("", DEFAULT_REFERENCE):
        return default_reference(model)
    if str(reference).lower() == NO_REFERENCE:
        return None
    return reference


def load(model: str | os.PathLike | Generator, device: torch.device) -> Generator:
    """``model`` itself when it is already an adapter, else :func:`ronan.models.registry.load_model`.

    Raises:
        ModelUnavailable, CardError: unknown, unavailable or damaged model.
    """
    return model if isinstance(model, Generator) else load_model(model, device)


def prepare(
    model: str | os.PathLike | Generator,
    reference: str | os.PathLike | Generator | None = DEFAULT_REFERENCE,
    *,
    distance: str = "mse",
    preset: str | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
    precision: str | None = None,
    device: str | torch.device | None = None,
) -> Prepared:
    """Load M and M_r and resolve the settings and the device, checking everything before any work.

    Args:
        model (str | os.PathLike | Generator): inspected model: a catalogue name, the path of a
            model card (a ``pathlib.Path``), or a loaded adapter.
        reference (str | os.PathLike | Generator | None): see :func:`reference_name`; default
            ``"default"`` (the model's pairing).
        distance (str): ``"mse"`` (default), ``"mae"``, ``"ssim"`` or ``"lpips"``.
        preset (str | None): inversion preset; None or ``"default"`` (default): the model's own
            (its card's ``preset``, else ``"fast"``; :func:`ronan.preset_names.preset_name`); ``steps`` (1 ..
            ``RONAN_MAX_STEPS``), ``restarts`` (>= 1), ``lr`` (finite, > 0) override it.
        precision (str | None): ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast on CUDA only;
            elsewhere dropped, see :func:`ronan.limits.effective_precision`); default fp32.
        device (str | torch.device | None): ``"cpu"``, ``"cuda"``, ``"mps"``; None or ``"auto"``
            picks the best present.

    Returns:
        Prepared: the models, the effective settings and the device.

    Raises:
        DeviceUnavailable, LimitExceeded, ValueError (bad settings), ModelUnavailable, CardError,
        CalibrationError (a model as its own reference), DistanceUnavailable.
    """
    dev = resolve_device(device)
    precision = limits.effective_precision(precision, dev)
    # the settings and their limits are checked before any model loads
    resolve_settings(preset, steps=steps, restarts=restarts, lr=lr, precision=precision)
    gen = load(model, dev)
    ref_arg = reference_name(gen, reference)
    ref = load(ref_arg, dev) if ref_arg is not None else None
    check_reference(gen, ref)
    settings = resolve_settings(
        preset, model=gen, distance=distance, steps=steps, restarts=restarts, lr=lr, precision=precision
    )
    get_distance(distance, dev)  # fail fast (e.g. LPIPS weights missing) before any work
    return Prepared(gen, ref, settings, dev, distance, preset_name(preset, gen))
