"""Figures and display images used by the app and the reports (matplotlib, Agg backend).

Every function returns a :class:`matplotlib.figure.Figure` (or a PIL image) built from the
numbers of an :class:`~ronan.attribution.Attribution` or a
:class:`~ronan.calibration.BelongingDistribution`; nothing here computes a verdict.
Figures are created with ``Figure()`` directly (not ``pyplot``), so they are thread-safe
and never leak between requests.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from .images import to_pil  # noqa: E402

BELONGING_COLOR = "#1a7f37"
NON_BELONGING_COLOR = "#cf222e"
INCONCLUSIVE_COLOR = "#9a6700"
VERDICT_COLORS = {"belonging": BELONGING_COLOR, "non-belonging": NON_BELONGING_COLOR, "inconclusive": INCONCLUSIVE_COLOR}
MODEL_COLOR = "#0969da"
REFERENCE_COLOR = "#8250df"
DISPLAY_SIZE = 280
"""Side in pixels of the images shown in the app (28x28 is upscaled 10x, nearest neighbour)."""


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


def difference_map(image: torch.Tensor, reconstruction: torch.Tensor, size: int = DISPLAY_SIZE) -> Image.Image:
    """Absolute difference ``|x - M(i)|`` (mean over channels) as an upscaled heat map.

    Args:
        image, reconstruction (Tensor[C, H, W] in [0, 1]): same shape.
        size (int): display size (see :func:`pixelate`).

    Black means identical; bright yellow means a difference of 1 (the full range).
    """
    diff = (image.detach().float().cpu() - reconstruction.detach().float().cpu()).abs().mean(0).clamp(0, 1).numpy()
    cmap = matplotlib.colormaps["inferno"]
    rgb = (cmap(diff)[..., :3] * 255).round().astype(np.uint8)
    return pixelate(Image.fromarray(rgb, "RGB"), size)


def fig_to_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


# ----------------------------------------------------------------------------- figures

def threshold_value(mean: float, std: float, critical_value: float) -> float:
    """The calibrated loss at which Grubbs' statistic equals its critical value.

    ``(A' - mean) / std < critical_value`` is the same as ``A' < mean + critical_value * std``;
    this is where the threshold line is drawn on the calibrated-loss axis.
    """
    return mean + critical_value * std


def histogram_figure(values: Sequence[float], *, mean: float, std: float, critical_value: float,
                     value: float | None = None, verdict: str | None = None, model: str = "",
                     alpha: float = 0.05, log: bool | None = None, threshold: float | None = None,
                     removed: Sequence[int] = ()) -> Figure:
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
        log (bool | None): logarithmic x axis; None chooses it when the values or the marker
            span more than a factor of 20.
        threshold (float | None): the calibrated loss where the statistic equals the critical
            value; default ``mean + critical_value * std`` (the paper's linear test).
        removed (sequence of int): indices of samples the robust test removed as failed
            inversions (drawn apart).
    """
    vals = np.asarray(values, dtype=np.float64)
    thr = threshold_value(mean, std, critical_value) if threshold is None else threshold
    pts = [v for v in list(vals) + [thr] + ([value] if value is not None else []) if v is not None and math.isfinite(v)]
    positive = [p for p in pts if p > 0]
    if log is None:
        log = bool(positive) and len(positive) == len(pts) and max(positive) / min(positive) > 20
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    if log:
        lo, hi = min(positive), max(positive)
        bins = np.geomspace(lo / 1.05, hi * 1.05, 40) if vals.size else 10
        ax.set_xscale("log")
    else:
        bins = 25
    out = np.zeros(vals.size, dtype=bool)
    out[list(removed)] = True
    if vals.size:
        ax.hist([vals[~out], vals[out]], bins=bins, color=["#8c959f", "#e3b341"], edgecolor="white", stacked=True,
                label=[f"{model} samples (N = {int((~out).sum())})", f"removed as failed inversions ({int(out.sum())})"])
    if math.isfinite(thr):
        ax.axvline(thr, color="black", linestyle="--", linewidth=1.5, label=f"Grubbs threshold (alpha = {alpha:g})")
    if value is not None and math.isfinite(value):
        color = VERDICT_COLORS.get(verdict or "", NON_BELONGING_COLOR)
        ax.axvline(value, color=color, linewidth=2.5, label="examined image")
        ax.plot([value], [0], marker="v", markersize=12, color=color, clip_on=False, transform=ax.get_xaxis_transform())
    ax.set_xlabel("calibrated reconstruction loss A'(M, x) = A(M, x) / A(M_r, x)")
    ax.set_ylabel("number of samples")
    ax.set_title(f"Belonging distribution of {model}" if model else "Belonging distribution")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    return fig


def loss_curves_figure(history: Sequence[float] | None, reference_history: Sequence[float] | None = None, *,
                       model: str = "model", reference: str | None = None, steps: int | None = None,
                       history_steps: Sequence[int] | None = None,
                       reference_steps: Sequence[int] | None = None) -> Figure:
    """Best-so-far reconstruction loss per step for the inspected and the reference model.

    Args:
        history: loss of the inspected model per step (may be partial while it runs).
        reference_history: same for the reference model, or None.
        model, reference (str): legend names.
        steps (int | None): total steps (fixes the x range while streaming).
        history_steps, reference_steps: x positions of the values (default 0, 1, 2, ...),
            for curves sampled every few steps while streaming.
    """
    fig = Figure(figsize=(6.4, 3.0))
    ax = fig.add_subplot()
    drawn = False
    for hist, xs, name, color in ((history, history_steps, model, MODEL_COLOR),
                                  (reference_history, reference_steps, reference or "reference", REFERENCE_COLOR)):
        if hist is None or len(hist) == 0:
            continue
        h = np.asarray(hist, dtype=np.float64)
        x = np.asarray(xs) if xs is not None and len(xs) == h.size else np.arange(h.size)
        ax.plot(x, np.clip(h, 1e-12, None), color=color, linewidth=2, label=f"{name}: {h[-1]:.3g}")
        drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper right")
    if steps:
        ax.set_xlim(0, steps)
    ax.set_xlabel("inversion step")
    ax.set_ylabel("best reconstruction loss")
    ax.set_title("Reverse-engineering (Eq. 1): lower is a better reconstruction")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def curve_names(model: str, reference: str | None) -> tuple[str, str]:
    """Legend names of the two loss curves (see :func:`loss_curve_table`)."""
    return model, f"{reference or 'reference'} (reference)"


def curve_colors(model: str, reference: str | None) -> dict[str, str]:
    """Fixed colours of the two loss curves, by legend name."""
    a, b = curve_names(model, reference)
    return {a: MODEL_COLOR, b: REFERENCE_COLOR}


def loss_curve_table(history: Sequence[float] | None, reference_history: Sequence[float] | None = None, *,
                     history_steps: Sequence[int] | None = None, reference_steps: Sequence[int] | None = None,
                     model: str = "model", reference: str | None = None,
                     placeholders: bool = True) -> dict[str, list]:
    """Loss curves as columns ``step``, ``log10_loss``, ``curve`` (for browser-side line plots).

    Lighter than a figure while streaming; the loss is shown as log10 because it spans
    several orders of magnitude. With ``placeholders`` a curve without data yet (the
    reference while M is inverted) gets one NaN row, so a plot's legend and colours know
    both curves from the first update.
    """
    out: dict[str, list] = {"step": [], "log10_loss": [], "curve": []}
    names = curve_names(model, reference)
    for hist, xs, name in ((history, history_steps, names[0]), (reference_history, reference_steps, names[1])):
        if hist is None or len(hist) == 0:
            if placeholders and (name == names[0] or reference is not None):
                out["step"].append(0)
                out["log10_loss"].append(float("nan"))
                out["curve"].append(name)
            continue
        h = np.log10(np.clip(np.asarray(hist, dtype=np.float64), 1e-12, None))
        x = list(xs) if xs is not None and len(xs) == h.size else list(range(h.size))
        out["step"] += [int(v) for v in x]
        out["log10_loss"] += [float(v) for v in h]
        out["curve"] += [name] * h.size
    return out


def which_model_figure(rows: Sequence[dict]) -> Figure:
    """Bar chart of Grubbs' statistic of one image against several models, with thresholds.

    Args:
        rows: dicts with ``model``, ``statistic``, ``critical_value`` and ``verdict``.

    A bar below its model's threshold (black tick) means "belonging". The y axis is
    symmetric-logarithmic, since statistics of non-belonging images can be very large.
    """
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    names = [r["model"] for r in rows]
    stats = [r["statistic"] if r["statistic"] is not None and math.isfinite(r["statistic"]) else 0.0 for r in rows]
    colors = [VERDICT_COLORS.get(r["verdict"], NON_BELONGING_COLOR) for r in rows]
    x = np.arange(len(rows))
    ax.bar(x, stats, color=colors, width=0.6)
    for i, r in enumerate(rows):
        ax.hlines(r["critical_value"], i - 0.4, i + 0.4, color="black", linewidth=2,
                  label="threshold" if i == 0 else None)
        ax.annotate(f"{stats[i]:.2f}", (i, stats[i]), ha="center", va="bottom" if stats[i] >= 0 else "top",
                    fontsize=8, xytext=(0, 2 if stats[i] >= 0 else -2), textcoords="offset points")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.axhline(0, color="#8c959f", linewidth=0.8)
    ax.set_xticks(x, names, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("Grubbs statistic (A' - mu) / sigma")
    ax.set_title("Which model? Bars below their threshold are 'belonging'")
    if rows:
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def images_figure(image: torch.Tensor, reconstruction: torch.Tensor | None,
                  reference_reconstruction: torch.Tensor | None = None, *, model: str = "model",
                  reference: str | None = None) -> Figure:
    """Side-by-side panel for reports: image, reconstruction(s) and difference map."""
    panels = [("examined image", to_pil(image), "gray")]
    if reconstruction is not None:
        panels.append((f"{model} reconstruction", to_pil(reconstruction), "gray"))
        panels.append(("|difference|", difference_map(image, reconstruction, size=image.shape[-1]), None))
    if reference_reconstruction is not None and reference_reconstruction.shape == image.shape:
        panels.append((f"{reference} reconstruction", to_pil(reference_reconstruction), "gray"))
    fig = Figure(figsize=(2.2 * len(panels), 2.5))
    for i, (title, im, cmap) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(np.asarray(im), cmap=cmap if im.mode == "L" else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig
