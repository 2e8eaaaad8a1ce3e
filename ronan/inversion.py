"""The reverse-engineering engine (paper Eq. 1): ``i* = argmin_i L(M(i), x)``.

All images x restarts run as one batch; the loss of each image is the minimum over its
restarts and over all steps (including the starting point and the final iterate). The
engine is seeded (starting points come from :func:`ronan.seeding.rng` ``(seed, "inversion")``
and are the same for every image, so a batch gives the same result as one-by-one runs),
streams progress events, and can be stopped between steps.

Presets (``PRESETS``):

* ``"paper"``: the paper's procedure — Adam, lr 0.1, 1500 steps, 1 restart.
* ``"fast"`` (default): restart 0 from the model's learned inverse (:mod:`ronan.starts`), Adam
  lr 0.2 for 100 steps (its early-stopping window is as long: no row stops sooner), then up to 32
  Levenberg-Marquardt iterations (:mod:`ronan.refine`) on each image's best input, the
  finite-difference Jacobian computed afresh every 4 iterations and updated by Broyden's rule in
  between; the reference model's inversions run at most 4 of them
  (``reference_refine_steps``: Eq. 2 needs their loss as a scale, not at the floor). Where the
  refinement cannot apply (a distance other than MSE, inputs of more than 512 entries)
  :func:`resolve_settings` given the model uses ``"fast-adam"`` instead. Chosen by measurement on
  dcgan64-clipart and dcgan-fmnist (benchmarks/RESULTS.md, "Inversions that converge", "Speed
  against the paper's loop" and "A shorter refinement on the reference model").
* ``"fast-lm16"``: the default before (Adam at most 300 steps, then 16 Levenberg-Marquardt
  iterations with a fresh Jacobian each), kept to reproduce the figures measured with it.
* ``"thorough"``: as ``"fast"``, but 8 starting points per image — the learned start and 7 drawn
  around it (``start_spread`` 0.3) — each run for 100 Adam steps, the best kept, then up to 160
  Levenberg-Marquardt iterations. For generators whose landscape ``"fast"`` does not cross (more
  than 10% of the belonging samples unsettled, see :mod:`ronan.verdict`); about 8x the Adam cost
  of ``"fast"`` (800 row-steps per image, the paper's 1500). Chosen on upgan64-clipart
  (benchmarks/RESULTS.md, "Candidates around the learned start").
* ``"two-path"``: restart 0 from the learned inverse, one Adam step, then up to 280
  Levenberg-Marquardt iterations; an image whose loss stays above 8x the 8-bit floor
  (``retry_above``) is inverted again from the same start along a second path — 120 iterations with
  the input held on the typical shell of the model's inputs, then 160 free — and keeps the better
  of the two (the two paths fail on different images). Images that converge on the first path pay
  nothing more. Measured on upgan64-clipart and resgan64-clipart (benchmarks/RESULTS.md, "Two
  paths, the second only where the first failed").
* ``"fast-adam"``: Adam lr 0.2, 1 restart, early stopping on a plateau — once a row's
  best loss improved by less than 10% over 100 steps its lr drops to 0.02; once it improved
  by less than 10% over the next 50 steps it stops; at most 1000 steps (the default until the
  64x64 tier showed it stopping far from the floor; benchmarks/RESULTS.md, "Default preset").

Stopped rows are removed from the batch together with their Adam state, so the rows still
running follow the trajectory they would follow without removal, and each stopped row keeps
the best loss it reached. The optimiser is :class:`RowAdam`, torch's Adam update with one
learning rate per row.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator

import torch

from . import limits
from .distances import REACHED_FLOOR, Distance, get_distance
from .errors import Cancelled
from .graphs import GraphedGenerate, wants_graphs
from .preset_names import MODEL_PRESET, PRESET_NAMES, preset_name
from .models.base import Generator
from .precision import autocast
from .seeding import rng


PLATEAU_CHECK_EVERY = 10  # steps between early-stopping checks


@dataclass(frozen=True)
class InversionSettings:
    """Optimiser settings of one inversion.

    Defaults are the ``"fast-adam"`` preset.

    Attributes:
        steps (int): Adam steps, 1 .. ``RONAN_MAX_STEPS`` (5000, :mod:`ronan.limits`) (default 1000;
            a cap when ``plateau_steps`` > 0).
        lr (float): Adam learning rate, finite and > 0 (default 0.2); constant unless a plateau drops it.
        restarts (int): random starting points per image, >= 1 (default 1; ``restarts x candidates``
            at most ``RONAN_MAX_ROWS_PER_IMAGE``, 64); models with an
            encoder replace the first by the encoder's estimate, conditional models may
            multiply them (see ``Generator.expand_restarts``).
        betas (tuple[float, float]): Adam betas (default (0.9, 0.999), torch's default).
        precision (str): ``"fp32"`` (default), or ``"bf16"``/``"fp16"`` autocast of the
            generator's Adam steps on CUDA (ignored elsewhere). Losses, the Levenberg-Marquardt
            refinement and the final reconstruction are always fp32, and fp32 on CUDA means
            IEEE fp32 (TF32 off while an inversion runs, see :func:`ronan.precision.exact_fp32`).
        plateau_steps (int): early stopping window W in steps, a multiple of
            ``PLATEAU_CHECK_EVERY`` (10), default 100; 0 runs every row for ``steps`` steps,
            as the paper does. With W > 0, every 10 steps each row (image x restart) whose best
            loss fell by less than ``plateau_tol`` over the last W steps is on a plateau: it
            continues with a smaller lr (``plateau_lr_drops``) or stops and leaves the batch;
            ``steps`` is then a cap.
        plateau_tol (float): relative improvement in (0, 1) below which a row counts as on a
            plateau (default 0.1, i.e. less than 10% better than W steps ago).
        plateau_lr_drops (int): how many times a row on a plateau continues with its learning
            rate multiplied by ``plateau_lr_factor`` (judged again after a fresh window of W'
            steps) before a plateau stops it; default 1, 0 = stop at the first plateau. A constant lr leaves
            Adam oscillating around the minimum; the drop lets a belonging image settle there.
        plateau_lr_factor (float): learning-rate factor of a drop, in (0, 1], default 0.1.
        plateau_steps_after_drop (int): the window W' of the plateau rule after a drop, a
            multiple of 10, default 50 (the smaller step size settles within a few dozen steps).
        candidates (int): starting points tried per kept row, >= 1 (default 1: none extra).
            With K > 1 the inversion starts ``K x restarts`` rows per image and, after
            ``warmup_steps``, keeps the ``restarts`` rows of each image with the lowest loss so
            far (many cheap starts, the best kept: a start in the right basin is found far more
            often than by one start, at ``(K - 1) x warmup_steps`` extra row-steps per image).
        warmup_steps (int): steps before the candidates are narrowed, >= 1 when
            ``candidates`` > 1 (default 0).
        refine_steps (int): Levenberg-Marquardt iterations after Adam (:mod:`ronan.refine`) on
            each image's best input, >= 0 (default 0: none). Only with the MSE distance and inputs
            of at most ``refine.MAX_DIM`` optimised entries; ignored otherwise.
        refine_jacobian_every (int): >= 1; the refinement computes its finite-difference Jacobian
            afresh every this many iterations of a row (and after a step that failed or stalled
            with an updated Jacobian, and before it stops a row as converged) and keeps it up to
            date by Broyden's update in between, one forward pass per iteration instead of d + 1
            (default 1: afresh every iteration).
        learned_start (bool): the first starting point of every image comes from the model's
            inverse network (:mod:`ronan.starts`, trained once per model and cached), the others
            stay random; default False. Ignored for models it does not apply to (a fixed
            condition in the input, or an encoder of their own).
        reference_refine_steps (int | None): Levenberg-Marquardt iterations of the *reference*
            model's inversions (Eq. 2's ``A(M_r, x)``), >= 0; None (default): ``refine_steps``, the
            same settings as the model's. Only :meth:`for_reference` reads it. The reference
            reconstructs pictures it did not make, so its refinement runs to its cap on every
            query (most of a batch's time, benchmarks/RESULTS.md "Where a batch's time goes") while
            Eq. 2 needs its loss only as a scale: ``"fast"`` sets 4 (decisions measured with 0,
            4, 8, 16 and 32 in RESULTS.md, "A shorter refinement on the reference model").
        start_spread (float): >= 0, with ``learned_start``: the other starting points of an image
            are drawn *around* its learned start, ``learned + start_spread x (the seeded random
            start)``, instead of anywhere (default 0: anywhere). A learned start that lands near
            but outside the basin is then rescued by a neighbour (benchmarks/RESULTS.md, "Candidates
            around the learned start"). Ignored where the learned start does not apply.
        retry_above (float): >= 0; an image whose loss after Adam and the refinement is still above
            this (in the distance's units; e.g. 8x the 8-bit floor, ``1.03e-5`` for MSE) is inverted
            a second time from the same starting point along another path: ``retry_shell_steps``
            Levenberg-Marquardt iterations with the input held on the typical shell of the model's
            input distribution (the sphere of radius ``sqrt(E|z|^2)`` of its own
            ``sample_inputs``, where a d-dimensional standard normal input lies), then
            ``retry_steps`` free ones; each image keeps the better of its two results. The two
            paths fail on different images (benchmarks/RESULTS.md, "Two paths, the second only
            where the first failed"). Default 0: no second path. Only where the refinement
            applies (MSE, at most ``refine.MAX_DIM`` optimised entries), never on the reference
            model (:meth:`for_reference`: Eq. 2 needs its loss as a scale, and an image it did
            not make never comes near the floor).
        retry_shell_steps (int): >= 0, LM iterations of the second path on the shell (default 120).
        retry_steps (int): >= 0, free LM iterations of the second path after the shell (default 160).
    """

    steps: int = 1000
    lr: float = 0.2
    restarts: int = 1
    betas: tuple[float, float] = (0.9, 0.999)
    precision: str = "fp32"
    plateau_steps: int = 100
    plateau_tol: float = 0.1
    plateau_lr_drops: int = 1
    plateau_lr_factor: float = 0.1
    plateau_steps_after_drop: int = 50
    candidates: int = 1
    warmup_steps: int = 0
    learned_start: bool = False
    refine_steps: int = 0
    refine_jacobian_every: int = 1
    start_spread: float = 0.0
    reference_refine_steps: int | None = None
    retry_above: float = 0.0
    retry_shell_steps: int = 120
    retry_steps: int = 160

    def __post_init__(self):
        limits.check_inversion(self.steps, self.restarts, self.candidates, self.lr)  # one-line LimitExceeded
        if self.reference_refine_steps is not None and self.reference_refine_steps < 0:
            raise ValueError(f"reference_refine_steps must be >= 0 or None, not {self.reference_refine_steps}")
        if self.refine_jacobian_every < 1:
            raise ValueError(f"refine_jacobian_every must be >= 1, not {self.refine_jacobian_every}")
        if not (self.start_spread >= 0 and math.isfinite(self.start_spread)):
            raise ValueError(f"start_spread must be finite and >= 0, not {self.start_spread}")
        if not (self.retry_above >= 0 and math.isfinite(self.retry_above)) or self.retry_shell_steps < 0 \
                or self.retry_steps < 0 or (self.retry_above and not self.retry_shell_steps + self.retry_steps):
            raise ValueError(f"invalid retry settings: retry_above={self.retry_above} (finite, >= 0), "
                             f"retry_shell_steps={self.retry_shell_steps}, retry_steps={self.retry_steps} "
                             f"(>= 0, not both 0 when retry_above > 0)")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")
        if (self.plateau_steps < 0 or self.plateau_steps % PLATEAU_CHECK_EVERY or not 0 < self.plateau_tol < 1
                or self.plateau_lr_drops < 0 or not 0 < self.plateau_lr_factor <= 1
                or self.plateau_steps_after_drop <= 0 or self.plateau_steps_after_drop % PLATEAU_CHECK_EVERY):
            raise ValueError(f"invalid plateau settings: plateau_steps={self.plateau_steps} (a non-negative multiple "
                             f"of {PLATEAU_CHECK_EVERY}), plateau_tol={self.plateau_tol} (in (0, 1)), "
                             f"plateau_lr_drops={self.plateau_lr_drops} (>= 0), "
                             f"plateau_lr_factor={self.plateau_lr_factor} (in (0, 1]), "
                             f"plateau_steps_after_drop={self.plateau_steps_after_drop} (a positive multiple of "
                             f"{PLATEAU_CHECK_EVERY})")

        if self.candidates < 1 or (self.candidates > 1 and not 0 < self.warmup_steps <= self.steps) or self.warmup_steps < 0:
            raise ValueError(f"invalid candidate settings: candidates={self.candidates} (>= 1), "
                             f"warmup_steps={self.warmup_steps} (between 1 and steps when candidates > 1)")

    def describe(self) -> str:
        """One line for humans, e.g. ``"Adam lr 0.1, 1500 steps, 1 restart"``: the Adam phase first
        (its early-stopping rule only where it can end a row before ``steps``), then the starts, the
        refinement, the second path and the reference model's inversion where they apply."""
        restarts = f"{self.restarts} restart{'s' if self.restarts != 1 else ''}"
        if self.candidates > 1:
            restarts += (f" (the best {self.restarts} of {self.candidates * self.restarts} starting points after "
                         f"{self.warmup_steps} steps)")
        if self.learned_start:
            restarts += ", the first from the model's learned inverse"
            if self.start_spread:
                restarts += f", the others around it (spread {self.start_spread:g})"
        if self.refine_steps:
            restarts += f", then up to {self.refine_steps} Levenberg-Marquardt iterations on the best"
            if self.refine_jacobian_every > 1:
                restarts += f" (Jacobian afresh every {self.refine_jacobian_every}, Broyden between)"
        if self.retry_above:
            restarts += (f"; an image still above loss {self.retry_above:.3g} is inverted again from the same start: "
                         f"{self.retry_shell_steps} Levenberg-Marquardt iterations on the typical shell of the "
                         f"input, then {self.retry_steps} free, the better of the two kept")
        return f"{self._describe_adam()}, {restarts}{self._describe_reference()}"

    def _describe_reference(self) -> str:
        n = self.refine_steps if self.reference_refine_steps is None else self.reference_refine_steps
        if n == self.refine_steps:
            return ""
        return f"; the reference model's inversion: {f'up to {n} Levenberg-Marquardt iterations' if n else 'Adam only'}"

    def _describe_adam(self) -> str:
        steps = f"{self.steps} step{'s' if self.steps != 1 else ''}"
        if not self.plateau_steps or self.steps <= self.plateau_steps:
            return f"Adam lr {self.lr:g}, {steps}"  # a row is first judged when its window W has passed
        rule = (f"a row's lr drops to {self.lr * self.plateau_lr_factor:g} once its loss improves by less than "
                f"{self.plateau_tol:.0%} over {self.plateau_steps} steps, and it stops at the next such plateau "
                f"({self.plateau_steps_after_drop} steps)" if self.plateau_lr_drops else
                f"a row stops once its loss improves by less than {self.plateau_tol:.0%} over "
                f"{self.plateau_steps} steps")
        return f"Adam lr {self.lr:g}, at most {steps} (early stopping: {rule})"

    def for_reference(self) -> InversionSettings:
        """The settings of the reference model's inversions: these, with ``reference_refine_steps``
        (when set) as ``refine_steps`` and no second path (``retry_above`` 0)."""
        if self.reference_refine_steps is None and not self.retry_above:
            return self
        refine_steps = self.refine_steps if self.reference_refine_steps is None else self.reference_refine_steps
        with limits.presets_unbounded():  # steps, restarts and lr are these settings', checked when they were made
            return replace(self, refine_steps=refine_steps, reference_refine_steps=None, retry_above=0.0)

    def to_dict(self, with_reference: bool = True, generator: Generator | None = None) -> dict:
        """JSON-serialisable dict of the settings (the candidate, refinement, spread, reference and
        retry fields only when used, so that the keys of distributions built before they existed stay
        valid); ``with_reference=False`` leaves out the reference's own setting (a distribution
        without a reference model). With ``learned_start``, ``generator``'s start settings
        (:func:`ronan.starts.settings_for`; None: the defaults)."""
        d = asdict(self)
        if not with_reference or self.reference_refine_steps in (None, self.refine_steps):
            d.pop("reference_refine_steps")
        d["betas"] = list(self.betas)
        d["optimizer"] = "adam"
        if self.candidates == 1 and self.warmup_steps == 0:
            d.pop("candidates"), d.pop("warmup_steps")
        if self.learned_start:
            from .starts import StartSettings, settings_for

            d["learned_start"] = (StartSettings() if generator is None else settings_for(generator)).to_dict()
        else:
            d.pop("learned_start")
        if not self.refine_steps:
            d.pop("refine_steps")
        if self.refine_jacobian_every == 1:
            d.pop("refine_jacobian_every")
        if not self.start_spread:
            d.pop("start_spread")
        if not self.retry_above:
            d.pop("retry_above"), d.pop("retry_shell_steps"), d.pop("retry_steps")
        return d


RETRY_ABOVE_8BIT = REACHED_FLOOR
"""8x the 8-bit floor of the MSE (:data:`ronan.distances.REACHED_FLOOR`, 1.03e-5): above it a
belonging inversion has not found the image's input."""

with limits.presets_unbounded():  # the operator's bounds apply when a request uses a preset
    PRESETS: dict[str, InversionSettings] = {
        "paper": InversionSettings(steps=1500, lr=0.1, restarts=1, plateau_steps=0),
        "fast": InversionSettings(steps=100, plateau_lr_drops=0, learned_start=True, refine_steps=32,
                                  refine_jacobian_every=4, reference_refine_steps=4),
        "fast-lm16": InversionSettings(steps=300, plateau_lr_drops=0, learned_start=True, refine_steps=16),
        "fast-adam": InversionSettings(),
        "thorough": InversionSettings(steps=100, plateau_lr_drops=0, learned_start=True, candidates=8,
                                      warmup_steps=100, start_spread=0.3, refine_steps=160,
                                      refine_jacobian_every=4),
        "two-path": InversionSettings(steps=1, plateau_lr_drops=0, learned_start=True, refine_steps=280,
                                      refine_jacobian_every=4, reference_refine_steps=160,
                                      retry_above=RETRY_ABOVE_8BIT, retry_shell_steps=120, retry_steps=160),
    }
assert tuple(PRESETS) == PRESET_NAMES  # the torch-free names (ronan.preset_names) are these
FALLBACK_PRESETS = {"fast": "fast-adam", "fast-lm16": "fast-adam", "thorough": "fast-adam", "two-path": "fast-adam"}
"""Preset used instead where the named one's Levenberg-Marquardt refinement cannot apply
(a distance other than MSE, or more than ``refine.MAX_DIM`` optimised input entries)."""


def resolve_settings(preset: str | None = None, *, model: Generator | None = None, distance: str | None = None,
                     **overrides) -> InversionSettings:
    """Settings of ``preset`` (:func:`preset_name`: default the model's own, else ``"fast"``) with
    non-None ``overrides`` applied.

    Given the ``model`` (and ``distance``, default ``"mse"``) the settings are for, a preset whose
    refinement cannot apply to them is replaced by its fallback (``FALLBACK_PRESETS``: ``"fast"``
    -> ``"fast-adam"``), so that the effective settings, which key the belonging distribution,
    say what runs.

    Raises:
        ValueError: unknown preset or invalid value.
    """
    name = preset_name(preset, model)
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {MODEL_PRESET}, {', '.join(PRESETS)}")
    if model is not None and name in FALLBACK_PRESETS and not refines(model, distance or "mse"):
        name = FALLBACK_PRESETS[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **overrides)


def refines(model: Generator, distance: str) -> bool:
    """Whether Levenberg-Marquardt refinement applies to inversions of ``model`` under ``distance``."""
    return _refinable(model, model.input_gradient_mask(), getattr(distance, "name", distance))


@dataclass
class InversionProgress:
    """A progress event.

    Attributes:
        step (int): steps done so far (0 .. steps).
        steps (int): total steps.
        best_loss (Tensor[B]): best loss so far per image (min over restarts and steps), CPU.
        current_loss (Tensor[B]): loss at this step, min over restarts, CPU.
        elapsed (float): seconds since the start.
        active_rows (int): rows (images x restarts) still being optimised after this step;
            fewer than all once early stopping has stopped some.
        done (bool): True on the last event of the inversion (the cap was reached, every row
            reached a plateau, or it was stopped).
        reconstructions (Tensor[B, C, H, W] | None): current reconstruction of each image's
            best restart (CPU), only with ``with_images=True``.
    """

    step: int
    steps: int
    best_loss: torch.Tensor
    current_loss: torch.Tensor
    elapsed: float
    active_rows: int = 0
    done: bool = False
    reconstructions: torch.Tensor | None = None

    @property
    def fraction(self) -> float:
        """Progress in [0, 1]: ``step / steps``, and 1.0 on the last event."""
        return 1.0 if self.done else self.step / max(self.steps, 1)


@dataclass
class InversionResult:
    """Outcome of an inversion of B images.

    Attributes:
        loss (Tensor[B]): reconstruction loss A(M, x) — min over restarts and steps.
        inputs (Tensor[B, *input_shape]): the input that reached it.
        reconstructions (Tensor[B, C, H, W]): ``M(inputs)``.
        history (Tensor[steps_run+1, B]): loss per step, min over restarts (before cummin);
            a row stopped by the plateau rule counts with its best loss from then on.
        best_restart (Tensor[B]): index of the winning row among the image's rows.
        seconds (float): wall time.
        steps_run (int): steps done by the longest-running row (< steps when every row
            reached a plateau, or when stopped by ``should_stop``).
        image_steps (Tensor[B] | None): steps done for each image (its longest-running row).
        settled (Tensor[B] | None): bool per image: its winning row was stopped by the plateau
            rule, or its best loss improved by less than 10% over its last 100 steps (see
            :func:`settled_curve`). False means the inversion was still improving when it ended.
        settings (InversionSettings), seed (int), distance (str).
        cut (Tensor[B] | None): bool per image: the caller's ``stop_images`` ended its inversion
            (at ``image_steps``, before any refinement), so its ``loss`` is an upper bound of what
            the whole inversion reaches; None when no ``stop_images`` was given.
    """

    loss: torch.Tensor
    inputs: torch.Tensor
    reconstructions: torch.Tensor
    history: torch.Tensor
    best_restart: torch.Tensor
    seconds: float
    steps_run: int
    settings: InversionSettings
    seed: int
    distance: str
    image_steps: torch.Tensor | None = None
    settled: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)
    cut: torch.Tensor | None = None


SETTLE_WINDOW, SETTLE_TOL = 100, 0.1


def settled_curve(curve: torch.Tensor, window: int = SETTLE_WINDOW, tol: float = SETTLE_TOL) -> bool:
    """Whether a loss curve (loss per step, ``steps_run + 1`` values) had settled when it ended.

    Settled: the best loss improved by less than ``tol`` (10%) over the last ``window`` (100)
    steps. A curve shorter than ``window + 1`` steps has not shown that it settled (False).
    """
    best = curve.cummin(0).values
    if best.numel() <= window:
        return False
    return bool(best[-1] >= (1.0 - tol) * best[-1 - window])


PER_IMAGE_EXTRA = ("retried", "retry_kept")
"""The entries of ``InversionResult.extra`` that hold one value per image (a second path's: whether
the image took it, whether its result was kept); a batch run in parts merges them in its order."""


def invert_stream(
    generator: Generator,
    images: torch.Tensor,
    *,
    distance: str | Distance = "mse",
    settings: InversionSettings | None = None,
    seed: int = 0,
    progress_every: int = 10,
    with_images: bool = False,
    should_stop: Callable[[], bool] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    stop_images: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cuda_graphs: bool | None = None,
) -> Iterator[InversionProgress | InversionResult]:
    """Invert ``images`` on ``generator``, yielding progress events, then the result.

    Args:
        generator (Generator): frozen model adapter.
        images (Tensor[B, C, H, W]): targets in [0, 1], already in the model's domain.
        distance (str | Distance): loss L, default ``"mse"``.
        settings (InversionSettings | None): default: the ``"fast"`` preset (its fallback where it
            cannot apply, see :func:`resolve_settings`).
        seed (int): seed of the starting points, default 0.
        progress_every (int): yield an :class:`InversionProgress` every that many steps
            (and at the first and last); default 10.
        with_images (bool): attach current reconstructions to progress events.
        should_stop (callable | None): polled every step; when it returns True the run
            ends early and the result covers the steps done (``steps_run``).
        transform (callable | None): differentiable map applied to the reconstructions
            before the loss, ``L(transform(M(i)), x)`` — inversion through an edit (e.g. a
            JPEG re-save, :meth:`ronan.edits.Edit.differentiable`); output shaped like ``images``.
            ``reconstructions`` in events and the result stay ``M(i)``. Default None (identity).
        stop_images (callable | None): ``f(best) -> stop``, called with each image's best loss so
            far (Tensor[B], CPU) before the first step and every ``PLATEAU_CHECK_EVERY`` (10) Adam
            steps; images for which it returns True (bool Tensor[B]) end there and skip the
            refinement: their loss is then an upper bound of the whole inversion's (losses only
            fall), marked in ``InversionResult.cut``. For a caller that needs a loss only up to a
            bound (the reference model's, :mod:`ronan.attribution`). Default None (never).
        cuda_graphs (bool | None): replay the Adam steps' forward and backward passes from CUDA
            graphs (:mod:`ronan.graphs`; CUDA and fp32 only; the same images, input gradients equal
            to fp32 rounding); None (default): the generator's ``cuda_graphs`` attribute.

    Yields:
        InversionProgress events, and finally one InversionResult.
    """
    # 1. check inputs
    settings = settings or resolve_settings(model=generator, distance=getattr(distance, "name", str(distance)))
    device = generator.device
    dist = get_distance(distance, device)
    if images.dim() != 4 or images.shape[1:] != (generator.channels, generator.image_size, generator.image_size):
        raise ValueError(f"images must be [B, {generator.channels}, {generator.image_size}, {generator.image_size}], "
                         f"got {list(images.shape)}")
    # 2. prepare: the starting points of every row (image x restart x candidate) and the optimiser
    t0 = time.perf_counter()
    images = images.to(device=device, dtype=torch.float32)
    n_img = images.shape[0]
    rows = generator.expand_restarts(settings.restarts * settings.candidates)
    keep_rows = generator.expand_restarts(settings.restarts)  # rows per image kept after the warm-up
    n_rows = n_img * rows
    start = _starting_points(generator, images, settings, seed, rows)
    mask = generator.input_gradient_mask()
    graphed = GraphedGenerate(generator) if wants_graphs(generator, device, settings.precision, cuda_graphs) else None
    forward = generator.generate if graphed is None else graphed
    # State of the rows still optimised ("active"); stopped rows live in the *_all tensors.
    active = torch.arange(n_rows, device=device)
    params = start.detach().clone().requires_grad_(True)
    opt = RowAdam(params, settings.lr, settings.betas)
    targets = images.repeat_interleave(rows, dim=0)
    best = torch.full((n_rows,), float("inf"), device=device)
    best_inputs = start.detach().clone()
    plateau = PlateauRule(settings, n_rows, device)
    best_all, best_inputs_all = best.clone(), best_inputs.clone()
    last_all = torch.full((n_rows,), float("inf"), device=device)  # latest loss; stopped rows: their best
    recon_all = None
    row_steps = torch.full((n_rows,), settings.steps, dtype=torch.long)
    plateau_stopped = torch.zeros(n_rows, dtype=torch.bool)  # rows ended by the plateau rule
    cut = torch.zeros(n_img, dtype=torch.bool)  # images ended by stop_images
    history = []
    step = 0
    stopped = False
    # 3. run: Adam steps until the cap, a stop, or every row stopped by the plateau rule
    while True:
        with autocast(device, settings.precision):
            recon = forward(params)
        loss = dist(recon.float() if transform is None else transform(recon.float()), targets)
        with torch.no_grad():
            current = torch.nan_to_num(loss.detach(), nan=float("inf"))
            improved = current < best
            best = torch.where(improved, current, best)
            keep = improved.view(-1, *([1] * (params.dim() - 1)))
            best_inputs = torch.where(keep, params.detach(), best_inputs)
            if len(active) == n_rows:
                last_all = current
            else:
                last_all = last_all.index_copy(0, active, current)
            history.append(last_all.view(n_img, rows).min(1).values)
        ending = None  # rows that stop at this step (bool over active rows), if any
        if plateau.due(step):
            best_all = best_all.index_copy(0, active, best)
            ending = plateau.check(step, best_all, active, best, opt.lr)
            if ending is not None:
                plateau_stopped[active[ending].cpu()] = True
        if keep_rows < rows and step == settings.warmup_steps:  # narrow the candidates: keep the best rows
            losing = _losing_candidates(_merge(best_all, active, best), active, n_img, rows, keep_rows)
            ending = losing if ending is None else (ending | losing)
        if stop_images is not None and step % PLATEAU_CHECK_EVERY == 0 and len(active):
            now = _cut_rows(stop_images, _merge(best_all, active, best).view(n_img, rows).min(1).values, cut,
                            active, rows)
            if now is not None:
                ending = now if ending is None else (ending | now)
        if ending is not None:
            if bool(ending.any()):
                done = active[ending]
                best_all = best_all.index_copy(0, done, best[ending])
                best_inputs_all = best_inputs_all.index_copy(0, done, best_inputs[ending])
                last_all = last_all.index_copy(0, done, best[ending])
                row_steps[done.cpu()] = step
            else:
                ending = None
        all_end = ending is not None and bool(ending.all())
        last = step == settings.steps or stopped or all_end
        if step % progress_every == 0 or last:
            event = InversionProgress(step, settings.steps,
                                      _merge(best_all, active, best).view(n_img, rows).min(1).values.cpu(),
                                      history[-1].cpu(), time.perf_counter() - t0,
                                      len(active) - (0 if ending is None else int(ending.sum())), last)
            if with_images:
                recon = recon.detach().float()
                recon_all = recon if recon_all is None else recon_all.index_copy(0, active, recon)
                pick = last_all.view(n_img, rows).argmin(1) + torch.arange(n_img, device=device) * rows
                event.reconstructions = recon_all[pick].cpu()
            yield event
        if all_end:
            active, best, best_inputs = active[:0], best[:0], best_inputs[:0]
        if last:
            break
        params.grad = None
        loss.sum().backward()
        if mask is not None and params.grad is not None:
            params.grad.mul_(mask)
        opt.step()
        if ending is not None:  # the rows that stopped leave the batch
            go = ~ending
            active, targets, best, best_inputs = active[go], targets[go], best[go], best_inputs[go]
            plateau.keep(go)
            params = params.detach()[go].requires_grad_(True)
            opt.keep(params, go)
        step += 1
        if should_stop is not None and should_stop():
            stopped = True

    # 4. assemble: each image's best row, the Levenberg-Marquardt refinement, whether it settled
    with torch.no_grad():
        best_all = _merge(best_all, active, best)
        best_inputs_all = _merge(best_inputs_all, active, best_inputs)
        if len(active):
            row_steps[active.cpu()] = step
        per_image = best_all.view(n_img, rows)
        loss_min, arg = per_image.min(1)
        pick = arg + torch.arange(n_img, device=device) * rows
        inputs = best_inputs_all[pick]
    image_steps = row_steps.view(n_img, rows).max(1).values
    lm_settled = None
    if settings.refine_steps and not stopped and not cut.all() and _refinable(generator, mask, dist.name):
        lm_settled = yield from _refine_phase(generator, inputs, images, mask, transform, settings, loss_min,
                                              history, image_steps, step, t0, should_stop, ~cut)
        lm_settled &= ~cut
    retry = (loss_min.cpu() > settings.retry_above) & ~cut if settings.retry_above else torch.zeros(n_img, dtype=torch.bool)
    retry_kept, retry_settled = torch.zeros(n_img, dtype=torch.bool), torch.zeros(n_img, dtype=torch.bool)
    stopped = stopped or (should_stop is not None and should_stop())  # a stop during the refinement
    if bool(retry.any()) and not stopped and _refinable(generator, mask, dist.name):
        retry_kept, retry_settled = yield from _retry_phase(generator, start[pick], inputs, images, mask, transform,
                                                            settings, loss_min, history, image_steps, t0,
                                                            should_stop, retry, seed)
        stopped = should_stop is not None and should_stop()  # a stop during the second path
    else:
        retry[:] = False
    with torch.no_grad(), autocast(device, "fp32"):
        recons = generator.generate(inputs).float()
    history_t = torch.stack(history).cpu()
    if lm_settled is not None:
        settled = lm_settled.cpu()
    else:
        settled = torch.tensor([bool(plateau_stopped[int(pick[i])])
                                or settled_curve(history_t[: int(image_steps[i]) + 1, i]) for i in range(n_img)],
                               dtype=torch.bool)
    settled = torch.where(retry_kept, retry_settled, settled)
    yield InversionResult(
        loss=loss_min.cpu(), inputs=inputs.cpu(), reconstructions=recons.cpu(),
        history=history_t, best_restart=arg.cpu(), seconds=time.perf_counter() - t0,
        steps_run=step, settings=settings, seed=seed, distance=dist.name,
        image_steps=image_steps, settled=settled & ~cut,
        extra={"stopped": stopped, "rows_per_image": rows,
               "row_steps": int(row_steps.sum()) + n_rows,
               **({"retried": retry.tolist(), "retry_kept": retry_kept.tolist()} if settings.retry_above else {}),
               **({} if graphed is None else {"cuda_graphs": graphed.recorded, "cuda_graphs_failure": graphed.failure})},
        cut=cut if stop_images is not None else None)


def _cut_rows(stop_images, per_image: torch.Tensor, cut: torch.Tensor, active: torch.Tensor,
              rows: int) -> torch.Tensor | None:
    """The active rows of the images ``stop_images`` ends now (bool over ``active``), or None;
    marks those images in ``cut`` (in place)."""
    now = stop_images(per_image.cpu()).to(torch.bool).cpu() & ~cut
    if not bool(now.any()):
        return None
    cut |= now
    return now.to(active.device).repeat_interleave(rows)[active]


@torch.no_grad()
def start_losses(generator: Generator, images: torch.Tensor, *, distance: str | Distance = "mse",
                 settings: InversionSettings, seed: int = 0) -> torch.Tensor:
    """Each image's loss at its starting points (min over its rows; Tensor[B], CPU): the value
    :func:`invert_stream` begins from and only improves on, in fp32 and without a ``transform``.
    One forward pass; for planning (:mod:`ronan.parts`), not for decisions."""
    images = images.to(device=generator.device, dtype=torch.float32)
    rows = generator.expand_restarts(settings.restarts * settings.candidates)
    start = _starting_points(generator, images, settings, seed, rows)
    loss = get_distance(distance, generator.device)(generator.generate(start).float(),
                                                     images.repeat_interleave(rows, dim=0))
    return torch.nan_to_num(loss, nan=float("inf")).view(len(images), rows).min(1).values.cpu()


def _starting_points(generator: Generator, images: torch.Tensor, settings: InversionSettings, seed: int,
                     rows: int) -> torch.Tensor:
    """The first input of every row, ``rows`` per image (seeded: the same for every image); restart 0
    of each image from the model's learned inverse with ``settings.learned_start`` where it applies."""
    n_rows = images.shape[0] * rows
    start = generator.initial_inputs(images, settings.restarts * settings.candidates,
                                     rng(seed, "inversion")).to(generator.device)
    if start.shape[0] != n_rows:
        raise RuntimeError(f"{generator.name}: initial_inputs gave {start.shape[0]} rows, expected {n_rows}")
    if settings.learned_start:
        from .starts import learned_inputs, supports

        if supports(generator):
            learned = learned_inputs(generator, images).to(start.dtype)
            if settings.start_spread:  # every row of an image around its learned start
                start = learned.repeat_interleave(rows, 0) + settings.start_spread * start
            start[::rows] = learned
    return start


class PlateauRule:
    """The early-stopping rule of :class:`InversionSettings`, row by row.

    Every ``PLATEAU_CHECK_EVERY`` (10) steps, a row whose best loss fell by less than
    ``plateau_tol`` over its window — ``plateau_steps`` (W) before any drop of its learning rate,
    ``plateau_steps_after_drop`` (W') after one, counted from the drop — is on a plateau: while it
    has had fewer than ``plateau_lr_drops`` drops its learning rate is multiplied by
    ``plateau_lr_factor``, otherwise it stops. A row is judged only once its window has passed.

    Args:
        settings (InversionSettings): the rule's parameters (``plateau_steps`` > 0).
        n_rows (int): rows at the start; :meth:`keep` follows the rows that stay.
        device (torch.device): where the per-row state lives.
    """

    def __init__(self, settings: InversionSettings, n_rows: int, device: torch.device):
        self.settings = settings
        self.drops = torch.zeros(n_rows, dtype=torch.long, device=device)  # lr drops so far, per active row
        self.since = torch.zeros(n_rows, dtype=torch.long, device=device)  # step of the last drop
        self.snapshots: dict[int, torch.Tensor] = {}  # step -> best loss of every row, for the windows

    def due(self, step: int) -> bool:
        """Whether the rule is checked at ``step`` (never when ``plateau_steps`` is 0)."""
        return bool(self.settings.plateau_steps) and step % PLATEAU_CHECK_EVERY == 0

    def check(self, step: int, best_all: torch.Tensor, active: torch.Tensor, best: torch.Tensor,
              lr: torch.Tensor) -> torch.Tensor | None:
        """Judge the active rows at ``step``; returns the rows that stop now (bool over the active rows),
        None before the first window has passed. Drops the learning rate (``lr``, one per active row,
        changed in place) of the rows that continue at a lower one.

        Args:
            best_all (Tensor[n_rows]): best loss so far of every row (stopped rows: their final best).
            active (Tensor[A]): indices of the rows still optimised; best (Tensor[A]): their best loss.
        """
        s = self.settings
        w1, w2 = s.plateau_steps, s.plateau_steps_after_drop
        self.snapshots[step] = best_all
        self.snapshots.pop(step - max(w1, w2) - PLATEAU_CHECK_EVERY, None)
        if step < min(w1, w2):
            return None
        # window W before any drop, W' after one; a row is judged once its window has passed
        # (so the snapshot it is compared with exists whenever the row is judged)
        window = torch.where(self.drops > 0, w2, w1)
        past = torch.where(self.drops > 0, self.snapshots.get(step - w2, best_all)[active],
                           self.snapshots.get(step - w1, best_all)[active])
        flat = (best > (1 - s.plateau_tol) * past) & (self.since <= step - window)
        drop = flat & (self.drops < s.plateau_lr_drops)
        if bool(drop.any()):
            lr[drop] *= s.plateau_lr_factor
            self.drops[drop] += 1
            self.since[drop] = step
        return flat & ~drop

    def keep(self, rows: torch.Tensor) -> None:
        """Continue with the active rows ``rows`` (bool over the active rows) only."""
        self.drops, self.since = self.drops[rows], self.since[rows]


def _losing_candidates(best_all: torch.Tensor, active: torch.Tensor, n_img: int, rows: int,
                       keep_rows: int) -> torch.Tensor:
    """After the warm-up: the active rows that are not among the ``keep_rows`` best of their image
    (by best loss so far, ``best_all`` over every row; ties keep the earlier row)."""
    chosen = torch.zeros(n_img, rows, dtype=torch.bool, device=best_all.device)
    chosen.scatter_(1, torch.sort(best_all.view(n_img, rows), dim=1, stable=True).indices[:, :keep_rows], True)
    return ~chosen.view(-1)[active]


def _refinable(generator: Generator, mask, distance: str) -> bool:
    from .refine import refinable

    n = int(mask.sum()) if mask is not None else math.prod(generator.input_shape)
    return refinable(n, distance)


def _refine_fn(generator: Generator, transform) -> Callable[[torch.Tensor], torch.Tensor]:
    """The map the refinement fits, ``inputs -> transform(M(inputs))``; always fp32: finite
    differences of bf16/fp16 outputs are rounding noise."""

    def fn(p):
        with autocast(generator.device, "fp32"):
            out = generator.generate(p).float()
        return out if transform is None else transform(out)

    return fn


def _refine_phase(generator, inputs, images, mask, transform, settings, loss_min, history, image_steps, step, t0,
                  should_stop, only):
    """Levenberg-Marquardt on the best input of each image in ``only`` (bool Tensor[B]; in place);
    yields progress, returns ``settled`` (False for the others).

    Updates ``loss_min`` (never upwards), appends one history entry per iteration and adds the
    iterations each image ran to ``image_steps`` (its own, not the batch's: an image the refinement
    stopped early counts the same alone as in a batch). An image has settled when the refinement
    stopped it by its own criteria (converged, exact, or no step helps), or when its loss fell by
    less than ``SETTLE_TOL`` (10%) over the last two iterations before the cap or a stop ended them.
    """
    from .refine import refine

    fn = _refine_fn(generator, transform)
    total = settings.steps + settings.refine_steps
    losses = [loss_min.clone()]
    idx = torch.nonzero(only.to(inputs.device)).squeeze(1)
    part = inputs[idx]  # a copy, written back below
    ran = torch.zeros(len(idx), dtype=image_steps.dtype)
    stopped_early = torch.zeros(len(loss_min), dtype=torch.bool)
    for it, value in refine(fn, part, images[idx], iterations=settings.refine_steps, mask=mask,
                           jacobian_every=settings.refine_jacobian_every, iterations_run=ran):
        if it < 0:
            stopped_early[idx.cpu()] = value.cpu()  # rows the refinement stopped by its own criteria, not the cap
            break
        value = value.to(loss_min.device)
        improved = value < loss_min[idx]
        loss_min[idx] = torch.minimum(loss_min[idx], value)
        history.append(loss_min.clone())
        losses.append(loss_min.clone())
        yield InversionProgress(step + it, total, loss_min.cpu(), loss_min.cpu(), time.perf_counter() - t0,
                                int(improved.sum()), False)
        if should_stop is not None and should_stop():
            break
    inputs[idx] = part
    image_steps[idx.cpu()] += ran
    earlier = losses[max(len(losses) - 3, 0)]
    return stopped_early | (losses[-1] >= (1.0 - SETTLE_TOL) * earlier).cpu()


def typical_radius(generator: Generator, mask: torch.Tensor | None, seed: int, n: int = 1024) -> float:
    """The typical norm of the optimised entries of ``generator``'s own inputs, ``sqrt(E|z|^2)`` over
    ``n`` (default 1024) seeded draws of ``sample_inputs`` (``sqrt(d)`` for a standard normal
    input of ``d`` entries): the radius of the shell where its inputs lie."""
    z = generator.sample_inputs(n, rng(seed, "shell")).float()
    if mask is not None:
        z = z * mask.to(z.device, z.dtype)
    return float(z.flatten(1).pow(2).sum(1).mean().sqrt())


def _on_shell(u: torch.Tensor, mask: torch.Tensor | None, radius: float) -> torch.Tensor:
    """``u`` with its optimised entries (``mask``; None: all) scaled onto the sphere of ``radius``;
    the fixed entries (a condition) unchanged."""
    m = torch.ones_like(u) if mask is None else mask.to(u.device, u.dtype).expand_as(u)
    free = u * m
    norm = free.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (u.dim() - 1)))
    return u * (1 - m) + radius * free / norm


def _retry_phase(generator, starts, inputs, images, mask, transform, settings, loss_min, history, image_steps, t0,
                 should_stop, only, seed):
    """The second path of ``settings.retry_above`` for the images in ``only`` (bool Tensor[B]):
    Levenberg-Marquardt from ``starts`` (each image's winning starting point) with the input on the
    typical shell (:func:`typical_radius`), then free; where it ends lower than ``loss_min``, its
    input replaces ``inputs`` and its loss ``loss_min`` (in place). Yields progress, appends one
    history entry per iteration and adds the iterations to ``image_steps``.

    Returns:
        (kept, settled): bool Tensor[B] each, CPU: the second path's result was kept; and, for those,
        the refinement stopped it by its own criteria.
    """
    from .refine import refine

    fn = _refine_fn(generator, transform)
    radius = typical_radius(generator, mask, seed)
    idx = torch.nonzero(only.to(inputs.device)).squeeze(1)
    targets = images[idx]
    u = starts[idx].detach().clone()
    ran = torch.zeros(len(idx), dtype=image_steps.dtype)
    base = len(history) - 1
    total = base + settings.retry_shell_steps + settings.retry_steps
    now = torch.full((len(idx),), float("inf"), device=loss_min.device)
    stopped_early = torch.zeros(len(idx), dtype=torch.bool)
    kept = torch.zeros(len(loss_min), dtype=torch.bool)
    settled = torch.zeros(len(loss_min), dtype=torch.bool)
    done = 0
    stages = [(lambda p: fn(_on_shell(p, mask, radius)), settings.retry_shell_steps), (fn, settings.retry_steps)]
    for stage, (f, iterations) in enumerate(stages):
        if stage == 1:  # from here on the input itself (on the shell where the first stage left it)
            u = _on_shell(u, mask, radius)
        for it, value in refine(f, u, targets, iterations=iterations, mask=mask,
                                jacobian_every=settings.refine_jacobian_every, iterations_run=ran) if iterations else ():
            if it < 0:
                stopped_early = value.cpu()
                break
            now = value.to(loss_min.device)
            best = loss_min.clone()
            best[idx] = torch.minimum(best[idx], now)
            history.append(best)
            yield InversionProgress(base + done + it, total, best.cpu(), best.cpu(), time.perf_counter() - t0,
                                    len(idx), False)
            if should_stop is not None and should_stop():  # stopped: the first path's results stand
                image_steps[idx.cpu()] += ran
                return kept, settled
        done += iterations
    better = now < loss_min[idx]
    if bool(better.any()):
        win = idx[better]
        inputs[win] = u[better].to(inputs.dtype)
        loss_min[win] = now[better]
        kept[win.cpu()] = True
        settled[win.cpu()] = stopped_early[better.cpu()]
    image_steps[idx.cpu()] += ran
    return kept, settled


def _merge(full: torch.Tensor, active: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``full`` with the rows ``active`` replaced by ``values`` (a new tensor when they differ)."""
    if len(active) == len(full):
        return values
    return full.index_copy(0, active, values) if len(active) else full


class RowAdam:
    """Adam with one learning rate per row of the parameter tensor.

    The update is ``torch.optim.Adam``'s (no weight decay, no AMSGrad, eps 1e-8); with equal
    learning rates it matches ``torch.optim.Adam`` to float rounding (tested). Per-row rates let
    a row on a plateau continue with a smaller one, and rows can leave the batch (``keep``).

    Args:
        params (Tensor[R, ...]): the leaf tensor optimised, rows first.
        lr (float): initial learning rate of every row.
        betas (tuple[float, float]): Adam's betas.
    """

    def __init__(self, params: torch.Tensor, lr: float, betas: tuple[float, float], eps: float = 1e-8):
        self.params = params
        self.lr = torch.full((params.shape[0],), float(lr), device=params.device)
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every row, from ``params.grad``."""
        self.t += 1
        grad = self.params.grad
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step_size = (self.lr / (1 - self.beta1 ** self.t)).view(-1, *([1] * (grad.dim() - 1)))
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - self.beta2 ** self.t)).add_(self.eps)
        self.params.sub_(self.exp_avg * step_size / denom)

    def keep(self, params: torch.Tensor, rows: torch.Tensor) -> None:
        """Continue with ``params`` (the ``rows`` kept, a new leaf) and the matching state."""
        self.params = params
        self.lr, self.exp_avg, self.exp_avg_sq = self.lr[rows], self.exp_avg[rows], self.exp_avg_sq[rows]


