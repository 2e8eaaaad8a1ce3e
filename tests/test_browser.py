"""End-to-end in a real headless browser: Debian's chromium driven by Playwright.

Loads the page, uploads an image, clicks Run, waits for the verdict and saves a screenshot
(to the test's temporary folder; to ``assets/screenshot.png`` as well when
``RONAN_UPDATE_SCREENSHOT=1``). Skipped when chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RONAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from app_server import running_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def url():
    with running_app() as u:
        yield u


def test_upload_run_verdict_screenshot(url, tmp_path):
    from ronan import studio

    image = studio.generate_example("dcgan-fmnist", 12, tmp_path)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            page.locator("#run").wait_for(state="visible", timeout=30_000)
            load_s = time.perf_counter() - t0
            assert load_s < 5.0, f"page took {load_s:.1f} s to load"
            page.locator("#image-file input[type=file]").set_input_files(str(image))
            # the uploaded file is shown (upscaled) before running
            page.get_by_text("generated-dcgan-fmnist-seed12.png").first.wait_for(timeout=30_000)
            t1 = time.perf_counter()
            page.locator("#run").click()
            verdict = page.locator("#ronan-verdict h2")
            verdict.wait_for(timeout=120_000)
            text = verdict.inner_text()
            verdict_s = time.perf_counter() - t1
            assert text in ("BELONGING", "NOT BELONGING")
            assert text == "BELONGING"
            page.locator("#hist img").wait_for(state="visible", timeout=30_000)
            page.wait_for_function("() => { const i = document.querySelector('#hist img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
            page.wait_for_timeout(500)
            shot = tmp_path / "screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("RONAN_UPDATE_SCREENSHOT") == "1":
                shutil.copy(shot, REPO / "assets" / "screenshot.png")
            print(f"page load {load_s:.2f} s, verdict {verdict_s:.2f} s after Run")
        finally:
            browser.close()
