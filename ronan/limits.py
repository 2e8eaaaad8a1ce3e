"""Bounds on the work and memory one request can cause, set by the operator.

Every entry point (the library's ``attribute*``/``get_distribution``/``load_image``, the CLI and
the app) checks these *before any work* and refuses an excess with :class:`LimitExceeded`: one
line naming the value, the limit and the environment variable that changes it. Limits are read
from the environment at each check (no restart of a script needed; the app reads them per
request), so an operator can raise or lower them:

=============================  ================================  =======  ==========================================
limit (attribute of Limits)    environment variable              default  what it bounds
=============================  ================================  =======  ==========================================
``max_steps``                  ``RONAN_MAX_STEPS``               5000     optimiser steps of one inversion
``max_rows_per_image``         ``RONAN_MAX_ROWS_PER_IMAGE``      64       ``restarts x candidates`` per image
``max_batch_rows``             ``RONAN_MAX_BATCH_ROWS``          1024     rows (images x rows per image) inverted
                                                                          in one batch; larger jobs run in chunks
``max_calibration_n``          ``RONAN_MAX_CALIBRATION_N``       1000     N of a belonging distribution
``max_images``                 ``RONAN_MAX_IMAGES``              500      images in one request (CLI call, batch,
                                                                          evaluation source)
``max_file_mb``                ``RONAN_MAX_FILE_MB``             50       size of one image file (MiB)
``max_image_megapixels``       ``RONAN_MAX_IMAGE_MEGAPIXELS``    64       declared width x height of one image
``max_side``                   ``RONAN_MAX_SIDE``                2048     larger images are reduced on load to this
                                                                          longest side (4x any model's resolution)
``max_request_megapixels``     ``RONAN_MAX_REQUEST_MEGAPIXELS``  2048     declared pixels decoded in one request
``decode_megapixels``          ``RONAN_DECODE_MEGAPIXELS``       128      pixels being decoded at once in the
                                                                          process (other decodes wait their turn)
``max_zip_mb``                 ``RONAN_MAX_ZIP_MB``              200      uncompressed image bytes of one archive
``download_timeout``           ``RONAN_DOWNLOAD_TIMEOUT``        30       seconds a hub download waits for the
                                                                          server (connect and each read)
=============================  ================================  =======  ==========================================

Measured (benchmarks/RESULTS.md, "Hardening"): with these defaults the app's resident memory stays
under 4 GB with its queue full of worst-case requests. With 28x28 models one row costs about
0.3 MB during an inversion (1024 rows ~ 300 MB per model); lower ``RONAN_MAX_BATCH_ROWS`` for
larger models.
"""

from __future__ import annotations

import contextvars
import math
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from .errors import RonanError

SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, 2**63)`` (a torch generator seed; JSON-safe as a signed 64-bit int)."""


class LimitExceeded(RonanError, ValueError):
    """A request asks for more work or memory than the operator allows (one line, names the limit)."""


_UPPER = contextvars.ContextVar("ronan_limits_upper", default=True)


@contextmanager
def presets_unbounded():
    """Skip the operator's upper bounds while built-in objects are defined (the presets at import):
    the bounds apply when a request uses them, and a lowered limit never breaks ``import ronan``."""
    token = _UPPER.set(False)
    try:
        yield
    finally:
        _UPPER.reset(token)


@dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring for meaning, defaults and variables)."""

    max_steps: int = 5000
    max_rows_per_image: int = 64
    max_batch_rows: int = 1024
    max_calibration_n: int = 1000
    max_images: int = 500
    max_file_mb: int = 50
    max_image_megapixels: int = 64
    max_side: int = 2048
    max_request_megapixels: int = 2048
    decode_megapixels: int = 128
    max_zip_mb: int = 200
    download_timeout: float = 30.0


ENV = {f.name: "RONAN_" + f.name.upper() for f in fields(Limits)}
"""Environment variable of each limit."""


def current() -> Limits:
    """The limits now: each default replaced by its environment variable when set.

    Raises:
        RonanError: a variable is set to something other than a positive number.
    """
    values: dict[str, Any] = {}  # each value of its field's type (kind below)
    for f in fields(Limits):
        raw = os.environ.get(ENV[f.name], "").strip()
        if not raw:
            continue
        kind = float if f.type in ("float", float) else int
        try:
            v = kind(raw)
        except ValueError:
            v = None
        if v is None or not (v > 0 and math.isfinite(v)):
            raise RonanError(f"{ENV[f.name]}={raw!r}: must be a positive {'number' if kind is float else 'integer'}")
        values[f.name] = v
    return Limits(**values)


def _refuse(what: str, value, limit, name: str) -> LimitExceeded:
    return LimitExceeded(f"{what} {value} exceeds the limit of {limit} (set by the operator: {ENV[name]})")


