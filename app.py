"""RONAN Studio: live, explainable origin attribution in the browser (Gradio 6 Blocks).

UI only: layout and event wiring, one function per tab (``build_attribute_tab``, ...). All work
goes through ``ronan/`` (``ronan.studio`` for streamed runs and the job line, ``ronan.plots`` for
figures, ``ronan.views`` for the cards, ``ronan.report`` for downloads, ``ronan.which_model``
for multi-source attribution). Start with ``python app.py``.

Models: the available bundled ones, cached hub models, and the user models registered on this
machine (``ronan register``; their cards are read from disk at start and at each page load).
Visitors choose among those names; the app never accepts code, cards or paths from them, and
never offers what cannot run here (unavailable models, LPIPS without its weights).

Heavy jobs (inversions) run one at a time in :class:`ronan.studio.JobLine`, which tells each
waiting visitor their position and an ETA, and lets Stop cancel a job that is still waiting.

Environment: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860),
``RONAN_QUEUE_SIZE`` (jobs that may wait, default 16), ``RONAN_THREADS`` (torch CPU threads,
default 1; 0 leaves torch's default), ``RONAN_ALLOW_BUILDS=1`` (visitors may build missing
belonging distributions: minutes of CPU each; off by default), ``RONAN_KEEP_RUNS`` (report
folders kept, default 32).
"""

from __future__ import annotations

import atexit
import html
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

if __name__ == "__main__":  # say something at once: importing torch and gradio takes seconds
    print("RONAN Studio: starting (loading torch and gradio)...", flush=True)

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from ronan import __version__, plots, report, studio, views  # noqa: E402
from ronan.errors import CalibrationError, Cancelled, DistanceUnavailable, ModelUnavailable, RonanError  # noqa: E402
from ronan.images import load_image  # noqa: E402
from ronan.models.registry import DEFAULT_MODEL  # noqa: E402
from ronan.prepare import prepare  # noqa: E402
from ronan.preset_names import MODEL_PRESET, PRESET_SUMMARIES  # noqa: E402
from ronan.rows import write_csv  # noqa: E402
from ronan.which_model import WhichModelResult  # noqa: E402

try:  # Hugging Face ZeroGPU: request a GPU for the duration of each inversion event.
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:  # anywhere else: a no-op

    def gpu(fn):
        return fn


