"""Hub models: catalogue, availability, download and loading of diffusers checkpoints.

Hub models are never downloaded behind the user's back: ``python -m ronan download NAME``
fetches the files (safetensors weights and JSON/text configs only, never pickles) into the
ordinary Hugging Face cache (``$HF_HOME`` / ``$HF_HUB_CACHE``); every other use reads the cache
with ``local_files_only=True`` and fails fast, in one line, when the files are not there.

Availability states (``hub_state``):

* ``"cached"``: every needed file is in the local cache -> the model loads.
* ``"downloadable"``: not cached, the Hub may be reached -> run ``python -m ronan download NAME``.
* ``"unavailable"``: not cached and offline (``HF_HUB_OFFLINE=1``) -> download it elsewhere
  (or copy the cache folder) first.

No network request is made to tell these apart (a listing never hangs). diffusers and
transformers are imported lazily, inside the loaders, so importing :mod:`ronan` stays fast.
A ``repo`` that is an existing local folder (a ``save_pretrained`` layout) is used as is; the
tests build tiny random-weight pipelines that way and load them through this same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..digests import file_sha256
from ..errors import ModelUnavailable, described
from .snapshot import NO_WEIGHTS, WEIGHT_FILES, component_dir, weights_file

if TYPE_CHECKING:
    import torch

log = logging.getLogger("ronan")


@dataclass
class HubModel:
    """A hub catalogue entry.

    Attributes:
        name (str): registry name (``python -m ronan attribute NAME ...``).
        family (str): adapter family: ``"consistency"``, ``"ddim"``, ``"sd-latent"``, ``"sd-noise"``.
        repo (str): Hugging Face repo id, or a local folder with the same layout.
        components (tuple[str, ...]): sub-folders loaded (``""`` = repo root).
        description (str), data (str): for humans.
        reference (str | None): default reference model for calibration (never itself).
        resolution (int), channels (int): image side and channels.
        options (dict): default adapter options (e.g. DDIM steps).
        size_gb (float): approximate download size.
    """

    name: str
    family: str
    repo: str
    components: tuple[str, ...]
    description: str
    data: str
    reference: str | None
    resolution: int
    channels: int = 3
    options: dict = field(default_factory=dict)
    size_gb: float = 0.0


@dataclass(frozen=True)
class HubFamily:
    """An adapter family of diffusers models: the adapter class (module of this package, class
    name; imported on first load), the sub-folders it loads and its fixed options."""

    module: str
    cls: str
    components: tuple[str, ...]
    options: dict = field(default_factory=dict)

    def adapter(self) -> Any:
        """The adapter class, a :class:`~ronan.models.base.Generator` with a ``from_folder(root, **options)``
        constructor (imports diffusers)."""
        return getattr(importlib.import_module(f".{self.module}", __package__), self.cls)


_SD_COMPONENTS = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
HUB_FAMILIES: dict[str, HubFamily] = {
    "consistency": HubFamily("diffusers_consistency", "ConsistencyModel", ("unet", "scheduler")),
    "ddim": HubFamily("diffusers_ddim", "DDIMGenerator", ("unet", "scheduler")),
    "sd-latent": HubFamily("diffusers_sd", "StableDiffusionGenerator", _SD_COMPONENTS, {"mode": "latent"}),
    "sd-noise": HubFamily("diffusers_sd", "StableDiffusionGenerator", _SD_COMPONENTS, {"mode": "noise"}),
}
"""Adapter families of diffusers models (model cards use the same names): loading dispatches here."""
SD2 = "stabilityai/stable-diffusion-2-base"
HUB_MODELS: dict[str, HubModel] = {
    m.name: m
    for m in [
        HubModel(
            "cm-imagenet64-l2",
            "consistency",
            "openai/diffusers-cd_imagenet64_l2",
            ("unet", "scheduler"),
            "OpenAI consistency model (distilled, L2), class-conditional ImageNet 64x64, one step",
            "ImageNet 64x64",
            "ddpm-cifar10",
            64,
            size_gb=1.2,
        ),
        HubModel(
            "cm-imagenet64-lpips",
            "consistency",
            "openai/diffusers-cd_imagenet64_lpips",
            ("unet", "scheduler"),
            "OpenAI consistency model (distilled, LPIPS), class-conditional ImageNet 64x64, one step",
            "ImageNet 64x64",
            "ddpm-cifar10",
            64,
            size_gb=1.2,
        ),
        HubModel(
            "cm-ct-imagenet64",
            "consistency",
            "openai/diffusers-ct_imagenet64",
            ("unet", "scheduler"),
            "OpenAI consistency model (consistency training), class-conditional ImageNet 64x64, one step",
            "ImageNet 64x64",
            "ddpm-cifar10",
            64,
            size_gb=1.2,
        ),
        HubModel(
            "cm-bedroom256",
            "consistency",
            "openai/diffusers-cd_bedroom256_l2",
            ("unet", "scheduler"),
            "OpenAI consistency model (distilled, L2), LSUN bedroom 256x256, one step",
            "LSUN bedroom",
            "cm-imagenet64-l2",
            256,
            size_gb=1.6,
        ),
        HubModel(
            "cm-cat256",
            "consistency",
            "openai/diffusers-cd_cat256_l2",
            ("unet", "scheduler"),
            "OpenAI consistency model (distilled, L2), LSUN cat 256x256, one step",
            "LSUN cat",
            "cm-imagenet64-l2",
            256,
            size_gb=1.6,
        ),
        HubModel(
            "ddpm-cifar10",
            "ddim",
            "google/ddpm-cifar10-32",
            ("unet", "scheduler"),
            "DDPM on CIFAR-10 32x32 sampled by a 10-step deterministic DDIM (eta 0)",
            "CIFAR-10 train",
            "cm-imagenet64-l2",
            32,
            options={"ddim_steps": 10},
            size_gb=0.15,
        ),
        HubModel(
            "sd2-latent",
            "sd-latent",
            SD2,
            ("vae", "unet", "text_encoder", "tokenizer", "scheduler"),
            "Stable Diffusion 2 base 512x512: inverts the VAE-decoder latent from the encoder's estimate (fast)",
            "LAION-5B subset",
            "cm-imagenet64-l2",
            512,
            size_gb=2.6,
        ),
        HubModel(
            "sd2-noise",
            "sd-noise",
            SD2,
            ("vae", "unet", "text_encoder", "tokenizer", "scheduler"),
            "Stable Diffusion 2 base 512x512: paper-faithful inversion of the initial noise through a "
            "few-step DDIM sampler (slow; GPU)",
            "LAION-5B subset",
            "cm-imagenet64-l2",
            512,
            size_gb=2.6,
        ),
    ]
}


# ------------------------------------------------------------------ files
def _patterns(m: HubModel) -> list[str]:
    """allow_patterns of the files ``m`` needs: configs, tokenizer text, safetensors weights."""
    pats = ["model_index.json"]
    for c in m.components:
        pre = f"{c}/" if c else ""
        pats += [f"{pre}*.json", f"{pre}*.txt"]
        if c not in NO_WEIGHTS:
            pats += [f"{pre}{f}" for f in WEIGHT_FILES]
    if "unet" in m.components:  # flat repos (google/ddpm-*) keep the UNet at the root
        pats += ["config.json", "scheduler_config.json", "diffusion_pytorch_model.safetensors"]
    return pats


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, not at import)."""
    v = os.environ.get("HF_HUB_OFFLINE", "")
    if v.strip().upper() in ("1", "ON", "YES", "TRUE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover
        return False


def _missing(root: Path, m: HubModel) -> list[str]:
    out = []
    for c in m.components:
        d = component_dir(root, c)
        if d is None:
            out.append(f"{c}/config")
        elif c not in NO_WEIGHTS and weights_file(d) is None:
            out.append(f"{c}/*.safetensors")
    return out


def local_snapshot(m: HubModel) -> Path | None:
    """Local folder holding every file ``m`` needs, or None (no network, never downloads)."""
    if Path(m.repo).is_dir():
        root = Path(m.repo)
        return None if _missing(root, m) else root
    try:
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(m.repo, local_files_only=True, allow_patterns=_patterns(m)))
    except Exception:  # LocalEntryNotFoundError and kin: not cached
        return None
    return None if _missing(root, m) else root


