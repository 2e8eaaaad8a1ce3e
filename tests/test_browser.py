"""End-to-end in a real headless browser: Debian's chromium driven by Playwright.

As a visitor, an investigator and a teacher would use it, at 1366x800 (desktop) and 400x800 (phone):

* the first verdict is one click away and visible without scrolling (``python app.py`` started as
  a process: the time from process start to a usable page and from the click to the verdict is
  measured and printed);
* every output is cleared when a new run starts and when a run fails (the error is in the card);
* the legend entries of the figures are visible (SVG legend in the page, the histogram's legend
  texts in its alt text);
* every tab is driven and photographed at both widths: into the test's temporary folder, and
  into ``assets/screenshots/`` when ``RONAN_UPDATE_SCREENSHOTS=1`` (the README shows them).

Skipped when chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RONAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from app_server import free_port, running_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "assets" / "screenshots"
UPDATE = os.environ.get("RONAN_UPDATE_SCREENSHOTS") == "1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
WIDTHS = (1366, 400)
HEIGHT = 800
REAL, THIS = 0, 2  # example thumbnails: real, real, this model, this model, other model, other model


@pytest.fixture(scope="module")
def url():
    with running_app() as u:
        yield u


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _open(browser, url, width: int):
    page = browser.new_page(viewport={"width": width, "height": HEIGHT})
    page.goto(url, wait_until="load")
    page.locator("#examples img").first.wait_for(state="visible", timeout=60_000)
    return page


def _in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    vp = page.viewport_size
    return box is not None and box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= vp["height"] \
        and box["x"] + box["width"] <= vp["width"]


def _shot(page, tmp_path, name: str) -> None:
    """Screenshot of the viewport (what a visitor sees), to tmp_path and, when updating, to assets/."""
    path = tmp_path / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 5_000
    if UPDATE:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)


def _tab(page, tab_id: str, name: str) -> None:
    tab = page.locator(f"button[role=tab][data-tab-id={tab_id}]")
    if tab.count() and tab.is_visible():
        tab.click()
    else:  # narrow screens: the other tabs are in the "More tabs" menu
        page.get_by_label("More tabs").click()
        page.locator(".overflow-dropdown button", has_text=name).click()
    page.wait_for_timeout(400)


def _verdict(page, value: str | None = None, timeout_ms: int = 120_000) -> str:
    """Wait for a verdict card (with verdict ``value``: ``belonging``, ``non-belonging``...); its title."""
    page.locator(f"#ronan-verdict[data-verdict{'=' + value if value else ''}]").wait_for(timeout=timeout_ms)
    return page.locator("#ronan-verdict h2").inner_text()


def _wait_images(page, selector: str) -> None:
    page.wait_for_function("s => { const i = document.querySelector(s); return i && i.complete && "
                           "i.naturalWidth > 0; }", arg=selector, timeout=60_000)


def _upload_and_run(browser, url, model: str, image: Path):
    """A desktop page with ``model`` chosen, ``image`` uploaded and Run clicked."""
    page = _open(browser, url, WIDTHS[0])
    page.locator("#model input").click()
    page.get_by_role("option", name=model).first.click()
    page.wait_for_timeout(1000)
    page.locator("#image-file input[type=file]").set_input_files(str(image))
    page.wait_for_timeout(1000)
    page.locator("#run").click()
    return page


# ----------------------------------------------------------------------------- first visit

def _wait_http(url: str, proc, deadline: float) -> None:
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app.py exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("app.py did not answer within the deadline")


def test_first_visit_one_click_verdict_above_the_fold(browser, tmp_path):
    """`python app.py` as a process: time to a usable page, then one click on an example to a verdict
    that is visible without scrolling, at 1366x800 and at 400 px."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc, time.time() + 120)
        listening = time.perf_counter() - t0
        timings = {"listening_s": round(listening, 2)}
        for width, example, expected in ((1366, REAL, "NOT BELONGING"), (400, THIS, "BELONGING")):
            page = browser.new_page(viewport={"width": width, "height": HEIGHT})
            t1 = time.perf_counter()
            page.goto(url, wait_until="load")
            thumb = page.locator("#examples img").nth(example)
            thumb.wait_for(state="visible", timeout=60_000)
            usable = time.perf_counter()
            assert _in_viewport(page, thumb) and _in_viewport(page, page.locator("#run")), "examples/Run below the fold"
            assert _in_viewport(page, page.locator("#ronan-howto")), "the one-line instruction is below the fold"
            # bold text uses a real bold face (gradio's 600 file is a subset without most capitals: "RONᴀN")
            faces = page.evaluate("() => [...document.fonts].filter(f => f.family.includes('Source Sans Pro'))"
                                  ".map(f => f.weight)")
            assert "700" in faces and "600" not in faces, faces
            thumb.click()
            text = _verdict(page)
            done = time.perf_counter()
            assert text == expected
            assert _in_viewport(page, page.locator("#ronan-verdict h2")), f"verdict below the fold at {width} px"
            timings[f"{width}px"] = {"page_usable_s": round(usable - t1, 2), "since_process_start_s":
                                     round(usable - t0, 2), "click_to_verdict_s": round(done - usable, 2)}
            page.close()
        print("first visit:", json.dumps(timings))
        (tmp_path / "first_visit.json").write_text(json.dumps(timings, indent=1))
        assert timings["1366px"]["click_to_verdict_s"] < 60
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# ----------------------------------------------------------------------------- stale outputs, legends

