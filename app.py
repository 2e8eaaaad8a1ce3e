"""RONAN Studio: live, explainable origin attribution in the browser (Gradio 6 Blocks).

UI only: layout and event wiring. All work goes through ``ronan/`` (``ronan.studio`` for
streamed runs, ``ronan.plots`` for figures, ``ronan.report`` for downloads,
``ronan.which_model`` for multi-source attribution). Start with ``python app.py``.

Models: the bundled ones, cached hub models, and the user models registered on this machine
(``ronan register``; their cards are read from disk at start and at each page load). Visitors
choose among those names; the app never accepts code, cards or paths from them.

Environment: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (default 127.0.0.1:7860),
``RONAN_QUEUE_SIZE`` (queue ``max_size``, default 16), ``RONAN_THREADS`` (torch CPU threads,
default 1; 0 leaves torch's default).
"""

from __future__ import annotations

import csv
import html
import os
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr
import torch

from ronan import __version__
from ronan import plots, report, studio
from ronan.errors import Cancelled, RonanError
from ronan.images import load_image
from ronan.inversion import DEFAULT_PRESET, PRESETS
from ronan.models.registry import DEFAULT_MODEL
from ronan.which_model import WhichModelResult, which_model_stream

try:  # Hugging Face ZeroGPU: request a GPU for the duration of each inversion event.
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:  # anywhere else: a no-op
    def gpu(fn):
        return fn

WORK_DIR = Path(tempfile.mkdtemp(prefix="ronan-studio-"))
EXAMPLES_DIR = WORK_DIR / "examples"
QUEUE_SIZE = int(os.environ.get("RONAN_QUEUE_SIZE", "16"))
# The bundled models are tiny: one CPU thread per job is fastest, and much faster than two
# when the cores are shared (measured: 3.8 s vs 45 s per verdict on a loaded 2-core machine).
THREADS = int(os.environ.get("RONAN_THREADS", "1"))
UPDATE_EVERY_S = 0.25  # at most ~4 UI updates per second while streaming
DISTANCES = ["mse", "mae", "ssim", "lpips"]
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]

CSS = """
.pixel img, img.pixel { image-rendering: pixelated; image-rendering: crisp-edges; }
.ronan-progress { height: 14px; background: var(--block-background-fill, #eee); border: 1px solid #d0d7de;
                  border-radius: 7px; overflow: hidden; }
.ronan-progress > div { height: 100%; background: #0969da; transition: width .2s; }
.ronan-verdict { border-radius: 10px; padding: 14px 18px; border: 3px solid; }
.ronan-verdict h2 { margin: 0 0 6px 0; font-size: 1.8em; letter-spacing: .03em; }
.ronan-verdict table { font-size: 0.9em; }
.ronan-verdict td, .ronan-verdict th { padding: 2px 10px 2px 0; text-align: left; }
"""

# ----------------------------------------------------------------------------- per-session stop flags
# Stop sets the flag of the caller's session; runs poll it through ``should_stop``. The flag is
# armed when Run is clicked (so Stop also works while the job waits in the queue) and dropped
# when the run ends, so a late Stop never cancels the next run.
_FLAGS: dict[str, threading.Event] = {}
_ARMED: set[str] = set()
_FLAGS_LOCK = threading.Lock()


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def arm(request: gr.Request):
    with _FLAGS_LOCK:
        _FLAGS[_session(request)] = threading.Event()
        _ARMED.add(_session(request))


def _begin(request) -> threading.Event:
    sid = _session(request)
    with _FLAGS_LOCK:
        if sid in _ARMED and sid in _FLAGS:
            _ARMED.discard(sid)
            return _FLAGS[sid]
        ev = threading.Event()
        _FLAGS[sid] = ev
        return ev


def _end(request, ev: threading.Event) -> None:
    sid = _session(request)
    with _FLAGS_LOCK:
        if _FLAGS.get(sid) is ev and sid not in _ARMED:
            _FLAGS.pop(sid, None)


def stop(request: gr.Request):
    """Stop the caller's running (or queued) job."""
    with _FLAGS_LOCK:
        ev = _FLAGS.get(_session(request))
    if ev is None:
        return "Nothing is running."
    ev.set()
    return "Stopping..."


