"""``attribute()``: was this image made by this model? (the whole method, end to end)

For each image: invert it on the inspected model M (Eq. 1) and on the reference model M_r,
calibrate (Eq. 2), and run Grubbs' test (Eq. 3) against M's belonging distribution
(Algorithm 1, cached). The result is a JSON-serialisable :class:`Attribution` holding every
number behind the verdict, the seeds, settings, versions and SHA-256 of image and weights.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch

from . import contrast as contrast_check
from . import limits
from .calibration import (
    BelongingDistribution,
    cache_path,
    calibrate_losses,
    distribution_key,
    edit_transform,
    get_distribution,
)
from .edits.policy import EditAssumption, resolve_edit, unmodelled, validate_assume
from .edits.stand_in import unmodelled_rejection_holds
from .errors import CalibrationError, Cancelled
from .images import LoadedImage, load_image
from .inversion import (
    InversionProgress,
    InversionResult,
    InversionSettings,
    invert_jobs_stream,
    parallel_default,
    start_losses,
)
from .models.base import Generator
from .parts import invert_parts_stream
from .prepare import PREPARE_ARGS, Prepared, prepare
from .provenance import environment, library_versions
from .rows import ROW_FIELDS, json_ready
from .starts import start_digests
from .verdict import (
    BELONGING,
    INCONCLUSIVE,
    NON_BELONGING,
    DecisionSettings,
    SampleSummary,
    decide,
    floor_for,
    pick,
    summarize,
    test_belongs,
)

SSIM_RESTARTS = 4  # restarts that 1-SSIM needs on the bundled zoo (benchmarks/RESULTS.md, Table 5)


@dataclass
class Attribution:
    """Everything behind one verdict. ``to_dict()`` gives plain JSON types.

    Losses are A(M, x) (``loss``), A(M_r, x) (``reference_loss``) and A'(M, x) =
    loss / reference_loss (``calibrated_loss``). ``statistic`` is Grubbs'
    ``(v - mean) / std`` with ``v`` the calibrated loss in the test's ``domain`` (``"log"``:
    ``log A'``, test mode ``"robust"``; ``"linear"``: A' itself, mode ``"paper"``), and ``mean``
    / ``std`` those of the ``n_kept`` belonging values the test used (``n_calibration`` minus the
    ``n_removed`` removed as failed inversions, robust mode). ``test_verdict`` is what Grubbs'
    test says (``"belonging"`` when ``statistic < critical_value``, i.e. ``calibrated_loss <
    threshold``); ``verdict`` is that, or ``"inconclusive"`` with ``reasons`` when the evidence
    cannot carry it (see :mod:`ronan.verdict`). ``settled`` says whether the inversion on M had
    settled when it ended. ``edit`` is the edit assumed (``"none"``, ``"robust"`` or a spec such
    as ``"jpeg:75"``), ``edit_source`` how (``"detected"``, ``"declared"``, ``"robust"``,
    ``"none"``, or ``"stand-in"``: the file's detected edit had no distribution on a server that does
    not build, and ``edit`` stood in for it, :mod:`ronan.edits.stand_in`), ``edit_mode`` how it
    entered the method (``"samples"``/``"through"``),
    ``detection`` what the file revealed, ``robust_edit`` (robust assumption only) the edit of the
    family whose belonging distribution decided (the closest fit, :func:`ronan.verdict.pick`);
    ``original_format``/``original_size``/``original_mode``
    describe the file as uploaded; ``environment`` the machine (CPU, instruction set, threads,
    device: :func:`ronan.provenance.environment`). ``contrast`` is where the query fell among
    held-out real pictures passed through the same edit (:meth:`ronan.contrast.ContrastCheck.to_dict`:
    set, n, at_or_below, p_value, alpha, file), None when no contrast check ran
    (:mod:`ronan.contrast`). ``steps_run`` and ``reference_steps_run`` are the optimiser steps
    each inversion ran (fewer than ``settings["steps"]`` when early stopping ended it);
    ``history`` and ``reference_history`` hold the best loss so far after each of them
    (``steps_run + 1`` values). ``start_sha256`` names the learned-start networks the inversions
    began from (``{"model": digest, "reference": digest}``, :func:`ronan.starts.start_digests`;
    None without learned starts). ``reference_bound`` is True when the reference model's inversion
    of this image was ended early because its verdict was already certain (see
    :func:`attribute_stream`, ``full_reference``): ``reference_loss`` is then an upper bound of
    A(M_r, x), and ``calibrated_loss`` and ``statistic`` are lower bounds, already on the
    non-belonging side of the threshold. ``second_path`` says what the second path of the
    inversion on M did (settings with ``retry_above``, e.g. the preset ``two-path``): ``"not
    needed"`` (the first path ended below ``retry_above``), ``"kept"`` (it ran and its result is
    ``loss``), ``"not kept"`` (it ran and the first path's result stood); None without one.
    ``basis`` is the belonging sample the verdict was tested against: ``"all"``, or ``"floor"``
    (the floor rule, :mod:`ronan.verdict`: the whole sample could not carry a verdict, and this
    image's inversion reached the 8-bit floor, so it was tested against the samples that reached it
    too; ``mean``, ``std``, ``threshold``, ``n_kept`` and ``n_removed`` are then that sample's);
    ``floor_rule`` whether that rule was allowed (``attribute(..., floor_rule=)``).
    """

    image: str
    image_sha256: str
    model: str
    model_sha256: str | None
    reference: str | None
    reference_sha256: str | None
    distance: str
    loss: float
    reference_loss: float | None
    calibrated_loss: float
    statistic: float
    critical_value: float
    n_calibration: int
    alpha: float
    mean: float
    std: float
    verdict: str
    seconds: float
    seed: int
    preset: str | None
    settings: dict
    calibration_seed: int
    calibration_file: str | None
    device: str
    notes: list[str] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    test: str = "robust"
    test_verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    domain: str = "log"
    threshold: float = math.nan
    n_kept: int = 0
    n_removed: int = 0
    settled: bool = True
    edit: str = "none"
    edit_source: str = "none"
    edit_description: str = ""
    edit_mode: str | None = None
    detection: dict | None = None
    original_format: str | None = None
    original_size: list[int] | None = None
    original_mode: str | None = None
    robust_edit: str | None = None
    contrast: dict | None = None
    steps_run: int = 0
    reference_steps_run: int | None = None
    history: list[float] = field(default_factory=list)
    reference_history: list[float] | None = None
    reference_bound: bool = False
    start_sha256: dict | None = None
    second_path: str | None = None
    basis: str = "all"
    floor_rule: bool = True
    # tensors for figures and the app; not part of the JSON
    image_tensor: torch.Tensor | None = field(default=None, repr=False)
    reconstruction: torch.Tensor | None = field(default=None, repr=False)
    reference_reconstruction: torch.Tensor | None = field(default=None, repr=False)

    TENSOR_FIELDS = ("image_tensor", "reconstruction", "reference_reconstruction")

    @property
    def belonging(self) -> bool:
        return self.verdict == BELONGING

    @property
    def inconclusive(self) -> bool:
        return self.verdict == INCONCLUSIVE

    def explanation(self) -> str:
        """One plain-language sentence explaining the verdict."""
        if self.inconclusive:
            return (
                f"No verdict: {'; '.join(self.reasons)}. (Grubbs' test alone would say "
                f"{self.test_verdict}: statistic {_fmt(self.statistic)} vs critical value "
                f"{self.critical_value:.2f}.)"
            )
        own = "its own samples" if self.basis == "all" else "its own samples whose inversions reached the 8-bit floor"
        if self.belonging:
            return (
                f"{self.model} reconstructs this image as well as {own} "
                f"(statistic {self.statistic:.2f} is below the critical value {self.critical_value:.2f}), "
                f"so it is judged to have been generated by {self.model}."
            )
        return (
            f"{self.model} cannot reconstruct this image as well as {own} "
            f"(statistic {_fmt(self.statistic)} is above the critical value {self.critical_value:.2f}, an "
            f"outlier at alpha = {self.alpha}), so it is judged not to have been generated by {self.model}."
        )

    def to_dict(self, history: bool = True) -> dict:
        """JSON-ready dict (non-finite floats become None); ``history=False`` drops loss curves."""
        d = {k: v for k, v in asdict(self).items() if k not in self.TENSOR_FIELDS}
        if not history:
            d.pop("history"), d.pop("reference_history")
        return json_ready(d)

    def to_row(self) -> dict:
        """One flat row for tables and CSV files: the columns of :data:`ronan.rows.ROW_FIELDS`
        (image, verdict, statistic, critical value, the three losses, the models, N, the basis, the edit
        assumed and how, SHA-256, seconds)."""
        return {k: getattr(self, k) for k in ROW_FIELDS}


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else str(x)


@dataclass
class AttributionEvent:
    """Progress of one inversion inside an attribution; ``role`` is ``"model"`` or ``"reference"``."""

    role: str
    progress: InversionProgress


def _as_loaded(image, budget=None) -> LoadedImage:
    return image if isinstance(image, LoadedImage) else load_image(image, budget=budget)


@dataclass
class _Run:
    """What every image of one ``attribute_stream`` call shares: the prepared models and settings,
    the decision settings and the loaded images."""

    prepared: Prepared
    decision: DecisionSettings
    loaded: list[LoadedImage]
    contrast: str = "auto"
    pictures: contrast_check.PictureSet | None = None
    full_reference: bool = False

    @functools.cached_property
    def picture_set(self) -> contrast_check.PictureSet | None:
        """The contrast check's pictures: the caller's, else the bundled model's tier set (looked up
        once per call, and only when an image needs the check)."""
        return self.pictures or contrast_check.bundled_set(self.gen)

    @property
    def reference_to_end(self) -> bool:
        """Whether every reference inversion runs to its end: ``full_reference``, or the paper's fixed
        schedule (``plateau_steps`` 0, e.g. ``--preset paper``: Algorithm 1 inverts both models fully,
        so its reference losses are exact, never bounds)."""
        return self.full_reference or self.settings.plateau_steps == 0

    @property
    def gen(self) -> Generator:
        return self.prepared.model

    @property
    def ref(self) -> Generator | None:
        return self.prepared.reference

    @property
    def settings(self) -> InversionSettings:
        return self.prepared.settings


def _check_inputs(
    images: list,
    *,
    edit: str,
    seed: int,
    test: str,
    alpha: float,
    contrast: str,
    contrast_alpha: float,
    floor_rule: bool = True,
) -> DecisionSettings:
    """Step 1: the arguments that need no model (edit, seed, test, alpha, contrast, how many images)."""
    validate_assume(edit)
    contrast_check.validate_contrast(contrast)
    limits.check_seed(seed)
    decision = DecisionSettings(mode=test, alpha=alpha, contrast_alpha=contrast_alpha, floor_rule=bool(floor_rule))
    limits.check_images(len(images))
    return decision


def _prepared(model, prepare_kwargs: dict) -> Prepared:
    """Step 2: ``model`` if it is a :class:`Prepared` (then no other preparation argument may be
    given), else :func:`ronan.prepare.prepare` of it."""
    if not isinstance(model, Prepared):
        return prepare(model, **prepare_kwargs)
    given = [k for k, v in prepare_kwargs.items() if v != _PREPARE_DEFAULTS[k]]
    if given:
        raise ValueError(f"{', '.join(given)}: already fixed by the prepared model; pass them to prepare()")
    return model


_PREPARE_DEFAULTS = {k: p.default for k, p in inspect.signature(prepare).parameters.items() if k in PREPARE_ARGS}


def _edit_groups(run: _Run, edit: str) -> list[tuple[EditAssumption, list[int]]]:
    """The edit assumed for each image (:func:`ronan.edits.policy.resolve_edit`), grouped."""
    groups: dict[str, tuple[EditAssumption, list[int]]] = {}
    for i, li in enumerate(run.loaded):
        a = resolve_edit(li, run.gen.image_size, run.gen.channels, edit)
        groups.setdefault(a.spec, (a, []))[1].append(i)
    return list(groups.values())


SPLIT_MIN_VALUES = 6144
"""Fewest output values (channels x height x width, summed over its images) a part of a split
inversion must get (:func:`_parts`): a tiny generator's steps on a few images cost about as much
as on twice as many (its passes are overhead), a larger one's grow with the images. Measured
(``benchmarks/reference_stop.py --crossover``): splitting pays from 16 28x28 grayscale images (784
values each; 8 a part) and from 2 64x64 RGB ones (12,288 each)."""


def _parts(run: _Run, n: int) -> int:
    """Parts one inversion of ``n`` images runs in: 2 (one per core) where inversions run side by
    side (:func:`ronan.inversion.parallel_default`) and each part gets ``SPLIT_MIN_VALUES`` output
    values, else 1."""
    values = run.gen.channels * run.gen.image_size**2
    return 2 if parallel_default(run.gen.device) and n >= 2 and (n // 2) * values >= SPLIT_MIN_VALUES else 1


def _invert_group(run: _Run, idx: list[int], transform, evidence: list[_Evidence], *, settings, **kwargs):
    """Invert images ``idx`` on M (through ``transform``, with ``settings``) and on M_r (with
    ``settings.for_reference()``, as the belonging distribution was); yields events, returns
    ``({role: InversionResult}, model-domain tensor)``.

    With a reference model, two schedules:

    * *staged* (default): M's inversion first, then M_r's, each split over the cores
      (:func:`_parts`); M_r's inversion of an image ends as soon as the verdict cannot depend on
      it any more (:func:`_verdict_certain`): its loss so far can only fall, so A' can only rise,
      and once A' is on the non-belonging side of the threshold of every ``evidence`` it stays
      there. Real pictures mostly end at the reference's starting point (their A' there is
      a thousand times the threshold or more on the bundled tiers), so the reference inverts the
      candidates only.
    * *together*: both inversions at once, one per core, each to its end — with
      ``full_reference`` or the paper's fixed schedule (exact A(M_r, x) for every image:
      :attr:`_Run.reference_to_end`), or where M's inversion is not split
      on a CPU (:func:`_parts`: too few images; the second core would idle).
    """
    x = torch.stack([run.gen.preprocess(run.loaded[i].image) for i in idx])
    model = ("model", run.gen, x, {"transform": transform, "settings": settings})
    parts = _parts(run, len(idx))
    results: dict[str, InversionResult] = {}
    if run.ref is None:
        results["model"] = yield from _stage(*model, parts, kwargs)
        return results, x
    xr = torch.stack([run.ref.preprocess(run.loaded[i].image) for i in idx])
    reference = ("reference", run.ref, xr, {"settings": settings.for_reference()})
    if run.reference_to_end or (parts == 1 and parallel_default(run.gen.device)):
        for role, event in invert_jobs_stream([model, reference], **kwargs):
            if isinstance(event, InversionResult):
                results[role] = event
            else:
                yield AttributionEvent(role, event)
        _check_finished(results.values())
        return results, x
    results["model"] = yield from _stage(*model, parts, kwargs)
    certain = reference[3]["stop_images"] = _verdict_certain(results["model"].loss, evidence)
    heavy = None
    if parts > 1:  # spread the images the reference will invert to the end evenly over the cores
        everyone = torch.arange(len(idx))
        begin = start_losses(
            run.ref, xr, distance=kwargs["distance"], settings=reference[3]["settings"], seed=kwargs["seed"]
        )
        heavy = ~certain(begin, everyone)
    results["reference"] = yield from _stage(*reference, parts, kwargs, heavy)
    return results, x


def _stage(role: str, gen: Generator, images: torch.Tensor, options: dict, parts: int, kwargs: dict, heavy=None):
    """One inversion in ``parts`` parts side by side (``heavy``: see :func:`ronan.parts.split`);
    yields its events, returns its result."""
    result = None
    for _, event in invert_parts_stream(role, gen, images, options, parts=parts, heavy=heavy, **kwargs):
        if isinstance(event, InversionResult):
            result = event
        else:
            yield AttributionEvent(role, event)
    _check_finished([result])
    return result


def _check_finished(results) -> None:
    if any(r.extra.get("stopped") for r in results):
        raise Cancelled("attribution stopped before the inversion finished")


def _verdict_certain(losses: torch.Tensor, evidence: list[_Evidence]):
    """``stop_images(best, part)`` for the reference's inversion (:func:`ronan.parts.invert_parts_stream`):
    True for the images whose calibrated loss with the reference's loss so far, ``A(M, x) / best``,
    is already non-belonging against every belonging distribution of ``evidence``. The reference's
    loss only falls as its inversion goes on, so A' only rises and Grubbs' test stays non-belonging;
    the abstention rules that apply to such a verdict do not involve the reference (and a
    contrast check only applies to belonging ones): the verdict is the one the whole inversion
    would give."""

    def stop(best: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        calibrated = calibrate_losses(losses[part].double(), best.double())
        rows = []
        for loss, c in zip(losses[part].tolist(), calibrated.tolist()):
            deciding = [e.summary.deciding(loss) for e in evidence]  # None: inconclusive whatever A' is
            rows.append(not any(s is not None and test_belongs(c, s) for s in deciding))
        return torch.tensor(rows)

    return stop


def attribute_stream(
    images: list,
    model: str | os.PathLike | Generator | Prepared,
    *,
    reference: str | os.PathLike | Generator | None = "default",
    distance: str = "mse",
    alpha: float = 0.05,
    test: str = "robust",
    floor_rule: bool = True,
    edit: str = "auto",
    edit_mode: str | None = None,
    contrast: str = "auto",
    contrast_alpha: float = 0.01,
    contrast_pictures: contrast_check.PictureSet | None = None,
    preset: str | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
    precision: str | None = None,
    seed: int = 0,
    n_calibration: int = 100,
    calibration_seed: int = 0,
    device: str | torch.device | None = None,
    distribution: BelongingDistribution | None = None,
    build_calibration: bool = True,
    calibration_callback: Callable | None = None,
    progress_every: int = 10,
    with_images: bool = False,
    should_stop: Callable[[], bool] | None = None,
    full_reference: bool = False,
) -> Iterator[AttributionEvent | list[Attribution]]:
    """Attribute ``images`` to ``model``, yielding progress events, then the list of results.

    Args:
        images (list): paths, bytes, PIL images or :class:`LoadedImage` (any size and mode).
        model (str | Path | Generator | Prepared): inspected model (registry name, model card path,
            loaded adapter), or the result of :func:`ronan.prepare.prepare` (then ``reference``,
            ``distance``, ``preset``, ``steps``, ``restarts``, ``lr``, ``precision`` and ``device``
            are already fixed and must be left at their defaults).
        reference (str | Path | Generator | None): reference model for Eq. 2: ``"default"`` (the
            registry's pairing), a name, None or ``"none"`` for no calibration
            (:func:`ronan.prepare.reference_name`).
        distance (str): ``"mse"`` (default), ``"mae"``, ``"ssim"`` or ``"lpips"``.
        alpha (float): significance of Grubbs' test, in (0, 1), default 0.05.
        test (str): ``"robust"`` (default: log domain, failed belonging inversions removed,
            inconclusive when the evidence is weak) or ``"paper"`` (Eq. 3 on all N raw values);
            see :mod:`ronan.verdict`.
        edit (str): the edit assumed to have happened to the images on their way here:
            ``"auto"`` (default: detected from each file — JPEG quality, size), ``"none"``,
            ``"robust"`` (a family of common edits) or a spec such as ``"jpeg:75"``; see
            :mod:`ronan.edits.policy`. The belonging distribution is built from samples passed
            through the same edit (on first use; cached).
        edit_mode (str | None): ``"samples"`` or ``"through"`` (also invert through the
            edit); None: the measured default of the edit (:func:`default_edit_mode`).
        contrast (str): the contrast check (:mod:`ronan.contrast`; robust test only): ``"auto"``
            (default: for edited images), ``"on"`` (every image) or ``"off"``. A belonging verdict
            then needs the image set apart from held-out real pictures under the same edit
            (p <= ``contrast_alpha``), else it is inconclusive. The contrast distribution is built
            on first use and cached.
        contrast_alpha (float): level of the contrast check, in (0, 1); default 0.01.
        floor_rule (bool): the robust test's floor rule (:mod:`ronan.verdict`): when the whole
            belonging sample cannot carry a verdict, an image whose inversion reached the 8-bit
            floor is tested against the samples that reached it; default True. False: those
            verdicts stay inconclusive (the robust test before it).
        contrast_pictures (PictureSet | None): the real pictures of the check; None: the bundled
            model's tier set (:func:`ronan.contrast.bundled_set`; other models then have none,
            and the result notes that the check could not run).
        preset (str | None): inversion preset; None or ``"default"`` (default None): the model's
            own (its card's ``preset``, else ``"fast"``); ``steps``, ``restarts``,
            ``lr`` and ``precision`` override it.
        seed (int): seed of the query inversions, in ``[0, 2**63)`` (default 0).
        n_calibration (int): N of the belonging distribution (default 100).
        calibration_seed (int): seed of the belonging distribution (default 0).
        device (str | torch.device | None): ``"cpu"``, ``"cuda"``, ``"mps"``; None picks the best present.
        distribution (BelongingDistribution | None): use this instead of the cache (it must
            match the settings and the edit of every image).
        build_calibration (bool): build a missing distribution (default True) or fail.
        calibration_callback (callable | None): progress of a distribution build.
        progress_every (int): steps between progress events (default 10).
        with_images (bool): attach current reconstructions to progress events (default False).
        should_stop (callable | None): polled between steps; True raises :class:`Cancelled`.
        full_reference (bool): invert every image on the reference model to the end, so that
            ``reference_loss`` and ``calibrated_loss`` are exact for every image. Default False:
            the reference's inversion of an image ends once its verdict cannot change any more
            (``Attribution.reference_bound``; the verdicts are the same either way, see
            :func:`_invert_group`), which spares most of its cost on pictures M did not make.
            Settings with the paper's fixed schedule (``plateau_steps`` 0: ``preset="paper"``)
            always invert the reference to the end, as Algorithm 1 does.

    Raises:
        ImageError, ModelUnavailable, DistanceUnavailable, CalibrationError, EditError, Cancelled,
        LimitExceeded, ValueError (bad settings).
    """
    t0 = time.perf_counter()
    # 1. check inputs (images are loaded here: an unreadable one is an input error)
    decision = _check_inputs(
        images,
        edit=edit,
        seed=seed,
        test=test,
        alpha=alpha,
        contrast=contrast,
        contrast_alpha=contrast_alpha,
        floor_rule=floor_rule,
    )
    budget = limits.PixelBudget()
    loaded = [_as_loaded(im, budget) for im in images]
    # 2. prepare: models, settings, device (once; a Prepared model brings them)
    prepared = _prepared(
        model,
        {
            "reference": reference,
            "distance": distance,
            "preset": preset,
            "steps": steps,
            "restarts": restarts,
            "lr": lr,
            "precision": precision,
            "device": device,
        },
    )
    run = _Run(prepared, decision, loaded, contrast, contrast_pictures, full_reference)
    limits.check_batch(len(loaded), limits.rows_per_image(run.settings, run.gen))
    # 3. run, per assumed edit: the belonging distribution, the inversions; 4. assemble the verdicts
    by_index: dict[int, Attribution] = {}
    for assumption, idx in _edit_groups(run, edit):
        mode = _edit_mode(edit_mode, assumption)
        if distribution is not None and assumption.is_robust:
            raise CalibrationError(
                "a given belonging distribution cannot serve the robust edit assumption (one per edit of its family)"
            )
        members = assumption.members()
        evidence = [
            _evidence(
                run, distribution, m, mode, n_calibration, calibration_seed, build_calibration, calibration_callback
            )
            for m in members
        ]
        transform = edit_transform(members[0], mode, run.gen)
        results, x = yield from _invert_group(
            run,
            idx,
            transform,
            evidence,
            distance=prepared.distance,
            settings=run.settings,
            seed=seed,
            progress_every=progress_every,
            with_images=with_images,
            should_stop=should_stop,
        )
        for j, i in enumerate(idx):
            by_index[i] = _assemble(run, i, j, results, x, evidence, assumption, mode, seed=seed)
    out = [by_index[i] for i in range(len(loaded))]
    per_image = round((time.perf_counter() - t0) / max(len(run.loaded), 1), 4)
    for r in out:
        r.seconds = per_image
    yield out


THROUGH_OPS = frozenset({"crop"})
"""Edits whose default mode is ``"through"``: measured to decide better that way (benchmarks/RESULTS.md,
"Table 8 with edit-aware calibration": crop 0.9 on dcgan-fmnist, AUC 0.988 through vs 0.618 with edited
samples only; JPEG q75 decides as well or better with edited samples, 99.5% vs 99.0%)."""


def default_edit_mode(assumption: EditAssumption) -> str:
    """The edit mode measured to decide best for this edit (benchmarks/RESULTS.md, Table 8):
    ``"through"`` when the edit contains a step in :data:`THROUGH_OPS` that is differentiable,
    else ``"samples"``."""
    edit = assumption.edit
    if edit is not None and edit.fully_differentiable and any(step.op in THROUGH_OPS for step in edit.steps):
        return "through"
    return "samples"


def _edit_mode(edit_mode: str | None, assumption: EditAssumption) -> str:
    """The mode of an edit group: ``edit_mode``, else the edit's measured default; the robust
    assumption's family edits all invert in mode ``"samples"``."""
    if not assumption.is_robust:
        return edit_mode or default_edit_mode(assumption)
    if edit_mode not in (None, "samples"):
        raise ValueError("the robust edit assumption compares edited samples (mode samples), not --edit-mode through")
    return "samples"


@dataclass
class _Evidence:
    """What one belonging distribution contributes to an edit group's verdicts: the edit it assumes,
    the distribution and its test summary, and for the contrast check (when it applies) its picture
    set and distribution (None when it is missing and may not be built); ``no_set``: the check
    applies but the model has no picture set."""

    assumption: EditAssumption
    dist: BelongingDistribution
    summary: SampleSummary
    contrast_dist: BelongingDistribution | None = None
    pictures: contrast_check.PictureSet | None = None
    no_set: bool = False


def _evidence(run: _Run, given, assumption, mode, n, seed, build, callback) -> _Evidence:
    dist = _distribution(run, given, assumption, mode, n, seed, build, callback)
    summary = summarize(
        dist.values,
        run.decision,
        settled=dist.sample_settled,
        inversion=dist.settings,
        losses=dist.losses,
        floor=floor_for(run.prepared.distance, not assumption.is_none),
    )
    if not contrast_check.applies(run.contrast, assumption, run.decision.mode):
        return _Evidence(assumption, dist, summary)
    pictures = run.picture_set
    if pictures is None:
        return _Evidence(assumption, dist, summary, no_set=True)
    contrast_dist = _contrast_distribution(run, pictures, assumption, mode, seed, build, callback)
    return _Evidence(assumption, dist, summary, contrast_dist, pictures)


def _distribution(run: _Run, given, assumption, mode, n, seed, build, callback) -> BelongingDistribution:
    """The belonging distribution for one edit group: ``given`` (checked) or the cached/built one."""
    distance = run.prepared.distance
    if given is None:
        return get_distribution(
            run.gen,
            run.ref,
            distance=distance,
            settings=run.settings,
            n=n,
            seed=seed,
            build=build,
            edit=assumption,
            edit_mode=mode,
            callback=callback,
        )
    expected = distribution_key(run.gen, run.ref, distance, run.settings, given.n, given.seed, assumption.key(mode))
    if given.key() != expected:
        raise CalibrationError(
            "the given belonging distribution was built with other settings"
            + ("" if assumption.is_none else f" (this image assumes edit {assumption.spec})")
        )
    return given


def _contrast_distribution(run: _Run, pictures, assumption, mode, seed, build, callback):
    """The contrast distribution of ``pictures`` under one edit; None when it is missing and
    ``build`` is False (belonging verdicts then become inconclusive)."""
    try:
        return get_distribution(
            run.gen,
            run.ref,
            distance=run.prepared.distance,
            settings=run.settings,
            n=len(pictures),
            seed=seed,
            build=build,
            edit=assumption,
            edit_mode=mode,
            pictures=pictures,
            callback=callback,
        )
    except CalibrationError:
        if build:
            raise
        return None


def _assemble(
    run: _Run,
    i: int,
    j: int,
    results: dict,
    x: torch.Tensor,
    evidence: list[_Evidence],
    assumption: EditAssumption,
    mode: str,
    *,
    seed: int,
) -> Attribution:
    """The :class:`Attribution` of image ``i`` (``j``-th of its edit group), decided against each
    :class:`_Evidence` (one; one per family edit under the robust assumption) and
    reported with the one that decides (:func:`ronan.verdict.pick`)."""
    li, p = run.loaded[i], run.prepared
    distance = p.distance
    res_m, res_r = results["model"], results.get("reference")
    loss = float(res_m.loss[j])
    ref_loss = float(res_r.loss[j]) if res_r is not None else None
    bound = res_r is not None and res_r.cut is not None and bool(res_r.cut[j])
    calibrated = float(
        calibrate_losses(
            torch.tensor([loss], dtype=torch.float64),
            None if ref_loss is None else torch.tensor([ref_loss], dtype=torch.float64),
        )[0]
    )
    settled = bool(res_m.settled[j])
    lossy = unmodelled(assumption)  # an encoding no edit models: a rejection holds only far beyond its reach
    if lossy and unmodelled_rejection_holds(run.gen, lossy, loss if distance == "mse" else None):
        lossy = None
    checks = [_contrast_of(run, e, calibrated) for e in evidence]
    decisions = [
        decide(
            calibrated,
            e.summary,
            settled=settled,
            contrast=c,
            edit=e.assumption.spec,
            loss=loss,
            unmodelled=lossy,
        )
        for e, c in zip(evidence, checks)
    ]
    k = pick(decisions)
    chosen, decision, check = evidence[k], decisions[k], checks[k]
    dist, summary = chosen.dist, chosen.summary.for_basis(decision.basis)
    notes = list(li.notes) + _run_notes(distance, run.settings)
    if decision.basis == "floor":
        notes.append(
            f"decided by the floor rule: the whole belonging sample cannot carry a verdict "
            f"({len(chosen.summary.problems)} problem{'s' if len(chosen.summary.problems) > 1 else ''}, below), "
            f"but this image's inversion reached the 8-bit floor (loss {loss:.3g} < {summary.floor:.3g}): it was "
            f"tested against the {summary.n_kept} of the {summary.n} belonging samples whose inversions reached it too"
        )
        notes.extend(f"whole sample: {p}" for p in chosen.summary.problems)
    if assumption.is_robust:
        fits = ", ".join(f"{e.assumption.spec} {d.verdict} ({_fmt(d.statistic)})" for e, d in zip(evidence, decisions))
        notes.append(
            f"edit assumed (robust): tested against each edit of the family: {fits}; "
            f"decided by {chosen.assumption.spec}"
        )
    elif not assumption.is_none:
        notes.append(f"edit assumed ({assumption.source}): {assumption.spec}, mode {mode}")
    if bound and res_r is not None:
        why = (
            "already beyond the threshold"
            if chosen.summary.deciding(loss) is not None
            else "and no reference loss decides an image whose inversion did not reach the floor (the floor rule)"
        )
        notes.append(
            f"the reference model's inversion ended after {int(res_r.image_steps[j])} steps, once the verdict could "
            f"no longer change: A(M_r, x) is an upper bound and A' a lower bound, {why} "
            f"(full_reference, --full-reference: exact values)"
        )
    second = _second_path(res_m, j)
    if second in ("kept", "not kept"):
        notes.append(
            f"the inversion on {run.gen.name} ended above {run.settings.retry_above:.3g} after its first path; a "
            f"second path from the same start (on the typical shell of the input, then free) ran and "
            + ("its result is the loss" if second == "kept" else "ended higher: the first path's result stands")
        )
    if chosen.no_set:
        notes.append(
            f"no contrast set for {run.gen.name}: the verdict was not checked against real pictures under "
            f"the same edit (pass contrast_pictures to check it)"
        )
    return Attribution(
        image=li.name,
        image_sha256=li.sha256,
        model=run.gen.name,
        model_sha256=run.gen.weights_sha256,
        reference=run.ref.name if run.ref is not None else None,
        reference_sha256=run.ref.weights_sha256 if run.ref is not None else None,
        distance=distance,
        loss=loss,
        reference_loss=ref_loss,
        calibrated_loss=calibrated,
        statistic=decision.statistic,
        critical_value=decision.critical_value,
        n_calibration=dist.n,
        alpha=run.decision.alpha,
        mean=summary.mean,
        std=summary.std,
        verdict=decision.verdict,
        seconds=0.0,
        seed=seed,
        preset=p.preset,
        settings=run.settings.to_dict(generator=run.gen),
        calibration_seed=dist.seed,
        calibration_file=cache_path(dist.key()).name,
        device=str(p.device),
        notes=notes,
        versions=library_versions(),
        environment=environment(p.device, (run.gen, run.ref), run.settings.precision),
        test=run.decision.mode,
        test_verdict=BELONGING if decision.test_belonging else NON_BELONGING,
        reasons=list(decision.reasons),
        domain=summary.domain,
        threshold=summary.threshold,
        n_kept=summary.n_kept,
        n_removed=len(summary.removed),
        settled=settled,
        edit=assumption.spec,
        edit_source=assumption.source,
        edit_description=assumption.description,
        edit_mode=mode if not assumption.is_none else None,
        detection=assumption.detection,
        original_format=li.original_format,
        original_size=list(li.original_size),
        original_mode=li.original_mode,
        robust_edit=chosen.assumption.spec if assumption.is_robust else None,
        contrast=check.to_dict() if check is not None else None,
        steps_run=int(res_m.image_steps[j]),
        reference_steps_run=int(res_r.image_steps[j]) if res_r is not None else None,
        history=_curve(res_m, j),
        reference_history=_curve(res_r, j) if res_r is not None else None,
        reference_bound=bound,
        start_sha256=start_digests({"model": run.gen, "reference": run.ref}, run.settings),
        second_path=second,
        basis=decision.basis,
        floor_rule=run.decision.floor_rule,
        image_tensor=x[j],
        reconstruction=res_m.reconstructions[j],
        reference_reconstruction=res_r.reconstructions[j] if res_r is not None else None,
    )


def _contrast_of(run: _Run, e: _Evidence, calibrated: float):
    """The contrast check of a calibrated loss against one evidence's contrast distribution, or None."""
    if e.pictures is None:
        return None
    if e.contrast_dist is None:
        return contrast_check.not_built(e.pictures.name, e.assumption.spec, run.decision.contrast_alpha)
    return contrast_check.check(
        calibrated,
        e.contrast_dist.values,
        run.decision.contrast_alpha,
        name=e.pictures.name,
        file=cache_path(e.contrast_dist.key()).name,
    )


def _run_notes(distance: str, settings) -> list[str]:
    if distance == "ssim" and settings.restarts < SSIM_RESTARTS:
        return [
            f"distance ssim with {settings.restarts} restart(s): a few inversions get stuck far from "
            f"the image, which widens the belonging distribution; restarts={SSIM_RESTARTS} is "
            f"recommended (benchmarks/RESULTS.md, Table 5)"
        ]
    return []


def _second_path(res: InversionResult, i: int) -> str | None:
    """What the second path of image ``i``'s inversion did (:attr:`Attribution.second_path`)."""
    if "retried" not in res.extra:
        return None
    if not res.extra["retried"][i]:
        return "not needed"
    return "kept" if res.extra["retry_kept"][i] else "not kept"


def _curve(res: InversionResult, i: int) -> list[float]:
    """Best loss so far of image ``i`` at each step it ran (early stopping may end it sooner); an
    image whose second path ran has the batch's whole history (its paths' entries come after every
    image's first path), so that the curve ends at its loss."""
    steps = res.steps_run if res.image_steps is None else int(res.image_steps[i])
    if "retried" in res.extra and res.extra["retried"][i]:
        steps = len(res.history) - 1
    return res.history[: steps + 1, i].cummin(0).values.tolist()


def bound_words(result: Attribution) -> tuple[str, str]:
    """``("at least ", "at most ")`` for a result whose reference loss is an upper bound
    (``reference_bound``: A' and the statistic are then lower bounds), else ``("", "")``: how the
    CLI line, the card and the report mark bounded numbers."""
    return ("at least ", "at most ") if result.reference_bound else ("", "")


def attribute_batch(
    images: list,
    model: str | os.PathLike | Generator | Prepared,
    *,
    callback: Callable[[AttributionEvent], None] | None = None,
    **kwargs,
) -> list[Attribution]:
    """Attribute several images in one batch; see :func:`attribute_stream` for arguments.

    Args:
        callback (callable | None): called with each :class:`AttributionEvent`.
    """
    for event in attribute_stream(images, model, **kwargs):
        if isinstance(event, list):
            return event
        if callback is not None:
            callback(event)
    raise Cancelled("attribution ended without a result")  # pragma: no cover


def attribute(image, model: str | os.PathLike | Generator | Prepared, **kwargs) -> Attribution:
    """Attribute one image (path, bytes, PIL image or LoadedImage) to ``model``.

    Keyword arguments as for :func:`attribute_stream`, plus ``callback``.
    """
    return attribute_batch([image], model, **kwargs)[0]
