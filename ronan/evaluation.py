"""Counting decisions: the paper's confusion table (TP, FP, FN, TN, Acc) and ROC AUC.

"Positive" is *belonging*: TP = a belonging image judged belonging, FP = a non-belonging
image judged belonging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import IMAGE_SUFFIXES
from .rows import ROW_FIELDS
from .rows import write_csv as _write_csv


def confusion(belonging_verdicts: Sequence, non_belonging_verdicts: Sequence) -> dict:
    """Confusion table from the verdicts of the two groups.

    A verdict is a bool (True = judged belonging) or a string: ``"belonging"``,
    ``"non-belonging"`` or ``"inconclusive"``. Inconclusive verdicts are counted apart
    (``inconclusive_belonging``, ``inconclusive_non_belonging``) and count as errors in
    ``accuracy`` (a verdict the tool did not give is not a correct one); ``tpr`` and ``fpr``
    are over all images of their group.

    Returns:
        dict with ``tp, fn, tn, fp, inconclusive_belonging, inconclusive_non_belonging`` (int),
        ``accuracy``, ``tpr``, ``fpr`` (float, NaN for an empty group), ``n_belonging``,
        ``n_non_belonging``.
    """
    b, nb = [_as_verdict(v) for v in belonging_verdicts], [_as_verdict(v) for v in non_belonging_verdicts]
    tp, fn = b.count("belonging"), b.count("non-belonging")
    fp, tn = nb.count("belonging"), nb.count("non-belonging")
    inc_b, inc_n = b.count("inconclusive"), nb.count("inconclusive")
    total = len(b) + len(nb)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "inconclusive_belonging": inc_b,
        "inconclusive_non_belonging": inc_n,
        "accuracy": (tp + tn) / total if total else float("nan"),
        "tpr": tp / len(b) if b else float("nan"),
        "fpr": fp / len(nb) if nb else float("nan"),
        "n_belonging": len(b),
        "n_non_belonging": len(nb),
    }


def _as_verdict(v) -> str:
    if isinstance(v, str):
        if v not in ("belonging", "non-belonging", "inconclusive"):
            raise ValueError(f"unknown verdict {v!r}")
        return v
    return "belonging" if bool(v) else "non-belonging"


def roc_auc(belonging_scores: Sequence[float], non_belonging_scores: Sequence[float]) -> float:
    """Area under the ROC curve of a score that is *lower* for belonging images.

    Equals P(score of a belonging image < score of a non-belonging one), ties counting 1/2
    (the Mann-Whitney U statistic); NaN if a group is empty.
    """
    from scipy.stats import rankdata

    b = np.asarray(belonging_scores, dtype=np.float64)
    nb = np.asarray(non_belonging_scores, dtype=np.float64)
    if b.size == 0 or nb.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([nb, b]))  # high rank = high score = non-belonging
    u = ranks[: nb.size].sum() - nb.size * (nb.size + 1) / 2
    return float(u / (nb.size * b.size))


CSV_FIELDS = [*ROW_FIELDS, "group", "source", "correct"]
"""Columns of an evaluation's records and CSV: :data:`ronan.rows.ROW_FIELDS`, then the image's group
(``belonging`` / ``non-belonging``), its source and whether its verdict was correct."""


@dataclass
class Source:
    """A set of images for an evaluation: a folder, or ``generate:MODEL`` (K fresh samples)."""

    spec: str
    images: list  # LoadedImage
    errors: list[str] = field(default_factory=list)
    available: int = 0
    """Images the source offered (a folder's image files; K for ``generate:``); more than
    ``len(images) + len(errors)`` when ``n`` chose some of them."""


def load_source(spec: str, n: int = 100, seed: int = 0, device=None, edit: str | None = None) -> Source:
    """Resolve ``spec`` (a folder of images, or ``generate:MODEL``) into loaded images.

    Args:
        spec (str): folder path, or ``generate:MODEL`` for ``n`` samples of MODEL drawn with
            ``seed`` (seed stream ``"generate"``, the same as ``python -m ronan generate``),
            saved as PNG bytes and re-loaded like uploads.
        n (int): images of the source (default 100): the samples of a ``generate:`` source, and at
            most that many of a folder — a larger folder gives ``n`` files chosen at random with
            ``seed`` (the same files for the same seed), so that no group dominates a table.
        seed (int): their seed.
        edit (str | None): an edit spec (``jpeg:75``...) applied to every image, exactly as the
            world would (then saved losslessly, or as JPEG when the edit ends with one), so that
            both groups of a table get the same edit; None: the images as they are.

    Unreadable files of a folder are listed in ``errors`` (one line each) and skipped.

    Raises:
        RonanError: missing folder, empty folder, unknown model.
    """
    from .errors import RonanError
    from .generation import as_uploads, generate_pil
    from .images import load_image
    from .limits import PixelBudget
    from .models.registry import load_model, model_argument

    if spec.startswith("generate:"):
        model = load_model(model_argument(spec.split(":", 1)[1]), device)
        return _edited(Source(spec, as_uploads(generate_pil(model, n, seed), model.name), available=n), edit, seed)
    folder = Path(spec)
    if not folder.is_dir():
        raise RonanError(f"{spec}: not a folder (use a folder of images or generate:MODEL)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RonanError(f"{spec}: no images found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    src = Source(spec, [], available=len(files))
    if len(files) > n:
        import random

        from .seeding import derive_seed

        files = [
            files[i] for i in sorted(random.Random(derive_seed(seed, "evaluate-choice")).sample(range(len(files)), n))
        ]
    budget = PixelBudget()
    for f in files:
        try:
            src.images.append(load_image(f, name=str(f), budget=budget))
        except RonanError as e:
            src.errors.append(str(e))
    return _edited(src, edit, seed)


def _edited(src: Source, edit: str | None, seed: int) -> Source:
    """``src`` with ``edit`` applied to every image and saved as a file would be (see load_source)."""
    if not edit:
        return src
    from .edits import parse_edit
    from .images import load_image

    e = parse_edit(edit)
    out = Source(f"{src.spec} [{e.spec}]", [], list(src.errors))
    for k, li in enumerate(src.images):
        data, ext = e.to_file(li.image, seed=seed * 100003 + k)
        out.images.append(load_image(data, name=f"{li.name}.{e.spec.replace(':', '')}{ext}"))
    return out


def evaluate(
    model,
    belonging: Source,
    non_belonging: list[Source],
    *,
    chunk: int | None = None,
    progress=None,
    **attribute_kwargs,
) -> dict:
    """Attribute every image of the sources to ``model`` and count the decisions.

    Args:
        model (str | Path | Generator | Prepared): inspected model, or :func:`ronan.prepare.prepare`'s
            result (then no preparation argument — reference, distance, preset... — is given).
        belonging (Source): images made by ``model``.
        non_belonging (list[Source]): images not made by it (one confusion row each).
        chunk (int | None): images per batch; default 100, fewer when ``images x restarts`` would
            exceed ``RONAN_MAX_BATCH_ROWS`` (:func:`ronan.limits.images_per_batch`).
        progress (callable | None): ``progress(n_images_done)`` after each batch.
        **attribute_kwargs: as for :func:`ronan.attribution.attribute_batch`; the models are
            prepared once (:func:`ronan.prepare.prepare`) for every batch. ``full_reference``
            defaults to True here: the AUC ranks every image's A', so none may be a bound.

    Returns:
        dict with the totals (``tp, fp, fn, tn, accuracy, tpr, fpr, auc, n_belonging,
        n_non_belonging``), ``rows`` (the same per non-belonging source, with ``source``), and
        ``records`` (one CSV-ready dict per image, see ``CSV_FIELDS``).
    """
    from .attribution import attribute_batch
    from .limits import images_per_batch, rows_per_image
    from .prepare import PREPARE_ARGS, Prepared, prepare

    kwargs = {"full_reference": True} | dict(attribute_kwargs)  # exact A' for the AUC and re-decisions
    prepared = (
        model
        if isinstance(model, Prepared)
        else prepare(model, **{k: kwargs.pop(k) for k in PREPARE_ARGS if k in kwargs})
    )  # models loaded once
    if chunk is None:
        chunk = images_per_batch(rows_per_image(prepared.settings, prepared.model))

    def run(source: Source, group: str):
        results = []
        for i in range(0, len(source.images), chunk):
            results += attribute_batch(source.images[i : i + chunk], prepared, **kwargs)
            if progress is not None:
                progress(len(source.images[i : i + chunk]))
        expected = group == "belonging"
        records = [
            r.to_row() | {"group": group, "source": source.spec, "correct": r.belonging == expected} for r in results
        ]
        return results, records

    bel, records = run(belonging, "belonging")
    rows, all_non = [], []
    for src in non_belonging:
        non, recs = run(src, "non-belonging")
        records += recs
        all_non += non
        rows.append(_table(bel, non) | {"source": src.spec})
    total = _table(bel, all_non)
    return total | {"belonging_source": belonging.spec, "rows": rows, "records": records}


def _table(bel, non) -> dict:
    table = confusion([r.verdict for r in bel], [r.verdict for r in non])
    table["auc"] = roc_auc([r.calibrated_loss for r in bel], [r.calibrated_loss for r in non])
    return table


def write_csv(records: list[dict], path) -> None:
    """Write one row per image (columns ``CSV_FIELDS``) to ``path`` (:func:`ronan.rows.write_csv`)."""
    _write_csv(records, path, CSV_FIELDS)


def verdicts(
    results: list,
    distribution,
    *,
    test: str | None = None,
    calibrated: bool = True,
    alpha: float | None = None,
    contrast_distribution=None,
) -> list[str]:
    """The verdicts of attributions under another test or without calibration, at no inversion cost.

    Re-decides each result from its recorded numbers against ``distribution`` (the belonging
    distribution the results were computed with): with ``calibrated=False`` on the raw losses
    A(M, x) against the raw losses of the same belonging samples (kept in the distribution as
    ``losses``) — the paper's "without calibration" rows. A result that had a contrast check
    (:mod:`ronan.contrast`) is re-checked under the robust test: against ``contrast_distribution``
    (its values, or its raw losses without calibration) when given, else from the recorded
    check (calibrated only; uncalibrated rows then have none).

    Args:
        results (list[Attribution]): attributions of one model and distribution.
        distribution (BelongingDistribution | list): their belonging distribution, or one per edit
            of the robust family (then each result is decided by the one it fits best,
            :func:`ronan.verdict.pick`, as the attribution was).
        test (str | None): ``"robust"`` or ``"paper"``; default each result's own.
        calibrated (bool): use A' (default) or the raw loss A.
        alpha (float | None): default each result's own.
        contrast_distribution (BelongingDistribution | list | None): the contrast distribution the
            results were checked against (one per family edit with a list of distributions), or None.
    """
    from .verdict import DecisionSettings, decide, floor_for, pick, summarize

    dists = distribution if isinstance(distribution, list) else [distribution]
    contrasts = (
        contrast_distribution if isinstance(contrast_distribution, list) else [contrast_distribution] * len(dists)
    )
    out, summaries = [], {}
    for r in results:
        key = (test or r.test, alpha or r.alpha, getattr(r, "floor_rule", True))
        contrast_alpha = (r.contrast or {}).get("alpha", DecisionSettings.contrast_alpha)
        if key not in summaries:
            settings = DecisionSettings(mode=key[0], alpha=key[1], floor_rule=key[2])
            summaries[key] = [
                summarize(
                    d.values if calibrated else d.losses,
                    settings,
                    settled=d.sample_settled,
                    losses=d.losses,
                    floor=floor_for(d.distance, d.edit is not None),
                )
                for d in dists
            ]
        value = r.calibrated_loss if calibrated else r.loss
        decisions = [
            decide(
                value,
                sm,
                settled=r.settled,
                contrast=_recheck(r, value, (key[0], contrast_alpha), calibrated, c),
                edit=r.edit,
                loss=r.loss,
            )
            for sm, c in zip(summaries[key], contrasts)
        ]
        out.append(decisions[pick(decisions)].verdict)
    return out


def _recheck(r, value: float, key: tuple, calibrated: bool, contrast_distribution):
    """The contrast check of result ``r`` under ``key = (test, contrast level)``, or None."""
    from .contrast import ContrastCheck, check

    c = getattr(r, "contrast", None)
    if c is None or key[0] != "robust":
        return None
    if c.get("missing"):
        return ContrastCheck(**c)
    if contrast_distribution is not None:
        pool = contrast_distribution.values if calibrated else contrast_distribution.losses
        return check(value, pool, key[1], name=c["set"], file=c.get("file", ""))
    if not calibrated:
        return None
    return ContrastCheck(c["set"], c["n"], c["at_or_below"], c["p_value"], key[1], c.get("file", ""))


def raw_loss_verdicts(results: list, distribution) -> list[str]:
    """Verdicts without calibration (Eq. 2 skipped): :func:`verdicts` with ``calibrated=False``."""
    return verdicts(results, distribution, calibrated=False)
