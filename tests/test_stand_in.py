"""A file whose edit has no belonging distribution where the run happens (a server that does not
build): a stand-in decides, and a rejection the edit alone could explain is inconclusive."""

import io

import pytest
from PIL import Image, features

from ronan import studio
from ronan.edits import parse_edit
from ronan.edits import policy
from ronan.edits import stand_in as rule
from ronan.gallery import real_samples
from ronan.images import load_image
from ronan.generation import generate_pil
from ronan.models.registry import load_model


@pytest.fixture(autouse=True)
def _only_committed_distributions(cache_tmp):
    """An empty write cache: the distributions here are the committed ones (other tests build more,
    e.g. resize 2, which would leave nothing to stand in for)."""


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _webp(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "WEBP", quality=quality)
    return buf.getvalue()


def _attribute(data: bytes, model: str):
    out = None
    for ev in studio.run_attribution(data, model, build_calibration=False):
        out = ev
    return out.result, out.caveats


def test_distortion_grows_with_the_edit():
    gen = load_model("dcgan-fmnist")
    none, *q = rule.distortions(gen, [parse_edit(s) for s in ("none", "jpeg:95", "jpeg:85", "jpeg:30")])
    assert none == 0.0 and 0 < q[0] < q[1] < q[2]
    assert rule.distortions(gen, [parse_edit("jpeg:85")]) == [q[1]]  # seeded: the same images each time
    assert rule.rejection_holds(1e-4, 2e-4) and not rule.rejection_holds(3e-4, 2e-4)
    assert rule.rejection_holds(3e-4, 2e-4, loss=5e-3, edit_most=1e-3)  # further than the edit takes any own image
    assert not rule.rejection_holds(3e-4, 2e-4, loss=5e-4, edit_most=1e-3)
    assert not rule.rejection_holds(3e-4, 2e-4, loss=1.6e-3, edit_most=1e-3)  # within the margin (2x)
    assert rule.acceptance_holds(1e-3, 2e-3) and not rule.acceptance_holds(3e-3, 2e-3)
    assert not rule.acceptance_holds(None, 2e-3)  # a distance other than MSE: the distortions cannot tell
    errors = rule.own_errors(gen, [parse_edit("jpeg:85"), parse_edit("none")], n=6)
    assert errors[0].shape == (6,) and (errors[0] > 0).all() and not errors[1].any()


def test_the_stand_in_is_the_nearest_edit_of_the_same_kind_that_moves_images_as_far():
    gen = load_model("dcgan-fmnist")
    here = [parse_edit(s) for s in ("jpeg:90", "jpeg:75", "jpeg:50", "filter:blur", "resize:0.5")]
    assert rule.pick(gen, parse_edit("jpeg:85"), here).spec == "jpeg:75"  # q90 moves them less than q85
    assert rule.pick(gen, parse_edit("jpeg:95"), here).spec == "jpeg:90"
    assert rule.pick(gen, parse_edit("jpeg:20"), here).spec == "jpeg:50"  # none as far: the furthest
    assert rule.pick(gen, parse_edit("resize:4+jpeg:85"), here).spec.startswith("jpeg:")
    assert rule.pick(gen, parse_edit("resize:2"), here).spec == "resize:0.5"
    assert rule.pick(gen, parse_edit("noise:0.02"), here) is None
    assert rule.kind(parse_edit("resize:4+jpeg:85")) == "jpeg" and rule.kind(parse_edit("none")) == "none"


