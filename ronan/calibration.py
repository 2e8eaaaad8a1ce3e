"""Belonging distribution (paper Algorithm 1): calibrated losses of the model's own samples.

N inputs are drawn from the model with a seed; the images they make, quantized to 8 bits as any
saved image is, are inverted on the model and on the reference model with exactly the settings
used for queries, and the calibrated losses ``A'(M, x) = A(M, x) / A(M_r, x)`` (Eq. 2) are kept
with their mean and sample standard deviation. Distributions are cached as JSON
(:func:`ronan.paths.cache_read_dirs`), written atomically, validated on load, and keyed by
everything that changes them (model and weights hash, reference and weights hash, distance,
inversion settings, N, seed and the method version), so a change of any of those builds a new
one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import limits, paths
from .errors import CalibrationError, Cancelled
from .inversion import InversionProgress, InversionResult, InversionSettings, invert_jobs_stream
from .models.base import Generator
from .models.cards import is_safe_name
from .starts import settings_for

METHOD_VERSION = 1
"""Bump when a change of the engine changes losses: every cache is then rebuilt."""
EPS = 1e-12
"""Floor of the reference loss in Eq. 2 (a perfect reference reconstruction)."""
TMP_MAX_AGE_S = 3600
"""Temporary files (``.tmp-*.json``) of interrupted writes older than this are removed at the next write."""
DAMAGED_SUFFIX = ".damaged"
"""A damaged cache file is renamed ``<file>.damaged`` (kept as evidence) before it is rebuilt."""

log = logging.getLogger("ronan")


def cache_dir() -> Path:
    """Folder new distributions are written to (reading order: :func:`ronan.paths.cache_read_dirs`)."""
    return paths.cache_write_dir()


def calibrate_losses(loss: torch.Tensor, reference_loss: torch.Tensor | None) -> torch.Tensor:
    """Eq. 2: ``loss / max(reference_loss, EPS)``; the raw loss when there is no reference."""
    if reference_loss is None:
        return loss.clone()
    return loss / reference_loss.clamp_min(EPS)


@dataclass
class BelongingDistribution:
    """Calibrated losses of N samples of ``model`` (JSON-serialisable).

    Attributes:
        model, model_sha256: inspected model and SHA-256 of its weights.
        model_options (dict): adapter options that change inversions (e.g. cGAN class search).
        edit (dict | None): the edit the samples passed through before inversion
            (:meth:`ronan.edits.policy.EditAssumption.key`: spec, version, mode), None for
            pristine 8-bit samples.
        reference, reference_sha256: reference model (None: no calibration).
        distance (str), settings (dict): inversion settings as ``InversionSettings.to_dict()``.
        n (int), seed (int): number of samples and the seed that drew them.
        values (list[float]): calibrated losses A'; ``losses``/``reference_losses`` the raw ones.
        mean (float), std (float): mean and sample standard deviation (ddof = 1) of ``values``.
        method_version (int), versions (dict), created (str), seconds (float).
        sample_steps (list[int] | None): optimiser steps each sample's inversion on M ran.
        sample_settled (list[bool] | None): whether each sample's inversion on M had settled
            (see ``InversionResult.settled``). Both are diagnostics, not part of the key.
        environment (dict | None): CPU, instruction set, threads, device it was built on
            (:func:`ronan.provenance.environment`).
        pictures (dict | None): None for the model's own samples (Algorithm 1); for a *contrast*
            distribution, the real pictures that were inverted instead
            (:meth:`ronan.contrast.PictureSet.key`: set name, count, SHA-256 of the files).
        model_side_from (dict | None): None when both models' inversions ran for this
            distribution; else the model's losses, steps and settled flags were taken from a cached
            distribution with the same model side (:func:`model_side_key`) and only the reference's
            inversions ran: the ``reference``, ``settings``, ``created`` and ``seconds`` of the
            distribution whose build inverted the model. Not part of the key.
        reference_learned_start (dict | None): the reference model's start settings when its card
            sets them (``settings`` holds the inspected model's); None: the defaults.
    """

    model: str
    model_sha256: str | None
    model_options: dict
    reference: str | None
    reference_sha256: str | None
    distance: str
    settings: dict
    n: int
    seed: int
    values: list[float]
    losses: list[float]
    reference_losses: list[float] | None
    mean: float
    std: float
    edit: dict | None = None
    method_version: int = METHOD_VERSION
    versions: dict = field(default_factory=dict)
    created: str = ""
    seconds: float = 0.0
    sample_steps: list[int] | None = None
    sample_settled: list[bool] | None = None
    environment: dict | None = None
    pictures: dict | None = None
    model_side_from: dict | None = None
    reference_learned_start: dict | None = None

    KEY_FIELDS = (
        "model",
        "model_sha256",
        "model_options",
        "reference",
        "reference_sha256",
        "distance",
        "settings",
        "n",
        "seed",
        "edit",
        "method_version",
        "pictures",
        "reference_learned_start",
    )
    OPTIONAL_KEY_FIELDS = ("edit", "pictures", "reference_learned_start")
    """Key fields present only when set, so that older keys stay what they were."""

    def key(self) -> dict:
        """The fields that identify this distribution (``edit`` and ``pictures`` only when set, so
        that the keys of pristine belonging distributions are those they had before either existed)."""
        return {
            k: getattr(self, k)
            for k in self.KEY_FIELDS
            if k not in self.OPTIONAL_KEY_FIELDS or getattr(self, k) is not None
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BelongingDistribution:
        """Build and validate; raises a one-line CalibrationError if fields are missing, of the
        wrong type or inconsistent (unknown fields are ignored: newer files stay readable)."""
        if not isinstance(d, dict):
            raise CalibrationError(f"calibration data must be a JSON object, not {type(d).__name__}")
        missing = [
            k
            for k, f in cls.__dataclass_fields__.items()
            if k not in d and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise CalibrationError(f"calibration data is incomplete (missing {', '.join(missing)})")
        dist = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        dist.validate()
        return dist

    def validate(self) -> None:
        """Check every field's type, the counts, finiteness, that ``values`` are Eq. 2 of ``losses`` and
        ``reference_losses`` (with the :data:`EPS` floor), and that mean/std match the values.

        Raises:
            CalibrationError: one line naming the first problem.
        """
        _check_types(self)
        who = f"calibration of {self.model}"
        n = self.n
        if n < 3:
            raise CalibrationError(f"{who}: n must be at least 3, got {n}")
        for name in ("values", "losses", "reference_losses", "sample_steps", "sample_settled"):
            seq = getattr(self, name)
            if seq is not None and len(seq) != n:
                raise CalibrationError(f"{who}: {len(seq)} {name} for n={n}")
        if (self.reference is None) != (self.reference_losses is None):
            raise CalibrationError(f"{who}: reference_losses must be given exactly when there is a reference")
        vals = np.asarray(self.values, dtype=np.float64)
        for name in ("values", "losses", "reference_losses"):
            arr = np.asarray(getattr(self, name) or [], dtype=np.float64)
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise CalibrationError(f"{who}: {name} must be finite and non-negative")
        expected = calibrate_losses(
            torch.tensor(self.losses, dtype=torch.float64),
            None if self.reference_losses is None else torch.tensor(self.reference_losses, dtype=torch.float64),
        ).numpy()
        if not np.allclose(vals, expected, rtol=1e-9, atol=0.0):
            raise CalibrationError(f"{who}: values do not equal losses / reference_losses (Eq. 2)")
        mean, std = float(vals.mean()), float(vals.std(ddof=1))
        if not (
            math.isclose(mean, self.mean, rel_tol=1e-6, abs_tol=1e-15)
            and math.isclose(std, self.std, rel_tol=1e-6, abs_tol=1e-15)
        ):
            raise CalibrationError(f"{who}: stored mean/std do not match its values")


_NUM = (int, float)
_FIELD_TYPES = {
    "model": (str,),
    "model_sha256": (str, None),
    "model_options": (dict,),
    "reference": (str, None),
    "reference_sha256": (str, None),
    "distance": (str,),
    "settings": (dict,),
    "n": (int,),
    "seed": (int,),
    "values": ([_NUM],),
    "losses": ([_NUM],),
    "reference_losses": ([_NUM], None),
    "mean": _NUM,
    "std": _NUM,
    "edit": (dict, None),
    "method_version": (int,),
    "versions": (dict,),
    "created": (str,),
    "seconds": _NUM,
    "sample_steps": ([(int,)], None),
    "sample_settled": ([(bool,)], None),
    "environment": (dict, None),
    "pictures": (dict, None),
    "reference_learned_start": (dict, None),
    "model_side_from": (dict, None),
}
"""Accepted types of each field: a type, None (null), or ``[types]`` (a list of those)."""


def _is(value, t) -> bool:
    """``isinstance`` where a bool is not a number (JSON ``true`` is no count)."""
    return isinstance(value, bool) if t is bool else isinstance(value, t) and not isinstance(value, bool)


def _type_ok(value, allowed) -> bool:
    for t in allowed:
        if t is None:
            if value is None:
                return True
        elif isinstance(t, list):
            if isinstance(value, list) and all(any(_is(v, e) for e in t[0]) for v in value):
                return True
        elif _is(value, t):
            return True
    return False


def _check_types(dist: BelongingDistribution) -> None:
    """One-line CalibrationError for the first field whose JSON type is wrong (e.g. ``n: "100"``)."""
    for name, allowed in _FIELD_TYPES.items():
        value = getattr(dist, name)
        if not _type_ok(value, allowed):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise CalibrationError(f"calibration field {name} has the wrong type ({type(value).__name__}: {shown})")


def check_reference(model: Generator, reference: Generator | None) -> None:
    """Refuse a model as its own reference (same name, or the same network: same weights hash,
    class and inversion options) — Eq. 2 would divide every loss by itself (a degenerate A' = 1)."""
    if reference is None:
        return
    same = reference.name == model.name or (
        model.weights_sha256 is not None
        and reference.weights_sha256 == model.weights_sha256
        and type(reference) is type(model)
        and reference.inversion_options() == model.inversion_options()
    )
    if same:
        raise CalibrationError(
            f"{model.name} cannot be its own reference model (Eq. 2 would divide each loss by "
            f"itself); choose another reference, or none"
        )


def distribution_key(
    model: Generator,
    reference: Generator | None,
    distance: str,
    settings: InversionSettings,
    n: int,
    seed: int,
    edit: dict | None = None,
    pictures: dict | None = None,
) -> dict:
    """Key of the distribution these arguments produce (see ``BelongingDistribution.key``);
    ``edit`` is :meth:`ronan.edits.policy.EditAssumption.key` (None: pristine samples), ``pictures``
    :meth:`ronan.contrast.PictureSet.key` (None: the model's own samples)."""
    return (
        {
            "model": model.name,
            "model_sha256": model.weights_sha256,
            "model_options": model.inversion_options(),
            "reference": reference.name if reference is not None else None,
            "reference_sha256": reference.weights_sha256 if reference is not None else None,
            "distance": distance,
            "settings": settings.to_dict(with_reference=reference is not None, generator=model),
            "n": n,
            "seed": seed,
            "method_version": METHOD_VERSION,
        }
        | ({"edit": edit} if edit is not None else {})
        | ({"pictures": pictures} if pictures is not None else {})
        | (
            {"reference_learned_start": settings_for(reference).to_dict()}
            if reference is not None and reference.start_settings and settings.learned_start
            else {}
        )
    )


def model_side_key(key: dict) -> dict:
    """The part of a distribution key that the model's losses ``A(M, x)`` depend on: all of it but
    the reference model and the reference's own settings (``reference_refine_steps``). Two
    distributions with the same model side invert the same images on M with the same settings and
    seed, so their ``losses`` are the same and only the reference side differs."""
    side = {k: v for k, v in key.items() if k not in ("reference", "reference_sha256", "reference_learned_start")}
    side["settings"] = {k: v for k, v in key["settings"].items() if k != "reference_refine_steps"}
    return side


def _request_key(model, reference, distance, settings, n, seed, edit, edit_mode, pictures) -> dict:
    """The key of the distribution a :func:`get_distribution` call asks for (``edit`` None: none)."""
    from .edits.policy import NONE

    edit = edit or NONE
    return distribution_key(model, reference, distance, settings, n, seed, edit.key(edit_mode), _key_of(pictures))


def reuses_model_side(
    model: Generator,
    reference: Generator | None,
    *,
    distance: str = "mse",
    settings: InversionSettings,
    n: int = 100,
    seed: int = 0,
    edit=None,
    edit_mode: str = "samples",
    pictures=None,
) -> bool:
    """Whether building this distribution now (:func:`get_distribution`, not ``rebuild``) would
    take the model's losses from a cached distribution (:func:`find_model_side`) and run only the
    reference's inversions: for progress bars that weigh the two sides. Arguments as for
    :func:`get_distribution`."""
    if reference is None:
        return False
    key = _request_key(model, reference, distance, settings, n, seed, edit, edit_mode, pictures)
    return find_model_side(key) is not None


def find_model_side(key: dict, folder: Path | None = None) -> BelongingDistribution | None:
    """A valid cached distribution whose model side (:func:`model_side_key`) is ``key``'s, or None.

    Only files of the same model's name are read; damaged ones are skipped (they are reported and
    set aside when their own key is asked for).
    """
    want = model_side_key(key)
    prefix = cache_path(key).name.split("__")[0] + "__"
    for d in [folder] if folder is not None else paths.cache_read_dirs():
        for path in sorted(Path(d).glob(prefix + "*.json")) if Path(d).is_dir() else []:
            try:
                dist = load_distribution(path)
            except CalibrationError:
                continue
            if model_side_key(dist.key()) == want and None not in (dist.sample_steps, dist.sample_settled):
                return dist
    return None


def cached_edits(model: str) -> list[str]:
    """Specs of the edits whose belonging distributions of ``model`` (a name) lie in the cache folders,
    whatever their other settings (sorted, each once; damaged files skipped). Which of them fit a
    request is for :func:`find_cache` to say."""
    prefix = cache_path({"model": model, "reference": None, "distance": "mse"}).name.split("__")[0] + "__"
    specs: set[str] = set()
    for d in paths.cache_read_dirs():
        for path in sorted(Path(d).glob(prefix + "*.json")) if Path(d).is_dir() else []:
            try:
                edit = json.loads(path.read_text()).get("edit")
            except (OSError, ValueError):
                continue
            if isinstance(edit, dict) and isinstance(edit.get("spec"), str):
                specs.add(edit["spec"])
    return sorted(specs)


def cache_path(key: dict, folder: Path | None = None) -> Path:
    """File of the distribution with ``key``: ``<model>__<reference>__<distance>__<hash>.json``.

    Names may come from user text (a registered model's name, a model card's path, the name of a
    wrapped module), so each part is checked: a name that is not a valid model name (a path, say) is
    replaced by its hash, and no name leaves the folder. The hash covers the whole key.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]

    def part(n) -> str:
        return n if is_safe_name(n) else "x-" + hashlib.sha256(str(n).encode()).hexdigest()[:16]

    ref = "none" if key["reference"] is None else part(key["reference"])
    edit = f"__{_edit_tag(key['edit']['spec'])}" if key.get("edit") else ""
    real = f"__real-{_tag(key['pictures']['set'])}" if key.get("pictures") else ""
    return (folder or cache_dir()) / f"{part(key['model'])}__{ref}__{part(key['distance'])}{edit}{real}__{digest}.json"


def find_cache(key: dict, folder: Path | None = None) -> Path:
    """The existing cache file of ``key`` (first in reading order), else where it would be written."""
    for d in [folder] if folder is not None else paths.cache_read_dirs():
        if cache_path(key, d).is_file():
            return cache_path(key, d)
    return cache_path(key, folder)


def _file_tag(text: str, other: str = "") -> str:
    """A file-name-safe form of ``text``: letters, digits, ``.`` and ``-`` kept, any other character
    replaced by ``other``, at most 48 characters."""
    return "".join(c if c.isalnum() or c in ".-" else other for c in str(text))[:48]


def _tag(text: str) -> str:
    """A picture set's name in a file name (``fmnist-test[100:200]`` -> ``fmnist-test-100-200``)."""
    return _file_tag(text, "-").strip("-.") or "set"


def _edit_tag(spec: str) -> str:
    """An edit spec in a file name (``resize:0.75+jpeg:75`` -> ``resize0.75-jpeg75``)."""
    return _file_tag(spec.replace("+", "-"))


def build_distribution(
    model: Generator,
    reference: Generator | None,
    *,
    distance: str = "mse",
    settings: InversionSettings,
    n: int = 100,
    seed: int = 0,
    chunk: int = 100,
    edit=None,
    edit_mode: str = "samples",
    pictures=None,
    model_side: BelongingDistribution | None = None,
    callback: Callable[[str, int, InversionProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BelongingDistribution:
    """Algorithm 1: generate ``n`` samples of ``model`` and compute their calibrated losses.

    With ``pictures`` (a :class:`ronan.contrast.PictureSet` of ``n`` real pictures), those
    pictures take the place of the samples: the result is the *contrast* distribution of
    :mod:`ronan.contrast` (the same edit, inversions and Eq. 2, on images the model did not make).

    Samples are quantized to 8 bits (:func:`ronan.generation.generate`): queries are always
    8-bit files, so the belonging distribution must include that rounding error too. With an
    ``edit``, each sample then passes through it exactly as the world would apply it (e.g. a
    Pillow JPEG re-save) before each model's own preprocessing — the same path a query took.

    Args:
        model (Generator): inspected model M.
        reference (Generator | None): reference model M_r; None disables calibration.
        distance (str): loss L (default ``"mse"``).
        settings (InversionSettings): exactly the settings queries will use.
        n (int): number of samples N, >= 3 (default 100, as in the paper).
        seed (int): seed of the samples (stream ``"calibration"``) and of the inversions.
        chunk (int): images per inversion batch (memory bound), default 100.
        edit (EditAssumption | None): edit the samples pass through (None: pristine).
        edit_mode (str): ``"samples"`` (default) or ``"through"``: the inversion on M also
            compares the edited reconstruction with the sample (see ``ronan.edits.policy``).
        pictures (PictureSet | None): real pictures to invert instead of samples (None: samples).
        model_side (BelongingDistribution | None): a distribution with the same model side
            (:func:`model_side_key`, e.g. from :func:`find_model_side`): its losses on M are taken
            and only the reference's inversions run. None (default): both run.
        callback (callable | None): ``callback(role, first_index, progress)`` with role
            ``"model"`` or ``"reference"``.
        should_stop (callable | None): polled every step; True raises :class:`Cancelled`
            (nothing is cached).
    """
    if n < 3:
        raise ValueError("the belonging distribution needs n >= 3 samples")
    check_reference(model, reference)
    from .edits.policy import NONE
    from .generation import generate

    edit = edit or NONE
    key = distribution_key(model, reference, distance, settings, n, seed, edit.key(edit_mode), _key_of(pictures))
    if model_side is not None and (
        model_side_key(model_side.key()) != model_side_key(key)
        or None in (model_side.sample_steps, model_side.sample_settled)
    ):
        raise ValueError("model_side: a distribution of another model, samples or settings, or without its steps")
    t0 = time.perf_counter()
    if pictures is not None and len(pictures) != n:
        raise ValueError(f"n={n} but the picture set {pictures.name} holds {len(pictures)} pictures")
    samples = (
        generate(model, n, seed, purpose="calibration", batch=chunk) if pictures is None else pictures.tensors(model)
    )
    transform = edit_transform(edit, edit_mode, model)
    losses: list[torch.Tensor] = []
    ref_losses: list[torch.Tensor] = []
    steps: list[int] = []
    settled: list[bool] = []
    if model_side is not None:
        losses.append(torch.tensor(model_side.losses, dtype=torch.float64))
        steps, settled = list(model_side.sample_steps), list(model_side.sample_settled)  # type: ignore[arg-type]
    for i in range(0, n, chunk):
        batch, ref_batch = _edited(samples[i : i + chunk], i, edit, seed, model, reference)
        jobs: list[tuple] = [("model", model, batch, {"transform": transform})] if model_side is None else []
        if reference is not None:
            jobs.append(("reference", reference, ref_batch, {"settings": settings.for_reference()}))
        for role, event in invert_jobs_stream(
            jobs, distance=distance, settings=settings, seed=seed, should_stop=should_stop
        ):
            if not isinstance(event, InversionResult):
                if callback is not None:
                    callback(role, i, event)
                continue
            if event.extra["stopped"]:
                raise Cancelled(f"calibration of {model.name} stopped before it finished")
            (losses if role == "model" else ref_losses).append(event.loss)
            if role == "model":
                assert event.image_steps is not None and event.settled is not None  # invert_stream sets both
                steps += event.image_steps.tolist()
                settled += event.settled.tolist()
    loss = torch.cat(losses).double()
    ref = torch.cat(ref_losses).double() if reference is not None else None
    values = calibrate_losses(loss, ref)
    from .provenance import environment, library_versions

    return BelongingDistribution(
        **key,
        values=values.tolist(),
        losses=loss.tolist(),
        reference_losses=ref.tolist() if ref is not None else None,
        mean=float(values.mean()),
        std=float(values.std(unbiased=True)),
        versions=library_versions(),
        environment=environment(model.device, (model, reference), settings.precision),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        seconds=round(time.perf_counter() - t0, 2),
        sample_steps=steps,
        sample_settled=settled,
        model_side_from=_provenance(model_side),
    )


def _provenance(model_side: BelongingDistribution | None) -> dict | None:
    """``model_side_from`` of a distribution built from ``model_side`` (None: built whole): the
    distribution whose build inverted the model (``model_side``'s own ``model_side_from`` when it
    took its model side from another one in turn)."""
    if model_side is None:
        return None
    if model_side.model_side_from is not None:
        return model_side.model_side_from
    return {k: getattr(model_side, k) for k in ("reference", "settings", "created", "seconds")}


def _key_of(pictures) -> dict | None:
    return None if pictures is None else pictures.key()


def edit_transform(edit, edit_mode: str, model: Generator):
    """The differentiable twin of ``edit`` for inversions on ``model`` in mode ``"through"``, else None."""
    from .edits.policy import EDIT_MODES

    if edit_mode not in EDIT_MODES:
        raise ValueError(f"edit mode must be one of {', '.join(EDIT_MODES)}, not {edit_mode!r}")
    if edit_mode != "through" or edit.edit is None or edit.is_none:
        return None
    size = model.image_size
    return lambda recon: edit.edit.differentiable(recon, size)


def _edited(
    batch: torch.Tensor, first: int, edit, seed: int, model: Generator, reference: Generator | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Samples ``first ...`` passed through their edit, in the model's and the reference's domains."""
    if edit.is_none:
        return batch, _to_domain(batch, reference) if reference is not None else None
    from .images import to_pil
    from .seeding import derive_seed

    base = derive_seed(seed, "calibration-edit") % (2**31)
    pils = [edit.edit.apply(to_pil(im), seed=base + first + k) for k, im in enumerate(batch)]
    x = torch.stack([model.preprocess(p) for p in pils])
    xr = torch.stack([reference.preprocess(p) for p in pils]) if reference is not None else None
    return x, xr


def _to_domain(images: torch.Tensor, target: Generator) -> torch.Tensor:
    """Images of one model resized/converted to another model's domain (same rules as uploads)."""
    from .images import to_pil

    if images.shape[1:] == (target.channels, target.image_size, target.image_size):
        return images
    return torch.stack([target.preprocess(to_pil(im)) for im in images])


def save_distribution(dist: BelongingDistribution, folder: Path | None = None) -> Path:
    """Write ``dist`` atomically (temp file + rename) to its cache path; returns the path.

    The file gets the permissions of any new file under the umask (0644 with the usual 022), and
    temporary files of writes killed more than :data:`TMP_MAX_AGE_S` ago are removed.
    """
    path = cache_path(dist.key(), folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(dist.to_dict(), f, indent=1)
            f.write("\n")
        paths.make_shareable(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temp_files(folder: Path, max_age_s: float = TMP_MAX_AGE_S) -> list[Path]:
    """Delete ``folder/.tmp-*.json`` older than ``max_age_s`` seconds (left by killed writes); returns them.

    A younger one may belong to a write in progress (another process) and is kept.
    """
    removed = []
    now = time.time()
    for tmp in Path(folder).glob(".tmp-*.json"):
        try:
            if now - tmp.stat().st_mtime > max_age_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to delete
            continue
    return removed


def load_distribution(path: Path, expected_key: dict | None = None) -> BelongingDistribution:
    """Read and validate a cached distribution; check its key when ``expected_key`` is given.

    Raises:
        CalibrationError: one line naming the file and its first problem.
    """
    name = Path(path).name
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CalibrationError(f"calibration file {name} is unreadable ({e})") from None
    try:
        dist = BelongingDistribution.from_dict(data)
    except CalibrationError as e:
        raise CalibrationError(f"calibration file {name}: {e}") from None
    if expected_key is not None and dist.key() != expected_key:
        raise CalibrationError(f"calibration file {name} was built with other settings")
    return dist


def _candidates(key: dict, folder: Path | None) -> list[Path]:
    """Existing cache files of ``key``, in reading order."""
    folders = [folder] if folder is not None else paths.cache_read_dirs()
    return [p for p in (cache_path(key, d) for d in folders) if p.is_file()]


def set_aside(path: Path, reason: str) -> Path | None:
    """Report a damaged cache file (a ``warning`` on the ``ronan`` logger naming it) and rename it
    ``<file>.damaged`` so that a rebuilt distribution never silently replaces it; returns the new
    path (None when the folder is read-only: the file stays, the rebuilt one goes to the write folder)."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    aside: Path | None = target
    try:
        os.replace(path, target)
    except OSError:
        aside = None
    kept = f"kept as {aside.name}" if aside is not None else "left in place (read-only folder)"
    log.warning("damaged: %s (in %s); %s", reason, path.parent, kept)
    return aside


def get_distribution(
    model: Generator,
    reference: Generator | None,
    *,
    distance: str = "mse",
    settings: InversionSettings,
    n: int = 100,
    seed: int = 0,
    folder: Path | None = None,
    build: bool = True,
    rebuild: bool = False,
    edit=None,
    edit_mode: str = "samples",
    pictures=None,
    callback: Callable[[str, int, InversionProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BelongingDistribution:
    """The cached distribution for these arguments, built (and cached) if missing or stale.

    The cache folders are read in order (:func:`ronan.paths.cache_read_dirs`) and the first valid
    file is used. A damaged file (unreadable, wrong types, values that are not Eq. 2 of its losses,
    other key) is reported — a ``warning`` on the ``ronan`` logger naming it, which the CLI prints
    — and set aside as ``<file>.damaged`` (:func:`set_aside`); the distribution is then rebuilt
    into a new file (with ``build=True``), never silently over the damaged one.

    Args:
        n (int): N, 3 .. ``RONAN_MAX_CALIBRATION_N`` (1000, :mod:`ronan.limits`).
        seed (int): in ``[0, 2**63)``.
        build (bool): build when there is no valid cache (default True); otherwise raise.
        rebuild (bool): ignore any cache and build anew (both models' inversions).
        Other arguments as for :func:`build_distribution`.

    A missing distribution whose model side is cached (:func:`find_model_side`: the same model,
    samples and settings with another reference model or other reference settings) is built by
    the reference's inversions alone, the model's losses taken from that file (recorded in
    ``model_side_from``).

    Raises:
        CalibrationError: no valid cache and ``build=False`` (the damage, when a file was damaged);
            the model is its own reference.
        LimitExceeded: ``n`` or ``seed`` out of bounds.
    """
    from .edits.policy import NONE

    limits.check_int("N (belonging samples)", n, 3, "max_calibration_n")
    limits.check_seed(seed, "calibration seed")
    check_reference(model, reference)
    edit = edit or NONE
    key = _request_key(model, reference, distance, settings, n, seed, edit, edit_mode, pictures)
    damage = None
    for path in _candidates(key, folder) if not rebuild else []:
        try:
            return load_distribution(path, key)
        except CalibrationError as e:
            damage = damage or e
            set_aside(path, str(e))
    if not build:
        if damage is not None:
            raise damage
        edited = "" if edit.is_none else f" and edit {edit.spec}"
        option = "" if edit.is_none else f" --assume-edit {edit.spec}"
        what = "belonging" if pictures is None else f"contrast ({pictures.name})"
        option += "" if pictures is None else " --contrast on"
        raise CalibrationError(
            f"no {what} distribution for {model.name} with these settings{edited}; run "
            f"`python -m ronan calibrate {model.name}{option}` with the same options"
        )
    chunk = limits.images_per_batch(limits.rows_per_image(settings, model))
    model_side = find_model_side(key, folder) if not rebuild else None
    dist = build_distribution(
        model,
        reference,
        distance=distance,
        settings=settings,
        n=n,
        seed=seed,
        edit=edit,
        edit_mode=edit_mode,
        pictures=pictures,
        chunk=chunk,
        model_side=model_side,
        callback=callback,
        should_stop=should_stop,
    )
    try:
        save_distribution(dist, folder)
    except OSError:  # read-only deployment: keep the in-memory result
        pass
    return dist