RECORDER = """() => {
  window.__states = [];
  const rec = () => {
    const card = document.querySelector('#ronan-verdict');
    const files = document.querySelectorAll('#report-files a, #report-files tr').length;
    const hist = document.querySelectorAll('#hist img').length;
    window.__states.push([card ? (card.dataset.verdict || card.dataset.state || '?') : 'none', files, hist]);
  };
  new MutationObserver(rec).observe(document.querySelector('#verdict'), {subtree: true, childList: true,
                                                                         attributes: true});
  new MutationObserver(rec).observe(document.querySelector('#report-files'), {subtree: true, childList: true});
  new MutationObserver(rec).observe(document.querySelector('#hist'), {subtree: true, childList: true});
}"""


def test_outputs_cleared_on_new_run_and_on_error_legends_visible(url, browser, tmp_path):
    page = _open(browser, url, 1366)
    page.locator("#examples img").nth(THIS).click()
    assert _verdict(page) == "BELONGING"
    _wait_images(page, "#hist img")
    page.locator("#report-files a").first.wait_for(timeout=60_000)
    # legends: the live loss curves (SVG, real text) and the histogram (PNG; its legend in the alt text)
    entries = page.locator("#curves .ronan-legend-entry")
    assert entries.count() == 2
    svg = page.locator("#curves svg").bounding_box()
    texts = []
    for i in range(2):
        e = entries.nth(i)
        assert e.is_visible()
        b = e.bounding_box()
        assert svg["x"] <= b["x"] and b["x"] + b["width"] <= svg["x"] + svg["width"] + 1, "legend entry clipped"
        texts.append(e.text_content())
    assert texts[0].startswith("M (inspected): dcgan-fmnist") and texts[1].startswith("M_r (reference): ref-photos")
    alt = page.locator("#hist img").get_attribute("alt")
    assert "threshold" in alt and "this image (BELONGING)" in alt and "samples used" in alt

    # a new run: the old verdict, histogram and report files go before the new verdict comes
    page.evaluate(RECORDER)
    page.locator("#examples img").nth(REAL).click()
    assert _verdict(page, "non-belonging") == "NOT BELONGING"
    states = page.evaluate("window.__states")
    first_new = next(i for i, s in enumerate(states) if s[0] == "non-belonging")
    before = states[:first_new]
    assert any(s[0] in ("running", "info") for s in before), states
    assert any(s[1] == 0 for s in before) and any(s[2] == 0 for s in before), states

    # a failed run: the error is in the card, every other output is cleared
    page.locator("#report-files a").first.wait_for(timeout=60_000)
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    page.locator("#image-file button[aria-label='Clear']").click()
    page.locator("#image-file input[type=file]").set_input_files(str(bad))
    page.locator("#run").click()
    page.locator("#ronan-verdict[data-state=error]").wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    assert "corrupt.png" in page.locator("#ronan-verdict").inner_text()
    assert page.locator("#images img").count() == 0 and page.locator("#hist img").count() == 0
    assert page.locator("#curves .ronan-figure").count() == 0 and page.locator("#report-files a").count() == 0
    assert _in_viewport(page, page.locator("#ronan-verdict h2"))
    page.close()


# ----------------------------------------------------------------------------- every tab, both widths

def _batch_zip(tmp_path) -> Path:
    from ronan import studio

    z = tmp_path / "batch.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for s in (31, 32):
            zf.write(studio.generate_example("dcgan-fmnist", s, tmp_path), f"dcgan-fmnist/{s}.png")
        for p in studio.real_samples(2):
            zf.write(p, f"real/{p.name}")
        zf.writestr("real/broken.png", b"not an image")
        zf.writestr("notes.txt", "hello")
    return z


