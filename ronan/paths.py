"""Where RONAN finds its bundled data, keeps its caches and looks for user models.

One module answers every "where?" so that a clone, an editable install (``pip install -e .``)
and a regular install (``pip install .``) behave alike.

Bundled data (read-only: model cards and weights, real-image samples, committed
calibration caches), :func:`data_root`:

1. ``$RONAN_DATA_DIR`` if set (a folder holding ``assets/`` and ``calibration_cache/``);
2. the package's own copy, ``<site-packages>/ronan/_data/`` (a regular install: the wheel
   ships ``assets/`` and ``calibration_cache/`` there, see ``pyproject.toml``);
3. the source tree the package was imported from (a clone or an editable install).

Belonging distributions (``calibration_cache``), :func:`cache_read_dirs` in reading order:

1. ``$RONAN_CACHE_DIR`` if set — new distributions are written here;
2. the bundled ``calibration_cache/`` (committed for the bundled models) — written to
   when ``$RONAN_CACHE_DIR`` is unset and the folder is writable (a clone);
3. the user cache, ``<user cache dir>/calibration`` (``$XDG_CACHE_HOME/ronan`` or
   ``~/.cache/ronan`` on Linux) — written to when the install folder is read-only.

User models (model cards written by ``ronan register``), :func:`user_models_dir`:
``$RONAN_MODELS_DIR``, else ``<user data dir>/models`` (``$XDG_DATA_HOME/ronan`` or
``~/.local/share/ronan`` on Linux, ``~/Library/Application Support/ronan`` on macOS,
``%APPDATA%\\ronan`` on Windows).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "ronan"


def package_dir() -> Path:
    """Folder of the imported ``ronan`` package (in a clone: ``<clone>/ronan``)."""
    return Path(__file__).resolve().parent


def data_root() -> Path:
    """Folder holding ``assets/`` and ``calibration_cache/`` (see the module docstring)."""
    env = os.environ.get("RONAN_DATA_DIR")
    if env:
        return Path(env)
    shipped = package_dir() / "_data"
    if (shipped / "assets").is_dir():
        return shipped
    return package_dir().parent  # source tree: <clone>/ronan/.. holds assets/ and calibration_cache/


def bundled_models_dir() -> Path:
    """Bundled model cards and weights: ``$RONAN_ASSETS_DIR`` or ``<data root>/assets/models``."""
    return Path(os.environ.get("RONAN_ASSETS_DIR") or data_root() / "assets" / "models")


def samples_dir() -> Path:
    """Committed real-image samples: ``<data root>/assets/samples``."""
    return data_root() / "assets" / "samples"


def bundled_cache_dir() -> Path:
    """Committed belonging distributions: ``<data root>/calibration_cache``."""
    return data_root() / "calibration_cache"


def user_cache_dir() -> Path:
    """Per-user cache folder (platformdirs' ``user_cache_dir`` rules, without the dependency)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / APP / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP


def user_data_dir() -> Path:
    """Per-user data folder (platformdirs' ``user_data_dir`` rules, without the dependency)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP


def user_models_dir() -> Path:
    """Folder of user model cards: ``$RONAN_MODELS_DIR`` or ``<user data dir>/models``."""
    return Path(os.environ.get("RONAN_MODELS_DIR") or user_data_dir() / "models")


def _writable(folder: Path) -> bool:
    """True if files can be created in ``folder`` (or in its nearest existing parent)."""
    p = folder
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def cache_write_dir() -> Path:
    """Where new belonging distributions are written (see the module docstring)."""
    env = os.environ.get("RONAN_CACHE_DIR")
    if env:
        return Path(env)
    bundled = bundled_cache_dir()
    return bundled if _writable(bundled) else user_cache_dir() / "calibration"


def cache_read_dirs() -> list[Path]:
    """Folders searched for a cached distribution, in order (duplicates removed)."""
    dirs = [cache_write_dir(), bundled_cache_dir(), user_cache_dir() / "calibration"]
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def make_shareable(path: Path, folder: bool = False) -> None:
    """Give ``path`` the permissions a new file (or folder) gets under the umask (mkstemp/mkdtemp make them private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if folder else 0o666) & ~umask)
