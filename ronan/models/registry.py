"""The model catalogue: name -> family, card, availability and default reference.

Three sources, each name in one only:

* **bundled** models: every ``assets/models/<name>/card.json`` (see :mod:`ronan.models.cards`;
  the card carries description, reference and role, so adding a bundled model is adding a card
  folder), plus the entries of :data:`EXPECTED_BUNDLED`, listed as unavailable (with how to
  get them) while their card folder is missing and supplying the fields an older card lacks;
* **hub** models (:mod:`ronan.models.hub`, diffusers checkpoints in the Hugging Face cache);
* **user** models: the cards in the user models folder (``$RONAN_MODELS_DIR``, see
  :mod:`ronan.paths`; ``ronan register`` writes them). A user card whose name collides with a
  bundled or hub name is ignored (:func:`problems` says so).

Folders are re-read when their cards change, so a model registered while the app runs shows
up at the next page load. A model card given by path (``load_model(Path("card.json"))``, the
CLI's ``MODEL`` argument) is loaded without entering the catalogue; a name (a ``str``) is never
turned into a path. Loaded models are cached per process (one copy per name, device, options
and card version), frozen, in eval mode.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import paths
from ..errors import CardError, ModelUnavailable
from . import cards
from .hub import HUB_MODELS, hub_state, load_hub_model

if TYPE_CHECKING:
    import torch

    from .base import Generator


def __getattr__(name: str):
    """``FAMILIES`` on first use: listing models imports no torch (``ronan models`` starts fast)."""
    if name == "FAMILIES":
        from .families import FAMILIES

        return FAMILIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


REPO_ROOT = paths.data_root()
"""Folder holding ``assets/`` and ``calibration_cache/`` (a clone's root; kept for old imports)."""
DEFAULT_MODEL = "dcgan-fmnist"
__all__ = [
    "FAMILIES",  # noqa: F822 (provided by __getattr__, on first use)
    "CATALOGUE",
    "ModelSpec",
    "ModelInfo",
    "load_model",
    "list_models",
    "availability",
    "default_reference",
    "read_card",
    "weights_path",
    "model_card",
    "problems",
    "model_argument",
]


def assets_dir() -> Path:
    """Folder of the bundled models: ``$RONAN_ASSETS_DIR`` or ``<data root>/assets/models``."""
    return paths.bundled_models_dir()


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry.

    Attributes:
        name (str): registry name.
        family (str): key of ``FAMILIES`` (bundled), a hub family, or a user card's family label.
        description (str): one line for humans.
        reference (str | None): default reference model for calibration (never itself).
        data (str): what it was trained on.
        role (str): ``"generator"`` (a suspect model) or ``"reference"`` (meant as M_r only).
        source (str): ``"bundled"``, ``"hub"`` or ``"user"``.
        card (Path | None): the card file (bundled and user models), None if absent.
        problem (str | None): why the card cannot be used (invalid card), else None.
    """

    name: str
    family: str
    description: str
    reference: str | None
    data: str
    role: str = "generator"
    source: str = "bundled"
    card: Path | None = None
    problem: str | None = None


EXPECTED_BUNDLED: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        ModelSpec(
            "dcgan-fmnist",
            "dcgan",
            "DCGAN on Fashion-MNIST (seed 0), 28x28 grayscale",
            "ref-photos",
            "Fashion-MNIST train",
        ),
        ModelSpec(
            "dcgan-fmnist-seed1",
            "dcgan",
            "same recipe as dcgan-fmnist, training seed 1",
            "ref-photos",
            "Fashion-MNIST train",
        ),
        ModelSpec(
            "cgan-fmnist",
            "cgan",
            "class-conditional GAN on Fashion-MNIST (10 classes)",
            "ref-photos",
            "Fashion-MNIST train",
        ),
        ModelSpec(
            "vae-fmnist",
            "vae",
            "convolutional VAE on Fashion-MNIST (decoder = generator)",
            "ref-photos",
            "Fashion-MNIST train",
        ),
        ModelSpec(
            "ref-photos",
            "vae",
            "reference model: VAE on grayscale natural-photo crops",
            "vae-fmnist",
            "Debian wallpaper photos",
            role="reference",
        ),
        # 64x64 RGB colour tier (emoji + clip-art; ronan/train/gan64.py)
        ModelSpec(
            "dcgan64-clipart",
            "dcgan64",
            "DCGAN-64 on colour emoji and clip-art (seed 0), 64x64 RGB",
            "ref-photos64",
            "emoji + clip-art train split",
        ),
        ModelSpec(
            "dcgan64-clipart-seed1",
            "dcgan64",
            "same recipe as dcgan64-clipart, training seed 1",
            "ref-photos64",
            "emoji + clip-art train split",
        ),
        ModelSpec(
            "dcgan64-clipart-ft",
            "dcgan64",
            "dcgan64-clipart fine-tuned for a few hundred steps (a derivative)",
            "ref-photos64",
            "emoji + clip-art train split",
        ),
        ModelSpec(
            "upgan64-clipart",
            "upgan64",
            "upsample+conv GAN on colour emoji and clip-art, 64x64 RGB "
            "(trained after the inversion settings were fixed)",
            "ref-photos64",
            "emoji + clip-art train split",
        ),
        ModelSpec(
            "resgan64-clipart",
            "resgan64",
            "residual GAN on colour emoji and clip-art, 64x64 RGB (trained after the 'thorough' preset was fixed)",
            "ref-photos64",
            "emoji + clip-art train split",
        ),
        ModelSpec(
            "ref-photos64",
            "vae64",
            "reference model: VAE on 64x64 RGB natural-photo crops",
            "dcgan64-clipart",
            "Debian wallpaper photos",
            role="reference",
        ),
    ]
}
"""The bundled models this project trains: what their cards carry (a card's fields win). Listed as
unavailable, with how to get them, while their card folder is missing."""

_PROBLEMS: list[str] = []


def _data_text(data) -> str:
    if isinstance(data, dict):
        return str(data.get("dataset") or data.get("name") or "")
    return str(data or "")


def _spec_from_card(name: str, entry, source: str, fallback: ModelSpec | None = None) -> ModelSpec:
    """Catalogue entry of a scanned card (or of the error that makes it unusable)."""
    if isinstance(entry, CardError):
        base = fallback or ModelSpec(name, "?", "", None, "", source=source)
        return replace(base, source=source, problem=str(entry))
    raw = entry.raw
    fb = fallback or ModelSpec(name, entry.family, "", None, "")
    return ModelSpec(
        name,
        entry.family or fb.family,
        raw.get("description") or fb.description,
        entry.reference if "reference" in raw else fb.reference,
        _data_text(raw.get("data")) if fallback is None else fb.data,
        raw.get("role") or fb.role,
        source=source,
        card=entry.path,
    )


def catalogue() -> dict[str, ModelSpec]:
    """Every known model, re-read from disk when a card changed (bundled, then hub, then user)."""
    out: dict[str, ModelSpec] = {}
    bundled = cards.scan(assets_dir())
    for name, spec in EXPECTED_BUNDLED.items():
        out[name] = _spec_from_card(name, bundled[name], "bundled", spec) if name in bundled else spec
    for name, entry in bundled.items():
        out.setdefault(name, _spec_from_card(name, entry, "bundled"))
    for m in HUB_MODELS.values():
        out.setdefault(m.name, ModelSpec(m.name, m.family, m.description, m.reference, m.data, source="hub"))
    problems_now = []
    for name, entry in cards.scan(paths.user_models_dir()).items():
        if name in out:
            problems_now.append(
                f"user model {name!r} ({paths.user_models_dir() / name}) is ignored: the name "
                f"belongs to a {out[name].source} model"
            )
            continue
        out[name] = _spec_from_card(name, entry, "user")
    _PROBLEMS[:] = problems_now
    return out


def problems() -> list[str]:
    """Why user model folders were ignored at the last catalogue read (one line each)."""
    catalogue()
    return list(_PROBLEMS)


class _CatalogueView(Mapping):
    """``CATALOGUE``: a read-only mapping name -> :class:`ModelSpec` that always reflects the disk."""

    def __getitem__(self, name: str) -> ModelSpec:
        return catalogue()[name]

    def __iter__(self):
        return iter(catalogue())

    def __len__(self) -> int:
        return len(catalogue())

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in catalogue()


CATALOGUE: Mapping[str, ModelSpec] = _CatalogueView()


def is_hub(name: str) -> bool:
    """True for hub (diffusers) catalogue models, False for the others."""
    return name in HUB_MODELS


@dataclass
class ModelInfo:
    """What ``python -m ronan models --json`` prints for one model.

    ``source`` is ``"bundled"``, ``"hub"`` or ``"user"``; ``state`` is ``"bundled"`` (or
    ``"unavailable"``) for bundled models, ``"ready"`` (or ``"unavailable"``) for user models,
    and ``"cached"``, ``"downloadable"`` or ``"unavailable"`` for hub models and user diffusers
    models. ``card`` is the card file of bundled and user models; ``preset`` the inversion preset
    its card names (None: ``"fast"``).
    """

    name: str
    family: str
    resolution: int | None
    channels: int | None
    available: bool
    reason: str | None
    reference: str | None
    description: str
    role: str = "generator"
    source: str = "bundled"
    state: str | None = None
    card: str | None = None
    preset: str | None = None


def get_spec(name: str) -> ModelSpec:
    """Catalogue entry of ``name``; raises ModelUnavailable naming the known models."""
    cat = catalogue()
    if not isinstance(name, str) or name not in cat:
        hint = ""
        if isinstance(name, str) and (name.endswith(".json") or "/" in name or os.sep in name):
            hint = " (a model card is given by path on the command line, or as a pathlib.Path in Python)"
        raise ModelUnavailable(f"unknown model {str(name)[:80]!r}{hint}; known models: {', '.join(cat)}")
    return cat[name]


def model_card(name: str) -> cards.ModelCard:
    """The validated card of bundled or user model ``name`` (raises ModelUnavailable / CardError)."""
    return _card_of(get_spec(name))


def _card_of(spec: ModelSpec) -> cards.ModelCard:
    """:func:`model_card` of a catalogue entry (one reading of the catalogue serves a whole listing)."""
    name = spec.name
    if spec.source == "hub":
        raise ModelUnavailable(f"{name} is a hub model: it has no model card")
    if spec.problem:
        raise CardError(spec.problem)
    if spec.card is None:
        raise ModelUnavailable(
            f"{name}: model card {assets_dir() / name / cards.CARD_FILE} is missing; "
            "retrain it (see README, 'Retraining the zoo')"
        )
    return cards.read_card_file(spec.card)


def read_card(name: str) -> dict:
    """The model card of bundled or user model ``name`` as its JSON object (raises ModelUnavailable)."""
    return model_card(name).raw


def weights_path(name: str) -> tuple[Path, str]:
    """Path of the verified weights of ``name`` and their SHA-256 (raises ModelUnavailable)."""
    from .loader import verified_weights

    return verified_weights(model_card(name))


def _card_availability(card: cards.ModelCard) -> tuple[str, str | None]:
    """``(state, reason)`` of a card-backed model without building it (no user code runs)."""
    if card.kind == "diffusers":
        from .hub import state_of
        from .loader import hub_entry

        return state_of(hub_entry(card))
    if card.weights_file is not None:
        from .loader import verified_weights

        try:
            verified_weights(card)
        except ModelUnavailable as e:
            return "unavailable", str(e)
    return "ready", None


def _state(name: str, spec: ModelSpec | None = None) -> tuple[str, str | None]:
    """``(state, reason)`` of ``name``; ``spec``: its catalogue entry, when the caller has read the catalogue."""
    spec = spec or get_spec(name)
    if spec.source == "hub":
        return hub_state(name)
    try:
        state, reason = _card_availability(_card_of(spec))
    except ModelUnavailable as e:
        return "unavailable", str(e)
    if state == "ready" and spec.source == "bundled":
        state = "bundled"
    return state, reason


def availability(name: str) -> tuple[bool, str | None]:
    """``(True, None)`` if ``name`` can be loaded here, else ``(False, reason)``."""
    state, reason = _state(name)
    return state in ("bundled", "ready", "cached"), reason


def list_models() -> list[ModelInfo]:
    """Every catalogue entry with its availability (hub models: cached / downloadable /
    unavailable, with the reason and how to get them; user models: ready or unavailable)."""
    out = []
    for spec in catalogue().values():
        state, reason = _state(spec.name, spec)
        ok = state in ("bundled", "ready", "cached")
        preset: str | None = None
        if spec.source == "hub":
            m = HUB_MODELS[spec.name]
            res, ch = m.resolution, m.channels  # type: int | None, int | None
        else:
            raw: dict = {}
            if spec.card is not None and not spec.problem:
                card = cards.read_card_file(spec.card)
                raw, preset = card.raw, card.preset
            res, ch = raw.get("resolution"), raw.get("channels")
            if spec.source == "bundled" and not raw:
                res, ch = None, None
        out.append(
            ModelInfo(
                spec.name,
                spec.family,
                res,
                ch,
                ok,
                reason,
                spec.reference,
                spec.description,
                spec.role,
                source=spec.source,
                state=state,
                card=str(spec.card) if spec.card is not None else None,
                preset=preset,
            )
        )
    return out


def default_reference(model: str | Generator) -> str | None:
    """Default reference model of ``model`` for calibration (Eq. 2), or None (no calibration).

    A loaded :class:`Generator` answers with its ``default_reference`` (set from its card or by
    :func:`~ronan.models.wrap.wrap_generator`), else with the catalogue's entry of its name,
    else None — a model outside the catalogue is never an error here.
    """
    if not isinstance(model, (str, os.PathLike)):
        if model.default_reference is not None:
            return model.default_reference
        spec = catalogue().get(model.name) if isinstance(model.name, str) else None
        return spec.reference if spec is not None else None
    return get_spec(model).reference


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; None or ``"auto"`` picks CUDA, then MPS, then CPU.

    Raises:
        DeviceUnavailable: an unknown device, or one this machine does not have (one line).
    """
    import torch

    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    from ..errors import DeviceUnavailable

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceUnavailable(f"unknown device {str(device)!r}; use cpu, cuda, mps or auto") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise DeviceUnavailable(
            f"device {device} is not available here (no CUDA GPU with a working driver); use cpu or auto"
        )
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise DeviceUnavailable(f"device {device} is not available here (no Apple MPS); use cpu or auto")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"device {device} is not supported; use cpu, cuda, mps or auto")
    return dev


def model_argument(text: str) -> str | Path:
    """A command-line MODEL argument: a catalogue name stays a name; otherwise a card path
    (``*.json``, or an existing folder holding a ``card.json``) becomes a :class:`Path`.

    Only the CLI calls this: in the app a model is always a catalogue name.
    """
    if text in catalogue():
        return text
    p = Path(text).expanduser()
    if text.endswith(".json") or (p / cards.CARD_FILE).is_file():
        return p
    return text


_LOCK = threading.Lock()
_LOADED: dict[tuple, Generator] = {}


def load_card(path: str | os.PathLike, device: str | torch.device | None = "cpu", **options) -> Generator:
    """Load the model a card file (or a folder holding ``card.json``) describes, on ``device``.

    The card's name must not be a bundled or hub model's. Raises ModelUnavailable / CardError.
    """
    card = cards.read_card_file(path)
    spec = catalogue().get(card.name)
    if spec is not None and spec.source != "user":
        raise CardError(f"{card.path}: name: {card.name!r} is a {spec.source} model's name; choose another")
    return _load(card, resolve_device(device), options)


def _load(card: cards.ModelCard, device: torch.device, options: dict) -> Generator:
    from . import loader

    key = ("card", card.name, str(device), tuple(sorted(options.items())), cards.card_stamp(card))
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = loader.build(card, device, **options)
        return _LOADED[key]


def load_model(name: str | os.PathLike, device: str | torch.device | None = "cpu", **options) -> Generator:
    """Load (once per process) the frozen model ``name`` on ``device``.

    Args:
        name (str | os.PathLike): catalogue name (see ``CATALOGUE``), or the path of a model card
            (a ``pathlib.Path``; a ``str`` is always a name).
        device (str | torch.device | None): ``"cpu"``, ``"cuda"``, ``"mps"``, or None/``"auto"``
            for the best present (see :func:`resolve_device`); default CPU.
        **options: family options, e.g. ``class_search="relaxed"`` for ``cgan-fmnist``.

    Raises:
        ModelUnavailable: unknown name, missing or mismatching weights (CardError: an invalid card).
    """
    import torch

    if isinstance(name, os.PathLike):
        return load_card(name, device, **options)
    if isinstance(name, torch.nn.Module):
        raise ModelUnavailable(
            f"a plain torch.nn.Module ({type(name).__name__}) needs its input shape and output "
            "range: wrap it with ronan.wrap_generator(module, input_shape=(...), "
            "output_range=(-1, 1))"
        )
    device = resolve_device(device)
    spec = get_spec(name)
    if spec.source == "hub":
        key = (name, str(device), tuple(sorted(options.items())))
        with _LOCK:
            if key not in _LOADED:
                _LOADED[key] = load_hub_model(name, device, **options)
            return _LOADED[key]
    gen = _load(model_card(name), device, options)
    gen.default_reference = spec.reference  # the card's, else what the catalogue expects
    return gen


def info_dict(info: ModelInfo) -> dict:
    """``ModelInfo`` as a JSON-serialisable dict."""
    return asdict(info)