def _as_int(value, what: str) -> int:
    """``value`` as an int: an int, or a float with an integral value (not a bool, not a string)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not (math.isfinite(value) and value.is_integer()))
    ):
        raise LimitExceeded(f"{what} must be an integer, got {value!r}")
    return int(value)


def check_int(what: str, value, low: int, name: str | None = None) -> int:
    """``value`` as an int ``>= low`` and, with ``name``, ``<=`` that limit; one-line errors.

    Args:
        what (str): how the user calls it (``"steps"``, ``"--n"``...).
        value: an int (a float with an integral value is accepted; bools are not).
        low (int): smallest accepted value.
        name (str | None): attribute of :class:`Limits` giving the upper bound.
    """
    value = _as_int(value, what)
    if value < low:
        raise LimitExceeded(f"{what} must be at least {low}, got {value}")
    if name is not None and _UPPER.get():
        limit = getattr(current(), name)
        if value > limit:
            raise _refuse(what, value, limit, name)
    return value


def check_seed(seed, what: str = "seed") -> int:
    """``seed`` as an int in ``[0, 2**63)`` (:data:`SEED_LIMIT`), else a one-line error."""
    seed = _as_int(seed, what)
    if not 0 <= seed < SEED_LIMIT:
        raise LimitExceeded(f"{what} must be between 0 and 2**63 - 1, got {seed}")
    return seed


def check_inversion(steps, restarts, candidates, lr) -> None:
    """The per-request bounds of inversion settings: ``1 <= steps <= max_steps``,
    ``restarts, candidates >= 1`` with ``restarts x candidates <= max_rows_per_image``, and a
    finite ``lr > 0``. Called by :class:`ronan.inversion.InversionSettings` (every entry point)."""
    check_int("steps", steps, 1, "max_steps")
    check_int("restarts", restarts, 1)
    check_int("candidates", candidates, 1)
    rows = int(restarts) * int(candidates)
    limit = current().max_rows_per_image if _UPPER.get() else rows
    if rows > limit:
        what = "restarts" if candidates == 1 else "restarts x candidates"
        raise _refuse(f"{what} ({rows} starting points per image)", rows, limit, "max_rows_per_image")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise LimitExceeded(f"lr must be a finite number > 0, got {lr!r}")


def check_images(count: int, what: str = "images in one request") -> None:
    """Refuse more than ``max_images`` images in one request."""
    limit = current().max_images
    if count > limit:
        raise _refuse(what, count, limit, "max_images")


def rows_per_image(settings, generator=None) -> int:
    """Rows one image takes in an inversion batch: ``restarts x candidates``, as the model expands them."""
    rows = settings.restarts * settings.candidates
    return generator.expand_restarts(rows) if generator is not None else rows


def images_per_batch(rows: int, preferred: int = 100) -> int:
    """Images to invert together so that ``images x rows <= max_batch_rows`` (at least 1, at most
    ``preferred``). Results do not depend on it: the engine gives a batch the numbers of one-by-one runs."""
    return max(1, min(preferred, current().max_batch_rows // max(rows, 1)))


def check_batch(n_images: int, rows: int) -> None:
    """Refuse one inversion batch of ``n_images x rows`` rows above ``max_batch_rows`` (callers chunk)."""
    limit = current().max_batch_rows
    if n_images > 1 and n_images * rows > limit:
        raise _refuse(
            f"one inversion batch of {n_images} images x {rows} rows =", n_images * rows, limit, "max_batch_rows"
        )


# ---------------------------------------------------------------- decoded pixels


class PixelBudget:
    """Declared pixels one request may decode (``max_request_megapixels``); charge each image once.

    One budget per request: a CLI call, an uploaded batch, an evaluation. Not thread-safe (a request
    loads its images one after the other).
    """

    def __init__(self, megapixels: float | None = None):
        self.limit = int((megapixels if megapixels is not None else current().max_request_megapixels) * 1_000_000)
        self.used = 0

    def charge(self, pixels: int, label: str) -> None:
        """Count ``pixels`` (width x height as declared); raise :class:`LimitExceeded` past the budget."""
        if self.used + pixels > self.limit:
            raise LimitExceeded(
                f"{label}: the images of this request exceed {self.limit // 1_000_000} megapixels "
                f"in all (set by the operator: {ENV['max_request_megapixels']}); send fewer or "
                f"smaller images"
            )
        self.used += pixels


_decoding = 0
_decode_cv = threading.Condition()


@contextmanager
def decode_slot(pixels: int):
    """Hold ``pixels`` of the process-wide decode budget (``decode_megapixels``) while decoding.

    Concurrent loads (8 uploads at once) wait until the pixels being decoded fit the budget, so the
    memory of full-size decodes is bounded whatever the concurrency; one image larger than the budget
    decodes alone.
    """
    global _decoding
    budget = current().decode_megapixels * 1_000_000
    with _decode_cv:
        _decode_cv.wait_for(lambda: _decoding == 0 or _decoding + pixels <= budget)
        _decoding += pixels
    try:
        yield
    finally:
        with _decode_cv:
            _decoding -= pixels
            _decode_cv.notify_all()
        if pixels >= TRIM_PIXELS:
            release_memory()


TRIM_PIXELS = 16_000_000
"""After decoding an image this large, freed memory is handed back to the system (:func:`release_memory`)."""


def release_memory() -> None:
    """Return freed heap memory to the operating system (glibc ``malloc_trim``; a no-op elsewhere), so
    that the resident size of a long-running app falls back after a large decode."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


_libc: Any = None  # the C library once loaded (False where it cannot be)


# ---------------------------------------------------------------- parameters without effect


def effective_precision(precision: str | None, device) -> str | None:
    """``precision`` where it has an effect, else None (fp32): bf16/fp16 autocast runs on CUDA only,
    so on a CPU or MPS device they are dropped — and a calibration cache is never keyed by them there."""
    if precision in ("bf16", "fp16") and getattr(device, "type", str(device)) != "cuda":
        return None
    return precision
