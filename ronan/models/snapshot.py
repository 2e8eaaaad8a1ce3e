"""The layout of a diffusers snapshot, shared by :mod:`ronan.models.hub` and the ``diffusers_*`` adapters.

A leaf module (no import of the hub catalogue or of an adapter): where each component sits in a
``save_pretrained`` folder or a Hugging Face cache snapshot, which files hold its weights, and
the ``from_pretrained`` arguments every load uses (safetensors only, no network).
"""

from __future__ import annotations

from pathlib import Path

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
"""File names of a component's weights (diffusers models, transformers models); safetensors only."""
NO_WEIGHTS = ("scheduler", "tokenizer")
"""Components made of configuration and text files only."""


def component_dir(root: Path, component: str) -> Path | None:
    """Folder of ``component`` inside a snapshot (``unet`` may sit at the root); None if absent."""
    if component == "scheduler":
        for d in (root / "scheduler", root):
            if (d / "scheduler_config.json").is_file():
                return d
        return None
    d = root / component if component else root
    if component == "tokenizer":
        return d if (d / "tokenizer_config.json").is_file() or (d / "vocab.json").is_file() else None
    if (d / "config.json").is_file():
        return d
    if component == "unet" and (root / "config.json").is_file():  # flat repo: the UNet at the root
        return root
    return None


def component_path(root: Path, component: str) -> Path:
    """:func:`component_dir`, for loading: a missing component raises FileNotFoundError (an OSError)."""
    d = component_dir(root, component)
    if d is None:
        raise FileNotFoundError(f"{component or 'the model'} not found in {root}")
    return d


def weights_file(folder: Path) -> Path | None:
    """The weights file of a component folder (the first of :data:`WEIGHT_FILES` present), or None."""
    return next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)


def diffusers_kwargs() -> dict:
    """``from_pretrained`` arguments of every diffusers model: safetensors only, no network.

    Without the optional ``accelerate`` package, ``low_cpu_mem_usage=False`` is passed
    explicitly (diffusers would otherwise print a multi-line notice at every load).
    """
    import importlib.util

    kw: dict = {"use_safetensors": True, "local_files_only": True}
    if importlib.util.find_spec("accelerate") is None:
        kw["low_cpu_mem_usage"] = False
    return kw
