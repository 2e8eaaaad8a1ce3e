"""The model catalogue: name -> family, weights, availability and default reference.

Bundled models live in ``assets/models/<name>/`` as ``model.safetensors`` plus a JSON model
card (``card.json``); the card's ``config`` builds the architecture and its
``weights_sha256`` must match the file. Loaded models are cached per process (one copy per
name, device and options), frozen, in eval mode.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..errors import ModelUnavailable
from ..images import sha256_file
from .base import Generator
from .cgan import ConditionalGAN
from .dcgan import DCGAN
from .gan64 import DCGAN64, ResGAN64, UpsampleGAN64, VAE64
from .hub import HUB_MODELS, hub_state, load_hub_model
from .vae import VAE

REPO_ROOT = Path(__file__).resolve().parents[2]
FAMILIES: dict[str, type[Generator]] = {"dcgan": DCGAN, "cgan": ConditionalGAN, "vae": VAE, "dcgan64": DCGAN64,
                                        "upgan64": UpsampleGAN64, "resgan64": ResGAN64, "vae64": VAE64}
DEFAULT_MODEL = "dcgan-fmnist"


def assets_dir() -> Path:
    """Folder of the bundled weights: ``$RONAN_ASSETS_DIR`` or ``<repo>/assets/models``."""
    return Path(os.environ.get("RONAN_ASSETS_DIR", REPO_ROOT / "assets" / "models"))


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry.

    Attributes:
        name (str): registry name.
        family (str): key of ``FAMILIES`` (bundled), or a hub family (see ``hub.HUB_MODELS``).
        description (str): one line for humans.
        reference (str | None): default reference model for calibration (never itself).
        data (str): what it was trained on.
        role (str): ``"generator"`` (a suspect model) or ``"reference"`` (meant as M_r only).
    """

    name: str
    family: str
    description: str
    reference: str | None
    data: str
    role: str = "generator"


CATALOGUE: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("dcgan-fmnist", "dcgan", "DCGAN on Fashion-MNIST (seed 0), 28x28 grayscale", "ref-photos", "Fashion-MNIST train"),
    ModelSpec("dcgan-fmnist-seed1", "dcgan", "same recipe as dcgan-fmnist, training seed 1", "ref-photos", "Fashion-MNIST train"),
    ModelSpec("cgan-fmnist", "cgan", "class-conditional GAN on Fashion-MNIST (10 classes)", "ref-photos", "Fashion-MNIST train"),
    ModelSpec("vae-fmnist", "vae", "convolutional VAE on Fashion-MNIST (decoder = generator)", "ref-photos", "Fashion-MNIST train"),
    ModelSpec("ref-photos", "vae", "reference model: VAE on grayscale natural-photo crops", "vae-fmnist", "Debian wallpaper photos",
              role="reference"),
    # 64x64 RGB colour tier (emoji + clip-art; ronan/train/gan64.py)
    ModelSpec("dcgan64-clipart", "dcgan64", "DCGAN-64 on colour emoji and clip-art (seed 0), 64x64 RGB", "ref-photos64",
              "emoji + clip-art train split"),
    ModelSpec("dcgan64-clipart-seed1", "dcgan64", "same recipe as dcgan64-clipart, training seed 1", "ref-photos64",
              "emoji + clip-art train split"),
    ModelSpec("dcgan64-clipart-ft", "dcgan64", "dcgan64-clipart fine-tuned for a few hundred steps (a derivative)",
              "ref-photos64", "emoji + clip-art train split"),
    ModelSpec("upgan64-clipart", "upgan64", "upsample+conv GAN on colour emoji and clip-art, 64x64 RGB", "ref-photos64",
              "emoji + clip-art train split"),
    ModelSpec("resgan64-clipart", "resgan64", "residual GAN on colour emoji and clip-art, 64x64 RGB (trained after "
              "the settings were fixed)", "ref-photos64", "emoji + clip-art train split"),
    ModelSpec("ref-photos64", "vae64", "reference model: VAE on 64x64 RGB natural-photo crops", "dcgan64-clipart",
              "Debian wallpaper photos", role="reference"),
]}
# Hub models (diffusers, Hugging Face cache; see ronan/models/hub.py and README "Hub models")
CATALOGUE.update({m.name: ModelSpec(m.name, m.family, m.description, m.reference, m.data) for m in HUB_MODELS.values()})


def is_hub(name: str) -> bool:
    """True for hub (diffusers) models, False for bundled ones."""
    return name in HUB_MODELS


