"""Model cards: the JSON file that tells RONAN how to build, feed and read a generator.

A card is ``<folder>/card.json``; relative paths in it are relative to ``<folder>``. Cards
live in the bundled ``assets/models/<name>/``, in the user models folder
(``$RONAN_MODELS_DIR``, see :mod:`ronan.paths`; ``ronan register`` writes them) or anywhere
on disk when given by path (``ronan attribute path/to/card.json image.png``). Every field is
checked when the card is read; a bad field gives one line naming the card and the field.

Format version 1 (``card_version``; a card without it is read as version 1). Exactly one
of three ways to build the model:

* ``family`` (str) + ``config`` (dict): a bundled architecture (:data:`FAMILIES`), built
  as ``FAMILIES[family](**config)``; weights ``weights_file`` (default ``model.safetensors``).
* ``factory`` (``"package.module:callable"``) + ``config`` (dict, keyword arguments,
  default ``{}``) + optional ``factory_path`` (folder put first on ``sys.path`` while the
  module is imported): your own code; the callable returns a ``torch.nn.Module``, wrapped
  with :func:`ronan.models.wrap.wrap_generator` using the fields below (a
  :class:`~ronan.models.base.Generator` it returns is used as is). ``family`` is then a
  free label (default ``"custom"``).
* ``diffusers`` (a local ``save_pretrained`` folder or a Hugging Face repo id) + ``family``
  (``"consistency"``, ``"ddim"``, ``"sd-latent"`` or ``"sd-noise"``) + ``config`` (adapter
  options, e.g. ``{"ddim_steps": 10}``): loaded like the hub models (safetensors only).

Other fields (defaults in brackets):

* ``name`` (str, required): ``^[a-z0-9][a-z0-9._-]{0,63}$``, no ``..``, not ``default`` or
  ``none``; equals the folder name for cards in a models folder.
* ``description`` [""], ``data`` [""] (str or object), ``role`` [``"generator"``;
  ``"reference"`` marks a model meant only as M_r], ``reference`` [null: no calibration]:
  default reference model name for Eq. 2 (never the model itself).
* ``weights_file`` [family: ``"model.safetensors"``; factory: null = the factory loads its
  own weights]: ``.safetensors``, or a PyTorch state-dict archive (``.pt``, ``.pth``,
  ``.bin``, ``.ckpt``) read only with ``torch.load(weights_only=True)``. Relative to the
  card folder (no ``..``) or absolute.
* ``weights_sha256`` (64 hex digits; required with ``weights_file``): checked before loading.
  Optional for diffusers cards (then checked against the folder's weights digest).
* ``weights_key`` [null]: take this entry of the loaded dict (e.g. ``"state_dict"``, ``"G"``);
  ``weights_prefix`` [null]: keep the keys with this prefix, prefix removed (e.g. ``"generator."``).
* ``input_shape`` (list of 1-4 positive ints; required for factory cards): one input
  without the batch dimension, e.g. ``[100]`` or ``[100, 1, 1]``.
* ``input_distribution`` [``"normal"``] (factory cards): ``"normal"``, ``"uniform"``,
  ``{"type": "normal", "std": s}`` or ``{"type": "uniform", "low": a, "high": b}``
  (``"uniform"`` means [-1, 1]).
* ``output_range`` (``[-1, 1]`` or ``[0, 1]``; required for factory cards): the module's
  output values; RONAN maps them to [0, 1].
* ``resolution`` (int, 8-4096), ``channels`` (1 or 3): the images made; optional (measured
  by one forward pass, and checked against it when given; ``register`` writes them).
* ``preprocessing`` [crop, lanczos]: a string (legacy, for humans: the default rules) or
  ``{"fit": "crop" | "pad" | "stretch", "resample": "lanczos" | "bicubic" | "bilinear" |
  "nearest"}``: how an uploaded image is brought to ``resolution`` x ``resolution``.
* ``conditioning`` [null] (factory cards): ``{"type": "class", "classes": K, "label": k | null}``:
  the module is called as ``module(z, labels)`` with integer labels; with ``label`` null the
  class of an image is unknown and every class is tried (the minimum counts).
* ``learned_start`` [null: the defaults of :class:`ronan.starts.StartSettings`]: how this model's
  start network is trained, for generators whose inputs the default network recovers too
  loosely, e.g. ``{"width": 64, "batch": 512, "steps": 9600}`` (keys ``width`` 8-256, ``batch``
  1-4096, ``steps`` 1-1000000, ``lr`` (0, 1], ``seed`` >= 0; omitted keys keep their default). Part
  of the start network's and the belonging distributions' keys.
* ``preset`` [null: ``"fast"``]: the inversion preset this model's attributions use when none is
  asked for (the preset ``"default"``, the CLI's and the app's default), e.g. ``"thorough"`` for a
  generator whose own images do not invert with ``fast``; one of :data:`ronan.preset_names.PRESET_NAMES`.
* For humans only (not interpreted): ``architecture``, ``parameters``, ``training_command``,
  ``training``, ``versions``, ``license``, ``notes``, ``created``, ``source``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from ..errors import CardError
from ..paths import make_shareable
from ..preset_names import PRESET_NAMES
from .hub import HUB_FAMILIES as _HUB_FAMILY_TABLE

CARD_VERSION = 1
"""Version of the card format this RONAN reads and writes."""
CARD_FILE = "card.json"
MAX_CARD_BYTES = 1 << 20
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED_NAMES = frozenset({"default", "none"})
NAME_RULE = (
    "1-64 characters from a-z 0-9 . _ -, starting with a letter or digit, without '..' (and not 'default' or 'none')"
)
FACTORY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
OUTPUT_RANGES = ((-1.0, 1.0), (0.0, 1.0))
FITS = ("crop", "pad", "stretch")
RESAMPLERS = ("lanczos", "bicubic", "bilinear", "nearest")
HUB_FAMILIES = tuple(_HUB_FAMILY_TABLE)
INFO_FIELDS = frozenset(
    {"architecture", "parameters", "training_command", "training", "versions", "license", "notes", "created", "source"}
)
FIELDS = (
    frozenset(
        {
            "card_version",
            "name",
            "description",
            "data",
            "role",
            "reference",
            "family",
            "config",
            "factory",
            "factory_path",
            "diffusers",
            "weights_file",
            "weights_sha256",
            "weights_key",
            "weights_prefix",
            "input_shape",
            "input_distribution",
            "output_range",
            "resolution",
            "channels",
            "preprocessing",
            "conditioning",
            "learned_start",
            "preset",
        }
    )
    | INFO_FIELDS
)


def is_safe_name(name) -> bool:
    """True if ``name`` is a valid model name (see :data:`NAME_RULE`); never a path."""
    return isinstance(name, str) and bool(NAME_RE.match(name)) and ".." not in name and name not in RESERVED_NAMES


def validate_name(name, what: str = "model name") -> str:
    """Return ``name`` if it is a valid model name, else raise a one-line :class:`CardError`."""
    if not is_safe_name(name):
        raise CardError(f"invalid {what} {name!r}: use {NAME_RULE}")
    return name


@dataclass(frozen=True)
class InputDistribution:
    """How inputs are drawn: ``"normal"`` (mean 0, ``std``) or ``"uniform"`` on [``low``, ``high``]."""

    type: str = "normal"
    std: float = 1.0
    low: float = -1.0
    high: float = 1.0

    def to_json(self):
        if self.type == "normal":
            return "normal" if self.std == 1.0 else {"type": "normal", "std": self.std}
        return (
            "uniform"
            if (self.low, self.high) == (-1.0, 1.0)
            else {"type": "uniform", "low": self.low, "high": self.high}
        )


@dataclass(frozen=True)
class Preprocessing:
    """How an uploaded image is fitted to the model's square size: ``fit`` and ``resample``."""

    fit: str = "crop"
    resample: str = "lanczos"