# ----------------------------------------------------------------------------- small HTML helpers

def progress_html(fraction: float, text: str) -> str:
    pct = max(0.0, min(1.0, fraction)) * 100
    return (f"<div class='ronan-progress' role='progressbar' aria-valuenow='{pct:.0f}' aria-valuemin='0' "
            f"aria-valuemax='100'><div style='width:{pct:.1f}%'></div></div>"
            f"<div id='ronan-status' style='margin-top:4px'>{html.escape(text)}</div>")


def _progress_only(events, n_other_outputs: int):
    """Yield throttled progress-bar updates (other outputs skipped) for the ``RunProgress``
    events of ``events``; return the first other event (the outcome)."""
    last = 0.0
    for ev in events:
        if not isinstance(ev, studio.RunProgress):
            return ev
        now = time.perf_counter()
        if now - last >= UPDATE_EVERY_S:
            last = now
            yield (progress_html(ev.fraction, _status(ev)),) + (gr.skip(),) * n_other_outputs
    raise Cancelled("the run ended without a result")


def _status(p: studio.RunProgress) -> str:
    return (f"{p.message} · {studio.fmt_seconds(p.elapsed)} elapsed · ETA {studio.fmt_seconds(p.eta)} "
            f"· {p.fraction * 100:.0f}%")