WORK_DIR = Path(tempfile.mkdtemp(prefix="ronan-studio-"))
atexit.register(shutil.rmtree, WORK_DIR, ignore_errors=True)
EXAMPLES_DIR = WORK_DIR / "examples"
GENERATED_DIR = WORK_DIR / "generated"
RUNS = studio.RunFolders(WORK_DIR / "runs", keep=int(os.environ.get("RONAN_KEEP_RUNS", "32")))
QUEUE_SIZE = int(os.environ.get("RONAN_QUEUE_SIZE", "16"))
LINE = studio.JobLine(max_waiting=QUEUE_SIZE)
# The bundled models are tiny: one CPU thread per job is fastest, and much faster than two
# when the cores are shared (measured: 3.8 s vs 45 s per verdict on a loaded 2-core machine).
THREADS = int(os.environ.get("RONAN_THREADS", "1"))
UPDATE_EVERY_S = 0.25  # at most ~4 UI updates per second while streaming
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
# Source Sans Pro ships with gradio at 400 and 700 (its 600 file is a 55-glyph subset: "RONᴀN").
THEME = gr.themes.Default(
    font=[gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"],
    font_mono=[gr.themes.LocalFont("IBM Plex Mono", weights=(400, 700)), "ui-monospace", "monospace"],
)

CSS = (
    views.CSS
    + """
.pixel img, img.pixel { image-rendering: pixelated; }
#ronan-header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 14px; }
#ronan-header h1 { margin: 0; font-size: 1.8em; font-weight: 700; }
#ronan-header .tagline { font-size: 1.1em; }
#ronan-howto { margin: 2px 0 0 0; }
#ronan-model-info { font-size: .95em; }
#ronan-model-info details { display: inline; color: #57606a; font-size: .9em; }
#ronan-model-info summary { display: inline; cursor: pointer; text-decoration: underline dotted; }
#examples { height: auto !important; }
#examples .grid-wrap { height: auto !important; min-height: 0 !important; max-height: none !important;
                       overflow: hidden !important; padding: 2px 4px 4px !important; }
#examples .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important;
                            grid-template-rows: none !important; grid-auto-rows: auto !important; gap: 6px !important;
                            padding-top: 22px !important; }
#examples .thumbnail-item { aspect-ratio: 1 / 1; min-height: 0; }
#examples .caption-label { font-size: 11px; padding: 1px 3px; max-width: 95%; }
@media (max-width: 640px) {
  #ronan-header h1 { font-size: 1.45em; }
  #ronan-header .tagline { font-size: 1em; }
  #ronan-howto { font-size: .9em; line-height: 1.3; }
  #ronan-model-info { font-size: .85em; line-height: 1.3; }
  #examples .caption-label { font-size: 10px; white-space: normal; line-height: 1.05; }
  .ronan-card h2 { font-size: 1.45em; }
}
.ronan-card table, .ronan-card td, .ronan-card th { border: none !important; }
.ronan-card tr { border: none !important; border-bottom: 1px solid rgba(128, 128, 128, .2) !important; }
.ronan-how-to-read { color: #57606a; }
#report-files:not(:has(a)) { display: none; }  /* no empty report box: it appears with its files */
#which-preview figure { max-width: 120px; }
.ronan-how-to-read ol { margin: 4px 0 0 1.2em; padding: 0; }
"""
)


# ----------------------------------------------------------------------------- errors and sessions


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def _web_message(e: Exception) -> str:
    """A one-line reason for a web visitor: no command lines (they are for the operator)."""
    if isinstance(e, studio.DistributionMissing):
        extra = (
            (
                " An operator has allowed building here: tick 'Build the belonging distribution if missing' "
                "under Advanced (minutes)."
            )
            if studio.builds_allowed()
            else ""
        )
        return str(e) + extra
    if isinstance(e, CalibrationError):
        return (
            "The belonging distribution for these settings is not available on this server. "
            "The default settings use one that is ready."
        )
    if isinstance(e, DistanceUnavailable):
        return "This distance is not available on this server; choose mse, mae or ssim."
    if isinstance(e, ModelUnavailable):
        return re.sub(r"[;:.]?\s*(run|use|see|retrain)\b[^.;]*`[^`]*`[^.;]*", "", str(e)).strip() or str(e)
    return str(e)


def stop(request: gr.Request):
    """Stop the caller's jobs, running or still waiting in the line."""
    n = LINE.stop(_session(request))
    return "Stopping..." if n else "Nothing is running."


def _wait_turn(ticket: studio.Ticket, clear: tuple, card_id: str | None = "ronan-verdict"):
    """Yield updates (status at index 0 and, with ``card_id``, a card at index 1 of ``clear``) while
    ``ticket`` waits for its turn; return True when it may run, False when it was stopped while waiting."""
    waited = False
    while not LINE.wait(ticket, 0.25 if waited else 0.0):
        if ticket.stopped:
            return False
        ahead, secs = LINE.ahead(ticket)
        out = [gr.skip()] * len(clear)
        out[0] = views.status_html(
            None,
            f"Waiting for the worker: {ahead} run(s) ahead of yours, "
            f"yours starts in {studio.fmt_eta(secs)}. Stop leaves the line.",
        )
        if not waited and card_id:
            out[1] = views.message_card(
                "Waiting in line",
                "Another visitor's run is using the worker; yours starts when it ends.",
                "queued",
                elem_id=card_id,
            )
        waited = True
        yield tuple(out)
    if waited and not ticket.stopped:
        yield tuple(clear)
    return not ticket.stopped


def _left(eta: float | None) -> str:
    return "estimating the time left" if eta is None else f"{studio.fmt_eta(eta)} left"


def _running_status(p: studio.RunProgress) -> str:
    return views.status_html(p.fraction, f"{p.message} · {studio.fmt_seconds(p.elapsed)} elapsed · {_left(p.eta)}")


# ----------------------------------------------------------------------------- choices


# ``choices``: studio.model_choices(), read once per page build or load (the registry reads every card)
def _model_choices(generators_only: bool = False, choices: list[studio.ModelChoice] | None = None):
    return [
        (c.label, c.name)
        for c in (studio.model_choices() if choices is None else choices)
        if c.available and (not generators_only or c.role != "reference")
    ]


def _reference_choices(choices: list[studio.ModelChoice] | None = None):
    return (
        [("default (the model's pairing)", "default")]
        + _model_choices(choices=choices)
        + [("none (no calibration: raw loss)", "none")]
    )


def _distance_choices():
    return [name for name, ok, _ in studio.distance_choices() if ok]


def _distance_info() -> str:
    off = [f"{name}: {why}" for name, ok, why in studio.distance_choices() if not ok]
    return "1-SSIM needs 4 restarts (set below). " + (" · ".join(off) + "." if off else "")


def _default_model(choices: list[studio.ModelChoice] | None = None) -> str:
    avail = [
        c.name
        for c in (studio.model_choices() if choices is None else choices)
        if c.available and c.role != "reference"
    ]
    return DEFAULT_MODEL if DEFAULT_MODEL in avail else (avail[0] if avail else DEFAULT_MODEL)


def model_info(name: str, choices: list[studio.ModelChoice] | None = None) -> str:
    """What the selected model makes, its reference model, and what is not offered here (HTML)."""
    choices = studio.model_choices() if choices is None else choices
    text = f"⚠️ unknown model {html.escape(str(name))}"
    for c in choices:
        if c.name == name:
            mine = f" ({html.escape(c.description)})" if c.source == "user" and c.description else ""
            text = (
                f"Makes <b>{html.escape(c.domain)}</b>{mine}. Other images are cropped and resized to that first, "
                f"so a photo is (rightly) <i>not belonging</i>. "
                f"Reference M_r: {html.escape(c.reference or 'none')}."
            )
            if c.preset:
                text += (
                    f" Its card names the <b>{html.escape(c.preset)}</b> inversion preset "
                    "(the preset <i>default</i> runs it)."
                )
    missing = [c for c in choices if not c.available]
    if missing:
        groups: dict[str, list[str]] = {}
        for c in missing:
            groups.setdefault(studio.unavailable_reason(c), []).append(c.name)
        text += (
            f" <details><summary>{len(missing)} more models are not offered here</summary>"
            + "; ".join(f"{html.escape(', '.join(v))} ({html.escape(k)})" for k, v in groups.items())
            + ".</details>"
        )
    return f"<div id='ronan-model-info'>{text}</div>"


def refresh_choices(model, c_model, b_model, gen_model):
    """Re-read the registry on page load (weights or user models may have been added since)."""
    choices = studio.model_choices()
    gens, all_ = _model_choices(True, choices), _model_choices(choices=choices)
    names = [v for _, v in all_]

    def keep(v, pool):
        return v if v in [p for _, p in pool] else (pool[0][1] if pool else None)

    return (
        gr.update(choices=gens, value=keep(model, gens)),
        gr.update(choices=all_, value=keep(c_model, all_)),
        gr.update(choices=gens, value=keep(b_model, gens)),
        gr.update(choices=gens, value=keep(gen_model, gens)),
        model_info(model if model in names else _default_model(choices), choices),
    )


def _opt_int(x):
    return None if x in (None, "") or (isinstance(x, float) and x != x) or int(x) <= 0 else int(x)


def _opt_float(x):
    return None if x in (None, "") or (isinstance(x, float) and x != x) or float(x) <= 0 else float(x)


def _sig(x, digits: int = 4):
    """A number rounded to ``digits`` significant figures for tables (None stays None)."""
    return None if x is None else float(f"{x:.{digits}g}")


# the tables' columns: (header, row key); rows are ronan.rows rows (Attribution.to_row and the caller's columns)
WHICH_COLUMNS = [
    ("model", "model"),
    ("verdict", "verdict"),
    ("statistic", "statistic"),
    ("critical value", "critical_value"),
    ("A'", "calibrated_loss"),
    ("A(M,x)", "loss"),
    ("A(M_r,x)", "reference_loss"),
]
BATCH_COLUMNS = [
    ("image", "image"),
    ("label", "label"),
    ("verdict", "verdict"),
    ("edit", "edit"),
    ("statistic", "statistic"),
    ("critical value", "critical_value"),
    ("A'", "calibrated_loss"),
    ("error", "error"),
]


BOUNDS = {"calibrated_loss": "≥ ", "statistic": "≥ ", "reference_loss": "≤ "}
"""How a row whose reference loss is an upper bound (``reference_bound``) marks its bounded numbers."""


def _cell(key: str, value, row: dict):
    if key == "verdict":
        return value if value == "error" else plots.verdict_label(value)
    if key == "edit" and row.get("edit_source") == "stand-in":
        return f"{value} (stand-in)"
    if isinstance(value, float) and row.get("reference_bound") and key in BOUNDS:
        return f"{BOUNDS[key]}{_sig(value)}"
    return _sig(value) if isinstance(value, float) else value


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> list[list]:
    """Rows as a table for ``gr.Dataframe``: verdicts as the one wording, numbers to 4 significant
    figures, bounds marked (≥ A' and statistic, ≤ A(M_r, x), where the reference's inversion ended
    once the verdict was certain)."""
    return [[_cell(key, r[key], r) for _, key in columns] for r in rows]


def _user_error(e: Exception) -> gr.Error:
    return gr.Error(_web_message(e), print_exception=False)


# ----------------------------------------------------------------------------- Attribute tab

READY = views.message_card("No result yet", "Click an example above, or upload an image and press Run.", "info")
HOW_TO_READ = """<div class='ronan-how-to-read'><b>What appears here</b><ol>
<li>the image as the model sees it, the model's best reconstruction of it, and their difference;</li>
<li>the reverse-engineering loss on M (inspected) and M_r (reference), live;</li>
<li>the model's belonging distribution with Grubbs' threshold and this image;</li>
<li>a report to download (self-contained HTML, JSON, figures).</li></ol></div>"""


def _upload_panel(li) -> views.Panel:
    w, h = li.original_size
    small = max(li.image.size) <= 128
    return views.Panel(
        "Upload",
        plots.thumbnail(li.image, 256),
        f"{w}x{h} {li.original_mode} {li.original_format or ''}".strip(),
        pixel=small,
    )


def _model_panel(target, model: str) -> views.Panel:
    side, kind = target.shape[-1], "grayscale" if target.shape[0] == 1 else "RGB"
    return views.Panel(f"What {model} sees", plots.to_pil(target), f"{side}x{side} {kind}, after its preprocessing")


def _panels(li, target, model, recon=None, diff=None) -> str:
    panels = [_upload_panel(li)] if li is not None else []
    if target is not None:
        panels.append(_model_panel(target, model))
    panels.append(
        views.Panel(
            "Reconstruction M(i*)", plots.to_pil(recon) if recon is not None else None, "the model's closest image"
        )
    )
    panels.append(views.Panel("|difference|", diff, "black = identical", colorbar=True))
    return views.panels_html(panels)


def preview(path, model=None):
    """The upload and what ``model`` will see, before running: ``(images html, card html)``."""
    if not path:
        return "", READY
    model = model or _default_model()
    try:
        li = load_image(path)
    except RonanError as e:
        return "", views.error_card(_web_message(e))
    target = None
    try:
        gen = prepare(model, None).model
        target = gen.preprocess(li.image)
        steps = studio.preprocessing_steps(li, gen)
    except (RonanError, ValueError):
        steps = [f"upload: {li.original_size[0]}x{li.original_size[1]} {li.original_mode}"]
    card = views.message_card(
        "Ready: press Run", f"{li.name} → {' → '.join(steps[1:] or steps)}.", "info", details=li.notes
    )
    return _panels(li, target, model), card


def generate_image(model, seed):
    try:
        path = studio.generate_example(model, int(seed or 0), GENERATED_DIR)
    except RonanError as e:
        raise _user_error(e) from e
    studio.prune_files(GENERATED_DIR, keep=64)
    return str(path)


def gallery_for(model):
    try:
        ex = studio.example_images(model, EXAMPLES_DIR)
    except RonanError:
        ex = studio.example_images(None, EXAMPLES_DIR)
    return [(e.path, e.caption) for e in ex], [e.path for e in ex]


def pick_example(paths, evt: gr.SelectData):
    """The clicked example becomes the image; the selection is cleared, so a second click runs again."""
    if paths and evt.index is not None and 0 <= evt.index < len(paths):
        return paths[evt.index], gr.update(selected_index=None)
    return gr.skip(), gr.skip()


def on_model_change(model):
    items, paths = gallery_for(model)
    return model_info(model), items, paths, gr.update(value=model)


def show_results():
    """On Run: the results area appears (the how-to-read note goes), the old result is cleared."""
    return gr.update(visible=False), gr.update(visible=True)


def _dist_status(model, reference, distance, preset, steps, restarts, lr) -> str:
    ok, text = studio.distribution_status(
        model,
        reference,
        distance=distance,
        preset=preset,
        steps=_opt_int(steps),
        restarts=_opt_int(restarts),
        lr=_opt_float(lr),
    )
    return ("✅ " if ok else "⚠️ ") + text


def on_distance_change(distance, restarts):
    if distance == "ssim" and (_opt_int(restarts) or 1) < views.SSIM_RESTARTS:
        return gr.update(value=views.SSIM_RESTARTS)
    return gr.skip()


# outputs of /attribute: status, verdict, images, curves, histogram, JSON, report files
def _attr(status=None, verdict=None, images=None, curves=None, hist=None, data=None, files=None):
    s = gr.skip()
    return tuple(s if v is None else v for v in (status, verdict, images, curves, hist, data, files))


def _attr_cleared(status: str, verdict: str, data: dict) -> tuple:
    return status, verdict, "", "", "", data, None


def attribute_run(
    image,
    model,
    reference,
    distance,
    preset,
    steps,
    restarts,
    lr,
    alpha,
    seed,
    build,
    edit="auto",
    test="robust",
    request: gr.Request = None,
):
    """Attribute one image to a model; streams progress, ends with the verdict and report.

    Every output is cleared when the run starts (or waits), stops or fails; errors are shown in
    the verdict card and raised (a toast for the page, an error for API clients).
    """
    if not image:
        msg = "Choose an image first: click an example, upload one, or generate one."
        yield _attr_cleared(
            views.status_html(None, "No image."), views.error_card(msg), {"status": "error", "message": msg}
        )
        raise gr.Error(msg, print_exception=False)
    try:
        ticket = LINE.join(_session(request), "attribute")
    except studio.QueueFull as e:
        yield _attr_cleared(
            views.status_html(None, "The server is busy."),
            views.error_card(str(e)),
            {"status": "error", "message": str(e)},
        )
        raise _user_error(e) from e
    finished = False
    try:
        waiting = _attr_cleared(
            views.status_html(None, "Starting..."),
            views.message_card(
                "Running", "The verdict appears here when the inversions on M and M_r have finished.", "running"
            ),
            {"status": "running"},
        )
        yield waiting
        go = yield from _wait_turn(ticket, waiting)
        if not go:
            yield _attr_cleared(
                views.status_html(None, "Stopped while waiting: nothing ran."),
                views.message_card("Stopped", "No verdict: the run was stopped.", "stopped"),
                {"status": "cancelled", "message": "stopped while waiting"},
            )
            return
        yield from _attribute_work(
            ticket, image, model, reference, distance, preset, steps, restarts, lr, alpha, seed, build, edit, test
        )
        finished = True
    finally:
        LINE.leave(ticket, finished=finished)


@gpu
def _attribute_work(
    ticket, image, model, reference, distance, preset, steps, restarts, lr, alpha, seed, build, edit, test
):
    last = 0.0
    li = None
    try:
        li = load_image(image)
        stream = studio.run_attribution(
            li,
            model,
            reference=reference,
            distance=distance,
            alpha=float(alpha),
            preset=preset,
            steps=_opt_int(steps),
            restarts=_opt_int(restarts),
            lr=_opt_float(lr),
            seed=int(seed or 0),
            edit=edit or "auto",
            test="robust" if test == "robust-no-floor" else test or "robust",
            floor_rule=test != "robust-no-floor",
            build_calibration=bool(build) and studio.builds_allowed(),
            should_stop=ticket.stop.is_set,
            eta_prior=ticket.estimate,
        )
        yield _attr(images=_panels(li, None, model))
        for ev in stream:
            if isinstance(ev, studio.RunOutcome):
                yield from _attribute_outcome(ev, li)
                return
            LINE.touch(ticket, ev.eta)
            now = time.perf_counter()
            if now - last < UPDATE_EVERY_S and not (ev.phase != "calibration" and ev.final) and ev.step != 0:
                continue
            last = now
            if ev.phase == "calibration":
                yield _attr(_running_status(ev))
                continue
            recon = diff = None
            if ev.phase == "model" and ev.reconstruction is not None:
                recon, diff = ev.reconstruction, plots.difference_map(ev.target, ev.reconstruction)
            images = _panels(li, ev.target, ev.model, recon, diff) if recon is not None else None
            curves = views.figure_html(
                svg=plots.loss_curves_svg(
                    ev.history,
                    ev.reference_history,
                    model=ev.model,
                    reference=ev.reference,
                    history_steps=ev.history_steps,
                    reference_steps=ev.reference_history_steps,
                )
            )
            yield _attr(_running_status(ev), images=images, curves=curves)
    except Cancelled:
        yield _attr_cleared(
            views.status_html(None, "Stopped by the user."),
            views.message_card("Stopped", "No verdict: the run was stopped.", "stopped"),
            {"status": "cancelled", "message": "stopped by the user"},
        )
    except (RonanError, ValueError) as e:
        yield _attr_cleared(
            views.status_html(None, "Failed."),
            views.error_card(_web_message(e)),
            {"status": "error", "message": _web_message(e)},
        )
        raise _user_error(e) from e


def _attribute_outcome(ev: studio.RunOutcome, li):
    r, dist = ev.result, ev.distribution
    extra = {"preprocessing": ev.preprocessing, "caveats": ev.caveats, "edit_detected": ev.edit_detected}
    data = report.report_dict(r, dist, **extra)
    data["status"] = "done"
    card = views.verdict_card(r, preprocessing=ev.preprocessing, caveats=ev.caveats)
    done = views.status_html(
        1.0,
        f"Done in {studio.fmt_seconds(r.seconds)}: {plots.verdict_label(r.verdict)}. The report is being written...",
    )
    images = _panels(
        li, r.image_tensor, r.model, r.reconstruction, plots.difference_map(r.image_tensor, r.reconstruction)
    )
    curves = views.figure_html(
        svg=plots.loss_curves_svg(r.history, r.reference_history, model=r.model, reference=r.reference)
    )
    yield _attr(done, card, images, curves, "", data)
    fig = report.histogram_figure_of(r, dist)
    hist = views.figure_html(
        plots.fig_to_png(fig),
        alt="Belonging distribution; legend: " + "; ".join(plots.legend_texts(fig)),
        elem_id="ronan-hist",
    )
    yield _attr(hist=hist)
    paths = report.write_report(r, RUNS.new("report"), dist, upload=li.image, **extra)
    order = ["html", "json"] + [k for k in paths if k not in ("html", "json")]
    done = views.status_html(1.0, f"Done in {studio.fmt_seconds(r.seconds)}: {plots.verdict_label(r.verdict)}.")
    # the last update carries every output (API clients read the final values)
    yield done, card, images, curves, hist, data, [str(paths[k]) for k in order]


def build_attribute_tab(default: str, presets: list[str], choices: list[studio.ModelChoice]) -> dict:
    """The Attribute tab: model, examples, upload, Run/Stop, status and verdict on the left;
    what the model saw, the loss curves, the histogram and the report on the right."""
    c = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=330):
            c["model"] = gr.Dropdown(
                _model_choices(True, choices), value=default, label="Inspected model M", elem_id="model"
            )
            c["info"] = gr.HTML(model_info(default, choices), elem_id="model-info")
            c["gallery"] = gr.Gallery(
                label="Examples: click one to run it",
                columns=6,
                rows=1,
                object_fit="contain",
                allow_preview=False,
                buttons=[],
                elem_id="examples",
                elem_classes=["pixel"],
                interactive=False,
            )
            c["gallery_paths"] = gr.State([])
            with gr.Row(equal_height=True):
                c["image"] = gr.File(
                    label="...or upload an image (any format)",
                    type="filepath",
                    elem_id="image-file",
                    height=72,
                    scale=3,
                    min_width=190,
                )
                with gr.Column(scale=2, min_width=120):
                    c["run"] = gr.Button("Run", variant="primary", elem_id="run")
                    c["stop"] = gr.Button("Stop", variant="stop", elem_id="stop")
            c["status"] = gr.HTML(views.status_html(None, "Ready."), elem_id="status")
            c["verdict"] = gr.HTML(READY, elem_id="verdict")
            with gr.Accordion("Advanced: reference model, distance, edits, settings", open=False):
                c["reference"] = gr.Dropdown(_reference_choices(choices), value="default", label="Reference model M_r")
                c["distance"] = gr.Dropdown(_distance_choices(), value="mse", label="Distance L", info=_distance_info())
                c["edit"] = gr.Dropdown(
                    ["auto", "none", "robust"],
                    value="auto",
                    allow_custom_value=True,
                    label="Edit assumed",
                    info="auto: read from the file (JPEG or WebP quality, size); none; robust (unknown edits: each of "
                    "a family of common edits is tried, the closest fit decides); or a spec such as jpeg:75 or webp:80",
                )
                c["preset"] = gr.Radio(
                    presets,
                    value=MODEL_PRESET,
                    label="Inversion preset",
                    info="; ".join(f"{k}: {PRESET_SUMMARIES[k]}" for k in presets),
                )
                with gr.Row():
                    c["steps"] = gr.Number(None, label="steps (0: preset)", precision=0, minimum=0)
                    c["restarts"] = gr.Number(None, label="restarts", precision=0, minimum=0)
                    c["lr"] = gr.Number(None, label="lr", minimum=0)
                with gr.Row():
                    c["alpha"] = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha (Grubbs)")
                    c["seed"] = gr.Number(0, label="seed", precision=0)
                c["test"] = gr.Radio(
                    [("robust", "robust"), ("robust, no floor rule", "robust-no-floor"), ("paper", "paper")],
                    value="robust",
                    label="Test",
                    info="robust: log domain, failed belonging inversions removed, inconclusive "
                    "when the evidence is weak (where many of the model's own inversions failed, an image "
                    "that reached the 8-bit floor is tested against the samples that did: the floor rule); "
                    "paper: Eq. 3 on all N values",
                )
                c["dist_status"] = gr.Markdown(
                    _dist_status(default, "default", "mse", MODEL_PRESET, None, None, None), elem_id="dist-status"
                )
                allowed = studio.builds_allowed()
                c["build"] = gr.Checkbox(
                    False,
                    label="Build the belonging distribution if missing (minutes)",
                    interactive=allowed,
                    info=None
                    if allowed
                    else "Off on this server: building takes minutes "
                    "of the shared worker (operator setting "
                    "RONAN_ALLOW_BUILDS=1).",
                )
            with gr.Accordion("Generate an image with a model", open=False):
                with gr.Row():
                    c["gen_model"] = gr.Dropdown(
                        _model_choices(True, choices), value=default, label="Generate with", scale=2
                    )
                    c["gen_seed"] = gr.Number(7, label="seed", precision=0, scale=1)
                c["gen"] = gr.Button("Generate an image")
        with gr.Column(scale=7, min_width=330):
            c["placeholder"] = gr.HTML(HOW_TO_READ)
            with gr.Column(visible=False) as c["results"]:
                c["images"] = gr.HTML("", elem_id="images")
                with gr.Row():
                    with gr.Column(min_width=400):
                        c["curves"] = gr.HTML("", elem_id="curves")
                    with gr.Column(min_width=400):
                        c["hist"] = gr.HTML("", elem_id="hist")
                c["files"] = gr.File(
                    label="Report: self-contained HTML, JSON, figures (PNG)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="report-files",
                    height=170,
                )
                with gr.Accordion("Every number (JSON)", open=False):
                    c["json"] = gr.JSON(label="Result")
    return c