@pytest.mark.parametrize("width", WIDTHS)
def test_every_tab_driven_and_photographed(url, browser, tmp_path, width):
    from ronan import studio

    page = _open(browser, url, width)
    page.locator("#examples img").nth(THIS).click()
    _verdict(page)
    _wait_images(page, "#hist img")
    page.locator("#report-files a").first.wait_for(timeout=60_000)
    _shot(page, tmp_path, f"attribute-{width}")
    if width == WIDTHS[0]:
        page.screenshot(path=str(tmp_path / "attribute-full.png"), full_page=True)
        if UPDATE:
            shutil.copy(tmp_path / "attribute-full.png", SHOTS / "attribute-1366-full.png")

    _tab(page, "which", "Which model?")
    page.locator("#which-file input[type=file]").set_input_files(
        str(studio.generate_example("dcgan-fmnist", 14, tmp_path)))
    page.locator("#which-run").click()
    page.locator("#ronan-which h2", has_text="made by").wait_for(timeout=180_000)
    assert page.locator("#ronan-which h2").inner_text().startswith("made by dcgan-fmnist")
    _wait_images(page, "#which-plot img")
    assert "threshold" in page.locator("#which-plot img").get_attribute("alt")
    _shot(page, tmp_path, f"which-{width}")

    _tab(page, "calibrate", "Calibrate")
    page.locator("#calibrate-run").click()
    _wait_images(page, "#calibrate-plot img")
    _shot(page, tmp_path, f"calibrate-{width}")

    _tab(page, "batch", "Batch")
    page.locator("#batch-files input[type=file]").set_input_files(str(_batch_zip(tmp_path)))
    page.wait_for_timeout(500)
    page.locator("#batch-run").click()
    status = page.locator("#batch-status", has_text="Done:")
    status.wait_for(timeout=180_000)
    text = status.inner_text()
    assert "Done: 4 of 5 images" in text and "1 unreadable: real/broken.png" in text and "skipped: notes.txt" in text
    _shot(page, tmp_path, f"batch-{width}")

    _tab(page, "how", "How it works")
    page.locator(".katex").first.wait_for(timeout=30_000)
    _shot(page, tmp_path, f"how-{width}")
    page.close()


def test_jpeg_real_picture_on_the_colour_model_is_inconclusive_by_the_contrast_check(url, browser, tmp_path):
    """A held-out real picture re-saved as JPEG q50, on dcgan64-clipart: JPEG erases what separates the
    model's images from real ones, Grubbs' test alone would say belonging, and the contrast check (real
    pictures through the same edit) makes it inconclusive — in the card, and drawn in the histogram."""
    from ronan.edits import parse_edit
    from ronan.images import load_image

    data, ext = parse_edit("jpeg:50").to_file(load_image(REPO / "assets/samples/clipart-test/0002.png").image, seed=2)
    jpg = tmp_path / f"clipart-test-0002-q50{ext}"
    jpg.write_bytes(data)
    page = _upload_and_run(browser, url, "dcgan64-clipart", jpg)
    assert _verdict(page, "inconclusive").startswith("INCONCLUSIVE")
    card = page.locator("#ronan-verdict").inner_text()
    assert "held-out real pictures (clipart-test[100:200]) passed through the same edit (jpeg:50)" in card
    assert "Grubbs' test alone would say belonging" in card and "Contrast check" in card
    _wait_images(page, "#hist img")
    assert "held-out real pictures, same edit (N = 100)" in page.locator("#hist img").get_attribute("alt")
    page.locator("#report-files a").first.wait_for(timeout=60_000)  # the job ends with its report
    page.screenshot(path=str(tmp_path / "contrast-1366.png"), full_page=True)
    if UPDATE:
        shutil.copy(tmp_path / "contrast-1366.png", SHOTS / "contrast-1366.png")
    page.close()


def test_the_floor_rule_verdict_on_the_late_residual_model(url, browser, tmp_path, own_pngs):
    """resgan64-clipart (its inversions fail on most of its own images, so its whole belonging sample
    cannot carry a verdict): an own image whose inversion reaches the 8-bit floor is found belonging by
    the floor rule — the card says against which samples, the histogram draws them with their threshold."""
    (own,) = own_pngs("resgan64-clipart", 4)
    page = _upload_and_run(browser, url, "resgan64-clipart", own)
    assert _verdict(page, "belonging") == "BELONGING"
    card = page.locator("#ronan-verdict").inner_text()
    assert "its own samples whose inversions reached the 8-bit floor" in card
    assert "those whose inversions reached the 8-bit floor, as this image's did (the floor rule)" in card
    _wait_images(page, "#hist img")
    alt = page.locator("#hist img").get_attribute("alt")
    assert "did not reach the 8-bit floor (85)" in alt and "samples used (N = 15)" in alt
    page.locator("#report-files a").first.wait_for(timeout=60_000)  # the job ends with its report
    page.screenshot(path=str(tmp_path / "floor-rule-1366.png"), full_page=True)
    if UPDATE:
        shutil.copy(tmp_path / "floor-rule-1366.png", SHOTS / "floor-rule-1366.png")
    page.close()