def test_a_resaved_own_image_is_found_belonging_by_the_stand_in():
    """An own image re-saved as JPEG q85 (no q85 distribution committed): the committed q75 stands in
    and finds it belonging; tested as if unedited (the fallback before) it was judged not belonging."""
    own = generate_pil(load_model("dcgan-fmnist"), 1, 1000)[0]
    r, caveats = _attribute(_jpeg(own, 85), "dcgan-fmnist")
    assert r.verdict == "belonging" and r.edit == "jpeg:75" and r.edit_source == "stand-in"
    assert r.detection["jpeg_quality"] == 85 and "tested as jpeg:75" in r.edit_description
    assert any("stand-in for the file's edit jpeg:85: jpeg:75" in n for n in r.notes)
    assert any("it was tested as jpeg:75" in c for c in caveats)
    unedited = None
    for ev in studio.run_attribution(_jpeg(own, 85), "dcgan-fmnist", build_calibration=False, edit="none"):
        unedited = ev
    assert unedited.result.verdict == "non-belonging"  # what the previous fallback answered


@pytest.mark.parametrize("source, quality, verdict", [("real", 85, "non-belonging"), ("real", 30, "non-belonging"),
                                                     ("own", 20, "inconclusive")])
def test_a_rejection_stands_only_where_the_edit_cannot_explain_it(source, quality, verdict):
    """Re-saved as JPEG q85, the edit moves the model's own images less than the stand-in's (q75)
    samples lie: "not belonging" holds. At q30 and q20 it moves them further than any committed JPEG
    distribution: a real picture's loss lies far beyond what the edit does to the model's own images,
    so its rejection still holds; an own image's does not, and its rejection is inconclusive."""
    image = (generate_pil(load_model("dcgan-fmnist"), 1, 1000)[0] if source == "own"
             else Image.open(real_samples(2, "fmnist-test")[1]).convert("L"))
    r, _ = _attribute(_jpeg(image, quality), "dcgan-fmnist")
    assert r.test_verdict == "non-belonging" and r.verdict == verdict, r.reasons
    assert any(f"stand-in for the file's edit jpeg:{quality}" in n for n in r.notes)
    assert any("the edit alone can make a generated image look not belonging" in x for x in r.reasons) == (
        verdict == "inconclusive"
    )


@pytest.mark.parametrize("source, index, verdict", [("own", 0, "belonging"), ("real", 7, "inconclusive")])
def test_an_acceptance_stands_only_where_the_edit_explains_the_loss(source, index, verdict):
    """Upscaled 2x (no resize 2 distribution; resize 0.75 stands in, which moves the model's own
    images ~5x further than an upscale does): an own image's loss lies within what the upscale does to
    the model's own images and its "belonging" holds; real picture 7 of the test split passed the
    stand-in's test and its contrast check (a false positive before this rule) but lies beyond that,
    so it is inconclusive, never "belonging"."""
    image = (generate_pil(load_model("dcgan-fmnist"), 1, 1000)[index] if source == "own"
             else Image.open(real_samples(index + 1, "fmnist-test")[index]).convert("L"))
    data, ext = parse_edit("resize:2").to_file(image, seed=0)
    r, _ = _attribute(data, "dcgan-fmnist")
    assert r.edit == "resize:0.75" and r.edit_source == "stand-in" and r.test_verdict == "belonging"
    assert r.verdict == verdict, r.reasons
    assert any("cannot show that it belongs" in x for x in r.reasons) == (verdict == "inconclusive")


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")
def test_a_lossy_webp_is_judged_as_the_edit_it_is(monkeypatch):
    """An own image saved as WebP q80 was judged not belonging (tested as unedited). Its quality is
    read from the file (``webp:80``): the committed WebP q75 distribution stands in and it is belonging,
    and a real picture so saved is not. Without a WebP distribution the pristine sample stands in: the
    own file's rejection is inconclusive (the encoding alone moves own images that far), with the
    paper's test too (as for a JPEG file without its distribution); a lossless WebP of the same image is
    belonging; the real picture, whose loss lies twice beyond what WebP at the lowest quality its
    header allows does to the model's own images, stays not belonging."""
    gen = load_model("dcgan-fmnist")
    own = generate_pil(gen, 1, 1000)[0]
    real = Image.open(real_samples(10, "fmnist-test")[9]).convert("L")

    def run(image, test="robust", **kw):
        buf = io.BytesIO()
        image.save(buf, "WEBP", **kw)
        out = None
        for out in studio.run_attribution(buf.getvalue(), "dcgan-fmnist", build_calibration=False, test=test):
            pass
        return out.result

    r = run(own, quality=80)
    assert (r.edit, r.edit_source, r.verdict) == ("webp:75", "stand-in", "belonging"), r.reasons
    assert r.detection["suggested"] == "webp:80" and 80 in r.detection["webp_qualities"]
    assert run(real, quality=80).verdict == "non-belonging"

    monkeypatch.setattr(studio, "cached_edits", lambda model: [])  # no WebP distribution here
    r, paper = run(own, quality=80), run(own, "paper", quality=80)
    lossless, other = run(own, lossless=True), run(real, quality=80)
    assert (r.edit, r.edit_source, r.test_verdict, r.verdict) == ("none", "stand-in", "non-belonging",
                                                                  "inconclusive")
    assert any("the file's edit (webp:80) has no belonging distribution here" in x for x in r.reasons)
    assert (paper.test_verdict, paper.verdict) == ("non-belonging", "inconclusive")
    assert lossless.verdict == "belonging"
    assert other.verdict == "non-belonging"
    weakest, _ = rule.quality_span(policy.resolve_edit(load_image(_webp(real, 80)), 28, 1))
    assert other.loss > 2 * rule.own_errors(gen, [weakest])[0].max() > 2 * r.loss