def wire_attribute_tab(c: dict, light: dict, heavy: dict) -> None:
    inputs = [
        c[k]
        for k in (
            "image",
            "model",
            "reference",
            "distance",
            "preset",
            "steps",
            "restarts",
            "lr",
            "alpha",
            "seed",
            "build",
            "edit",
            "test",
        )
    ]
    outputs = [c[k] for k in ("status", "verdict", "images", "curves", "hist", "json", "files")]
    reveal = {
        "fn": show_results,
        "inputs": None,
        "outputs": [c["placeholder"], c["results"]],
        "api_visibility": "private",
        **light,
    }
    c["model"].change(
        on_model_change,
        c["model"],
        [c["info"], c["gallery"], c["gallery_paths"], c["gen_model"]],
        api_visibility="private",
        **light,
    )
    c["distance"].change(
        on_distance_change, [c["distance"], c["restarts"]], c["restarts"], api_visibility="private", **light
    )

    # a new upload (or a new model for it) replaces the old result by a preview of what the model will see
    def fresh(event):
        event.then(**reveal).then(
            preview, [c["image"], c["model"]], [c["images"], c["verdict"]], api_visibility="private", **light
        ).then(
            lambda: (views.status_html(None, "Ready."), "", "", None, None),
            None,
            [c["status"], c["curves"], c["hist"], c["json"], c["files"]],
            api_visibility="private",
            **light,
        )

    fresh(c["image"].upload(lambda: None, None, None, api_visibility="private", **light))
    fresh(c["model"].input(lambda: None, None, None, api_visibility="private", **light))
    fresh(c["gen"].click(generate_image, [c["gen_model"], c["gen_seed"]], c["image"], api_name="generate", **light))
    settings = [c[k] for k in ("model", "reference", "distance", "preset", "steps", "restarts", "lr")]
    for comp in settings:
        comp.change(_dist_status, settings, c["dist_status"], api_visibility="private", **light)
    c["image"].clear(
        lambda: ("", READY, views.status_html(None, "Ready."), "", "", None, None),
        None,
        [c["images"], c["verdict"], c["status"], c["curves"], c["hist"], c["json"], c["files"]],
        api_visibility="private",
        **light,
    )
    c["run"].click(**reveal).then(attribute_run, inputs, outputs, api_name="attribute", show_progress="hidden", **heavy)
    # one click on an example: it becomes the image and runs at once
    c["gallery"].select(
        pick_example, c["gallery_paths"], [c["image"], c["gallery"]], api_visibility="private", **light
    ).then(**reveal).then(attribute_run, inputs, outputs, api_visibility="private", show_progress="hidden", **heavy)


