"""Figures (ronan.plots), reports (ronan.report), which-model decisions and batch input, fast."""

from __future__ import annotations

import json
import math
import zipfile

import pytest
import torch
from PIL import Image

from ronan import plots, report, studio
from ronan.attribution import attribute
from ronan.calibration import build_distribution
from ronan.inversion import resolve_settings
from ronan.rows import ROW_FIELDS
from ronan.which_model import NONE_ANSWER, decide


@pytest.fixture(scope="module")
def tiny_result():
    torch.manual_seed(1234)
    from ronan.models.dcgan import DCGAN

    g = DCGAN(latent_dim=8, base=8, channels=1, image_size=28)
    g.name, g.weights_sha256 = "tiny-dcgan", "0" * 64
    g = g.freeze()
    settings = resolve_settings("fast", steps=5, restarts=2)
    dist = build_distribution(g, None, settings=settings, n=5, seed=0)
    img = Image.new("L", (28, 28), 40)
    res = attribute(img, g, reference=None, steps=5, restarts=2, distribution=dist)
    return res, dist


def test_pixelate_is_nearest_and_large():
    t = torch.zeros(1, 28, 28)
    t[0, 0, 0] = 1.0
    im = plots.pixelate(t)
    assert im.size == (280, 280)
    assert im.getpixel((9, 9)) == 255 and im.getpixel((10, 10)) == 0  # crisp 10x10 blocks
    big = Image.new("RGB", (600, 400))
    assert plots.pixelate(big).size == (600, 400)


def test_difference_map():
    a, b = torch.zeros(1, 28, 28), torch.zeros(1, 28, 28)
    b[0, 5, 5] = 1.0
    d = plots.difference_map(a, b)
    assert d.size == (280, 280) and d.mode == "RGB"
    assert sum(d.getpixel((55, 55))) > sum(d.getpixel((0, 0)))


def test_threshold_matches_grubbs():
    from ronan.stats import grubbs_test

    mean, std, n = 0.5, 0.1, 100
    dec = grubbs_test(0.5, mean, std, n)
    thr = plots.threshold_value(mean, std, dec.critical_value)
    assert grubbs_test(thr - 1e-9, mean, std, n).belonging and not grubbs_test(thr + 1e-9, mean, std, n).belonging


def test_figures_render(tiny_result):
    res, dist = tiny_result
    for fig in (plots.histogram_figure(dist.values, mean=dist.mean, std=dist.std, critical_value=res.critical_value,
                                       value=res.calibrated_loss, verdict=res.verdict, model=res.model),
                plots.histogram_figure([1e-6, 2e-6, 1e-5], mean=4e-6, std=5e-6, critical_value=2.0, value=3.0),
                plots.loss_curves_figure(res.history, [0.5, 0.4], model="m", reference="r", steps=5),
                plots.which_model_figure([{"model": "a", "statistic": -0.3, "critical_value": 3.2,
                                           "verdict": "belonging"},
                                          {"model": "b", "statistic": 250.0, "critical_value": 3.2,
                                           "verdict": "non-belonging"}]),
                plots.images_figure(res.image_tensor, res.reconstruction, None, model="m")):
        png = plots.fig_to_png(fig)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_readable_legends_outside_the_data():
    """Legends below the axes (never over data), curves named M and M_r, decade-only log labels,
    integer counts, a log axis fixed by the robust test's domain (not by the examined image)."""
    vals = [1e-4 * (1 + 0.1 * i) for i in range(50)] + [3e-2]
    kw = {"mean": math.log(1.3e-4), "std": 0.3, "critical_value": 3.1, "threshold": 3e-4, "model": "m",
          "removed": [50], "domain": "log"}
    for value in (1e-4, 0.5, 3000.0):
        fig = plots.histogram_figure(vals, value=value, verdict="non-belonging", **kw)
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"  # the same scale whichever image is examined
        assert plots.legend_outside_data(fig)
        texts = plots.legend_texts(fig)
        assert texts[:3] == ["m samples used (N = 50)", "removed as failed inversions (1)",
                             "threshold (Grubbs, alpha = 0.05): belonging to its left"]
        assert texts[3].startswith("this image (NOT BELONGING)")
        plots.fig_to_png(fig)
        assert all(float(t).is_integer() for t in ax.get_yticks())
        labels = [t.get_text() for t in ax.get_xticklabels(minor=True)]
        assert not any(labels), labels  # no crowded minor labels (3x10^-5, 4x10^-5, ...)
    raw = plots.histogram_figure([1.0, 2.0, 3.0], mean=2.0, std=1.0, critical_value=1.1, calibrated=False)
    assert "no reference" in raw.axes[0].get_xlabel()
    fig = plots.loss_curves_figure([1e-2, 3e-5], [2e-2, 1.5e-2], model="dcgan-fmnist", reference="ref-photos")
    assert [t.split(" (final")[0] for t in plots.legend_texts(fig)] == ["M (inspected): dcgan-fmnist",
                                                                         "M_r (reference): ref-photos"]
    assert plots.legend_outside_data(fig)
    lines = fig.axes[0].get_lines()
    assert [ln.get_color() for ln in lines] == [plots.MODEL_COLOR, plots.REFERENCE_COLOR]
    alone = plots.loss_curves_figure([1e-2, 3e-5], None, model="m", reference=None)
    assert [ln.get_color() for ln in alone.axes[0].get_lines()] == [plots.MODEL_COLOR]
    rows = [{"model": "a", "statistic": -0.3, "critical_value": 3.2, "verdict": "belonging"},
            {"model": "b", "statistic": 2.5e6, "critical_value": 3.2, "verdict": "non-belonging"}]
    fig = plots.which_model_figure(rows)
    plots.fig_to_png(fig)
    assert plots.legend_outside_data(fig)
    ax = fig.axes[0]
    assert ax.get_xlim()[1] > 2.5e6 * 10  # room for the value label of the longest bar
    svg = plots.loss_curves_svg([1e-2, 1e-4], [2e-2, 1e-2], model="m", reference="r")
    assert "M (inspected): m" in svg and "M_r (reference): r" in svg and svg.count("<polyline") == 2
    assert "M_r" not in plots.loss_curves_svg([1e-2, 1e-4], None, model="m", reference=None)