def _num(x, fmt=".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def verdict_html(r) -> str:
    color = plots.VERDICT_COLORS[r.verdict]
    title = {"belonging": "BELONGING", "non-belonging": "NOT BELONGING", "inconclusive": "INCONCLUSIVE"}[r.verdict]
    of = "log A'" if r.domain == "log" else "A'"
    rows = [(f"Grubbs statistic ({of} - μ) / σ", _num(r.statistic, ".3f")),
            ("Critical value", _num(r.critical_value, ".3f")),
            ("Threshold on A'", _num(r.threshold)),
            ("Belonging samples used (removed)", f"{r.n_kept} of {r.n_calibration} ({r.n_removed} removed as failed "
                                                 f"inversions)"),
            ("α, test", f"{r.alpha:g}, {html.escape(r.test)}"),
            (f"μ, σ of samples' {of}", f"{_num(r.mean)}, {_num(r.std)}"),
            ("Raw loss A(M, x)", f"{_num(r.loss)} on {html.escape(r.model)}"),
            ("Reference loss A(M_r, x)", f"{_num(r.reference_loss)} on {html.escape(str(r.reference))}"),
            ("Calibrated loss A'(M, x)", _num(r.calibrated_loss)),
            ("Distance, seed, preset", f"{html.escape(r.distance)}, {r.seed}, {html.escape(str(r.preset))}"),
            ("Steps run (model, reference)", f"{r.steps_run}, {r.reference_steps_run if r.reference else 'n/a'}"),
            ("Time, device", f"{r.seconds:.2f} s, {html.escape(r.device)}")]
    if r.notes:
        rows.append(("Notes", html.escape("; ".join(r.notes))))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (f"<div class='ronan-verdict' id='ronan-verdict' style='border-color:{color}'>"
            f"<h2 style='color:{color}'>{title}</h2>"
            f"<p><b>{html.escape(r.image)}</b> vs <b>{html.escape(r.model)}</b>: {html.escape(r.explanation())}</p>"
            f"<table>{table}</table></div>")


def message_html(text: str, color: str = "#57606a") -> str:
    return f"<div class='ronan-verdict' style='border-color:{color}'><p>{html.escape(text)}</p></div>"


# ----------------------------------------------------------------------------- choices

def _model_choices(include_unavailable=True):
    return [(c.label, c.name) for c in studio.model_choices() if include_unavailable or c.available]


def _reference_choices():
    return [("default (the model's pairing)", "default")] + _model_choices() + [("none (no calibration)", "none")]


def _default_model() -> str:
    avail = [c.name for c in studio.model_choices() if c.available]
    return DEFAULT_MODEL if DEFAULT_MODEL in avail else (avail[0] if avail else DEFAULT_MODEL)


def refresh_choices(model, c_model, b_model, gen_model):
    """Re-read the registry on page load (weights may have been added since the start)."""
    all_, avail = _model_choices(), _model_choices(False)
    return (gr.update(choices=all_, value=model), gr.update(choices=all_, value=c_model),
            gr.update(choices=all_, value=b_model), gr.update(choices=avail, value=gen_model),
            model_info(model))


def model_info(name: str) -> str:
    for c in studio.model_choices():
        if c.name == name:
            if not c.available:
                return f"⚠️ **{c.name} is unavailable here:** {c.reason}"
            return (f"**{c.name}** — {c.description}. Reference model for calibration: "
                    f"**{c.reference or 'none'}**.")
    return f"⚠️ unknown model {name!r}"


def _opt_int(x):
    return None if x in (None, "") or (isinstance(x, float) and x != x) or int(x) <= 0 else int(x)


def _opt_float(x):
    return None if x in (None, "") or (isinstance(x, float) and x != x) or float(x) <= 0 else float(x)


def _sig(x, digits: int = 4):
    """A number rounded to ``digits`` significant figures for tables (None stays None)."""
    return None if x is None else float(f"{x:.{digits}g}")


def _user_error(e: Exception) -> gr.Error:
    return gr.Error(str(e), print_exception=False)


# ----------------------------------------------------------------------------- Attribute tab

def preview(path):
    """Show the chosen image (upscaled, crisp) or a readable error."""
    if not path:
        return None, ""
    try:
        li = load_image(path)
    except RonanError as e:
        gr.Warning(str(e))
        return None, f"⚠️ {e}"
    w, h = li.original_size
    notes = f" ({'; '.join(li.notes)})" if li.notes else ""
    return plots.pixelate(li.image), f"{li.name}: {w}x{h} {li.original_mode}{notes}"


def generate_image(model, seed):
    try:
        path = studio.generate_example(model, int(seed or 0), WORK_DIR / "generated")
    except RonanError as e:
        raise _user_error(e)
    return str(path)


def gallery_for(model):
    try:
        ex = studio.example_images(model, EXAMPLES_DIR)
    except RonanError as e:
        gr.Warning(str(e))
        ex = studio.example_images(None, EXAMPLES_DIR)
    return [(e.path, e.caption) for e in ex], [e.path for e in ex]


def pick_example(paths, evt: gr.SelectData):
    if paths and evt.index is not None and 0 <= evt.index < len(paths):
        return paths[evt.index]
    return gr.skip()


def on_model_change(model):
    items, paths = gallery_for(model)
    return model_info(model), items, paths, gr.update(value=model)


def _attr_outputs(progress=None, original=None, recon=None, diff=None, loss=None, verdict=None, hist=None,
                  data=None, files=None):
    s = gr.skip()
    return tuple(s if v is None else v for v in (progress, original, recon, diff, loss, verdict, hist, data, files))


@gpu
def attribute_run(image, model, reference, distance, preset, steps, restarts, lr, alpha, seed, build,
                  request: gr.Request):
    """Attribute one image to a model; streams progress, ends with the verdict and report."""
    if not image:
        raise gr.Error("Choose an image first: upload one, generate one, or click an example.", print_exception=False)
    flag = _begin(request)
    last = 0.0
    try:

        original = None
        stream = studio.run_attribution(
            image, model, reference=reference, distance=distance, alpha=float(alpha), preset=preset,
            steps=_opt_int(steps), restarts=_opt_int(restarts), lr=_opt_float(lr), seed=int(seed or 0),
            build_calibration=bool(build), should_stop=flag.is_set)
        for ev in stream:
            if isinstance(ev, studio.RunOutcome):
                r, dist = ev.result, ev.distribution
                curves = _curves(plots.loss_curve_table(r.history, r.reference_history, model=r.model,
                                                        reference=r.reference), r.model, r.reference)
                data = report.report_dict(r, dist)
                data["status"] = "done"
                card = verdict_html(r)
                done = progress_html(1.0, f"Done in {studio.fmt_seconds(r.seconds)}: {r.verdict.upper()}")
                yield _attr_outputs(done, plots.pixelate(r.image_tensor), plots.pixelate(r.reconstruction),
                                    plots.difference_map(r.image_tensor, r.reconstruction), curves, card, None, data)
                paths = report.write_report(r, Path(tempfile.mkdtemp(dir=WORK_DIR, prefix="report-")), dist)
                yield _attr_outputs(done, verdict=card, hist=str(paths["histogram"]), data=data,
                                    files=[str(p) for p in paths.values()])
                return
            now = time.perf_counter()
            final_step = ev.phase != "calibration" and ev.final
            if now - last < UPDATE_EVERY_S and not final_step and ev.step != 0:
                continue
            last = now
            if ev.phase == "calibration":
                yield _attr_outputs(progress_html(ev.fraction, _status(ev)))
                continue
            if original is None:
                original = ev.target
                yield _attr_outputs(original=plots.pixelate(original),
                                    verdict=message_html("Running: the verdict appears here when both inversions "
                                                         "have finished."), data={"status": "running"})
            recon = diff = None
            if ev.phase == "model" and ev.reconstruction is not None:
                recon = plots.pixelate(ev.reconstruction)
                diff = plots.difference_map(original, ev.reconstruction)
            curves = _curves(plots.loss_curve_table(ev.history, ev.reference_history, model=ev.model,
                                                    reference=ev.reference, history_steps=ev.history_steps,
                                                    reference_steps=ev.reference_history_steps),
                             ev.model, ev.reference)
            yield _attr_outputs(progress_html(ev.fraction, _status(ev)), recon=recon, diff=diff, loss=curves)
    except Cancelled as e:
        gr.Warning(f"Stopped: {e}")
        yield _attr_outputs(progress_html(0.0, "Stopped by the user."), verdict=message_html("Stopped: no verdict."),
                            data={"status": "cancelled", "message": str(e)})
    except (RonanError, ValueError) as e:
        raise _user_error(e)
    finally:
        _end(request, flag)


def _curves(table: dict, model: str, reference: str | None):
    import pandas as pd

    # the colour map names both curves from the first update, so the legend never changes
    return gr.LinePlot(value=pd.DataFrame(table), color_map=plots.curve_colors(model, reference))


# ----------------------------------------------------------------------------- Which model? tab

@gpu
def which_model_run(image, preset, alpha, seed, request: gr.Request):
    """Attribute one image against every available model of its resolution."""
    if not image:
        raise gr.Error("Choose an image first.", print_exception=False)
    flag = _begin(request)
    try:

        last = 0.0
        for ev in which_model_stream(image, preset=preset, alpha=float(alpha), seed=int(seed or 0),
                                     build_calibration=False, should_stop=flag.is_set):
            if isinstance(ev, WhichModelResult):
                rows = ev.rows()
                fig = plots.which_model_figure(rows)
                errs = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in ev.errors.items())
                color = "#1a7f37" if ev.best else "#57606a"
                answer = (f"<div class='ronan-verdict' id='ronan-which' style='border-color:{color}'>"
                          f"<h2 style='color:{color}'>{html.escape(ev.answer)}</h2>"
                          f"<p>Tested against {len(rows)} model(s); each uses its own belonging distribution and "
                          f"Grubbs' test, no classifier is trained.</p>"
                          + (f"<p>Not tested:</p><ul>{errs}</ul>" if errs else "") + "</div>")
                table = [[r["model"], r["verdict"], _sig(r["statistic"]), _sig(r["critical_value"]),
                          _sig(r["calibrated_loss"]), _sig(r["loss"]), _sig(r["reference_loss"])] for r in rows]
                yield progress_html(1.0, "Done."), answer, fig, table, ev.to_dict()
                return
            now = time.perf_counter()
            if now - last < UPDATE_EVERY_S:
                continue
            last = now
            p = ev.event.progress
            frac = (ev.index + ((0 if ev.event.role == "model" else 1) + p.fraction) / 2) / ev.total
            yield (progress_html(frac, f"Model {ev.index + 1}/{ev.total} ({ev.model}): {ev.event.role} inversion, "
                                       f"step {p.step}/{p.steps}"), gr.skip(), gr.skip(), gr.skip(), gr.skip())
    except Cancelled:
        gr.Warning("Stopped.")
        yield progress_html(0.0, "Stopped by the user."), message_html("Stopped: no answer."), gr.skip(), \
            gr.skip(), {"status": "cancelled"}
    except (RonanError, ValueError) as e:
        raise _user_error(e)
    finally:
        _end(request, flag)


