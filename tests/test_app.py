"""The Gradio app on loopback, driven through gradio_client (as an API user would).

Verdict tests use the default preset and the committed calibration caches; error and stop
tests fail or stop before any long computation.
"""

from __future__ import annotations

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
# image, model, reference, distance, preset, steps, restarts, lr, alpha, seed, build
DEFAULTS = ("default", "mse", "fast", None, None, None, 0.05, 0, False)


@pytest.fixture(scope="module")
def url():
    with running_app() as u:
        yield u


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


def _data(outputs) -> dict:
    return outputs[7]


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
    assert "BELONGING" in final[5] and "NOT BELONGING" not in final[5]
    a = data["attribution"]
    for key in ("statistic", "critical_value", "n_calibration", "alpha", "mean", "std", "loss", "reference_loss",
                "image_sha256", "model_sha256", "reference_sha256", "versions", "seed"):
        assert a[key] is not None, key
    files = final[8]
    names = [Path(f).name for f in files]
    assert any(n.endswith(".json") for n in names) and any(n.endswith(".html") for n in names)
    report = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert report["attribution"]["statistic"] == pytest.approx(a["statistic"])
    html = Path(next(f for f in files if f.endswith(".html"))).read_text()
    assert "data:image/png;base64," in html and "BELONGING" in html


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
    assert "NOT BELONGING" in results["real"][5]


def test_corrupt_upload_is_a_message_and_app_stays_up(client, tmp_path):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(AppError, match="not a readable image|damaged"):
        client.predict(handle_file(str(bad)), MODEL, *DEFAULTS, api_name="/attribute")
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
    for m in [m for m in list_models() if not m.available][:1]:  # e.g. a hub model not downloaded here
        with pytest.raises(AppError, match="download|missing|does not match|unreadable"):
            client.predict(handle_file(str(REAL[0])), m.name, *DEFAULTS, api_name="/attribute")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict(handle_file(str(REAL[0])), MODEL, "default", "mse", "bogus", None, None, None, 0.05, 0, False,
                       api_name="/attribute")
    # no distribution for these settings and building disabled: a message that says what to do
    with pytest.raises(AppError, match="calibrat"):
        client.predict(handle_file(str(REAL[0])), MODEL, "default", "mse", "fast", 7, 1, None, 0.05, 0, False,
                       api_name="/attribute")


def test_stop_cancels_a_running_job(url):
    c = Client(url, verbose=False)
    # non-default settings with building enabled: the run first builds a belonging
    # distribution (minutes), so it is surely still running when Stop arrives
    job = c.submit(handle_file(str(REAL[2])), MODEL, "default", "mse", "fast", 977, 2, None, 0.05, 0, True,
                   api_name="/attribute")
    deadline = time.time() + 60
    while time.time() < deadline and not any("belonging distribution" in str(o[0]) for o in job.outputs()):
        time.sleep(0.2)
    assert any("belonging distribution" in str(o[0]) for o in job.outputs()), "calibration progress never streamed"
    t0 = time.time()
    assert c.predict(api_name="/stop") == "Stopping..."
    final = job.result(timeout=60)
    assert time.time() - t0 < 30
    assert _data(final)["status"] == "cancelled"
    assert "Stopped" in final[0]
    # a late Stop does not cancel the next run
    assert c.predict(api_name="/stop") == "Nothing is running."


def test_which_model_names_the_generator(client):
    path = _generated(client, 14)
    out = client.predict(handle_file(path), "fast", 0.05, 0, api_name="/which_model")
    data = out[4]
    assert data["best"] == MODEL, data
    assert data["answer"].startswith(f"made by {MODEL}")


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
    out = client.predict([handle_file(str(zpath))], MODEL, "fast", 0.05, 0, api_name="/batch")
    table = out[1]
    rows = table["data"] if isinstance(table, dict) else table
    assert len(rows) == 5
    verdicts = {r[0]: r[2] for r in rows}
    assert verdicts["real/broken.png"] == "error"
    assert sum(v == "belonging" for k, v in verdicts.items() if k.startswith(MODEL)) == 2
    assert all(v == "non-belonging" for k, v in verdicts.items() if k.startswith("real/") and "broken" not in k)
    csv_text = Path(out[2]).read_text()
    assert csv_text.splitlines()[0].startswith("image,label,verdict")
    assert "TP 2" in out[3] and "TN 2" in out[3]


def test_calibrate_shows_cached_distribution(client):
    from ronan import studio
    from ronan.inversion import resolve_settings

    gen, ref, settings = studio.prepare(MODEL, "default")
    if not studio.has_distribution(gen, ref, "mse", resolve_settings("fast")):
        pytest.fail(f"the committed calibration cache of {MODEL} is missing or stale (it would be rebuilt: minutes)")
    out = client.predict(MODEL, "default", "mse", "fast", None, None, None, False, 0.05, api_name="/calibrate")
    assert "N = 100" in out[1]
    assert out[3]["n"] == 100 and len(out[3]["values"]) == 100


def test_queue_is_bounded():
    import app

    assert app.demo._queue.max_size == app.QUEUE_SIZE > 0


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
    img, note = app.preview(str(path))
    if kind == "huge":
        assert img is None and "megapixels" in note
    else:
        assert img is not None and img.size[0] >= 200  # upscaled, nearest neighbour
        assert {"cmyk": "CMYK", "i16": "rescaled", "animated": "first frame"}[kind] in note


def test_core_modules_do_not_import_gradio():
    import subprocess
    import sys

    code = ("import sys, ronan.studio, ronan.plots, ronan.report, ronan.which_model; "
            "sys.exit(1 if 'gradio' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_stop_flags_are_per_session_and_armed_by_run():
    import app

    class Req:
        def __init__(self, sid):
            self.session_hash = sid

    a, b = Req("session-a"), Req("session-b")
    app.arm(a)  # Run clicked; the job waits in the queue
    assert app.stop(a) == "Stopping..."
    assert app.stop(b) == "Nothing is running."  # other sessions are not affected
    flag = app._begin(a)  # the queued job starts: it sees the Stop
    assert flag.is_set()
    app._end(a, flag)
    assert app.stop(a) == "Nothing is running."  # a late Stop is a no-op
    flag = app._begin(b)  # an API run (not armed) starts clean
    assert not flag.is_set()
    app._end(b, flag)
