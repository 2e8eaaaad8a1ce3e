"""Services behind the app (no UI code, no gradio): streaming runs, examples, batches.

The Gradio app (``app.py``) only lays out components and maps the plain objects yielded
here onto them. Everything here works from a script or a notebook too:

* :func:`run_attribution` — belonging distribution (built with progress if missing), then
  the streamed inversions on M and M_r, yielding :class:`RunProgress` and finally a
  :class:`RunOutcome` (the :class:`~ronan.attribution.Attribution` and its distribution);
* :func:`run_calibration` — build or rebuild a distribution, streamed;
* :func:`example_images` — real samples and generated images for the gallery;
* :func:`collect_batch` — images from many files or zip archives, labels from folder names.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import limits
from .attribution import Attribution, attribute_stream
from .batch import IMAGE_SUFFIXES, BatchItem, collect_batch, iter_loaded, load_batch  # noqa: F401 (re-exported)
from .calibration import (BelongingDistribution, cache_path, check_reference, distribution_key, find_cache,
                          get_distribution)
from .errors import CalibrationError, Cancelled, ImageError, ModelUnavailable
from .generation import generate_pil
from .images import LoadedImage, load_image
from .inversion import PRESETS, resolve_settings
from .models.base import Generator
from .models.registry import availability, default_reference, list_models, load_model, resolve_device
from .paths import samples_dir
from .which_model import is_reference_only

SAMPLES_DIR = samples_dir()
NO_REFERENCE = "none"


# ----------------------------------------------------------------------------- models

@dataclass
class ModelChoice:
    """A model as the app lists it."""

    name: str
    label: str
    available: bool
    reason: str | None
    description: str
    resolution: int | None
    reference: str | None


def model_choices() -> list[ModelChoice]:
    """All catalogue models (bundled, hub, and the user models registered on this machine, read from
    their cards on disk); unavailable ones carry the reason in their label."""
    out = []
    for m in list_models():
        label = m.name + (" (your model)" if m.source == "user" else "") + ("" if m.available else " (unavailable)")
        description = m.description or ("a model registered on this machine" if m.source == "user" else "")
        out.append(ModelChoice(m.name, label, m.available, m.reason, description, m.resolution, m.reference))
    return out


def require_model(name: str) -> None:
    """Raise :class:`ModelUnavailable` with the registry's reason if ``name`` cannot load."""
    ok, reason = availability(name)
    if not ok:
        raise ModelUnavailable(reason or f"{name} is unavailable")


def _reference(name: str, reference: str | None) -> str | None:
    if reference in (None, "", "default"):
        return default_reference(name)
    if str(reference).lower() == NO_REFERENCE:
        return None
    return reference


# ----------------------------------------------------------------------------- threads

def _stream_callback(fn: Callable[[Callable], object], should_stop: Callable[[], bool] | None
                     ) -> Iterator[tuple]:
    """Run ``fn(callback)`` in a thread; yield each ``callback(*args)``; return fn's result.

    ``should_stop()`` (and closing this generator) makes the next callback raise
    :class:`Cancelled` inside the worker, which ends it.
    """
    q: queue.Queue = queue.Queue()
    closed = threading.Event()

    def callback(*args):
        if closed.is_set() or (should_stop is not None and should_stop()):
            raise Cancelled("stopped by the user")
        q.put(("event", args))

    def worker():
        try:
            q.put(("done", fn(callback)))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(("error", e))

    t = threading.Thread(target=worker, name="ronan-worker", daemon=True)
    t.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "event":
                yield value
            elif kind == "done":
                return value
            else:
                raise value
    finally:
        closed.set()


# ----------------------------------------------------------------------------- runs