# ----------------------------------------------------------------------------- Calibrate tab

def _dist_summary(dist) -> str:
    return (f"**{dist.model}** vs reference **{dist.reference or 'none'}**, distance {dist.distance}, "
            f"N = {dist.n}, seed {dist.seed}  \n"
            f"mean μ = {dist.mean:.4g}, std σ = {dist.std:.4g}, min {min(dist.values):.4g}, "
            f"max {max(dist.values):.4g}  \n"
            f"settings: `{dist.settings}`  \n"
            f"file: `{studio.distribution_file(dist)}`, built {dist.created or '?'} in {dist.seconds:.0f} s")


@gpu
def calibrate_run(model, reference, distance, preset, steps, restarts, lr, rebuild, alpha, request: gr.Request):
    """Show, build or rebuild a model's belonging distribution."""
    flag = _begin(request)
    try:
        from ronan.verdict import DecisionSettings, summarize

        ev = yield from _progress_only(
            studio.run_calibration(model, reference, distance=distance, preset=preset, steps=_opt_int(steps),
                                   restarts=_opt_int(restarts), lr=_opt_float(lr), rebuild=bool(rebuild),
                                   should_stop=flag.is_set), 3)
        sm = summarize(ev.values, DecisionSettings(alpha=float(alpha)))
        fig = plots.histogram_figure(ev.values, mean=sm.mean, std=sm.std, critical_value=sm.critical_value,
                                     model=ev.model, alpha=float(alpha), threshold=sm.threshold, removed=sm.removed)
        yield progress_html(1.0, "Ready."), _dist_summary(ev), fig, ev.to_dict()
    except Cancelled:
        gr.Warning("Stopped: the distribution was not changed.")
        yield progress_html(0.0, "Stopped by the user."), gr.skip(), gr.skip(), gr.skip()
    except (RonanError, ValueError) as e:
        raise _user_error(e)
    finally:
        _end(request, flag)


