"""Command line: ``ronan`` / ``python -m ronan {models,register,generate,calibrate,attribute,evaluate,download} ...``.

``MODEL`` is a catalogue name (bundled, hub or registered user model) or the path of a model
card (``path/to/card.json``, or a folder holding one).

Exit status: 0 on success, 2 when any input was bad (unknown model, unreadable image,
invalid option, a value over an operator limit of :mod:`ronan.limits`) — other images are still
processed — and 130 when interrupted. User errors print one line ``error: ...`` on stderr, never
a traceback; warnings (a damaged calibration cache, a setting without effect) print one line
``warning: ...`` / ``note: ...``. File names are printed with control characters escaped (a
newline in a name never splits a line). Output piped into ``head`` ends quietly.

Heavy libraries (torch, scipy) are imported only by the commands that need them: ``models``
starts in well under a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__, limits
from .errors import RonanError

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
LIGHT_COMMANDS = {"models"}
"""Commands whose parser and work need no torch (their options are built without the method options)."""


def safe(text) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``...), so that one item stays one line."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _err(msg: str) -> None:
    print(f"error: {safe(msg)}", file=sys.stderr, flush=True)


def _warn(msg: str, kind: str = "warning") -> None:
    print(f"{kind}: {safe(msg)}", file=sys.stderr, flush=True)


def _status(msg: str) -> None:
    """What the command is doing now (stderr, at once)."""
    print(safe(msg), file=sys.stderr, flush=True)


class _WarningLines(logging.Handler):
    """Library warnings (logger ``ronan``) as one ``warning: ...`` line each on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        _warn(record.getMessage())


def _setup_logging() -> None:
    """The library's warnings as ``warning:`` lines; Pillow's own log records (its decoders' complaints
    about a damaged file, e.g. ``More samples per pixel than can be decoded: 9999``) are dropped: the
    file's one ``error:`` line already says what failed."""
    pil = logging.getLogger("PIL")
    if not any(isinstance(h, logging.NullHandler) for h in pil.handlers):
        pil.addHandler(logging.NullHandler())  # a handler in the chain: logging's last resort stays silent
    log = logging.getLogger("ronan")
    if not any(isinstance(h, _WarningLines) for h in log.handlers):
        log.addHandler(_WarningLines(logging.WARNING))
    if log.level == logging.NOTSET or log.level > logging.WARNING:
        log.setLevel(logging.WARNING)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default: auto)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per inversion (default 1: on a CPU the inspected and reference "
        "inversions then run side by side, one core each; 0 leaves torch's default)",
    )


def _add_method(p: argparse.ArgumentParser) -> None:
    from .distances import DISTANCES
    from .inversion import PRESETS
    from .preset_names import DEFAULT_PRESET, MODEL_PRESET

    p.add_argument(
        "--reference",
        default="default",
        help="reference model for calibration (default: the model's pairing; 'none' disables)",
    )
    p.add_argument("--no-calibration", action="store_true", help="same as --reference none")
    p.add_argument("--distance", default="mse", choices=DISTANCES, help="loss L (default: mse)")
    p.add_argument(
        "--preset",
        default=MODEL_PRESET,
        choices=[MODEL_PRESET, *PRESETS],
        help=f"inversion preset (default: {MODEL_PRESET}, the model card's preset, else {DEFAULT_PRESET}); "
        + "; ".join(f"{k}: {v.describe()}" for k, v in PRESETS.items()).replace("%", "%%"),
    )
    p.add_argument(
        "--steps", type=int, default=None, help="override the preset's steps (1 .. RONAN_MAX_STEPS, default limit 5000)"
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        help="override the preset's restarts (1 .. RONAN_MAX_ROWS_PER_IMAGE, default limit 64)",
    )
    p.add_argument("--lr", type=float, default=None, help="override the preset's learning rate (finite, > 0)")
    p.add_argument(
        "--precision",
        default=None,
        choices=["fp32", "bf16", "fp16"],
        help="generator precision on CUDA (default fp32; elsewhere ignored with a note)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the inversions, 0 .. 2**63-1 (default 0)")
    p.add_argument(
        "--calibration-n",
        type=int,
        default=100,
        help="N of the belonging distribution (default 100, at most RONAN_MAX_CALIBRATION_N)",
    )
    p.add_argument("--calibration-seed", type=int, default=0, help="seed of the belonging distribution (default 0)")
    p.add_argument(
        "--no-rebuild",
        action="store_true",
        help="never build a belonging distribution: fail when it is missing or damaged (default: build "
        "it once and cache it; a damaged cache file is reported, kept as FILE.damaged and rebuilt)",
    )
    p.add_argument(
        "--assume-edit",
        default="auto",
        metavar="EDIT",
        help="edit the images went through: auto (default: detected from each file - JPEG or WebP "
        "quality, size), none, robust (a family of common edits), or a spec such as jpeg:75, webp:80, "
        "resize:0.5, crop:0.9, noise:0.01, filter:contrast, or a chain resize:0.5+jpeg:90",
    )
    p.add_argument(
        "--edit-mode",
        default=None,
        choices=["samples", "through"],
        help="how an edit enters the method: samples (belonging samples pass through it) or through "
        "(also invert through its differentiable twin); default: the measured best per edit",
    )
    p.add_argument(
        "--contrast",
        default="auto",
        choices=["auto", "on", "off"],
        help="the contrast check (robust test): a belonging verdict also needs the image set apart from "
        "held-out real pictures passed through the same edit, else it is inconclusive; auto (default: "
        "edited images), on (every image), off. calibrate: on also builds that contrast distribution",
    )
    p.add_argument(
        "--contrast-alpha",
        type=float,
        default=0.01,
        help="level of the contrast check (default 0.01: with 100 real pictures, beat every one)",
    )
    p.add_argument(
        "--contrast-pictures",
        metavar="DIR",
        default=None,
        help="real pictures for the contrast check (up to 100 image files of DIR, never trained on; "
        "default: the bundled tier's held-out set, bundled models only)",
    )


