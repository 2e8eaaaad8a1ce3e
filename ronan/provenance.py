"""Versions and environment recorded with every result, for reproducibility."""

from __future__ import annotations

import platform
from importlib import metadata


def library_versions() -> dict:
    """Versions of Python, RONAN and the libraries that affect its numbers."""
    from . import __version__

    out = {"python": platform.python_version(), "ronan": __version__}
    for pkg in ("torch", "numpy", "scipy", "pillow", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
