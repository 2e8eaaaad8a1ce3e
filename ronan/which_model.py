"""Which model made this image? RONAN against every available model at once.

Classifier-based attribution (e.g. GAN fingerprints) trains a classifier over a fixed set
of sources; RONAN needs no training: the image is attributed to each candidate model
independently (each with its own belonging distribution and Grubbs test) and the answer is
the model that accepts it. When several accept it, the one with the lowest Grubbs statistic
(the image most typical of its samples) is named first; when none does and every one rejects
it, the image is real or comes from a model outside the set; when none accepts it but some
could not decide (inconclusive, with their reasons), the answer says so and names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .attribution import Attribution, AttributionEvent, attribute_stream
from .calibration import load_distribution
from .edits import stand_in as stand_rule
from .edits.policy import NONE as NO_EDIT
from .edits.policy import EditAssumption, resolve_edit
from .errors import CalibrationError, Cancelled, RonanError
from .images import LoadedImage, load_image
from .models.registry import CATALOGUE, list_models, load_model
from .paths import cache_read_dirs

NONE_ANSWER = "none of these: real or unknown model"
INCONCLUSIVE_ANSWER = "inconclusive for"
"""Start of the answer when no model accepts the image but at least one could not decide (its result
says why): e.g. ``"inconclusive for dcgan-fmnist; no model accepts it"``."""


def is_reference_only(name: str) -> bool:
    """True for catalogue entries meant only as reference models (M_r), not as suspects."""
    spec = CATALOGUE.get(name)
    return spec is not None and spec.role == "reference"


def candidate_models(
    resolution: int | None = None, channels: int | None = None, include_hub: bool | None = None
) -> list[str]:
    """Available suspect models, those of ``resolution``/``channels`` first if any match.

    Args:
        include_hub (bool | None): include cached hub (diffusers) models; default: only when
            CUDA is available (on a CPU one hub inversion takes hours).
        resolution (int | None): image side; models of exactly this resolution are chosen
            when there are any, otherwise all available models (the image is resized).
        channels (int | None): same for the number of channels.
    """
    if include_hub is None:
        include_hub = torch.cuda.is_available()
    models = [
        m for m in list_models() if m.available and not is_reference_only(m.name) and (include_hub or m.source != "hub")
    ]
    exact = [
        m
        for m in models
        if (resolution is None or m.resolution == resolution) and (channels is None or m.channels == channels)
    ]
    return [m.name for m in (exact or models)]


def failed_candidates(
    resolution: int | None = None, channels: int | None = None, include_hub: bool | None = None
) -> dict[str, str]:
    """Suspect models that are installed but cannot run (weights failing their hash, a broken card),
    with the reason: :func:`which_model_stream` lists them in ``errors`` instead of dropping them.
    Models merely not installed (hub models not downloaded, bundled models without a card) are not
    listed. Same resolution rule as :func:`candidate_models`."""
    if include_hub is None:
        include_hub = torch.cuda.is_available()
    failed = [
        m
        for m in list_models()
        if not m.available
        and m.card is not None
        and not is_reference_only(m.name)
        and (include_hub or m.source != "hub")
    ]
    if candidate_models(resolution, channels, include_hub) and (resolution is not None or channels is not None):
        failed = [m for m in failed if m.resolution in (None, resolution) and m.channels in (None, channels)]
    return {m.name: m.reason or "unavailable" for m in failed}


@dataclass
class WhichModelEvent:
    """Progress: attribution ``index`` of ``total`` (model ``model``) emitted ``event``."""

    model: str
    index: int
    total: int
    event: AttributionEvent


@dataclass
class WhichModelResult:
    """Outcome over all candidates.

    Attributes:
        image (str): image name.
        attributions (list[Attribution]): one per model that could be tested.
        errors (dict[str, str]): models that could not be tested, with the reason.
        accepted (list[str]): models whose verdict is belonging, lowest statistic first.
        answer (str): ``"made by X"`` (with alternatives), :data:`NONE_ANSWER`, or
            ``"inconclusive for X, Y; no model accepts it"`` (:data:`INCONCLUSIVE_ANSWER`).
        error_kinds (dict[str, str]): the exception class behind each error
            (``"CalibrationError"``, ``"ModelUnavailable"``...), for messages that fit the reader.
        caveats (list[str]): assumptions the answer rests on (e.g. an edit detected in the file
            whose belonging distributions are missing: the image was tested as if unedited, and a
            rejection the edit could explain is inconclusive).
    """

    image: str
    attributions: list[Attribution]
    errors: dict[str, str] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    answer: str = NONE_ANSWER
    error_kinds: dict[str, str] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)

    @property
    def best(self) -> str | None:
        return self.accepted[0] if self.accepted else None

    @property
    def inconclusive(self) -> bool:
        """No model accepts the image and at least one could not decide."""
        return not self.accepted and any(a.inconclusive for a in self.attributions)

    def rows(self) -> list[dict]:
        """One row per tested model: :meth:`~ronan.attribution.Attribution.to_row` (model, verdict,
        statistic, critical value, losses...)."""
        return [a.to_row() for a in self.attributions]

    def to_dict(self) -> dict:
        return {
            "image": self.image,
            "answer": self.answer,
            "best": self.best,
            "accepted": self.accepted,
            "errors": self.errors,
            "caveats": self.caveats,
            "results": [a.to_dict(history=False) for a in self.attributions],
        }


def decide(image: str, attributions: list[Attribution], errors: dict[str, str] | None = None) -> WhichModelResult:
    """Combine per-model verdicts into one answer (see module docstring)."""
    accepted = [a.model for a in sorted((a for a in attributions if a.belonging), key=lambda a: a.statistic)]
    if accepted:
        answer = f"made by {accepted[0]}"
        if len(accepted) > 1:
            answer += f" (also consistent with {', '.join(accepted[1:])})"
    elif any(a.inconclusive for a in attributions):  # "none of these" would be a verdict the evidence lacks
        unsure = [a.model for a in attributions if a.inconclusive]
        answer = f"{INCONCLUSIVE_ANSWER} {', '.join(unsure)}; no model accepts it"
    else:
        answer = NONE_ANSWER
    return WhichModelResult(image, attributions, dict(errors or {}), accepted, answer)


def which_model_stream(
    image,
    models: list[str] | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
    stand_in: Callable[[str, LoadedImage], EditAssumption] | None = None,
    **kwargs,
) -> Iterator[WhichModelEvent | WhichModelResult]:
    """Attribute ``image`` to every model in ``models`` (default: :func:`candidate_models`).

    Yields :class:`WhichModelEvent` progress, then one :class:`WhichModelResult`. A model that
    cannot be tested (weights failing their hash, unavailable, no belonging distribution with
    ``build_calibration=False``) is listed in ``errors`` with the reason, never silently dropped;
    :class:`~ronan.errors.Cancelled` and image errors propagate. With ``edit="auto"`` (the default),
    when the belonging distribution of the edit detected in the file is missing (and not built),
    the model is tested against a stand-in (``stand_in(name, loaded)``, e.g. another JPEG quality
    that is here; default and where it gives none: as if the image were unedited), its rejection
    judged by :func:`ronan.edits.stand_in.judged`, and the result's ``caveats`` say so.

    Args:
        image: path, bytes, PIL image or LoadedImage.
        models (list[str] | None): candidate model names.
        should_stop (callable | None): as for :func:`~ronan.attribution.attribute_stream`.
        **kwargs: passed to :func:`~ronan.attribution.attribute_stream` (reference is always
            each model's default).
    """
    loaded = image if isinstance(image, LoadedImage) else load_image(image)
    errors: dict[str, str] = {}
    if models is None:
        w, h = loaded.image.size
        models = candidate_models(w if w == h else None, 1 if loaded.image.mode == "L" else 3)
        errors.update(failed_candidates(w if w == h else None, 1 if loaded.image.mode == "L" else 3))
    kwargs.pop("reference", None)
    edit = kwargs.pop("edit", "auto")
    results: list[Attribution] = []
    kinds: dict[str, str] = {}
    untested_edits: list[str] = []
    for i, name in enumerate(models):
        tries = 2 if edit == "auto" and not kwargs.get("build_calibration", True) else 1
        for k in range(tries):  # the file's own edit, then (without builds) a stand-in for it
            try:
                stood = None if k == 0 else (stand_in(name, loaded) if stand_in is not None else NO_EDIT)
                spec = edit if stood is None else stood.spec
                for event in attribute_stream([loaded], name, should_stop=should_stop, edit=spec, **kwargs):
                    if isinstance(event, list):
                        results.append(event[0] if stood is None else _stood_in(event[0], loaded, name, stood))
                        if k > 0:
                            untested_edits.append(name)
                    else:
                        yield WhichModelEvent(name, i, len(models), event)
                errors.pop(name, None)
                kinds.pop(name, None)
                break
            except Cancelled:
                raise
            except RonanError as e:
                errors[name], kinds[name] = str(e), type(e).__name__
                if not isinstance(e, CalibrationError):
                    break
    out = decide(loaded.name, results, errors)
    out.error_kinds = kinds
    if untested_edits:
        out.caveats.append(
            f"The file shows signs of an edit, but the belonging distributions for it are not built "
            f"for {', '.join(untested_edits)}: the image was tested against a stand-in there (another edit "
            f"of the same kind that is here, else as if unedited; each result names it), and a 'not "
            f"belonging' there stands only where the edit alone cannot explain it (the image lies twice "
            f"as far from the model as the edit takes any of its own images); otherwise it is inconclusive."
        )
    yield out


def _stood_in(result: Attribution, loaded: LoadedImage, name: str, stood: EditAssumption) -> Attribution:
    """A result tested against ``stood`` (a stand-in: another edit, or none) because the file's own
    edit had no distribution: judged by :func:`ronan.edits.stand_in.judged` against the stand-in's
    distribution (its rejections hold only where the edit alone cannot explain them)."""
    gen = load_model(name, device=result.device)
    revealed = resolve_edit(loaded, gen.image_size, gen.channels, "auto")
    if revealed.edit is None or revealed.is_none:  # no edit in the file: nothing stood in for one
        return result
    # the distribution the result was tested against (attribute_stream read it from this file)
    file = str(result.calibration_file)
    path = next((d / file for d in cache_read_dirs() if (d / file).is_file()), None)
    if path is None:  # never judged blind: no result for this model rather than an unchecked rejection
        raise CalibrationError(f"{name}: the stand-in's belonging distribution {result.calibration_file} is gone")
    return stand_rule.judged(result, gen, revealed, stood, [load_distribution(path)])


def which_model(image, models: list[str] | None = None, **kwargs) -> WhichModelResult:
    """Non-streaming :func:`which_model_stream`."""
    for event in which_model_stream(image, models, **kwargs):
        if isinstance(event, WhichModelResult):
            return event
    raise Cancelled("which-model ended without a result")  # pragma: no cover
