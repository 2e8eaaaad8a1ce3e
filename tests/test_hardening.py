"""Issue 12 (hardening): bounded work per request, bounded memory, trusted caches, no traceback.

One test (or parametrized corpus) per item of the issue; tiny models, loopback only, bounded loops.
The bad-input corpus :data:`BAD_CLI` runs every refused input through the CLI entry point and
expects exit status 2 and exactly one ``error:`` line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, SAMPLES
from ronan import limits
from ronan.calibration import (BelongingDistribution, build_distribution, cache_path, get_distribution,
                               load_distribution, save_distribution)
from ronan.cli import main
from ronan.errors import CalibrationError, DeviceUnavailable, ImageError, RonanError
from ronan.images import load_image
from ronan.inversion import InversionSettings, resolve_settings
from ronan.limits import LimitExceeded

REAL = str(SAMPLES / "fmnist-test" / "0000.png")
SETTINGS = InversionSettings(steps=20, lr=0.1, restarts=1, plateau_steps=0)


def env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **extra)


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> str:
    """A 203 KB PNG declaring 7999x7999 pixels (the issue's upload)."""
    path = tmp_path_factory.mktemp("huge") / "bomb.png"
    Image.new("RGB", (7999, 7999), (90, 120, 200)).save(path)
    return str(path)


# ----------------------------------------------------------------------------- 1. bounded work

@pytest.mark.parametrize("kwargs,fragment", [
    (dict(steps=0), "steps must be at least 1"),
    (dict(steps=10**9), "steps 1000000000 exceeds the limit of 5000 (set by the operator: RONAN_MAX_STEPS)"),
    (dict(restarts=10**6), "exceeds the limit of 64 (set by the operator: RONAN_MAX_ROWS_PER_IMAGE)"),
    (dict(restarts=8, candidates=16, warmup_steps=10), "restarts x candidates (128 starting points per image)"),
    (dict(restarts=0), "restarts must be at least 1"),
    (dict(lr=float("inf")), "lr must be a finite number > 0"),
    (dict(lr=float("nan")), "lr must be a finite number > 0"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(steps=2.5), "steps must be an integer"),
])
def test_inversion_settings_are_bounded(kwargs, fragment):
    with pytest.raises(LimitExceeded) as e:
        InversionSettings(**kwargs)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RONAN_MAX_STEPS", "50")
    assert limits.current().max_steps == 50
    InversionSettings(steps=50)
    with pytest.raises(LimitExceeded, match="RONAN_MAX_STEPS"):
        resolve_settings("paper")  # a preset over the operator's limit is refused when used...
    monkeypatch.setenv("RONAN_MAX_STEPS", "many")
    with pytest.raises(RonanError, match="RONAN_MAX_STEPS='many': must be a positive integer"):
        limits.current()
    # ...and never breaks the import
    p = subprocess.run([sys.executable, "-c", "import ronan.inversion as i; print(i.PRESETS['paper'].steps)"],
                       env=env(RONAN_MAX_STEPS="10"), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "1500", p.stderr


def test_app_requests_are_refused_before_any_work(cache_tmp):
    """/calibrate with steps 10**9 or restarts 10**6 and a model as its own reference: refused at once."""
    from ronan import studio

    for kwargs, fragment in [(dict(steps=10**9), "RONAN_MAX_STEPS"), (dict(restarts=10**6), "ROWS_PER_IMAGE"),
                             (dict(reference="dcgan-fmnist"), "own reference")]:
        t0 = time.perf_counter()
        with pytest.raises(RonanError, match=fragment):
            next(studio.run_calibration("dcgan-fmnist", **kwargs))
        assert time.perf_counter() - t0 < 5
    with pytest.raises(LimitExceeded, match="RONAN_MAX_CALIBRATION_N"):
        next(studio.run_calibration("dcgan-fmnist", n=5000))
    assert not list(cache_tmp.glob("*.json"))


def test_image_count_and_batch_rows(monkeypatch, tiny_dcgan, cache_tmp):
    from ronan.attribution import attribute_batch

    monkeypatch.setenv("RONAN_MAX_IMAGES", "2")
    with pytest.raises(LimitExceeded, match="images in one request 3 exceeds the limit of 2"):
        attribute_batch([REAL] * 3, tiny_dcgan, reference=None, steps=5)
    monkeypatch.setenv("RONAN_MAX_IMAGES", "500")
    monkeypatch.setenv("RONAN_MAX_BATCH_ROWS", "4")
    assert limits.images_per_batch(2) == 2 and limits.images_per_batch(64) == 1
    with pytest.raises(LimitExceeded, match="RONAN_MAX_BATCH_ROWS"):
        attribute_batch([REAL] * 3, tiny_dcgan, reference=None, steps=5, restarts=2)
    # a belonging distribution is built in chunks that respect the bound (and its values do not depend on it)
    small = get_distribution(tiny_dcgan, None, settings=SETTINGS, n=6, seed=3)
    monkeypatch.setenv("RONAN_MAX_BATCH_ROWS", "1024")
    assert build_distribution(tiny_dcgan, None, settings=SETTINGS, n=6, seed=3).values == pytest.approx(small.values)


# ----------------------------------------------------------------------------- 2. bounded memory

def test_huge_declared_image_is_reduced_on_load(huge_png):
    li = load_image(huge_png)
    assert max(li.image.size) <= 2048 and li.original_size == (7999, 7999)
    assert li.original_format == "PNG" and li.original_mode == "RGB" and li.head[:4] == b"\x89PNG"
    assert any("reduced to 2000x2000" in n and "RONAN_MAX_SIDE" in n for n in li.notes)


def test_huge_declared_image_memory(huge_png):
    """Peak memory of loading it, in a fresh process: 732 MB before issue 12, under 400 MB now."""
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import hardening_memory as h; from ronan.images import "
            "load_image; b = h.status_kb('VmRSS'); load_image(sys.argv[1]); "
            "print((h.status_kb('VmHWM') - b) / 1024)")
    p = subprocess.run([sys.executable, "-c", code, huge_png], cwd=REPO, env=env(), capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert float(p.stdout) < 400, p.stdout


def test_jpeg_is_decoded_at_reduced_scale():
    data = png_bytes(Image.new("RGB", (6000, 4000), (10, 200, 30)), "JPEG", quality=90)
    li = load_image(data, name="big.jpg")
    assert li.image.size == (1500, 1000) and li.original_size == (6000, 4000) and li.original_format == "JPEG"


@pytest.mark.parametrize("mode", ["P", "I;16", "1", "LA"])
def test_reduction_of_every_mode(mode):
    img = Image.new("L", (4200, 2100), 128).convert(mode) if mode != "I;16" else Image.new("I;16", (4200, 2100), 3000)
    li = load_image(png_bytes(img), name=f"{mode}.png")
    assert li.image.size == (1400, 700) and li.image.mode in ("L", "RGB") and li.original_mode == mode


def test_exif_orientation_survives_the_reduction():
    img = Image.new("RGB", (4200, 2100), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    li = load_image(png_bytes(img, "JPEG", exif=exif), name="rotated.jpg")
    assert li.image.size[1] > li.image.size[0] and "EXIF orientation applied" in li.notes


def test_request_pixel_budget_and_decode_slots(monkeypatch, huge_png):
    budget = limits.PixelBudget(megapixels=100)
    load_image(huge_png, budget=budget)
    with pytest.raises(LimitExceeded, match="exceed 100 megapixels in all .*RONAN_MAX_REQUEST_MEGAPIXELS"):
        load_image(huge_png, budget=budget)
    # the process-wide decode budget: a second large decode waits for the first to finish
    monkeypatch.setenv("RONAN_DECODE_MEGAPIXELS", "1")
    order = []
    first_in = threading.Event()

    def hold(tag):
        with limits.decode_slot(800_000):
            order.append(f"{tag} in")
            first_in.set()
            time.sleep(0.3)
            order.append(f"{tag} out")

    a = threading.Thread(target=hold, args=("a",))
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=hold, args=("b",))
    b.start()
    a.join(10), b.join(10)
    assert order == ["a in", "a out", "b in", "b out"]


def _zip(tmp_path, members: dict[str, bytes]) -> str:
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def test_batch_intake_is_lazy_and_bounded(tmp_path, monkeypatch):
    from ronan.batch import collect_batch, iter_loaded

    big = png_bytes(Image.new("L", (8000, 8000), 7))  # 64 MP in a few hundred KB
    small = (SAMPLES / "fmnist-test" / "0001.png").read_bytes()
    items = collect_batch([_zip(tmp_path, {"real/a.png": big, "real/b.png": big, "real/c.png": small,
                                           "notes.txt": b"skipped"})])
    assert [it.name for it in items] == ["real/a.png", "real/b.png", "real/c.png"]
    assert all(it.source is None and it.archive for it in items)  # nothing read yet
    monkeypatch.setenv("RONAN_MAX_REQUEST_MEGAPIXELS", "100")
    chunks = list(iter_loaded(items, chunk=2))
    assert [len(c) for c in chunks] == [2, 1]
    loaded = [li for c in chunks for _, li in c]
    assert loaded[0] is not None and loaded[1] is None and loaded[2] is not None
    assert "exceed 100 megapixels" in items[1].error
    monkeypatch.setenv("RONAN_MAX_IMAGES", "2")
    with pytest.raises(LimitExceeded, match="images in one batch 3 exceeds the limit of 2"):
        collect_batch([_zip(tmp_path, {f"{i}.png": small for i in range(3)})])
    monkeypatch.setenv("RONAN_MAX_FILE_MB", "1")
    items = collect_batch([_zip(tmp_path, {"x.png": b"\0" * (2 * 2**20)})])
    assert "the limit is 1 MiB" in items[0].error


def test_a_damaged_archive_member_is_one_line_and_the_others_load(tmp_path):
    """A deflated member whose compressed data is damaged: zipfile raises zlib.error (a type its
    handler did not list) and an empty-message exception broke the message itself (IndexError)."""
    from ronan.batch import collect_batch
    from ronan.errors import first_line

    small = (SAMPLES / "fmnist-test" / "0001.png").read_bytes()
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.png", small)
        z.writestr("b.png", small)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("a.png")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # the local header's end
    data[start : start + 8] = b"\xff" * 8  # an invalid deflate block type
    path.write_bytes(bytes(data))
    items = collect_batch([path])
    with pytest.raises(ImageError, match=r"^a.png: cannot be extracted \(Error -3 while decompressing"):
        items[0].read()
    assert load_image(items[1].read(), items[1].name).image.size == (28, 28)
    assert first_line(IndexError()) == "IndexError" and first_line(ValueError("one\ntwo")) == "one"


def test_batch_with_an_edited_image_keeps_the_others(tmp_path):
    """A JPEG (edit detected) without its belonging distribution (q70) is tested against its stand-in
    (the committed q50: ronan.edits.stand_in), not turned into an error row; the PNGs keep their verdicts."""
    from ronan import studio

    jpeg = png_bytes(Image.open(SAMPLES / "fmnist-test" / "0002.png"), "JPEG", quality=70)
    items = studio.collect_batch([_zip(tmp_path, {"real/a.png": (SAMPLES / "fmnist-test" / "0001.png").read_bytes(),
                                                  "real/b.jpg": jpeg})])
    out = [ev for ev in studio.run_batch(items, "dcgan-fmnist")][-1]
    by_name = {r["image"]: r for r in out.rows}
    assert by_name["real/a.png"]["verdict"] == "non-belonging"
    assert by_name["real/b.jpg"]["verdict"] == "non-belonging" and not by_name["real/b.jpg"]["error"]
    assert (by_name["real/b.jpg"]["edit"], by_name["real/b.jpg"]["edit_source"]) == ("jpeg:50", "stand-in")
    assert (by_name["real/a.png"]["edit"], by_name["real/a.png"]["edit_source"]) == ("none", "none")


def test_a_batch_that_builds_an_edit_distribution_streams_its_progress(tmp_path, cache_tmp):
    """With build_calibration, the distributions an edited file needs (belonging and contrast, JPEG q95:
    none committed) are built before its inversions with progress events, not silently inside them."""
    from ronan import studio

    jpeg = png_bytes(Image.open(SAMPLES / "fmnist-test" / "0002.png"), "JPEG", quality=95)
    items = studio.collect_batch([_zip(tmp_path, {"real/a.png": (SAMPLES / "fmnist-test" / "0001.png").read_bytes(),
                                                  "real/b.jpg": jpeg})])
    events = list(studio.run_batch(items, "dcgan-fmnist", reference=None, build_calibration=True))
    roles = [ev.phase for ev in events[:-1]]
    builds = [ev.message for ev in events[:-1] if ev.phase == "calibration"]
    assert any("belonging distribution" in m for m in builds) and any("contrast distribution" in m for m in builds)
    last_build = max(i for i, r in enumerate(roles) if r == "calibration")
    assert "model" in roles[last_build:]  # the edited image's inversion comes after its builds
    assert sorted(f.name.split("__")[3] for f in cache_tmp.glob("*.json")) == ["jpeg95", "jpeg95"]
    by_name = {r["image"]: r for r in events[-1].rows}
    assert by_name["real/b.jpg"]["verdict"] != "error" and by_name["real/a.png"]["verdict"] == "non-belonging"
    fractions = [ev.fraction for ev in events[:-1]]
    assert fractions == sorted(fractions)


def test_float_tiff_with_nan_and_inf_has_a_note_and_no_warning():
    arr = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    arr[0, :3] = np.nan
    arr[1, :2] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        li = load_image(png_bytes(Image.fromarray(arr, "F"), "TIFF"), name="f.tif")
    out = np.asarray(li.image)
    assert any("5 pixel values not finite" in n for n in li.notes)
    assert out[0, 0] == 0 and out[1, 0] == 255
    all_nan = np.full((16, 16), np.nan, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.asarray(load_image(png_bytes(Image.fromarray(all_nan, "F"), "TIFF")).image).max() == 0


# ----------------------------------------------------------------------------- 3. caches that can be trusted

@pytest.fixture
def tiny_dist(tiny_dcgan, cache_tmp) -> tuple[BelongingDistribution, object]:
    torch.manual_seed(99)
    from ronan.models.dcgan import DCGAN

    ref = DCGAN(latent_dim=8, base=8)
    ref.name, ref.weights_sha256 = "tiny-ref", "1" * 64
    ref = ref.freeze()
    return get_distribution(tiny_dcgan, ref, settings=SETTINGS, n=5, seed=0), ref


def _damage(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _scaled_values(d):  # the attack: values x 1e5 with recomputed mean/std
    d["values"] = [v * 1e5 for v in d["values"]]
    d["mean"], d["std"] = float(np.mean(d["values"])), float(np.std(d["values"], ddof=1))


@pytest.mark.parametrize("change,fragment", [
    (_scaled_values, "values do not equal losses / reference_losses (Eq. 2)"),
    (lambda d: d.update(n="5"), "field n has the wrong type (str: '5')"),
    (lambda d: d.update(values=["a"] * 5), "field values has the wrong type"),
    (lambda d: d.update(mean="x"), "field mean has the wrong type"),
    (lambda d: d.update(losses=None), "field losses has the wrong type"),
    (lambda d: d.update(settings=[1]), "field settings has the wrong type"),
    (lambda d: d.update(reference_losses=None), "reference_losses must be given exactly when there is a reference"),
    (lambda d: d.update(sample_settled=[1, 0, 1, 1, 1]), "field sample_settled has the wrong type"),
    (lambda d: d.update(n=True), "field n has the wrong type"),
    (lambda d: d.pop("values"), "incomplete (missing values)"),
    (lambda d: d.update(losses=d["losses"][:4]), "4 losses for n=5"),
])
def test_damaged_cache_is_one_line(tiny_dist, change, fragment):
    dist, _ = tiny_dist
    path = cache_path(dist.key())
    _damage(path, change)
    with pytest.raises(CalibrationError) as e:
        load_distribution(path, dist.key())
    assert fragment in str(e.value) and path.name in str(e.value) and "\n" not in str(e.value)


def test_cache_that_is_not_an_object(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    with pytest.raises(CalibrationError, match="must be a JSON object"):
        load_distribution(p)


def test_damaged_cache_is_reported_set_aside_and_rebuilt(tiny_dist, tiny_dcgan, caplog):
    dist, ref = tiny_dist
    path = cache_path(dist.key())
    _damage(path, _scaled_values)
    with pytest.raises(CalibrationError, match="Eq. 2"):  # --no-rebuild: refused, with the damage
        get_distribution(tiny_dcgan, ref, settings=SETTINGS, n=5, seed=0, build=False)
    aside = path.with_name(path.name + ".damaged")
    assert aside.exists() and not path.exists()
    aside.replace(path)
    with caplog.at_level(logging.WARNING, logger="ronan"):
        again = get_distribution(tiny_dcgan, ref, settings=SETTINGS, n=5, seed=0)
    assert [r for r in caplog.records if path.name in r.getMessage() and "kept as" in r.getMessage()]
    assert again.values == pytest.approx(dist.values) and aside.exists()
    assert load_distribution(path, dist.key()).values == again.values


def test_first_valid_cache_in_reading_order_is_used(tiny_dist, tiny_dcgan, tmp_path, monkeypatch):
    dist, ref = tiny_dist
    good = cache_path(dist.key())
    other = tmp_path / "first"
    other.mkdir()
    (other / good.name).write_text("{damaged")
    from ronan import paths

    monkeypatch.setattr(paths, "cache_read_dirs", lambda: [other, good.parent])
    got = get_distribution(tiny_dcgan, ref, settings=SETTINGS, n=5, seed=0, build=False)
    assert got.created == dist.created and (other / (good.name + ".damaged")).exists()


def test_cache_files_permissions_and_stale_temp_files(tiny_dist):
    dist, _ = tiny_dist
    folder = cache_path(dist.key()).parent
    old, fresh = folder / ".tmp-old.json", folder / ".tmp-fresh.json"
    old.write_text("{"), fresh.write_text("{")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    umask = os.umask(0o022)
    try:
        path = save_distribution(dist)
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        assert save_distribution(dist).stat().st_mode & 0o777 == 0o600  # the umask is respected
    finally:
        os.umask(umask)
    assert not old.exists() and fresh.exists()


def test_model_is_never_its_own_reference(tiny_dcgan, cache_tmp):
    from ronan.models.dcgan import DCGAN

    twin = DCGAN(latent_dim=8, base=8, channels=1, image_size=28)
    twin.load_state_dict(tiny_dcgan.state_dict())
    twin.name, twin.weights_sha256 = "renamed-copy", tiny_dcgan.weights_sha256
    for ref in (tiny_dcgan, twin.freeze()):
        for fn in (get_distribution, build_distribution):
            with pytest.raises(CalibrationError, match="cannot be its own reference"):
                fn(tiny_dcgan, ref, settings=SETTINGS, n=5)
    assert not list(cache_tmp.glob("*.json"))


def test_which_model_survives_a_damaged_cache(tmp_path, monkeypatch, caplog):
    """A wrong-typed cache no longer aborts which-model: it is set aside and the committed one is used."""
    from ronan.calibration import distribution_key
    from ronan.models.registry import load_model
    from ronan.which_model import which_model

    monkeypatch.setenv("RONAN_CACHE_DIR", str(tmp_path))
    gen, ref = load_model("dcgan-fmnist"), load_model("ref-photos")
    key = distribution_key(gen, ref, "mse", resolve_settings(), 100, 0)
    committed = REPO / "calibration_cache" / cache_path(key).name
    assert committed.exists()
    data = json.loads(committed.read_text())
    data["n"] = "100"
    cache_path(key).write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="ronan"):
        res = which_model(REAL, ["dcgan-fmnist"], build_calibration=False)
    assert not res.errors and res.attributions[0].verdict == "non-belonging"
    assert any("field n has the wrong type" in r.getMessage() for r in caplog.records)


def test_which_model_lists_models_whose_weights_fail_their_hash(models_tmp, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    import ronan
    from ronan import which_model as wm

    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_file(TinyGen().state_dict(), str(weights))
    card = ronan.register_model("tiny-hash", factory="test_hardening:TinyGen", weights=weights, input_shape=[8],
                                output_range=[-1, 1])
    stored = card.parent / "model.safetensors"
    stored.write_bytes(stored.read_bytes()[:-4] + b"\0\0\0\0")  # weights replaced after registration
    assert "does not match the SHA-256" in wm.failed_candidates(16, 1)["tiny-hash"]
    monkeypatch.setattr(wm, "candidate_models", lambda *a, **k: [])  # no other model needs to run here
    res = wm.which_model(load_image(Image.new("L", (16, 16), 3)), build_calibration=False)
    assert "does not match the SHA-256" in res.errors["tiny-hash"] and res.answer == wm.NONE_ANSWER


class TinyGen(torch.nn.Module):
    """z[B, 8] -> [B, 1, 16, 16] in [-1, 1] (a user's model for the which-model test)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 256), torch.nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, 1, 16, 16)


# ----------------------------------------------------------------------------- 5. numbers at the edges

@pytest.mark.parametrize("alpha", [0.05, 1e-15, 1e-300, 5e-324])
def test_critical_value_is_finite_for_any_alpha(alpha):
    from ronan.stats import esd_outliers, grubbs_critical_value

    for n in (3, 5, 100, 1000):
        c = grubbs_critical_value(n, alpha)
        assert np.isfinite(c) and 0 < c <= (n - 1) / np.sqrt(n) + 1e-12
    assert esd_outliers([1, 1.1, 0.9, 1.05, 0.95, 10, 1.02, 0.98], alpha) in ([5], [])


def test_tiny_alpha_is_a_finite_verdict(capsys):
    assert main(["attribute", "dcgan-fmnist", REAL, "--alpha", "1e-15", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["critical_value"] is not None and row["verdict"] == "non-belonging"


def test_seeds_are_checked_before_any_work():
    assert limits.check_seed(2**63 - 1) == 2**63 - 1
    for bad in (2**63, 2**64, -1, 1.5, "3", True):
        with pytest.raises(LimitExceeded):
            limits.check_seed(bad)
    from ronan.attribution import attribute

    with pytest.raises(LimitExceeded, match="seed must be between 0 and 2\\*\\*63 - 1"):
        attribute(REAL, "dcgan-fmnist", seed=2**64)


# ----------------------------------------------------------------------------- 6. one line, never a traceback

BIG = str(2**64)
BAD_CLI = [
    (["attribute", "dcgan-fmnist", REAL, "--device", "cuda"], "device cuda is not available here"),
    (["attribute", "dcgan-fmnist", REAL, "--device", "cuda:3"], "device cuda:3 is not available here"),
    (["attribute", "dcgan-fmnist", REAL, "--device", "mps"], "device mps is not available here"),
    (["attribute", "dcgan-fmnist", REAL, "--device", "foo"], "unknown device 'foo'"),
    (["attribute", "dcgan-fmnist", REAL, "--device", "meta"], "device meta is not supported"),
    (["generate", "dcgan-fmnist", "--out", "{tmp}", "--device", "cuda"], "not available here"),
    (["attribute", "dcgan-fmnist", REAL, "--threads", "-1"], "--threads must be between 0"),
    (["attribute", "dcgan-fmnist", REAL, "--threads", "100000"], "--threads must be between 0"),
    (["attribute", "dcgan-fmnist", REAL, "--lr", "inf"], "lr must be a finite number > 0"),
    (["attribute", "dcgan-fmnist", REAL, "--lr", "nan"], "lr must be a finite number > 0"),
    (["attribute", "dcgan-fmnist", REAL, "--lr", "-1"], "lr must be a finite number > 0"),
    (["attribute", "dcgan-fmnist", REAL, "--steps", "0"], "steps must be at least 1"),
    (["attribute", "dcgan-fmnist", REAL, "--steps", "1000000000"], "RONAN_MAX_STEPS"),
    (["attribute", "dcgan-fmnist", REAL, "--restarts", "1000000"], "RONAN_MAX_ROWS_PER_IMAGE"),
    (["attribute", "dcgan-fmnist", REAL, "--restarts", "0"], "restarts must be at least 1"),
    (["attribute", "dcgan-fmnist", REAL, "--seed", BIG], "--seed must be between 0 and 2**63 - 1"),
    (["attribute", "dcgan-fmnist", REAL, "--seed", "-1"], "--seed must be between 0 and 2**63 - 1"),
    (["attribute", "dcgan-fmnist", REAL, "--calibration-seed", BIG], "--calibration-seed must be between"),
    (["attribute", "dcgan-fmnist", REAL, "--calibration-n", "2"], "--calibration-n must be at least 3"),
    (["attribute", "dcgan-fmnist", REAL, "--calibration-n", "1000000"], "RONAN_MAX_CALIBRATION_N"),
    (["attribute", "dcgan-fmnist", REAL, "--alpha", "0"], "--alpha must be between 0 and 1"),
    (["attribute", "dcgan-fmnist", REAL, "--alpha", "nan"], "--alpha must be between 0 and 1"),
    (["attribute", "dcgan-fmnist", REAL, "--reference", "dcgan-fmnist"], "cannot be its own reference"),
    (["attribute", "dcgan-fmnist", REAL, "--steps", "20", "--no-rebuild"], "no belonging distribution"),
    (["attribute", "dcgan-fmnist", REAL, "--distance", "mse", "--assume-edit", "jpeg:500"], "jpeg"),
    (["calibrate", "dcgan-fmnist", "--reference", "dcgan-fmnist"], "cannot be its own reference"),
    (["calibrate", "dcgan-fmnist", "--n", "5000"], "RONAN_MAX_CALIBRATION_N"),
    (["calibrate", "dcgan-fmnist", "--steps", "20", "--no-rebuild"], "no belonging distribution"),
    (["generate", "dcgan-fmnist", "--out", "{tmp}", "--seed", BIG], "--seed must be between"),
    (["generate", "dcgan-fmnist", "--out", "{tmp}", "--n", "0"], "--n must be between 1 and 10000"),
    (["evaluate", "dcgan-fmnist", "--belonging", "generate:dcgan-fmnist", "--non-belonging", "{tmp}", "--n", "0"],
     "--n must be at least 1"),
    (["evaluate", "dcgan-fmnist", "--belonging", "generate:dcgan-fmnist", "--non-belonging", "{tmp}", "--n",
      "100000"], "RONAN_MAX_IMAGES"),
    (["evaluate", "dcgan-fmnist", "--belonging", "{tmp}/none", "--non-belonging", "{tmp}", "--n", "2"],
     "not a folder"),
    (["download", "dcgan-fmnist"], "nothing to download"),
    (["attribute", "dcgan-fmnist", "{tmp}/missing\nname.png"], "missing\\nname.png: file not found"),
]


@pytest.mark.parametrize("argv,fragment", BAD_CLI, ids=[" ".join(a[2:] if a[0] != "generate" else a[:1] + a[-2:])
                                                         for a, _ in BAD_CLI])
def test_bad_input_corpus(argv, fragment, tmp_path, capsys, cache_tmp):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert not any("Traceback" in line for line in err)
    assert not list(cache_tmp.glob("*.json"))  # refused before any work


def test_operator_limits_reach_the_cli(monkeypatch, capsys):
    monkeypatch.setenv("RONAN_MAX_IMAGES", "2")
    assert main(["attribute", "dcgan-fmnist", REAL, REAL, REAL]) == 2
    assert "images in one call 3 exceeds the limit of 2 (set by the operator: RONAN_MAX_IMAGES)" in \
        capsys.readouterr().err
    monkeypatch.setenv("RONAN_MAX_STEPS", "abc")
    assert main(["attribute", "dcgan-fmnist", REAL]) == 2
    assert capsys.readouterr().err.strip() == "error: RONAN_MAX_STEPS='abc': must be a positive integer"


def test_resolve_device_errors_are_one_line():
    from ronan.models.registry import resolve_device

    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceUnavailable, match="^unknown device 'gpu0'; use cpu, cuda, mps or auto$"):
        resolve_device("gpu0")


def _pipe_into_head(args: list[str], lines: int) -> subprocess.CompletedProcess:
    cmd = f"{sys.executable} -m ronan {' '.join(args)} | head -{lines}"
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args", [["models"], ["attribute", "dcgan-fmnist", REAL, REAL, "--json"]])
def test_output_piped_into_head_ends_quietly(args):
    p = _pipe_into_head(args, 3)
    assert len(p.stdout.splitlines()) == 3
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr and "Exception ignored" not in p.stderr
    assert p.returncode == 0, p.stderr


def test_download_from_a_server_that_never_answers(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    held, done = [], threading.Event()

    def accept():  # accept and never answer, until the test ends (bounded loop)
        deadline = time.time() + 120
        while not done.is_set() and time.time() < deadline:
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "ronan", "download", "ddpm-cifar10"], cwd=REPO, capture_output=True,
                           text=True, timeout=120,
                           env=env(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_OFFLINE="0",
                                   HF_HUB_CACHE=str(tmp_path / "hf"), RONAN_DOWNLOAD_TIMEOUT="1"))
    finally:
        done.set()
        t.join(5)
        for c in held:
            c.close()
        server.close()
    assert p.returncode == 2 and time.perf_counter() - t0 < 90
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no answer within 1 s" in errors[0] and "Traceback" not in p.stderr, p.stderr
    assert held  # it did reach the loopback server


# ----------------------------------------------------------------------------- 7. smaller ones

def test_newline_in_a_file_name_stays_on_one_line(tmp_path, capsys):
    odd = tmp_path / "a\nb\x1b[31m.png"
    odd.write_bytes((SAMPLES / "fmnist-test" / "0000.png").read_bytes())
    assert main(["attribute", "dcgan-fmnist", str(odd)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(str(tmp_path) + "/a\\nb\\x1b[31m.png: NON-BELONGING")


def test_precision_on_cpu_is_ignored_with_a_note_and_same_cache(capsys, cache_tmp):
    assert main(["attribute", "dcgan-fmnist", REAL, "--precision", "bf16", "--json"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)[0]
    assert row["settings"]["precision"] == "fp32" and not list(cache_tmp.glob("*.json"))  # the committed cache
    assert "note: --precision bf16 has no effect on cpu" in captured.err


def test_threads_zero_warns(capsys):
    assert main(["attribute", "dcgan-fmnist", REAL, "--threads", "0"]) == 0
    assert "warning: --threads 0 keeps torch's default thread count" in capsys.readouterr().err
    torch.set_num_threads(1)


def test_float_tiff_through_the_cli(tmp_path, capsys):
    arr = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    arr[0, :4] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(arr, "F").save(path)
    assert main(["attribute", "dcgan-fmnist", str(path)]) == 0
    captured = capsys.readouterr()
    assert "note: 4 pixel values not finite" in captured.out and "Warning" not in captured.err


def test_damaged_cache_through_the_cli(cache_tmp, capsys):
    args = ["calibrate", "dcgan-fmnist", "--n", "5", "--preset", "paper", "--steps", "10", "--json"]
    assert main(args) == 0
    path = next(cache_tmp.glob("dcgan-fmnist__*.json"))
    _damage(path, _scaled_values)
    assert main(args + ["--no-rebuild"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("warning: damaged: calibration file " + path.name)]
    assert err[-1].startswith("error: calibration file " + path.name) and "Eq. 2" in err[-1]
    path.with_name(path.name + ".damaged").replace(path)
    assert main(args) == 0  # rebuilt, with a warning naming the file
    err = capsys.readouterr().err
    assert f"warning: damaged: calibration file {path.name}" in err and "kept as" in err
    assert load_distribution(path).n == 5


def test_models_lists_aligned_columns_without_torch():
    code = ("import sys, io, contextlib; from ronan.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out: main(['models'])\n"
            "print(out.getvalue()); print('torch' in sys.modules, 'scipy' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "False False", p.stderr
    table = [line for line in lines[:-1] if line.strip()]
    assert len({line.index(" ref=") for line in table}) == 1  # one column, whatever the source and family
    assert len({line.index(" bundled ") if " bundled " in line else line.index(" hub ") if " hub " in line else
                line.index(" user ") for line in table}) == 1


def test_evaluate_says_what_it_does_and_caps_folders(tmp_path, real_images):
    folder = tmp_path / "real"
    folder.mkdir()
    for p in real_images[:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    p = subprocess.run([sys.executable, "-m", "ronan", "evaluate", "dcgan-fmnist", "--belonging",
                        "generate:dcgan-fmnist", "--non-belonging", str(folder), "--n", "2", "--json"],
                       cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["n_belonging"] == 2 and res["n_non_belonging"] == 2
    err = p.stderr
    assert err.index("evaluate: loading dcgan-fmnist") < err.index("evaluate: generating 2 images with dcgan-fmnist")
    assert f"{folder}: 2 of its 6 images, chosen at random with seed 0" in err
