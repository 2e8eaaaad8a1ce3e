"""Belonging distribution (paper Algorithm 1): calibrated losses of the model's own samples.

N inputs are drawn from the model with a seed; the images they make, quantized to 8 bits as
any saved image is, are inverted on the model and on the reference model with exactly the settings used for queries, and the
calibrated losses ``A'(M, x) = A(M, x) / A(M_r, x)`` (Eq. 2) are kept with their mean and
sample standard deviation. Distributions are cached as JSON (:func:`ronan.paths.cache_read_dirs`),
written atomically, validated on load, and keyed by everything that changes them (model
and weights hash, reference and weights hash, distance, inversion settings, N, seed and
the method version), so a change of any of those builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import paths
from .errors import CalibrationError, Cancelled
from .inversion import InversionProgress, InversionResult, InversionSettings, invert_jobs_stream
from .models.base import Generator
from .models.cards import is_safe_name

METHOD_VERSION = 1
"""Bump when a change of the engine changes losses: every cache is then rebuilt."""
EPS = 1e-12
"""Floor of the reference loss in Eq. 2 (a perfect reference reconstruction)."""


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

    KEY_FIELDS = ("model", "model_sha256", "model_options", "reference", "reference_sha256", "distance", "settings", "n", "seed",
                  "edit", "method_version")

    def key(self) -> dict:
        """The fields that identify this distribution (``edit`` only when there is one, so that the
        keys of pristine distributions are those they had before edits existed)."""
        return {k: getattr(self, k) for k in self.KEY_FIELDS if k != "edit" or self.edit is not None}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BelongingDistribution":
        """Build and validate; raises CalibrationError if fields are missing or inconsistent."""
        try:
            dist = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except TypeError as e:
            raise CalibrationError(f"calibration data is incomplete ({e})") from None
        dist.validate()
        return dist

    def validate(self) -> None:
        """Check counts, finiteness, and that mean/std match the values."""
        vals = np.asarray(self.values, dtype=np.float64)
        if self.n < 3 or vals.shape != (self.n,):
            raise CalibrationError(f"calibration of {self.model}: expected {self.n} values (>= 3), got {vals.size}")
        if not np.all(np.isfinite(vals)) or np.any(vals < 0):
            raise CalibrationError(f"calibration of {self.model}: values must be finite and non-negative")
        if len(self.losses) != self.n:
            raise CalibrationError(f"calibration of {self.model}: {len(self.losses)} raw losses for n={self.n}")
        mean, std = float(vals.mean()), float(vals.std(ddof=1))
        if not (math.isclose(mean, self.mean, rel_tol=1e-6, abs_tol=1e-15)
                and math.isclose(std, self.std, rel_tol=1e-6, abs_tol=1e-15)):
            raise CalibrationError(f"calibration of {self.model}: stored mean/std do not match its values")


def distribution_key(model: Generator, reference: Generator | None, distance: str, settings: InversionSettings,
                     n: int, seed: int, edit: dict | None = None) -> dict:
    """Key of the distribution these arguments produce (see ``BelongingDistribution.key``);
    ``edit`` is :meth:`ronan.edits.policy.EditAssumption.key` (None: pristine samples)."""
    return {"model": model.name, "model_sha256": model.weights_sha256, "model_options": model.inversion_options(),
            "reference": reference.name if reference is not None else None,
            "reference_sha256": reference.weights_sha256 if reference is not None else None,
            "distance": distance, "settings": settings.to_dict(), "n": n, "seed": seed,
            "method_version": METHOD_VERSION} | ({"edit": edit} if edit is not None else {})


def cache_path(key: dict, folder: Path | None = None) -> Path:
    """File of the distribution with ``key``: ``<model>__<reference>__<distance>__<hash>.json``.

    Names come from the registry, never from user text; the hash covers the whole key. A name
    that is not a valid model name (a path, say) is replaced by its hash: no name leaves the folder.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    def part(n) -> str:
        return n if is_safe_name(n) else "x-" + hashlib.sha256(str(n).encode()).hexdigest()[:16]

    ref = "none" if key["reference"] is None else part(key["reference"])
    edit = f"__{_edit_tag(key['edit']['spec'])}" if key.get("edit") else ""
    return (folder or cache_dir()) / f"{part(key['model'])}__{ref}__{part(key['distance'])}{edit}__{digest}.json"


def find_cache(key: dict, folder: Path | None = None) -> Path:
    """The existing cache file of ``key`` (first in reading order), else where it would be written."""
    for d in [folder] if folder is not None else paths.cache_read_dirs():
        if cache_path(key, d).is_file():
            return cache_path(key, d)
    return cache_path(key, folder)


