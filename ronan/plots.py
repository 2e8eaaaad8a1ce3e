"""Figures and display images used by the app and the reports (matplotlib, Agg backend).

Every function returns a :class:`matplotlib.figure.Figure`, a PIL image or an SVG string
built from the numbers of an :class:`~ronan.attribution.Attribution` or a
:class:`~ronan.calibration.BelongingDistribution`; nothing here computes a verdict.
Figures are created with ``Figure()`` directly (not ``pyplot``), so they are thread-safe
and never leak between requests.

Shared conventions (the app, the reports and the README use the same ones):

* wording: :data:`VERDICT_LABELS` (``BELONGING`` / ``NOT BELONGING`` / ``INCONCLUSIVE``; the
  library's ``"non-belonging"`` stays a data value), Grubbs' *statistic* (never "score");
* colours: :data:`VERDICT_COLORS` (:data:`GREY` where there is no verdict); the inspected model M
  is always :data:`MODEL_COLOR`, the reference model M_r :data:`REFERENCE_COLOR`, with legend
  names from :func:`curve_label`;
* readability: figures are about 5 inches wide with 12-13 pt text (:data:`FONT`), so that they
  stay legible on a phone (shown ~370 px wide) and when projected; legends sit outside the
  data (below the axes); log axes label whole decades only.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .images import to_pil

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BELONGING_COLOR = "#1a7f37"
NON_BELONGING_COLOR = "#cf222e"
INCONCLUSIVE_COLOR = "#9a6700"
VERDICT_COLORS = {
    "belonging": BELONGING_COLOR,
    "non-belonging": NON_BELONGING_COLOR,
    "inconclusive": INCONCLUSIVE_COLOR,
}
VERDICT_LABELS = {"belonging": "BELONGING", "non-belonging": "NOT BELONGING", "inconclusive": "INCONCLUSIVE"}
"""The one wording of verdicts for humans (the data values are the keys)."""
GREY = "#57606a"
"""Neutral colour: no verdict (a message, a which-model answer naming no model), secondary text."""
MODEL_COLOR = "#0969da"
REFERENCE_COLOR = "#8250df"
SAMPLES_COLOR = "#8c959f"
REMOVED_COLOR = "#e3b341"
CONTRAST_COLOR = "#0550ae"
DISPLAY_SIZE = 280
"""Side in pixels of the images shown in the app (28x28 is upscaled 10x, nearest neighbour)."""
FONT = {"base": 12, "small": 11, "title": 13}
"""Font sizes (points) of the figures: 12 pt at 100 dpi on a 5-inch figure stays ~12 px on a phone."""
DIFF_GAMMA = 0.5
"""Difference maps map ``|x - M(i)|`` in [0, 1] through ``d ** DIFF_GAMMA`` (small differences visible)."""
DIFF_TICKS = (0.0, 0.01, 0.05, 0.2, 0.5, 1.0)
"""Labelled values of the difference map's colour scale."""