def test_a_grey_palette_is_never_rejected_for_its_levels():
    """An own image of a grayscale model saved as a palette PNG of the web palette (6 grey levels) was
    judged not belonging (a palette PNG was taken for lossless). A rejection now holds only where the
    image lies twice beyond what a reduction to that many levels does to the model's own images: the
    own file is inconclusive with the reason, a real picture far beyond stays not belonging, and a
    palette that kept every level of an own image is belonging."""
    gen = load_model("dcgan-fmnist")
    own = generate_pil(gen, 1, 1000)[0]
    real = Image.open(real_samples(2, "fmnist-test")[1]).convert("L")

    def png(image: Image.Image) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "PNG")
        return buf.getvalue()

    r, _ = _attribute(png(own.convert("RGB").convert("P")), "dcgan-fmnist")
    assert (r.test_verdict, r.verdict) == ("non-belonging", "inconclusive")
    assert any("the file is a palette image of 6 grey levels" in x for x in r.reasons), r.reasons
    assert r.detection["grey_levels"] == 6
    most = rule.encoding_most(gen, "a palette image of 6 grey levels")
    assert r.loss <= 2 * most
    other, _ = _attribute(png(real.convert("RGB").convert("P")), "dcgan-fmnist")
    assert other.verdict == "non-belonging" and other.loss > 2 * most
    kept = own.quantize(256)  # every level of the image kept
    assert len(kept.convert("L").getcolors(256)) == len(own.getcolors(256))
    assert _attribute(png(kept), "dcgan-fmnist")[0].verdict == "belonging"