def _edit_tag(spec: str) -> str:
    """A file-name-safe form of an edit spec (``resize:0.75+jpeg:75`` -> ``resize0.75-jpeg75``)."""
    return "".join(c for c in spec.replace("+", "-") if c.isalnum() or c in ".-")[:48]


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
    callback: Callable[[str, int, InversionProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BelongingDistribution:
    """Algorithm 1: generate ``n`` samples of ``model`` and compute their calibrated losses.

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
        callback (callable | None): ``callback(role, first_index, progress)`` with role
            ``"model"`` or ``"reference"``.
        should_stop (callable | None): polled every step; True raises :class:`Cancelled`
            (nothing is cached).
    """
    if n < 3:
        raise ValueError("the belonging distribution needs n >= 3 samples")
    from .generation import generate

    from .edits.policy import NONE

    edit = edit or NONE
    t0 = time.perf_counter()
    samples = generate(model, n, seed, purpose="calibration", batch=chunk)
    transform = edit_transform(edit, edit_mode, model)
    losses, ref_losses, steps, settled = [], [], [], []
    for i in range(0, n, chunk):
        batch, ref_batch = _edited(samples[i:i + chunk], i, edit, seed, model, reference)
        jobs = [("model", model, batch, {"transform": transform})]
        if reference is not None:
            jobs.append(("reference", reference, ref_batch))
        for role, event in invert_jobs_stream(jobs, distance=distance, settings=settings, seed=seed,
                                              should_stop=should_stop):
            if not isinstance(event, InversionResult):
                if callback is not None:
                    callback(role, i, event)
                continue
            if event.extra["stopped"]:
                raise Cancelled(f"calibration of {model.name} stopped before it finished")
            (losses if role == "model" else ref_losses).append(event.loss)
            if role == "model":
                steps += event.image_steps.tolist()
                settled += event.settled.tolist()
    loss = torch.cat(losses).double()
    ref = torch.cat(ref_losses).double() if reference is not None else None
    values = calibrate_losses(loss, ref)
    from .provenance import library_versions

    key = distribution_key(model, reference, distance, settings, n, seed, edit.key(edit_mode))
    return BelongingDistribution(
        **key, values=values.tolist(), losses=loss.tolist(),
        reference_losses=ref.tolist() if ref is not None else None,
        mean=float(values.mean()), std=float(values.std(unbiased=True)),
        versions=library_versions(), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        seconds=round(time.perf_counter() - t0, 2), sample_steps=steps, sample_settled=settled)


def edit_transform(edit, edit_mode: str, model: Generator):
    """The differentiable twin of ``edit`` for inversions on ``model`` in mode ``"through"``, else None."""
    from .edits.policy import EDIT_MODES

    if edit_mode not in EDIT_MODES:
        raise ValueError(f"edit mode must be one of {', '.join(EDIT_MODES)}, not {edit_mode!r}")
    if edit_mode != "through" or edit.edit is None or edit.is_none:
        return None
    size = model.image_size
    return lambda recon: edit.edit.differentiable(recon, size)


def _edited(batch: torch.Tensor, first: int, edit, seed: int, model: Generator,
            reference: Generator | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Samples ``first ...`` passed through their edit, in the model's and the reference's domains."""
    if edit.is_none:
        return batch, _to_domain(batch, reference) if reference is not None else None
    from .images import to_pil
    from .seeding import derive_seed

    base = derive_seed(seed, "calibration-edit") % (2**31)
    pils = [edit.sample_edit(first + k).apply(to_pil(im), seed=base + first + k) for k, im in enumerate(batch)]
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
    """Write ``dist`` atomically (temp file + rename) to its cache path; returns the path."""
    path = cache_path(dist.key(), folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(dist.to_dict(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_distribution(path: Path, expected_key: dict | None = None) -> BelongingDistribution:
    """Read and validate a cached distribution; check its key when ``expected_key`` is given."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise CalibrationError(f"calibration file {Path(path).name} is unreadable ({e})") from None
    dist = BelongingDistribution.from_dict(data)
    if expected_key is not None and dist.key() != expected_key:
        raise CalibrationError(f"calibration file {Path(path).name} was built with other settings")
    return dist


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
    callback: Callable[[str, int, InversionProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BelongingDistribution:
    """The cached distribution for these arguments, built (and cached) if missing or stale.

    Args:
        build (bool): build when there is no valid cache (default True); otherwise raise.
        rebuild (bool): ignore any cache and build anew.
        Other arguments as for :func:`build_distribution`.

    Raises:
        CalibrationError: no valid cache and ``build=False``.
    """
    from .edits.policy import NONE

    edit = edit or NONE
    key = distribution_key(model, reference, distance, settings, n, seed, edit.key(edit_mode))
    path = find_cache(key, folder)
    if path.exists() and not rebuild:
        try:
            return load_distribution(path, key)
        except CalibrationError:
            if not build:
                raise
    if not build:
        raise CalibrationError(f"no belonging distribution for {model.name} with these settings; run "
                               f"`python -m ronan calibrate {model.name}`")
    dist = build_distribution(model, reference, distance=distance, settings=settings, n=n, seed=seed, edit=edit,
                              edit_mode=edit_mode, callback=callback, should_stop=should_stop)
    try:
        save_distribution(dist, folder)
    except OSError:  # read-only deployment: keep the in-memory result
        pass
    return dist