@dataclass(frozen=True)
class Conditioning:
    """Class conditioning: ``classes`` classes; ``label`` fixed, or None (every class is tried)."""

    classes: int
    label: int | None = None


@dataclass
class ModelCard:
    """A validated card. ``kind`` is ``"family"``, ``"factory"`` or ``"diffusers"``.

    Paths (``weights_file``, ``factory_path``, a local ``diffusers`` folder) are absolute.
    ``raw`` is the JSON object as read; ``path`` the card file (None for an in-memory card).
    """

    name: str
    kind: str
    family: str
    config: dict
    description: str = ""
    data: object = ""
    role: str = "generator"
    reference: str | None = None
    factory: str | None = None
    factory_path: Path | None = None
    diffusers: str | None = None
    weights_file: Path | None = None
    weights_sha256: str | None = None
    weights_key: str | None = None
    weights_prefix: str | None = None
    input_shape: tuple[int, ...] | None = None
    input_distribution: InputDistribution = field(default_factory=InputDistribution)
    output_range: tuple[float, float] | None = None
    resolution: int | None = None
    channels: int | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    conditioning: Conditioning | None = None
    learned_start: dict | None = None
    preset: str | None = None
    card_version: int = CARD_VERSION
    path: Path | None = None
    raw: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- parsing