@dataclass
class RunProgress:
    """One update of a running job.

    Attributes:
        phase (str): ``"calibration"``, ``"model"`` or ``"reference"``.
        step (int), steps (int): progress inside the phase.
        fraction (float): overall progress of the job in [0, 1].
        elapsed (float): seconds since the job started; ``eta`` seconds left (None: unknown).
        message (str): one line for humans.
        reconstruction (Tensor[C, H, W] | None): current reconstruction (inversion phases).
        target (Tensor[C, H, W] | None): the image in the inspected model's domain.
        history (list[float]): best loss per reported step of the inspected model so far.
        reference_history (list[float]): same for the reference model.
        model (str), label (str): model being worked on, and an optional label (which-model).
        final (bool): last update of an inversion phase (early stopping may end it before
            ``steps``).
    """

    phase: str
    step: int
    steps: int
    fraction: float
    elapsed: float
    eta: float | None
    message: str
    reconstruction: torch.Tensor | None = None
    history_steps: list[int] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    reference_history_steps: list[int] = field(default_factory=list)
    reference_history: list[float] = field(default_factory=list)
    model: str = ""
    reference: str | None = None
    target: torch.Tensor | None = None
    final: bool = False


@dataclass
class RunOutcome:
    """Result of :func:`run_attribution`."""

    result: Attribution
    distribution: BelongingDistribution
    image: LoadedImage


def _eta(elapsed: float, fraction: float) -> float | None:
    return elapsed / fraction * (1 - fraction) if fraction > 0.02 else None


def fmt_seconds(s: float | None) -> str:
    """``"12.3 s"``, ``"2 min 05 s"`` or ``"?"``."""
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def prepare(model: str, reference: str | None = "default", *, distance: str = "mse", preset: str | None = None,
            steps: int | None = None, restarts: int | None = None, lr: float | None = None, device=None):
    """Load M and M_r and resolve settings: ``(gen, ref, settings)`` (raises RonanError/ValueError).

    Settings (and their limits, :mod:`ronan.limits`) and the reference are checked before any work."""
    settings = resolve_settings(preset, steps=steps, restarts=restarts, lr=lr)
    require_model(model)
    dev = resolve_device(device)
    gen = load_model(model, dev)
    ref_name = _reference(model, reference)
    if ref_name is not None:
        require_model(ref_name)
    ref = load_model(ref_name, dev) if ref_name is not None else None
    check_reference(gen, ref)
    return gen, ref, settings


def has_distribution(gen: Generator, ref: Generator | None, distance: str, settings, n: int = 100,
                     seed: int = 0) -> bool:
    """True when a cached belonging distribution exists for these arguments."""
    return find_cache(distribution_key(gen, ref, distance, settings, n, seed)).exists()


def _calibration_stream(gen, ref, *, distance, settings, n, seed, rebuild, build, should_stop, t0, weight):
    """Yield RunProgress while getting (building) the distribution; return it."""
    if not rebuild:
        try:
            return get_distribution(gen, ref, distance=distance, settings=settings, n=n, seed=seed, build=False)
        except CalibrationError:  # missing or invalid cache: build below, if allowed
            if not build:
                raise
    roles = 2 if ref is not None else 1

    def fn(cb):
        return get_distribution(gen, ref, distance=distance, settings=settings, n=n, seed=seed, rebuild=rebuild,
                                callback=cb, should_stop=should_stop)

    stream = _stream_callback(fn, should_stop)
    while True:
        try:
            role, first, p = next(stream)
        except StopIteration as stop:
            return stop.value
        done = (0 if role == "model" else 1) + p.fraction
        frac = done / roles * weight
        el = time.perf_counter() - t0
        yield RunProgress("calibration", p.step, p.steps, frac, el, _eta(el, frac),
                          f"Building the belonging distribution of {gen.name} (N = {n}, once per settings): "
                          f"{role} inversion, step {p.step}/{p.steps}", model=gen.name)


