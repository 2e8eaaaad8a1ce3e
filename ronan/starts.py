"""Learned starting points: an inverse network per generator, trained on pairs the generator makes.

The inversion (Eq. 1) starts from random inputs; most of its steps go to finding the right
basin. A small convolutional network ``E: image -> input`` trained once per model on pairs
``(x = quantize(M(z)), z)`` with ``z`` drawn from the model's own input distribution (unlimited,
free data) gives a starting point close to the answer for the model's own images. It is used
as restart 0 of every image (the random restarts stay), so it can only help an inversion:
the loss counted is still the minimum over all restarts and steps, and a real image still
cannot be reconstructed by a model that did not make it. With ``InversionSettings.learned_start``
the engine asks :func:`learned_inputs` for the starts; the network is trained on first use
(minutes on a CPU), cached as safetensors next to the belonging distributions (keyed by the
model's weights hash and the training settings) and verified by its SHA-256 on load. The training
settings are :class:`StartSettings`' defaults unless the model's card names its own
(``learned_start``, :attr:`ronan.models.base.Generator.start_settings`, read by
:func:`settings_for`): a larger network for generators whose inputs the default one recovers too
loosely (``upgan64-clipart``: benchmarks/RESULTS.md, "Larger start networks, trained on a GPU").

Only for generators whose whole input is optimised (no fixed condition, see
``Generator.input_gradient_mask``) and that have no encoder of their own (``Generator.encode``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from . import paths
from .errors import CalibrationError
from .models.base import Generator

START_VERSION = 1
"""Bump when the network or its training changes: every cached network is then retrained."""


@dataclass(frozen=True)
class StartSettings:
    """How the inverse network is trained.

    Attributes:
        steps (int): Adam steps (default 2000).
        batch (int): pairs per step (default 64), drawn fresh every step.
        lr (float): Adam learning rate (default 1e-3), cosine-decayed to 0.
        width (int): channels of the first convolution (default 32; doubled at each halving).
        seed (int): seed of the network's initialisation and of its training pairs (default 0).
    """

    steps: int = 2000
    batch: int = 64
    lr: float = 1e-3
    width: int = 32
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self) | {"version": START_VERSION}


class InverseNet(nn.Module):
    """Image ``[B, C, S, S]`` in [0, 1] -> flat input ``[B, D]``: stride-2 convolutions until the
    side is at most 8, then a linear layer.

    Args:
        channels (int): image channels. size (int): image side. out_dim (int): size of one input.
        width (int): channels of the first convolution (doubled at each halving, at most 8x).
    """

    def __init__(self, channels: int, size: int, out_dim: int, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        c, s, w = channels, size, width
        while s > 8:
            layers += [nn.Conv2d(c, w, 4, 2, 1), nn.BatchNorm2d(w), nn.LeakyReLU(0.2, True)]
            c, s, w = w, (s + 1) // 2, min(w * 2, 8 * width)
        layers += [nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2, True), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * s * s, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2.0 - 1.0))


def settings_for(model: Generator) -> StartSettings:
    """The start settings of ``model``: the defaults with its ``start_settings`` (its card's
    ``learned_start``) applied."""
    return StartSettings(**(model.start_settings or {}))


def supports(model: Generator) -> bool:
    """Whether learned starts apply to ``model`` (whole input optimised, no encoder of its own)."""
    return model.input_gradient_mask() is None and type(model).encode is Generator.encode


def start_key(model: Generator, settings: StartSettings) -> dict:
    """What identifies a trained network: the model (name, weights, input) and the settings."""
    return {"model": model.name, "model_sha256": model.weights_sha256, "input_shape": list(model.input_shape),
            "model_options": model.inversion_options(), "settings": settings.to_dict()}


def _file_stem(key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = "".join(c for c in key["model"] if c.isalnum() or c in "-_.")[:64] or "model"
    return f"{name}__start__{digest}"


def train_inverse(model: Generator, settings: StartSettings = StartSettings(), callback=None) -> InverseNet:
    """Train the inverse network of ``model`` (see the module docstring); returns it in eval mode.

    Args:
        model (Generator): the frozen generator.
        settings (StartSettings): training settings.
        callback (callable | None): ``callback(step, steps, loss)`` every 100 steps.
    """
    from .generation import quantize
    from .seeding import rng

    dim = math.prod(model.input_shape)
    g = rng(settings.seed, "learned-start")
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    net = InverseNet(model.channels, model.image_size, dim, settings.width).to(model.device)
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.steps)
    net.train()
    for step in range(settings.steps):
        z = model.sample_inputs(settings.batch, g)
        with torch.no_grad():
            x = quantize(model.generate(z).float())
        loss = (net(x) - z.reshape(len(z), -1)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if callback is not None and (step + 1) % 100 == 0:
            callback(step + 1, settings.steps, float(loss.detach()))
    return net.eval().requires_grad_(False)


_LOCK = threading.Lock()
_LOADED: dict[str, InverseNet] = {}


def get_inverse(model: Generator, settings: StartSettings | None = None, *, build: bool = True,
                callback=None) -> tuple[InverseNet, str]:
    """The cached inverse network of ``model`` (trained and cached on first use) and its SHA-256;
    ``settings`` None: the model's own (:func:`settings_for`).

    Looks in the calibration cache folders (:func:`ronan.paths.cache_read_dirs`, subfolder
    ``starts``); writes to :func:`ronan.paths.cache_write_dir`.

    Raises:
        CalibrationError: no cached network and ``build=False``, or a cached file that does not
            match its recorded SHA-256.
    """
    from safetensors.torch import load_file, save_file

    settings = settings_for(model) if settings is None else settings
    key = start_key(model, settings)
    stem = _file_stem(key)
    with _LOCK:
        if stem in _LOADED:
            return _LOADED[stem], _LOADED[stem].sha256
        dim = math.prod(model.input_shape)
        for folder in paths.cache_read_dirs():
            meta_path = Path(folder) / "starts" / f"{stem}.json"
            if meta_path.is_file():
                meta = json.loads(meta_path.read_text())
                weights = meta_path.with_suffix(".safetensors")
                digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None
                if meta.get("key") != key or digest != meta.get("sha256"):
                    raise CalibrationError(f"learned-start network {meta_path.name} is damaged or does not "
                                           f"match its key; delete {meta_path.parent}/{stem}.* to retrain it")
                net = InverseNet(model.channels, model.image_size, dim, settings.width).to(model.device)
                net.load_state_dict(load_file(str(weights), device=str(model.device)))
                net.eval().requires_grad_(False)
                net.sha256 = digest
                _LOADED[stem] = net
                return net, digest
        if not build:
            raise CalibrationError(f"no learned-start network for {model.name} with these settings")
        t0 = time.perf_counter()
        net = train_inverse(model, settings, callback)
        folder = Path(paths.cache_write_dir()) / "starts"
        digest = _save(net, key, folder / stem, time.perf_counter() - t0, save_file)
        net.sha256 = digest
        _LOADED[stem] = net
        return net, digest


def _save(net: InverseNet, key: dict, stem: Path, seconds: float, save_file) -> str:
    """Write the weights and their JSON record atomically; returns the weights' SHA-256."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=stem.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    save_file(state, tmp)
    digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
    paths.make_shareable(Path(tmp))
    os.replace(tmp, stem.with_suffix(".safetensors"))
    from .provenance import library_versions

    record = {"key": key, "sha256": digest, "seconds": round(seconds, 1), "versions": library_versions(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fd, tmp = tempfile.mkstemp(dir=stem.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
    paths.make_shareable(Path(tmp))
    os.replace(tmp, stem.with_suffix(".json"))
    return digest


def learned_inputs(model: Generator, images: torch.Tensor, settings: StartSettings | None = None) -> torch.Tensor:
    """Starting inputs ``[B, *input_shape]`` for ``images`` ``[B, C, H, W]`` from the inverse network
    (``settings`` None: the model's own, :func:`settings_for`)."""
    net, _ = get_inverse(model, settings)
    with torch.no_grad():
        return net(images.to(model.device).float()).view(len(images), *model.input_shape)


def start_digests(models: dict[str, Generator | None], settings) -> dict | None:
    """SHA-256 of the start network each of ``models`` (``{role: generator}``) began its inversions
    from under ``settings`` (an :class:`ronan.inversion.InversionSettings`), for the record; None
    without learned starts. Roles without a network (no model, or learned starts do not apply) are
    left out; networks are read from the cache, never trained here."""
    if not settings.learned_start:
        return None
    out = {}
    for role, model in models.items():
        if model is not None and supports(model):
            try:
                out[role] = get_inverse(model, build=False)[1]
            except CalibrationError:
                continue
    return out or None
