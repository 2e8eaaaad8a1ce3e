"""The app-facing services of ronan.studio, without gradio: progress, ETA, the job line, examples by tier,
what the model saw, honest batch summaries. Fast (no inversion)."""

from __future__ import annotations

import threading
import zipfile

import pytest
from PIL import Image

from ronan import gallery, studio
from ronan.images import load_image
from ronan.models.registry import ModelInfo


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_progress_never_goes_back_when_phases_interleave():
    p = studio.Progress({"model": 1.0, "reference": 1.0})
    seen = [p.update("model", 0.5), p.update("reference", 0.1), p.update("model", 0.6),
            p.update("reference", 0.05), p.update("model", 1.0), p.update("reference", 1.0)]
    assert seen == sorted(seen) and seen[-1] == 1.0
    build = studio.Progress({"calibration-model": 10.0, "model": 1.0})
    assert build.update("calibration-model", 1.0) == pytest.approx(10 / 11)
    assert build.update("model", 0.0) == pytest.approx(10 / 11)  # the query phase does not restart the bar


def test_eta_counts_down_and_is_revised_only_when_clearly_wrong():
    clock = Clock()
    eta = studio.Eta(prior=20.0, clock=clock)
    assert eta.update(0.0) == pytest.approx(20.0)  # before any progress: the prior
    clock.t = 5.0
    assert eta.update(0.5) == pytest.approx(5.0)  # elapsed 5 s at 50%: 5 s left (lower: followed at once)
    clock.t = 6.0
    assert eta.update(0.52) == pytest.approx(4.0)  # raw 5.5 s: a small rise is not shown, the countdown goes on
    assert not eta.revised
    clock.t = 7.0
    assert eta.update(0.1) > 40 and eta.revised  # far off (raw 63 s): revised upwards, and says so
    assert eta.update(1.0) == 0.0
    assert studio.fmt_eta(None) == "unknown yet" and studio.fmt_eta(0.4) == "a moment"
    assert studio.fmt_eta(12.2) == "about 12 s" and studio.fmt_eta(150) == "about 2 min"


def test_job_line_positions_stop_while_waiting_and_bounds():
    line = studio.JobLine(max_waiting=2)
    a = line.join("alice", "attribute")
    assert line.wait(a, 0)
    b, c = line.join("bob", "attribute"), line.join("carol", "attribute")
    with pytest.raises(studio.QueueFull):
        line.join("dave", "attribute")
    assert not line.wait(b, 0.01)
    line.touch(a, remaining=3.0)
    assert line.ahead(b) == (1, pytest.approx(3.0))
    n, secs = line.ahead(c)
    assert n == 2 and secs == pytest.approx(3.0 + b.estimate)
    assert line.stop("bob") == 1 and b.stopped  # a waiting job leaves the line at once
    assert line.ahead(c)[0] == 1 and not line.wait(b, 0)
    line.leave(b)
    started = threading.Event()
    t = threading.Thread(target=lambda: (line.wait(c, 5.0), started.set()))
    t.start()
    line.leave(a, finished=True)  # carol's turn comes as soon as alice leaves
    assert started.wait(2.0) and c.started is not None
    t.join()
    line.leave(c)
    assert len(line) == 0 and line.stop("carol") == 0
    d, e = line.join("dave", "attribute"), line.join("erin", "attribute")
    assert line.wait(d, 0) and line.stop_all() == 2 and d.stopped and e.stopped
    assert len(line) == 1  # the running job stays until it leaves; the waiting one is gone
    line.leave(d)
    assert len(line) == 0 and line.stop_all() == 0


def test_job_line_drops_jobs_nobody_polls():
    line = studio.JobLine(stale_s=0.05)
    gone = line.join("tab-closed", "attribute")
    line.wait(gone, 0)  # running
    nxt = line.join("next", "attribute")
    gone.seen -= 100  # its generator stopped polling 100 s ago (running jobs have running_stale_s)
    assert line.wait(nxt, 0) is False  # a running job is trusted for running_stale_s ...
    line.running_stale_s = 0.05
    assert line.wait(nxt, 0.01)  # ... then dropped


