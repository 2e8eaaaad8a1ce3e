"""HTML fragments shared by the app and the HTML reports: verdict cards, messages, image panels.

Plain strings from plain objects (no gradio): the app shows them in ``gr.HTML`` components, the
reports (:mod:`ronan.report`) embed the same cards, so the wording is the same everywhere:
``BELONGING`` / ``NOT BELONGING`` / ``INCONCLUSIVE`` (:data:`ronan.plots.VERDICT_LABELS`),
Grubbs' *statistic*, ``M`` the inspected model and ``M_r`` the reference model.

:func:`assumptions` lists what a result rests on beyond the method itself (an edit detected or
declared, no reference model, SSIM with too few restarts, the paper's test...); every card and
report shows them next to the verdict, not as a footnote.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template

from PIL import Image

from .attribution import SSIM_RESTARTS, bound_words
from .edits import ROBUST_FAMILY
from .plots import (
    GREY,
    INCONCLUSIVE_COLOR,
    MODEL_COLOR,
    NON_BELONGING_COLOR,
    SAMPLES_COLOR,
    VERDICT_COLORS,
    data_uri,
    diff_colorbar_stops,
    verdict_label,
)

CSS = Template("""
.ronan-card { border-radius: 10px; padding: 12px 16px; border: 3px solid $grey; margin: 0; }
.ronan-card h2 { margin: 0 0 4px 0; font-size: 1.7em; font-weight: 700; letter-spacing: .02em; line-height: 1.15; }
.ronan-card p { margin: 4px 0; }
.ronan-card .ronan-sub { color: $grey; font-size: .95em; }
.ronan-card ul { margin: 4px 0 4px 1.2em; padding: 0; }
.ronan-card table { font-size: .92em; border-collapse: collapse; width: 100%; margin-top: 6px; }
.ronan-card td, .ronan-card th { padding: 2px 8px 2px 0; text-align: left; vertical-align: top; font-weight: normal; }
.ronan-card th { color: $grey; white-space: nowrap; }
.ronan-card.ronan-stale { opacity: .55; }
.ronan-caveat { border-left: 5px solid $inconclusive; background: rgba(212, 167, 44, .14); padding: 6px 10px; margin: 8px 0;
                border-radius: 4px; }
.ronan-caveat b { color: $inconclusive; }
.ronan-saw { font-size: .92em; margin: 6px 0; }
.ronan-progress { height: 12px; background: rgba(128, 128, 128, .18); border-radius: 6px; overflow: hidden; }
.ronan-progress > div { height: 100%; background: $model; transition: width .2s; }
.ronan-panels { display: flex; flex-wrap: wrap; gap: 10px; }
.ronan-panels figure { margin: 0; flex: 1 1 130px; max-width: 200px; min-width: 110px; }
.ronan-panels figure img { width: 100%; aspect-ratio: 1 / 1; object-fit: contain; background: #000; border-radius: 4px;
                           display: block; }
.ronan-panels figure img.pixel { image-rendering: pixelated; }
.ronan-panels figcaption { font-size: .88em; line-height: 1.25; margin-top: 3px; }
.ronan-panels figcaption b { display: block; }
.ronan-diff { display: flex; gap: 4px; align-items: stretch; }
.ronan-diff img { flex: 1 1 auto; min-width: 0; }
.ronan-cbar { display: flex; gap: 2px; font-size: .75em; }
.ronan-cbar .bar { width: 10px; border-radius: 2px; }
.ronan-cbar .ticks { position: relative; width: 2.6em; }
.ronan-cbar .ticks span { position: absolute; left: 0; transform: translateY(50%); line-height: 1; }
.ronan-figure img { width: 100%; max-width: 520px; height: auto; display: block; }
.ronan-figure svg { width: 100%; max-width: 520px; height: auto; display: block; }
""").substitute(grey=GREY, inconclusive=INCONCLUSIVE_COLOR, model=MODEL_COLOR)  # noqa: E501
"""Styles of the fragments (the app adds them to its page, the reports inline them); colours from
:mod:`ronan.plots`."""


def esc(x) -> str:
    return html.escape(str(x))


def num(x, fmt: str = ".4g") -> str:
    """A number for tables: ``"n/a"`` for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, fmt) if isinstance(x, (int, float)) else str(x)


# ----------------------------------------------------------------------------- progress and messages


def status_html(fraction: float | None, text: str) -> str:
    """A progress bar (omitted when ``fraction`` is None) with one line of text (``#ronan-status``)."""
    bar = ""
    if fraction is not None:
        pct = max(0.0, min(1.0, fraction)) * 100
        bar = (
            f"<div class='ronan-progress' role='progressbar' aria-valuenow='{pct:.0f}' aria-valuemin='0' "
            f"aria-valuemax='100'><div style='width:{pct:.1f}%'></div></div>"
        )
    return f"{bar}<div class='ronan-status-text' style='margin-top:3px'>{esc(text)}</div>"