@functools.cache
def mpl() -> ModuleType:
    """matplotlib with the Agg backend and the submodules used here, imported on first use (a quarter
    of a second: the app's page does not wait for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors
    import matplotlib.figure
    import matplotlib.ticker

    return matplotlib


def verdict_label(verdict: str) -> str:
    """``"BELONGING"``, ``"NOT BELONGING"`` or ``"INCONCLUSIVE"`` for a verdict value."""
    return VERDICT_LABELS.get(verdict, verdict.upper())


def curve_label(role: str, name: str | None) -> str:
    """Legend name of a loss curve: ``"M (inspected): dcgan-fmnist"`` / ``"M_r (reference): ref-photos"``."""
    return f"M (inspected): {name}" if role == "model" else f"M_r (reference): {name}"


# ----------------------------------------------------------------------------- images


def pixelate(image: Image.Image | torch.Tensor, size: int = DISPLAY_SIZE) -> Image.Image:
    """Upscale a small image by an integer factor with nearest-neighbour (crisp pixel art).

    Args:
        image (PIL.Image | Tensor[C, H, W] in [0, 1]): the image.
        size (int): target longest side in pixels (default 280); images already larger are
            returned unchanged.
    """
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    w, h = image.size
    factor = max(1, size // max(w, h))
    if factor == 1:
        return image
    return image.resize((w * factor, h * factor), Image.Resampling.NEAREST)


def thumbnail(image: Image.Image, size: int = 256) -> Image.Image:
    """A copy of ``image`` no larger than ``size`` on its longest side (smooth downscale)."""
    if max(image.size) <= size:
        return image
    out = image.copy()
    out.thumbnail((size, size), Image.Resampling.LANCZOS)
    return out


def difference_map(image: torch.Tensor, reconstruction: torch.Tensor, size: int = DISPLAY_SIZE) -> Image.Image:
    """Absolute difference ``|x - M(i)|`` (mean over channels) as an upscaled heat map.

    Args:
        image, reconstruction (Tensor[C, H, W] in [0, 1]): same shape.
        size (int): display size (see :func:`pixelate`).

    Colour scale: ``inferno`` of ``d ** DIFF_GAMMA`` on the fixed range [0, 1] (black means
    identical, bright yellow a difference of 1, the full range); :func:`diff_colorbar_stops`
    describes it for a colour bar.
    """
    diff = (image.detach().float().cpu() - reconstruction.detach().float().cpu()).abs().mean(0).clamp(0, 1).numpy()
    cmap = mpl().colormaps["inferno"]
    rgb = (cmap(diff**DIFF_GAMMA)[..., :3] * 255).round().astype(np.uint8)
    return pixelate(Image.fromarray(rgb, "RGB"), size)


def diff_colorbar_stops(n: int = 9) -> tuple[list[str], list[tuple[float, str]]]:
    """The difference map's colour scale for HTML: ``(css colours bottom to top, [(position in [0, 1],
    label)])`` for the values in :data:`DIFF_TICKS`."""
    cmap = mpl().colormaps["inferno"]
    colours = [mpl().colors.to_hex(cmap(i / (n - 1))) for i in range(n)]
    ticks = [(v**DIFF_GAMMA, f"{v:g}") for v in DIFF_TICKS]
    return colours, ticks


def png_bytes(image: Image.Image) -> bytes:
    """PNG bytes of a PIL image."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes | Image.Image) -> str:
    """``data:image/png;base64,...`` of PNG bytes or a PIL image (for self-contained HTML)."""
    if isinstance(png, Image.Image):
        png = png_bytes(png)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def fig_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of ``fig`` (figures lay themselves out: no second drawing pass)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# ----------------------------------------------------------------------------- helpers


def _figure(width: float, height: float) -> Figure:
    return mpl().figure.Figure(figsize=(width, height), layout="constrained")


def _style(ax, *, title: str | None = None, xlabel: str | None = None, ylabel: str | None = None) -> None:
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=FONT["base"])
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=FONT["base"])
    ax.tick_params(labelsize=FONT["small"])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _log_axis(axis, lo: float, hi: float) -> tuple[float, float]:
    """Log scale on ``axis`` (``ax.xaxis``/``ax.yaxis``) labelled at whole decades only, at most
    ~6 labels, never the crowded minor labels (3x10^-5 4x10^-5 ...); limits widened to whole
    decades when the data span less than one. Returns the limits."""
    lo_d, hi_d = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if hi_d - lo_d < 1:
        hi_d = lo_d + 1
    if hi_d - lo_d <= 2:
        lo, hi = 10.0**lo_d, 10.0**hi_d
    ticker = mpl().ticker
    axis.set_major_locator(ticker.LogLocator(base=10, numticks=7))
    axis.set_major_formatter(ticker.LogFormatterSciNotation(base=10, labelOnlyBase=True))
    axis.set_minor_locator(ticker.LogLocator(base=10, subs=list(range(2, 10)), numticks=12))
    axis.set_minor_formatter(ticker.NullFormatter())
    return lo, hi