def run_attribution(image, model: str, *, reference: str | None = "default", distance: str = "mse",
                    alpha: float = 0.05, preset: str | None = None, steps: int | None = None,
                    restarts: int | None = None, lr: float | None = None, seed: int = 0, device=None,
                    build_calibration: bool = True, should_stop: Callable[[], bool] | None = None,
                    progress_every: int = 10) -> Iterator[RunProgress | RunOutcome]:
    """Attribute one image to ``model``, streaming progress (see :class:`RunProgress`).

    Args:
        image: path, bytes, PIL image or :class:`LoadedImage`.
        model (str): inspected model. reference (str | None): ``"default"``, a name, or
            ``"none"`` (no calibration).
        build_calibration (bool): build a missing belonging distribution (minutes) or fail.
        Other arguments as for :func:`ronan.attribution.attribute_stream`.

    Yields:
        RunProgress updates, then one RunOutcome.

    Raises:
        ImageError, ModelUnavailable, CalibrationError, Cancelled, ValueError (bad settings).
    """
    t0 = time.perf_counter()
    loaded = image if isinstance(image, LoadedImage) else load_image(image)
    gen, ref, settings = prepare(model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts,
                                 lr=lr, device=device)
    if should_stop is not None and should_stop():
        raise Cancelled("stopped by the user")
    dist = yield from _calibration_stream(gen, ref, distance=distance, settings=settings, n=100, seed=0,
                                          rebuild=False, build=build_calibration, should_stop=should_stop, t0=t0,
                                          weight=1.0)
    t1 = time.perf_counter()
    roles = 2 if ref is not None else 1
    target = gen.preprocess(loaded.image)
    hist: dict[str, tuple[list[int], list[float]]] = {"model": ([], []), "reference": ([], [])}
    for ev in attribute_stream([loaded], gen, reference=ref, distance=distance, alpha=alpha, distribution=dist,
                               seed=seed, device=device, progress_every=progress_every,
                               with_images=True, should_stop=should_stop, **_settings_kwargs(preset, steps,
                                                                                             restarts, lr)):
        if isinstance(ev, list):
            yield RunOutcome(ev[0], dist, loaded)
            return
        p = ev.progress
        xs, ys = hist[ev.role]
        xs.append(p.step)
        ys.append(float(p.best_loss[0]))
        done = (0 if ev.role == "model" else 1) + p.fraction
        frac = done / roles
        el = time.perf_counter() - t1
        name = gen.name if ev.role == "model" else ref.name
        yield RunProgress(ev.role, p.step, p.steps, frac, time.perf_counter() - t0, _eta(el, frac),
                          f"Reverse-engineering on {name} ({'inspected' if ev.role == 'model' else 'reference'} "
                          f"model): step {p.step}/{p.steps}, best loss {float(p.best_loss[0]):.4g}",
                          reconstruction=p.reconstructions[0] if p.reconstructions is not None else None,
                          history_steps=list(hist["model"][0]), history=list(hist["model"][1]),
                          reference_history_steps=list(hist["reference"][0]),
                          reference_history=list(hist["reference"][1]), model=gen.name,
                          reference=ref.name if ref is not None else None, target=target, final=p.done)
    raise Cancelled("attribution ended without a result")  # pragma: no cover


def _settings_kwargs(preset, steps, restarts, lr) -> dict:
    return {"preset": preset, "steps": steps, "restarts": restarts, "lr": lr}


def run_calibration(model: str, reference: str | None = "default", *, distance: str = "mse",
                    preset: str | None = None, steps: int | None = None, restarts: int | None = None,
                    lr: float | None = None, n: int = 100, seed: int = 0, rebuild: bool = False, device=None,
                    should_stop: Callable[[], bool] | None = None) -> Iterator[RunProgress | BelongingDistribution]:
    """Get (build, or rebuild with ``rebuild=True``) a belonging distribution, streaming progress."""
    t0 = time.perf_counter()
    gen, ref, settings = prepare(model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts,
                                 lr=lr, device=device)
    dist = yield from _calibration_stream(gen, ref, distance=distance, settings=settings, n=n, seed=seed,
                                          rebuild=rebuild, build=True, should_stop=should_stop, t0=t0, weight=1.0)
    yield dist


def distribution_file(dist: BelongingDistribution) -> str:
    """File name of a distribution in the calibration cache."""
    return cache_path(dist.key()).name


# ----------------------------------------------------------------------------- examples

@dataclass
class Example:
    """A gallery item: file path, caption, and what it is (``real``/``this``/``other``)."""

    path: str
    caption: str
    kind: str
    model: str | None = None