_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


class _Fields:
    """Typed access to a card's JSON object, each failure one line naming the field."""

    def __init__(self, data: dict, source: str):
        self.d, self.source = data, source

    def fail(self, key: str, msg: str) -> NoReturn:
        raise CardError(f"{self.source}: {key}: {msg}")

    def get(self, key, types, default=None, required=False):
        if key not in self.d or self.d[key] is None:
            if required:
                self.fail(key, "required field is missing")
            return default
        v = self.d[key]
        if types is int and isinstance(v, bool) or not isinstance(v, types):
            names = " or ".join(_TYPE_NAMES[t] for t in (types if isinstance(types, tuple) else (types,)))
            self.fail(key, f"must be {names}, got {json.dumps(v)[:60]}")
        return v

    def path(self, key, folder: Path | None, required=False) -> Path | None:
        v = self.get(key, str, required=required)
        if v is None:
            return None
        p = Path(v)
        if not v.strip():
            self.fail(key, "must not be empty")
        if not p.is_absolute():
            if ".." in p.parts:
                self.fail(key, f"relative path {v!r} must stay inside the card's folder (no '..')")
            if folder is None:
                self.fail(key, f"relative path {v!r} needs a card file to be relative to")
            p = folder / p
        return p


def _number(f: _Fields, obj: dict, key: str, where: str, default: float) -> float:
    v = obj.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        f.fail(where, f"{key} must be a finite number, got {json.dumps(v)[:40]}")
    return float(v)


def _input_distribution(f: _Fields) -> InputDistribution:
    v = f.d.get("input_distribution")
    if v is None or v == "normal":
        return InputDistribution()
    if v == "uniform":
        return InputDistribution("uniform")
    if not isinstance(v, dict) or v.get("type") not in ("normal", "uniform"):
        f.fail(
            "input_distribution",
            f'must be \'normal\', \'uniform\' or {{"type": "normal"|"uniform", ...}}, got {json.dumps(v)[:60]}',
        )
    extra = set(v) - ({"type", "std"} if v["type"] == "normal" else {"type", "low", "high"})
    if extra:
        f.fail("input_distribution", f"unknown key {sorted(extra)[0]!r} for a {v['type']} distribution")
    if v["type"] == "normal":
        std = _number(f, v, "std", "input_distribution", 1.0)
        if std <= 0:
            f.fail("input_distribution", f"std must be > 0, got {std:g}")
        return InputDistribution("normal", std=std)
    low, high = _number(f, v, "low", "input_distribution", -1.0), _number(f, v, "high", "input_distribution", 1.0)
    if not low < high:
        f.fail("input_distribution", f"low must be < high, got [{low:g}, {high:g}]")
    return InputDistribution("uniform", low=low, high=high)