def _legend_below(ax, ncols: int = 1) -> None:
    """Legend under the axes and their labels (a figure legend: the layout makes room for it)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.figure.legend(
            handles, labels, loc="outside lower center", ncols=ncols, frameon=False, fontsize=FONT["small"]
        )


def legend_texts(fig: Figure) -> list[str]:
    """Texts of every legend entry of ``fig`` (for tests and alt texts)."""
    out = []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            out += [t.get_text() for t in leg.get_texts()]
    for leg in fig.legends:
        out += [t.get_text() for t in leg.get_texts()]
    return out


def legend_outside_data(fig: Figure) -> bool:
    """True when no legend of ``fig`` overlaps the data area of its axes and each lies inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    fig_box = fig.bbox
    legends = [leg for ax in fig.axes if (leg := ax.get_legend()) is not None] + list(fig.legends)
    for leg in legends:
        lb = leg.get_window_extent(renderer)
        for ax in fig.axes:
            ab = ax.get_window_extent(renderer)
            if lb.x0 < ab.x1 and lb.x1 > ab.x0 and lb.y0 < ab.y1 and lb.y1 > ab.y0:
                return False
        if not (
            lb.x0 >= fig_box.x0 - 1 and lb.x1 <= fig_box.x1 + 1 and lb.y0 >= fig_box.y0 - 1 and lb.y1 <= fig_box.y1 + 1
        ):
            return False
    return True


# ----------------------------------------------------------------------------- figures


def threshold_value(mean: float, std: float, critical_value: float) -> float:
    """The calibrated loss at which Grubbs' statistic equals its critical value.

    ``(A' - mean) / std < critical_value`` is the same as ``A' < mean + critical_value * std``;
    this is where the threshold line is drawn on the calibrated-loss axis (paper test; the
    robust test gives its own ``threshold``).
    """
    return mean + critical_value * std


def loss_axis_label(calibrated: bool = True) -> str:
    """x-axis name of belonging-distribution histograms."""
    return (
        "calibrated loss A'(M, x) = A(M, x) / A(M_r, x)"
        if calibrated
        else "reconstruction loss A(M, x) (no reference: raw loss)"
    )