# ----------------------------------------------------------------------------- Batch tab

@gpu
def batch_run(files, model, preset, alpha, seed, request: gr.Request):
    """Attribute many images (files or zips) to one model; table, CSV, confusion table."""
    if not files:
        raise gr.Error("Upload images or a zip archive first.", print_exception=False)
    flag = _begin(request)
    try:
        items = studio.collect_batch(files if isinstance(files, list) else [files])
        if not items:
            raise gr.Error("No images found in the upload.", print_exception=False)
        ev = yield from _progress_only(
            studio.run_batch(items, model, preset=preset, alpha=float(alpha), seed=int(seed or 0),
                             should_stop=flag.is_set), 3)
        rows = ev.rows
        folder = Path(tempfile.mkdtemp(dir=WORK_DIR, prefix="batch-"))
        csv_path = folder / f"ronan-batch-{model}.csv"
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)
        md = _confusion_md(ev, model)
        table = [[r["image"], r["label"], r["verdict"], _sig(r["statistic"]), _sig(r["critical_value"]),
                  _sig(r["calibrated_loss"]), r["error"]] for r in rows]
        n_bel = sum(r["verdict"] == "belonging" for r in rows)
        yield (progress_html(1.0, f"Done: {len(rows)} images, {n_bel} judged belonging to {model}."),
               table, str(csv_path), md)
    except Cancelled:
        gr.Warning("Stopped.")
        yield progress_html(0.0, "Stopped by the user."), gr.skip(), gr.skip(), gr.skip()
    except (RonanError, ValueError) as e:
        raise _user_error(e)
    finally:
        _end(request, flag)


def _confusion_md(ev, model) -> str:
    parts = []
    if ev.confusion:
        c = ev.confusion
        parts.append(f"**Confusion table** (folder `{model}` or `belonging` = generated by {model}; any other "
                     f"folder = not):\n\n| | judged belonging | judged not belonging |\n|---|---|---|\n"
                     f"| truly belonging ({c['n_belonging']}) | TP {c['tp']} | FN {c['fn']} |\n"
                     f"| truly not ({c['n_non_belonging']}) | FP {c['fp']} | TN {c['tn']} |\n\n"
                     f"Accuracy **{c['accuracy']:.1%}**" if c['accuracy'] == c['accuracy'] else "")
    if ev.per_label:
        rows = "".join(f"| {html.escape(k)} | {v['belonging']} | {v['non-belonging']} |\n"
                       for k, v in sorted(ev.per_label.items()))
        parts.append(f"**Per folder**\n\n| folder | belonging | non-belonging |\n|---|---|---|\n{rows}")
    return "\n\n".join(p for p in parts if p) or "No folder labels: put images in folders inside a zip " \
                                                "(e.g. `real/`, `dcgan-fmnist/`) to get a confusion table."