KINDS = {
    "info": GREY,
    "running": MODEL_COLOR,
    "stopped": GREY,
    "error": NON_BELONGING_COLOR,
    "queued": MODEL_COLOR,
    "caveat": INCONCLUSIVE_COLOR,
}


def message_card(
    title: str, text: str = "", kind: str = "info", *, elem_id: str = "ronan-verdict", details: Sequence[str] = ()
) -> str:
    """A card with a title (e.g. ``"Error"``, ``"Stopped"``, ``"Running"``) and a plain message."""
    color = KINDS.get(kind, GREY)
    items = "".join(f"<li>{esc(d)}</li>" for d in details)
    return (
        f"<div class='ronan-card ronan-{esc(kind)}' id='{esc(elem_id)}' data-state='{esc(kind)}' "
        f"style='border-color:{color}'><h2 style='color:{color}'>{esc(title)}</h2>"
        + (f"<p>{esc(text)}</p>" if text else "")
        + (f"<ul>{items}</ul>" if items else "")
        + "</div>"
    )


def error_card(message: str, *, elem_id: str = "ronan-verdict") -> str:
    """The card shown when a run failed (no verdict); ``message`` is the one-line reason."""
    return message_card("No verdict: the run failed", message, "error", elem_id=elem_id)


# ----------------------------------------------------------------------------- assumptions


def contrast_text(c: dict) -> str:
    """One line (HTML-escaped) for a result's contrast check (:mod:`ronan.contrast`)."""
    if c.get("missing"):
        return f"not built on this server ({esc(c['set'])}): a belonging verdict cannot be confirmed"
    return (
        f"{c['at_or_below']} of {c['n']} held-out real pictures ({esc(c['set'])}, same edit) reconstruct at "
        f"least as well; p = {c['p_value']:.3f} vs level {c['alpha']:g}"
    )


def assumptions(result, caveats: Sequence[str] = ()) -> list[str]:
    """What ``result`` (an :class:`~ronan.attribution.Attribution`) rests on beyond the method.

    ``caveats``: more, from the run (e.g. an edit detected but not tested). Each is one sentence
    for humans; an empty list means the paper's setting: an unedited image, calibrated, tested
    with the default distance and settings.
    """
    out = list(caveats)
    if result.edit_source in ("detected", "declared"):
        out.append(
            f"Edit assumed ({result.edit_source}): {result.edit_description}. The belonging samples went "
            f"through the same edit ({result.edit}, mode {result.edit_mode})."
        )
    elif result.edit_source == "robust":
        out.append(
            f"Unknown edits assumed: the image was tested against the belonging distribution of each edit of "
            f"the family ({', '.join(ROBUST_FAMILY)}); the closest fit, {result.robust_edit}, decided. An edit "
            f"outside the family can still make a generated image look not belonging."
        )
    if result.reference is None:
        out.append(
            "No reference model: the raw loss A(M, x) is tested (no calibration by Eq. 2); image complexity "
            "is not accounted for."
        )
    restarts = (result.settings or {}).get("restarts", 1)
    if result.distance == "ssim" and restarts < SSIM_RESTARTS:
        out.append(
            f"SSIM distance with {restarts} restart(s): some inversions get stuck, which widens the "
            f"belonging distribution until real images pass (measured: 56.5% accuracy; with "
            f"{SSIM_RESTARTS} restarts 97.5%). Use {SSIM_RESTARTS} restarts."
        )
    if result.test == "paper":
        out.append(
            "The paper's test (Eq. 3 on all N raw values): a single failed inversion among the belonging "
            "samples can widen the threshold."
        )
    return out


# ----------------------------------------------------------------------------- verdict card


REFERENCE_BOUND_NOTE = "; its inversion ended once the verdict could no longer change (an upper bound)"


def samples_text(r) -> str:
    """How many belonging samples the test of attribution ``r`` used, and why the others not."""
    if r.test != "robust":
        return f"all {r.n_calibration} (paper's test)"
    if r.basis == "floor":
        return (
            f"{r.n_kept} of {r.n_calibration} used: those whose inversions reached the 8-bit floor, as this "
            f"image's did (the floor rule); {r.n_removed} left out"
        )
    return f"{r.n_kept} of {r.n_calibration} used; {r.n_removed} removed as failed inversions"