def histogram_figure(
    values: Sequence[float],
    *,
    mean: float,
    std: float,
    critical_value: float,
    value: float | None = None,
    verdict: str | None = None,
    model: str = "",
    alpha: float = 0.05,
    log: bool | None = None,
    threshold: float | None = None,
    removed: Sequence[int] = (),
    removed_label: str = "removed as failed inversions",
    calibrated: bool = True,
    domain: str | None = None,
    contrast_values: Sequence[float] = (),
    contrast_label: str = "real pictures",
    at_least: bool = False,
) -> Figure:
    """Histogram of a belonging distribution with the Grubbs threshold and the examined image.

    Args:
        values: calibrated losses A' of the model's own samples.
        mean, std (float): mean and standard deviation the test used (of ``values``, or of
            their logarithms in the robust test; then pass ``threshold``).
        critical_value (float): Grubbs' critical value.
        value (float | None): calibrated loss of the examined image (marker), if any.
        verdict (str | None): ``"belonging"`` / ``"non-belonging"`` / ``"inconclusive"``.
        model (str): model name for the title.
        alpha (float): significance shown in the legend.
        log (bool | None): logarithmic x axis. None: fixed by the distribution, never by the
            examined image — the test's ``domain`` when given (``"log"``: the robust test),
            else log when the positive values and threshold span more than a factor of 20.
        threshold (float | None): the calibrated loss where the statistic equals the critical
            value; default ``mean + critical_value * std`` (the paper's linear test).
        removed (sequence of int): indices of samples the robust test removed as failed
            inversions (drawn apart, in the legend with their count).
        removed_label (str): their legend entry before the count; default "removed as failed
            inversions" (the floor rule's: "did not reach the 8-bit floor").
        calibrated (bool): False when no reference model was used (the axis is the raw loss).
        domain (str | None): ``"log"`` or ``"linear"``, the test's domain.
        contrast_values (sequence of float): calibrated losses of the contrast check's real
            pictures (:mod:`ronan.contrast`), drawn as an outline histogram; default none.
        contrast_label (str): their legend entry.
        at_least (bool): ``value`` is a lower bound (the reference's inversion ended once the
            verdict was certain, ``Attribution.reference_bound``): its label says so; default False.

    The x range covers the samples and the threshold; the examined image widens it when it lies
    within a factor of 1000 (log) or three ranges (linear), else it is drawn as an arrow at the
    edge with its value. The y axis counts samples (integer ticks); the legend is below the axes.
    """
    vals = np.asarray(values, dtype=np.float64)
    vals = vals[np.isfinite(vals)] if vals.size else vals
    real = np.asarray(contrast_values, dtype=np.float64)
    real = real[np.isfinite(real)] if real.size else real
    thr = threshold_value(mean, std, critical_value) if threshold is None else threshold
    base = [float(v) for v in vals] + ([thr] if thr is not None and math.isfinite(thr) else [])
    base += [float(v) for v in real]
    positive = [p for p in base if p > 0]
    if log is None:
        log = (
            domain == "log"
            if domain is not None
            else bool(positive) and len(positive) == len(base) and max(positive) / min(positive) > 20
        )
    log = bool(log) and bool(positive)
    fig = _figure(4.8, 3.9)
    ax = fig.add_subplot()
    if base:
        lo, hi = (min(positive), max(positive)) if log else (min(base), max(base))
    else:
        lo, hi = (1e-6, 1.0) if log else (0.0, 1.0)
    if not log and hi - lo <= 0:
        lo, hi = lo - 0.5 * abs(lo or 1), hi + 0.5 * abs(hi or 1)
    v = math.nan if value is None else value  # this image's value (NaN: none to mark)
    marker = math.isfinite(v) and (v > 0 or not log)
    off_scale = None
    if marker:
        if log:
            near = lo / 1000 <= v <= hi * 1000
        else:
            near = lo - 3 * (hi - lo) <= v <= hi + 3 * (hi - lo)
        if near:
            lo, hi = min(lo, v), max(hi, v)
        else:
            off_scale = "right" if v > hi else "left"
    bins: Any  # the histogram's bin edges (an array)
    if log:
        lo, hi = lo / 1.3, hi * 1.3
        bins = np.geomspace(lo, hi, 36)
        ax.set_xscale("log")
        lo, hi = _log_axis(ax.xaxis, lo, hi)
    else:
        pad = 0.05 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        bins = np.linspace(lo, hi, 31)
    out = np.zeros(vals.size, dtype=bool)
    idx = [i for i in removed if 0 <= i < vals.size]
    out[idx] = True
    n_kept = int((~out).sum())
    if vals.size:
        ax.hist(
            vals[~out],
            bins=bins,
            color=SAMPLES_COLOR,
            edgecolor="white",
            label=f"{model + ' ' if model else ''}samples used (N = {n_kept})",
        )
        if out.any():
            ax.hist(
                vals[out],
                bins=bins,
                color=REMOVED_COLOR,
                edgecolor="white",
                label=f"{removed_label} ({int(out.sum())})",
            )
    if real.size:
        ax.hist(
            real[real > 0] if log else real,
            bins=bins,
            histtype="step",
            color=CONTRAST_COLOR,
            linewidth=2,
            label=contrast_label,
        )
    if thr is not None and math.isfinite(thr):
        ax.axvline(
            thr,
            color="black",
            linestyle="--",
            linewidth=1.8,
            label=f"threshold (Grubbs, alpha = {alpha:g}): belonging to its left",
        )
    if marker:
        color = VERDICT_COLORS.get(verdict or "", NON_BELONGING_COLOR)
        label = f"this image ({verdict_label(verdict)})" if verdict else "this image"
        if at_least:
            label += ", at least here"
        if off_scale is None:
            ax.axvline(v, color=color, linewidth=3, label=label)
        else:
            x = 0.97 if off_scale == "right" else 0.03
            ax.annotate(
                f"this image: {'at least ' if at_least else ''}{v:.3g}\n(off scale)",
                xy=(x, 0.55),
                xycoords="axes fraction",
                ha="right" if off_scale == "right" else "left",
                fontsize=FONT["small"],
                color=color,
                fontweight="bold",
            )
            ax.annotate(
                "",
                xy=(x + (0.025 if off_scale == "right" else -0.025), 0.45),
                xycoords="axes fraction",
                xytext=(x - (0.12 if off_scale == "right" else -0.12), 0.45),
                arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": 3},
            )
            ax.plot([], [], color=color, linewidth=3, label=label + ", off scale")
    ax.set_xlim(lo, hi)
    ax.yaxis.set_major_locator(mpl().ticker.MaxNLocator(integer=True, nbins=5))
    _style(
        ax,
        title=f"Belonging distribution of {model}" if model else "Belonging distribution",
        xlabel=loss_axis_label(calibrated),
        ylabel="images" if real.size else "samples",
    )
    _legend_below(ax)
    return fig