def test_an_avif_or_jpeg_2000_file_is_never_rejected_for_its_compression():
    """An own image saved as AVIF (quality 60) or as lossy JPEG 2000 was judged not belonging (tested as
    unedited: these codecs reveal no quality). A rejection now holds only where the image lies twice
    beyond what the codec at the file's bits per pixel does to the model's own images: the own files
    are inconclusive with the reason, a real AVIF picture far beyond stays not belonging, and a lossless
    JPEG 2000 of an own image is belonging."""
    if not (features.check("avif") and features.check("jpg_2000")):
        pytest.skip("Pillow without AVIF or JPEG 2000")
    gen = load_model("dcgan-fmnist")
    own = generate_pil(gen, 1, 1000)[0]
    real = Image.open(real_samples(2, "fmnist-test")[1]).convert("L")

    def saved(image: Image.Image, fmt: str, **options) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, **options)
        return buf.getvalue()

    for data, name in ((saved(own, "AVIF", quality=60), "an AVIF file"),
                       (saved(own, "JPEG2000", quality_mode="rates", quality_layers=[3]), "a JPEG 2000 file")):
        r, _ = _attribute(data, "dcgan-fmnist")
        assert (r.test_verdict, r.verdict) == ("non-belonging", "inconclusive"), name
        assert any(x.startswith(f"the file is {name} of ") for x in r.reasons), r.reasons
    other, _ = _attribute(saved(real, "AVIF", quality=60), "dcgan-fmnist")
    most = rule.encoding_most(gen, f"an AVIF file of {other.detection['bits_per_pixel']:.3g} bits per pixel")
    assert other.verdict == "non-belonging" and other.loss > 2 * most > 0
    assert _attribute(saved(own, "JPEG2000"), "dcgan-fmnist")[0].verdict == "belonging"  # lossless


def test_a_png_made_from_a_jpeg_is_judged_as_the_jpeg_it_was():
    """An own image saved as JPEG (quality 85) and then as PNG was judged not belonging: the PNG was
    taken for an unedited file. Its pixels carry the JPEG (a ghost at quality 85): it is judged as
    ``jpeg:85``, with the committed q75 distribution standing in, and found belonging; a real picture so
    re-saved stays not belonging."""
    gen = load_model("dcgan-fmnist")
    own = generate_pil(gen, 1, 1000)[0]
    real = Image.open(real_samples(2, "fmnist-test")[1]).convert("L")

    def png_of_jpeg(image: Image.Image) -> bytes:
        decoded = Image.open(io.BytesIO(_jpeg(image, 85))).convert("L")
        buf = io.BytesIO()
        decoded.save(buf, "PNG")
        return buf.getvalue()

    r, _ = _attribute(png_of_jpeg(own), "dcgan-fmnist")
    assert r.detection["jpeg_ghost_quality"] == 85 and r.detection["suggested"] == "jpeg:85"
    assert (r.edit, r.edit_source, r.verdict) == ("jpeg:75", "stand-in", "belonging"), r.reasons
    assert _attribute(png_of_jpeg(real), "dcgan-fmnist")[0].verdict == "non-belonging"


def test_a_jpeg_saved_again_at_a_higher_quality_is_judged_as_both():
    """An own image saved as JPEG q75 and then again at q95 was judged not belonging (tested as q95
    alone, whose distortion is far smaller). The earlier q75 is found in its pixels: the file is judged
    as ``jpeg:75+jpeg:95`` (a stand-in that moves own images at least as far) and found belonging; a
    real picture so saved stays not belonging."""
    gen = load_model("dcgan-fmnist")
    own = generate_pil(gen, 1, 1000)[0]
    real = Image.open(real_samples(2, "fmnist-test")[1]).convert("L")

    def twice(image: Image.Image) -> bytes:
        return _jpeg(Image.open(io.BytesIO(_jpeg(image, 75))).convert("L"), 95)

    r, _ = _attribute(twice(own), "dcgan-fmnist")
    assert r.detection["suggested"] == "jpeg:75+jpeg:95" and r.edit_source == "stand-in"
    assert r.verdict == "belonging", r.reasons
    assert _attribute(twice(real), "dcgan-fmnist")[0].verdict == "non-belonging"