# ----------------------------------------------------------------------------- How it works

HOW_IT_WORKS = r"""
### Was this image made by this model?

**1. Reverse-engineering (Eq. 1).** RONAN searches the input $i$ of the inspected model $\mathcal{M}$ whose output is
closest to the image $x$, by gradient descent (Adam) on the input:

$$i^* = \arg\min_i \; \mathcal{L}(\mathcal{M}(i), x), \qquad \mathcal{A}(\mathcal{M}, x) = \mathcal{L}(\mathcal{M}(i^*), x)$$

An image the model made has an exact input, so its *reconstruction loss* $\mathcal{A}$ falls near 0; a real photo, or
an image of another model, cannot be reached. *In the app:* the **live reconstruction**, the **difference map** and
the **loss curve** of the Attribute tab show this search.

**2. Calibration (Eq. 2).** Some images are simply harder to reconstruct (texture, detail). Dividing by the loss of
the same image on a *reference model* $\mathcal{M}_r$ trained on other data removes that:

$$\mathcal{A}'(\mathcal{M}, x) = \frac{\mathcal{A}(\mathcal{M}, x)}{\mathcal{A}(\mathcal{M}_r, x)}$$

*In the app:* the second (purple) loss curve, and the raw and reference losses on the verdict card.

**3. Belonging distribution (Algorithm 1).** Once per model, RONAN generates $N = 100$ images with $\mathcal{M}$ and
computes their calibrated losses, with mean $\mu$ and standard deviation $\sigma$. *In the app:* the **histogram** of
the Attribute and Calibrate tabs.

**4. Grubbs' test (Eq. 3).** The image is an outlier of that distribution — *not belonging* — unless

$$\frac{\mathcal{A}'(\mathcal{M}, x) - \mu}{\sigma} \;<\; \frac{N-1}{\sqrt{N}} \sqrt{\frac{t^2_{\alpha/N,\,N-2}}{N-2+t^2_{\alpha/N,\,N-2}}}$$

with $t_{\alpha/N,N-2}$ the upper critical value of Student's $t$ and $\alpha = 0.05$. *In the app:* the dashed
**threshold** on the histogram, the **statistic** and **critical value** on the verdict card.

**Which model?** Run the test against every model: the one that accepts the image made it; if none does, the image
is real or comes from a model outside the set. No classifier is trained, so adding a model only needs its belonging
distribution. *Paper:* Wang et al., *Alteration-free and Model-agnostic Origin Attribution of Generated Images*,
NeurIPS 2023.
"""


# ----------------------------------------------------------------------------- layout

