"""SHA-256 of bytes and files (hex digests): images, weights files, hub snapshots.

A leaf module (hashlib only), so that listing models needs nothing heavier.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at ``path``, read in chunks of ``chunk`` bytes (default 1 MiB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@functools.cache
def _cached(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def file_sha256(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, computed once per process for each version of a file (its path,
    modification time and size): weights are hashed at every availability check."""
    st = Path(path).stat()
    return _cached(str(path), st.st_mtime_ns, st.st_size)