def test_without_edited_distributions_the_pristine_sample_stands_in(monkeypatch):
    """Where no edited distribution of the model is here (the cache lists none), an edited file is
    tested as if unedited; an own image's rejection is the edit's doing (inconclusive), a real
    picture's loss lies far beyond what the edit does to the model's own images (not belonging holds)."""
    monkeypatch.setattr(studio, "cached_edits", lambda model: [])
    gen = load_model("dcgan-fmnist-seed1")
    own = generate_pil(gen, 1, 1000)[0]
    real = Image.open(real_samples(2, "fmnist-test")[1]).convert("L")
    for image, verdict in ((own, "inconclusive"), (real, "non-belonging")):
        r, caveats = _attribute(_jpeg(image, 85), "dcgan-fmnist-seed1")
        assert r.edit == "none" and r.edit_source == "stand-in"
        assert r.verdict == verdict and r.test_verdict == "non-belonging"
        assert any("as if unedited" in c for c in caveats)


def test_which_model_does_not_reject_an_edited_own_image_tested_as_if_unedited():
    """Which model? with no builds: an own image of dcgan-fmnist-seed1 re-saved as JPEG q85 (no edited
    distribution of that model is here) is tested as if unedited; the rejection does not hold, so the
    answer is inconclusive for it, never "none of these"."""
    from ronan.which_model import which_model

    own = generate_pil(load_model("dcgan-fmnist-seed1"), 1, 1000)[0]
    res = which_model(_jpeg(own, 85), ["dcgan-fmnist-seed1"], build_calibration=False)
    (r,) = res.attributions
    assert r.test_verdict == "non-belonging" and r.verdict == "inconclusive" and r.edit_source == "stand-in"
    assert res.inconclusive and res.answer == "inconclusive for dcgan-fmnist-seed1; no model accepts it"
    assert any("else as if unedited" in c for c in res.caveats)


def test_a_batch_on_a_server_that_does_not_build_uses_the_same_stand_ins():
    """The app's batch (no builds): edited files are no longer error rows; each is tested against its
    stand-in and judged as a single attribution is (a pristine file against the pristine sample)."""
    from ronan.batch import BatchItem

    gen = load_model("dcgan-fmnist")
    own = generate_pil(gen, 2, 1000)
    real = Image.open(real_samples(2, "fmnist-test")[1]).convert("L")
    png = io.BytesIO()
    own[0].save(png, "PNG")
    items = [BatchItem("own.png", None, png.getvalue()), BatchItem("own85.jpg", None, _jpeg(own[0], 85)),
             BatchItem("real85.jpg", None, _jpeg(real, 85)), BatchItem("own20.jpg", None, _jpeg(own[1], 20))]
    out = list(studio.run_batch(items, "dcgan-fmnist", build_calibration=False))[-1]
    rows = {r["image"]: r for r in out.rows}
    assert not any(r["error"] for r in rows.values()), rows
    assert [rows[n]["verdict"] for n in ("own.png", "own85.jpg", "real85.jpg", "own20.jpg")] == [
        "belonging", "belonging", "non-belonging", "inconclusive"]
    single, _ = _attribute(_jpeg(own[0], 85), "dcgan-fmnist")
    assert rows["own85.jpg"]["edit"] == single.edit == "jpeg:75" and rows["own85.jpg"]["edit_source"] == "stand-in"
    assert rows["own85.jpg"]["loss"] == pytest.approx(single.loss, rel=0.02)  # batch rounding: README, "Inversion engine"


def test_the_apps_which_model_uses_each_models_stand_in():
    """studio.run_which_model (the app's tab): an own dcgan-fmnist image re-saved at q85 is tested on
    dcgan-fmnist against its committed q75 and found made by it; every other model is tested against
    its own stand-in (an edit of the same kind, else the unedited sample)."""
    own = generate_pil(load_model("dcgan-fmnist"), 1, 1000)[0]
    out = list(studio.run_which_model(_jpeg(own, 85)))[-1]
    by = {a.model: a for a in out.attributions}
    assert out.best == "dcgan-fmnist", out.answer
    assert by["dcgan-fmnist"].edit == "jpeg:75" and by["dcgan-fmnist"].edit_source == "stand-in"
    assert all(a.edit_source == "stand-in" for a in out.attributions)
    assert any("tested against a stand-in there" in c for c in out.caveats)
