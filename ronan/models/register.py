"""Register a model: write its card (and a copy of its weights) into the user models folder.

``ronan register NAME ...`` and :func:`register_model` do the same: validate the name and
every field, hash the weights, build the model once (import the factory, load and check the
weights, run one forward pass to measure resolution and channels), and only then move the
finished folder into place, so a failed registration leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

from .. import __version__, paths
from ..digests import sha256_file
from ..errors import CardError
from . import cards

_FILE_FACTORY = re.compile(r"^(?P<file>.+\.py):(?P<attr>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$")


def resolve_factory(factory: str, code_dir: str | os.PathLike | None = None) -> tuple[str, Path | None]:
    """``(module:callable, folder to import it from)`` for a factory given on the command line.

    ``path/to/file.py:callable`` imports ``file`` from ``path/to``; ``package.module:callable``
    imports from ``code_dir``, else from the current folder when the module is there, else
    from the installed packages.

    Raises:
        CardError: malformed spec, missing file, or a module that cannot be found.
    """
    m = _FILE_FACTORY.match(factory)
    if m:
        file = Path(m["file"]).expanduser().resolve()
        if not file.is_file():
            raise CardError(f"factory {factory}: no file {file}")
        if not file.stem.isidentifier():
            raise CardError(f"factory {factory}: {file.name} is not an importable module name")
        return f"{file.stem}:{m['attr']}", file.parent
    if not cards.FACTORY_RE.match(factory):
        raise CardError(f"factory {factory!r}: use package.module:callable or path/to/file.py:callable")
    top = factory.split(":", 1)[0].split(".")[0]
    if code_dir is not None:
        folder = Path(code_dir).expanduser().resolve()
        if not folder.is_dir():
            raise CardError(f"--code-dir {folder} is not a folder")
        return factory, folder
    cwd = Path.cwd()
    if (cwd / f"{top}.py").is_file() or (cwd / top / "__init__.py").is_file():
        return factory, cwd
    if importlib.util.find_spec(top) is None:
        raise CardError(
            f"factory {factory}: cannot find module {top!r}; run from its folder, give --code-dir, "
            "or write path/to/file.py:callable"
        )
    return factory, None


def _needs_download(card: cards.ModelCard) -> bool:
    """True for a diffusers card whose hub repo is not in the local cache yet (checked at first use)."""
    if card.kind != "diffusers":
        return False
    from .hub import state_of
    from .loader import hub_entry

    return state_of(hub_entry(card))[0] == "downloadable"


def _check_name(name: str, overwrite: bool, dest: Path) -> None:
    from .registry import catalogue

    cards.validate_name(name)
    spec = catalogue().get(name)
    if spec is not None and spec.source != "user":
        raise CardError(f"{name!r} is the name of a {spec.source} model; choose another name")
    if dest.exists() and not overwrite:
        raise CardError(f"{name!r} is already registered ({dest}); use --force (overwrite=True) to replace it")


def register_model(
    name: str,
    *,
    factory: str | None = None,
    family: str | None = None,
    diffusers: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    config: dict | None = None,
    input_shape=None,
    input_distribution="normal",
    output_range=None,
    reference: str | None = None,
    description: str = "",
    role: str = "generator",
    data: str | dict = "",
    preprocessing: dict | None = None,
    conditioning: dict | None = None,
    weights_key: str | None = None,
    weights_prefix: str | None = None,
    code_dir: str | os.PathLike | None = None,
    copy_weights: bool = True,
    models_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    preset: str | None = None,
    learned_start: dict | None = None,
) -> Path:
    """Write the card of model ``name`` into the user models folder; returns the card's path.

    Give exactly one of ``factory`` (your code), ``family`` with ``weights`` (a bundled
    architecture) or ``diffusers`` with ``family`` (a diffusers folder or hub id).

    Args:
        name (str): new model name (``^[a-z0-9][a-z0-9._-]{0,63}$``, no ``..``; not a bundled
            or hub model's name).
        factory (str | None): ``"package.module:callable"`` or ``"path/to/file.py:callable"``
            returning a ``torch.nn.Module`` (see :func:`resolve_factory`).
        family (str | None): a bundled family (``"dcgan"``, ``"dcgan64"``...) or, with
            ``diffusers``, ``"consistency"``, ``"ddim"``, ``"sd-latent"``, ``"sd-noise"``.
        diffusers (str | PathLike | None): a local ``save_pretrained`` folder or a hub repo id.
        weights (str | PathLike | None): ``.safetensors`` file or PyTorch state-dict archive;
            None for a factory that loads its own weights.
        config (dict | None): keyword arguments of the factory / family / diffusers adapter.
        input_shape: shape of one input (factory), e.g. ``(100,)``.
        input_distribution: ``"normal"`` (default), ``"uniform"`` or a dict (see the card format).
        output_range: ``(-1, 1)`` or ``(0, 1)`` (factory; required).
        reference (str | None): default reference model name (must be known), None for none.
        description (str), role (str), data (str | dict): catalogue fields.
        preprocessing (dict | None): ``{"fit": ..., "resample": ...}`` (default crop + Lanczos).
        conditioning (dict | None): ``{"type": "class", "classes": K, "label": None}``.
        weights_key (str | None), weights_prefix (str | None): see the card format.
        code_dir (str | PathLike | None): folder the factory's module is imported from.
        copy_weights (bool): copy the weights next to the card (default True); False records
            the absolute path of ``weights``.
        models_dir (str | PathLike | None): default ``$RONAN_MODELS_DIR`` / the user models folder.
        overwrite (bool): replace an existing registration (default False).
        preset (str | None): the inversion preset this model's attributions run when none is
            asked for (one of ``ronan.preset_names.PRESET_NAMES``); None (default): ``fast``.
        learned_start (dict | None): how this model's start network is trained (keys ``width``,
            ``batch``, ``steps``, ``lr``, ``seed``; see the card format); None (default): the
            defaults of :class:`ronan.starts.StartSettings`.

    Raises:
        CardError: an invalid field (one line); nothing is written then.
        ModelUnavailable: weights that do not load.
    """
    from .loader import build
    from .registry import catalogue

    models_dir = Path(models_dir).expanduser() if models_dir is not None else paths.user_models_dir()
    cards.validate_name(name)
    dest = models_dir / name
    _check_name(name, overwrite, dest)
    if (factory is not None and diffusers is not None) or (factory is None and diffusers is None and family is None):
        raise CardError(f"{name}: give one of --factory, --family (with --weights) or --diffusers (with --family)")
    if reference is not None:
        cards.validate_name(reference, "reference model name")
        if reference == name:
            raise CardError(f"{name}: a model cannot be its own reference model")
        if reference not in catalogue():
            raise CardError(f"{name}: unknown reference model {reference!r}; known models: {', '.join(catalogue())}")

    card: dict = {
        "card_version": cards.CARD_VERSION,
        "name": name,
        "description": description,
        "role": role,
        "reference": reference,
        "data": data,
        "preset": preset,
        "learned_start": learned_start,
    }
    if factory is not None:
        spec, folder = resolve_factory(factory, code_dir)
        card.update(
            factory=spec,
            factory_path=str(folder) if folder else None,
            family=family,
            config=config or {},
            input_shape=list(input_shape) if isinstance(input_shape, (list, tuple)) else input_shape,
            input_distribution=input_distribution,
            output_range=list(output_range) if isinstance(output_range, (list, tuple)) else output_range,
            preprocessing=preprocessing,
            conditioning=conditioning,
        )
    elif diffusers is not None:
        local = Path(diffusers).expanduser()
        card.update(
            diffusers=str(local.resolve()) if local.is_dir() else str(diffusers), family=family, config=config or {}
        )
        if weights is not None:
            raise CardError(f"{name}: --weights is not used with --diffusers (the weights are in the folder)")
    else:
        card.update(family=family, config=config or {})
        if weights is None:
            raise CardError(f"{name}: a bundled family needs --weights")
    card.update(weights_key=weights_key, weights_prefix=weights_prefix)
    if weights is not None:  # validated as it will be written, before anything is
        card.update(weights_file="model.safetensors", weights_sha256="0" * 64)
    cards.parse_card({k: v for k, v in card.items() if v is not None}, str(dest / cards.CARD_FILE), dest)

    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=models_dir))
    try:
        if weights is not None:
            src = Path(weights).expanduser().resolve()
            if not src.is_file():
                raise CardError(f"{name}: weights file {src} not found")
            suffix = next((s for s in cards.SAFETENSORS_SUFFIXES + cards.TORCH_SUFFIXES if src.name.endswith(s)), None)
            if suffix is None:
                raise CardError(
                    f"{name}: {src.name}: use a .safetensors file or a PyTorch state-dict archive "
                    f"({', '.join(cards.TORCH_SUFFIXES)})"
                )
            card["weights_sha256"] = sha256_file(src)
            if copy_weights:
                shutil.copyfile(src, tmp / f"model{suffix}")
                card["weights_file"] = f"model{suffix}"
            else:
                card["weights_file"] = str(src)
        card = {k: v for k, v in card.items() if v is not None}
        cards.write_card(card, tmp)
        parsed = cards.read_card_file(tmp / cards.CARD_FILE)
        card.update(
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            versions={"ronan": __version__, "python": platform.python_version()},
        )
        if not _needs_download(parsed):  # build it once: imports, loads, runs; fails here, not later
            gen = build(parsed)
            card.update(
                resolution=gen.image_size,
                channels=gen.channels,
                parameters=int(sum(p.numel() for p in gen.parameters())),
            )
            if "diffusers" in card:
                card["weights_sha256"] = gen.weights_sha256
            if "factory" not in card and "diffusers" not in card:
                card["input_shape"] = list(gen.input_shape)
        cards.write_card(card, tmp)
        paths.make_shareable(tmp, folder=True)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=models_dir))
            os.replace(dest, old / name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest / cards.CARD_FILE
