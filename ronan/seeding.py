"""Seeds: every random choice in RONAN draws from a ``torch.Generator`` seeded here.

Different purposes (generating samples, calibration samples, inversion starting points)
use independent streams derived from the user's seed, so that e.g. inverting an image made
by ``generate --seed 0`` with ``--seed 0`` never starts at the image's own latent code.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, purpose: str) -> int:
    """63-bit seed for ``purpose`` (e.g. ``"inversion"``) derived from the user ``seed``."""
    digest = hashlib.sha256(f"ronan:{purpose}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def rng(seed: int, purpose: str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` ``(seed, purpose)``."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose))
