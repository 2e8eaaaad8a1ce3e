import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
import torch

from ronan.models.dcgan import DCGAN

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "assets" / "samples"

torch.set_num_threads(1)  # as the CLI and app: inversions run side by side on CPU
# the developer's own registered models stay out of the suite (tests that register use models_tmp)
os.environ["RONAN_MODELS_DIR"] = tempfile.mkdtemp(prefix="ronan-test-models-")
# caches the tests build go to a temporary folder (the committed ones are still read), not into the repo;
# a RONAN_CACHE_DIR set by the caller is kept
os.environ.setdefault("RONAN_CACHE_DIR", tempfile.mkdtemp(prefix="ronan-test-cache-"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, skipped unless --runslow")
    config.addinivalue_line("markers", "gpu: needs CUDA, skipped where CUDA is absent (runs wherever it is present)")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: use --runslow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture
def tiny_dcgan():
    """A tiny random-weight DCGAN (8-dim latent), seeded, frozen."""
    torch.manual_seed(1234)
    g = DCGAN(latent_dim=8, base=8, channels=1, image_size=28)
    g.name = "tiny-dcgan"
    g.weights_sha256 = "0" * 64
    return g.freeze()


@pytest.fixture
def cache_tmp(tmp_path, monkeypatch):
    """Point the calibration cache at an empty temporary folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("RONAN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def real_images():
    """Paths of committed real Fashion-MNIST test images."""
    return sorted((SAMPLES / "fmnist-test").glob("*.png"))


@pytest.fixture
def own_pngs(tmp_path):
    """``own_pngs(model, *k)``: calibration samples k of a bundled model (seed 0, the belonging
    samples of its distribution), saved as 8-bit PNGs; returns their paths."""
    from ronan.generation import generate
    from ronan.images import to_pil
    from ronan.models.registry import load_model

    def save(model: str, *k: int) -> list[Path]:
        x = generate(load_model(model), max(k) + 1, 0, purpose="calibration")
        paths = [tmp_path / f"{model}-own{i}.png" for i in k]
        for i, path in zip(k, paths):
            to_pil(x[i]).save(path)
        return paths

    return save


@pytest.fixture
def models_tmp(tmp_path, monkeypatch):
    """Point the user models folder (``$RONAN_MODELS_DIR``) at an empty temporary folder."""
    folder = tmp_path / "models"
    monkeypatch.setenv("RONAN_MODELS_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _no_app_job_outlives_its_test(request):
    """The app's job line is one per process: a job a test leaves running (its client gone) would
    make the next test's job wait for it. After each test, stop what is left and wait for it to leave
    (a warning names the test that left it)."""
    yield
    app = sys.modules.get("app")
    line = getattr(app, "LINE", None)
    if line is None or not len(line):
        return
    warnings.warn(f"{request.node.nodeid} left {len(line)} job(s) in the app's line; stopping them", stacklevel=2)
    line.stop_all()
    deadline = time.monotonic() + 120
    while len(line) and time.monotonic() < deadline:  # a running job leaves at its next step
        time.sleep(0.1)