# ----------------------------------------------------------------------------- Which model? tab


def which_model_run(image, preset, alpha, seed, request: gr.Request = None):
    """Attribute one image against every available model of its resolution and channels."""
    blank = (views.status_html(None, "Ready."), "", "", None, {"status": "running"}, None)
    if not image:
        msg = "Choose an image first."
        yield (
            views.status_html(None, "No image."),
            views.error_card(msg, elem_id="ronan-which"),
            "",
            None,
            {"status": "error", "message": msg},
            None,
        )
        raise gr.Error(msg, print_exception=False)
    try:
        ticket = LINE.join(_session(request), "which_model", units=len(_which_candidates(image)) or 1)
    except (studio.QueueFull, RonanError) as e:
        yield _which_failed(e)
        raise _user_error(e) from e
    finished = False
    try:
        waiting = (
            views.status_html(None, "Starting..."),
            views.message_card("Running", "Testing the image against every model...", "running", elem_id="ronan-which"),
        ) + blank[2:]
        yield waiting
        if not (yield from _wait_turn(ticket, waiting, "ronan-which")):
            yield (
                views.status_html(None, "Stopped while waiting: nothing ran."),
                views.message_card("Stopped", "No answer: the run was stopped.", "stopped", elem_id="ronan-which"),
                "",
                None,
                {"status": "cancelled"},
                None,
            )
            return
        yield from _which_work(ticket, image, preset, alpha, seed)
        finished = True
    finally:
        LINE.leave(ticket, finished=finished)


