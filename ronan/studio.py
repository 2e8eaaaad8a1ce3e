"""Services behind the app (no UI code, no gradio): streaming runs, examples, batches, the job line.

The Gradio app (``app.py``) only lays out components and maps the plain objects yielded
here onto them. Everything here works from a script or a notebook too:

* :func:`run_attribution` — the edit to assume, the belonging distribution (built with
  progress if missing and allowed), then the streamed inversions on M and M_r, yielding
  :class:`RunProgress` and finally a :class:`RunOutcome` (the
  :class:`~ronan.attribution.Attribution`, its distribution, what the model saw and the
  assumptions the result rests on);
* :func:`run_calibration` — build or rebuild a distribution, streamed;
* :func:`run_batch` — many images (files or zip archives, :mod:`ronan.batch`), one row each;
* :func:`run_which_model` — one image against every model of its kind (:mod:`ronan.which_model`);
* :class:`JobLine` — heavy jobs one at a time, with queue positions, monotone ETAs
  (:class:`Eta`) and cancellation of waiting jobs;
* :class:`RunFolders` — report folders of the last runs, older ones removed.

Every run starts with :func:`ronan.prepare.prepare` (the models and settings, checked before any
work) and reports one overall fraction that never goes back (:class:`Progress`, :func:`span`).
The gallery's examples live in :mod:`ronan.gallery`, the batch intake in :mod:`ronan.batch`;
their names stay importable from here.

Operator settings (environment): ``RONAN_ALLOW_BUILDS=1`` lets visitors build missing belonging
distributions (minutes of CPU each; off by default so that one visitor cannot hold a shared
server), see :func:`builds_allowed`.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import contrast as contrast_check
from . import limits
from .attribution import Attribution, attribute_stream, default_edit_mode
from .batch import BatchItem, collect_batch, iter_loaded, load_batch, skipped_members  # noqa: F401 (re-exported)
from .calibration import (
    BelongingDistribution,
    cache_path,
    cached_edits,
    distribution_key,
    find_cache,
    get_distribution,
    reuses_model_side,
)
from .edits import parse_edit
from .edits import stand_in as stand_in_rule
from .edits.policy import NONE as NO_EDIT
from .edits.policy import EditAssumption, resolve_edit
from .errors import CalibrationError, Cancelled, RonanError
from .gallery import SAMPLES_DIR, Example, example_images, generate_example, real_samples, require_model, samples_folder  # noqa: F401
from .images import LoadedImage, load_image
from .inversion import PRESETS
from .models.base import Generator
from .models.registry import CATALOGUE, list_models, load_model
from .prepare import NO_REFERENCE, Prepared, prepare  # noqa: F401 (NO_REFERENCE: re-exported)
from .preset_names import preset_name
from .which_model import WhichModelResult, which_model_stream

N_CALIBRATION = 100


def builds_allowed() -> bool:
    """True when the operator allows building missing belonging distributions here.

    Set ``RONAN_ALLOW_BUILDS=1`` (or ``true``/``yes``/``on``) on a workstation; the default is
    off, because one build holds a shared server's single worker for minutes.
    """
    return os.environ.get("RONAN_ALLOW_BUILDS", "").strip().lower() in ("1", "true", "yes", "on")


class DistributionMissing(CalibrationError):
    """The belonging distribution a run needs is not built, and building is not allowed."""


class QueueFull(RonanError):
    """Too many jobs are waiting for the worker."""


# ----------------------------------------------------------------------------- models


@dataclass
class ModelChoice:
    """A model as the app lists it.

    ``domain`` says what the model makes (``"28x28 grayscale Fashion-MNIST clothing items"``);
    ``role`` is ``"generator"`` or ``"reference"``; ``state`` the registry's availability state;
    ``preset`` the inversion preset its card names (None: ``"fast"``).
    """

    name: str
    label: str
    available: bool
    reason: str | None
    description: str
    resolution: int | None
    reference: str | None
    channels: int | None = None
    role: str = "generator"
    source: str = "bundled"
    state: str | None = None
    domain: str = ""
    preset: str | None = None


_DATASET_WORDS = (
    ("fashion", "Fashion-MNIST clothing items"),
    ("emoji", "colour emoji and clip-art"),
    ("clip", "colour emoji and clip-art"),
    ("photo", "natural-photo crops"),
    ("wallpaper", "natural-photo crops"),
    ("imagenet", "ImageNet objects"),
    ("cifar", "CIFAR-10 objects"),
    ("bedroom", "LSUN bedrooms"),
    ("cat", "LSUN cats"),
    ("laion", "text-to-image pictures"),
)


def domain_text(resolution: int | None, channels: int | None, data: str = "") -> str:
    """What a model makes, for humans: ``"28x28 grayscale Fashion-MNIST clothing items"``."""
    size = f"{resolution}x{resolution} " if resolution else ""
    colour = {1: "grayscale ", 3: "colour "}.get(channels or 0, "")
    low = (data or "").lower()
    what = next((words for key, words in _DATASET_WORDS if key in low), "") or (data or "images").strip()
    if colour == "colour " and what.startswith("colour "):
        colour = ""
    return f"{size}{colour}{what}".strip()


def model_choices() -> list[ModelChoice]:
    """All catalogue models (bundled, hub, and the user models registered on this machine, read from
    their cards on disk); unavailable ones carry the reason in their label."""
    out = []
    cat = CATALOGUE
    for m in list_models():
        label = m.name + (" (your model)" if m.source == "user" else "") + ("" if m.available else " (unavailable)")
        description = m.description or ("a model registered on this machine" if m.source == "user" else "")
        data = cat[m.name].data if m.name in cat else ""
        out.append(
            ModelChoice(
                m.name,
                label,
                m.available,
                m.reason,
                description,
                m.resolution,
                m.reference,
                m.channels,
                m.role,
                m.source,
                m.state,
                domain_text(m.resolution, m.channels, data),
                m.preset,
            )
        )
    return out


def unavailable_reason(choice: ModelChoice) -> str:
    """A short reason for a web visitor (no commands: those are for the operator)."""
    if choice.state == "downloadable":
        return "not downloaded on this server"
    if choice.source == "bundled":
        return "not installed on this server yet"
    return "cannot be loaded on this server"


def distance_choices() -> list[tuple[str, bool, str | None]]:
    """``(name, usable here, reason if not)`` for each distance of :mod:`ronan.distances`."""
    import importlib.util

    from .distances import DISTANCES, alexnet_weights_path

    out = []
    for name in DISTANCES:
        if name == "lpips":  # the package is looked up, not imported (seconds: torchvision)
            ok = importlib.util.find_spec("lpips") is not None and alexnet_weights_path().is_file()
            out.append((name, ok, None if ok else "LPIPS needs AlexNet weights that are not installed on this server"))
        else:
            out.append((name, True, None))
    return out


# ----------------------------------------------------------------------------- threads


def _stream_callback(fn: Callable[[Callable], object], should_stop: Callable[[], bool] | None) -> Iterator[tuple]:
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


# ----------------------------------------------------------------------------- progress and ETA


class Progress:
    """Overall progress of a job made of weighted phases; never goes backwards.

    ``Progress({"calibration": 0.9, "model": 0.05, "reference": 0.05})``; ``update(phase, f)``
    records phase ``phase`` at fraction ``f`` (phases may run side by side, e.g. the inversions
    on M and M_r) and returns the overall fraction, the weighted sum of the phases' fractions,
    at least its previous value.
    """

    def __init__(self, weights: dict[str, float]):
        total = sum(weights.values()) or 1.0
        self.weights = {k: v / total for k, v in weights.items()}
        self.done: dict[str, float] = {}
        self.fraction = 0.0

    def skip(self, phase: str) -> None:
        """Phase ``phase`` will not run (e.g. a build's model side, taken from the cache): its
        weight goes to the other phases in proportion. The overall fraction never goes back."""
        if self.weights.pop(phase, None) is None or not self.weights:
            return
        total = sum(self.weights.values()) or 1.0
        self.weights = {k: v / total for k, v in self.weights.items()}

    def update(self, phase: str, fraction: float) -> float:
        f = min(1.0, max(0.0, float(fraction)))
        self.done[phase] = max(self.done.get(phase, 0.0), f)
        total = sum(w * self.done.get(k, 0.0) for k, w in self.weights.items())
        self.fraction = max(self.fraction, min(1.0, total))
        return self.fraction


class Eta:
    """Seconds left, estimated from progress, shown as a countdown that does not jump up.

    The raw estimate is ``elapsed * (1 - f) / f`` (or ``prior - elapsed`` before 5% of the job
    is done, when a ``prior`` duration is known). The shown value counts down in real time and
    follows the raw estimate whenever it is lower; it is revised upwards only when the raw
    estimate exceeds it by more than 50% plus 5 s (``revised`` is then True), so small
    fluctuations never make it jump up, and a clearly wrong estimate is still corrected.
    """

    def __init__(self, prior: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.prior, self.clock = prior, clock
        self.start = clock()
        self._shown: float | None = None
        self._at = self.start
        self.revised = False

    def raw(self, fraction: float) -> float | None:
        elapsed = self.clock() - self.start
        if fraction >= 0.05:
            return elapsed * (1.0 - fraction) / fraction
        if self.prior is not None:
            return max(self.prior - elapsed, 0.0)
        return None

    def update(self, fraction: float) -> float | None:
        """The ETA to show, in seconds (None: unknown yet)."""
        now = self.clock()
        raw = 0.0 if fraction >= 1.0 else self.raw(fraction)
        self.revised = False
        if self._shown is None:
            if raw is not None:
                self._shown, self._at = raw, now
            return self._shown
        countdown = max(self._shown - (now - self._at), 0.0)
        if raw is None:
            shown = countdown
        elif raw <= countdown:
            shown = raw
        elif raw > 1.5 * countdown + 5.0:
            shown, self.revised = raw, True
        else:
            shown = countdown
        self._shown, self._at = shown, now
        return shown

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start


def span(done: float, size: float, total: float, fraction: float) -> float:
    """Overall fraction of a job of ``total`` units when ``done`` units are finished and the part of
    ``size`` units now running is at ``fraction``: ``(done + fraction * size) / total`` (``total``
    taken as at least 1). E.g. images 33-64 of 100 at half way: ``span(32, 32, 100, 0.5) = 0.48``."""
    return (done + fraction * size) / max(total, 1)


def fmt_seconds(s: float | None) -> str:
    """``"12.3 s"``, ``"2 min 05 s"`` or ``"?"``."""
    if s is None:
        return "?"
    if s < 60:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def fmt_eta(s: float | None) -> str:
    """A rounded ETA for humans: ``"about 4 s"``, ``"about 2 min"``, ``"a moment"``, ``"unknown yet"``."""
    if s is None:
        return "unknown yet"
    if s < 1.5:
        return "a moment"
    if s < 60:
        return f"about {s:.0f} s"
    return f"about {s / 60:.0f} min" if s < 3600 else f"about {s / 3600:.1f} h"


# ----------------------------------------------------------------------------- the job line

DEFAULT_SECONDS = {"attribute": 6.0, "which_model": 6.0, "calibrate": 2.0, "batch": 1.0}
"""First guesses of a job's seconds per unit (an attribution, one model of which-model, one batch
image), replaced by the measured average of finished jobs."""


@dataclass(eq=False)
class Ticket:
    """A job in the :class:`JobLine`: whose (``owner``), what (``kind``), how big (``units``).

    ``stop`` is set by :meth:`JobLine.stop`; the running job sets ``remaining`` (its ETA) so that
    waiting jobs can tell when their turn comes.
    """

    owner: str
    kind: str
    units: int = 1
    estimate: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    joined: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    started: float | None = None
    remaining: float | None = None

    @property
    def stopped(self) -> bool:
        return self.stop.is_set()


class JobLine:
    """Heavy jobs (inversions) run one at a time (``slots``), first come first served.

    A job joins (:meth:`join`), waits for its turn (:meth:`wait`, which also reports the
    position and an ETA), runs, and leaves (:meth:`leave`). :meth:`stop` stops every job of an
    owner, waiting or running: a waiting job is dropped from the line at once. Jobs whose
    generator stopped polling (a closed browser tab) are dropped after ``stale_s`` seconds.
    """

    def __init__(self, max_waiting: int = 16, slots: int = 1, stale_s: float = 30.0, running_stale_s: float = 600.0):
        self.max_waiting, self.slots = max_waiting, slots
        self.stale_s, self.running_stale_s = stale_s, running_stale_s
        self._line: list[Ticket] = []
        self._cond = threading.Condition()
        self._per_unit = dict(DEFAULT_SECONDS)

    def estimate(self, kind: str, units: int = 1) -> float:
        """Expected seconds of a job of ``kind`` with ``units`` units."""
        return self._per_unit.get(kind, 5.0) * max(units, 1)

    def _live(self) -> list[Ticket]:
        now = time.monotonic()
        keep = [t for t in self._line if not t.stopped or t.started is not None]
        keep = [t for t in keep if now - t.seen < (self.running_stale_s if t.started else self.stale_s)]
        if len(keep) != len(self._line):
            self._line[:] = keep
            self._cond.notify_all()
        return keep

    def join(self, owner: str, kind: str, units: int = 1) -> Ticket:
        """Enter the line. Raises :class:`QueueFull` when ``max_waiting`` jobs already wait."""
        with self._cond:
            waiting = [t for t in self._live() if t.started is None]
            if len(waiting) >= self.max_waiting:
                raise QueueFull(f"the server is busy: {len(waiting)} runs are waiting; try again in a minute")
            t = Ticket(owner, kind, units, self.estimate(kind, units))
            self._line.append(t)
            return t

    def _turn(self, t: Ticket) -> bool:
        live = [x for x in self._live() if not (x.stopped and x.started is None)]
        return t in live and live.index(t) < self.slots

    def wait(self, t: Ticket, timeout: float = 0.25) -> bool:
        """Wait up to ``timeout`` s for ``t``'s turn; True when it may start (it is then running)."""
        with self._cond:
            t.seen = time.monotonic()
            if t.started is not None:
                return True
            if not t.stopped and not self._turn(t):
                self._cond.wait(timeout)
            t.seen = time.monotonic()
            if not t.stopped and self._turn(t):
                t.started = time.monotonic()
                return True
            return False

    def ahead(self, t: Ticket) -> tuple[int, float | None]:
        """``(jobs ahead of t, seconds until t starts)`` (seconds None when unknown)."""
        with self._cond:
            live = [x for x in self._live() if not (x.stopped and x.started is None)]
            if t not in live:
                return 0, 0.0
            before = live[: live.index(t)]
            now = time.monotonic()
            wait = 0.0
            for x in before:
                if x.started is not None:
                    left = x.remaining if x.remaining is not None else max(x.estimate - (now - x.started), 1.0)
                else:
                    left = x.estimate
                wait += left
            return len(before), wait / max(self.slots, 1)

    def touch(self, t: Ticket, remaining: float | None = None) -> None:
        """A running job reports that it is alive and its ETA."""
        t.seen = time.monotonic()
        if remaining is not None:
            t.remaining = remaining

    def leave(self, t: Ticket, finished: bool = False) -> None:
        """Leave the line; a ``finished`` job's duration updates the estimates."""
        with self._cond:
            if finished and t.started is not None:
                per_unit = (time.monotonic() - t.started) / max(t.units, 1)
                old = self._per_unit.get(t.kind, per_unit)
                self._per_unit[t.kind] = 0.6 * old + 0.4 * per_unit
            if t in self._line:
                self._line.remove(t)
            self._cond.notify_all()

    def stop(self, owner: str) -> int:
        """Stop every job of ``owner`` (waiting ones leave the line); returns how many."""
        with self._cond:
            mine = [t for t in self._live() if t.owner == owner and not t.stopped]
            for t in mine:
                t.stop.set()
            self._cond.notify_all()
            return len(mine)

    def stop_all(self) -> int:
        """Stop every job, waiting or running (e.g. at shutdown); returns how many."""
        with self._cond:
            live = [t for t in self._live() if not t.stopped]
            for t in live:
                t.stop.set()
            self._cond.notify_all()
            return len(live)

    def __len__(self) -> int:
        with self._cond:
            return len(self._live())