def loss_curves_figure(
    history: Sequence[float] | None,
    reference_history: Sequence[float] | None = None,
    *,
    model: str = "model",
    reference: str | None = None,
    steps: int | None = None,
    history_steps: Sequence[int] | None = None,
    reference_steps: Sequence[int] | None = None,
) -> Figure:
    """Best-so-far reconstruction loss per step for the inspected and the reference model.

    Args:
        history: loss of the inspected model per step (may be partial while it runs).
        reference_history: same for the reference model, or None (no reference: one curve).
        model, reference (str): names, shown as ``M (inspected): <model>`` and
            ``M_r (reference): <reference>`` in the legend (below the axes), in the fixed
            colours :data:`MODEL_COLOR` and :data:`REFERENCE_COLOR`.
        steps (int | None): total steps (fixes the x range while streaming).
        history_steps, reference_steps: x positions of the values (default 0, 1, 2, ...),
            for curves sampled every few steps while streaming.
    """
    fig = _figure(4.8, 3.7)
    ax = fig.add_subplot()
    ys = []
    for hist, xs, role, name, color in (
        (history, history_steps, "model", model, MODEL_COLOR),
        (reference_history, reference_steps, "reference", reference, REFERENCE_COLOR),
    ):
        if hist is None or len(hist) == 0 or (role == "reference" and reference is None):
            continue
        h = np.clip(np.asarray(hist, dtype=np.float64), 1e-12, None)
        x = np.asarray(xs) if xs is not None and len(xs) == h.size else np.arange(h.size)
        ax.plot(x, h, color=color, linewidth=2.2, label=f"{curve_label(role, name)} (final {h[-1]:.3g})")
        ys += [float(v) for v in h if math.isfinite(v)]
    if ys:
        ax.set_yscale("log")
        ax.set_ylim(*_log_axis(ax.yaxis, min(ys), max(ys)))
    if steps:
        ax.set_xlim(0, steps)
    ax.xaxis.set_major_locator(mpl().ticker.MaxNLocator(nbins=5, integer=True, steps=[1, 2, 2.5, 5, 10]))
    ax.grid(alpha=0.3)
    _style(ax, title="Reverse-engineering (Eq. 1)", xlabel="inversion step", ylabel="best loss so far (lower = better)")
    _legend_below(ax)
    return fig


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def loss_curves_svg(
    history: Sequence[float] | None,
    reference_history: Sequence[float] | None = None,
    *,
    model: str = "model",
    reference: str | None = None,
    history_steps: Sequence[int] | None = None,
    reference_steps: Sequence[int] | None = None,
    steps: int | None = None,
) -> str:
    """The loss curves as a small responsive SVG (cheap enough to redraw several times a second).

    Same conventions as :func:`loss_curves_figure`: log y axis labelled at decades, curves
    named ``M (inspected)`` and ``M_r (reference)`` in fixed colours, the legend above the data.
    Text is real text (15 units in a 440-unit-wide view box: ~12.5 px on a 370 px phone).
    """
    W, H, L, R, T, B = 440, 290, 58, 14, 66, 40
    curves = []
    for hist, xs, role, name, color in (
        (history, history_steps, "model", model, MODEL_COLOR),
        (reference_history, reference_steps, "reference", reference, REFERENCE_COLOR),
    ):
        if role == "reference" and reference is None:
            continue
        h = np.clip(np.asarray(hist if hist is not None else [], dtype=np.float64), 1e-12, None)
        x = np.asarray(xs, dtype=np.float64) if xs is not None and len(xs) == h.size else np.arange(h.size, dtype=float)
        ok = np.isfinite(h)
        curves.append((role, name, color, x[ok], np.log10(h[ok])))
    ally = np.concatenate([c[4] for c in curves]) if curves else np.array([])
    ally = ally[np.isfinite(ally)]
    if ally.size:
        y0, y1 = math.floor(float(ally.min())), math.ceil(float(ally.max()))
    else:
        y0, y1 = -6, 0
    if y1 - y0 < 1:
        y1 = y0 + 1
    xmax = max([float(c[3].max()) for c in curves if c[3].size] + [float(steps or 0), 10.0])
    pw, ph = W - L - R, H - T - B

    def px(v):
        return L + pw * v / xmax

    def py(v):
        return T + ph * (1 - (v - y0) / (y1 - y0))

    e = html.escape
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {W} {H}' role='img' class='ronan-svg' "
        f"aria-label='Loss curves: {e(', '.join(curve_label(c[0], c[1]) for c in curves))}' "
        f"font-family='inherit' font-size='15'>"
    ]
    step = max(1, math.ceil((y1 - y0) / 5))
    for d in range(y0, y1 + 1, step):
        y = py(d)
        out.append(f"<line x1='{L}' x2='{W - R}' y1='{y:.1f}' y2='{y:.1f}' stroke='#d0d7de' stroke-width='1'/>")
        out.append(
            f"<text x='{L - 6}' y='{y + 5:.1f}' text-anchor='end' fill='currentColor'>10"
            f"{str(d).translate(_SUPERSCRIPT)}</text>"
        )
    nice = _nice_step(xmax)
    v = 0.0
    while v <= xmax + 1e-9:
        out.append(f"<text x='{px(v):.1f}' y='{T + ph + 18}' text-anchor='middle' fill='currentColor'>{v:g}</text>")
        v += nice
    out.append(f"<line x1='{L}' x2='{L}' y1='{T}' y2='{T + ph}' stroke='currentColor' stroke-width='1'/>")
    out.append(f"<line x1='{L}' x2='{W - R}' y1='{T + ph}' y2='{T + ph}' stroke='currentColor' stroke-width='1'/>")
    out.append(f"<text x='{L + pw / 2:.0f}' y='{H - 4}' text-anchor='middle' fill='currentColor'>inversion step</text>")
    for i, (role, name, color, xs_, ys_) in enumerate(curves):
        if xs_.size:
            pts = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(xs_, ys_))
            out.append(
                f"<polyline points='{pts}' fill='none' stroke='{color}' stroke-width='2.5' stroke-linejoin='round'/>"
            )
        last = f": {10 ** float(ys_[-1]):.3g}" if ys_.size else ""
        y = 18 + 22 * i
        out.append(
            f"<g class='ronan-legend-entry'><line x1='4' x2='26' y1='{y - 5}' y2='{y - 5}' stroke='{color}' "
            f"stroke-width='4'/><text x='32' y='{y}' fill='currentColor'>{e(curve_label(role, name))}"
            f"{e(last)}</text></g>"
        )
    out.append("</svg>")
    return "".join(out)


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def which_model_figure(rows: Sequence[dict]) -> Figure:
    """Horizontal bars of Grubbs' statistic of one image against several models, with thresholds.

    Args:
        rows: dicts with ``model``, ``statistic``, ``critical_value`` and ``verdict``.

    A bar left of its model's threshold (black tick) means "belonging". The statistic axis is
    symmetric-logarithmic, since statistics of non-belonging images can be very large; each bar
    carries its value, inside the axes; the legend is below.
    """
    n = max(len(rows), 1)
    fig = _figure(4.8, 1.8 + 0.55 * n)
    ax = fig.add_subplot()
    names = [r["model"] for r in rows]
    stats = [r["statistic"] if r["statistic"] is not None and math.isfinite(r["statistic"]) else 0.0 for r in rows]
    crits = [r["critical_value"] if r.get("critical_value") is not None else math.nan for r in rows]
    colors = [VERDICT_COLORS.get(r["verdict"], NON_BELONGING_COLOR) for r in rows]
    y = np.arange(len(rows))
    ax.barh(y, stats, color=colors, height=0.6)
    for i in range(len(rows)):
        if math.isfinite(crits[i]):
            ax.vlines(
                crits[i],
                i - 0.4,
                i + 0.4,
                color="black",
                linewidth=2.5,
                label="threshold (belonging: left)" if i == 0 else None,  # type: ignore[arg-type]
            )
    ax.set_xscale("symlog", linthresh=1.0)
    finite = [abs(s) for s in stats + [c for c in crits if math.isfinite(c)]] or [1.0]
    top_d = max(1, math.ceil(math.log10(max(finite) + 1)) + 1)  # room for the value labels
    low = min(stats + [0.0])
    low_d = max(1, math.ceil(math.log10(abs(low) + 1))) if low < 0 else 0
    ax.set_xlim(-(10.0**low_d) if low_d else -1.5, 10.0**top_d)
    every = max(1, math.ceil((top_d + low_d) / 5))
    ticks = [-(10.0**d) for d in range(low_d, 0, -every)] + [0.0] + [10.0**d for d in range(0, top_d + 1, every)]
    ticker = mpl().ticker
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_symlog_label))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    for i, s in enumerate(stats):
        ax.annotate(
            f"{s:.3g}",
            (s, i),
            xytext=(4 if s >= 0 else -4, 0),
            textcoords="offset points",
            ha="left" if s >= 0 else "right",
            va="center",
            fontsize=FONT["small"],
        )
    ax.axvline(0, color=SAMPLES_COLOR, linewidth=0.8)
    ax.set_yticks(y, names, fontsize=FONT["small"])
    ax.invert_yaxis()
    for verdict in dict.fromkeys(r["verdict"] for r in rows):
        ax.barh(
            [np.nan], [np.nan], color=VERDICT_COLORS.get(verdict, NON_BELONGING_COLOR), label=verdict_label(verdict)
        )
    _style(ax, title="Grubbs statistic per model", xlabel="statistic (symmetric log scale)")
    ax.tick_params(axis="y", labelsize=FONT["small"])
    _legend_below(ax, ncols=2)
    return fig