def _which_failed(e: Exception) -> tuple:
    """The outputs of /which_model after a failure: the reason in the status and the card."""
    message = _web_message(e)
    return (
        views.status_html(None, "Failed."),
        views.error_card(message, elem_id="ronan-which"),
        "",
        None,
        {"status": "error", "message": message},
        None,
    )


def _which_candidates(image) -> list[str]:
    from ronan.which_model import candidate_models

    li = load_image(image)
    w, h = li.image.size
    return candidate_models(w if w == h else None, 1 if li.image.mode == "L" else 3)


@gpu
def _which_work(ticket, image, preset, alpha, seed):
    last = 0.0
    try:
        li = load_image(image)
        for ev in studio.run_which_model(
            li,
            preset=preset,
            alpha=float(alpha),
            seed=int(seed or 0),
            build_calibration=False,
            should_stop=ticket.stop.is_set,
            eta_prior=ticket.estimate,
        ):
            if isinstance(ev, WhichModelResult):
                yield from _which_outcome(ev, li)
                return
            LINE.touch(ticket, ev.eta)
            now = time.perf_counter()
            if now - last < UPDATE_EVERY_S:
                continue
            last = now
            yield (
                views.status_html(ev.fraction, f"{ev.message} · {_left(ev.eta)}"),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
            )
    except Cancelled:
        yield (
            views.status_html(None, "Stopped by the user."),
            views.message_card("Stopped", "No answer: the run was stopped.", "stopped", elem_id="ronan-which"),
            "",
            None,
            {"status": "cancelled"},
            None,
        )
    except (RonanError, ValueError) as e:
        yield _which_failed(e)
        raise _user_error(e) from e


def _which_outcome(ev: WhichModelResult, li):
    rows = ev.rows()
    fig = plots.which_model_figure(rows) if rows else None
    png = plots.fig_to_png(fig) if fig is not None else None
    errs = [f"{k}: {_which_error(ev, k)}" for k in ev.errors]
    color = plots.BELONGING_COLOR if ev.best else plots.INCONCLUSIVE_COLOR if ev.inconclusive else plots.GREY
    caveats = "".join(
        f"<div class='ronan-caveat'><b>This answer rests on:</b> {html.escape(c)}</div>" for c in ev.caveats
    )
    answer = (
        f"<div class='ronan-card' id='ronan-which' style='border-color:{color}'>"
        f"<h2 style='color:{color}'>{html.escape(ev.answer)}</h2>"
        f"<p>Tested against {len(rows)} model(s) of this image's kind; each uses its own belonging "
        f"distribution and Grubbs' test, no classifier is trained.</p>{caveats}"
        + (f"<p>Not tested:</p><ul>{''.join(f'<li>{html.escape(x)}</li>' for x in errs)}</ul>" if errs else "")
        + "</div>"
    )
    table = _table(rows, WHICH_COLUMNS)
    figure = (
        views.figure_html(
            png,
            alt="Grubbs statistic per model; legend: " + "; ".join(plots.legend_texts(fig)),
            elem_id="ronan-which-figure",
        )
        if png
        else ""
    )
    w, h = li.original_size
    upload = {
        "name": li.name,
        "sha256": li.sha256,
        "size": [w, h],
        "mode": li.original_mode,
        "format": li.original_format,
        "description": f"{w}x{h} {li.original_mode} {li.original_format or ''}",
    }
    data = report.which_model_dict(ev, upload=upload)
    paths = report.write_which_model_report(ev, RUNS.new("which"), png, upload=upload)
    total = sum(a.seconds for a in ev.attributions)
    yield (
        views.status_html(1.0, f"Done in {studio.fmt_seconds(total)}: {ev.answer}."),
        answer,
        figure,
        table,
        data,
        [str(paths["html"]), str(paths["json"])],
    )


def _which_error(ev: WhichModelResult, name: str) -> str:
    kind = ev.error_kinds.get(name, "")
    if kind in ("CalibrationError", "DistributionMissing"):
        return "its belonging distribution for these settings is not built on this server"
    return _web_message(RonanError(ev.errors[name]))


