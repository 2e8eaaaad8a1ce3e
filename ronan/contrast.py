"""The contrast check: a belonging verdict must also set the image apart from real pictures.

Grubbs' test asks one question: does the query reconstruct as well as the model's own samples?
Under an edit the answer can be "yes" for images the model never made: JPEG at low quality or
halving and re-enlarging removes the fine detail that separates a model's images from real ones,
and real pictures then reconstruct as well as the (edited) belonging samples (measured on the
64x64 tier: a third of the JPEG q50 real pictures passed the test; benchmarks/RESULTS.md).

So a second question is asked, of real pictures that went through **the same edit**: a *contrast
distribution* — held-out real pictures of the model's tier, edited, inverted on M and M_r with
the query's settings and calibrated (Eq. 2) exactly like the belonging samples (built on first
use, cached like them: :func:`ronan.calibration.get_distribution` with ``pictures``). The query's
conformal p-value among them,

    p = (1 + #{real pictures with A' <= A'(query)}) / (n + 1),

is the chance that a real picture under this edit reconstructs at least as well as the query.
A query that Grubbs' test finds belonging but with ``p > contrast_alpha`` is *inconclusive*: the
evidence fits the model's images and real pictures alike. With ``p <= contrast_alpha`` the
belonging verdict stands, and it says so. Non-belonging verdicts are never changed. Only the
robust test applies it (the paper's test stays exactly the paper's).

The level ``contrast_alpha`` (:class:`ronan.verdict.DecisionSettings`, default **0.01**) is
stricter than Grubbs' alpha: a conformal p-value bounds the false-positive rate only on average
over contrast sets, and at 0.05 the first measurement (64x64 tier, JPEG and halving, held-out real
pictures) still let 6-8% of real pictures through; at 0.01 — with 100 pictures: below every one —
it let 0-2% through (benchmarks/RESULTS.md, "The contrast check"). That first measurement is
where 0.01 was chosen; the rows reported as validation are the others (real *training* pictures,
the 28x28 tier, other models).

Which pictures: for the bundled models, the held-out (never trained on) real pictures of the
tier (``assets/samples/fmnist-test`` or ``clipart-test``), from file :data:`FIRST_FILE` on — the
files before it are left to the benchmarks, so that no picture is both a benchmark query and
part of the contrast set. Other models have no contrast set unless the caller gives one
(``PictureSet.from_files``).

When (``contrast``): ``"auto"`` (default) — for edited queries (an edit detected, declared or the
robust family), where the measurements show the need; ``"on"`` — for every query, pristine too;
``"off"`` — never (the behaviour before this check).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

CONTRAST_CHOICES = ("auto", "on", "off")
FIRST_FILE = 100
"""Files of a tier's held-out folder (sorted by name) before this index are benchmark queries
(``benchmarks/tier_tables.py --others real-test``, n <= 100); the contrast set starts here."""
MAX_PICTURES = 100
"""Pictures of a bundled contrast set (N of the paper's belonging distribution)."""


@dataclass(frozen=True)
class PictureSet:
    """Real pictures for a contrast distribution.

    Attributes:
        name (str): a short name (``"clipart-test[100:200]"``), shown in results.
        files (tuple[Path, ...]): the picture files, in order.
        sha256 (str): SHA-256 over the files' SHA-256 digests, in order (the cache key).
    """

    name: str
    files: tuple[Path, ...]
    sha256: str

    @classmethod
    def from_files(cls, name: str, files) -> PictureSet:
        """A set of picture files (PNG or any format Pillow reads); at least 3. Each file is hashed
        once per process and version (:func:`ronan.digests.file_sha256`)."""
        from .digests import file_sha256

        files = tuple(Path(f) for f in files)
        if len(files) < 3:
            raise ValueError(f"a contrast set needs at least 3 pictures, {name} has {len(files)}")
        digest = hashlib.sha256()
        for f in files:
            digest.update(bytes.fromhex(file_sha256(f)))
        return cls(name, files, digest.hexdigest())

    def __len__(self) -> int:
        return len(self.files)

    def key(self) -> dict:
        """The part of a distribution's key: set name, count and SHA-256."""
        return {"set": self.name, "n": len(self.files), "sha256": self.sha256}

    def tensors(self, model) -> torch.Tensor:
        """The pictures in ``model``'s domain (its own preprocessing, as uploads get)."""
        from .images import load_image

        return torch.stack([model.preprocess(load_image(f).image) for f in self.files])


def folder_set(folder, limit: int = MAX_PICTURES) -> PictureSet:
    """The contrast set of a folder of real pictures (CLI ``--contrast-pictures DIR``): its image
    files (any format Pillow reads, sorted by name, the first ``limit``), named after the folder.
    Use pictures the model was never trained on, never the images under test.

    Raises:
        ValueError: fewer than 3 image files.
    """
    from .images import IMAGE_SUFFIXES

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    return PictureSet.from_files(folder.name or "pictures", files)


def bundled_set(model) -> PictureSet | None:
    """The contrast set of a bundled generator: held-out real pictures of its tier, files
    ``FIRST_FILE .. FIRST_FILE + MAX_PICTURES``; None for other models or when the folder is missing."""
    from .gallery import samples_folder
    from .models.registry import catalogue

    spec = catalogue().get(model.name)
    if spec is None or spec.source != "bundled":
        return None
    folder = samples_folder(model.image_size, model.channels)
    if folder is None or not folder.name.endswith("-test"):
        return None
    files = sorted(folder.glob("*.png"))[FIRST_FILE : FIRST_FILE + MAX_PICTURES]
    if len(files) < 3:
        return None
    return PictureSet.from_files(f"{folder.name}[{FIRST_FILE}:{FIRST_FILE + len(files)}]", files)


def validate_contrast(choice: str) -> str:
    """``choice`` if it is one of :data:`CONTRAST_CHOICES`, else ValueError."""
    if choice not in CONTRAST_CHOICES:
        raise ValueError(f"contrast must be one of {', '.join(CONTRAST_CHOICES)}, not {choice!r}")
    return choice


def applies(choice: str, assumption, test_mode: str) -> bool:
    """Whether the check runs for a query with edit ``assumption`` under test mode ``test_mode``."""
    if choice == "off" or test_mode != "robust":
        return False
    return choice == "on" or not assumption.is_none


@dataclass(frozen=True)
class ContrastCheck:
    """Where a query's calibrated loss falls among the contrast set's.

    Attributes:
        set (str): the picture set's name.
        n (int): pictures in it.
        at_or_below (int): pictures whose calibrated loss A' is <= the query's.
        p_value (float): ``(1 + at_or_below) / (n + 1)``, in (0, 1].
        alpha (float): the level it is compared with (``DecisionSettings.contrast_alpha``).
        file (str): the contrast distribution's cache file name.
        missing (str): why the check could not run although it applies (its distribution is not
            built and building was not allowed); then ``n`` is 0 and the query is not ``apart``.
    """

    set: str
    n: int
    at_or_below: int
    p_value: float
    alpha: float
    file: str = ""
    missing: str = ""

    @property
    def apart(self) -> bool:
        """True when the query is set apart from the real pictures (``p_value <= alpha``)."""
        return not self.missing and self.p_value <= self.alpha

    def reason(self, edit: str) -> str:
        """The one-line reason of an inconclusive verdict (when not ``apart``)."""
        if self.missing:
            return self.missing
        under = "" if edit == "none" else f" passed through the same edit ({edit})"
        return (
            f"{self.at_or_below} of {self.n} held-out real pictures ({self.set}){under} reconstruct at least "
            f"as well as this image (p = {self.p_value:.2f} > the contrast level {self.alpha:g}): at this loss the "
            f"model's images and real pictures look alike, so passing Grubbs' test does not show the model made it"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def not_built(name: str, edit: str, alpha: float) -> ContrastCheck:
    """The check of a query whose contrast distribution is missing and may not be built here."""
    return ContrastCheck(
        name,
        0,
        0,
        1.0,
        alpha,
        missing=(
            f"the image passes Grubbs' test, but the contrast check (held-out real pictures {name} through the same "
            f"edit, {edit}) is not built here, so it cannot be shown that real pictures under this edit do not "
            f"reconstruct as well; build it with `python -m ronan calibrate MODEL --assume-edit {edit} --contrast on`"
        ),
    )


def recorded_values(recorded: dict | None) -> list[float] | None:
    """The calibrated losses of the contrast distribution a result was checked against (its
    ``contrast`` dict names the cache file), read from the cache folders; None when there was no
    check or the file is gone. Only a plain file name this package wrote is looked up."""
    from .calibration import load_distribution
    from .errors import CalibrationError
    from .paths import cache_read_dirs

    name = (recorded or {}).get("file") or ""
    if not name or Path(name).name != name or not name.endswith(".json") or "__real-" not in name:
        return None
    for folder in cache_read_dirs():
        path = Path(folder) / name
        if path.is_file():
            try:
                return list(load_distribution(path).values)
            except CalibrationError:
                return None
    return None


def check(value: float, contrast_values, alpha: float, *, name: str, file: str = "") -> ContrastCheck:
    """The :class:`ContrastCheck` of calibrated loss ``value`` against ``contrast_values`` (a NaN
    value counts every picture as at or below it)."""
    c = np.asarray(contrast_values, dtype=np.float64)
    below = int(c.size) if np.isnan(value) else int(np.sum(c <= value))
    return ContrastCheck(name, int(c.size), below, (1 + below) / (c.size + 1), alpha, file)
