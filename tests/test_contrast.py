"""The contrast check (ronan.contrast): belonging also needs the image set apart from real pictures
under the same edit; otherwise inconclusive, never a confident guess."""

import math

import numpy as np
import pytest
import torch

from ronan import contrast
from ronan.attribution import attribute_batch
from ronan.edits.policy import NONE, resolve_edit
from ronan.generation import generate_pil
from ronan.verdict import DecisionSettings, decide, summarize

from conftest import SAMPLES


def belonging_sample(n=100, seed=0):
    return np.exp(np.random.default_rng(seed).normal(math.log(1e-4), 0.3, n))


def test_p_value_is_the_conformal_rank_among_the_real_pictures():
    real = np.linspace(1.0, 10.0, 10)
    assert contrast.check(0.5, real, 0.05, name="r").at_or_below == 0
    assert math.isclose(contrast.check(0.5, real, 0.05, name="r").p_value, 1 / 11)
    assert contrast.check(3.0, real, 0.05, name="r").at_or_below == 3  # ties count as at or below
    assert contrast.check(99.0, real, 0.05, name="r").p_value == 1.0
    assert contrast.check(math.nan, real, 0.05, name="r").p_value == 1.0
    many = np.linspace(1.0, 100.0, 100)
    assert contrast.check(0.5, many, 0.05, name="r").apart            # below every real picture
    assert contrast.check(4.5, many, 0.05, name="r").apart            # 4 of 100: p = 5/101
    assert not contrast.check(5.5, many, 0.05, name="r").apart        # 5 of 100: p = 6/101 > 0.05


def test_belonging_that_real_pictures_match_is_inconclusive_and_says_why():
    s = summarize(belonging_sample(), DecisionSettings())
    v = 1e-4                                                          # well inside the belonging range
    assert decide(v, s).verdict == "belonging"
    close = contrast.check(v, np.geomspace(5e-5, 1e-2, 100), 0.05, name="clipart-test[100:200]")
    d = decide(v, s, contrast=close, edit="jpeg:50")
    assert d.verdict == "inconclusive" and d.test_belonging
    assert "real pictures (clipart-test[100:200]) passed through the same edit (jpeg:50)" in d.reasons[0]
    apart = contrast.check(v, np.geomspace(1e-2, 1.0, 100), 0.05, name="r")
    assert decide(v, s, contrast=apart).verdict == "belonging"
    # a non-belonging verdict never changes, and the paper's test ignores the check
    assert decide(1.0, s, contrast=close).verdict == "non-belonging"
    paper = summarize(belonging_sample(), DecisionSettings(mode="paper"))
    assert decide(v, paper, contrast=close).verdict == "belonging"
    missing = contrast.not_built("fmnist-test[100:200]", "jpeg:75", 0.05)
    d = decide(v, s, contrast=missing, edit="jpeg:75")
    assert d.verdict == "inconclusive" and "not built here" in d.reasons[0]


def test_default_level_needs_the_image_below_every_one_of_100_real_pictures():
    s = summarize(belonging_sample(), DecisionSettings())
    real = np.geomspace(2e-4, 1e-2, 100)
    level = DecisionSettings().contrast_alpha
    assert level == 0.01
    assert decide(1e-4, s, contrast=contrast.check(1e-4, real, level, name="r")).verdict == "belonging"
    one = contrast.check(2.05e-4, real, level, name="r")  # one real picture reconstructs as well
    assert one.at_or_below == 1 and decide(2.05e-4, s, contrast=one).verdict == "inconclusive"


def test_when_the_check_applies():
    jpeg = resolve_edit(None, 28, 1, "jpeg:75")
    assert contrast.applies("auto", jpeg, "robust") and not contrast.applies("auto", NONE, "robust")
    assert contrast.applies("on", NONE, "robust")
    assert not contrast.applies("off", jpeg, "robust") and not contrast.applies("on", jpeg, "paper")
    with pytest.raises(ValueError, match="contrast must be one of"):
        contrast.validate_contrast("sometimes")


def test_bundled_set_leaves_the_benchmark_queries_out():
    from ronan.models.registry import load_model

    pictures = contrast.bundled_set(load_model("dcgan-fmnist"))
    files = sorted((SAMPLES / "fmnist-test").glob("*.png"))
    assert pictures.name == "fmnist-test[100:200]" and len(pictures) == 100
    assert set(pictures.files).isdisjoint(files[:100]) and pictures.files[0] == files[100]
    assert pictures.key()["sha256"] == contrast.PictureSet.from_files("x", files[100:200]).sha256
    assert contrast.bundled_set(load_model("dcgan64-clipart")).name == "clipart-test[100:200]"