def hub_state(name: str) -> tuple[str, str | None]:
    """``("cached", None)``, ``("downloadable", reason)`` or ``("unavailable", reason)`` (no network)."""
    return state_of(HUB_MODELS[name])


def state_of(m: HubModel) -> tuple[str, str | None]:
    """:func:`hub_state` of a catalogue entry or of a model card's diffusers model."""
    name = m.name
    if local_snapshot(m) is not None:
        return "cached", None
    if Path(m.repo).is_dir() or m.repo.startswith(("/", ".")):
        return "unavailable", f"{name}: local folder {m.repo} lacks the files of {', '.join(m.components)}"
    size = f"~{m.size_gb:g} GB" if m.size_gb else "size unknown"
    if is_offline():
        return "unavailable", (
            f"{name} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"on a machine with internet run `python -m ronan download {name}` "
            f"({size}) and copy the cache ({cache_folder()})"
        )
    return "downloadable", (
        f"{name} is not downloaded yet; run `python -m ronan download {name}` ({size} from {m.repo})"
    )


def cache_folder() -> str:
    """The Hugging Face hub cache folder in use."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def download(name: str) -> Path:
    """Download ``name``'s safetensors weights and configs into the Hugging Face cache.

    Raises:
        ModelUnavailable: offline, unknown repo, no network, or no safetensors weights.
    """
    return download_model(HUB_MODELS[name])


def download_model(m: HubModel, timeout: float | None = None) -> Path:
    """:func:`download` of a catalogue entry or of a model card's diffusers model.

    Args:
        timeout (float | None): seconds to wait for the server — to connect and for each read —
            before giving up with a one-line :class:`ModelUnavailable`; default ``RONAN_DOWNLOAD_TIMEOUT``
            (30, :mod:`ronan.limits`). A server that accepts and never answers cannot hang the command.
    """
    from .. import limits

    timeout = limits.current().download_timeout if timeout is None else timeout
    name = m.name
    if Path(m.repo).is_dir():
        root = local_snapshot(m)
        if root is None:
            raise ModelUnavailable(state_of(m)[1])
        return root
    if is_offline():
        raise ModelUnavailable(f"cannot download {name}: HF_HUB_OFFLINE is set (unset it on a machine with internet)")
    from huggingface_hub import snapshot_download

    try:
        with _timeouts(timeout):
            root = Path(snapshot_download(m.repo, allow_patterns=_patterns(m), etag_timeout=timeout))
    except Exception as e:  # network, authentication, missing repo, timeout: one line
        first = (str(e).splitlines() or [""])[0][:200]
        if "timeout" in f"{type(e).__name__} {first}".lower():
            first += f" (no answer within {timeout:g} s; RONAN_DOWNLOAD_TIMEOUT sets how long to wait)"
        raise ModelUnavailable(f"cannot download {name} from {m.repo}: {type(e).__name__}: {first}") from None
    missing = _missing(root, m)
    if missing:
        raise ModelUnavailable(
            f"{name}: {m.repo} has no safetensors/config for {', '.join(missing)}; RONAN loads only safetensors weights"
        )
    return root


@contextlib.contextmanager
def _timeouts(seconds: float):
    """Make every HTTP request of huggingface_hub give up after ``seconds`` without progress (to connect,
    and for each read or write) for the duration of the block.

    huggingface_hub's client waits forever by default, and ``repo_info`` passes ``timeout=None``
    explicitly, which overrides a client-wide timeout; so the client's transports are wrapped to
    fill in every timeout left unset (those set explicitly, e.g. ``etag_timeout``, are kept).
    """
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    httpx = _http.httpx2

    class Bounded(httpx.BaseTransport):
        def __init__(self, inner):
            self.inner = inner

        def handle_request(self, request):
            given = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {
                k: seconds if given.get(k) is None else given[k] for k in ("connect", "read", "write", "pool")
            }
            return self.inner.handle_request(request)

        def close(self):
            self.inner.close()

    def factory():
        client = _http.default_client_factory()
        client._transport = Bounded(client._transport)
        client._mounts = {k: Bounded(v) if v is not None else v for k, v in client._mounts.items()}
        return client

    saved = constants.HF_HUB_DOWNLOAD_TIMEOUT
    huggingface_hub.set_client_factory(factory)
    constants.HF_HUB_DOWNLOAD_TIMEOUT = seconds  # type: ignore[assignment]  # declared int; a float works
    try:
        yield
    finally:
        constants.HF_HUB_DOWNLOAD_TIMEOUT = saved
        huggingface_hub.set_client_factory(_http.default_client_factory)


# ---------------------------------------------------------------- loading
def weights_digest(root: Path, components: tuple[str, ...]) -> str:
    """SHA-256 identifying the weights: of the file for one component, of the hashes for several.

    A file in the Hugging Face cache is a link to a blob named by its SHA-256 (for LFS
    files), which is used without re-reading the file.
    """
    digests = []
    for c in components:
        d = component_dir(root, c)
        p = weights_file(d) if d is not None and c not in NO_WEIGHTS else None
        if p is None:
            continue
        blob = p.resolve().name
        digests.append(
            blob if len(blob) == 64 and all(ch in "0123456789abcdef" for ch in blob) else file_sha256(p.resolve())
        )
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def require_snapshot(m: HubModel | str) -> Path:
    """Local folder of ``m`` (an entry or a hub model name); raises a one-line ModelUnavailable saying how to get it."""
    m = HUB_MODELS[m] if isinstance(m, str) else m
    root = local_snapshot(m)
    if root is None:
        raise ModelUnavailable(state_of(m)[1])
    return root


def load_hub_model(name: str, device: torch.device, **options):
    """Build the frozen adapter of hub model ``name`` from the local cache (no network)."""
    return load_hub(HUB_MODELS[name], device, **options)


def load_hub(m: HubModel, device: torch.device, **options):
    """:func:`load_hub_model` of a catalogue entry or of a model card's diffusers model."""
    name = m.name
    root = require_snapshot(m)
    family = HUB_FAMILIES.get(m.family)
    if family is None:  # pragma: no cover - cards and the catalogue name known families only
        raise ModelUnavailable(f"{name}: unknown hub family {m.family!r}")
    opts = {**family.options, **m.options, **options}
    try:
        cls = family.adapter()
    except ImportError as e:
        raise ModelUnavailable(
            f"{name} needs the diffusers package ({e}); pip install -r requirements.txt "
            "(or pip install '.[hub]' from a clone)"
        ) from None
    try:
        model = cls.from_folder(root, **opts)
    except (OSError, RuntimeError) as e:  # missing/damaged files, weights that do not fit the config
        raise ModelUnavailable(f"{name}: cannot load {root} ({described(e, 200)})") from None
    model.name = name
    model.weights_sha256 = weights_digest(root, m.components)
    if device.type == "cpu":
        slow = "slow" if m.resolution <= 64 else "very slow (minutes to hours per image; use a GPU)"
        log.warning("%s runs on the CPU: attribution is %s; see README 'Hub models' for timings", name, slow)
    return model.to(device).freeze()
