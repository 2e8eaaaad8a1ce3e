"""Reports: JSON with every number, PNG figures, self-contained HTML (attributions and which-model runs).

The JSON of an attribution holds the whole :meth:`Attribution.to_dict` (losses, calibrated loss,
Grubbs statistic and critical value, N, alpha, mu, sigma, verdict, reasons, the robust test's
removed samples, the edit assumed and what the file revealed, the upload's original size, mode
and format, seeds, settings, versions, SHA-256 of the image and of both models' weights, loss
curves), plus what investigators read first, grouped: ``upload`` (the file as received),
``preprocessing`` (the steps the model applied to it), ``assumptions`` (what the result rests on),
``test`` (the robust test's numbers), and a summary of the belonging distribution. The HTML shows
the date, the same verdict card as the app, what the model saw (upload, model-domain image,
reconstruction, difference with its colour scale) and embeds the figures as base64 PNG and the
JSON, so it is one file that opens anywhere offline.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from . import __version__
from .attribution import Attribution, bound_words
from .calibration import BelongingDistribution
from .rows import json_ready

REPORT_FORMAT = 3
"""3: adds ``test.contrast`` (the contrast check, :mod:`ronan.contrast`) and ``edit.robust_edit``
(under the robust assumption, the family edit that decided); both are in ``attribution`` too.
2: adds ``upload``, ``preprocessing``, ``assumptions``, ``edit`` and ``test`` (format 1 had
``attribution`` and ``belonging_distribution`` only; both are unchanged)."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def report_dict(
    result: Attribution,
    distribution: BelongingDistribution | None = None,
    *,
    preprocessing: Sequence[str] | None = None,
    caveats: Sequence[str] = (),
    edit_detected: dict | None = None,
) -> dict:
    """JSON-ready report: the attribution, what the upload was and what the model saw, the
    assumptions, the test, the distribution summary and report metadata.

    Args:
        preprocessing: the steps from upload to the model's input
            (:func:`ronan.studio.preprocessing_steps`).
        caveats: assumptions from the run (e.g. an edit detected but not tested).
        edit_detected: the detection of an edit that was not tested (see ``caveats``).
    """
    from .views import assumptions

    d = {
        "report_format": REPORT_FORMAT,
        "ronan_version": __version__,
        "created": _now(),
        "verdict": result.verdict,
        "explanation": result.explanation(),
        "upload": {
            "name": result.image,
            "sha256": result.image_sha256,
            "format": result.original_format,
            "size": result.original_size,
            "mode": result.original_mode,
        },
        "preprocessing": list(preprocessing or []),
        "assumptions": assumptions(result, caveats),
        "edit": {
            "assumed": result.edit,
            "source": result.edit_source,
            "description": result.edit_description,
            "mode": result.edit_mode,
            "robust_edit": result.robust_edit,
            "detection": result.detection,
            "detected_but_not_tested": edit_detected,
        },
        "test": {
            "mode": result.test,
            "domain": result.domain,
            "alpha": result.alpha,
            "statistic": result.statistic,
            "critical_value": result.critical_value,
            "threshold": result.threshold,
            "test_verdict": result.test_verdict,
            "reasons": result.reasons,
            "n": result.n_calibration,
            "n_kept": result.n_kept,
            "n_removed": result.n_removed,
            "removed_values": _removed_values(result, distribution),
            "basis": result.basis,
            "contrast": result.contrast,
        },
        "attribution": result.to_dict(history=True),
    }
    if distribution is not None:
        d["belonging_distribution"] = {
            "file": result.calibration_file,
            "model": distribution.model,
            "reference": distribution.reference,
            "distance": distribution.distance,
            "settings": distribution.settings,
            "n": distribution.n,
            "seed": distribution.seed,
            "mean": distribution.mean,
            "std": distribution.std,
            "values": distribution.values,
            "created": distribution.created,
            "versions": distribution.versions,
            "model_side_from": distribution.model_side_from,
        }
    return json_ready(d)


def _removed(result: Attribution, distribution: BelongingDistribution | None) -> list[int]:
    """Indices of the belonging samples the result's test removed (none without the distribution)."""
    if distribution is None:
        return []
    from .verdict import DecisionSettings, floor_for, summarize

    return (
        summarize(
            distribution.values,
            DecisionSettings(mode=result.test, alpha=result.alpha),
            settled=distribution.sample_settled,
            losses=distribution.losses,
            floor=floor_for(result.distance, result.edit != "none"),
        )
        .for_basis(result.basis)
        .removed
    )