def test_a_tiny_model_under_an_edit_end_to_end(tiny_dcgan, cache_tmp):
    """Own sample: belonging and set apart from 20 real pictures; a real picture: non-belonging; the
    contrast distribution is cached under its own name; missing and not to be built: inconclusive."""
    pictures = contrast.PictureSet.from_files("fmnist-test[0:20]", sorted((SAMPLES / "fmnist-test").glob("*.png"))[:20])
    own = generate_pil(tiny_dcgan, 1, 77)[0]
    real = SAMPLES / "fmnist-test" / "0150.png"
    # 20 pictures support p >= 1/21: the level must be above that (the default, 0.01, needs 100)
    kw = dict(reference=None, preset="fast-adam", steps=150, restarts=1, n_calibration=20, edit="jpeg:90", contrast_pictures=pictures,
              contrast_alpha=0.05)
    torch.manual_seed(0)
    mine, theirs = attribute_batch([own, real], tiny_dcgan, **kw)
    assert mine.verdict == "belonging", mine.reasons
    assert mine.contrast["n"] == 20 and mine.contrast["at_or_below"] == 0 and mine.contrast["p_value"] <= 0.05
    assert theirs.verdict == "non-belonging"
    # every place a result is shown says what the check found
    from ronan import plots, report, views
    from ronan.cli import result_line

    assert "contrast 0/20 real at or below, p=0.05" in result_line(mine)
    assert report.report_dict(mine, None)["test"]["contrast"]["n"] == 20
    assert "Contrast check" in views.verdict_card(mine) and "0 of 20 held-out real pictures" in views.verdict_card(mine)
    fig = report.histogram_figure_of(mine, None)
    assert "held-out real pictures, same edit (N = 20)" in plots.legend_texts(fig)
    files = sorted(p.name for p in cache_tmp.glob("*.json"))
    assert len(files) == 2 and sum("__jpeg90__real-fmnist-test-0-20__" in f for f in files) == 1
    # the same query where the contrast distribution is missing and may not be built
    for f in cache_tmp.glob("*__real-*.json"):
        f.unlink()
    (again,) = attribute_batch([own], tiny_dcgan, **kw, build_calibration=False)
    assert again.verdict == "inconclusive" and "not built here" in again.reasons[0]
    assert again.test_verdict == "belonging"
    off = attribute_batch([own], tiny_dcgan, **(kw | {"contrast": "off"}), build_calibration=False)[0]
    assert off.verdict == "belonging" and off.contrast is None


def test_robust_assumption_tests_each_edit_of_the_family(tiny_dcgan, cache_tmp):
    """Unknown edits: one belonging distribution per edit of the family (shared with declared edits),
    the closest fit decides and is named; a real picture fits none of them."""
    from ronan import views
    from ronan.cli import result_line
    from ronan.edits import ROBUST_FAMILY, parse_edit
    from ronan.evaluation import verdicts
    from ronan.images import load_image

    blurred = parse_edit("filter:blur").apply(generate_pil(tiny_dcgan, 1, 77)[0], seed=0)
    real = SAMPLES / "fmnist-test" / "0150.png"
    kw = dict(reference=None, preset="fast-adam", steps=400, restarts=1, n_calibration=12, edit="robust", contrast="off")
    mine, theirs = attribute_batch([blurred, load_image(real)], tiny_dcgan, **kw)
    assert mine.verdict == "belonging" and mine.edit == "robust" and mine.robust_edit in ROBUST_FAMILY
    assert theirs.verdict == "non-belonging"
    assert any("tested against each edit of the family" in n for n in mine.notes)
    assert f"edit robust: {mine.robust_edit} (robust)" in result_line(mine)
    assert "the closest fit" in " ".join(views.assumptions(mine))
    # one distribution per edit, the same files a declared edit uses
    assert len(list(cache_tmp.glob("*.json"))) == len(ROBUST_FAMILY)
    declared = attribute_batch([blurred], tiny_dcgan, **(kw | {"edit": mine.robust_edit}), build_calibration=False)[0]
    assert declared.calibration_file == mine.calibration_file
    # re-deciding with every family distribution gives the same verdicts
    from ronan.calibration import get_distribution
    from ronan.edits.policy import resolve_edit
    from ronan.inversion import resolve_settings

    settings = resolve_settings("fast-adam", model=tiny_dcgan, steps=400, restarts=1)
    dists = [get_distribution(tiny_dcgan, None, settings=settings, n=12, edit=m, build=False)
             for m in resolve_edit(None, 28, 1, "robust").members()]
    assert verdicts([mine, theirs], dists) == ["belonging", "non-belonging"]
    with pytest.raises(ValueError, match="mode samples"):
        attribute_batch([blurred], tiny_dcgan, **kw, edit_mode="through")


def test_contrast_pictures_folder(tmp_path, capsys):
    """CLI --contrast-pictures DIR: a folder of real pictures for models without a bundled set; a
    folder with too few images stops with one line before any work."""
    import shutil

    from ronan.cli import main

    for f in sorted((SAMPLES / "fmnist-test").glob("*.png"))[:5]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "notes.txt").write_text("not a picture")
    pictures = contrast.folder_set(tmp_path)
    assert len(pictures) == 5 and pictures.name == tmp_path.name
    few = tmp_path / "few"
    few.mkdir()
    shutil.copy(SAMPLES / "fmnist-test" / "0000.png", few / "a.png")
    img = SAMPLES / "fmnist-test" / "0001.png"
    assert main(["attribute", "dcgan-fmnist", str(img), "--contrast-pictures", str(few)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--contrast-pictures" in lines[0] and "at least 3 pictures" in lines[0], lines


def test_robust_assumption_through_the_app_uses_the_committed_distributions(tmp_path):
    """The app's path (no builds for visitors): a sharpened generated image under `robust` is found
    belonging by the closest family edit, with its contrast check, and the outcome carries that
    edit's belonging distribution (for the histogram)."""
    from PIL import Image

    from ronan import studio
    from ronan.edits import ROBUST_FAMILY, parse_edit

    image = parse_edit("filter:sharpen").apply(Image.open(studio.generate_example("dcgan-fmnist", 21, tmp_path)), seed=0)
    out = None
    for ev in studio.run_attribution(image, "dcgan-fmnist", edit="robust", build_calibration=False):
        out = ev
    r = out.result
    assert r.verdict == "belonging" and r.edit == "robust" and r.robust_edit in ROBUST_FAMILY
    assert r.contrast["n"] == 100 and r.contrast["at_or_below"] == 0
    assert out.distribution.edit["spec"] == r.robust_edit