def _preprocessing(f: _Fields) -> Preprocessing:
    v = f.d.get("preprocessing")
    if v is None or isinstance(v, str):  # legacy free text: the default rules
        return Preprocessing()
    if not isinstance(v, dict):
        f.fail("preprocessing", f'must be a string or an object {{"fit", "resample"}}, got {json.dumps(v)[:60]}')
    extra = set(v) - {"fit", "resample", "note"}
    if extra:
        f.fail("preprocessing", f"unknown key {sorted(extra)[0]!r} (known: fit, resample, note)")
    fit, resample = v.get("fit", "crop"), v.get("resample", "lanczos")
    if fit not in FITS:
        f.fail("preprocessing", f"fit must be one of {', '.join(FITS)}, got {json.dumps(fit)}")
    if resample not in RESAMPLERS:
        f.fail("preprocessing", f"resample must be one of {', '.join(RESAMPLERS)}, got {json.dumps(resample)}")
    return Preprocessing(fit, resample)


def _conditioning(f: _Fields) -> Conditioning | None:
    v = f.d.get("conditioning")
    if v is None:
        return None
    if not isinstance(v, dict) or v.get("type") != "class":
        f.fail("conditioning", f'must be null or {{"type": "class", "classes": K}}, got {json.dumps(v)[:60]}')
    extra = set(v) - {"type", "classes", "label"}
    if extra:
        f.fail("conditioning", f"unknown key {sorted(extra)[0]!r} (known: type, classes, label)")
    k, label = v.get("classes"), v.get("label")
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 100000:
        f.fail("conditioning", f"classes must be an integer from 2 to 100000, got {json.dumps(k)}")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < k):
        f.fail("conditioning", f"label must be null or an integer in [0, {k - 1}], got {json.dumps(label)}")
    return Conditioning(k, label)


LEARNED_START_LIMITS = {"width": (8, 256), "batch": (1, 4096), "steps": (1, 1_000_000), "seed": (0, 2**31 - 1)}


def _learned_start(f: _Fields) -> dict | None:
    v = f.get("learned_start", dict)
    if v is None:
        return None
    for key, value in v.items():
        if key == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                f.fail("learned_start", f"lr must be a number in (0, 1], got {json.dumps(value)[:40]}")
        elif key in LEARNED_START_LIMITS:
            low, high = LEARNED_START_LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                f.fail("learned_start", f"{key} must be an integer from {low} to {high}, got {json.dumps(value)[:40]}")
        else:
            f.fail("learned_start", f"unknown key {key!r} (known: width, batch, steps, lr, seed)")
    return {k: (float(x) if k == "lr" else x) for k, x in v.items()}


def _preset(f: _Fields) -> str | None:
    v = f.get("preset", str)
    if v is None:
        return None
    if v not in PRESET_NAMES:
        f.fail("preset", f"unknown preset {json.dumps(v)[:40]} (known: {', '.join(PRESET_NAMES)})")
    return v


def inversion_fields(
    source: str, preset: str | None = None, learned_start: dict | None = None
) -> tuple[str | None, dict | None]:
    """Validate a model's ``preset`` and ``learned_start`` as a card's fields are (for models given
    without a card, :func:`ronan.models.wrap.wrap_generator`); returns them, ``learned_start``
    normalised.

    Raises:
        CardError: one line naming ``source`` and the field.
    """
    f = _Fields({"preset": preset, "learned_start": learned_start}, source)
    return _preset(f), _learned_start(f)