def build_which_tab(presets: list[str]) -> dict:
    c = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=330):
            c["image"] = gr.File(label="Image (any format)", type="filepath", elem_id="which-file", height=72)
            c["copy"] = gr.Button("Use the image of the Attribute tab", size="sm")
            with gr.Row():
                c["run"] = gr.Button("Which model made it?", variant="primary", elem_id="which-run", scale=2)
                c["stop"] = gr.Button("Stop", variant="stop", scale=1)
            c["status"] = gr.HTML(views.status_html(None, "Ready."))
            c["answer"] = gr.HTML(
                views.message_card(
                    "Which model made this image?",
                    "RONAN tests the image against every available model of its kind "
                    "and names the one that accepts it, or none: real or unknown model.",
                    "info",
                    elem_id="ronan-which",
                )
            )
            c["preview"] = gr.HTML("")
            with gr.Accordion("Advanced", open=False):
                c["preset"] = gr.Radio(presets, value=MODEL_PRESET, label="Inversion preset")
                c["alpha"] = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha")
                c["seed"] = gr.Number(0, label="seed", precision=0)
        with gr.Column(scale=7, min_width=330):
            c["plot"] = gr.HTML("", elem_id="which-plot")
            c["table"] = gr.Dataframe(headers=[h for h, _ in WHICH_COLUMNS], interactive=False, elem_id="which-table")
            c["files"] = gr.File(label="Report: self-contained HTML, JSON", file_count="multiple", interactive=False)
            with gr.Accordion("JSON", open=False):
                c["json"] = gr.JSON()
    return c


def _which_preview(path):
    if not path:
        return ""
    try:
        li = load_image(path)
    except RonanError as e:
        return views.error_card(_web_message(e), elem_id="which-preview")
    return views.panels_html([_upload_panel(li)], elem_id="which-preview")


def wire_which_tab(c: dict, attr: dict, light: dict, heavy: dict) -> None:
    c["copy"].click(lambda p: p, attr["image"], c["image"], api_visibility="private", **light)
    c["image"].change(_which_preview, c["image"], c["preview"], api_visibility="private", **light)
    c["run"].click(
        which_model_run,
        [c["image"], c["preset"], c["alpha"], c["seed"]],
        [c["status"], c["answer"], c["plot"], c["table"], c["json"], c["files"]],
        api_name="which_model",
        show_progress="hidden",
        **heavy,
    )


# ----------------------------------------------------------------------------- Calibrate tab


def _dist_summary(dist, sm, preset: str = "") -> str:
    """The calibrate tab's summary; ``preset`` names the inversion preset ("preset thorough")."""
    return (
        f"**{dist.model}** vs reference **{dist.reference or 'none'}**, distance {dist.distance}, "
        + (f"{preset}, " if preset else "")
        + f"N = {dist.n}: {sm.n_kept} used, {len(sm.removed)} removed as failed inversions; threshold on A' "
        f"{sm.threshold:.4g} (alpha {sm.alpha:g}, robust test)  \n"
        f"<small>mean {dist.mean:.4g}, std {dist.std:.4g}, min {min(dist.values):.4g}, max "
        f"{max(dist.values):.4g}; file `{studio.distribution_file(dist)}`, built {dist.created or '?'} in "
        f"{dist.seconds:.0f} s (settings in the JSON)</small>"
        + "".join(f"  \n**No verdict on the whole sample:** {p}" for p in sm.problems)
        + (
            f"  \n**Floor rule:** an image whose inversion reaches the 8-bit floor is tested against the "
            f"{sm.on_floor.n_kept} of the {dist.n} samples that reached it (threshold on A' "
            f"{sm.on_floor.threshold:.4g}); any other stays inconclusive"
            if sm.on_floor is not None
            else ""
        )
    )


def calibrate_run(model, reference, distance, preset, steps, restarts, lr, rebuild, alpha, request: gr.Request = None):
    """Show a model's belonging distribution (build or rebuild it where the operator allows)."""
    from ronan.verdict import DecisionSettings, floor_for, summarize

    try:
        ticket = LINE.join(_session(request), "calibrate")
    except studio.QueueFull as e:
        raise _user_error(e) from e
    finished = False
    cleared = (views.status_html(None, "Starting..."), "", "", None)
    try:
        yield cleared
        if not (yield from _wait_turn(ticket, cleared, None)):
            yield views.status_html(None, "Stopped while waiting."), "Stopped.", "", None
            return
        try:
            ev = None
            for ev in studio.run_calibration(
                model,
                reference,
                distance=distance,
                preset=preset,
                steps=_opt_int(steps),
                restarts=_opt_int(restarts),
                lr=_opt_float(lr),
                rebuild=bool(rebuild) and studio.builds_allowed(),
                build=studio.builds_allowed(),
                should_stop=ticket.stop.is_set,
            ):
                if isinstance(ev, studio.RunProgress):
                    LINE.touch(ticket, ev.eta)
                    yield _running_status(ev), gr.skip(), gr.skip(), gr.skip()
            sm = summarize(
                ev.values,
                DecisionSettings(alpha=float(alpha)),
                settled=ev.sample_settled,
                inversion=ev.settings,
                losses=ev.losses,
                floor=floor_for(ev.distance, ev.edit is not None),
            )
            shown = sm.on_floor or sm  # under the floor rule, the sample that decides is drawn
            fig = plots.histogram_figure(
                ev.values,
                mean=shown.mean,
                std=shown.std,
                critical_value=shown.critical_value,
                model=ev.model,
                alpha=float(alpha),
                threshold=shown.threshold,
                removed=shown.removed,
                removed_label="did not reach the 8-bit floor"
                if shown.basis == "floor"
                else "removed as failed inversions",
                calibrated=ev.reference is not None,
                domain=shown.domain,
            )
            plot = views.figure_html(
                plots.fig_to_png(fig),
                alt="Belonging distribution; legend: " + "; ".join(plots.legend_texts(fig)),
                elem_id="ronan-calibration",
            )
            finished = True
            overridden = any(v not in (None, "") for v in (steps, restarts, lr))
            ran = f"preset {studio.preset_of(model, preset)}" + (" with your overrides" if overridden else "")
            yield views.status_html(1.0, "Ready."), _dist_summary(ev, sm, ran), plot, ev.to_dict()
        except Cancelled:
            yield views.status_html(None, "Stopped: the distribution was not changed."), "Stopped.", "", None
        except (RonanError, ValueError) as e:
            yield views.status_html(None, "Failed."), f"**No distribution:** {_web_message(e)}", "", None
            raise _user_error(e) from e
    finally:
        LINE.leave(ticket, finished=finished)


def build_calibrate_tab(default: str, presets: list[str], choices: list[studio.ModelChoice]) -> dict:
    c = {}
    allowed = studio.builds_allowed()
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=330):
            c["model"] = gr.Dropdown(_model_choices(choices=choices), value=default, label="Model")
            c["preset"] = gr.Radio(presets, value=MODEL_PRESET, label="Inversion preset")
            with gr.Row():
                c["run"] = gr.Button(
                    "Show / build" if allowed else "Show", variant="primary", elem_id="calibrate-run", scale=2
                )
                c["stop"] = gr.Button("Stop", variant="stop", scale=1)
            with gr.Accordion("Advanced: reference model, distance, settings", open=False):
                c["reference"] = gr.Dropdown(_reference_choices(choices), value="default", label="Reference model")
                c["distance"] = gr.Dropdown(_distance_choices(), value="mse", label="Distance")
                with gr.Row():
                    c["steps"] = gr.Number(None, label="steps (0: preset)", precision=0, minimum=0)
                    c["restarts"] = gr.Number(None, label="restarts", precision=0, minimum=0)
                    c["lr"] = gr.Number(None, label="lr", minimum=0)
                c["alpha"] = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha (for the threshold line)")
                c["rebuild"] = gr.Checkbox(
                    False,
                    label="Rebuild even if cached (minutes)",
                    interactive=allowed,
                    info=None
                    if allowed
                    else "Off on this server (operator setting "
                    "RONAN_ALLOW_BUILDS=1): distributions that "
                    "are ready are shown.",
                )
        with gr.Column(scale=7, min_width=330):
            c["status"] = gr.HTML(views.status_html(None, "Ready."))
            c["summary"] = gr.Markdown(
                "A model's *belonging distribution*: the calibrated losses of N = 100 of its "
                "own images, against which every query is tested. Press Show."
            )
            c["plot"] = gr.HTML("", elem_id="calibrate-plot")
            with gr.Accordion("JSON", open=False):
                c["json"] = gr.JSON()
    return c


