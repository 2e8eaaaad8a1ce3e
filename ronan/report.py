"""Reports of one attribution: JSON with every number, PNG figures, self-contained HTML.

The JSON holds the whole :meth:`Attribution.to_dict` (losses, calibrated loss, Grubbs
statistic and critical value, N, alpha, mu, sigma, verdict, seeds, settings, versions,
SHA-256 of the image and of both models' weights, loss curves) plus a summary of the
belonging distribution it was tested against. The HTML embeds the figures as base64 PNG,
so it is one file that opens anywhere offline.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import time
from pathlib import Path

from . import __version__
from .attribution import Attribution
from .calibration import BelongingDistribution

REPORT_FORMAT = 1


def report_dict(result: Attribution, distribution: BelongingDistribution | None = None) -> dict:
    """JSON-ready report: the attribution, the distribution summary and report metadata."""
    d = {"report_format": REPORT_FORMAT, "ronan_version": __version__,
         "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
         "verdict": result.verdict, "explanation": result.explanation(),
         "attribution": result.to_dict(history=True)}
    if distribution is not None:
        d["belonging_distribution"] = {
            "file": result.calibration_file, "model": distribution.model, "reference": distribution.reference,
            "distance": distribution.distance, "settings": distribution.settings, "n": distribution.n,
            "seed": distribution.seed, "mean": distribution.mean, "std": distribution.std,
            "values": distribution.values, "created": distribution.created, "versions": distribution.versions,
        }
    return _sanitize(d)


def _sanitize(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    return obj


def figures(result: Attribution, distribution: BelongingDistribution | None = None) -> dict[str, bytes]:
    """PNG bytes of the report figures: ``images``, ``loss_curves`` and ``histogram``."""
    from .plots import fig_to_png, histogram_figure, images_figure, loss_curves_figure

    out = {}
    if result.image_tensor is not None:
        out["images"] = fig_to_png(images_figure(result.image_tensor, result.reconstruction,
                                                 result.reference_reconstruction, model=result.model,
                                                 reference=result.reference))
    out["loss_curves"] = fig_to_png(loss_curves_figure(result.history, result.reference_history,
                                                       model=result.model, reference=result.reference))
    values = distribution.values if distribution is not None else []
    removed = _removed(result, distribution)
    out["histogram"] = fig_to_png(histogram_figure(values, mean=result.mean, std=result.std,
                                                   critical_value=result.critical_value, value=result.calibrated_loss,
                                                   verdict=result.verdict, model=result.model, alpha=result.alpha,
                                                   threshold=result.threshold, removed=removed))
    return out


def _removed(result: Attribution, distribution: BelongingDistribution | None) -> list[int]:
    """Indices of the belonging samples the result's test removed (none without the distribution)."""
    if distribution is None:
        return []
    from .verdict import DecisionSettings, summarize

    return summarize(distribution.values, DecisionSettings(mode=result.test, alpha=result.alpha)).removed


def _num(x, fmt=".4g") -> str:
    return "n/a" if x is None else (format(x, fmt) if isinstance(x, float) else str(x))