def parse_card(data: dict, source: str = "model card", folder: Path | None = None) -> ModelCard:
    """Validate the JSON object of a card and return a :class:`ModelCard`.

    Args:
        data (dict): the card's JSON object.
        source (str): how errors name the card (usually its path).
        folder (Path | None): folder relative paths are resolved against (the card's).

    Raises:
        CardError: one line, ``"<source>: <field>: <what is wrong>"``.
    """
    if not isinstance(data, dict):
        raise CardError(f"{source}: a model card must be a JSON object, got {type(data).__name__}")
    f = _Fields(data, source)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        f.fail(unknown[0], "unknown field (see the card format in README, 'Check images against your own model')")
    version = f.get("card_version", int, CARD_VERSION)
    if version != CARD_VERSION:
        f.fail(
            "card_version",
            f"this RONAN reads version {CARD_VERSION}, the card is version {version}"
            + ("; upgrade ronan" if version > CARD_VERSION else ""),
        )
    name = f.get("name", str, required=True)
    if not is_safe_name(name):
        f.fail("name", f"invalid model name {name!r}: use {NAME_RULE}")
    role = f.get("role", str, "generator")
    if role not in ("generator", "reference"):
        f.fail("role", f"must be 'generator' or 'reference', got {role!r}")
    reference = f.get("reference", str)
    if reference is not None and not is_safe_name(reference):
        f.fail("reference", f"invalid model name {reference!r}")
    if reference == name:
        f.fail("reference", "a model cannot be its own reference model")
    description = f.get("description", str, "")
    data_field = data.get("data", "")
    config = f.get("config", dict, {})
    factory, diffusers, family = f.get("factory", str), f.get("diffusers", str), f.get("family", str)

    if factory is not None and diffusers is not None:
        f.fail("factory", "give one of 'factory', 'diffusers' or a bundled 'family', not several")
    card = ModelCard(
        name=name,
        kind="family",
        family=family or "",
        config=config,
        description=description,
        data=data_field,
        role=role,
        reference=reference,
        card_version=version,
        raw=data,
    )
    card.weights_key = f.get("weights_key", str)
    card.weights_prefix = f.get("weights_prefix", str)
    card.weights_sha256 = f.get("weights_sha256", str)
    if card.weights_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", card.weights_sha256):
        f.fail("weights_sha256", "must be 64 lowercase hex digits (the SHA-256 of the weights file)")
    card.resolution = f.get("resolution", int)
    if card.resolution is not None and not 8 <= card.resolution <= 4096:
        f.fail("resolution", f"must be from 8 to 4096 pixels, got {card.resolution}")
    card.channels = f.get("channels", int)
    if card.channels is not None and card.channels not in (1, 3):
        f.fail("channels", f"must be 1 (grayscale) or 3 (RGB), got {card.channels}")
    shape = f.get("input_shape", list)
    if shape is not None:
        if not 1 <= len(shape) <= 4 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            f.fail("input_shape", f"must be a list of 1-4 positive integers, got {json.dumps(shape)[:60]}")
        card.input_shape = tuple(shape)
    rng = f.get("output_range", list)
    if rng is not None:
        if (
            tuple(float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x for x in rng)
            not in OUTPUT_RANGES
        ):
            f.fail("output_range", f"must be [-1, 1] or [0, 1], got {json.dumps(rng)[:60]}")
        card.output_range = (float(rng[0]), float(rng[1]))
    card.preprocessing = _preprocessing(f)
    card.learned_start = _learned_start(f)
    card.preset = _preset(f)
    weights = f.path("weights_file", folder)
    if weights is not None and not weights.name.endswith(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES):
        f.fail(
            "weights_file",
            f"{weights.name}: use a .safetensors file or a PyTorch state-dict archive ({', '.join(TORCH_SUFFIXES)})",
        )

    if factory is not None:
        card.kind, card.factory, card.family = "factory", factory, family or "custom"
        if not FACTORY_RE.match(factory):
            f.fail("factory", f"must be 'package.module:callable', got {factory!r}")
        card.factory_path = f.path("factory_path", folder)
        if card.input_shape is None:
            f.fail("input_shape", "required for a factory card (the shape of one input, e.g. [100])")
        if card.output_range is None:
            f.fail("output_range", "required for a factory card ([-1, 1] or [0, 1])")
        card.input_distribution = _input_distribution(f)
        card.conditioning = _conditioning(f)
        card.weights_file = weights
    else:
        for key in ("factory_path", "input_distribution", "output_range", "conditioning"):
            if data.get(key) is not None:
                f.fail(key, "only for factory cards (the architecture defines it otherwise)")
        if diffusers is not None:
            card.kind, card.diffusers = "diffusers", diffusers.strip()
            if family not in HUB_FAMILIES:
                f.fail("family", f"a diffusers card needs family {', '.join(HUB_FAMILIES)}; got {json.dumps(family)}")
            if weights is not None:
                f.fail("weights_file", "not used by a diffusers card (the weights are in the diffusers folder)")
            if not card.diffusers:
                f.fail("diffusers", "must name a folder or a Hugging Face repo id")
            local = Path(card.diffusers).expanduser()
            if local.is_absolute():
                card.diffusers = str(local)
            elif card.diffusers.startswith(".") or (folder is not None and (folder / local).is_dir()):
                if ".." in local.parts or folder is None:
                    f.fail("diffusers", f"relative folder {card.diffusers!r} must stay inside the card's folder")
                card.diffusers = str(folder / local)  # otherwise a Hugging Face repo id ("org/name")
        else:
            from .families import FAMILIES

            if family is None:
                f.fail(
                    "family",
                    "required: a bundled family ("
                    + ", ".join(FAMILIES)
                    + "), or give 'factory' (your own code) or 'diffusers' (a diffusers folder)",
                )
            if family not in FAMILIES:
                f.fail(
                    "family",
                    f"unknown family {family!r}; bundled families: {', '.join(FAMILIES)} "
                    "(use 'factory' for your own code)",
                )
            card.weights_file = (
                weights if "weights_file" in data else (folder / "model.safetensors" if folder is not None else None)
            )
    if card.weights_file is not None and card.weights_sha256 is None:
        f.fail("weights_sha256", "required with weights_file (ronan register computes it)")
    return card


