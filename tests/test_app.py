"""The Gradio app on loopback, driven through gradio_client (as an API user would).

Verdict tests use the default preset and the committed calibration caches; error and stop
tests fail or stop before any long computation. Outputs of ``/attribute``: status, verdict card,
images, loss curves, histogram, JSON, report files.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app_server import running_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL = sorted((REPO / "assets" / "samples" / "fmnist-test").glob("*.png"))
MODEL = "dcgan-fmnist"
# image, model, reference, distance, preset, steps, restarts, lr, alpha, seed, build, edit, test
DEFAULTS = ("default", "mse", "fast", None, None, None, 0.05, 0, False, "auto", "robust")
STATUS, CARD, DATA, FILES = 0, 1, 5, 6


@pytest.fixture(scope="module")
def url():
    with running_app() as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


def _data(outputs) -> dict:
    return outputs[DATA]


def _generated(client, seed: int) -> str:
    return client.predict(MODEL, seed, api_name="/generate")


def test_named_endpoints(client):
    names = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/attribute", "/which_model", "/stop", "/generate", "/calibrate", "/batch"):
        assert name in names


def test_generated_image_streams_then_belonging(client):
    path = _generated(client, 11)
    job = client.submit(handle_file(path), MODEL, *DEFAULTS, api_name="/attribute")
    final = job.result(timeout=120)
    outputs = job.outputs()
    streamed = [o for o in outputs if isinstance(o[0], str) and "step" in o[0] and "Reverse-engineering" in o[0]]
    assert len(streamed) >= 3, f"expected several streamed updates, got {len(streamed)}"
    data = _data(final)
    assert data["status"] == "done"
    assert data["verdict"] == "belonging", data["explanation"]
    assert "BELONGING" in final[CARD] and "NOT BELONGING" not in final[CARD]
    a = data["attribution"]
    for key in ("statistic", "critical_value", "n_calibration", "alpha", "mean", "std", "loss", "reference_loss",
                "image_sha256", "model_sha256", "reference_sha256", "versions", "seed"):
        assert a[key] is not None, key
    files = final[FILES]
    names = [Path(f).name for f in files]
    assert any(n.endswith(".json") for n in names) and any(n.endswith(".html") for n in names)
    report = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert report["attribution"]["statistic"] == pytest.approx(a["statistic"])
    # what the investigator needs: the upload as received, the model's preprocessing, the date, the test
    assert report["upload"]["size"] == [28, 28] and report["upload"]["mode"] == "L"
    assert report["upload"]["format"] == "PNG" and report["preprocessing"][0] == "upload: 28x28 L PNG"
    assert report["created"] and report["test"]["n_kept"] + report["test"]["n_removed"] == 100
    html = Path(next(f for f in files if f.endswith(".html"))).read_text()
    assert "data:image/png;base64," in html and "BELONGING" in html and "Created <b>" in html
    assert "What the model saw" in html


def test_two_clients_at_once_real_and_generated(url):
    c1, c2 = Client(url, verbose=False), Client(url, verbose=False)
    gen_path = _generated(c1, 12)
    results = {}

    def run(name, c, path):
        results[name] = c.predict(handle_file(path), MODEL, *DEFAULTS, api_name="/attribute")

    threads = [threading.Thread(target=run, args=("generated", c1, gen_path)),
               threading.Thread(target=run, args=("real", c2, str(REAL[0])))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert set(results) == {"generated", "real"}
    assert _data(results["generated"])["verdict"] == "belonging"
    assert _data(results["real"])["verdict"] == "non-belonging"
    assert "NOT BELONGING" in results["real"][CARD]


def test_corrupt_upload_is_a_message_and_app_stays_up(client, tmp_path):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(AppError, match="not a readable image|damaged"):
        client.predict(handle_file(str(bad)), MODEL, *DEFAULTS, api_name="/attribute")
    qoi = io.BytesIO()
    Image.new("RGB", (64, 64)).save(qoi, "QOI")
    cut = tmp_path / "cut.qoi"  # Pillow's QOI decoder raises IndexError on it: still one line
    cut.write_bytes(qoi.getvalue()[: len(qoi.getvalue()) // 2])
    with pytest.raises(AppError, match="cut.qoi: image data is damaged or truncated"):
        client.predict(handle_file(str(cut)), MODEL, *DEFAULTS, api_name="/attribute")
    svg = tmp_path / "drawing.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    with pytest.raises(AppError, match="SVG"):
        client.predict(handle_file(str(svg)), MODEL, *DEFAULTS, api_name="/attribute")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(AppError, match="empty"):
        client.predict(handle_file(str(empty)), MODEL, *DEFAULTS, api_name="/attribute")
    # the next request still works
    out = client.predict(handle_file(str(REAL[1])), MODEL, *DEFAULTS, api_name="/attribute")
    assert _data(out)["verdict"] == "non-belonging"


def test_unavailable_model_and_bad_settings_are_messages(client):
    from ronan.models.registry import list_models

    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(handle_file(str(REAL[0])), "no-such-model", *DEFAULTS, api_name="/attribute")
    unavailable = [m for m in list_models() if not m.available]  # e.g. the hub models, never downloaded in tests
    assert unavailable, "expected a model that is not available here (a hub model not downloaded)"
    with pytest.raises(AppError, match="not in the list of choices"):  # not offered
        client.predict(handle_file(str(REAL[0])), unavailable[0].name, *DEFAULTS, api_name="/attribute")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(handle_file(str(REAL[0])), MODEL, "default", "mse", "bogus", None, None, None, 0.05, 0, False,
                       "auto", "robust", api_name="/attribute")
    # no distribution for these settings and building off on this server: a plain message, no command line
    job = client.submit(handle_file(str(REAL[0])), MODEL, "default", "mse", "fast", 7, 1, None, 0.05, 0, False,
                        "auto", "robust", api_name="/attribute")
    with pytest.raises(AppError, match="belonging distribution") as err:
        job.result(timeout=60)
    assert "python -m" not in str(err.value) and "`" not in str(err.value)
    card = job.outputs()[-1][CARD]  # the error is in the verdict card too
    assert "No verdict" in card and "belonging distribution" in card


def _long_job(c):
    """A job that builds a belonging distribution first (minutes): surely running when Stop arrives."""
    job = c.submit(handle_file(str(REAL[2])), MODEL, "default", "mse", "fast", 977, 2, None, 0.05, 0, True,
                   "auto", "robust", api_name="/attribute")
    deadline = time.time() + 60
    while time.time() < deadline and not any("belonging distribution" in str(o[STATUS]) for o in job.outputs()):
        time.sleep(0.2)
    assert any("belonging distribution" in str(o[STATUS]) for o in job.outputs()), "build progress never streamed"
    return job


def test_stop_cancels_a_running_job_and_a_waiting_one(url, monkeypatch):
    monkeypatch.setenv("RONAN_ALLOW_BUILDS", "1")  # the operator's setting: visitors may build
    c1, c2 = Client(url, verbose=False), Client(url, verbose=False)
    running = _long_job(c1)
    # a second visitor's job waits in the line, with its position and an ETA
    waiting = c2.submit(handle_file(str(REAL[3])), MODEL, *DEFAULTS, api_name="/attribute")
    deadline = time.time() + 30
    while time.time() < deadline and not any("Waiting for the worker" in str(o[STATUS]) for o in waiting.outputs()):
        time.sleep(0.1)
    status = next(str(o[STATUS]) for o in waiting.outputs() if "Waiting for the worker" in str(o[STATUS]))
    assert "1 run(s) ahead of yours" in status and "starts in" in status
    t0 = time.time()
    assert c2.predict(api_name="/stop") == "Stopping..."
    final = waiting.result(timeout=30)
    assert time.time() - t0 < 5 and _data(final)["status"] == "cancelled" and "nothing ran" in final[STATUS]
    assert not running.done()  # the other visitor's job goes on
    t0 = time.time()
    assert c1.predict(api_name="/stop") == "Stopping..."
    final = running.result(timeout=60)
    assert time.time() - t0 < 30
    assert _data(final)["status"] == "cancelled" and "Stopped" in final[STATUS]
    # a late Stop does not cancel the next run
    assert c1.predict(api_name="/stop") == "Nothing is running."


def test_which_model_names_the_generator(client):
    path = _generated(client, 14)
    out = client.predict(handle_file(path), "fast", 0.05, 0, api_name="/which_model")
    data = out[4]
    assert data["best"] == MODEL, data
    assert data["answer"].startswith(f"made by {MODEL}")
    report = Path(next(f for f in out[5] if f.endswith(".html"))).read_text()  # a report, as for one model
    assert f"made by {MODEL}" in report and "Created <b>" in report and "data:image/png;base64," in report


def test_batch_zip_with_folder_labels(client, tmp_path):
    gen = [_generated(client, s) for s in (21, 22)]
    zpath = tmp_path / "batch.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for i, p in enumerate(gen):
            zf.write(p, f"{MODEL}/{i}.png")
        for p in REAL[3:5]:
            zf.write(p, f"real/{p.name}")
        zf.writestr("real/broken.png", b"not an image")
        zf.writestr("__MACOSX/._junk.png", b"junk")
        zf.writestr("notes.txt", "hello")
    out = client.predict([handle_file(str(zpath))], MODEL, "fast", 0.05, 0, api_name="/batch")
    table = out[1]
    rows = table["data"] if isinstance(table, dict) else table
    assert len(rows) == 5
    verdicts = {r[0]: r[2] for r in rows}
    assert verdicts["real/broken.png"] == "error"
    assert sum(v == "BELONGING" for k, v in verdicts.items() if k.startswith(MODEL)) == 2
    assert all(v == "NOT BELONGING" for k, v in verdicts.items() if k.startswith("real/") and "broken" not in k)
    # an honest count: what was done, what was unreadable, what was skipped
    assert "Done: 4 of 5 images" in out[0] and "1 unreadable: real/broken.png" in out[0]
    assert "skipped: notes.txt, 1 hidden or system file(s)" in out[0]
    csv_text = Path(out[2]).read_text()
    assert csv_text.splitlines()[0].startswith("image,label,verdict")
    assert "TP 2" in out[3] and "TN 2" in out[3]


def test_calibrate_shows_cached_distribution(client):
    from ronan import studio
    from ronan.prepare import prepare

    if not studio.has_distribution(prepare(MODEL, "default", preset="fast")):
        pytest.fail(f"the committed calibration cache of {MODEL} is missing or stale (it would be rebuilt: minutes)")
    out = client.predict(MODEL, "default", "mse", "fast", None, None, None, False, 0.05, api_name="/calibrate")
    assert "preset fast, N = 100" in out[1]
    assert out[3]["n"] == 100 and len(out[3]["values"]) == 100
    # "default" is the model's own: upgan64-clipart's card names two-path (its distribution is committed)
    out = client.predict("upgan64-clipart", "default", "mse", "default", None, None, None, False, 0.05,
                         api_name="/calibrate")
    assert "preset two-path, N = 100" in out[1], out[1]
    assert "No verdict" not in out[1] and "Floor rule" not in out[1]
    # the late resgan64-clipart: its inversions fail on most of its own images (15 of 100 reach the floor)
    out = client.predict("resgan64-clipart", "default", "mse", "default", None, None, None, False, 0.05,
                         api_name="/calibrate")
    assert "**No verdict on the whole sample:**" in out[1] and "tested against the 15 of the 100 samples" in out[1], out[1]
    assert "did not reach the 8-bit floor (85)" in out[2] and "samples used (N = 15)" in out[2]  # the histogram's legend


def test_the_test_choice_turns_the_floor_rule_off(client, own_pngs):
    """The Test radio's "robust, no floor rule": an own image of resgan64-clipart (its calibration
    sample 4 reaches the 8-bit floor) is belonging by the floor rule, inconclusive without it."""
    (own,) = own_pngs("resgan64-clipart", 4)
    runs = {}
    for test in ("robust", "robust-no-floor"):
        settings = ("default", "mse", "default", None, None, None, 0.05, 0, False, "auto", test)
        runs[test] = _data(client.predict(handle_file(str(own)), "resgan64-clipart", *settings, api_name="/attribute"))
    a, off = runs["robust"]["attribution"], runs["robust-no-floor"]["attribution"]
    assert a["verdict"] == "belonging" and a["basis"] == "floor" and a["floor_rule"] is True
    assert off["verdict"] == "inconclusive" and off["basis"] == "all" and off["floor_rule"] is False
    assert off["loss"] == pytest.approx(a["loss"])  # the same inversion, decided without the rule


def test_queue_is_bounded(monkeypatch):
    """The job line and gradio's queue are bounded (seen through gradio's public ``Blocks.queue``)."""
    import app

    calls = []
    queue = gr.Blocks.queue

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return queue(self, *args, **kwargs)

    monkeypatch.setattr(gr.Blocks, "queue", spy)
    app.build_demo()
    sizes = [c["max_size"] for c in calls if "max_size" in c]  # gradio also calls queue() itself, without it
    assert len(sizes) == 1 and app.QUEUE_SIZE <= sizes[0] < 1000
    assert app.LINE.max_waiting == app.QUEUE_SIZE > 0


@pytest.mark.parametrize("kind", ["cmyk", "i16", "animated", "huge"])
def test_odd_uploads_preview(tmp_path, kind):
    """Odd but valid formats are converted (with a note); oversized ones get a message."""
    import app

    path = tmp_path / f"{kind}.png"
    if kind == "cmyk":
        path = tmp_path / "cmyk.jpg"
        Image.new("CMYK", (40, 40), (0, 50, 100, 0)).save(path)
    elif kind == "i16":
        Image.fromarray((np.arange(1600).reshape(40, 40) * 40).astype(np.uint16)).save(path)
    elif kind == "animated":
        path = tmp_path / "anim.gif"
        frames = [Image.new("L", (30, 30), v) for v in (0, 128, 255)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    else:
        path = tmp_path / "huge.png"
        Image.new("1", (9000, 9000)).save(path)
    images, card = app.preview(str(path), MODEL)
    if kind == "huge":
        assert images == "" and "megapixels" in card and "No verdict" in card
    else:  # the upload and what the model will see (28x28 grayscale), with the conversions
        assert images.count("<img") == 2 and "What dcgan-fmnist sees" in images and "28x28 grayscale" in images
        assert {"cmyk": "CMYK", "i16": "rescaled", "animated": "first frame"}[kind] in card


def test_core_modules_do_not_import_gradio():
    import subprocess
    import sys

    code = ("import sys, ronan.studio, ronan.plots, ronan.report, ronan.views, ronan.which_model; "
            "sys.exit(1 if 'gradio' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_stop_is_per_session():
    import app

    class Req:
        def __init__(self, sid):
            self.session_hash = sid

    a, b = Req("session-a"), Req("session-b")
    ta = app.LINE.join("session-a", "attribute")
    try:
        assert app.stop(b) == "Nothing is running."  # other sessions are not affected
        assert not ta.stopped
        assert app.stop(a) == "Stopping..." and ta.stopped
    finally:
        app.LINE.leave(ta)
    assert app.stop(a) == "Nothing is running."  # a late Stop is a no-op


def test_jpeg_resave_is_tested_with_a_caveat_in_the_card(client, tmp_path):
    """A JPEG re-save of a generated image: its edit's belonging distribution is not built here (q85:
    none committed; q90/75/50 are, from benchmarks/RESULTS.md's Table 8), so the committed q75 stands
    in: the image is found belonging (tested as if unedited, it was
    judged not belonging), and the card says plainly what the result rests on."""
    jpg = tmp_path / "resaved.jpg"
    Image.open(_generated(client, 15)).save(jpg, quality=85)
    out = client.predict(handle_file(str(jpg)), MODEL, *DEFAULTS, api_name="/attribute")
    card = out[CARD]
    assert "This result rests on" in card and "JPEG quality 85" in card and "tested as jpeg:75" in card
    assert "python -m" not in card
    assert "JPEG quality 85" in " ".join(_data(out)["assumptions"])
    assert _data(out)["edit"]["detected_but_not_tested"]["jpeg_quality"] == 85
    assert _data(out)["verdict"] == "belonging", _data(out)["explanation"]


def test_reports_do_not_pile_up(tmp_path):
    from ronan.studio import RunFolders

    runs = RunFolders(tmp_path, keep=3, max_bytes=10_000)
    made = []
    for i in range(5):
        f = runs.new("report")
        (f / "x.bin").write_bytes(b"0" * 3000)
        made.append(f)
        time.sleep(0.01)
    left = sorted(p for p in tmp_path.iterdir())
    assert len(left) <= 3 and made[-1] in left and made[0] not in left
    assert sum(p.stat().st_size for d in left for p in d.iterdir()) <= 10_000 + 3000