def wire_calibrate_tab(c: dict, heavy: dict) -> None:
    c["run"].click(
        calibrate_run,
        [c[k] for k in ("model", "reference", "distance", "preset", "steps", "restarts", "lr", "rebuild", "alpha")],
        [c["status"], c["summary"], c["plot"], c["json"]],
        api_name="calibrate",
        show_progress="hidden",
        **heavy,
    )


# ----------------------------------------------------------------------------- Batch tab


def batch_run(files, model, preset, alpha, seed, request: gr.Request = None):
    """Attribute many images (files or zips) to one model; table, CSV, confusion table."""
    cleared = (views.status_html(None, "Starting..."), None, None, "")
    if not files:
        yield (views.status_html(None, "No files."),) + cleared[1:]
        raise gr.Error("Upload images or a zip archive first.", print_exception=False)
    files = files if isinstance(files, list) else [files]
    try:
        items = studio.collect_batch(files)
    except RonanError as e:
        yield (views.status_html(None, f"Failed: {_web_message(e)}"),) + cleared[1:]
        raise _user_error(e) from e
    skipped = studio.skipped_members(files)
    if not items:
        msg = "No images found in the upload" + (f" (skipped: {', '.join(skipped)})" if skipped else "") + "."
        yield (views.status_html(None, msg),) + cleared[1:]
        raise gr.Error(msg, print_exception=False)
    try:
        ticket = LINE.join(_session(request), "batch", units=len(items))
    except studio.QueueFull as e:
        raise _user_error(e) from e
    finished = False
    try:
        yield cleared
        if not (yield from _wait_turn(ticket, cleared, None)):
            yield (views.status_html(None, "Stopped while waiting: nothing ran."),) + cleared[1:]
            return
        yield from _batch_work(ticket, items, skipped, model, preset, alpha, seed)
        finished = True
    finally:
        LINE.leave(ticket, finished=finished)


@gpu
def _batch_work(ticket, items, skipped, model, preset, alpha, seed):
    last = 0.0
    try:
        ev = None
        for ev in studio.run_batch(
            items,
            model,
            preset=preset,
            alpha=float(alpha),
            seed=int(seed or 0),
            should_stop=ticket.stop.is_set,
            eta_prior=ticket.estimate,
        ):
            if not isinstance(ev, studio.RunProgress):
                break
            LINE.touch(ticket, ev.eta)
            now = time.perf_counter()
            if now - last >= UPDATE_EVERY_S:
                last = now
                yield (
                    views.status_html(ev.fraction, f"{ev.message} · {_left(ev.eta)}"),
                    gr.skip(),
                    gr.skip(),
                    gr.skip(),
                )
        csv_path = RUNS.new("batch") / f"ronan-batch-{model}.csv"
        write_csv(ev.rows, csv_path)
        yield (
            views.status_html(1.0, studio.batch_summary(ev.rows, model, skipped)),
            _table(ev.rows, BATCH_COLUMNS),
            str(csv_path),
            _confusion_md(ev, model),
        )
    except Cancelled:
        yield views.status_html(None, "Stopped by the user: no results."), None, None, ""
    except (RonanError, ValueError) as e:
        yield views.status_html(None, f"Failed: {_web_message(e)}"), None, None, ""
        raise _user_error(e) from e


def _confusion_md(ev, model) -> str:
    parts = []
    if ev.confusion:
        c = ev.confusion
        acc = f"\n\nAccuracy **{c['accuracy']:.1%}**" if c["accuracy"] == c["accuracy"] else ""
        parts.append(
            f"**Confusion table** (folder `{model}` or `belonging` = generated by {model}; any other "
            f"folder = not):\n\n| | judged belonging | judged not belonging |\n|---|---|---|\n"
            f"| truly belonging ({c['n_belonging']}) | TP {c['tp']} | FN {c['fn']} |\n"
            f"| truly not ({c['n_non_belonging']}) | FP {c['fp']} | TN {c['tn']} |{acc}"
        )
    if ev.per_label:
        rows = "".join(
            f"| {html.escape(k)} | {v['belonging']} | {v['non-belonging']} | {v.get('inconclusive', 0)} |\n"
            for k, v in sorted(ev.per_label.items())
        )
        parts.append(
            f"**Per folder**\n\n| folder | belonging | not belonging | inconclusive |\n|---|---|---|---|\n{rows}"
        )
    return (
        "\n\n".join(p for p in parts if p)
        or "No folder labels: put images in folders inside a zip "
        "(e.g. `real/`, `dcgan-fmnist/`) to get a confusion table."
    )


def build_batch_tab(default: str, presets: list[str], choices: list[studio.ModelChoice]) -> dict:
    c = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=330):
            c["files"] = gr.File(
                label="Images or zip archives (folders in a zip = labels)",
                file_count="multiple",
                type="filepath",
                height=120,
                elem_id="batch-files",
            )
            c["model"] = gr.Dropdown(_model_choices(True, choices), value=default, label="Inspected model")
            with gr.Row():
                c["run"] = gr.Button("Run batch", variant="primary", elem_id="batch-run", scale=2)
                c["stop"] = gr.Button("Stop", variant="stop", scale=1)
            with gr.Accordion("Advanced: preset, alpha, seed", open=False):
                c["preset"] = gr.Radio(presets, value=MODEL_PRESET, label="Inversion preset")
                with gr.Row():
                    c["alpha"] = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha")
                    c["seed"] = gr.Number(0, label="seed", precision=0)
        with gr.Column(scale=7, min_width=330):
            c["status"] = gr.HTML(views.status_html(None, "Ready."), elem_id="batch-status")
            c["table"] = gr.Dataframe(headers=[h for h, _ in BATCH_COLUMNS], interactive=False)
            c["csv"] = gr.File(label="CSV (one row per image)", interactive=False)
            c["conf"] = gr.Markdown("")
    return c


def wire_batch_tab(c: dict, heavy: dict) -> None:
    c["run"].click(
        batch_run,
        [c[k] for k in ("files", "model", "preset", "alpha", "seed")],
        [c["status"], c["table"], c["csv"], c["conf"]],
        api_name="batch",
        show_progress="hidden",
        **heavy,
    )


# ----------------------------------------------------------------------------- How it works