def build_demo() -> gr.Blocks:
    default = _default_model()
    choices = _model_choices()
    presets = studio.presets()
    with gr.Blocks(title="RONAN Studio — origin attribution") as demo:
        gr.Markdown(f"# RONAN Studio\nWas this image generated by this model? Reverse-engineer it, calibrate, and "
                    f"decide with a statistical test — no watermark, no training. *v{__version__}*")
        with gr.Tab("Attribute", id="attribute"):
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    model = gr.Dropdown(choices, value=default, label="Inspected model M", elem_id="model")
                    info = gr.Markdown(model_info(default))
                    with gr.Accordion("Advanced", open=False):
                        reference = gr.Dropdown(_reference_choices(), value="default", label="Reference model M_r")
                        distance = gr.Dropdown(DISTANCES, value="mse", label="Distance L")
                        preset = gr.Radio(presets, value=DEFAULT_PRESET, label="Inversion preset",
                                          info="; ".join(f"{k}: {v.describe()}" for k, v in PRESETS.items()))
                        with gr.Row():
                            steps = gr.Number(None, label="steps (blank: preset)", precision=0, minimum=0)
                            restarts = gr.Number(None, label="restarts", precision=0, minimum=0)
                            lr = gr.Number(None, label="lr", minimum=0)
                        with gr.Row():
                            alpha = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha (Grubbs)")
                            seed = gr.Number(0, label="seed", precision=0)
                        build = gr.Checkbox(True, label="Build the belonging distribution if missing (minutes)")
                    image = gr.File(label="Image: upload any common format", type="filepath", elem_id="image-file")
                    image_note = gr.Markdown("")
                    with gr.Row():
                        gen_model = gr.Dropdown(_model_choices(False), value=default, label="Generate with",
                                                scale=2)
                        gen_seed = gr.Number(7, label="seed", precision=0, scale=1)
                    gen_btn = gr.Button("Generate an image")
                    gallery = gr.Gallery(label="Examples — click one: real / this model / other models",
                                         columns=3, height=300, object_fit="contain", allow_preview=False,
                                         elem_classes=["pixel"])
                    gallery_paths = gr.State([])
                    with gr.Row():
                        run_btn = gr.Button("Run", variant="primary", elem_id="run")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                with gr.Column(scale=2, min_width=480):
                    progress = gr.HTML(progress_html(0.0, "Ready."), elem_id="progress")
                    with gr.Row():
                        original = gr.Image(label="Examined image", format="png", height=300, interactive=False,
                                            elem_classes=["pixel"])
                        recon = gr.Image(label="Reconstruction M(i)", format="png", height=300, interactive=False,
                                         elem_classes=["pixel"])
                        diff = gr.Image(label="|difference| (black = identical)", format="png", height=300, interactive=False,
                                        elem_classes=["pixel"])
                    loss_plot = gr.LinePlot(x="step", y="log10_loss", color="curve", label="Loss curves",
                                            y_title="log10 best reconstruction loss", x_title="inversion step",
                                            height=260, color_map=None)
                    verdict = gr.HTML(message_html("Pick an image and press Run."), elem_id="verdict")
                    hist_plot = gr.Image(label="Belonging distribution and threshold", format="png",
                                         interactive=False, height=330, elem_id="hist")
                    with gr.Accordion("Every number (JSON)", open=False):
                        result_json = gr.JSON(label="Result")
                    report_files = gr.File(label="Report: JSON, self-contained HTML, figures (PNG)",
                                           file_count="multiple", interactive=False)

        with gr.Tab("Which model?", id="which"):
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    w_image = gr.File(label="Image", type="filepath")
                    w_copy = gr.Button("Use the image of the Attribute tab")
                    w_preview = gr.Image(label="Image", format="png", height=200, interactive=False,
                                         elem_classes=["pixel"])
                    with gr.Accordion("Advanced", open=False):
                        w_preset = gr.Radio(presets, value=DEFAULT_PRESET, label="Inversion preset")
                        w_alpha = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha")
                        w_seed = gr.Number(0, label="seed", precision=0)
                    with gr.Row():
                        w_run = gr.Button("Which model made it?", variant="primary")
                        w_stop = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    w_progress = gr.HTML(progress_html(0.0, "Ready."))
                    w_answer = gr.HTML("")
                    w_plot = gr.Plot(label="Statistic per model vs threshold")
                    w_table = gr.Dataframe(headers=["model", "verdict", "statistic", "threshold", "A'", "A(M,x)",
                                                    "A(M_r,x)"], interactive=False)
                    with gr.Accordion("JSON", open=False):
                        w_json = gr.JSON()

        with gr.Tab("Calibrate", id="calibrate"):
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    c_model = gr.Dropdown(choices, value=default, label="Model")
                    c_reference = gr.Dropdown(_reference_choices(), value="default", label="Reference model")
                    c_distance = gr.Dropdown(DISTANCES, value="mse", label="Distance")
                    c_preset = gr.Radio(presets, value=DEFAULT_PRESET, label="Inversion preset")
                    with gr.Row():
                        c_steps = gr.Number(None, label="steps", precision=0, minimum=0)
                        c_restarts = gr.Number(None, label="restarts", precision=0, minimum=0)
                        c_lr = gr.Number(None, label="lr", minimum=0)
                    c_alpha = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha (for the threshold line)")
                    c_rebuild = gr.Checkbox(False, label="Rebuild even if cached")
                    with gr.Row():
                        c_run = gr.Button("Show / build", variant="primary")
                        c_stop = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    c_progress = gr.HTML(progress_html(0.0, "Ready."))
                    c_summary = gr.Markdown("")
                    c_plot = gr.Plot(label="Belonging distribution")
                    with gr.Accordion("JSON", open=False):
                        c_json = gr.JSON()

        with gr.Tab("Batch", id="batch"):
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    b_files = gr.File(label="Images or zip archives (folders in a zip = labels)",
                                      file_count="multiple", type="filepath")
                    b_model = gr.Dropdown(choices, value=default, label="Inspected model")
                    b_preset = gr.Radio(presets, value=DEFAULT_PRESET, label="Inversion preset")
                    b_alpha = gr.Slider(0.001, 0.2, value=0.05, step=0.001, label="alpha")
                    b_seed = gr.Number(0, label="seed", precision=0)
                    with gr.Row():
                        b_run = gr.Button("Run batch", variant="primary")
                        b_stop = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    b_progress = gr.HTML(progress_html(0.0, "Ready."))
                    b_table = gr.Dataframe(headers=["image", "label", "verdict", "statistic", "threshold", "A'",
                                                    "error"], interactive=False)
                    b_csv = gr.File(label="CSV", interactive=False)
                    b_conf = gr.Markdown("")

        with gr.Tab("How it works", id="how"):
            gr.Markdown(HOW_IT_WORKS, latex_delimiters=LATEX)

        stop_status = gr.Markdown(visible=False)

        # --- wiring (light events: unlimited concurrency; inversions: one at a time)
        light = {"concurrency_limit": None}
        heavy = {"concurrency_limit": 1, "concurrency_id": "inversion"}
        demo.load(gallery_for, model, [gallery, gallery_paths], api_visibility="private", **light)
        demo.load(refresh_choices, [model, c_model, b_model, gen_model], [model, c_model, b_model, gen_model, info],
                  api_visibility="private", **light)
        model.change(on_model_change, model, [info, gallery, gallery_paths, gen_model], api_visibility="private",
                     **light)
        image.change(preview, image, [original, image_note], api_visibility="private", **light)
        gen_btn.click(generate_image, [gen_model, gen_seed], image, api_name="generate", **light)
        gallery.select(pick_example, gallery_paths, image, api_visibility="private", **light)
        run_inputs = [image, model, reference, distance, preset, steps, restarts, lr, alpha, seed, build]
        run_outputs = [progress, original, recon, diff, loss_plot, verdict, hist_plot, result_json, report_files]
        run_btn.click(arm, None, None, api_visibility="private", **light).then(
            attribute_run, run_inputs, run_outputs, api_name="attribute", show_progress="hidden", **heavy)
        for btn in (stop_btn, w_stop, c_stop, b_stop):
            btn.click(stop, None, stop_status, api_name="stop" if btn is stop_btn else None,
                      api_visibility="public" if btn is stop_btn else "private", **light)

        w_copy.click(lambda p: p, image, w_image, api_visibility="private", **light)
        w_image.change(lambda p: preview(p)[0], w_image, w_preview, api_visibility="private", **light)
        w_run.click(arm, None, None, api_visibility="private", **light).then(
            which_model_run, [w_image, w_preset, w_alpha, w_seed], [w_progress, w_answer, w_plot, w_table, w_json],
            api_name="which_model", show_progress="hidden", **heavy)
        c_run.click(arm, None, None, api_visibility="private", **light).then(
            calibrate_run, [c_model, c_reference, c_distance, c_preset, c_steps, c_restarts, c_lr, c_rebuild,
                            c_alpha], [c_progress, c_summary, c_plot, c_json], api_name="calibrate",
            show_progress="hidden", **heavy)
        b_run.click(arm, None, None, api_visibility="private", **light).then(
            batch_run, [b_files, b_model, b_preset, b_alpha, b_seed], [b_progress, b_table, b_csv, b_conf],
            api_name="batch", show_progress="hidden", **heavy)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


demo = build_demo()


LAUNCH_KWARGS = {"css": CSS, "max_file_size": "64mb", "show_error": True, "footer_links": ["api", "gradio"],
                 "allowed_paths": [str(studio.SAMPLES_DIR)]}


def main():
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), **LAUNCH_KWARGS)


if __name__ == "__main__":
    main()
