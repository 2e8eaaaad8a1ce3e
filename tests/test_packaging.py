"""Installing RONAN as a package (issue 10): metadata, bundled data, caches, `pip install .`."""

import os
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

import ronan
from conftest import REPO
from ronan import paths

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_console_entry_point_and_version():
    project = PYPROJECT["project"]
    assert project["scripts"] == {"ronan": "ronan.cli:main"}
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ronan.__version__"}
    from ronan.cli import main

    assert callable(main) and ronan.__version__
    assert set(project["optional-dependencies"]) >= {"app", "hub", "dev"}
    required = {r.split("=")[0].split(">")[0].split("[")[0].lower() for r in project["dependencies"]}
    pinned = {line.split("==")[0].lower() for line in (REPO / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    extras = {r.split(">")[0].lower() for r in project["optional-dependencies"]["app"]
              + project["optional-dependencies"]["hub"]}
    assert pinned == required | extras  # every pinned requirement is a dependency or an extra


def test_every_subpackage_is_packaged():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ronan").rglob("__init__.py")}
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages in pyproject.toml"


def test_every_bundled_file_is_package_data():
    """The wheel ships assets/ and calibration_cache/ as ronan/_data/ (package-data globs)."""
    setup = PYPROJECT["tool"]["setuptools"]
    for package, folder in setup["package-dir"].items():
        assert package in setup["packages"]
        globs = setup["package-data"][package]
        root = REPO / folder
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        wanted = [f for f in files if not f.startswith("screenshots/")]  # the README's, not the package's
        missing = [f for f in wanted if not any(fnmatch(f, g) for g in globs)]
        assert wanted and not missing, missing


def test_data_and_cache_locations(tmp_path, monkeypatch):
    assert (paths.data_root() / "assets" / "models").is_dir() and paths.samples_dir().is_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("RONAN_CACHE_DIR", raising=False)
    bundled = paths.bundled_cache_dir()
    assert paths.cache_write_dir() == bundled  # a clone: writable
    monkeypatch.setattr(paths, "_writable", lambda folder: False)  # a read-only install
    assert paths.cache_write_dir() == tmp_path / "xdg" / "ronan" / "calibration"
    assert paths.cache_read_dirs() == [tmp_path / "xdg" / "ronan" / "calibration", bundled]
    monkeypatch.setenv("RONAN_CACHE_DIR", str(tmp_path / "mine"))
    assert paths.cache_read_dirs() == [tmp_path / "mine", bundled, tmp_path / "xdg" / "ronan" / "calibration"]
    monkeypatch.setenv("RONAN_MODELS_DIR", str(tmp_path / "models"))
    assert paths.user_models_dir() == tmp_path / "models"


def test_committed_cache_is_read_when_new_caches_go_elsewhere(cache_tmp, real_images):
    from ronan.attribution import attribute_batch

    r = attribute_batch([real_images[0]], "dcgan-fmnist", build_calibration=False)[0]
    assert r.verdict == "non-belonging" and not any(cache_tmp.glob("*.json"))


def _copy_project(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "build", "*.egg-info", "tests",
                                    "benchmarks", "screenshots")
    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _venv(tmp_path: Path) -> Path:
    """A fresh venv that sees the system packages (torch is not reinstalled) and their pip/setuptools."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    return venv


def _run(args, cwd, **env):
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    e.update(env)
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=e, timeout=600)


def _install(venv: Path, *spec: str) -> None:
    p = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-build-isolation", "--no-index",
              "--disable-pip-version-check", "-q", *spec], cwd=venv)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_pip_install_gives_a_working_ronan(tmp_path):
    """`pip install .` from a clone in a fresh venv: the `ronan` command, data found in the package."""
    src = _copy_project(tmp_path / "clone")
    venv = _venv(tmp_path)
    _install(venv, str(src))
    shutil.rmtree(src)  # nothing may depend on the clone any more
    ronan_cmd = str(venv / "bin" / "ronan")
    work = tmp_path / "elsewhere"
    work.mkdir()
    p = _run([ronan_cmd, "--version"], cwd=work)
    assert p.returncode == 0 and ronan.__version__ in p.stdout
    code = "import ronan.paths as p; print(p.data_root()); print(p.samples_dir())"
    p = _run([str(venv / "bin" / "python"), "-c", code], cwd=work)
    data_root, samples = p.stdout.split()
    assert "site-packages" in data_root and data_root.endswith(os.path.join("ronan", "_data")), p.stderr
    real = sorted(Path(samples, "fmnist-test").glob("*.png"))[0]
    p = _run([ronan_cmd, "attribute", "dcgan-fmnist", str(real), "--json"], cwd=work,
             RONAN_MODELS_DIR=str(tmp_path / "models"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert '"verdict": "non-belonging"' in p.stdout and '"reference": "ref-photos"' in p.stdout
    p = _run([ronan_cmd, "models", "--json"], cwd=work, RONAN_MODELS_DIR=str(tmp_path / "models"))
    assert p.returncode == 0 and '"name": "dcgan-fmnist"' in p.stdout


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout")
def test_editable_install_uses_the_clone(tmp_path):
    src = _copy_project(tmp_path / "clone")
    venv = _venv(tmp_path)
    _install(venv, "-e", str(src))
    code = "import ronan, ronan.paths as p; print(ronan.__file__); print(p.data_root())"
    p = _run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path)
    module, data_root = p.stdout.split()
    assert module.startswith(str(src)) and Path(data_root) == src, p.stderr
    p = _run([str(venv / "bin" / "ronan"), "models", "--json"], cwd=tmp_path, RONAN_MODELS_DIR=str(tmp_path / "m"))
    assert p.returncode == 0 and '"name": "dcgan-fmnist"' in p.stdout, p.stderr