def build_parser(full: bool = True) -> argparse.ArgumentParser:
    """The argument parser; ``full=False`` leaves out the options that need torch to describe
    (for :data:`LIGHT_COMMANDS`: those commands parse the same)."""
    from .preset_names import PRESET_NAMES

    prog = "ronan" if Path(sys.argv[0]).name == "ronan" else "python -m ronan"
    method = _add_method if full else (lambda p: None)
    parser = argparse.ArgumentParser(prog=prog, description="RONAN origin attribution of generated images")
    parser.add_argument("--version", action="version", version=f"ronan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the models and whether they are available")
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = sub.add_parser(
        "register",
        help="register your own model: write its card into the user models folder",
        description="Write a model card for NAME (weights hashed, model built and run once to check "
        "it) into the user models folder ($RONAN_MODELS_DIR).",
    )
    p.add_argument("name", help="model name: a-z 0-9 . _ - (starting with a letter or digit), at most 64")
    how = p.add_argument_group("the architecture (one of --factory, --family with --weights, --diffusers)")
    how.add_argument(
        "--factory",
        metavar="MOD:FN",
        help="package.module:callable or path/to/file.py:callable returning a torch.nn.Module",
    )
    how.add_argument(
        "--family",
        help="a bundled family (dcgan, dcgan64, ...); with --diffusers: consistency, ddim, "
        "sd-latent or sd-noise; with --factory: a label",
    )
    how.add_argument("--diffusers", metavar="FOLDER|REPO", help="a diffusers save_pretrained folder or hub repo id")
    how.add_argument("--config", metavar="JSON", help="keyword arguments of the factory/family/adapter, as JSON")
    how.add_argument(
        "--code-dir",
        metavar="DIR",
        help="folder to import the factory's module from (default: the current folder if it is there)",
    )
    p.add_argument(
        "--weights",
        metavar="FILE",
        help=".safetensors, or a PyTorch state-dict archive (.pt/.pth/.bin/"
        ".ckpt, read with torch.load(weights_only=True))",
    )
    p.add_argument("--weights-key", help="entry of the weights file holding the state dict (e.g. state_dict)")
    p.add_argument("--weights-prefix", help="keep keys with this prefix, prefix removed (e.g. generator.)")
    p.add_argument("--no-copy", action="store_true", help="record the weights' absolute path instead of copying them")
    p.add_argument("--input-shape", metavar="N[,N...]", help="shape of one input, e.g. 100 or 100,1,1 (--factory)")
    p.add_argument(
        "--input-distribution",
        default="normal",
        help='normal (default), uniform ([-1, 1]) or JSON such as \'{"type": "normal", "std": 0.7}\'',
    )
    p.add_argument(
        "--output-range",
        metavar="LO,HI",
        help="the module's output range: --output-range=-1,1 (tanh) or --output-range=0,1 (--factory)",
    )
    p.add_argument("--classes", type=int, help="class-conditional module(z, labels) with this many classes")
    p.add_argument("--label", type=int, help="with --classes: the fixed class (default: every class is tried)")
    p.add_argument("--fit", choices=["crop", "pad", "stretch"], help="how uploads are fitted (default crop)")
    p.add_argument("--resample", choices=["lanczos", "bicubic", "bilinear", "nearest"], help="default lanczos")
    p.add_argument("--reference", default=None, help="default reference model for calibration (default: none)")
    p.add_argument("--description", default="", help="one line for humans")
    p.add_argument("--data", default="", help="what the model was trained on (for humans)")
    p.add_argument("--role", default="generator", choices=["generator", "reference"])
    p.add_argument(
        "--preset",
        choices=list(PRESET_NAMES),
        help="the inversion preset its attributions run when none is asked for (default: fast)",
    )
    p.add_argument(
        "--learned-start",
        metavar="JSON",
        help='how its start network is trained, e.g. \'{"width": 64, "batch": 512, "steps": 9600}\' '
        "(keys width, batch, steps, lr, seed; default: the defaults)",
    )
    p.add_argument(
        "--models-dir", metavar="DIR", help="where to write (default: $RONAN_MODELS_DIR or the user models folder)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing registration of NAME")

    p = sub.add_parser("download", help="download a hub model (diffusers, safetensors) into the Hugging Face cache")
    p.add_argument("model", help="hub model name (see `models`)")

    p = sub.add_parser("generate", help="generate images with a model (DIR/000000.png ...)")
    p.add_argument("model", help="model name (see `models`) or path of a model card (card.json or its folder)")
    p.add_argument("--n", type=int, default=16, help="number of images (default 16, at most 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0); --n and --seed together define the images")
    p.add_argument("--out", required=True, help="output folder (created)")
    _add_common(p)

    p = sub.add_parser("calibrate", help="build (or show) a model's belonging distribution")
    p.add_argument("model", help="model name (see `models`) or path of a model card (card.json or its folder)")
    p.add_argument("--n", type=int, default=100, help="belonging samples N (default 100)")
    p.add_argument("--force", action="store_true", help="rebuild even when a valid cache exists")
    p.add_argument("--json", action="store_true", help="print the distribution summary as JSON")
    method(p)
    _add_common(p)

    p = sub.add_parser("attribute", help="was IMAGE generated by MODEL?")
    p.add_argument("model", help="model name (see `models`) or path of a model card (card.json or its folder)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--alpha", type=float, default=0.05, help="significance of Grubbs' test (default 0.05)")
    p.add_argument(
        "--test",
        default="robust",
        choices=["robust", "paper"],
        help="robust (default: log domain, failed belonging inversions removed, inconclusive when the "
        "evidence is weak) or paper (Eq. 3 on all N values, as published)",
    )
    p.add_argument(
        "--no-floor-rule",
        action="store_true",
        help="robust test: no floor rule (when the whole belonging sample cannot carry a verdict, every verdict "
        "stays inconclusive, even for an image whose inversion reached the 8-bit floor)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    p.add_argument("--history", action="store_true", help="include loss curves in the JSON")
    p.add_argument(
        "--full-reference",
        action="store_true",
        help="invert every image on the reference model to the end, so that its loss and A' are exact "
        "(default: the reference's inversion of an image ends once its verdict can no longer change; "
        "its loss is then an upper bound and A' a lower bound; the verdicts are the same; "
        "--preset paper always inverts it to the end, as the paper does)",
    )
    method(p)
    _add_common(p)

    p = sub.add_parser("evaluate", help="confusion table and ROC AUC on labelled image sets")
    p.add_argument("model", help="model name (see `models`) or path of a model card (card.json or its folder)")
    p.add_argument("--belonging", required=True, metavar="SRC", help="folder of images, or generate:MODEL")
    p.add_argument(
        "--non-belonging",
        required=True,
        action="append",
        metavar="SRC",
        help="folder of images, or generate:MODEL (repeatable: one row each)",
    )
    p.add_argument("--n", type=int, default=100, help="samples K drawn for generate: sources (default 100)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance of Grubbs' test (default 0.05)")
    p.add_argument("--test", default="robust", choices=["robust", "paper"], help="decision test (default robust)")
    p.add_argument("--no-floor-rule", action="store_true", help="robust test without the floor rule (see attribute)")
    p.add_argument(
        "--edit",
        default=None,
        metavar="EDIT",
        help="apply EDIT (jpeg:Q, resize:F, crop:F, noise:S, filter:NAME, chains with +) to every image "
        "of both groups before attribution, for the paper's Table 8; the edit is then assumed "
        "(unless --assume-edit says otherwise)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per image to FILE")
    method(p)
    _add_common(p)
    return parser


def cmd_models(args) -> int:
    from .models.registry import info_dict, list_models, problems

    infos = list_models()
    for line in problems():
        _warn(line)
    if args.json:
        print(json.dumps([info_dict(i) for i in infos], indent=2))
        return EXIT_OK
    rows = []
    for i in infos:
        state = (
            ("available" if i.available else f"unavailable: {i.reason}")
            if i.source != "user"
            else (f"ready ({i.card})" if i.available else f"unavailable: {i.reason}")
        )
        size = f"{i.resolution}x{i.resolution}x{i.channels}" if i.resolution else "?"
        rows.append([i.name, i.source, i.family, size, f"ref={i.reference or '-'}", state])
    print(columns(rows))
    return EXIT_OK


def columns(rows: list[list[str]]) -> str:
    """Rows as aligned text columns (each as wide as its longest cell; the last one unpadded)."""
    rows = [[safe(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]) - 1)] if rows else []
    return "\n".join(" ".join([c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]) for r in rows)