HOW_IT_WORKS = r"""
### Was this image made by this model?

**1. Reverse-engineering (Eq. 1).** RONAN searches the input $i$ of the inspected model $\mathcal{M}$ whose output is
closest to the image $x$, by gradient descent (Adam) on the input:

$$i^* = \arg\min_i \; \mathcal{L}(\mathcal{M}(i), x)$$

$$\mathcal{A}(\mathcal{M}, x) = \mathcal{L}(\mathcal{M}(i^*), x)$$

An image the model made has an exact input, so its *reconstruction loss* $\mathcal{A}$ falls near 0; a real photo, or
an image of another model, cannot be reached. The image is first brought to the model's own format (e.g. 28x28
grayscale): the Attribute tab shows *what the model sees*. *In the app:* the **reconstruction**, the **difference
map** and the **loss curve M (inspected)** show this search.

**2. Calibration (Eq. 2).** Some images are simply harder to reconstruct (texture, detail). Dividing by the loss of
the same image on a *reference model* $\mathcal{M}_r$ trained on other data removes that:

$$\mathcal{A}'(\mathcal{M}, x) = \frac{\mathcal{A}(\mathcal{M}, x)}{\mathcal{A}(\mathcal{M}_r, x)}$$

*In the app:* the purple loss curve **M_r (reference)**, and both losses on the verdict card.

**3. Belonging distribution (Algorithm 1).** Once per model, RONAN generates $N = 100$ images with $\mathcal{M}$ and
computes their calibrated losses. The robust test works on $\log \mathcal{A}'$ and first removes samples whose own
inversion failed (they are not evidence about the model); the card says how many. *In the app:* the **histogram** of
the Attribute and Calibrate tabs (removed samples in yellow).

**4. Grubbs' test (Eq. 3).** The image is an outlier of that distribution — *not belonging* — unless its statistic

$$\frac{\mathcal{A}'(\mathcal{M}, x) - \mu}{\sigma} \;<\; \frac{N-1}{\sqrt{N}} \sqrt{\frac{t^2_{\alpha/N,\,N-2}}{N-2+t^2_{\alpha/N,\,N-2}}}$$

with $t_{\alpha/N,N-2}$ the upper critical value of Student's $t$ and $\alpha = 0.05$. When the evidence cannot carry a
verdict (the image's inversion was still improving, the model's own samples did not invert reliably, the model
reproduces the image to the 8-bit floor yet the test rejects it), the answer is *inconclusive*, with the reason.
*In the app:* the dashed **threshold** on the histogram, the **statistic** and **critical value** on the verdict card.

**Assumptions.** The method compares like with like: an image re-saved as JPEG or resized is compared with the model's
samples passed through the same edit, when that distribution is available; otherwise with the samples of a stand-in:
an edit of the same kind (another JPEG quality) that moves the model's own images at least as far, else the unedited
samples. A "not belonging" then stands only where the edit alone cannot explain it, a "belonging" only where the
image is no further from the model than the edit takes the model's own images; otherwise the answer is inconclusive.
A lossy WebP counts as an edit too: its quality is read from the file, as an estimate (its header allows a few
qualities, and the rules take the bound that holds at each of them); so does a PNG made from a JPEG, or a JPEG saved
again at a higher quality, whose pixels still show the earlier JPEG's quality. A file in a lossy encoding no edit models (a
colour GIF, a colour model's image in grayscale, a grey image in a palette of few levels, an AVIF or JPEG 2000 file)
is tested as unedited, and a "not belonging" stands only where the
image lies far beyond what that change can do to the model's own images. The card lists every such assumption next to the verdict.

**Which model?** Run the test against every model: the one that accepts the image made it; if every one rejects it,
the image is real or comes from a model outside the set; if none accepts it and some cannot decide, the answer says so. No classifier is trained, so adding a model only needs its belonging
distribution. *Paper:* Wang et al., *Alteration-free and Model-agnostic Origin Attribution of Generated Images*,
NeurIPS 2023.
"""  # noqa: E501 (a displayed equation: one line of LaTeX)


# ----------------------------------------------------------------------------- layout

HEADER = (
    "<div id='ronan-header'><h1>RONAN Studio</h1><span class='tagline'>Was this image generated by "
    "<i>this</i> model?</span></div><p id='ronan-howto'>Click an example, or upload an image and press Run: "
    "RONAN reverse-engineers it on the model and tests it against the model's own images.</p>"
)


def build_demo() -> gr.Blocks:
    choices = studio.model_choices()  # read once for every tab
    default = _default_model(choices)
    presets = studio.presets()
    with gr.Blocks(title="RONAN Studio — origin attribution", delete_cache=(900, 3600)) as demo:
        gr.HTML(HEADER, elem_id="ronan-top")
        with gr.Tab("Attribute", id="attribute"):
            attr = build_attribute_tab(default, presets, choices)
        with gr.Tab("Which model?", id="which"):
            which = build_which_tab(presets)
        with gr.Tab("Calibrate", id="calibrate"):
            cal = build_calibrate_tab(default, presets, choices)
        with gr.Tab("Batch", id="batch"):
            batch = build_batch_tab(default, presets, choices)
        with gr.Tab("How it works", id="how"):
            gr.Markdown(HOW_IT_WORKS, latex_delimiters=LATEX)
            gr.Markdown(f"<small>RONAN Studio v{__version__}</small>")
        stop_status = gr.Markdown(visible=False)

        # light events: no waiting; heavy ones (inversions) wait in LINE, one running at a time
        light = {"concurrency_limit": None}
        heavy = {"concurrency_limit": QUEUE_SIZE + 2, "concurrency_id": "inversion"}
        demo.load(
            gallery_for, attr["model"], [attr["gallery"], attr["gallery_paths"]], api_visibility="private", **light
        )
        demo.load(
            refresh_choices,
            [attr["model"], cal["model"], batch["model"], attr["gen_model"]],
            [attr["model"], cal["model"], batch["model"], attr["gen_model"], attr["info"]],
            api_visibility="private",
            **light,
        )
        wire_attribute_tab(attr, light, heavy)
        wire_which_tab(which, attr, light, heavy)
        wire_calibrate_tab(cal, heavy)
        wire_batch_tab(batch, heavy)
        for btn in (attr["stop"], which["stop"], cal["stop"], batch["stop"]):
            btn.click(
                stop,
                None,
                stop_status,
                api_name="stop" if btn is attr["stop"] else None,
                api_visibility="public" if btn is attr["stop"] else "private",
                **light,
            )
    demo.queue(default_concurrency_limit=1, max_size=4 * QUEUE_SIZE)
    return demo


demo = build_demo()


# outside the app's scoped CSS (gradio prefixes custom rules with its container): the page margins on phones
HEAD = "<style>@media (max-width: 640px) { .gradio-container .main.app { padding: 8px 6px !important; } }</style>"
LAUNCH_KWARGS = {
    "css": CSS,
    "head": HEAD,
    "theme": THEME,
    "max_file_size": "64mb",
    "show_error": True,
    "footer_links": ["api", "gradio"],
    "allowed_paths": [str(studio.SAMPLES_DIR)],
}


def warm_up(model: str | None = None) -> None:
    """Load the default model and its reference, its belonging distribution and its examples, so the
    first visitor's first click does not pay for them (runs in a background thread at start)."""
    from ronan.stats import grubbs_critical_value

    model = model or _default_model()
    try:
        gallery_for(model)  # first: the page shows these examples
        studio.has_distribution(prepare(model))
        grubbs_critical_value(100)  # imports scipy (most of a second), which the first verdict needs
        plots.mpl()  # and matplotlib, for its figures
    except (RonanError, ValueError, OSError) as e:  # never stop the app for a warm-up
        print(f"RONAN Studio: warm-up skipped ({e})", file=sys.stderr)


def main():
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        prevent_thread_lock=True,
        **LAUNCH_KWARGS,
    )
    # warm up once the page answers (the warm-up would otherwise slow the start down)
    threading.Thread(target=warm_up, name="ronan-warm-up", daemon=True).start()
    demo.block_thread()


if __name__ == "__main__":
    main()