# ------------------------------------------------------------------- files
def card_file(path: str | os.PathLike) -> Path:
    """The card file for ``path``: ``path`` itself, or ``path/card.json`` for a folder."""
    p = Path(path).expanduser()
    return p / CARD_FILE if p.is_dir() else p


@functools.lru_cache(maxsize=256)
def _read(path: str, mtime_ns: int, size: int) -> ModelCard:
    p = Path(path)
    if size > MAX_CARD_BYTES:
        raise CardError(f"{p}: card is larger than {MAX_CARD_BYTES >> 10} KiB")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CardError(f"{p}: not valid JSON ({e})") from None
    except OSError as e:
        raise CardError(f"{p}: unreadable ({e.strerror or e})") from None
    card = parse_card(data, str(p), p.parent)
    card.path = p
    return card


def read_card_file(path: str | os.PathLike) -> ModelCard:
    """Read and validate the card at ``path`` (a ``card.json`` or its folder); cached by mtime.

    Raises:
        CardError: missing, unreadable, not JSON, or an invalid field (one line).
    """
    p = card_file(path).resolve()
    try:
        st = p.stat()
    except OSError:
        raise CardError(f"{p}: no model card there") from None
    if not p.is_file():
        raise CardError(f"{p}: not a file")
    return _read(str(p), st.st_mtime_ns, st.st_size)


def card_stamp(card: ModelCard) -> tuple:
    """What changes when the card file changes (for caches of loaded models)."""
    if card.path is None:
        return ()
    try:
        st = card.path.stat()
        return (str(card.path), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(card.path),)


def scan(folder: Path) -> dict[str, ModelCard | CardError]:
    """Cards in the sub-folders of ``folder``: folder name -> card, or the error that makes it unusable.

    Only sub-folders whose name is a valid model name and that hold a ``card.json`` are
    considered; a card whose ``name`` differs from its folder's is an error.
    """
    out: dict[str, ModelCard | CardError] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return out
    for e in entries:
        if not is_safe_name(e.name) or not e.is_dir() or not os.path.isfile(os.path.join(e.path, CARD_FILE)):
            continue
        try:
            card = read_card_file(Path(e.path) / CARD_FILE)
        except CardError as err:
            out[e.name] = err
            continue
        if card.name != e.name:
            out[e.name] = CardError(f"{card.path}: name: {card.name!r} differs from its folder name {e.name!r}")
        else:
            out[e.name] = card
    return out


def write_card(data: dict, folder: Path) -> Path:
    """Validate ``data`` and write it atomically as ``folder/card.json``; returns the path."""
    folder = Path(folder)
    parse_card(data, str(folder / CARD_FILE), folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        make_shareable(Path(tmp))
        os.replace(tmp, folder / CARD_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder / CARD_FILE