def _numbers(text: str | None, what: str) -> list | None:
    if text is None:
        return None
    try:
        vals = json.loads(text) if text.strip().startswith("[") else [float(x) for x in text.split(",")]
    except ValueError:
        raise RonanError(f"{what}: expected numbers separated by commas, got {text!r}") from None
    return [int(v) if float(v).is_integer() else v for v in vals]


def _json_arg(text: str | None, what: str):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise RonanError(f"{what}: not valid JSON ({e})") from None


def cmd_register(args) -> int:
    from .models.register import register_model

    if args.factory and (args.input_shape is None or args.output_range is None):
        raise RonanError(
            "--factory needs --input-shape (e.g. 100) and --output-range (--output-range=-1,1 for a tanh "
            "output, --output-range=0,1 for a sigmoid)"
        )
    dist = args.input_distribution
    if dist.strip().startswith("{"):
        dist = _json_arg(dist, "--input-distribution")
    conditioning = None
    if args.classes is not None:
        conditioning = {"type": "class", "classes": args.classes, "label": args.label}
    elif args.label is not None:
        raise RonanError("--label needs --classes")
    prep = {k: v for k, v in (("fit", args.fit), ("resample", args.resample)) if v} or None
    reference = None if args.reference in (None, "none") else args.reference
    path = register_model(
        args.name,
        factory=args.factory,
        family=args.family,
        diffusers=args.diffusers,
        weights=args.weights,
        config=_json_arg(args.config, "--config"),
        input_shape=_numbers(args.input_shape, "--input-shape"),
        input_distribution=dist,
        output_range=_numbers(args.output_range, "--output-range"),
        reference=reference,
        description=args.description,
        role=args.role,
        data=args.data,
        preprocessing=prep,
        conditioning=conditioning,
        weights_key=args.weights_key,
        weights_prefix=args.weights_prefix,
        code_dir=args.code_dir,
        copy_weights=not args.no_copy,
        models_dir=args.models_dir,
        overwrite=args.force,
        preset=args.preset,
        learned_start=_json_arg(args.learned_start, "--learned-start"),
    )
    card = json.loads(path.read_text())
    if "resolution" not in card:  # a hub repo not downloaded yet
        print(
            f"registered {args.name} ({card['diffusers']}, not downloaded yet: run `ronan download {args.name}`)"
            f" -> {path}"
        )
        return EXIT_OK
    print(
        f"registered {args.name}: {card['resolution']}x{card['resolution']}x{card['channels']}, reference "
        f"{card.get('reference') or 'none'}, weights sha256 {card.get('weights_sha256', '-')[:12]}... -> {path}"
    )
    return EXIT_OK


