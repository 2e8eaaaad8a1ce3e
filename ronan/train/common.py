"""Shared helpers of the training scripts: data, seeding, saving a model with its card.

Training needs data that only these scripts read (never the library at run time):

* Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (IDX files, MIT licence), in
  ``FMNIST_DIR``;
* natural-photo crops for the reference model from Debian's wallpaper packages
  ``mate-backgrounds`` and ``ukui-wallpapers`` (files under ``PHOTO_DIRS``).
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import random
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from ..images import sha256_file
from ..models.base import Generator
from ..paths import bundled_models_dir

FMNIST_DIR = Path(os.environ.get("RONAN_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
PHOTO_DIRS = [Path("/usr/share/backgrounds")]
ASSETS = bundled_models_dir()
FMNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a seeded CPU ``torch.Generator``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images ``Tensor[N, 1, 28, 28]`` in [0, 1] and labels ``Tensor[N]``.

    Args:
        split (str): ``"train"`` (60,000 images) or ``"test"`` (10,000).
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    img_path = FMNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"
    if not img_path.exists():
        sys.exit(f"Fashion-MNIST not found in {FMNIST_DIR}: run `apt-get install -y dataset-fashion-mnist`")
    images = _read_idx(img_path)
    labels = _read_idx(FMNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def photo_files() -> list[Path]:
    """Sorted photo files of the wallpaper packages (largest variant of each picture)."""
    files = sorted(
        p for d in PHOTO_DIRS if d.exists() for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    if not files:
        sys.exit("No photos found: run `apt-get install -y mate-backgrounds ukui-wallpapers`")
    return files


def load_photo_crops(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """``n`` random grayscale crops ``Tensor[n, 1, size, size]`` in [0, 1] from the wallpapers.

    Each photo is reduced to short sides 64-512 px (several scales), crops are taken at
    random positions, flipped at random, and half of them are inverted in intensity so that
    the reference model also covers dark-background images.
    """
    rng = np.random.default_rng(seed)
    pyramids = []
    for path in photo_files():
        with Image.open(path) as im:
            gray = im.convert("L")
        for short in (64, 128, 256, 512):
            scale = short / min(gray.size)
            w, h = max(size, round(gray.width * scale)), max(size, round(gray.height * scale))
            pyramids.append(np.asarray(gray.resize((w, h), Image.Resampling.LANCZOS)))
    out = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        arr = pyramids[rng.integers(len(pyramids))]
        y = rng.integers(arr.shape[0] - size + 1)
        x = rng.integers(arr.shape[1] - size + 1)
        crop = arr[y : y + size, x : x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = 255 - crop
        out[i] = crop
    return torch.from_numpy(out.astype(np.float32) / 255.0).unsqueeze(1)


def save_model(
    model: Generator,
    name: str,
    *,
    config: dict,
    data: dict,
    extra: dict,
    preprocessing: str = "centre-crop to square, Lanczos resize to 28x28, grayscale (ITU-R 601-2 luma), "
    "values in [0, 1]",
) -> Path:
    """Save ``model``'s generator weights as safetensors with a JSON model card.

    Writes ``assets/models/<name>/model.safetensors`` and ``card.json`` (architecture and
    config, data and split, preprocessing, resolution, channels, training command,
    parameter count, SHA-256 of the weights, library versions).
    """
    out = ASSETS / name
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = out / "model.safetensors"
    save_file(state, str(weights), metadata={"name": name, "family": model.family})
    from ..models.cards import CARD_VERSION
    from ..models.registry import EXPECTED_BUNDLED

    spec = EXPECTED_BUNDLED.get(name)  # catalogue fields the card carries (README, 'The bundled model zoo')
    card = {
        "card_version": CARD_VERSION,
        "name": name,
        "description": spec.description if spec else "",
        "role": spec.role if spec else "generator",
        "reference": spec.reference if spec else None,
        "family": model.family,
        "architecture": type(model).__name__,
        "config": config,
        "resolution": model.image_size,
        "channels": model.channels,
        "input_shape": list(model.input_shape),
        "parameters": int(sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)),
        "data": data,
        "preprocessing": preprocessing,
        "training_command": "python -m " + " ".join(shlex.quote(a) for a in [_module_name()] + sys.argv[1:]),
        "training": extra,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "weights_file": weights.name,
        "weights_sha256": sha256_file(weights),
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"saved {weights} ({card['parameters']} parameters, sha256 {str(card['weights_sha256'])[:12]}...)")
    return out


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem
