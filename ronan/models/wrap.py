"""Any ``torch.nn.Module`` generator as a RONAN :class:`~ronan.models.base.Generator`.

A generator from anywhere (a research repo, a notebook) maps an input tensor to images in
[-1, 1] or [0, 1]. :func:`wrap_generator` adds what RONAN needs: how to draw inputs, the
output range, image size and channels (measured with one forward pass when not given),
the preprocessing of uploaded images, optional class conditioning, and a weights hash.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import CardError, described
from .base import Generator
from .cards import Conditioning, InputDistribution, Preprocessing, inversion_fields, validate_name

LABEL_SCALE = 20.0
"""Logit of the chosen class in a conditional input (as :mod:`ronan.models.cgan`)."""
_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def state_dict_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and bytes, in name order).

    Identifies weights that were not loaded from a file (a file's own SHA-256 is used
    when there is one, so the two differ for the same weights).
    """
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def fit_image(image: Image.Image, size: int, channels: int, preprocessing: Preprocessing) -> torch.Tensor:
    """``image`` as ``Tensor[channels, size, size]`` in [0, 1] by ``preprocessing``.

    ``fit``: ``"crop"`` (centre-crop to a square, then resize), ``"pad"`` (pad with black to a
    square), ``"stretch"`` (resize, ignoring the aspect ratio); ``resample`` as in Pillow.
    """
    image = image.convert("L" if channels == 1 else "RGB")
    method = _RESAMPLE[preprocessing.resample]
    if image.size != (size, size):
        if preprocessing.fit == "crop":
            image = ImageOps.fit(image, (size, size), method=method)
        elif preprocessing.fit == "pad":
            image = ImageOps.pad(image, (size, size), method=method, color=0)
        else:
            image = image.resize((size, size), method)
    t = torch.from_numpy(np.asarray(image, dtype=np.float32).copy() / 255.0)
    return t.unsqueeze(0) if channels == 1 else t.permute(2, 0, 1).contiguous()