def cmd_download(args) -> int:
    from .errors import ModelUnavailable
    from .models.hub import HUB_MODELS, download_model
    from .models.loader import hub_entry
    from .models.registry import CATALOGUE, model_card

    if args.model in HUB_MODELS:
        m = HUB_MODELS[args.model]
    elif (
        args.model in CATALOGUE
        and CATALOGUE[args.model].source == "user"
        and model_card(args.model).kind == "diffusers"
    ):
        m = hub_entry(model_card(args.model))
    elif args.model in CATALOGUE:
        raise RonanError(f"{args.model} is a {CATALOGUE[args.model].source} model: nothing to download")
    else:
        raise ModelUnavailable(f"unknown hub model {args.model!r}; hub models: {', '.join(HUB_MODELS)}")
    size = f"~{m.size_gb:g} GB, " if m.size_gb else ""
    print(f"downloading {args.model} from {m.repo} ({size}safetensors only)...", file=sys.stderr, flush=True)
    root = download_model(m)
    print(f"{args.model}: cached in {root}")
    return EXIT_OK


def cmd_generate(args) -> int:
    from .generation import generate_pil
    from .models.registry import load_model, model_argument, resolve_device

    if not 1 <= args.n <= 10000:
        raise RonanError("--n must be between 1 and 10000")
    seed = limits.check_seed(args.seed, "--seed")
    model = load_model(model_argument(args.model), resolve_device(args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(generate_pil(model, args.n, seed)):
        im.save(out / f"{i:06d}.png")
    manifest = {
        "model": model.name,
        "weights_sha256": model.weights_sha256,
        "n": args.n,
        "seed": seed,
        "seed_stream": "generate",
        "files": [f"{i:06d}.png" for i in range(args.n)],
    }
    (out / "generation.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {args.n} images of {model.name} to {safe(out)}/ (seed {seed})", file=sys.stderr)
    return EXIT_OK


def _check_method(args, n_flag: str = "--calibration-n"):
    """Validate the method options before any work; returns ``(device, precision)``.

    Seeds in ``[0, 2**63)``, N within ``RONAN_MAX_CALIBRATION_N``, alpha in (0, 1), the device present,
    the inversion settings within their limits; ``--precision`` without effect here is dropped with a note.
    """
    from .inversion import resolve_settings
    from .models.registry import resolve_device

    limits.check_seed(args.seed, "--seed")
    limits.check_seed(args.calibration_seed, "--calibration-seed")
    limits.check_int(n_flag, args.calibration_n, 3, "max_calibration_n")
    if hasattr(args, "alpha") and not 0.0 < args.alpha < 1.0:
        raise RonanError(f"--alpha must be between 0 and 1 (exclusive), got {args.alpha}")
    dev = resolve_device(args.device)
    precision = limits.effective_precision(args.precision, dev)
    if precision != args.precision and args.precision not in (None, "fp32"):
        _warn(
            f"--precision {args.precision} has no effect on {dev.type} (autocast runs on CUDA only): running in fp32",
            "note",
        )
    resolve_settings(args.preset, steps=args.steps, restarts=args.restarts, lr=args.lr, precision=precision)
    return dev, precision


def _prepare(args, dev, precision):
    """The models and settings of the method options (:func:`ronan.prepare.prepare`: MODEL, the reference
    vocabulary — ``--no-calibration`` is ``--reference none`` — distance, preset and overrides)."""
    from .models.registry import model_argument
    from .prepare import prepare

    return prepare(
        model_argument(args.model),
        None if args.no_calibration else args.reference,
        distance=args.distance,
        preset=args.preset,
        steps=args.steps,
        restarts=args.restarts,
        lr=args.lr,
        precision=precision,
        device=dev,
    )


def _progress(label: str):
    """A ``show(role, progress)`` that prints one updating line on a terminal, else None."""
    if not sys.stderr.isatty():
        return None

    def show(role, progress) -> None:
        print(f"\r{label} [{role}] step {progress.step}/{progress.steps}", end="", file=sys.stderr, flush=True)

    return show


def _calibration_cb(show, label: str | None = None):
    """A ``callback(role, first, progress)`` for distribution builds: one line ``label`` at the first
    event (also when stderr is not a terminal), then ``show``'s updating line on a terminal."""
    if show is None and label is None:
        return None
    started: list[bool] = []

    def callback(role, first, progress) -> None:
        if label is not None and not started:
            started.append(True)
            _status(label)
        if show is not None:
            show(role, progress)

    return callback


def _calibration_edit(assume: str):
    """The edit a ``calibrate`` run builds for: none, robust or a spec (auto has no file to read)."""
    from .edits.policy import NONE, resolve_edit

    if assume in ("auto", "none"):
        return NONE
    return resolve_edit(None, 0, 0, assume)


def cmd_calibrate(args) -> int:
    """Build (or check) the belonging distribution of the assumed edit — of each edit of the family
    for ``--assume-edit robust`` (``--json``: then a list, one object per edit) — and, with the contrast
    check, its contrast distribution."""
    args.calibration_n = args.n
    p = _prepare(args, *_check_method(args, "--n"))
    edit = _calibration_edit(args.assume_edit)
    summaries = [_calibrate_one(args, p, member) for member in edit.members()]
    if args.json:
        print(json.dumps(summaries if edit.is_robust else summaries[0], indent=2))
    return EXIT_OK


def _calibrate_one(args, p, edit) -> dict:
    """``calibrate`` for one edit: build or check, print its line (not with ``--json``), return its summary."""
    from .attribution import default_edit_mode
    from .calibration import find_cache, get_distribution

    model = p.model
    mode = args.edit_mode or default_edit_mode(edit)
    dist = get_distribution(
        model,
        p.reference,
        distance=p.distance,
        settings=p.settings,
        n=args.n,
        seed=args.calibration_seed,
        rebuild=args.force,
        build=not args.no_rebuild,
        edit=edit,
        edit_mode=mode,
        callback=_calibration_cb(
            _progress(f"calibrating {model.name}"),
            f"building the belonging distribution of {model.name} (N = {args.n})...",
        ),
    )
    contrast = _calibrate_contrast(args, p, edit, mode)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    summary = {
        "model": dist.model,
        "reference": dist.reference,
        "distance": dist.distance,
        "edit": dist.edit,
        "n": dist.n,
        "seed": dist.seed,
        "mean": dist.mean,
        "std": dist.std,
        "min": min(dist.values),
        "max": max(dist.values),
        "settings": dist.settings,
        "seconds": dist.seconds,
        "model_side_from": dist.model_side_from,
        "file": str(find_cache(dist.key())),
    }
    if contrast is not None:
        summary["contrast"] = {
            "set": contrast.pictures["set"],
            "n": contrast.n,
            "min": min(contrast.values),
            "max": max(contrast.values),
            "file": str(find_cache(contrast.key())),
        }
    if not args.json:
        print(
            f"{dist.model} (reference {dist.reference}, {dist.distance}): N={dist.n} mean={dist.mean:.4g} "
            f"std={dist.std:.4g} min={summary['min']:.4g} max={summary['max']:.4g} -> {safe(summary['file'])}"
            + ("" if dist.model_side_from is None else " (model losses from a cached distribution; reference inverted)")
        )
        if contrast is not None:
            c: dict = summary["contrast"]  # type: ignore[assignment]
            print(
                f"contrast ({safe(c['set'])}, same edit): N={c['n']} min={c['min']:.4g} max={c['max']:.4g} "
                f"-> {safe(c['file'])}"
            )
    return summary


def _contrast_pictures(args):
    """The picture set of ``--contrast-pictures DIR`` (None when not given; read once per run); a
    folder that cannot be read or holds fewer than 3 images is a one-line usage error."""
    from .contrast import folder_set

    if not getattr(args, "contrast_pictures", None):
        return None
    if getattr(args, "_contrast_set", None) is None:
        try:
            args._contrast_set = folder_set(args.contrast_pictures)
        except (OSError, ValueError) as e:
            raise ValueError(f"--contrast-pictures {safe(args.contrast_pictures)}: {e}") from None
    return args._contrast_set


def _calibrate_contrast(args, p, edit, mode: str):
    """``calibrate --contrast``: the contrast distribution of the same edit and mode (``on``: always;
    ``auto``: for an edit; ``off``: never), None when it does not apply or the model has no picture set."""
    from .calibration import get_distribution
    from .contrast import applies, bundled_set

    if not applies(args.contrast, edit, getattr(args, "test", "robust")):
        return None
    pictures = _contrast_pictures(args) or bundled_set(p.model)
    if pictures is None:
        _err(
            f"note: {p.model.name} has no contrast set (bundled models have one; give --contrast-pictures "
            f"DIR); none built"
        )
        return None
    return get_distribution(
        p.model,
        p.reference,
        distance=p.distance,
        settings=p.settings,
        n=len(pictures),
        seed=args.calibration_seed,
        rebuild=args.force,
        build=not args.no_rebuild,
        edit=edit,
        edit_mode=mode,
        pictures=pictures,
        callback=_calibration_cb(
            _progress(f"contrast {p.model.name}"),
            f"building the contrast distribution of {p.model.name} ({pictures.name}, same edit)...",
        ),
    )


def cmd_attribute(args) -> int:
    """Attribute the images chunk by chunk (``RONAN_MAX_BATCH_ROWS``): one chunk of decoded images
    in memory at a time, each result line printed as soon as its chunk is done."""
    from .attribution import attribute_batch
    from .images import load_image

    dev, precision = _check_method(args)
    limits.check_images(len(args.images), "images in one call")
    p = _prepare(args, dev, precision)
    _contrast_pictures(args)  # a bad --contrast-pictures folder stops here, before any work
    model = p.model
    chunk = limits.images_per_batch(limits.rows_per_image(p.settings, model))
    budget = limits.PixelBudget()
    status, rows = EXIT_OK, []
    show = _progress("attributing")
    for c in range(0, len(args.images), chunk):
        loaded = []
        for path in args.images[c : c + chunk]:
            try:
                loaded.append(load_image(path, name=path, budget=budget))
            except RonanError as e:
                _err(str(e))
                status = EXIT_USAGE
        if not loaded:
            continue
        results = attribute_batch(
            loaded,
            p,
            alpha=args.alpha,
            test=args.test,
            floor_rule=not args.no_floor_rule,
            edit=args.assume_edit,
            edit_mode=args.edit_mode,
            contrast=args.contrast,
            contrast_alpha=args.contrast_alpha,
            contrast_pictures=_contrast_pictures(args),
            seed=args.seed,
            n_calibration=args.calibration_n,
            calibration_seed=args.calibration_seed,
            build_calibration=not args.no_rebuild,
            full_reference=args.full_reference,
            callback=(lambda e: show(e.role, e.progress)) if show else None,
            calibration_callback=_calibration_cb(
                _progress(f"calibrating {model.name}"),
                f"building the belonging distribution of {model.name} (N = {args.calibration_n}, first use of "
                f"these settings; cached)...",
            ),
        )
        if sys.stderr.isatty():
            print(file=sys.stderr)
        if args.json:
            rows += [r.to_dict(history=args.history) for r in results]
            continue
        for r in results:
            print(result_line(r), flush=True)
            for reason in r.reasons:
                print(f"  inconclusive: {safe(reason)}")
            for note in r.notes:
                print(f"  note: {safe(note)}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return status


def result_line(r) -> str:
    """One line per attribution: verdict, statistic vs critical value, losses, removed samples, edit, time
    (and the preset when it is not ``fast``, e.g. a card's ``thorough``)."""
    from .attribution import bound_words
    from .preset_names import DEFAULT_PRESET

    least, most = bound_words(r)  # the reference's inversion ended once the verdict was certain
    ref = "None" if r.reference_loss is None else most + format(r.reference_loss, ".3g")  # as README documents
    removed = f", {r.n_removed} of {r.n_calibration} samples removed" if r.n_removed else ""
    if r.basis == "floor":  # the floor rule (ronan.verdict): tested against the samples on the floor
        removed = f", floor rule: {r.n_kept} of {r.n_calibration} samples"
    preset = f", preset {r.preset}" if r.preset not in (None, DEFAULT_PRESET) else ""
    matched = f": {r.robust_edit}" if r.robust_edit else ""
    edit = f"  edit {r.edit}{matched} ({r.edit_source})" if r.edit != "none" else ""
    c = r.contrast
    contrast = (
        "" if not c or not c["n"] else f"  contrast {c['at_or_below']}/{c['n']} real at or below, p={c['p_value']:.2f}"
    )
    return (
        f"{safe(r.image)}: {r.verdict.upper()}  statistic {least}{r.statistic:.3f} vs critical {r.critical_value:.3f} "
        f"({r.test} test{removed})  loss {r.loss:.3g} / ref {ref} = {least}{r.calibrated_loss:.3g}{edit}{contrast}  "
        f"({r.seconds:.2f} s{preset})"
    )


def cmd_evaluate(args) -> int:
    """Confusion table and AUC; says what it does at once (loading, generating, building the belonging
    distribution) and caps every source at ``--n`` images (a seeded choice from larger folders)."""
    from .evaluation import evaluate, load_source, write_csv

    limits.check_int("--n", args.n, 1, "max_images")
    dev, precision = _check_method(args)
    _status(f"evaluate: loading {args.model}...")
    p = _prepare(args, dev, precision)
    model = p.model
    sources = []
    for group, spec in [("belonging", args.belonging)] + [("non-belonging", s) for s in args.non_belonging]:
        what = (
            f"generating {args.n} images with {spec.split(':', 1)[1]}"
            if spec.startswith("generate:")
            else f"loading up to {args.n} images from {spec}"
        )
        _status(f"evaluate: {what} ({group})...")
        src = load_source(spec, args.n, args.seed, dev, edit=args.edit)
        if src.available > args.n:
            _status(
                f"evaluate: {spec}: {args.n} of its {src.available} images, chosen at random with seed "
                f"{args.seed} (--n caps every source)"
            )
        sources.append(src)
    bel, non = sources[0], sources[1:]
    status = EXIT_OK
    for src in sources:
        for e in src.errors:
            _err(e)
            status = EXIT_USAGE
    total_images = len(bel.images) + sum(len(s.images) for s in non)
    from tqdm import tqdm

    chunk = limits.images_per_batch(limits.rows_per_image(p.settings, model))
    calibration = _calibration_cb(
        None,
        f"evaluate: building the belonging distribution of {model.name} "
        f"(N = {args.calibration_n}, first use of these settings; cached)...",
    )
    with tqdm(total=total_images, desc=f"evaluate {args.model}", unit="img", file=sys.stderr, disable=None) as bar:
        out = evaluate(
            p,
            bel,
            non,
            progress=bar.update,
            chunk=chunk,
            alpha=args.alpha,
            test=args.test,
            floor_rule=not args.no_floor_rule,
            edit=args.assume_edit if args.assume_edit != "auto" or not args.edit else args.edit,
            edit_mode=args.edit_mode,
            contrast=args.contrast,
            contrast_alpha=args.contrast_alpha,
            contrast_pictures=_contrast_pictures(args),
            seed=args.seed,
            n_calibration=args.calibration_n,
            calibration_seed=args.calibration_seed,
            build_calibration=not args.no_rebuild,
            calibration_callback=calibration,
        )
    if args.csv:
        write_csv(out["records"], args.csv)
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "records"}, indent=2))
        return status
    print(f"{args.model}: belonging = {safe(bel.spec)}  ({len(bel.images)} images)")
    print(
        f"{'non-belonging source':32s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'TN':>4s} {'Inc':>4s} {'Acc':>7s} {'AUC':>6s}"
    )
    for row in out["rows"] + [out | {"source": "total"}]:
        inc = row["inconclusive_belonging"] + row["inconclusive_non_belonging"]
        print(
            f"{safe(row['source'])[:32]:32s} {row['tp']:4d} {row['fp']:4d} {row['fn']:4d} {row['tn']:4d} "
            f"{inc:4d} {100 * row['accuracy']:6.1f}% {row['auc']:6.3f}"
        )
    return status