def real_samples(n: int = 4, split: str = "fmnist-test") -> list[Path]:
    """First ``n`` committed real Fashion-MNIST images (sorted by file name)."""
    return sorted((SAMPLES_DIR / split).glob("*.png"))[:n]


def generate_example(model: str, seed: int, folder: str | Path) -> Path:
    """Generate one image with ``model`` (seed ``seed``), save it as 8-bit PNG, return its path."""
    require_model(model)
    gen = load_model(model, resolve_device(None))
    img = generate_pil(gen, 1, seed)[0]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"generated-{model}-seed{seed}.png"
    img.save(path)
    return path


def example_images(model: str | None, folder: str | Path, per_kind: int = 3, seed: int = 1000) -> list[Example]:
    """Gallery for the paper's three cases: real images, ``model``'s images, other models' images.

    Generated images use seeds ``seed, seed+1, ...`` (the ``"generate"`` stream, never the
    calibration samples) and are cached as files in ``folder``.
    """
    out = [Example(str(p), f"real: Fashion-MNIST {p.stem}", "real") for p in real_samples(per_kind)]
    avail = [c.name for c in model_choices() if c.available and not is_reference_only(c.name)]
    if model in avail:
        for k in range(per_kind):
            p = Path(folder) / f"generated-{model}-seed{seed + k}.png"
            if not p.exists():
                p = generate_example(model, seed + k, folder)
            out.append(Example(str(p), f"this model: {model}, seed {seed + k}", "this", model))
    others = [m for m in avail if m != model] or []
    for k in range(per_kind):
        if not others:
            break
        other = others[k % len(others)]
        s = seed + 100 + k
        p = Path(folder) / f"generated-{other}-seed{s}.png"
        if not p.exists():
            p = generate_example(other, s, folder)
        out.append(Example(str(p), f"other model: {other}, seed {s}", "other", other))
    return out


# ----------------------------------------------------------------------------- batches

# Batch intake (lazy, chunked, bounded) lives in ronan.batch; its names stay importable from here.
MAX_BATCH_IMAGES = limits.Limits.max_images
"""Default most images in one batch (``RONAN_MAX_IMAGES``, :mod:`ronan.limits`)."""


@dataclass
class BatchOutcome:
    """Result of :func:`run_batch`: one row per item, and the confusion table when labelled."""

    rows: list[dict]
    results: list[Attribution]
    confusion: dict | None
    per_label: dict[str, dict]


