"""Edits: specs, exact application, the differentiable twin, file detection (tiny images)."""

import io
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps, features

from conftest import SAMPLES

from ronan.edits import (FILTERS, ROBUST_FAMILY, Edit, EditError, apply_batch, detect, parse_edit,
                         suggested_edit)
from ronan.edits.jpeg import ijg_tables, jpeg_roundtrip
from ronan.edits.resample import fit_resize, pil_resize
from ronan.errors import ImageError, RonanError
from ronan.images import to_model_tensor, to_pil

ALL_EDITS = ["none", "jpeg:90", "jpeg:75", "jpeg:50:444", "jpeg:95:422", "resize:0.5", "resize:0.75", "resize:1.5",
             "crop:0.8", "noise:0.01", "filter:contrast", "filter:warm", "filter:blur", "filter:sharpen",
             "resize:0.75+jpeg:75", "crop:0.9+filter:warm+jpeg:90"]
if features.check("webp"):
    ALL_EDITS += ["webp:80", "resize:0.5+webp:50"]


def smooth_batch(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Generator-like images in [0, 1]: smooth shapes plus a little noise, float32."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, channels, size // 6 + 2, size // 6 + 2, generator=g, dtype=torch.float64)
    x = torch.nn.functional.interpolate(base, size=(size, size), mode="bicubic", align_corners=False)
    x = 0.5 + 0.25 * x + 0.01 * torch.randn(n, channels, size, size, generator=g, dtype=torch.float64)
    return x.clamp(0, 1).float()


def noise_image(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


# ------------------------------------------------------------------------------ specs
@pytest.mark.parametrize("text, canonical", [
    ("none", "none"), (" NONE ", "none"), ("jpeg:75", "jpeg:75"), ("JPEG:75:420", "jpeg:75"),
    ("jpeg:90:444", "jpeg:90:444"), ("jpeg:100:422", "jpeg:100:422"), ("resize:0.50", "resize:0.5"),
    ("resize:1", "none"), ("crop:1", "none"), ("noise:0", "none"), ("noise:0.010", "noise:0.01"),
    ("resize:0.7142857", "resize:0.714286"), ("filter:Contrast", "filter:contrast"),
    ("resize:0.5 + jpeg:75", "resize:0.5+jpeg:75"), ("none+jpeg:75", "jpeg:75"),
    ("crop:0.9+filter:warm+jpeg:90", "crop:0.9+filter:warm+jpeg:90"), ("WebP:0", "webp:0"),
    ("resize:0.5+webp:100", "resize:0.5+webp:100"),
])
def test_parse_canonical_round_trip(text, canonical):
    edit = parse_edit(text)
    assert edit.spec == canonical == str(edit)
    assert parse_edit(edit.spec) == edit and parse_edit(edit) is edit
    assert edit.is_none == (canonical == "none")


def test_to_dict_is_stable_json_for_every_spelling():
    a, b = parse_edit("JPEG:75:420 + resize:0.50"), parse_edit("jpeg:75+resize:0.5")
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    d = a.to_dict()
    assert d["spec"] == "jpeg:75+resize:0.5" and d["version"] >= 1
    assert d["steps"] == [{"op": "jpeg", "quality": 75, "subsampling": "4:2:0"},
                          {"op": "resize", "factor": 0.5, "filter": "bicubic"}]
    assert parse_edit("filter:blur").to_dict()["steps"][0]["definition"] == FILTERS["blur"]
    assert parse_edit("none").to_dict() == {"spec": "none", "version": d["version"], "steps": []}


@pytest.mark.parametrize("text", ["", "   ", "jpeg", "jpeg:0", "jpeg:101", "jpeg:75.5", "jpeg:75:411", "jpeg:75:420:1",
                                  "resize:0", "resize:-1", "resize:4.5", "resize:x", "resize:nan", "resize:inf",
                                  "crop:0.3", "crop:1.2", "noise:0.6", "noise:-0.1", "filter:sepia", "filter",
                                  "webp", "webp:101", "webp:-1", "webp:80.5", "webp:80:420", "blur:1", "jpeg:75+", "+jpeg:75", "none:1", 75])
def test_invalid_specs_raise_one_line_error_naming_the_grammar(text):
    with pytest.raises(ValueError) as info:
        parse_edit(text)
    msg = str(info.value)
    assert isinstance(info.value, EditError) and isinstance(info.value, RonanError)
    assert "\n" not in msg and msg.startswith("invalid edit ")
    assert "expected none, jpeg:Q" in msg and "webp:Q" in msg and "resize:F" in msg and "filter:contrast|warm|blur|sharpen" in msg


def test_robust_assumption_is_its_family_of_valid_edits():
    from ronan.edits.policy import resolve_edit

    assert [parse_edit(s).spec for s in ROBUST_FAMILY] == list(ROBUST_FAMILY)
    robust = resolve_edit(None, 28, 1, "robust")
    members = robust.members()
    assert [m.spec for m in members] == list(ROBUST_FAMILY) and all(m.source == "robust" for m in members)
    # each member shares the distribution of the same edit declared
    assert members[0].key("samples") == resolve_edit(None, 28, 1, ROBUST_FAMILY[0]).key("samples")
    with pytest.raises(ValueError, match="no belonging distribution of its own"):
        robust.key("samples")


# ------------------------------------------------------------------- exact application
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_apply_sizes_modes_and_identity(mode):
    im = noise_image(28, 20, mode)
    assert np.array_equal(np.asarray(parse_edit("none").apply(im)), np.asarray(im))
    assert parse_edit("none").apply(im) is not im
    expected = {"resize:0.5": (14, 10), "resize:1.5": (42, 30), "crop:0.8": (22, 16), "jpeg:75": (28, 20),
                "noise:0.01": (28, 20), "resize:0.75+jpeg:75": (21, 15)}
    for spec, size in expected.items():
        out = parse_edit(spec).apply(im)
        assert out.size == size and out.mode == mode, spec
    for name in FILTERS:
        out = parse_edit(f"filter:{name}").apply(im)
        assert out.size == im.size and out.mode == mode
        assert not np.array_equal(np.asarray(out), np.asarray(im)), name


def test_apply_is_deterministic_and_jpeg_changes_pixels():
    im = noise_image(24, 24)
    for spec in ALL_EDITS:
        e = parse_edit(spec)
        assert np.array_equal(np.asarray(e.apply(im, seed=3)), np.asarray(e.apply(im, seed=3))), spec
    noisy = [np.asarray(parse_edit("noise:0.05").apply(im, seed=s)) for s in (0, 0, 1)]
    assert np.array_equal(noisy[0], noisy[1]) and not np.array_equal(noisy[0], noisy[2])
    assert 1.0 < np.abs(noisy[0].astype(float) - np.asarray(im)).mean() < 20.0
    jpeg = np.asarray(parse_edit("jpeg:90").apply(im)).astype(int)
    assert np.abs(jpeg - np.asarray(im)).mean() > 1.0
    # what the world does: Pillow save at that quality and reload
    ref = np.asarray(Image.open(io.BytesIO(jpeg_bytes(im, quality=90))))
    assert np.array_equal(jpeg, ref)


def test_apply_batch_quantizes_and_seeds_each_image():
    x = smooth_batch(3, 3, 16)
    e = parse_edit("noise:0.02+jpeg:80")
    out = apply_batch(x, e, seed=5)
    assert len(out) == 3 and all(p.size == (16, 16) and p.mode == "RGB" for p in out)
    for i in range(3):
        assert np.array_equal(np.asarray(out[i]), np.asarray(e.apply(to_pil(x[i]), seed=5 + i)))
    assert apply_batch(smooth_batch(1, 1, 12), "none")[0].mode == "L"
    assert parse_edit("jpeg:75").apply(noise_image(16, 16).convert("RGBA")).mode == "RGB"


# ------------------------------------------------------------ differentiable vs exact
@pytest.mark.parametrize("channels, size", [(1, 28), (3, 30)])
def test_differentiable_forward_equals_exact_path(channels, size):
    """Mean |differentiable - exact| after the model's preprocessing, on [0, 1]: 0.0 (bit-exact)
    for every edit except noise, whose differentiable version is the identity."""
    x = smooth_batch(2, channels, size, seed=channels)
    for spec in ALL_EDITS:
        e = parse_edit(spec)
        exact = torch.stack([to_model_tensor(p, size, channels) for p in apply_batch(x, e, seed=0)])
        diff = (e.differentiable(x, size) - exact).abs()
        if e.fully_differentiable or e.steps[-1].op == "webp":  # WebP: exact forward, identity backward
            assert diff.max().item() == 0.0, spec
        else:
            assert 0.002 < diff.mean().item() < 0.02, spec  # noise 0.01 left out


@pytest.mark.parametrize("spec", ALL_EDITS)
def test_differentiable_gradients_flow(spec):
    x = smooth_batch(2, 3, 16, seed=1).requires_grad_(True)
    out = parse_edit(spec).differentiable(x, 16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == x.dtype
    (out * torch.linspace(0, 1, 16)).sum().backward()
    grad = x.grad
    assert torch.isfinite(grad).all() and grad.abs().mean() > 0.1


def test_differentiable_smooth_forward_is_close():
    """quantize=False (no 8-bit rounding of pixels, float DCT): within 2 levels on average."""
    x = smooth_batch(2, 3, 32, seed=2)
    for spec in ("jpeg:75", "resize:0.75+jpeg:90", "filter:blur", "filter:contrast"):
        e = parse_edit(spec)
        gap = (e.differentiable(x, 32, quantize=False) - e.differentiable(x, 32)).abs().mean().item()
        assert gap < 2 / 255, spec


@pytest.mark.parametrize("quality", [1, 10, 50, 75, 90, 95, 100])
@pytest.mark.parametrize("mode, subsampling", [("L", None), ("RGB", "4:2:0"), ("RGB", "4:2:2"), ("RGB", "4:4:4")])
def test_jpeg_codec_is_bit_exact_with_pillow(quality, mode, subsampling):
    for w, h in ((16, 16), (21, 13)):
        im = noise_image(w, h, mode, seed=quality)
        kwargs = {"quality": quality} | ({"subsampling": subsampling} if subsampling else {})
        ref = np.asarray(Image.open(io.BytesIO(jpeg_bytes(im, **kwargs)))).astype(np.float64)
        arr = np.asarray(im, dtype=np.float64)
        v = torch.from_numpy(arr[None, None] if mode == "L" else arr.transpose(2, 0, 1)[None].copy())
        out = jpeg_roundtrip(v, quality, subsampling or "4:2:0")[0].numpy()
        assert np.array_equal(out[0] if mode == "L" else out.transpose(1, 2, 0), ref)


def test_pillow_resampling_is_reproduced():
    im = noise_image(30, 22)
    v = torch.from_numpy(np.asarray(im, dtype=np.float64).transpose(2, 0, 1)[None].copy())
    for size, name, method in (((15, 11), "bicubic", Image.Resampling.BICUBIC), ((45, 33), "bicubic",
                               Image.Resampling.BICUBIC), ((17, 9), "lanczos", Image.Resampling.LANCZOS)):
        out = pil_resize(v, size, name)[0].numpy().transpose(1, 2, 0)
        assert np.array_equal(out, np.asarray(im.resize(size, method))), size
    fit = fit_resize(v, 16)[0].numpy().transpose(1, 2, 0)
    assert np.array_equal(fit, np.asarray(ImageOps.fit(im, (16, 16), Image.Resampling.LANCZOS)))


# --------------------------------------------------------------------------- detection
@pytest.mark.parametrize("quality", [1, 20, 50, 75, 90, 95, 100])
def test_detect_jpeg_quality_and_subsampling_exactly(quality):
    im = noise_image(32, 32)
    for code, name in ((0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")):
        det = detect(jpeg_bytes(im, quality=quality, subsampling=code), 32, 3)
        assert (det.format, det.jpeg_quality, det.jpeg_table_error, det.jpeg_subsampling) == \
            ("JPEG", quality, 0.0, name)
        assert det.lossy is True and det.progressive is False
    det = detect(jpeg_bytes(im.convert("L"), quality=quality), 32, 1)
    assert (det.jpeg_quality, det.jpeg_table_error, det.jpeg_subsampling) == (quality, 0.0, None)


def test_every_libjpeg_quality_has_its_own_tables():
    assert len({np.concatenate(ijg_tables(q)).tobytes() for q in range(1, 101)}) == 100


def test_detect_png_at_model_size_suggests_none():
    buf = io.BytesIO()
    noise_image(64, 64).save(buf, "PNG")
    det = detect(buf.getvalue(), 64, 3)
    assert (det.format, det.lossy, det.resized, det.scale, det.suggested) == ("PNG", False, "no", 1.0, "none")
    assert suggested_edit(det) == Edit() and det.describe() == "PNG (lossless), 64x64 = the model's 64x64: assuming none"
    json.dumps(det.to_dict())


def test_detect_chained_suggestion_and_sentence():
    det = detect(jpeg_bytes(noise_image(48, 48), quality=75), 64, 3)
    assert (det.width, det.height, det.scale, det.resized, det.square) == (48, 48, 0.75, "down", True)
    assert suggested_edit(det).spec == "resize:0.75+jpeg:75"
    assert det.describe() == ("JPEG quality 75 (4:2:0), 48x48 = 0.75x the model's 64x64: "
                              "assuming resize:0.75+jpeg:75")
    d = det.to_dict()
    assert d["suggested"] == "resize:0.75+jpeg:75" and d["description"] == det.describe()
    # the suggestion reproduces the file's geometry from a model-size image
    assert parse_edit(det.suggested).apply(noise_image(64, 64)).size == (48, 48)
    up = detect(jpeg_bytes(noise_image(56, 56), quality=90, subsampling=0), 28, 3)
    assert (up.resized, up.suggested) == ("up", "resize:2+jpeg:90:444")
    assert detect(jpeg_bytes(noise_image(56, 56), quality=90, subsampling=0), 28, 1).suggested == "resize:2+jpeg:90"


def test_detect_size_odd_cases():
    buf = io.BytesIO()
    noise_image(100, 60).save(buf, "PNG")
    det = detect(buf.getvalue(), 64, 3)
    # a reduction snaps to 2 decimals when that gives the same pixel size (64 x 0.94 -> 60 px)
    assert det.square is False and det.scale == 60 / 64 and det.suggested == "resize:0.94"
    assert any("not square" in n for n in det.notes) and "not square" in det.describe()
    buf = io.BytesIO()
    noise_image(200, 200).save(buf, "PNG")
    det = detect(buf.getvalue(), 28, 1)
    assert det.suggested == "resize:4" and any("modelled as resize:4" in n for n in det.notes)
    buf = io.BytesIO()
    noise_image(70, 70).save(buf, "PNG")     # 2.5x a 28x28 model: the nearest enlargement of the grid (log scale)
    assert detect(buf.getvalue(), 28, 1).suggested == "resize:3"


def test_detect_foreign_tables_exif_and_in_memory_images():
    det = detect(jpeg_bytes(noise_image(32, 32), qtables="web_high"), 32, 3)
    assert det.jpeg_table_error > 0 and any("not libjpeg's" in n for n in det.notes)
    exif = Image.Exif()
    exif[0x0131], exif[0x0112] = "Adobe Photoshop 25.0", 6
    det = detect(jpeg_bytes(noise_image(40, 30), quality=85, exif=exif.tobytes()), 28, 1)
    assert (det.width, det.height) == (30, 40) and det.software == ["Software: Adobe Photoshop 25.0"]
    det = detect(jpeg_bytes(noise_image(32, 32), quality=80, progressive=True), 32, 3)
    assert det.progressive is True and "progressive" in det.describe()
    det = detect(noise_image(28, 28), 28, 1)
    assert det.format is None and det.suggested == "none" and det.describe().startswith("in-memory image")
    with pytest.raises(ImageError):
        detect(b"not an image", 28, 1)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")
def test_detect_webp_lossless_or_lossy(monkeypatch):
    """A lossless WebP is no edit; a lossy one is ``webp:Q`` at the quality its quantizers give,
    resized like a JPEG where its size is not the model's; the file ``Edit.to_file`` writes for a
    WebP edit is that WebP, and its detection gives the edit back."""
    picture = Image.open(SAMPLES / "clipart-test" / "0003.png").convert("RGB").resize((64, 64))
    buf = io.BytesIO()
    picture.save(buf, "WEBP", lossless=True)
    det = detect(buf.getvalue(), 64, 3)
    assert (det.format, det.lossy, det.suggested, det.webp_quality) == ("WEBP", False, "none", None)
    data, ext = parse_edit("webp:80").to_file(picture)
    det = detect(data, 64, 3)
    assert (ext, det.format, det.lossy, det.suggested, det.webp_index_error) == (".webp", "WEBP", True, "webp:80", 0)
    assert det.describe().startswith("lossy WebP, quality about 80 (from its quantizers") and 80 in det.webp_qualities
    data, _ = parse_edit("resize:0.75+webp:50").to_file(picture)
    resize, webp = parse_edit(detect(data, 64, 3).suggested).steps  # an estimate: 49 here
    assert resize.spec == "resize:0.75" and abs(webp.quality - 50) <= 1
    # a header cut off before the pixels, with the decoded image given separately (what a loaded
    # image's head and pixels are): the same
    pixels = Image.open(io.BytesIO(data)).convert("RGB")
    assert detect(data[:60], 64, 3, pixels).suggested == detect(data, 64, 3).suggested
    # a WebP larger than the head a loaded image keeps is still read (Pillow opens none cut off)
    from ronan.edits.policy import resolve_edit
    from ronan.images import HEAD_BYTES, load_image

    buf = io.BytesIO()
    noise_image(600, 600).save(buf, "WEBP", quality=95)
    assert len(buf.getvalue()) > HEAD_BYTES
    steps = resolve_edit(load_image(buf.getvalue(), name="big.webp"), 64, 3).edit.steps
    assert [s.op for s in steps] == ["resize", "webp"] and abs(steps[1].quality - 95) <= 2
    # above WEBP_REENCODE_PIXELS the pixels are not re-encoded: the middle candidate
    monkeypatch.setattr(sys.modules["ronan.edits.detect"], "WEBP_REENCODE_PIXELS", 100 * 100)
    det = detect(buf.getvalue(), 64, 3)
    assert det.webp_quality == det.webp_qualities[len(det.webp_qualities) // 2] and 95 in det.webp_qualities


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")
def test_webp_quality_is_read_from_its_quantizers():
    """The quality of Pillow's lossy WebP files, estimated from the VP8 header's segment quantizers
    and a re-encoding of the pixels: the true quality among the candidates of every file, the estimate
    exact on most, never more than 6 off here (4 pictures x 2 sizes x 7 qualities; on 1,890 held-out
    files 71% exact, 94% within 2: benchmarks/RESULTS.md, "Lossy WebP"). A lossless file has none."""
    from ronan.edits.webp import consistent_qualities, estimate_quality, quantizers

    errors = []
    for k in (0, 1, 4, 7):
        picture = Image.open(SAMPLES / "clipart-test" / f"{k:04d}.png").convert("RGB")
        for side in (28, 64):
            for quality in (0, 5, 50, 75, 80, 90, 100):
                buf = io.BytesIO()
                picture.resize((side, side)).save(buf, "WEBP", quality=quality)
                data = buf.getvalue()
                indices = quantizers(data)
                assert indices and quality in consistent_qualities(indices)[0]
                estimate, mismatch, candidates = estimate_quality(data, Image.open(io.BytesIO(data)).convert("RGB"))
                assert mismatch == 0 and estimate in candidates and quality in candidates
                errors.append(abs(estimate - quality))
    assert max(errors) <= 6 and sum(e == 0 for e in errors) >= 0.75 * len(errors)
    buf = io.BytesIO()
    picture.save(buf, "WEBP", lossless=True)
    assert quantizers(buf.getvalue()) is None and estimate_quality(buf.getvalue(), picture) is None
    assert quantizers(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None
    # damaged headers give None or indices in range, never an exception
    rng = np.random.default_rng(0)
    for _ in range(200):
        damaged = bytearray(data[:80])
        for i in rng.integers(12, len(damaged), 4):
            damaged[i] = int(rng.integers(0, 256))
        got = quantizers(bytes(damaged))
        assert got is None or all(0 <= v <= 127 for v in got)


def test_what_no_edit_models_is_named():
    """A lossy encoding no edit models (lossy WebP, JPEG in TIFF, a colour image in a 256-colour
    palette, a grayscale model's image in a palette of however many grey levels it kept) is named for
    the verdict's reason; a JPEG step models a JPEG, and a declared edit is the user's model of the file."""
    from ronan.edits.detect import grey_levels
    from ronan.edits.policy import EditAssumption, resolve_edit, unmodelled
    from ronan.images import load_image

    def assumption(data: bytes, name: str, channels: int, assume: str = "auto"):
        return resolve_edit(load_image(data, name=name), 32, channels, assume)

    def saved(image, fmt, **kw):
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        return buf.getvalue()

    rgb = noise_image(32, 32)
    gray = rgb.convert("L")
    if features.check("webp"):
        lossy = assumption(saved(rgb, "WEBP", quality=80), "a.webp", 3)
        assert lossy.spec.startswith("webp:") and unmodelled(lossy) is None  # its quality is read: modelled
        assert unmodelled(assumption(saved(rgb, "WEBP", quality=80), "a.webp", 3, "none")) is None
        # a lossy WebP whose header gives no quantizers (damaged): its quality is unknown, not modelled
        det = {"format": "WEBP", "lossy": True, "webp_quality": None, "model_channels": 3}
        assert unmodelled(EditAssumption(parse_edit("none"), "none", "", det)) == "a lossy WebP"
        # the first frame of an animation is read
        frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
        animated = saved(frames[0], "WEBP", quality=80, save_all=True, append_images=frames[1:])
        assert assumption(animated, "a.webp", 3).spec.startswith("webp:")
        assert unmodelled(assumption(saved(rgb, "WEBP", lossless=True), "a.webp", 3)) is None
        assert unmodelled(assumption(saved(rgb, "WEBP", quality=80), "a.webp", 3, "jpeg:75")) is None
    assert unmodelled(assumption(saved(rgb, "GIF"), "a.gif", 3)) == "a GIF (at most 256 colours)"
    # a grayscale model's palette image: how many grey levels it kept is what bounds a rejection
    levels = grey_levels(gray)  # those of 99% of its pixels
    assert 200 < levels <= len(gray.getcolors(256)) and unmodelled(assumption(saved(gray, "GIF"), "a.gif", 1)) == f"a GIF of {levels} grey levels"
    six = assumption(saved(gray.quantize(6), "PNG"), "a.png", 1)
    assert six.detection["grey_levels"] == 6 and unmodelled(six) == "a palette image of 6 grey levels"
    assert assumption(saved(rgb.convert("P"), "PNG"), "a.png", 3).detection["grey_levels"] is None  # colour model
    assert unmodelled(assumption(saved(rgb.convert("P"), "PNG"), "a.png", 3)) == "a palette image (at most 256 colours)"
    assert unmodelled(assumption(saved(rgb, "PNG"), "a.png", 3)) is None
    assert unmodelled(assumption(saved(gray, "PNG"), "a.png", 3)) == "a grayscale file of a colour model"
    assert unmodelled(assumption(saved(gray, "PNG"), "a.png", 1)) is None
    assert unmodelled(assumption(saved(rgb, "JPEG", quality=80), "a.jpg", 3)) is None  # jpeg:80 models it
    assert unmodelled(EditAssumption(parse_edit("none"), "none", "nothing")) is None


@pytest.mark.parametrize("fmt, feature", [("AVIF", "avif"), ("JPEG2000", "jpg_2000")])
def test_codecs_whose_quality_is_not_read_are_named_with_their_bits_per_pixel(fmt, feature):
    """AVIF and JPEG 2000 files reveal no quality: detection records their bits per pixel (from the
    whole file's size where it holds only the start) and the verdict's bound is named by it."""
    if not features.check(feature):
        pytest.skip(f"Pillow without {feature}")
    from ronan.edits.detect import detect
    from ronan.edits.policy import resolve_edit, unmodelled
    from ronan.images import load_image

    buf = io.BytesIO()
    noise_image(32, 32).save(buf, fmt)
    data = buf.getvalue()
    det = detect(data, 32, 3)
    assert det.format == fmt and det.lossy is None and det.bits_per_pixel == round(8 * len(data) / 32**2, 3)
    # a file's start (a loaded image's head) that Pillow cannot open: the decoded pixels stand in
    pixels = Image.open(io.BytesIO(data)).convert("RGB")
    cut = detect(data[:100], 32, 3, pixels, file_bytes=len(data))
    assert (cut.format, cut.bits_per_pixel) == (fmt, det.bits_per_pixel)
    name = {"AVIF": "an AVIF file", "JPEG2000": "a JPEG 2000 file"}[fmt]
    loaded = load_image(data, name="a")
    assert loaded.file_bytes == len(data)
    assert unmodelled(resolve_edit(loaded, 32, 3)) == f"{name} of {det.bits_per_pixel:.3g} bits per pixel"
    assert unmodelled(resolve_edit(loaded, 32, 3, "jpeg:75")) is None  # a declared edit models it


def test_an_earlier_jpeg_is_found_in_a_lossless_files_pixels():
    """A PNG made from a JPEG keeps the JPEG's quantization: re-compressing its pixels changes them
    least at the quality they had (a JPEG ghost); pixels never compressed show no such minimum. The same
    finds a JPEG saved again at a higher quality (a double JPEG), and none in a single JPEG."""
    from ronan.edits.ghost import earlier_jpeg_quality, ghost_minimum

    assert ghost_minimum(np.linspace(10.0, 0.1, 100)) is None  # only falls: never compressed
    dip = np.linspace(10.0, 0.1, 100)
    dip[74] = 0.5  # quality 75, well below what follows
    assert ghost_minimum(dip) == 75
    flat = Image.new("RGB", (300, 200), (120, 30, 200))  # JPEG barely changes it: its curve is rounding
    assert earlier_jpeg_quality(flat) is None
    own = Image.open(sorted((SAMPLES / "fmnist-test").glob("*.png"))[3]).convert("L")
    clip = Image.open(sorted((SAMPLES / "clipart-test").glob("*.png"))[2]).convert("RGB")

    def png_of_jpeg(image, quality):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        decoded = Image.open(io.BytesIO(buf.getvalue())).convert(image.mode)
        out = io.BytesIO()
        decoded.save(out, "PNG")
        return decoded, out.getvalue()

    for image, size, channels in ((own, 28, 1), (clip, 64, 3)):
        assert earlier_jpeg_quality(image) is None
        decoded, data = png_of_jpeg(image, 80)
        assert abs(earlier_jpeg_quality(decoded) - 80) <= 1
        det = detect(data, size, channels)
        assert det.lossy is False and det.suggested == f"jpeg:{det.jpeg_ghost_quality}"
        assert "an earlier JPEG about quality" in det.describe()
        plain = io.BytesIO()
        image.save(plain, "PNG")
        assert detect(plain.getvalue(), size, channels).suggested == "none"
        # a JPEG saved again at a higher quality: the earlier one is found under the file's own quality
        again, once = io.BytesIO(), io.BytesIO()
        decoded.save(again, "JPEG", quality=95)
        image.save(once, "JPEG", quality=95)
        det = detect(again.getvalue(), size, channels)
        assert abs(det.jpeg_ghost_quality - 80) <= 1 and det.suggested == f"jpeg:{det.jpeg_ghost_quality}+jpeg:95"
        assert "an earlier JPEG about quality" in det.describe()
        assert detect(once.getvalue(), size, channels).suggested == "jpeg:95"  # a single JPEG


def test_grey_levels_are_those_of_most_pixels():
    """A palette's level count ignores the few stray pixels a dithered palette puts on other colours."""
    from ronan.edits.detect import grey_levels

    image = Image.new("L", (28, 28))
    image.putdata([51 * (i % 6) for i in range(28 * 28)])  # six levels, evenly used
    for i, v in enumerate((15, 87, 36)):  # three stray pixels
        image.putpixel((i, 0), v)
    assert len(image.getcolors(256)) == 9 and grey_levels(image) == 6 and grey_levels(image, share=1.0) == 9
    assert grey_levels(None) is None


def test_default_edit_mode_follows_the_measurement():
    """Crop decides better inverted through the edit; JPEG, noise, filters with edited samples (RESULTS.md)."""
    from ronan.attribution import default_edit_mode
    from ronan.edits.policy import resolve_edit

    modes = {e: default_edit_mode(resolve_edit(None, 28, 1, e)) for e in ["crop:0.9", "jpeg:75", "noise:0.01", "none"]}
    assert modes == {"crop:0.9": "through", "jpeg:75": "samples", "noise:0.01": "samples", "none": "samples"}