COMMANDS = {
    "models": cmd_models,
    "register": cmd_register,
    "generate": cmd_generate,
    "calibrate": cmd_calibrate,
    "attribute": cmd_attribute,
    "evaluate": cmd_evaluate,
    "download": cmd_download,
}


def _command(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _set_threads(args) -> None:
    """Apply ``--threads`` (1 by default): 0 keeps torch's default, with a warning that it is slower here."""
    n = getattr(args, "threads", None)
    if n is None:
        return
    most = 4 * (os.cpu_count() or 1)
    if not 0 <= n <= most:
        raise RonanError(f"--threads must be between 0 (torch's default) and {most} (4 x the CPU count), got {n}")
    if n == 0:
        _warn(
            "--threads 0 keeps torch's default thread count, about 10x slower than --threads 1 (the default) "
            "for these small models on a shared CPU"
        )
        return
    import torch

    torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)  # None: --version, -h or nothing: the top-level parser needs no torch either
    args = build_parser(full=command is not None and command not in LIGHT_COMMANDS).parse_args(argv)
    _setup_logging()
    try:
        _set_threads(args)
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe (`| head`) shows here, inside the handler below
        return status
    except RonanError as e:
        _err(str(e))
        return EXIT_USAGE
    except ValueError as e:  # invalid settings (e.g. negative steps) reach the user as one line
        _err(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; nothing was written for the unfinished run")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly (Python's documented recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