def _removed_values(result: Attribution, distribution: BelongingDistribution | None) -> list[float]:
    return [distribution.values[i] for i in _removed(result, distribution)] if distribution is not None else []


def figures(
    result: Attribution, distribution: BelongingDistribution | None = None, *, upload: Image.Image | None = None
) -> dict[str, bytes]:
    """PNG bytes of the report figures: ``images``, ``loss_curves`` and ``histogram``."""
    from .plots import fig_to_png, images_figure, loss_curves_figure

    out = {}
    if result.image_tensor is not None:
        out["images"] = fig_to_png(
            images_figure(
                result.image_tensor,
                result.reconstruction,
                result.reference_reconstruction,
                model=result.model,
                reference=result.reference,
                upload=upload,
            )
        )
    out["loss_curves"] = fig_to_png(
        loss_curves_figure(result.history, result.reference_history, model=result.model, reference=result.reference)
    )
    out["histogram"] = fig_to_png(histogram_figure_of(result, distribution))
    return out


def histogram_figure_of(result: Attribution, distribution: BelongingDistribution | None):
    """The belonging-distribution histogram of ``result`` (its test's scale, threshold, removed samples)."""
    from .contrast import recorded_values
    from .plots import histogram_figure

    values = distribution.values if distribution is not None else []
    return histogram_figure(
        values,
        mean=result.mean,
        std=result.std,
        critical_value=result.critical_value,
        value=result.calibrated_loss,
        verdict=result.verdict,
        model=result.model,
        alpha=result.alpha,
        threshold=result.threshold,
        removed=_removed(result, distribution),
        removed_label="did not reach the 8-bit floor" if result.basis == "floor" else "removed as failed inversions",
        calibrated=result.reference is not None,
        domain=result.domain,
        contrast_values=recorded_values(result.contrast) or (),
        contrast_label=f"held-out real pictures, same edit (N = {result.contrast['n']})" if result.contrast else "",
        at_least=result.reference_bound,
    )


FIGURE_CAPTIONS = {
    "images": "What the model saw: the upload as received, the image in the model's domain (after the "
    "preprocessing steps above), M's best reconstruction M(i*), and their per-pixel difference "
    "(colour scale on the right: black = identical).",
    "loss_curves": "Reverse-engineering (Eq. 1): the best loss so far per step, on M (inspected) and M_r (reference).",
    "histogram": "Belonging distribution: the calibrated losses of M's own samples, the threshold of Grubbs' test, "
    "and this image.",
}


def _page(title: str, body: str, data: dict) -> str:
    from .plots import GREY
    from .views import CSS

    payload = json.dumps(data, indent=1).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 980px; margin: 1.5em auto; padding: 0 1em; color: #1f2328; }}