def test_report_json_and_html(tiny_result, tmp_path):
    res, dist = tiny_result
    paths = report.write_report(res, tmp_path, dist)
    assert set(paths) >= {"json", "html", "histogram", "loss_curves", "images"}
    data = json.loads(paths["json"].read_text())
    a = data["attribution"]
    assert a["statistic"] == pytest.approx(res.statistic) and a["image_sha256"] == res.image_sha256
    assert a["model_sha256"] == "0" * 64 and "torch" in a["versions"] and a["history"]
    assert data["belonging_distribution"]["n"] == 5 and len(data["belonging_distribution"]["values"]) == 5
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and plots.verdict_label(res.verdict) in html
    assert "Created <b>" in html and "What the model saw" in html
    assert data["upload"]["size"] == [28, 28] and data["test"]["n"] == 5 and data["assumptions"]
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script src" not in html  # self-contained
    embedded = html.split('id="ronan-report">')[1].split("</script>")[0]
    assert json.loads(embedded.replace("<\\/", "</"))["verdict"] == res.verdict


def test_which_model_decision(tiny_result):
    res, _ = tiny_result
    import dataclasses

    a = dataclasses.replace(res, model="a", verdict="belonging", statistic=0.5)
    b = dataclasses.replace(res, model="b", verdict="belonging", statistic=-0.2)
    c = dataclasses.replace(res, model="c", verdict="non-belonging", statistic=40.0)
    out = decide("x.png", [a, b, c])
    assert out.best == "b" and out.answer == "made by b (also consistent with a)"
    assert decide("x.png", [c]).answer == NONE_ANSWER
    e = dataclasses.replace(res, model="e", verdict="inconclusive", reasons=["the sample is unreliable"])
    assert decide("x.png", [c, e]).answer == "inconclusive for e; no model accepts it"  # not "none of these"
    assert decide("x.png", [a, e]).answer == "made by a"
    d = json.loads(json.dumps(out.to_dict()))  # JSON-ready: the answer, the models accepted, one result each
    assert d["answer"] == "made by b (also consistent with a)" and d["best"] == "b" and d["accepted"] == ["b", "a"]
    assert [r["model"] for r in d["results"]] == ["a", "b", "c"]
    assert [r["verdict"] for r in d["results"]] == ["belonging", "belonging", "non-belonging"]
    assert d["results"][1]["statistic"] == -0.2 and "history" not in d["results"][0]
    assert [r["model"] for r in out.rows()] == ["a", "b", "c"] and set(out.rows()[0]) == set(ROW_FIELDS)


def test_collect_batch_zip(tmp_path):
    img = tmp_path / "a.png"
    Image.new("L", (28, 28)).save(img)
    z = tmp_path / "set.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(img, "real/a.png")
        zf.write(img, "dcgan-fmnist/b.png")
        zf.write(img, "loose.png")
        zf.writestr("notes.txt", "hello")
        zf.writestr("__MACOSX/real/._a.png", "junk")
        zf.writestr(".hidden/c.png", "junk")
    items = studio.collect_batch([str(z), str(img)])
    assert [(i.name, i.label) for i in items] == [("real/a.png", "real"), ("dcgan-fmnist/b.png", "dcgan-fmnist"),
                                                  ("loose.png", None), ("a.png", None)]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert studio.collect_batch([str(bad)])[0].error
    assert studio.is_belonging_label("dcgan-fmnist", "dcgan-fmnist") is True
    assert studio.is_belonging_label("real", "dcgan-fmnist") is False
    assert studio.is_belonging_label(None, "dcgan-fmnist") is None
