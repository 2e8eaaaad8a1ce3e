"""Example images for the app's gallery: real samples and generated images of a model's tier.

The paper's three cases side by side (:func:`example_images`): real images, images of the
inspected model, images of other models of the same tier (resolution and channels: 28x28
grayscale, 64x64 colour...). Real images come from the committed samples
(``assets/samples/<name>-test``, :func:`samples_folder`); generated ones are made on first use
with seeds of the ``"generate"`` stream (never the calibration samples) and kept as PNG files.
"""

from __future__ import annotations

import csv
import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelUnavailable
from .models.registry import ModelInfo, availability, list_models, load_model, resolve_device
from .paths import samples_dir

SAMPLES_DIR = samples_dir()


@dataclass
class Example:
    """A gallery item: file path, caption, what it is (``real``/``this``/``other``) and its source
    (the model that made it, or the real image's class or collection)."""

    path: str
    caption: str
    kind: str
    model: str | None = None


def require_model(name: str) -> None:
    """Raise :class:`ModelUnavailable` with the registry's reason if ``name`` cannot load."""
    ok, reason = availability(name)
    if not ok:
        raise ModelUnavailable(reason or f"{name} is unavailable")


@functools.lru_cache(maxsize=32)
def _folder_tier(folder: Path) -> tuple[int, int] | None:
    first = next(iter(sorted(folder.glob("*.png"))), None)
    if first is None:
        return None
    from PIL import Image

    with Image.open(first) as im:
        return im.size[0], 1 if im.mode in ("L", "1", "LA", "I;16") else 3


def samples_folder(resolution: int | None = 28, channels: int | None = 1) -> Path | None:
    """The committed real-image folder of a tier: held-out (``*-test``) first, e.g.
    ``fmnist-test`` for 28x28 grayscale, ``clipart-test`` for 64x64 colour; None if none matches."""
    if not SAMPLES_DIR.is_dir():
        return None
    folders = sorted(
        (p for p in SAMPLES_DIR.iterdir() if p.is_dir()), key=lambda p: (not p.name.endswith("-test"), p.name)
    )
    for p in folders:
        tier = _folder_tier(p)
        if (
            tier is not None
            and (resolution is None or tier[0] == resolution)
            and (channels is None or tier[1] == channels)
        ):
            return p
    return None


def _sample_captions(folder: Path) -> dict[str, str]:
    path = folder / "labels.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    # fmnist: the class ("Trouser"); clipart: the collection ("emoji/u1F999" -> "emoji")
    return {r.get("file", ""): r.get("class") or (r.get("picture") or "").split("/")[0] for r in rows}


def real_samples(
    n: int = 4, split: str | None = None, *, resolution: int | None = 28, channels: int | None = 1
) -> list[Path]:
    """First ``n`` committed real images (sorted by file name) of ``split`` (a folder of
    ``assets/samples``), or of the tier ``resolution`` x ``channels``."""
    folder = SAMPLES_DIR / split if split else samples_folder(resolution, channels)
    return sorted(folder.glob("*.png"))[:n] if folder is not None and folder.is_dir() else []


def generate_example(model: str, seed: int, folder: str | Path) -> Path:
    """Generate one image with ``model`` (seed ``seed``), save it as 8-bit PNG, return its path.

    The file is written atomically (two requests may generate the same example at once).

    Raises:
        ModelUnavailable: ``model`` cannot load here (with the registry's reason).
    """
    from .generation import generate_pil

    require_model(model)
    gen = load_model(model, resolve_device(None))
    img = generate_pil(gen, 1, seed)[0]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"generated-{model}-seed{seed}.png"
    tmp = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def _tier(name: str | None, models: list[ModelInfo]) -> tuple[int | None, int | None]:
    for m in models:
        if m.name == name:
            return m.resolution, m.channels
    return 28, 1


_GENERATING = threading.Lock()  # one example generated at a time: a second request waits, then finds the file


def _cached_example(model: str, seed: int, folder: str | Path) -> Path:
    p = Path(folder) / f"generated-{model}-seed{seed}.png"
    if p.exists():
        return p
    with _GENERATING:
        return p if p.exists() else generate_example(model, seed, folder)


def example_images(model: str | None, folder: str | Path, per_kind: int = 2, seed: int = 1000) -> list[Example]:
    """Gallery for the paper's three cases: real images, ``model``'s images, other models' images.

    Everything is of ``model``'s tier (resolution and channels): real images from the matching
    committed samples folder (:func:`samples_folder`), other models of the same tier (available
    bundled and user generators; hub models are too slow to run for a gallery). Generated images
    use seeds ``seed, seed+1, ...`` (``seed + 100, ...`` for the other models; the ``"generate"``
    stream, never the calibration samples) and are cached as files in ``folder``.

    Args:
        model (str | None): the inspected model (None: the 28x28 grayscale tier, no "this model").
        folder (str | Path): where generated examples are kept.
        per_kind (int): images of each kind (default 2).
        seed (int): first seed (default 1000).
    """
    models = list_models()
    res, ch = _tier(model, models)
    real_folder = samples_folder(res, ch)
    captions = _sample_captions(real_folder) if real_folder is not None else {}
    out = [
        Example(str(p), "real", "real", captions.get(p.name) or p.stem)
        for p in (sorted(real_folder.glob("*.png"))[:per_kind] if real_folder is not None else [])
    ]
    suspects = [m for m in models if m.available and m.role != "reference" and m.source != "hub"]
    if model in [m.name for m in suspects]:
        for k in range(per_kind):
            out.append(Example(str(_cached_example(model, seed + k, folder)), "this model", "this", model))
    others = [m.name for m in suspects if m.name != model and (m.resolution, m.channels) == (res, ch)]
    for k in range(per_kind if others else 0):
        other = others[k % len(others)]
        out.append(Example(str(_cached_example(other, seed + 100 + k, folder)), "other model", "other", other))
    return out