def report_html(result: Attribution, distribution: BelongingDistribution | None = None,
                figs: dict[str, bytes] | None = None) -> str:
    """A self-contained HTML report (figures embedded as base64 PNG)."""
    figs = figures(result, distribution) if figs is None else figs
    e = html.escape
    color = "#1a7f37" if result.belonging else "#cf222e"
    rows = [
        ("Image", e(result.image)), ("Image SHA-256", f"<code>{e(result.image_sha256)}</code>"),
        ("Inspected model M", e(result.model)), ("M weights SHA-256", f"<code>{e(str(result.model_sha256))}</code>"),
        ("Reference model M_r", e(str(result.reference))),
        ("M_r weights SHA-256", f"<code>{e(str(result.reference_sha256))}</code>"),
        ("Distance", e(result.distance)), ("Reconstruction loss A(M, x)", _num(result.loss)),
        ("Reference loss A(M_r, x)", _num(result.reference_loss)),
        ("Calibrated loss A'(M, x)", _num(result.calibrated_loss)),
        ("Grubbs statistic (A' - mu) / sigma", _num(result.statistic)),
        ("Critical value", _num(result.critical_value)), ("N (belonging samples)", _num(result.n_calibration)),
        ("alpha", _num(result.alpha)), ("mu", _num(result.mean)), ("sigma", _num(result.std)),
        ("Verdict", f"<b style='color:{color}'>{e(result.verdict.upper())}</b>"),
        ("Inversion settings", f"<code>{e(json.dumps(result.settings))}</code> (preset {e(str(result.preset))})"),
        ("Seed", _num(result.seed)), ("Calibration seed", _num(result.calibration_seed)),
        ("Steps run (model, reference)", f"{result.steps_run}, {_num(result.reference_steps_run)}"),
        ("Calibration file", e(str(result.calibration_file))), ("Device", e(result.device)),
        ("Seconds", _num(result.seconds)), ("Versions", f"<code>{e(json.dumps(result.versions))}</code>"),
    ]
    if result.notes:
        rows.append(("Notes", e("; ".join(result.notes))))
    table = "\n".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    imgs = "\n".join(
        f"<figure><img alt='{e(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>{e(name.replace('_', ' '))}</figcaption></figure>" for name, png in figs.items())
    data = json.dumps(report_dict(result, distribution), indent=1).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>RONAN report: {e(result.image)} vs {e(result.model)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #1f2328; }}
.verdict {{ border: 3px solid {color}; border-radius: 8px; padding: 1em; }}
.verdict h2 {{ color: {color}; margin: 0 0 .3em 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
th, td {{ text-align: left; border-bottom: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; }}
code {{ word-break: break-all; }}
figure {{ display: inline-block; margin: .5em; }}
img {{ max-width: 100%; image-rendering: pixelated; }}
</style></head><body>
<h1>RONAN origin attribution report</h1>
<div class="verdict"><h2>{e(result.verdict.upper())}</h2><p>{e(result.explanation())}</p></div>
<h2>Numbers</h2><table>{table}</table>
<h2>Figures</h2>{imgs}
<h2>Method</h2>
<p>The image is reverse-engineered on M (Adam on M's input to minimise the {e(result.distance)} loss between M's output and
the image; Eq. 1), and on the reference model M_r; the calibrated loss A'(M, x) = A(M, x) / A(M_r, x) (Eq. 2) is compared
with the calibrated losses of N images generated by M by Grubbs' test (Eq. 3): the image is judged <i>belonging</i> when
(A' - mu) / sigma is below the critical value. RONAN: Alteration-free and Model-agnostic Origin Attribution of Generated
Images (NeurIPS 2023).</p>
<h2>Machine-readable data</h2>
<script type="application/json" id="ronan-report">{data}</script>
<p>The full JSON report is embedded in this file (element <code>#ronan-report</code>).</p>
<p><small>RONAN Studio {e(__version__)}</small></p>
</body></html>
"""


def _safe_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60].strip("._") or "image"


def write_report(result: Attribution, folder: str | Path, distribution: BelongingDistribution | None = None
                 ) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.html`` and the figure PNGs into ``folder``.

    Returns:
        dict of paths with keys ``"json"``, ``"html"`` and the figure names of :func:`figures`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"ronan-{_safe_stem(Path(result.image).stem)}-{_safe_stem(result.model)}"
    figs = figures(result, distribution)
    paths = {"json": folder / f"{stem}.json", "html": folder / f"{stem}.html"}
    paths["json"].write_text(json.dumps(report_dict(result, distribution), indent=1) + "\n")
    paths["html"].write_text(report_html(result, distribution, figs))
    for name, png in figs.items():
        paths[name] = folder / f"{stem}-{name}.png"
        paths[name].write_bytes(png)
    return paths