@dataclass
class ModelInfo:
    """What ``python -m ronan models --json`` prints for one model.

    ``source`` is ``"bundled"`` or ``"hub"``; ``state`` is ``"bundled"`` (or ``"unavailable"``)
    for bundled models and ``"cached"``, ``"downloadable"`` or ``"unavailable"`` for hub ones.
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


def _card_path(name: str) -> Path:
    return assets_dir() / name / "card.json"


def read_card(name: str) -> dict:
    """The model card of bundled model ``name`` (raises ModelUnavailable if missing)."""
    spec = get_spec(name)
    path = _card_path(spec.name)
    if not path.is_file():
        raise ModelUnavailable(f"{name}: model card {path} is missing; retrain it (see README, 'Retraining the zoo')")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"{name}: model card {path} is unreadable ({e})") from None


def get_spec(name: str) -> ModelSpec:
    """Catalogue entry of ``name``; raises ModelUnavailable naming the known models."""
    if name not in CATALOGUE:
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


@functools.lru_cache(maxsize=None)
def _checked_weights(name: str, path: str, mtime: float, expected: str) -> str:
    digest = sha256_file(path)
    if digest != expected:
        raise ModelUnavailable(f"{name}: weights file {path} does not match the SHA-256 in its model card "
                               f"({digest[:12]}... != {expected[:12]}...); it may be damaged or replaced")
    return digest


def weights_path(name: str) -> tuple[Path, str]:
    """Path of the verified weights of ``name`` and their SHA-256 (raises ModelUnavailable)."""
    card = read_card(name)
    path = assets_dir() / name / card.get("weights_file", "model.safetensors")
    if not path.is_file():
        raise ModelUnavailable(f"{name}: weights file {path} is missing; retrain it (see README, 'Retraining the zoo')")
    return path, _checked_weights(name, str(path), path.stat().st_mtime, card.get("weights_sha256", ""))


def availability(name: str) -> tuple[bool, str | None]:
    """``(True, None)`` if ``name`` can be loaded here, else ``(False, reason)``."""
    if is_hub(name):
        state, reason = hub_state(name)
        return state == "cached", reason
    try:
        weights_path(name)
    except ModelUnavailable as e:
        return False, str(e)
    return True, None


def list_models() -> list[ModelInfo]:
    """Every catalogue entry with its availability (hub models: cached / downloadable /
    unavailable, with the reason and how to get them)."""
    out = []
    for spec in CATALOGUE.values():
        if is_hub(spec.name):
            m = HUB_MODELS[spec.name]
            state, reason = hub_state(spec.name)
            out.append(ModelInfo(spec.name, spec.family, m.resolution, m.channels, state == "cached", reason,
                                 spec.reference, spec.description, spec.role, source="hub", state=state))
            continue
        ok, reason = availability(spec.name)
        card = {}
        if ok:
            card = read_card(spec.name)
        out.append(ModelInfo(spec.name, spec.family, card.get("resolution", 28), card.get("channels", 1),
                             ok, reason, spec.reference, spec.description, spec.role,
                             state="bundled" if ok else "unavailable"))
    return out


def default_reference(name: str) -> str | None:
    """Default reference model of ``name`` for calibration (Eq. 2)."""
    return get_spec(name).reference


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; None or ``"auto"`` picks CUDA, then MPS, then CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


_LOCK = threading.Lock()
_LOADED: dict[tuple, Generator] = {}


def load_model(name: str, device: str | torch.device = "cpu", **options) -> Generator:
    """Load (once per process) the frozen model ``name`` on ``device``.

    Args:
        name (str): registry name (see ``CATALOGUE``).
        device (str | torch.device | None): ``"cpu"``, ``"cuda"``, ``"mps"``, or None/``"auto"``
            for the best present (see :func:`resolve_device`); default CPU.
        **options: family options, e.g. ``class_search="relaxed"`` for ``cgan-fmnist``.

    Raises:
        ModelUnavailable: unknown name, missing or mismatching weights.
    """
    device = resolve_device(device)
    key = (name, str(device), tuple(sorted(options.items())))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        spec = get_spec(name)
        if is_hub(name):
            model = load_hub_model(name, device, **options)
            _LOADED[key] = model
            return model
        card = read_card(name)
        path, digest = weights_path(name)
        model = FAMILIES[spec.family](**card["config"], **options)
        state = load_file(str(path))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ModelUnavailable(f"{name}: weights do not fit the architecture in its card ({str(e)[:200]})") from None
        model.name = name
        model.weights_sha256 = digest
        model = model.to(device).freeze()
        _LOADED[key] = model
        return model


def info_dict(info: ModelInfo) -> dict:
    """``ModelInfo`` as a JSON-serialisable dict."""
    return asdict(info)
