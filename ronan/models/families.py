"""The bundled architecture families: card ``family`` -> Generator class.

A card with ``"family": "dcgan"`` and ``"config": {...}`` builds ``DCGAN(**config)``; the
hub (diffusers) families are listed in :data:`ronan.models.hub.HUB_FAMILIES`.
"""

from __future__ import annotations

from .base import Generator
from .cgan import ConditionalGAN
from .dcgan import DCGAN
from .gan64 import DCGAN64, ResGAN64, UpsampleGAN64, VAE64
from .vae import VAE

FAMILIES: dict[str, type[Generator]] = {"dcgan": DCGAN, "cgan": ConditionalGAN, "vae": VAE, "dcgan64": DCGAN64,
                                        "upgan64": UpsampleGAN64, "resgan64": ResGAN64, "vae64": VAE64}