def run_batch(items: list[BatchItem], model: str, *, reference: str | None = "default", distance: str = "mse",
              alpha: float = 0.05, preset: str | None = None, steps: int | None = None, restarts: int | None = None,
              lr: float | None = None, seed: int = 0, device=None, chunk: int = 32, build_calibration: bool = False,
              should_stop: Callable[[], bool] | None = None) -> Iterator[RunProgress | BatchOutcome]:
    """Attribute many images to ``model`` in batches of ``chunk``; bad files become error rows.

    Images are decoded chunk by chunk (:func:`ronan.batch.iter_loaded`): one chunk of decoded images
    exists at a time, ``chunk`` shrinks so that a batch stays within ``RONAN_MAX_BATCH_ROWS``
    inversion rows, and the request's decoded pixels are bounded (:mod:`ronan.limits`). Images
    whose file reveals an edit (a JPEG, a resized copy) are tested against their edit's belonging
    distribution (from the cache, or built when ``build_calibration``; otherwise error rows).

    Labels (folder names, see :func:`collect_batch`) give ground truth through
    :func:`is_belonging_label`; when both groups are present the outcome has the paper's
    confusion table (:func:`ronan.evaluation.confusion`).
    """
    from .evaluation import confusion

    t0 = time.perf_counter()
    limits.check_images(len(items), "images in one batch")
    gen, ref, settings = prepare(model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts,
                                 lr=lr, device=device)
    dist = yield from _calibration_stream(gen, ref, distance=distance, settings=settings, n=100, seed=0,
                                          rebuild=False, build=build_calibration, should_stop=should_stop, t0=t0,
                                          weight=1.0)
    chunk = limits.images_per_batch(limits.rows_per_image(settings, gen), chunk)
    by_item: dict[int, Attribution] = {}
    loaded: list[tuple[BatchItem, bool]] = []
    roles = 2 if ref is not None else 1
    for c, part in enumerate(iter_loaded(items, chunk)):  # one chunk of decoded images at a time
        loaded += [(it, li is not None) for it, li in part]
        good = [(it, li) for it, li in part if li is not None]
        for group, given in _edit_split(good, gen, dist):
            try:
                for ev in attribute_stream([li for _, li in group], gen, reference=ref, distance=distance,
                                           alpha=alpha, distribution=given, build_calibration=build_calibration,
                                           seed=seed, device=device, should_stop=should_stop,
                                           **_settings_kwargs(preset, steps, restarts, lr)):
                    if isinstance(ev, list):
                        for (it, _), res in zip(group, ev):
                            by_item[id(it)] = res
                        continue
                    p = ev.progress
                    inner = ((0 if ev.role == "model" else 1) + p.fraction) / roles
                    frac = (c * chunk + inner * len(part)) / max(len(items), 1)
                    el = time.perf_counter() - t0
                    yield RunProgress(ev.role, p.step, p.steps, frac, el, _eta(el, frac),
                                      f"Images {c * chunk + 1}-{c * chunk + len(part)} of {len(items)}: {ev.role} "
                                      f"inversion, step {p.step}/{p.steps}", model=gen.name)
            except CalibrationError as e:  # an edited group without its belonging distribution
                for it, _ in group:
                    it.error = str(e)
    rows, results = [], []
    bel, non = [], []
    per_label: dict[str, dict] = {}
    for it, ok in loaded:
        res = by_item.get(id(it)) if ok else None
        row = {"image": it.name, "label": it.label or "", "verdict": res.verdict if res else "error",
               "statistic": res.statistic if res else None, "critical_value": res.critical_value if res else None,
               "calibrated_loss": res.calibrated_loss if res else None, "loss": res.loss if res else None,
               "reference_loss": res.reference_loss if res else None,
               "sha256": res.image_sha256 if res else "", "error": it.error or ""}
        rows.append(row)
        if res is None:
            continue
        results.append(res)
        truth = is_belonging_label(it.label, gen.name)
        if truth is not None:
            (bel if truth else non).append(res.verdict)
        if it.label is not None:
            d = per_label.setdefault(it.label, {"belonging": 0, "non-belonging": 0, "inconclusive": 0})
            d[res.verdict] += 1
    conf = confusion(bel, non) if (bel or non) else None
    yield BatchOutcome(rows, results, conf, per_label)


def _edit_split(good: list, gen: Generator, dist: BelongingDistribution) -> list[tuple[list, object]]:
    """Split loaded batch items into pristine ones (tested against ``dist``) and those whose file
    reveals an edit (their own edit-aware distribution, from the cache or built when allowed)."""
    from .edits.policy import resolve_edit

    pristine, edited = [], []
    for it, li in good:
        (pristine if resolve_edit(li, gen.image_size, gen.channels).is_none else edited).append((it, li))
    return [(g, d) for g, d in ((pristine, dist), (edited, None)) if g]


def is_belonging_label(label: str | None, model: str) -> bool | None:
    """Ground truth from a folder name: the model's own name (or ``belonging``) -> True;
    any other folder -> False; no folder -> None (unknown)."""
    if label is None:
        return None
    return label.strip().lower() in (model.lower(), "belonging", "generated-" + model.lower())


def presets() -> list[str]:
    """Names of the inversion presets, default first."""
    from .inversion import DEFAULT_PRESET

    return [DEFAULT_PRESET] + [p for p in PRESETS if p != DEFAULT_PRESET]


__all__ = ["ModelChoice", "model_choices", "require_model", "run_attribution", "run_calibration", "RunProgress",
           "RunOutcome", "Example", "example_images", "generate_example", "collect_batch", "load_batch",
           "BatchItem", "is_belonging_label", "fmt_seconds"]