def test_what_the_model_saw(tmp_path):
    from ronan.models.registry import load_model

    gen = load_model("dcgan-fmnist")
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (120, 80), (200, 30, 30)).save(path, quality=90)
    steps = studio.preprocessing_steps(load_image(path), gen)
    assert steps == ["upload: 120x80 RGB JPEG", "centre-cropped to 80x80", "reduced 80x80 -> 28x28 (Lanczos)",
                     "converted to grayscale (ITU-R 601-2 luma)"]
    Image.new("L", (28, 28)).save(tmp_path / "same.png")
    assert studio.preprocessing_steps(load_image(tmp_path / "same.png"), gen)[1:] == \
        ["used as is: already 28x28 grayscale"]


def test_examples_follow_the_model_tier(monkeypatch, tmp_path):
    assert studio.samples_folder(28, 1).name == "fmnist-test"
    assert studio.samples_folder(64, 3).name == "clipart-test"
    ex = studio.example_images("dcgan-fmnist", tmp_path)
    assert [e.kind for e in ex] == ["real", "real", "this", "this", "other", "other"]
    assert all(Image.open(e.path).size == (28, 28) for e in ex)
    assert {e.model for e in ex if e.kind == "other"} <= {"dcgan-fmnist-seed1", "cgan-fmnist", "vae-fmnist"}
    # a colour model (as the 64x64 tier will be): real examples from the colour sample, no grayscale models
    colour = ModelInfo("colour64", "dcgan64", 64, 3, True, None, None, "", role="reference")
    monkeypatch.setattr(gallery, "list_models", lambda: [colour])
    monkeypatch.setattr(gallery, "generate_example", lambda m, s, f: pytest.fail("no model of this tier to run"))
    ex = studio.example_images("colour64", tmp_path)
    assert [e.kind for e in ex] == ["real", "real"] and all(Image.open(e.path).size == (64, 64) for e in ex)
    assert studio.domain_text(64, 3, "emoji + clip-art train split") == "64x64 colour emoji and clip-art"
    assert studio.domain_text(28, 1, "Fashion-MNIST train") == "28x28 grayscale Fashion-MNIST clothing items"


def test_honest_batch_summary(tmp_path):
    z = tmp_path / "set.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("real/a.png", b"x")
        zf.writestr("notes.txt", "hello")
        zf.writestr("__MACOSX/._a.png", b"junk")
    assert studio.skipped_members([str(z)]) == ["notes.txt", "1 hidden or system file(s)"]
    rows = [{"image": "a.png", "verdict": "belonging"}, {"image": "b.png", "verdict": "non-belonging"},
            {"image": "c.png", "verdict": "inconclusive"}, {"image": "bad.png", "verdict": "error"}]
    assert studio.batch_summary(rows, "m", ["notes.txt"]) == (
        "Done: 3 of 4 images; 1 judged belonging to m, 1 not belonging, 1 inconclusive; 1 unreadable: bad.png; "
        "skipped: notes.txt.")


def test_builds_are_an_operator_setting(monkeypatch):
    monkeypatch.delenv("RONAN_ALLOW_BUILDS", raising=False)
    assert not studio.builds_allowed()
    monkeypatch.setenv("RONAN_ALLOW_BUILDS", "1")
    assert studio.builds_allowed()
    monkeypatch.setenv("RONAN_ALLOW_BUILDS", "0")
    assert not studio.builds_allowed()
    ok, text = studio.distribution_status("dcgan-fmnist")
    assert ok and "ready" in text
    ok, text = studio.distribution_status("dcgan-fmnist", steps=7)
    assert not ok and "does not build" in text


def test_lpips_is_offered_only_with_its_weights(monkeypatch, tmp_path):
    import ronan.distances as d

    monkeypatch.setattr(d, "alexnet_weights_path", lambda: tmp_path / "missing.pth")
    choices = {name: ok for name, ok, _ in studio.distance_choices()}
    assert choices == {"mse": True, "mae": True, "ssim": True, "lpips": False}