# ----------------------------------------------------------------------------- report folders


class RunFolders:
    """Folders for the files of the last runs (reports, CSVs), under ``root``; older ones removed.

    Each run gets ``root/<prefix>-<n>``; after creating one, only the newest ``keep`` folders
    are kept and, beyond that, the oldest are removed while the total exceeds ``max_bytes``.
    (The app hands files to gradio, which serves its own copies, so removing ours is safe.)
    """

    def __init__(self, root: str | Path, keep: int = 32, max_bytes: int = 64 * 2**20):
        self.root, self.keep, self.max_bytes = Path(root), keep, max_bytes
        self._lock = threading.Lock()
        self._n = 0

    def new(self, prefix: str = "run") -> Path:
        with self._lock:
            self._n += 1
            folder = self.root / f"{prefix}-{int(time.time() * 1000):x}-{self._n}"
            folder.mkdir(parents=True, exist_ok=True)
            self._prune(folder)
            return folder

    def _prune(self, current: Path) -> None:
        folders = sorted((p for p in self.root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        folders = [p for p in folders if p != current]
        while len(folders) >= self.keep:
            shutil.rmtree(folders.pop(0), ignore_errors=True)
        sizes = [(p, sum(f.stat().st_size for f in p.rglob("*") if f.is_file())) for p in folders]
        total = sum(s for _, s in sizes)
        while sizes and total > self.max_bytes:
            p, s = sizes.pop(0)
            shutil.rmtree(p, ignore_errors=True)
            total -= s


def prune_files(folder: str | Path, keep: int = 64) -> None:
    """Keep the ``keep`` newest files of ``folder`` (e.g. generated images), remove the rest."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
    for p in files[:-keep] if len(files) > keep else []:
        p.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- runs


@dataclass
class RunProgress:
    """One update of a running job.

    Attributes:
        phase (str): ``"calibration"`` (building a belonging distribution), ``"model"`` or
            ``"reference"`` (the inversion on M or M_r).
        step (int), steps (int): progress inside the phase.
        fraction (float): overall progress of the job in [0, 1]; it never decreases.
        elapsed (float): seconds since the job started; ``eta`` seconds left (None: unknown),
            a countdown that does not jump up (see :class:`Eta`).
        message (str): one line for humans.
        reconstruction (Tensor[C, H, W] | None): current reconstruction (inversion phases of
            :func:`run_attribution`).
        history_steps (list[int]), history (list[float]): the reported steps of the inversion on
            M so far and the best loss at each (:func:`run_attribution`).
        reference_history_steps (list[int]), reference_history (list[float]): the same on M_r.
        model (str): the model being worked on; reference (str | None): its reference model
            (:func:`run_attribution`).
        target (Tensor[C, H, W] | None): the image in the inspected model's domain.
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
    """Result of :func:`run_attribution`.

    Attributes:
        result (Attribution), distribution (BelongingDistribution), image (LoadedImage).
        preprocessing (list[str]): what happened to the upload on its way to the model
            (:func:`preprocessing_steps`).
        caveats (list[str]): assumptions the result rests on that the app could not avoid,
            e.g. an edit detected in the file whose belonging distribution is not built here.
        edit_detected (dict | None): the edit detected but not tested (then a caveat says so).
    """

    result: Attribution
    distribution: BelongingDistribution
    image: LoadedImage
    preprocessing: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    edit_detected: dict | None = None


def has_distribution(
    p: Prepared,
    n: int = N_CALIBRATION,
    seed: int = 0,
    edit: EditAssumption | None = None,
    edit_mode: str = "samples",
    pictures=None,
) -> bool:
    """True when a cached belonging distribution exists for the prepared models and settings ``p``,
    N ``n`` (default 100), seed ``seed`` (default 0) and the edit ``edit`` (default none) in
    ``edit_mode`` (``"samples"`` by default); with ``pictures`` (a :class:`ronan.contrast.PictureSet`),
    the contrast distribution of those pictures instead (N is then their count)."""
    edit = edit or NO_EDIT
    if edit.is_robust:
        return all(has_distribution(p, n, seed, m, edit_mode, pictures) for m in edit.members())
    n = n if pictures is None else len(pictures)
    key = distribution_key(
        p.model,
        p.reference,
        p.distance,
        p.settings,
        n,
        seed,
        edit.key(edit_mode),
        None if pictures is None else pictures.key(),
    )
    return find_cache(key).exists()


def _settings_text(distance: str, settings) -> str:
    s = settings.to_dict() if hasattr(settings, "to_dict") else dict(settings)
    return f"distance {distance}, {s.get('steps')} steps, {s.get('restarts')} restart(s), lr {s.get('lr')}" + (
        "" if s.get("plateau_steps") else ", no early stopping"
    )


def missing_message(
    model: str, distance: str, settings, edit: EditAssumption | None = None, reference: str | None = "default"
) -> str:
    """Why a run cannot go on when its belonging distribution is not built (for web visitors)."""
    ref = "no reference model, " if reference is None else ""
    what = f"{model} has no belonging distribution for these settings ({ref}{_settings_text(distance, settings)})"
    if edit is not None and not edit.is_none:
        what = (
            f"{model} has no belonging distribution for images edited like this one ({edit.spec}: {edit.description})"
        )
    return (
        f"{what} on this server. Building one means inverting {N_CALIBRATION} of the model's own images "
        f"(minutes on a CPU), which this server does not do for visitors. The default settings use a "
        f"distribution that is ready."
    )


def _calibration_stream(
    p: Prepared,
    *,
    n,
    seed,
    rebuild,
    build,
    should_stop,
    t0,
    progress=None,
    eta=None,
    edit=None,
    edit_mode="samples",
    pictures=None,
    stage: int = 0,
):
    """Yield RunProgress while getting (building) the distribution of ``p``; return it.

    ``progress`` (:class:`Progress`) and ``eta`` (:class:`Eta`) place the build inside a larger
    job; by default the build is the whole job. A job that builds several distributions numbers
    them: ``stage`` k (default 0) reports on the phases ``calibration-model-k`` and
    ``calibration-reference-k`` of :func:`_plan`. With ``pictures``, the contrast distribution of
    those real pictures (:mod:`ronan.contrast`; ``n`` is then their count).
    """
    gen, ref, distance, settings = p.model, p.reference, p.distance, p.settings
    edit = edit or NO_EDIT
    progress = progress or _plan(ref, 1)
    eta = eta or Eta()
    if not rebuild:
        try:
            return get_distribution(
                gen,
                ref,
                distance=distance,
                settings=settings,
                n=n,
                seed=seed,
                build=False,
                edit=edit,
                edit_mode=edit_mode,
                pictures=pictures,
            )
        except CalibrationError:  # missing or invalid cache: build below, if allowed
            if not build:
                raise DistributionMissing(
                    missing_message(gen.name, distance, settings, edit, ref.name if ref is not None else None)
                ) from None

    def fn(cb):
        return get_distribution(
            gen,
            ref,
            distance=distance,
            settings=settings,
            n=n,
            seed=seed,
            rebuild=rebuild,
            edit=edit,
            edit_mode=edit_mode,
            pictures=pictures,
            callback=cb,
            should_stop=should_stop,
        )

    request = dict(distance=distance, settings=settings, n=n, seed=seed, edit=edit, edit_mode=edit_mode)
    if not rebuild and reuses_model_side(gen, ref, pictures=pictures, **request):
        progress.skip(f"calibration-model-{stage}")  # only the reference's inversions run
    stream = _stream_callback(fn, should_stop)
    while True:
        try:
            role, first, ev = next(stream)
        except StopIteration as stop:
            return stop.value
        frac = progress.update(f"calibration-{role}-{stage}", span(first, min(100, n - first), n, ev.fraction))
        yield RunProgress(
            "calibration",
            ev.step,
            ev.steps,
            frac,
            time.perf_counter() - t0,
            eta.update(frac),
            f"Building the {'belonging' if pictures is None else 'contrast'} distribution of {gen.name} "
            f"(N = {n}, once per settings{'' if pictures is None else ': real pictures, same edit'}): "
            f"{role} inversion, step {ev.step}/{ev.steps}",
            model=gen.name,
        )


def preprocessing_steps(loaded: LoadedImage, gen: Generator) -> list[str]:
    """What happens to an upload on its way to ``gen``, one step per line (for cards and reports).

    E.g. ``["upload: 1024x768 RGB JPEG", "centre-cropped to 768x768", "resized 768x768 ->
    28x28 (Lanczos)", "converted to grayscale (ITU-R 601-2 luma)"]``.
    """
    from .models.wrap import WrappedGenerator

    w, h = loaded.original_size
    fmt = loaded.original_format or "image made in memory"
    steps = [f"upload: {w}x{h} {loaded.original_mode} {fmt}"] + list(loaded.notes)
    s, c = gen.image_size, gen.channels
    target = f"{s}x{s} {'grayscale' if c == 1 else 'RGB'}"
    if type(gen).preprocess not in (Generator.preprocess, WrappedGenerator.preprocess):
        return steps + [f"{gen.name}'s own preprocessing to {target}"]
    pre = getattr(gen, "preprocessing", None)
    fit, resample = getattr(pre, "fit", "crop"), getattr(pre, "resample", "lanczos")
    iw, ih = loaded.image.size
    before = len(steps)
    if (iw, ih) != (s, s):
        side = max(iw, ih) if fit == "pad" else min(iw, ih)
        if iw != ih:
            steps.append(
                {
                    "crop": f"centre-cropped to {side}x{side}",
                    "pad": f"padded with black to {side}x{side}",
                    "stretch": "stretched to a square",
                }.get(fit, fit)
            )
        if side != s or fit == "stretch":
            how = "reduced" if side > s else "enlarged"
            steps.append(f"{how} {side}x{side} -> {s}x{s} ({resample.capitalize()})")
    if c == 1 and loaded.image.mode != "L":
        steps.append("converted to grayscale (ITU-R 601-2 luma)")
    elif c == 3 and loaded.image.mode == "L":
        steps.append("grayscale copied to 3 RGB channels")
    if len(steps) == before:
        steps.append(f"used as is: already {target}")
    return steps


def distribution_status(
    model: str,
    reference: str | None = "default",
    *,
    distance: str = "mse",
    preset: str | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
) -> tuple[bool, str]:
    """``(ready, one line)``: whether the belonging distribution of these settings is built here
    (unedited images; an edit detected in a file may need another). Arguments as for :func:`prepare`."""
    try:
        p = prepare(model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts, lr=lr)
    except (RonanError, ValueError) as e:
        return False, str(e)
    if has_distribution(p):
        return (
            True,
            f"The belonging distribution for these settings is ready ({p.model.name}, preset {p.preset}, "
            f"reference {p.reference.name if p.reference is not None else 'none'}).",
        )
    how = (
        "it will be built on the first run (minutes)"
        if builds_allowed()
        else "this server does not build one for visitors, so Run would stop with a message"
    )
    return False, f"No belonging distribution for these settings (preset {p.preset}) yet: {how}."


def _plan(ref: Generator | None, builds: int) -> Progress:
    """The phases of a job: the query's inversions on M (and M_r), after ``builds`` distribution
    builds (stages 0 .. builds - 1 of :func:`_calibration_stream`), each of N = 100 samples in one
    batch, which cost roughly 20 queries."""
    weights = {"model": 1.0, "reference": 1.0} if ref is not None else {"model": 1.0}
    for k in range(builds):
        weights[f"calibration-model-{k}"] = 10.0
        if ref is not None:
            weights[f"calibration-reference-{k}"] = 10.0
    return Progress(weights)


def _builds(p: Prepared, assumption: EditAssumption, mode: str, test: str) -> list[tuple[EditAssumption, Any]]:
    """The distributions an attribution under ``assumption`` needs and the cache lacks, in the order
    they are built: ``(edit, None)`` for a belonging distribution, ``(edit, pictures)`` for a contrast
    one (:class:`ronan.contrast.PictureSet`), for each edit of the assumption."""
    out: list[tuple[EditAssumption, Any]] = []
    for member in assumption.members():
        if not has_distribution(p, edit=member, edit_mode=mode):
            out.append((member, None))
        pictures = contrast_check.bundled_set(p.model) if contrast_check.applies("auto", member, test) else None
        if pictures is not None and not has_distribution(p, edit=member, edit_mode=mode, pictures=pictures):
            out.append((member, pictures))
    return out


def _build_stream(p: Prepared, builds: list, *, mode: str, progress, eta, t0, should_stop):
    """Build the distributions ``builds`` lists (:func:`_builds`), the k-th as stage k of
    ``progress``, streaming RunProgress; return the belonging ones built, by edit spec."""
    built: dict[str, BelongingDistribution] = {}
    for k, (member, pictures) in enumerate(builds):
        n = N_CALIBRATION if pictures is None else len(pictures)
        common: dict[str, Any] = dict(seed=0, rebuild=False, build=True, should_stop=should_stop, t0=t0, stage=k)
        common |= dict(progress=progress, eta=eta, edit=member, edit_mode=mode, pictures=pictures)
        dist = yield from _calibration_stream(p, n=n, **common)
        if pictures is None:
            built[member.spec] = dist
    return built


def _stand_in(p: Prepared, revealed: EditAssumption, test: str) -> EditAssumption:
    """What decides for an image whose detected edit has no distribution here (no builds): the edit
    of the same kind whose belonging and contrast distributions are in the cache that
    :func:`ronan.edits.stand_in.pick` chooses, else the pristine distribution."""
    here = []
    for spec in cached_edits(p.model.name):
        a = EditAssumption(parse_edit(spec), "stand-in", f"stand-in: {spec}")
        if not _builds(p, a, default_edit_mode(a), test):
            here.append(a)
    assert revealed.edit is not None  # a detected edit, never the robust family
    chosen = stand_in_rule.pick(p.model, revealed.edit, [a.edit for a in here if a.edit is not None])
    return next((a for a in here if a.edit == chosen), NO_EDIT)


def _stand_in_caveat(model: str, revealed: EditAssumption, stand_in: EditAssumption) -> str:
    how = f"it was tested as {stand_in.spec}" if not stand_in.is_none else "it was tested as if unedited"
    return (
        f"The file shows signs of an edit ({revealed.description}), but {model}'s belonging distribution "
        f"for that edit is not built on this server, so {how}. A 'not belonging' stands only where the "
        f"edit alone cannot explain it (it moves the model's own images no further than the samples it was "
        f"tested against, or the image lies twice as far from the model as the edit takes any of them), and "
        f"a 'belonging' only where the image lies no further from the model than the edit takes any of them; "
        f"otherwise the outcome is inconclusive."
    )


def run_attribution(
    image,
    model: str,
    *,
    reference: str | None = "default",
    distance: str = "mse",
    alpha: float = 0.05,
    preset: str | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device=None,
    edit: str = "auto",
    test: str = "robust",
    floor_rule: bool = True,
    build_calibration: bool = True,
    should_stop: Callable[[], bool] | None = None,
    progress_every: int = 10,
    eta_prior: float | None = None,
) -> Iterator[RunProgress | RunOutcome]:
    """Attribute one image to ``model``, streaming progress (see :class:`RunProgress`).

    Args:
        image: path, bytes, PIL image or :class:`LoadedImage`.
        model (str): inspected model. reference (str | None): ``"default"``, a name, or
            ``"none"``/None (no calibration); see :func:`ronan.prepare.reference_name`.
        edit (str): the edit to assume (``"auto"``: detected from the file; see
            :mod:`ronan.edits.policy`). When the distribution of a *detected* edit is missing and
            ``build_calibration`` is False, a stand-in decides (:func:`_stand_in`: a cached edit of
            the same kind that moves the model's own images at least as far, else the pristine
            distribution), the outcome's ``caveats`` say so, and a "not belonging" that the file's
            edit alone could explain, or a "belonging" of an image further from the model than the
            edit takes its own images, is inconclusive (:mod:`ronan.edits.stand_in`); a declared edit
            (or ``"robust"``) then raises instead.
        build_calibration (bool): build a missing belonging distribution (minutes) or raise
            :class:`DistributionMissing`.
        eta_prior (float | None): expected seconds (the ETA before the first progress).
        floor_rule (bool): the robust test's floor rule (default True; :mod:`ronan.verdict`).
        Other arguments as for :func:`ronan.attribution.attribute_stream`.

    Yields:
        RunProgress updates, then one RunOutcome.

    Raises:
        ImageError, ModelUnavailable, DistributionMissing, CalibrationError, EditError, Cancelled,
        ValueError (bad settings).
    """
    t0 = time.perf_counter()
    loaded = image if isinstance(image, LoadedImage) else load_image(image)
    p = prepare(
        model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts, lr=lr, device=device
    )
    gen, ref = p.model, p.reference
    if should_stop is not None and should_stop():
        raise Cancelled("stopped by the user")
    assumption = resolve_edit(loaded, gen.image_size, gen.channels, edit)
    mode = default_edit_mode(assumption)
    caveats, detected, revealed = [], None, None
    if not build_calibration and not assumption.is_none and not has_distribution(p, edit=assumption, edit_mode=mode):
        if assumption.source != "detected":
            raise DistributionMissing(missing_message(gen.name, distance, p.settings, assumption))
        detected, revealed = assumption.detection, assumption
        assumption = _stand_in(p, revealed, test)
        edit, mode = assumption.spec, default_edit_mode(assumption)
        caveats.append(_stand_in_caveat(gen.name, revealed, assumption))
    builds = _builds(p, assumption, mode, test) if build_calibration else []
    # a build takes minutes: the prior of a plain attribution would be wrong
    progress, eta = _plan(ref, len(builds)), Eta(None if builds else eta_prior)
    # missing distributions (belonging and contrast) are built first, with progress; attribute_stream
    # then reads the contrast ones from the cache
    dists = yield from _build_stream(p, builds, mode=mode, progress=progress, eta=eta, t0=t0, should_stop=should_stop)
    for member in assumption.members():  # the edit itself, or each edit of the robust family
        if member.spec not in dists:  # from the cache (missing and not to be built: DistributionMissing)
            common: dict[str, Any] = dict(seed=0, rebuild=False, build=build_calibration, should_stop=should_stop)
            common |= dict(progress=progress, eta=eta, t0=t0, edit=member, edit_mode=mode)
            dists[member.spec] = yield from _calibration_stream(p, n=N_CALIBRATION, **common)
    target = gen.preprocess(loaded.image)
    hist: dict[str, tuple[list[int], list[float]]] = {"model": ([], []), "reference": ([], [])}
    for ev in attribute_stream(
        [loaded],
        p,
        alpha=alpha,
        test=test,
        floor_rule=floor_rule,
        edit=edit,
        distribution=None if assumption.is_robust else dists[assumption.spec],
        build_calibration=build_calibration,
        seed=seed,
        progress_every=progress_every,
        with_images=True,
        should_stop=should_stop,
    ):
        if isinstance(ev, list):
            progress.update("model", 1.0), progress.update("reference", 1.0)
            result = ev[0]
            if revealed is not None:
                result = stand_in_rule.judged(
                    result, gen, revealed, assumption, [dists[m.spec] for m in assumption.members()]
                )
            dist = dists[result.robust_edit or assumption.spec]
            yield RunOutcome(result, dist, loaded, preprocessing_steps(loaded, gen), caveats, detected)
            return
        inv = ev.progress
        xs, ys = hist[ev.role]
        xs.append(inv.step)
        ys.append(float(inv.best_loss[0]))
        frac = progress.update(ev.role, inv.fraction)
        name = gen.name if ev.role == "model" or ref is None else ref.name
        yield RunProgress(
            ev.role,
            inv.step,
            inv.steps,
            frac,
            time.perf_counter() - t0,
            eta.update(frac),
            f"Reverse-engineering on {name} ({'inspected' if ev.role == 'model' else 'reference'} "
            f"model): step {inv.step}/{inv.steps}, best loss {float(inv.best_loss[0]):.4g}",
            reconstruction=inv.reconstructions[0] if inv.reconstructions is not None else None,
            history_steps=list(hist["model"][0]),
            history=list(hist["model"][1]),
            reference_history_steps=list(hist["reference"][0]),
            reference_history=list(hist["reference"][1]),
            model=gen.name,
            reference=ref.name if ref is not None else None,
            target=target,
            final=inv.done,
        )
    raise Cancelled("attribution ended without a result")  # pragma: no cover


def run_calibration(
    model: str,
    reference: str | None = "default",
    *,
    distance: str = "mse",
    preset: str | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
    n: int = N_CALIBRATION,
    seed: int = 0,
    rebuild: bool = False,
    build: bool = True,
    device=None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[RunProgress | BelongingDistribution]:
    """Get (build, or rebuild with ``rebuild=True``) a belonging distribution, streaming progress.

    With ``build=False`` a missing distribution raises :class:`DistributionMissing` (and
    ``rebuild`` is refused with it too). Arguments as for :func:`ronan.prepare.prepare`; ``n`` is
    N (default 100), ``seed`` its seed (default 0).
    """
    t0 = time.perf_counter()
    p = prepare(
        model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts, lr=lr, device=device
    )
    if rebuild and not build:
        raise DistributionMissing("rebuilding a belonging distribution is switched off on this server")
    dist = yield from _calibration_stream(
        p,
        n=n,
        seed=seed,
        rebuild=rebuild,
        build=build,
        should_stop=should_stop,
        progress=_plan(p.reference, 1),
        eta=Eta(),
        t0=t0,
    )
    yield dist


def preset_of(model: str, preset: str | None = None) -> str:
    """The preset that ``preset`` names for the catalogue model ``model``: itself, or for None /
    ``"default"`` the preset its card names, else ``"fast"`` (:func:`ronan.preset_names.preset_name`)."""
    return preset_name(preset, load_model(model))


def distribution_file(dist: BelongingDistribution) -> str:
    """File name of a distribution in the calibration cache."""
    return cache_path(dist.key()).name


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


def run_batch(
    items: list[BatchItem],
    model: str,
    *,
    reference: str | None = "default",
    distance: str = "mse",
    alpha: float = 0.05,
    preset: str | None = None,
    steps: int | None = None,
    restarts: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device=None,
    chunk: int = 32,
    build_calibration: bool = False,
    should_stop: Callable[[], bool] | None = None,
    eta_prior: float | None = None,
) -> Iterator[RunProgress | BatchOutcome]:
    """Attribute many images to ``model`` in batches of ``chunk``; bad files become error rows.

    Images are decoded chunk by chunk (:func:`ronan.batch.iter_loaded`): one chunk of decoded images
    exists at a time, ``chunk`` shrinks so that a batch stays within ``RONAN_MAX_BATCH_ROWS``
    inversion rows, and the request's decoded pixels are bounded (:mod:`ronan.limits`). Images
    whose file reveals an edit (a JPEG, a resized copy) are tested against their edit's belonging
    distribution (from the cache, or built when ``build_calibration``; otherwise against a stand-in,
    as in :func:`run_attribution`).

    Labels (folder names, see :func:`collect_batch`) give ground truth through
    :func:`is_belonging_label`; when both groups are present the outcome has the paper's
    confusion table (:func:`ronan.evaluation.confusion`). Rows are
    :meth:`~ronan.attribution.Attribution.to_row` with the item's ``label`` after ``image`` and its
    ``error`` last (:func:`ronan.rows.empty_row` for an image without a result).

    Args:
        eta_prior (float | None): expected seconds (the ETA before the first progress).
        Other arguments as for :func:`run_attribution`.
    """
    from .evaluation import confusion
    from .rows import empty_row

    t0 = time.perf_counter()
    limits.check_images(len(items), "images in one batch")
    p = prepare(
        model, reference, distance=distance, preset=preset, steps=steps, restarts=restarts, lr=lr, device=device
    )
    dist = yield from _calibration_stream(
        p, n=100, seed=0, rebuild=False, build=build_calibration, should_stop=should_stop, t0=t0
    )
    chunk = limits.images_per_batch(limits.rows_per_image(p.settings, p.model), chunk)
    by_item: dict[int, Attribution] = {}
    loaded: list[tuple[BatchItem, bool]] = []
    roles = 2 if p.reference is not None else 1
    progress, eta = Progress({"batch": 1.0}), Eta(eta_prior)  # chunks of M and M_r inversions interleave
    for c, part in enumerate(iter_loaded(items, chunk)):  # one chunk of decoded images at a time
        loaded += [(it, li is not None) for it, li in part]
        good = [(it, li) for it, li in part if li is not None]
        for group, given, stand_in in _edit_split(p, good, dist, build_calibration):
            try:
                if given is None and build_calibration:  # edited files: their distributions, built with progress
                    edited = [li for _, li in group]
                    yield from _edit_builds_stream(
                        p, edited, progress=progress, eta=eta, t0=t0, should_stop=should_stop
                    )
                if stand_in is not None and not stand_in.is_none:  # its distribution, from the cache
                    given = yield from _calibration_stream(
                        p,
                        n=N_CALIBRATION,
                        seed=0,
                        rebuild=False,
                        build=False,
                        should_stop=should_stop,
                        t0=t0,
                        edit=stand_in,
                        edit_mode=default_edit_mode(stand_in),
                    )
                for ev in attribute_stream(
                    [li for _, li in group],
                    p,
                    alpha=alpha,
                    distribution=given,
                    build_calibration=build_calibration,
                    seed=seed,
                    should_stop=should_stop,
                    edit="auto" if stand_in is None else stand_in.spec,
                ):
                    if isinstance(ev, list):
                        for (it, li), result in zip(group, ev):
                            if stand_in is not None:  # the file's own edit, as run_attribution judges it
                                revealed = resolve_edit(li, p.model.image_size, p.model.channels)
                                result = stand_in_rule.judged(result, p.model, revealed, stand_in, [given])
                            by_item[id(it)] = result
                        continue
                    inv = ev.progress
                    inner = span(0 if ev.role == "model" else 1, 1, roles, inv.fraction)
                    frac = progress.update("batch", span(c * chunk, len(part), len(items), inner))
                    yield RunProgress(
                        ev.role,
                        inv.step,
                        inv.steps,
                        frac,
                        time.perf_counter() - t0,
                        eta.update(frac),
                        f"Images {c * chunk + 1}-{c * chunk + len(part)} of {len(items)}: {ev.role} "
                        f"inversion, step {inv.step}/{inv.steps}",
                        model=p.model.name,
                    )
            except CalibrationError as e:  # an edited group without its belonging distribution
                for it, _ in group:
                    it.error = str(e)
    rows: list[dict] = []
    results: list[Attribution] = []
    bel: list[str] = []
    non: list[str] = []
    per_label: dict[str, dict] = {}
    for it, ok in loaded:
        res = by_item.get(id(it)) if ok else None
        row = res.to_row() if res is not None else empty_row(it.name)
        rows.append({"image": it.name, "label": it.label or ""} | row | {"error": it.error or ""})
        if res is None:
            continue
        results.append(res)
        truth = is_belonging_label(it.label, p.model.name)
        if truth is not None:
            (bel if truth else non).append(res.verdict)
        if it.label is not None:
            d = per_label.setdefault(it.label, {"belonging": 0, "non-belonging": 0, "inconclusive": 0})
            d[res.verdict] += 1
    conf = confusion(bel, non) if (bel or non) else None
    yield BatchOutcome(rows, results, conf, per_label)


def _edit_builds_stream(p: Prepared, loaded: list, *, progress, eta, t0, should_stop, test: str = "robust"):
    """Build, streaming progress, the missing edit-aware belonging and contrast distributions that
    :func:`ronan.attribution.attribute_stream` needs for the edited files ``loaded`` (the edit each
    file reveals, its default mode, N = 100, seed 0), so that it then reads them from the cache
    instead of building them without progress events."""
    assumptions: dict[str, EditAssumption] = {}
    for li in loaded:
        a = resolve_edit(li, p.model.image_size, p.model.channels)
        assumptions.setdefault(a.spec, a)
    for a in assumptions.values():
        mode = "samples" if a.is_robust else default_edit_mode(a)
        common = dict(mode=mode, progress=progress, eta=eta, t0=t0, should_stop=should_stop)
        yield from _build_stream(p, _builds(p, a, mode, test), **common)


def _edit_split(
    p: Prepared, good: list, dist: BelongingDistribution, build: bool, test: str = "robust"
) -> list[tuple[list, BelongingDistribution | None, EditAssumption | None]]:
    """Split loaded batch items into groups ``(items, distribution, stand_in)``: pristine ones
    (tested against ``dist``); those whose file reveals an edit with its own belonging distribution
    here, or to be built when ``build`` (``distribution`` None: their own, by edit); and, without
    builds, the others, grouped by the stand-in that decides for them (:func:`_stand_in`; pristine:
    ``dist``), whose results :func:`ronan.edits.stand_in.judged` then qualifies."""
    pristine: list = []
    edited: list = []
    stood: dict[str, tuple[EditAssumption, list]] = {}
    chosen_for: dict[str, EditAssumption] = {}  # the stand-in depends on the file's edit only
    for it, li in good:
        a = resolve_edit(li, p.model.image_size, p.model.channels)
        if a.is_none:
            pristine.append((it, li))
        elif build or has_distribution(p, edit=a, edit_mode=default_edit_mode(a)):
            edited.append((it, li))
        else:
            if a.spec not in chosen_for:
                chosen_for[a.spec] = _stand_in(p, a, test)
            chosen = chosen_for[a.spec]
            stood.setdefault(chosen.spec, (chosen, []))[1].append((it, li))
    groups: list[tuple[list, BelongingDistribution | None, EditAssumption | None]] = [
        (pristine, dist, None),
        (edited, None, None),
    ]
    groups += [(g, dist if s.is_none else None, s) for s, g in stood.values()]
    return [(g, d, s) for g, d, s in groups if g]


def batch_summary(rows: list[dict], model: str, skipped: Sequence[str] = ()) -> str:
    """One honest line about a batch: ``"Done: 4 of 5 images; 2 judged belonging to M, 2 not belonging;
    1 unreadable: broken.png; skipped: notes.txt"``."""
    done = [r for r in rows if r["verdict"] != "error"]
    bad = [r["image"] for r in rows if r["verdict"] == "error"]
    counts = {v: sum(r["verdict"] == v for r in done) for v in ("belonging", "non-belonging", "inconclusive")}
    parts = [
        f"Done: {len(done)} of {len(rows)} images",
        f"{counts['belonging']} judged belonging to {model}, {counts['non-belonging']} not belonging"
        + (f", {counts['inconclusive']} inconclusive" if counts["inconclusive"] else ""),
    ]
    if bad:
        parts.append(f"{len(bad)} unreadable: {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))
    if skipped:
        parts.append(f"skipped: {', '.join(list(skipped)[:5])}" + (" ..." if len(skipped) > 5 else ""))
    return "; ".join(parts) + "."


def is_belonging_label(label: str | None, model: str) -> bool | None:
    """Ground truth from a folder name: the model's own name (or ``belonging``) -> True;
    any other folder -> False; no folder -> None (unknown)."""
    if label is None:
        return None
    return label.strip().lower() in (model.lower(), "belonging", "generated-" + model.lower())


# ----------------------------------------------------------------------------- which model?


def run_which_model(
    image,
    *,
    preset: str | None = None,
    alpha: float = 0.05,
    seed: int = 0,
    build_calibration: bool = False,
    should_stop: Callable[[], bool] | None = None,
    eta_prior: float | None = None,
) -> Iterator[RunProgress | WhichModelResult]:
    """Test ``image`` against every available model of its kind, streaming progress.

    :func:`ronan.which_model.which_model_stream` with one overall fraction over every model's
    inversions on M and M_r (:class:`Progress`) and an :class:`Eta` (``eta_prior``: the expected
    seconds, the ETA before the first progress). Each model uses its default reference; a file whose
    edit has no distribution on a model is tested there against that model's stand-in, chosen as
    :func:`run_attribution` chooses it.

    Yields:
        RunProgress updates (``model`` the model being tested), then one WhichModelResult.
    """
    t0 = time.perf_counter()
    progress: Progress | None = None
    eta = Eta(eta_prior)

    def stand_in(name: str, loaded: LoadedImage) -> EditAssumption:  # as run_attribution chooses it
        p = prepare(name, "default", preset=preset)
        revealed = resolve_edit(loaded, p.model.image_size, p.model.channels)
        return NO_EDIT if revealed.edit is None or revealed.is_none else _stand_in(p, revealed, "robust")

    for ev in which_model_stream(
        image,
        preset=preset,
        alpha=alpha,
        seed=seed,
        build_calibration=build_calibration,
        should_stop=should_stop,
        stand_in=stand_in,
    ):
        if isinstance(ev, WhichModelResult):
            yield ev
            return
        if progress is None:
            progress = Progress({f"{i}-{role}": 1.0 for i in range(ev.total) for role in ("model", "reference")})
        inv = ev.event.progress
        frac = progress.update(f"{ev.index}-{ev.event.role}", inv.fraction)
        yield RunProgress(
            ev.event.role,
            inv.step,
            inv.steps,
            frac,
            time.perf_counter() - t0,
            eta.update(frac),
            f"Model {ev.index + 1} of {ev.total} ({ev.model}): {ev.event.role} inversion, step {inv.step}/{inv.steps}",
            model=ev.model,
        )
    raise Cancelled("which-model ended without a result")  # pragma: no cover


def presets() -> list[str]:
    """The choices of a preset chooser: ``"default"`` (each model's own), then the presets, ``"fast"`` first."""
    from .preset_names import DEFAULT_PRESET, MODEL_PRESET

    return [MODEL_PRESET, DEFAULT_PRESET] + [p for p in PRESETS if p != DEFAULT_PRESET]


__all__ = [
    "ModelChoice",
    "model_choices",
    "require_model",
    "run_attribution",
    "run_calibration",
    "run_batch",
    "run_which_model",
    "RunProgress",
    "RunOutcome",
    "BatchOutcome",
    "Example",
    "example_images",
    "generate_example",
    "real_samples",
    "collect_batch",
    "load_batch",
    "BatchItem",
    "is_belonging_label",
    "fmt_seconds",
    "fmt_eta",
    "span",
    "JobLine",
    "Ticket",
    "Eta",
    "Progress",
    "RunFolders",
    "prune_files",
    "builds_allowed",
    "DistributionMissing",
    "QueueFull",
    "preprocessing_steps",
    "skipped_members",
    "batch_summary",
    "samples_folder",
    "distance_choices",
    "domain_text",
    "unavailable_reason",
    "has_distribution",
    "distribution_status",
    "distribution_file",
    "missing_message",
    "presets",
]