def verdict_card(
    result,
    *,
    preprocessing: Sequence[str] = (),
    caveats: Sequence[str] = (),
    elem_id: str = "ronan-verdict",
    report: bool = False,
) -> str:
    """The verdict card of an attribution: verdict, one sentence, reasons (inconclusive), the
    assumptions it rests on, what the model saw, and the numbers behind it."""
    r = result
    color = VERDICT_COLORS.get(r.verdict, GREY)
    title = verdict_label(r.verdict)
    weak = assumptions(r, caveats)
    parts = [
        f"<div class='ronan-card' id='{esc(elem_id)}' data-verdict='{esc(r.verdict)}' style='border-color:{color}'>",
        f"<h2 style='color:{color}'>{title}</h2>",
        f"<p class='ronan-sub'>{esc(r.image)} vs <b>{esc(r.model)}</b></p>",
        f"<p>{esc(r.explanation())}</p>",
    ]
    if r.reasons:
        parts.append("<p><b>Why no verdict:</b></p><ul>" + "".join(f"<li>{esc(x)}</li>" for x in r.reasons) + "</ul>")
    if weak:
        parts.append(
            "<div class='ronan-caveat'><b>This result rests on:</b><ul>"
            + "".join(f"<li>{esc(x)}</li>" for x in weak)
            + "</ul></div>"
        )
    if preprocessing:
        parts.append(f"<p class='ronan-saw'><b>What the model saw:</b> {esc(' → '.join(preprocessing))}</p>")
    of = "log A'" if r.domain == "log" else "A'"
    a_name = "A'(M, x)" if r.reference is not None else "A(M, x) (raw: no reference)"
    least, most = bound_words(r)
    rows = [
        (
            "Grubbs statistic",
            f"{least}{num(r.statistic, '.3f')} vs critical value {num(r.critical_value, '.3f')} "
            f"(({of} − μ) / σ; belonging below)",
        ),
        (
            f"Calibrated loss {a_name}" if r.reference is not None else a_name,
            f"{least}{num(r.calibrated_loss)} vs threshold {num(r.threshold)}",
        ),
        ("Loss on M, A(M, x)", f"{num(r.loss)} ({esc(r.model)})"),
        (
            "Loss on M_r, A(M_r, x)",
            f"{most}{num(r.reference_loss)} ({esc(r.reference)})" + REFERENCE_BOUND_NOTE * r.reference_bound
            if r.reference is not None
            else "none: no reference model",
        ),
        ("Belonging samples", samples_text(r)),
        (
            "Test",
            f"{esc(r.test)} ({'log domain' if r.domain == 'log' else 'linear'}), α = {r.alpha:g}; "
            f"μ = {num(r.mean)}, σ = {num(r.std)} of {of}",
        ),
        ("Edit assumed", f"{esc(r.edit)}{': ' + esc(r.robust_edit) if r.robust_edit else ''} ({esc(r.edit_source)})"),
        *([("Contrast check", contrast_text(r.contrast))] if r.contrast else []),
        ("Distance, preset, seed", f"{esc(r.distance)}, {esc(r.preset)}, {r.seed}"),
        ("Steps run (M, M_r)", f"{r.steps_run}, {num(r.reference_steps_run)}"),
        ("Time, device", f"{r.seconds:.2f} s, {esc(r.device)}"),
    ]
    if r.notes and report:
        rows.append(("Notes", esc("; ".join(r.notes))))
    parts.append("<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table></div>")
    return "".join(parts)


# ----------------------------------------------------------------------------- image panels


@dataclass
class Panel:
    """One image of :func:`panels_html`: ``image`` (PIL), a bold ``title``, a ``caption``,
    ``pixel`` (crisp upscaling of small images), ``colorbar`` (the difference map's scale)."""

    title: str
    image: Image.Image | None
    caption: str = ""
    pixel: bool = True
    colorbar: bool = False


def colorbar_html() -> str:
    """The colour scale of :func:`ronan.plots.difference_map` (vertical bar with labels)."""
    colours, ticks = diff_colorbar_stops()
    grad = ", ".join(colours[::-1])
    labels = "".join(f"<span style='bottom:{p * 100:.0f}%'>{esc(t)}</span>" for p, t in ticks)
    return (
        f"<div class='ronan-cbar' title='|x − M(i)| per pixel, 0 to 1'>"
        f"<div class='bar' style='background:linear-gradient({grad})'></div>"
        f"<div class='ticks'>{labels}</div></div>"
    )


def panels_html(panels: Sequence[Panel], *, elem_id: str = "ronan-images") -> str:
    """Images side by side with captions (wrapping on narrow screens); images embedded as data URIs."""
    out = [f"<div class='ronan-panels' id='{esc(elem_id)}'>"]
    for p in panels:
        if p.image is None:
            img = f"<div style='aspect-ratio:1/1;border:1px dashed {SAMPLES_COLOR};border-radius:4px'></div>"
        else:
            img = f"<img class='{'pixel' if p.pixel else ''}' alt='{esc(p.title)}' src='{data_uri(p.image)}'>"
        if p.colorbar and p.image is not None:
            img = f"<div class='ronan-diff'>{img}{colorbar_html()}</div>"
        out.append(f"<figure>{img}<figcaption><b>{esc(p.title)}</b>{esc(p.caption)}</figcaption></figure>")
    out.append("</div>")
    return "".join(out)


def figure_html(png: bytes | None = None, *, svg: str | None = None, alt: str = "", elem_id: str = "") -> str:
    """A figure (PNG bytes or an SVG string) that scales to its container, with alt text."""
    ident = f" id='{esc(elem_id)}'" if elem_id else ""
    if svg is not None:
        return f"<div class='ronan-figure'{ident}>{svg}</div>"
    if png is None:
        return f"<div class='ronan-figure'{ident}></div>"
    return f"<div class='ronan-figure'{ident}><img alt='{esc(alt)}' src='{data_uri(png)}'></div>"