def invert(
    generator: Generator,
    images: torch.Tensor,
    *,
    callback: Callable[[InversionProgress], None] | None = None,
    **kwargs,
) -> InversionResult:
    """Run :func:`invert_stream` to the end and return its :class:`InversionResult`.

    Args:
        callback (callable | None): called with each :class:`InversionProgress`.
        **kwargs: as for :func:`invert_stream`.
    """
    for event in invert_stream(generator, images, **kwargs):
        if isinstance(event, InversionResult):
            return event
        if callback is not None:
            callback(event)
    raise Cancelled("inversion ended without a result")  # pragma: no cover


def parallel_default(device: torch.device) -> bool:
    """Run independent inversions side by side? Yes on a CPU with one torch thread per job.

    Tiny generators do not parallelise well inside an op; two inversions (inspected and
    reference model) on two cores with one thread each are ~1.8x faster than one after the
    other with two threads (benchmarks/RESULTS.md). With more torch threads, or on a GPU,
    they run one after the other.
    """
    return device.type == "cpu" and torch.get_num_threads() == 1


def invert_jobs_stream(
    jobs: list[tuple],
    *,
    parallel: bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    **kwargs,
) -> Iterator[tuple[Any, InversionProgress | InversionResult]]:
    """Run several independent inversions, yielding ``(role, event)`` pairs.

    Args:
        jobs (list): ``(role, generator, images)`` triples, e.g. ``("model", M, x)`` and
            ``("reference", M_r, x_r)``, or ``(role, generator, images, options)`` with a dict of
            keyword arguments of :func:`invert_stream` for that job only (e.g. ``transform``).
        parallel (bool | None): run the jobs in threads at once; default
            :func:`parallel_default` of the first job's device. Results are the same either way.
        should_stop (callable | None): as for :func:`invert_stream`; closing this generator
            stops running jobs too.
        **kwargs: as for :func:`invert_stream`.
    """
    if parallel is None:
        parallel = len(jobs) > 1 and parallel_default(jobs[0][1].device)
    jobs = [(job[0], job[1], job[2], {**kwargs, **(job[3] if len(job) > 3 else {})}) for job in jobs]
    if not parallel:
        for role, gen, images, options in jobs:
            for event in invert_stream(gen, images, should_stop=should_stop, **options):
                yield role, event
        return

    import queue
    import threading

    events: queue.Queue = queue.Queue()
    closed = threading.Event()

    def stop() -> bool:
        return closed.is_set() or (should_stop is not None and should_stop())

    def work(role, gen, images, options):
        try:
            for event in invert_stream(gen, images, should_stop=stop, **options):
                events.put((role, event))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            events.put((role, e))
        finally:
            events.put((role, None))

    threads = [threading.Thread(target=work, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    running = len(threads)
    try:
        while running:
            role, event = events.get()
            if event is None:
                running -= 1
            elif isinstance(event, BaseException):
                raise event
            else:
                yield role, event
    finally:
        closed.set()
        for t in threads:
            t.join()
