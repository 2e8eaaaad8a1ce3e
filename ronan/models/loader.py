"""Build a frozen :class:`~ronan.models.base.Generator` from a validated model card.

Weights are read only as safetensors or with ``torch.load(weights_only=True)`` (plain
tensors, never arbitrary pickled objects), after their SHA-256 was checked against the card.
A card's ``factory`` is imported from the operator's disk (bundled or user models folder, or
a card path given on the command line or in Python) — never from a web visitor: the app
only passes names, which the registry resolves to cards already on disk.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..digests import file_sha256
from ..errors import CardError, ModelUnavailable, described, first_line
from .cards import SAFETENSORS_SUFFIXES, ModelCard

if TYPE_CHECKING:
    import torch

    from .base import Generator

_IMPORT_LOCK = threading.Lock()


def verified_weights(card: ModelCard) -> tuple[Path, str]:
    """The card's weights file and its SHA-256, checked against ``weights_sha256``.

    Raises:
        ModelUnavailable: the file is missing or its SHA-256 differs from the card's.
    """
    path = card.weights_file
    if path is None:
        raise CardError(f"{card.name}: its card names no weights file")
    if not path.is_file():
        hint = "retrain it (see README, 'Retraining the zoo')" if card.kind == "family" else "check the card"
        raise ModelUnavailable(f"{card.name}: weights file {path} is missing; {hint}")
    digest = file_sha256(path)
    if digest != card.weights_sha256:
        raise ModelUnavailable(
            f"{card.name}: weights file {path} does not match the SHA-256 in its model card "
            f"({digest[:12]}... != {str(card.weights_sha256)[:12]}...); it may be damaged or "
            "replaced"
        )
    return path, digest


def read_state_dict(path: Path, key: str | None = None, prefix: str | None = None, name: str = "") -> dict:
    """Tensors of a safetensors file or of a PyTorch state-dict archive (``weights_only=True``).

    Args:
        path (Path): ``.safetensors``, or ``.pt``/``.pth``/``.bin``/``.ckpt``.
        key (str | None): take this entry of the loaded dict (e.g. ``"state_dict"``).
        prefix (str | None): keep only the keys starting with it, prefix removed.
        name (str): model name for error messages.

    Raises:
        CardError: unreadable file, an archive holding objects other than tensors, a missing key.
    """
    import torch  # here, not at import: listing models (`ronan models`) needs no torch

    who = f"{name}: " if name else ""
    if path.name.endswith(SAFETENSORS_SUFFIXES):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CardError(f"{who}{path.name} is not a readable safetensors file ({first_line(e, 160)})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - UnpicklingError and kin: one line
            raise CardError(
                f"{who}{path.name}: torch.load(weights_only=True) refused it "
                f"({described(e)}); save "
                "torch.save(model.state_dict(), f) or safetensors instead of a pickled object"
            ) from None
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            raise CardError(f"{who}{path.name} has no entry {key!r} (weights_key)")
        state = state[key]  # type: ignore[assignment]  # checked to be a dict just below
    if not isinstance(state, dict):
        raise CardError(
            f"{who}{path.name} does not hold a state dict (got {type(state).__name__}); set weights_key if it is nested"
        )
    if prefix is not None:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise CardError(f"{who}{path.name} has no keys starting with {prefix!r} (weights_prefix)")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CardError(f"{who}{path.name}: entry {bad[0]!r} is not a tensor; set weights_key to the state dict")
    return state


def import_factory(spec: str, code_dir: Path | None, name: str = ""):
    """The callable named by ``"package.module:callable"``, importing with ``code_dir`` first on sys.path.

    Raises:
        CardError: the module cannot be imported, is already imported from another folder,
            or has no such callable.
    """
    who = f"{name}: " if name else ""
    mod_name, attr = spec.split(":", 1)
    with _IMPORT_LOCK:
        entry = str(code_dir) if code_dir is not None else None
        if entry is not None:
            if not Path(entry).is_dir():
                raise CardError(f"{who}factory_path {entry} is not a folder")
            sys.path.insert(0, entry)
        try:
            module = importlib.import_module(mod_name)
        except Exception as e:  # noqa: BLE001 - any error in user code: one line
            raise CardError(f"{who}factory {spec}: cannot import {mod_name} ({described(e)})") from None
        finally:
            if entry is not None and entry in sys.path:
                sys.path.remove(entry)
    where = getattr(module, "__file__", None)
    if entry is not None and where and not Path(where).resolve().is_relative_to(Path(entry).resolve()):
        raise CardError(
            f"{who}factory {spec}: a module {mod_name!r} is already imported from {where}; "
            "give your module a distinct name"
        )
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CardError(f"{who}factory {spec}: {mod_name} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CardError(f"{who}factory {spec} is not callable")
    return obj


def _check_shape(card: ModelCard, gen: Generator) -> None:
    """The card's resolution, channels and input shape (where given) against the built model."""
    shape = getattr(gen, "z_shape", gen.input_shape)  # a wrapped module: the shape before conditioning
    checks = (
        ("resolution", card.resolution, gen.image_size),
        ("channels", card.channels, gen.channels),
        ("input_shape", list(card.input_shape) if card.input_shape else None, list(shape)),
    )
    for field, want, got in checks:
        if want is not None and want != got:
            raise CardError(f"{card.path or card.name}: {field}: the card says {want}, the model has {got}")


