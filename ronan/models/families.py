"""The bundled architecture families: card ``family`` -> Generator class.

A card with ``"family": "dcgan"`` and ``"config": {...}`` builds ``DCGAN(**config)``; the
hub (diffusers) families are the table :data:`ronan.models.hub.HUB_FAMILIES`.

:data:`FAMILIES` is a read-only mapping whose classes are imported on first lookup: reading and
validating cards (``ronan models``) needs only the names, and no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

_CLASSES = {
    "dcgan": ("dcgan", "DCGAN"),
    "cgan": ("cgan", "ConditionalGAN"),
    "vae": ("vae", "VAE"),
    "dcgan64": ("gan64", "DCGAN64"),
    "upgan64": ("gan64", "UpsampleGAN64"),
    "resgan64": ("gan64", "ResGAN64"),
    "vae64": ("gan64", "VAE64"),
}


class _Families(Mapping):
    """``family name -> Generator subclass``, importing a class (and torch) on first lookup."""

    def __getitem__(self, name: str) -> type:
        module, cls = _CLASSES[name]
        return getattr(importlib.import_module(f".{module}", __package__), cls)

    def __contains__(self, name) -> bool:  # names only: no import
        return name in _CLASSES

    def __iter__(self):
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


FAMILIES: Mapping[str, type] = _Families()