class WrappedGenerator(Generator):
    """A plain ``nn.Module`` generator behind the :class:`Generator` interface.

    Build it with :func:`wrap_generator`. The wrapped module is called as ``module(z)``
    (``module(z, labels)`` with class conditioning), ``z`` of shape ``[B, *input_shape]``.
    """

    family = "custom"

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        input_shape: tuple[int, ...],
        output_range: tuple[float, float],
        input_distribution: InputDistribution,
        preprocessing: Preprocessing,
        conditioning: Conditioning | None,
    ):
        super().__init__()
        self.module = module
        self.z_shape = tuple(int(s) for s in input_shape)
        self.z_size = math.prod(self.z_shape)
        self.output_range = (float(output_range[0]), float(output_range[1]))
        self.input_distribution = input_distribution
        self.preprocessing = preprocessing
        self.conditioning = conditioning
        self.input_shape = (self.z_size + conditioning.classes,) if conditioning else self.z_shape

    # ------------------------------------------------------------- inputs
    def _z(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        d = self.input_distribution
        if d.type == "uniform":
            return torch.rand((n, *self.z_shape), generator=generator) * (d.high - d.low) + d.low
        return torch.randn((n, *self.z_shape), generator=generator) * d.std

    def _with_labels(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        assert self.conditioning is not None, "labels need a class-conditional module"
        logits = torch.nn.functional.one_hot(labels.long(), self.conditioning.classes).to(z) * LABEL_SCALE
        return torch.cat([z.reshape(z.shape[0], -1), logits], dim=1)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self._z(n, generator)
        if self.conditioning is None:
            return z.to(self.device)
        c = self.conditioning
        labels = (
            torch.full((n,), c.label) if c.label is not None else torch.randint(0, c.classes, (n,), generator=generator)
        )
        return self._with_labels(z, labels).to(self.device)

    def expand_restarts(self, restarts: int) -> int:
        c = self.conditioning
        if c is None or c.label is not None:
            return restarts
        return c.classes * math.ceil(restarts / c.classes)

    def initial_inputs(self, images, restarts, generator=None):
        c = self.conditioning
        if c is None:
            return super().initial_inputs(images, restarts, generator)
        rows = self.expand_restarts(restarts)
        z = self._z(rows, generator)
        labels = (
            torch.full((rows,), c.label)
            if c.label is not None
            else torch.arange(c.classes).repeat_interleave(rows // c.classes)
        )
        return self._with_labels(z, labels).repeat(images.shape[0], 1).to(self.device)

    def input_gradient_mask(self) -> torch.Tensor | None:
        if self.conditioning is None:
            return None
        mask = torch.ones(self.input_shape, device=self.device)
        mask[self.z_size :] = 0  # the class stays fixed during one inversion
        return mask

    def inversion_options(self) -> dict:
        opts = {"input_distribution": self.input_distribution.to_json(), "output_range": list(self.output_range)}
        if self.conditioning is not None:
            opts["conditioning"] = {"classes": self.conditioning.classes, "label": self.conditioning.label}
        return opts

    # ---------------------------------------------------------- generation
    def raw(self, inputs: torch.Tensor) -> torch.Tensor:
        """The module's own output for ``inputs`` (in ``output_range``)."""
        if self.conditioning is None:
            return self.module(inputs)
        z = inputs[:, : self.z_size].reshape(inputs.shape[0], *self.z_shape)
        return self.module(z, inputs[:, self.z_size :].argmax(dim=1))

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (from ``output_range``; values outside are not clipped, so gradients flow)."""
        out = self.raw(inputs)
        return (out + 1.0) * 0.5 if self.output_range[0] < 0 else out

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return fit_image(image, self.image_size, self.channels, self.preprocessing)

    def describe(self) -> dict:
        d = super().describe()
        d.update(self.inversion_options())
        return d


def _as_distribution(d) -> InputDistribution:
    if isinstance(d, InputDistribution):
        return d
    from .cards import _Fields, _input_distribution

    return _input_distribution(_Fields({"input_distribution": d}, "wrap_generator"))


def wrap_generator(
    module: torch.nn.Module,
    *,
    input_shape,
    output_range=(-1, 1),
    name: str = "custom",
    channels: int | None = None,
    image_size: int | None = None,
    input_distribution="normal",
    preprocessing: Preprocessing | dict | None = None,
    conditioning: Conditioning | dict | None = None,
    reference: str | None = None,
    weights_sha256: str | None = None,
    family: str = "custom",
    preset: str | None = None,
    learned_start: dict | None = None,
) -> Generator:
    """Turn any ``nn.Module`` generator into a frozen RONAN :class:`Generator`.

    Args:
        module (torch.nn.Module): maps ``z`` of shape ``[B, *input_shape]`` (and integer labels
            ``[B]`` when ``conditioning`` is set) to images ``[B, C, H, W]`` with ``H == W``.
        input_shape (tuple[int, ...]): shape of one input without the batch dimension,
            e.g. ``(100,)`` or ``(100, 1, 1)``.
        output_range (tuple): ``(-1, 1)`` (default, tanh outputs) or ``(0, 1)``.
        name (str): model name (default ``"custom"``); validated (no path characters); it
            names the calibration cache file.
        channels (int | None), image_size (int | None): 1 or 3 and the side in pixels;
            None (default) measures them with one forward pass (they are checked when given).
        input_distribution: ``"normal"`` (default, N(0, 1)), ``"uniform"`` ([-1, 1]), or a dict
            ``{"type": "normal", "std": s}`` / ``{"type": "uniform", "low": a, "high": b}``.
        preprocessing (Preprocessing | dict | None): fitting of uploaded images,
            ``{"fit": "crop"|"pad"|"stretch", "resample": "lanczos"|...}``; default crop + Lanczos.
        conditioning (Conditioning | dict | None): ``{"classes": K, "label": k | None}`` for a
            class-conditional module (label None: every class is tried).
        reference (str | None): default reference model (Eq. 2) used by ``attribute(...,
            reference="default")``; None (default) means no calibration.
        weights_sha256 (str | None): SHA-256 of the weights file; None computes it from the
            module's state dict (:func:`state_dict_sha256`). Never left None.
        family (str): a label for humans (default ``"custom"``).
        preset (str | None): the inversion preset its attributions run when none is asked for (one
            of ``ronan.preset_names.PRESET_NAMES``; a card's ``preset``); None (default): ``fast``.
        learned_start (dict | None): how its start network is trained (keys ``width``, ``batch``,
            ``steps``, ``lr``, ``seed``; a card's ``learned_start``); None (default): the defaults.

    Raises:
        CardError: invalid name or settings, or outputs that are not square 1- or 3-channel images.
    """
    from .cards import OUTPUT_RANGES

    validate_name(name)
    preset, learned_start = inversion_fields(name, preset, learned_start)
    if reference is not None:
        validate_name(reference, "reference model name")
        if reference == name:
            raise CardError(f"{name}: a model cannot be its own reference model")
    if not isinstance(module, torch.nn.Module):
        raise CardError(f"{name}: wrap_generator needs a torch.nn.Module, got {type(module).__name__}")
    try:
        shape = tuple(int(s) for s in (input_shape if isinstance(input_shape, (list, tuple)) else (input_shape,)))
    except (TypeError, ValueError):
        raise CardError(f"{name}: input_shape must be a tuple of positive integers, got {input_shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise CardError(f"{name}: input_shape must be a tuple of positive integers, got {input_shape!r}")
    rng = tuple(float(x) for x in output_range)
    if rng not in OUTPUT_RANGES:
        raise CardError(f"{name}: output_range must be (-1, 1) or (0, 1), got {tuple(output_range)}")
    if isinstance(preprocessing, dict):
        preprocessing = Preprocessing(**preprocessing)
    if isinstance(conditioning, dict):
        conditioning = Conditioning(int(conditioning["classes"]), conditioning.get("label"))
    gen = WrappedGenerator(
        module,
        input_shape=shape,
        output_range=rng,
        input_distribution=_as_distribution(input_distribution),
        preprocessing=preprocessing or Preprocessing(),
        conditioning=conditioning,
    )
    gen.name, gen.family, gen.default_reference = name, family, reference
    gen.default_preset, gen.start_settings = preset, learned_start
    gen.freeze()
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    gen.to(device)
    try:
        with torch.no_grad():
            out = gen.generate(gen.sample_inputs(2, torch.Generator().manual_seed(0)))
    except Exception as e:  # noqa: BLE001 - user code: one line
        raise CardError(
            f"{name}: the module fails on inputs of shape [2, {', '.join(map(str, shape))}] ({described(e)})"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[1] not in (1, 3) or out.shape[2] != out.shape[3]:
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CardError(f"{name}: the module must return images [B, 1 or 3, H, H]; got {got}")
    measured_c, measured_s = int(out.shape[1]), int(out.shape[2])
    if channels is not None and channels != measured_c or image_size is not None and image_size != measured_s:
        raise CardError(
            f"{name}: the module makes {measured_c}x{measured_s}x{measured_s} images, "
            f"not {channels or measured_c}x{image_size or measured_s}x{image_size or measured_s} "
            "as declared"
        )
    gen.channels, gen.image_size = measured_c, measured_s
    gen.weights_sha256 = weights_sha256 or state_dict_sha256(module)
    return gen