def build(card: ModelCard, device: torch.device | str = "cpu", **options) -> Generator:
    """Build, load and freeze the generator a card describes.

    Args:
        card (ModelCard): a validated card.
        device (torch.device | str): where the model runs (default CPU).
        **options: family or adapter options (e.g. ``class_search="relaxed"``, ``ddim_steps``).

    Raises:
        ModelUnavailable: missing or mismatching weights, diffusers files not available.
        CardError: the factory fails, weights do not fit, outputs contradict the card.
    """
    import torch

    from .base import Generator

    device = torch.device(device)
    if card.kind == "diffusers":
        return _build_diffusers(card, device, **options)
    digest = None
    state = None
    if card.weights_file is not None:
        path, digest = verified_weights(card)
        state = read_state_dict(path, card.weights_key, card.weights_prefix, card.name)
    if card.kind == "family":
        from .families import FAMILIES

        try:
            module = FAMILIES[card.family](**card.config, **options)
        except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as e:  # torch: a negative
            # or huge size is a RuntimeError ("Trying to create tensor with negative dimension")
            raise CardError(
                f"{card.path or card.name}: config: does not fit family {card.family!r} ({first_line(e)})"
            ) from None
    else:
        factory = import_factory(str(card.factory), card.factory_path, card.name)  # a factory card (kind)
        try:
            module = factory(**card.config, **options)
        except Exception as e:  # noqa: BLE001 - user code: one line
            raise CardError(f"{card.name}: factory {card.factory} failed ({described(e)})") from None
        if not isinstance(module, torch.nn.Module):
            raise CardError(
                f"{card.name}: factory {card.factory} returned {type(module).__name__}, not a torch.nn.Module"
            )
    if state is not None:
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CardError(
                f"{card.name}: weights do not fit the architecture in its card ({' '.join(str(e).split())[:200]})"
            ) from None
    if isinstance(module, Generator):
        gen = module
        if card.kind == "factory" and card.output_range != (0.0, 1.0):
            raise CardError(
                f"{card.path or card.name}: output_range: the factory returns a ronan Generator, "
                "whose images are in [0, 1] by contract"
            )
        gen.freeze()
    else:
        from .wrap import wrap_generator

        gen = wrap_generator(
            module.to(device),
            input_shape=card.input_shape,
            output_range=card.output_range,
            name=card.name,
            input_distribution=card.input_distribution,
            preprocessing=card.preprocessing,
            conditioning=card.conditioning,
            reference=card.reference,
            weights_sha256=digest,
            family=card.family,
        )
    gen.name = card.name
    gen.default_reference = card.reference
    gen.start_settings = card.learned_start
    gen.default_preset = card.preset
    if digest is None:
        from .wrap import state_dict_sha256

        digest = gen.weights_sha256 or state_dict_sha256(gen)
    gen.weights_sha256 = digest
    _check_shape(card, gen)
    return gen.to(device).freeze()


def hub_entry(card: ModelCard):
    """The :class:`~ronan.models.hub.HubModel` of a diffusers card."""
    from .hub import HUB_FAMILIES, HubModel

    return HubModel(
        card.name,
        card.family,
        str(card.diffusers),
        HUB_FAMILIES[card.family].components,
        card.description,
        str(card.data or ""),
        card.reference,
        card.resolution or 0,
        card.channels or 3,
        options=dict(card.config),
    )


def _build_diffusers(card: ModelCard, device: torch.device, **options) -> Generator:
    from .hub import load_hub

    gen = load_hub(hub_entry(card), device, **options)
    if card.weights_sha256 is not None and gen.weights_sha256 != card.weights_sha256:
        raise ModelUnavailable(
            f"{card.name}: the weights in {card.diffusers} do not match the SHA-256 in its card "
            f"({gen.weights_sha256[:12]}... != {card.weights_sha256[:12]}...)"
        )
    gen.default_reference = card.reference
    _check_shape(card, gen)
    return gen