table.numbers {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
table.numbers th, table.numbers td {{ text-align: left; border-bottom: 1px solid #d0d7de; padding: 4px 8px;
  vertical-align: top; }}
table.numbers th {{ width: 30%; font-weight: 600; }}
code {{ word-break: break-all; }}
figure.report {{ margin: 1em 0; }}
figure.report img {{ max-width: 100%; }}
.meta {{ color: {GREY}; }}
{CSS}
</style></head><body>
{body}
<h2>Machine-readable data</h2>
<script type="application/json" id="ronan-report">{payload}</script>
<p>The full JSON report is embedded in this file (element <code>#ronan-report</code>).</p>
<p class="meta"><small>RONAN Studio {html.escape(__version__)}</small></p>
</body></html>
"""


def _table(rows) -> str:
    return "<table class='numbers'>" + "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def report_html(
    result: Attribution,
    distribution: BelongingDistribution | None = None,
    figs: dict[str, bytes] | None = None,
    *,
    preprocessing: Sequence[str] | None = None,
    caveats: Sequence[str] = (),
    edit_detected: dict | None = None,
    upload: Image.Image | None = None,
) -> str:
    """A self-contained HTML report (figures embedded as base64 PNG, the JSON embedded too)."""
    from .plots import data_uri
    from .views import REFERENCE_BOUND_NOTE, contrast_text, esc, num, samples_text, verdict_card

    least, most = bound_words(result)
    figs = figures(result, distribution, upload=upload) if figs is None else figs
    data = report_dict(result, distribution, preprocessing=preprocessing, caveats=caveats, edit_detected=edit_detected)
    size = "x".join(str(v) for v in result.original_size) if result.original_size else "n/a"
    det = result.detection or edit_detected or {}
    rows = [
        ("Image", esc(result.image)),
        ("Image SHA-256", f"<code>{esc(result.image_sha256)}</code>"),
        (
            "Upload as received",
            f"{size} pixels, mode {esc(result.original_mode)}, format {esc(result.original_format or 'n/a')}",
        ),
        ("Preprocessing by the model", esc(" → ".join(preprocessing)) if preprocessing else "n/a"),
        ("What the file revealed", esc(det.get("description", "nothing read")) if det else "nothing read"),
        ("Edit assumed", f"{esc(result.edit)} ({esc(result.edit_source)}): {esc(result.edit_description)}"),
        ("Inspected model M", esc(result.model)),
        ("M weights SHA-256", f"<code>{esc(str(result.model_sha256))}</code>"),
        ("Reference model M_r", esc(str(result.reference)) if result.reference else "none (no calibration)"),
        ("M_r weights SHA-256", f"<code>{esc(str(result.reference_sha256))}</code>"),
        ("Distance", esc(result.distance)),
        ("Reconstruction loss A(M, x)", num(result.loss)),
        ("Reference loss A(M_r, x)", most + num(result.reference_loss) + REFERENCE_BOUND_NOTE * result.reference_bound),
        ("Calibrated loss A'(M, x)", least + num(result.calibrated_loss)),
        ("Grubbs statistic", least + num(result.statistic)),
        ("Critical value", num(result.critical_value)),
        ("Threshold on A'", num(result.threshold)),
        (
            "Test",
            f"{esc(result.test)}, {esc(result.domain)} domain, alpha {num(result.alpha)}; Grubbs alone says "
            f"{esc(result.test_verdict)}",
        ),
        (
            "Belonging samples",
            f"N = {result.n_calibration}: {esc(samples_text(result))} "
            f"{esc([num(v) for v in data['test']['removed_values']])}",
        ),
        ("mu, sigma (test domain)", f"{num(result.mean)}, {num(result.std)}"),
        ("Contrast check", contrast_text(result.contrast) if result.contrast else "not applied"),
        ("Reasons (inconclusive)", esc("; ".join(result.reasons)) or "none"),
        ("Inversion settings", f"<code>{esc(json.dumps(result.settings))}</code> (preset {esc(str(result.preset))})"),
        ("Seed", num(result.seed)),
        ("Calibration seed", num(result.calibration_seed)),
        ("Steps run (M, M_r)", f"{result.steps_run}, {num(result.reference_steps_run)}"),
        ("Calibration file", esc(str(result.calibration_file))),
        ("Device", esc(result.device)),
        ("Seconds", num(result.seconds)),
        ("Versions", f"<code>{esc(json.dumps(result.versions))}</code>"),
    ]
    if result.notes:
        rows.append(("Notes", esc("; ".join(result.notes))))
    imgs = "\n".join(
        f"<figure class='report'><img alt='{esc(FIGURE_CAPTIONS.get(name, name))}' "
        f"src='{data_uri(png)}'><figcaption>{esc(FIGURE_CAPTIONS.get(name, name))}</figcaption></figure>"
        for name, png in figs.items()
    )
    body = f"""<h1>RONAN origin attribution report</h1>
<p class="meta">Created <b>{esc(data["created"])}</b> (UTC) · {esc(result.image)} vs {esc(result.model)}</p>
{verdict_card(result, preprocessing=preprocessing or (), caveats=caveats, elem_id="verdict", report=True)}
<h2>Figures</h2>{imgs}
<h2>Numbers</h2>{_table(rows)}
<h2>Method</h2>
<p>The image, after the model's own preprocessing, is reverse-engineered on M (Adam on M's input to minimise the
{esc(result.distance)} loss between M's output and the image; Eq. 1) and on the reference model M_r; the calibrated
loss A'(M, x) = A(M, x) / A(M_r, x) (Eq. 2) is compared with the calibrated losses of N images generated by M by
Grubbs' test (Eq. 3; the robust test works on log A' and first removes belonging samples whose inversion failed): the
image is judged <i>belonging</i> when the statistic is below the critical value, and no verdict is given when the
evidence cannot carry one. RONAN: Alteration-free and Model-agnostic Origin Attribution of Generated Images
(NeurIPS 2023).</p>"""
    return _page(f"RONAN report: {result.image} vs {result.model}", body, data)


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60].strip("._") or "image"


def write_report(
    result: Attribution,
    folder: str | Path,
    distribution: BelongingDistribution | None = None,
    *,
    preprocessing: Sequence[str] | None = None,
    caveats: Sequence[str] = (),
    edit_detected: dict | None = None,
    upload: Image.Image | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.html`` and the figure PNGs into ``folder``.

    Returns:
        dict of paths with keys ``"json"``, ``"html"`` and the figure names of :func:`figures`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"ronan-{_safe_stem(Path(result.image).stem)}-{_safe_stem(result.model)}"
    figs = figures(result, distribution, upload=upload)
    extra: dict[str, Any] = {"preprocessing": preprocessing, "caveats": caveats, "edit_detected": edit_detected}
    paths = {"json": folder / f"{stem}.json", "html": folder / f"{stem}.html"}
    paths["json"].write_text(json.dumps(report_dict(result, distribution, **extra), indent=1) + "\n")
    paths["html"].write_text(report_html(result, distribution, figs, upload=upload, **extra))
    for name, png in figs.items():
        paths[name] = folder / f"{stem}-{name}.png"
        paths[name].write_bytes(png)
    return paths


# ----------------------------------------------------------------------------- which model?


def which_model_dict(result, *, upload: dict | None = None) -> dict:
    """JSON-ready report of a :class:`~ronan.which_model.WhichModelResult`."""
    d = {
        "report_format": REPORT_FORMAT,
        "ronan_version": __version__,
        "created": _now(),
        "kind": "which_model",
        "upload": upload or {},
    }
    d.update(result.to_dict())
    return json_ready(d)


def which_model_html(result, figure_png: bytes | None = None, *, upload: dict | None = None) -> str:
    """Self-contained HTML report of a which-model run: the answer, the figure, one row per model."""
    from .plots import BELONGING_COLOR, GREY, INCONCLUSIVE_COLOR, VERDICT_COLORS, data_uri, verdict_label
    from .views import esc, num

    data = which_model_dict(result, upload=upload)
    color = BELONGING_COLOR if result.best else INCONCLUSIVE_COLOR if result.inconclusive else GREY
    rows = "".join(
        f"<tr><td>{esc(a.model)}</td><td style='color:{VERDICT_COLORS.get(a.verdict, GREY)}'>"
        f"<b>{verdict_label(a.verdict)}</b></td><td>{num(a.statistic)}</td><td>{num(a.critical_value)}</td>"
        f"<td>{num(a.calibrated_loss)}</td><td>{num(a.loss)}</td><td>{num(a.reference_loss)} "
        f"({esc(a.reference)})</td><td>{a.n_kept}/{a.n_calibration}</td><td>{esc('; '.join(a.reasons))}</td></tr>"
        for a in result.attributions
    )
    errs = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in result.errors.items())
    up = upload or {}
    fig = (
        (
            f"<figure class='report'><img alt='Grubbs statistic per model with thresholds' "
            f"src='{data_uri(figure_png)}'></figure>"
        )
        if figure_png
        else ""
    )
    first = result.attributions[0] if result.attributions else None
    settings = (
        (
            f"<p>Settings: distance {esc(first.distance)}, preset {esc(first.preset)}, seed {first.seed}, "
            f"alpha {first.alpha:g}, test {esc(first.test)}; each model with its default reference model "
            f"and its own belonging distribution.</p>"
        )
        if first
        else ""
    )
    body = f"""<h1>RONAN which-model report</h1>
<p class="meta">Created <b>{esc(data["created"])}</b> (UTC) · {esc(result.image)}
{"· " + esc(up.get("description", "")) if up.get("description") else ""}</p>
<div class="ronan-card" id="verdict" style="border-color:{color}"><h2 style="color:{color}">{esc(result.answer)}</h2>
<p>Tested against {len(result.attributions)} model(s); each uses its own belonging distribution and Grubbs' test, no
classifier is trained. A model that accepts the image is named; when none does, the image is real or comes from a
model outside this set.</p></div>
{fig}
<h2>Per model</h2>
<table class="numbers"><tr><th>model</th><th>verdict</th><th>statistic</th><th>critical value</th><th>A'</th>
<th>A(M, x)</th><th>A(M_r, x)</th><th>samples used</th><th>reasons</th></tr>{rows}</table>
{"<h2>Not tested</h2><ul>" + errs + "</ul>" if errs else ""}
{settings}"""
    return _page(f"RONAN which-model report: {result.image}", body, data)


def write_which_model_report(
    result, folder: str | Path, figure_png: bytes | None = None, *, upload: dict | None = None
) -> dict[str, Path]:
    """Write ``ronan-which-<stem>.json`` and ``.html`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"ronan-which-{_safe_stem(Path(result.image).stem)}"
    paths = {"json": folder / f"{stem}.json", "html": folder / f"{stem}.html"}
    paths["json"].write_text(json.dumps(which_model_dict(result, upload=upload), indent=1) + "\n")
    paths["html"].write_text(which_model_html(result, figure_png, upload=upload))
    return paths
