"""Generating images with a model, seeded, as they would be saved and shared (8-bit)."""

from __future__ import annotations

import io

import torch
from PIL import Image

from .images import LoadedImage, load_image, to_pil
from .models.base import Generator
from .precision import autocast
from .seeding import rng


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round ``images`` in [0, 1] to 8-bit levels (what saving as PNG does)."""
    return (images.clamp(0, 1) * 255.0).round() / 255.0


def generate(model: Generator, n: int, seed: int = 0, *, purpose: str = "generate", batch: int = 256) -> torch.Tensor:
    """``n`` images ``Tensor[n, C, H, W]`` of ``model``, quantized to 8 bits, on the CPU.

    Args:
        model (Generator): the model.
        n (int): number of images, >= 1.
        seed (int): seed; the inputs come from stream ``purpose`` of that seed (see
            :mod:`ronan.seeding`), so ``generate`` and calibration never share inputs.
        purpose (str): seed stream, default ``"generate"``.
        batch (int): images per forward pass (memory bound), default 256; the images do not depend on it.

    The images are defined by ``(seed, purpose, n)``: image k of ``n`` images need not equal image k
    of another ``n``. Torch's normal sampler fills the last 16 values of a tensor whose size is not a
    multiple of 16 in another way (``dcgan64-clipart``, 100 inputs: the last image of ``n`` = 5 differs
    from image 4 of ``n`` = 100; with 128 inputs, ``n`` never matters), and a class-conditional model
    draws every image's class after all the inputs (``cgan-fmnist``: most images differ). Record ``n``
    with the seed, as every benchmark and result does.
    """
    inputs = model.sample_inputs(n, rng(seed, purpose))
    with torch.no_grad(), autocast(model.device, "fp32"):  # exact fp32 on CUDA too (no TF32)
        out = [model.generate(inputs[i : i + batch]).float().cpu() for i in range(0, n, batch)]
    return quantize(torch.cat(out))


def generate_pil(model: Generator, n: int, seed: int = 0, **kwargs) -> list[Image.Image]:
    """As :func:`generate`, as 8-bit PIL images."""
    return [to_pil(im) for im in generate(model, n, seed, **kwargs)]


def as_uploads(images: list[Image.Image], prefix: str = "image") -> list[LoadedImage]:
    """Save ``images`` as PNG bytes and load them back, exactly as uploaded files would be.

    Names are ``<prefix>-0000.png``, ``<prefix>-0001.png``...
    """
    out = []
    for i, im in enumerate(images):
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out.append(load_image(buf.getvalue(), name=f"{prefix}-{i:04d}.png"))
    return out