def _symlog_label(v: float, _pos=None) -> str:
    if v == 0:
        return "0"
    d = round(math.log10(abs(v)))
    return ("-" if v < 0 else "") + ("1" if d == 0 else "10" if d == 1 else f"$10^{{{d}}}$")


def images_figure(
    image: torch.Tensor,
    reconstruction: torch.Tensor | None,
    reference_reconstruction: torch.Tensor | None = None,
    *,
    model: str = "model",
    reference: str | None = None,
    upload: Image.Image | None = None,
) -> Figure:
    """Panels for reports: the upload, what M saw, M's reconstruction, the difference (with its
    colour bar) and M_r's reconstruction."""
    panels: list[tuple[str, np.ndarray, str | None]] = []
    if upload is not None:
        up = thumbnail(upload, 256)
        panels.append((f"upload\n{upload.size[0]}x{upload.size[1]}", np.asarray(up), "gray"))
    side = image.shape[-1]
    kind = "grayscale" if image.shape[0] == 1 else "RGB"
    panels.append((f"what M saw\n{side}x{side} {kind}", np.asarray(to_pil(image)), "gray"))
    diff = None
    if reconstruction is not None:
        panels.append((f"M's reconstruction\n{model}", np.asarray(to_pil(reconstruction)), "gray"))
        diff = (image.detach().float().cpu() - reconstruction.detach().float().cpu()).abs().mean(0).clamp(0, 1)
        panels.append(("|difference|", diff.numpy(), "diff"))
    if reference_reconstruction is not None:
        panels.append((f"M_r's reconstruction\n{reference}", np.asarray(to_pil(reference_reconstruction)), "gray"))
    fig = _figure(2.1 * len(panels) + 0.4, 2.9)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, arr, cmap) in zip(axes, panels):
        if cmap == "diff":
            im = ax.imshow(
                arr, cmap="inferno", norm=mpl().colors.PowerNorm(DIFF_GAMMA, vmin=0, vmax=1), interpolation="nearest"
            )
            bar = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.03, ticks=[0, 0.05, 0.2, 0.5, 1])
            bar.ax.tick_params(labelsize=FONT["small"] - 2)
        else:
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=FONT["small"])
        ax.axis("off")
    return fig
